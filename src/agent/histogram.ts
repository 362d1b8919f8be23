/**
 * A Prometheus-style histogram of durations: cumulative bucket counts, count and sum. Used for
 * the failover phases (`floatip_failover_phase_seconds`); cheap enough to record on every
 * acquisition (no allocation).
 */
import { type FailoverPhaseName, failoverPhaseCodes } from "../core/types.ts";

/** Upper bounds of the failover phase buckets, in milliseconds (the last is +Inf). */
export const phaseBucketsMs = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000] as const;

export interface HistogramSnapshot {
  /** Upper bounds in ms; `buckets` has one more entry (+Inf). */
  readonly boundsMs: readonly number[];
  /** Cumulative counts per bound, then +Inf. */
  readonly buckets: readonly number[];
  readonly count: number;
  readonly sumMs: number;
}

export class Histogram {
  readonly #boundsMs: readonly number[];
  readonly #counts: number[];
  #count = 0;
  #sumMs = 0;

  constructor(boundsMs: readonly number[] = phaseBucketsMs) {
    this.#boundsMs = boundsMs;
    this.#counts = new Array<number>(boundsMs.length + 1).fill(0);
  }

  record(ms: number): void {
    const value = Math.max(0, ms);
    let bucket = this.#boundsMs.findIndex((bound) => value <= bound);
    if (bucket < 0) bucket = this.#boundsMs.length;
    this.#counts[bucket]! += 1;
    this.#count += 1;
    this.#sumMs += value;
  }

  snapshot(): HistogramSnapshot {
    let running = 0;
    return {
      boundsMs: this.#boundsMs,
      buckets: this.#counts.map((n) => (running += n)),
      count: this.#count,
      sumMs: this.#sumMs,
    };
  }
}

/** The phases of a failover, in order: three on the coordinator, three on the new owner. */
export const failoverPhases = failoverPhaseCodes;
export type FailoverPhase = FailoverPhaseName;
