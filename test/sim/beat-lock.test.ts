/**
 * A follower's rounds in step with its coordinator's (src/core/node.ts,
 * `#answersCoordinatorBeat`): it sends its heartbeat in the step that delivers the
 * coordinator's, at most once per half interval, and its own timer (an interval and a tenth)
 * fires only when that heartbeat is late. Measured on the real core's effects and inputs in
 * the simulator: where the heartbeats leave from, how often a follower wakes on its timer,
 * and that the gaps between a follower's heartbeats stay below what its peers count as a miss,
 * also while its coordinator is dead. (Reading on the tick, a follower keeps its own rounds:
 * it wakes on its timer anyway; receive-on-tick.test.ts.)
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { profiles } from "../../src/config/profiles.ts";
import type { HeartbeatMessage, Input, StepOutput } from "../../src/core/types.ts";
import { Simulator } from "../../src/sim/simulator.ts";

const timers = profiles.lan;
const ids = ["n1", "n2", "n3"];

function threeNodes(seed: number) {
  const sim = new Simulator({
    seed,
    nodes: ids.map((id) => ({ id, weight: 1 })),
    vips: ["198.18.0.100", "198.18.0.101", "198.18.0.102"].map((address) => ({
      address,
      policy: "round-robin" as const,
      failback: { mode: "never" as const },
    })),
    timers,
    delayMs: [1, 3],
  });
  sim.bootAll();
  sim.runUntil(3000);
  return sim;
}

interface Sent {
  atMs: number;
  /** The step that sent it delivered a heartbeat of the sender's coordinator. */
  onBeat: boolean;
}

/** Every heartbeat a node sends and every timer step it takes, from the real core. */
function watch(sim: Simulator) {
  const sent = new Map<string, Sent[]>(ids.map((id) => [id, []]));
  const ticks = new Map<string, number>(ids.map((id) => [id, 0]));
  for (const id of ids) {
    const core = sim.core(id);
    if (!core) continue;
    const step = core.step.bind(core);
    core.step = (input: Input): StepOutput => {
      const coordinator = core.coordinator;
      const message =
        input.type === "message" ? (input.message as Partial<HeartbeatMessage>) : undefined;
      const onBeat =
        input.type === "message" &&
        message?.type === "heartbeat" &&
        input.from === coordinator &&
        message.role === "coordinator";
      if (input.type === "tick") ticks.set(id, ticks.get(id)! + 1);
      const output = step(input);
      if (output.effects.some((e) => e.type === "broadcast" && e.message.type === "heartbeat")) {
        sent.get(id)!.push({ atMs: input.nowMs, onBeat });
      }
      return output;
    };
  }
  return { sent, ticks };
}

/** Gaps larger than this count as a missed heartbeat at the receiver (missedIn). */
const missGapMs = 1.8 * timers.heartbeatIntervalMs;

function maxGap(times: readonly number[]): number {
  let gap = 0;
  for (let i = 1; i < times.length; i += 1) gap = Math.max(gap, times[i]! - times[i - 1]!);
  return gap;
}

describe("a follower's rounds follow its coordinator's", () => {
  for (const seed of [1, 2, 3]) {
    it(`answers each coordinator heartbeat at once and seldom wakes on its own timer (seed ${seed})`, () => {
      const sim = threeNodes(seed);
      const coordinator = sim.coordinator();
      assert.ok(coordinator, "a coordinator after 3 s");
      const { sent, ticks } = watch(sim);
      const from = sim.nowMs;
      sim.runUntil(from + 5000);
      const rounds = 5000 / timers.heartbeatIntervalMs;
      for (const id of ids) {
        const own = sent.get(id)!;
        // One heartbeat a round, not one on the beat and another on the timer.
        assert.ok(
          own.length >= rounds * 0.9 && own.length <= rounds * 1.1,
          `${id}: ${own.length} heartbeats in ${rounds} rounds`,
        );
        if (id === coordinator) continue;
        const onBeat = own.filter((s) => s.onBeat).length;
        assert.ok(
          onBeat >= own.length * 0.95,
          `${id}: ${onBeat} of ${own.length} heartbeats sent on the coordinator's`,
        );
        // Its timer steps are the coordinator's timer steps' tenth at most: the beat drives it.
        assert.ok(
          ticks.get(id)! <= rounds * 0.1,
          `${id}: ${ticks.get(id)} timer steps in ${rounds} rounds (the coordinator: ${ticks.get(coordinator)})`,
        );
        assert.ok(
          maxGap(own.map((s) => s.atMs)) < missGapMs,
          `${id}: a gap of ${maxGap(own.map((s) => s.atMs))} ms between its heartbeats`,
        );
      }
    });
  }

  it("keeps heartbeating on its own timer, without a counted miss, when the coordinator dies", () => {
    const sim = threeNodes(4);
    const coordinator = sim.coordinator()!;
    const { sent } = watch(sim);
    const from = sim.nowMs;
    sim.runUntil(from + 1000);
    sim.crash(coordinator);
    sim.runUntil(from + 4000);
    const next = sim.coordinator();
    assert.ok(next && next !== coordinator, `a new coordinator (${next})`);
    for (const id of ids) {
      if (id === coordinator) continue;
      const times = sent.get(id)!.map((s) => s.atMs);
      assert.ok(times.length >= 3000 / timers.heartbeatIntervalMs, `${id}: ${times.length} sent`);
      assert.ok(maxGap(times) < missGapMs, `${id}: a gap of ${maxGap(times)} ms around the crash`);
    }
  });
});
