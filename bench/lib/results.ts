/** Writes a benchmark's JSON result, by default to bench/results/<name>-<date>.json. */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const resultsDir = join(import.meta.dirname, "..", "results");

export function writeResult(name: string, data: unknown, outPath?: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const path = outPath ?? join(resultsDir, `${name}-${stamp}.json`);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
  return path;
}
