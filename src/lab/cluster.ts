/**
 * A live floatip cluster for end-to-end tests and the demo: a bridge with node namespaces
 * and a client namespace (src/lab/topology.ts), a cluster key and config in a temporary
 * directory, one real agent process per node (with its supervisor unless told otherwise)
 * and a tiny HTTP service per node that answers with the node's name.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTopology, type Topology } from "./topology.ts";

const root = join(import.meta.dirname, "..", ".."); // src/lab -> repository root
const main = join(root, "src", "cli", "main.ts");

export interface ClusterVip {
  readonly host: number; // last octet in the topology subnet
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
  /** Run agents without the supervisor process. */
  readonly noSupervisor?: boolean;
  readonly addressLifetime?: string;
  /** Start the agents at once (default); false leaves it to `startAgent(id)`. */
  readonly startAgents?: boolean;
}

export interface LiveCluster {
  readonly topology: Topology;
  readonly dir: string;
  readonly configPath: string;
  readonly ids: readonly string[];
  readonly vipAddresses: readonly string[];
  readonly agents: Map<string, ChildProcess>;
  startAgent(id: string): ChildProcess;
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
  const topology = await createTopology({ prefix: options.prefix, hosts: [...ids, "client"] });
  const dir = mkdtempSync(join(tmpdir(), `${options.prefix}-`));
  const subnet = topology.subnet;
  const vipAddresses = options.vips.map((v) => `${subnet}.${v.host}`);
  writeFileSync(join(dir, "cluster.key"), randomBytes(32), { mode: 0o600 });
  writeFileSync(join(dir, "api.token"), `${randomBytes(16).toString("hex")}\n`, { mode: 0o600 });
  const nodeLines = ids.map((id, i) => {
    const host = topology.host(id);
    return `  - { id: ${id}, address: ${host.address}, interface: ${host.iface}, weight: ${options.weights?.[i] ?? 100 - i * 10} }`;
  });
  const vipLines = options.vips.map((v, i) => {
    const parts = [`address: ${vipAddresses[i]}/24`, `policy: ${v.policy ?? "round-robin"}`];
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
      options.extraYaml ?? "",
    ].join("\n"),
  );
  const agents = new Map<string, ChildProcess>();
  const logs = new Map<string, string[]>();
  const service = `require("node:http").createServer((q, s) => s.end(process.argv[1])).listen(8080, "0.0.0.0")`;
  for (const id of ids)
    topology.spawn(id, process.execPath, ["-e", service, id], { stdio: "ignore" });

  const cluster: LiveCluster = {
    topology,
    dir,
    configPath,
    ids,
    vipAddresses,
    agents,
    startAgent(id) {
      const args = [main, "agent", "--config", configPath, "--node", id];
      if (options.noSupervisor) args.push("--no-supervisor");
      const child = topology.spawn(id, process.execPath, args, {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, FLOATIP_LOG_FORMAT: "human" },
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
      const held = await Promise.all(ids.map((id) => cluster.heldVips(id)));
      return new Map(
        vipAddresses.map((vip) => [vip, ids.filter((_, i) => held[i]!.includes(vip))]),
      );
    },
    async ask(vip, timeoutMs = 300) {
      try {
        const result = await topology.exec(
          "client",
          "curl",
          ["-s", "-m", String(timeoutMs / 1000), `http://${vip}:8080/`],
          timeoutMs + 2000,
        );
        return result.stdout.trim() || undefined;
      } catch {
        return undefined;
      }
    },
    async cli(id, args) {
      try {
        const result = await topology.exec(id, process.execPath, [main, ...args], 15_000);
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
  /** Every node seen holding each VIP, in order of first sighting. */
  readonly seen: ReadonlyMap<string, readonly string[]>;
}

/**
 * Samples `cluster.holders()` in the background until `stop()` (bounded by `maxSamples`), so a
 * test can show that at no sampled instant two namespaces held one VIP during a fault.
 */
export function watchHolders(
  cluster: LiveCluster,
  everyMs = 20,
  maxSamples = 3000,
  maxMs = 60_000,
): { stop(): Promise<HolderReport> } {
  const doubles: string[] = [];
  const seen = new Map<string, string[]>();
  const startedAt = Date.now();
  let samples = 0;
  let failures = 0;
  let running = true;
  const loop = (async () => {
    // Bounded in count and in time, so a test that failed before stop() cannot leave it running.
    while (running && samples < maxSamples && Date.now() - startedAt < maxMs) {
      const sample = await cluster.holders().catch(() => undefined);
      failures = sample ? 0 : failures + 1;
      if (failures >= 5) break; // the namespaces are gone: the cluster was destroyed
      if (sample) {
        samples += 1;
        for (const [vip, holders] of sample) {
          if (holders.length > 1)
            doubles.push(`+${Date.now() - startedAt} ms: ${vip} held by ${holders.join(" and ")}`);
          const list = seen.get(vip) ?? [];
          for (const h of holders) if (!list.includes(h)) list.push(h);
          seen.set(vip, list);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { samples, doubles, seen };
    },
  };
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
