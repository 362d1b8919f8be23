/**
 * The reject-cost benchmark run once with the smallest count, so that it cannot rot
 * unnoticed: it must exit 0, handle datagrams of every kind (each one counted under its own
 * outcome, which is what the transport's drop counters are checked against) and write its
 * JSON. The figures themselves are not judged here.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";

const out = mkdtempSync(join(tmpdir(), "fipreject-"));
after(() => rmSync(out, { recursive: true, force: true }));

describe("reject-cost benchmark (smoke)", () => {
  it("measures every outcome and writes its JSON", async () => {
    const path = join(out, "reject.json");
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(import.meta.dirname, "reject.ts"), "--count", "2000", "--out", path],
      { timeout: 120_000 },
    );
    assert.match(stdout, /µs per datagram/);
    const result = JSON.parse(readFileSync(path, "utf8")) as {
      rows: { kind: string; sent: number; handled: number; kernelDrops: number }[];
    };
    assert.deepEqual(
      result.rows.map((r) => r.kind),
      ["accepted", "not-fresh", "bad-mac", "non-member"],
    );
    for (const row of result.rows) {
      assert.equal(row.sent, 2000, `${row.kind} sent`);
      assert.equal(row.handled + row.kernelDrops, 2000, `${row.kind}: every datagram accounted`);
    }
  });
});
