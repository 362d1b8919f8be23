/**
 * The trade-off benchmark run once with the smallest options (one heartbeat interval, one
 * trial per fault, 3 s of load), so that it cannot rot unnoticed: it must exit 0, print its
 * table header and write a result with the asked interval. Nothing here looks at the figures.
 * The interval is 50 ms (`lan`'s until 2026-12-06): at 20 ms (the bench's fastest point) a fresh-clone run once
 * saw a VIP move on the idle cluster while it settled, and the bench rightly reported "never
 * settled"; that is a figure of the bench (spurious moves at 20 ms), not a failure of it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const script = join(import.meta.dirname, "..", "..", "bench", "tradeoff.ts");
const out = mkdtempSync(join(tmpdir(), "fipts-"));
after(() => rmSync(out, { recursive: true, force: true }));

function runBench(
  args: readonly string[],
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    // SIGINT lets the bench remove its namespaces through the topology's exit cleanup.
    const timer = setTimeout(
      () => child.pid !== undefined && process.kill(child.pid, "SIGINT"),
      timeoutMs,
    );
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe("tradeoff benchmark (smoke)", { skip: skipUnlessRoot(), concurrency: 1 }, () => {
  it("one interval, one trial per fault, 3 s of load", async () => {
    const path = join(out, "tradeoff.json");
    const { code, output } = await runBench(
      ["--intervals", "50", "--trials", "1", "--seconds", "3", "--out", path],
      90_000,
    );
    assert.equal(code, 0, output);
    assert.match(
      output,
      /interval ms\s+election\/lease ms\s+switch p50 sigkill ms\s+switch p50 link-down ms\s+spurious\/min under load/,
    );
    const result = JSON.parse(readFileSync(path, "utf8")) as {
      points: Array<{ heartbeatIntervalMs: number; trials: unknown[] }>;
    };
    assert.deepEqual(
      result.points.map((p) => [p.heartbeatIntervalMs, p.trials.length]),
      [[50, 2]],
      output,
    );
  });

  it("refuses a heartbeat interval of 0 before starting anything", async () => {
    const { code, output } = await runBench(["--intervals", "0"], 10_000);
    assert.equal(code, 2, output);
    assert.match(output, /--intervals must be a whole number/);
  });
});
