import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  canonicalJson,
  compareStates,
  createRecord,
  merge,
  nextAttempt,
  type Operation,
  observationFor,
  parseOperation,
  parseRecord,
  type RequestRecord,
  type RequestState,
  resolveOutcome,
} from "./request-record.ts";

const operation: Operation = { op: "create", name: "vol", sizeBytes: 1024 };

const stateArb: fc.Arbitrary<RequestState> = fc.oneof(
  fc.constant({ state: "accepted" } as const),
  fc.record({
    state: fc.constantFrom("running" as const, "outcome_unknown" as const),
    node: fc.constantFrom("a", "b", "c"),
    attempt: fc.integer({ min: 1, max: 4 }),
  }),
  fc.record({
    state: fc.constant("succeeded" as const),
    result: fc.oneof(fc.constant(null), fc.record({ sizeBytes: fc.integer({ min: 1, max: 9 }) })),
  }),
  fc.record({
    state: fc.constant("failed" as const),
    error: fc.record({
      code: fc.constantFrom("EXISTS" as const, "NOT_FOUND" as const),
      message: fc.constantFrom("x", "y"),
    }),
  }),
);

const recordArb: fc.Arbitrary<RequestRecord> = fc.record({
  id: fc.constant("r1"),
  operation: fc.constant(operation),
  acceptedAtMs: fc.integer({ min: 0, max: 3 }),
  acceptedBy: fc.constantFrom("a", "b"),
  state: stateArb,
});

const same = (a: RequestRecord, b: RequestRecord) => canonicalJson(a) === canonicalJson(b);

describe("request record lattice", () => {
  it("merge is commutative", () => {
    fc.assert(fc.property(recordArb, recordArb, (a, b) => same(merge(a, b), merge(b, a))));
  });

  it("merge is associative", () => {
    fc.assert(
      fc.property(recordArb, recordArb, recordArb, (a, b, c) =>
        same(merge(merge(a, b), c), merge(a, merge(b, c))),
      ),
    );
  });

  it("merge is idempotent and never goes backwards", () => {
    fc.assert(
      fc.property(recordArb, recordArb, (a, b) => {
        const m = merge(a, b);
        assert.ok(same(merge(a, a), a));
        assert.ok(compareStates(m.state, a.state) >= 0);
        assert.ok(compareStates(m.state, b.state) >= 0);
        assert.ok(same(merge(m, a), m));
      }),
    );
  });

  it("orders accepted < running < final and ties running by (attempt, node)", () => {
    const accepted: RequestState = { state: "accepted" };
    const r1b: RequestState = { state: "running", node: "b", attempt: 1 };
    const r1c: RequestState = { state: "running", node: "c", attempt: 1 };
    const u1b: RequestState = { state: "outcome_unknown", node: "b", attempt: 1 };
    const r2a: RequestState = { state: "running", node: "a", attempt: 2 };
    const done: RequestState = { state: "succeeded", result: null };
    const order = [accepted, r1b, r1c, u1b, r2a, done];
    for (let i = 0; i + 1 < order.length; i++) {
      assert.ok(compareStates(order[i]!, order[i + 1]!) < 0, `${i} before ${i + 1}`);
    }
  });

  it("refuses to merge different operations under one id", () => {
    const a = createRecord("r1", operation, "a", 1);
    const b = createRecord("r1", { op: "delete", name: "vol" }, "a", 1);
    assert.throws(() => merge(a, b));
  });
});

describe("idempotent re-drive", () => {
  const first = { node: "a", attempt: 1, reDrive: false };
  const again = { node: "b", attempt: 2, reDrive: true };
  const fail = (code: "EXISTS" | "NOT_FOUND" | "TIMEOUT" | "BUSY") =>
    ({ ok: false, error: { code, message: code } }) as const;

  it("treats a record executed by a node other than its acceptor as a re-drive", () => {
    const record = createRecord("r1", operation, "a", 1);
    assert.equal(nextAttempt(record, "a").reDrive, false);
    assert.equal(nextAttempt(record, "b").reDrive, true);
    const running = { ...record, state: { state: "running", node: "a", attempt: 1 } } as const;
    assert.deepEqual(nextAttempt(running, "a"), {
      state: { state: "running", node: "a", attempt: 2 },
      reDrive: true,
    });
  });

  it("create: an existing image succeeds only when this request made it, on any attempt", () => {
    const mine = new Map([["vol", { name: "vol", sizeBytes: 1024, createdBy: "r-1" }]]);
    // A first attempt meets its own image when another node ran it unbeknown to this journal.
    assert.deepEqual(resolveOutcome(operation, first, fail("EXISTS"), mine, "r-1"), {
      state: "succeeded",
      result: { name: "vol", sizeBytes: 1024 },
    });
    assert.equal(resolveOutcome(operation, first, fail("EXISTS"), mine, "r-2").state, "failed");
    assert.deepEqual(observationFor(operation, fail("EXISTS")), ["vol"]);
    const done = resolveOutcome(operation, again, fail("EXISTS"), mine, "r-1");
    assert.deepEqual(done, { state: "succeeded", result: { name: "vol", sizeBytes: 1024 } });
    const other = new Map([["vol", { name: "vol", sizeBytes: 2048, createdBy: "r-1" }]]);
    assert.equal(resolveOutcome(operation, again, fail("EXISTS"), other, "r-1").state, "failed");
    // Same name and size, another client's request: not this request's effect.
    assert.equal(resolveOutcome(operation, again, fail("EXISTS"), mine, "r-2").state, "failed");
    const unmarked = new Map([["vol", { name: "vol", sizeBytes: 1024 }]]);
    assert.equal(resolveOutcome(operation, again, fail("EXISTS"), unmarked, "r-1").state, "failed");
  });

  it("delete and snap-delete: absent means done on a re-drive", () => {
    const del: Operation = { op: "delete", name: "vol" };
    assert.equal(resolveOutcome(del, first, fail("NOT_FOUND")).state, "failed");
    assert.equal(resolveOutcome(del, again, fail("NOT_FOUND")).state, "succeeded");
    const sd: Operation = { op: "snap-delete", name: "vol", snapshot: "s" };
    assert.equal(resolveOutcome(sd, again, fail("NOT_FOUND")).state, "succeeded");
    assert.equal(resolveOutcome(sd, again, fail("BUSY")).state, "failed");
  });

  it("FENCED is never final: the VIP's new holder decides the request", () => {
    const del: Operation = { op: "delete", name: "vol" };
    const fenced = { ok: false, error: { code: "FENCED", message: "blocklisted" } } as const;
    assert.equal(resolveOutcome(del, first, fenced).state, "outcome_unknown");
    assert.equal(resolveOutcome(del, again, fenced).state, "outcome_unknown");
  });

  it("BUSY on a re-drive is tried again while a dead predecessor's watch may hold the image", () => {
    const del: Operation = { op: "delete", name: "vol" };
    const retry = resolveOutcome(del, again, fail("BUSY"), new Map(), "r-1", true);
    assert.deepEqual(retry, { state: "outcome_unknown", node: "b", attempt: 2 });
    assert.equal(resolveOutcome(del, again, fail("BUSY"), new Map(), "r-1", false).state, "failed");
    // A first attempt had no predecessor: BUSY is the answer.
    assert.equal(resolveOutcome(del, first, fail("BUSY"), new Map(), "r-1", true).state, "failed");
  });

  it("snap-create, copy and clone: an existing result means done on a re-drive when this request made it", () => {
    const sc: Operation = { op: "snap-create", name: "vol", snapshot: "s" };
    assert.deepEqual(observationFor(sc, fail("EXISTS")), ["vol@s"]);
    const snap = new Map([["vol@s", { name: "vol@s", sizeBytes: 0, createdBy: "r-1" }]]);
    assert.equal(resolveOutcome(sc, again, fail("EXISTS"), snap, "r-1").state, "succeeded");
    // Another request's snapshot of that name, or one without a record: not this one's effect.
    assert.equal(resolveOutcome(sc, again, fail("EXISTS"), snap, "r-2").state, "failed");
    assert.equal(resolveOutcome(sc, again, fail("EXISTS")).state, "failed");
    const cp: Operation = { op: "copy", name: "vol", target: "v2" };
    const sizes = new Map([
      ["vol", { name: "vol", sizeBytes: 5 }],
      ["v2", { name: "v2", sizeBytes: 5, createdBy: "r-1" }],
    ]);
    assert.deepEqual(observationFor(cp, fail("EXISTS")), ["v2", "vol"]);
    assert.equal(resolveOutcome(cp, again, fail("EXISTS"), sizes, "r-1").state, "succeeded");
    assert.equal(resolveOutcome(cp, again, fail("EXISTS"), sizes, "r-9").state, "failed");
    const cl: Operation = { op: "clone", name: "vol", snapshot: "s", target: "v3" };
    assert.equal(resolveOutcome(cl, again, fail("EXISTS"), new Map(), "r-1").state, "failed");
    const v3 = new Map([["v3", { name: "v3", sizeBytes: 5, createdBy: "r-1" }]]);
    assert.equal(resolveOutcome(cl, again, fail("EXISTS"), v3, "r-1").state, "succeeded");
    assert.equal(resolveOutcome(cl, again, fail("EXISTS"), v3, "r-9").state, "failed");
  });

  it("a backend timeout is outcome_unknown, never failed", () => {
    assert.deepEqual(resolveOutcome(operation, first, fail("TIMEOUT")), {
      state: "outcome_unknown",
      node: "a",
      attempt: 1,
    });
  });

  it("read-only and resize operations are simply run again", () => {
    const rs: Operation = { op: "resize", name: "vol", sizeBytes: 10 };
    assert.equal(
      resolveOutcome(rs, again, { ok: true, result: { sizeBytes: 10 } }).state,
      "succeeded",
    );
    assert.equal(resolveOutcome(rs, again, fail("NOT_FOUND")).state, "failed");
  });
});

describe("parsing", () => {
  it("accepts valid operations and reports every problem of invalid ones", () => {
    assert.deepEqual(parseOperation({ op: "create", name: "v1", sizeBytes: 10 }), {
      ok: true,
      value: { op: "create", name: "v1", sizeBytes: 10 },
    });
    const bad = parseOperation({ op: "create", name: "../x", sizeBytes: -1, extra: 1 });
    assert.equal(bad.ok, false);
    if (!bad.ok) {
      assert.equal(bad.error.code, "INVALID_REQUEST");
      assert.match(bad.error.message, /name/);
      assert.match(bad.error.message, /sizeBytes/);
      assert.match(bad.error.message, /extra/);
    }
    assert.equal(parseOperation({ op: "format" }).ok, false);
  });

  it("round-trips records through JSON", () => {
    fc.assert(
      fc.property(recordArb, (r) => {
        const parsed = parseRecord(JSON.parse(JSON.stringify(r)));
        assert.ok(parsed.ok);
        if (parsed.ok) assert.ok(same(parsed.value, r));
      }),
    );
  });
});
