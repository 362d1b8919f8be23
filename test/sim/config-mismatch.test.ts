/**
 * A node whose cluster-wide configuration differs from the coordinator's (a reordered VIP
 * list in a rolling change, a `wan` node among `lan` ones) holds nothing: tables index VIPs
 * and nodes by configuration order, so its reading of the coordinator's table would be wrong.
 * The coordinator counts it failed, with the reason; the node reports the mismatch; once the
 * fingerprints match (the coordinator changed to its configuration) it takes VIPs again.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { profiles } from "../../src/config/profiles.ts";
import { parseMessage } from "../../src/core/messages.ts";
import type { HeartbeatMessage } from "../../src/core/types.ts";
import { Simulator } from "../../src/sim/simulator.ts";

const timers = profiles.lan;
const vips = ["198.18.0.100", "198.18.0.101", "198.18.0.102"].map((address) => ({
  address,
  policy: "round-robin" as const,
  failback: { mode: "never" as const },
}));

function cluster(seed: number, fingerprints: Record<string, string>): Simulator {
  const sim = new Simulator({
    seed,
    nodes: ["n1", "n2", "n3"].map((id) => ({ id, weight: 1 })),
    vips,
    timers,
    trace: true,
    fingerprints,
  });
  sim.bootAll();
  return sim;
}

describe("configuration fingerprint", () => {
  it("a node with another configuration holds nothing; the others hold every VIP once", () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const sim = cluster(seed, { n1: "aaaa", n2: "aaaa", n3: "bbbb" });
      sim.runUntil(4000);
      assert.deepEqual(sim.violations, [], sim.trace.join("\n"));
      const coordinator = sim.coordinator();
      assert.ok(coordinator, `seed ${seed}: a coordinator`);
      const odd = sim.nodes.find((n) => n.id === "n3")!;
      const agreeing = sim.nodes.filter((n) => n.id !== "n3");
      if (coordinator === "n3") {
        // n3 won the election: its configuration is the reference, the others hold nothing.
        for (const node of agreeing) assert.equal(node.addresses.size, 0, `seed ${seed}`);
        assert.equal(odd.addresses.size, vips.length, `seed ${seed}: n3 holds all`);
      } else {
        assert.equal(odd.addresses.size, 0, `seed ${seed}: n3 holds nothing`);
        for (const [i, vip] of vips.entries())
          assert.ok(sim.holder(i), `seed ${seed}: ${vip.address}`);
        const view = sim.core(coordinator)!.status(sim.nowMs);
        assert.equal(view.members.find((m) => m.id === "n3")?.state, "failed");
        assert.ok(
          sim.trace.some((l) => l.includes("declares n3 failed (configuration differs")),
          `seed ${seed}: the coordinator names the reason`,
        );
        assert.ok(
          sim.trace.some((l) => l.includes(`n3 finds ${coordinator}'s configuration differs`)),
          `seed ${seed}: n3 reports the mismatch`,
        );
        const own = sim.core("n3")!.status(sim.nowMs);
        assert.equal(own.config.matchesCoordinator, false);
        assert.equal(own.config.coordinator, "aaaa");
      }
    }
  });

  it("once the coordinator has the node's configuration, the node takes VIPs again", () => {
    // The last step of a rolling change: n3 already has the new configuration, the rest
    // restart with it one by one (the coordinator last).
    for (const seed of [1, 2, 3]) {
      const fingerprints: Record<string, string> = { n1: "old", n2: "old", n3: "new" };
      const sim = cluster(seed, fingerprints);
      sim.runUntil(3000);
      const order = ["n1", "n2"].sort((a) => (a === sim.coordinator() ? 1 : -1));
      for (const id of order) {
        fingerprints[id] = "new";
        sim.crash(id);
        sim.runUntil(sim.nowMs + 200);
        sim.boot(id);
        sim.runUntil(sim.nowMs + 3000);
      }
      sim.runUntil(sim.nowMs + 3000);
      assert.deepEqual(sim.violations, [], sim.trace.join("\n"));
      for (const [i, vip] of vips.entries())
        assert.ok(sim.holder(i), `seed ${seed}: ${vip.address}`);
      for (const id of ["n1", "n2", "n3"]) {
        assert.equal(sim.core(id)!.status(sim.nowMs).config.matchesCoordinator, true, id);
      }
      const view = sim.core(sim.coordinator()!)!.status(sim.nowMs);
      assert.deepEqual(
        view.members.map((m) => m.state),
        ["healthy", "healthy", "healthy"],
        `seed ${seed}: all trusted again`,
      );
    }
  });
});

describe("heartbeats from a node with another configuration", () => {
  const heartbeat = (config: string | undefined, vipCount: number) => ({
    type: "heartbeat",
    term: 3,
    role: "coordinator",
    incarnation: 1,
    seq: 9,
    healthy: true,
    leaving: false,
    quorum: true,
    hears: ["n1"],
    holding: [vipCount - 1],
    conflicts: [],
    tableVersion: [3, 4],
    roundSeen: 0,
    round: 7,
    ...(config === undefined ? {} : { config }),
    table: {
      version: [3, 4],
      owners: new Array(vipCount).fill(0),
      pins: [],
      drained: [],
      roundRobinCursor: 0,
      members: ["healthy", "healthy", "healthy"],
    },
    grants: { n1: [1, 2] },
  });

  it("keep liveness and term but lose what is indexed (a four-VIP table read by a three-VIP node)", () => {
    const parsed = parseMessage(heartbeat("other", 4), 3, 3, "mine") as HeartbeatMessage;
    assert.ok(parsed, "still a heartbeat");
    assert.equal(parsed.term, 3);
    assert.equal(parsed.table, undefined, "no table");
    assert.equal(parsed.grants, undefined, "no grants");
    assert.deepEqual(parsed.holding, []);
    // The same datagram from a node with our configuration is malformed (4 VIPs, not 3).
    assert.equal(parseMessage(heartbeat("mine", 4), 3, 3, "mine"), undefined);
    assert.ok(parseMessage(heartbeat("mine", 3), 3, 3, "mine"));
    // No fingerprint on either side (the simulator, older agents): compared as "".
    assert.ok(parseMessage(heartbeat(undefined, 3), 3, 3));
    assert.equal(parseMessage(heartbeat(7 as unknown as string, 3), 3, 3, "mine"), undefined);
  });
});
