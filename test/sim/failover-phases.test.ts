/**
 * The core times the coordinator's phases of a failover (`failover-phase` events, the
 * `floatip_failover_phase_seconds` histogram): how long a failed member was silent before it
 * was declared failed, how long after the old coordinator's last word a new one was elected,
 * and how long a VIP's new owner waited for the old lease. Driven in the simulator, where the
 * expected values follow from the timers.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { profiles } from "../../src/config/profiles.ts";
import type { CoreEvent } from "../../src/core/types.ts";
import { threeNodeCluster } from "../../src/sim/properties.ts";
import type { Simulator } from "../../src/sim/simulator.ts";

const timers = profiles.lan;
type Phase = Extract<CoreEvent, { type: "failover-phase" }>;

/** Collects every node's failover-phase events from now on. */
function phases(sim: Simulator): Phase[] {
  const seen: Phase[] = [];
  for (const node of sim.nodes) {
    const core = sim.core(node.id)!;
    const step = core.step.bind(core);
    core.step = (input) => {
      const output = step(input);
      for (const e of output.events) if (e.type === "failover-phase") seen.push(e);
      return output;
    };
  }
  return seen;
}

describe("failover phases", () => {
  it("an owner crashes: detected after about the suspicion time, then a lease wait", () => {
    const sim = threeNodeCluster(21, timers);
    const coordinator = sim.coordinator()!;
    const owner = sim.nodes.find((n) => n.id !== coordinator && n.addresses.size > 0)!.id;
    const seen = phases(sim);
    sim.crash(owner);
    sim.runUntil(sim.nowMs + 3000);
    const detected = seen.filter((p) => p.phase === "detected");
    assert.equal(detected.length, 1, JSON.stringify(seen));
    assert.ok(
      detected[0]!.ms >= timers.suspectAfterMs && detected[0]!.ms <= timers.suspectAfterMs * 3,
      `detected after ${detected[0]!.ms} ms (suspect after ${timers.suspectAfterMs} ms)`,
    );
    const waits = seen.filter((p) => p.phase === "lease-wait");
    assert.ok(waits.length >= 1, "the crashed owner's VIPs were handed over");
    for (const wait of waits) {
      assert.ok(wait.ms > 0 && wait.ms <= timers.leaseMs * 2, `lease wait ${wait.ms} ms`);
    }
    assert.equal(seen.filter((p) => p.phase === "elected").length, 0, "no election");
  });

  it("the coordinator crashes: the new one reports how long after its last word it won", () => {
    const sim = threeNodeCluster(22, timers);
    const coordinator = sim.coordinator()!;
    const seen = phases(sim);
    sim.crash(coordinator);
    sim.runUntil(sim.nowMs + 3000);
    const elected = seen.filter((p) => p.phase === "elected");
    assert.equal(elected.length, 1, JSON.stringify(seen));
    assert.ok(
      elected[0]!.ms >= timers.electionTimeoutMs && elected[0]!.ms <= timers.electionTimeoutMs * 4,
      `elected ${elected[0]!.ms} ms after the old coordinator's last heartbeat`,
    );
  });
});

describe("failover phases timed by the control loop", () => {
  it("the new owner's loop times the probe, the address add and the first announcement", () => {
    // The agent's own control loop in the simulator's runtime mode: the probe takes the
    // probe timeout, the add the simulated `ip` time (1-4 ms), and the first gratuitous ARP
    // leaves in the same turn as the add's outcome.
    const seen: { node: string; phase: string; ms: number }[] = [];
    const sim = threeNodeCluster(23, timers, {
      runtime: true,
      addressLifetimeMs: 3000,
      onPhase: (node, phase, ms) => seen.push({ node, phase, ms }),
    });
    const coordinator = sim.coordinator()!;
    const owner = sim.nodes.find((n) => n.id !== coordinator && n.addresses.size > 0)!;
    const moved = [...owner.addresses];
    seen.length = 0;
    sim.crash(owner.id);
    sim.runUntil(sim.nowMs + 3000);
    assert.deepEqual(sim.violations, []);
    const takers = new Set(moved.map((vip) => sim.holder(vip)));
    assert.ok(![...takers].includes(owner.id) && !takers.has(undefined), "every VIP moved");
    for (const taker of takers) {
      const of = (phase: string) => seen.filter((p) => p.node === taker && p.phase === phase);
      const mine = moved.filter((vip) => sim.holder(vip) === taker).length;
      assert.equal(of("probe").length, mine, JSON.stringify(seen));
      assert.equal(of("address-added").length, mine, JSON.stringify(seen));
      assert.equal(of("announced").length, mine, JSON.stringify(seen));
      for (const p of of("probe")) {
        // Local time: the probe waits its timeout on a clock within the drift bound.
        assert.ok(
          p.ms >= timers.probeTimeoutMs * 0.95 && p.ms <= timers.probeTimeoutMs + 5,
          JSON.stringify(p),
        );
      }
      for (const p of of("address-added")) assert.ok(p.ms >= 1 && p.ms <= 5, JSON.stringify(p));
      for (const p of of("announced")) assert.ok(p.ms >= 0 && p.ms <= 2, JSON.stringify(p));
    }
  });
});

describe("one failover timeline on every node", () => {
  it("the coordinator's phases and the new owner's reach every node through the heartbeats", () => {
    const sim = threeNodeCluster(25, timers, { runtime: true, addressLifetimeMs: 3000 });
    const coordinator = sim.coordinator()!;
    const owner = sim.nodes.find((n) => n.id !== coordinator && n.addresses.size > 0)!;
    const index = [...owner.addresses][0]!;
    const vip = sim.core(coordinator)!.status(sim.localNow(coordinator)).vips[index]!.address;
    sim.crash(owner.id);
    sim.runUntil(sim.nowMs + 3000);
    const taker = sim.holder(index)!;
    assert.ok(taker && taker !== owner.id, "the VIP moved");
    const marksOn = (id: string) =>
      sim
        .core(id)!
        .status(sim.localNow(id))
        .failoverMarks.filter((m) => m.vip === vip || m.failed === owner.id);
    const summary = (id: string) =>
      marksOn(id)
        .map((m) => `${m.by}:${m.phase}:${m.ms}`)
        .sort();
    const expected = [
      `${coordinator}:detected`,
      `${coordinator}:lease-wait`,
      `${taker}:probe`,
      `${taker}:address-added`,
      `${taker}:announced`,
    ];
    for (const id of [coordinator, taker]) {
      const names = marksOn(id).map((m) => `${m.by}:${m.phase}`);
      for (const e of expected) assert.ok(names.includes(e), `${id} lacks ${e}: ${names}`);
    }
    // The same phases with the same durations, whichever node is asked.
    assert.deepEqual(summary(coordinator), summary(taker));
    const detected = marksOn(taker).find((m) => m.phase === "detected")!;
    assert.equal(detected.failed, owner.id);
    // A minute later they are gone from the reports.
    sim.runUntil(sim.nowMs + 61_000);
    assert.deepEqual(marksOn(taker), []);
  });
});

describe("flap damping in the coordinator's status", () => {
  it("counts a silent member's faults, shows it down with its reason, then its rise", () => {
    const sim = threeNodeCluster(24, timers);
    const coordinator = sim.coordinator()!;
    const member = sim.nodes.find((n) => n.id !== coordinator)!.id;
    const damping = () => sim.core(coordinator)!.status(sim.localNow(coordinator)).damping!;
    const row = () => damping().members.find((m) => m.id === member)!;
    assert.equal(damping().faultsToFail, timers.faultsToFail);
    assert.deepEqual(
      { up: row().up, faults: row().faults },
      { up: true, faults: 0 },
      "a healthy member counts nothing",
    );
    assert.equal(sim.core(member)!.status(sim.localNow(member)).damping, undefined, "followers");
    // Silent long enough to fail: down, with the reason.
    sim.pause(
      member,
      timers.suspectAfterMs + timers.heartbeatIntervalMs * (timers.faultsToFail + 4),
    );
    let sawDown = false;
    let sawRising = false;
    for (let t = 0; t < 3000 && !(sawDown && row().up); t += 10) {
      sim.runUntil(sim.nowMs + 10);
      if (!row().up) {
        sawDown = true;
        assert.equal(row().reason, "not heard");
        assert.ok(row().faults >= timers.faultsToFail);
        if (row().goodStreak > 0) sawRising = true;
      }
    }
    assert.ok(sawDown, "declared down");
    assert.ok(sawRising, "rising before it is up again");
    assert.ok(row().up, "up again after its rise rounds");
  });
});
