/**
 * `receive: on-tick` end to end: three real agents (each under its supervisor) in namespaces
 * on one bridge, on `lan`'s 50 ms timers of before 2026-12-06 with the 215 ms election timeout
 * on-tick needs there (the wake-up counts below are per 50 ms interval).
 *   - The control plane reads its heartbeat socket on its own tick: its main thread wakes
 *     about once per heartbeat interval (plus its other timers), not once per datagram
 *     (voluntary context switches over 4 s, from /proc). As datagrams come it wakes about
 *     three times per interval (two peers' heartbeats and its own).
 *   - Nothing moves and every node counts a quorum while the cluster is quiet.
 *   - An owner's agent SIGKILLed: its VIPs are held elsewhere, never twice.
 *   - Nodes that know each other by link-local address and zone: the zone is bound, sent to
 *     and reported on what is read, so peers are recognised.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { timersYaml } from "../../bench/lib/scaled-timers.ts";
import { lan50OnTickTimers } from "../../src/config/profiles.ts";
import {
  allLogs,
  killAgentAndWaitMoved,
  type LiveCluster,
  startCluster,
  waitSettled,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const onTickTimers = timersYaml(lan50OnTickTimers);
const vips = [100, 101, 102].map((host) => ({ host, policy: "round-robin" as const }));

/** Voluntary context switches of a process's main thread: each is a wake-up from a sleep. */
function wakeUps(pid: number): number {
  const text = readFileSync(`/proc/${pid}/task/${pid}/status`, "utf8");
  const match = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(text);
  assert.ok(match, `no voluntary_ctxt_switches for ${pid}`);
  return Number(match[1]);
}

describe("receive: on-tick", { skip: skipUnlessRoot() }, () => {
  const clusters: LiveCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.destroy();
  });

  it("the control plane wakes once per interval, not per datagram; nothing moves; a killed owner's VIPs move, never held twice", async (t) => {
    const cluster = await startCluster({
      prefix: "fiprt-",
      nodes: 3,
      weights: [100, 100, 100],
      vips,
      addressLifetime: "3s",
      extraYaml: `receive: on-tick\n${onTickTimers}`,
    });
    clusters.push(cluster);
    try {
      const before = await waitSettled(cluster, 60_000);
      for (const id of cluster.ids) {
        assert.match(cluster.logs(id), /receive=on-tick/, `${id} logs its receive mode`);
      }
      const pids = cluster.ids.map((id) => {
        const pid = cluster.agentPid(id);
        assert.ok(pid, `${id} has an agent`);
        return pid;
      });
      const startedAt = Date.now();
      const first = pids.map(wakeUps);
      await new Promise((r) => setTimeout(r, 4000));
      const seconds = (Date.now() - startedAt) / 1000;
      const rates = pids.map((pid, i) => (wakeUps(pid) - first[i]!) / seconds);
      t.diagnostic(`wake-ups per second: ${rates.map((r) => r.toFixed(1)).join(", ")}`);
      // 20 heartbeat ticks a second and a few other timers; reading as datagrams come, each
      // of the two peers' 20 heartbeats a second would add a wake-up (about 60 in all).
      for (const [i, rate] of rates.entries()) {
        assert.ok(rate > 15 && rate < 40, `${cluster.ids[i]}: ${rate.toFixed(1)} wake-ups/s`);
      }
      for (const id of cluster.ids) {
        const status = JSON.parse((await cluster.cli(id, ["status", "--json"])).stdout) as {
          quorum: boolean;
        };
        assert.equal(status.quorum, true, `${id} counts a quorum`);
      }
      const holdersNow = await cluster.holders();
      for (const [vip, owner] of before) assert.deepEqual(holdersNow.get(vip), [owner], vip);

      const victim = [...before.values()][0]!;
      const its = [...before].filter(([, owner]) => owner === victim).map(([vip]) => vip);
      const { moved, report } = await killAgentAndWaitMoved(cluster, victim, its);
      assert.ok(moved, `${its} of ${victim} not held elsewhere\n${allLogs(cluster)}`);
      assert.deepEqual(report.doubles, [], "never held twice");
      assert.ok(report.samples > 10, `sampled ${report.samples} times`);
      t.diagnostic(`${victim} killed: ${its} held by ${moved}`);
    } finally {
      await cluster.destroy();
    }
  });

  it("reads heartbeats from link-local addresses with their zone (fe80::1x%eth0)", async () => {
    const cluster = await startCluster({
      prefix: "fiprl-",
      nodeFamily: "link-local",
      vips: [{ host: 181, family: 6 }],
      extraYaml: `receive: on-tick\n${onTickTimers}`,
    });
    clusters.push(cluster);
    try {
      const holders = await waitSettled(cluster, 30_000);
      const vip = cluster.vipAddresses[0]!;
      assert.ok(holders.get(vip), `${vip} is held\n${allLogs(cluster)}`);
      const result = await cluster.cli("n1", ["status", "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const status = JSON.parse(result.stdout) as { members: { id: string; state: string }[] };
      assert.deepEqual(
        status.members.map((m) => [m.id, m.state]),
        cluster.ids.map((id) => [id, "healthy"]),
        `the nodes hear each other at their link-local addresses\n${allLogs(cluster)}`,
      );
      for (const id of cluster.ids) {
        assert.match(cluster.logs(id), /receive=on-tick/, `${id} reads on its tick`);
        assert.doesNotMatch(cluster.logs(id), /reason=non-member/, `${id} drops no member`);
      }
    } finally {
      await cluster.destroy();
    }
  });
});
