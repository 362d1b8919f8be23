/**
 * The S3 collection module: samples `/proc/net/dev` of the network namespace the process runs
 * in, every `intervalMs`, and turns the kernel's cumulative counters into per-interval deltas.
 *
 * Counters are tracked per ifindex (from /sys/class/net/IFACE/ifindex), so a renamed interface
 * keeps its history and a deleted-and-recreated one (new ifindex) starts a fresh baseline
 * instead of producing a huge negative or wrapped delta. A counter that went down on the same
 * ifindex wrapped: a previous value below 2^32 means a 32-bit counter (old drivers), else 64-bit.
 *
 * `parseProcNetDev` and `computeDeltas` are pure; `Collector` is the timer shell.
 */
import { readFile } from "node:fs/promises";

export interface InterfaceSample {
  /** Wall-clock time of the reading (ms since the epoch). */
  readonly tsMs: number;
  readonly iface: string;
  readonly ifindex: number;
  /** Time since the previous reading of this interface. */
  readonly intervalMs: number;
  readonly rxBytes: number;
  readonly rxPackets: number;
  readonly rxErrors: number;
  readonly rxDrops: number;
  readonly txBytes: number;
  readonly txPackets: number;
  readonly txErrors: number;
  readonly txDrops: number;
}

const counterNames = [
  "rxBytes",
  "rxPackets",
  "rxErrors",
  "rxDrops",
  "txBytes",
  "txPackets",
  "txErrors",
  "txDrops",
] as const;
type CounterName = (typeof counterNames)[number];

export type Counters = Readonly<Record<CounterName, bigint>>;

export interface InterfaceReading {
  readonly iface: string;
  readonly counters: Counters;
}

/** Parses the text of /proc/net/dev; lines that do not have 16 numeric fields are skipped. */
export function parseProcNetDev(text: string): InterfaceReading[] {
  const out: InterfaceReading[] = [];
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const iface = line.slice(0, colon).trim();
    const fields = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/);
    if (iface === "" || fields.length < 16 || !fields.every((f) => /^\d+$/.test(f))) continue;
    const n = fields.map((f) => BigInt(f));
    // Receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets errs drop …
    out.push({
      iface,
      counters: {
        rxBytes: n[0]!,
        rxPackets: n[1]!,
        rxErrors: n[2]!,
        rxDrops: n[3]!,
        txBytes: n[8]!,
        txPackets: n[9]!,
        txErrors: n[10]!,
        txDrops: n[11]!,
      },
    });
  }
  return out;
}

const two32 = 1n << 32n;
const two64 = 1n << 64n;

/** Delta of one cumulative counter, treating a decrease as a wrap of a 32- or 64-bit counter. */
export function counterDelta(previous: bigint, current: bigint): bigint {
  if (current >= previous) return current - previous;
  return previous < two32 ? current + two32 - previous : current + two64 - previous;
}

export interface Baseline {
  readonly iface: string;
  readonly counters: Counters;
  readonly tsMs: number;
}

/** Baselines keyed by ifindex (the key that survives renames). */
export type Baselines = ReadonlyMap<number, Baseline>;

/**
 * One collection round: readings (with their ifindex) at `tsMs` against the previous
 * baselines. Interfaces seen for the first time only set a baseline; interfaces that are gone
 * drop out of the baselines.
 */
export function computeDeltas(
  previous: Baselines,
  readings: readonly (InterfaceReading & { readonly ifindex: number })[],
  tsMs: number,
): { samples: InterfaceSample[]; baselines: Map<number, Baseline> } {
  const samples: InterfaceSample[] = [];
  const baselines = new Map<number, Baseline>();
  for (const r of readings) {
    baselines.set(r.ifindex, { iface: r.iface, counters: r.counters, tsMs });
    const before = previous.get(r.ifindex);
    if (!before) continue;
    const delta = {} as Record<CounterName, number>;
    for (const name of counterNames) {
      delta[name] = Number(counterDelta(before.counters[name], r.counters[name]));
    }
    samples.push({
      tsMs,
      iface: r.iface,
      ifindex: r.ifindex,
      intervalMs: tsMs - before.tsMs,
      ...delta,
    });
  }
  return { samples, baselines };
}

export interface CollectorOptions {
  readonly intervalMs?: number;
  /** Paths, replaceable for tests of the shell. */
  readonly procNetDevPath?: string;
  readonly sysClassNetPath?: string;
  readonly onSamples: (samples: InterfaceSample[]) => void;
  readonly onError?: (error: unknown) => void;
}

/** Reads the counters every `intervalMs` (default 1 s) and hands over the deltas. */
export class Collector {
  private baselines: Map<number, Baseline> = new Map();
  private timer: NodeJS.Timeout | undefined;
  private readonly options: CollectorOptions;
  private busy = false;

  constructor(options: CollectorOptions) {
    this.options = options;
  }

  start(): void {
    if (this.timer) return;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs ?? 1000);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round; exported for the benchmark. Overlapping rounds are skipped, not queued. */
  async tick(): Promise<InterfaceSample[]> {
    if (this.busy) return [];
    this.busy = true;
    try {
      const text = await readFile(this.options.procNetDevPath ?? "/proc/net/dev", "utf8");
      const tsMs = Date.now();
      const readings = await Promise.all(
        parseProcNetDev(text).map(async (r) => ({ ...r, ifindex: await this.ifindex(r.iface) })),
      );
      const known = readings.filter((r) => r.ifindex > 0);
      const { samples, baselines } = computeDeltas(this.baselines, known, tsMs);
      this.baselines = baselines;
      if (samples.length > 0) this.options.onSamples(samples);
      return samples;
    } catch (error) {
      this.options.onError?.(error);
      return [];
    } finally {
      this.busy = false;
    }
  }

  private async ifindex(iface: string): Promise<number> {
    const base = this.options.sysClassNetPath ?? "/sys/class/net";
    try {
      return Number.parseInt(await readFile(`${base}/${iface}/ifindex`, "utf8"), 10) || 0;
    } catch {
      // Gone between the two reads: skipped this round, new baseline next round.
      return 0;
    }
  }
}
