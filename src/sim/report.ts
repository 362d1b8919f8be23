/**
 * Runs a swarm of seeds and summarises it: the line `sim: <runs> runs, <violations>
 * violations` and the failover-latency distribution in virtual time. Shared by the CLI
 * (`floatip sim`, `npm run sim`) and the test suite.
 */
import type { ReceiveMode, Timers } from "../config/types.ts";
import type { HeartbeatFanout } from "../core/types.ts";
import { percentile, runSwarmSeed, type SwarmRunResult } from "./swarm.ts";

export interface SwarmSummary {
  readonly runs: number;
  readonly failed: readonly SwarmRunResult[];
  readonly ownerFailoverMs: readonly number[];
  readonly coordinatorFailoverMs: readonly number[];
}

export function runSwarm(options: {
  seeds: readonly number[];
  timers: Timers;
  nodes?: number;
  faultPhaseMs?: number;
  /** Through the agent's control loop (the simulator's runtime mode). */
  runtime?: boolean;
  /** Runtime mode: how the agents read datagrams (Simulator `receive`). */
  receive?: ReceiveMode;
  /** Who heartbeats go to (CoreConfig.heartbeats); default `all`. */
  heartbeats?: HeartbeatFanout;
  /** Sees every run's result (fault coverage, measurements). */
  onResult?: (result: SwarmRunResult) => void;
}): SwarmSummary {
  const failed: SwarmRunResult[] = [];
  const ownerFailoverMs: number[] = [];
  const coordinatorFailoverMs: number[] = [];
  for (const seed of options.seeds) {
    const result = runSwarmSeed({
      seed,
      timers: options.timers,
      ...(options.nodes ? { nodes: options.nodes } : {}),
      ...(options.faultPhaseMs ? { faultPhaseMs: options.faultPhaseMs } : {}),
      ...(options.runtime ? { runtime: true } : {}),
      ...(options.receive === "on-tick" ? { receive: "on-tick" as const } : {}),
      ...(options.heartbeats ? { heartbeats: options.heartbeats } : {}),
    });
    options.onResult?.(result);
    if (result.violations.length > 0) failed.push(result);
    if (result.failoverMs !== undefined) {
      (result.crashedCoordinator ? coordinatorFailoverMs : ownerFailoverMs).push(result.failoverMs);
    }
  }
  return { runs: options.seeds.length, failed, ownerFailoverMs, coordinatorFailoverMs };
}

function distribution(label: string, values: readonly number[]): string {
  if (values.length === 0) return `${label}: no samples`;
  return `${label} (${values.length} samples, virtual ms): p50 ${percentile(values, 50)}, p99 ${percentile(values, 99)}, max ${Math.max(...values)}`;
}

/** `replayFlags`: the options the swarm ran with, repeated in each replay command. */
export function formatSummary(summary: SwarmSummary, replayFlags = ""): string {
  const lines: string[] = [];
  for (const run of summary.failed) {
    for (const violation of run.violations) {
      lines.push(
        `seed=${run.seed} nodes=${run.nodes} ${violation.kind} at ${violation.atMs} ms: ${violation.detail} (replay: floatip sim --seed ${run.seed}${replayFlags} --trace)`,
      );
    }
  }
  lines.push(distribution("failover after an owner crash", summary.ownerFailoverMs));
  lines.push(
    distribution(
      "failover after a crash of an owner that was coordinator",
      summary.coordinatorFailoverMs,
    ),
  );
  const violations = summary.failed.reduce((n, r) => n + r.violations.length, 0);
  lines.push(`sim: ${summary.runs} runs, ${violations} violations`);
  return lines.join("\n");
}
