/**
 * What each long-running process loads at start: every npm package costs memory in every
 * process that imports it (etcd3 with gRPC: about 25 MB of RSS), and an idle node runs two
 * Node.js processes (issue target: 150 MB per node). The control plane of the embedded mode
 * must not carry the etcd client, nor `node:http`/`node:https` without an HTTP health check
 * (TLS and the HTTP parser: about 6 MB), and neither process may pull in a package the other
 * side of the split owns. Measured by importing the entry modules in a fresh Node.js process
 * with a resolve hook that records every package a module graph asks for.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";

const root = join(import.meta.dirname, "..", "..");

interface Loaded {
  /** The npm packages that floatip's own modules import. */
  readonly packages: string[];
  /** Whether Node.js loaded its bundled undici (fetch, WebSocket): about 14 MB of RSS. */
  readonly undici: boolean;
  /** Whether `node:http` / `node:https` were loaded. */
  readonly http: boolean;
  readonly https: boolean;
}

/** What importing `entry` loads, in a fresh Node.js process. */
function loadedBy(entry: string): Loaded {
  const script = [
    'const { registerHooks, isBuiltin } = require("node:module");',
    "const seen = new Set();",
    // Packages that floatip's own modules import (a package's own dependencies come with it).
    `const own = ${JSON.stringify(`file://${join(root, "src")}/`)};`,
    "registerHooks({ resolve(specifier, context, next) {",
    '  if (context.parentURL?.startsWith(own) && !specifier.startsWith(".") && !specifier.startsWith("/") && !specifier.startsWith("node:") && !specifier.startsWith("file:") && !isBuiltin(specifier))',
    '    seen.add(specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0]);',
    "  return next(specifier, context);",
    "} });",
    // Every import is resolved before any module runs: an entry that refuses to run outside
    // its parent (the services process) has still resolved its whole graph when it throws.
    `import(${JSON.stringify(join(root, entry))}).catch(() => {}).finally(() => console.log(JSON.stringify({ packages: [...seen].sort(), undici: process.moduleLoadList.some((m) => m.includes("internal/deps/undici")), http: process.moduleLoadList.includes("NativeModule http"), https: process.moduleLoadList.includes("NativeModule https") })));`,
  ].join("\n");
  const out = execFileSync(process.execPath, ["-e", script], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return JSON.parse(out.trim().split("\n").pop()!) as Loaded;
}

describe("process footprint", () => {
  it("the control plane (agent runtime) loads no package but the config parser, no undici, no http or https", () => {
    assert.deepEqual(loadedBy("src/agent/runtime.ts"), {
      packages: ["yaml"],
      undici: false,
      http: false,
      https: false,
    });
  });

  it("node:https comes with an https check, when the checks are set up (before the loop runs)", () => {
    // The check above would pass vacuously if the flag never rose: it must rise here.
    const probe = join(root, "test", "unit", "fixtures", "sets-up-https-check.ts");
    const loaded = loadedBy(probe.slice(root.length + 1));
    assert.equal(loaded.https, true);
    assert.equal(loaded.undici, false);
  });

  it("an ES import of node:http loads undici (what src/adapters/node-http.ts avoids)", () => {
    // The check above would pass vacuously if this Node.js no longer did it.
    assert.equal(loadedBy("src/agent/services-protocol.ts").undici, false);
    const probe = join(root, "test", "unit", "fixtures", "imports-node-http.ts");
    assert.equal(loadedBy(probe.slice(root.length + 1)).undici, true);
  });

  it("the etcd client is loaded only by the module that talks to etcd", () => {
    // The check above would pass vacuously if the hook saw nothing: it must see etcd3 here.
    assert.ok(loadedBy("src/arbiter/etcd-driver.ts").packages.includes("etcd3"));
  });

  it("the services process loads the API server and the config parser, nothing heavier", () => {
    assert.deepEqual(loadedBy("src/agent/services-worker.ts").packages, ["fastify", "yaml"]);
  });
});
