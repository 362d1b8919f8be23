/**
 * The control loop withholds what a step composed before a stall: a process stopped between
 * two sends of one step (SIGSTOP, a VM pause) resumes with the next send before its wake timer
 * can tell the core of the stall, so each datagram checks the gap since the step's previous
 * action and one a stall threshold away is withheld with the rest of the step's datagrams.
 * The overdue wake then hands the core the stall before anything else is sent. Pure logic: a
 * scripted core, a platform whose clock jumps where the test stops the process, virtual time.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ArbiterCore } from "../core/arbiter.ts";
import type { Effect, Input, Message } from "../core/types.ts";
import { testLoopOptions, virtualPlatform } from "./control-loop.fake.ts";
import { ControlLoop } from "./control-loop.ts";

const peers = ["n2", "n3", "n4"];
const heartbeat = { type: "heartbeat" } as unknown as Message;

/**
 * `effects` is what the core answers to its first tick; `stopAfter` names the platform call
 * after which the process is stopped for `stoppedMs` (the clock jumps there).
 */
function harness(options: { effects: Effect[]; stopAfter?: string; stoppedMs?: number }) {
  const log: string[] = [];
  let steps = 0;
  const stop = (call: string) => {
    if (call === options.stopAfter) clock.advance(options.stoppedMs ?? 1500);
  };
  const core = {
    sendsWithheld: false,
    step(input: Input): { effects: Effect[]; events: []; wakeAtMs: number } {
      log.push(`core:${input.type}`);
      steps += 1;
      if (steps === 1) {
        stop("core");
        return { effects: options.effects, events: [], wakeAtMs: input.nowMs + 50 };
      }
      // After a stall the real core releases and stays silent; a tick sends a heartbeat.
      const effects: Effect[] =
        input.type === "tick" ? [{ type: "broadcast", message: heartbeat }] : [];
      return { effects, events: [], wakeAtMs: input.nowMs + 50 };
    },
  } as unknown as ArbiterCore;
  const clock = virtualPlatform({
    send: (to, _message, gate) => {
      if (gate !== undefined && !gate.open()) return;
      log.push(`sent:${to}`);
      stop(`send:${to}`);
    },
    // As the transport does: ask before each datagram.
    broadcast: (_message, gate) => {
      for (const to of peers) {
        if (gate !== undefined && !gate.open()) continue;
        log.push(`sent:${to}`);
        stop(`send:${to}`);
      }
    },
    persistVote: () => {
      log.push("vote-file");
      stop("vote-file");
    },
  });
  const platform = clock.platform;
  const logs: { msg: string; fields?: object }[] = [];
  const loop = new ControlLoop({
    ...testLoopOptions,
    core,
    platform,
    log: (_level, msg, fields) => logs.push({ msg, fields }),
  });
  /** Runs the next timer; a timer already overdue runs now (as libuv does after a stop). */
  const fire = () => {
    const timer = clock.next();
    assert.ok(timer, "a timer is armed");
    timer.cancelled = true;
    clock.advance(Math.max(0, timer.dueMs - clock.now()));
    timer.run();
  };
  return { loop, log, logs, fire, now: clock.now };
}

const broadcast: Effect = { type: "broadcast", message: heartbeat };

describe("control loop: what a step composed before a stall is not sent after it", () => {
  it("without a stop, every datagram of the step goes out", () => {
    const h = harness({ effects: [{ type: "send", to: "n2", message: heartbeat }, broadcast] });
    h.loop.step({ type: "tick", nowMs: h.now() });
    assert.deepEqual(h.log, ["core:tick", "sent:n2", "sent:n2", "sent:n3", "sent:n4"]);
    assert.equal(h.loop.monitor.snapshot().datagramsWithheld, 0);
  });

  it("a stop inside a broadcast: the rest of it is withheld, and the core hears of the stall before anything else goes out", () => {
    const h = harness({ effects: [broadcast], stopAfter: "send:n2", stoppedMs: 1500 });
    h.loop.step({ type: "tick", nowMs: h.now() });
    assert.deepEqual(h.log, ["core:tick", "sent:n2"], "n3 and n4 withheld");
    assert.equal(h.loop.monitor.snapshot().datagramsWithheld, 2);
    // The wake timer is overdue by the stop: the next thing that happens is the stall.
    h.fire();
    assert.deepEqual(h.log.slice(2), ["core:stall"]);
    assert.equal(h.loop.monitor.snapshot().stalls, 1);
    const line = h.logs.find((l) => l.msg.includes("stalled"));
    assert.ok(line, "the stall is logged");
    assert.equal((line.fields as { datagramsWithheld?: number }).datagramsWithheld, 2);
  });

  it("a stop between two sends of a step withholds the later ones", () => {
    const h = harness({
      effects: [{ type: "send", to: "n2", message: heartbeat }, broadcast],
      stopAfter: "send:n2",
    });
    h.loop.step({ type: "tick", nowMs: h.now() });
    assert.deepEqual(h.log, ["core:tick", "sent:n2"]);
    assert.equal(h.loop.monitor.snapshot().datagramsWithheld, 3);
  });

  it("a stop while the core composed withholds all of the step's datagrams", () => {
    const h = harness({ effects: [broadcast], stopAfter: "core" });
    h.loop.step({ type: "tick", nowMs: h.now() });
    assert.deepEqual(h.log, ["core:tick"]);
    assert.equal(h.loop.monitor.snapshot().datagramsWithheld, 3);
  });

  it("a slow vote-file write is not a stop: the vote and what follows go out", () => {
    const h = harness({
      effects: [
        { type: "persist-vote", state: { term: 2, votedFor: "n2" } } as unknown as Effect,
        { type: "send", to: "n2", message: heartbeat },
        broadcast,
      ],
      stopAfter: "vote-file",
      stoppedMs: 400,
    });
    h.loop.step({ type: "tick", nowMs: h.now() });
    assert.deepEqual(h.log, ["core:tick", "vote-file", "sent:n2", "sent:n2", "sent:n3", "sent:n4"]);
    assert.equal(h.loop.monitor.snapshot().datagramsWithheld, 0);
  });

  it("a gap just under the stall threshold is not a stop", () => {
    const h = harness({ effects: [broadcast], stopAfter: "send:n2", stoppedMs: 24 });
    h.loop.step({ type: "tick", nowMs: h.now() });
    assert.deepEqual(h.log, ["core:tick", "sent:n2", "sent:n3", "sent:n4"]);
  });
});
