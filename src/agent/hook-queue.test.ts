import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type HookCall, HookQueue, type HookSkipReport, hookKey } from "./hook-queue.ts";

/** A queue whose calls finish only when the test says so. */
function harness(limit?: number) {
  const ran: string[] = [];
  const reports: HookSkipReport[] = [];
  const gates: (() => void)[] = [];
  let now = 0;
  const queue = new HookQueue({
    run: (call) =>
      new Promise<void>((done) => {
        ran.push(call.args.join(" "));
        gates.push(done);
      }),
    report: (skipped) => reports.push(skipped),
    ...(limit !== undefined ? { limit } : {}),
    reportEveryMs: 1000,
    nowMs: () => now,
  });
  const call = (event: string, argument: string): HookCall => ({
    key: hookKey(event, argument),
    args: [event, argument],
    env: {},
  });
  const finishOne = async () => {
    gates.shift()?.();
    await new Promise((r) => setImmediate(r));
  };
  return {
    queue,
    ran,
    reports,
    call,
    finishOne,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe("notify hook queue", () => {
  it("runs one call at a time, in order", async () => {
    const h = harness();
    h.queue.push(h.call("vip-acquired", "198.18.0.1"));
    h.queue.push(h.call("vip-acquired", "198.18.0.2"));
    assert.deepEqual(h.ran, ["vip-acquired 198.18.0.1"], "the second waits for the first");
    await h.finishOne();
    assert.deepEqual(h.ran, ["vip-acquired 198.18.0.1", "vip-acquired 198.18.0.2"]);
    await h.finishOne();
    await h.queue.idle();
    assert.deepEqual(h.queue.counts, { run: 2, coalesced: 0, dropped: 0 });
  });

  it("a burst about one thing coalesces to its latest state while a call runs", async () => {
    const h = harness();
    h.queue.push(h.call("member-failed", "n3")); // runs at once
    for (let i = 0; i < 200; i += 1) {
      h.queue.push(h.call("role-changed", i % 2 === 0 ? "candidate" : "follower"));
      h.queue.push(h.call(i % 2 === 0 ? "vip-released" : "vip-acquired", "198.18.0.1"));
    }
    h.queue.push(h.call("role-changed", "coordinator"));
    assert.equal(h.queue.waiting, 2, "one waiting call per thing: the role, the VIP");
    while (h.queue.waiting > 0 || h.ran.length < 3) await h.finishOne();
    await h.finishOne();
    await h.queue.idle();
    assert.deepEqual(h.ran, [
      "member-failed n3",
      "vip-acquired 198.18.0.1", // the VIP's last event came before the last role change
      "role-changed coordinator",
    ]);
    assert.deepEqual(h.queue.counts, { run: 3, coalesced: 399, dropped: 0 });
    const total = h.reports.reduce((sum, r) => sum + r.coalesced, 0);
    assert.equal(total, 399, "every coalesced call is reported");
    assert.ok(h.reports[0]!.examples.length > 0 && h.reports[0]!.examples.length <= 10);
  });

  it("beyond its limit drops the oldest waiting call and says so", async () => {
    const h = harness(3);
    h.queue.push(h.call("vip-acquired", "198.18.0.0")); // runs
    for (let i = 1; i <= 5; i += 1) h.queue.push(h.call("vip-acquired", `198.18.0.${i}`));
    assert.equal(h.queue.waiting, 3);
    while (h.ran.length < 4) await h.finishOne();
    await h.finishOne();
    await h.queue.idle();
    assert.deepEqual(h.ran, [
      "vip-acquired 198.18.0.0",
      "vip-acquired 198.18.0.3",
      "vip-acquired 198.18.0.4",
      "vip-acquired 198.18.0.5",
    ]);
    assert.deepEqual(h.queue.counts, { run: 4, coalesced: 0, dropped: 2 });
    const dropped = h.reports.flatMap((r) => r.examples);
    assert.deepEqual(dropped, ["vip-acquired 198.18.0.1", "vip-acquired 198.18.0.2"]);
  });

  it("reports at most once per interval, with the counts of everything skipped meanwhile", async () => {
    const h = harness();
    h.queue.push(h.call("role-changed", "follower")); // runs
    h.queue.push(h.call("role-changed", "candidate"));
    h.queue.push(h.call("role-changed", "coordinator")); // coalesces: first report, at once
    assert.equal(h.reports.length, 1);
    h.queue.push(h.call("role-changed", "follower")); // within the interval: held back
    h.queue.push(h.call("role-changed", "candidate"));
    assert.equal(h.reports.length, 1);
    h.advance(1000);
    h.queue.push(h.call("role-changed", "coordinator"));
    assert.equal(h.reports.length, 2);
    assert.equal(h.reports[1]!.coalesced, 3);
    while (h.queue.waiting > 0) await h.finishOne();
    await h.finishOne();
    await h.queue.idle();
  });

  it("keys: a VIP's acquired, released and conflict share one; other things do not", () => {
    assert.equal(hookKey("vip-acquired", "198.18.0.1"), hookKey("vip-released", "198.18.0.1"));
    assert.equal(hookKey("vip-conflict", "198.18.0.1"), hookKey("vip-released", "198.18.0.1"));
    assert.notEqual(hookKey("vip-acquired", "198.18.0.1"), hookKey("vip-acquired", "198.18.0.2"));
    assert.equal(hookKey("member-failed", "n2"), hookKey("member-recovered", "n2"));
    assert.notEqual(hookKey("member-failed", "n2"), hookKey("member-failed", "n3"));
    assert.equal(hookKey("role-changed", "candidate"), hookKey("role-changed", "coordinator"));
    assert.notEqual(hookKey("relay-switched", "web"), hookKey("relay-switched", "db"));
  });
});
