/**
 * Idle cost of two floatip builds (or two configurations) side by side: two 3-node `lan`
 * namespace clusters with 10 VIPs each run at the same time, and each node's CPU is read over
 * the same windows. On these shared machines one build's idle cost moves by a fifth between
 * runs minutes apart (`bench:idle`, the same build four times: 1.10-1.30 % per node), so a
 * change worth a tenth is invisible to runs one after the other; measured side by side, both
 * clusters see the same machine and the ratio is steady window after window.
 *
 *   --a / --b       the agent to run for cluster A / B: a `dist/cli/main.js` (default: this
 *                   checkout's, built if stale). A checkout of the build before a change,
 *                   set up with scripts/setup.sh, gives the before column.
 *   --a-yaml / --b-yaml  extra top-level config lines for A / B (e.g. "heartbeats: coordinator"),
 *                   `\n` between lines
 *   --a-env / --b-env  NAME=VALUE for A / B's agents (e.g. "NODE_OPTIONS=--jitless"), `\n`
 *                   between pairs: runtime flags compared side by side
 *   --a-node / --b-node  the Node.js (or a script that execs it with V8 flags NODE_OPTIONS
 *                   does not take) that runs A / B's agents (default: this process's)
 *   --windows 6 --seconds 30   windows of that many seconds, one after the other
 *   --warmup 60     seconds from the start of both clusters to the first window
 *
 * Between windows (outside them) each cluster's coordinator is asked of n1 (`floatip status
 * --json`); where it stayed the same across a window, the coordinator's and the followers' CPU
 * are compared apart as well (the coordinator does about half as much again as a follower, so
 * a ratio of means also moves with which node leads).
 *
 * CPU per node is the run time of every thread of the node's processes (the supervisor, the
 * control plane, the services process and anything they started), from
 * /proc/<pid>/task/<tid>/schedstat in nanoseconds (stat's clock ticks are 10 ms: a node at 1 %
 * runs 30 ticks in 30 s). VIPs are 198.19.61.0/24 (A) and 198.19.62.0/24 (B).
 * Run: npm run bench:idle-ab -- [--a PATH] [--b PATH] [--a-yaml TEXT] [--b-yaml TEXT]
 *        [--windows 6] [--seconds 30] [--warmup 60] [--out FILE]
 */
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { parseSchedstat } from "../src/agent/sched-probe.ts";
import { type LiveCluster, startCluster } from "../src/lab/cluster.ts";
import { positiveInteger, readOptions, sleep } from "./lib/args.ts";
import { printHeader } from "./lib/machine.ts";
import { atExit, installCleanup, parentMap, processTree } from "./lib/owned.ts";
import { writeResult } from "./lib/results.ts";

const usage =
  "usage: bench/idle-ab.ts [--a PATH] [--b PATH] [--a-yaml TEXT] [--b-yaml TEXT] [--a-env NAME=VALUE] [--b-env NAME=VALUE] [--a-node PATH] [--b-node PATH] [--windows 6] [--seconds 30] [--warmup 60] [--out FILE]";
const options = readOptions(usage, {
  a: { default: "" },
  b: { default: "" },
  "a-yaml": { default: "" },
  "b-yaml": { default: "" },
  "a-env": { default: "" },
  "b-env": { default: "" },
  "a-node": { default: "" },
  "b-node": { default: "" },
  windows: { default: "6" },
  seconds: { default: "30" },
  warmup: { default: "60" },
  out: { default: "" },
});
const windows = positiveInteger("windows", options.windows!, usage);
const seconds = positiveInteger("seconds", options.seconds!, usage);
const warmup = positiveInteger("warmup", options.warmup!, usage);
if (windows > 100 || seconds > 3600 || warmup > 3600) {
  console.error(`at most 100 windows, 3600 s per window and 3600 s of warm-up\n${usage}`);
  process.exit(2);
}
for (const side of ["a", "b"] as const) {
  for (const key of [side, `${side}-node`] as const) {
    const path = options[key]!;
    if (path !== "" && !existsSync(path)) {
      console.error(`--${key}: no such file ${JSON.stringify(path)}\n${usage}`);
      process.exit(2);
    }
  }
}

/** Run time in ns of every thread of the process tree under `root`. */
function runNs(root: number, parents: Map<number, number>): number {
  let total = 0;
  for (const pid of processTree(root, parents)) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // exited in between
    }
    for (const tid of tids) {
      try {
        total +=
          parseSchedstat(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8"))?.runNs ?? 0;
      } catch {
        // exited in between
      }
    }
  }
  return total;
}

function sample(cluster: LiveCluster, parents: Map<number, number>): number[] {
  return cluster.ids.map((id) => {
    const pid = cluster.agents.get(id)?.pid;
    return pid === undefined ? 0 : runNs(pid, parents);
  });
}

const vipLines = (octet: number) =>
  Array.from({ length: 10 }, (_, i) => `  - { address: 198.19.${octet}.${10 + i}/16 }`);

async function start(side: "a" | "b", octet: number): Promise<LiveCluster> {
  const extra = options[`${side}-yaml`]!.split("\\n").filter(Boolean);
  const main = options[side]!;
  const env: Record<string, string> = {};
  for (const pair of options[`${side}-env`]!.split("\\n").filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at < 1) {
      console.error(`--${side}-env: ${JSON.stringify(pair)} is not NAME=VALUE\n${usage}`);
      process.exit(2);
    }
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  const cluster = await startCluster({
    prefix: `fab${side}`,
    profile: "lan",
    vips: [],
    extraYaml: [...vipLines(octet), ...extra].join("\n"),
    ...(main === "" ? {} : { main }),
    agentEnv: () => env,
    ...(options[`${side}-node`] === "" ? {} : { node: options[`${side}-node`]! }),
  });
  atExit(() => rmSync(cluster.dir, { recursive: true, force: true }));
  return cluster;
}

const mean = (values: readonly number[]) => values.reduce((x, y) => x + y, 0) / values.length;
const format = (values: readonly number[]) => values.map((v) => v.toFixed(2)).join(" / ");

installCleanup();
const machine = printHeader("idle cost, two clusters side by side");
console.log(
  `A: ${options.a || "this checkout"} ${options["a-yaml"]} ${options["a-env"]} ${options["a-node"]}\nB: ${options.b || "this checkout"} ${options["b-yaml"]} ${options["b-env"]} ${options["b-node"]}`,
);
const clusters: LiveCluster[] = [];
/** The coordinator as n1 reports it (between windows: the CLI's own run is not measured). */
async function coordinatorOf(cluster: LiveCluster): Promise<string | undefined> {
  try {
    const result = await cluster.cli(cluster.ids[0]!, ["status", "--json"]);
    const coordinator = (JSON.parse(result.stdout) as { coordinator?: string | null }).coordinator;
    return typeof coordinator === "string" ? coordinator : undefined;
  } catch {
    return undefined;
  }
}

/** The coordinator's share and the followers' mean, when one node was coordinator throughout. */
function byRole(
  cluster: LiveCluster,
  values: readonly number[],
  before: string | undefined,
  after: string | undefined,
): { coordinator: string; coordinatorPercent: number; followersPercent: number } | undefined {
  const index = before === undefined || before !== after ? -1 : cluster.ids.indexOf(before);
  if (index < 0) return undefined;
  return {
    coordinator: before!,
    coordinatorPercent: values[index]!,
    followersPercent: mean(values.filter((_, i) => i !== index)),
  };
}

type Roles = ReturnType<typeof byRole>;
const rows: { window: number; a: number[]; b: number[]; aRoles: Roles; bRoles: Roles }[] = [];
try {
  clusters.push(await start("a", 61));
  clusters.push(await start("b", 62));
  const [a, b] = clusters as [LiveCluster, LiveCluster];
  await sleep(warmup * 1000);
  for (let window = 1; window <= windows; window++) {
    const coordinators0 = [await coordinatorOf(a), await coordinatorOf(b)];
    let parents = parentMap();
    const at = performance.now();
    const a0 = sample(a, parents);
    const b0 = sample(b, parents);
    await sleep(seconds * 1000);
    parents = parentMap();
    const a1 = sample(a, parents);
    const b1 = sample(b, parents);
    const wallNs = (performance.now() - at) * 1e6;
    const coordinators1 = [await coordinatorOf(a), await coordinatorOf(b)];
    const percent = (end: number[], begin: number[]) =>
      end.map((v, i) => ((v - begin[i]!) / wallNs) * 100);
    const aPercent = percent(a1, a0);
    const bPercent = percent(b1, b0);
    const row = {
      window,
      a: aPercent,
      b: bPercent,
      aRoles: byRole(a, aPercent, coordinators0[0], coordinators1[0]),
      bRoles: byRole(b, bPercent, coordinators0[1], coordinators1[1]),
    };
    rows.push(row);
    const roles =
      row.aRoles && row.bRoles
        ? `  coordinator B/A ${(row.bRoles.coordinatorPercent / row.aRoles.coordinatorPercent).toFixed(3)} (${row.aRoles.coordinator}, ${row.bRoles.coordinator}), followers B/A ${(row.bRoles.followersPercent / row.aRoles.followersPercent).toFixed(3)}`
        : "  (a coordinator changed or was not known: no split by role)";
    console.log(
      `window ${window}: A ${mean(row.a).toFixed(3)} % (${format(row.a)})  B ${mean(row.b).toFixed(3)} % (${format(row.b)})  B/A ${(mean(row.b) / mean(row.a)).toFixed(3)}${roles}`,
    );
  }
} finally {
  for (const cluster of clusters) await cluster.destroy();
}
const meanA = mean(rows.map((r) => mean(r.a)));
const meanB = mean(rows.map((r) => mean(r.b)));
const ratios = rows.map((r) => mean(r.b) / mean(r.a));
console.log(
  `mean per node: A ${meanA.toFixed(3)} %, B ${meanB.toFixed(3)} %; B/A ${(meanB / meanA).toFixed(3)} (windows ${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)})`,
);
const split = rows.filter((r) => r.aRoles && r.bRoles);
const roleMeans =
  split.length === 0
    ? undefined
    : {
        windows: split.length,
        coordinator: {
          a: mean(split.map((r) => r.aRoles!.coordinatorPercent)),
          b: mean(split.map((r) => r.bRoles!.coordinatorPercent)),
        },
        followers: {
          a: mean(split.map((r) => r.aRoles!.followersPercent)),
          b: mean(split.map((r) => r.bRoles!.followersPercent)),
        },
      };
if (roleMeans) {
  const { coordinator: c, followers: f } = roleMeans;
  console.log(
    `by role (${roleMeans.windows} windows): coordinator A ${c.a.toFixed(3)} %, B ${c.b.toFixed(3)} %, B/A ${(c.b / c.a).toFixed(3)}; followers A ${f.a.toFixed(3)} %, B ${f.b.toFixed(3)} %, B/A ${(f.b / f.a).toFixed(3)}`,
  );
}
const path = writeResult(
  "idle-ab",
  {
    machine,
    a: {
      main: options.a || "this checkout",
      yaml: options["a-yaml"],
      env: options["a-env"],
      node: options["a-node"],
    },
    b: {
      main: options.b || "this checkout",
      yaml: options["b-yaml"],
      env: options["b-env"],
      node: options["b-node"],
    },
    warmupSeconds: warmup,
    seconds,
    windows: rows,
    meanPerNode: { a: meanA, b: meanB, ratio: meanB / meanA },
    byRole: roleMeans,
  },
  options.out || undefined,
);
console.log(`results: ${path}`);
