/**
 * The local data file of S3: a SQLite database (WAL) holding this node's own samples and,
 * separately, the samples it received as backup target (or custodian) for other nodes, keyed
 * by origin node. Sequence numbers are per origin, assigned by the origin, never reused: the
 * backup channel resumes by asking the target for the highest sequence it has.
 *
 * Retention: raw samples are kept `rawRetentionMs` (2 days); `prune()` first folds the raw
 * samples it is about to delete into 1-minute rollups (kept `rollupRetentionMs`, 30 days).
 * Queries read raw rows and rollups together; no row is ever in both.
 *
 * Single writer per file (the traffic component of one node); synchronous API.
 */
import { createHash } from "node:crypto";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { InterfaceSample } from "./collector.ts";

/**
 * A sample as it travels on the backup channel (compact: JSON arrays are much cheaper than
 * objects): [seq, tsMs, iface, ifindex, intervalMs, rxBytes, rxPackets, rxErrors, rxDrops,
 * txBytes, txPackets, txErrors, txDrops].
 */
export type WireRow = [
  number,
  number,
  string,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
];

export interface TrafficBucket {
  /** Start of the bucket (wall-clock ms since the epoch). */
  readonly tsMs: number;
  readonly iface: string;
  readonly rxBytes: number;
  readonly rxPackets: number;
  readonly rxErrors: number;
  readonly rxDrops: number;
  readonly txBytes: number;
  readonly txPackets: number;
  readonly txErrors: number;
  readonly txDrops: number;
  /** Raw samples (or sampled seconds, for rolled-up minutes) that went into the bucket. */
  readonly samples: number;
}

/** The most buckets one query may ask for (range / step). */
export const maxQueryBuckets = 100_000;

export class QueryTooLarge extends Error {
  readonly code = "QUERY_TOO_LARGE";
}

function addBuckets(a: TrafficBucket, b: TrafficBucket): TrafficBucket {
  return {
    tsMs: a.tsMs,
    iface: a.iface,
    rxBytes: a.rxBytes + b.rxBytes,
    rxPackets: a.rxPackets + b.rxPackets,
    rxErrors: a.rxErrors + b.rxErrors,
    rxDrops: a.rxDrops + b.rxDrops,
    txBytes: a.txBytes + b.txBytes,
    txPackets: a.txPackets + b.txPackets,
    txErrors: a.txErrors + b.txErrors,
    txDrops: a.txDrops + b.txDrops,
    samples: a.samples + b.samples,
  };
}

export interface TrafficQuery {
  readonly origin: string;
  readonly fromMs: number;
  readonly toMs: number;
  readonly stepMs: number;
  readonly iface?: string | undefined;
}

export interface StoreOptions {
  readonly rawRetentionMs?: number;
  readonly rollupRetentionMs?: number;
}

export const minuteMs = 60_000;
const dayMs = 86_400_000;

const counterColumns =
  "rx_bytes, rx_packets, rx_errors, rx_drops, tx_bytes, tx_packets, tx_errors, tx_drops";
const sampleColumns = `ts_ms INTEGER NOT NULL, iface TEXT NOT NULL, ifindex INTEGER NOT NULL,
  interval_ms INTEGER NOT NULL, rx_bytes INTEGER NOT NULL, rx_packets INTEGER NOT NULL,
  rx_errors INTEGER NOT NULL, rx_drops INTEGER NOT NULL, tx_bytes INTEGER NOT NULL,
  tx_packets INTEGER NOT NULL, tx_errors INTEGER NOT NULL, tx_drops INTEGER NOT NULL`;
const wireSelect = `seq, ts_ms, iface, ifindex, interval_ms, ${counterColumns}`;

export class TrafficStore {
  readonly selfId: string;
  private readonly db: DatabaseSync;
  private readonly rawRetentionMs: number;
  private readonly rollupRetentionMs: number;
  private readonly statements = new Map<string, StatementSync>();

  constructor(path: string, selfId: string, options: StoreOptions = {}) {
    this.selfId = selfId;
    this.rawRetentionMs = options.rawRetentionMs ?? 2 * dayMs;
    this.rollupRetentionMs = options.rollupRetentionMs ?? 30 * dayMs;
    // Another process (a reader, or a restarted writer) may hold the lock for a moment.
    this.db = new DatabaseSync(path, { timeout: 5000 });
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      CREATE TABLE IF NOT EXISTS own_samples (seq INTEGER PRIMARY KEY AUTOINCREMENT, ${sampleColumns});
      CREATE INDEX IF NOT EXISTS own_samples_ts ON own_samples (ts_ms);
      CREATE TABLE IF NOT EXISTS backup_samples (origin TEXT NOT NULL, seq INTEGER NOT NULL,
        ${sampleColumns}, PRIMARY KEY (origin, seq)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS backup_samples_ts ON backup_samples (origin, ts_ms);
      CREATE TABLE IF NOT EXISTS positions (origin TEXT PRIMARY KEY, highest_seq INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS rollups (origin TEXT NOT NULL, minute_ms INTEGER NOT NULL,
        iface TEXT NOT NULL, rx_bytes INTEGER NOT NULL, rx_packets INTEGER NOT NULL,
        rx_errors INTEGER NOT NULL, rx_drops INTEGER NOT NULL, tx_bytes INTEGER NOT NULL,
        tx_packets INTEGER NOT NULL, tx_errors INTEGER NOT NULL, tx_drops INTEGER NOT NULL,
        samples INTEGER NOT NULL, PRIMARY KEY (origin, minute_ms, iface)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `);
    this.startSequence();
  }

  /**
   * A new store numbers its own samples from its creation time (1,000 per millisecond of
   * wall time, far above any sampling rate), not from 1: a node whose database was wiped
   * then continues above every sequence its backup target already holds, instead of being
   * skipped until it passes the old highest. (Safe integers last until the year 2255.)
   */
  private startSequence(): void {
    const started = this.statement(
      "SELECT seq FROM sqlite_sequence WHERE name = 'own_samples'",
    ).get() as { seq: number } | undefined;
    if (started !== undefined) return;
    const empty = this.statement("SELECT count(*) AS n FROM own_samples").get() as { n: number };
    if (Number(empty.n) > 0) return;
    this.statement("INSERT INTO sqlite_sequence (name, seq) VALUES ('own_samples', ?)").run(
      Date.now() * 1000,
    );
  }

  close(): void {
    this.db.close();
  }

  private statement(sql: string): StatementSync {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private transaction<T>(body: () => T): T {
    this.db.exec("BEGIN");
    try {
      const result = body();
      this.db.exec("COMMIT");
      return result;
    } catch (error) {
      this.db.exec("ROLLBACK");
      throw error;
    }
  }

  /** Keeps the last index table seen, so a restarted coordinator resumes from it. */
  saveTable(table: unknown): void {
    this.statement("INSERT OR REPLACE INTO meta (key, value) VALUES ('index-table', ?)").run(
      JSON.stringify(table),
    );
  }

  loadTable(): unknown {
    const row = this.statement("SELECT value FROM meta WHERE key = 'index-table'").get() as
      | { value: string }
      | undefined;
    return row ? (JSON.parse(row.value) as unknown) : undefined;
  }

  /** Stores this node's samples of one collection round; returns the highest own sequence. */
  appendOwn(samples: readonly InterfaceSample[]): number {
    if (samples.length === 0) return this.highestSeq(this.selfId);
    const insert = this.statement(
      `INSERT INTO own_samples (ts_ms, iface, ifindex, interval_ms, ${counterColumns})
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    return this.transaction(() => {
      let seq = 0;
      for (const s of samples) {
        const r = insert.run(
          s.tsMs,
          s.iface,
          s.ifindex,
          s.intervalMs,
          s.rxBytes,
          s.rxPackets,
          s.rxErrors,
          s.rxDrops,
          s.txBytes,
          s.txPackets,
          s.txErrors,
          s.txDrops,
        );
        seq = Number(r.lastInsertRowid);
      }
      this.setPosition(this.selfId, seq);
      return seq;
    });
  }

  /**
   * Stores samples received for `origin` (as its backup target or as a custodian's target).
   * Rows already present are ignored, so a resent batch is harmless. Returns the new highest.
   */
  appendReplicated(origin: string, rows: readonly WireRow[]): number {
    if (origin === this.selfId)
      throw new Error("appendReplicated: own samples come from appendOwn");
    const insert = this.statement(
      `INSERT OR IGNORE INTO backup_samples (origin, ${wireSelect})
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    return this.transaction(() => {
      let highest = this.highestSeq(origin);
      for (const r of rows) {
        insert.run(origin, ...r);
        if (r[0] > highest) highest = r[0];
      }
      this.setPosition(origin, highest);
      return highest;
    });
  }

  private setPosition(origin: string, seq: number): void {
    this.statement(
      `INSERT INTO positions (origin, highest_seq) VALUES (?, ?)
       ON CONFLICT (origin) DO UPDATE SET highest_seq = MAX(highest_seq, excluded.highest_seq)`,
    ).run(origin, seq);
  }

  /** Highest sequence held for `origin` (0 when none); survives pruning. */
  highestSeq(origin: string): number {
    const row = this.statement("SELECT highest_seq AS h FROM positions WHERE origin = ?").get(
      origin,
    ) as { h: number } | undefined;
    return row?.h ?? 0;
  }

  /** Up to `limit` rows of `origin` with sequence above `afterSeq`, in sequence order. */
  rowsAfter(origin: string, afterSeq: number, limit: number): WireRow[] {
    const own = origin === this.selfId;
    const sql = own
      ? `SELECT ${wireSelect} FROM own_samples WHERE seq > ? ORDER BY seq LIMIT ?`
      : `SELECT ${wireSelect} FROM backup_samples WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?`;
    const s = this.statement(sql);
    s.setReturnArrays(true);
    const rows = own ? s.all(afterSeq, limit) : s.all(origin, afterSeq, limit);
    return rows as unknown as WireRow[];
  }

  /** Origins (other than this node) with replicated samples here. */
  replicatedOrigins(): string[] {
    return (
      this.statement("SELECT origin FROM positions WHERE origin != ? ORDER BY origin").all(
        this.selfId,
      ) as { origin: string }[]
    ).map((r) => r.origin);
  }

  /** Count and SHA-256 of the raw rows of `origin` up to a sequence, in order (re-sync checks). */
  digest(origin: string, upToSeq = Number.MAX_SAFE_INTEGER): { count: number; sha256: string } {
    const hash = createHash("sha256");
    let count = 0;
    let after = 0;
    for (;;) {
      const rows = this.rowsAfter(origin, after, 5000).filter((r) => r[0] <= upToSeq);
      for (const r of rows) hash.update(`${JSON.stringify(r)}\n`);
      count += rows.length;
      if (rows.length < 5000) break;
      after = rows.at(-1)![0];
    }
    return { count, sha256: hash.digest("hex") };
  }

  /**
   * `query` over any range without holding the event loop: the range is read in slices of
   * `sliceMs` (an hour: at most 3,600 raw rows per interface, a few milliseconds each), with a
   * turn of the event loop between slices, and the slices' buckets summed. A bucket that spans
   * two slices gets its rows from both, so the answer equals one `query` over the range. The
   * range is first narrowed to the stored samples (retention bounds it: 2 days raw, 30 days of
   * minutes), and at most `maxQueryBuckets` buckets may result: a smaller step is refused
   * (QUERY_TOO_LARGE) before anything is read, so every answer comes in bounded time.
   */
  async querySliced(q: TrafficQuery, sliceMs = 3_600_000): Promise<TrafficBucket[]> {
    // Only where there are rows: "everything since 1970" reads the days the store keeps.
    const extent = this.#extent(q.origin);
    if (extent === undefined) return [];
    const fromMs = Math.max(q.fromMs, extent.firstMs);
    const toMs = Math.min(q.toMs, extent.lastMs + 1);
    if (toMs <= fromMs) return [];
    const buckets = Math.ceil((toMs - fromMs) / q.stepMs) + 1;
    if (buckets > maxQueryBuckets) {
      throw new QueryTooLarge(
        `up to ${buckets} buckets of ${q.stepMs} ms over the stored range; at most ${maxQueryBuckets}: use a larger step or a shorter range`,
      );
    }
    const sums = new Map<string, TrafficBucket>();
    for (let from = fromMs; from < toMs; from += sliceMs) {
      if (from > fromMs) await new Promise((resolve) => setImmediate(resolve));
      for (const b of this.query({ ...q, fromMs: from, toMs: Math.min(toMs, from + sliceMs) })) {
        const key = `${b.tsMs}\u0000${b.iface}`;
        const seen = sums.get(key);
        sums.set(key, seen ? addBuckets(seen, b) : b);
      }
    }
    return [...sums.values()].sort((a, b) =>
      a.tsMs !== b.tsMs ? a.tsMs - b.tsMs : a.iface < b.iface ? -1 : a.iface > b.iface ? 1 : 0,
    );
  }

  /** First and last sample time of `origin`, raw and rolled up (indexes make it cheap). */
  #extent(origin: string): { firstMs: number; lastMs: number } | undefined {
    const raw =
      origin === this.selfId
        ? (this.statement("SELECT min(ts_ms) AS a, max(ts_ms) AS b FROM own_samples").get() as {
            a: number | null;
            b: number | null;
          })
        : (this.statement(
            "SELECT min(ts_ms) AS a, max(ts_ms) AS b FROM backup_samples WHERE origin = ?",
          ).get(origin) as { a: number | null; b: number | null });
    const rolled = this.statement(
      "SELECT min(minute_ms) AS a, max(minute_ms) AS b FROM rollups WHERE origin = ?",
    ).get(origin) as { a: number | null; b: number | null };
    const firsts = [raw.a, rolled.a].filter((v): v is number => v !== null);
    const lasts = [raw.b, rolled.b].filter((v): v is number => v !== null);
    if (firsts.length === 0) return undefined;
    return { firstMs: Math.min(...firsts), lastMs: Math.max(...lasts) };
  }

  /** Sums per (bucket of `stepMs`, interface) over raw rows and rollups in [fromMs, toMs). */
  query(q: TrafficQuery): TrafficBucket[] {
    if (!(q.stepMs > 0) || !Number.isInteger(q.stepMs)) throw new Error("query: bad stepMs");
    const own = q.origin === this.selfId;
    const ifaceFilter = q.iface === undefined ? "" : " AND iface = ?";
    const raw = own
      ? `SELECT ts_ms AS t, iface, ${counterColumns}, 1 AS n FROM own_samples
         WHERE ts_ms >= ? AND ts_ms < ?${ifaceFilter}`
      : `SELECT ts_ms AS t, iface, ${counterColumns}, 1 AS n FROM backup_samples
         WHERE origin = ? AND ts_ms >= ? AND ts_ms < ?${ifaceFilter}`;
    const rolled = `SELECT minute_ms AS t, iface, ${counterColumns}, samples AS n FROM rollups
      WHERE origin = ? AND minute_ms >= ? AND minute_ms < ?${ifaceFilter}`;
    const sql = `SELECT (t / CAST(? AS INTEGER)) * CAST(? AS INTEGER) AS bucket, iface,
        SUM(rx_bytes) AS rxBytes, SUM(rx_packets) AS rxPackets, SUM(rx_errors) AS rxErrors,
        SUM(rx_drops) AS rxDrops, SUM(tx_bytes) AS txBytes, SUM(tx_packets) AS txPackets,
        SUM(tx_errors) AS txErrors, SUM(tx_drops) AS txDrops, SUM(n) AS samples
      FROM (${raw} UNION ALL ${rolled}) GROUP BY bucket, iface ORDER BY bucket, iface`;
    const params: (string | number)[] = [q.stepMs, q.stepMs];
    const range = (withOrigin: boolean) => {
      if (withOrigin) params.push(q.origin);
      params.push(Math.floor(q.fromMs), Math.ceil(q.toMs));
      if (q.iface !== undefined) params.push(q.iface);
    };
    range(!own);
    range(true);
    const rows = this.statement(sql).all(...params) as (Omit<TrafficBucket, "tsMs"> & {
      bucket: number;
    })[];
    return rows.map(({ bucket, ...rest }) => ({ tsMs: bucket, ...rest }));
  }

  /**
   * Applies retention at wall time `nowMs`: raw rows older than the raw retention (aligned
   * down to a whole minute) are folded into 1-minute rollups and deleted; rollups older than
   * the rollup retention are deleted. Call it every few minutes.
   */
  prune(nowMs: number): { rolledUp: number; rollupsDeleted: number } {
    const cutoff = Math.floor((nowMs - this.rawRetentionMs) / minuteMs) * minuteMs;
    const rollupCutoff = nowMs - this.rollupRetentionMs;
    const fold = (from: string, origin: string, where: string, params: (string | number)[]) => {
      this.statement(
        `INSERT INTO rollups (origin, minute_ms, iface, ${counterColumns}, samples)
         SELECT ?, (ts_ms / ${minuteMs}) * ${minuteMs} AS m, iface, SUM(rx_bytes), SUM(rx_packets),
           SUM(rx_errors), SUM(rx_drops), SUM(tx_bytes), SUM(tx_packets), SUM(tx_errors),
           SUM(tx_drops), COUNT(*)
         FROM ${from} WHERE ${where} GROUP BY m, iface
         ON CONFLICT (origin, minute_ms, iface) DO UPDATE SET
           rx_bytes = rx_bytes + excluded.rx_bytes, rx_packets = rx_packets + excluded.rx_packets,
           rx_errors = rx_errors + excluded.rx_errors, rx_drops = rx_drops + excluded.rx_drops,
           tx_bytes = tx_bytes + excluded.tx_bytes, tx_packets = tx_packets + excluded.tx_packets,
           tx_errors = tx_errors + excluded.tx_errors, tx_drops = tx_drops + excluded.tx_drops,
           samples = samples + excluded.samples`,
      ).run(origin, ...params);
    };
    return this.transaction(() => {
      fold("own_samples", this.selfId, "ts_ms < ?", [cutoff]);
      const own = this.statement("DELETE FROM own_samples WHERE ts_ms < ?").run(cutoff);
      let rolledUp = Number(own.changes);
      for (const origin of this.replicatedOrigins()) {
        fold("backup_samples", origin, "origin = ? AND ts_ms < ?", [origin, cutoff]);
      }
      const backup = this.statement("DELETE FROM backup_samples WHERE ts_ms < ?").run(cutoff);
      rolledUp += Number(backup.changes);
      const old = this.statement("DELETE FROM rollups WHERE minute_ms < ?").run(rollupCutoff);
      return { rolledUp, rollupsDeleted: Number(old.changes) };
    });
  }
}
