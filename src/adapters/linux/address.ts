/**
 * VIP addresses on a Linux interface, driven through `ip -json` (iproute2).
 *
 * The agent calls `addAddress` once when it takes a VIP (after an occupancy probe), then
 * `renewAddress` on every lease renewal, and `removeAddress` when it releases the VIP. VIPs are
 * added with a kernel lifetime (`valid_lft`) so that the kernel drops the VIP of an agent that
 * died without cleaning up; a live agent keeps pushing the lifetime forward.
 *
 * Every call runs `ip` under a timeout through `run()`, and every failure becomes an
 * `AddressError` whose `code` the caller can switch on. `netns` runs the command in another
 * network namespace (tests and tools); the agent itself runs inside its namespace.
 */
import { isIP } from "node:net";
import { ExecError, run } from "../exec.ts";

export type AddressErrorCode =
  /** Bad argument (not an IP, prefix out of range, bad lifetime); a programming or config error. */
  | "ADDRESS_INVALID"
  /** The interface does not exist (in that namespace). */
  | "ADDRESS_NO_INTERFACE"
  /** `renewAddress` found no such address: it expired or was removed; probe before re-adding. */
  | "ADDRESS_NOT_FOUND"
  /** Not allowed to change addresses (not root / no CAP_NET_ADMIN). */
  | "ADDRESS_PERMISSION"
  /** `ip` did not finish within the deadline. */
  | "ADDRESS_TIMEOUT"
  /** `ip` is not installed. */
  | "ADDRESS_TOOL_MISSING"
  /** Any other failure of `ip`; the message carries its stderr. */
  | "ADDRESS_COMMAND_FAILED";

export class AddressError extends Error {
  readonly code: AddressErrorCode;
  constructor(code: AddressErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AddressError";
    this.code = code;
  }
}

export interface AddressCallOptions {
  /** Run in this network namespace (`ip netns exec`). */
  readonly netns?: string;
  /** Deadline for the `ip` command; default 3000 ms. */
  readonly timeoutMs?: number;
}

export interface AddressLifetimeOptions extends AddressCallOptions {
  /** Kernel lifetime in seconds; the address vanishes when it runs out. Omit for permanent. */
  readonly validLftSec?: number;
  /** Defaults to `validLftSec`. */
  readonly preferredLftSec?: number;
}

export interface InterfaceAddress {
  readonly ip: string;
  readonly prefix: number;
  readonly family: "inet" | "inet6";
  /** Remaining lifetime in seconds; absent for a permanent address. */
  readonly validLftSec?: number;
  readonly preferredLftSec?: number;
}

export interface LinkState {
  /** Administratively up (`ip link set … up`). */
  readonly up: boolean;
  /** The lower layer reports a carrier (`LOWER_UP`). */
  readonly carrier: boolean;
  /** The kernel's operational state, e.g. `UP`, `DOWN`, `LOWERLAYERDOWN`. */
  readonly operState: string;
}

const defaultTimeoutMs = 3000;
/** iproute2 prints this lifetime for "forever". */
const foreverSec = 4294967295;

/** Addresses on `iface`, IPv4 and IPv6, as the kernel reports them now. */
export async function listAddresses(
  iface: string,
  options: AddressCallOptions = {},
): Promise<InterfaceAddress[]> {
  const [link] = await ipJson(["-json", "address", "show", "dev", checkIface(iface)], options);
  const entries = (link?.addr_info ?? []) as Array<Record<string, unknown>>;
  return entries
    .filter((entry) => entry.family === "inet" || entry.family === "inet6")
    .map((entry) => {
      const valid = lifetime(entry.valid_life_time);
      const preferred = lifetime(entry.preferred_life_time);
      return {
        ip: String(entry.local),
        prefix: Number(entry.prefixlen),
        family: entry.family as "inet" | "inet6",
        ...(valid === undefined ? {} : { validLftSec: valid }),
        ...(preferred === undefined ? {} : { preferredLftSec: preferred }),
      };
    });
}

/** Adds `ip/prefix` to `iface`. An address that is already there counts as success. */
export async function addAddress(
  iface: string,
  ip: string,
  prefix: number,
  options: AddressLifetimeOptions = {},
): Promise<void> {
  const args = [
    "address",
    "add",
    cidr(ip, prefix),
    "dev",
    checkIface(iface),
    ...lifetimeArgs(options),
    // IPv6: floatip probes for itself; see applyAddressBatch.
    ...(isIP(ip) === 6 ? ["nodad"] : []),
  ];
  try {
    await ipRun(args, options);
  } catch (error) {
    // Older iproute2 says "File exists", newer kernels "Address already assigned".
    if (error instanceof AddressError && /File exists|already assigned/i.test(error.message)) {
      return;
    }
    throw error;
  }
}

/**
 * Pushes the lifetime of an existing address forward. `ip address change` would silently
 * re-create an address that has already expired, which would bypass the occupancy probe, so
 * the address must exist first; otherwise this fails with `ADDRESS_NOT_FOUND`.
 */
export async function renewAddress(
  iface: string,
  ip: string,
  prefix: number,
  options: AddressLifetimeOptions,
): Promise<void> {
  const target = cidr(ip, prefix);
  if (options.validLftSec === undefined) {
    throw new AddressError("ADDRESS_INVALID", "renewAddress needs validLftSec");
  }
  const present = await listAddresses(iface, options);
  if (!present.some((entry) => sameAddress(entry, ip, prefix))) {
    throw new AddressError("ADDRESS_NOT_FOUND", `${target} is not on ${iface}; probe and add it`);
  }
  const nodad = isIP(ip) === 6 ? ["nodad"] : [];
  await ipRun(
    ["address", "change", target, "dev", iface, ...lifetimeArgs(options), ...nodad],
    options,
  );
}

/** Removes `ip/prefix` from `iface`. An address that is already gone counts as success. */
export async function removeAddress(
  iface: string,
  ip: string,
  prefix: number,
  options: AddressCallOptions = {},
): Promise<boolean> {
  const target = cidr(ip, prefix);
  try {
    await ipRun(["address", "del", target, "dev", checkIface(iface)], options);
    return true;
  } catch (error) {
    if (
      error instanceof AddressError &&
      /Cannot assign requested address|address not found/i.test(error.message)
    ) {
      return false;
    }
    throw error;
  }
}

/** Administrative state and carrier of `iface`. */
export async function linkState(
  iface: string,
  options: AddressCallOptions = {},
): Promise<LinkState> {
  const [link] = await ipJson(["-json", "link", "show", "dev", checkIface(iface)], options);
  const flags = Array.isArray(link?.flags) ? (link.flags as string[]) : [];
  return {
    up: flags.includes("UP"),
    carrier: flags.includes("LOWER_UP"),
    operState: typeof link?.operstate === "string" ? link.operstate : "UNKNOWN",
  };
}

/** Hardware address of `iface`, lower case `aa:bb:cc:dd:ee:ff`. */
export async function linkMac(iface: string, options: AddressCallOptions = {}): Promise<string> {
  const [link] = await ipJson(["-json", "link", "show", "dev", checkIface(iface)], options);
  if (typeof link?.address !== "string") {
    throw new AddressError(
      "ADDRESS_COMMAND_FAILED",
      `ip reported no hardware address for ${iface}`,
    );
  }
  return link.address.toLowerCase();
}

function sameAddress(entry: InterfaceAddress, ip: string, prefix: number): boolean {
  // IPv6 text forms vary; compare through the URL parser's canonical form.
  return entry.prefix === prefix && canonical(entry.ip) === canonical(ip);
}

function canonical(ip: string): string {
  return isIP(ip) === 6 ? new URL(`http://[${ip}]/`).hostname : ip;
}

function lifetime(value: unknown): number | undefined {
  return typeof value === "number" && value !== foreverSec ? value : undefined;
}

function checkIface(iface: string): string {
  if (!/^[^\s/]{1,15}$/.test(iface)) {
    throw new AddressError("ADDRESS_INVALID", `invalid interface name ${JSON.stringify(iface)}`);
  }
  return iface;
}

function cidr(ip: string, prefix: number): string {
  const family = isIP(ip);
  const maxPrefix = family === 4 ? 32 : 128;
  if (family === 0)
    throw new AddressError("ADDRESS_INVALID", `not an IP address: ${JSON.stringify(ip)}`);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > maxPrefix) {
    throw new AddressError(
      "ADDRESS_INVALID",
      `prefix ${prefix} out of range 0..${maxPrefix} for ${ip}`,
    );
  }
  return `${ip}/${prefix}`;
}

function lifetimeArgs(options: AddressLifetimeOptions): string[] {
  const valid = options.validLftSec;
  if (valid === undefined) return [];
  const preferred = options.preferredLftSec ?? valid;
  for (const [name, value] of [
    ["validLftSec", valid],
    ["preferredLftSec", preferred],
  ] as const) {
    if (!Number.isInteger(value) || value < 1 || value >= foreverSec) {
      throw new AddressError("ADDRESS_INVALID", `${name} must be a whole number of seconds >= 1`);
    }
  }
  if (preferred > valid) {
    throw new AddressError("ADDRESS_INVALID", "preferredLftSec must not exceed validLftSec");
  }
  return ["valid_lft", String(valid), "preferred_lft", String(preferred)];
}

async function ipRun(args: string[], options: AddressCallOptions): Promise<string> {
  try {
    const result = await run("ip", args, {
      timeoutMs: options.timeoutMs ?? defaultTimeoutMs,
      ...(options.netns === undefined ? {} : { netns: options.netns }),
    });
    return result.stdout;
  } catch (error) {
    throw toAddressError(error);
  }
}

async function ipJson(
  args: string[],
  options: AddressCallOptions,
): Promise<Array<Record<string, unknown>>> {
  const stdout = await ipRun(args, options);
  try {
    const parsed: unknown = JSON.parse(stdout.trim() === "" ? "[]" : stdout);
    return Array.isArray(parsed) ? (parsed as Array<Record<string, unknown>>) : [];
  } catch (cause) {
    throw new AddressError("ADDRESS_COMMAND_FAILED", `ip ${args.join(" ")} printed invalid JSON`, {
      cause,
    });
  }
}

function toAddressError(error: unknown): AddressError {
  if (!(error instanceof ExecError)) {
    return new AddressError("ADDRESS_COMMAND_FAILED", String(error), { cause: error });
  }
  if (error.code === "EXEC_TIMEOUT")
    return new AddressError("ADDRESS_TIMEOUT", error.message, { cause: error });
  if (error.code === "EXEC_NOT_FOUND") {
    return new AddressError("ADDRESS_TOOL_MISSING", `${error.message} (install iproute2)`, {
      cause: error,
    });
  }
  const stderr = error.stderr;
  if (/Cannot find device|does not exist/i.test(stderr)) {
    return new AddressError("ADDRESS_NO_INTERFACE", error.message, { cause: error });
  }
  if (/Operation not permitted|Permission denied/i.test(stderr)) {
    return new AddressError("ADDRESS_PERMISSION", error.message, { cause: error });
  }
  return new AddressError("ADDRESS_COMMAND_FAILED", error.message, { cause: error });
}

/** One line of an `ip -batch` run: add, remove or re-time one address. */
export interface AddressOperation {
  readonly op: "add" | "del" | "change";
  readonly iface: string;
  readonly ip: string;
  readonly prefix: number;
  /** Kernel lifetime for add and change. */
  readonly validLftSec?: number;
}

/**
 * Applies many address operations with a single `ip -force -batch -` process, in order, and
 * returns one outcome per operation (undefined = done). Spawning one `ip` per VIP costs
 * milliseconds of the event loop each, which a thousand VIPs turn into missed heartbeats.
 * Adding an address that is there and removing one that is gone count as done, as in
 * `addAddress`/`removeAddress`.
 */
export async function applyAddressBatch(
  operations: readonly AddressOperation[],
  options: AddressCallOptions = {},
): Promise<(AddressError | undefined)[]> {
  if (operations.length === 0) return [];
  const lines = operations.map((o) => {
    const lifetime =
      o.op === "del"
        ? []
        : lifetimeArgs({ ...(o.validLftSec !== undefined ? { validLftSec: o.validLftSec } : {}) });
    // IPv6: no kernel DAD (floatip probes for itself before it adds; DAD would leave the
    // address "tentative", unusable for services, for about a second). A change carries the
    // flag too: it resets the flags it does not name.
    const nodad = o.op !== "del" && isIP(o.ip) === 6 ? ["nodad"] : [];
    return [
      "address",
      o.op,
      cidr(o.ip, o.prefix),
      "dev",
      checkIface(o.iface),
      ...lifetime,
      ...nodad,
    ].join(" ");
  });
  let stderr = "";
  try {
    const result = await run("ip", ["-force", "-batch", "-"], {
      timeoutMs: Math.max(options.timeoutMs ?? 3000, 3000 + operations.length * 5),
      input: `${lines.join("\n")}\n`,
      ...(options.netns ? { netns: options.netns } : {}),
    });
    stderr = result.stderr;
  } catch (error) {
    if (!(error instanceof ExecError) || error.code !== "EXEC_FAILED") {
      const failure = new AddressError(
        error instanceof ExecError && error.code === "EXEC_TIMEOUT"
          ? "ADDRESS_TIMEOUT"
          : "ADDRESS_COMMAND_FAILED",
        `ip -batch failed: ${(error as Error).message}`,
      );
      return operations.map(() => failure);
    }
    stderr = error.stderr;
  }
  const outcomes: (AddressError | undefined)[] = operations.map(() => undefined);
  let message = "";
  for (const line of stderr.split("\n")) {
    const failed = /^Command failed -:(\d+)/.exec(line);
    if (!failed) {
      if (line.trim()) message = line.trim();
      continue;
    }
    const index = Number(failed[1]) - 1;
    const operation = operations[index];
    if (!operation) continue;
    const benign =
      (operation.op === "add" && /File exists|already assigned/i.test(message)) ||
      (operation.op === "del" && /Cannot assign requested address|not found/i.test(message));
    if (!benign) {
      const code = /Cannot find device/i.test(message)
        ? "ADDRESS_NO_INTERFACE"
        : /not permitted/i.test(message)
          ? "ADDRESS_PERMISSION"
          : "ADDRESS_COMMAND_FAILED";
      outcomes[index] = new AddressError(code, `${lines[index]}: ${message}`);
    }
    message = "";
  }
  return outcomes;
}
