/**
 * Failover of the storage gateway with real processes on loopback: three gateways (child
 * processes, own ports, own SQLite journals, one shared file backend standing in for the Ceph
 * cluster) and a static ClusterView file the test controls. Twenty mixed requests go to A; A is
 * SIGKILLed right after acknowledging them, the view moves the storage VIP to B, and every
 * request id must reach a final state on B that matches what is in the backend.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";

const root = path.resolve(import.meta.dirname, "../..");
const vip = "198.18.0.100";
const mib = 1024 * 1024;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Node {
  id: string;
  apiPort: number;
  peerPort: number;
  child?: ChildProcess;
  output: string;
}

function startNode(node: Node, configFile: string): Promise<void> {
  const child = spawn(
    process.execPath,
    [path.join(root, "src/storage/gateway-main.ts"), "--config", configFile],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  node.child = child;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${node.id} did not start: ${node.output}`)),
      15_000,
    );
    const onData = (chunk: Buffer) => {
      node.output += chunk.toString();
      if (node.output.includes('"event":"listening"')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${node.id} exited with ${code}: ${node.output}`));
    });
  });
}

interface StateJson {
  state: string;
  result?: ResultJson;
}
interface ResultJson {
  sizeBytes?: number;
  volumes?: { name: string }[];
  snapshots?: { snapshot: string }[];
}
interface RecordJson {
  id: string;
  state: StateJson;
}
interface ReplyJson {
  request: RecordJson;
  /** What a read answers (it keeps no record). */
  result?: ResultJson;
  error?: { code: string; message: string };
}

async function call(
  node: Node,
  method: string,
  url: string,
  body?: unknown,
): Promise<{ status: number; json: ReplyJson }> {
  const response = await fetch(`http://127.0.0.1:${node.apiPort}${url}`, {
    method,
    headers: {
      authorization: "Bearer failover-token",
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  return { status: response.status, json: (await response.json()) as ReplyJson };
}

describe("storage gateway failover (three processes on loopback)", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "fips-failover-"));
  const viewFile = path.join(dir, "view.json");
  const backendDir = path.join(dir, "volumes");
  const nodes: Node[] = ["a", "b", "c"].map((id) => ({ id, apiPort: 0, peerPort: 0, output: "" }));
  const [a, b, c] = nodes as [Node, Node, Node];

  const writeView = (owner: string, failed: readonly string[]) =>
    writeFileSync(
      viewFile,
      JSON.stringify({
        term: failed.length + 1,
        members: nodes.map((n) => ({
          id: n.id,
          address: "127.0.0.1",
          state: failed.includes(n.id) ? "failed" : "healthy",
        })),
        owners: { [vip]: owner },
      }),
    );

  before(async () => {
    writeFileSync(path.join(dir, "key"), randomBytes(32), { mode: 0o600 });
    writeFileSync(path.join(dir, "client.token"), "failover-token\n", { mode: 0o600 });
    // A port found free can be taken by a test running in parallel before the gateway binds
    // it: start again on new ports then (bounded).
    for (let attempt = 1; ; attempt += 1) {
      try {
        await startAll();
        return;
      } catch (error) {
        for (const n of nodes) {
          if (n.child && n.child.exitCode === null && n.child.signalCode === null)
            n.child.kill("SIGKILL");
        }
        if (attempt >= 3 || !/EADDRINUSE/.test(String(error))) throw error;
      }
    }
  });

  async function startAll(): Promise<void> {
    for (const n of nodes) {
      n.apiPort = await freePort();
      n.peerPort = await freePort();
      n.output = "";
    }
    writeView("a", []);
    for (const n of nodes) {
      const config = {
        node: n.id,
        keyFile: path.join(dir, "key"),
        journal: path.join(dir, `${n.id}.sqlite`),
        api: { host: "127.0.0.1", port: n.apiPort },
        peer: { host: "127.0.0.1", port: n.peerPort },
        peers: Object.fromEntries(nodes.map((p) => [p.id, `http://127.0.0.1:${p.peerPort}`])),
        vip,
        view: viewFile,
        // Emulated backend latency, so that A dies with requests still queued or running.
        backend: { kind: "file", dir: backendDir, operationDelayMs: 60 },
        replicationTimeoutMs: 1000,
        retryDelayMs: 200,
        clients: [{ name: "test", tokenFile: path.join(dir, "client.token"), access: "write" }],
      };
      const file = path.join(dir, `${n.id}.json`);
      writeFileSync(file, JSON.stringify(config));
      await startNode(n, file);
    }
  }

  after(() => {
    for (const n of nodes) {
      if (n.child && n.child.exitCode === null && n.child.signalCode === null)
        n.child.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers every acknowledged request from B after A is killed mid-flight", async () => {
    // Setup through A, waited for: volumes p0..p9 and snapshot p9@base.
    for (let i = 0; i < 10; i++) {
      const r = await call(a, "POST", "/v1/volumes?wait=10s", {
        request_id: `setup-${i}`,
        name: `p${i}`,
        sizeBytes: mib,
      });
      assert.equal(r.json.request.state.state, "succeeded", JSON.stringify(r.json));
    }
    const snap = await call(a, "POST", "/v1/volumes/p9/snapshots?wait=10s", {
      request_id: "setup-snap",
      snapshot: "base",
    });
    assert.equal(snap.json.request.state.state, "succeeded");

    const requests: { id: string; method: string; url: string; body: Record<string, unknown> }[] =
      [];
    const add = (id: string, method: string, url: string, body: Record<string, unknown> = {}) =>
      requests.push({
        id,
        method,
        url: `${url}${url.includes("?") ? "&" : "?"}request_id=${id}`,
        body,
      });
    for (let i = 0; i < 6; i++) {
      add(`create-n${i}`, "POST", "/v1/volumes", { name: `n${i}`, sizeBytes: (i + 1) * mib });
    }
    for (const i of [0, 1, 2]) add(`delete-p${i}`, "DELETE", `/v1/volumes/p${i}`);
    for (const i of [3, 4, 5])
      add(`resize-p${i}`, "POST", `/v1/volumes/p${i}/resize`, { sizeBytes: 8 * mib });
    for (const i of [6, 7])
      add(`snap-p${i}`, "POST", `/v1/volumes/p${i}/snapshots`, { snapshot: "s1" });
    add("copy-a", "POST", "/v1/volumes/p8/copy", { target: "c8a" });
    add("copy-b", "POST", "/v1/volumes/p8/copy", { target: "c8b" });
    add("clone-k9", "POST", "/v1/volumes/p9/snapshots/base/clone", { target: "k9" });
    assert.equal(requests.length, 17);
    // Reads in flight when A dies journal nothing; a client reads again (below, from B).
    const readsOnA = await Promise.all([
      call(a, "GET", "/v1/volumes/p9"),
      call(a, "GET", "/v1/volumes/p9/snapshots"),
    ]);
    assert.deepEqual(
      readsOnA.map((r) => r.status),
      [200, 200],
    );

    const acks = await Promise.all(
      requests.map((r) =>
        call(a, r.method, r.url, r.method === "GET" || r.method === "DELETE" ? undefined : r.body),
      ),
    );
    for (const ack of acks) assert.ok([200, 202].includes(ack.status), JSON.stringify(ack.json));
    a.child!.kill("SIGKILL");

    // B has every acknowledged request (replicated before the ack); some were cut off.
    const onB = await Promise.all(requests.map((r) => call(b, "GET", `/v1/requests/${r.id}`)));
    for (const r of onB) assert.equal(r.status, 200, JSON.stringify(r.json));
    const unfinished = onB.filter(
      (r) => !["succeeded", "failed"].includes(r.json.request.state.state),
    );
    assert.ok(unfinished.length > 0, "A should have died with requests in flight");

    writeView("b", ["a"]);
    b.child!.kill("SIGHUP");
    c.child!.kill("SIGHUP");

    const finals = new Map<string, RecordJson>();
    const deadline = Date.now() + 60_000;
    for (const r of requests) {
      for (;;) {
        const got = await call(b, "GET", `/v1/requests/${r.id}?wait=5s`);
        const state = got.json.request.state;
        if (state.state === "succeeded" || state.state === "failed") {
          finals.set(r.id, got.json.request);
          break;
        }
        assert.ok(Date.now() < deadline, `${r.id} never finished: ${JSON.stringify(got.json)}`);
      }
    }
    for (const [id, record] of finals) {
      assert.equal(record.state.state, "succeeded", `${id}: ${JSON.stringify(record.state)}`);
    }

    const volume = (name: string) => path.join(backendDir, "volumes", `${name}.img`);
    for (let i = 0; i < 6; i++) assert.equal(statSync(volume(`n${i}`)).size, (i + 1) * mib);
    for (const i of [0, 1, 2]) assert.equal(existsSync(volume(`p${i}`)), false);
    for (const i of [3, 4, 5]) assert.equal(statSync(volume(`p${i}`)).size, 8 * mib);
    for (const i of [6, 7])
      assert.ok(existsSync(path.join(backendDir, "snapshots", `p${i}`, "s1.img")));
    assert.equal(statSync(volume("c8a")).size, mib);
    assert.equal(statSync(volume("c8b")).size, mib);
    assert.equal(statSync(volume("k9")).size, mib);
    const info = await call(b, "GET", "/v1/volumes/p8");
    assert.equal(info.json.result?.sizeBytes, mib);
    const list = await call(b, "GET", "/v1/volumes");
    assert.ok(list.json.result?.volumes?.some((v) => v.name === "k9"));
    const snaps = await call(b, "GET", "/v1/volumes/p9/snapshots");
    assert.deepEqual(
      snaps.json.result?.snapshots?.map((s) => s.snapshot),
      ["base"],
    );
    // C, a healthy peer, converges on the same final records. B pushes final states after
    // answering (only acceptance is replicated before the 202), so C may lag a push behind.
    for (const r of requests) {
      const convergedBy = Date.now() + 10_000;
      for (;;) {
        const got = await call(c, "GET", `/v1/requests/${r.id}`);
        const same =
          JSON.stringify(got.json.request.state) === JSON.stringify(finals.get(r.id)?.state);
        if (same || Date.now() >= convergedBy) {
          assert.deepEqual(got.json.request.state, finals.get(r.id)?.state, r.id);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    // The client never resubmitted: B answers the original ids, and a retry with the same id
    // returns the same record instead of running the operation again.
    const retry = await call(b, "POST", "/v1/volumes?request_id=create-n0", {
      name: "n0",
      sizeBytes: mib,
    });
    assert.equal(retry.json.request.state.state, "succeeded");
    assert.deepEqual(retry.json.request.state, finals.get("create-n0")?.state);
  });
});
