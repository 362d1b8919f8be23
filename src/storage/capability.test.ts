import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { CapabilityConfigError, type CapabilityContext } from "../agent/capability.ts";
import { createLogger } from "../agent/log.ts";
import { parseConfig } from "../config/load.ts";
import type { ClusterViewSnapshot } from "../ports/cluster-view.ts";
import { createCapability, parseStorageSection } from "./capability.ts";

const vip = "198.18.0.102";
const dir = mkdtempSync(path.join(tmpdir(), "fips-storage-cap-"));
const tokenFile = path.join(dir, "client.token");
writeFileSync(tokenFile, "cap-token\n", { mode: 0o600 });
const clients = [{ name: "ops", token_file: tokenFile, access: "write" }];

function context(extra = "", nodes = 1): CapabilityContext {
  const config = parseConfig(
    [
      "cluster: test",
      "key_file: /nonexistent/key",
      `state_dir: ${dir}`,
      "nodes:",
      "  - { id: a, address: 127.0.0.1, interface: lo }",
      ...["b", "c"]
        .slice(0, nodes - 1)
        .map((id, i) => `  - { id: ${id}, address: 127.0.0.${i + 2}, interface: lo }`),
      "vips:",
      `  - { address: ${vip}/24 }`,
      extra,
    ].join("\n"),
    "/etc/floatip/cluster.yaml",
  );
  const snapshot: ClusterViewSnapshot = {
    selfId: "a",
    coordinatorId: "a",
    term: 1,
    members: [{ id: "a", address: "127.0.0.1", state: "healthy" }],
    owners: new Map([[vip, "a"]]),
    held: new Set([vip]),
  };
  return {
    config,
    nodeId: "a",
    view: { current: () => snapshot, subscribe: () => () => {} },
    key: randomBytes(32),
    stateDir: dir,
    log: createLogger({ write: () => {} }),
  };
}

function problems(section: unknown): string[] {
  try {
    parseStorageSection(section, context());
  } catch (error) {
    assert.ok(error instanceof CapabilityConfigError);
    assert.equal(error.code, "CAPABILITY_CONFIG_INVALID");
    assert.match(error.message, /\/etc\/floatip\/cluster\.yaml/);
    return error.problems.map((p) => p.path);
  }
  return [];
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("storage capability", () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a section into a gateway config with peers, journal and key from the agent", () => {
    const config = parseStorageSection(
      { vip, clients, backend: { kind: "rbd", pool: "rbd", client_id: "admin", timeout: "5s" } },
      context(),
    );
    assert.equal(config.node, "a");
    assert.equal(config.vip, vip);
    // The client API listens on the storage VIP unless told otherwise.
    assert.deepEqual(config.api, { host: vip, port: 7490 });
    assert.deepEqual(config.clients, [
      { name: "ops", tokenFile, access: "write", key: "storage.clients[0].token_file" },
    ]);
    assert.deepEqual(config.retention, { maxAgeMs: 7 * 24 * 3_600_000, maxRecords: 100_000 });
    const open = parseStorageSection(
      {
        vip,
        clients,
        listen: "any",
        retention: { max_age: "2h", max_records: 50 },
        backend: { kind: "file", dir: "/tmp/v" },
      },
      context(),
    );
    assert.deepEqual(open.api, { host: "0.0.0.0", port: 7490 });
    assert.deepEqual(open.retention, { maxAgeMs: 7_200_000, maxRecords: 50 });
    assert.deepEqual(config.peers, { a: "http://127.0.0.1:7491" });
    assert.equal(config.peerBodyLimitBytes, 1024 * 1024, "default peer_body_limit");
    assert.equal(
      parseStorageSection(
        { vip, clients, peer_body_limit: 2_000_000, backend: { kind: "file", dir: "/tmp/v" } },
        context(),
      ).peerBodyLimitBytes,
      2_000_000,
    );
    assert.deepEqual(
      problems({ vip, clients, peer_body_limit: 1000, backend: { kind: "file", dir: "/tmp/v" } }),
      ["storage.peer_body_limit"],
    );
    assert.equal(config.journal, path.join(dir, "storage-journal.sqlite"));
    assert.deepEqual(config.backend, {
      kind: "rbd",
      pool: "rbd",
      clientId: "admin",
      timeoutMs: 5000,
    });
  });

  it("min_replicas: 1 by default with peers, 0 alone, at most the number of peers", () => {
    const section = { vip, clients, backend: { kind: "file", dir: "/tmp/v" } };
    assert.equal(parseStorageSection(section, context()).minReplicas, 0);
    assert.equal(parseStorageSection(section, context("", 3)).minReplicas, 1);
    assert.equal(
      parseStorageSection({ ...section, min_replicas: 2 }, context("", 3)).minReplicas,
      2,
    );
    assert.equal(
      parseStorageSection({ ...section, min_replicas: 0 }, context("", 3)).minReplicas,
      0,
    );
    assert.deepEqual(problems({ ...section, min_replicas: 1 }), ["storage.min_replicas"]);
    assert.deepEqual(problems({ ...section, min_replicas: -1 }), ["storage.min_replicas"]);
    assert.deepEqual(problems({ ...section, min_replicas: "one" }), ["storage.min_replicas"]);
  });

  it("reports every problem at once with its storage.* path", () => {
    assert.deepEqual(
      problems({
        vip: "198.18.0.99",
        port: 7480,
        extra: 1,
        listen: "everywhere",
        retention: { max_age: "forever", max_records: 0, keep: 1 },
        clients: [
          { name: "a b", access: "admin" },
          { name: "ops", token_file: tokenFile, access: "read" },
          { name: "ops", token_file: tokenFile, access: "read" },
        ],
        backend: { kind: "file", operation_delay: "soon" },
      }).sort(),
      [
        "storage.backend.dir",
        "storage.backend.operation_delay",
        "storage.clients[0].access",
        "storage.clients[0].name",
        "storage.clients[0].token_file",
        "storage.clients[2].name",
        "storage.extra",
        "storage.listen",
        "storage.port",
        "storage.retention.keep",
        "storage.retention.max_age",
        "storage.retention.max_records",
        "storage.vip",
      ],
    );
    assert.deepEqual(problems({ vip, clients, backend: { kind: "nfs" } }), [
      "storage.backend.kind",
    ]);
    assert.deepEqual(problems({ vip, clients }), ["storage.backend"]);
    assert.deepEqual(
      problems({
        vip,
        clients,
        tls: { cert_file: "/etc/floatip/s.crt", pem: 1 },
        backend: { kind: "file", dir: "/tmp/v" },
      }).sort(),
      ["storage.tls.key_file", "storage.tls.pem"],
    );
    assert.deepEqual(
      parseStorageSection(
        {
          vip,
          clients,
          tls: { cert_file: "/etc/floatip/s.crt", key_file: "/etc/floatip/s.key" },
          backend: { kind: "file", dir: "/tmp/v" },
        },
        context(),
      ).tls,
      {
        certFile: "/etc/floatip/s.crt",
        keyFile: "/etc/floatip/s.key",
        key: "storage.tls.key_file",
      },
    );
    // No credential at all: the API would be open, so the section is refused.
    assert.deepEqual(problems({ vip, backend: { kind: "file", dir: "/tmp/v" } }), [
      "storage.clients",
    ]);
    assert.ok(problems("yes").includes("storage"));
  });

  it("serves the gateway, executes on the VIP holder, and reports status", async () => {
    const [port, peerPort] = [await freePort(), await freePort()];
    const volumes = path.join(dir, "volumes");
    const capability = await createCapability(
      {
        vip,
        port,
        peer_port: peerPort,
        clients,
        listen: "127.0.0.1",
        backend: { kind: "file", dir: volumes },
      },
      context(),
    );
    await capability.start();
    try {
      const response = await fetch(`http://127.0.0.1:${port}/v1/volumes?wait=5s`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer cap-token" },
        body: JSON.stringify({ request_id: "cap-1", name: "v1", sizeBytes: 4096 }),
      });
      const body = (await response.json()) as { request: { state: { state: string } } };
      assert.equal(body.request.state.state, "succeeded");
      const anonymous = await fetch(`http://127.0.0.1:${port}/v1/volumes`);
      assert.equal(anonymous.status, 401);
      assert.ok(existsSync(path.join(volumes, "volumes", "v1.img")));
      const status = capability.status?.() as Record<string, unknown>;
      const { takeovers, ...rest } = status as { takeovers: { last?: { atMs: number } } };
      assert.deepEqual(rest, {
        running: true,
        vip,
        url: `http://${vip}:${port}`,
        backend: "file",
        serving: true,
        requests: 1,
        unfinished: 0,
        unfinishedRequests: [],
        minReplicas: 0,
      });
      // A single node takes the VIP over with no peer to ask: not a takeover "without peers".
      assert.deepEqual(takeovers, {
        count: 1,
        withoutPeers: 0,
        last: { atMs: takeovers.last?.atMs, peers: [], pulledFrom: [], unfinished: 0 },
      });
    } finally {
      await capability.stop();
    }
    assert.equal((capability.status?.() as { running?: boolean } | undefined)?.running, false);
  });
});
