/**
 * The control plane's resident memory: the modules its process loads at start. `node:http`
 * and `node:https` (TLS, the HTTP parser: about 6 MB of RSS) come only with an HTTP health
 * check, on its first run (src/adapters/node-http.ts).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";

const root = new URL("../../", import.meta.url);

/** Node.js's built-in modules loaded after importing `modules` (and running `then`) in a fresh process. */
function builtinsAfter(modules: readonly string[], then = ""): string[] {
  const script = [
    ...modules.map((m) => `await import(${JSON.stringify(new URL(m, root).href)});`),
    then,
    "console.log(JSON.stringify(process.moduleLoadList));",
  ].join("\n");
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 30_000,
  });
  return (JSON.parse(out) as string[])
    .filter((m) => m.startsWith("NativeModule "))
    .map((m) => m.slice("NativeModule ".length));
}

describe("the control plane's modules", () => {
  it("leaves node:http and node:https unloaded at start", () => {
    const loaded = builtinsAfter(["src/cli/commands/agent.ts", "src/agent/runtime.ts"]);
    assert.ok(loaded.includes("dgram"), "the probe sees the control plane's modules");
    assert.ok(!loaded.includes("http"), "node:http loaded at start");
    assert.ok(!loaded.includes("https"), "node:https loaded at start");
  });

  it("loads node:https when an https check first needs it", () => {
    const loaded = builtinsAfter(
      ["src/adapters/node-http.ts"],
      `(await import(${JSON.stringify(new URL("src/adapters/node-http.ts", root).href)})).httpsModule();`,
    );
    assert.ok(loaded.includes("https"));
  });
});
