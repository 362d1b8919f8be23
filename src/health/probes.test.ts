import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { run } from "../adapters/exec.ts";
import type { CheckCommon } from "../config/types.ts";
import { cpuPressureStallUs, probe, registerProbeKind, starvationNote } from "./probes.ts";

const common: CheckCommon = {
  name: "test",
  intervalMs: 1000,
  timeoutMs: 2000,
  fall: 1,
  fallWindowMs: 1000,
  rise: 1,
};

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A port that was just free: bound, then released. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await close(server);
  return port;
}

describe("tcp probe", () => {
  it("is ok against a listening server that accepts", async () => {
    const accepted: net.Socket[] = [];
    const server = net.createServer((socket) => accepted.push(socket));
    const port = await listen(server);
    try {
      const result = await probe({ ...common, kind: "tcp", host: "127.0.0.1", port });
      assert.equal(result.ok, true, result.detail);
    } finally {
      for (const socket of accepted) socket.destroy();
      await close(server);
    }
  });

  it("is not ok against a closed port", async () => {
    const port = await closedPort();
    const result = await probe({ ...common, kind: "tcp", host: "127.0.0.1", port });
    assert.equal(result.ok, false);
    assert.match(result.detail, /ECONNREFUSED/);
  });
});

describe("http probe", () => {
  const sockets = new Set<net.Socket>();
  let port = 0;
  const server = http.createServer((request, response) => {
    switch (request.url) {
      case "/ok":
        response.end("fine");
        return;
      case "/fail":
        response.statusCode = 500;
        response.end("broken");
        return;
      case "/created":
        response.statusCode = 201;
        response.end();
        return;
      case "/endless": {
        // A body that never ends: the probe must stop reading after a few KB.
        response.writeHead(200);
        const chunk = Buffer.alloc(1024, "x");
        const timer = setInterval(() => response.write(chunk), 5);
        response.on("close", () => clearInterval(timer));
        return;
      }
      default:
      // "/silent": accepted, never answered.
    }
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  before(async () => {
    port = await listen(server);
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await close(server);
  });

  const get = (path: string, expectStatus = 200, timeoutMs = common.timeoutMs) =>
    probe({
      ...common,
      timeoutMs,
      kind: "http",
      url: `http://127.0.0.1:${port}${path}`,
      expectStatus,
    });

  it("is ok on 200", async () => {
    const result = await get("/ok");
    assert.equal(result.ok, true, result.detail);
  });

  it("is not ok on 500 and names the status", async () => {
    const result = await get("/fail");
    assert.equal(result.ok, false);
    assert.match(result.detail, /500/);
  });

  it("respects expectStatus", async () => {
    assert.equal((await get("/created", 201)).ok, true);
    assert.equal((await get("/created", 200)).ok, false);
    assert.equal((await get("/ok", 201)).ok, false);
  });

  it("gives up on a server that accepts but never answers", async () => {
    const result = await get("/silent", 200, 300);
    assert.equal(result.ok, false);
    assert.match(result.detail, /timed out/);
  });

  it("gives up on a raw TCP server that never speaks HTTP", async () => {
    const held: net.Socket[] = [];
    const mute = net.createServer((socket) => held.push(socket));
    const mutePort = await listen(mute);
    try {
      const result = await probe({
        ...common,
        timeoutMs: 300,
        kind: "http",
        url: `http://127.0.0.1:${mutePort}/`,
        expectStatus: 200,
      });
      assert.equal(result.ok, false);
      assert.match(result.detail, /timed out/);
    } finally {
      for (const socket of held) socket.destroy();
      await close(mute);
    }
  });

  it("settles on an endless body without waiting for its end", async () => {
    const result = await get("/endless", 200, 10_000);
    assert.equal(result.ok, true, result.detail);
  });

  it("is not ok for a refused connection or a bad url", async () => {
    const refused = await closedPort();
    const result = await probe({
      ...common,
      kind: "http",
      url: `http://127.0.0.1:${refused}/`,
      expectStatus: 200,
    });
    assert.equal(result.ok, false);
    const bad = await probe({ ...common, kind: "http", url: "not a url", expectStatus: 200 });
    assert.equal(bad.ok, false);
    assert.match(bad.detail, /invalid url/);
  });
});

describe("exec probe", () => {
  const exec = (command: string[], timeoutMs = common.timeoutMs) =>
    probe({ ...common, timeoutMs, kind: "exec", command });

  it("is ok on exit 0 and not ok otherwise", async () => {
    assert.equal((await exec(["true"])).ok, true);
    assert.equal((await exec(["false"])).ok, false);
  });

  it("reports the last line of stderr", async () => {
    const result = await exec(["sh", "-c", "echo first >&2; echo 'disk full' >&2; exit 3"]);
    assert.equal(result.ok, false);
    assert.equal(result.detail, "disk full");
  });

  it("times out a command that hangs", async () => {
    const result = await exec(["sleep", "10"], 200);
    assert.equal(result.ok, false);
    assert.match(result.detail, /timed out/);
  });

  it("says when the command does not exist", async () => {
    const result = await exec(["/nonexistent/fiph-command"]);
    assert.equal(result.ok, false);
    assert.match(result.detail, /not found/);
  });
});

describe("link probe", () => {
  it("counts lo as up (operstate unknown, carrier on)", async () => {
    const result = await probe({ ...common, kind: "link", interface: "lo" });
    assert.equal(result.ok, true, result.detail);
  });

  it("is not ok for an interface that does not exist", async () => {
    const result = await probe({ ...common, kind: "link", interface: "fiph-none0" });
    assert.equal(result.ok, false);
    assert.match(result.detail, /fiph-none0 does not exist/);
  });

  it("refuses names that are not interface names", async () => {
    const result = await probe({ ...common, kind: "link", interface: "../../etc" });
    assert.equal(result.ok, false);
    assert.match(result.detail, /invalid interface name/);
  });
});

describe("plug-in kinds and cancellation", () => {
  it("rbd is not ok until a probe is registered, then uses it", async () => {
    const spec = { ...common, kind: "rbd" as const, pool: "volumes" };
    const before = await probe(spec);
    assert.equal(before.ok, false);
    assert.equal(before.detail, "no rbd probe registered");
    registerProbeKind("rbd", async (given: { pool: string }) => ({
      ok: given.pool === "volumes",
      detail: `pool ${given.pool}`,
      durationMs: 0,
    }));
    const registered = await probe(spec);
    assert.equal(registered.ok, true);
    assert.equal(registered.detail, "pool volumes");
  });

  it("a plug-in that throws or hangs is not ok, never a rejection", async () => {
    registerProbeKind("rbd", async () => {
      throw new Error("cluster unreachable");
    });
    const thrown = await probe({ ...common, kind: "rbd", pool: "p" });
    assert.equal(thrown.ok, false);
    assert.match(thrown.detail, /cluster unreachable/);
    let sawAbort = false;
    registerProbeKind(
      "rbd",
      (_spec: unknown, signal: AbortSignal) =>
        new Promise(() => {
          signal.addEventListener("abort", () => {
            sawAbort = true;
          });
        }),
    );
    const hung = await probe({ ...common, timeoutMs: 100, kind: "rbd", pool: "p" });
    assert.equal(hung.ok, false);
    assert.match(hung.detail, /timed out/);
    assert.equal(sawAbort, true);
  });

  it("an abort from the caller settles a hanging probe as not ok", async () => {
    const held: net.Socket[] = [];
    const mute = net.createServer((socket) => held.push(socket));
    const port = await listen(mute);
    try {
      const controller = new AbortController();
      const pending = probe(
        {
          ...common,
          timeoutMs: 60_000,
          kind: "http",
          url: `http://127.0.0.1:${port}/`,
          expectStatus: 200,
        },
        { signal: controller.signal },
      );
      controller.abort();
      const result = await pending;
      assert.equal(result.ok, false);
      assert.equal(result.detail, "aborted");
    } finally {
      for (const socket of held) socket.destroy();
      await close(mute);
    }
  });
});

describe("probes inside a network namespace", () => {
  const netns = `fiph-hc${process.pid}`;
  const inside = "fiph-in";
  const peer = "fiph-peer";
  const children: ChildProcess[] = [];
  const ip = (...args: string[]) => run("ip", args, { timeoutMs: 5000 });

  before(async () => {
    await ip("netns", "add", netns);
    await ip("-n", netns, "link", "set", "lo", "up");
    await ip("-n", netns, "link", "add", inside, "type", "veth", "peer", "name", peer);
    await ip("-n", netns, "link", "set", inside, "up");
  });
  after(async () => {
    for (const child of children) if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    await ip("netns", "delete", netns).catch(() => undefined);
  });

  it("a veth whose peer is down has no carrier; it comes up with its peer", async () => {
    const spec = { ...common, kind: "link" as const, interface: inside };
    const down = await probe(spec, { netns });
    assert.equal(down.ok, false, down.detail);
    assert.match(down.detail, /carrier off/);
    await ip("-n", netns, "link", "set", peer, "up");
    // Carrier follows the peer asynchronously; bounded retries.
    let result = await probe(spec, { netns });
    for (let attempt = 0; attempt < 50 && !result.ok; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      result = await probe(spec, { netns });
    }
    assert.equal(result.ok, true, result.detail);
    const missing = await probe({ ...spec, interface: "fiph-none0" }, { netns });
    assert.equal(missing.ok, false);
    assert.match(missing.detail, /does not exist/);
  });

  it("tcp and exec probes run inside the namespace, not on the host", async () => {
    const hostServer = net.createServer((socket) => socket.destroy());
    const port = await listen(hostServer);
    try {
      const spec = { ...common, timeoutMs: 5000, kind: "tcp" as const, host: "127.0.0.1", port };
      assert.equal((await probe(spec)).ok, true);
      // The namespace has its own loopback, where nothing listens on that port.
      assert.equal((await probe(spec, { netns })).ok, false);
      const child = spawn(
        "ip",
        [
          "netns",
          "exec",
          netns,
          process.execPath,
          "-e",
          `require("node:net").createServer((s) => s.destroy()).listen(${port}, "127.0.0.1", () => console.log("ready"))`,
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        child.stdout?.once("data", () => resolve());
        child.once("exit", (code) => reject(new Error(`namespace server exited with ${code}`)));
      });
      const inNetns = await probe(spec, { netns });
      assert.equal(inNetns.ok, true, inNetns.detail);
      const exec = await probe(
        { ...common, kind: "exec", command: ["ip", "link", "show", inside] },
        { netns },
      );
      assert.equal(exec.ok, true, exec.detail);
    } finally {
      await close(hostServer);
    }
  });
});

describe("starvation note on a timed-out probe", () => {
  it("names the share of the probe's time spent waiting for a CPU, from a quarter up", () => {
    // 400 ms of the 500 ms probe waited for a CPU.
    assert.match(starvationNote(1_000_000, 1_400_000, 500), /waited for a CPU 80 %.*busy/);
    assert.equal(starvationNote(1_000_000, 1_100_000, 500), "", "20 % is ordinary");
    assert.match(starvationNote(0, 10_000_000, 500), / 100 % /, "capped at 100 %");
    assert.equal(starvationNote(undefined, 5, 500), "", "no PSI, no note");
  });

  it("reads the kernel's CPU pressure total where PSI exists", () => {
    const first = cpuPressureStallUs();
    if (first === undefined) return; // kernels without PSI: the note is simply left out
    const second = cpuPressureStallUs();
    assert.ok(second !== undefined && second >= first, `${first} then ${second}`);
  });
});
