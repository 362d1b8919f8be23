/**
 * What every benchmark prints first: the machine (CPU model, cores, kernel) and the date, so
 * that figures from different hosts are never compared by accident.
 */
import { readFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly kernel: string;
  readonly node: string;
  readonly date: string;
}

export function machineInfo(): MachineInfo {
  let kernel = release();
  try {
    kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    // os.release() is the same string on Linux; /proc is only the more direct source.
  }
  return {
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    cores: availableParallelism(),
    kernel,
    node: process.version,
    date: new Date().toISOString(),
  };
}

/** Prints the title and the machine block; returns the info for the JSON result. */
export function printHeader(title: string): MachineInfo {
  const info = machineInfo();
  console.log(`# ${title}`);
  console.log(
    `machine: ${info.cpuModel}, ${info.cores} cores, kernel ${info.kernel}, node ${info.node}`,
  );
  console.log(`date:    ${info.date}`);
  console.log("");
  return info;
}

/** Busy share of all CPUs (0..1) over `ms`, from /proc/stat (everything but idle and iowait). */
async function machineBusy(ms: number): Promise<number> {
  const read = () => {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1);
    const values = fields.map(Number);
    const total = values.reduce((a, b) => a + b, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    return { total, idle };
  };
  const a = read();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = read();
  const total = b.total - a.total;
  return total > 0 ? 1 - (b.idle - a.idle) / total : 0;
}

/**
 * Waits until the machine is quiet: a one-second window with at most `maxBusy` of all CPUs
 * busy, at most `limitMs` in all. A namespace's teardown goes on in the kernel after `ip netns
 * del` has returned (a worker cleans the network namespace up under the routing lock), and
 * what the next contender measures in that time is partly the last one's. Returns how long it
 * waited and the last window's busy share; never throws.
 */
export async function waitForQuietMachine(
  maxBusy = 0.1,
  limitMs = 30_000,
): Promise<{ waitedMs: number; busy: number; quiet: boolean }> {
  const start = Date.now();
  let busy = 1;
  for (let i = 0; i < 100 && Date.now() - start < limitMs; i += 1) {
    busy = await machineBusy(1000).catch(() => 0);
    if (busy <= maxBusy) return { waitedMs: Date.now() - start, busy, quiet: true };
  }
  return { waitedMs: Date.now() - start, busy, quiet: false };
}
