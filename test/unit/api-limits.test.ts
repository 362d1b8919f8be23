/**
 * The local API's limits, on a real listening socket as a client (or an attacker) meets them:
 * a body over the limit is refused with 413, headers over 16 KB with 431, both in the one JSON
 * error shape; a connection that sends nothing is closed after the idle timeout; a request
 * that never finishes arriving gets 408. The storage gateway's API uses the same options.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { InMemoryAgentHandle } from "../../src/api/in-memory-handle.ts";
import { createApiServer, startApi } from "../../src/api/server.ts";

const dir = mkdtempSync(join(tmpdir(), "floatip-api-limits-"));
const tokenFile = join(dir, "api.token");
writeFileSync(tokenFile, "limits-token\n", { mode: 0o600 });

/** Sends `request` raw; resolves with everything the server wrote and when it closed. */
function raw(
  port: number,
  request: string | Buffer,
  options: { timeoutMs?: number; keepOpen?: boolean } = {},
): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${options.timeoutMs ?? 5000} ms`));
    }, options.timeoutMs ?? 5000);
    socket.on("data", (chunk) => chunks.push(chunk));
    socket.on("error", () => {}); // a reset after the answer is fine
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({
        text: Buffer.concat(chunks).toString("utf8"),
        closedAfterMs: Date.now() - started,
      });
    });
    socket.on("connect", () => {
      if (request.length > 0) socket.write(request);
    });
  });
}

function jsonBodyOf(text: string): { error: { code: string; message: string } } {
  return JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
}

describe("API limits on a real socket", () => {
  let app: FastifyInstance;
  let port: number;
  before(async () => {
    const handle = new InMemoryAgentHandle({
      node: "n1",
      nodes: ["n1", "n2", "n3"],
      vips: ["198.18.0.100"],
    });
    app = createApiServer({
      handle,
      tokenFile,
      limits: {
        bodyLimitBytes: 64 * 1024,
        idleTimeoutMs: 400,
        requestTimeoutMs: 800,
        connectionsPerSource: 3,
      },
    });
    port = (await startApi(app, { host: "127.0.0.1", port: 0 })).port;
  });
  after(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a body over the limit: 413 in the JSON error shape (with the token; without it 401 first)", async () => {
    const body = JSON.stringify({ node: "n2", pad: "x".repeat(200 * 1024) });
    const request = (token: boolean) =>
      [
        "POST /v1/vips/198.18.0.100/move HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        `Content-Length: ${Buffer.byteLength(body)}`,
        ...(token ? ["Authorization: Bearer limits-token"] : []),
        "Connection: close",
        "",
        body,
      ].join("\r\n");
    const refused = await raw(port, request(true));
    assert.match(refused.text, /^HTTP\/1\.1 413 /);
    assert.equal(jsonBodyOf(refused.text).error.code, "PAYLOAD_TOO_LARGE");
    assert.match(jsonBodyOf(refused.text).error.message, /65536 bytes/);
    const unauthenticated = await raw(port, request(false));
    assert.match(unauthenticated.text, /^HTTP\/1\.1 401 /);
  });

  it("one source address holds at most its share of connections: the next gets 503 and is closed", async () => {
    const held: net.Socket[] = [];
    try {
      for (let i = 0; i < 3; i += 1) {
        const socket = net.connect({ host: "127.0.0.1", port });
        socket.on("error", () => undefined);
        await new Promise((resolve) => socket.once("connect", resolve));
        held.push(socket);
      }
      // The server counts a connection when it accepts it: let it see all three.
      await new Promise((resolve) => setTimeout(resolve, 50));
      const fourth = await raw(port, "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.match(fourth.text, /^HTTP\/1\.1 503 /);
      assert.equal(jsonBodyOf(fourth.text).error.code, "TOO_MANY_CONNECTIONS");
      // Another address is not affected; and once one closes, this one gets in again.
      const other = await new Promise<string>((resolve) => {
        const socket = net.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.2" });
        let text = "";
        socket.on("data", (d) => (text += d));
        socket.on("error", () => resolve(text));
        socket.on("close", () => resolve(text));
        socket.on("connect", () =>
          socket.write("GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
      });
      assert.match(other, /^HTTP\/1\.1 200 /);
      held.pop()?.destroy();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const again = await raw(
        port,
        "GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      );
      assert.match(again.text, /^HTTP\/1\.1 200 /);
    } finally {
      for (const socket of held) socket.destroy();
    }
  });

  it("headers over 16 KB: 431 in the JSON error shape", async () => {
    const request = `GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${"y".repeat(20 * 1024)}\r\n\r\n`;
    const answer = await raw(port, request);
    assert.match(answer.text, /^HTTP\/1\.1 431 /);
    assert.match(answer.text, /Content-Type: application\/json/);
    assert.equal(jsonBodyOf(answer.text).error.code, "HEADERS_TOO_LARGE");
  });

  it("a connection that sends nothing is closed after the idle timeout", async () => {
    const answer = await raw(port, "", { timeoutMs: 5000 });
    assert.ok(answer.closedAfterMs >= 350, `closed after ${answer.closedAfterMs} ms`);
    assert.ok(answer.closedAfterMs < 4000, `closed after ${answer.closedAfterMs} ms`);
  });

  it("a request whose body never finishes arriving gets 408", async () => {
    const start = [
      "POST /v1/vips/198.18.0.100/move HTTP/1.1",
      "Host: 127.0.0.1",
      "Content-Type: application/json",
      "Content-Length: 100",
      "Authorization: Bearer limits-token",
      "",
      '{"node":',
    ].join("\r\n");
    const socket = net.connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    socket.on("data", (c) => chunks.push(c));
    socket.on("error", () => {});
    await new Promise((r) => socket.on("connect", r));
    socket.write(start);
    // Keep it alive below the idle timeout, never completing the body.
    const keepAlive = setInterval(() => socket.write(" "), 150);
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      socket.on("close", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    clearInterval(keepAlive);
    socket.destroy();
    assert.ok(closed, "the server closed the slow request");
    const text = Buffer.concat(chunks).toString("utf8");
    assert.match(text, /^HTTP\/1\.1 408 /, text);
    assert.equal(jsonBodyOf(text).error.code, "REQUEST_TIMEOUT");
  });
});
