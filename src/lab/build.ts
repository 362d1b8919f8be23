/**
 * The compiled agent (dist/, `npm run build`), as the lab starts it: what ships is what the
 * namespace tests and the benchmarks run. Node can run the .ts sources directly, but then
 * every process loads the TypeScript stripper (amaro, WebAssembly): measured on a 3-node
 * `lan` cluster, 27 MB more resident memory and about half again the idle CPU per process.
 *
 * `ensureBuilt()` compiles when any source is newer than the last build (a stamp file written
 * after a successful build), so a test run after an edit never exercises stale JavaScript.
 */
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../adapters/exec.ts";

const root = join(import.meta.dirname, "..", ".."); // src/lab -> repository root
export const distMain = join(root, "dist", "cli", "main.js");
const stamp = join(root, "dist", ".build-stamp");

function newestSourceMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** Whether dist/ holds a build at least as new as every source file. */
export function buildIsFresh(): boolean {
  if (!existsSync(stamp) || !existsSync(distMain)) return false;
  if (!existsSync(join(root, "src"))) return true; // an installed package: nothing to compile
  const built = statSync(stamp).mtimeMs;
  return (
    newestSourceMs(join(root, "src")) <= built &&
    statSync(join(root, "tsconfig.build.json")).mtimeMs <= built
  );
}

/** Compiles src/ to dist/ unless the build is fresh; returns the compiled CLI's path. */
export async function ensureBuilt(force = false): Promise<string> {
  if (!force && buildIsFresh()) return distMain;
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  const startedMs = Date.now();
  await run(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], {
    timeoutMs: 120_000,
  });
  // The stamp carries the start time: a source saved during the compile makes the next
  // call build again.
  writeFileSync(stamp, `${new Date(startedMs).toISOString()}\n`);
  const at = new Date(startedMs);
  utimesSync(stamp, at, at);
  return distMain;
}

// `npm run build`: node src/lab/build.ts [--if-stale]
if (import.meta.main) {
  const ifStale = process.argv.includes("--if-stale");
  if (ifStale && buildIsFresh()) {
    process.stderr.write("build: dist/ is up to date\n");
  } else {
    await ensureBuilt(true);
    process.stderr.write(`build: compiled src/ to dist/ (${distMain})\n`);
  }
}
