/**
 * The simulator's property checks (src/sim/properties.ts) hold for the real core. The
 * mutation suite (`npm run mutants`) runs the same checks against broken copies of it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { properties } from "../../src/sim/properties.ts";

describe("simulator properties", () => {
  for (const property of properties) {
    it(property.name, () => {
      assert.equal(property.check(), undefined);
    });
  }
});
