/**
 * bench/load.ts and bench/idle.ts, each run once with the smallest options (own namespace
 * prefixes, so that a real run of either can go on beside this test): each must exit 0, print
 * its table, and write JSON with the expected rows and plausible figures. The hard figures:
 * floatip lan and keepalived, with no load, neither move a VIP nor ever leave one with no or
 * two holders.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const bench = join(import.meta.dirname, "..", "..", "bench");
const out = mkdtempSync(join(tmpdir(), "fipls-"));
after(() => rmSync(out, { recursive: true, force: true }));

function runBench(
  file: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(bench, file), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    // SIGINT lets the bench remove its namespaces and end its loads.
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

interface LoadCell {
  contender: string;
  load: string;
  outcome: string;
  windowMs?: number;
  movesPerMinute?: number;
  elections?: number;
  holders?: { holderChanges: number; noHolderMs: number; twoHoldersMs: number };
}

interface IdleRun {
  contender: string;
  vips: number;
  outcome: string;
  vipsHeldAtEnd?: number;
  nodes?: Array<{ node: string; cpuPercent: number; rssMbMean: number; processes: number }>;
}

describe("load and idle benchmarks (smoke)", { skip: skipUnlessRoot(), concurrency: 1 }, () => {
  it("load: lan and keepalived-1s, without load and with CPU hogs", async () => {
    const path = join(out, "load.json");
    const { code, output } = await runBench(
      "load.ts",
      [
        "--seconds",
        "8",
        "--contenders",
        "lan,keepalived-1s",
        "--loads",
        "none,cpu",
        "--prefix",
        "fipls-",
        "--out",
        path,
      ],
      150_000,
    );
    assert.equal(code, 0, output);
    assert.match(output, /contender\s+load\s+window s\s+moves\/min\s+holder changes\s+elections/);
    const text = readFileSync(path, "utf8");
    const { cells } = JSON.parse(text) as { cells: LoadCell[] };
    const keys = cells.map((c) => `${c.contender}/${c.load}`);
    assert.deepEqual(keys, ["lan/none", "lan/cpu", "keepalived-1s/none", "keepalived-1s/cpu"]);
    for (const c of cells) {
      assert.equal(c.outcome, "ok", `${c.contender}/${c.load}\n${output}`);
      assert.ok(c.windowMs! >= 7500 && c.windowMs! < 15_000, `window ${c.windowMs} ms`);
      assert.ok(c.movesPerMinute! >= 0 && Number.isFinite(c.movesPerMinute!));
      assert.ok(Number.isInteger(c.elections) && c.elections! >= 0, `elections ${c.elections}`);
      const h = c.holders!;
      assert.ok(h.noHolderMs >= 0 && h.noHolderMs <= 3 * c.windowMs! + 1);
      assert.ok(h.twoHoldersMs >= 0 && h.twoHoldersMs <= 3 * c.windowMs! + 1);
    }
    for (const key of ["lan/none", "keepalived-1s/none"]) {
      const c = cells.find((x) => `${x.contender}/${x.load}` === key)!;
      assert.equal(
        c.holders!.holderChanges,
        0,
        `${key} moved a VIP without load\n${output}\n${text.slice(0, 20_000)}`,
      );
      assert.equal(c.holders!.twoHoldersMs, 0, `${key} had two holders\n${output}`);
      assert.equal(c.holders!.noHolderMs, 0, `${key} left a VIP without holder\n${output}`);
    }
  });

  it("idle: lan and keepalived-1s with 10 VIPs, and the bare Node.js and C floors", async () => {
    const path = join(out, "idle.json");
    const { code, output } = await runBench(
      "idle.ts",
      // A 5 s warm-up instead of the default minute: this checks the bench runs, not figures.
      ["--seconds", "5", "--warmup", "5", "--vips", "10", "--prefix", "fipis-", "--out", path],
      150_000,
    );
    assert.equal(code, 0, output);
    assert.match(output, /contender\s+vips\s+node\s+cpu %\s+rss MB/);
    const { runs, warmupMs } = JSON.parse(readFileSync(path, "utf8")) as {
      runs: IdleRun[];
      warmupMs: number;
    };
    assert.equal(warmupMs, 5000, "the window opens --warmup seconds after settling");
    assert.deepEqual(
      runs.map((r) => `${r.contender}/${r.vips}/${r.outcome}`),
      ["lan/10/ok", "keepalived-1s/10/ok", "node-floor/0/ok", "c-floor/0/ok"],
      output,
    );
    for (const r of runs) {
      const agent = !r.contender.endsWith("-floor");
      if (agent) {
        assert.equal(r.vipsHeldAtEnd, 10, `${r.contender}: VIPs held at the end\n${output}`);
      }
      assert.deepEqual(
        r.nodes!.map((n) => n.node),
        ["n1", "n2", "n3"],
      );
      for (const n of r.nodes!) {
        assert.ok(
          n.cpuPercent >= 0 && n.cpuPercent < 200,
          `${r.contender} ${n.node} cpu ${n.cpuPercent}`,
        );
        assert.ok(
          n.rssMbMean > 1 && n.rssMbMean < 4000,
          `${r.contender} ${n.node} rss ${n.rssMbMean}`,
        );
        // floatip: supervisor and agent at least; keepalived: parent and VRRP child.
        assert.ok(
          n.processes >= (agent ? 2 : 1),
          `${r.contender} ${n.node}: ${n.processes} processes`,
        );
      }
    }
  });
});
