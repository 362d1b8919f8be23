/**
 * Replication between storage gateways over real HTTP on loopback, with a real journal on the
 * receiving side: pushes to one peer are batched (one request in flight, the rest travel
 * together and are written in one transaction), a conflicting id fails only the push that
 * carried it, and an unreachable peer fails every waiting push with REPLICATION_FAILED.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { createRecord, type RequestRecord } from "../../src/core/requests/request-record.ts";
import { Journal } from "../../src/storage/journal.ts";
import { createPeerServer, PeerClient, PeerError } from "../../src/storage/replication.ts";

const key = Buffer.alloc(32, 7);
const dir = mkdtempSync(path.join(tmpdir(), "fips-replication-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function peer(name: string) {
  const journal = new Journal(path.join(dir, `${name}.sqlite`));
  let requests = 0;
  const batchSizes: number[] = [];
  const app = createPeerServer(key, {
    receive(records) {
      requests += 1;
      batchSizes.push(records.length);
      const writes = journal.applyMany(records);
      return {
        records: writes.flatMap((w) => (w ? [w.record] : [])),
        conflicts: writes.flatMap((w, i) => (w ? [] : [records[i]!.id])),
      };
    },
    all: (limit) => journal.recent(limit),
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  return {
    journal,
    url: `http://127.0.0.1:${port}`,
    stats: () => ({ requests, batchSizes }),
    async close() {
      await app.close();
      journal.close();
    },
  };
}

const create = (id: string, name = id): RequestRecord =>
  createRecord(id, { op: "create", name, sizeBytes: 1024 }, "a", Date.now());

describe("replication pushes", () => {
  it("batches concurrent pushes to one peer and writes them all", async () => {
    const b = await peer("batch");
    try {
      const client = new PeerClient(key, 5000);
      const target = { id: "b", url: b.url };
      const records = Array.from({ length: 50 }, (_, i) => create(`r${i}`));
      const results = await Promise.allSettled(records.map((r) => client.push(target, [r])));
      assert.deepEqual(
        results.map((r) => r.status),
        records.map(() => "fulfilled"),
      );
      for (const r of records) assert.ok(b.journal.get(r.id), `${r.id} is journaled on the peer`);
      const { requests, batchSizes } = b.stats();
      // The first push goes alone; everything pushed while it was in flight follows together.
      assert.ok(requests < 10, `50 pushes took ${requests} requests (${batchSizes.join(", ")})`);
      assert.equal(
        batchSizes.reduce((a, n) => a + n, 0),
        50,
      );
      // Later pushes open a new batch once the queue is idle again.
      await client.push(target, [create("late")]);
      assert.ok(b.journal.get("late"));
    } finally {
      await b.close();
    }
  });

  it("fails only the push whose id the peer knows with another operation", async () => {
    const b = await peer("conflict");
    try {
      b.journal.submit(create("taken", "other-volume"));
      const client = new PeerClient(key, 5000);
      const target = { id: "b", url: b.url };
      // Three pushes at once: the first travels alone, the other two share a batch.
      const pushes = [
        client.push(target, [create("x0")]),
        client.push(target, [create("taken", "mine")]),
        client.push(target, [create("x1")]),
      ];
      const [first, conflicting, third] = await Promise.allSettled(pushes);
      assert.equal(first?.status, "fulfilled");
      assert.equal(third?.status, "fulfilled", "a neighbour in the same batch still succeeds");
      assert.equal(conflicting?.status, "rejected");
      const reason = (conflicting as PromiseRejectedResult).reason as PeerError;
      assert.ok(reason instanceof PeerError);
      assert.equal(reason.code, "REPLICATION_FAILED");
      assert.match(reason.message, /request id taken is used there for a different operation/);
      assert.ok(b.journal.get("x1"), "the batch was written");
      assert.equal(
        (b.journal.get("taken")?.operation as { name?: string } | undefined)?.name,
        "other-volume",
        "the peer's record is untouched",
      );
      assert.ok(b.stats().batchSizes.includes(2), `batches: ${b.stats().batchSizes.join(", ")}`);
    } finally {
      await b.close();
    }
  });

  it("fails every waiting push when the peer is unreachable, then recovers", async () => {
    const b = await peer("down");
    const url = b.url;
    await b.close();
    const client = new PeerClient(key, 500);
    const target = { id: "b", url };
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => client.push(target, [create(`d${i}`)])),
    );
    for (const result of results) {
      assert.equal(result.status, "rejected");
      assert.ok((result as PromiseRejectedResult).reason instanceof PeerError);
    }
    const again = await peer("down-again");
    try {
      await client.push({ id: "b", url: again.url }, [create("after")]);
      assert.ok(again.journal.get("after"));
    } finally {
      await again.close();
    }
  });
});
