/**
 * Takeover of many VIPs at once: N VIPs (default 1,000, in 198.19.0.0/16 on eth0, or with
 * `--family 6` in 2001:db8:f000::/64) all owned by n1 of a 3-node floatip cluster (default
 * profile), whose agent is then SIGKILLed (its supervisor survives and removes the VIPs).
 * Reported, from the fault:
 *   - time until all N VIPs are held by the other nodes;
 *   - time until the client's neighbour cache maps a sample of them to the new owners' MACs
 *     (the client resolved the sample before the fault, so the entries must be updated by the
 *     gratuitous ARP, not created by a fresh lookup);
 *   - gratuitous ARP frames (IPv6: unsolicited Neighbour Advertisements) the client received
 *     for the VIPs, and their rate.
 * The cluster must first settle with all N VIPs on n1; if it does not within 60 s (agents
 * busy adding addresses miss heartbeats and re-elect), that is reported and the exit code is 1.
 * Run: npm run bench:garp -- [--vips 1000] [--profile lan] [--family 4|6] [--out FILE]
 */
import { run } from "../src/adapters/exec.ts";
import { type LiveCluster, startCluster } from "../src/lab/cluster.ts";
import { positiveInteger, readOptions, sleep } from "./lib/args.ts";
import { printHeader } from "./lib/machine.ts";
import { now } from "./lib/prober.ts";
import { writeResult } from "./lib/results.ts";
import { formatTable, ms } from "./lib/stats.ts";

const usage =
  "usage: bench/garp.ts [--vips N (1..60000)] [--profile lan|fast|wan] [--family 4|6] [--out FILE]";
const options = readOptions(usage, {
  vips: { default: "1000" },
  profile: { default: "lan" },
  family: { default: "4" },
  out: { default: "" },
});
if (!["4", "6"].includes(options.family!)) {
  console.error(`--family must be 4 or 6\n${usage}`);
  process.exit(2);
}
const six = options.family === "6";
const profile = options.profile as "lan" | "fast" | "wan";
if (!["lan", "fast", "wan"].includes(profile)) {
  console.error(`--profile must be lan, fast or wan\n${usage}`);
  process.exit(2);
}
const count = positiveInteger("vips", options.vips!, usage);
if (count > 60_000) {
  console.error(`--vips must be at most 60000\n${usage}`);
  process.exit(2);
}
const sampleSize = Math.min(count, 20);
const watchTimeoutMs = 30_000;

/**
 * The i-th VIP: 198.19.<1 + i / 250>.<1 + i % 250>, never a network or broadcast address; or
 * 2001:db8:f000::<i + 1> (documentation space, inside the namespaces only).
 */
const vipPrefix = six ? "2001:db8:f000::" : "198.19.";
const vipSubnet = six ? "2001:db8:f000::/64" : "198.19.0.0/16";
const vipAt = (i: number) =>
  six
    ? `${vipPrefix}${(i + 1).toString(16)}`
    : `198.19.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
const vips = Array.from({ length: count }, (_, i) => vipAt(i));
const sample = Array.from(
  { length: sampleSize },
  (_, i) => vips[Math.floor((i * count) / sampleSize)]!,
);
const counterTable = "fipbench_garp";

async function vipsOn(cluster: LiveCluster, id: string): Promise<Set<string>> {
  const addresses = await cluster.topology.addresses(id).catch(() => [] as string[]);
  return new Set(addresses.map((a) => a.split("/")[0]!).filter((a) => a.startsWith(vipPrefix)));
}

async function announcementCount(cluster: LiveCluster): Promise<number> {
  const result = await cluster.topology.exec("client", "nft", [
    "-j",
    "list",
    "counter",
    "netdev",
    counterTable,
    "announcements",
  ]);
  const parsed = JSON.parse(result.stdout) as {
    nftables: Array<{ counter?: { packets: number } }>;
  };
  return parsed.nftables.find((e) => e.counter)?.counter?.packets ?? 0;
}

async function main(): Promise<number> {
  const machine = printHeader(
    `${six ? "NA" : "GARP"} takeover: ${count} IPv${six ? 6 : 4} VIPs, profile ${profile}`,
  );
  // The cluster helper writes `vips:` last before extraYaml, so these lines extend that list.
  const extraYaml = vips
    .map((v) => `  - { address: "${v}/${six ? 64 : 16}", preferred: n1, failback: "after 30s" }`)
    .join("\n");
  const cluster = await startCluster({ prefix: "fipb2-", profile, vips: [], extraYaml });
  try {
    const { topology } = cluster;
    await topology.exec("client", "ip", ["route", "add", vipSubnet, "dev", "eth0"]);
    const deadline = now() + 60_000;
    let settleMs: number | undefined;
    const startedAt = now();
    for (;;) {
      const held = await Promise.all(
        cluster.ids.map(async (id) => (await vipsOn(cluster, id)).size),
      );
      if (held[0] === count) {
        settleMs = now() - startedAt;
        break;
      }
      if (now() > deadline) {
        console.log(
          `n1 did not hold all ${count} VIPs within 60 s (held per node: ${held.join("/")}); no takeover measured`,
        );
        return 1;
      }
      await sleep(200);
    }
    console.log(`settled: all ${count} VIPs on n1 after ${ms(settleMs)} ms`);
    const oldMac = topology.host("n1").mac;
    // One HTTP request per sampled VIP (each node serves :8080 on every address): this makes
    // the client resolve them, so that the takeover has cache entries to update.
    const resolveAll = `Promise.all(process.argv.slice(1).map((h) => new Promise((ok) => require("node:http").get({ host: h, port: 8080, timeout: 1000 }, (r) => { r.resume(); r.on("end", ok); }).on("error", ok).on("timeout", ok))))`;
    await topology.exec("client", process.execPath, ["-e", resolveAll, ...sample], 10_000);
    for (const vip of sample) {
      const entry = await topology.neighbour("client", vip);
      if (entry?.mac !== oldMac) {
        const holders: string[] = [];
        for (const h of topology.hosts) {
          const addrs = await topology.addresses(h.name);
          if (addrs.some((a) => a.split("/")[0] === vip)) holders.push(`${h.name}(${h.mac})`);
        }
        throw new Error(
          `the client has no entry for ${vip} at n1's MAC before the fault (${JSON.stringify(entry)}; holders now: ${holders.join(" ") || "none"})`,
        );
      }
    }
    await applyCounters(cluster);
    await sleep(500);
    const baseline = await announcementCount(cluster);

    const agent = cluster.agentPid("n1");
    if (agent === undefined) throw new Error("n1 has no agent process");
    const faultAt = now();
    process.kill(agent, "SIGKILL");

    let allHeldMs: number | undefined;
    let neighboursMs: number | undefined;
    const owners = new Map<string, string>();
    const macOf = new Map(cluster.ids.map((id) => [id, topology.host(id).mac]));
    const holdersLoop = (async () => {
      while (now() - faultAt < watchTimeoutMs) {
        let held = 0;
        for (const id of ["n2", "n3"]) {
          const mine = await vipsOn(cluster, id);
          held += mine.size;
          for (const vip of sample) if (mine.has(vip)) owners.set(vip, id);
        }
        if (held >= count) {
          allHeldMs = now() - faultAt;
          return;
        }
        await sleep(10);
      }
    })();
    const neighboursLoop = (async () => {
      while (now() - faultAt < watchTimeoutMs) {
        const result = await topology.exec("client", "ip", [
          "-json",
          "neigh",
          "show",
          "dev",
          "eth0",
        ]);
        const entries = JSON.parse(result.stdout.trim() || "[]") as Array<{
          dst: string;
          lladdr?: string;
        }>;
        const updated = sample.filter((vip) => {
          const owner = owners.get(vip);
          const entry = entries.find((e) => e.dst === vip);
          return owner !== undefined && entry?.lladdr === macOf.get(owner);
        });
        if (updated.length === sample.length) {
          neighboursMs = now() - faultAt;
          return;
        }
        await sleep(10);
      }
    })();
    const samples: Array<{ at: number; packets: number }> = [];
    let watching = true;
    const countersLoop = (async () => {
      while (watching && now() - faultAt < watchTimeoutMs + 5000) {
        samples.push({
          at: now() - faultAt,
          packets: (await announcementCount(cluster)) - baseline,
        });
        await sleep(20);
      }
    })();
    await Promise.all([holdersLoop, neighboursLoop]);
    // Let the repeated announcements (garp_repeat × garp_interval) finish before counting.
    await sleep(1500);
    watching = false;
    await countersLoop;
    const total = samples.at(-1)?.packets ?? 0;
    const first = samples.find((s) => s.packets > 0);
    const last = samples.find((s) => s.packets === total);
    const spanMs = first && last ? last.at - first.at : undefined;
    const perSecond = spanMs && spanMs > 0 ? (total * 1000) / spanMs : undefined;

    console.log(
      formatTable(
        [
          "vips",
          "all held elsewhere ms",
          `neighbour cache (${sampleSize} sampled) ms`,
          six ? "NA frames" : "GARP frames",
          "frames/VIP",
          six ? "NA frames/s" : "GARP frames/s",
        ],
        [
          [
            String(count),
            allHeldMs === undefined ? `>${watchTimeoutMs}` : ms(allHeldMs),
            neighboursMs === undefined ? `>${watchTimeoutMs}` : ms(neighboursMs),
            String(total),
            (total / count).toFixed(2),
            perSecond === undefined ? "-" : perSecond.toFixed(0),
          ],
        ],
      ),
    );
    console.log(
      six
        ? "(NA frames: Neighbour Advertisements for a 2001:db8:f000::/64 target seen at the client; rate between the first and last counter change, polled every ~20 ms)"
        : "(GARP frames: ARP frames from a 198.19/16 sender seen at the client; rate between the first and last counter change, polled every ~20 ms)",
    );
    const path = writeResult(
      "garp",
      {
        machine,
        vips: count,
        family: six ? 6 : 4,
        profile,
        settleMs,
        sample,
        allHeldMs,
        neighboursMs,
        garpFrames: total,
        garpFramesPerSecond: perSecond,
        counterSamples: samples,
      },
      options.out || undefined,
    );
    console.log(`results: ${path}`);
    return allHeldMs !== undefined && neighboursMs !== undefined ? 0 : 1;
  } finally {
    await cluster.destroy();
  }
}

/**
 * Counts ARP frames whose sender is a VIP (gratuitous announcements) at the client's eth0, or
 * Neighbour Advertisements from a VIP (IPv6: floatip's NA comes from the VIP itself).
 */
async function applyCounters(cluster: LiveCluster): Promise<void> {
  const rules = [
    `table netdev ${counterTable} {`,
    "  counter announcements {}",
    "  chain ingress {",
    `    type filter hook ingress device "eth0" priority 0; policy accept;`,
    six
      ? `    ip6 saddr ${vipSubnet} icmpv6 type nd-neighbor-advert counter name "announcements"`
      : `    ether type arp arp saddr ip 198.19.0.0/16 counter name "announcements"`,
    "  }",
    "}",
  ];
  await run("nft", ["-f", "-"], {
    timeoutMs: 5000,
    netns: cluster.topology.host("client").netns,
    input: `${rules.join("\n")}\n`,
  });
}

process.exitCode = await main();
