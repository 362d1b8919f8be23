import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { ProxyDataPlane, type ProxyOptions } from "./proxy.ts";

/** A loopback server that answers every connection with its name and closes. */
function nameServer(name: string): Promise<net.Server> {
  const server = net.createServer((socket) => socket.end(`${name}\n`));
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

/** A loopback port with nothing listening (bound, then closed). */
async function deadPort(): Promise<number> {
  const server = await nameServer("gone");
  const port = portOf(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Connects, sends a line, and reports what came back or how the connection ended. */
function request(port: number): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let data = "";
    socket.on("connect", () => socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    socket.on("data", (d) => {
      data += d;
    });
    socket.on("error", (e: NodeJS.ErrnoException) => resolve({ data, error: e.code }));
    socket.on("end", () => {
      socket.destroy();
      resolve({ data });
    });
  });
}

describe("userspace proxy data plane (loopback)", () => {
  let standby: net.Server;
  let deadPrimaryPort: number;
  const planes: ProxyDataPlane[] = [];
  const failures: string[] = [];
  const logs: Record<string, unknown>[] = [];

  before(async () => {
    standby = await nameServer("standby");
    deadPrimaryPort = await deadPort();
  });

  after(async () => {
    for (const plane of planes) await plane.stop();
    standby.close();
  });

  async function plane(overrides: Partial<ProxyOptions> = {}): Promise<ProxyDataPlane> {
    const p = new ProxyDataPlane({
      relay: "test",
      listen: { host: "127.0.0.1", port: 0 },
      protocol: "tcp",
      backends: new Map([
        ["primary", { host: "127.0.0.1", port: deadPrimaryPort }],
        ["standby", { host: "127.0.0.1", port: portOf(standby) }],
      ]),
      connectTimeoutMs: 500,
      idleTimeoutMs: 5000,
      maxConnections: 100,
      onPassiveFailure: (backend) => failures.push(backend),
      log: (record) => logs.push(record),
      ...overrides,
    });
    planes.push(p);
    await p.start();
    return p;
  }

  it("retries the next candidate at once when the active backend refuses, and reports it", async () => {
    failures.length = 0;
    const p = await plane();
    await p.route(["primary", "standby"]);
    const answer = await request(p.port());
    assert.equal(answer.data, "standby\n");
    assert.deepEqual(failures, ["primary"]);
  });

  it("resets tcp clients when no backend is up", async () => {
    const p = await plane();
    await p.route([]);
    const answer = await request(p.port());
    assert.equal(answer.error, "ECONNRESET");
    assert.equal(answer.data, "");
  });

  it("answers http clients with a 503 JSON error when no backend is up", async () => {
    const p = await plane({ protocol: "http" });
    await p.route([]);
    const answer = await request(p.port());
    assert.match(answer.data, /^HTTP\/1\.1 503 /);
    const body = JSON.parse(answer.data.split("\r\n\r\n")[1] ?? "");
    assert.equal(body.error.code, "NO_BACKEND");
  });

  it("rejects connections beyond max_connections and logs it", async () => {
    const hold = net.createServer(() => {
      // Keeps every connection open.
    });
    await new Promise<void>((resolve) => hold.listen(0, "127.0.0.1", () => resolve()));
    try {
      const p = await plane({
        maxConnections: 1,
        backends: new Map([["held", { host: "127.0.0.1", port: portOf(hold) }]]),
      });
      await p.route(["held"]);
      const first = net.connect({ host: "127.0.0.1", port: p.port() });
      await new Promise((resolve) => first.once("connect", resolve));
      // Wait until the proxy has spliced the first client to the backend.
      for (let i = 0; i < 50 && (p.connections().get("held") ?? 0) === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(p.connections().get("held"), 1);
      const second = await request(p.port());
      assert.equal(second.error, "ECONNRESET");
      assert.ok(logs.some((l) => l.event === "connection-limit"));
      await p.closeConnections("held");
      const closed = await new Promise((resolve) => {
        first.on("close", () => resolve(true));
        first.on("error", () => undefined);
      });
      assert.equal(closed, true);
    } finally {
      hold.close();
    }
  });

  it("limits the connections of one source address, not of the others, and frees them on close", async () => {
    const hold = net.createServer((socket) => socket.on("error", () => undefined));
    await new Promise<void>((resolve) => hold.listen(0, "127.0.0.1", () => resolve()));
    const open: net.Socket[] = [];
    try {
      const p = await plane({
        maxConnectionsPerSource: 2,
        backends: new Map([["held", { host: "127.0.0.1", port: portOf(hold) }]]),
      });
      await p.route(["held"]);
      const connectFrom = async (localAddress: string) => {
        const socket = net.connect({ host: "127.0.0.1", port: p.port(), localAddress });
        socket.on("error", () => undefined);
        await new Promise((resolve) => socket.once("connect", resolve));
        open.push(socket);
        return socket;
      };
      const first = await connectFrom("127.0.0.1");
      await connectFrom("127.0.0.1");
      for (let i = 0; i < 50 && p.connectionsFrom("127.0.0.1") < 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(p.connectionsFrom("127.0.0.1"), 2);
      // A third from the same address is reset; another address still gets in.
      // (The reset may come before the client saw its connect complete.)
      const third = net.connect({ host: "127.0.0.1", port: p.port(), localAddress: "127.0.0.1" });
      open.push(third);
      const reset = await new Promise<string>((resolve) => {
        third.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
        third.once("close", () => resolve("closed"));
      });
      assert.equal(reset, "ECONNRESET");
      assert.ok(
        logs.some((l) => l.event === "source-connection-limit" && l.source === "127.0.0.1"),
      );
      await connectFrom("127.0.0.2");
      for (let i = 0; i < 50 && p.connectionsFrom("127.0.0.2") < 1; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(p.connectionsFrom("127.0.0.2"), 1);
      // Closing one frees a place for its source.
      first.destroy();
      for (let i = 0; i < 50 && p.connectionsFrom("127.0.0.1") > 1; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(p.connectionsFrom("127.0.0.1"), 1);
      await connectFrom("127.0.0.1");
      for (let i = 0; i < 50 && p.connectionsFrom("127.0.0.1") < 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(p.connectionsFrom("127.0.0.1"), 2);
    } finally {
      for (const socket of open) socket.destroy();
      hold.close();
    }
  });

  it("http: a client that sends nothing gets 408 and never costs a backend connection", async () => {
    let backendConnections = 0;
    const backend = net.createServer((socket) => {
      backendConnections += 1;
      socket.on("error", () => undefined);
      socket.on("data", () =>
        socket.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
      );
    });
    await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", () => resolve()));
    try {
      const p = await plane({
        protocol: "http",
        requestTimeoutMs: 300,
        backends: new Map([["web", { host: "127.0.0.1", port: portOf(backend) }]]),
      });
      await p.route(["web"]);
      const silent = await new Promise<{ text: string; ms: number }>((resolve) => {
        const started = Date.now();
        const socket = net.connect({ host: "127.0.0.1", port: p.port() });
        let text = "";
        socket.on("data", (d) => (text += d));
        socket.on("error", () => undefined);
        socket.on("close", () => resolve({ text, ms: Date.now() - started }));
      });
      assert.match(silent.text, /^HTTP\/1\.1 408 /);
      assert.equal(
        JSON.parse(silent.text.split("\r\n\r\n")[1] ?? "").error.code,
        "REQUEST_TIMEOUT",
      );
      assert.ok(silent.ms >= 250, `answered after ${silent.ms} ms`);
      assert.equal(backendConnections, 0, "no backend connection for a silent client");
      const answer = await request(p.port());
      assert.match(answer.data, /^HTTP\/1\.1 200 OK/);
      assert.equal(backendConnections, 1);
    } finally {
      backend.close();
    }
  });

  it("closes an idle session but keeps one that moves data, and counts it down", async () => {
    // Echoes what it receives and never closes on its own.
    const echo = net.createServer((socket) => {
      socket.on("error", () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
    try {
      const p = await plane({
        idleTimeoutMs: 300,
        backends: new Map([["echo", { host: "127.0.0.1", port: portOf(echo) }]]),
      });
      await p.route(["echo"]);
      const idle = net.connect({ host: "127.0.0.1", port: p.port() });
      const busy = net.connect({ host: "127.0.0.1", port: p.port() });
      idle.on("error", () => undefined);
      busy.on("error", () => undefined);
      let busyClosed = false;
      busy.on("close", () => {
        busyClosed = true;
      });
      let echoed = 0;
      busy.on("data", (d: Buffer) => {
        echoed += d.length;
      });
      const idleClosed = new Promise<boolean>((resolve) => {
        const limit = setTimeout(() => resolve(false), 10_000);
        idle.on("close", () => {
          clearTimeout(limit);
          resolve(true);
        });
      });
      // The busy client sends a byte every 50 ms, well inside the idle timeout, for 1.5 s.
      for (let i = 0; i < 30 && !busyClosed; i++) {
        busy.write("x");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(await idleClosed, true, "the idle session was not closed");
      assert.equal(busyClosed, false, "a session moving data was closed as idle");
      assert.ok(echoed > 0);
      assert.equal(p.connections().get("echo"), 1);
      busy.destroy();
    } finally {
      echo.close();
    }
  });
});
