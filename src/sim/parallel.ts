/**
 * A swarm spread over worker threads: `floatip sim --seeds 100000 --jobs N`. Seeds are dealt
 * round-robin so every worker gets the same mix of cluster sizes and fault classes; the
 * summaries are merged in seed order, so the result does not depend on the number of jobs.
 */
import { Worker } from "node:worker_threads";
import { siblingModule } from "../adapters/module-path.ts";
import type { ReceiveMode, Timers } from "../config/types.ts";
import type { SwarmSummary } from "./report.ts";
import type { SwarmWorkerData } from "./swarm-worker.ts";

export interface ParallelSwarmOptions {
  readonly seeds: readonly number[];
  readonly timers: Timers;
  readonly nodes?: number;
  readonly jobs: number;
  readonly runtime?: boolean;
  /** Runtime mode: how the agents read datagrams (Simulator `receive`). */
  readonly receive?: ReceiveMode;
  /** Seeds finished so far (called every few seconds). */
  readonly onProgress?: (done: number) => void;
}

export async function runSwarmParallel(options: ParallelSwarmOptions): Promise<SwarmSummary> {
  const jobs = Math.max(1, Math.min(options.jobs, options.seeds.length));
  const shares = Array.from({ length: jobs }, (_, j) =>
    options.seeds.filter((_, i) => i % jobs === j),
  );
  const doneBy = new Array<number>(jobs).fill(0);
  const script = siblingModule(import.meta.url, "swarm-worker");
  const summaries = await Promise.all(
    shares.map(
      (seeds, j) =>
        new Promise<SwarmSummary>((resolve, reject) => {
          const data: SwarmWorkerData = {
            seeds,
            timers: options.timers,
            ...(options.nodes ? { nodes: options.nodes } : {}),
            ...(options.runtime ? { runtime: true } : {}),
            ...(options.receive === "on-tick" ? { receive: "on-tick" as const } : {}),
          };
          const worker = new Worker(script, { workerData: data });
          let summary: SwarmSummary | undefined;
          worker.on(
            "message",
            (message: { type: string; done?: number; summary?: SwarmSummary }) => {
              if (message.type === "progress") {
                doneBy[j] = message.done ?? 0;
                options.onProgress?.(doneBy.reduce((a, b) => a + b, 0));
              } else if (message.type === "done") {
                summary = message.summary;
              }
            },
          );
          worker.on("error", reject);
          worker.on("exit", (code) => {
            if (summary) resolve(summary);
            else
              reject(
                new Error(`swarm worker ${j + 1} exited with code ${code} before its summary`),
              );
          });
        }),
    ),
  );
  const bySeed = <T extends { seed: number }>(a: T, b: T) => a.seed - b.seed;
  return {
    runs: summaries.reduce((n, s) => n + s.runs, 0),
    failed: summaries.flatMap((s) => s.failed).sort(bySeed),
    ownerFailoverMs: summaries.flatMap((s) => s.ownerFailoverMs),
    coordinatorFailoverMs: summaries.flatMap((s) => s.coordinatorFailoverMs),
  };
}
