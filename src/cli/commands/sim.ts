/**
 * `floatip sim`: the deterministic fault-injecting simulator.
 *   floatip sim --seeds N [--nodes K] [--profile lan] [--first S] [--jobs J] [--runtime]
 *   floatip sim --seed S [--nodes K] [--trace]                      replay one seed
 * Exits 1 when any invariant was violated.
 */
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { profiles } from "../../config/profiles.ts";
import type { ProfileName } from "../../config/types.ts";
import { runSwarmParallel } from "../../sim/parallel.ts";
import { formatSummary, runSwarm } from "../../sim/report.ts";
import { runSwarmSeed } from "../../sim/swarm.ts";

export const usage = `usage:
  floatip sim --seeds N [--nodes K] [--profile fast|lan|wan] [--first S] [--jobs J]
                                                        run a swarm of N seeds on J worker
                                                        threads (default: one per CPU)
  --runtime   drive each node through the agent's own control loop (effect batching, address
              chain, lifetime renewal, stall detection) on a virtual platform, not the core
              alone
  --receive on-tick
              (with --runtime) the agents read datagrams on their control loop's tick, as
              with the config key receive: on-tick
  floatip sim --seed S [--nodes K] [--profile P] [--trace] [--runtime]     replay one seed
  Exit status: 0 no invariant violated, 1 a violation (the seeds are printed), 2 usage error.
`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      seeds: { type: "string", default: "100" },
      first: { type: "string", default: "1" },
      seed: { type: "string" },
      nodes: { type: "string" },
      profile: { type: "string", default: "lan" },
      trace: { type: "boolean", default: false },
      jobs: { type: "string" },
      runtime: { type: "boolean", default: false },
      receive: { type: "string", default: "as-they-come" },
    },
    strict: true,
  });
  const profile = values.profile as ProfileName;
  const timers = profiles[profile];
  if (!timers) {
    process.stderr.write(
      `floatip sim: unknown profile '${values.profile}' (use fast, lan or wan)\n`,
    );
    return 2;
  }
  if (values.receive !== "as-they-come" && values.receive !== "on-tick") {
    process.stderr.write("floatip sim: --receive takes as-they-come or on-tick\n");
    return 2;
  }
  if (values.receive === "on-tick" && !values.runtime) {
    process.stderr.write(
      "floatip sim: --receive on-tick needs --runtime (the agent's control loop)\n",
    );
    return 2;
  }
  const onTick = values.receive === "on-tick" ? { receive: "on-tick" as const } : {};
  const nodes = values.nodes ? Number(values.nodes) : undefined;
  if (nodes !== undefined && (!Number.isInteger(nodes) || nodes < 1 || nodes > 15)) {
    process.stderr.write("floatip sim: --nodes takes a whole number from 1 to 15\n");
    return 2;
  }
  if (values.seed !== undefined) {
    const result = runSwarmSeed({
      seed: Number(values.seed),
      timers,
      trace: values.trace,
      ...(nodes ? { nodes } : {}),
      ...(values.runtime ? { runtime: true } : {}),
      ...onTick,
    });
    process.stdout.write(
      `seed=${result.seed} nodes=${result.nodes} vips=${result.vips}\nfaults:\n`,
    );
    for (const fault of result.faults) process.stdout.write(`  ${fault}\n`);
    if (values.trace) process.stdout.write(`trace:\n${result.trace.join("\n")}\n`);
    for (const v of result.violations)
      process.stdout.write(`VIOLATION ${v.kind} at ${v.atMs} ms: ${v.detail}\n`);
    process.stdout.write(
      `failover ${result.failoverMs ?? "not measured"} ms${result.crashedCoordinator ? " (owner was coordinator)" : ""}\n`,
    );
    return result.violations.length > 0 ? 1 : 0;
  }
  const count = Number(values.seeds);
  const first = Number(values.first);
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(first)) {
    process.stderr.write("floatip sim: --seeds takes a positive whole number\n");
    return 2;
  }
  const jobs = values.jobs === undefined ? availableParallelism() : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) {
    process.stderr.write("floatip sim: --jobs takes a whole number from 1 to 64\n");
    return 2;
  }
  const seeds = Array.from({ length: count }, (_, i) => first + i);
  process.stdout.write(
    `profile ${profile}: ${count} seeds from ${first}${nodes ? `, ${nodes} nodes` : ", 3/5/7 nodes"}, ${jobs} job${jobs === 1 ? "" : "s"}${values.runtime ? ", through the agent's control loop" : ""}${values.receive === "on-tick" ? ", reading on its tick" : ""}\n`,
  );
  const startedAt = performance.now();
  let lastProgressAt = startedAt;
  const swarm = {
    seeds,
    timers,
    ...(nodes ? { nodes } : {}),
    ...(values.runtime ? { runtime: true } : {}),
    ...onTick,
  };
  const summary =
    jobs === 1
      ? runSwarm(swarm)
      : await runSwarmParallel({
          ...swarm,
          jobs,
          onProgress: (done) => {
            const now = performance.now();
            if (now - lastProgressAt < 10_000) return;
            lastProgressAt = now;
            const rate = done / ((now - startedAt) / 1000);
            const left = Math.round((count - done) / rate);
            process.stderr.write(
              `sim: ${done}/${count} seeds, ${rate.toFixed(1)} seeds/s, about ${Math.floor(left / 60)} min ${left % 60} s left\n`,
            );
          },
        });
  const seconds = (performance.now() - startedAt) / 1000;
  process.stdout.write(`${formatSummary(summary)}\n`);
  process.stdout.write(
    `${count} seeds in ${seconds.toFixed(1)} s (${(count / seconds).toFixed(1)} seeds/s, ${jobs} job${jobs === 1 ? "" : "s"})\n`,
  );
  return summary.failed.length > 0 ? 1 : 0;
}
