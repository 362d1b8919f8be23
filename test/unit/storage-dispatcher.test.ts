/**
 * Dispatcher and API in one process with a real journal, a real file backend and fastify's
 * inject: idempotent re-drive of every operation whose effect already happened on a node that
 * died before recording it, and the API's request-id and error contract.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import {
  createRecord,
  type Operation,
  type RequestRecord,
} from "../../src/core/requests/request-record.ts";
import type { ClusterViewSnapshot } from "../../src/ports/cluster-view.ts";
import { createApi } from "../../src/storage/api.ts";
import { FileBackend } from "../../src/storage/backends/file-backend.ts";
import { Dispatcher } from "../../src/storage/dispatcher.ts";
import { Journal } from "../../src/storage/journal.ts";
import { PeerClient } from "../../src/storage/replication.ts";
import { StaticClusterView } from "../../src/storage/static-cluster-view.ts";

const mib = 1024 * 1024;
const vip = "198.18.0.100";
const dir = mkdtempSync(path.join(tmpdir(), "fips-dispatcher-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function view(owner: string | undefined): ClusterViewSnapshot {
  return {
    selfId: "b",
    coordinatorId: "b",
    term: 2,
    members: [
      { id: "a", address: "127.0.0.1", state: "failed" },
      { id: "b", address: "127.0.0.1", state: "healthy" },
    ],
    owners: new Map([[vip, owner]]),
    held: owner === "b" ? new Set([vip]) : new Set(),
  };
}

async function setup(name: string) {
  const backend = new FileBackend({ dir: path.join(dir, name, "volumes") });
  await backend.init();
  const journal = new Journal(path.join(dir, `${name}.sqlite`));
  const clusterView = new StaticClusterView("b");
  clusterView.set(view(undefined));
  const dispatcher = new Dispatcher({
    nodeId: "b",
    journal,
    backend,
    view: clusterView,
    storageVip: vip,
    peers: new PeerClient(Buffer.alloc(32, 1), 500),
    peerUrl: () => "http://127.0.0.1:1",
    retryDelayMs: 10,
    attemptsMax: 3,
    nowMs: () => Date.now(),
    log: () => {},
  });
  dispatcher.start();
  return { backend, journal, clusterView, dispatcher };
}

describe("idempotent re-drive after the executing node died", () => {
  // Each case: the effect of the operation is already in the backend (node a did it and died
  // before recording the result); node b takes over and must report success, not EXISTS or
  // NOT_FOUND, and must not apply the effect twice.
  const cases: {
    operation: Operation;
    prepare: (b: FileBackend) => Promise<void>;
    check: (b: FileBackend) => Promise<void>;
  }[] = [
    {
      operation: { op: "create", name: "v", sizeBytes: 2 * mib },
      prepare: async (b) => void (await b.create("v", 2 * mib)),
      check: async (b) => assert.equal((await b.info("v")).sizeBytes, 2 * mib),
    },
    {
      operation: { op: "delete", name: "v" },
      prepare: async () => {},
      check: async (b) => assert.deepEqual(await b.list(), []),
    },
    {
      operation: { op: "resize", name: "v", sizeBytes: 4 * mib },
      prepare: async (b) => {
        await b.create("v", mib);
        await b.resize("v", 4 * mib);
      },
      check: async (b) => assert.equal((await b.info("v")).sizeBytes, 4 * mib),
    },
    {
      operation: { op: "copy", name: "v", target: "w" },
      prepare: async (b) => {
        await b.create("v", mib);
        await b.copy("v", "w");
      },
      check: async (b) => assert.equal((await b.info("w")).sizeBytes, mib),
    },
    {
      operation: { op: "snap-create", name: "v", snapshot: "s" },
      prepare: async (b) => {
        await b.create("v", mib);
        await b.snapCreate("v", "s");
      },
      check: async (b) =>
        assert.deepEqual(
          (await b.snapList("v")).map((s) => s.snapshot),
          ["s"],
        ),
    },
    {
      operation: { op: "snap-delete", name: "v", snapshot: "s" },
      prepare: async (b) => void (await b.create("v", mib)),
      check: async (b) => assert.deepEqual(await b.snapList("v"), []),
    },
    {
      operation: { op: "clone", name: "v", snapshot: "s", target: "k" },
      prepare: async (b) => {
        await b.create("v", mib);
        await b.snapCreate("v", "s");
        await b.clone("v", "s", "k");
      },
      check: async (b) => assert.equal((await b.info("k")).parent, "v@s"),
    },
    {
      operation: { op: "list" },
      prepare: async (b) => void (await b.create("v", mib)),
      check: async () => {},
    },
  ];

  for (const [i, c] of cases.entries()) {
    it(`${c.operation.op}: succeeds when the effect is already there`, async () => {
      const { backend, journal, clusterView, dispatcher } = await setup(`redrive-${i}`);
      try {
        await c.prepare(backend);
        const running: RequestRecord = {
          ...createRecord(`r${i}`, c.operation, "a", 1),
          state: { state: "running", node: "a", attempt: 1 },
        };
        journal.apply(running);
        clusterView.set(view("b")); // b takes over the VIP
        const final = await dispatcher.wait(`r${i}`, 10_000);
        assert.equal(final?.state.state, "succeeded", JSON.stringify(final?.state));
        await c.check(backend);
      } finally {
        await dispatcher.stop();
        journal.close();
      }
    });
  }

  it("a first attempt on the accepting node reports EXISTS as a failure", async () => {
    const { backend, journal, clusterView, dispatcher } = await setup("first");
    try {
      await backend.create("v", mib);
      clusterView.set(view("b"));
      await dispatcher.submit("c1", { op: "create", name: "v", sizeBytes: mib });
      const final = await dispatcher.wait("c1", 10_000);
      assert.equal(final?.state.state, "failed");
      if (final?.state.state === "failed") assert.equal(final.state.error.code, "EXISTS");
    } finally {
      await dispatcher.stop();
      journal.close();
    }
  });

  it("does not execute while another node holds the VIP", async () => {
    const { journal, clusterView, dispatcher } = await setup("passive");
    try {
      clusterView.set(view("a"));
      await dispatcher.submit("p1", { op: "list" });
      const record = await dispatcher.wait("p1", 200);
      assert.equal(record?.state.state, "accepted");
    } finally {
      await dispatcher.stop();
      journal.close();
    }
  });
});

describe("storage API", () => {
  it("submits, long-polls, rejects a reused id and bad input with JSON error codes", async () => {
    const { journal, clusterView, dispatcher } = await setup("api");
    const app = createApi(dispatcher);
    try {
      clusterView.set(view("b"));
      const created = await app.inject({
        method: "POST",
        url: "/v1/volumes?wait=5s",
        payload: { request_id: "api-1", name: "v1", sizeBytes: mib },
      });
      assert.equal(created.statusCode, 200);
      assert.equal(created.json().request.state.state, "succeeded");
      const again = await app.inject({
        method: "POST",
        url: "/v1/volumes",
        payload: { request_id: "api-1", name: "v1", sizeBytes: mib },
      });
      assert.deepEqual(again.json().request, created.json().request);
      const reused = await app.inject({
        method: "POST",
        url: "/v1/volumes",
        payload: { request_id: "api-1", name: "v2", sizeBytes: mib },
      });
      assert.equal(reused.statusCode, 409);
      assert.equal(reused.json().error.code, "REQUEST_ID_REUSED");
      const missing = await app.inject({
        method: "POST",
        url: "/v1/volumes",
        payload: { name: "v3", sizeBytes: mib },
      });
      assert.equal(missing.statusCode, 400);
      assert.equal(missing.json().error.code, "INVALID_REQUEST");
      const bad = await app.inject({
        method: "POST",
        url: "/v1/volumes",
        payload: { request_id: "api-2", name: "../etc", sizeBytes: -1 },
      });
      assert.equal(bad.statusCode, 400);
      const unknown = await app.inject({ method: "GET", url: "/v1/requests/nope" });
      assert.equal(unknown.statusCode, 404);
      assert.equal(unknown.json().error.code, "NOT_FOUND");
      const shown = await app.inject({ method: "GET", url: "/v1/requests/api-1?wait=1s" });
      assert.equal(shown.json().request.state.result.sizeBytes, mib);
      const spec = await app.inject({ method: "GET", url: "/v1/openapi.json" });
      assert.ok(spec.json().paths["/v1/volumes"]);
    } finally {
      await app.close();
      await dispatcher.stop();
      journal.close();
    }
  });
});
