/**
 * Stability under load: a 3-node cluster with 3 VIPs runs for `--seconds` while every core is
 * saturated by busy-loop processes and, where the kernel has sch_netem, each node's eth0 loses
 * 1% of its frames and delays them 5 ms ± 5 ms. Nothing fails, so every change of a VIP's
 * holder is a spurious failover: the default profile (lan) must show none; the fast profile is
 * run the same way to show what its tighter timers cost. Holder changes are counted from
 * `ip monitor address` in each node namespace, so even short flaps are seen.
 * Run: npm run bench:stability -- [--seconds 120] [--profiles lan,fast] [--out FILE]
 */
import { type LiveCluster, startCluster } from "../src/lab/cluster.ts";
import { positiveInteger, readOptions, sleep } from "./lib/args.ts";
import { startCpuLoad } from "./lib/cpu-load.ts";
import { type HolderCount, monitorHolders } from "./lib/holder-monitor.ts";
import { printHeader } from "./lib/machine.ts";
import { now } from "./lib/prober.ts";
import { writeResult } from "./lib/results.ts";
import { formatTable } from "./lib/stats.ts";

const usage = "usage: bench/stability.ts [--seconds 120] [--profiles lan,fast] [--out FILE]";
const options = readOptions(usage, {
  seconds: { default: "120" },
  profiles: { default: "lan,fast" },
  out: { default: "" },
});
const seconds = positiveInteger("seconds", options.seconds!, usage);
const profiles = options.profiles!.split(",").filter(Boolean) as Array<"lan" | "fast">;
for (const p of profiles) {
  if (p !== "lan" && p !== "fast") {
    console.error(`unknown profile ${JSON.stringify(p)}\n${usage}`);
    process.exit(2);
  }
}
const netemArgs = [
  "qdisc",
  "add",
  "dev",
  "eth0",
  "root",
  "netem",
  "loss",
  "1%",
  "delay",
  "5ms",
  "5ms",
];

interface Run {
  readonly profile: string;
  readonly seconds: number;
  readonly netem: string;
  readonly holderChanges: number;
  readonly releases: number;
  readonly changes: Array<{ atMs: number; node: string; vip: string }>;
}

/** Waits until each VIP has exactly one holder; throws after 30 s. */
async function settled(cluster: LiveCluster): Promise<void> {
  const deadline = now() + 30_000;
  while (now() < deadline) {
    const held = await Promise.all(
      cluster.vipAddresses.map((v) => cluster.holderOf(v).catch(() => undefined)),
    );
    if (held.every((h) => h !== undefined)) return;
    await sleep(200);
  }
  throw new Error("the VIPs did not each get one holder within 30 s");
}

async function runProfile(profile: "lan" | "fast"): Promise<Run> {
  const cluster = await startCluster({
    prefix: "fipb3-",
    profile,
    vips: [{ host: 200 }, { host: 201 }, { host: 202 }],
  });
  try {
    await settled(cluster);
    await sleep(1000);
    let netem = "on (loss 1%, delay 5ms ± 5ms on each node's eth0)";
    for (const id of cluster.ids) {
      try {
        await cluster.topology.exec(id, "tc", netemArgs);
      } catch (error) {
        const stderr = (error as { stderr?: string }).stderr?.trim().split("\n").at(-1) ?? "";
        netem = /unknown/i.test(stderr)
          ? "skipped: the kernel has no sch_netem"
          : `skipped: ${stderr || (error as Error).message}`;
        break;
      }
    }
    const monitor = await monitorHolders(cluster);
    const load = startCpuLoad(seconds + 10);
    let count: HolderCount;
    try {
      await sleep(seconds * 1000);
    } finally {
      await load.stop();
      count = monitor.stop();
    }
    const { changes, releases } = count;
    return { profile, seconds, netem, holderChanges: changes.length, releases, changes };
  } finally {
    await cluster.destroy();
  }
}

async function main(): Promise<number> {
  const machine = printHeader("stability under load: spurious failovers");
  console.log(`${seconds} s per profile, 3 nodes, 3 VIPs, every core busy\n`);
  const runs: Run[] = [];
  for (const profile of profiles) runs.push(await runProfile(profile));
  console.log(
    formatTable(
      ["profile", "seconds", "spurious failovers", "releases", "netem"],
      runs.map((r) => [
        r.profile,
        String(r.seconds),
        String(r.holderChanges),
        String(r.releases),
        r.netem,
      ]),
    ),
  );
  for (const r of runs.filter((x) => x.profile === "lan" && x.holderChanges > 0)) {
    console.log(`note: the default profile had ${r.holderChanges} spurious failovers (expected 0)`);
  }
  const path = writeResult("stability", { machine, seconds, runs }, options.out || undefined);
  console.log(`results: ${path}`);
  return 0;
}

process.exitCode = await main();
