/**
 * CPU and memory of a process tree, from /proc. CPU: at the start and at the end of a window,
 * every process of the tree (the root and all its descendants, whatever their process group)
 * is read with utime + stime + cutime + cstime; the tree's CPU time over the window is the sum
 * at the end minus the sum at the start. Counting the children's times (cutime, cstime) makes
 * short-lived children that were born and reaped inside the window count, and a child alive at
 * the start that was reaped later counts only for its time inside the window (its total moves
 * into its parent's cutime, its start value is subtracted). Memory: VmRSS (/proc/PID/status)
 * and Pss (/proc/PID/smaps_rollup, shared pages divided among their users) summed over the
 * tree, sampled during the window.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { parentMap, processTree, statFields } from "./owned.ts";

/** Clock ticks per second of /proc/PID/stat times (sysconf(_SC_CLK_TCK), 100 on Linux). */
const clockTicks = (() => {
  try {
    const value = Number(execFileSync("getconf", ["CLK_TCK"], { timeout: 5000 }).toString());
    return value > 0 ? value : 100;
  } catch {
    return 100;
  }
})();

export interface TreeTimes {
  readonly at: number;
  /** CPU seconds of the tree's processes including their reaped children. */
  readonly cpuSeconds: number;
  readonly processes: number;
  readonly names: string[];
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "?";
  }
}

export function treeTimes(root: number, parents = parentMap()): TreeTimes {
  const tree = processTree(root, parents);
  let ticks = 0;
  for (const pid of tree) {
    const f = statFields(pid);
    if (!f) continue;
    ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return {
    at: performance.now(),
    cpuSeconds: ticks / clockTicks,
    processes: tree.length,
    names: tree.map(comm),
  };
}

function kbField(text: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

export interface TreeMemory {
  readonly rssKb: number;
  readonly pssKb: number;
}

export function treeMemory(root: number, parents = parentMap()): TreeMemory {
  let rssKb = 0;
  let pssKb = 0;
  for (const pid of processTree(root, parents)) {
    try {
      rssKb += kbField(readFileSync(`/proc/${pid}/status`, "utf8"), "VmRSS");
      pssKb += kbField(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"), "Pss");
    } catch {
      // Exited in between.
    }
  }
  return { rssKb, pssKb };
}

/** CPU of the tree between two readings, as a percentage of one core. */
export function cpuPercent(start: TreeTimes, end: TreeTimes): number {
  const wall = (end.at - start.at) / 1000;
  return wall > 0 ? ((end.cpuSeconds - start.cpuSeconds) / wall) * 100 : 0;
}
