/**
 * Gratuitous ARP (S0 step 3): a node announces a VIP when it acquires it, and again when a
 * lost peer is heard from again (a healed split), since neighbours on the far side may still
 * map the VIP to the MAC of the owner they last saw.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { profiles } from "../../src/config/profiles.ts";
import { Simulator } from "../../src/sim/simulator.ts";

function cluster(): Simulator {
  return new Simulator({
    seed: 7,
    nodes: [
      { id: "n1", weight: 1 },
      { id: "n2", weight: 1 },
      { id: "n3", weight: 1 },
    ],
    vips: [{ address: "198.18.0.100", policy: "round-robin", failback: { mode: "never" } }],
    timers: profiles.lan,
  });
}

describe("gratuitous ARP announcements", () => {
  it("announces on acquisition, and again when a partitioned peer comes back", () => {
    const sim = cluster();
    sim.bootAll();
    sim.runUntil(1500);
    const owner = sim.holder(0);
    assert.ok(owner);
    const onAcquire = sim.announcements.filter((a) => a.node === owner && a.vip === 0);
    assert.equal(onAcquire.length, 1);

    const cutOff = sim.nodes.map((n) => n.id).find((id) => id !== owner)!;
    const rest = sim.nodes.map((n) => n.id).filter((id) => id !== cutOff);
    sim.partition([[cutOff], rest]);
    sim.runUntil(3000);
    assert.equal(sim.holder(0), owner, "the majority side keeps the VIP where it was");
    const beforeHeal = sim.announcements.length;
    sim.heal();
    sim.runUntil(3500);
    const afterHeal = sim.announcements
      .slice(beforeHeal)
      .filter((a) => a.node === owner && a.vip === 0);
    assert.ok(afterHeal.length >= 1, "the owner re-announces its VIP once the split heals");
  });

  it("does not re-announce while nothing changes", () => {
    const sim = cluster();
    sim.bootAll();
    sim.runUntil(1500);
    const count = sim.announcements.length;
    sim.runUntil(5000);
    assert.equal(sim.announcements.length, count);
  });
});
