/**
 * Peer-to-peer replication of request records between storage gateways.
 *
 * Protocol (HTTP on each gateway's peer port, JSON bodies):
 *   POST /v1/peer/records  {records: RequestRecord[]}  -> {records: RequestRecord[],
 *                                                          conflicts: string[]}
 *       The receiver merges every record into its journal in one transaction (durable before
 *       it answers) and returns the merged records, and the ids it refused because it knows
 *       them with another operation. The sender counts the peer as having a record only on a
 *       200 answer that does not list its id. At most one push per peer is in flight; records
 *       pushed meanwhile travel together in the next one (group commit).
 *   POST /v1/peer/pull     {}                          -> {records: RequestRecord[]}
 *       Every record the peer knows (newest first, bounded); a node that takes over the storage
 *       VIP pulls from all healthy peers so it also learns results it missed while it was away.
 * Authentication: header `x-floatip-signature: sha256=<hex HMAC-SHA256 of the exact body with
 * the cluster key>`; bodies without a valid signature are refused (401) before parsing.
 * Replaying a signed body is harmless: records are merged with a join (request-record.ts), so
 * applying an old record again never moves anything backwards.
 *
 * When records travel:
 *   1. a new request: journaled locally, pushed to every healthy peer, acknowledged to the client
 *      only when every push succeeded (else 503 REPLICATION_FAILED; the request stays journaled
 *      and a retry with the same id reports it);
 *   2. `running(node, attempt)` before the backend is touched (best effort);
 *   3. the final state or `outcome_unknown` after the backend answered (best effort; a peer that
 *      missed it learns it by the pull of rule 4, or by merge when it is pushed again);
 *   4. takeover: the new VIP holder pulls from every healthy peer, merges, then re-drives every
 *      unfinished record idempotently and answers for finished ones from its journal.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import { parseRecord, type RequestRecord } from "../core/requests/request-record.ts";

export const signatureHeader = "x-floatip-signature";
const pullLimit = 100_000;

export function sign(key: Buffer, body: string): string {
  return `sha256=${createHmac("sha256", key).update(body).digest("hex")}`;
}

export function verify(key: Buffer, body: string, signature: unknown): boolean {
  if (typeof signature !== "string") return false;
  const expected = Buffer.from(sign(key, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface Peer {
  readonly id: string;
  /** Base URL of the peer's replication port, e.g. http://198.18.0.2:7481 */
  readonly url: string;
}

export class PeerError extends Error {
  readonly code = "REPLICATION_FAILED";
  readonly peer: string;
  constructor(peer: string, message: string, options?: { cause?: unknown }) {
    super(`peer ${peer}: ${message}`, options);
    this.peer = peer;
  }
}

/** Client side: pushes and pulls records, every call under `timeoutMs`. */
interface PushQueue {
  inFlight: boolean;
  waiting: {
    records: readonly RequestRecord[];
    resolve: (merged: RequestRecord[]) => void;
    reject: (error: unknown) => void;
  }[];
}

export class PeerClient {
  readonly #key: Buffer;
  readonly #timeoutMs: number;
  readonly #queues = new Map<string, PushQueue>();

  constructor(key: Buffer, timeoutMs: number) {
    this.#key = key;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Pushes records to a peer. At most one push per peer is in flight: records pushed
   * meanwhile wait and travel together in the next request, which the peer writes in one
   * transaction (group commit: one fsync for the batch, not one per record). Fifty requests
   * submitted at once thus cost a handful of round trips instead of fifty concurrent
   * requests, each waiting for its own fsync, that overran the replication timeout on a busy
   * disk. Each caller learns the outcome of the request that carried its records.
   */
  push(peer: Peer, records: readonly RequestRecord[]): Promise<RequestRecord[]> {
    const key = `${peer.id} ${peer.url}`;
    let queue = this.#queues.get(key);
    if (!queue) {
      queue = { inFlight: false, waiting: [] };
      this.#queues.set(key, queue);
    }
    return new Promise((resolve, reject) => {
      queue.waiting.push({ records, resolve, reject });
      if (!queue.inFlight) void this.#drain(peer, key, queue);
    });
  }

  async #drain(peer: Peer, key: string, queue: PushQueue): Promise<void> {
    queue.inFlight = true;
    while (queue.waiting.length > 0) {
      const batch = queue.waiting.splice(0, queue.waiting.length);
      try {
        const { records: merged, conflicts } = await this.#call(peer, "/v1/peer/records", {
          records: batch.flatMap((w) => w.records),
        });
        for (const waiter of batch) {
          // Only the pushes that carried a conflicting id fail: the rest of the batch is in.
          const conflict = waiter.records.find((r) => conflicts.has(r.id));
          if (conflict) {
            waiter.reject(
              new PeerError(
                peer.id,
                `request id ${conflict.id} is used there for a different operation`,
              ),
            );
          } else {
            waiter.resolve(merged);
          }
        }
      } catch (error) {
        for (const waiter of batch) waiter.reject(error);
      }
    }
    queue.inFlight = false;
    this.#queues.delete(key);
  }

  async pull(peer: Peer): Promise<RequestRecord[]> {
    return (await this.#call(peer, "/v1/peer/pull", {})).records;
  }

  async #call(peer: Peer, path: string, payload: unknown): Promise<PeerAnswer> {
    const body = JSON.stringify(payload);
    let response: Response;
    try {
      response = await fetch(`${peer.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", [signatureHeader]: sign(this.#key, body) },
        body,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw new PeerError(peer.id, `unreachable (${(error as Error).name})`, { cause: error });
    }
    const text = await response.text().catch(() => "");
    if (response.status !== 200) throw new PeerError(peer.id, `answered ${response.status}`);
    return parseRecords(text, peer.id);
  }
}

interface PeerAnswer {
  readonly records: RequestRecord[];
  /** Ids the peer refused because it knows them with another operation (REQUEST_ID_REUSED). */
  readonly conflicts: ReadonlySet<string>;
}

function parseRecords(text: string, peer: string): PeerAnswer {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new PeerError(peer, "unreadable answer", { cause: error });
  }
  const list = (parsed as { records?: unknown } | null)?.records;
  if (!Array.isArray(list)) throw new PeerError(peer, "answer without records");
  const records: RequestRecord[] = [];
  for (const item of list) {
    const record = parseRecord(item);
    if (record.ok) records.push(record.value);
  }
  const conflictList = (parsed as { conflicts?: unknown }).conflicts;
  const conflicts = new Set(
    Array.isArray(conflictList) ? conflictList.filter((c) => typeof c === "string") : [],
  );
  return { records, conflicts };
}

export interface PeerServerHandlers {
  /**
   * Merges records received from a peer (in one transaction); returns the merged records and
   * the ids refused because this node knows them with another operation.
   */
  receive(records: readonly RequestRecord[]): { records: RequestRecord[]; conflicts: string[] };
  /** Every record this node knows, newest first, at most `limit`. */
  all(limit: number): RequestRecord[];
}

/** Server side: a fastify instance for the peer port. Unsigned or malformed bodies change nothing. */
export function createPeerServer(key: Buffer, handlers: PeerServerHandlers): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (request, body, done) => {
    if (!verify(key, body as string, request.headers[signatureHeader])) {
      done(Object.assign(new Error("bad or missing signature"), { statusCode: 401 }), undefined);
      return;
    }
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(Object.assign(new Error("body is not JSON"), { statusCode: 400 }), undefined);
    }
  });
  app.setErrorHandler((error: { statusCode?: number; message: string }, _request, reply) => {
    const status = error.statusCode ?? 500;
    const code =
      status === 401 ? "UNAUTHENTICATED" : status === 400 ? "INVALID_REQUEST" : "INTERNAL";
    void reply.status(status).send({ error: { code, message: error.message } });
  });
  app.post("/v1/peer/records", async (request, reply) => {
    const list = (request.body as { records?: unknown } | null)?.records;
    if (!Array.isArray(list)) {
      return reply.status(400).send({ error: { code: "INVALID_REQUEST", message: "records" } });
    }
    const records: RequestRecord[] = [];
    for (const item of list) {
      const parsed = parseRecord(item);
      if (!parsed.ok) {
        return reply.status(400).send({ error: parsed.error });
      }
      records.push(parsed.value);
    }
    return handlers.receive(records);
  });
  app.post("/v1/peer/pull", async () => ({ records: handlers.all(pullLimit) }));
  return app;
}
