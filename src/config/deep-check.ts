/**
 * What `floatip config check` looks at beyond the file itself: everything the file names that
 * the agent will need at start, read the way the agent reads it, so that a config that passes
 * the check does not then fail in the agent.
 *
 * Errors (the agent would refuse to start, or run without doing its job):
 * - `key_file` missing, unreadable, too short, or accessible by group or others (the agent's
 *   own key loader);
 * - `api.token_file` missing, unreadable, empty, or accessible by group or others (the API's
 *   own token reader);
 * - `storage.clients[].token_file` the same way (the gateway's token reader), and the
 *   storage TLS certificate and key (readable; the key not by group or others);
 * - `notify.command` and `exec` check commands that do not exist or are not executable;
 * - with `--node ID`, checked on that node: its interface (and VIP interface overrides) must
 *   exist here, and its address must be configured on one of this machine's interfaces.
 * Warnings (it runs, but not as the operator probably expects):
 * - two nodes: a majority of two is both, so losing either leaves no node allowed to hold a VIP;
 * - a VIP whose subnet holds no node's address (clients on the nodes' subnets need a route).
 *
 * Each finding is a ConfigProblem (key path, message, fix, line and column in the file).
 */

import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { delimiter, join } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { ApiSetupError } from "../api/errors.ts";
import { readToken } from "../api/token.ts";
import { ClusterKeyError, loadClusterKey } from "../cluster/key.ts";
import { handoverLeaseMinMs } from "../core/timing.ts";
import type { ConfigProblem } from "./errors.ts";
import { ipv6Value, sameIpv6Prefix } from "./ipv6.ts";
import { formatPath } from "./load.ts";
import type { ClusterConfig } from "./types.ts";

export interface DeepCheckOptions {
  /** The file as the operator named it, for messages (default: the config's absolute path). */
  readonly file?: string;
  /** Check the node-local facts of this node (interfaces, its address) on this machine. */
  readonly nodeId?: string;
  /** Addresses configured on this machine (default: os.networkInterfaces()). */
  readonly localAddresses?: ReadonlySet<string>;
  /** Whether an interface exists here (default: /sys/class/net/NAME). */
  readonly interfaceExists?: (name: string) => boolean;
}

export interface DeepCheckReport {
  readonly errors: readonly ConfigProblem[];
  readonly warnings: readonly ConfigProblem[];
}

type Segment = string | number;

export function deepCheck(config: ClusterConfig, options: DeepCheckOptions = {}): DeepCheckReport {
  const locate = locator(config.file);
  const errors: ConfigProblem[] = [];
  const warnings: ConfigProblem[] = [];
  const finding = (path: Segment[], message: string, fix: string): ConfigProblem => ({
    file: options.file ?? config.file,
    path: formatPath(path),
    message,
    fix,
    ...locate(path),
  });

  try {
    loadClusterKey(config.keyFile);
  } catch (error) {
    if (!(error instanceof ClusterKeyError)) throw error;
    const [message, ...fix] = error.message.split("; ");
    errors.push(
      finding(
        ["key_file"],
        message ?? error.message,
        fix.join("; ") ||
          `create it with: head -c 32 /dev/urandom > ${config.keyFile} && chmod 600 ${config.keyFile}`,
      ),
    );
  }

  if (config.api.tokenFile !== undefined) {
    try {
      readToken(config.api.tokenFile);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const tooOpen = error instanceof ApiSetupError && error.code === "API_TOKEN_TOO_OPEN";
      errors.push(
        finding(
          ["api", "token_file"],
          message.split(":")[0] ?? message,
          tooOpen
            ? `chmod 600 ${config.api.tokenFile} (whoever reads it can move VIPs)`
            : `write a random token into it (head -c 24 /dev/urandom | base64 > ${config.api.tokenFile}; chmod 600), or drop token_file to refuse every mutating call`,
        ),
      );
    }
  }

  const storage = config.storage as { clients?: unknown; tls?: unknown } | undefined;
  const tls = (storage as { tls?: { cert_file?: unknown; key_file?: unknown } } | undefined)?.tls;
  if (tls !== null && typeof tls === "object") {
    for (const [field, what] of [
      ["cert_file", "TLS certificate"],
      ["key_file", "TLS key"],
    ] as const) {
      const file = tls[field];
      if (typeof file !== "string" || file === "") continue;
      let mode: number;
      try {
        accessSync(file, constants.R_OK);
        mode = statSync(file).mode;
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code ?? String(error);
        errors.push(
          finding(
            ["storage", "tls", field],
            `cannot read the ${what} ${file} (${reason})`,
            "fix the path or its permissions",
          ),
        );
        continue;
      }
      if (field === "key_file" && (mode & 0o077) !== 0) {
        errors.push(
          finding(
            ["storage", "tls", field],
            `the TLS key ${file} is accessible by group or others (mode ${(mode & 0o777).toString(8).padStart(4, "0")})`,
            `chmod 600 ${file} (whoever reads it can impersonate the gateway)`,
          ),
        );
      }
    }
  }
  if (storage !== null && typeof storage === "object" && Array.isArray(storage.clients)) {
    storage.clients.forEach((entry: unknown, i: number) => {
      const file = (entry as { token_file?: unknown } | null)?.token_file;
      if (typeof file !== "string" || file === "") return; // the section's own check reports it
      try {
        readToken(file, {
          what: "storage client token file",
          key: `storage.clients[${i}].token_file`,
          power: "use the storage API",
        });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        const tooOpen = error instanceof ApiSetupError && error.code === "API_TOKEN_TOO_OPEN";
        errors.push(
          finding(
            ["storage", "clients", i, "token_file"],
            message.split(": ")[0] ?? message,
            tooOpen
              ? `chmod 600 ${file} (whoever reads it can use the storage API)`
              : `write a random token into it: head -c 24 /dev/urandom | base64 > ${file}; chmod 600 ${file}`,
          ),
        );
      }
    });
  }

  if (config.notify !== undefined) {
    const problem = executableProblem(config.notify.command);
    if (problem) {
      errors.push(
        finding(["notify", "command"], problem, "install it, fix the path or chmod +x it"),
      );
    }
  }
  config.checks.forEach((check, i) => {
    if (check.kind !== "exec") return;
    const problem = executableProblem(check.command[0] ?? "");
    if (problem) {
      errors.push(
        finding(
          ["checks", i, "command"],
          `${problem}: the check would fail and the node would count itself unhealthy`,
          "install it, fix the path or chmod +x it",
        ),
      );
    }
  });

  if (options.nodeId !== undefined) {
    const index = config.nodes.findIndex((n) => n.id === options.nodeId);
    const node = config.nodes[index];
    if (node !== undefined) {
      const exists =
        options.interfaceExists ?? ((name: string) => existsSync(`/sys/class/net/${name}`));
      const local = options.localAddresses ?? localAddresses();
      if (!exists(node.interface)) {
        errors.push(
          finding(
            ["nodes", index, "interface"],
            `interface ${node.interface} does not exist on this machine (node ${node.id})`,
            `name one of: ${[...interfaceNames()].join(", ") || "(none found)"}`,
          ),
        );
      }
      config.vips.forEach((vip, i) => {
        if (vip.interface !== undefined && !exists(vip.interface)) {
          errors.push(
            finding(
              ["vips", i, "interface"],
              `interface ${vip.interface} does not exist on this machine (node ${node.id})`,
              "name an interface every node has, or drop the override to use each node's own",
            ),
          );
        }
      });
      if (!local.has(node.address)) {
        errors.push(
          finding(
            ["nodes", index, "address"],
            `${node.address} is not configured on any interface of this machine, so node ${node.id} cannot send or receive heartbeats from it`,
            "give the node's interface this address, or correct the address",
          ),
        );
      }
    }
  }

  const onTick = config.receive === "on-tick";
  const handoverMs = handoverLeaseMinMs(config.timers, onTick);
  if (config.timers.leaseMs < handoverMs) {
    const why = onTick
      ? "one and a half election timeouts, 9.1 heartbeat intervals (every hop waits for a tick with receive: on-tick) and five lease margins"
      : "one and a half election timeouts, 1.1 heartbeat intervals and five lease margins";
    warnings.push(
      finding(
        ["timers", "lease_ms"],
        `${config.timers.leaseMs} ms is shorter than a new coordinator needs to grant after the old one crashed (${handoverMs} ms with these timers: ${why}), so such a crash can make healthy nodes give their VIPs up for a moment`,
        onTick
          ? `set timers.lease_ms to at least ${handoverMs}, or remove receive: on-tick`
          : `set timers.lease_ms to at least ${handoverMs}, or shorten timers.election_timeout_ms`,
      ),
    );
  }
  if (config.nodes.length === 2) {
    warnings.push(
      finding(
        ["nodes"],
        "two nodes: a majority of two is both, so when either fails or they lose sight of each other no node may hold a VIP",
        "add a third node (any small machine that runs the agent can be one)",
      ),
    );
  }
  config.vips.forEach((vip, i) => {
    // Node addresses of the VIP's family tell; with none (IPv6 VIPs on an IPv4 cluster, or the
    // other way round) there is nothing to compare.
    const family = (address: string) => (address.includes(":") ? 6 : 4);
    const sameFamily = config.nodes.filter((n) => family(n.address) === family(vip.address));
    const inSubnet =
      sameFamily.length === 0 ||
      sameFamily.some((n) => sameSubnet(vip.address, n.address, vip.prefixLength));
    if (!inSubnet) {
      warnings.push(
        finding(
          ["vips", i, "address"],
          `no node has an address in ${vip.address}/${vip.prefixLength}: clients on the nodes' subnets reach the VIP only through a route`,
          "check the prefix length, or route the VIP's subnet to the nodes",
        ),
      );
    }
  });
  return { errors, warnings };
}

/** Why `command` cannot be run (undefined when it can): a path, or a name found on PATH. */
function executableProblem(command: string): string | undefined {
  if (command === "") return "the command is empty";
  const candidates = command.includes("/")
    ? [command]
    : (process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin")
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, command));
  let found: string | undefined;
  for (const candidate of candidates) {
    try {
      if (statSync(candidate).isFile()) {
        found = candidate;
        accessSync(candidate, constants.X_OK);
        return undefined;
      }
    } catch {
      // Not here, or not executable: try the next one.
    }
  }
  if (found !== undefined) return `${found} is not executable`;
  return command.includes("/") ? `${command} does not exist` : `${command} is not on PATH`;
}

function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const entry of list ?? []) out.add(entry.address);
  }
  return out;
}

function interfaceNames(): Set<string> {
  return new Set(Object.keys(networkInterfaces()));
}

function toNumber(address: string): number {
  return address.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
}

function sameSubnet(a: string, b: string, prefixLength: number): boolean {
  const a6 = ipv6Value(a);
  const b6 = ipv6Value(b.split("%")[0]!);
  if (a6 !== undefined && b6 !== undefined) return sameIpv6Prefix(a6, b6, prefixLength);
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(a) || !/^\d+\.\d+\.\d+\.\d+$/.test(b)) return true;
  const size = 2 ** (32 - prefixLength);
  return Math.floor(toNumber(a) / size) === Math.floor(toNumber(b) / size);
}

/** Line and column of the nearest existing node on a key path, read from the file again. */
function locator(
  file: string,
): (path: readonly Segment[]) => { line: number; column: number } | Record<never, never> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return () => ({});
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  return (path) => {
    for (let n = path.length; n > 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] };
      if (node?.range) {
        const { line, col } = lines.linePos(node.range[0]);
        return { line, column: col };
      }
    }
    return {};
  };
}
