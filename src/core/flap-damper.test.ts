import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type FlapDamperConfig, initialDamperState, observe } from "./flap-damper.ts";

const config: FlapDamperConfig = { faultsToFail: 3, windowMs: 1000, rise: 2 };

function run(observations: Array<[boolean, number]>) {
  let state = initialDamperState();
  const transitions: string[] = [];
  for (const [ok, at] of observations) {
    const result = observe(config, state, ok, at);
    state = result.state;
    if (result.transition !== "none") transitions.push(`${result.transition}@${at}`);
  }
  return { state, transitions };
}

describe("flap damper (S4: M anomalies per unit time)", () => {
  it("declares down when M faults fall within one unit of time", () => {
    const { state, transitions } = run([
      [false, 0],
      [false, 100],
      [false, 200],
    ]);
    assert.equal(state.up, false);
    assert.deepEqual(transitions, ["went-down@200"]);
  });

  it("resets the counter every unit, so faults spread thinner than M per unit never fail", () => {
    const { state, transitions } = run([
      [false, 0],
      [false, 900],
      [false, 1000],
      [false, 1900],
      [false, 2000],
    ]);
    assert.equal(state.up, true);
    assert.deepEqual(transitions, []);
  });

  it("needs `rise` consecutive good observations to come back, and a fault restarts the streak", () => {
    const { state, transitions } = run([
      [false, 0],
      [false, 1],
      [false, 2],
      [true, 10],
      [false, 20],
      [true, 30],
      [true, 40],
    ]);
    assert.equal(state.up, true);
    assert.deepEqual(transitions, ["went-down@2", "went-up@40"]);
  });
});
