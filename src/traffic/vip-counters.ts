/**
 * Per-VIP counters (S3): keeps the nftables table `inet floatip_traffic` in step with the VIPs
 * this node holds (the view's `held` set) and, every `intervalMs`, turns the named counters
 * into samples stored beside the interface samples, under the pseudo-interface `vip:ADDRESS`
 * (rx = to the VIP, tx = from the VIP). They travel on the backup channel, are rolled up and
 * queried exactly like interface samples (`--iface vip:198.18.0.100`).
 *
 * Every nft call runs through `run()` under a timeout, one at a time on a queue: a change of
 * the held set first reads the counters one last time (so the interval's bytes are kept),
 * then replaces the table (counters restart at zero) and resets the baselines to zero.
 * When nft is missing or fails to apply, the error is reported and per-VIP counting is
 * retried on the next change of the held set; interface counting is unaffected.
 */
import { run } from "../adapters/exec.ts";
import {
  listCountersArgs,
  parseNftCounters,
  renderVipCounterRuleset,
  type VipCounterReading,
  vipCounterDeltas,
  vipCounterTable,
  vipIfacePrefix,
} from "../core/traffic/vip-counters.ts";
import type { ClusterView } from "../ports/cluster-view.ts";
import type { InterfaceSample } from "./collector.ts";

export interface VipCountersOptions {
  readonly view: ClusterView;
  readonly intervalMs: number;
  readonly onSamples: (samples: InterfaceSample[]) => void;
  readonly onError: (what: string, error: unknown) => void;
  /** Deadline of each nft call (default 3 s). */
  readonly nftTimeoutMs?: number;
}

export class VipCounters {
  readonly #options: VipCountersOptions;
  #queue: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  /** The VIP set the table was last built for (sorted, joined); undefined = not built. */
  #applied: string | undefined;
  #baselines = new Map<string, VipCounterReading>();
  #baselineAtMs = 0;
  #stopped = false;
  /** Rounds completed (for status). */
  rounds = 0;

  constructor(options: VipCountersOptions) {
    this.#options = options;
  }

  get vips(): string[] {
    return this.#applied ? this.#applied.split(",").filter((v) => v !== "") : [];
  }

  start(): void {
    this.#unsubscribe = this.#options.view.subscribe((view) => this.#wantSet([...view.held]));
    this.#wantSet([...this.#options.view.current().held]);
    this.#timer = setInterval(() => {
      // Skips a round rather than queueing many behind a slow nft.
      if (this.#applied !== undefined) this.#enqueue(() => this.#sample());
    }, this.#options.intervalMs);
  }

  /** Stops sampling and removes the table (waits for calls in flight). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#unsubscribe?.();
    await this.#queue;
    if (this.#applied === undefined) return;
    await run("nft", ["delete", "table", "inet", vipCounterTable], {
      timeoutMs: this.#timeoutMs,
    }).catch((error) => this.#options.onError("nft-delete-failed", error));
  }

  get #timeoutMs(): number {
    return this.#options.nftTimeoutMs ?? 3000;
  }

  #enqueue(action: () => Promise<void>): void {
    this.#queue = this.#queue.then(async () => {
      if (!this.#stopped) await action();
    });
  }

  #wantSet(held: readonly string[]): void {
    const key = [...new Set(held)].sort().join(",");
    this.#enqueue(async () => {
      if (key === this.#applied) return;
      if (this.#applied !== undefined) await this.#sample();
      try {
        await run("nft", ["-f", "-"], {
          timeoutMs: this.#timeoutMs,
          input: renderVipCounterRuleset(key === "" ? [] : key.split(",")),
        });
        this.#applied = key;
        this.#baselines = new Map();
        this.#baselineAtMs = Date.now();
      } catch (error) {
        this.#applied = undefined;
        this.#options.onError("nft-apply-failed", error);
      }
    });
  }

  async #sample(): Promise<void> {
    let readings: VipCounterReading[];
    try {
      const result = await run("nft", listCountersArgs, { timeoutMs: this.#timeoutMs });
      readings = parseNftCounters(result.stdout);
    } catch (error) {
      this.#options.onError("nft-read-failed", error);
      return;
    }
    const tsMs = Date.now();
    const intervalMs = Math.max(0, tsMs - this.#baselineAtMs);
    const deltas = vipCounterDeltas(this.#baselines, readings);
    this.#baselines = new Map(readings.map((r) => [r.vip, r]));
    this.#baselineAtMs = tsMs;
    this.rounds += 1;
    if (deltas.length === 0) return;
    this.#options.onSamples(
      deltas.map((d) => ({
        tsMs,
        iface: `${vipIfacePrefix}${d.vip}`,
        ifindex: 0,
        intervalMs,
        rxBytes: d.rxBytes,
        rxPackets: d.rxPackets,
        rxErrors: 0,
        rxDrops: 0,
        txBytes: d.txBytes,
        txPackets: d.txPackets,
        txErrors: 0,
        txDrops: 0,
      })),
    );
  }
}
