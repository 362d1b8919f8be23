/**
 * The contract every storage backend meets, as one test suite run against each backend:
 * the file backend (test/unit/storage-backend-contract.test.ts) and rbd against a real Ceph
 * cluster (test/ceph/rbd-contract.test.ts). Tests assert on error codes, never on messages.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import type { StorageBackend } from "../../src/storage/backends/backend.ts";
import { StorageError } from "../../src/storage/errors.ts";

const mib = 1024 * 1024;

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof StorageError, `expected a StorageError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

/** Registers the contract tests; `backend()` returns the backend under test (fresh namespace). */
export function backendContract(backend: () => StorageBackend, prefix: string): void {
  const n = (name: string) => `${prefix}${name}`;

  it("creates, lists, describes and removes a volume", async () => {
    const b = backend();
    assert.deepEqual(await b.create(n("v1"), 4 * mib), { name: n("v1"), sizeBytes: 4 * mib });
    assert.equal((await b.info(n("v1"))).sizeBytes, 4 * mib);
    assert.ok((await b.list()).some((v) => v.name === n("v1") && v.sizeBytes === 4 * mib));
    await b.remove(n("v1"));
    assert.ok(!(await b.list()).some((v) => v.name === n("v1")));
    await rejectsWith(b.info(n("v1")), "NOT_FOUND");
  });

  it("reports EXISTS and NOT_FOUND with stable codes", async () => {
    const b = backend();
    await b.create(n("v2"), mib);
    await rejectsWith(b.create(n("v2"), mib), "EXISTS");
    await rejectsWith(b.remove(n("absent")), "NOT_FOUND");
    await rejectsWith(b.resize(n("absent"), mib), "NOT_FOUND");
    await rejectsWith(b.copy(n("absent"), n("x")), "NOT_FOUND");
    await rejectsWith(b.snapList(n("absent")), "NOT_FOUND");
    await b.remove(n("v2"));
  });

  it("resizes up and down", async () => {
    const b = backend();
    await b.create(n("v3"), mib);
    assert.equal((await b.resize(n("v3"), 8 * mib)).sizeBytes, 8 * mib);
    assert.equal((await b.resize(n("v3"), 2 * mib)).sizeBytes, 2 * mib);
    assert.equal((await b.info(n("v3"))).sizeBytes, 2 * mib);
    await b.remove(n("v3"));
  });

  it("copies a volume to a new name and refuses an existing target", async () => {
    const b = backend();
    await b.create(n("v4"), 2 * mib);
    assert.equal((await b.copy(n("v4"), n("v4c"))).sizeBytes, 2 * mib);
    assert.equal((await b.info(n("v4c"))).sizeBytes, 2 * mib);
    await rejectsWith(b.copy(n("v4"), n("v4c")), "EXISTS");
    await b.remove(n("v4c"));
    await b.remove(n("v4"));
  });

  it("snapshots: create, list, EXISTS, BUSY on removing the volume, remove", async () => {
    const b = backend();
    await b.create(n("v5"), mib);
    assert.deepEqual(await b.snapCreate(n("v5"), "s1"), {
      name: n("v5"),
      snapshot: "s1",
      sizeBytes: mib,
    });
    await rejectsWith(b.snapCreate(n("v5"), "s1"), "EXISTS");
    assert.deepEqual(
      (await b.snapList(n("v5"))).map((s) => s.snapshot),
      ["s1"],
    );
    await rejectsWith(b.remove(n("v5")), "BUSY");
    await b.snapRemove(n("v5"), "s1");
    await rejectsWith(b.snapRemove(n("v5"), "s1"), "NOT_FOUND");
    assert.deepEqual(await b.snapList(n("v5")), []);
    await b.remove(n("v5"));
  });

  it("clones a snapshot; the snapshot is BUSY while the clone exists", async () => {
    const b = backend();
    await b.create(n("v6"), 3 * mib);
    await b.snapCreate(n("v6"), "base");
    const clone = await b.clone(n("v6"), "base", n("v6k"));
    assert.equal(clone.sizeBytes, 3 * mib);
    assert.equal((await b.info(n("v6k"))).parent, `${n("v6")}@base`);
    await rejectsWith(b.clone(n("v6"), "base", n("v6k")), "EXISTS");
    await rejectsWith(b.snapRemove(n("v6"), "base"), "BUSY");
    await b.remove(n("v6k"));
    await b.snapRemove(n("v6"), "base");
    await b.remove(n("v6"));
  });

  it("records the request that made a volume or snapshot with it: create, copy, clone, snapshot; a loser records nothing", async () => {
    const b = backend();
    await b.create(n("v7"), mib, "req-a");
    assert.equal(await b.creatorOf(n("v7")), "req-a");
    await rejectsWith(b.create(n("v7"), mib, "req-b"), "EXISTS");
    assert.equal(await b.creatorOf(n("v7")), "req-a", "the loser did not overwrite it");
    await b.copy(n("v7"), n("v7c"), "req-c");
    assert.equal(await b.creatorOf(n("v7c")), "req-c");
    await b.snapCreate(n("v7"), "s", "req-s");
    assert.equal(await b.snapCreatorOf(n("v7"), "s"), "req-s");
    await rejectsWith(b.snapCreate(n("v7"), "s", "req-t"), "EXISTS");
    assert.equal(await b.snapCreatorOf(n("v7"), "s"), "req-s", "the loser did not overwrite it");
    assert.equal(await b.snapCreatorOf(n("v7"), "none"), undefined);
    await b.clone(n("v7"), "s", n("v7k"), "req-k");
    assert.equal(await b.creatorOf(n("v7k")), "req-k");
    // Made without a request id (outside a request): nothing recorded; absent: undefined.
    await b.create(n("v7u"), mib);
    assert.equal(await b.creatorOf(n("v7u")), undefined);
    assert.equal(await b.creatorOf(n("nope")), undefined);
    // Only finished volumes are listed (no partial image under a name of its own).
    const names = (await b.list()).map((v) => v.name).filter((name) => name.startsWith(n("v7")));
    assert.deepEqual(names.sort(), [n("v7"), n("v7c"), n("v7k"), n("v7u")].sort());
    await b.remove(n("v7k"));
    await b.snapRemove(n("v7"), "s");
    assert.equal(await b.snapCreatorOf(n("v7"), "s"), undefined, "the record goes with it");
    for (const name of ["v7", "v7c", "v7u"]) await b.remove(n(name));
    assert.equal(await b.creatorOf(n("v7")), undefined, "the record goes with the volume");
  });
}
