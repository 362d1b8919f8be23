/**
 * Swarm simulation (in the manner of TigerBeetle's VOPR): each seed picks a cluster, boots
 * it, checks stability with no faults, measures one owner-crash failover, then injects
 * random faults for a while (safety phase), heals everything and checks that every VIP is
 * held again within the bound derived from the timers (liveness phase). Safety invariants
 * are checked after every simulated event throughout.
 */
import type { PlacementPolicy, Timers } from "../config/types.ts";
import type { PlacementVip } from "../core/placement/types.ts";
import { SeededRandom } from "../core/prng.ts";
import { livenessBoundMs } from "../core/timing.ts";
import { Simulator, type Violation } from "./simulator.ts";

export interface SwarmRunOptions {
  readonly seed: number;
  readonly timers: Timers;
  /** Node count; chosen from 3, 5, 7 by the seed when absent. */
  readonly nodes?: number;
  /** Length of the fault phase in virtual ms. */
  readonly faultPhaseMs?: number;
  readonly trace?: boolean;
  /** Occupancy probes see nobody: safety must then rest on leases alone. */
  readonly blindProbe?: boolean;
}

export interface SwarmRunResult {
  readonly seed: number;
  readonly nodes: number;
  readonly vips: number;
  readonly violations: readonly Violation[];
  /** Owner-crash failover in virtual ms (undefined if not measured). */
  readonly failoverMs: number | undefined;
  /** Whether the crashed owner was also the coordinator (an election adds to the failover). */
  readonly crashedCoordinator: boolean;
  readonly faults: readonly string[];
  readonly trace: readonly string[];
}

const policies: readonly PlacementPolicy[] = ["round-robin", "weighted", "hash"];
const maxDelayMs = 5;
const maxActionMs = 4;

export function runSwarmSeed(options: SwarmRunOptions): SwarmRunResult {
  const rng = new SeededRandom(options.seed ^ 0x5eed);
  const nodeCount = options.nodes ?? rng.pick([3, 5, 7]);
  const ids = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
  const vipCount = rng.int(2, 7);
  const vips: PlacementVip[] = Array.from({ length: vipCount }, (_, i) => {
    const preferred = rng.chance(0.3) ? rng.pick(ids) : undefined;
    const failbackMode = rng.pick(["immediate", "never", "after"] as const);
    return {
      address: `198.18.0.${100 + i}`,
      policy: rng.pick(policies),
      ...(preferred ? { preferred } : {}),
      failback:
        failbackMode === "after"
          ? { mode: "after", afterMs: rng.int(200, 2000) }
          : { mode: failbackMode },
    };
  });
  const timers = options.timers;
  const sim = new Simulator({
    seed: options.seed,
    nodes: ids.map((id) => ({ id, weight: rng.int(1, 100) })),
    vips,
    timers,
    delayMs: [1, maxDelayMs],
    lossRatio: 0,
    duplicateRatio: 0.01,
    actionMs: [1, maxActionMs],
    addFailureRatio: 0.01,
    drift: true,
    trace: options.trace ?? false,
    probeSeesOthers: !options.blindProbe,
  });
  const faults: string[] = [];
  let crashedCoordinator = false;
  const finish = (failoverMs: number | undefined): SwarmRunResult => ({
    seed: options.seed,
    nodes: nodeCount,
    vips: vipCount,
    violations: sim.violations,
    failoverMs,
    crashedCoordinator,
    faults,
    trace: sim.trace,
  });
  const allHeld = () => vips.every((_, v) => sim.holders(v).length === 1);

  // Boot and converge.
  sim.bootAll();
  const bound =
    livenessBoundMs(timers, maxDelayMs, maxActionMs) +
    (timers.riseRounds + 2) * timers.heartbeatIntervalMs;
  sim.runUntil(bound);
  if (sim.violations.length > 0) return finish(undefined);
  if (!allHeld()) {
    sim.violations.push({
      atMs: sim.nowMs,
      kind: "liveness",
      detail: `not all VIPs held ${bound} ms after boot`,
    });
    return finish(undefined);
  }

  // Stability: no faults, nothing may move.
  const changesBefore = totalChanges(sim);
  sim.runUntil(sim.nowMs + 20 * timers.heartbeatIntervalMs);
  if (totalChanges(sim) !== changesBefore) {
    sim.violations.push({
      atMs: sim.nowMs,
      kind: "stability",
      detail: "a VIP moved with no fault",
    });
    return finish(undefined);
  }

  // One owner crash, measured from the client's point of view (time with no holder).
  const owner = sim.holder(0)!;
  crashedCoordinator = sim.core(owner)?.role === "coordinator";
  const crashAt = sim.nowMs;
  sim.crash(owner);
  faults.push(`${crashAt}: crash ${owner} (failover measurement)`);
  let failoverMs: number | undefined;
  const deadline = crashAt + bound;
  while (sim.nowMs < deadline && failoverMs === undefined && sim.violations.length === 0) {
    sim.runUntil(sim.nowMs + 5);
    const holder = sim.holder(0);
    if (holder !== undefined) failoverMs = firstHeldAfter(sim, 0, crashAt) - crashAt;
  }
  if (failoverMs === undefined && sim.violations.length === 0) {
    sim.violations.push({
      atMs: sim.nowMs,
      kind: "liveness",
      detail: `${vips[0]!.address} not taken over within ${bound} ms`,
    });
  }
  sim.boot(owner);
  if (sim.violations.length > 0) return finish(failoverMs);

  // Safety phase: random faults.
  const faultEnd = sim.nowMs + (options.faultPhaseMs ?? 8000);
  const crashed = new Set<string>();
  while (sim.nowMs < faultEnd && sim.violations.length === 0) {
    const fault = injectFault(sim, rng, ids, vips.length, crashed, options.blindProbe ?? false);
    faults.push(`${sim.nowMs}: ${fault}`);
    sim.runUntil(sim.nowMs + rng.int(100, 1500));
  }
  if (sim.violations.length > 0) return finish(failoverMs);

  // Liveness phase: all faults stop.
  sim.heal();
  sim.setLoss(0);
  for (const id of ids) {
    if (crashed.has(id)) sim.boot(id);
    sim.setHealth(id, true);
  }
  // An operator undoes every drain; a command sent while no coordinator is elected is
  // refused, so it is repeated (idempotent) until an election has surely happened.
  const electionMs = 4 * timers.electionTimeoutMs;
  for (let at = 0; at <= electionMs; at += timers.electionTimeoutMs) {
    sim.at(sim.nowMs + at, () => {
      for (const via of ids) for (const node of ids) sim.admin(via, { type: "undrain", node });
    });
  }
  for (let v = 0; v < vips.length; v += 1) sim.setForeign(v, false);
  const healedAt = sim.nowMs;
  // Failback `after D` may legitimately move a VIP up to D after its preferred node recovers.
  const failbackMs = Math.max(
    0,
    ...vips.map((v) => (v.failback.mode === "after" ? v.failback.afterMs : 0)),
  );
  sim.runUntil(healedAt + bound + failbackMs);
  if (sim.violations.length === 0 && !allHeld()) {
    const missing = vips.filter((_, v) => sim.holders(v).length !== 1).map((v) => v.address);
    sim.violations.push({
      atMs: sim.nowMs,
      kind: "liveness",
      detail: `${missing.join(", ")} not held ${bound + failbackMs} ms after faults stopped`,
    });
  }
  return finish(failoverMs);
}

function injectFault(
  sim: Simulator,
  rng: SeededRandom,
  ids: string[],
  vipCount: number,
  crashed: Set<string>,
  blindProbe = false,
): string {
  const id = rng.pick(ids);
  const roll = rng.next();
  if (roll < 0.12) {
    if (crashed.has(id)) {
      crashed.delete(id);
      sim.boot(id);
      return `restart ${id}`;
    }
    crashed.add(id);
    sim.crash(id);
    return `crash ${id}`;
  }
  if (roll < 0.2) {
    if (crashed.has(id)) return "nothing";
    crashed.add(id);
    // With a blind probe nothing but the supervisor removes a killed agent's addresses, and
    // it does so when the agent exits: model it as immediate there.
    const supervisorMs = blindProbe ? 0 : rng.int(20, 600);
    sim.killAgent(id, supervisorMs);
    return `kill agent ${id} (supervisor ${supervisorMs} ms)`;
  }
  if (roll < 0.32) {
    const shuffled = [...ids];
    for (let i = shuffled.length - 1; i > 0; i -= 1) {
      const j = rng.int(0, i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    const cut = rng.int(1, ids.length);
    const groups = [shuffled.slice(0, cut), shuffled.slice(cut)];
    sim.heal();
    sim.partition(groups);
    return `partition ${groups.map((g) => g.join(",")).join(" | ")}`;
  }
  if (roll < 0.4) {
    const other = rng.pick(ids.filter((x) => x !== id));
    sim.block(id, other);
    return `one-way block ${id} -> ${other}`;
  }
  if (roll < 0.52) {
    sim.heal();
    return "heal";
  }
  if (roll < 0.58) {
    const loss = rng.pick([0, 0.05, 0.2, 0.5]);
    sim.setLoss(loss);
    return `loss ${loss}`;
  }
  if (roll < 0.7) {
    const healthy = rng.chance(0.5);
    sim.setHealth(id, healthy);
    return `health ${id} ${healthy ? "up" : "down"}`;
  }
  if (roll < 0.8) {
    const vip = rng.int(0, vipCount);
    const target = rng.pick(ids);
    sim.admin(id, { type: "move", vip: `198.18.0.${100 + vip}`, node: target });
    return `admin move 198.18.0.${100 + vip} ${target} via ${id}`;
  }
  if (roll < 0.88) {
    const drain = rng.chance(0.5);
    const target = rng.pick(ids);
    sim.admin(id, { type: drain ? "drain" : "undrain", node: target });
    return `admin ${drain ? "drain" : "undrain"} ${target} via ${id}`;
  }
  if (roll < 0.92) {
    if (crashed.has(id)) return "nothing";
    sim.shutdown(id);
    crashed.add(id);
    return `shutdown ${id}`;
  }
  const vip = rng.int(0, vipCount);
  const present = rng.chance(0.5);
  sim.setForeign(vip, present);
  return `foreign host ${present ? "takes" : "drops"} vip ${vip}`;
}

function totalChanges(sim: Simulator): number {
  let total = 0;
  for (const history of sim.holderHistory.values()) total += history.length;
  return total;
}

function firstHeldAfter(sim: Simulator, vip: number, afterMs: number): number {
  const history = sim.holderHistory.get(vip)!;
  for (const [at, holder] of history) if (at > afterMs && holder !== undefined) return at;
  return sim.nowMs;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, rank)]!;
}
