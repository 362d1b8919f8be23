/**
 * Stability under load, floatip against keepalived: for each contender and each load, a fresh
 * 3-node namespace cluster (plus a client namespace on the bridge) with one VIP per node runs
 * for `--seconds` while the load runs beside it. Nothing fails, so every change of a VIP's
 * holder is spurious. Contenders:
 *   lan              floatip, default profile
 *   lan-halved       floatip with the 50 ms timers `lan` had until 2026-12-06, halved: { heartbeat
 *                    25, election 100, lease 250, suspect 100 ms, 3 faults }
 *   fast             floatip fast profile
 *   keepalived-1s    keepalived, VRRPv2, advert_int 1
 *   keepalived-10ms  keepalived, VRRPv3, advert_int 0.01
 * (floatip: VIP k preferred on node k; keepalived: instance k, node k priority 150, preempt.)
 * Loads (lib/loads.ts): none, cpu (4 hogs per core), fork (fork and exec storm), memory
 * (2 × 25% of MemAvailable), flood (20,000/s forged datagrams per node from the client:
 * floatip's heartbeat port, or VRRP adverts to 224.0.0.18 for keepalived), capabilities
 * (floatip only: traffic every 100 ms, a relay under wrk, a storage request stream), suite (the
 * namespace tests of a fresh clone of this repository).
 * Measured over the window, from outside (lib/holder-timeline.ts, `ip monitor address` in each
 * node namespace): holder changes (per minute), time with no holder and with two holders
 * (summed over the VIPs). Elections: floatip, the rise of the highest term in GET /v1/status
 * from before to after the window (every election attempt takes a new term); keepalived, the
 * "Entering MASTER STATE" lines it logged in the window.
 * Run: npm run bench:load -- [--seconds 300] [--contenders a,b] [--loads a,b] [--flood-pps 20000]
 *        [--prefix fipld-] [--out FILE]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config/load.ts";
import { lan50Timers } from "../src/config/profiles.ts";
import { type LiveCluster, startCluster } from "../src/lab/cluster.ts";
import { createTopology, subnetFor, type Topology } from "../src/lab/topology.ts";
import { positiveInteger, readOptions, sleep } from "./lib/args.ts";
import { type HolderStats, startHolderTimeline, waitOneHolderEach } from "./lib/holder-timeline.ts";
import { ensureKeepalived } from "./lib/keepalived.ts";
import { firstRouterId, type KeepalivedGroup, startKeepalivedVips } from "./lib/keepalived-vips.ts";
import {
  type CapabilityPlan,
  capabilitiesYaml,
  ensureStressNg,
  prepareSuite,
  pythonPath,
  type RunningLoad,
  startCapabilityLoad,
  startCpuHogs,
  startForkStorm,
  startMemoryPressure,
  startUdpFlood,
  startVrrpFlood,
  waitCapabilities,
} from "./lib/loads.ts";
import { printHeader } from "./lib/machine.ts";
import { atExit, installCleanup, parentMap } from "./lib/owned.ts";
import { cpuPercent, type TreeTimes, treeTimes } from "./lib/proc-usage.ts";
import { ensureRelayTools } from "./lib/relay-tools.ts";
import { writeResult } from "./lib/results.ts";
import { timersYaml } from "./lib/scaled-timers.ts";
import { formatTable } from "./lib/stats.ts";

const contenderNames = ["lan", "lan-halved", "fast", "keepalived-1s", "keepalived-10ms"] as const;
const loadNames = ["none", "cpu", "fork", "memory", "flood", "capabilities", "suite"] as const;
type ContenderName = (typeof contenderNames)[number];
type LoadName = (typeof loadNames)[number];

const usage = `usage: bench/load.ts [--seconds 300] [--contenders ${contenderNames.join(",")}] [--loads ${loadNames.join(",")}] [--flood-pps 20000] [--prefix fipld-] [--out FILE]`;
const options = readOptions(usage, {
  seconds: { default: "300" },
  contenders: { default: contenderNames.join(",") },
  loads: { default: loadNames.join(",") },
  "flood-pps": { default: "20000" },
  prefix: { default: "fipld-" },
  out: { default: "" },
});
const seconds = positiveInteger("seconds", options.seconds!, usage);
const floodPps = positiveInteger("flood-pps", options["flood-pps"]!, usage);
const prefix = options.prefix!;
if (!/^[a-z0-9][a-z0-9-]{1,12}$/.test(prefix)) {
  console.error(`--prefix must be 2-13 lower-case letters, digits or '-'\n${usage}`);
  process.exit(2);
}
const pick = <T extends string>(what: string, text: string, allowed: readonly T[]): T[] => {
  const chosen = text.split(",").filter(Boolean);
  for (const c of chosen) {
    if (!allowed.includes(c as T)) {
      console.error(
        `unknown ${what} ${JSON.stringify(c)}; choose from ${allowed.join(", ")}\n${usage}`,
      );
      process.exit(2);
    }
  }
  return chosen as T[];
};
const contenders = pick("contender", options.contenders!, contenderNames);
const loads = pick("load", options.loads!, loadNames);

const repoRoot = join(import.meta.dirname, "..");
const ids = ["n1", "n2", "n3"] as const;
const vipHosts = [200, 201, 202];
/** Loads end by themselves this long after the window even if nobody stops them. */
const loadMarginSeconds = 30;
const halvedTimers = timersYaml({
  ...lan50Timers,
  heartbeatIntervalMs: 25,
  electionTimeoutMs: 100,
  leaseMs: 250,
  suspectAfterMs: 100,
});

const progress = (text: string) =>
  console.error(`[${new Date().toISOString().slice(11, 19)}] ${text}`);

interface FloatipSnapshot {
  /** Per node; undefined when the API did not answer. */
  readonly status: Record<
    string,
    { term: number; incarnation: number; coordinator: string | null } | undefined
  >;
  readonly floodDropped: Record<string, number | undefined>;
  readonly udp: Record<string, Record<string, number> | undefined>;
}

interface Setup {
  readonly kind: "floatip" | "keepalived";
  readonly topology: Topology;
  readonly vips: readonly string[];
  readonly cluster?: LiveCluster;
  readonly group?: KeepalivedGroup;
  readonly vrrpVersion?: 2 | 3;
  /** The node's top process: floatip's supervisor, the keepalived parent. */
  root(id: string): number | undefined;
  /** floatip: events logged by the agents, with arrival time. */
  readonly events: Array<{ at: number; node: string; type: string; term?: number }>;
  logTail(): Record<string, string>;
  destroy(): Promise<void>;
}

interface Cell {
  readonly contender: ContenderName;
  readonly load: LoadName;
  readonly outcome: "ok" | "n/a" | "error";
  readonly reason?: string;
  readonly loadDescription?: string;
  readonly windowMs?: number;
  readonly holders?: HolderStats;
  readonly movesPerMinute?: number;
  /** CPU of each node's process tree over the window, % of one core. */
  readonly nodeCpuPercent?: Array<number | undefined>;
  readonly elections?: number;
  readonly electionSource?: string;
  readonly coordinatorChanges?: number;
  readonly memberFailed?: number;
  readonly agentRestarts?: number;
  readonly loadReport?: Record<string, unknown>;
  readonly extra?: Record<string, unknown>;
  readonly notes?: string[];
  readonly logs?: Record<string, string>;
}

const eventRe = /\b(coordinator-changed|member-failed|role-changed)\b/;

/** Counts the agents' own events from their log streams (the cluster helper keeps only a tail). */
function watchAgentEvents(cluster: LiveCluster, events: Setup["events"]): void {
  for (const id of cluster.ids) {
    const child = cluster.agents.get(id);
    let buffer = "";
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        const m = eventRe.exec(line);
        if (!m || events.length >= 1_000_000) continue;
        const term = /\bterm=(\d+)|"term":(\d+)/.exec(line);
        events.push({
          at: Date.now(),
          node: id,
          type: m[1]!,
          ...(term ? { term: Number(term[1] ?? term[2]) } : {}),
        });
      }
    };
    child?.stdout?.on("data", onData);
    child?.stderr?.on("data", onData);
  }
}

async function floatipSetup(
  contender: ContenderName,
  load: LoadName,
  plan?: CapabilityPlan,
): Promise<Setup> {
  const profile = contender === "fast" ? "fast" : "lan";
  const subnet = `198.18.${subnetFor(prefix)}`;
  const extra: string[] = [];
  if (contender === "lan-halved") extra.push(halvedTimers);
  if (load === "capabilities" && plan) {
    extra.push(capabilitiesYaml(plan, `${subnet}.11:8080`, `${subnet}.12:8080`));
  }
  const cluster = await startCluster({
    prefix,
    profile,
    vips: vipHosts.map((host, k) => ({ host, preferred: ids[k]! })),
    extraYaml: extra.join("\n"),
  });
  // The cluster's directory (config, key, state) goes with destroy(), or at exit on SIGINT.
  const forgetDir = atExit(() => rmSync(cluster.dir, { recursive: true, force: true }));
  const events: Setup["events"] = [];
  watchAgentEvents(cluster, events);
  return {
    kind: "floatip",
    topology: cluster.topology,
    vips: cluster.vipAddresses,
    cluster,
    events,
    root: (id) => cluster.agents.get(id)?.pid,
    logTail: () => Object.fromEntries(ids.map((id) => [id, cluster.logs(id).slice(-4000)])),
    async destroy() {
      try {
        await cluster.destroy();
      } finally {
        forgetDir();
      }
    },
  };
}

async function keepalivedSetup(contender: ContenderName, binary: string): Promise<Setup> {
  const topology = await createTopology({ prefix, hosts: [...ids, "client"] });
  try {
    const vips = vipHosts.map((h) => `${topology.subnet}.${h}`);
    const service = `require("node:http").createServer((q, s) => s.end(process.argv[1])).listen(8080, "0.0.0.0")`;
    for (const id of ids)
      topology.spawn(id, process.execPath, ["-e", service, id], { stdio: "ignore" });
    const group = startKeepalivedVips(
      binary,
      topology,
      ids,
      vips.map((v) => [`${v}/24`]),
      contender === "keepalived-10ms" ? "10ms" : "1s",
    );
    return {
      kind: "keepalived",
      topology,
      vips,
      group,
      vrrpVersion: contender === "keepalived-10ms" ? 3 : 2,
      events: [],
      root: (id) => group.pid(id),
      logTail: () => Object.fromEntries(ids.map((id) => [id, group.logTail(id).slice(-4000)])),
      async destroy() {
        try {
          await topology.destroy();
        } finally {
          group.cleanup();
        }
      },
    };
  } catch (error) {
    await topology.destroy();
    throw error;
  }
}

async function curlIn(topology: Topology, id: string, url: string): Promise<string | undefined> {
  try {
    return (await topology.exec(id, "curl", ["-s", "-m", "5", url], 8000)).stdout;
  } catch {
    return undefined;
  }
}

function parseUdpSnmp(text: string): Record<string, number> | undefined {
  const lines = text.split("\n").filter((l) => l.startsWith("Udp:"));
  if (lines.length < 2) return undefined;
  const names = lines[0]!.split(/\s+/).slice(1);
  const values = lines[1]!.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(names.map((n, i) => [n, values[i] ?? 0]));
}

async function floatipSnapshot(setup: Setup): Promise<FloatipSnapshot> {
  const { topology } = setup;
  const per = await Promise.all(
    ids.map(async (id) => {
      const [statusText, metrics, snmp] = await Promise.all([
        curlIn(topology, id, "http://127.0.0.1:7480/v1/status"),
        curlIn(topology, id, "http://127.0.0.1:7480/metrics"),
        topology
          .exec(id, "cat", ["/proc/net/snmp"])
          .then((r) => r.stdout)
          .catch(() => ""),
      ]);
      let status: FloatipSnapshot["status"][string];
      try {
        const s = JSON.parse(statusText ?? "") as {
          term: number;
          incarnation: number;
          coordinator: string | null;
        };
        status = { term: s.term, incarnation: s.incarnation, coordinator: s.coordinator };
      } catch {
        status = undefined;
      }
      // The flood comes from a non-member: the transport drops it on the source address
      // (`non-member`) before parsing; `bad-mac` counts forged datagrams from a member's
      // address. Both are what the flood cost the agent.
      let floodDropped: number | undefined;
      if (metrics !== undefined) {
        floodDropped = 0;
        for (const line of metrics.split("\n")) {
          if (
            line.startsWith("floatip_transport_dropped_total{") &&
            (line.includes('reason="bad-mac"') || line.includes('reason="non-member"'))
          ) {
            floodDropped += Number(line.trim().split(/\s+/).at(-1)) || 0;
          }
        }
      }
      return { status, floodDropped, udp: parseUdpSnmp(snmp) };
    }),
  );
  return {
    status: Object.fromEntries(ids.map((id, i) => [id, per[i]!.status])),
    floodDropped: Object.fromEntries(ids.map((id, i) => [id, per[i]!.floodDropped])),
    udp: Object.fromEntries(ids.map((id, i) => [id, per[i]!.udp])),
  };
}

/** CPU times of each node's process tree (undefined for a node without a process). */
function nodeTimes(setup: Setup): Array<TreeTimes | undefined> {
  const parents = parentMap();
  return ids.map((id) => {
    const root = setup.root(id);
    return root === undefined ? undefined : treeTimes(root, parents);
  });
}

interface Tools {
  keepalived?: string;
  stressNg?: string;
  python?: string;
  wrk?: string;
}

/** Why a load does not apply to a contender, or undefined when it does. */
function notApplicable(contender: ContenderName, load: LoadName, tools: Tools): string | undefined {
  const keepalived = contender.startsWith("keepalived");
  if (keepalived && !tools.keepalived) return "keepalived unavailable";
  if (keepalived && load === "capabilities") return "floatip's own capabilities";
  if (keepalived && load === "flood" && !tools.python) return "no python3 for the raw VRRP sender";
  return undefined;
}

async function startLoad(
  load: LoadName,
  setup: Setup,
  tools: Tools,
  plan?: CapabilityPlan,
  suite?: Awaited<ReturnType<typeof prepareSuite>>,
): Promise<RunningLoad> {
  const max = seconds + loadMarginSeconds;
  switch (load) {
    case "none":
      return { description: "nothing", stop: async () => ({}) };
    case "cpu":
      return startCpuHogs(tools.stressNg, max);
    case "fork":
      return startForkStorm(tools.stressNg, max);
    case "memory":
      return startMemoryPressure(tools.stressNg, max);
    case "flood": {
      if (setup.kind === "floatip") {
        const config = loadConfig(setup.cluster!.configPath);
        return startUdpFlood(setup.topology, "client", {
          cluster: config.cluster,
          members: config.nodes.map((n) => n.id),
          targets: config.nodes.map((n) => ({ address: n.address, port: n.port, to: n.id })),
          pps: floodPps,
          maxSeconds: max,
        });
      }
      return startVrrpFlood(setup.topology, "client", tools.python!, {
        source: setup.topology.host("client").address,
        version: setup.vrrpVersion ?? 2,
        routers: setup.vips.map((v, k) => [firstRouterId + k, v] as [number, string]),
        pps: floodPps,
        maxSeconds: max,
      });
    }
    case "capabilities":
      return startCapabilityLoad(setup.cluster!, plan!, tools.wrk, max);
    case "suite":
      // Bounded like the window (it starts just before it) and stopped at its end.
      return suite!.start(seconds + 3);
  }
}

async function runCell(contender: ContenderName, load: LoadName, tools: Tools): Promise<Cell> {
  let plan: CapabilityPlan | undefined;
  let workDir: string | undefined;
  let unregister: (() => void) | undefined;
  if (load === "capabilities") {
    workDir = mkdtempSync(join(tmpdir(), `${prefix}cap-`));
    const dir = workDir;
    unregister = atExit(() => rmSync(dir, { recursive: true, force: true }));
    const subnet = `198.18.${subnetFor(prefix)}`;
    plan = {
      relayVip: `${subnet}.${vipHosts[0]}`,
      relayPort: 9000,
      storageVip: `${subnet}.${vipHosts[2]}`,
      storagePort: 7490,
      volumesDir: join(workDir, "volumes"),
    };
  }
  let setup: Setup | undefined;
  let running: RunningLoad | undefined;
  let suite: Awaited<ReturnType<typeof prepareSuite>> | undefined;
  try {
    setup = contender.startsWith("keepalived")
      ? await keepalivedSetup(contender, tools.keepalived!)
      : await floatipSetup(contender, load, plan);
    const s = setup;
    const owners = await waitOneHolderEach(s.topology, ids, s.vips, 40_000, 2000);
    progress(
      `${contender}/${load}: settled (${[...owners].map(([v, o]) => `${v.split(".").at(-1)}→${o}`).join(", ")})`,
    );
    let before: FloatipSnapshot | undefined;
    if (s.kind === "floatip") {
      // The API starts listening a few seconds after the agent; the VIPs may settle sooner.
      const deadline = Date.now() + 20_000;
      for (;;) {
        before = await floatipSnapshot(s);
        if (Object.values(before.status).every((x) => x !== undefined) || Date.now() > deadline)
          break;
        await sleep(500);
      }
    }
    if (load === "capabilities") await waitCapabilities(s.cluster!, plan!);
    if (load === "suite") suite = await prepareSuite(repoRoot);
    const linesBefore = s.group?.lines() ?? 0;
    // The holders are read before the load starts (a loaded machine reads slowly); the window
    // starts there and the load at once after.
    const timeline = await startHolderTimeline(s.topology, ids, s.vips);
    const cpuBefore = nodeTimes(s);
    running = await startLoad(load, s, tools, plan, suite);
    suite = undefined;
    progress(`${contender}/${load}: load running: ${running.description}; measuring ${seconds} s`);
    await sleep(Math.max(0, timeline.startedAt + seconds * 1000 - Date.now()));
    const cpuAfter = nodeTimes(s);
    const holders = await timeline.stop();
    const windowEnd = timeline.startedAt + holders.windowMs;
    const loadReport = await running.stop();
    running = undefined;
    const nodeCpu = ids.map((_, k) =>
      cpuBefore[k] && cpuAfter[k] ? cpuPercent(cpuBefore[k]!, cpuAfter[k]!) : undefined,
    );
    const notes: string[] = [];
    if (holders.mismatches.length > 0)
      notes.push(
        `end state differs from the final read (flapping, or events missed): ${holders.mismatches.join("; ")}`,
      );
    const base = {
      contender,
      load,
      outcome: "ok" as const,
      loadDescription: loadReportDescription(load, s, loadReport),
      windowMs: holders.windowMs,
      holders,
      movesPerMinute: holders.holderChanges / (holders.windowMs / 60_000),
      nodeCpuPercent: nodeCpu,
      loadReport,
    };
    let cell: Cell;
    if (s.kind === "floatip") {
      await sleep(300);
      const after = await floatipSnapshot(s);
      const maxTerm = (snap: FloatipSnapshot) => {
        const terms = Object.values(snap.status).flatMap((x) => (x ? [x.term] : []));
        return terms.length === ids.length ? Math.max(...terms) : undefined;
      };
      const t0 = maxTerm(before!);
      const t1 = maxTerm(after);
      const inWindow = s.events.filter((e) => e.at >= timeline.startedAt && e.at <= windowEnd);
      const coordinatorTerms = new Set(
        inWindow.filter((e) => e.type === "coordinator-changed").map((e) => e.term),
      );
      const restarts = ids.filter(
        (id) =>
          before!.status[id] &&
          after.status[id] &&
          before!.status[id]!.incarnation !== after.status[id]!.incarnation,
      ).length;
      const floodDropped = ids.reduce(
        (sum, id) => sum + ((after.floodDropped[id] ?? 0) - (before!.floodDropped[id] ?? 0)),
        0,
      );
      const rcvbufErrors = ids.reduce(
        (sum, id) =>
          sum + ((after.udp[id]?.RcvbufErrors ?? 0) - (before!.udp[id]?.RcvbufErrors ?? 0)),
        0,
      );
      if (load === "flood") {
        const perNode = Math.round(floodDropped / (holders.windowMs / 1000) / ids.length);
        notes.push(
          `dropped by the agent (non-member or bad-mac) ${perNode}/s per node, kernel UDP rcvbuf drops ${rcvbufErrors}`,
        );
      }
      if (restarts > 0) notes.push(`agent restarts ${restarts}`);
      const memberFailed = inWindow.filter((e) => e.type === "member-failed").length;
      if (memberFailed > 0) notes.push(`member-failed ${memberFailed}`);
      cell = {
        ...base,
        ...(t0 !== undefined && t1 !== undefined
          ? { elections: t1 - t0, electionSource: "status term" }
          : {
              elections: coordinatorTerms.size,
              electionSource: "coordinator-changed terms in the logs (status unavailable)",
            }),
        coordinatorChanges: coordinatorTerms.size,
        memberFailed,
        agentRestarts: restarts,
        extra: {
          before,
          after,
          floodDropped,
          udpRcvbufErrors: rcvbufErrors,
          agentEvents: inWindow
            .slice(0, 500)
            .map((e) => ({ ...e, atMs: e.at - timeline.startedAt })),
        },
        notes,
      };
    } else {
      const masters = s.group!.masterTransitions(timeline.startedAt, windowEnd);
      const lines = s.group!.lines() - linesBefore;
      notes.push(`log lines ${lines}`);
      cell = {
        ...base,
        elections: masters,
        electionSource: "Entering MASTER STATE lines",
        extra: { logLines: lines },
        notes,
      };
    }
    if (holders.holderChanges > 0 || (cell.elections ?? 0) > 0)
      cell = { ...cell, logs: s.logTail() };
    return cell;
  } catch (error) {
    return {
      contender,
      load,
      outcome: "error",
      reason: (error as Error).message.split("\n")[0]!,
      ...(setup ? { logs: setup.logTail() } : {}),
    };
  } finally {
    if (running) await running.stop().catch(() => undefined);
    suite?.discard();
    if (setup) await setup.destroy().catch((e: Error) => progress(`cleanup: ${e.message}`));
    if (workDir) rmSync(workDir, { recursive: true, force: true });
    unregister?.();
  }
}

function loadReportDescription(
  load: LoadName,
  setup: Setup,
  report: Record<string, unknown>,
): string {
  if (load === "flood") {
    const sent = Number(report.sent ?? 0);
    const secs = Number(report.seconds ?? 0);
    const perTarget = setup.kind === "floatip" ? ids.length : 1;
    return secs > 0
      ? `offered ${Math.round(sent / secs / perTarget)}/s per node`
      : "offered: the flooder did not report";
  }
  return load;
}

function cpuCell(values: Array<number | undefined> | undefined): string {
  const known = (values ?? []).flatMap((v) => (v === undefined ? [] : [v]));
  if (known.length === 0) return "-";
  const mean = known.reduce((a, b) => a + b, 0) / known.length;
  return `${mean.toFixed(1)}/${Math.max(...known).toFixed(1)}`;
}

function fmt(value: number | undefined, digits = 0): string {
  return value === undefined ? "-" : value.toFixed(digits);
}

async function main(): Promise<number> {
  installCleanup();
  const machine = printHeader("stability under load: floatip vs keepalived");
  console.log(
    `${seconds} s per cell, 3 nodes, 3 VIPs (one per node); contenders: ${contenders.join(", ")}; loads: ${loads.join(", ")}\n`,
  );
  const tools: Tools = {};
  if (contenders.some((c) => c.startsWith("keepalived"))) {
    tools.keepalived = await ensureKeepalived();
    if (!tools.keepalived) console.log("note: keepalived unavailable; its rows are n/a\n");
  }
  if (loads.some((l) => ["cpu", "fork", "memory"].includes(l))) {
    tools.stressNg = await ensureStressNg();
    if (!tools.stressNg)
      console.log("note: stress-ng unavailable; busy loops and Node processes instead\n");
  }
  if (loads.includes("flood")) tools.python = pythonPath();
  if (loads.includes("capabilities")) {
    const missing = await ensureRelayTools();
    if (!missing.includes("wrk")) tools.wrk = "/usr/bin/wrk";
  }
  const cells: Cell[] = [];
  for (const contender of contenders) {
    for (const load of loads) {
      const reason = notApplicable(contender, load, tools);
      if (reason) {
        cells.push({ contender, load, outcome: "n/a", reason });
        continue;
      }
      progress(`${contender}/${load}: starting`);
      const cell = await runCell(contender, load, tools);
      cells.push(cell);
      progress(
        cell.outcome === "ok"
          ? `${contender}/${load}: ${cell.holders!.holderChanges} holder changes, ${cell.elections} elections, no holder ${cell.holders!.noHolderMs} ms, two holders ${cell.holders!.twoHoldersMs} ms`
          : `${contender}/${load}: ${cell.outcome}: ${cell.reason}`,
      );
    }
  }
  console.log(
    formatTable(
      [
        "contender",
        "load",
        "window s",
        "moves/min",
        "holder changes",
        "elections",
        "no holder ms",
        "two holders ms",
        "node cpu % (mean/max)",
        "notes",
      ],
      cells.map((c) =>
        c.outcome === "ok"
          ? [
              c.contender,
              c.load,
              fmt(c.windowMs! / 1000, 1),
              fmt(c.movesPerMinute, 2),
              String(c.holders!.holderChanges),
              fmt(c.elections),
              String(c.holders!.noHolderMs),
              String(c.holders!.twoHoldersMs),
              cpuCell(c.nodeCpuPercent),
              [c.load === "flood" ? c.loadDescription : "", ...(c.notes ?? [])]
                .filter(Boolean)
                .join("; "),
            ]
          : [c.contender, c.load, "-", "-", "-", "-", "-", "-", "-", `${c.outcome}: ${c.reason}`],
      ),
    ),
  );
  console.log(
    "\nmoves/min = holder changes per minute (a node starting to hold a VIP); no holder / two holders = summed over the 3 VIPs.",
  );
  console.log(
    "node cpu % = CPU of each node's process tree (floatip: supervisor, agent, services; keepalived: parent and VRRP child) over the window, % of one core.",
  );
  console.log(
    "elections: floatip = rise of the highest term in /v1/status over the window; keepalived = 'Entering MASTER STATE' lines.",
  );
  for (const c of cells) {
    if (
      c.outcome === "ok" &&
      c.contender === "lan" &&
      c.load === "none" &&
      c.holders!.holderChanges > 0
    ) {
      console.log(
        `note: lan without load had ${c.holders!.holderChanges} holder changes (expected 0)`,
      );
    }
  }
  const path = writeResult(
    "load",
    { machine, seconds, floodPps, contenders, loads, cells },
    options.out || undefined,
  );
  console.log(`results: ${path}`);
  return cells.some((c) => c.outcome === "error") ? 1 : 0;
}

process.exitCode = await main();
