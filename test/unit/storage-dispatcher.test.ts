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
import { createApi } from "../../src/storage/api.ts";
import { FileBackend } from "../../src/storage/backends/file-backend.ts";
import type { DispatcherOptions } from "../../src/storage/dispatcher.ts";
import { StorageError } from "../../src/storage/errors.ts";
import { Journal } from "../../src/storage/journal.ts";
import { StaticClusterView } from "../../src/storage/static-cluster-view.ts";
import { takeoverDispatcher, takeoverView } from "./storage-takeover-view.ts";

const mib = 1024 * 1024;
const vip = "198.18.0.100";
const dir = mkdtempSync(path.join(tmpdir(), "fips-dispatcher-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const view = (owner: string | undefined) => takeoverView(vip, owner);

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A file backend whose removals are BUSY until `busyUntilMs` (performance.now), as `rbd rm` is
 * while a killed client's watch is still registered on the image.
 */
class WatchedBackend extends FileBackend {
  busyUntilMs = 0;
  removals = 0;
  /** What fencing calls were made, in order, among the operations ("op:NAME"). */
  readonly calls: string[] = [];
  fencedFor = new Set<string>();
  async fence(address: string): Promise<void> {
    this.calls.push(`fence:${address}`);
    this.fencedFor.add(address);
  }
  async unfence(address: string): Promise<boolean> {
    this.calls.push(`unfence:${address}`);
    return this.fencedFor.delete(address);
  }
  override async create(name: string, sizeBytes: number, requestId?: string) {
    this.calls.push(`op:create ${name}`);
    return super.create(name, sizeBytes, requestId);
  }
  override async remove(name: string): Promise<void> {
    this.removals += 1;
    if (performance.now() < this.busyUntilMs) {
      throw new StorageError("BUSY", `${name}: image still has watchers`);
    }
    return super.remove(name);
  }
}

async function setup(
  name: string,
  staleWatchWaitMs?: number,
  fencing = false,
  more: Partial<DispatcherOptions> = {},
) {
  // A failed node looks for a fence of its own every 10 s in production; 50 ms here.
  const backend = new WatchedBackend({ dir: path.join(dir, name, "volumes") });
  await backend.init();
  const journal = new Journal(path.join(dir, `${name}.sqlite`));
  const clusterView = new StaticClusterView("b");
  clusterView.set(view(undefined));
  const dispatcher = takeoverDispatcher({
    journal,
    backend,
    view: clusterView,
    storageVip: vip,
    retryDelayMs: 10,
    ...(staleWatchWaitMs === undefined ? {} : { staleWatchWaitMs }),
    ...(fencing ? { fencing: true, unfenceRetryMs: 50 } : {}),
    ...more,
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
    /** `id`: the request's id, which its earlier attempt recorded with what it made. */
    prepare: (b: FileBackend, id: string) => Promise<void>;
    check: (b: FileBackend) => Promise<void>;
  }[] = [
    {
      operation: { op: "create", name: "v", sizeBytes: 2 * mib },
      prepare: async (b, id) => void (await b.create("v", 2 * mib, id)),
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
      prepare: async (b, id) => {
        await b.create("v", mib);
        await b.copy("v", "w", id);
      },
      check: async (b) => assert.equal((await b.info("w")).sizeBytes, mib),
    },
    {
      operation: { op: "snap-create", name: "v", snapshot: "s" },
      prepare: async (b, id) => {
        await b.create("v", mib);
        await b.snapCreate("v", "s", id);
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
      prepare: async (b, id) => {
        await b.create("v", mib);
        await b.snapCreate("v", "s");
        await b.clone("v", "s", "k", id);
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
        await c.prepare(backend, `r${i}`);
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

  it("a volume another request made is not this request's effect: its re-drive fails EXISTS", async () => {
    // Client A's create made v (and A died before recording it); client B's create of v, same
    // size, was accepted but not run. The new holder re-drives both: A succeeds, B fails.
    const { backend, journal, clusterView, dispatcher } = await setup("two-clients");
    try {
      await backend.create("v", mib, "a-create");
      for (const [id, at] of [
        ["a-create", 1],
        ["b-create", 2],
      ] as const) {
        journal.apply({
          ...createRecord(id, { op: "create", name: "v", sizeBytes: mib }, "a", at),
          state: { state: "running", node: "a", attempt: 1 },
        });
      }
      clusterView.set(view("b"));
      const a = await dispatcher.wait("a-create", 10_000);
      const b = await dispatcher.wait("b-create", 10_000);
      assert.equal(a?.state.state, "succeeded", JSON.stringify(a?.state));
      assert.equal(b?.state.state, "failed", JSON.stringify(b?.state));
      if (b?.state.state === "failed") assert.equal(b.state.error.code, "EXISTS");
      assert.equal(await backend.creatorOf("v"), "a-create");
    } finally {
      await dispatcher.stop();
      journal.close();
    }
  });

  describe("a delete whose image a dead holder's client still watches", () => {
    const deleteCutOff = (journal: Journal) =>
      journal.apply({
        ...createRecord("d1", { op: "delete", name: "v" }, "a", 1),
        state: { state: "running", node: "a", attempt: 1 },
      });

    it("is tried again until the watch is gone, beyond the attempt limit, and succeeds", async () => {
      const { backend, journal, clusterView, dispatcher } = await setup("watch-gone", 10_000);
      try {
        await backend.create("v", mib);
        deleteCutOff(journal);
        backend.busyUntilMs = performance.now() + 300;
        clusterView.set(view("b"));
        const final = await dispatcher.wait("d1", 10_000);
        assert.equal(final?.state.state, "succeeded", JSON.stringify(final?.state));
        assert.deepEqual(await backend.list(), []);
        assert.ok(backend.removals > 3, `more tries than attemptsMax: ${backend.removals}`);
      } finally {
        await dispatcher.stop();
        journal.close();
      }
    });

    it("fails BUSY once the wait after the takeover is over", async () => {
      const { backend, journal, clusterView, dispatcher } = await setup("watch-stays", 200);
      try {
        await backend.create("v", mib);
        deleteCutOff(journal);
        backend.busyUntilMs = Number.POSITIVE_INFINITY;
        clusterView.set(view("b"));
        const final = await dispatcher.wait("d1", 10_000);
        assert.equal(final?.state.state, "failed", JSON.stringify(final?.state));
        if (final?.state.state === "failed") assert.equal(final.state.error.code, "BUSY");
        assert.equal((await backend.list()).length, 1, "the volume is still there");
      } finally {
        await dispatcher.stop();
        journal.close();
      }
    });

    it("a first attempt answered BUSY fails at once: no dead holder came before it", async () => {
      const { backend, journal, clusterView, dispatcher } = await setup("busy-first", 10_000);
      try {
        await backend.create("v", mib);
        backend.busyUntilMs = Number.POSITIVE_INFINITY;
        clusterView.set(view("b"));
        await dispatcher.submit("d2", { op: "delete", name: "v" });
        const final = await dispatcher.wait("d2", 5000);
        assert.equal(final?.state.state, "failed", JSON.stringify(final?.state));
        assert.equal(backend.removals, 1);
      } finally {
        await dispatcher.stop();
        journal.close();
      }
    });
  });

  describe("fencing the previous holder", () => {
    /** a held the VIP (a at .1, b at .2); then b holds it, with a in `aState`. */
    const views = (aState: "failed" | "healthy") => {
      const base = {
        selfId: "b",
        coordinatorId: "b",
        term: 2,
        members: [
          { id: "a", address: "198.18.0.1", state: "healthy" as const },
          { id: "b", address: "198.18.0.2", state: "healthy" as const },
        ],
      };
      return {
        before: { ...base, owners: new Map([[vip, "a"]]), held: new Set<string>() },
        after: {
          ...base,
          members: [
            { id: "a", address: "198.18.0.1", state: aState },
            { id: "b", address: "198.18.0.2", state: "healthy" as const },
          ],
          owners: new Map([[vip, "b"]]),
          held: new Set([vip]),
        },
      };
    };

    it("fences a failed holder before re-driving, and lifts its own fence when it holds nothing", async () => {
      const { backend, journal, clusterView, dispatcher } = await setup("fence", 1000, true);
      try {
        // At start b holds nothing: it checks for a fence of its own (its address: 127.0.0.1).
        await waitFor(() => backend.calls.includes("unfence:127.0.0.1"));
        const { before, after } = views("failed");
        clusterView.set(before);
        journal.apply({
          ...createRecord("c1", { op: "create", name: "v", sizeBytes: mib }, "a", 1),
          state: { state: "running", node: "a", attempt: 1 },
        });
        clusterView.set(after);
        const final = await dispatcher.wait("c1", 10_000);
        assert.equal(final?.state.state, "succeeded", JSON.stringify(final?.state));
        const fenceAt = backend.calls.indexOf("fence:198.18.0.1");
        assert.ok(fenceAt >= 0, backend.calls.join(" "));
        assert.ok(fenceAt < backend.calls.indexOf("op:create v"), backend.calls.join(" "));
        // b is fenced in turn and loses the VIP: once idle, it lifts its own fence.
        backend.fencedFor.add("198.18.0.2");
        clusterView.set({ ...before, members: after.members });
        await waitFor(() => !backend.fencedFor.has("198.18.0.2"));
      } finally {
        await dispatcher.stop();
        journal.close();
      }
    });

    it("a failed node fenced without ever running a command lifts its fence (it would stay failed)", async () => {
      const { backend, journal, clusterView, dispatcher } = await setup("fenced-idle", 1000, true);
      try {
        await waitFor(() => backend.calls.includes("unfence:127.0.0.1"));
        // b is counted failed (its health checks) and holds nothing; it looks for a fence.
        const failed = {
          ...view(undefined),
          members: [
            { id: "a", address: "127.0.0.1", state: "healthy" as const },
            { id: "b", address: "127.0.0.1", state: "failed" as const },
          ],
          owners: new Map([[vip, "a"]]),
        };
        clusterView.set(failed);
        const looked = backend.calls.filter((c) => c === "unfence:127.0.0.1").length;
        await waitFor(() => backend.calls.filter((c) => c === "unfence:127.0.0.1").length > looked);
        // The new holder a fences b afterwards (b was the VIP's assigned owner when it failed):
        // no view change tells b, yet it finds the fence and lifts it.
        backend.fencedFor.add("127.0.0.1");
        await waitFor(() => !backend.fencedFor.has("127.0.0.1"), 2000);
        assert.ok(!backend.calls.some((c) => c.startsWith("op:")), backend.calls.join(" "));
      } finally {
        await dispatcher.stop();
        journal.close();
      }
    });

    it("a node taking the VIP over lifts a fence left on it before it re-drives", async () => {
      const { backend, journal, clusterView, dispatcher } = await setup("fenced-taker", 1000, true);
      try {
        await waitFor(() => backend.calls.includes("unfence:127.0.0.1"));
        const { before, after } = views("failed");
        clusterView.set(before);
        // A fence from an earlier failure of b, not looked for since (b was healthy).
        backend.fencedFor.add("198.18.0.2");
        journal.apply({
          ...createRecord("c3", { op: "create", name: "u", sizeBytes: mib }, "a", 1),
          state: { state: "running", node: "a", attempt: 1 },
        });
        clusterView.set(after);
        assert.equal((await dispatcher.wait("c3", 10_000))?.state.state, "succeeded");
        const lifted = backend.calls.indexOf("unfence:198.18.0.2");
        assert.ok(lifted >= 0, backend.calls.join(" "));
        assert.ok(lifted < backend.calls.indexOf("op:create u"), backend.calls.join(" "));
        assert.ok(!backend.fencedFor.has("198.18.0.2"));
      } finally {
        await dispatcher.stop();
        journal.close();
      }
    });

    it("does not fence a holder that handed over while healthy", async () => {
      const { backend, journal, clusterView, dispatcher } = await setup("no-fence", 1000, true);
      try {
        const { before, after } = views("healthy");
        clusterView.set(before);
        journal.apply({
          ...createRecord("c2", { op: "create", name: "w", sizeBytes: mib }, "a", 1),
          state: { state: "running", node: "a", attempt: 1 },
        });
        clusterView.set(after);
        assert.equal((await dispatcher.wait("c2", 10_000))?.state.state, "succeeded");
        assert.ok(!backend.calls.some((c) => c.startsWith("fence:")), backend.calls.join(" "));
      } finally {
        await dispatcher.stop();
        journal.close();
      }
    });
  });

  it("a snapshot another request made is not this request's effect: its re-drive fails EXISTS", async () => {
    const { backend, journal, clusterView, dispatcher } = await setup("two-snapshots");
    try {
      await backend.create("v", mib);
      await backend.snapCreate("v", "s", "a-snap");
      for (const [id, at] of [
        ["a-snap", 1],
        ["b-snap", 2],
      ] as const) {
        journal.apply({
          ...createRecord(id, { op: "snap-create", name: "v", snapshot: "s" }, "a", at),
          state: { state: "running", node: "a", attempt: 1 },
        });
      }
      clusterView.set(view("b"));
      const a = await dispatcher.wait("a-snap", 10_000);
      const b = await dispatcher.wait("b-snap", 10_000);
      assert.equal(a?.state.state, "succeeded", JSON.stringify(a?.state));
      assert.equal(b?.state.state, "failed", JSON.stringify(b?.state));
      assert.equal(await backend.snapCreatorOf("v", "s"), "a-snap");
    } finally {
      await dispatcher.stop();
      journal.close();
    }
  });

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

  it("a record this node accepted before it last took the VIP over is re-driven: another holder may have run it", async () => {
    // b accepted both requests while it held the VIP, then stopped before running them; the
    // next holder ran them (the delete removed v, the create made w with its own id), and b's
    // journal never heard of it. b restarts and takes the VIP over with no peer to pull from.
    const { backend, journal, clusterView, dispatcher } = await setup("stale-journal");
    try {
      await backend.create("w", mib, "stale-create");
      journal.apply(createRecord("stale-delete", { op: "delete", name: "v" }, "b", 1));
      journal.apply(
        createRecord("stale-create", { op: "create", name: "w", sizeBytes: mib }, "b", 2),
      );
      clusterView.set(view("b"));
      const deleted = await dispatcher.wait("stale-delete", 10_000);
      const created = await dispatcher.wait("stale-create", 10_000);
      assert.equal(deleted?.state.state, "succeeded", JSON.stringify(deleted?.state));
      assert.equal(created?.state.state, "succeeded", JSON.stringify(created?.state));
      const takeovers = dispatcher.takeovers();
      assert.equal(takeovers.withoutPeers, 1);
      assert.deepEqual(takeovers.last?.pulledFrom, []);
      assert.equal(takeovers.last?.unfinished, 2);
      // Accepted in this tenure, a delete of a missing volume is an ordinary failure.
      await dispatcher.submit("fresh-delete", { op: "delete", name: "v" });
      const fresh = await dispatcher.wait("fresh-delete", 10_000);
      assert.equal(fresh?.state.state, "failed", JSON.stringify(fresh?.state));
    } finally {
      await dispatcher.stop();
      journal.close();
    }
  });

  it("refuses a new request with NO_REPLICA when fewer healthy peers than min_replicas could take it", async () => {
    const { backend, journal, clusterView, dispatcher } = await setup(
      "min-replicas",
      undefined,
      false,
      { minReplicas: 1 },
    );
    clusterView.set(view("b")); // a is failed: b has no healthy peer
    const app = createApi(dispatcher, [{ name: "ops", token: "t-ops", access: "write" }]);
    try {
      const refused = await app.inject({
        method: "POST",
        url: "/v1/volumes?wait=1s",
        headers: { authorization: "Bearer t-ops" },
        payload: { request_id: "lonely-1", name: "v", sizeBytes: mib },
      });
      assert.equal(refused.statusCode, 503);
      assert.equal(refused.json().error.code, "NO_REPLICA");
      assert.match(refused.json().error.message, /min_replicas/);
      // Refused means journaled nowhere and run nowhere.
      assert.equal(journal.get("lonely-1"), undefined);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(await backend.list(), []);
    } finally {
      await app.close();
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
    const app = createApi(dispatcher, [{ name: "ops", token: "t-ops", access: "write" }]);
    const inject = (o: { method: "GET" | "POST"; url: string; payload?: object }) =>
      app.inject({ ...o, headers: { authorization: "Bearer t-ops" } });
    try {
      clusterView.set(view("b"));
      const created = await inject({
        method: "POST",
        url: "/v1/volumes?wait=5s",
        payload: { request_id: "api-1", name: "v1", sizeBytes: mib },
      });
      assert.equal(created.statusCode, 200);
      assert.equal(created.json().request.state.state, "succeeded");
      const again = await inject({
        method: "POST",
        url: "/v1/volumes",
        payload: { request_id: "api-1", name: "v1", sizeBytes: mib },
      });
      assert.deepEqual(again.json().request, created.json().request);
      const reused = await inject({
        method: "POST",
        url: "/v1/volumes",
        payload: { request_id: "api-1", name: "v2", sizeBytes: mib },
      });
      assert.equal(reused.statusCode, 409);
      assert.equal(reused.json().error.code, "REQUEST_ID_REUSED");
      const missing = await inject({
        method: "POST",
        url: "/v1/volumes",
        payload: { name: "v3", sizeBytes: mib },
      });
      assert.equal(missing.statusCode, 400);
      assert.equal(missing.json().error.code, "INVALID_REQUEST");
      const bad = await inject({
        method: "POST",
        url: "/v1/volumes",
        payload: { request_id: "api-2", name: "../etc", sizeBytes: -1 },
      });
      assert.equal(bad.statusCode, 400);
      const unknown = await inject({ method: "GET", url: "/v1/requests/nope" });
      assert.equal(unknown.statusCode, 404);
      assert.equal(unknown.json().error.code, "NOT_FOUND");
      const shown = await inject({ method: "GET", url: "/v1/requests/api-1?wait=1s" });
      assert.equal(shown.json().request.state.result.sizeBytes, mib);
      const listed = await inject({ method: "GET", url: "/v1/requests?limit=1" });
      assert.equal(listed.statusCode, 200);
      assert.equal(listed.json().requests.length, 1);
      for (const limit of ["1.55", "0", "-5", "1e3", "x", "99999999999"]) {
        const refused = await inject({ method: "GET", url: `/v1/requests?limit=${limit}` });
        assert.equal(refused.statusCode, 400, `limit=${limit}: ${refused.body}`);
        assert.equal(refused.json().error.code, "INVALID_REQUEST");
        assert.match(refused.json().error.message, /limit must be a whole number from 1 to 10000/);
      }
      const capped = await inject({ method: "GET", url: "/v1/requests?limit=99999" });
      assert.equal(capped.statusCode, 200);
      const spec = await inject({ method: "GET", url: "/v1/openapi.json" });
      assert.ok(spec.json().paths["/v1/volumes"]);
    } finally {
      await app.close();
      await dispatcher.stop();
      journal.close();
    }
  });
});

describe("storage API credentials", () => {
  const credentials = [
    { name: "alice", token: "token-alice", access: "write" as const },
    { name: "bob", token: "token-bob", access: "write" as const },
    { name: "watch", token: "token-watch", access: "read" as const },
  ];
  const as = (token: string | undefined) =>
    token === undefined ? {} : { authorization: `Bearer ${token}` };

  it("refuses every route without a valid token, reads with a read token, and shows each client only its own records", async () => {
    const { journal, clusterView, dispatcher } = await setup("auth");
    const app = createApi(dispatcher, credentials);
    try {
      clusterView.set(view("b"));
      for (const [method, url] of [
        ["GET", "/v1/health"],
        ["GET", "/v1/openapi.json"],
        ["GET", "/v1/volumes"],
        ["POST", "/v1/volumes"],
        ["GET", "/v1/requests"],
        ["DELETE", "/v1/volumes/x"],
      ] as const) {
        for (const token of [undefined, "nope"]) {
          const r = await app.inject({ method, url, headers: as(token) });
          assert.equal(r.statusCode, 401, `${method} ${url} with ${token}`);
          assert.equal(r.json().error.code, "UNAUTHENTICATED");
        }
      }
      const created = await app.inject({
        method: "POST",
        url: "/v1/volumes?wait=5s",
        headers: as("token-alice"),
        payload: { request_id: "a-1", name: "va", sizeBytes: mib },
      });
      assert.equal(created.json().request.state.state, "succeeded");
      assert.equal(created.json().request.client, "alice");

      // A read token reads (at once, journaling nothing) but changes nothing.
      const before = dispatcher.counts().total;
      const listed = await app.inject({
        method: "GET",
        url: "/v1/volumes",
        headers: as("token-watch"),
      });
      assert.equal(listed.statusCode, 200);
      assert.deepEqual(
        listed.json().result.volumes.map((v: { name: string }) => v.name),
        ["va"],
      );
      const info = await app.inject({
        method: "GET",
        url: "/v1/volumes/va?request_id=r-9",
        headers: as("token-watch"),
      });
      assert.equal(info.json().result.sizeBytes, mib);
      const gone = await app.inject({
        method: "GET",
        url: "/v1/volumes/zz",
        headers: as("token-watch"),
      });
      assert.equal(gone.statusCode, 404);
      assert.equal(gone.json().error.code, "NOT_FOUND");
      assert.equal(dispatcher.counts().total, before, "reads journal nothing");
      const refused = await app.inject({
        method: "DELETE",
        url: "/v1/volumes/va?request_id=w-1",
        headers: as("token-watch"),
      });
      assert.equal(refused.statusCode, 403);
      assert.equal(refused.json().error.code, "FORBIDDEN");
      assert.equal(dispatcher.get("w-1"), undefined, "a refused request leaves no record");

      // Bob sees none of Alice's records, and learns only that her id is taken.
      const peek = await app.inject({
        method: "GET",
        url: "/v1/requests/a-1",
        headers: as("token-bob"),
      });
      assert.equal(peek.statusCode, 404);
      const bobList = await app.inject({
        method: "GET",
        url: "/v1/requests",
        headers: as("token-bob"),
      });
      assert.deepEqual(bobList.json().requests, []);
      const aliceList = await app.inject({
        method: "GET",
        url: "/v1/requests",
        headers: as("token-alice"),
      });
      assert.deepEqual(
        aliceList.json().requests.map((r: { id: string }) => r.id),
        ["a-1"],
      );
      const sameId = await app.inject({
        method: "POST",
        url: "/v1/volumes",
        headers: as("token-bob"),
        payload: { request_id: "a-1", name: "va", sizeBytes: mib },
      });
      assert.equal(sameId.statusCode, 409);
      assert.equal(sameId.json().error.code, "REQUEST_ID_REUSED");
      assert.equal(sameId.json().request, undefined, "no record of Alice's in the answer");
    } finally {
      await app.close();
      await dispatcher.stop();
      journal.close();
    }
  });

  it("prunes final records by age and by count, never unfinished ones", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "floatip-retention-"));
    const journal = new Journal(path.join(dir, "j.sqlite"));
    try {
      const at = Date.now();
      for (let i = 0; i < 6; i += 1) {
        const record = createRecord(`r-${i}`, { op: "delete", name: `v${i}` }, "a", at, "alice");
        journal.submit(record);
        if (i < 5) journal.apply({ ...record, state: { state: "succeeded", result: null } });
      }
      // Nothing is old enough yet; beyond 3 records the oldest final ones go.
      assert.equal(journal.prune(3_600_000, 3, at + 1000), 3);
      assert.deepEqual(
        journal
          .recent(10)
          .map((r) => r.id)
          .sort(),
        ["r-3", "r-4", "r-5"],
      );
      // An hour later every final record is too old; the unfinished one stays.
      assert.equal(journal.prune(3_600_000, 100, at + 3_600_001 + 60_000), 2);
      assert.deepEqual(
        journal.recent(10).map((r) => r.id),
        ["r-5"],
      );
      assert.equal(journal.unfinished().length, 1);
    } finally {
      journal.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
