/**
 * A test process ended by SIGTERM while it builds a topology leaves no namespace behind.
 * Found by `bench:load`'s `suite` load, which stops a second checkout's namespace tests after
 * its window: a namespace whose `ip netns add` was still running when the signal came was
 * created after the exit handler had deleted the recorded ones, and stayed. Each trial here
 * sends SIGTERM at another moment of the build (0-150 ms after it starts, which covers every
 * `ip netns add` of a three-host topology on this machine) and checks the namespaces after the
 * child has exited.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { describe, it } from "node:test";
import { run } from "../../src/adapters/exec.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const prefix = "fiptc-";
const child = join(import.meta.dirname, "topology-child.ts");

async function ourNamespaces(): Promise<string[]> {
  const result = await run("ip", ["-json", "netns", "list"], { timeoutMs: 5000 });
  const parsed = JSON.parse(result.stdout.trim() || "[]") as Array<{ name: string }>;
  return parsed.map((n) => n.name).filter((n) => n.startsWith(prefix));
}

async function removeOurs(): Promise<void> {
  for (const name of await ourNamespaces()) {
    await run("ip", ["netns", "del", name], { timeoutMs: 5000 }).catch(() => undefined);
  }
}

/** Starts the child, sends SIGTERM `delayMs` after it began building, and waits for its exit. */
async function buildAndTerminate(delayMs: number): Promise<string> {
  const proc = spawn(process.execPath, [child, prefix, "a", "b", "c"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const building = new Promise<void>((resolve) => {
    proc.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("building")) resolve();
    });
  });
  const exited = once(proc, "exit");
  const guard = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  try {
    await Promise.race([building, exited]);
    await new Promise((r) => setTimeout(r, delayMs));
    proc.kill("SIGTERM");
    await exited;
  } finally {
    clearTimeout(guard);
  }
  return out;
}

describe("topology cleanup on SIGTERM", { skip: skipUnlessRoot() }, () => {
  it("a build ended by SIGTERM at any moment leaves no namespace", {
    timeout: 120_000,
  }, async () => {
    await removeOurs();
    const leaks: string[] = [];
    try {
      for (let delayMs = 0; delayMs <= 150; delayMs += 6) {
        await buildAndTerminate(delayMs);
        const left = await ourNamespaces();
        if (left.length > 0) {
          leaks.push(`SIGTERM ${delayMs} ms into the build left ${left.join(", ")}`);
          await removeOurs();
        }
      }
    } finally {
      await removeOurs();
    }
    assert.deepEqual(leaks, []);
  });
});
