/**
 * `heartbeats: coordinator`: followers heartbeat the coordinator only. What it saves (the
 * datagrams each node sends, counted by destination from the real core's effects), that a
 * follower goes back to heartbeating every node when its coordinator falls silent, and that
 * the swarm's invariants, liveness and failover bound hold as with `all`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { profiles } from "../../src/config/profiles.ts";
import type { HeartbeatFanout } from "../../src/core/types.ts";
import { tapSteps } from "../../src/sim/properties.ts";
import { formatSummary, runSwarm } from "../../src/sim/report.ts";
import { Simulator } from "../../src/sim/simulator.ts";
import { percentile, runSwarmSeed } from "../../src/sim/swarm.ts";

const timers = profiles.lan;

function fiveNodes(heartbeats: HeartbeatFanout, seed = 1): Simulator {
  const ids = ["n1", "n2", "n3", "n4", "n5"];
  const sim = new Simulator({
    seed,
    nodes: ids.map((id) => ({ id, weight: 1 })),
    vips: ["198.18.0.100", "198.18.0.101", "198.18.0.102", "198.18.0.103", "198.18.0.104"].map(
      (address) => ({
        address,
        policy: "round-robin" as const,
        failback: { mode: "never" as const },
      }),
    ),
    timers,
    heartbeats,
    delayMs: [1, 3],
  });
  sim.bootAll();
  sim.runUntil(3000);
  return sim;
}

/** Heartbeat datagrams per (from, to) pair, counted from every live core's effects. */
function countHeartbeats(sim: Simulator): Map<string, number> {
  const counts = new Map<string, number>();
  const ids = sim.nodes.map((n) => n.id);
  for (const id of ids) {
    tapSteps(sim, id, (_, output) => {
      for (const effect of output.effects) {
        if (effect.type !== "send" && effect.type !== "broadcast") continue;
        if (effect.message.type !== "heartbeat") continue;
        const targets = effect.type === "send" ? [effect.to] : ids.filter((p) => p !== id);
        for (const to of targets) counts.set(`${id}>${to}`, (counts.get(`${id}>${to}`) ?? 0) + 1);
      }
    });
  }
  return counts;
}

describe("heartbeats: coordinator", () => {
  it("followers heartbeat the coordinator only; every VIP stays held, quorum counted through the coordinator", () => {
    const sim = fiveNodes("coordinator");
    const coordinator = sim.coordinator()!;
    assert.ok(coordinator, "a coordinator after 3 s");
    const holdersBefore = sim.options.vips.map((_, vip) => sim.holder(vip));
    assert.ok(
      holdersBefore.every((h) => h !== undefined),
      "every VIP held",
    );
    const counts = countHeartbeats(sim);
    const from = sim.nowMs;
    sim.runUntil(from + 5000);
    const rounds = 5000 / timers.heartbeatIntervalMs;
    for (const a of sim.nodes) {
      for (const b of sim.nodes) {
        if (a === b) continue;
        const n = counts.get(`${a.id}>${b.id}`) ?? 0;
        if (a.id === coordinator || b.id === coordinator) {
          assert.ok(n >= rounds * 0.9, `${a.id} -> ${b.id}: ${n} heartbeats in ${rounds} rounds`);
        } else {
          assert.equal(n, 0, `${a.id} -> ${b.id}: follower to follower`);
        }
      }
    }
    assert.deepEqual(
      sim.options.vips.map((_, vip) => sim.holder(vip)),
      holdersBefore,
      "nothing moved",
    );
    for (const node of sim.nodes) {
      const status = sim.core(node.id)!.status(sim.localNow(node.id));
      assert.equal(status.quorum, true, `${node.id} has quorum`);
      assert.deepEqual(
        status.members.filter((m) => m.state !== "healthy"),
        [],
        `${node.id}: every member healthy`,
      );
    }
    // Each node holds its own VIP (round-robin over five): none was taken from a follower.
    assert.equal(new Set(holdersBefore).size, 5, JSON.stringify(holdersBefore));
    assert.deepEqual(sim.violations, []);
  });

  it("the default fan-out still heartbeats every node (the comparison the saving is measured against)", () => {
    const sim = fiveNodes("all");
    const counts = countHeartbeats(sim);
    sim.runUntil(sim.nowMs + 2000);
    const rounds = 2000 / timers.heartbeatIntervalMs;
    for (const a of sim.nodes) {
      for (const b of sim.nodes) {
        if (a === b) continue;
        const n = counts.get(`${a.id}>${b.id}`) ?? 0;
        assert.ok(n >= rounds * 0.9, `${a.id} -> ${b.id}: ${n}`);
      }
    }
  });

  it("a follower that misses its coordinator heartbeats every node again, and a new coordinator takes over", () => {
    const sim = fiveNodes("coordinator", 2);
    const coordinator = sim.coordinator()!;
    const counts = countHeartbeats(sim);
    const lost = [...sim.nodes.find((n) => n.id === coordinator)!.addresses];
    sim.crash(coordinator);
    sim.runUntil(sim.nowMs + 2000);
    const followers = sim.nodes.filter((n) => n.id !== coordinator).map((n) => n.id);
    for (const a of followers) {
      for (const b of followers) {
        if (a === b) continue;
        assert.ok((counts.get(`${a}>${b}`) ?? 0) > 0, `${a} -> ${b} after the coordinator died`);
      }
    }
    const next = sim.coordinator();
    assert.ok(next && next !== coordinator, "a new coordinator");
    for (const vip of lost)
      assert.ok(sim.holder(vip), `VIP ${vip} of the dead coordinator held again`);
    // Back to the star under the new coordinator: followers stop heartbeating each other.
    const steady = countHeartbeats(sim);
    sim.runUntil(sim.nowMs + 2000);
    for (const a of followers) {
      for (const b of followers) {
        if (a === b || a === next || b === next) continue;
        assert.equal(steady.get(`${a}>${b}`) ?? 0, 0, `${a} -> ${b} under ${next}`);
      }
    }
    assert.deepEqual(sim.violations, []);
  });

  it("swarm: 60 seeds each on 3, 5, 7 and 9 nodes, 30 through the control loop, 50 with a blind probe: no violation", () => {
    for (const nodes of [3, 5, 7, 9]) {
      const seeds = Array.from({ length: 60 }, (_, i) => 110_000 + nodes * 1000 + i);
      const summary = runSwarm({ seeds, timers, nodes, heartbeats: "coordinator" });
      assert.equal(summary.failed.length, 0, formatSummary(summary));
      // lan's promise, as in swarm.test.ts: under 550 ms at p99.
      assert.ok(percentile(summary.ownerFailoverMs, 99) < 550, formatSummary(summary));
      const runtime = runSwarm({
        seeds: seeds.slice(0, 30),
        timers,
        nodes,
        heartbeats: "coordinator",
        runtime: true,
      });
      assert.equal(runtime.failed.length, 0, formatSummary(runtime));
    }
    const failed: string[] = [];
    for (let seed = 120_000; seed < 120_050; seed += 1) {
      const result = runSwarmSeed({ seed, timers, blindProbe: true, heartbeats: "coordinator" });
      for (const v of result.violations) failed.push(`seed=${seed} ${v.kind}: ${v.detail}`);
    }
    assert.deepEqual(failed, []);
  });
});
