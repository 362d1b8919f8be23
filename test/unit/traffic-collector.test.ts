import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  computeDeltas,
  counterDelta,
  type InterfaceReading,
  parseProcNetDev,
} from "../../src/traffic/collector.ts";

const header = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
`;

function procText(rows: Record<string, number[] | bigint[]>): string {
  const lines = Object.entries(rows).map(([iface, v]) => {
    const [rb, rp, re, rd, tb, tp, te, td] = v.map(String);
    return `${iface.padStart(6)}: ${rb} ${rp} ${re} ${rd} 0 0 0 0 ${tb} ${tp} ${te} ${td} 0 0 0 0`;
  });
  return `${header}${lines.join("\n")}\n`;
}

const withIndex = (readings: InterfaceReading[], index: Record<string, number>) =>
  readings.map((r) => ({ ...r, ifindex: index[r.iface]! }));

describe("traffic collector", () => {
  it("parses the kernel's /proc/net/dev layout", () => {
    const r = parseProcNetDev(
      procText({ lo: [10, 1, 2, 3, 20, 4, 5, 6], eth0: [7, 8, 0, 0, 9, 10, 0, 1] }),
    );
    assert.equal(r.length, 2);
    assert.deepEqual(r[0], {
      iface: "lo",
      counters: {
        rxBytes: 10n,
        rxPackets: 1n,
        rxErrors: 2n,
        rxDrops: 3n,
        txBytes: 20n,
        txPackets: 4n,
        txErrors: 5n,
        txDrops: 6n,
      },
    });
    assert.equal(r[1]?.counters.txDrops, 1n);
  });

  it("skips malformed lines", () => {
    const text = `${header} eth0: 1 2 3\n junk line\n eth1: a b c d e f g h i j k l m n o p\n`;
    assert.deepEqual(parseProcNetDev(text), []);
  });

  it("computes deltas between rounds, and only a baseline for new interfaces", () => {
    const idx = { eth0: 2, eth1: 3 };
    const a = withIndex(parseProcNetDev(procText({ eth0: [100, 10, 0, 0, 50, 5, 0, 0] })), idx);
    const first = computeDeltas(new Map(), a, 1000);
    assert.deepEqual(first.samples, []);
    const b = withIndex(
      parseProcNetDev(
        procText({ eth0: [350, 12, 1, 0, 80, 9, 0, 2], eth1: [5, 1, 0, 0, 5, 1, 0, 0] }),
      ),
      idx,
    );
    const second = computeDeltas(first.baselines, b, 2000);
    assert.deepEqual(second.samples, [
      {
        tsMs: 2000,
        iface: "eth0",
        ifindex: 2,
        intervalMs: 1000,
        rxBytes: 250,
        rxPackets: 2,
        rxErrors: 1,
        rxDrops: 0,
        txBytes: 30,
        txPackets: 4,
        txErrors: 0,
        txDrops: 2,
      },
    ]);
    assert.equal(second.baselines.size, 2);
  });

  it("handles 32-bit and 64-bit counter wrap", () => {
    assert.equal(counterDelta(2n ** 32n - 100n, 50n), 150n);
    assert.equal(counterDelta(2n ** 64n - 10n, 5n), 15n);
    assert.equal(counterDelta(5n, 9n), 4n);
    const idx = { eth0: 2 };
    const a = withIndex(
      parseProcNetDev(procText({ eth0: [2n ** 32n - 1n, 0n, 0n, 0n, 2n ** 64n - 1n, 0n, 0n, 0n] })),
      idx,
    );
    const b = withIndex(parseProcNetDev(procText({ eth0: [9n, 0n, 0n, 0n, 0n, 0n, 0n, 0n] })), idx);
    const { samples } = computeDeltas(computeDeltas(new Map(), a, 0).baselines, b, 1000);
    assert.equal(samples[0]?.rxBytes, 10);
    assert.equal(samples[0]?.txBytes, 1);
  });

  it("keeps history across a rename and restarts on a new ifindex", () => {
    const a = withIndex(parseProcNetDev(procText({ eth0: [100, 1, 0, 0, 100, 1, 0, 0] })), {
      eth0: 7,
    });
    const renamed = withIndex(parseProcNetDev(procText({ wan0: [160, 2, 0, 0, 100, 1, 0, 0] })), {
      wan0: 7,
    });
    const s1 = computeDeltas(computeDeltas(new Map(), a, 0).baselines, renamed, 1000);
    assert.equal(s1.samples.length, 1);
    assert.equal(s1.samples[0]?.iface, "wan0");
    assert.equal(s1.samples[0]?.rxBytes, 60);
    // Deleted and re-created with lower counters: a new ifindex, so no bogus wrap delta.
    const recreated = withIndex(parseProcNetDev(procText({ wan0: [3, 1, 0, 0, 0, 0, 0, 0] })), {
      wan0: 9,
    });
    const s2 = computeDeltas(s1.baselines, recreated, 2000);
    assert.deepEqual(s2.samples, []);
    assert.deepEqual([...s2.baselines.keys()], [9]);
  });
});
