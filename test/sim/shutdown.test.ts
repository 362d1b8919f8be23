/**
 * An orderly stop (SIGTERM) of the coordinator: it hands its VIPs over, resigns and exits.
 * A restart is not a drain: the node must be eligible again once it is back, as a follower
 * stopped the same way is, without anyone enabling it by hand.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { profiles } from "../../src/config/profiles.ts";
import { threeNodeCluster } from "../../src/sim/properties.ts";
import type { Simulator } from "../../src/sim/simulator.ts";

const timers = profiles.lan;

function memberState(sim: Simulator, coordinator: string, id: string): string | undefined {
  return sim
    .core(coordinator)!
    .status(sim.nowMs)
    .members.find((m) => m.id === id)?.state;
}

describe("a coordinator stopped with SIGTERM and started again", () => {
  for (const runtime of [false, true]) {
    it(`is a healthy member again, not drained${runtime ? " (through the control loop)" : ""}`, () => {
      for (const seed of [1, 2, 3, 4, 5]) {
        const sim = threeNodeCluster(seed, timers, runtime ? { runtime: true } : {});
        const first = sim.coordinator();
        assert.ok(first, `seed ${seed}: a coordinator after boot`);
        sim.shutdown(first);
        sim.runUntil(sim.nowMs + 3000);
        assert.ok(!sim.agentRunning(first), `seed ${seed}: ${first} exited`);
        const second = sim.coordinator();
        assert.ok(second && second !== first, `seed ${seed}: another coordinator`);
        assert.equal(memberState(sim, second, first), "failed", `seed ${seed}: gone, not drained`);
        sim.boot(first);
        sim.runUntil(sim.nowMs + 3000);
        assert.deepEqual(sim.violations, [], sim.trace.join("\n"));
        const now = sim.coordinator();
        assert.ok(now, `seed ${seed}: a coordinator at the end`);
        assert.equal(
          memberState(sim, now, first),
          "healthy",
          `seed ${seed}: ${first} is eligible again\n${sim.trace.slice(-30).join("\n")}`,
        );
      }
    });
  }
});
