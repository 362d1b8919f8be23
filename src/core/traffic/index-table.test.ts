import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  answeringNode,
  buildIndexTable,
  findRow,
  type IndexTable,
  markFailed,
  nodeRecovered,
  originsToReplicate,
  reportTargetFailed,
} from "./index-table.ts";

const nodes = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ id: `NODE${i + 1}`, ips: [`198.18.0.${i + 1}`] }));

const target = (t: IndexTable, id: string) => findRow(t, id)?.backupTargetId;

describe("index table", () => {
  it("chains every node to the next one in ring order", () => {
    const t = buildIndexTable(nodes(5));
    assert.equal(t.version, 1);
    assert.deepEqual(
      t.rows.map((r) => [r.nodeId, r.backupTargetId, r.backupTargetIp, r.status]),
      [
        ["NODE1", "NODE2", "198.18.0.2", "Normal"],
        ["NODE2", "NODE3", "198.18.0.3", "Normal"],
        ["NODE3", "NODE4", "198.18.0.4", "Normal"],
        ["NODE4", "NODE5", "198.18.0.5", "Normal"],
        ["NODE5", "NODE1", "198.18.0.1", "Normal"],
      ],
    );
  });

  it("S3 example: NODE3's target NODE4 fails, NODE3 re-targets to NODE5", () => {
    const t = buildIndexTable(nodes(5));
    const r = reportTargetFailed(t, "NODE3", "NODE4");
    assert.ok(r.ok);
    assert.equal(r.table.version, 2);
    assert.equal(findRow(r.table, "NODE4")?.status, "Failed");
    assert.equal(target(r.table, "NODE3"), "NODE5");
    assert.equal(findRow(r.table, "NODE3")?.backupTargetIp, "198.18.0.5");
    // NODE4's row still names NODE5, which holds NODE4's pre-failure samples.
    assert.equal(target(r.table, "NODE4"), "NODE5");
    assert.deepEqual(answeringNode(r.table, "NODE4"), {
      nodeId: "NODE5",
      status: "Failed",
      fromBackup: true,
    });
    assert.deepEqual(originsToReplicate(r.table, "NODE5"), ["NODE5", "NODE4"]);
  });

  it("a second report of the same failure leaves the table unchanged", () => {
    const first = reportTargetFailed(buildIndexTable(nodes(4)), "NODE1", "NODE2");
    assert.ok(first.ok);
    const again = reportTargetFailed(first.table, "NODE1", "NODE2");
    assert.ok(again.ok);
    assert.equal(again.changed, false);
    assert.equal(again.table.version, first.table.version);
  });

  it("rejects reports about a node that is not the reporter's target, or from unknown nodes", () => {
    const t = buildIndexTable(nodes(4));
    const wrong = reportTargetFailed(t, "NODE1", "NODE3");
    assert.equal(wrong.ok, false);
    assert.equal(!wrong.ok && wrong.code, "NOT_REPORTERS_TARGET");
    const unknown = reportTargetFailed(t, "NODE9", "NODE1");
    assert.equal(!unknown.ok && unknown.code, "UNKNOWN_NODE");
  });

  it("recovery restores the default chain and bumps the version", () => {
    const failed = reportTargetFailed(buildIndexTable(nodes(4)), "NODE2", "NODE3");
    assert.ok(failed.ok);
    const back = nodeRecovered(failed.table, "NODE3");
    assert.ok(back.ok);
    assert.equal(back.table.version, 3);
    assert.deepEqual(back.table.rows, buildIndexTable(nodes(4)).rows);
  });

  it("a custodian's failure moves the Failed node's row to the custodian's target", () => {
    const a = markFailed(buildIndexTable(nodes(5)), "NODE4");
    assert.ok(a.ok);
    const b = reportTargetFailed(a.table, "NODE3", "NODE5");
    assert.ok(b.ok);
    assert.equal(target(b.table, "NODE4"), "NODE1");
    assert.equal(target(b.table, "NODE5"), "NODE1");
    assert.equal(target(b.table, "NODE3"), "NODE1");
  });

  it("with one Normal node left it has no backup target", () => {
    const r = reportTargetFailed(buildIndexTable(nodes(2)), "NODE1", "NODE2");
    assert.ok(r.ok);
    assert.equal(target(r.table, "NODE1"), undefined);
  });
});

/**
 * Property: a model of where each node's samples physically are. After every table change
 * the replication "settles": each Normal node's samples reach its target, and each
 * custodian forwards the samples it holds for Failed nodes to its own target. Failed nodes
 * hold nothing reachable. Checked after every step of a random failure/recovery sequence.
 */
describe("index table properties", () => {
  type Op = { kind: "fail" | "recover"; pick: number };
  const op = fc.record({
    kind: fc.constantFrom<"fail" | "recover">("fail", "recover"),
    pick: fc.nat(100),
  });

  function settle(t: IndexTable, holders: Map<string, Set<string>>): void {
    // Forwarding can chain through several custodians: repeat until nothing moves.
    for (let changed = true; changed; ) {
      changed = false;
      for (const row of t.rows) {
        if (row.status === "Failed" || row.backupTargetId === undefined) continue;
        for (const origin of originsToReplicate(t, row.nodeId)) {
          const set = holders.get(origin)!;
          if (!set.has(row.nodeId)) continue; // cannot forward what it does not hold
          if (!set.has(row.backupTargetId)) {
            set.add(row.backupTargetId);
            changed = true;
          }
        }
      }
    }
  }

  function check(t: IndexTable, holders: Map<string, Set<string>>): void {
    const normal = new Set(t.rows.filter((r) => r.status === "Normal").map((r) => r.nodeId));
    for (const row of t.rows) {
      assert.notEqual(row.backupTargetId, row.nodeId, `${row.nodeId} targets itself`);
      if (row.status === "Normal") {
        assert.ok(row.backupTargetId && normal.has(row.backupTargetId), `${row.nodeId} target`);
      }
      const liveOthers = [...holders.get(row.nodeId)!].filter(
        (h) => h !== row.nodeId && normal.has(h),
      );
      assert.ok(liveOthers.length >= 1, `${row.nodeId}'s samples on no other live node`);
      if (row.status === "Failed") {
        const answer = answeringNode(t, row.nodeId);
        assert.ok(answer && normal.has(answer.nodeId), "query for a Failed node has an answerer");
        assert.ok(holders.get(row.nodeId)!.has(answer.nodeId), "the answerer holds the data");
      }
    }
  }

  it("every node's samples live on another live node; no self or Failed targets", () => {
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 7 }), fc.array(op, { maxLength: 30 }), (n, ops) => {
        let t = buildIndexTable(nodes(n));
        const holders = new Map(t.rows.map((r) => [r.nodeId, new Set([r.nodeId])]));
        settle(t, holders);
        check(t, holders);
        for (const o of ops as Op[]) {
          const normal = t.rows.filter((r) => r.status === "Normal");
          const failed = t.rows.filter((r) => r.status === "Failed");
          if (o.kind === "fail" && normal.length > 2) {
            const victim = normal[o.pick % normal.length]!;
            const reporter = normal.find((r) => r.backupTargetId === victim.nodeId)!;
            const r = reportTargetFailed(t, reporter.nodeId, victim.nodeId);
            assert.ok(r.ok && r.changed);
            t = r.table;
            // A Failed node's own copy is unreachable; it keeps its file for when it returns.
          } else if (o.kind === "recover" && failed.length > 0) {
            const back = failed[o.pick % failed.length]!;
            const r = nodeRecovered(t, back.nodeId);
            assert.ok(r.ok && r.changed);
            t = r.table;
          } else continue;
          settle(t, holders);
          check(t, holders);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("the version strictly increases with every change", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 20 }), (ops) => {
        let t = buildIndexTable(nodes(5));
        for (const o of ops as Op[]) {
          const ids = t.rows.map((r) => r.nodeId);
          const id = ids[o.pick % ids.length]!;
          const r = o.kind === "fail" ? markFailed(t, id) : nodeRecovered(t, id);
          if (r.ok && r.changed) assert.equal(r.table.version, t.version + 1);
          else assert.equal(r.table.version, t.version);
          t = r.table;
        }
      }),
    );
  });
});
