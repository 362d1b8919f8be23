/**
 * The scale benchmark run once on the smallest sizes, so that it cannot rot unnoticed: it
 * must exit 0, measure each configuration (traffic counted by the real codec, a failover per
 * trial) and write its JSON. The figures are checked only against what the configuration
 * fixes: every node of a 3-node cluster sends a heartbeat to each of its two peers once per
 * `lan` interval (r = 10 times a second at 100 ms), so the mean is about 2r datagrams a
 * second; with `heartbeats: coordinator` the followers send to the coordinator only,
 * (2r + 2 × r) / 3.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { profiles } from "../src/config/profiles.ts";

const out = mkdtempSync(join(tmpdir(), "fipscale-"));
after(() => rmSync(out, { recursive: true, force: true }));

describe("scale benchmark (smoke)", () => {
  it("measures 3 and 5 nodes with 10 VIPs and writes its JSON", async () => {
    const path = join(out, "scale.json");
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        join(import.meta.dirname, "scale.ts"),
        ...["--nodes", "3,5", "--vips", "10", "--trials", "2", "--out", path],
      ],
      { timeout: 120_000 },
    );
    assert.match(stdout, /coord CPU ms\/round/);
    const result = JSON.parse(readFileSync(path, "utf8")) as {
      rows: {
        heartbeats: string;
        nodes: number;
        mean: { datagrams: number; bytes: number; oversize: number };
        failoverP50: number;
        failoverMissing: number;
        violations: number;
      }[];
    };
    assert.deepEqual(
      result.rows.map((r) => `${r.nodes} ${r.heartbeats}`),
      ["3 all", "3 coordinator", "5 all", "5 coordinator"],
    );
    const [three, threeStar, five, fiveStar] = result.rows;
    // Each node heartbeats every other node once per `lan` interval (r a second); with
    // `coordinator`, followers heartbeat only the coordinator.
    const r = 1000 / profiles.lan.heartbeatIntervalMs;
    const near = (actual: number, expected: number, label: string) =>
      assert.ok(
        Math.abs(actual - expected) <= expected / 10,
        `${label}: ${actual}/s, not ${expected}`,
      );
    near(three!.mean.datagrams, 2 * r, "3 nodes");
    near(five!.mean.datagrams, 4 * r, "5 nodes");
    near(threeStar!.mean.datagrams, (2 * r + 2 * r) / 3, "3 nodes, star");
    near(fiveStar!.mean.datagrams, (4 * r + 4 * r) / 5, "5 nodes, star");
    for (const row of result.rows) {
      assert.ok(row.mean.bytes > row.mean.datagrams * 100, "each datagram sized by the codec");
      assert.equal(row.mean.oversize, 0);
      assert.equal(row.violations, 0);
      assert.equal(row.failoverMissing, 0);
      assert.ok(row.failoverP50 > 0);
    }
  });
});
