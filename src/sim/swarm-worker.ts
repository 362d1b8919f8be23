/**
 * One worker thread of a parallel swarm (src/sim/parallel.ts): runs its share of the seeds
 * and posts `{ type: "progress", done }` every few seconds and `{ type: "done", summary }` at
 * the end. Only failed runs travel back whole; a passing run is summarised by its failover.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { ReceiveMode, Timers } from "../config/types.ts";
import { runSwarm } from "./report.ts";

export interface SwarmWorkerData {
  readonly seeds: readonly number[];
  readonly timers: Timers;
  readonly nodes?: number;
  readonly runtime?: boolean;
  readonly receive?: ReceiveMode;
}

const data = workerData as SwarmWorkerData;
let done = 0;
let reportedAt = performance.now();
const summary = runSwarm({
  seeds: data.seeds,
  timers: data.timers,
  ...(data.nodes ? { nodes: data.nodes } : {}),
  ...(data.runtime ? { runtime: true } : {}),
  ...(data.receive === "on-tick" ? { receive: "on-tick" as const } : {}),
  onResult: () => {
    done += 1;
    if (performance.now() - reportedAt >= 2000) {
      reportedAt = performance.now();
      parentPort?.postMessage({ type: "progress", done });
    }
  },
});
parentPort?.postMessage({ type: "done", summary });
