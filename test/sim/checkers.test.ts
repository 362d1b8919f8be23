/**
 * The simulator's invariant checkers on a hand-made world: each fires on the pattern it
 * guards against and stays quiet on the correct one. They see only datagrams, clocks,
 * addresses and processes, never a core; the mutation suite shows them catching real bugs.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { profiles } from "../../src/config/profiles.ts";
import { grantWindowMs } from "../../src/core/timing.ts";
import type { HeartbeatMessage, Message } from "../../src/core/types.ts";
import { type Checker, createCheckers, type World } from "../../src/sim/checkers/index.ts";

const timers = profiles.lan;

/** Three nodes whose clocks show real time plus an offset; everything else set by hand. */
class TestWorld {
  now = 0;
  readonly violations: string[] = [];
  readonly addresses = new Map<string, Set<number>>([
    ["n1", new Set()],
    ["n2", new Set()],
    ["n3", new Set()],
  ]);
  readonly paused = new Set<string>();
  readonly wokeAt = new Map<string, number>();
  looks = 0;
  readonly checkers: Checker[];

  constructor() {
    const world: World = {
      timers,
      nodeIds: ["n1", "n2", "n3"],
      vipAddresses: ["198.18.0.100"],
      nowMs: () => this.now,
      localAtMs: (id, realMs) => realMs + (id === "n2" ? 5000 : 0),
      incarnation: () => 1,
      machineUp: () => true,
      agentUp: () => true,
      paused: (id) => this.paused.has(id),
      wokeAtMs: (id) => this.wokeAt.get(id) ?? Number.NEGATIVE_INFINITY,
      addresses: (id) => this.addresses.get(id)!,
      acquiring: () => false,
      // The tests change addresses directly: report a change at every look.
      addressChanges: () => {
        this.looks += 1;
        return this.looks;
      },
    };
    this.checkers = createCheckers(world, (kind, detail) => {
      this.violations.push(`${kind}: ${detail}`);
    });
    for (const id of world.nodeIds) for (const c of this.checkers) c.onBoot?.(id);
  }

  at(now: number): this {
    this.now = now;
    return this;
  }

  send(from: string, message: Message, to?: string): this {
    for (const c of this.checkers) c.onSend?.(from, to, message);
    this.check();
    return this;
  }

  deliver(to: string, from: string, message: Message): this {
    for (const c of this.checkers) c.onDeliver?.(to, from, message);
    this.check();
    return this;
  }

  probe(id: string, vip: number): this {
    for (const c of this.checkers) c.onProbeStart?.(id, vip);
    return this;
  }

  check(): this {
    for (const c of this.checkers) c.check?.();
    return this;
  }

  kinds(): string[] {
    return this.violations.map((v) => v.split(":")[0]!);
  }

  /** Violations of one kind (a hand-made world may break other rules on the way). */
  of(kind: string): string[] {
    return this.kinds().filter((k) => k === kind);
  }
}

let seq = 0;
function heartbeat(fields: Partial<HeartbeatMessage>): HeartbeatMessage {
  seq += 1;
  return {
    type: "heartbeat",
    term: 1,
    role: "follower",
    incarnation: 1,
    seq,
    healthy: true,
    leaving: false,
    quorum: true,
    hears: [],
    holding: [],
    conflicts: [],
    tableVersion: [1, 1],
    roundSeen: 0,
    ...fields,
  };
}

/** n1 becomes coordinator of term 1 with n2's vote; n2 acknowledges round 1 at `ackAt`. */
function electedWorld(ackAt = 20): TestWorld {
  const world = new TestWorld();
  world.at(0).send("n1", { type: "vote-request", term: 1, tableVersion: [0, 0] });
  world.send("n2", { type: "vote-response", term: 1, granted: true }, "n1");
  world.at(1).deliver("n1", "n2", { type: "vote-response", term: 1, granted: true });
  const round1 = heartbeat({ role: "coordinator", round: 1, seq: 1000 });
  world.at(2).send("n1", round1).at(5).deliver("n2", "n1", round1);
  const ack = heartbeat({ seq: 2000, roundSeen: 1 });
  world
    .at(ackAt - 2)
    .send("n2", ack)
    .at(ackAt)
    .deliver("n1", "n2", ack);
  return world;
}

describe("lease checker", () => {
  it("a follower's lease runs from the send of the heartbeat a grant echoed, on its own clock", () => {
    const world = electedWorld();
    const own = heartbeat({ seq: 7 });
    world.at(100).send("n2", own);
    const grant = heartbeat({ role: "coordinator", round: 2, grants: { n2: [1, 7] } });
    world.at(110).send("n1", grant).at(160).deliver("n2", "n1", grant);
    world.addresses.get("n2")!.add(0);
    world.at(100 + timers.leaseMs - 1).check();
    assert.deepEqual(world.violations, []);
    world.at(100 + timers.leaseMs).check(); // not 160 + lease: receipt does not count
    assert.deepEqual(world.kinds(), ["holder-without-lease"]);
  });

  it("a coordinator's own lease runs from a round a majority really received", () => {
    const world = electedWorld();
    const round2 = heartbeat({ role: "coordinator", round: 2 });
    world.at(50).send("n1", round2); // n2 acked round 1 (sent at 2): lease from 2
    world.addresses.get("n1")!.add(0);
    world.at(2 + timers.leaseMs - 1).check();
    assert.deepEqual(world.violations, []);
    world.at(2 + timers.leaseMs).check();
    assert.deepEqual(world.kinds(), ["holder-without-lease"]);
  });

  it("an acknowledgement counts only for rounds the acknowledging node had received", () => {
    const world = electedWorld();
    // n3 writes round 5 into its heartbeat without having received any round of n1's.
    const forged = heartbeat({ seq: 3000, roundSeen: 5 });
    world.at(30).send("n3", forged).at(31).deliver("n1", "n3", forged);
    for (let round = 2; round <= 5; round += 1) {
      world.at(round * 50).send("n1", heartbeat({ role: "coordinator", round }));
    }
    world.addresses.get("n1")!.add(0);
    world.at(2 + timers.leaseMs).check(); // still anchored at round 1 (n2's real ack)
    assert.deepEqual(world.kinds(), ["holder-without-lease"]);
  });

  it("a paused holder gets the release time after waking, not before", () => {
    const world = new TestWorld();
    world.addresses.get("n2")!.add(0);
    world.paused.add("n2");
    world.at(1000).check();
    assert.deepEqual(world.violations, [], "paused: leases do not cover it, the probe does");
    world.paused.delete("n2");
    world.wokeAt.set("n2", 1000);
    world.at(1019).check();
    assert.deepEqual(world.violations, []);
    world.at(1020).check();
    assert.deepEqual(world.kinds(), ["holder-without-lease"]);
  });

  it("a node may not start to acquire a VIP another holds under a running lease", () => {
    const world = electedWorld();
    const own = heartbeat({ seq: 8 });
    world.at(100).send("n2", own);
    const grant = heartbeat({ role: "coordinator", round: 2, grants: { n2: [1, 8] } });
    world.at(110).send("n1", grant).at(120).deliver("n2", "n1", grant);
    world.addresses.get("n2")!.add(0);
    world.at(100 + timers.leaseMs).probe("n3", 0);
    assert.deepEqual(world.violations, [], "lease over: only the lease checker's business");
    world.at(100 + timers.leaseMs - 1).probe("n3", 0);
    assert.deepEqual(world.kinds(), ["handover-before-expiry"]);
  });
});

describe("two-holders checker", () => {
  it("fires when two machines have the VIP", () => {
    const world = new TestWorld();
    world.addresses.get("n1")!.add(0);
    world.check();
    assert.deepEqual(world.of("two-holders"), []);
    world.addresses.get("n3")!.add(0);
    world.check();
    assert.deepEqual(world.of("two-holders"), ["two-holders"]);
  });
});

describe("grant checker", () => {
  it("grants need a round a majority received within the grant window", () => {
    const world = electedWorld();
    const window = grantWindowMs(timers);
    world
      .at(2 + window - 1)
      .send("n1", heartbeat({ role: "coordinator", round: 2, grants: { n2: [1, 1] } }));
    assert.deepEqual(world.violations, []);
    world
      .at(2 + window)
      .send("n1", heartbeat({ role: "coordinator", round: 3, grants: { n2: [1, 1] } }));
    assert.deepEqual(world.kinds(), ["grant-outside-window"]);
  });

  it("grants with no acknowledged round at all are flagged", () => {
    const world = new TestWorld();
    world.send("n1", heartbeat({ role: "coordinator", round: 1, grants: { n2: [1, 1] } }));
    assert.deepEqual(world.of("grant-outside-window"), ["grant-outside-window"]);
  });
});

describe("election checker", () => {
  it("one coordinator per term, elected by a majority", () => {
    const world = electedWorld();
    world.send("n3", heartbeat({ role: "coordinator", round: 1 }));
    assert.deepEqual(world.kinds(), ["two-coordinators"]);
    const lone = new TestWorld();
    lone.send("n3", heartbeat({ term: 4, role: "coordinator", round: 1 }));
    assert.deepEqual(lone.kinds(), ["coordinator-without-majority"]);
  });

  it("one vote per node and term", () => {
    const world = new TestWorld();
    world.send("n3", { type: "vote-response", term: 2, granted: true }, "n1");
    world.send("n3", { type: "vote-response", term: 2, granted: true }, "n1");
    assert.deepEqual(world.violations, []);
    world.send("n3", { type: "vote-response", term: 2, granted: true }, "n2");
    assert.deepEqual(world.kinds(), ["double-vote"]);
  });

  it("no vote within an election timeout of an accepted coordinator heartbeat", () => {
    const world = electedWorld();
    const latest = heartbeat({ role: "coordinator", round: 2 });
    world.at(100).send("n1", latest).deliver("n3", "n1", latest);
    world.at(100 + timers.electionTimeoutMs - 1);
    world.send("n3", { type: "vote-response", term: 2, granted: true }, "n2");
    assert.deepEqual(world.kinds(), ["vote-too-soon"]);
  });

  it("a duplicate or a heartbeat of an older term is no contact", () => {
    const world = electedWorld();
    const latest = heartbeat({ role: "coordinator", round: 2 });
    world.at(100).send("n1", latest).deliver("n3", "n1", latest);
    world.at(200).deliver("n3", "n1", latest);
    world.deliver("n3", "n1", heartbeat({ term: 0, role: "coordinator", round: 9 }));
    world.at(100 + timers.electionTimeoutMs);
    world.send("n3", { type: "vote-response", term: 2, granted: true }, "n2");
    assert.deepEqual(world.violations, []);
  });
});
