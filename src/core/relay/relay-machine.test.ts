import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  activeBackend,
  connectCandidates,
  faultsInWindow,
  initialRelayState,
  type RelayEffect,
  type RelayEvent,
  type RelayInput,
  type RelayMachineConfig,
  type RelayState,
  step,
} from "./relay-machine.ts";

function config(overrides: Partial<RelayMachineConfig> = {}): RelayMachineConfig {
  return {
    backends: ["primary", "standby"],
    damper: { faultsToFail: 3, windowMs: 1000, rise: 2 },
    failback: { mode: "immediate" },
    closeOnBackendDown: true,
    closeStandbySessionsOnFailback: false,
    ...overrides,
  };
}

function drive(cfg: RelayMachineConfig, inputs: RelayInput[]) {
  let state: RelayState = initialRelayState(cfg, 0);
  const effects: RelayEffect[] = [];
  const events: RelayEvent[] = [];
  for (const input of inputs) {
    const result = step(cfg, state, input);
    state = result.state;
    effects.push(...result.effects);
    events.push(...result.events);
  }
  return { state, effects, events };
}

const fail = (backend: string, atMs: number): RelayInput => ({
  type: "check-result",
  backend,
  ok: false,
  atMs,
});
const pass = (backend: string, atMs: number): RelayInput => ({
  type: "check-result",
  backend,
  ok: true,
  atMs,
});

describe("relay machine (S4)", () => {
  it("starts on the primary", () => {
    const { state } = drive(config(), []);
    assert.equal(activeBackend(state), "primary");
  });

  it("switches to the standby once the primary has M anomalies in one unit of time", () => {
    const { state, effects, events } = drive(config(), [
      fail("primary", 0),
      fail("primary", 100),
      fail("primary", 200),
    ]);
    assert.equal(activeBackend(state), "standby");
    assert.deepEqual(effects, [
      { type: "switch-backend", to: "standby" },
      { type: "close-connections", backend: "primary" },
    ]);
    assert.deepEqual(
      events.map((e) => e.type),
      ["backend-down", "switched"],
    );
  });

  it("counts passive failures from real traffic as anomalies", () => {
    const { state } = drive(config(), [
      { type: "passive-failure", backend: "primary", atMs: 0 },
      fail("primary", 10),
      { type: "passive-failure", backend: "primary", atMs: 20 },
    ]);
    assert.equal(activeBackend(state), "standby");
  });

  it("does not close sessions of a dead backend unless configured", () => {
    const { effects } = drive(config({ closeOnBackendDown: false }), [
      fail("primary", 0),
      fail("primary", 1),
      fail("primary", 2),
    ]);
    assert.deepEqual(effects, [{ type: "switch-backend", to: "standby" }]);
  });

  it("rejects when every backend is down and recovers with the first that comes back", () => {
    const { state, effects } = drive(config({ closeOnBackendDown: false }), [
      fail("primary", 0),
      fail("primary", 1),
      fail("primary", 2),
      fail("standby", 3),
      fail("standby", 4),
      fail("standby", 5),
      pass("standby", 6),
      pass("standby", 7),
    ]);
    assert.deepEqual(effects, [
      { type: "switch-backend", to: "standby" },
      { type: "switch-backend", to: undefined },
      { type: "switch-backend", to: "standby" },
    ]);
    assert.equal(activeBackend(state), "standby");
    assert.deepEqual(connectCandidates(state), ["standby"]);
  });

  it("fails back immediately after `rise` good checks, closing standby sessions if asked", () => {
    const { state, effects, events } = drive(
      config({ closeOnBackendDown: false, closeStandbySessionsOnFailback: true }),
      [
        fail("primary", 0),
        fail("primary", 1),
        fail("primary", 2),
        pass("primary", 3),
        pass("primary", 4),
      ],
    );
    assert.equal(activeBackend(state), "primary");
    assert.deepEqual(effects.slice(1), [
      { type: "switch-backend", to: "primary" },
      { type: "close-connections", backend: "standby" },
    ]);
    const last = events.at(-1);
    assert.equal(last?.type === "switched" ? last.reason : undefined, "failback");
  });

  it("fails back only after the primary stayed up for the configured time", () => {
    const cfg = config({ failback: { mode: "after", afterMs: 5000 } });
    const down = [fail("primary", 0), fail("primary", 1), fail("primary", 2)];
    const early = drive(cfg, [
      ...down,
      pass("primary", 10),
      pass("primary", 20),
      { type: "tick", atMs: 4000 },
    ]);
    assert.equal(activeBackend(early.state), "standby");
    const late = drive(cfg, [
      ...down,
      pass("primary", 10),
      pass("primary", 20),
      { type: "tick", atMs: 5020 },
    ]);
    assert.equal(activeBackend(late.state), "primary");
  });

  it("with failback never stays on the standby while it is up, and leaves it when it fails", () => {
    const cfg = config({ failback: { mode: "never" } });
    const base = [
      fail("primary", 0),
      fail("primary", 1),
      fail("primary", 2),
      pass("primary", 3),
      pass("primary", 4),
    ];
    const stay = drive(cfg, [...base, { type: "tick", atMs: 100_000 }]);
    assert.equal(activeBackend(stay.state), "standby");
    assert.deepEqual(connectCandidates(stay.state), ["standby", "primary"]);
    const leave = drive(cfg, [...base, fail("standby", 5), fail("standby", 6), fail("standby", 7)]);
    assert.equal(activeBackend(leave.state), "primary");
  });

  it("reports faults of the current unit only", () => {
    const cfg = config();
    const { state } = drive(cfg, [fail("primary", 0), fail("primary", 100)]);
    assert.equal(faultsInWindow(cfg, state.backends[0]!, 500), 2);
    assert.equal(faultsInWindow(cfg, state.backends[0]!, 1000), 0);
  });

  it("ignores reports about unknown backends", () => {
    const { state, effects } = drive(config(), [
      fail("ghost", 0),
      fail("ghost", 1),
      fail("ghost", 2),
    ]);
    assert.equal(activeBackend(state), "primary");
    assert.deepEqual(effects, []);
  });
});

const inputArb = (backends: readonly string[]) =>
  fc.oneof(
    fc.record({
      type: fc.constant("check-result" as const),
      backend: fc.constantFrom(...backends),
      ok: fc.boolean(),
      gap: fc.integer({ min: 0, max: 700 }),
    }),
    fc.record({
      type: fc.constant("passive-failure" as const),
      backend: fc.constantFrom(...backends),
      gap: fc.integer({ min: 0, max: 700 }),
    }),
    fc.record({ type: fc.constant("tick" as const), gap: fc.integer({ min: 0, max: 3000 }) }),
  );

function timed(
  raw: Array<{ type: string; gap: number; backend?: string; ok?: boolean }>,
): RelayInput[] {
  let atMs = 0;
  return raw.map((r) => {
    atMs += r.gap;
    if (r.type === "tick") return { type: "tick", atMs };
    if (r.type === "passive-failure") return { type: "passive-failure", backend: r.backend!, atMs };
    return { type: "check-result", backend: r.backend!, ok: r.ok!, atMs };
  });
}

const failbackArb = fc.oneof(
  fc.constant({ mode: "immediate" as const }),
  fc.constant({ mode: "never" as const }),
  fc.integer({ min: 0, max: 5000 }).map((afterMs) => ({ mode: "after" as const, afterMs })),
);

describe("relay machine properties", () => {
  const backends = ["primary", "s1", "s2"];

  it("never selects a backend that is down, and rejects only when all are down", () => {
    fc.assert(
      fc.property(
        fc.array(inputArb(backends), { maxLength: 120 }),
        failbackArb,
        (raw, failback) => {
          const cfg = config({ backends, failback });
          let state = initialRelayState(cfg, 0);
          for (const input of timed(raw)) {
            state = step(cfg, state, input).state;
            const anyUp = state.backends.some((b) => b.damper.up);
            if (state.active === undefined) assert.equal(anyUp, false);
            else assert.equal(state.backends[state.active]!.damper.up, true);
            for (const id of connectCandidates(state)) {
              assert.equal(state.backends.find((b) => b.id === id)!.damper.up, true);
            }
          }
        },
      ),
    );
  });

  it("with immediate failback, the active backend is always the first one up", () => {
    fc.assert(
      fc.property(fc.array(inputArb(backends), { maxLength: 120 }), (raw) => {
        const cfg = config({ backends });
        let state = initialRelayState(cfg, 0);
        for (const input of timed(raw)) {
          state = step(cfg, state, input).state;
          const firstUp = state.backends.findIndex((b) => b.damper.up);
          assert.equal(state.active, firstUp < 0 ? undefined : firstUp);
        }
      }),
    );
  });

  it("switch effects always match the state change", () => {
    fc.assert(
      fc.property(
        fc.array(inputArb(backends), { maxLength: 120 }),
        failbackArb,
        (raw, failback) => {
          const cfg = config({ backends, failback });
          let state = initialRelayState(cfg, 0);
          for (const input of timed(raw)) {
            const before = activeBackend(state);
            const result = step(cfg, state, input);
            state = result.state;
            const switches = result.effects.filter((e) => e.type === "switch-backend");
            if (before === activeBackend(state)) assert.equal(switches.length, 0);
            else assert.deepEqual(switches, [{ type: "switch-backend", to: activeBackend(state) }]);
          }
        },
      ),
    );
  });

  it("anomalies fewer than M in every unit of time never switch", () => {
    const m = 3;
    const windowMs = 1000;
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.integer({ min: 0, max: windowMs - 1 }), { maxLength: m - 1 }), {
          maxLength: 20,
        }),
        (units) => {
          const cfg = config({ damper: { faultsToFail: m, windowMs, rise: 2 } });
          // Faults at arbitrary offsets, fewer than M per aligned unit. The damper's unit starts
          // at the first fault, so keep each unit's faults within [k*2W, k*2W + W) to ensure
          // no damper window spans two groups.
          const inputs: RelayInput[] = [];
          units.forEach((offsets, k) => {
            for (const offset of [...offsets].sort((a, b) => a - b)) {
              inputs.push({
                type: "passive-failure",
                backend: "primary",
                atMs: k * 2 * windowMs + offset,
              });
            }
          });
          const { effects } = drive(cfg, inputs);
          assert.deepEqual(effects, []);
        },
      ),
    );
  });
});
