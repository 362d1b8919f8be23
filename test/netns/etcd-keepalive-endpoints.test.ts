/**
 * The etcd driver's keep-alive stream moves to the next endpoint when its endpoint is dead,
 * against a real single-member etcd on loopback (no namespaces needed). Left to the shared
 * client, a new stream went to a random endpoint, the dead one included, and after etcd's
 * leader was killed every holder let go (README, arbiter: etcd). Here the first endpoint is a
 * closed port and the driver is made to start on it: keep-alives are confirmed only if it
 * moves on.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { EtcdDriver } from "../../src/arbiter/etcd-driver.ts";
import type { EtcdArbiterSpec } from "../../src/config/types.ts";
import type { Input } from "../../src/core/types.ts";

/** A loopback port nobody listens on (bound, read, released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

describe("etcd keep-alive endpoints", () => {
  it("moves the keep-alive stream off a dead endpoint and keeps the lease confirmed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "floatip-etcd-ka-"));
    const [client, peer, dead] = [await freePort(), await freePort(), await freePort()];
    const live = `http://127.0.0.1:${client}`;
    let etcd: ChildProcess | undefined;
    let driver: EtcdDriver | undefined;
    try {
      etcd = spawn(
        "etcd",
        [
          "--name=ka",
          `--data-dir=${join(dir, "ka.etcd")}`,
          `--listen-client-urls=${live}`,
          `--advertise-client-urls=${live}`,
          `--listen-peer-urls=http://127.0.0.1:${peer}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
          `--initial-cluster=ka=http://127.0.0.1:${peer}`,
          "--heartbeat-interval=50",
          "--election-timeout=500",
        ],
        { stdio: "ignore" },
      );
      const spec: EtcdArbiterSpec = {
        kind: "etcd",
        endpoints: [`http://127.0.0.1:${dead}`, live],
        prefix: "/floatip-test",
        ttlSec: 3,
        onLoss: "release",
        requestTimeoutMs: 1000,
      };
      const sessions: Extract<Input, { type: "etcd-session" }>[] = [];
      driver = new EtcdDriver({
        spec,
        cluster: "ka",
        nodeId: "n1",
        now: () => performance.now(),
        deliver: (input) => {
          if (input.type === "etcd-session") sessions.push(input);
        },
        log: () => {},
        random: () => 0, // the first stream opens on the dead endpoint
      });
      assert.equal(driver.keepAliveEndpoint, spec.endpoints[0]);
      driver.start();
      const d = driver;
      const confirmed = await waitFor(() => d.stats().keepAlivesConfirmed >= 3, 15_000);
      assert.ok(confirmed, `keep-alives confirmed: ${JSON.stringify(d.stats())}`);
      assert.equal(d.keepAliveEndpoint, live, "the stream moved to the live endpoint");
      const last = sessions.at(-1);
      assert.ok(last?.leaseId !== undefined, "the session lease is held");
    } finally {
      await driver?.stop();
      etcd?.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
