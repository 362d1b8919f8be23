import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { REPLAY_WINDOW_SIZE, ReplayGuard, type ReplayVerdict } from "./replay-guard.ts";

function feed(
  guard: ReplayGuard,
  from: string,
  incarnation: number,
  seqs: number[],
): ReplayVerdict[] {
  return seqs.map((seq) => guard.check(from, incarnation, seq));
}

/** The obvious version: remember every accepted (incarnation, seq); no bitmap, no window maths. */
class ReferenceGuard {
  readonly #state = new Map<string, { incarnation: number; highest: number; seen: Set<number> }>();
  check(from: string, incarnation: number, seq: number): ReplayVerdict {
    const state = this.#state.get(from);
    if (state === undefined || incarnation > state.incarnation) {
      this.#state.set(from, { incarnation, highest: seq, seen: new Set([seq]) });
      return undefined;
    }
    if (incarnation < state.incarnation) return "stale-incarnation";
    if (state.seen.has(seq)) return "replay";
    if (seq <= state.highest - REPLAY_WINDOW_SIZE) return "replay";
    state.seen.add(seq);
    state.highest = Math.max(state.highest, seq);
    return undefined;
  }
}

describe("replay guard", () => {
  it("accepts each sequence number once and rejects duplicates", () => {
    const guard = new ReplayGuard();
    assert.deepEqual(feed(guard, "a", 1, [1, 2, 2, 3, 1, 3]), [
      undefined,
      undefined,
      "replay",
      undefined,
      "replay",
      "replay",
    ]);
  });

  it("accepts reordering inside the window", () => {
    const guard = new ReplayGuard();
    assert.deepEqual(feed(guard, "a", 1, [10, 7, 9, 8, 70, 8, 7, 11]), [
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      "replay",
      "replay",
      undefined,
    ]);
  });

  it("rejects numbers that fell out of the window, even if never seen", () => {
    const guard = new ReplayGuard();
    const highest = 1000;
    assert.equal(guard.check("a", 1, highest), undefined);
    assert.equal(guard.check("a", 1, highest - REPLAY_WINDOW_SIZE), "replay");
    assert.equal(guard.check("a", 1, highest - REPLAY_WINDOW_SIZE + 1), undefined);
    assert.equal(guard.check("a", 1, 1), "replay");
    // A jump of more than a window clears the bitmap; the old highest is then outside it.
    assert.equal(guard.check("a", 1, highest + 500), undefined);
    assert.equal(guard.check("a", 1, highest), "replay");
    assert.equal(guard.check("a", 1, highest + 499), undefined);
  });

  it("resets the window when the sender restarts with a higher incarnation", () => {
    const guard = new ReplayGuard();
    feed(guard, "a", 100, [1, 2, 3, 500]);
    assert.equal(guard.check("a", 200, 1), undefined);
    assert.equal(guard.check("a", 200, 2), undefined);
    assert.equal(guard.check("a", 200, 1), "replay");
    assert.equal(guard.incarnationOf("a"), 200);
  });

  it("rejects a lower incarnation as stale, even with fresh sequence numbers", () => {
    const guard = new ReplayGuard();
    feed(guard, "a", 200, [1]);
    assert.equal(guard.check("a", 100, 2), "stale-incarnation");
    assert.equal(guard.check("a", 100, 1000), "stale-incarnation");
    assert.equal(guard.check("a", 200, 2), undefined);
  });

  it("keeps senders apart and forgets a removed sender", () => {
    const guard = new ReplayGuard();
    assert.equal(guard.check("a", 5, 1), undefined);
    assert.equal(guard.check("b", 1, 1), undefined);
    assert.equal(guard.check("b", 1, 1), "replay");
    guard.forget("a");
    assert.equal(guard.incarnationOf("a"), undefined);
    assert.equal(guard.check("a", 1, 1), undefined);
  });

  it("agrees with a Set-based reference on arbitrary traffic", () => {
    const event = fc.record({
      from: fc.constantFrom("a", "b"),
      incarnation: fc.integer({ min: 1, max: 4 }),
      // Small range for many collisions, plus occasional big jumps past the window.
      seq: fc.oneof(fc.integer({ min: 1, max: 150 }), fc.integer({ min: 1, max: 2 ** 40 })),
    });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 400 }), (events) => {
        const guard = new ReplayGuard();
        const reference = new ReferenceGuard();
        for (const { from, incarnation, seq } of events) {
          assert.equal(
            guard.check(from, incarnation, seq),
            reference.check(from, incarnation, seq),
          );
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("agrees with the reference on a mostly increasing stream with local reordering", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -80, max: 5 }), { maxLength: 500 }), (steps) => {
        const guard = new ReplayGuard();
        const reference = new ReferenceGuard();
        let base = 100;
        for (const step of steps) {
          base += Math.max(step, 0);
          const seq = Math.max(1, base + Math.min(step, 0));
          assert.equal(guard.check("a", 1, seq), reference.check("a", 1, seq));
        }
      }),
      { numRuns: 500 },
    );
  });
});
