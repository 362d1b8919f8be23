import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { InterfaceSample } from "../../src/traffic/collector.ts";
import { maxQueryBuckets, TrafficStore } from "../../src/traffic/store.ts";

const dir = mkdtempSync(join(tmpdir(), "fipt-store-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const open = (options = {}) => new TrafficStore(join(dir, `t${n++}.db`), "n1", options);

function sample(tsMs: number, iface: string, rxBytes: number): InterfaceSample {
  return {
    tsMs,
    iface,
    ifindex: iface === "eth0" ? 2 : 3,
    intervalMs: 1000,
    rxBytes,
    rxPackets: 1,
    rxErrors: 0,
    rxDrops: 0,
    txBytes: 2 * rxBytes,
    txPackets: 1,
    txErrors: 0,
    txDrops: 0,
  };
}

describe("traffic store", () => {
  it("assigns increasing sequences and reads rows after a position", () => {
    const s = open();
    assert.equal(s.highestSeq("n1"), 0);
    const first = s.appendOwn([sample(1000, "eth0", 1), sample(1000, "eth1", 2)]) - 1;
    const last = s.appendOwn([sample(2000, "eth0", 3)]);
    assert.equal(last, first + 2);
    assert.equal(s.highestSeq("n1"), last);
    const rows = s.rowsAfter("n1", first, 10);
    assert.deepEqual(
      rows.map((r) => r[0]),
      [first + 1, first + 2],
    );
    assert.deepEqual(rows[1], [last, 2000, "eth0", 2, 1000, 3, 1, 0, 0, 6, 1, 0, 0]);
    s.close();
  });

  it("numbers a new store above every sample of the store it replaces (a wiped node's target takes its samples)", () => {
    const path = join(dir, `wiped-${n++}.db`);
    const before = new TrafficStore(path, "n1");
    before.appendOwn(Array.from({ length: 500 }, (_, i) => sample(1000 + i, "eth0", i)));
    const target = new TrafficStore(join(dir, `t${n++}.db`), "n2");
    const old = target.appendReplicated("n1", before.rowsAfter("n1", 0, 1000));
    before.close();
    rmSync(path);
    for (const suffix of ["-wal", "-shm"]) rmSync(`${path}${suffix}`, { force: true });
    const after = new TrafficStore(path, "n1");
    after.appendOwn([sample(9000, "eth0", 1), sample(9001, "eth0", 2)]);
    // The sender resumes from the target's position: everything new lies above it.
    const fresh = after.rowsAfter("n1", target.highestSeq("n1"), 1000);
    assert.equal(fresh.length, 2, "the new store's samples are all above the old highest");
    assert.ok(target.appendReplicated("n1", fresh) > old);
    assert.equal(
      target.query({ origin: "n1", fromMs: 9000, toMs: 9002, stepMs: 1000 })[0]?.samples,
      2,
    );
    after.close();
    target.close();
  });

  it("keeps replicated samples per origin, apart from its own, and ignores duplicates", () => {
    const origin = open();
    const base =
      origin.appendOwn([
        sample(1000, "eth0", 10),
        sample(2000, "eth0", 20),
        sample(3000, "eth0", 30),
      ]) - 3;
    const target = new TrafficStore(join(dir, `t${n++}.db`), "n2");
    const rows = origin.rowsAfter("n1", 0, 100);
    assert.equal(target.appendReplicated("n1", rows.slice(0, 2)), base + 2);
    assert.equal(target.appendReplicated("n1", rows), base + 3);
    assert.equal(target.highestSeq("n1"), base + 3);
    assert.equal(target.highestSeq("n2"), 0);
    assert.deepEqual(target.replicatedOrigins(), ["n1"]);
    assert.deepEqual(target.digest("n1"), origin.digest("n1"));
    assert.equal(target.query({ origin: "n2", fromMs: 0, toMs: 1e9, stepMs: 1000 }).length, 0);
    origin.close();
    target.close();
  });

  it("answers queries by node, range, step and interface", () => {
    const s = open();
    for (let t = 0; t < 10_000; t += 1000)
      s.appendOwn([sample(t, "eth0", 1), sample(t, "eth1", 100)]);
    const all = s.query({ origin: "n1", fromMs: 0, toMs: 10_000, stepMs: 5000 });
    assert.deepEqual(
      all.map((b) => [b.tsMs, b.iface, b.rxBytes, b.txBytes, b.samples]),
      [
        [0, "eth0", 5, 10, 5],
        [0, "eth1", 500, 1000, 5],
        [5000, "eth0", 5, 10, 5],
        [5000, "eth1", 500, 1000, 5],
      ],
    );
    const one = s.query({ origin: "n1", fromMs: 2000, toMs: 4000, stepMs: 1000, iface: "eth1" });
    assert.deepEqual(
      one.map((b) => [b.tsMs, b.rxBytes]),
      [
        [2000, 100],
        [3000, 100],
      ],
    );
    s.close();
  });

  it("answers a long range in slices with turns of the event loop between them, equal to one query", async () => {
    const s = open();
    // Six hours of 1-s samples on two interfaces, some of them already rolled up.
    const hour = 3_600_000;
    const start = 1_700_000_000_000;
    for (let h = 0; h < 6; h += 1) {
      const rows: InterfaceSample[] = [];
      for (let t = 0; t < hour; t += 1000) {
        rows.push(
          sample(start + h * hour + t, "eth0", t % 997),
          sample(start + h * hour + t, "eth1", 1),
        );
      }
      s.appendOwn(rows);
    }
    s.prune(start + 2 * hour + 2 * 86_400_000 + 60_000); // the first two hours into rollups
    const q = {
      origin: "n1",
      fromMs: start + 1234,
      toMs: start + 6 * hour - 777,
      stepMs: 7 * 60_000,
    };
    const whole = s.query(q);
    // A task beside the query: it runs only when the query yields.
    let turns = 0;
    let running = true;
    const beside = (async () => {
      while (running) {
        turns += 1;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const sliced = await s.querySliced(q, hour);
    running = false;
    await beside;
    assert.deepEqual(sliced, whole);
    assert.ok(whole.length > 50);
    assert.ok(turns >= 5, `the event loop turned between the slices (${turns} turns)`);
    await assert.rejects(
      s.querySliced({ ...q, stepMs: 1, toMs: q.fromMs + maxQueryBuckets + 1 }),
      /QUERY_TOO_LARGE|at most/,
    );
    s.close();
  });

  it("prunes raw samples into 1-minute rollups and drops old rollups", () => {
    const s = open({ rawRetentionMs: 120_000, rollupRetentionMs: 600_000 });
    const other = [] as [
      number,
      number,
      string,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ][];
    for (let i = 0; i < 300; i++) {
      s.appendOwn([sample(i * 1000, "eth0", 1)]);
      other.push([i + 1, i * 1000, "eth0", 2, 1000, 2, 1, 0, 0, 0, 0, 0, 0]);
    }
    s.appendReplicated("n9", other);
    const before = s.query({ origin: "n1", fromMs: 0, toMs: 300_000, stepMs: 60_000 });
    const beforeOther = s.query({ origin: "n9", fromMs: 0, toMs: 300_000, stepMs: 60_000 });
    // Now = 300 s: raw older than minute 180 s goes to rollups.
    const result = s.prune(300_000);
    assert.equal(result.rolledUp, 360);
    assert.equal(s.rowsAfter("n1", 0, 1000)[0]?.[1], 180_000);
    assert.deepEqual(s.query({ origin: "n1", fromMs: 0, toMs: 300_000, stepMs: 60_000 }), before);
    assert.deepEqual(
      s.query({ origin: "n9", fromMs: 0, toMs: 300_000, stepMs: 60_000 }),
      beforeOther,
    );
    assert.equal(s.highestSeq("n9"), 300, "positions survive pruning");
    // Much later everything has aged out of both tiers.
    s.prune(2_000_000);
    assert.deepEqual(s.query({ origin: "n1", fromMs: 0, toMs: 300_000, stepMs: 60_000 }), []);
    s.close();
  });
});
