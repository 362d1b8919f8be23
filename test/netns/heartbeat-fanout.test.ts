/**
 * `heartbeats: coordinator` end to end: five real agents (each under its supervisor) in
 * namespaces on one bridge, followers heartbeating the coordinator only.
 *   - The datagrams each agent sends, from its own transport counters over 4 s: a follower
 *     about one heartbeat per round (to the coordinator), the coordinator one per round to
 *     each of the four others; every node still reports a quorum and nothing moves.
 *   - A follower's agent SIGKILLed (its supervisor removes its VIPs): the VIPs move, never
 *     held twice (every node's addresses sampled every 5 ms).
 *   - The coordinator's agent SIGKILLed: followers heartbeat each other again, elect a new
 *     coordinator and its VIPs are held elsewhere, never twice; then back to the star.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { profiles } from "../../src/config/profiles.ts";
import {
  allLogs,
  killAgentAndWaitMoved,
  type LiveCluster,
  startCluster,
  waitFor,
  waitSettled,
  watchHolders,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const vips = [100, 101, 102, 103, 104].map((host) => ({ host, policy: "round-robin" as const }));

interface StatusJson {
  role: string;
  coordinator?: string;
  quorum: boolean;
  heartbeats?: string;
  transport: { sent: number; received: number };
}

describe("heartbeats: coordinator", { skip: skipUnlessRoot() }, () => {
  const clusters: LiveCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.destroy();
  });

  const status = async (cluster: LiveCluster, id: string): Promise<StatusJson> => {
    const result = await cluster.cli(id, ["status", "--json"]);
    return JSON.parse(result.stdout) as StatusJson;
  };

  /** Datagrams each node sent per second over `ms`, from the agents' own counters. */
  const sendRates = async (cluster: LiveCluster, ms: number): Promise<Map<string, number>> => {
    const before = await Promise.all(cluster.ids.map((id) => status(cluster, id)));
    const startedAt = Date.now();
    await new Promise((r) => setTimeout(r, ms));
    const after = await Promise.all(cluster.ids.map((id) => status(cluster, id)));
    const seconds = (Date.now() - startedAt) / 1000;
    return new Map(
      cluster.ids.map((id, i) => [
        id,
        (after[i]!.transport.sent - before[i]!.transport.sent) / seconds,
      ]),
    );
  };

  const coordinatorOf = async (cluster: LiveCluster, ids: readonly string[]) => {
    const all = await Promise.all(ids.map((id) => status(cluster, id)));
    const coordinators = ids.filter((_, i) => all[i]!.role === "coordinator");
    return coordinators.length === 1 ? coordinators[0] : undefined;
  };

  it("followers send to the coordinator only; a killed follower's and a killed coordinator's VIPs move, never held twice", async (t) => {
    const cluster = await startCluster({
      prefix: "fiphf-",
      nodes: 5,
      weights: [100, 100, 100, 100, 100],
      vips,
      addressLifetime: "3s",
      extraYaml: "heartbeats: coordinator",
    });
    clusters.push(cluster);
    try {
      const before = await waitSettled(cluster, 60_000);
      const coordinator = await coordinatorOf(cluster, cluster.ids);
      assert.ok(coordinator, "one coordinator");
      const first = await status(cluster, coordinator);
      assert.equal(first.heartbeats, "coordinator");

      const rates = await sendRates(cluster, 4000);
      const shown = JSON.stringify(Object.fromEntries(rates));
      t.diagnostic(`datagrams sent per second: ${shown}`);
      // lan: r heartbeat rounds a second (10 at 100 ms); the coordinator sends each round to
      // its four followers, a follower to the coordinator only.
      const r = 1000 / profiles.lan.heartbeatIntervalMs;
      for (const [id, rate] of rates) {
        if (id === coordinator)
          assert.ok(rate > 3 * r && rate < 6 * r, `coordinator ${id}: ${shown}`);
        else assert.ok(rate > r / 2 && rate < 1.75 * r, `follower ${id}: ${shown}`);
      }
      for (const id of cluster.ids) {
        assert.equal((await status(cluster, id)).quorum, true, `${id} counts a quorum`);
      }
      const holdersNow = await cluster.holders();
      for (const [vip, owner] of before)
        assert.deepEqual(holdersNow.get(vip), [owner], `${vip}\n${allLogs(cluster)}`);

      // A follower that holds a VIP: its agent dies, its supervisor removes the VIPs.
      const follower = cluster.ids.find(
        (id) => id !== coordinator && [...before.values()].includes(id),
      )!;
      const its = [...before].filter(([, owner]) => owner === follower).map(([vip]) => vip);
      const killed = await killAgentAndWaitMoved(cluster, follower, its);
      let report = killed.report;
      assert.ok(killed.moved, `${its} of ${follower} not held elsewhere\n${allLogs(cluster)}`);
      assert.deepEqual(report.doubles, [], "never held twice");
      assert.ok(report.samples > 10, `sampled ${report.samples} times`);

      // The coordinator's agent dies: an election among followers that did not hear each other.
      const settled = await waitSettled(cluster, 30_000);
      const ownVips = [...settled].filter(([, owner]) => owner === coordinator).map(([v]) => v);
      const watch = watchHolders(cluster, 5);
      process.kill(cluster.agentPid(coordinator)!, "SIGKILL");
      const others = cluster.ids.filter((id) => id !== coordinator);
      const next = await waitFor(async () => {
        const c = await coordinatorOf(cluster, others);
        if (!c) return undefined;
        const holders = await Promise.all(ownVips.map((vip) => cluster.holderOf(vip)));
        return holders.every((h) => h && h !== coordinator) ? c : undefined;
      }, 15_000);
      await new Promise((r) => setTimeout(r, 1000));
      report = await watch.stop();
      assert.ok(next, `no new coordinator holding ${ownVips}\n${allLogs(cluster)}`);
      assert.deepEqual(report.doubles, [], "never held twice");
      t.diagnostic(`${coordinator} killed: ${next} coordinates, ${ownVips} held elsewhere`);

      // Back to the star under the new coordinator (the restarted agents rejoin).
      await waitSettled(cluster, 30_000);
      const later = await sendRates(cluster, 3000);
      const now = await coordinatorOf(cluster, cluster.ids);
      for (const [id, rate] of later) {
        if (id !== now) assert.ok(rate < 35, `follower ${id}: ${JSON.stringify([...later])}`);
      }
    } finally {
      await cluster.destroy();
    }
  });
});
