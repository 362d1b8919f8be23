/**
 * The control loop with `readOnTick` (config `receive: on-tick`), on a fake platform whose
 * socket is a queue: what queued is read at every wake-up before the tick (so the tick never
 * judges a peer by a silence that sat unread), the loop wakes at least once per heartbeat
 * interval whatever the core asks, and after a stall the core hears of the stall first, then
 * the datagrams, then the tick. Pure logic: a recording core, virtual time.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ArbiterCore } from "../core/arbiter.ts";
import type { Input, Message, StepOutput } from "../core/types.ts";
import { testLoopOptions, virtualPlatform } from "./control-loop.fake.ts";
import { ControlLoop } from "./control-loop.ts";

function harness(options: { readOnTick: boolean; coreWakeInMs: number; drain?: boolean }) {
  const socket: { from: string; message: Message }[] = [];
  const inputs: string[] = [];
  let withheld = false;
  const core = {
    get sendsWithheld() {
      return withheld;
    },
    step(input: Input): StepOutput {
      inputs.push(input.type === "message" ? `message:${input.from}` : input.type);
      // As the real core after a stall that outlived its lease: silent until released.
      if (input.type === "stall") withheld = true;
      return { effects: [], events: [], wakeAtMs: input.nowMs + options.coreWakeInMs };
    },
  } as unknown as ArbiterCore;
  let loop: ControlLoop | undefined;
  const clock = virtualPlatform(
    options.drain === false
      ? {}
      : {
          drainDatagrams: () => {
            for (const { from, message } of socket.splice(0)) loop?.receive(from, message);
          },
        },
  );
  const platform = clock.platform;
  loop = new ControlLoop({
    ...testLoopOptions,
    core,
    platform,
    readOnTick: options.readOnTick,
  });
  const next = clock.next;
  /** Runs the next timer at `atMs` (default: when it is due). */
  const fire = (atMs?: number) => {
    const timer = next();
    assert.ok(timer, "a timer is armed");
    timer.cancelled = true;
    clock.advance((atMs ?? timer.dueMs) - clock.now());
    timer.run();
    // Whatever it queued with `soon` runs in the same turn.
    for (let t = next(); t && t.dueMs <= clock.now(); t = next()) {
      t.cancelled = true;
      t.run();
    }
  };
  const arrive = (from: string) =>
    socket.push({ from, message: { type: "heartbeat" } as unknown as Message });
  return { loop, core, inputs, arrive, fire, next, advance: clock.advance, now: clock.now };
}

describe("control loop, reading on the tick", () => {
  it("reads what queued at the wake-up, before the tick, and nothing in between", () => {
    const h = harness({ readOnTick: true, coreWakeInMs: 50 });
    h.loop.step({ type: "tick", nowMs: h.now() });
    h.inputs.length = 0;
    h.arrive("n2");
    h.arrive("n3");
    assert.deepEqual(h.inputs, [], "an arriving datagram runs nothing");
    h.fire();
    assert.deepEqual(h.inputs, ["message:n2", "message:n3", "tick"]);
  });

  it("wakes at least once per heartbeat interval even when the core asks for later", () => {
    const h = harness({ readOnTick: true, coreWakeInMs: 10_000 });
    h.loop.step({ type: "tick", nowMs: h.now() });
    assert.equal(h.next()!.dueMs - h.now(), 50);
    const reading = harness({ readOnTick: false, coreWakeInMs: 10_000 });
    reading.loop.step({ type: "tick", nowMs: reading.now() });
    assert.equal(
      reading.next()!.dueMs - reading.now(),
      10_000,
      "as datagrams come: the core's time",
    );
  });

  it("after a stall: the stall first, then what queued, then the tick", () => {
    const h = harness({ readOnTick: true, coreWakeInMs: 50 });
    h.loop.step({ type: "tick", nowMs: h.now() });
    h.inputs.length = 0;
    h.arrive("n2");
    const due = h.next()!.dueMs;
    h.fire(due + 400); // woke 400 ms late: a stall
    assert.deepEqual(h.inputs, ["stall", "message:n2", "tick"]);
  });

  it("refuses readOnTick on a platform that cannot drain", () => {
    assert.throws(
      () => harness({ readOnTick: true, coreWakeInMs: 50, drain: false }),
      /readOnTick needs a platform with drainDatagrams/,
    );
  });
});

describe("control loop, datagrams that bypass the core", () => {
  it("an overdue wake is a stall: the core hears it before such a datagram may go, and it may not while the core withholds sends", () => {
    for (const readOnTick of [false, true]) {
      const h = harness({ readOnTick, coreWakeInMs: 50 });
      h.loop.step({ type: "tick", nowMs: h.now() });
      h.inputs.length = 0;
      assert.equal(h.loop.maySendNow(), true, "on time: nothing to report, sends allowed");
      assert.deepEqual(h.inputs, []);
      h.advance(400); // the process was stopped; its timer has not run yet
      assert.equal(h.loop.maySendNow(), false, "withheld once the core heard of the stall");
      assert.deepEqual(h.inputs, ["stall"], `readOnTick ${readOnTick}: the stall first`);
    }
  });
});
