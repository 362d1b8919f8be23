/**
 * NativeTimers (native/floatip_timer.c): one-shot timers on libuv handles of their own. They
 * fire once, after their delay, as often as they are re-armed; a cleared one never fires; and
 * what they are for: a timer cleared and armed later from an I/O callback (a datagram that
 * comes before the fallback) wakes the process once per datagram, where Node's timers wake it
 * a second time at the cleared expiry. Counted as the main thread's voluntary context switches.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { NativeTimers } from "./native-timer.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function voluntarySwitches(): number {
  const status = readFileSync("/proc/thread-self/status", "utf8");
  return Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)![1]);
}

/**
 * Datagrams every `everyMs` from a worker thread for `forMs`; on each, the main thread clears
 * its fallback timer and arms it again `fallbackMs` on (as a follower's control loop does on
 * its coordinator's heartbeat). Returns the main thread's voluntary switches meanwhile.
 */
async function beatWithFallback(timers: NativeTimers, everyMs: number, forMs: number) {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const port = socket.address().port;
  let fallback: unknown;
  let fallbacks = 0;
  let beats = 0;
  socket.on("message", () => {
    beats += 1;
    timers.clear(fallback);
    fallback = timers.set(() => {
      fallbacks += 1;
    }, everyMs * 1.5);
  });
  const worker = new Worker(
    `const { createSocket } = require("node:dgram");
     const s = createSocket("udp4");
     const t = setInterval(() => s.send("beat", ${port}, "127.0.0.1"), ${everyMs});
     setTimeout(() => { clearInterval(t); s.close(); }, ${forMs});`,
    { eval: true },
  );
  await sleep(3 * everyMs); // the worker's start-up is not counted
  const before = voluntarySwitches();
  const beatsBefore = beats;
  await new Promise((resolve) => worker.once("exit", resolve));
  const switches = voluntarySwitches() - before;
  timers.clear(fallback);
  socket.close();
  return { switches, beats: beats - beatsBefore, fallbacks };
}

describe("native timers", () => {
  it("are native on this machine (the addon is built by scripts/setup.sh)", () => {
    assert.equal(new NativeTimers().native, true);
  });

  it("fire once after their delay; re-armed, at the new time; cleared, never", async () => {
    const timers = new NativeTimers();
    const fired: string[] = [];
    const start = performance.now();
    let atMs = 0;
    timers.set(() => {
      fired.push("a");
      atMs = performance.now() - start;
    }, 30);
    const cleared = timers.set(() => fired.push("b"), 10);
    timers.clear(cleared);
    timers.clear(cleared); // twice: ignored
    await sleep(80);
    assert.deepEqual(fired, ["a"]);
    assert.ok(atMs >= 29, `fired after ${atMs.toFixed(1)} ms, asked 30`);
    // Moved later before it fires: fires once, at the later time.
    let early = timers.set(() => fired.push("c"), 20);
    timers.clear(early);
    early = timers.set(() => fired.push("d"), 60);
    await sleep(40);
    assert.deepEqual(fired, ["a"]);
    await sleep(60);
    assert.deepEqual(fired, ["a", "d"]);
    timers.clear(early); // fired already: ignored
  });

  it("an exception in a callback reaches the process like a Node timer's", () => {
    // In a process of its own: the test runner counts any uncaught exception as a failure.
    const script = [
      `import { NativeTimers } from ${JSON.stringify(join(import.meta.dirname, "native-timer.ts"))};`,
      `process.on("uncaughtException", (e) => { console.log("caught: " + e.message); process.exit(0); });`,
      `new NativeTimers().set(() => { throw new Error("from a native timer"); }, 1);`,
      `setTimeout(() => process.exit(3), 2000);`,
    ].join("\n");
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(out.trim(), "caught: from a native timer");
  });

  it("a fallback moved on by each datagram wakes the process once per datagram, not twice", async () => {
    // Whatever else wakes the thread (the test runner, V8, other test files on a busy machine)
    // only adds switches: of three runs each, in turns, the one with the fewest counts.
    type Run = Awaited<ReturnType<typeof beatWithFallback>>;
    const fewest = (runs: Run[]) =>
      runs.reduce((a, b) => (b.switches - b.beats < a.switches - a.beats ? b : a));
    const nativeRuns: Run[] = [];
    const nodeRuns: Run[] = [];
    for (let i = 0; i < 3; i += 1) {
      nativeRuns.push(await beatWithFallback(new NativeTimers(), 40, 1600));
      nodeRuns.push(await beatWithFallback(new NativeTimers(null), 40, 1600));
    }
    const native = fewest(nativeRuns);
    const node = fewest(nodeRuns);
    const detail = `native ${JSON.stringify(nativeRuns)}, Node timers ${JSON.stringify(nodeRuns)}`;
    // At most the one after the last datagram (the worker's exit may take longer).
    assert.ok(native.fallbacks <= 1 && node.fallbacks <= 1, `fallbacks: ${detail}`);
    assert.ok(native.beats >= 25 && node.beats >= 25, `datagrams came: ${detail}`);
    // Node's timers: one wake-up for the datagram, one at the cleared expiry; native ones
    // only the first. (Both also wake for what else the process does: the test runner, V8.)
    assert.ok(
      node.switches - native.switches >= 0.6 * node.beats,
      `a wake-up per datagram fewer: ${detail}`,
    );
  });
});
