import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Failback, PlacementPolicy } from "../../config/types.ts";
import { rendezvousScore } from "./hash.ts";
import { place } from "./place.ts";
import type { PlacementInput, PlacementMember, PlacementVip } from "./types.ts";

// ---------- builders for example tests ----------

function member(id: string, options: Partial<PlacementMember> = {}): PlacementMember {
  return { id, weight: 1, eligible: true, eligibleSinceMs: 0, ...options };
}

function vip(n: number, options: Partial<PlacementVip> = {}): PlacementVip {
  return {
    address: `198.18.0.${n}`,
    policy: "round-robin",
    failback: { mode: "never" },
    ...options,
  };
}

function input(options: Partial<PlacementInput> & Pick<PlacementInput, "vips" | "members">) {
  return {
    previous: options.vips.map(() => undefined),
    pins: new Map<number, string>(),
    roundRobinCursor: 0,
    nowMs: 0,
    ...options,
  } satisfies PlacementInput;
}

const threeNodes = [member("n1"), member("n2"), member("n3")];

// ---------- reference implementations (deliberately naive) ----------

function byIdAscending(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function referenceWeighted(members: readonly PlacementMember[]): string | undefined {
  const sorted = members
    .filter((m) => m.eligible)
    .sort((a, b) => (a.weight !== b.weight ? b.weight - a.weight : byIdAscending(a.id, b.id)));
  return sorted[0]?.id;
}

function referenceHash(address: string, members: readonly PlacementMember[]): string | undefined {
  let best: PlacementMember | undefined;
  for (const m of members) {
    if (!m.eligible) continue;
    if (best === undefined) {
      best = m;
      continue;
    }
    const score = rendezvousScore(address, m.id);
    const bestScore = rendezvousScore(address, best.id);
    if (score > bestScore || (score === bestScore && m.id < best.id)) best = m;
  }
  return best?.id;
}

/**
 * Reference for rules 1 and 4 only (no pins, no preferred nodes): keep an eligible previous
 * owner, otherwise pick by policy. Round-robin deals from the list of eligible members in the
 * configuration order rotated to start at the cursor, k-th orphan to entry k modulo its length.
 */
function referencePlace(x: PlacementInput): { owners: (string | undefined)[]; cursor: number } {
  const n = x.members.length;
  const start = n === 0 ? 0 : ((x.roundRobinCursor % n) + n) % n;
  const indexed = x.members.map((m, position) => ({ m, position }));
  const dealOrder = [...indexed.slice(start), ...indexed.slice(0, start)].filter(
    (e) => e.m.eligible,
  );
  let dealt = 0;
  let cursor = start;
  const owners = x.vips.map((v, i) => {
    const previous = x.previous[i];
    if (x.members.some((m) => m.id === previous && m.eligible)) return previous;
    if (v.policy === "weighted") return referenceWeighted(x.members);
    if (v.policy === "hash") return referenceHash(v.address, x.members);
    if (dealOrder.length === 0) return undefined;
    const entry = dealOrder[dealt % dealOrder.length]!;
    dealt += 1;
    cursor = (entry.position + 1) % n;
    return entry.m.id;
  });
  return { owners, cursor };
}

// ---------- generators for property tests ----------

const policies: PlacementPolicy[] = ["round-robin", "weighted", "hash"];
const failbacks: Failback[] = [
  { mode: "immediate" },
  { mode: "never" },
  { mode: "after", afterMs: 1000 },
  { mode: "after", afterMs: 0 },
];

/** A reference to a member: its index modulo the member count, or a node that is not a member. */
const reference = fc.oneof(fc.integer({ min: 0, max: 15 }), fc.constant("ghost" as const));

interface Shape {
  policies?: fc.Arbitrary<PlacementPolicy>;
  withPins?: boolean;
  withPreferred?: boolean;
  maxMembers?: number;
}

function placementInput(shape: Shape = {}): fc.Arbitrary<PlacementInput> {
  const withPins = shape.withPins ?? true;
  const withPreferred = shape.withPreferred ?? true;
  const memberArb = fc.record({
    weight: fc.integer({ min: 0, max: 4 }),
    eligible: fc.boolean(),
    eligibleSinceMs: fc.option(fc.integer({ min: 0, max: 5000 }), { nil: undefined }),
  });
  const vipArb = fc.record({
    policy: shape.policies ?? fc.constantFrom(...policies),
    failback: fc.constantFrom(...failbacks),
    preferred: withPreferred ? fc.option(reference, { nil: undefined }) : fc.constant(undefined),
    previous: fc.option(reference, { nil: undefined }),
    pin: withPins ? fc.option(reference, { nil: undefined, freq: 4 }) : fc.constant(undefined),
  });
  return fc
    .record({
      ids: fc.uniqueArray(fc.string({ minLength: 1, maxLength: 3 }), {
        minLength: 0,
        maxLength: shape.maxMembers ?? 6,
      }),
      memberSpecs: fc.array(memberArb, { minLength: 6, maxLength: 6 }),
      addresses: fc.uniqueArray(fc.integer({ min: 0, max: 65535 }), { maxLength: 12 }),
      vipSpecs: fc.array(vipArb, { minLength: 12, maxLength: 12 }),
      roundRobinCursor: fc.integer({ min: 0, max: 20 }),
      nowMs: fc.integer({ min: 0, max: 6000 }),
    })
    .map(({ ids, memberSpecs, addresses, vipSpecs, roundRobinCursor, nowMs }) => {
      const members = ids.map((id, i) => ({ id, ...memberSpecs[i]! }));
      const resolve = (ref: number | "ghost" | undefined) =>
        ref === undefined
          ? undefined
          : ref === "ghost" || members.length === 0
            ? "ghost"
            : members[ref % members.length]!.id;
      const vips = addresses.map((a, i) => {
        const spec = vipSpecs[i]!;
        const preferred = resolve(spec.preferred);
        return {
          address: `198.18.${a >> 8}.${a & 255}`,
          policy: spec.policy,
          failback: spec.failback,
          ...(preferred === undefined ? {} : { preferred }),
        };
      });
      const pins = new Map<number, string>();
      addresses.forEach((_, i) => {
        const pin = resolve(vipSpecs[i]!.pin);
        if (pin !== undefined) pins.set(i, pin);
      });
      const previous = addresses.map((_, i) => resolve(vipSpecs[i]!.previous));
      return { vips, members, previous, pins, roundRobinCursor, nowMs };
    });
}

const eligibleIds = (x: PlacementInput) => x.members.filter((m) => m.eligible).map((m) => m.id);

// ---------- example tests ----------

describe("place: round-robin", () => {
  it("deals first assignments in turn from the cursor and returns the advanced cursor", () => {
    const vips = [1, 2, 3, 4, 5].map((n) => vip(n));
    const result = place(input({ vips, members: threeNodes, roundRobinCursor: 1 }));
    assert.deepEqual(result.owners, ["n2", "n3", "n1", "n2", "n3"]);
    assert.equal(result.roundRobinCursor, 0);
    assert.ok(result.decisions.every((d) => d.reason === "round-robin"));
    assert.deepEqual(result.decisions[0]!.candidates, ["n2", "n3", "n1"]);
  });

  it("moves only the failed node's VIPs and explains the move in one sentence", () => {
    const members = [member("n1"), member("n2", { eligible: false }), member("n3")];
    const vips = [100, 101, 102, 103].map((n) => vip(n));
    const previous = ["n1", "n2", "n3", "n2"];
    const result = place(input({ vips, members, previous, roundRobinCursor: 2 }));
    assert.deepEqual(result.owners, ["n1", "n3", "n3", "n1"]);
    assert.deepEqual(
      result.decisions.map((d) => d.reason),
      ["kept", "round-robin", "kept", "round-robin"],
    );
    assert.equal(
      result.decisions[1]!.text,
      "198.18.0.101: n2 is not eligible; dealt round-robin to n3 (candidates n3, n1)",
    );
    assert.equal(result.roundRobinCursor, 1);
  });

  it("skips ineligible positions and wraps a cursor beyond the member count", () => {
    const members = [member("a"), member("b", { eligible: false }), member("c")];
    const result = place(input({ vips: [vip(1), vip(2), vip(3)], members, roundRobinCursor: 7 }));
    // 7 mod 3 = 1 -> b is skipped, so c, a, c.
    assert.deepEqual(result.owners, ["c", "a", "c"]);
    assert.equal(result.roundRobinCursor, 0);
  });
});

describe("place: weighted and hash", () => {
  it("weighted gives orphans to the heaviest eligible node, ties to the smallest id", () => {
    const members = [
      member("n3", { weight: 5 }),
      member("n1", { weight: 5 }),
      member("n2", { weight: 9, eligible: false }),
      member("n0", { weight: 2 }),
    ];
    const result = place(input({ vips: [vip(1, { policy: "weighted" })], members }));
    assert.equal(result.owners[0], "n1");
    assert.deepEqual(result.decisions[0]!.candidates, ["n1", "n3", "n0"]);
    assert.equal(result.decisions[0]!.reason, "weighted");
  });

  it("hash picks the highest rendezvous score and a failure moves only the loser's VIPs", () => {
    const vips = Array.from({ length: 30 }, (_, i) => vip(i, { policy: "hash" }));
    const before = place(input({ vips, members: threeNodes }));
    before.owners.forEach((owner, i) => {
      const scores = ["n1", "n2", "n3"].map((id) => rendezvousScore(vips[i]!.address, id));
      assert.equal(owner, `n${scores.indexOf(Math.max(...scores)) + 1}`);
    });
    assert.ok(before.owners.includes("n2"), "n2 won some VIPs");
    // Fresh placement (no previous owners) without n2 must agree on everything n2 did not own.
    const members = [member("n1"), member("n2", { eligible: false }), member("n3")];
    const after = place(input({ vips, members }));
    before.owners.forEach((owner, i) => {
      if (owner !== "n2") assert.equal(after.owners[i], owner);
      else assert.notEqual(after.owners[i], "n2");
    });
  });

  it("a drained node (not eligible) hands over its VIPs and keeps none", () => {
    const members = [member("n1"), member("n2"), member("n3", { eligible: false })];
    const vips = [vip(1, { policy: "hash" }), vip(2, { policy: "weighted" }), vip(3)];
    const result = place(input({ vips, members, previous: ["n3", "n3", "n1"] }));
    assert.ok(!result.owners.includes("n3"));
    assert.equal(result.owners[2], "n1");
    assert.equal(result.decisions[2]!.reason, "kept");
  });

  it("leaves every VIP without owner when no node is eligible, cursor untouched", () => {
    const members = threeNodes.map((m) => ({ ...m, eligible: false }));
    const vips = [
      vip(1),
      vip(2, { policy: "weighted" }),
      vip(3, { policy: "hash", preferred: "n1" }),
    ];
    const result = place(
      input({ vips, members, previous: ["n1", undefined, "n2"], roundRobinCursor: 2 }),
    );
    assert.deepEqual(result.owners, [undefined, undefined, undefined]);
    assert.ok(
      result.decisions.every((d) => d.reason === "no-eligible-node" && d.candidates.length === 0),
    );
    assert.equal(result.roundRobinCursor, 2);
    assert.match(result.decisions[0]!.text, /n1 is not eligible; no eligible node/);
  });
});

describe("place: pins", () => {
  it("a pin to an eligible node wins over an eligible previous owner", () => {
    const pins = new Map([[0, "n3"]]);
    const result = place(
      input({ vips: [vip(1), vip(2)], members: threeNodes, previous: ["n1", "n2"], pins }),
    );
    assert.deepEqual(result.owners, ["n3", "n2"]);
    assert.equal(result.decisions[0]!.reason, "pinned");
    assert.equal(result.roundRobinCursor, 0, "a pin is not a round-robin assignment");
  });

  it("a pin to an ineligible or unknown node is not in force and says so", () => {
    const members = [member("n1"), member("n2", { eligible: false }), member("n3")];
    const pins = new Map([
      [0, "n2"],
      [1, "n9"],
      [2, "n2"],
    ]);
    const result = place(
      input({ vips: [vip(1), vip(2), vip(3)], members, previous: ["n1", undefined, "n2"], pins }),
    );
    assert.deepEqual(result.owners, ["n1", "n1", "n3"]);
    assert.deepEqual(
      result.decisions.map((d) => d.reason),
      ["kept", "round-robin", "round-robin"],
    );
    assert.equal(
      result.decisions[2]!.text,
      "198.18.0.3: pin to n2 not in force; n2 is not eligible; dealt round-robin to n3 (candidates n3, n1)",
    );
    assert.match(result.decisions[0]!.text, /pin to n2 not in force \(n2 is not eligible\)/);
    assert.match(result.decisions[1]!.text, /pin to n9 not in force \(n9 is not a member\)/);
  });
});

describe("place: preferred node and failback", () => {
  const preferredVip = (failback: Failback) => vip(1, { preferred: "n1", failback });
  const n1BackSince = (sinceMs: number | undefined) => [
    member("n1", { eligibleSinceMs: sinceMs }),
    member("n2"),
    member("n3"),
  ];

  it("first assignment goes to the preferred node", () => {
    const result = place(input({ vips: [preferredVip({ mode: "never" })], members: threeNodes }));
    assert.equal(result.owners[0], "n1");
    assert.equal(result.decisions[0]!.reason, "preferred");
  });

  it("a VIP whose owner failed goes to the eligible preferred node, whatever the failback", () => {
    const members = [member("n1"), member("n2", { eligible: false }), member("n3")];
    const result = place(
      input({ vips: [preferredVip({ mode: "never" })], members, previous: ["n2"] }),
    );
    assert.equal(result.owners[0], "n1");
    assert.equal(result.decisions[0]!.reason, "preferred");
  });

  it("immediate moves the VIP back as soon as the preferred node is eligible", () => {
    const x = input({
      vips: [preferredVip({ mode: "immediate" })],
      members: n1BackSince(900),
      previous: ["n2"],
      nowMs: 1000,
    });
    const result = place(x);
    assert.equal(result.owners[0], "n1");
    assert.equal(result.decisions[0]!.reason, "failback");
    assert.match(result.decisions[0]!.text, /failed back from n2 to preferred node n1/);
  });

  it("after waits until the preferred node has been eligible for afterMs, boundary included", () => {
    const failback: Failback = { mode: "after", afterMs: 3000 };
    const at = (nowMs: number, sinceMs: number | undefined) =>
      place(
        input({
          vips: [preferredVip(failback)],
          members: n1BackSince(sinceMs),
          previous: ["n2"],
          nowMs,
        }),
      );
    const early = at(3999, 1000);
    assert.equal(early.owners[0], "n2");
    assert.equal(early.decisions[0]!.reason, "kept");
    assert.match(early.decisions[0]!.text, /2999 ms of the 3000 ms/);
    assert.equal(at(4000, 1000).owners[0], "n1");
    assert.equal(at(4000, 1000).decisions[0]!.reason, "failback");
    assert.equal(at(9000, 1000).owners[0], "n1");
    assert.equal(
      at(9000, undefined).owners[0],
      "n2",
      "unknown eligibility start never counts as long enough",
    );
  });

  it("never keeps the VIP on its healthy owner", () => {
    const x = input({
      vips: [preferredVip({ mode: "never" })],
      members: n1BackSince(0),
      previous: ["n2"],
      nowMs: 1e9,
    });
    const result = place(x);
    assert.equal(result.owners[0], "n2");
    assert.equal(result.decisions[0]!.reason, "kept");
  });

  it("a pin beats the preferred node", () => {
    const pins = new Map([[0, "n3"]]);
    const x = input({
      vips: [preferredVip({ mode: "immediate" })],
      members: threeNodes,
      previous: ["n2"],
      pins,
    });
    assert.equal(place(x).owners[0], "n3");
  });
});

describe("place: input invariants", () => {
  it("rejects inputs the coordinator can only build by mistake", () => {
    assert.throws(
      () => place(input({ vips: [vip(1)], members: threeNodes, previous: [] })),
      /previous/,
    );
    assert.throws(() => place(input({ vips: [], members: [member("a"), member("a")] })), /twice/);
    assert.throws(
      () => place(input({ vips: [vip(1)], members: threeNodes, pins: new Map([[3, "n1"]]) })),
      /pin/,
    );
  });
});

// ---------- property tests ----------

const runs = { numRuns: 300 };

describe("place: properties", () => {
  it("is deterministic: the same input twice gives the same output", () => {
    fc.assert(
      fc.property(placementInput(), (x) => {
        const copy: PlacementInput = { ...x, pins: new Map(x.pins), previous: [...x.previous] };
        assert.deepEqual(place(x), place(copy));
      }),
      runs,
    );
  });

  it("every owner is eligible, and a VIP lacks an owner only when no member is eligible", () => {
    fc.assert(
      fc.property(placementInput(), (x) => {
        const eligible = eligibleIds(x);
        const result = place(x);
        assert.equal(result.owners.length, x.vips.length);
        for (const owner of result.owners) {
          if (owner === undefined) assert.equal(eligible.length, 0);
          else assert.ok(eligible.includes(owner));
        }
        assert.ok(result.roundRobinCursor >= 0);
        assert.ok(x.members.length === 0 || result.roundRobinCursor < x.members.length);
      }),
      runs,
    );
  });

  it("without pins or preferred nodes a VIP whose owner is eligible never moves", () => {
    fc.assert(
      fc.property(placementInput({ withPins: false, withPreferred: false }), (x) => {
        const eligible = eligibleIds(x);
        const result = place(x);
        x.previous.forEach((previous, i) => {
          if (previous !== undefined && eligible.includes(previous)) {
            assert.equal(result.owners[i], previous);
            assert.equal(result.decisions[i]!.reason, "kept");
          }
        });
      }),
      runs,
    );
  });

  it("honours eligible pins, and eligible preferred nodes for VIPs that must move anyway", () => {
    fc.assert(
      fc.property(placementInput(), (x) => {
        const eligible = eligibleIds(x);
        const result = place(x);
        x.vips.forEach((v, i) => {
          const pin = x.pins.get(i);
          const previous = x.previous[i];
          if (pin !== undefined && eligible.includes(pin)) assert.equal(result.owners[i], pin);
          else if (
            v.preferred !== undefined &&
            eligible.includes(v.preferred) &&
            (previous === undefined || !eligible.includes(previous))
          ) {
            assert.equal(result.owners[i], v.preferred);
          }
        });
      }),
      runs,
    );
  });

  it("no movement without a change of input: placing its own result again changes nothing", () => {
    fc.assert(
      fc.property(placementInput(), (x) => {
        const first = place(x);
        const again = place({
          ...x,
          previous: first.owners,
          roundRobinCursor: first.roundRobinCursor,
        });
        assert.deepEqual(again.owners, first.owners);
        assert.equal(again.roundRobinCursor, first.roundRobinCursor);
      }),
      runs,
    );
  });

  it("making one member ineligible moves exactly the VIPs that member owned", () => {
    fc.assert(
      fc.property(placementInput(), fc.nat(), (x, pick) => {
        fc.pre(x.members.length > 0);
        const stable = place(x);
        const failed = x.members[pick % x.members.length]!;
        const members = x.members.map((m) => (m === failed ? { ...m, eligible: false } : m));
        const after = place({
          ...x,
          members,
          previous: stable.owners,
          roundRobinCursor: stable.roundRobinCursor,
        });
        stable.owners.forEach((owner, i) => {
          if (owner === failed.id) assert.notEqual(after.owners[i], failed.id);
          else
            assert.equal(
              after.owners[i],
              owner,
              `VIP ${i} moved though ${failed.id} did not own it`,
            );
        });
      }),
      runs,
    );
  });

  for (const policy of policies) {
    it(`${policy} agrees with a naive reference implementation`, () => {
      fc.assert(
        fc.property(
          placementInput({ policies: fc.constant(policy), withPins: false, withPreferred: false }),
          (x) => {
            const result = place(x);
            const expected = referencePlace(x);
            assert.deepEqual(result.owners, expected.owners);
            if (x.members.length > 0) assert.equal(result.roundRobinCursor, expected.cursor);
          },
        ),
        runs,
      );
    });
  }

  it("mixed policies agree with the reference (only round-robin VIPs advance the cursor)", () => {
    fc.assert(
      fc.property(placementInput({ withPins: false, withPreferred: false }), (x) => {
        const result = place(x);
        const expected = referencePlace(x);
        assert.deepEqual(result.owners, expected.owners);
        if (x.members.length > 0) assert.equal(result.roundRobinCursor, expected.cursor);
      }),
      runs,
    );
  });

  it("round-robin spreads k orphaned VIPs over m eligible nodes within one of each other", () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 40 }),
        fc.nat(),
        (eligibility, k, cursor) => {
          fc.pre(eligibility.some(Boolean));
          const members = eligibility.map((eligible, i) => member(`n${i}`, { eligible }));
          const vips = Array.from({ length: k }, (_, i) => vip(i));
          const result = place(input({ vips, members, roundRobinCursor: cursor }));
          const counts = members
            .filter((m) => m.eligible)
            .map((m) => result.owners.filter((o) => o === m.id).length);
          assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `counts ${counts}`);
          assert.equal(
            counts.reduce((a, b) => a + b, 0),
            k,
          );
        },
      ),
      runs,
    );
  });
});
