import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCount, isName, isRecord } from "./validate.ts";

describe("validators", () => {
  it("isRecord: plain objects only", () => {
    assert.equal(isRecord({}), true);
    assert.equal(isRecord({ a: 1 }), true);
    for (const value of [null, undefined, [], "x", 1, true]) assert.equal(isRecord(value), false);
  });

  it("isCount: whole numbers 0 to 2^53 - 1", () => {
    assert.equal(isCount(0), true);
    assert.equal(isCount(Number.MAX_SAFE_INTEGER), true);
    for (const value of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, Number.NaN, Infinity, "1", null]) {
      assert.equal(isCount(value), false, String(value));
    }
  });

  it("isName: non-empty strings up to a length", () => {
    assert.equal(isName("n1"), true);
    assert.equal(isName("x".repeat(255)), true);
    assert.equal(isName("x".repeat(256)), false);
    assert.equal(isName("x".repeat(64), 64), true);
    assert.equal(isName("x".repeat(65), 64), false);
    for (const value of ["", 1, null, undefined, ["n1"]]) assert.equal(isName(value), false);
  });
});
