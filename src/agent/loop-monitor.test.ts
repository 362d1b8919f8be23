import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LoopMonitor, lagBucketsMs } from "./loop-monitor.ts";

describe("LoopMonitor", () => {
  it("counts lateness into cumulative buckets and calls half a heartbeat a stall", () => {
    const monitor = new LoopMonitor(50);
    assert.equal(monitor.stallThresholdMs, 25);
    assert.equal(monitor.record(0), false);
    assert.equal(monitor.record(3), false);
    assert.equal(monitor.record(24), false);
    assert.equal(monitor.record(25), true);
    assert.equal(monitor.record(7000), true);
    const s = monitor.snapshot();
    assert.equal(s.count, 5);
    assert.equal(s.stalls, 2);
    assert.equal(s.lastStallMs, 7000);
    assert.equal(s.maxMs, 7000);
    assert.equal(s.sumMs, 0 + 3 + 24 + 25 + 7000);
    assert.equal(s.buckets.length, lagBucketsMs.length + 1);
    assert.equal(s.buckets[0], 1, "0 ms is in the 1 ms bucket");
    assert.equal(s.buckets[1], 2, "3 ms is in the 5 ms bucket, cumulative");
    assert.equal(s.buckets[3], 4, "24 and 25 ms are in the 25 ms bucket");
    assert.equal(s.buckets[10], 4, "nothing between 25 ms and 5 s");
    assert.equal(s.buckets.at(-1), 5, "+Inf holds every sample");
  });

  it("never goes below 10 ms for fast heartbeats", () => {
    assert.equal(new LoopMonitor(10).stallThresholdMs, 10);
  });
});
