/**
 * What fits this machine for real: clusters of 3 to 15 agents in network namespaces, each
 * under its supervisor, with `--vips-per-node` VIPs per node (round-robin), `lan` timers.
 * Per cluster size:
 *   settle              from start until every VIP has one holder
 *   CPU, RSS per node   all processes of each node's tree over a `--seconds` idle window
 *                       (mean and the busiest node, which is the coordinator)
 *   datagrams/s         sent plus received per node over the window, from each agent's
 *                       transport counters (mean, and the coordinator)
 *   moves, elections    VIP holder changes (`ip monitor address` in every namespace) and
 *                       coordinator terms during the idle window: both should be 0
 *   failover            SIGKILL of a VIP owner that is not the coordinator, until every one of
 *                       its VIPs has a new holder (from the same monitors)
 * Each size runs once per `--heartbeats` fan-out (all: every node heartbeats every other;
 * coordinator: followers heartbeat the coordinator only).
 * Run: npm run bench:scale-real -- [--nodes 3,5,9,15] [--vips-per-node 10] [--seconds 30]
 *        [--heartbeats all,coordinator] [--out FILE]
 * Needs root (namespaces). Everything it starts is stopped by PID, also on failure.
 */
import { rmSync } from "node:fs";
import { allLogs, type LiveCluster, startCluster, waitSettled } from "../src/lab/cluster.ts";
import { positiveInteger, readOptions, sleep } from "./lib/args.ts";
import { monitorHolders } from "./lib/holder-monitor.ts";
import { printHeader } from "./lib/machine.ts";
import { atExit, installCleanup, parentMap } from "./lib/owned.ts";
import { now } from "./lib/prober.ts";
import { cpuPercent, treeMemory, treeTimes } from "./lib/proc-usage.ts";
import { writeResult } from "./lib/results.ts";
import { formatTable } from "./lib/stats.ts";

const usage =
  "usage: bench/scale-real.ts [--nodes 3,5,9,15] [--vips-per-node 10] [--seconds 30] [--heartbeats all,coordinator] [--out FILE]";
const options = readOptions(usage, {
  nodes: { default: "3,5,9,15" },
  "vips-per-node": { default: "10" },
  seconds: { default: "30" },
  heartbeats: { default: "all,coordinator" },
  out: { default: "" },
});
const sizes = String(options.nodes)
  .split(",")
  .map((n) => positiveInteger("--nodes", n, usage));
const perNode = positiveInteger("--vips-per-node", String(options["vips-per-node"]), usage);
const seconds = positiveInteger("--seconds", String(options.seconds), usage);
const fanouts = String(options.heartbeats)
  .split(",")
  .map((text) => text.trim());
if (fanouts.some((f) => f !== "all" && f !== "coordinator")) {
  console.error(`${usage}\n--heartbeats: each of all, coordinator`);
  process.exit(2);
}
if (sizes.some((n) => n > 40) || sizes.some((n) => n * perNode > 150)) {
  console.error(`${usage}\nat most 40 nodes and 150 VIPs in all (one /24 for nodes and VIPs)`);
  process.exit(2);
}

interface AgentStatusJson {
  term: number;
  role: string;
  transport: { sent: number; received: number };
}

interface Row {
  heartbeats: string;
  nodes: number;
  vips: number;
  outcome: "ok" | "error";
  reason?: string;
  settleMs?: number;
  /** The coordinator's term once settled: elections held while every agent started. */
  startTerm?: number;
  cpuMean?: number;
  cpuMax?: number;
  rssMean?: number;
  datagramsMean?: number;
  datagramsCoordinator?: number;
  moves?: number;
  elections?: number;
  failoverMs?: number;
  failoverVips?: number;
}

const progress = (text: string) => console.error(`[scale-real] ${text}`);

async function statusOf(cluster: LiveCluster, id: string): Promise<AgentStatusJson> {
  const { stdout } = await cluster.topology.exec(
    id,
    "curl",
    ["-s", "-m", "3", "http://127.0.0.1:7480/v1/status"],
    5000,
  );
  return JSON.parse(stdout) as AgentStatusJson;
}

async function measure(nodes: number, heartbeats: string): Promise<Row> {
  const vipCount = nodes * perNode;
  const startedAt = Date.now();
  let cluster: LiveCluster | undefined;
  let forgetDir = () => {};
  try {
    cluster = await startCluster({
      prefix: "fipsr-",
      nodes,
      weights: Array.from({ length: nodes }, () => 100),
      vips: Array.from({ length: vipCount }, (_, i) => ({ host: 100 + i })),
      ...(heartbeats === "all" ? {} : { extraYaml: `heartbeats: ${heartbeats}` }),
    });
    const c = cluster;
    // The namespaces and agents go with destroy() (or the topology's own exit handler); the
    // cluster's directory at exit too, on SIGINT.
    forgetDir = atExit(() => rmSync(c.dir, { recursive: true, force: true }));
    // Every agent of the cluster starts at once: on two cores a large cluster elects a few
    // times before it settles. Settled = one holder per VIP, unchanged for 5 s, each answering.
    for (let attempt = 1; ; attempt += 1) {
      try {
        await waitSettled(c, 120_000, 5000);
        break;
      } catch (error) {
        if (attempt >= 4 || Date.now() - startedAt > 240_000) throw error;
        progress(`${nodes} nodes: not settled yet (${(error as Error).message.split("\n")[0]})`);
      }
    }
    const settleMs = Date.now() - startedAt;
    const startTerm = (await statusOf(c, c.ids[0]!)).term;
    progress(`${nodes} nodes, ${vipCount} VIPs: settled after ${settleMs} ms`);
    await sleep(3000);
    const monitor = await monitorHolders(c);
    const before = await Promise.all(c.ids.map((id) => statusOf(c, id)));
    const roots = c.ids.map((id) => c.agents.get(id)!.pid!);
    let parents = parentMap();
    const first = roots.map((r) => treeTimes(r, parents));
    const rss: number[][] = roots.map(() => []);
    const windowStart = Date.now();
    for (let i = 0; i < seconds; i += 1) {
      await sleep(1000);
      parents = parentMap();
      roots.forEach((r, k) => {
        rss[k]!.push(treeMemory(r, parents).rssKb / 1024);
      });
    }
    parents = parentMap();
    const last = roots.map((r) => treeTimes(r, parents));
    const after = await Promise.all(c.ids.map((id) => statusOf(c, id)));
    const windowS = (Date.now() - windowStart) / 1000;
    const idle = monitor.stop();
    const cpu = first.map((f, k) => cpuPercent(f, last[k]!));
    const datagrams = after.map(
      (a, k) =>
        (a.transport.sent +
          a.transport.received -
          before[k]!.transport.sent -
          before[k]!.transport.received) /
        windowS,
    );
    const coordinatorIndex = after.findIndex((a) => a.role === "coordinator");
    const terms = new Set([...before, ...after].map((s) => s.term));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

    // Failover: SIGKILL an owner that is not the coordinator.
    const coordinator = c.ids[coordinatorIndex] ?? "";
    let victim: string | undefined;
    let victimVips: string[] = [];
    for (const id of c.ids) {
      if (id === coordinator) continue;
      const held = await c.heldVips(id);
      if (held.length > 0) {
        victim = id;
        victimVips = held;
        break;
      }
    }
    let failoverMs: number | undefined;
    if (victim) {
      const watch = await monitorHolders(c);
      const killedAt = now() - watch.startedAt;
      process.kill(c.agentPid(victim)!, "SIGKILL");
      const deadline = Date.now() + 20_000;
      let done = false;
      while (!done && Date.now() < deadline) {
        await sleep(100);
        const held = await Promise.all(
          c.ids.filter((id) => id !== victim).map((id) => c.heldVips(id)),
        );
        done = victimVips.every((v) => held.some((list) => list.includes(v)));
      }
      const seen = watch.stop();
      if (done) {
        const firstTaken = victimVips.map(
          (v) =>
            seen.changes.find((ch) => ch.vip === v && ch.node !== victim && ch.atMs >= killedAt)
              ?.atMs ?? Number.NaN,
        );
        failoverMs = Math.max(...firstTaken) - killedAt;
      }
    }
    return {
      heartbeats,
      nodes,
      vips: vipCount,
      outcome: "ok",
      settleMs,
      startTerm,
      cpuMean: mean(cpu),
      cpuMax: Math.max(...cpu),
      rssMean: mean(rss.map((r) => mean(r))),
      datagramsMean: mean(datagrams),
      datagramsCoordinator: datagrams[coordinatorIndex] ?? Number.NaN,
      moves: idle.changes.length,
      elections: terms.size - 1,
      ...(failoverMs !== undefined ? { failoverMs } : {}),
      failoverVips: victimVips.length,
    };
  } catch (error) {
    const logs = cluster ? allLogs(cluster).slice(-3000) : "";
    progress(`${nodes} nodes: ${(error as Error).message}\n${logs}`);
    return {
      heartbeats,
      nodes,
      vips: vipCount,
      outcome: "error",
      reason: (error as Error).message.split("\n")[0]!,
    };
  } finally {
    await cluster?.destroy().catch((e: Error) => progress(`cleanup: ${e.message}`));
    forgetDir();
  }
}

async function main(): Promise<number> {
  installCleanup();
  const machine = printHeader("real clusters in namespaces: what fits this machine");
  console.log(
    `${seconds} s idle window per size, ${perNode} VIPs per node, lan timers, sizes: ${sizes.join(", ")}\n`,
  );
  const rows: Row[] = [];
  for (const n of sizes) {
    for (const heartbeats of fanouts) {
      progress(`${n} nodes, heartbeats ${heartbeats}: starting`);
      rows.push(await measure(n, heartbeats));
    }
  }
  const fmt = (v: number | undefined, digits = 0) => (v === undefined ? "-" : v.toFixed(digits));
  console.log(
    formatTable(
      [
        "nodes",
        "VIPs",
        "heartbeats",
        "settle s (term)",
        "CPU % per node (mean / max)",
        "RSS MB per node",
        "datagrams/s per node (mean / coordinator)",
        "moves / elections idle",
        "failover (all VIPs of the killed node)",
      ],
      rows.map((r) =>
        r.outcome === "ok"
          ? [
              String(r.nodes),
              String(r.vips),
              r.heartbeats,
              `${fmt((r.settleMs ?? 0) / 1000, 1)} (${r.startTerm})`,
              `${fmt(r.cpuMean, 2)} / ${fmt(r.cpuMax, 2)}`,
              fmt(r.rssMean, 1),
              `${fmt(r.datagramsMean)} / ${fmt(r.datagramsCoordinator)}`,
              `${r.moves} / ${r.elections}`,
              r.failoverMs === undefined
                ? "not held again in 20 s"
                : `${fmt(r.failoverMs)} ms (${r.failoverVips} VIPs)`,
            ]
          : [
              String(r.nodes),
              String(r.vips),
              r.heartbeats,
              "-",
              "-",
              "-",
              "-",
              "-",
              `error: ${r.reason}`,
            ],
      ),
    ),
  );
  writeResult("scale-real", { machine, seconds, perNode, rows }, String(options.out) || undefined);
  return rows.every((r) => r.outcome === "ok") ? 0 : 1;
}

process.exitCode = await main();
