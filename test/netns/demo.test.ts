/**
 * `floatip demo` end to end, run the way a user runs it: the CLI as a child process that builds
 * its own namespaces (prefix `fipdt-`), kills the owner of the first VIP and waits for the
 * takeover and the failback as seen by its client. Each test checks that no `fipdt-`
 * namespace and no temporary cluster directory outlives the demo, also when it is interrupted.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const mainTs = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const prefix = "fipdt-";
const started: ChildProcess[] = [];

interface Demo {
  readonly child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startDemo(args: string[], options: { uid?: number; gid?: number } = {}): Demo {
  const child = spawn(process.execPath, [mainTs, "demo", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    ...options,
  });
  started.push(child);
  let text = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => text, exited };
}

/** Resolves with the exit, or fails the test after `timeoutMs` (the child is killed in `after`). */
async function exitOf(demo: Demo, timeoutMs: number) {
  const timeout = sleep(timeoutMs, undefined, { ref: false }).then(() => "timeout" as const);
  const result = await Promise.race([demo.exited, timeout]);
  if (result === "timeout")
    assert.fail(`demo still running after ${timeoutMs} ms:\n${demo.output()}`);
  return result;
}

function demoNamespaces(): string[] {
  const out = execFileSync("ip", ["-json", "netns", "list"], { timeout: 5000 }).toString();
  const entries = JSON.parse(out.trim() || "[]") as Array<{ name: string }>;
  return entries.map((e) => e.name).filter((name) => name.startsWith(prefix));
}

function configDir(output: string): string | undefined {
  return /^config: (\S+)\/cluster\.yaml$/m.exec(output)?.[1];
}

describe("floatip demo", { skip: skipUnlessRoot() }, () => {
  after(() => {
    // Only reached with leftovers when a test failed: end what this file started, by PID,
    // including what still runs inside its namespaces, then delete the namespaces.
    for (const child of started) if (child.exitCode === null && child.pid) child.kill("SIGKILL");
    for (const name of demoNamespaces()) {
      const pids = execFileSync("ip", ["netns", "pids", name], { timeout: 5000 }).toString();
      for (const pid of pids.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      execFileSync("ip", ["netns", "del", name], { timeout: 5000 });
    }
  });

  it("runs the scripted tour: takeover by another node, failback, exit 0, nothing left", async () => {
    const demo = startDemo(["--script", "--prefix", prefix, "--duration", "60"]);
    // The dashboard URL it prints works from this machine while the demo runs.
    let url: string | undefined;
    for (let waitedMs = 0; !url && waitedMs < 60_000; waitedMs += 100) {
      url = /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/) /m.exec(demo.output())?.[1];
      if (demo.child.exitCode !== null) break;
      await sleep(100);
    }
    assert.ok(url, `no dashboard line in:\n${demo.output()}`);
    const page = await fetch(url, { signal: AbortSignal.timeout(5000) });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>floatip<\/title>/);
    const status = (await (
      await fetch(new URL("v1/status", url), { signal: AbortSignal.timeout(5000) })
    ).json()) as { node: string };
    assert.equal(status.node, "n3");
    const { code } = await exitOf(demo, 120_000);
    const output = demo.output();
    assert.equal(code, 0, output);
    const takeover = /^takeover: \S+ moved from (n\d) to (n\d) [\d.]+ s after the kill/m.exec(
      output,
    );
    assert.ok(takeover, `no takeover line in:\n${output}`);
    assert.notEqual(takeover[1], takeover[2], "the takeover must name a different node");
    const failback = /^failback: \S+ moved from (n\d) to (n\d) /m.exec(output);
    assert.ok(failback, `no failback line in:\n${output}`);
    assert.deepEqual([failback[1], failback[2]], [takeover[2], takeover[1]]);
    assert.deepEqual(demoNamespaces(), []);
    const dir = configDir(output);
    assert.ok(dir, "the demo prints its config path");
    assert.equal(existsSync(dir), false, `${dir} was left behind`);
  });

  it("tears everything down on SIGINT while the status screen is up", async () => {
    const demo = startDemo(["--script", "--prefix", prefix, "--duration", "60"]);
    for (let waitedMs = 0; !demo.output().includes("CLIENT GETS"); waitedMs += 100) {
      if (waitedMs > 60_000 || demo.child.exitCode !== null) {
        assert.fail(`the status screen never appeared:\n${demo.output()}`);
      }
      await sleep(100);
    }
    assert.ok(demoNamespaces().length > 0, "the demo's namespaces exist while it runs");
    demo.child.kill("SIGINT");
    const { code, signal } = await exitOf(demo, 30_000);
    assert.equal(signal, null);
    assert.equal(code, 130, demo.output());
    assert.deepEqual(demoNamespaces(), []);
    const dir = configDir(demo.output());
    assert.ok(dir);
    assert.equal(existsSync(dir), false, `${dir} was left behind`);
  });

  it("refuses to run without root, with exit code 2 and the way to run it", async (t) => {
    try {
      execFileSync(process.execPath, ["--version"], { uid: 65534, gid: 65534, timeout: 5000 });
      execFileSync(
        process.execPath,
        ["-e", `require("fs").accessSync(${JSON.stringify(mainTs)})`],
        {
          uid: 65534,
          gid: 65534,
          timeout: 5000,
        },
      );
    } catch {
      t.skip("user nobody cannot run node or read the checkout here");
      return;
    }
    const demo = startDemo(["--script", "--prefix", prefix], { uid: 65534, gid: 65534 });
    const { code } = await exitOf(demo, 30_000);
    assert.equal(code, 2, demo.output());
    assert.match(demo.output(), /needs root: sudo bash scripts\/demo\.sh/);
    assert.deepEqual(demoNamespaces(), []);
  });
});
