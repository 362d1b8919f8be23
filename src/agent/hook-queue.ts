/**
 * The notify hook's queue: one call at a time, bounded, and coalescing bursts. Hooks report
 * state ("this node is coordinator", "this VIP is held here"), so while a call runs, a newer
 * call about the same thing (the same key: the role, one VIP, one peer) replaces the one still
 * waiting: the script sees the latest state, not every step of a flap (a minute of election
 * churn once queued 411 role-changed calls). Calls about different things keep their order;
 * beyond `limit` waiting calls the oldest is dropped. What was coalesced or dropped is counted
 * and reported, at most once per `reportEveryMs`, so nothing vanishes silently.
 *
 * No I/O here: `run` performs a call (the runtime spawns the command under its timeout) and
 * `report` says what was skipped (the runtime logs it).
 */

export interface HookCall {
  /** What the call is about: a newer waiting call with the same key replaces it. */
  readonly key: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
}

export interface HookQueueCounts {
  /** Calls started. */
  readonly run: number;
  /** Waiting calls replaced by a newer call about the same thing. */
  readonly coalesced: number;
  /** Waiting calls dropped because `limit` calls were already waiting. */
  readonly dropped: number;
}

export interface HookSkipReport {
  readonly coalesced: number;
  readonly dropped: number;
  /** The first skipped calls (at most 10), as `args` joined, e.g. "vip-acquired 198.18.0.1". */
  readonly examples: readonly string[];
}

export interface HookQueueOptions {
  readonly run: (call: HookCall) => Promise<void>;
  /** Called with what was skipped since the last report: counts, and the first calls' args. */
  readonly report: (skipped: HookSkipReport) => void;
  /** Most calls waiting at once (default 64). */
  readonly limit?: number;
  readonly reportEveryMs?: number;
  readonly nowMs?: () => number;
}

export class HookQueue {
  readonly #options: HookQueueOptions;
  readonly #limit: number;
  /** Waiting calls by key, in the order they (last) arrived. */
  readonly #waiting = new Map<string, HookCall>();
  #running: Promise<void> | undefined;
  #counts = { run: 0, coalesced: 0, dropped: 0 };
  #unreported = { coalesced: 0, dropped: 0, examples: [] as string[] };
  #lastReportMs = Number.NEGATIVE_INFINITY;
  #reportTimer: NodeJS.Timeout | undefined;

  constructor(options: HookQueueOptions) {
    this.#options = options;
    this.#limit = Math.max(1, options.limit ?? 64);
  }

  get counts(): HookQueueCounts {
    return { ...this.#counts };
  }

  /** Calls waiting (not the one running). */
  get waiting(): number {
    return this.#waiting.size;
  }

  push(call: HookCall): void {
    const previous = this.#waiting.get(call.key);
    if (previous) {
      this.#waiting.delete(call.key); // the newer call takes the later place
      this.#counts.coalesced += 1;
      this.#note("coalesced", previous);
    } else if (this.#waiting.size >= this.#limit) {
      const [oldestKey, oldest] = this.#waiting.entries().next().value as [string, HookCall];
      this.#waiting.delete(oldestKey);
      this.#counts.dropped += 1;
      this.#note("dropped", oldest);
    }
    this.#waiting.set(call.key, call);
    if (!this.#running) this.#running = this.#drain();
  }

  /** Resolves once every waiting call has run (shutdown), and reports what was skipped. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
    this.#flushReport();
  }

  async #drain(): Promise<void> {
    try {
      for (;;) {
        const next = this.#waiting.entries().next();
        if (next.done) return;
        const [key, call] = next.value;
        this.#waiting.delete(key);
        this.#counts.run += 1;
        await this.#options.run(call);
      }
    } finally {
      this.#running = undefined;
    }
  }

  #note(kind: "coalesced" | "dropped", call: HookCall): void {
    this.#unreported[kind] += 1;
    if (this.#unreported.examples.length < 10) this.#unreported.examples.push(call.args.join(" "));
    const now = this.#options.nowMs?.() ?? Date.now();
    const every = this.#options.reportEveryMs ?? 1000;
    if (now - this.#lastReportMs >= every) {
      this.#flushReport();
      return;
    }
    this.#reportTimer ??= setTimeout(() => this.#flushReport(), every - (now - this.#lastReportMs));
    this.#reportTimer.unref?.();
  }

  #flushReport(): void {
    clearTimeout(this.#reportTimer);
    this.#reportTimer = undefined;
    const skipped = this.#unreported;
    if (skipped.coalesced === 0 && skipped.dropped === 0) return;
    this.#unreported = { coalesced: 0, dropped: 0, examples: [] };
    this.#lastReportMs = this.#options.nowMs?.() ?? Date.now();
    this.#options.report(skipped);
  }
}

/**
 * What a hook call is about, for coalescing: the role, one VIP, one peer; a capability's event
 * about its argument. Acquired, released and conflict of one VIP share a key: the newest state
 * of that VIP wins.
 */
export function hookKey(eventType: string, argument: string): string {
  if (eventType === "role-changed") return "role";
  if (eventType === "vip-acquired" || eventType === "vip-released" || eventType === "vip-conflict")
    return `vip:${argument}`;
  if (eventType === "member-failed" || eventType === "member-recovered")
    return `member:${argument}`;
  return `${eventType}:${argument}`;
}
