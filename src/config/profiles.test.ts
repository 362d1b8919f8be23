import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { lan50Timers, profileNames, profiles, validateTimers } from "./profiles.ts";
import type { Timers } from "./types.ts";

describe("timer profiles", () => {
  it("every named profile passes its own validation", () => {
    for (const name of profileNames) {
      assert.deepEqual(validateTimers(profiles[name]), [], name);
    }
  });

  it("profiles are ordered from fast to wan on every duration that sets failover speed", () => {
    const keys: (keyof Timers)[] = ["heartbeatIntervalMs", "electionTimeoutMs", "leaseMs"];
    for (const key of keys) {
      assert.ok(profiles.fast[key] < profiles.lan[key], key);
      assert.ok(profiles.lan[key] < profiles.wan[key], key);
    }
  });

  it("profiles are frozen", () => {
    assert.ok(Object.isFrozen(profiles));
    assert.ok(Object.isFrozen(profiles.lan));
    assert.throws(() => {
      (profiles.lan as { leaseMs: number }).leaseMs = 1;
    }, TypeError);
  });
});

describe("validateTimers", () => {
  // A fixed base (the lan values of the first release, `lan50Timers`), so that the rule
  // boundaries tested here do not move when a profile is retuned.
  const lan: Timers = lan50Timers;
  const fieldsOf = (t: Timers) => validateTimers(t).map((p) => p.field);

  it("requires heartbeat < suspectAfter", () => {
    assert.deepEqual(fieldsOf({ ...lan, suspectAfterMs: lan.heartbeatIntervalMs }), [
      "suspectAfterMs",
    ]);
  });

  it("requires electionTimeout >= 2 x heartbeat", () => {
    assert.deepEqual(fieldsOf({ ...lan, electionTimeoutMs: 99 }), ["electionTimeoutMs"]);
    assert.deepEqual(fieldsOf({ ...lan, electionTimeoutMs: 100 }), []);
  });

  it("requires a lease that reaches the next renewal: 3 x heartbeat + 3 x lease margin", () => {
    // The base's 50 ms heartbeats and 10 ms margins: 180 ms. The simulator's runtime swarm (3 nodes,
    // no faults needed) showed VIPs dropped on a healthy cluster up to 170 ms.
    const problems = validateTimers({ ...lan, leaseMs: 179 });
    assert.deepEqual(
      problems.map((p) => p.field),
      ["leaseMs"],
    );
    assert.match(problems[0]!.message, /\(180 ms\), got 179: .*lapses on a healthy cluster/);
    assert.match(problems[0]!.fix, /at least 180/);
    assert.deepEqual(fieldsOf({ ...lan, leaseMs: 180 }), []);
    const slow = { ...lan, heartbeatIntervalMs: 100, suspectAfterMs: 300, electionTimeoutMs: 250 };
    assert.deepEqual(fieldsOf({ ...slow, leaseMs: 329 }), ["leaseMs"]);
    assert.deepEqual(fieldsOf({ ...slow, leaseMs: 330 }), []);
  });

  it("requires lease > electionTimeout (else every election drops all VIPs)", () => {
    // 25 ms heartbeats: the renewal rule asks only 105 ms, the election timeout binds.
    const quick = { ...lan, heartbeatIntervalMs: 25 };
    const problems = validateTimers({ ...quick, leaseMs: 150 });
    assert.deepEqual(
      problems.map((p) => p.field),
      ["leaseMs"],
    );
    assert.match(problems[0]!.message, /election/);
    assert.deepEqual(fieldsOf({ ...quick, leaseMs: 151 }), []);
  });

  it("requires the fault window to hold faultsToFail heartbeat rounds", () => {
    assert.deepEqual(fieldsOf({ ...lan, faultWindowMs: 100 }), ["faultWindowMs"]);
    assert.deepEqual(fieldsOf({ ...lan, faultWindowMs: 101 }), []);
  });

  it("bounds clockDriftRatio to [0, 0.1)", () => {
    assert.deepEqual(fieldsOf({ ...lan, clockDriftRatio: 0 }), []);
    assert.deepEqual(fieldsOf({ ...lan, clockDriftRatio: 0.1 }), ["clockDriftRatio"]);
    assert.deepEqual(fieldsOf({ ...lan, clockDriftRatio: -0.01 }), ["clockDriftRatio"]);
  });

  it("requires positive integers, except garpRefreshMs which may be 0", () => {
    assert.deepEqual(fieldsOf({ ...lan, garpRepeat: 0 }), ["garpRepeat"]);
    assert.deepEqual(fieldsOf({ ...lan, probeTimeoutMs: 2.5 }), ["probeTimeoutMs"]);
    assert.deepEqual(fieldsOf({ ...lan, garpRefreshMs: 0 }), []);
    assert.deepEqual(fieldsOf({ ...lan, garpRefreshMs: -1 }), ["garpRefreshMs"]);
  });

  it("reports several broken rules at once", () => {
    const fields = fieldsOf({ ...lan, garpRepeat: 0, leaseMs: 100, clockDriftRatio: 1 });
    assert.deepEqual(new Set(fields), new Set(["garpRepeat", "leaseMs", "clockDriftRatio"]));
  });
});
