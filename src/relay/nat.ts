/**
 * The kernel data plane of a relay: nftables DNAT. All relays of a process share the table
 * `ip floatip_relay`:
 *
 *   map targets    listen address . port : backend address . port   (the active backend)
 *   set rejecting  listen address . port                             (every backend down)
 *   set masq_listens listen address . port                             (relays with nat_masquerade)
 *
 * A switch replaces one map element in a single `nft -f -` transaction, so a new connection
 * sees either the old backend or the new one, never none. With every backend down the
 * relay's element moves from `targets` to `rejecting`, whose rule answers new connections with
 * a TCP reset (the kernel cannot write an HTTP 503).
 *
 * DNAT decides only on a connection's first packet; established connections keep their
 * conntrack entry. `closeConnections()` deletes the entries of one backend, so the next packet
 * of such a connection is answered with a reset instead of hanging on a dead server.
 *
 * Per source: with `max_connections_per_source` > 0 the relay gets a base chain of its own at
 * prerouting (before DNAT) whose rule counts each client address's connections to the listen
 * address in the kernel (`ct count`, a dynamic set of its own) and answers a new connection
 * beyond the limit with a TCP reset.
 *
 * Topology: the relay host forwards, so `net.ipv4.ip_forward` must be 1 (checked at start,
 * never changed behind the operator's back). When backends would answer clients directly (same
 * subnet, or their default route does not go through the relay), `nat_masquerade` rewrites the
 * source to the relay's address so replies come back through it.
 */
import { readFile } from "node:fs/promises";
import { ExecError, run } from "../adapters/exec.ts";
import { type Endpoint, endpointId } from "./config.ts";
import type { RelayDataPlane, RelayLog } from "./data-plane.ts";

export type NatErrorCode = "NAT_FORWARDING_DISABLED" | "NAT_COMMAND_FAILED";

export class NatError extends Error {
  readonly code: NatErrorCode;
  constructor(code: NatErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NatError";
    this.code = code;
  }
}

export interface NatOptions {
  readonly relay: string;
  readonly listen: Endpoint;
  readonly backends: ReadonlyMap<string, Endpoint>;
  readonly masquerade: boolean;
  readonly log: RelayLog;
  /** Deadline of each `nft` / `conntrack` call (default 5 s). */
  readonly commandTimeoutMs?: number;
  /** Open connections one client address may hold through this relay (0: no limit). */
  readonly maxConnectionsPerSource?: number;
}

const table = "floatip_relay";

const tableDefinition = `table ip ${table} {
  map targets { type ipv4_addr . inet_service : ipv4_addr . inet_service; }
  set rejecting { type ipv4_addr . inet_service; }
  set masq_listens { type ipv4_addr . inet_service; }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    meta l4proto tcp dnat ip to ip daddr . tcp dport map @targets
  }
  chain output {
    type nat hook output priority -100; policy accept;
    meta l4proto tcp dnat ip to ip daddr . tcp dport map @targets
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    meta l4proto tcp ct status dnat ct original ip daddr . ct original proto-dst @masq_listens masquerade
  }
  chain input {
    type filter hook input priority filter; policy accept;
    ip daddr . tcp dport @rejecting reject with tcp reset
  }
}
`;

/** Relays of this process using the table; the first creates it, the last removes it. */
let tableUsers = 0;
let tableReady: Promise<void> | undefined;

export class NatDataPlane implements RelayDataPlane {
  readonly #options: NatOptions;
  readonly #timeoutMs: number;
  readonly #key: string;
  /** What this relay's element currently is: a target, a reject, or nothing yet. */
  #current: { kind: "target"; backend: string } | { kind: "reject" } | { kind: "none" } = {
    kind: "none",
  };
  #started = false;

  constructor(options: NatOptions) {
    this.#options = options;
    this.#timeoutMs = options.commandTimeoutMs ?? 5000;
    this.#key = `${options.listen.host} . ${options.listen.port}`;
    // nft names: letters, digits, '_'; one per listen address and port.
    this.#limitName = `limit_${options.listen.host.replaceAll(".", "_")}_${options.listen.port}`;
  }

  readonly #limitName: string;

  /** The per-source limit's set and base chain (empty without a limit). */
  #limitScript(): string {
    const max = this.#options.maxConnectionsPerSource ?? 0;
    if (max <= 0) return "";
    const { host, port } = this.#options.listen;
    const name = this.#limitName;
    return [
      `add set ip ${table} ${name} { type ipv4_addr; flags dynamic; size 65535; }`,
      `add chain ip ${table} ${name} { type filter hook prerouting priority -150; policy accept; }`,
      `add rule ip ${table} ${name} ip daddr ${host} tcp dport ${port} ct state new add @${name} { ip saddr ct count over ${max} } counter reject with tcp reset`,
      "",
    ].join("\n");
  }

  async start(): Promise<void> {
    const forwarding = (await readFile("/proc/sys/net/ipv4/ip_forward", "utf8")).trim();
    if (forwarding !== "1") {
      throw new NatError(
        "NAT_FORWARDING_DISABLED",
        `relay ${this.#options.relay}: nat mode needs IPv4 forwarding, net.ipv4.ip_forward is ${forwarding}; run sysctl -w net.ipv4.ip_forward=1 (or use mode: proxy)`,
      );
    }
    tableUsers += 1;
    this.#started = true;
    // A table left by a crashed run is replaced: its elements describe a past that is gone.
    tableReady ??= this.#nft(`add table ip ${table}\ndelete table ip ${table}\n${tableDefinition}`);
    await tableReady;
    if (this.#options.masquerade) {
      await this.#nft(`add element ip ${table} masq_listens { ${this.#key} }\n`);
    }
    const limit = this.#limitScript();
    if (limit !== "") await this.#nft(limit);
  }

  async route(candidates: readonly string[]): Promise<void> {
    const active = candidates[0];
    const current = this.#current;
    if (
      active === undefined
        ? current.kind === "reject"
        : current.kind === "target" && current.backend === active
    ) {
      return;
    }
    const lines = [this.#removeCurrent()];
    if (active === undefined) {
      lines.push(`add element ip ${table} rejecting { ${this.#key} }`);
    } else {
      const backend = this.#options.backends.get(active);
      if (!backend) throw new Error(`unknown backend ${active}`);
      lines.push(
        `add element ip ${table} targets { ${this.#key} : ${backend.host} . ${backend.port} }`,
      );
    }
    await this.#nft(`${lines.filter((l) => l !== "").join("\n")}\n`);
    this.#current = active === undefined ? { kind: "reject" } : { kind: "target", backend: active };
    // Connections to the backend left behind stay on it through conntrack; deleting them
    // is `closeConnections()`, asked for by the relay machine when the backend is dead.
  }

  async closeConnections(backend: string): Promise<void> {
    const endpoint = this.#options.backends.get(backend);
    if (!endpoint) return;
    // Exit code 1: no entry matched, which is fine.
    await run(
      "conntrack",
      ["-D", "-p", "tcp", "--reply-src", endpoint.host, "--reply-port-src", String(endpoint.port)],
      { timeoutMs: this.#timeoutMs, okExitCodes: [0, 1] },
    );
    this.#options.log({
      event: "conntrack-flushed",
      relay: this.#options.relay,
      backend: endpointId(endpoint),
    });
  }

  /** The kernel keeps the counts; reading them needs a conntrack dump, left to `conntrack -L`. */
  connections(): ReadonlyMap<string, number> {
    return new Map();
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    tableUsers -= 1;
    try {
      if (tableUsers === 0) {
        tableReady = undefined;
        await this.#nft(`delete table ip ${table}\n`);
        return;
      }
      const removal = [this.#removeCurrent()];
      if (this.#options.masquerade)
        removal.push(`delete element ip ${table} masq_listens { ${this.#key} }`);
      if ((this.#options.maxConnectionsPerSource ?? 0) > 0) {
        removal.push(`delete chain ip ${table} ${this.#limitName}`);
        removal.push(`delete set ip ${table} ${this.#limitName}`);
      }
      await this.#nft(`${removal.filter((l) => l !== "").join("\n")}\n`);
    } finally {
      this.#current = { kind: "none" };
    }
  }

  #removeCurrent(): string {
    const current = this.#current;
    if (current.kind === "reject") return `delete element ip ${table} rejecting { ${this.#key} }`;
    if (current.kind === "target") return `delete element ip ${table} targets { ${this.#key} }`;
    return "";
  }

  async #nft(script: string): Promise<void> {
    try {
      await run("nft", ["-f", "-"], { timeoutMs: this.#timeoutMs, input: script });
    } catch (error) {
      const detail = error instanceof ExecError ? error.message : String(error);
      throw new NatError("NAT_COMMAND_FAILED", `relay ${this.#options.relay}: ${detail}`, {
        cause: error,
      });
    }
  }
}
