/**
 * VIP addresses through rtnetlink, without spawning `ip`: the steady-state path of the agent
 * (list the VIPs, push their lifetimes forward) costs one NETLINK_ROUTE socket and a few
 * system calls instead of a process. Adding and removing VIPs stays in address.ts
 * (`applyAddressBatch`), which this module mirrors in types and error style.
 *
 * Calls are synchronous (the kernel answers in microseconds) and bounded: the socket has a
 * receive timeout (`timeoutMs`, default 1000 ms) and the whole call a deadline of the same
 * length, so a call can never hang. Each request carries a fresh sequence number and only
 * replies with that number (and our port id) count. Sockets live in the network namespace of
 * the calling process: run the agent (or a test's child process) inside its namespace.
 */
import { isIP } from "node:net";
import { addonLoadMessage, loadNativeAddon } from "./native-addon.ts";

export type NetlinkErrorCode =
  /** The addon is not built (or built from older sources): run scripts/setup.sh. */
  | "NETLINK_ADDON_MISSING"
  /** Bad argument (not an IP, prefix out of range, bad lifetime or timeout). */
  | "NETLINK_INVALID"
  /** The interface does not exist in this network namespace. */
  | "NETLINK_NO_INTERFACE"
  /** Not allowed to change addresses: needs root or CAP_NET_ADMIN. */
  | "NETLINK_PERMISSION"
  /** The kernel did not answer within the deadline. */
  | "NETLINK_TIMEOUT"
  /** The kernel refused the request or the reply was malformed; the message has the errno and
   * the kernel's extended-ACK text when there is one. */
  | "NETLINK_FAILED";

export class NetlinkError extends Error {
  readonly code: NetlinkErrorCode;
  /** errno name, e.g. "ENODEV"; absent for argument checks done here. */
  readonly errno: string | undefined;
  constructor(
    code: NetlinkErrorCode,
    message: string,
    options?: { cause?: unknown; errno?: string },
  ) {
    super(message, options);
    this.name = "NetlinkError";
    this.code = code;
    this.errno = options?.errno;
  }
}

export interface NetlinkAddress {
  /** Canonical text form (IPv6 compressed, as `ip` prints it). */
  readonly ip: string;
  readonly prefixLength: number;
  /** Remaining valid lifetime in seconds, or "forever" for a permanent address. */
  readonly validLftSec: number | "forever";
  readonly preferredLftSec: number | "forever";
  readonly family: 4 | 6;
  /** IPv6: the kernel's duplicate address detection still runs (services cannot bind yet). */
  readonly tentative: boolean;
  /** IPv6: duplicate address detection failed: another host answered for the address. */
  readonly dadFailed: boolean;
}

export interface NetlinkCallOptions {
  /** Socket receive timeout and overall deadline, 1..60000 ms; default 1000. */
  readonly timeoutMs?: number;
}

interface NetlinkAddon {
  listAddresses(ifname: string, timeoutMs?: number): NetlinkAddress[];
  renewAddressLifetimes(
    ifname: string,
    ips: readonly string[],
    prefixLengths: readonly number[],
    validLftSec: number,
    timeoutMs?: number,
  ): ({ code: string; message: string } | null)[];
}

/** The kernel's "forever" lifetime; finite lifetimes must stay below it. */
const foreverSec = 4294967295;

function load(): NetlinkAddon {
  try {
    return loadNativeAddon<NetlinkAddon>(["listAddresses", "renewAddressLifetimes"]);
  } catch (cause) {
    throw new NetlinkError("NETLINK_ADDON_MISSING", addonLoadMessage("netlink", cause), {
      cause,
    });
  }
}

function toNetlinkError(error: unknown): NetlinkError {
  if (error instanceof NetlinkError) return error;
  const nativeCode = (error as { code?: unknown } | null)?.code;
  const errno =
    typeof nativeCode === "string" && /^E[A-Z0-9]+$/.test(nativeCode) ? nativeCode : undefined;
  const message = error instanceof Error ? error.message : String(error);
  let code: NetlinkErrorCode = "NETLINK_FAILED";
  let hint = "";
  if (nativeCode === "ERR_INVALID_ARG") code = "NETLINK_INVALID";
  else if (errno === "ENODEV" || errno === "ENXIO") code = "NETLINK_NO_INTERFACE";
  else if (errno === "ETIMEDOUT") code = "NETLINK_TIMEOUT";
  else if (errno === "EPERM" || errno === "EACCES") {
    code = "NETLINK_PERMISSION";
    hint = ": run as root or grant CAP_NET_ADMIN";
  }
  return new NetlinkError(code, `${message}${hint}`, {
    cause: error,
    ...(errno ? { errno } : {}),
  });
}

function checkIface(ifname: string): string {
  // The kernel's limit is 15 bytes (IFNAMSIZ - 1); `/` and whitespace are never valid.
  if (!/^[^\s/]+$/.test(ifname) || Buffer.byteLength(ifname) > 15) {
    throw new NetlinkError("NETLINK_INVALID", `invalid interface name ${JSON.stringify(ifname)}`);
  }
  return ifname;
}

function timeoutOf(options: NetlinkCallOptions): number | undefined {
  const timeoutMs = options.timeoutMs;
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs >= 1)) {
    throw new NetlinkError("NETLINK_INVALID", `timeoutMs must be a whole number >= 1`);
  }
  return timeoutMs === undefined ? undefined : Math.min(timeoutMs, 60000);
}

/**
 * Addresses on `ifname`, IPv4 and IPv6, as the kernel reports them now (an RTM_GETADDR dump
 * filtered to the interface's index). The same set as `listAddresses` in address.ts
 * (`ip -json address show dev IF`), without the process. A dump that raced with concurrent
 * address changes is taken again (up to 3 times, then NETLINK_FAILED).
 */
export function listAddressesNetlink(
  ifname: string,
  options: NetlinkCallOptions = {},
): NetlinkAddress[] {
  checkIface(ifname);
  const timeoutMs = timeoutOf(options);
  const addon = load();
  try {
    return addon.listAddresses(ifname, timeoutMs);
  } catch (error) {
    throw toNetlinkError(error);
  }
}

/**
 * Sets the valid and preferred lifetime of `ip/prefixLength` on `ifname` to `validLftSec`, like
 * `ip address change IP/PREFIX dev IF valid_lft N preferred_lft N`: RTM_NEWADDR with
 * NLM_F_REPLACE and IFA_CACHEINFO, and waits for the kernel's ACK.
 *
 * The request carries no NLM_F_CREATE, yet the kernel CREATES the address when it is missing
 * (IPv4 and IPv6 alike ignore the absent flag; for IPv4 a different prefix length also adds a
 * second address). An expired VIP would come back without an occupancy probe, so callers list
 * first (`listAddressesNetlink`) and renew only addresses that are there.
 * Also like `ip address change`, it resets what the request does not carry: the IPv4 route
 * metric and protocol, and for IPv6 flags such as nodad or noprefixroute.
 */
export function renewAddressLifetime(
  ifname: string,
  ip: string,
  prefixLength: number,
  validLftSec: number,
  options: NetlinkCallOptions = {},
): void {
  checkIface(ifname);
  checkRenewal(ip, prefixLength);
  checkLifetime(validLftSec);
  const [failure] = renewAddressLifetimes(ifname, [{ ip, prefixLength }], validLftSec, options);
  if (failure !== undefined) throw failure;
}

function checkLifetime(validLftSec: number): void {
  if (!Number.isInteger(validLftSec) || validLftSec < 1 || validLftSec >= foreverSec) {
    throw new NetlinkError(
      "NETLINK_INVALID",
      `validLftSec must be a whole number of seconds from 1 to ${foreverSec - 1}, got ${validLftSec}`,
    );
  }
}

/** Checks one address and prefix length of a renewal. */
function checkRenewal(ip: string, prefixLength: number): void {
  const family = isIP(ip);
  if (family === 0) {
    throw new NetlinkError("NETLINK_INVALID", `not an IP address: ${JSON.stringify(ip)}`);
  }
  const maxPrefix = family === 4 ? 32 : 128;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > maxPrefix) {
    throw new NetlinkError(
      "NETLINK_INVALID",
      `prefix length ${prefixLength} out of range 0..${maxPrefix} for ${ip}`,
    );
  }
}

/**
 * `renewAddressLifetime` for many addresses over one netlink socket; one outcome per address
 * (undefined: renewed). The same caveat: list first, it creates a missing address. `timeoutMs`
 * bounds the whole call (default 1000 ms).
 */
export function renewAddressLifetimes(
  ifname: string,
  entries: readonly { readonly ip: string; readonly prefixLength: number }[],
  validLftSec: number,
  options: NetlinkCallOptions = {},
): (NetlinkError | undefined)[] {
  checkIface(ifname);
  for (const e of entries) checkRenewal(e.ip, e.prefixLength);
  checkLifetime(validLftSec);
  if (entries.length === 0) return [];
  const timeoutMs = timeoutOf(options);
  const addon = load();
  let outcomes: ({ code: string; message: string } | null)[];
  try {
    outcomes = addon.renewAddressLifetimes(
      ifname,
      entries.map((e) => e.ip),
      entries.map((e) => e.prefixLength),
      validLftSec,
      timeoutMs,
    );
  } catch (error) {
    throw toNetlinkError(error);
  }
  return outcomes.map((o) => {
    if (o === null) return undefined;
    const error = Object.assign(new Error(o.message), { code: o.code });
    return toNetlinkError(error);
  });
}
