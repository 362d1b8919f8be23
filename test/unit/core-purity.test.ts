/**
 * The core is a pure state machine: nothing under src/core/ may import Node's I/O modules or
 * read a clock, set a timer or draw a random number of its own (STYLE.md). This test is the
 * lint rule that keeps it so.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";

const root = join(import.meta.dirname, "..", "..");
const forbidden: readonly [RegExp, string][] = [
  [
    /from\s+["'](node:[^"']+|fs|child_process|dgram|net|os|http|https)["']/,
    "imports an I/O module",
  ],
  [/\brequire\(/, "uses require()"],
  [/\bDate\.now\s*\(/, "reads the wall clock (Date.now)"],
  [/\bnew Date\s*\(/, "reads the wall clock (new Date)"],
  [/\bperformance\.now\s*\(/, "reads a clock (performance.now)"],
  [/\bsetTimeout\s*\(/, "sets a timer (setTimeout)"],
  [/\bsetInterval\s*\(/, "sets a timer (setInterval)"],
  [/\bMath\.random\s*\(/, "draws a random number (Math.random)"],
  [/\bprocess\./, "touches the process"],
];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return path.endsWith(".ts") && !path.endsWith(".test.ts") ? [path] : [];
  });
}

describe("src/core stays pure", () => {
  it("has no I/O imports, clocks, timers or randomness outside tests", () => {
    const problems: string[] = [];
    for (const file of files(join(root, "src", "core"))) {
      const lines = readFileSync(file, "utf8").split("\n");
      lines.forEach((line, i) => {
        if (/^\s*(\/\/|\*)/.test(line)) return; // comments may name what is forbidden
        for (const [pattern, why] of forbidden) {
          if (pattern.test(line))
            problems.push(`${relative(root, file)}:${i + 1} ${why}: ${line.trim()}`);
        }
      });
    }
    assert.deepEqual(problems, []);
  });

  it("the rule catches a violation (checked on a sample line)", () => {
    assert.ok(forbidden.some(([pattern]) => pattern.test("const t = Date.now();")));
    assert.ok(
      forbidden.some(([pattern]) => pattern.test('import { readFileSync } from "node:fs";')),
    );
  });
});
