/**
 * The trade-off of floatip's fastest settings: for each heartbeat interval h (the other timers
 * scaled from it with the ratios of the `fast` profile, see lib/scaled-timers.ts), a 3-node
 * cluster with 3 VIPs is measured twice:
 *   failover  the client-observed switch time of the first VIP (fault → first answer from
 *             another node; prober every 5 ms, 100 ms timeout, fresh connection each time)
 *             after SIGKILL of the owner's agent (its supervisor survives) and after the
 *             owner's eth0 goes down; median of `--trials`;
 *   load      every core saturated by busy loops for `--seconds`, nothing failing, so every
 *             new holder of a VIP (seen by `ip monitor address`) is a spurious failover.
 * Shorter intervals switch sooner and flap more under load; the table shows where.
 * Run: npm run bench:tradeoff -- [--intervals 5,10,20,35,50] [--trials 3] [--seconds 30] [--out FILE]
 */
import { isDeepStrictEqual } from "node:util";
import { loadConfig } from "../src/config/load.ts";
import type { Timers } from "../src/config/types.ts";
import { type LiveCluster, startCluster, waitSettled } from "../src/lab/cluster.ts";
import { positiveInteger, readOptions, sleep } from "./lib/args.ts";
import { startCpuLoad } from "./lib/cpu-load.ts";
import { type HolderChange, monitorHolders } from "./lib/holder-monitor.ts";
import { printHeader } from "./lib/machine.ts";
import { measureOutage, now, startProber } from "./lib/prober.ts";
import { writeResult } from "./lib/results.ts";
import { scaledTimers, timerProblems, timersYaml } from "./lib/scaled-timers.ts";
import { formatTable, ms, type Summary, summarize } from "./lib/stats.ts";

const usage =
  "usage: bench/tradeoff.ts [--intervals 5,10,20,35,50] [--trials 3] [--seconds 30] [--out FILE]";
const options = readOptions(usage, {
  intervals: { default: "5,10,20,35,50" },
  trials: { default: "3" },
  seconds: { default: "30" },
  out: { default: "" },
});
const trials = positiveInteger("trials", options.trials!, usage);
const seconds = positiveInteger("seconds", options.seconds!, usage);
const intervals = options
  .intervals!.split(",")
  .filter(Boolean)
  .map((text) => positiveInteger("intervals", text, usage));
if (intervals.length === 0) {
  console.error(`--intervals needs at least one heartbeat interval in ms\n${usage}`);
  process.exit(2);
}
// Every set is checked before any namespace exists, so a bad interval costs nothing.
for (const h of intervals) {
  const problems = timerProblems(scaledTimers(h));
  if (problems) {
    console.error(`timers for heartbeat interval ${h} ms are invalid:\n${problems}\n${usage}`);
    process.exit(2);
  }
}

const faults = ["sigkill", "link-down"] as const;
type Fault = (typeof faults)[number];
const switchTimeoutMs = 20_000;
const settleTimeoutMs = 30_000;

/**
 * The VIPs did not each keep one holder for a second, even idle: at this interval the cluster
 * flaps by itself, so further trials would only wait out the same timeout again.
 */
class NotSettledError extends Error {
  readonly code = "not_settled";
}

async function settle(cluster: LiveCluster): Promise<Map<string, string>> {
  try {
    return await waitSettled(cluster, settleTimeoutMs, 1000);
  } catch (error) {
    // The first line names the VIP and its holders; the node logs after it are kept out of the table.
    throw new NotSettledError((error as Error).message.split("\n")[0] ?? "not settled");
  }
}

interface Trial {
  readonly fault: Fault;
  readonly trial: number;
  readonly oldOwner: string;
  readonly newOwner: string | undefined;
  readonly switchMs: number | undefined;
  readonly outageMs: number | undefined;
  readonly failedRequests: number;
  readonly error?: string;
}

interface Point {
  readonly heartbeatIntervalMs: number;
  readonly timers: Timers;
  readonly trials: Trial[];
  /** The last lines of each agent's log when the cluster did not settle idle. */
  readonly logTail?: Record<string, string>;
  readonly switch: Record<Fault, Summary>;
  readonly outage: Record<Fault, Summary>;
  readonly load: {
    readonly seconds: number;
    readonly holderChanges: number;
    readonly releases: number;
    readonly perMinute: number;
    readonly changes: HolderChange[];
    /** False when the VIPs did not each keep one holder for 1 s before the load started. */
    readonly settled: boolean;
    readonly unsettled?: string;
  };
}

/** Kills the owner's agent (the supervisor removes its VIPs) or takes its link down. */
async function fault(cluster: LiveCluster, id: string, kind: Fault): Promise<number | undefined> {
  if (kind === "link-down") {
    await cluster.topology.setLink(id, "down");
    return undefined;
  }
  const agent = cluster.agentPid(id);
  if (agent === undefined) throw new Error(`no agent process found for ${id}`);
  process.kill(agent, "SIGKILL");
  return agent;
}

async function restore(cluster: LiveCluster, id: string, kind: Fault, killed?: number) {
  if (kind === "link-down") return cluster.topology.setLink(id, "up");
  // The supervisor starts a new agent by itself; wait for it so the next trial has three.
  for (let i = 0; i < 100; i += 1) {
    const pid = cluster.agentPid(id);
    if (pid !== undefined && pid !== killed) return;
    await sleep(50);
  }
}

async function runTrial(cluster: LiveCluster, kind: Fault, trial: number): Promise<Trial> {
  const vip = cluster.vipAddresses[0]!;
  const oldOwner = (await settle(cluster)).get(vip)!;
  const prober = startProber(cluster.topology, {
    host: "client",
    vip,
    intervalMs: 5,
    timeoutMs: 100,
    maxMs: 40_000,
  });
  let killed: number | undefined;
  let faulted = false;
  try {
    const warm = await prober.until((r) => r.filter((x) => x.who === oldOwner).length >= 20, 5000);
    if (!warm)
      throw new Error(`the client got no steady answers from ${oldOwner} before the fault`);
    const faultAt = now();
    killed = await fault(cluster, oldOwner, kind);
    faulted = true;
    const switched = await prober.until(
      (r) => measureOutage(r, faultAt, oldOwner).firstNewAnswerAt !== undefined,
      switchTimeoutMs,
    );
    await sleep(100);
    await prober.stop();
    const outage = measureOutage(prober.records, faultAt, oldOwner);
    return {
      fault: kind,
      trial,
      oldOwner,
      newOwner: outage.newOwner,
      switchMs: outage.switchMs,
      outageMs: outage.outageMs,
      failedRequests: outage.failedRequests,
      ...(switched ? {} : { error: `no other node answered within ${switchTimeoutMs} ms` }),
    };
  } finally {
    await prober.stop();
    if (faulted) await restore(cluster, oldOwner, kind, killed);
    // Let the node rejoin (rise rounds) before the next fault; waitSettled then checks it.
    await sleep(500);
  }
}

/**
 * Counts holder changes under full CPU load. A cluster that never settled idle is measured all
 * the same (its count is its own flapping plus what the load adds) and marked `settled: false`.
 */
async function underLoad(cluster: LiveCluster, settledBefore: boolean): Promise<Point["load"]> {
  let unsettled: string | undefined;
  if (settledBefore) {
    unsettled = await settle(cluster).then(
      () => undefined,
      (error: Error) => error.message,
    );
  } else {
    unsettled = "the cluster never settled idle";
  }
  const monitor = await monitorHolders(cluster);
  const load = startCpuLoad(seconds + 10);
  let counted: ReturnType<typeof monitor.stop> | undefined;
  try {
    await sleep(seconds * 1000);
  } finally {
    await load.stop();
    counted = monitor.stop();
  }
  return {
    seconds,
    holderChanges: counted.changes.length,
    releases: counted.releases,
    perMinute: (counted.changes.length * 60) / seconds,
    changes: counted.changes,
    settled: unsettled === undefined,
    ...(unsettled === undefined ? {} : { unsettled }),
  };
}

async function runPoint(h: number): Promise<Point> {
  const timers = scaledTimers(h);
  const cluster = await startCluster({
    prefix: "fipto-",
    profile: "fast",
    vips: [{ host: 200 }, { host: 201 }, { host: 202 }],
    extraYaml: timersYaml(timers),
    startAgents: false,
  });
  try {
    // The loader must read back exactly the derived set: a silent fallback would mislabel a row.
    const loaded = loadConfig(cluster.configPath).timers;
    if (!isDeepStrictEqual({ ...loaded }, { ...timers })) {
      throw new Error(`the cluster config does not carry the timers for h = ${h} ms`);
    }
    for (const id of cluster.ids) cluster.startAgent(id);
    const done: Trial[] = [];
    let notSettled: string | undefined;
    let logTail: Record<string, string> | undefined;
    for (let trial = 1; trial <= trials; trial += 1) {
      for (const kind of faults) {
        const skipped = notSettled === undefined ? undefined : `skipped: ${notSettled}`;
        const run = skipped ? Promise.reject(new Error(skipped)) : runTrial(cluster, kind, trial);
        const result = await run.catch((error: Error): Trial => {
          if (error instanceof NotSettledError) {
            notSettled = error.message;
            // Why it flaps is in the agents' own words; kept in the JSON result, not the table.
            logTail = Object.fromEntries(
              cluster.ids.map((id) => [id, cluster.logs(id).slice(-3000)]),
            );
          }
          return {
            fault: kind,
            trial,
            oldOwner: "?",
            newOwner: undefined,
            switchMs: undefined,
            outageMs: undefined,
            failedRequests: 0,
            error: error.message,
          };
        });
        done.push(result);
        console.log(
          `h ${h} ms trial ${trial} ${kind}: ${result.oldOwner} -> ${result.newOwner ?? "?"} switch ${ms(result.switchMs)} ms, outage ${ms(result.outageMs)} ms${result.error ? ` (${result.error})` : ""}`,
        );
      }
    }
    const figures = (kind: Fault, key: "switchMs" | "outageMs") =>
      summarize(
        done.flatMap((t) =>
          t.fault === kind && !t.error && t[key] !== undefined ? [t[key] as number] : [],
        ),
      );
    const load = await underLoad(cluster, notSettled === undefined);
    console.log(
      `h ${h} ms under load: ${load.holderChanges} holder changes in ${seconds} s${load.unsettled ? ` (not settled before the load: ${load.unsettled})` : ""}`,
    );
    return {
      heartbeatIntervalMs: h,
      timers,
      trials: done,
      switch: {
        sigkill: figures("sigkill", "switchMs"),
        "link-down": figures("link-down", "switchMs"),
      },
      outage: {
        sigkill: figures("sigkill", "outageMs"),
        "link-down": figures("link-down", "outageMs"),
      },
      load,
      ...(logTail ? { logTail } : {}),
    };
  } finally {
    await cluster.destroy();
  }
}

async function main(): Promise<number> {
  const machine = printHeader("trade-off: heartbeat interval vs failover vs spurious failovers");
  console.log(
    `intervals: ${intervals.join(", ")} ms; ${trials} trial(s) per fault; ${seconds} s of full CPU load per interval`,
  );
  console.log(
    "timers: election 5h, lease 10h, suspect 3h, 2 faults in 20h, probe max(5, h), margin max(2, h/2), garp h",
  );
  console.log(
    "switch = fault → first answer from another node (probe every 5 ms, 100 ms timeout)\n",
  );
  const points: Point[] = [];
  for (const h of intervals) points.push(await runPoint(h));
  console.log("");
  const cell = (s: Summary, kind: Fault, p: Point) => {
    const all = p.trials.filter((t) => t.fault === kind).length;
    return `${ms(s.medianMs)} (${s.count}/${all})`;
  };
  console.log(
    formatTable(
      [
        "interval ms",
        "election/lease ms",
        "switch p50 sigkill ms",
        "switch p50 link-down ms",
        "spurious/min under load",
      ],
      points.map((p) => [
        String(p.heartbeatIntervalMs),
        `${p.timers.electionTimeoutMs}/${p.timers.leaseMs}`,
        cell(p.switch.sigkill, "sigkill", p),
        cell(p.switch["link-down"], "link-down", p),
        `${p.load.perMinute.toFixed(1)}${p.load.settled ? "" : " (never settled)"}`,
      ]),
    ),
  );
  console.log("(n/m): trials that switched / trials planned");
  if (points.some((p) => !p.load.settled)) {
    console.log(
      "never settled: the VIPs did not each keep one holder for 1 s even before the load; the count is the cluster's own flapping plus the load's",
    );
  }
  const path = writeResult(
    "tradeoff",
    { machine, intervals, trials, seconds, points },
    options.out || undefined,
  );
  console.log(`results: ${path}`);
  const measured = points.some((p) => p.trials.some((t) => !t.error) || p.load.settled);
  return measured ? 0 : 1;
}

process.exitCode = await main();
