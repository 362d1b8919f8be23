/**
 * Why the control plane stalled: what the kernel says the thread did over the window that
 * held the stall. Linux keeps, per thread, the time it ran and the time it waited on a run
 * queue (`/proc/thread-self/schedstat`), and machine-wide the time spent in softirqs and
 * stolen by the hypervisor (`/proc/stat`). A stall whose time the thread spent waiting for
 * a CPU is other work at its priority or above; one it spent running is its own work; one
 * in neither was the thread blocked (a write, a page-in) or the whole machine stopped
 * (steal, a paused VM: then the thread's clock saw the gap but no accounting did).
 *
 * Sampled at most every `everyMs` on the control plane's normal wakes (one `pread` of each
 * file on a descriptor kept open, no allocation beyond the string) and once more when a
 * stall is logged: the fields of the stall log line cover the window from the sample before
 * it.
 */
import { openSync, readSync } from "node:fs";

export interface SchedSample {
  readonly atMs: number;
  /** This thread: time on a CPU and time runnable but waiting for one (ns). */
  readonly runNs: number;
  readonly waitNs: number;
  /** Machine-wide, all CPUs (ms): softirq time and time stolen by the hypervisor. */
  readonly softirqMs: number;
  readonly stealMs: number;
}

/** What the window held, for the stall's log line (ms, rounded). */
export interface SchedExplanation {
  readonly windowMs: number;
  readonly ranMs: number;
  readonly waitedForCpuMs: number;
  /** Neither running nor runnable: blocked in the kernel, or the machine stopped. */
  readonly offCpuMs: number;
  readonly machineSoftirqMs: number;
  readonly machineStealMs: number;
}

/** Kernel clock ticks per second of `/proc/stat` (USER_HZ): 100 on every Linux ABI. */
const userHz = 100;

export function parseSchedstat(text: string): { runNs: number; waitNs: number } | undefined {
  const [run, wait] = text.trim().split(/\s+/).map(Number);
  if (run === undefined || wait === undefined || !Number.isFinite(run) || !Number.isFinite(wait))
    return undefined;
  return { runNs: run, waitNs: wait };
}

/** The `cpu` line of `/proc/stat`: softirq (7th value) and steal (8th), in ms. */
export function parseProcStat(text: string): { softirqMs: number; stealMs: number } | undefined {
  const line = text.slice(0, text.indexOf("\n"));
  const fields = line.trim().split(/\s+/);
  if (fields[0] !== "cpu" || fields.length < 9) return undefined;
  const softirq = Number(fields[7]);
  const steal = Number(fields[8]);
  if (!Number.isFinite(softirq) || !Number.isFinite(steal)) return undefined;
  return { softirqMs: (softirq * 1000) / userHz, stealMs: (steal * 1000) / userHz };
}

export function explain(before: SchedSample, after: SchedSample): SchedExplanation {
  const windowMs = after.atMs - before.atMs;
  const ranMs = (after.runNs - before.runNs) / 1e6;
  const waitedForCpuMs = (after.waitNs - before.waitNs) / 1e6;
  return {
    windowMs: Math.round(windowMs),
    ranMs: Math.round(ranMs),
    waitedForCpuMs: Math.round(waitedForCpuMs),
    offCpuMs: Math.max(0, Math.round(windowMs - ranMs - waitedForCpuMs)),
    machineSoftirqMs: Math.round(after.softirqMs - before.softirqMs),
    machineStealMs: Math.round(after.stealMs - before.stealMs),
  };
}

/**
 * Reads procfs files through descriptors kept open: a `pread` from offset 0 makes the kernel
 * generate the file again, without the open, stat and close of a `readFileSync` and its
 * buffers five times a second. The first 4 KiB only: `/proc/stat` puts the line read here
 * first, and its per-interrupt lines after it can be long.
 */
export function procReader(): (path: string) => string {
  const descriptors = new Map<string, number>();
  const buffer = Buffer.allocUnsafe(4096);
  return (path) => {
    let fd = descriptors.get(path);
    if (fd === undefined) {
      fd = openSync(path, "r");
      descriptors.set(path, fd);
    }
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.toString("latin1", 0, length);
  };
}

export class SchedProbe {
  readonly #everyMs: number;
  readonly #read: (path: string) => string;
  #last: SchedSample | undefined;
  /** False once a read failed (no procfs, no schedstats): the probe then stays silent. */
  #works = true;

  constructor(everyMs = 200, read: (path: string) => string = procReader()) {
    this.#everyMs = everyMs;
    this.#read = read;
  }

  /** On a normal wake: a new sample when the last is `everyMs` old. */
  tick(nowMs: number): void {
    if (!this.#works) return;
    if (this.#last !== undefined && nowMs - this.#last.atMs < this.#everyMs) return;
    this.#last = this.#sample(nowMs);
  }

  /** On a stall: what the window since the last sample held, then a new sample. */
  explain(nowMs: number): SchedExplanation | undefined {
    if (!this.#works) return undefined;
    const before = this.#last;
    const now = this.#sample(nowMs);
    this.#last = now;
    return before && now ? explain(before, now) : undefined;
  }

  #sample(atMs: number): SchedSample | undefined {
    try {
      const thread = parseSchedstat(this.#read("/proc/thread-self/schedstat"));
      const machine = parseProcStat(this.#read("/proc/stat"));
      if (thread && machine) return { atMs, ...thread, ...machine };
    } catch {
      // fall through: no procfs here
    }
    this.#works = false;
    return undefined;
  }
}
