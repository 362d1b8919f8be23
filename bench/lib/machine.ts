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
