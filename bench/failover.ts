/**
 * Failover time, floatip against keepalived, on the same namespace topology (3 nodes and a
 * client on one bridge). Contenders, alternated trial by trial so that drift of the machine
 * hits all of them alike:
 *   floatip-lan (default profile), floatip-lan-50 (`lan` with the 50 ms timers it had until
 *   2026-12-06: heartbeat 50, election 150, lease 400, suspicion 150 ms and 3 faults),
 *   floatip-lan-ipv6 (the same with an IPv6 VIP, 2001:db8::/32
 *   inside the namespaces: probed with a Neighbour Solicitation, announced with unsolicited
 *   Neighbour Advertisements), floatip-fast, floatip-etcd (`lan` with `arbiter: etcd`, ttl 1 s,
 *   against a real three-member etcd cluster in three more namespaces of the topology),
 *   keepalived-default (VRRPv2, advert_int 1), keepalived-fastest (VRRPv3, advert_int 0.01),
 *   keepalived-ipv6 (VRRPv3, advert_int 1, the IPv6 VIP floatip-lan-ipv6 has);
 * keepalived priorities 150/100/50, one VIP, multicast adverts on the bridge.
 * Faults on the current owner:
 *   sigkill      floatip: the agent process is killed, its supervisor survives and removes the
 *                VIPs; keepalived: keepalived and its VRRP child are killed (nothing survives);
 *   sigkill-all  floatip only: agent and supervisor killed, the kernel address lifetime and
 *                the new owner's occupancy probe are all that is left;
 *   link-down    the owner's eth0 is set down.
 * A client probes VIP:8080 every 5 ms (100 ms timeout, fresh connection each time). Outage =
 * first failed request sent after the fault → first request answered by another node; switch =
 * fault → that first answer. After the fault the old owner is watched: whether it still held
 * the VIP when the new owner answered (two holders) and when it dropped it. A second client
 * connection to VIP:8080, opened before the fault and left idle, shows what an application's
 * pooled connection sees: how long after the switch it fails (floatip's tickle ACKs reset it;
 * without them it stays "established" until the application writes), or "never" within
 * 3 s.
 * Run: npm run bench:failover -- [--trials 10] [--contenders a,b] [--faults a,b] [--out FILE]
 */

import { lan50Timers } from "../src/config/profiles.ts";
import { type LiveCluster, startCluster } from "../src/lab/cluster.ts";
import { openIdleConnection } from "../src/lab/idle-connection.ts";
import type { Topology } from "../src/lab/topology.ts";
import { createTopology } from "../src/lab/topology.ts";
import { positiveInteger, readOptions, sleep } from "./lib/args.ts";
import {
  ensureKeepalived,
  type KeepalivedCluster,
  type KeepalivedVariant,
  startKeepalived,
} from "./lib/keepalived.ts";
import { printHeader } from "./lib/machine.ts";
import { measureOutage, now, startProber } from "./lib/prober.ts";
import { writeResult } from "./lib/results.ts";
import { timersYaml } from "./lib/scaled-timers.ts";
import { formatTable, ms, summarize } from "./lib/stats.ts";

const contenderNames = [
  "floatip-lan",
  "floatip-lan-50",
  "floatip-lan-ipv6",
  "floatip-fast",
  "floatip-etcd",
  "keepalived-default",
  "keepalived-fastest",
  "keepalived-ipv6",
] as const;
/** `lan`'s timers until 2026-12-06 (`lan50Timers`), as a config's `timers:` line. */
const lan50Yaml = `${timersYaml(lan50Timers)}\n`;
const faultNames = ["sigkill", "sigkill-all", "link-down"] as const;
type ContenderName = (typeof contenderNames)[number];
type FaultName = (typeof faultNames)[number];

const usage = `usage: bench/failover.ts [--trials N] [--contenders ${contenderNames.join(",")}] [--faults ${faultNames.join(",")}] [--out FILE]`;
const options = readOptions(usage, {
  trials: { default: "10" },
  contenders: { default: contenderNames.join(",") },
  faults: { default: faultNames.join(",") },
  out: { default: "" },
});
const trials = positiveInteger("trials", options.trials!, usage);
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
const faults = pick("fault", options.faults!, faultNames);

const ids = ["n1", "n2", "n3"] as const;
const vipHost = 200;
const switchTimeoutMs = 20_000;
const dropWatchMs = 5000;
const readyTimeoutMs = 20_000;
const idleWatchMs = 3000;
const idleAgeMs = 1500;

/** One contender brought up on a fresh topology; the trial code only talks to this. */
interface Setup {
  readonly topology: Topology;
  readonly vip: string;
  readonly applies: (fault: FaultName) => boolean;
  /** The node that must own the VIP before a trial starts (keepalived preempts back to it). */
  readonly steadyOwner?: string;
  fault(id: string, fault: FaultName): Promise<void>;
  restore(id: string, fault: FaultName): Promise<void>;
  /** The last lines each node's daemon logged, kept in the JSON result of a failed trial. */
  logTail(): Record<string, string>;
  destroy(): Promise<void>;
}

interface Trial {
  readonly contender: ContenderName;
  readonly fault: FaultName;
  readonly trial: number;
  readonly oldOwner: string;
  readonly newOwner: string | undefined;
  readonly outageMs: number | undefined;
  readonly switchMs: number | undefined;
  readonly failedRequests: number;
  readonly twoHoldersAtSwitch: boolean | undefined;
  readonly oldDroppedMs: number | undefined;
  /** The idle connection failed this long after the switch (undefined: not within 3 s). */
  readonly idleResetMs?: number;
  readonly error?: string;
  readonly logs?: Record<string, string>;
}

async function holders(topology: Topology, vip: string): Promise<string[]> {
  const held: string[] = [];
  for (const id of ids) {
    const addresses = await topology.addresses(id).catch(() => [] as string[]);
    if (addresses.some((a) => a.split("/")[0] === vip)) held.push(id);
  }
  return held;
}

/** Waits until exactly one node has held the VIP for a full second; returns it. */
async function stableOwner(topology: Topology, vip: string, expected?: string): Promise<string> {
  const deadline = now() + readyTimeoutMs;
  let owner: string | undefined;
  let since = now();
  while (now() < deadline) {
    const held = await holders(topology, vip);
    const single =
      held.length === 1 && (expected === undefined || held[0] === expected) ? held[0] : undefined;
    if (single !== owner) {
      owner = single;
      since = now();
    } else if (owner !== undefined && now() - since >= 1000) {
      return owner;
    }
    await sleep(100);
  }
  throw new Error(
    `no single stable owner of ${vip} within ${readyTimeoutMs} ms (holders: ${(await holders(topology, vip)).join(",") || "none"})`,
  );
}

async function floatipSetup(
  prefix: string,
  profile: "lan" | "fast",
  family: 4 | 6 = 4,
  etcd = false,
  extraYaml?: string,
): Promise<Setup> {
  const cluster: LiveCluster = await startCluster({
    prefix,
    profile,
    vips: [{ host: vipHost, family }],
    ...(etcd ? { etcd: { ttl: "1s" } } : {}),
    ...(extraYaml ? { extraYaml } : {}),
  });
  const vip = cluster.vipAddresses[0]!;
  const killedAgents = new Map<string, number | undefined>();
  return {
    topology: cluster.topology,
    vip,
    applies: () => true,
    async fault(id, fault) {
      if (fault === "link-down") return cluster.topology.setLink(id, "down");
      const agent = cluster.agentPid(id);
      killedAgents.set(id, agent);
      if (fault === "sigkill-all") cluster.signal(id, "SIGKILL");
      if (agent !== undefined) process.kill(agent, "SIGKILL");
    },
    async restore(id, fault) {
      if (fault === "link-down") return cluster.topology.setLink(id, "up");
      if (fault === "sigkill-all") {
        cluster.startAgent(id);
      } else {
        // The supervisor starts a new agent by itself; wait for it so the next trial has three.
        const old = killedAgents.get(id);
        for (let i = 0; i < 100; i += 1) {
          const pid = cluster.agentPid(id);
          if (pid !== undefined && pid !== old) break;
          await sleep(50);
        }
      }
      // Let the new agent rejoin (rise rounds) before the next fault.
      await sleep(1500);
    },
    logTail: () => Object.fromEntries(ids.map((id) => [id, cluster.logs(id).slice(-4000)])),
    destroy: () => cluster.destroy(),
  };
}

async function keepalivedSetup(
  prefix: string,
  variant: KeepalivedVariant,
  binary: string,
): Promise<Setup> {
  const topology = await createTopology({ prefix, hosts: [...ids, "client"] });
  const vip =
    variant === "ipv6" ? `${topology.subnet6}${vipHost}` : `${topology.subnet}.${vipHost}`;
  let daemons: KeepalivedCluster | undefined;
  try {
    const service = `require("node:http").createServer((q, s) => s.end(process.argv[1])).listen(8080, "::")`;
    for (const id of ids)
      topology.spawn(id, process.execPath, ["-e", service, id], { stdio: "ignore" });
    daemons = startKeepalived(binary, topology, ids, vip, variant);
  } catch (error) {
    await topology.destroy();
    throw error;
  }
  const d = daemons;
  return {
    topology,
    vip,
    // Killing "keepalived and everything it started" is already the sigkill fault.
    applies: (fault) => fault !== "sigkill-all",
    steadyOwner: "n1",
    async fault(id, fault) {
      if (fault === "link-down") return topology.setLink(id, "down");
      d.killAll(id);
    },
    async restore(id, fault) {
      if (fault === "link-down") return topology.setLink(id, "up");
      await d.removeLeftover(id);
      d.start(id);
      await sleep(500);
    },
    logTail: () => Object.fromEntries(ids.map((id) => [id, d.logs(id).slice(-4000)])),
    async destroy() {
      try {
        await d.stop();
      } finally {
        await topology.destroy();
      }
    },
  };
}

async function runTrial(
  setup: Setup,
  contender: ContenderName,
  fault: FaultName,
  trial: number,
): Promise<Trial> {
  const { topology, vip } = setup;
  const oldOwner = await stableOwner(topology, vip, setup.steadyOwner);
  // Opened first and left idle past floatip's connection scan (tickle.scan_interval, 1 s), as
  // a pooled connection is: one opened in the last second before a crash is on no list.
  const idle = openIdleConnection(topology, "client", vip, 8080, 60_000);
  for (let i = 0; i < 60 && idle.connectedAt() === undefined; i += 1) await sleep(50);
  await sleep(idleAgeMs);
  const prober = startProber(topology, {
    host: "client",
    vip,
    intervalMs: 5,
    timeoutMs: 100,
    maxMs: 40_000,
  });
  try {
    const warm = await prober.until((r) => r.filter((x) => x.who === oldOwner).length >= 20, 5000);
    if (!warm) {
      const seen = new Map<string, number>();
      for (const r of prober.records) seen.set(String(r.who), (seen.get(String(r.who)) ?? 0) + 1);
      const counts = [...seen].map(([who, n]) => `${who}: ${n}`).join(", ");
      throw new Error(
        `the client got no steady answers from ${oldOwner} before the fault (${counts}; holders now ${(await holders(topology, vip)).join(",")})`,
      );
    }
    const faultAt = now();
    await setup.fault(oldOwner, fault);
    let oldDroppedMs: number | undefined;
    let twoHoldersAtSwitch: boolean | undefined;
    const watchDrop = (async () => {
      while (now() - faultAt < dropWatchMs) {
        const held = (await topology.addresses(oldOwner).catch(() => [] as string[])).some(
          (a) => a.split("/")[0] === vip,
        );
        if (!held) {
          oldDroppedMs = now() - faultAt;
          return;
        }
        await sleep(20);
      }
    })();
    const switched = await prober.until(
      (r) => measureOutage(r, faultAt, oldOwner).firstNewAnswerAt !== undefined,
      switchTimeoutMs,
    );
    if (switched) twoHoldersAtSwitch = (await holders(topology, vip)).length > 1;
    await sleep(200);
    await watchDrop;
    await prober.stop();
    const outage = measureOutage(prober.records, faultAt, oldOwner);
    let idleResetMs: number | undefined;
    if (idle.connectedAt() !== undefined && outage.switchMs !== undefined) {
      const switchAt = faultAt + outage.switchMs;
      while (idle.endedAt() === undefined && now() - switchAt < idleWatchMs) await sleep(20);
      const ended = idle.endedAt();
      if (ended) idleResetMs = Math.max(0, ended.atMs - switchAt);
    }
    await setup.restore(oldOwner, fault);
    return {
      contender,
      fault,
      trial,
      oldOwner,
      newOwner: outage.newOwner,
      outageMs: outage.outageMs,
      switchMs: outage.switchMs,
      failedRequests: outage.failedRequests,
      twoHoldersAtSwitch,
      oldDroppedMs,
      ...(idleResetMs === undefined ? {} : { idleResetMs }),
      ...(switched ? {} : { error: `no other node answered within ${switchTimeoutMs} ms` }),
    };
  } finally {
    idle.stop();
    await prober.stop();
  }
}

function report(results: readonly Trial[]): Record<string, unknown> {
  const summaries: Record<string, unknown> = {};
  for (const fault of faults) {
    const rows: string[][] = [];
    const medians = new Map<ContenderName, { outage?: number; switch?: number }>();
    for (const contender of contenders) {
      const all = results.filter((r) => r.contender === contender && r.fault === fault);
      if (all.length === 0) continue;
      // Failed trials show in the "ok" column only; the figures come from the others.
      const mine = all.filter((r) => !r.error);
      const outage = summarize(mine.flatMap((r) => (r.outageMs === undefined ? [] : [r.outageMs])));
      const switched = summarize(
        mine.flatMap((r) => (r.switchMs === undefined ? [] : [r.switchMs])),
      );
      const dropped = mine.flatMap((r) => (r.oldDroppedMs === undefined ? [] : [r.oldDroppedMs]));
      const twoHolders = mine.filter((r) => r.twoHoldersAtSwitch).length;
      const resets = mine.flatMap((r) => (r.idleResetMs === undefined ? [] : [r.idleResetMs]));
      medians.set(contender, { outage: outage.medianMs, switch: switched.medianMs });
      summaries[`${fault}/${contender}`] = {
        outage,
        switch: switched,
        twoHolders,
        dropped: summarize(dropped),
        idleReset: summarize(resets),
        idleNeverReset: mine.length - resets.length,
      };
      rows.push([
        contender,
        `${mine.length}/${all.length}`,
        ms(outage.medianMs),
        ms(outage.p90Ms),
        ms(outage.maxMs),
        ms(switched.medianMs),
        `${twoHolders}/${mine.length}`,
        dropped.length === mine.length
          ? ms(summarize(dropped).medianMs)
          : `never(${mine.length - dropped.length})`,
        resets.length === 0
          ? `never(${mine.length})`
          : `${ms(summarize(resets).medianMs)}${resets.length < mine.length ? ` never(${mine.length - resets.length})` : ""}`,
      ]);
    }
    if (rows.length === 0) continue;
    console.log(`## fault: ${fault}`);
    console.log(
      formatTable(
        [
          "contender",
          "ok",
          "outage p50 ms",
          "p90",
          "max",
          "switch p50 ms",
          "two holders",
          "old dropped p50 ms",
          "idle conn reset p50 ms",
        ],
        rows,
      ),
    );
    const ratio = (a: ContenderName, b: ContenderName, key: "outage" | "switch") => {
      const x = medians.get(a)?.[key];
      const y = medians.get(b)?.[key];
      if (x === undefined || y === undefined) return "-";
      return y === 0 ? (x === 0 ? "1.00" : "inf") : (x / y).toFixed(3);
    };
    for (const [a, b] of [
      ["floatip-lan", "keepalived-default"],
      ["floatip-lan-50", "keepalived-default"],
      ["floatip-lan", "floatip-lan-50"],
      ["floatip-lan-ipv6", "keepalived-ipv6"],
      ["floatip-fast", "keepalived-fastest"],
    ] as const) {
      if (medians.has(a) && medians.has(b)) {
        console.log(
          `ratio ${a}/${b}: outage ${ratio(a, b, "outage")}, switch ${ratio(a, b, "switch")}`,
        );
      }
    }
    console.log("");
  }
  return summaries;
}

async function main(): Promise<number> {
  const machine = printHeader("failover: floatip vs keepalived");
  let binary: string | undefined;
  if (contenders.some((c) => c.startsWith("keepalived"))) {
    binary = await ensureKeepalived();
    if (!binary) console.log("note: keepalived unavailable; its rows are left out\n");
  }
  console.log(
    `trials: ${trials}, contenders: ${contenders.join(", ")}, faults: ${faults.join(", ")}`,
  );
  console.log(
    "probe: every 5 ms, 100 ms timeout; outage = first failed request → first answer from the new owner\n",
  );
  const results: Trial[] = [];
  for (let trial = 1; trial <= trials; trial += 1) {
    for (const contender of contenders) {
      if (contender.startsWith("keepalived") && !binary) continue;
      const setup = contender.startsWith("floatip")
        ? await floatipSetup(
            "fipb1-",
            contender === "floatip-fast" ? "fast" : "lan",
            contender === "floatip-lan-ipv6" ? 6 : 4,
            contender === "floatip-etcd",
            contender === "floatip-lan-50" ? lan50Yaml : undefined,
          )
        : await keepalivedSetup(
            "fipb1-",
            contender === "keepalived-fastest"
              ? "fastest"
              : contender === "keepalived-ipv6"
                ? "ipv6"
                : "default",
            binary!,
          );
      try {
        for (const fault of faults) {
          if (!setup.applies(fault)) continue;
          const result = await runTrial(setup, contender, fault, trial).catch(
            (error: Error): Trial => ({
              contender,
              fault,
              trial,
              oldOwner: "?",
              newOwner: undefined,
              outageMs: undefined,
              switchMs: undefined,
              failedRequests: 0,
              twoHoldersAtSwitch: undefined,
              oldDroppedMs: undefined,
              error: error.message,
            }),
          );
          results.push(result.error ? { ...result, logs: setup.logTail() } : result);
          console.log(
            `trial ${trial} ${contender} ${fault}: ${result.oldOwner} -> ${result.newOwner ?? "?"} outage ${ms(result.outageMs)} ms, switch ${ms(result.switchMs)} ms, two holders ${result.twoHoldersAtSwitch ?? "-"}, old dropped ${result.oldDroppedMs === undefined ? "never" : `${ms(result.oldDroppedMs)} ms`}, idle connection reset ${result.idleResetMs === undefined ? "never" : `${ms(result.idleResetMs)} ms after the switch`}${result.error ? ` (${result.error})` : ""}`,
          );
        }
      } finally {
        await setup.destroy();
      }
    }
  }
  console.log("");
  const summaries = report(results);
  const path = writeResult(
    "failover",
    { machine, trials, contenders, faults, summaries, results },
    options.out || undefined,
  );
  console.log(`results: ${path}`);
  return results.length > 0 ? 0 : 1;
}

process.exitCode = await main();
