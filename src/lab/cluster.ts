/**
 * A live floatip cluster for end-to-end tests and the demo: a bridge with node namespaces
 * and a client namespace (src/lab/topology.ts), a cluster key and config in a temporary
 * directory, one real agent process per node (with its supervisor unless told otherwise)
 * and a tiny HTTP service per node that answers with the node's name.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../adapters/exec.ts";
import { ensureBuilt } from "./build.ts";
import { type EtcdLab, startEtcd } from "./etcd.ts";
import { createTopology, type Topology } from "./topology.ts";

export interface ClusterVip {
  /** Last octet in the topology's IPv4 subnet, or the last group (decimal digits) in its /64. */
  readonly host: number;
  /** 6: an IPv6 VIP in the topology's /64 (default 4). */
  readonly family?: 4 | 6;
  readonly policy?: "round-robin" | "weighted" | "hash";
  readonly preferred?: string;
  readonly failback?: string;
}

export interface ClusterOptions {
  readonly prefix: string;
  readonly nodes?: number;
  readonly profile?: "fast" | "lan" | "wan";
  readonly vips: readonly ClusterVip[];
  readonly weights?: readonly number[];
  /** Extra YAML appended to the config (checks:, notify:, …). */
  readonly extraYaml?: string;
  /**
   * 6: nodes send heartbeats to each other's IPv6 addresses; "link-local": to their link-local
   * addresses, with the zone (default 4).
   */
  readonly nodeFamily?: 4 | 6 | "link-local";
  /** Run agents without the supervisor process. */
  readonly noSupervisor?: boolean;
  readonly addressLifetime?: string;
  /** Start the agents at once (default); false leaves it to `startAgent(id)`. */
  readonly startAgents?: boolean;
  /** Extra environment for a node's agent (and its supervisor), e.g. a preloaded library. */
  readonly agentEnv?: (id: string) => Readonly<Record<string, string>> | undefined;
  /** The CLI script to run (default: this checkout's build), e.g. an installed package's. */
  readonly main?: string;
  /** The Node.js that runs it (default: the one running this process). */
  readonly node?: string;
  /**
   * `arbiter: etcd` against a real etcd cluster started in hosts e1…eN of the topology
   * (src/lab/etcd.ts).
   */
  readonly etcd?: {
    readonly members?: number;
    readonly ttl?: string;
    readonly onLoss?: "release" | "failsafe";
    readonly tls?: boolean;
    /** Authentication on, with this password for user floatip. */
    readonly password?: string;
  };
}

export interface LiveCluster {
  readonly topology: Topology;
  readonly dir: string;
  readonly configPath: string;
  readonly ids: readonly string[];
  readonly vipAddresses: readonly string[];
  readonly agents: Map<string, ChildProcess>;
  /** The etcd cluster (`etcd` option). */
  readonly etcd?: EtcdLab;
  /** Starts `id`'s agent, with the cluster's config or another file (a rolling change). */
  startAgent(id: string, config?: string): ChildProcess;
  /** Sends a signal to the process started for `id` (the supervisor when there is one). */
  signal(id: string, signal: NodeJS.Signals): void;
  /** PID of the agent process itself (the supervisor's child, or the process started). */
  agentPid(id: string): number | undefined;
  /** Addresses of `id`'s eth0 that are VIPs. */
  heldVips(id: string): Promise<string[]>;
  /** Node whose namespace holds `vip`, or undefined; throws if two do. */
  holderOf(vip: string): Promise<string | undefined>;
  /**
   * Every VIP with the nodes whose namespace holds it, read from all namespaces in parallel so
   * that one sample is as close to one instant as separate `ip` commands allow.
   */
  holders(): Promise<Map<string, string[]>>;
  /** One HTTP request from the client to VIP:8080; the answering node's name or undefined. */
  ask(vip: string, timeoutMs?: number): Promise<string | undefined>;
  cli(
    id: string,
    args: readonly string[],
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  logs(id: string): string;
  destroy(): Promise<void>;
}

export async function startCluster(options: ClusterOptions): Promise<LiveCluster> {
  const count = options.nodes ?? 3;
  const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  // The compiled agent, as it ships (built now if a source changed since the last build).
  const main = options.main ?? (await ensureBuilt());
  const etcdMembers = options.etcd
    ? Array.from({ length: options.etcd.members ?? 3 }, (_, i) => `e${i + 1}`)
    : [];
  const topology = await createTopology({
    prefix: options.prefix,
    hosts: [...ids, "client", ...etcdMembers],
  });
  const dir = mkdtempSync(join(tmpdir(), `${options.prefix}-`));
  let etcd: EtcdLab | undefined;
  let arbiterYaml = "";
  if (options.etcd) {
    try {
      etcd = await startEtcd({
        topology,
        members: etcdMembers,
        dir: join(dir, "etcd"),
        ...(options.etcd.tls ? { tls: true } : {}),
        ...(options.etcd.password !== undefined ? { password: options.etcd.password } : {}),
      });
    } catch (error) {
      await topology.destroy();
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    const lines = [
      "arbiter:",
      "  kind: etcd",
      `  endpoints: [${etcd.endpoints.join(", ")}]`,
      `  ttl: ${options.etcd.ttl ?? "1s"}`,
      "  timeout: 500ms",
      `  on_loss: ${options.etcd.onLoss ?? "release"}`,
    ];
    if (etcd.tls) {
      lines.push(`  tls: { ca: ${etcd.tls.ca}, cert: ${etcd.tls.cert}, key: ${etcd.tls.key} }`);
    }
    if (options.etcd.password !== undefined) {
      writeFileSync(join(dir, "etcd.password"), `${options.etcd.password}\n`, { mode: 0o600 });
      lines.push("  auth: { user: floatip, password_file: etcd.password }");
    }
    arbiterYaml = lines.join("\n");
  }
  const subnet = topology.subnet;
  const vipAddresses = options.vips.map((v) =>
    v.family === 6 ? `${topology.subnet6}${v.host}` : `${subnet}.${v.host}`,
  );
  writeFileSync(join(dir, "cluster.key"), randomBytes(32), { mode: 0o600 });
  writeFileSync(join(dir, "api.token"), `${randomBytes(16).toString("hex")}\n`, { mode: 0o600 });
  const nodeLines = ids.map((id, i) => {
    const host = topology.host(id);
    const address =
      options.nodeFamily === 6
        ? `"${host.address6}"`
        : options.nodeFamily === "link-local"
          ? `"${host.linkLocal}%${host.iface}"`
          : host.address;
    return `  - { id: ${id}, address: ${address}, interface: ${host.iface}, weight: ${options.weights?.[i] ?? 100 - i * 10} }`;
  });
  const vipLines = options.vips.map((v, i) => {
    // IPv6 quoted: a plain scalar in a flow mapping should not carry "::".
    const cidr = v.family === 6 ? `"${vipAddresses[i]}/64"` : `${vipAddresses[i]}/24`;
    const parts = [`address: ${cidr}`, `policy: ${v.policy ?? "round-robin"}`];
    if (v.preferred) parts.push(`preferred: ${v.preferred}`);
    if (v.failback) parts.push(`failback: "${v.failback}"`);
    return `  - { ${parts.join(", ")} }`;
  });
  const configPath = join(dir, "cluster.yaml");
  writeFileSync(
    configPath,
    [
      `cluster: ${options.prefix}`,
      `key_file: ${join(dir, "cluster.key")}`,
      `profile: ${options.profile ?? "lan"}`,
      `state_dir: ${join(dir, "state")}`,
      `address_lifetime: ${options.addressLifetime ?? "3s"}`,
      "api: { listen: 127.0.0.1:7480, token_file: api.token }",
      "nodes:",
      ...nodeLines,
      "vips:",
      ...vipLines,
      arbiterYaml,
      options.extraYaml ?? "",
    ].join("\n"),
  );
  const agents = new Map<string, ChildProcess>();
  const logs = new Map<string, string[]>();
  // "::" takes IPv4 and IPv6 alike (the namespaces keep bindv6only at 0).
  const service = `require("node:http").createServer((q, s) => s.end(process.argv[1])).listen(8080, "::")`;
  for (const id of ids)
    topology.spawn(id, process.execPath, ["-e", service, id], { stdio: "ignore" });

  const cluster: LiveCluster = {
    topology,
    dir,
    configPath,
    ids,
    vipAddresses,
    agents,
    ...(etcd ? { etcd } : {}),
    startAgent(id, config = configPath) {
      const args = [main, "agent", "--config", config, "--node", id];
      if (options.noSupervisor) args.push("--no-supervisor");
      const child = topology.spawn(id, options.node ?? process.execPath, args, {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, FLOATIP_LOG_FORMAT: "human", ...options.agentEnv?.(id) },
      });
      const lines = logs.get(id) ?? [];
      logs.set(id, lines);
      const keep = (chunk: Buffer) => {
        lines.push(chunk.toString());
        if (lines.length > 2000) lines.splice(0, lines.length - 2000);
      };
      child.stdout?.on("data", keep);
      child.stderr?.on("data", keep);
      agents.set(id, child);
      return child;
    },
    signal(id, signal) {
      const child = agents.get(id);
      if (child?.pid) process.kill(child.pid, signal);
    },
    agentPid(id) {
      const pid = agents.get(id)?.pid;
      if (!pid || options.noSupervisor) return pid;
      try {
        const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
          .trim()
          .split(/\s+/);
        return children[0] ? Number(children[0]) : undefined;
      } catch {
        return undefined;
      }
    },
    async heldVips(id) {
      const held = await topology.addresses(id);
      return vipAddresses.filter((v) => held.some((a) => a.split("/")[0] === v));
    },
    async holderOf(vip) {
      const holders = (await cluster.holders()).get(vip) ?? [];
      if (holders.length > 1) throw new Error(`${vip} is held by ${holders.join(" and ")} at once`);
      return holders[0];
    },
    async holders() {
      // One shell reads every namespace in turn, a few milliseconds apart. Parallel `ip netns
      // exec` processes were scheduled up to ~100 ms apart on a busy machine: longer than a
      // handover's gap (removal, probe, add), so one sample could see the old and the new
      // owner both holding a VIP that was never held twice.
      const script = ids
        .map((id) => `echo "@@ ${id}"; ip -n ${topology.host(id).netns} -o address show dev eth0`)
        .join("; ");
      // A few ms per namespace; more on a machine busy starting a large cluster.
      const { stdout } = await run("bash", ["-c", script], {
        timeoutMs: Math.max(5000, 700 * ids.length),
      });
      const held = new Map<string, Set<string>>(ids.map((id) => [id, new Set()]));
      let current: string | undefined;
      for (const line of stdout.split("\n")) {
        const marker = /^@@ (\S+)$/.exec(line);
        if (marker) current = marker[1];
        const address = /\sinet6?\s+([0-9a-f.:]+)\//.exec(line)?.[1];
        if (current !== undefined && address !== undefined) held.get(current)?.add(address);
      }
      return new Map(vipAddresses.map((vip) => [vip, ids.filter((id) => held.get(id)!.has(vip))]));
    },
    async ask(vip, timeoutMs = 300) {
      try {
        const result = await topology.exec(
          "client",
          "curl",
          [
            "-s",
            "-m",
            String(timeoutMs / 1000),
            `http://${vip.includes(":") ? `[${vip}]` : vip}:8080/`,
          ],
          timeoutMs + 2000,
        );
        return result.stdout.trim() || undefined;
      } catch {
        return undefined;
      }
    },
    async cli(id, args) {
      try {
        const result = await topology.exec(
          id,
          options.node ?? process.execPath,
          [main, ...args],
          15_000,
        );
        return { code: 0, stdout: result.stdout, stderr: result.stderr };
      } catch (error) {
        const e = error as { exitCode?: number; stdout?: string; stderr?: string };
        return { code: e.exitCode ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
      }
    },
    logs(id) {
      return (logs.get(id) ?? []).join("");
    },
    async destroy() {
      await topology.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (options.startAgents !== false) for (const id of ids) cluster.startAgent(id);
  return cluster;
}

export interface HolderReport {
  readonly samples: number;
  /** One line per sample in which two namespaces held the same VIP. */
  readonly doubles: readonly string[];
  /** One line per sample in which a VIP had no holder. */
  readonly unheld: readonly string[];
  /** Every node seen holding each VIP, in order of first sighting. */
  readonly seen: ReadonlyMap<string, readonly string[]>;
}

/**
 * Samples which namespaces hold each VIP in the background until `stop()`, so a test can show
 * that at no sampled instant two namespaces held one VIP during a fault.
 *
 * The sampling loop is one long-lived shell (every namespace read in turn, a few milliseconds
 * apart, then `everyMs` of sleep), bounded by `maxSamples` and `maxMs` so it ends by itself.
 * It runs at realtime priority 5 when it may: above the CPU hogs of a loaded test machine, so
 * samples stay frequent where the test's own event loop would be starved, and below the
 * control plane's 10, so the sampler cannot delay what it watches.
 */
export function watchHolders(
  cluster: LiveCluster,
  everyMs = 20,
  maxSamples = 3000,
  maxMs = 60_000,
): { stop(): Promise<HolderReport> } {
  const doubles: string[] = [];
  const unheld: string[] = [];
  const seen = new Map<string, string[]>();
  const startedAt = Date.now();
  let samples = 0;
  const reads = cluster.ids
    .map(
      (id) => `echo "@@ ${id}"; ip -n ${cluster.topology.host(id).netns} -o address show dev eth0`,
    )
    .join("; ");
  const script = [
    `end=$((SECONDS + ${Math.ceil(maxMs / 1000)})); n=0`,
    `while [ "$n" -lt ${maxSamples} ] && [ "$SECONDS" -lt "$end" ]; do`,
    `  echo "@@@ $(date +%s%3N)"; ${reads}; echo "@@@ end"`,
    `  n=$((n + 1)); sleep ${(everyMs / 1000).toFixed(3)}`,
    "done",
  ].join("\n");
  // Realtime needs root (CAP_SYS_NICE); otherwise the shell runs at normal priority.
  const child =
    process.getuid?.() === 0
      ? spawn("chrt", ["-r", "5", "bash", "-c", script], { stdio: ["ignore", "pipe", "ignore"] })
      : spawn("bash", ["-c", script], { stdio: ["ignore", "pipe", "ignore"] });
  let rest = "";
  let atMs = 0;
  let current: string | undefined;
  let held = new Map<string, Set<string>>();
  const onLine = (line: string) => {
    const stamp = /^@@@ (\d+)$/.exec(line);
    if (stamp) {
      atMs = Number(stamp[1]);
      current = undefined;
      held = new Map(cluster.ids.map((id) => [id, new Set<string>()]));
      return;
    }
    if (line === "@@@ end") {
      samples += 1;
      for (const vip of cluster.vipAddresses) {
        const holders = cluster.ids.filter((id) => held.get(id)?.has(vip));
        if (holders.length > 1) {
          doubles.push(`+${atMs - startedAt} ms: ${vip} held by ${holders.join(" and ")}`);
        }
        if (holders.length === 0) unheld.push(`+${atMs - startedAt} ms: ${vip} held by no node`);
        const list = seen.get(vip) ?? [];
        for (const h of holders) if (!list.includes(h)) list.push(h);
        seen.set(vip, list);
      }
      return;
    }
    const marker = /^@@ (\S+)$/.exec(line);
    if (marker) current = marker[1];
    const address = /\sinet6?\s+([0-9a-f.:]+)\//.exec(line)?.[1];
    if (current !== undefined && address !== undefined) held.get(current)?.add(address);
  };
  child.stdout?.on("data", (chunk: Buffer) => {
    rest += chunk.toString();
    const lines = rest.split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  });
  const exited = new Promise<void>((resolve) => {
    child.on("exit", () => resolve());
    child.on("error", () => resolve());
  });
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        child.kill("SIGTERM");
      }
      await exited;
      return { samples, doubles, unheld, seen };
    },
  };
}

/**
 * SIGKILLs `victim`'s agent (its supervisor stays and removes its VIPs) and waits, at most
 * `timeoutMs`, until every one of `vips` is held by another node, sampling the holders every
 * 5 ms until a second after the move. `moved` is each VIP's new holder, or undefined when
 * they did not all move in time.
 */
export async function killAgentAndWaitMoved(
  cluster: LiveCluster,
  victim: string,
  vips: readonly string[],
  timeoutMs = 15_000,
): Promise<{ moved: (string | undefined)[] | undefined; report: HolderReport }> {
  const watch = watchHolders(cluster, 5);
  process.kill(cluster.agentPid(victim)!, "SIGKILL");
  const moved = await waitFor(async () => {
    const holders = await Promise.all(vips.map((vip) => cluster.holderOf(vip)));
    return holders.every((h) => h && h !== victim) ? holders : undefined;
  }, timeoutMs);
  await new Promise((r) => setTimeout(r, 1000)); // and a second after the move
  return { moved, report: await watch.stop() };
}

/** Resolves when `child` has exited (at once if it already has). */
export function processExited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.once("exit", () => resolve()));
}

/** Every node's log, one section per node, for assertion messages. */
export function allLogs(cluster: LiveCluster): string {
  return cluster.ids.map((id) => `--- ${id}\n${cluster.logs(id)}`).join("\n");
}

/**
 * Waits until every VIP is held by exactly one namespace, the placement has stayed the same for
 * `stableMs` (start-up and failback moves are over), and the client is served through each VIP
 * by its holder; returns the owner of each VIP. Throws with every node's log otherwise.
 */
export async function waitSettled(
  cluster: LiveCluster,
  timeoutMs = 20_000,
  stableMs = 1000,
): Promise<Map<string, string>> {
  const deadline = Date.now() + timeoutMs;
  const key = (holders: Map<string, string[]>) => JSON.stringify([...holders]);
  let last = "";
  let since = Date.now();
  let holders = new Map<string, string[]>();
  for (let attempt = 0; attempt < 10_000 && Date.now() < deadline; attempt += 1) {
    holders = await cluster.holders();
    const now = key(holders);
    if (now !== last) [last, since] = [now, Date.now()];
    const complete = [...holders.values()].every((h) => h.length === 1);
    if (complete && Date.now() - since >= stableMs) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const owners = new Map<string, string>();
  for (const [vip, held] of holders) {
    const owner = held.length === 1 ? held[0] : undefined;
    const answer = owner ? await waitFor(() => cluster.ask(vip), 5000) : undefined;
    if (!owner || answer !== owner) {
      throw new Error(
        `${vip}: held by ${held.join(" and ") || "nobody"}, answered by ${answer ?? "nobody"}\n${allLogs(cluster)}`,
      );
    }
    owners.set(vip, owner);
  }
  return owners;
}

/** Polls `probe` every `everyMs` until it returns a value other than undefined, or `timeoutMs`. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  everyMs = 50,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 10_000; attempt += 1) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return undefined;
}
