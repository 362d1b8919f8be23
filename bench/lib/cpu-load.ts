/**
 * Saturates every core with busy-loop child processes. Each loop ends by itself after
 * `maxSeconds` (so a crashed benchmark cannot leave the machine pinned), and `stop()` ends
 * them earlier, each by its own PID.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { availableParallelism } from "node:os";

export interface CpuLoad {
  readonly pids: readonly number[];
  stop(): Promise<void>;
}

export function startCpuLoad(maxSeconds: number, workers = availableParallelism()): CpuLoad {
  const loop = `const end = Date.now() + ${Math.ceil(maxSeconds * 1000)}; let x = 0; while (Date.now() < end) x += Math.sqrt(x + 1);`;
  const children: ChildProcess[] = [];
  for (let i = 0; i < workers; i += 1) {
    children.push(spawn(process.execPath, ["-e", loop], { stdio: "ignore" }));
  }
  const stopOne = (child: ChildProcess) =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once("exit", () => resolve());
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    });
  process.once("exit", () => {
    for (const child of children) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    }
  });
  return {
    pids: children.flatMap((c) => (c.pid === undefined ? [] : [c.pid])),
    stop: async () => {
      await Promise.all(children.map(stopOne));
    },
  };
}
