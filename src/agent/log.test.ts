import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger, createWallClock, isoMicros } from "./log.ts";

describe("log time stamps", () => {
  it("formats RFC 3339 UTC with microseconds", () => {
    assert.equal(
      isoMicros(Date.UTC(2026, 11, 2, 20, 2, 13, 105) + 0.1234),
      "2026-12-02T20:02:13.105123Z",
    );
    assert.equal(isoMicros(Date.UTC(2026, 11, 2, 20, 2, 13, 105)), "2026-12-02T20:02:13.105000Z");
    assert.equal(
      isoMicros(Date.UTC(2026, 11, 2, 20, 2, 13, 105) + 0.9995),
      "2026-12-02T20:02:13.105999Z",
    );
  });

  it("keeps the monotonic fraction within the wall clock's millisecond and re-anchors on a step", () => {
    let wall = 1_000_000;
    let mono = 50.25;
    const clock = createWallClock(
      () => wall,
      () => mono,
    );
    // Anchored: wall - mono; the fraction comes from the monotonic clock.
    mono = 50.75;
    wall = 1_000_000;
    assert.equal(clock(), 1_000_000.5);
    mono = 51.3;
    wall = 1_000_001;
    assert.ok(Math.abs(clock() - 1_000_001.05) < 1e-6);
    // The wall clock steps back by an hour: the next stamp follows it at once.
    mono = 52;
    wall = 1_000_001 - 3_600_000;
    assert.equal(clock(), wall);
    // And forward: never more than a millisecond away from Date.now().
    mono = 53.5;
    wall = 2_000_000;
    const at = clock();
    assert.ok(at >= wall && at < wall + 1);
  });

  it("writes the stamp into JSON and human lines", () => {
    const lines: string[] = [];
    const before = Date.now();
    createLogger({ human: false, write: (l) => lines.push(l) }).log("info", "hello");
    createLogger({ human: true, write: (l) => lines.push(l) }).log("warn", "there");
    const json = JSON.parse(lines[0]!) as { time: string };
    assert.match(json.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.ok(Date.parse(json.time) >= before - 1 && Date.parse(json.time) <= Date.now() + 1);
    assert.match(lines[1]!, /^\d\d:\d\d:\d\d\.\d{6} WARN {2}there$/);
  });
});
