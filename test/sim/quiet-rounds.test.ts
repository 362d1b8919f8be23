/**
 * What a coordinator does on a round in which nothing changed: it neither runs placement nor
 * sends the VIP table (the two largest parts of a quiet round), and both come back the moment
 * something changes. Observed on the real core through the simulator: placement runs counted
 * by the core, tables counted in the heartbeats it emits.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { profiles } from "../../src/config/profiles.ts";
import { settledCluster, tapSteps } from "../../src/sim/properties.ts";
import type { Simulator } from "../../src/sim/simulator.ts";

const timers = profiles.lan;
const ids = ["n1", "n2", "n3"];
/** settledCluster's VIPs: 198.18.0.100 and up, round-robin, no failback. */
const vips = ["198.18.0.100", "198.18.0.101", "198.18.0.102", "198.18.0.103"];

function cluster(seed = 1): Simulator {
  const sim = settledCluster(seed, timers, ids.length, vips.length);
  sim.runUntil(3000);
  return sim;
}

/** Heartbeats `id` emits from now on, and how many of them carry the VIP table. */
function watchTables(sim: Simulator, id: string): { heartbeats: number; tables: number } {
  const counts = { heartbeats: 0, tables: 0 };
  tapSteps(sim, id, (_, output) => {
    for (const effect of output.effects) {
      if (effect.type !== "send" && effect.type !== "broadcast") continue;
      if (effect.message.type !== "heartbeat") continue;
      counts.heartbeats += 1;
      if (effect.message.table !== undefined) counts.tables += 1;
    }
  });
  return counts;
}

function versionsAgree(sim: Simulator): boolean {
  const versions = ids.map((id) => sim.core(id)?.tableVersion.join("."));
  return versions.every((v) => v !== undefined && v === versions[0]);
}

describe("quiet rounds", () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: a settled coordinator neither places nor sends its table; every VIP stays held`, () => {
      const sim = cluster(seed);
      const coordinator = sim.coordinator();
      assert.ok(coordinator, "a coordinator after 3 s");
      sim.runUntil(4000);
      assert.ok(versionsAgree(sim), "every node follows the same table");
      const core = sim.core(coordinator)!;
      const placements = core.placements;
      const counts = watchTables(sim, coordinator);
      sim.runUntil(9000);
      const rounds = 5000 / timers.heartbeatIntervalMs;
      assert.ok(
        counts.heartbeats >= rounds * 0.9,
        `${counts.heartbeats} heartbeats in ${rounds} rounds`,
      );
      assert.equal(counts.tables, 0, "no heartbeat carried the table");
      assert.equal(core.placements, placements, "no placement ran");
      assert.equal(sim.coordinator(), coordinator);
      for (let vip = 0; vip < vips.length; vip++) {
        assert.equal(sim.holders(vip).length, 1, `VIP ${vip} held once`);
      }
    });
  }

  it("a crash makes the coordinator place and carry the table until every survivor reports it", () => {
    const sim = cluster();
    sim.runUntil(4000);
    const coordinator = sim.coordinator()!;
    const victim = ids.find((id) => id !== coordinator && sim.holdsOrAcquires(id))!;
    const core = sim.core(coordinator)!;
    const placements = core.placements;
    const counts = watchTables(sim, coordinator);
    sim.crash(victim);
    sim.runUntil(6000);
    assert.ok(core.placements > placements, "placement ran after the crash");
    assert.ok(counts.tables > 0, "the new table went out");
    vips.forEach((_, vip) => {
      const holders = sim.holders(vip);
      assert.equal(holders.length, 1, `VIP ${vip} held once after the failover`);
      assert.notEqual(holders[0], victim);
    });
    const survivors = ids.filter((id) => id !== victim);
    const versions = survivors.map((id) => sim.core(id)!.tableVersion.join("."));
    assert.ok(
      versions.every((v) => v === versions[0]),
      `survivors follow one table: ${versions}`,
    );
    // The crashed node never reports the new table: it is carried while the node is down...
    const before = counts.tables;
    sim.runUntil(6500);
    assert.ok(counts.tables > before, "carried while a configured peer has not reported it");
    // ...and the restarted node gets it at once.
    sim.boot(victim);
    sim.runUntil(9000);
    assert.ok(versionsAgree(sim), "the restarted node follows the coordinator's table");
    const settled = counts.tables;
    sim.runUntil(10000);
    assert.equal(counts.tables, settled, "no table once every node reports it");
  });

  it("a follower that missed the table datagrams gets it on the next round it can hear", () => {
    const sim = cluster();
    sim.runUntil(4000);
    const coordinator = sim.coordinator()!;
    const follower = ids.find((id) => id !== coordinator)!;
    const vip = vips.findIndex((_, i) => sim.holder(i) !== follower);
    const counts = watchTables(sim, coordinator);
    // The coordinator's datagrams to the follower are lost for two rounds, the move's
    // first table among them.
    sim.block(coordinator, follower);
    sim.admin(coordinator, { type: "move", vip: vips[vip]!, node: follower });
    sim.runUntil(sim.nowMs + 2 * timers.heartbeatIntervalMs);
    sim.unblock(coordinator, follower);
    sim.runUntil(sim.nowMs + 3000);
    assert.deepEqual(sim.holders(vip), [follower], "the follower holds the moved VIP");
    assert.ok(versionsAgree(sim), "and follows the coordinator's table");
    assert.ok(counts.tables >= 2, `${counts.tables} heartbeats carried the table`);
  });
});
