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
 * Authentication (peer protocol 2), checked before a byte of the body is read: every request
 * carries `content-length`, `x-floatip-digest: sha256=<hex SHA-256 of the body>` and
 * `x-floatip-signature: v2 sha256=<hex HMAC-SHA256 with the cluster key of
 * "v2\nPOST\n<path>\n<content-length>\n<digest hex>">`. A request without a length (411),
 * longer than the body limit (413, default 1 MiB, `peer_body_limit`) or without a valid
 * signature (401) is answered at once and its connection closed, its body never read; then
 * the body must match the signed digest (else 401). Pushes larger than the limit travel in
 * several requests. Replaying a signed request is harmless: records are merged with a join
 * (request-record.ts), so applying an old record again never moves anything backwards.
 * Protocol 1 (an HMAC of the body, checked after reading it) is refused: during a rolling
 * upgrade, storage requests fail with REPLICATION_FAILED until every node runs protocol 2.
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
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import { fastifyFrameworkErrors, lingerOnClose } from "../api/http-limits.ts";
import { parseRecord, type RequestRecord } from "../core/requests/request-record.ts";

export const signatureHeader = "x-floatip-signature";
export const digestHeader = "x-floatip-digest";
/** Default largest request body a peer port reads (`peer_body_limit`). */
export const defaultPeerBodyLimitBytes = 1024 * 1024;
/** Below this, a single request record may not fit. */
export const minPeerBodyLimitBytes = 64 * 1024;
const pullLimit = 100_000;

/** The signature of a request: the cluster key's HMAC over what the headers announce. */
function requestMac(key: Buffer, path: string, length: number, digest: string): string {
  return createHmac("sha256", key).update(`v2\nPOST\n${path}\n${length}\n${digest}`).digest("hex");
}

/**
 * The headers that authenticate a request to `path` with `body` before the body is read
 * (the HTTP client sets `content-length`, which the signature covers).
 */
export function signRequest(key: Buffer, path: string, body: string): Record<string, string> {
  const length = Buffer.byteLength(body);
  const digest = createHash("sha256").update(body).digest("hex");
  return {
    [digestHeader]: `sha256=${digest}`,
    [signatureHeader]: `v2 sha256=${requestMac(key, path, length, digest)}`,
  };
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Checks the headers of a request to `path` before its body is read: the error to answer
 * with, or undefined when the body may be read (it must then match `digest`).
 */
export function checkRequestHeaders(
  key: Buffer,
  path: string,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  limitBytes: number,
): { status: 401 | 411 | 413; code: string; message: string } | { digest: string } {
  const lengthText = headers["content-length"];
  if (typeof lengthText !== "string" || !/^\d{1,12}$/.test(lengthText)) {
    return { status: 411, code: "LENGTH_REQUIRED", message: "content-length is required" };
  }
  const length = Number(lengthText);
  if (length > limitBytes) {
    return {
      status: 413,
      code: "PAYLOAD_TOO_LARGE",
      message: `body of ${length} bytes is over the ${limitBytes}-byte limit (peer_body_limit)`,
    };
  }
  const digest = /^sha256=([0-9a-f]{64})$/.exec(String(headers[digestHeader] ?? ""))?.[1];
  const signature = /^v2 sha256=([0-9a-f]{64})$/.exec(String(headers[signatureHeader] ?? ""))?.[1];
  if (!digest || !signature) {
    return {
      status: 401,
      code: "UNAUTHENTICATED",
      message: "missing or malformed x-floatip-digest / x-floatip-signature (peer protocol 2)",
    };
  }
  const expected = requestMac(key, path, length, digest);
  if (!sameText(expected, signature)) {
    return { status: 401, code: "UNAUTHENTICATED", message: "bad signature" };
  }
  return { digest };
}

/** Whether `body` is the one the signed digest names. */
export function bodyMatches(body: string, digest: string): boolean {
  return sameText(createHash("sha256").update(body).digest("hex"), digest);
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
  readonly #limitBytes: number;
  readonly #queues = new Map<string, PushQueue>();

  /** `limitBytes`: the peers' body limit; larger pushes travel in several requests. */
  constructor(key: Buffer, timeoutMs: number, limitBytes = defaultPeerBodyLimitBytes) {
    this.#key = key;
    this.#timeoutMs = timeoutMs;
    this.#limitBytes = limitBytes;
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
        const merged: RequestRecord[] = [];
        const conflicts = new Set<string>();
        for (const chunk of this.#chunks(
          batch.flatMap((w) => w.records),
          peer.id,
        )) {
          const answer = await this.#call(peer, "/v1/peer/records", { records: chunk });
          merged.push(...answer.records);
          for (const id of answer.conflicts) conflicts.add(id);
        }
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

  /** Splits records into requests whose bodies stay within the peers' limit. */
  #chunks(records: readonly RequestRecord[], peer: string): RequestRecord[][] {
    const envelope = Buffer.byteLength(JSON.stringify({ records: [] }));
    const chunks: RequestRecord[][] = [];
    let current: RequestRecord[] = [];
    let size = envelope;
    for (const record of records) {
      const bytes = Buffer.byteLength(JSON.stringify(record)) + 1;
      if (envelope + bytes > this.#limitBytes) {
        throw new PeerError(
          peer,
          `request record ${record.id} alone is over the ${this.#limitBytes}-byte peer_body_limit`,
        );
      }
      if (size + bytes > this.#limitBytes && current.length > 0) {
        chunks.push(current);
        current = [];
        size = envelope;
      }
      current.push(record);
      size += bytes;
    }
    if (current.length > 0 || chunks.length === 0) chunks.push(current);
    return chunks;
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
        headers: { "content-type": "application/json", ...signRequest(this.#key, path, body) },
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

const errorCodes: Readonly<Record<number, string>> = {
  400: "INVALID_REQUEST",
  401: "UNAUTHENTICATED",
  413: "PAYLOAD_TOO_LARGE",
};

/**
 * Server side: a fastify instance for the peer port. A request is judged on its headers
 * before its body is read (length, limit, signature); unsigned or malformed bodies change
 * nothing.
 */
export function createPeerServer(
  key: Buffer,
  handlers: PeerServerHandlers,
  limitBytes = defaultPeerBodyLimitBytes,
): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: limitBytes,
    frameworkErrors: fastifyFrameworkErrors,
  });
  const digests = new WeakMap<object, string>();
  app.addHook("onRequest", async (request, reply) => {
    const path = request.url.split("?")[0]!;
    const verdict = checkRequestHeaders(key, path, request.headers, limitBytes);
    if ("digest" in verdict) {
      digests.set(request.raw, verdict.digest);
      return;
    }
    // Answer at once and close: the body is never parsed or kept (read and thrown away for a
    // moment after the answer, so that the client gets the answer rather than a reset).
    lingerOnClose(request.raw.socket);
    return reply
      .status(verdict.status)
      .header("connection", "close")
      .send({ error: { code: verdict.code, message: verdict.message } });
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (request, body, done) => {
    const digest = digests.get(request.raw);
    if (digest === undefined || !bodyMatches(body as string, digest)) {
      done(
        Object.assign(new Error("body does not match its signed digest"), { statusCode: 401 }),
        undefined,
      );
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
    const code = errorCodes[status] ?? "INTERNAL";
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
