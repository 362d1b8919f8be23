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
  /** CPU seconds per role of process in the tree (see `processRole`), reaped children included. */
  readonly byRole: ReadonlyMap<string, number>;
}

/**
 * What a process of a node's tree is, for the per-role split: the C supervisor, a Node.js
 * process by its entry module (`services-worker` for the services process, otherwise the
 * control plane), or the short-lived command it is (`ip`, `arping`...).
 */
export function processRole(pid: number): string {
  const name = comm(pid);
  if (name.startsWith("floatip-superv")) return "supervisor";
  let args: string[] = [];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return name;
  }
  if (args.some((a) => a.includes("services-worker"))) return "services";
  if (args.some((a) => /floatip|src\/cli|dist\//.test(a))) return "control";
  return name;
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
  const byRole = new Map<string, number>();
  for (const pid of tree) {
    const f = statFields(pid);
    if (!f) continue;
    const own = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    ticks += own;
    const role = processRole(pid);
    byRole.set(role, (byRole.get(role) ?? 0) + own / clockTicks);
  }
  return {
    at: performance.now(),
    cpuSeconds: ticks / clockTicks,
    processes: tree.length,
    names: tree.map(comm),
    byRole,
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

/**
 * CPU per role over the window, % of one core, largest first. A role whose process started
 * inside the window counts from zero; one that ended inside it is in its parent's reaped time.
 */
export function cpuPercentByRole(start: TreeTimes, end: TreeTimes): Array<[string, number]> {
  const wall = (end.at - start.at) / 1000;
  if (wall <= 0) return [];
  return [...end.byRole]
    .map(([role, s]): [string, number] => [
      role,
      ((s - (start.byRole.get(role) ?? 0)) / wall) * 100,
    ])
    .sort((a, b) => b[1] - a[1]);
}
