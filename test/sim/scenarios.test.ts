/**
 * Runs every scenario script in test/sim/scenarios and compares the trace with the script.
 * FLOATIP_REWRITE=1 regenerates the expected output (review the diff: it is the behaviour change).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { formatScenario, parseScenario, ScenarioRunner } from "../../src/sim/scenario.ts";

const folder = join(import.meta.dirname, "scenarios");
const rewrite = process.env.FLOATIP_REWRITE === "1";

describe("scenario scripts", () => {
  for (const file of readdirSync(folder)
    .filter((f) => f.endsWith(".txt"))
    .sort()) {
    it(file, () => {
      const path = join(folder, file);
      const text = readFileSync(path, "utf8");
      const header = text
        .split("\n")
        .filter((l) => l.startsWith("#"))
        .join("\n");
      const blocks = parseScenario(text);
      const runner = new ScenarioRunner();
      const outputs = blocks.map((block) => runner.execute(block.commands));
      if (rewrite) {
        writeFileSync(path, `${header}\n${formatScenario(blocks, outputs)}`);
        return;
      }
      blocks.forEach((block, i) => {
        assert.equal(
          outputs[i],
          block.expected,
          `${file}:${block.line}: ${block.commands.join("; ")}`,
        );
      });
      assert.deepEqual(runner.violations, []);
    });
  }
});
