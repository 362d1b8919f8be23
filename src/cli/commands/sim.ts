/**
 * `floatip sim`: the deterministic fault-injecting simulator.
 *   floatip sim --seeds N [--nodes K] [--profile lan] [--timers K=V,…] [--first S] [--jobs J]
 *                                                                   [--runtime]
 *   floatip sim --seed S [--nodes K] [--trace]                      replay one seed
 * Exits 1 when any invariant was violated.
 */
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { profiles, validateTimers } from "../../config/profiles.ts";
import type { ProfileName, Timers } from "../../config/types.ts";
import { renewableLeaseMinMs } from "../../core/timing.ts";
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
  --timers lease_ms=180,heartbeat_interval_ms=50
              override the profile's timers, named as in the config's timers: section;
              what config check would refuse is printed as a warning and run anyway
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
      timers: { type: "string" },
    },
    strict: true,
  });
  const profile = values.profile as ProfileName;
  const base = profiles[profile];
  if (!base) {
    process.stderr.write(
      `floatip sim: unknown profile '${values.profile}' (use fast, lan or wan)\n`,
    );
    return 2;
  }
  const timers = values.timers === undefined ? base : overrideTimers(base, values.timers);
  if (typeof timers === "string") {
    process.stderr.write(`floatip sim: --timers: ${timers}\n`);
    return 2;
  }
  if (values.timers !== undefined) {
    const problems = validateTimers(timers).map((p) => `${snake(p.field)} ${p.message}`);
    const onTickMin = renewableLeaseMinMs(timers, true);
    if (values.receive === "on-tick" && timers.leaseMs < onTickMin)
      problems.push(`lease_ms is below the ${onTickMin} ms that on-tick needs`);
    for (const problem of problems)
      process.stderr.write(`floatip sim: warning: config check would refuse: ${problem}\n`);
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
    `profile ${profile}${values.timers ? ` with ${values.timers}` : ""}: ${count} seeds from ${first}${nodes ? `, ${nodes} nodes` : ", 3/5/7 nodes"}, ${jobs} job${jobs === 1 ? "" : "s"}${values.runtime ? ", through the agent's control loop" : ""}${values.receive === "on-tick" ? ", reading on its tick" : ""}\n`,
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
  const replay = [
    values.profile !== "lan" ? ` --profile ${values.profile}` : "",
    nodes ? ` --nodes ${nodes}` : "",
    values.runtime ? " --runtime" : "",
    values.receive === "on-tick" ? " --receive on-tick" : "",
    values.timers !== undefined ? ` --timers ${values.timers}` : "",
  ].join("");
  process.stdout.write(`${formatSummary(summary, replay)}\n`);
  process.stdout.write(
    `${count} seeds in ${seconds.toFixed(1)} s (${(count / seconds).toFixed(1)} seeds/s, ${jobs} job${jobs === 1 ? "" : "s"})\n`,
  );
  return summary.failed.length > 0 ? 1 : 0;
}

function snake(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** `lease_ms=180,heartbeat_interval_ms=50` over `base`; a string says what is wrong. */
export function overrideTimers(base: Timers, text: string): Timers | string {
  const byName = new Map((Object.keys(base) as (keyof Timers)[]).map((f) => [snake(f), f]));
  const timers: Record<string, number> = { ...base };
  for (const pair of text.split(",")) {
    const [name, value, ...rest] = pair.trim().split("=");
    const field = byName.get(name ?? "");
    if (field === undefined || value === undefined || rest.length > 0) {
      return `'${pair.trim()}': expected NAME=VALUE with NAME one of ${[...byName.keys()].join(", ")}`;
    }
    const number = Number(value);
    if (value.trim() === "" || !Number.isFinite(number)) {
      return `${name}: '${value}' is not a number`;
    }
    timers[field] = number;
  }
  return timers as unknown as Timers;
}
