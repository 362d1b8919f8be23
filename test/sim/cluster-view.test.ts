/**
 * What `floatip status --cluster` is built from: each node reports its own view in its
 * heartbeats (the coordinator it follows, its lease left, how long ago it heard each peer),
 * and every node keeps the latest report of each peer. Driven in the simulator, where a
 * pause and a partition are exact; then the CLI's reading of those views (`clusterView`):
 * which disagreements it names.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clusterView, type StatusView } from "../../src/cli/commands/status.ts";
import { profiles } from "../../src/config/profiles.ts";
import { parseMessage } from "../../src/core/messages.ts";
import { threeNodeCluster } from "../../src/sim/properties.ts";

const timers = profiles.lan;

describe("heartbeat views", () => {
  it("every node reports its coordinator, lease and whom it heard; peers keep the latest report", () => {
    const sim = threeNodeCluster(7, timers);
    const coordinator = sim.nodes.find((n) => sim.core(n.id)?.role === "coordinator")!.id;
    const [a, b, c] = sim.nodes.map((n) => n.id) as [string, string, string];
    const status = sim.core(a)!.status(sim.localNow(a));
    assert.equal(status.view.coordinator, coordinator);
    assert.ok(status.view.leaseLeftMs > 0, "a valid lease shows time left");
    assert.deepEqual(Object.keys(status.view.heardMs).sort(), [b, c]);
    for (const peer of status.peers) {
      assert.ok(peer.heardAgoMs !== undefined && peer.heardAgoMs <= timers.heartbeatIntervalMs * 2);
      assert.equal(peer.coordinator, coordinator, `${peer.id} reports the coordinator`);
      assert.equal(peer.term, status.term);
      assert.ok(peer.leaseLeftMs !== undefined && peer.leaseLeftMs > 0);
      assert.deepEqual(
        Object.keys(peer.heardMs ?? {}).sort(),
        [a, b, c].filter((id) => id !== peer.id),
      );
    }
    const held = [a, b, c].flatMap((id) =>
      id === a
        ? status.vips.filter((v) => v.local !== "absent").map((v) => v.address)
        : status.peers.find((p) => p.id === id)!.holding,
    );
    assert.deepEqual(
      held.sort(),
      status.vips.map((v) => v.address).sort(),
      "every VIP reported by exactly one node",
    );
  });

  it("a paused node's row ages, and the third node reports that it no longer hears it", () => {
    const sim = threeNodeCluster(8, timers);
    const coordinator = sim.nodes.find((n) => sim.core(n.id)?.role === "coordinator")!.id;
    const [paused, third] = sim.nodes.map((n) => n.id).filter((id) => id !== coordinator) as [
      string,
      string,
    ];
    sim.pause(paused, 2000);
    sim.runUntil(sim.nowMs + 1500);
    const status = sim.core(coordinator)!.status(sim.localNow(coordinator));
    const pausedRow = status.peers.find((p) => p.id === paused)!;
    const thirdRow = status.peers.find((p) => p.id === third)!;
    assert.ok(pausedRow.heardAgoMs! >= 1400, `heard ${pausedRow.heardAgoMs} ms ago`);
    assert.ok(thirdRow.heardAgoMs! <= timers.heartbeatIntervalMs * 2);
    assert.ok(
      thirdRow.heardMs![paused]! >= 1300,
      `third heard it ${thirdRow.heardMs![paused]} ms ago`,
    );
    assert.ok(status.view.heardMs[paused]! >= 1400);
  });

  it("counts the heartbeats missed per link in the window, one direction only, and forgets them after it", () => {
    const sim = threeNodeCluster(11, timers);
    const [a, b, c] = sim.nodes.map((n) => n.id) as [string, string, string];
    const missed = (observer: string) => sim.core(observer)!.status(sim.localNow(observer)).view;
    assert.deepEqual(missed(a).missed ?? {}, {}, "nothing missed in a quiet cluster");
    // b's heartbeats do not reach a for four intervals; everything else flows.
    sim.block(b, a);
    sim.runUntil(sim.nowMs + 4 * timers.heartbeatIntervalMs + 10);
    sim.unblock(b, a);
    sim.runUntil(sim.nowMs + 3 * timers.heartbeatIntervalMs);
    const count = missed(a).missed?.[b] ?? 0;
    assert.ok(count >= 3 && count <= 5, `a missed ${count} of b's heartbeats`);
    assert.equal(missed(b).missed?.[a], undefined, "b missed none of a's: one direction only");
    assert.equal(missed(c).missed?.[b], undefined);
    // The others see a's report in its heartbeats.
    const reported = sim
      .core(c)!
      .status(sim.localNow(c))
      .peers.find((p) => p.id === a);
    assert.equal(reported?.missed?.[b], count);
    // The window passes: the count goes.
    sim.runUntil(sim.nowMs + 10_500);
    assert.equal(missed(a).missed?.[b], undefined);
  });

  it("every node shows the owner's own 'held for', also a node that started later", () => {
    const sim = threeNodeCluster(9, timers);
    sim.runUntil(sim.nowMs + 3000);
    const coordinator = sim.nodes.find((n) => sim.core(n.id)?.role === "coordinator")!.id;
    // Restart a follower that holds nothing the others do not know about: it must learn how
    // long each VIP has been held from the owners' reports, not from when it booted.
    const late = sim.nodes.map((n) => n.id).find((id) => id !== coordinator)!;
    sim.crash(late);
    sim.runUntil(sim.nowMs + 3000);
    sim.boot(late);
    sim.runUntil(sim.nowMs + 1500);
    const views = sim.nodes.map((n) => sim.core(n.id)!.status(sim.localNow(n.id)));
    const lateView = views.find((v) => v.node === late)!;
    for (const [vip, status] of lateView.vips.entries()) {
      const ownerView = views.find((v) => v.node === status.owner)!;
      const own = ownerView.vips[vip]!.heldForMs;
      assert.ok(
        own !== undefined,
        `${status.address}: its owner ${status.owner} reports holding it`,
      );
      for (const view of views) {
        const seen = view.vips[vip]!.heldForMs;
        assert.ok(seen !== undefined, `${view.node} knows how long ${status.address} is held`);
        assert.ok(
          Math.abs(seen - own) <= 2 * timers.heartbeatIntervalMs + 20,
          `${view.node}: ${status.address} held for ${seen} ms, its owner says ${own} ms`,
        );
      }
    }
    // The VIPs the restarted node does not own were held before it booted (1.5 s ago).
    assert.ok(
      lateView.vips.some((v) => v.owner !== late && v.heldForMs! > 2000),
      "a VIP held since before the restart shows the owner's time",
    );
  });

  it("a follower explains a VIP with the coordinator's reason", () => {
    const sim = threeNodeCluster(10, timers);
    const coordinator = sim.nodes.find((n) => sim.core(n.id)?.role === "coordinator")!.id;
    const follower = sim.nodes.map((n) => n.id).find((id) => id !== coordinator)!;
    const explained = sim
      .core(follower)!
      .status(sim.localNow(follower))
      .vips.map((v) => v.explain);
    for (const text of explained) {
      assert.match(
        text,
        new RegExp(
          `^assigned to n\\d by coordinator ${coordinator} \\(table \\d+\\.\\d+\\): (dealt round-robin|kept: its owner stayed eligible)$`,
        ),
      );
    }
    // The owner of one VIP fails: the coordinator deals it to another node, and the follower
    // that did not decide it still says why.
    const victim = sim.nodes.map((n) => n.id).find((id) => id !== coordinator && id !== follower)!;
    sim.crash(victim);
    sim.runUntil(sim.nowMs + 3000);
    const after = sim.core(follower)!.status(sim.localNow(follower)).vips;
    assert.ok(after.every((v) => v.owner !== victim && v.owner !== undefined));
    assert.ok(
      after.some((v) => / dealt round-robin$/.test(v.explain)),
      after.map((v) => v.explain).join("\n"),
    );
  });

  it("a view that is not well formed drops the heartbeat like any other malformed field", () => {
    const base = {
      type: "heartbeat",
      term: 1,
      role: "follower",
      incarnation: 1,
      seq: 1,
      healthy: true,
      leaving: false,
      quorum: true,
      hears: [],
      holding: [],
      conflicts: [],
      tableVersion: [1, 1],
      roundSeen: 0,
    };
    assert.ok(parseMessage({ ...base, view: { leaseLeftMs: 5, heardMs: { n2: 3 } } }, 3, 0));
    assert.ok(parseMessage(base, 3, 0), "a heartbeat without a view (an older agent) is fine");
    assert.ok(
      parseMessage(
        { ...base, view: { leaseLeftMs: 5, heardMs: {}, missed: { n2: 4 }, version: "0.1.0" } },
        3,
        0,
      ),
    );
    for (const view of [
      { leaseLeftMs: 1, heardMs: {}, missed: { n2: -1 } },
      { leaseLeftMs: 1, heardMs: {}, missed: [3] },
      { leaseLeftMs: 1, heardMs: {}, version: 3 },
      { leaseLeftMs: 1, heardMs: {}, version: "x".repeat(65) },
      { leaseLeftMs: -1, heardMs: {} },
      { leaseLeftMs: 1, heardMs: { n2: "soon" } },
      { leaseLeftMs: 1, heardMs: [] },
      { coordinator: "", leaseLeftMs: 1, heardMs: {} },
      {
        leaseLeftMs: 1,
        heardMs: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`n${i}`, 1])),
      },
      "n1",
    ]) {
      assert.equal(
        parseMessage({ ...base, view }, 3, 0),
        undefined,
        JSON.stringify(view).slice(0, 80),
      );
    }
  });
});

describe("status --cluster: reading the views", () => {
  const status = (patch: Partial<StatusView> = {}): StatusView => ({
    cluster: "demo",
    profile: "lan",
    node: "n1",
    incarnation: 1,
    startedAt: "2030-01-01T00:00:00.000Z",
    role: "coordinator",
    term: 4,
    coordinator: "n1",
    healthy: true,
    quorum: true,
    leaseValid: true,
    tableVersion: [4, 2],
    config: { fingerprint: "abc", matchesCoordinator: true },
    health: { healthy: true, checks: [] },
    members: [],
    vips: [
      {
        address: "198.18.0.10",
        owner: "n1",
        desiredOwner: "n1",
        local: "held",
        since: null,
        conflict: false,
        explain: "",
      },
    ],
    view: { coordinator: "n1", leaseLeftMs: 300, heardMs: { n2: 20, n3: 30 } },
    peers: ["n2", "n3"].map((id) => ({
      id,
      heardAgoMs: 20,
      incarnation: 1,
      term: 4,
      role: "follower",
      healthy: true,
      leaving: false,
      quorum: true,
      tableVersion: [4, 2] as [number, number],
      config: "abc",
      holding: [],
      coordinator: "n1",
      leaseLeftMs: 300,
      heardMs: { n1: 20 },
    })),
    ...patch,
  });

  it("one view: no disagreements", () => {
    assert.deepEqual(clusterView(status()).disagreements, []);
  });

  it("compares only fresh rows: a stale row is named once, not as a second holder", () => {
    const base = status();
    const [n2, n3] = base.peers!;
    const view = clusterView({
      ...base,
      peers: [{ ...n2!, heardAgoMs: 2000, tableVersion: [4, 1], holding: ["198.18.0.10"] }, n3!],
    });
    assert.deepEqual(view.disagreements, ["n2: last heard 2.0 s ago; its row is that old"]);
  });

  it("names a stale row, a node never heard, and every field the rows differ in", () => {
    const base = status();
    const [n2, n3] = base.peers!;
    const view = clusterView({
      ...base,
      peers: [
        {
          ...n2!,
          heardAgoMs: 40,
          term: 3,
          coordinator: "n2",
          config: "xyz",
          holding: ["198.18.0.10"],
        },
        { ...n3!, heardAgoMs: null },
      ],
    });
    const text = view.disagreements.join("\n");
    assert.match(text, /n3: never heard by n1/);
    assert.match(text, /term differs: n1 4, n2 3/);
    assert.match(text, /coordinator differs: n1 n1, n2 n2/);
    assert.match(text, /config fingerprint differs: n1 abc, n2 xyz/);
    assert.match(text, /198\.18\.0\.10 reported by n1 and n2/);
    assert.equal(
      view.rows.find((r) => r.id === "n3")!.term,
      null,
      "a node never heard has no view",
    );
  });

  it("an agent without peer views gets a clear error, not a crash", () => {
    const { peers: _p, view: _v, ...old } = status();
    assert.throws(() => clusterView(old), /predates status --cluster/);
  });
});
