/**
 * Wall-clock jumps (an NTP step, an operator, a bad RTC). The core is never given wall time:
 * every input carries the node's monotonic clock. The simulated agent reads the wall clock
 * only for its incarnation number when it starts (as the agent does), never below the last
 * one plus one, so a restart after a backward jump still supersedes the old incarnation.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { profiles } from "../../src/config/profiles.ts";
import { Simulator } from "../../src/sim/simulator.ts";

const timers = profiles.lan;
const jumps = [-3_600_000, 3_600_000, -86_400_000, 86_400_000];

function cluster(seed: number): Simulator {
  return new Simulator({
    seed,
    nodes: ["n1", "n2", "n3"].map((id) => ({ id, weight: 1 })),
    vips: ["198.18.0.100", "198.18.0.101", "198.18.0.102"].map((address) => ({
      address,
      policy: "round-robin" as const,
      failback: { mode: "never" as const },
    })),
    timers,
    wallClockIncarnations: true,
    trace: true,
  });
}

/** Faults that exercise every timer (a partition, a pause, an owner kill), jumps or not. */
function run(seed: number, jump: boolean): string[] {
  const sim = cluster(seed);
  sim.bootAll();
  sim.runUntil(2000);
  const coordinator = sim.nodes.find((n) => sim.core(n.id)?.role === "coordinator")!.id;
  const owner = sim.nodes.find((n) => n.id !== coordinator && n.addresses.size > 0)!.id;
  const third = sim.nodes.find((n) => n.id !== coordinator && n.id !== owner)!.id;
  jumps.forEach((delta, i) => {
    sim.at(2000 + i * 700, () => {
      if (!jump) return;
      sim.jumpWallClock(owner, delta);
      sim.jumpWallClock(coordinator, -delta);
    });
  });
  sim.at(2300, () => sim.partition([[third], [coordinator, owner]]));
  sim.at(3000, () => sim.heal());
  sim.at(3500, () => sim.pause(coordinator, timers.leaseMs * 2));
  sim.at(4500, () => sim.killAgent(owner, 50));
  sim.runUntil(7000);
  assert.deepEqual(sim.violations, []);
  return sim.trace.filter((line) => !line.includes("wall clock jumps"));
}

describe("wall-clock jumps", () => {
  it("jumps of an hour and a day on the owner and the coordinator change nothing", () => {
    for (const seed of [1, 2, 3]) {
      const steady = run(seed, false);
      const jumped = run(seed, true);
      assert.ok(steady.some((line) => line.includes("becomes coordinator in term 2")));
      assert.deepEqual(jumped, steady, `seed ${seed}`);
    }
  });

  it("a node restarted after its wall clock went back an hour rejoins with a newer incarnation", () => {
    for (const seed of [1, 2, 3]) {
      const sim = cluster(seed);
      sim.bootAll();
      sim.runUntil(2000);
      const node = sim.nodes.find((n) => sim.core(n.id)?.role !== "coordinator")!;
      const before = node.incarnation;
      sim.jumpWallClock(node.id, -3_600_000);
      sim.crash(node.id);
      sim.runUntil(2200);
      sim.boot(node.id);
      assert.ok(node.incarnation > before, `seed ${seed}: incarnation ${node.incarnation}`);
      // Peers must take its heartbeats for the newer incarnation: a VIP moved to it is held.
      sim.runUntil(3500);
      const via = sim.nodes.find((n) => n.id !== node.id)!.id;
      sim.admin(via, { type: "move", vip: "198.18.0.100", node: node.id });
      sim.runUntil(5500);
      assert.deepEqual(sim.violations, []);
      assert.equal(sim.holder(0), node.id, `seed ${seed}: ${sim.trace.slice(-30).join("\n")}`);
    }
  });
});
