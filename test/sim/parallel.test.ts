import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { profiles } from "../../src/config/profiles.ts";
import { runSwarmParallel } from "../../src/sim/parallel.ts";
import { runSwarm } from "../../src/sim/report.ts";

const sorted = (values: readonly number[]) => [...values].sort((a, b) => a - b);

describe("parallel swarm", () => {
  it("gives the same summary on worker threads as in one thread", async () => {
    const seeds = [1, 2, 3, 4, 5, 6];
    const one = runSwarm({ seeds, timers: profiles.lan });
    const progress: number[] = [];
    const many = await runSwarmParallel({
      seeds,
      timers: profiles.lan,
      jobs: 3,
      onProgress: (done) => progress.push(done),
    });
    assert.equal(many.runs, 6);
    assert.deepEqual(
      many.failed.map((r) => r.seed),
      one.failed.map((r) => r.seed),
    );
    assert.deepEqual(sorted(many.ownerFailoverMs), sorted(one.ownerFailoverMs));
    assert.deepEqual(sorted(many.coordinatorFailoverMs), sorted(one.coordinatorFailoverMs));
    assert.ok(one.ownerFailoverMs.length + one.coordinatorFailoverMs.length > 0);
  });

  it("floatip sim --jobs runs the swarm and says how fast; a bad --jobs is a usage error", () => {
    const main = join(import.meta.dirname, "..", "..", "src", "cli", "main.ts");
    const ok = spawnSync(process.execPath, [main, "sim", "--seeds", "4", "--jobs", "2"], {
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /4 seeds from 1, 3\/5\/7 nodes, 2 jobs/);
    assert.match(ok.stdout, /sim: 4 runs, 0 violations/);
    assert.match(ok.stdout, /4 seeds in [\d.]+ s \([\d.]+ seeds\/s, 2 jobs\)/);
    const bad = spawnSync(process.execPath, [main, "sim", "--seeds", "4", "--jobs", "0"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--jobs takes a whole number from 1 to 64/);
  });
});
