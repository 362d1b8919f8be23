/**
 * The nat relay's conntrack flush, end to end in network namespaces: a client holds a
 * long-lived connection through the relay to the primary (an HTTP upgrade to an echo stream,
 * pinged every 200 ms, like a WebSocket). The primary hangs (SIGSTOP: its kernel still
 * acknowledges the pings, the server never answers). The relay's HTTP check takes it out and
 * switches; with `close_on_backend_down: true` it deletes the primary's conntrack entries, so
 * the client's next ping is answered with a reset at once. A second relay, the same in every
 * way but `close_on_backend_down: false` (and backend port 8081, so the flush of port 8080
 * does not touch it), shows what the flush prevents: its client stays hung on the dead primary.
 *
 * Topology: 198.18.S.10 client, .11 relay, .12 primary, .13 standby; the relay forwards and
 * masquerades (the backends share the client's subnet).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createTopology, skipUnlessRoot, type Topology } from "../../src/lab/topology.ts";

const mainTs = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const node = process.execPath;
const statusAddress = "127.0.0.1:7983";

/** HTTP on 8080 and 8081: `/health` answers 200; an upgrade turns the connection into an echo
 * stream that starts with the backend's name. */
const backendCode = `
const http = require("node:http");
const name = process.argv[1];
for (const port of [8080, 8081]) {
  const server = http.createServer((req, res) => res.end(name + "\\n"));
  server.on("upgrade", (req, socket) => {
    socket.on("error", () => {});
    socket.write("HTTP/1.1 101 Switching Protocols\\r\\nConnection: Upgrade\\r\\nUpgrade: echo\\r\\n\\r\\n" + name + "\\n");
    socket.pipe(socket);
  });
  server.listen(port, "0.0.0.0", () => console.log("listening " + port));
}
`;

/** Opens one upgraded echo stream per port given, pings each every 200 ms, and prints a JSON
 * line per event: {port, event: "greeting"|"echo"|"error"|"close", detail}. Ends after 60 s. */
const clientCode = `
const net = require("node:net");
const [host, ...ports] = process.argv.slice(1);
const say = (o) => console.log(JSON.stringify(o));
for (const port of ports.map(Number)) {
  const socket = net.connect({ host, port });
  let buffer = "";
  let greeted = false;
  const ping = setInterval(() => { if (greeted) socket.write("ping\\n"); }, 200);
  socket.on("connect", () => socket.write("GET /stream HTTP/1.1\\r\\nHost: relay\\r\\nConnection: Upgrade\\r\\nUpgrade: echo\\r\\n\\r\\n"));
  socket.on("data", (d) => {
    buffer += d;
    if (!greeted) {
      const m = /\\r\\n\\r\\n(\\w+)\\n/.exec(buffer);
      if (m) { greeted = true; say({ port, event: "greeting", detail: m[1] }); buffer = ""; }
    } else if (buffer.includes("ping\\n")) {
      buffer = "";
      say({ port, event: "echo" });
    }
  });
  socket.on("error", (e) => say({ port, event: "error", detail: e.code }));
  socket.on("close", () => { clearInterval(ping); say({ port, event: "close" }); });
}
setTimeout(() => process.exit(0), 60000);
`;

interface StreamEvent {
  port: number;
  event: "greeting" | "echo" | "error" | "close";
  detail?: string;
  /** performance.now() in the test process when the line arrived. */
  atMs: number;
}

function waitForLine(child: ChildProcess, pattern: RegExp, limitMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => {
      child.stdout?.off("data", onData);
      reject(new Error(`no line matching ${pattern} within ${limitMs} ms; got: ${buffer}`));
    }, limitMs);
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      if (buffer.split("\n").some((l) => pattern.test(l))) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
  });
}

async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, limitMs: number) {
  for (let attempt = 0; attempt < Math.ceil(limitMs / 50); attempt++) {
    const value = await check();
    if (value !== undefined) return value;
    await sleep(50);
  }
  return check();
}

describe("relay, nat data plane: conntrack flush of a dead backend", {
  skip: skipUnlessRoot(),
}, () => {
  let topology: Topology | undefined;
  const dir = mkdtempSync(join(tmpdir(), "fiprd-"));
  let primary: ChildProcess | undefined;
  let relayLog = "";
  const address = (host: string) => topology!.host(host).address;

  before(async () => {
    topology = await createTopology({
      prefix: "fiprd-",
      hosts: ["client", "relay", "primary", "standby"],
    });
    await topology.exec("relay", "sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
    for (const name of ["primary", "standby"] as const) {
      const child = topology.spawn(name, node, ["-e", backendCode, name], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      if (name === "primary") primary = child;
      await waitForLine(child, /^listening 8081$/, 5000);
    }
    const check =
      "{ kind: http, path: /health, expect_status: 200, interval: 100ms, timeout: 300ms, fall: 3, within: 2s, rise: 2 }";
    const relay = (name: string, port: number, backendPort: number, close: boolean) => `
  - name: ${name}
    listen: ${address("relay")}:${port}
    protocol: tcp
    mode: nat
    primary: ${address("primary")}:${backendPort}
    standby: [${address("standby")}:${backendPort}]
    check: ${check}
    failback: never
    close_on_backend_down: ${close}`;
    const file = join(dir, "relay.yaml");
    writeFileSync(
      file,
      `relays:${relay("flushed", 80, 8080, true)}${relay("kept", 81, 8081, false)}${relay("limited", 82, 8080, false)}\n    max_connections_per_source: 3\n`,
    );
    const child = topology.spawn("relay", node, [
      mainTs,
      "relay",
      "run",
      "--config",
      file,
      "--status",
      statusAddress,
    ]);
    child.stdout!.on("data", (d: Buffer) => {
      relayLog += d.toString();
    });
    child.stderr!.on("data", (d: Buffer) => {
      relayLog += d.toString();
    });
    await waitForLine(child, /status-listening/, 10_000);
  });

  after(async () => {
    // A stopped process ignores SIGKILL only until it is continued; do both.
    primary?.kill("SIGCONT");
    primary?.kill("SIGKILL");
    try {
      await topology?.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("counts each client address's connections in the kernel: the fourth is reset", async () => {
    // Four connections held open to the relay with a limit of three per source.
    const code = `
      const net = require("node:net");
      const [host, port] = process.argv.slice(1);
      const open = () => new Promise((resolve) => {
        const s = net.connect({ host, port: Number(port) });
        s.on("connect", () => resolve({ socket: s, result: "open" }));
        s.on("error", (e) => resolve({ socket: s, result: e.code }));
        setTimeout(() => resolve({ socket: s, result: "timeout" }), 3000).unref();
      });
      (async () => {
        const results = [];
        for (let i = 0; i < 4; i++) {
          const r = await open();
          // An open one must still be open a moment later (a reset may follow the connect).
          await new Promise((w) => setTimeout(w, 200));
          results.push(r.result === "open" && r.socket.destroyed ? "closed" : r.result);
        }
        console.log(JSON.stringify(results));
        process.exit(0);
      })();
    `;
    const result = await topology!.exec(
      "client",
      node,
      ["-e", code, address("relay"), "82"],
      20_000,
    );
    const results = JSON.parse(result.stdout) as string[];
    assert.deepEqual(results.slice(0, 3), ["open", "open", "open"], result.stdout);
    assert.ok(["ECONNRESET", "ECONNREFUSED", "closed"].includes(results[3]!), result.stdout);
  });

  it("resets a client hung on a stopped primary right after the switch, and only with the flush", async () => {
    const t = topology!;
    const events: StreamEvent[] = [];
    const client = t.spawn("client", node, ["-e", clientCode, address("relay"), "80", "81"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let pending = "";
    client.stdout!.on("data", (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        if (line.trim() !== "") events.push({ ...JSON.parse(line), atMs: performance.now() });
      }
    });
    try {
      const of = (port: number, event: StreamEvent["event"]) =>
        events.filter((e) => e.port === port && e.event === event);
      const greeted = await eventually(
        () => (of(80, "echo").length > 0 && of(81, "echo").length > 0 ? true : undefined),
        5000,
      );
      assert.ok(greeted, `streams not established: ${JSON.stringify(events)}\n${relayLog}`);
      assert.equal(of(80, "greeting")[0]?.detail, "primary");
      assert.equal(of(81, "greeting")[0]?.detail, "primary");

      primary!.kill("SIGSTOP");
      const stoppedMs = performance.now();
      const flushedLine = await eventually(
        () => (relayLog.includes('"conntrack-flushed"') ? true : undefined),
        10_000,
      );
      assert.ok(flushedLine, `no conntrack flush logged:\n${relayLog}`);
      const flushSeenMs = performance.now();

      // The flushed relay's client is told at its next ping (every 200 ms).
      const ended = await eventually(
        () => events.find((e) => e.port === 80 && (e.event === "error" || e.event === "close")),
        10_000,
      );
      assert.ok(ended, `port 80 client still hung: ${JSON.stringify(events)}\n${relayLog}`);
      const endedAfterFlushMs = ended.atMs - flushSeenMs;
      assert.ok(
        endedAfterFlushMs < 10_000,
        `the reset came ${Math.round(endedAfterFlushMs)} ms after the flush`,
      );
      assert.ok(
        of(80, "error").some((e) => e.detail === "ECONNRESET"),
        JSON.stringify(of(80, "error")),
      );

      // The relay without the flush switched as well, but its client stays hung: no echo, no
      // error, no close, for as long as the flushed one took plus 3 s.
      await sleep(3000);
      const afterStop = events.filter((e) => e.port === 81 && e.atMs > stoppedMs + 500);
      assert.deepEqual(
        afterStop.map((e) => e.event),
        [],
        "the unflushed client was neither answered nor reset",
      );
      assert.match(
        relayLog,
        /"event":"switched".*"relay":"kept"|"relay":"kept".*"event":"switched"/,
      );
      console.log(
        `# hung client reset ${Math.round(ended.atMs - stoppedMs)} ms after SIGSTOP, ${Math.round(endedAfterFlushMs)} ms after the flush was logged`,
      );
    } finally {
      client.kill("SIGKILL");
    }
  });
});
