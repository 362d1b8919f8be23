/**
 * Where the embedded control plane ends: the real core of every node in the simulator (no
 * model of it), for clusters of 3 to 63 nodes with 10 and 10,000 VIPs, `lan` timers.
 *   datagrams/s and bytes/s per node   every datagram the cores send in a steady window,
 *                                      each sized by the real wire codec (header, JSON body,
 *                                      HMAC); the busiest node (the coordinator) and the mean
 *   over the wire limit                datagrams the codec refuses (over 60 KiB): state that
 *                                      cannot be sent at all at that size
 *   coordinator CPU per round          wall time of the coordinator core's steps over the
 *                                      window, per heartbeat round (this machine, one core)
 *   failover p50 / p99                 virtual ms from SIGKILL-like crash of a VIP owner (not
 *                                      the coordinator) until every one of its VIPs is held
 *                                      again, over `--trials` seeds
 *   violations                         invariant violations of the simulator's checkers
 * Each configuration runs with every `--heartbeats` fan-out: `all` (every node to every
 * other) and `coordinator` (followers to the coordinator only).
 * Run: npm run bench:scale -- [--nodes 3,5,7,9,15,31,63] [--vips 10,10000] [--trials 5]
 *        [--heartbeats all,coordinator] [--window 2000] [--budget 120] [--out FILE]
 * A configuration whose simulation takes longer than `--budget` seconds of wall time is
 * reported as such (the core's own cost makes the simulation slow at that size).
 */
import { randomBytes } from "node:crypto";
import { encodeDatagram } from "../src/cluster/codec.ts";
import { profiles } from "../src/config/profiles.ts";
import type { CoreNode } from "../src/core/node.ts";
import type { HeartbeatFanout, Input, Message, StepOutput } from "../src/core/types.ts";
import { Simulator } from "../src/sim/simulator.ts";
import { percentile } from "../src/sim/swarm.ts";
import { positiveInteger, readOptions } from "./lib/args.ts";
import { printHeader } from "./lib/machine.ts";
import { writeResult } from "./lib/results.ts";
import { formatTable } from "./lib/stats.ts";

const usage =
  "usage: bench/scale.ts [--nodes 3,5,7,9,15,31,63] [--vips 10,10000] [--trials 5] [--heartbeats all,coordinator] [--window 2000] [--budget 120] [--out FILE]";
const options = readOptions(usage, {
  nodes: { default: "3,5,7,9,15,31,63" },
  vips: { default: "10,10000" },
  trials: { default: "5" },
  heartbeats: { default: "all,coordinator" },
  window: { default: "2000" },
  budget: { default: "120" },
  out: { default: "" },
});
const list = (name: string) =>
  options[name]!.split(",").map((text) => positiveInteger(name, text.trim(), usage));
const nodeCounts = list("nodes");
const vipCounts = list("vips");
const trials = positiveInteger("trials", options.trials!, usage);
const fanouts = options.heartbeats!.split(",").map((text): HeartbeatFanout => {
  const mode = text.trim();
  if (mode !== "all" && mode !== "coordinator") {
    console.error(`--heartbeats: "${mode}" is neither all nor coordinator\n${usage}`);
    process.exit(2);
  }
  return mode;
});
const windowMs = positiveInteger("window", options.window!, usage);
const budgetMs = positiveInteger("budget", options.budget!, usage) * 1000;
const timers = profiles.lan;
const key = randomBytes(32);

interface Traffic {
  datagrams: number;
  bytes: number;
  oversize: number;
}

interface Row {
  heartbeats: HeartbeatFanout;
  nodes: number;
  vips: number;
  settledMs: number | undefined;
  coordinator: Traffic;
  mean: Traffic;
  coordinatorCpuPerRoundMs: number;
  failoverP50: number;
  failoverP99: number;
  failoverMissing: number;
  violations: number;
  wallSeconds: number;
  note: string;
}

/** Wire size of one datagram of `message` from `from` to `to`, by the real codec. */
function wireBytes(from: string, to: string, message: Message): number | undefined {
  try {
    return encodeDatagram(
      key,
      { cluster: "scale", from, to, incarnation: 1_800_000_000_000, seq: 1, echo: 1 },
      message,
    ).length;
  } catch {
    return undefined; // over DATAGRAM_BYTES_MAX: it could not be sent at all
  }
}

function cluster(
  seed: number,
  nodes: number,
  vips: number,
  heartbeats: HeartbeatFanout,
): Simulator {
  const ids = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const sim = new Simulator({
    seed,
    nodes: ids.map((id) => ({ id, weight: 1 })),
    vips: Array.from({ length: vips }, (_, i) => ({
      address: `198.18.${100 + Math.floor(i / 250)}.${(i % 250) + 1}`,
      policy: "round-robin" as const,
      failback: { mode: "never" as const },
    })),
    timers,
    heartbeats,
    delayMs: [1, 3],
    actionMs: [1, 4],
    addressLifetimeMs: 10_000,
  });
  sim.bootAll();
  return sim;
}

const coordinatorOf = (sim: Simulator) =>
  sim.nodes.find((n) => sim.core(n.id)?.role === "coordinator")?.id;

/** Runs until every VIP has exactly one holder, or `deadline`; the time it settled. */
function settle(sim: Simulator, deadlineMs: number, wallDeadline: number): number | undefined {
  const vips = sim.options.vips.length;
  while (sim.nowMs < deadlineMs && performance.now() < wallDeadline) {
    sim.runUntil(sim.nowMs + 100);
    let held = 0;
    for (let vip = 0; vip < vips; vip += 1) if (sim.holders(vip).length === 1) held += 1;
    if (held === vips && coordinatorOf(sim)) return sim.nowMs;
  }
  return undefined;
}

/** Wraps every live core's step: counts what it sends and times the coordinator's steps. */
function instrument(sim: Simulator, traffic: Map<string, Traffic>, cpu: { ms: number }) {
  const ids = sim.nodes.map((n) => n.id);
  const sizeCache = new Map<Message, number | undefined>();
  for (const id of ids) {
    const core = sim.core(id) as CoreNode;
    const step = core.step.bind(core);
    const t = { datagrams: 0, bytes: 0, oversize: 0 };
    traffic.set(id, t);
    core.step = (input: Input): StepOutput => {
      const started = performance.now();
      const output = step(input);
      if (core.role === "coordinator") cpu.ms += performance.now() - started;
      for (const effect of output.effects) {
        if (effect.type !== "send" && effect.type !== "broadcast") continue;
        const targets = effect.type === "send" ? [effect.to] : ids.filter((p) => p !== id);
        // Names are equally long here (n1..n63 differ by a byte at most): size it once.
        let size = sizeCache.get(effect.message);
        if (!sizeCache.has(effect.message)) {
          size = wireBytes(id, targets[0]!, effect.message);
          sizeCache.set(effect.message, size);
        }
        for (const _ of targets) {
          if (size === undefined) t.oversize += 1;
          else {
            t.datagrams += 1;
            t.bytes += size;
          }
        }
      }
      return output;
    };
  }
}

function measure(nodes: number, vips: number, heartbeats: HeartbeatFanout): Row {
  const started = performance.now();
  const wallDeadline = started + budgetMs;
  const note: string[] = [];
  // Steady state: traffic and coordinator CPU over the window.
  const sim = cluster(1, nodes, vips, heartbeats);
  const settledMs = settle(sim, 30_000, wallDeadline);
  const traffic = new Map<string, Traffic>();
  const cpu = { ms: 0 };
  let coordinator: Traffic = { datagrams: 0, bytes: 0, oversize: 0 };
  let mean: Traffic = { datagrams: 0, bytes: 0, oversize: 0 };
  let cpuPerRound = Number.NaN;
  if (settledMs === undefined) {
    note.push(performance.now() >= wallDeadline ? "over the wall-time budget" : "never settled");
  } else {
    instrument(sim, traffic, cpu);
    const coordinatorId = coordinatorOf(sim)!;
    sim.runUntil(sim.nowMs + windowMs);
    const perSecond = (t: Traffic): Traffic => ({
      datagrams: (t.datagrams * 1000) / windowMs,
      bytes: (t.bytes * 1000) / windowMs,
      oversize: (t.oversize * 1000) / windowMs,
    });
    coordinator = perSecond(traffic.get(coordinatorId)!);
    const all = [...traffic.values()];
    mean = perSecond({
      datagrams: all.reduce((a, t) => a + t.datagrams, 0) / all.length,
      bytes: all.reduce((a, t) => a + t.bytes, 0) / all.length,
      oversize: all.reduce((a, t) => a + t.oversize, 0) / all.length,
    });
    cpuPerRound = cpu.ms / (windowMs / timers.heartbeatIntervalMs);
  }
  let violations = sim.violations.length;
  // Failover: crash one owner that is not the coordinator, per seed.
  const failovers: number[] = [];
  let missing = 0;
  for (let trial = 0; trial < trials && settledMs !== undefined; trial += 1) {
    if (performance.now() >= wallDeadline) {
      note.push(`${trials - trial} failover trials skipped (budget)`);
      break;
    }
    const run = cluster(100 + trial, nodes, vips, heartbeats);
    if (settle(run, 30_000, wallDeadline) === undefined) {
      missing += 1;
      continue;
    }
    const coordinatorId = coordinatorOf(run);
    const owner = run.nodes.find((n) => n.id !== coordinatorId && n.addresses.size > 0);
    if (!owner) {
      missing += 1;
      continue;
    }
    const lost = [...owner.addresses];
    const crashedAt = run.nowMs;
    run.crash(owner.id);
    const limit = crashedAt + 20 * timers.leaseMs;
    let back: number | undefined;
    while (run.nowMs < limit && performance.now() < wallDeadline) {
      run.runUntil(run.nowMs + 10);
      if (lost.every((vip) => run.holder(vip) !== undefined)) {
        back = Math.max(
          ...lost.map(
            (vip) => run.holderHistory.get(vip)!.findLast(([, h]) => h !== undefined)![0],
          ),
        );
        break;
      }
    }
    if (back === undefined) missing += 1;
    else failovers.push(back - crashedAt);
    violations += run.violations.length;
  }
  if (missing > 0) note.push(`${missing} failovers not complete`);
  return {
    heartbeats,
    nodes,
    vips,
    settledMs,
    coordinator,
    mean,
    coordinatorCpuPerRoundMs: cpuPerRound,
    failoverP50: percentile(failovers, 50),
    failoverP99: percentile(failovers, 99),
    failoverMissing: missing,
    violations,
    wallSeconds: (performance.now() - started) / 1000,
    note: note.join("; "),
  };
}

const kb = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)}` : "-");
const num = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "-");

async function main(): Promise<void> {
  printHeader("scale: the embedded control plane by cluster size (simulated, real core)");
  console.log(
    `# lan timers (heartbeat ${timers.heartbeatIntervalMs} ms), window ${windowMs} ms, ${trials} failover trials, budget ${budgetMs / 1000} s per configuration`,
  );
  // Warm-up (JIT): the first configuration measured must not pay for compiling the core.
  measure(3, 10, "all");
  const rows: Row[] = [];
  for (const vips of vipCounts) {
    for (const nodes of nodeCounts) {
      for (const heartbeats of fanouts) {
        const row = measure(nodes, vips, heartbeats);
        rows.push(row);
        console.log(
          `# ${nodes} nodes, ${vips} VIPs, heartbeats ${heartbeats}: ${row.wallSeconds.toFixed(1)} s${row.note ? ` (${row.note})` : ""}`,
        );
      }
    }
  }
  const table = formatTable(
    [
      "nodes",
      "VIPs",
      "heartbeats",
      "coord dgrams/s",
      "coord KiB/s",
      "mean dgrams/s",
      "mean KiB/s",
      "over 60 KiB/s",
      "coord CPU ms/round",
      "failover p50/p99 ms",
      "violations",
      "note",
    ],
    rows.map((r) => [
      String(r.nodes),
      String(r.vips),
      r.heartbeats,
      num(r.coordinator.datagrams),
      kb(r.coordinator.bytes),
      num(r.mean.datagrams),
      kb(r.mean.bytes),
      num(r.coordinator.oversize + r.mean.oversize),
      num(r.coordinatorCpuPerRoundMs, 2),
      r.failoverP50 === undefined || Number.isNaN(r.failoverP50)
        ? "-"
        : `${r.failoverP50} / ${r.failoverP99}`,
      String(r.violations),
      r.note,
    ]),
  );
  console.log(table);
  const path = writeResult("scale", { rows }, options.out || undefined);
  console.log(`# result: ${path}`);
}

await main();
