/**
 * How late the control plane's own event loop runs: the lateness of its wake timer, the one
 * timer that always runs (at least once per heartbeat interval). A wake later than the
 * stall threshold is a stall (corosync's "process pause detected"): the runtime hands the
 * core a `stall` input before anything else. Cheap enough to run on every wake: no extra
 * timer, no allocation.
 *
 * Read by `GET /metrics` (histogram `floatip_loop_lag_seconds`, counters
 * `floatip_stalls_total` and `floatip_datagrams_withheld_total`) and `floatip status --json`
 * (`loop`).
 */

/** Upper bounds of the histogram buckets, in milliseconds (the last is +Inf). */
export const lagBucketsMs = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000] as const;

export interface LoopLagSnapshot {
  /** Cumulative counts per bucket of `lagBucketsMs`, then +Inf (Prometheus style). */
  readonly buckets: readonly number[];
  readonly count: number;
  readonly sumMs: number;
  readonly maxMs: number;
  readonly stalls: number;
  readonly lastStallMs: number | undefined;
  /** Lateness at or above which a wake counts as a stall. */
  readonly stallThresholdMs: number;
  /** Datagrams composed before a stall and withheld after it (see `ControlLoop`). */
  readonly datagramsWithheld: number;
}

export class LoopMonitor {
  readonly stallThresholdMs: number;
  readonly #counts = new Array<number>(lagBucketsMs.length + 1).fill(0);
  #count = 0;
  #sumMs = 0;
  #maxMs = 0;
  #stalls = 0;
  #lastStallMs: number | undefined;
  #withheld = 0;

  /** The stall threshold: half a heartbeat interval, at least 10 ms. */
  constructor(heartbeatIntervalMs: number) {
    this.stallThresholdMs = Math.max(10, Math.floor(heartbeatIntervalMs / 2));
  }

  /** Records one wake `lateMs` late; true when that is a stall. */
  record(lateMs: number): boolean {
    const late = Math.max(0, lateMs);
    let bucket = lagBucketsMs.findIndex((bound) => late <= bound);
    if (bucket < 0) bucket = lagBucketsMs.length;
    this.#counts[bucket]! += 1;
    this.#count += 1;
    this.#sumMs += late;
    if (late > this.#maxMs) this.#maxMs = late;
    if (late < this.stallThresholdMs) return false;
    this.#stalls += 1;
    this.#lastStallMs = late;
    return true;
  }

  /** One datagram withheld because the process stopped after composing it. */
  recordWithheld(): void {
    this.#withheld += 1;
  }

  snapshot(): LoopLagSnapshot {
    let running = 0;
    const buckets = this.#counts.map((n) => (running += n));
    return {
      buckets,
      count: this.#count,
      sumMs: this.#sumMs,
      maxMs: this.#maxMs,
      stalls: this.#stalls,
      lastStallMs: this.#lastStallMs,
      stallThresholdMs: this.stallThresholdMs,
      datagramsWithheld: this.#withheld,
    };
  }
}
