/**
 * Idle cost, floatip against keepalived: CPU (% of one core) and memory per node of a 3-node
 * namespace cluster doing nothing but keeping its VIPs, with 10 and with 1,000 VIPs (in
 * 198.19.0.0/16 on eth0), over `--seconds` after the VIPs have settled.
 *   lan            floatip, default profile (round-robin placement); per node the supervisor,
 *                  the agent and every process they started
 *   lan-star       (on request) the same with `heartbeats: coordinator` (followers heartbeat the
 *                  coordinator only)
 *   lan-tick       (on request) `lan` with `receive: on-tick` (the control plane reads its
 *                  heartbeat socket on its own tick: a peer's datagram wakes nobody) and the
 *                  419 ms election timeout that on-tick needs with `lan`'s 100 ms heartbeats
 *                  (215 ms with 50 ms heartbeats, `lan`'s until 2026-12-06)
 *   lan-star-tick  (on request) `lan-tick` with `heartbeats: coordinator`: both ways of
 *                  cutting wake-ups at once (a follower reads one heartbeat per round and sends
 *                  one)
 *   lan-tick-scan10 (on request) `lan-tick` with `tickle: { scan_interval: 10s }`: what the
 *                  services process's one periodic job costs (each tickle scan reads
 *                  /proc/net/tcp and tcp6, and each read walks the kernel's whole
 *                  established-connection hash, with or without connections)
 *   lan-tick-100   (on request) `lan-tick-scan10` with election timeout 425 ms (four intervals
 *                  of grant window), lease 850 ms, suspicion 300 ms: the on-tick timers
 *                  measured on 2026-12-05, when `lan` still had 50 ms heartbeats
 *   lan-50         (on request) `lan` with the 50 ms timers it had until 2026-12-06
 *                  (`lan50Timers`: election timeout 150 ms, lease 400 ms, suspicion 150 ms
 *                  and 3 faults), twice the wake-ups of `lan`
 *   keepalived-1s  keepalived, VRRPv2, advert_int 1, one VRRP instance per node with the VIPs
 *                  spread over the instances (lib/keepalived-vips.ts); per node the keepalived
 *                  parent and its VRRP child
 *   node-floor     not an HA agent: one bare Node.js process per node that sends a 200-byte
 *                  UDP datagram to each of the two others every `lan` heartbeat interval
 *                  (100 ms; 50 ms until 2026-12-06: `lan`'s heartbeat pattern) and reads
 *                  theirs, nothing else. What Node.js itself costs at that
 *                  wake-up rate, measured beside floatip (no VIPs; run once, with the first
 *                  --vips count).
 *   node-floor-tick (on request) the same in Node.js reading on its own tick: the native
 *                  addon's socket (native/floatip_udp.c) drained and written from an interval
 *                  of `lan`'s heartbeat, what `receive: on-tick` costs Node.js before floatip's own work
 *   c-floor        not an HA agent: the same pattern in C (native/floatip_hbfloor.c: poll, one
 *                  read per wake-up, sendto), what the pattern itself costs this machine; the
 *                  distance from node-floor is what the runtime adds to each wake-up, the floor
 *                  of a heartbeat path taken out of JavaScript.
 *   c-floor-tick   (on request) the C pattern reading only on its own tick (`--receive
 *                  on-tick`: it never waits on the socket, so a peer's datagram wakes nobody;
 *                  what arrived is drained before each send). Prices reading routine heartbeats
 *                  once per interval instead of as they come.
 * CPU and memory come from /proc (lib/proc-usage.ts): CPU = utime + stime + cutime + cstime
 * summed over the node's process tree, end minus start; RSS = VmRSS summed over the tree (PSS
 * also shown: RSS counts shared pages once per process), sampled every second.
 * The window opens `--warmup` seconds (default 60) after the VIPs settled: steady state, not
 * start-up.
 * Run: npm run bench:idle -- [--seconds 30] [--warmup 60] [--vips 10,1000] [--contenders lan,keepalived-1s,node-floor,c-floor]
 *        [--prefix fipid-] [--out FILE]
 */
import { existsSync, rmSync } from "node:fs";
import { nativeAddonPath } from "../src/adapters/linux/native-addon.ts";
import { lan50Timers, profiles } from "../src/config/profiles.ts";
import { allLogs, startCluster } from "../src/lab/cluster.ts";
import { createTopology, type Topology } from "../src/lab/topology.ts";
import { positiveInteger, readOptions, sleep } from "./lib/args.ts";
import { waitOneHolderEach } from "./lib/holder-timeline.ts";
import { ensureKeepalived } from "./lib/keepalived.ts";
import { spreadVips, startKeepalivedVips } from "./lib/keepalived-vips.ts";
import { printHeader, waitForQuietMachine } from "./lib/machine.ts";
import { atExit, installCleanup, parentMap } from "./lib/owned.ts";
import { cpuPercent, cpuPercentByRole, treeMemory, treeTimes } from "./lib/proc-usage.ts";
import { writeResult } from "./lib/results.ts";
import { timersYaml } from "./lib/scaled-timers.ts";
import { formatTable } from "./lib/stats.ts";

const contenderNames = [
  "lan",
  "lan-star",
  "lan-tick",
  "lan-star-tick",
  "lan-tick-scan10",
  "lan-tick-100",
  "lan-50",
  "keepalived-1s",
  "node-floor",
  "node-floor-tick",
  "c-floor",
  "c-floor-tick",
] as const;
type ContenderName = (typeof contenderNames)[number];
/** Contenders that run the heartbeat pattern only: no VIPs, measured once. */
const floors: readonly ContenderName[] = [
  "node-floor",
  "node-floor-tick",
  "c-floor",
  "c-floor-tick",
];
/** The floors' datagram rate: `lan`'s heartbeat interval. */
const lanIntervalMs = profiles.lan.heartbeatIntervalMs;
const hbfloor = new URL("../native/build/Release/floatip-hbfloor", import.meta.url).pathname;

const usage =
  "usage: bench/idle.ts [--seconds 30] [--warmup 60] [--vips 10,1000] [--contenders lan,lan-star,lan-tick,lan-star-tick,lan-tick-scan10,lan-tick-100,lan-50,keepalived-1s,node-floor,node-floor-tick,c-floor,c-floor-tick] [--prefix fipid-] [--out FILE]";
const options = readOptions(usage, {
  seconds: { default: "30" },
  warmup: { default: "60" },
  vips: { default: "10,1000" },
  contenders: { default: "lan,keepalived-1s,node-floor,c-floor" }, // lan-star, lan-tick, lan-star-tick, lan-tick-scan10, lan-tick-100, lan-50, node-floor-tick, c-floor-tick on request
  prefix: { default: "fipid-" },
  out: { default: "" },
});
const seconds = positiveInteger("seconds", options.seconds!, usage);
const vipCounts = options
  .vips!.split(",")
  .filter(Boolean)
  .map((v) => positiveInteger("vips", v, usage));
if (vipCounts.some((n) => n > 10_000)) {
  console.error(`--vips: at most 10000\n${usage}`);
  process.exit(2);
}
const contenders = options.contenders!.split(",").filter(Boolean) as ContenderName[];
for (const c of contenders) {
  if (!contenderNames.includes(c)) {
    console.error(`unknown contender ${JSON.stringify(c)}\n${usage}`);
    process.exit(2);
  }
}
const prefix = options.prefix!;
if (!/^[a-z0-9][a-z0-9-]{1,12}$/.test(prefix)) {
  console.error(`--prefix must be 2-13 lower-case letters, digits or '-'\n${usage}`);
  process.exit(2);
}

const ids = ["n1", "n2", "n3"] as const;
// From settled to the window: V8 is still compiling the round's code in the first minute (its
// compiler threads busy, the round slower), which an agent that runs for months does not pay.
// The same on-tick cluster measured about 20 % more in its first 20 s window than later.
const warmupMs = positiveInteger("warmup", options.warmup!, usage) * 1000;
const progress = (text: string) =>
  console.error(`[${new Date().toISOString().slice(11, 19)}] ${text}`);

/** The i-th VIP: 198.19.<1 + i / 250>.<1 + i % 250>, never a network or broadcast address. */
const vipAt = (i: number) => `198.19.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;

interface NodeUsage {
  readonly node: string;
  readonly cpuPercent: number;
  readonly rssMbMean: number;
  readonly rssMbMax: number;
  readonly pssMbMean: number;
  readonly processes: number;
  readonly processNames: string[];
  /** % of one core per process role (control, services, supervisor, commands). */
  readonly cpuByRole: Record<string, number>;
}

interface Run {
  readonly contender: ContenderName;
  readonly vips: number;
  readonly outcome: "ok" | "error" | "n/a";
  readonly reason?: string;
  readonly settleMs?: number;
  readonly windowMs?: number;
  readonly nodes?: NodeUsage[];
  readonly vipsHeldAtEnd?: number;
}

interface Started {
  readonly topology: Topology;
  root(id: string): number | undefined;
  /** What the contender's processes logged (floatip: every node's agent). */
  logs?(): string;
  destroy(): Promise<void>;
}

const floatipVariants = [
  "lan",
  "lan-star",
  "lan-tick",
  "lan-star-tick",
  "lan-tick-scan10",
  "lan-tick-100",
  "lan-50",
] as const;
type FloatipVariant = (typeof floatipVariants)[number];
const isFloatip = (contender: string): contender is FloatipVariant =>
  (floatipVariants as readonly string[]).includes(contender);

/** The `timers:` line of a floatip contender, if it overrides `lan`'s. */
function timersFor(variant: FloatipVariant, onTick: boolean): string[] {
  if (variant === "lan-tick-100") {
    // The grant window must span four intervals on the tick, and the lease outlast an election.
    return [
      timersYaml({ ...profiles.lan, electionTimeoutMs: 425, leaseMs: 850, suspectAfterMs: 300 }),
    ];
  }
  if (variant === "lan-50") {
    return [timersYaml(lan50Timers)];
  }
  // on-tick needs a grant window of four intervals: lan's 200 ms election timeout is too short.
  return onTick ? ["timers: { election_timeout_ms: 419 }"] : [];
}

async function startFloatip(vips: readonly string[], variant: FloatipVariant): Promise<Started> {
  const onTick = variant !== "lan" && variant !== "lan-star" && variant !== "lan-50";
  // lan-tick-100's timers (on the tick, the grant window spans four 100 ms intervals).
  const slow = variant === "lan-tick-100";
  // The cluster helper writes `vips:` last before extraYaml, so these lines extend that list.
  const extraYaml = [
    ...vips.map((v) => `  - { address: ${v}/16 }`),
    ...(variant === "lan-star" || variant === "lan-star-tick" ? ["heartbeats: coordinator"] : []),
    ...(onTick ? ["receive: on-tick"] : []),
    ...timersFor(variant, onTick),
    ...(variant === "lan-tick-scan10" || slow ? ["tickle: { scan_interval: 10s }"] : []),
  ].join("\n");
  const cluster = await startCluster({ prefix, profile: "lan", vips: [], extraYaml });
  // The cluster's directory (config, key, state) goes with destroy(), or at exit on SIGINT.
  const forgetDir = atExit(() => rmSync(cluster.dir, { recursive: true, force: true }));
  return {
    topology: cluster.topology,
    root: (id) => cluster.agents.get(id)?.pid,
    logs: () => allLogs(cluster),
    async destroy() {
      try {
        await cluster.destroy();
      } finally {
        forgetDir();
      }
    },
  };
}

async function startKeepalived(binary: string, vips: readonly string[]): Promise<Started> {
  const topology = await createTopology({ prefix, hosts: [...ids, "client"] });
  try {
    const group = startKeepalivedVips(
      binary,
      topology,
      ids,
      spreadVips(
        vips.map((v) => `${v}/16`),
        ids.length,
      ),
      "1s",
    );
    return {
      topology,
      root: (id) => group.pid(id),
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

/** One bare Node.js process per node running `script(self, others)`, and nothing else. */
async function startScriptFloor(
  script: (self: string, others: readonly string[]) => string[],
): Promise<Started> {
  const topology = await createTopology({ prefix, hosts: [...ids, "client"] });
  const addresses = ids.map((id) => topology.host(id).address);
  const children = new Map<string, number | undefined>();
  for (const id of ids) {
    const self = topology.host(id).address;
    const lines = [
      ...script(
        self,
        addresses.filter((a) => a !== self),
      ),
      // Bounded: it ends by itself even if nobody stops it.
      `setTimeout(() => process.exit(0), ${(seconds + 120) * 1000});`,
    ];
    const child = topology.spawn(id, process.execPath, ["-e", lines.join("\n")], {
      stdio: "ignore",
    });
    children.set(id, child.pid);
  }
  return { topology, root: (id) => children.get(id), destroy: () => topology.destroy() };
}

/** The `node-floor` contender: Node.js at `lan`'s datagram rate, and nothing else. */
function startNodeFloor(): Promise<Started> {
  return startScriptFloor((self, others) => [
    'const socket = require("node:dgram").createSocket("udp4");',
    "const datagram = Buffer.alloc(200);",
    "let received = 0;",
    "socket.on('message', () => { received += 1; });",
    `socket.bind(7946, ${JSON.stringify(self)}, () => setInterval(() => {`,
    `  for (const peer of ${JSON.stringify(others)}) socket.send(datagram, 7946, peer);`,
    `}, ${lanIntervalMs}));`,
  ]);
}

/** The `node-floor-tick` contender: Node.js reading on its tick, and nothing else. */
function startNodeFloorTick(): Promise<Started> {
  if (!existsSync(nativeAddonPath)) {
    throw new Error(`${nativeAddonPath} is missing: run scripts/setup.sh`);
  }
  return startScriptFloor((self, others) => [
    `const addon = require(${JSON.stringify(nativeAddonPath)});`,
    `const { fd } = addon.udpOpen(${JSON.stringify(self)}, 7946, 4 * 1024 * 1024);`,
    "const datagram = Buffer.alloc(200);",
    "let received = 0;",
    "setInterval(() => {",
    "  received += addon.udpDrain(fd, 64).length;",
    `  for (const peer of ${JSON.stringify(others)}) addon.udpSend(fd, datagram, peer, 7946);`,
    `}, ${lanIntervalMs});`,
  ]);
}

/** The `c-floor` contenders: `lan`'s datagram pattern in C, and nothing else. */
async function startCFloor(receive: "as-they-come" | "on-tick"): Promise<Started> {
  if (!existsSync(hbfloor)) throw new Error(`${hbfloor} is missing: run scripts/setup.sh`);
  const topology = await createTopology({ prefix, hosts: [...ids, "client"] });
  const children = new Map<string, number | undefined>();
  for (const id of ids) {
    const self = topology.host(id).address;
    const peers = ids
      .filter((other) => other !== id)
      .flatMap((other) => ["--peer", `${topology.host(other).address}:7946`]);
    // Bounded: it ends by itself even if nobody stops it.
    const interval = String(lanIntervalMs);
    const args = ["--bind", `${self}:7946`, ...peers, "--interval-ms", interval, "--bytes", "200"];
    args.push("--receive", receive);
    const child = topology.spawn(id, hbfloor, [...args, "--seconds", String(seconds + 120)], {
      stdio: "ignore",
    });
    children.set(id, child.pid);
  }
  return { topology, root: (id) => children.get(id), destroy: () => topology.destroy() };
}

async function measure(
  contender: ContenderName,
  count: number,
  keepalived: string | undefined,
): Promise<Run> {
  const vips = Array.from({ length: count }, (_, i) => vipAt(i));
  const startedAt = Date.now();
  let started: Started | undefined;
  try {
    started = isFloatip(contender)
      ? await startFloatip(vips, contender)
      : contender === "node-floor"
        ? await startNodeFloor()
        : contender === "node-floor-tick"
          ? await startNodeFloorTick()
          : contender === "c-floor" || contender === "c-floor-tick"
            ? await startCFloor(contender === "c-floor" ? "as-they-come" : "on-tick")
            : await startKeepalived(keepalived!, vips);
    const s = started;
    if (!floors.includes(contender)) {
      await waitOneHolderEach(s.topology, ids, vips, count > 100 ? 120_000 : 40_000, 3000);
    }
    const settleMs = Date.now() - startedAt;
    progress(`${contender}, ${count} VIPs: settled after ${settleMs} ms; measuring ${seconds} s`);
    await sleep(warmupMs);
    const roots = ids.map((id) => {
      const pid = s.root(id);
      if (pid === undefined) throw new Error(`no process for ${id}`);
      return pid;
    });
    const windowStart = Date.now();
    let parents = parentMap();
    const first = roots.map((r) => treeTimes(r, parents));
    const samples: Array<Array<{ rssKb: number; pssKb: number }>> = roots.map(() => []);
    for (let i = 0; i < seconds && i < 100_000; i += 1) {
      await sleep(1000);
      parents = parentMap();
      roots.forEach((r, k) => {
        samples[k]!.push(treeMemory(r, parents));
      });
    }
    parents = parentMap();
    const last = roots.map((r) => treeTimes(r, parents));
    const windowMs = Date.now() - windowStart;
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
    const nodes = ids.map((node, k) => ({
      node,
      cpuPercent: cpuPercent(first[k]!, last[k]!),
      rssMbMean: mean(samples[k]!.map((x) => x.rssKb)) / 1024,
      rssMbMax: Math.max(0, ...samples[k]!.map((x) => x.rssKb)) / 1024,
      pssMbMean: mean(samples[k]!.map((x) => x.pssKb)) / 1024,
      processes: last[k]!.processes,
      processNames: last[k]!.names,
      cpuByRole: Object.fromEntries(cpuPercentByRole(first[k]!, last[k]!)),
    }));
    const held = await Promise.all(
      ids.map((id) => s.topology.addresses(id).catch(() => [] as string[])),
    );
    const holderCount = new Map<string, number>();
    for (const list of held) {
      for (const a of list) {
        const ip = a.split("/")[0]!;
        holderCount.set(ip, (holderCount.get(ip) ?? 0) + 1);
      }
    }
    const vipsHeldAtEnd = vips.filter((v) => holderCount.get(v) === 1).length;
    if (floors.includes(contender)) {
      return { contender, vips: 0, outcome: "ok", settleMs, windowMs, nodes, vipsHeldAtEnd: 0 };
    }
    return { contender, vips: count, outcome: "ok", settleMs, windowMs, nodes, vipsHeldAtEnd };
  } catch (error) {
    // Why the agents did not settle is in their logs (an invalid config, a crash): show it.
    // Every node logs the same config problems: each line once.
    const problems = new Set(
      (started?.logs?.() ?? "")
        .split("\n")
        .filter((line) => /\b(ERROR|FATAL)\b|invalid config| — fix: /.test(line)),
    );
    for (const line of [...problems].slice(0, 8)) progress(`  ${line}`);
    return {
      contender,
      vips: count,
      outcome: "error",
      reason: (error as Error).message.split("\n")[0]!,
    };
  } finally {
    if (started) await started.destroy().catch((e: Error) => progress(`cleanup: ${e.message}`));
  }
}

async function main(): Promise<number> {
  installCleanup();
  const machine = printHeader("idle cost per node: floatip vs keepalived");
  console.log(
    `${seconds} s idle after settling (+${warmupMs / 1000} s), 3 nodes, VIPs: ${vipCounts.join(", ")}; contenders: ${contenders.join(", ")}\n`,
  );
  let keepalived: string | undefined;
  if (contenders.includes("keepalived-1s")) {
    keepalived = await ensureKeepalived();
    if (!keepalived) console.log("note: keepalived unavailable; its rows are n/a\n");
  }
  const runs: Run[] = [];
  for (const count of vipCounts) {
    for (const contender of contenders) {
      if (floors.includes(contender) && count !== vipCounts[0]) continue; // no VIPs: once
      if (contender === "keepalived-1s" && !keepalived) {
        runs.push({ contender, vips: count, outcome: "n/a", reason: "keepalived unavailable" });
        continue;
      }
      // Every contender starts on a quiet machine: the last one's namespaces are still being
      // torn down in the kernel for a while after they are gone from `ip netns list`.
      // At most 30 s, and no longer than the window itself (a short smoke run stays short).
      const limitMs = Math.min(30_000, seconds * 1000);
      const quiet = await waitForQuietMachine(0.1, limitMs);
      progress(
        `${contender}, ${count} VIPs: starting (machine ${(quiet.busy * 100).toFixed(1)} % busy${quiet.quiet ? "" : `, not quiet after ${limitMs / 1000} s`}, waited ${quiet.waitedMs} ms)`,
      );
      const result = await measure(contender, count, keepalived);
      runs.push(result);
      if (result.outcome !== "ok") progress(`${contender}, ${count} VIPs: ${result.reason}`);
    }
  }
  const rows: string[][] = [];
  for (const r of runs) {
    if (r.outcome !== "ok") {
      rows.push([
        r.contender,
        String(r.vips),
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        "-",
        `${r.outcome}: ${r.reason}`,
      ]);
      continue;
    }
    for (const n of r.nodes!) {
      rows.push([
        r.contender,
        String(r.vips),
        n.node,
        n.cpuPercent.toFixed(2),
        n.rssMbMean.toFixed(1),
        n.rssMbMax.toFixed(1),
        n.pssMbMean.toFixed(1),
        String(n.processes),
        Object.entries(n.cpuByRole)
          .filter(([, v]) => v >= 0.005)
          .map(([role, v]) => `${role} ${v.toFixed(2)}`)
          .join(", "),
        n === r.nodes![0] && !floors.includes(r.contender)
          ? `${r.vipsHeldAtEnd}/${r.vips} VIPs held once at the end`
          : "",
      ]);
    }
    const nodes = r.nodes!;
    const avg = (f: (n: NodeUsage) => number) => nodes.reduce((s, n) => s + f(n), 0) / nodes.length;
    rows.push([
      r.contender,
      String(r.vips),
      "mean",
      avg((n) => n.cpuPercent).toFixed(2),
      avg((n) => n.rssMbMean).toFixed(1),
      avg((n) => n.rssMbMax).toFixed(1),
      avg((n) => n.pssMbMean).toFixed(1),
      avg((n) => n.processes).toFixed(1),
      "",
      "",
    ]);
  }
  console.log(
    formatTable(
      [
        "contender",
        "vips",
        "node",
        "cpu %",
        "rss MB",
        "rss max MB",
        "pss MB",
        "processes",
        "cpu % by process",
        "notes",
      ],
      rows,
    ),
  );
  console.log(
    "\ncpu % = % of one core, whole process tree of the node (children included); rss = VmRSS summed over the tree (shared pages counted per process), pss = proportional share.",
  );
  const path = writeResult(
    "idle",
    { machine, seconds, warmupMs, vipCounts, contenders, runs },
    options.out || undefined,
  );
  console.log(`results: ${path}`);
  return runs.some((r) => r.outcome === "error") ? 1 : 0;
}

process.exitCode = await main();
