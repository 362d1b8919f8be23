import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDuration } from "./duration.ts";

describe("parseDuration", () => {
  it("reads every unit, with fractions and spaces", () => {
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("1.5s"), 1500);
    assert.equal(parseDuration(" 2 m "), 120_000);
    assert.equal(parseDuration("1h"), 3_600_000);
    assert.equal(parseDuration("2d"), 172_800_000);
    assert.equal(parseDuration("0.5ms"), 0.5);
  });

  it("gives a bare number the caller's unit, and refuses it without one", () => {
    assert.equal(parseDuration("250"), undefined);
    assert.equal(parseDuration("250", "ms"), 250);
    assert.equal(parseDuration("5", "s"), 5000);
    assert.equal(parseDuration("1.5", "s"), 1500);
  });

  it("refuses what is not a duration", () => {
    for (const text of [
      "",
      "s",
      "-1s",
      "1x",
      "2 days",
      "1e3ms",
      "1.s",
      ".5s",
      "1s2",
      "ms5",
      "0x10",
    ]) {
      assert.equal(parseDuration(text, "ms"), undefined, text);
    }
  });
});
