/**
 * The relay benchmark run once with the smallest options (1 s of load per path, one
 * switch-over trial per relay), so that it cannot rot unnoticed: it must exit 0, print both
 * table headers and write its JSON. Nothing here looks at the figures.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const bench = join(import.meta.dirname, "..", "..", "bench", "relay.ts");
const out = mkdtempSync(join(tmpdir(), "fiprb-smoke-"));
after(() => rmSync(out, { recursive: true, force: true }));

describe("relay benchmark (smoke)", { skip: skipUnlessRoot() }, () => {
  it("runs one short trial of every path and writes its JSON", async () => {
    const path = join(out, "relay.json");
    const { code, output } = await new Promise<{ code: number | null; output: string }>(
      (resolve) => {
        const child = spawn(
          process.execPath,
          [bench, "--seconds", "1", "--trials", "1", "--out", path],
          { stdio: ["ignore", "pipe", "pipe"] },
        );
        let output = "";
        child.stdout.on("data", (c: Buffer) => (output += c.toString()));
        child.stderr.on("data", (c: Buffer) => (output += c.toString()));
        // SIGINT lets the bench remove its namespaces through the topology's exit cleanup.
        const timer = setTimeout(
          () => child.pid !== undefined && process.kill(child.pid, "SIGINT"),
          120_000,
        );
        child.on("exit", (code) => {
          clearTimeout(timer);
          resolve({ code, output });
        });
      },
    );
    assert.equal(code, 0, output);
    assert.match(output, /path\s+req\/s\s+p50 ms\s+p99 ms/);
    assert.match(output, /relay\s+trials\s+errors/);
    const result = JSON.parse(readFileSync(path, "utf8")) as {
      throughput: Record<string, { requestsPerSecond: number }>;
      switchOver: Record<string, unknown[]>;
    };
    assert.deepEqual(Object.keys(result.throughput), [
      "direct",
      "floatip-proxy",
      "floatip-nat",
      "haproxy",
    ]);
    assert.deepEqual(Object.keys(result.switchOver), ["floatip-proxy", "floatip-nat", "haproxy"]);
    for (const list of Object.values(result.switchOver)) assert.equal(list.length, 1);
  });
});
