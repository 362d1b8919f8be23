/**
 * Losing a node, end to end in network namespaces (three real agents under their supervisors,
 * a client, a background sampler of every namespace's addresses):
 *
 * 1. The owner's link goes down: it hears nobody, releases its VIPs by itself, and the others
 *    take them over; the client is served by the new owners.
 * 2. The coordinator dies (agent and supervisor): the survivors elect a new coordinator in a
 *    later term (as `floatip status --json` reports on each of them), the dead node's VIPs move,
 *    and the VIPs already on live nodes never move.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitFor,
  waitSettled,
  watchHolders,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const vips = [
  { host: 110, policy: "round-robin" as const },
  { host: 111, policy: "round-robin" as const },
  { host: 112, policy: "hash" as const },
  { host: 113, policy: "hash" as const },
];

interface Status {
  node: string;
  term: number;
  coordinator: string | null;
  members: { id: string; state: string }[];
  vips: { address: string; owner: string | null }[];
}

async function status(cluster: LiveCluster, id: string): Promise<Status | undefined> {
  const result = await cluster.cli(id, ["status", "--json"]);
  if (result.code !== 0) return undefined;
  return JSON.parse(result.stdout) as Status;
}

/** Waits until `vip` is held by a node other than `from`; returns that node. */
function movedAway(cluster: LiveCluster, vip: string, from: string): Promise<string | undefined> {
  return waitFor(async () => {
    const holder = await cluster.holderOf(vip);
    return holder && holder !== from ? holder : undefined;
  }, 10_000);
}

describe("agent: a node drops off", { skip: skipUnlessRoot() }, () => {
  const clusters: LiveCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.destroy();
  });
  const withCluster = async (body: (cluster: LiveCluster) => Promise<void>) => {
    const cluster = await startCluster({ prefix: "fipe2-", vips });
    clusters.push(cluster);
    try {
      await body(cluster);
    } finally {
      await cluster.destroy();
    }
  };

  it("moves the VIPs of a node whose link went down", () =>
    withCluster(async (cluster) => {
      const before = await waitSettled(cluster);
      const owner = before.get(cluster.vipAddresses[0]!)!;
      const watch = watchHolders(cluster);
      await cluster.topology.setLink(owner, "down");
      const released = await waitFor(
        async () => ((await cluster.heldVips(owner)).length === 0 ? true : undefined),
        5000,
      );
      assert.ok(
        released,
        `${owner} kept ${await cluster.heldVips(owner)} with its link down\n${cluster.logs(owner)}`,
      );
      for (const [vip, previous] of before) {
        if (previous !== owner) {
          assert.equal(await cluster.holderOf(vip), previous, `${vip} stayed on live ${previous}`);
          continue;
        }
        const holder = await movedAway(cluster, vip, owner);
        assert.ok(holder, `${vip} was not taken over\n${allLogs(cluster)}`);
        assert.equal(
          await waitFor(() => cluster.ask(vip, 1000), 3000),
          holder,
          `${vip} serves the client`,
        );
      }
      const report = await watch.stop();
      assert.ok(report.samples > 5, "the sampler ran during the fault");
      assert.deepEqual(
        report.doubles.slice(0, 3),
        [],
        `no sampled instant with two holders\n${allLogs(cluster)}`,
      );
      // Back on the wire, the node rejoins and every VIP is still held exactly once and served.
      await cluster.topology.setLink(owner, "up");
      await waitSettled(cluster);
    }));

  it("elects a new coordinator and leaves the live nodes' VIPs in place", () =>
    withCluster(async (cluster) => {
      const before = await waitSettled(cluster);
      const first = await waitFor(async () => {
        const s = await status(cluster, "n2");
        return s?.coordinator ? s : undefined;
      }, 5000);
      assert.ok(first?.coordinator, "a coordinator is elected");
      const coordinator = first.coordinator;
      const live = cluster.ids.filter((id) => id !== coordinator);
      const staying = [...before].filter(([, owner]) => owner !== coordinator);
      assert.ok(staying.length > 0, "some VIPs are on non-coordinator nodes");

      const watch = watchHolders(cluster);
      const pid = cluster.agentPid(coordinator);
      assert.ok(pid);
      process.kill(pid, "SIGKILL");
      cluster.signal(coordinator, "SIGKILL");
      const views = await waitFor(async () => {
        const all = await Promise.all(live.map((id) => status(cluster, id)));
        const agreed = all.every(
          (s) =>
            s?.coordinator &&
            s.coordinator !== coordinator &&
            s.coordinator === all[0]?.coordinator &&
            s.term > first.term,
        );
        return agreed ? (all as Status[]) : undefined;
      }, 10_000);
      assert.ok(views, `no new coordinator agreed by ${live}\n${allLogs(cluster)}`);
      const successor = views[0]!.coordinator!;
      assert.ok(live.includes(successor));
      // A new coordinator starts trusting every member and declares the dead one failed after
      // the damped detection (M faults), so its view follows shortly after the election.
      for (const id of live) {
        const counted = await waitFor(async () => {
          const view = await status(cluster, id);
          const dead = view?.members.find((m) => m.id === coordinator);
          return dead && dead.state !== "healthy" ? dead.state : undefined;
        }, 5000);
        assert.ok(counted, `${id} no longer counts ${coordinator} healthy`);
      }
      for (const [vip, previous] of before) {
        if (previous !== coordinator) continue;
        const holder = await movedAway(cluster, vip, coordinator);
        assert.ok(holder, `${vip} was not taken over\n${allLogs(cluster)}`);
        assert.equal(await waitFor(() => cluster.ask(vip, 1000), 3000), holder);
        const final = await waitFor(async () => {
          const s = await status(cluster, successor);
          return s?.vips.find((v) => v.address === vip)?.owner === holder ? true : undefined;
        }, 3000);
        assert.ok(final, `the new coordinator's table names ${holder} as owner of ${vip}`);
      }
      const report = await watch.stop();
      for (const [vip, owner] of staying) {
        assert.equal(await cluster.holderOf(vip), owner, `${vip} is still on ${owner}`);
        assert.deepEqual(
          report.seen.get(vip),
          [owner],
          `${vip} was never seen anywhere but ${owner}`,
        );
      }
      assert.deepEqual(
        report.doubles.slice(0, 3),
        [],
        `no sampled instant with two holders\n${allLogs(cluster)}`,
      );
    }));
});
