/**
 * Network-namespace topologies for end-to-end tests: one namespace per host, all joined by
 * veth pairs to a bridge that lives in its own namespace, so nothing touches the machine's own
 * network. Host i (0-based) gets 198.18.<subnet>.<10+i>/24 on `eth0`; the subnet comes from a
 * hash of the prefix so that topologies of different test files are easy to tell apart.
 *
 * Every namespace is named `<prefix><name>`; the bridge namespace is `<prefix>br`.
 * `destroy()` kills every process started through `spawn()` (by PID, SIGKILL after a grace
 * period) and deletes every namespace; it is safe to call twice and after a failed creation.
 * Topologies still alive when the process exits (or gets SIGINT/SIGTERM) are removed too.
 *
 * Usage:
 *   const topology = await createTopology({ prefix: "fipa-", hosts: ["a", "b", "client"] });
 *   try { ... } finally { await topology.destroy(); }
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import type { TestContext } from "node:test";
import { type ExecResult, run } from "../adapters/exec.ts";

export interface TopologyOptions {
  /** Start of every namespace name, e.g. `fipa-`. Letters, digits, `-`, `_`. */
  readonly prefix: string;
  /** Host names, in order; host i gets address .10+i. */
  readonly hosts: readonly string[];
  /** Third octet of 198.18.x.0/24; default: derived from the prefix. */
  readonly subnet?: number;
}

export interface TopologyHost {
  readonly name: string;
  readonly netns: string;
  /** IPv4 address without prefix, e.g. 198.18.37.10 (the prefix length is 24). */
  readonly address: string;
  /** IPv6 address without prefix, e.g. 2001:db8:25::10 (documentation space, /64). */
  readonly address6: string;
  /** A link-local IPv6 address of `iface` added without DAD, e.g. fe80::10 (usable at once). */
  readonly linkLocal: string;
  /** Interface inside the host namespace (always `eth0`). */
  readonly iface: string;
  readonly mac: string;
}

export interface Neighbour {
  /** Absent for entries without a link-layer address (INCOMPLETE, FAILED). */
  readonly mac?: string;
  /** Kernel state names, e.g. `REACHABLE`, `STALE`, `PERMANENT`, joined by `,`. */
  readonly state: string;
}

export interface Topology {
  readonly hosts: readonly TopologyHost[];
  /** Network part of the hosts' /24, e.g. `198.18.37`. */
  readonly subnet: string;
  /** The hosts' IPv6 /64 without its length, ending in `::`, e.g. `2001:db8:25::`. */
  readonly subnet6: string;
  host(name: string): TopologyHost;
  exec(host: string, cmd: string, args: readonly string[], timeoutMs?: number): Promise<ExecResult>;
  spawn(host: string, cmd: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  setLink(host: string, state: "up" | "down"): Promise<void>;
  neighbour(host: string, ip: string): Promise<Neighbour | undefined>;
  /** Addresses on the host's `eth0` as `ip/prefix`, both families. */
  addresses(host: string): Promise<string[]>;
  /** Drops every frame between the two hosts (nftables netdev ingress in both namespaces). */
  dropBetween(hostA: string, hostB: string): Promise<void>;
  heal(hostA: string, hostB: string): Promise<void>;
  destroy(): Promise<void>;
}

const commandTimeoutMs = 5000;
const killGraceMs = 1000;
const hostIface = "eth0";
const bridgeName = "br0";
const live = new Set<TopologyState>();

interface TopologyState {
  readonly namespaces: string[];
  /** Namespaces whose `ip netns add` is still running (also in `namespaces`). */
  readonly adding: Set<string>;
  readonly processes: Set<ChildProcess>;
  destroyed: boolean;
}

/**
 * Returns a skip reason for `describe(…, { skip })` when not root, or `false` when root.
 * With CI=true a missing root is an error instead: CI must run these tests.
 */
export function skipUnlessRoot(): string | false {
  if (process.getuid?.() === 0) return false;
  if (process.env.CI === "true") {
    throw new Error("network-namespace tests need root, and CI=true forbids skipping them");
  }
  return "network-namespace tests need root (run as root, e.g. sudo scripts/test.sh)";
}

/** Skips the test with a clear message when not root; returns whether the test may run. */
export function requireRoot(t: TestContext): boolean {
  const reason = skipUnlessRoot();
  if (reason === false) return true;
  t.skip(reason);
  return false;
}

/** Third octet for a prefix: a stable hash into 1..254. */
export function subnetFor(prefix: string): number {
  return (createHash("sha256").update(prefix).digest().readUInt16BE(0) % 254) + 1;
}

export async function createTopology(options: TopologyOptions): Promise<Topology> {
  const { prefix, hosts } = options;
  if (!/^[A-Za-z0-9_-]{1,40}$/.test(prefix)) throw new Error(`invalid namespace prefix ${prefix}`);
  if (hosts.length === 0 || hosts.length > 200) throw new Error("hosts: 1 to 200 names");
  for (const name of hosts) {
    if (!/^[a-z0-9][a-z0-9-]{0,19}$/.test(name) || name === "br") {
      throw new Error(
        `invalid host name ${JSON.stringify(name)} (lower case, digits, '-'; not 'br')`,
      );
    }
  }
  if (new Set(hosts).size !== hosts.length) throw new Error("host names must be unique");
  const subnetOctet = options.subnet ?? subnetFor(prefix);
  if (!Number.isInteger(subnetOctet) || subnetOctet < 0 || subnetOctet > 255) {
    throw new Error(`subnet must be 0..255, got ${subnetOctet}`);
  }
  const subnet = `198.18.${subnetOctet}`;
  const subnet6 = `2001:db8:${subnetOctet.toString(16)}::`;
  const bridgeNs = `${prefix}br`;
  const state: TopologyState = {
    namespaces: [],
    adding: new Set(),
    processes: new Set(),
    destroyed: false,
  };
  live.add(state);
  installExitCleanup();
  const ip = (args: string[]) => run("ip", args, { timeoutMs: commandTimeoutMs });

  const built: TopologyHost[] = [];
  try {
    // Leftovers of an earlier run that was killed before it could clean up.
    const planned = [bridgeNs, ...hosts.map((name) => `${prefix}${name}`)];
    const existing = await listNamespaces();
    for (const name of planned.filter((n) => existing.includes(n))) {
      await ip(["netns", "del", name]);
    }
    await addNamespace(state, bridgeNs);
    await ip(["-n", bridgeNs, "link", "add", bridgeName, "type", "bridge", "stp_state", "0"]);
    await ip(["-n", bridgeNs, "link", "set", bridgeName, "up"]);
    for (const [index, name] of hosts.entries()) {
      const netns = `${prefix}${name}`;
      const port = `p${index}`;
      const address = `${subnet}.${10 + index}`;
      await addNamespace(state, netns);
      await ip([
        "-n",
        bridgeNs,
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        hostIface,
        "netns",
        netns,
      ]);
      await ip(["-n", bridgeNs, "link", "set", port, "master", bridgeName, "up"]);
      await ip(["-n", netns, "address", "add", `${address}/24`, "dev", hostIface]);
      // IPv6 beside it (documentation space, inside the namespaces only), without DAD so it
      // is usable at once.
      const address6 = `${subnet6}${10 + index}`;
      await ip(["-n", netns, "address", "add", `${address6}/64`, "dev", hostIface, "nodad"]);
      const linkLocal = `fe80::${10 + index}`;
      await ip(["-n", netns, "address", "add", `${linkLocal}/64`, "dev", hostIface, "nodad"]);
      await ip(["-n", netns, "link", "set", hostIface, "up"]);
      const [link] = JSON.parse(
        (await ip(["-n", netns, "-json", "link", "show", hostIface])).stdout,
      );
      built.push({
        name,
        netns,
        address,
        address6: `${subnet6}${10 + index}`,
        linkLocal: `fe80::${10 + index}`,
        iface: hostIface,
        mac: String(link.address),
      });
    }
  } catch (error) {
    await destroyState(state);
    throw error;
  }
  return makeTopology(state, built, subnet, subnet6);
}

function makeTopology(
  state: TopologyState,
  hosts: TopologyHost[],
  subnet: string,
  subnet6: string,
): Topology {
  const blocked = new Map<string, Set<string>>();
  const host = (name: string): TopologyHost => {
    const found = hosts.find((h) => h.name === name);
    if (!found) throw new Error(`no host ${name} in this topology (${hosts.map((h) => h.name)})`);
    return found;
  };
  const inHost = (
    name: string,
    cmd: string,
    args: readonly string[],
    timeoutMs = commandTimeoutMs,
  ) => run(cmd, args, { timeoutMs, netns: host(name).netns });
  // One nft run at a time per namespace, each writing the set as it is when it runs: cuts
  // made in parallel (a whole partition at once) can then never leave an older set in force.
  const rendering = new Map<string, Promise<void>>();
  const renderDrops = (name: string): Promise<void> => {
    const next = (rendering.get(name) ?? Promise.resolve()).then(() => writeDrops(name));
    rendering.set(
      name,
      next.catch(() => {}),
    );
    return next;
  };
  const writeDrops = async (name: string) => {
    const macs = [...(blocked.get(name) ?? [])];
    const lines = ["table netdev floatip_harness", "delete table netdev floatip_harness"];
    if (macs.length > 0) {
      lines.push(
        "table netdev floatip_harness {",
        "  chain ingress {",
        `    type filter hook ingress device "${hostIface}" priority -500; policy accept;`,
        `    ether saddr { ${macs.join(", ")} } drop`,
        "  }",
        "}",
      );
    }
    await run("nft", ["-f", "-"], {
      timeoutMs: commandTimeoutMs,
      netns: host(name).netns,
      input: `${lines.join("\n")}\n`,
    });
  };
  const setDrop = async (a: string, b: string, drop: boolean) => {
    for (const [self, other] of [
      [a, b],
      [b, a],
    ] as const) {
      const set = blocked.get(self) ?? new Set<string>();
      if (drop) set.add(host(other).mac);
      else set.delete(host(other).mac);
      blocked.set(self, set);
      await renderDrops(self);
    }
  };

  return {
    hosts,
    subnet,
    subnet6,
    host,
    exec: (name, cmd, args, timeoutMs) => inHost(name, cmd, args, timeoutMs),
    spawn(name, cmd, args, options = {}) {
      if (state.destroyed) throw new Error("topology already destroyed");
      const child = spawn("ip", ["netns", "exec", host(name).netns, cmd, ...args], {
        stdio: ["ignore", "pipe", "pipe"],
        ...options,
        // Own process group, so that destroy() also reaches the command's children.
        detached: true,
      });
      state.processes.add(child);
      child.once("exit", () => state.processes.delete(child));
      return child;
    },
    async setLink(name, linkState) {
      await inHost(name, "ip", ["link", "set", hostIface, linkState]);
    },
    async neighbour(name, ip) {
      const result = await inHost(name, "ip", [
        "-json",
        "neigh",
        "show",
        "to",
        ip,
        "dev",
        hostIface,
      ]);
      const entries = JSON.parse(result.stdout.trim() || "[]") as Array<Record<string, unknown>>;
      const entry = entries.find((e) => e.dst === ip);
      if (!entry) return undefined;
      const states = Array.isArray(entry.state) ? entry.state.join(",") : String(entry.state);
      return typeof entry.lladdr === "string"
        ? { mac: entry.lladdr, state: states }
        : { state: states };
    },
    async addresses(name) {
      const result = await inHost(name, "ip", ["-json", "address", "show", "dev", hostIface]);
      const [link] = JSON.parse(result.stdout) as Array<{
        addr_info?: Array<Record<string, unknown>>;
      }>;
      return (link?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
    },
    dropBetween: (a, b) => setDrop(a, b, true),
    heal: (a, b) => setDrop(a, b, false),
    destroy: () => destroyState(state),
  };
}

/**
 * Recorded before `ip netns add` runs: a SIGTERM while it runs ends this process, not the
 * `ip` child, which then creates the namespace after the exit handler has deleted the ones
 * recorded (a leak `bench:load` found when it stopped a namespace suite). The exit handler
 * waits for such a namespace to appear before it deletes it.
 */
async function addNamespace(state: TopologyState, name: string): Promise<void> {
  state.namespaces.push(name);
  state.adding.add(name);
  try {
    await run("ip", ["netns", "add", name], { timeoutMs: commandTimeoutMs });
  } catch (error) {
    // Not ours to delete: it was never created, or somebody else's exists under this name.
    const at = state.namespaces.indexOf(name);
    if (at >= 0) state.namespaces.splice(at, 1);
    throw error;
  } finally {
    state.adding.delete(name);
  }
  await run("ip", ["-n", name, "link", "set", "lo", "up"], { timeoutMs: commandTimeoutMs });
}

/** How long the exit handler waits for a namespace whose `ip netns add` was still running. */
const addingWaitMs = 2000;

/** Sleeps synchronously (for exit handlers, where promises no longer run). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function listNamespaces(): Promise<string[]> {
  const result = await run("ip", ["-json", "netns", "list"], { timeoutMs: commandTimeoutMs });
  const parsed = JSON.parse(result.stdout.trim() || "[]") as Array<{ name: string }>;
  return parsed.map((entry) => entry.name);
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      process.kill(child.pid, signal);
    } catch {
      // Already gone.
    }
  }
}

async function destroyState(state: TopologyState): Promise<void> {
  state.destroyed = true;
  const running = [...state.processes].filter((c) => c.exitCode === null && c.signalCode === null);
  for (const child of running) signalGroup(child, "SIGTERM");
  await Promise.all(
    running.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => {
            signalGroup(child, "SIGKILL");
            resolve();
          }, killGraceMs);
          child.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
  state.processes.clear();
  const failures: string[] = [];
  // Bridge last is not needed: deleting any namespace removes its veth ends and their peers.
  for (const name of state.namespaces.splice(0).reverse()) {
    try {
      await run("ip", ["netns", "del", name], { timeoutMs: commandTimeoutMs });
    } catch (error) {
      if (!/No such file/.test(String(error))) failures.push(`${name}: ${String(error)}`);
    }
  }
  live.delete(state);
  if (failures.length > 0) throw new Error(`topology cleanup failed: ${failures.join("; ")}`);
}

/** Synchronous last-chance cleanup for process exit, where promises no longer run. */
function destroyAllSync(): void {
  for (const state of live) {
    state.destroyed = true;
    for (const child of state.processes) signalGroup(child, "SIGKILL");
    for (const name of state.namespaces.splice(0)) {
      if (state.adding.has(name)) {
        for (let waited = 0; waited < addingWaitMs && !existsSync(`/run/netns/${name}`); ) {
          sleepSync(10);
          waited += 10;
        }
      }
      try {
        execFileSync("ip", ["netns", "del", name], { timeout: commandTimeoutMs, stdio: "ignore" });
      } catch {
        // Best effort: the process is exiting.
      }
    }
  }
  live.clear();
}

let exitCleanupInstalled = false;
function installExitCleanup(): void {
  if (exitCleanupInstalled) return;
  exitCleanupInstalled = true;
  process.on("exit", destroyAllSync);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      destroyAllSync();
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  }
}
