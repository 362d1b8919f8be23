/**
 * The coordinator refuses administrative commands that cannot do what they say, on its own
 * state (the agent refuses them earlier from its view of the table, but two operators, or a
 * view one round old, can still send one): a move to a drained or failed node, and draining
 * the last eligible node unless forced. Nothing changes when it refuses.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { profiles } from "../../src/config/profiles.ts";
import { threeNodeCluster } from "../../src/sim/properties.ts";

describe("administrative refusals in the coordinator", () => {
  it("refuses a move to a drained node and the last drain, and drains it with force", () => {
    const sim = threeNodeCluster(11, profiles.lan);
    const coordinator = sim.coordinator()!;
    const [a, b] = ["n1", "n2", "n3"].filter((id) => id !== coordinator) as [string, string];
    sim.admin(coordinator, { type: "drain", node: a });
    sim.runUntil(sim.nowMs + 1000);
    sim.admin(coordinator, { type: "move", vip: "198.18.0.100", node: a });
    sim.runUntil(sim.nowMs + 500);
    assert.ok(
      sim.trace.some((l) => l.includes(`rejects`) && l.includes(`${a} is drained`)),
      sim.trace.slice(-20).join("\n"),
    );
    sim.admin(coordinator, { type: "drain", node: b });
    sim.runUntil(sim.nowMs + 1000);
    const before = sim.core(coordinator)!.status(sim.nowMs);
    sim.admin(coordinator, { type: "drain", node: coordinator });
    sim.runUntil(sim.nowMs + 1000);
    assert.ok(
      sim.trace.some((l) => l.includes(`${coordinator} is the last eligible node`)),
      "the last drain is refused",
    );
    const after = sim.core(coordinator)!.status(sim.nowMs);
    assert.deepEqual(
      after.vips.map((v) => v.owner),
      before.vips.map((v) => v.owner),
      "nothing moved",
    );
    for (const vip of after.vips) assert.equal(vip.owner, coordinator);
    sim.admin(coordinator, { type: "drain", node: coordinator, force: true });
    sim.runUntil(sim.nowMs + 2000);
    assert.deepEqual(sim.violations, [], sim.trace.join("\n"));
    for (const vip of sim.core(coordinator)!.status(sim.nowMs).vips) {
      assert.equal(vip.owner, undefined, "forced: every VIP is left without a holder");
    }
  });
});
