/**
 * The request journal of one gateway: a SQLite file (node:sqlite, WAL, synchronous=FULL) with
 * one row per request id holding the original operation (canonical JSON) and the current
 * record. Every write is a transaction that is on disk when the call returns, so the dispatcher
 * can acknowledge a request right after `submit()` and the replication round: a crash after
 * that point loses nothing.
 *
 * All writes merge (src/core/requests/request-record.ts): a record never moves backwards, and
 * replicas applied in any order converge. The dispatcher is the only writer; API handlers and
 * the replication endpoint call it, on the one event loop, so no two writes interleave.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import {
  canonicalJson,
  isFinal,
  merge,
  parseRecord,
  type RequestRecord,
} from "../core/requests/request-record.ts";
import { StorageError } from "./errors.ts";

export interface JournalWrite {
  /** True when the stored record changed (new, or moved forward). */
  readonly changed: boolean;
  readonly record: RequestRecord;
}

export class Journal {
  readonly #db: DatabaseSync;
  readonly #select: StatementSync;
  readonly #insert: StatementSync;
  readonly #update: StatementSync;
  readonly #unfinished: StatementSync;
  readonly #recent: StatementSync;
  readonly #counts: StatementSync;
  readonly #recentOf: StatementSync;
  readonly #pruneAge: StatementSync;
  readonly #pruneCount: StatementSync;

  constructor(file: string) {
    this.#db = new DatabaseSync(file);
    this.#db.exec("PRAGMA journal_mode = WAL");
    this.#db.exec("PRAGMA synchronous = FULL");
    this.#db.exec("PRAGMA busy_timeout = 5000");
    this.#db.exec(`CREATE TABLE IF NOT EXISTS requests (
      id TEXT PRIMARY KEY,
      body TEXT NOT NULL,
      record TEXT NOT NULL,
      final INTEGER NOT NULL,
      accepted_at_ms INTEGER NOT NULL,
      updated_at_ms INTEGER NOT NULL
    ) STRICT`);
    this.#db.exec(
      "CREATE INDEX IF NOT EXISTS requests_unfinished ON requests (final, accepted_at_ms, id)",
    );
    this.#select = this.#db.prepare("SELECT body, record FROM requests WHERE id = ?");
    this.#insert = this.#db.prepare(
      "INSERT INTO requests (id, body, record, final, accepted_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
    );
    this.#update = this.#db.prepare(
      "UPDATE requests SET record = ?, final = ?, accepted_at_ms = ?, updated_at_ms = ? WHERE id = ?",
    );
    this.#unfinished = this.#db.prepare(
      "SELECT record FROM requests WHERE final = 0 ORDER BY accepted_at_ms, id LIMIT ?",
    );
    this.#recent = this.#db.prepare(
      "SELECT record FROM requests ORDER BY updated_at_ms DESC, id LIMIT ?",
    );
    this.#recentOf = this.#db.prepare(
      "SELECT record FROM requests WHERE json_extract(record, '$.client') IS ? ORDER BY updated_at_ms DESC, id LIMIT ?",
    );
    this.#pruneAge = this.#db.prepare("DELETE FROM requests WHERE final = 1 AND updated_at_ms < ?");
    this.#pruneCount = this.#db.prepare(
      "DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE final = 1 ORDER BY updated_at_ms, id LIMIT ?)",
    );
    this.#counts = this.#db.prepare(
      "SELECT count(*) AS total, coalesce(sum(final), 0) AS final FROM requests",
    );
  }

  close(): void {
    this.#db.close();
  }

  get(id: string): RequestRecord | undefined {
    const row = this.#select.get(id) as { record: string } | undefined;
    return row ? decode(row.record) : undefined;
  }

  /**
   * Stores a newly accepted request, or returns the stored one when the id is known with the
   * same operation (a client's retry). A known id with another operation is REQUEST_ID_REUSED.
   */
  submit(record: RequestRecord): JournalWrite {
    return this.#transaction(() => {
      const existing = this.#existing(record);
      if (existing) return { changed: false, record: existing };
      this.#write(record, undefined);
      return { changed: true, record };
    });
  }

  /** Merges a record (from this node's dispatcher or from a peer) into the stored one. */
  apply(record: RequestRecord): JournalWrite {
    return this.#transaction(() => this.#merge(record));
  }

  #merge(record: RequestRecord): JournalWrite {
    const existing = this.#existing(record);
    if (!existing) {
      this.#write(record, undefined);
      return { changed: true, record };
    }
    const merged = merge(existing, record);
    if (canonicalJson(merged) === canonicalJson(existing)) {
      return { changed: false, record: existing };
    }
    this.#write(merged, existing);
    return { changed: true, record: merged };
  }

  /**
   * Merges many records in one transaction (one fsync): what a peer's batched push carries.
   * A record whose id was used for another operation is skipped (undefined in its place);
   * the others are still written.
   */
  applyMany(records: readonly RequestRecord[]): (JournalWrite | undefined)[] {
    return this.#transaction(() =>
      records.map((record) => {
        try {
          return this.#merge(record);
        } catch (error) {
          if (error instanceof StorageError && error.code === "REQUEST_ID_REUSED") return undefined;
          throw error;
        }
      }),
    );
  }

  /** Requests that have no final state, oldest first (the order of re-drives); `limit`: the first so many. */
  unfinished(limit = -1): RequestRecord[] {
    return (this.#unfinished.all(limit) as { record: string }[]).map((row) => decode(row.record));
  }

  /** How many requests the journal holds, and how many of them are final (for status). */
  counts(): { total: number; final: number } {
    const row = this.#counts.get() as { total: number; final: number };
    return { total: Number(row.total), final: Number(row.final) };
  }

  /**
   * The most recently changed records, newest first: all of them, or (with `client`) only
   * those that client submitted (`null`: those submitted without a credential name).
   */
  recent(limit: number, client?: string | null): RequestRecord[] {
    const rows = client === undefined ? this.#recent.all(limit) : this.#recentOf.all(client, limit);
    return (rows as { record: string }[]).map((row) => decode(row.record));
  }

  /**
   * Retention: deletes final records last changed more than `maxAgeMs` ago, then the oldest
   * final ones beyond `maxRecords` in all. Unfinished records are never deleted: they are work
   * still owed. Returns how many were deleted. The id of a deleted record may be used again.
   */
  prune(maxAgeMs: number, maxRecords: number, nowMs = Date.now()): number {
    return this.#transaction(() => {
      let deleted = Number(this.#pruneAge.run(nowMs - maxAgeMs).changes);
      const { total } = this.counts();
      if (total > maxRecords) deleted += Number(this.#pruneCount.run(total - maxRecords).changes);
      return deleted;
    });
  }

  #existing(record: RequestRecord): RequestRecord | undefined {
    const row = this.#select.get(record.id) as { body: string; record: string } | undefined;
    if (!row) return undefined;
    const existing = decode(row.record);
    // Another client's id says the same as another operation: only that it is taken.
    if (row.body !== canonicalJson(record.operation) || existing.client !== record.client) {
      throw new StorageError(
        "REQUEST_ID_REUSED",
        `request id ${record.id} was already used for a different operation`,
      );
    }
    return existing;
  }

  #write(record: RequestRecord, previous: RequestRecord | undefined): void {
    const text = canonicalJson(record);
    const final = isFinal(record.state) ? 1 : 0;
    if (previous === undefined) {
      this.#insert.run(
        record.id,
        canonicalJson(record.operation),
        text,
        final,
        record.acceptedAtMs,
        Date.now(),
      );
    } else {
      this.#update.run(text, final, record.acceptedAtMs, Date.now(), record.id);
    }
  }

  #transaction<T>(body: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = body();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }
}

function decode(text: string): RequestRecord {
  const parsed = parseRecord(JSON.parse(text));
  if (!parsed.ok) throw new Error(`journal holds an invalid record: ${parsed.error.message}`);
  return parsed.value;
}
