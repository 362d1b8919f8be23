/**
 * A flood at the heartbeat port cannot starve the heartbeats: three real agents (`lan`) in
 * namespaces, and from the client namespace, for 20 s each, one after the other,
 * - 20,000 datagrams/s of well-formed cluster datagrams (the real cluster name, member ids,
 *   random MACs) from the client's own address, a host that is no member, and
 * - 20,000 datagrams/s of the same spoofing n2's address (ip_nonlocal_bind), aimed at n1 and
 *   n3, which must verify each one's MAC to know it is forged.
 * Holders are sampled every 20 ms from outside: no VIP moves, no sampled instant without a
 * holder or with two, and no election. The agents' counters show that the flood arrived and
 * how it was dropped: "non-member" before any parsing, "bad-mac" for the spoofed ones.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type RunningLoad, startUdpFlood } from "../../bench/lib/loads.ts";
import { loadConfig } from "../../src/config/load.ts";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitSettled,
  watchHolders,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const floodSeconds = 20;
const ppsTotal = 20_000;

interface Dropped {
  transport: { dropped: Record<string, number>; kernelDrops?: number };
  term: number;
}

/**
 * Datagrams the kernel dropped machine-wide before any socket (the per-CPU backlog full:
 * column 2 of /proc/net/softnet_stat): heartbeats lost there are lost to every agent alike.
 */
function backlogDrops(): number {
  try {
    return readFileSync("/proc/net/softnet_stat", "utf8")
      .trim()
      .split("\n")
      .reduce((sum, line) => sum + Number.parseInt(line.trim().split(/\s+/)[1] ?? "0", 16), 0);
  } catch {
    return Number.NaN;
  }
}

function coordinatorChanges(cluster: LiveCluster): number {
  return [...allLogs(cluster).matchAll(/coordinator-changed node=\S+ term=/g)].length;
}

describe("agent: a flood at the heartbeat port", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster | undefined;
  const floods: RunningLoad[] = [];
  after(async () => {
    for (const flood of floods) await flood.stop().catch(() => undefined);
    await cluster?.destroy();
  });

  it("from a non-member and spoofing a member: no election, no VIP moves, every drop counted", async () => {
    cluster = await startCluster({
      prefix: "fipfl-",
      vips: [{ host: 120 }, { host: 121 }, { host: 122 }],
    });
    const c = cluster;
    const before = await waitSettled(c);
    const config = loadConfig(c.configPath);
    const status = async (id: string) => {
      const result = await c.cli(id, ["status", "--json"]);
      assert.equal(result.code, 0, result.stderr);
      return JSON.parse(result.stdout) as Dropped;
    };
    const termBefore = (await status("n1")).term;
    const changesBefore = coordinatorChanges(c);
    const backlogBefore = backlogDrops();

    const spoofed = c.topology.host("n2").address;
    const watch = watchHolders(c, 20, (2 * floodSeconds + 10) * 50, (2 * floodSeconds + 10) * 1000);
    const target = (n: (typeof config.nodes)[number]) => ({
      address: n.address,
      port: n.port,
      to: n.id,
    });
    const spoofTargets = config.nodes.filter((n) => n.id !== "n2").map(target);
    const phases = [
      { what: "from the non-member client", targets: config.nodes.map(target), source: undefined },
      { what: `spoofing n2 (${spoofed})`, targets: spoofTargets, source: spoofed },
    ];
    const sent: number[] = [];
    for (const phase of phases) {
      // One phase after the other, each with the whole offered rate: on this machine kind the
      // kernel's veth and bridge path is what limits a sender, not the agents.
      const flood = await startUdpFlood(c.topology, "client", {
        cluster: config.cluster,
        members: config.nodes.map((n) => n.id),
        targets: phase.targets,
        pps: Math.ceil(ppsTotal / phase.targets.length),
        maxSeconds: floodSeconds,
        ...(phase.source === undefined ? {} : { source: phase.source }),
      });
      floods.push(flood);
      // The flooder stops by itself after floodSeconds; stop() then only collects its report.
      await sleep(floodSeconds * 1000 + 500);
      const report = await flood.stop();
      floods.splice(floods.indexOf(flood), 1);
      const count = Number((report as { sent?: number }).sent ?? 0);
      sent.push(count);
      console.log(
        `# ${phase.what}: ${count} datagrams in ${floodSeconds} s (${Math.round(count / floodSeconds)}/s offered ${ppsTotal}/s)`,
      );
    }
    const holders = await watch.stop();
    // Stalls the agents logged meanwhile, with what the kernel saw (they may happen under a
    // loaded host and must not end a term: see check-quorum in the README).
    for (const id of c.ids) {
      const stalls = c
        .logs(id)
        .split("\n")
        .filter((line) => line.includes("control plane stalled"))
        .map((line) => line.replace(/^.*?stalledMs=/, "stalledMs="));
      console.log(
        `# ${id}: ${stalls.length} stall lines${stalls.length ? `, last: ${stalls.at(-1)}` : ""}`,
      );
    }
    const backlog = backlogDrops() - backlogBefore;
    console.log(`# kernel backlog drops during the floods (all namespaces): ${backlog}`);

    assert.deepEqual(holders.doubles.slice(0, 3), [], `no instant with two holders\n${allLogs(c)}`);
    const after = await c.holders();
    for (const [vip, owner] of before) {
      assert.deepEqual(after.get(vip), [owner], `${vip} stayed on ${owner}\n${allLogs(c)}`);
    }
    for (const [vip, owners] of holders.seen) {
      assert.deepEqual(owners, [before.get(vip)], `${vip} never moved\n${allLogs(c)}`);
    }
    assert.deepEqual(
      holders.unheld.slice(0, 3),
      [],
      `every VIP held in every sample (owners before: ${JSON.stringify([...before])}; kernel backlog drops ${backlog})\n${allLogs(c)}`,
    );
    assert.ok(holders.samples > floodSeconds * 5, `${holders.samples} samples`);
    assert.equal(coordinatorChanges(c), changesBefore, `no election\n${allLogs(c)}`);

    const views = await Promise.all(c.ids.map(async (id) => [id, await status(id)] as const));
    for (const [id, view] of views) {
      assert.equal(view.term, termBefore, `${id} is still on term ${termBefore}`);
      const dropped = view.transport.dropped;
      console.log(
        `# ${id}: dropped non-member ${dropped["non-member"]}, bad-mac ${dropped["bad-mac"]}, not-fresh ${dropped["not-fresh"]}; kernel drops ${view.transport.kernelDrops}`,
      );
      // A flood that did not arrive would prove nothing: a tenth of what was offered is the
      // floor on a machine too busy to send it all.
      assert.ok(
        (dropped["non-member"] ?? 0) > sent[0]! / config.nodes.length / 10,
        `${id} saw the non-member flood`,
      );
      if (id !== "n2") {
        assert.ok(
          (dropped["bad-mac"] ?? 0) > sent[1]! / spoofTargets.length / 10,
          `${id} saw the spoofed flood`,
        );
      }
      assert.equal(typeof view.transport.kernelDrops, "number", "kernel drops are reported");
    }
  });
});
