/**
 * Processes a benchmark starts outside a topology (load generators, a second checkout's test
 * suite): each in its own process group, remembered until it exits, and ended by its PID (its
 * group) on `stop()`, on process exit, and on SIGINT/SIGTERM, so that an interrupted or failed
 * run leaves nothing behind. Synchronous cleanups (temporary directories) can be registered too.
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const owned = new Set<ChildProcess>();
const cleanups = new Set<() => void>();
const beforeKill = new Set<() => void>();
let installed = false;

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

function exitCleanup(): void {
  for (const stop of [...beforeKill].reverse()) {
    try {
      stop();
    } catch {
      // Best effort: the process is exiting.
    }
  }
  beforeKill.clear();
  for (const child of owned) if (child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
  owned.clear();
  for (const cleanup of [...cleanups].reverse()) {
    try {
      cleanup();
    } catch {
      // Best effort: the process is exiting.
    }
  }
  cleanups.clear();
}

/** Installs the exit and signal handlers once (the topology module installs its own too). */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on("exit", exitCleanup);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: cleaning up`);
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  }
}

/** Registers a synchronous cleanup that runs at exit unless removed first. */
export function atExit(cleanup: () => void): () => void {
  installCleanup();
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/**
 * Registers a synchronous graceful stop that runs at exit before the owned processes get
 * SIGKILL (e.g. SIGTERM to test processes so that they remove their namespaces first).
 */
export function beforeExitKill(stop: () => void): () => void {
  installCleanup();
  beforeKill.add(stop);
  return () => beforeKill.delete(stop);
}

export { sleepSync } from "../../src/lab/topology.ts";

/** Spawns `file args` in a new process group that is killed at exit if still running. */
export function spawnOwned(
  file: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  installCleanup();
  const child = spawn(file, args, { stdio: "ignore", ...options, detached: true });
  owned.add(child);
  child.once("exit", () => owned.delete(child));
  child.once("error", () => owned.delete(child));
  return child;
}

/** Resolves when the child has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", () => resolve());
  });
}

/**
 * Ends a child started with `spawnOwned`: `signal` to its group, SIGKILL to the group after
 * `graceMs` (and in any case afterwards, for members that outlived the leader).
 */
export async function stopOwned(
  child: ChildProcess,
  signal: NodeJS.Signals = "SIGTERM",
  graceMs = 2000,
): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  if (child.exitCode === null && child.signalCode === null) signalGroup(pid, signal);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    exited(child),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    }),
  ]);
  clearTimeout(timer);
  signalGroup(pid, "SIGKILL");
  await exited(child);
  owned.delete(child);
}

/** PID and start time (clock ticks since boot) of a process; the pair never repeats. */
export interface ProcessId {
  readonly pid: number;
  readonly startTime: number;
}

/** Fields of /proc/PID/stat after the command name (which may contain spaces). */
export function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text
      .slice(text.lastIndexOf(")") + 2)
      .trim()
      .split(" ");
  } catch {
    return undefined;
  }
}

/** Every process's parent, read from /proc in one pass. */
export function parentMap(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (fields) parents.set(Number(entry), Number(fields[1]));
  }
  return parents;
}

/** `root` and all its descendants, whatever their process group. */
export function processTree(root: number, parents = parentMap()): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parents) {
    const list = children.get(ppid) ?? [];
    list.push(pid);
    children.set(ppid, list);
  }
  if (!parents.has(root)) return [];
  const tree: number[] = [];
  const queue = [root];
  while (queue.length > 0 && tree.length < 100_000) {
    const pid = queue.shift()!;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** The tree with start times, so that a later kill cannot hit a reused PID. */
export function snapshotTree(root: number): ProcessId[] {
  return processTree(root).flatMap((pid) => {
    const fields = statFields(pid);
    return fields ? [{ pid, startTime: Number(fields[19]) }] : [];
  });
}

/** Whether the process still runs (same PID and start time, not a zombie). */
export function isAlive(p: ProcessId): boolean {
  const fields = statFields(p.pid);
  return fields !== undefined && Number(fields[19]) === p.startTime && fields[0] !== "Z";
}

/** SIGKILL to each process of a snapshot that is still the same process; returns how many. */
export function killSnapshot(snapshot: readonly ProcessId[]): number {
  let killed = 0;
  for (const p of snapshot) {
    if (!isAlive(p)) continue;
    try {
      process.kill(p.pid, "SIGKILL");
      killed += 1;
    } catch {
      // Gone in between.
    }
  }
  return killed;
}
