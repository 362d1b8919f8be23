/**
 * Replication between storage gateways over real HTTP on loopback, with a real journal on the
 * receiving side: pushes to one peer are batched (one request in flight, the rest travel
 * together and are written in one transaction), a conflicting id fails only the push that
 * carried it, and an unreachable peer fails every waiting push with REPLICATION_FAILED.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { createRecord, type RequestRecord } from "../../src/core/requests/request-record.ts";
import { Journal } from "../../src/storage/journal.ts";
import {
  createPeerServer,
  PeerClient,
  PeerError,
  signRequest,
} from "../../src/storage/replication.ts";

const key = Buffer.alloc(32, 7);
const dir = mkdtempSync(path.join(tmpdir(), "fips-replication-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function peer(name: string, limitBytes?: number) {
  const journal = new Journal(path.join(dir, `${name}.sqlite`));
  let requests = 0;
  const batchSizes: number[] = [];
  const app = createPeerServer(
    key,
    {
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
    },
    limitBytes,
  );
  await app.listen({ host: "127.0.0.1", port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  return {
    journal,
    port,
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

/**
 * Sends the head of a request and `bodyBytes` of body (at most), then waits for the answer:
 * resolves with the status line and how long it took from the head. The rest of a large body
 * is never sent: a server that waited for it before answering would time out here.
 */
function rawPost(
  port: number,
  headers: Record<string, string>,
  bodyBytes = 0,
): Promise<{ status: number; ms: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const startedAt = performance.now();
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within 5 s: ${text}`));
    }, 5000);
    socket.on("connect", () => {
      const head = Object.entries({ host: "peer", ...headers })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join("");
      socket.write(`POST /v1/peer/records HTTP/1.1\r\n${head}\r\n`);
      if (bodyBytes > 0) socket.write(Buffer.alloc(bodyBytes, 0x7b));
    });
    socket.on("data", (chunk) => {
      text += chunk.toString();
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (status && text.includes("\r\n\r\n") && text.includes("}")) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ status: Number(status[1]), ms: performance.now() - startedAt, text });
      }
    });
    socket.on("error", () => undefined);
  });
}

describe("peer port: judged on its headers before the body is read", () => {
  it("answers 401, 411 and 413 at once for a 60 MB body that never comes", async () => {
    const b = await peer("headers");
    try {
      const sixty = String(60 * 1024 * 1024);
      const unsigned = await rawPost(b.port, { "content-length": sixty });
      assert.equal(unsigned.status, 413, unsigned.text);
      const small = await rawPost(b.port, { "content-length": "100" });
      assert.equal(small.status, 401, small.text);
      assert.match(small.text, /"code":"UNAUTHENTICATED"/);
      assert.match(small.text, /connection: close/i);
      const chunked = await rawPost(b.port, { "transfer-encoding": "chunked" });
      assert.equal(chunked.status, 411, chunked.text);
      // Signed with the right key for a 60 MB body: still over the limit, refused unread.
      const body = "x".repeat(10);
      const signedHeaders = signRequest(key, "/v1/peer/records", body);
      const big = await rawPost(b.port, { ...signedHeaders, "content-length": sixty });
      assert.equal(big.status, 413, big.text);
      assert.match(big.text, /peer_body_limit/);
      // Signed for another length (a captured header replayed with a longer body): 401.
      const replayed = await rawPost(b.port, { ...signedHeaders, "content-length": "100" }, 100);
      assert.equal(replayed.status, 401, replayed.text);
      assert.equal(b.stats().requests, 0, "nothing reached the journal");
    } finally {
      await b.close();
    }
  });

  it("refuses a body that is not the one signed, and one signed with another key", async () => {
    const b = await peer("digest");
    try {
      const good = JSON.stringify({ records: [create("good")] });
      const evil = JSON.stringify({ records: [create("evil")] }).padEnd(good.length, " ");
      const swapped = await fetch(`${b.url}/v1/peer/records`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...signRequest(key, "/v1/peer/records", good),
        },
        body: evil.slice(0, good.length),
      });
      assert.equal(swapped.status, 401);
      const otherKey = await fetch(`${b.url}/v1/peer/records`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...signRequest(Buffer.alloc(32, 9), "/v1/peer/records", good),
        },
        body: good,
      });
      assert.equal(otherKey.status, 401);
      assert.equal(b.journal.get("evil"), undefined);
      assert.equal(b.journal.get("good"), undefined);
      assert.equal(b.stats().requests, 0);
    } finally {
      await b.close();
    }
  });

  it("sends a push larger than the limit in several requests, each within it", async () => {
    const limit = 4096;
    const b = await peer("chunks", limit);
    try {
      const client = new PeerClient(key, 5000, limit);
      const records = Array.from({ length: 60 }, (_, i) => create(`c${i}`));
      const merged = await client.push({ id: "b", url: b.url }, records);
      assert.equal(merged.length, 60);
      for (const r of records) assert.ok(b.journal.get(r.id));
      const { requests, batchSizes } = b.stats();
      assert.ok(requests > 1, `one request of ${batchSizes} for ${limit} bytes`);
      assert.equal(
        batchSizes.reduce((a, n) => a + n, 0),
        60,
      );
      const huge = createRecord(
        "huge",
        { op: "create", name: "v".repeat(5000), sizeBytes: 1 },
        "a",
        1,
      );
      await assert.rejects(
        client.push({ id: "b", url: b.url }, [huge]),
        /alone is over the 4096-byte/,
      );
    } finally {
      await b.close();
    }
  });
});
