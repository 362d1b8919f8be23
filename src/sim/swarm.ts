/**
 * Swarm simulation (in the manner of TigerBeetle's VOPR): each seed picks a cluster, boots
 * it, checks stability with no faults, measures one owner-crash failover, then runs three
 * phases, with every invariant checker (`checkers/`) running after every simulated event:
 *
 * 1. Safety: random faults for a while (`injectFault`): crashes, agent kills, restarts within
 *    a few election timeouts, partitions,
 *    one-way links (some long-lived), loss, duplicates, very late copies and replays of old
 *    datagrams, delays up to four election timeouts, process pauses of any length (also
 *    inside a vote write), wall-clock jumps, health flaps, admin commands, shutdowns and
 *    foreign hosts.
 * 2. Liveness under persistent faults: a majority is made connected and healthy while a
 *    minority keeps one fault each (`MinorityFault`); every VIP must be held by a majority
 *    node within `persistentFaultBoundMs` of that fault class.
 * 3. Liveness after healing: every fault stops; every VIP must be held again within
 *    `livenessBoundMs`.
 */
import type { PlacementPolicy, ReceiveMode, Timers } from "../config/types.ts";
import type { PlacementVip } from "../core/placement/types.ts";
import { SeededRandom } from "../core/prng.ts";
import { checkQuorumWindowMs, livenessBoundMs } from "../core/timing.ts";
import type { HeartbeatFanout } from "../core/types.ts";
import { Simulator, type Violation } from "./simulator.ts";

export interface SwarmRunOptions {
  readonly seed: number;
  readonly timers: Timers;
  /** Node count; chosen from 3, 5, 7 by the seed when absent. */
  readonly nodes?: number;
  /** Length of the fault phase in virtual ms. */
  readonly faultPhaseMs?: number;
  readonly trace?: boolean;
  /**
   * Occupancy probes see nobody: safety must then rest on leases alone. Leases do not cover
   * a holder's own pause (only the kernel address lifetime and the probe do), so in this
   * mode only nodes that hold and acquire nothing are paused, and agents die with their
   * supervisor removing their addresses at once.
   */
  readonly blindProbe?: boolean;
  /** Drive the agent's own control loop on a virtual platform (Simulator `runtime`). */
  readonly runtime?: boolean;
  /** Runtime mode: how the agents read datagrams (Simulator `receive`). */
  readonly receive?: ReceiveMode;
  /** Who heartbeats go to (CoreConfig.heartbeats); default `all`. */
  readonly heartbeats?: HeartbeatFanout;
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
  /** Kinds of fault injected, safety phase and persistent phase (`minority <class>`). */
  readonly faultKinds: readonly string[];
  /**
   * Phase 2: the minority's fault classes, the bound (failback included), and how long after
   * the faults began the majority first held every VIP (undefined if not reached).
   */
  readonly persistent:
    | {
        readonly faults: readonly MinorityFault[];
        readonly boundMs: number;
        readonly heldAfterMs: number | undefined;
      }
    | undefined;
  readonly trace: readonly string[];
}

/**
 * Persistent faults of a minority node (phase 2), each with its own liveness bound. Link
 * faults cover the node's links with every other node, so that no minority node can stand
 * in for the majority (an unhealthy minority node may still be elected coordinator):
 * - crash: machine off; partition: cut both ways;
 * - deaf: no datagram reaches it (it still sends);
 * - mute: its datagrams reach nobody (it still hears);
 * - slow: datagrams to and from it take one to three election timeouts;
 * - pause: its agent is stopped (SIGSTOP) for the whole phase, addresses configured;
 * - kill: agent and supervisor killed, addresses left until their kernel lifetime ends;
 * - unhealthy: its own health checks fail.
 */
export type MinorityFault =
  | "crash"
  | "partition"
  | "deaf"
  | "mute"
  | "slow"
  | "pause"
  | "kill"
  | "unhealthy";

export const minorityFaults: readonly MinorityFault[] = [
  "crash",
  "partition",
  "deaf",
  "mute",
  "slow",
  "pause",
  "kill",
  "unhealthy",
];

/** The swarm's network and address-action bounds, which the liveness bounds build on. */
export const swarmLimits = Object.freeze({
  /** Worst one-way delay of a healthy link. */
  maxDelayMs: 5,
  /** Worst `ip addr` time. */
  maxActionMs: 4,
  /** Kernel address lifetime (`address_lifetime`, the config default of 3 s). */
  addressLifetimeMs: 3000,
  /** Slow links (phase 2) take up to this many election timeouts one way. */
  slowDelayElections: 3,
});

/**
 * Upper bound, in real time, from the moment persistent faults begin (a majority connected
 * and healthy, `fault` on minority nodes) until every VIP is held by a majority node.
 * Every class starts from `livenessBoundMs` (an election with one split vote, failure
 * detection, the lease wait of an owner that cannot report its release, probe and add):
 * - crash, partition, mute, unhealthy: nothing more. The majority hears a silent node (or
 *   one that reports itself unhealthy, or that it no longer hears a majority), and the
 *   minority node releases by itself once it hears no majority, lease or not.
 * - deaf: + the check-quorum window + a heartbeat + a delay. A deaf coordinator still
 *   reaches the majority, which refuses votes while it hears it; it steps down by
 *   check-quorum a window (`checkQuorumWindowMs`) after its last acknowledged round, at its
 *   next tick, and its last heartbeat is in flight for one more delay.
 * - slow: + the check-quorum window + a heartbeat + the slow delay, for the same reason (its
 *   late heartbeats keep arriving after it stepped down).
 * - pause, kill: + the address lifetime + the probe retry interval. The stopped agent's
 *   addresses stay until the kernel drops them (at most one lifetime after the last renewal,
 *   which preceded the fault); meanwhile the new owner's probe finds the VIP occupied and
 *   tries again every `probeRetryMs`.
 * `readOnTick` (agents with `receive: on-tick`): a datagram waits up to a heartbeat interval
 * in the socket before it is read, which is one interval more of one-way delay, and the
 * check-quorum window is an interval longer.
 */
export function persistentFaultBoundMs(
  timers: Timers,
  fault: MinorityFault,
  readOnTick = false,
): number {
  const delayMs = swarmLimits.maxDelayMs + (readOnTick ? timers.heartbeatIntervalMs : 0);
  const base = livenessBoundMs(timers, delayMs, swarmLimits.maxActionMs);
  const stepDown = checkQuorumWindowMs(timers, readOnTick) + timers.heartbeatIntervalMs;
  switch (fault) {
    case "crash":
    case "partition":
    case "mute":
    case "unhealthy":
      return base;
    case "deaf":
      return base + stepDown + delayMs;
    case "slow":
      return base + stepDown + swarmLimits.slowDelayElections * timers.electionTimeoutMs;
    case "pause":
    case "kill":
      return base + swarmLimits.addressLifetimeMs + timers.probeRetryMs;
    default: {
      const unknown: never = fault;
      throw new Error(`unknown fault ${unknown}`);
    }
  }
}

const policies: readonly PlacementPolicy[] = ["round-robin", "weighted", "hash"];
const baseDuplicateRatio = 0.01;

/** What a fault needs to act; `generation` cancels the undo of faults from an older phase. */
interface FaultContext {
  readonly sim: Simulator;
  readonly rng: SeededRandom;
  readonly ids: readonly string[];
  readonly vipCount: number;
  readonly timers: Timers;
  readonly blind: boolean;
  /** The agent's control loop runs (Simulator `runtime`): the send gate is there to pause in. */
  readonly runtime: boolean;
  /** Nodes whose agent is down (crash, kill, shutdown). */
  readonly crashed: Set<string>;
  /** Long-lived one-way links: they survive heals and partitions until `untilMs`. */
  sticky: { from: string; to: string; untilMs: number }[];
  generation: number;
}

export function runSwarmSeed(options: SwarmRunOptions): SwarmRunResult {
  const rng = new SeededRandom(options.seed ^ 0x5eed);
  const readOnTick = options.runtime === true && options.receive === "on-tick";
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
  const blind = options.blindProbe ?? false;
  const sim = new Simulator({
    seed: options.seed,
    nodes: ids.map((id) => ({ id, weight: rng.int(1, 100) })),
    vips,
    timers,
    delayMs: [1, swarmLimits.maxDelayMs],
    lossRatio: 0,
    duplicateRatio: baseDuplicateRatio,
    actionMs: [1, swarmLimits.maxActionMs],
    addFailureRatio: 0.01,
    drift: true,
    clockRates: clockRates(rng, nodeCount, timers.clockDriftRatio),
    trace: options.trace ?? false,
    probeSeesOthers: !blind,
    addressLifetimeMs: swarmLimits.addressLifetimeMs,
    wallClockIncarnations: true,
    ...(options.runtime ? { runtime: true } : {}),
    ...(options.receive === "on-tick" ? { receive: "on-tick" as const } : {}),
    ...(options.heartbeats ? { heartbeats: options.heartbeats } : {}),
  });
  const faults: string[] = [];
  const faultKinds: string[] = [];
  let crashedCoordinator = false;
  let persistentSummary: SwarmRunResult["persistent"];
  const finish = (failoverMs: number | undefined): SwarmRunResult => ({
    seed: options.seed,
    nodes: nodeCount,
    vips: vipCount,
    violations: sim.violations,
    failoverMs,
    crashedCoordinator,
    faults,
    faultKinds,
    persistent: persistentSummary,
    trace: sim.trace,
  });
  const allHeld = () => vips.every((_, v) => sim.holders(v).length === 1);

  // Boot and converge.
  sim.bootAll();
  const bound =
    livenessBoundMs(
      timers,
      swarmLimits.maxDelayMs + (readOnTick ? timers.heartbeatIntervalMs : 0),
      swarmLimits.maxActionMs,
    ) +
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

  // Phase 1, safety: random faults.
  const context: FaultContext = {
    sim,
    rng,
    ids,
    vipCount,
    timers,
    blind,
    runtime: options.runtime === true,
    crashed: new Set(),
    sticky: [],
    generation: 0,
  };
  const faultEnd = sim.nowMs + (options.faultPhaseMs ?? 8000);
  while (sim.nowMs < faultEnd && sim.violations.length === 0) {
    const [kind, description] = injectFault(context);
    faults.push(`${sim.nowMs}: ${description}`);
    faultKinds.push(kind);
    sim.runUntil(sim.nowMs + rng.int(100, 1500));
  }
  if (sim.violations.length > 0) return finish(failoverMs);

  // Phase 2, liveness while a minority stays faulty.
  const failbackMs = Math.max(
    0,
    ...vips.map((v) => (v.failback.mode === "after" ? v.failback.afterMs : 0)),
  );
  const persistent = applyPersistentFaults(context);
  for (const [id, fault] of persistent.minority) {
    faults.push(`${sim.nowMs}: minority ${id}: ${fault}`);
    faultKinds.push(`minority ${fault}`);
  }
  const minorityStart = sim.nowMs;
  const minorityBound =
    Math.max(
      ...[...persistent.minority.values()].map((f) =>
        persistentFaultBoundMs(timers, f, readOnTick),
      ),
    ) + failbackMs;
  undrainRepeatedly(sim, persistent.majority, timers);
  sim.runUntil(minorityStart + minorityBound);
  if (sim.violations.length > 0) return finish(failoverMs);
  const notHeld = vips.filter((_, v) => {
    const holders = sim.holders(v);
    return holders.length !== 1 || !persistent.majority.includes(holders[0]!);
  });
  const heldAt = firstHeldBy(sim, persistent.majority, minorityStart);
  persistentSummary = {
    faults: [...persistent.minority.values()],
    boundMs: minorityBound,
    heldAfterMs: heldAt === undefined ? undefined : heldAt - minorityStart,
  };
  if (notHeld.length > 0) {
    const minority = [...persistent.minority].map(([id, f]) => `${id} ${f}`).join(", ");
    sim.violations.push({
      atMs: sim.nowMs,
      kind: "liveness",
      detail: `${notHeld.map((v) => v.address).join(", ")} not held by the majority ${minorityBound} ms into persistent faults (${minority})`,
    });
    return finish(failoverMs);
  }

  // Phase 3, liveness after every fault stops.
  healEverything(context, ids);
  const healedAt = sim.nowMs;
  undrainRepeatedly(sim, ids, timers);
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

/**
 * Clock rates within the promised drift bound: most nodes anywhere inside it, some at its
 * very edges (a pair at opposite edges differs by the whole bound), where a missing drift
 * factor shows.
 */
function clockRates(rng: SeededRandom, count: number, driftRatio: number): number[] {
  const half = driftRatio / 2;
  return Array.from({ length: count }, () => {
    const roll = rng.next();
    if (roll < 0.25) return 1 - half;
    if (roll < 0.5) return 1 + half;
    return 1 - half + rng.next() * 2 * half;
  });
}

/**
 * An operator undoes every drain, through the given nodes; a command sent while no
 * coordinator is elected is refused, so it is repeated (idempotent) every election timeout
 * until an election has surely happened, also behind a deaf or slow coordinator.
 */
function undrainRepeatedly(sim: Simulator, via: readonly string[], timers: Timers): void {
  const windowMs = 8 * timers.electionTimeoutMs;
  for (let at = 0; at <= windowMs; at += timers.electionTimeoutMs) {
    sim.at(sim.nowMs + at, () => {
      for (const from of via)
        for (const node of sim.nodes) sim.admin(from, { type: "undrain", node: node.id });
    });
  }
}

/** Every fault stops: links, delays, loss, copies, pauses, crashes, health, foreign hosts. */
function healEverything(context: FaultContext, ids: readonly string[]): void {
  const { sim } = context;
  context.generation += 1;
  context.sticky = [];
  sim.heal();
  sim.setDelay(undefined);
  sim.setLoss(0);
  sim.setDuplicates(baseDuplicateRatio);
  sim.setLateCopies(0);
  for (const id of ids) {
    // Disarm first: a woken agent writes a vote at once if what queued up asks for one, and
    // an armed stall would then pause it again, into the phase that needs it healthy.
    sim.pauseInNextVoteWrite(id, undefined);
    if (context.runtime) sim.pauseInNextBroadcast(id, undefined);
    sim.resume(id);
    if (context.crashed.has(id)) {
      context.crashed.delete(id);
      // A shutdown may still be under way (it exits after its grace period): end it first.
      if (sim.agentRunning(id)) sim.killAgent(id, 0);
      sim.boot(id);
    }
    sim.setHealth(id, true);
  }
  // A process stopped inside a step cannot be resumed early (Simulator.resume): let it wake.
  const stopsEnd = ids.map((id) => sim.stepStopEndsAt(id) ?? 0);
  if (Math.max(...stopsEnd) > sim.nowMs) sim.runUntil(Math.max(...stopsEnd));
  for (let v = 0; v < context.vipCount; v += 1) sim.setForeign(v, false);
}

/** Phase 2 set-up: heals a majority completely, then gives each minority node one fault. */
function applyPersistentFaults(context: FaultContext): {
  majority: string[];
  minority: Map<string, MinorityFault>;
} {
  const { sim, rng, ids, timers } = context;
  const size = rng.int(1, Math.floor((ids.length - 1) / 2) + 1);
  const order = shuffled(rng, ids);
  const coordinator = ids.find((id) => sim.core(id)?.role === "coordinator");
  if (coordinator !== undefined && rng.chance(0.5)) {
    order.splice(order.indexOf(coordinator), 1);
    order.unshift(coordinator);
  }
  const minorityIds = order.slice(0, size);
  const majority = order.slice(size);
  healEverything(context, ids);
  const classes = context.blind
    ? minorityFaults.filter((f) => f !== "pause" && f !== "kill")
    : minorityFaults;
  const minority = new Map<string, MinorityFault>();
  for (const id of minorityIds) {
    const others = ids.filter((other) => other !== id);
    const fault = rng.pick(classes);
    minority.set(id, fault);
    switch (fault) {
      case "crash":
        sim.crash(id);
        context.crashed.add(id);
        break;
      case "partition":
        for (const other of others) {
          sim.block(id, other);
          sim.block(other, id);
        }
        break;
      case "deaf":
        for (const other of others) sim.block(other, id);
        break;
      case "mute":
        for (const other of others) sim.block(id, other);
        break;
      case "slow": {
        const range: [number, number] = [
          timers.electionTimeoutMs,
          swarmLimits.slowDelayElections * timers.electionTimeoutMs,
        ];
        for (const other of others) {
          sim.setDelay(range, id, other);
          sim.setDelay(range, other, id);
        }
        break;
      }
      case "pause":
        sim.pause(id, 600_000);
        break;
      case "kill":
        sim.killAgent(id, undefined);
        context.crashed.add(id);
        break;
      case "unhealthy":
        sim.setHealth(id, false);
        break;
      default: {
        const unknown: never = fault;
        throw new Error(`unknown fault ${unknown}`);
      }
    }
  }
  return { majority, minority };
}

/** Picks and applies one random fault; returns its kind and a description. */
function injectFault(context: FaultContext): [string, string] {
  const { rng } = context;
  const total = faultTable.reduce((sum, f) => sum + f.weight(context), 0);
  let roll = rng.next() * total;
  for (const fault of faultTable) {
    roll -= fault.weight(context);
    if (roll < 0) return [fault.kind, fault.apply(context)];
  }
  return ["heal", heal(context)];
}

function heal(context: FaultContext): string {
  context.sim.heal();
  reapplySticky(context);
  return "heal";
}

function reapplySticky(context: FaultContext): void {
  const now = context.sim.nowMs;
  context.sticky = context.sticky.filter((s) => s.untilMs > now);
  for (const s of context.sticky) context.sim.block(s.from, s.to);
}

/** Runs `undo` after `afterMs` unless a later phase has taken over the network. */
function undoLater(context: FaultContext, afterMs: number, undo: () => void): void {
  const generation = context.generation;
  context.sim.at(context.sim.nowMs + afterMs, () => {
    if (context.generation === generation) undo();
  });
}

function shuffled<T>(rng: SeededRandom, items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = rng.int(0, i + 1);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

/** Pause lengths: well inside an election timeout up to many leases. */
function pauseMs(context: FaultContext): number {
  const { rng, timers } = context;
  const et = timers.electionTimeoutMs;
  const lease = timers.leaseMs;
  const factor = rng.pick([0.3 * et, 0.8 * et, 1.2 * et, 0.5 * lease, 0.9 * lease, 1.5 * lease]);
  const long = rng.pick([4 * lease, 12 * lease]);
  return Math.round(rng.chance(0.8) ? factor : long);
}

interface FaultKind {
  readonly kind: string;
  /** Drawn only in the runtime mode (the control loop's own mechanisms are its target). */
  readonly runtimeOnly?: boolean;
  weight(context: FaultContext): number;
  apply(context: FaultContext): string;
}

const always =
  (weight: number) =>
  (_context: FaultContext): number =>
    weight;

const faultTable: readonly FaultKind[] = [
  {
    kind: "crash",
    weight: always(9),
    apply: ({ sim, rng, ids, crashed }) => {
      const id = rng.pick(ids);
      if (crashed.has(id)) {
        crashed.delete(id);
        // A shutdown may still be under way (a paused agent finishes it when it wakes):
        // end it first, or the agent would exit after this "restart" and stay down.
        if (sim.agentRunning(id)) sim.killAgent(id, 0);
        sim.boot(id);
        return `restart ${id}`;
      }
      crashed.add(id);
      sim.crash(id);
      return `crash ${id}`;
    },
  },
  {
    kind: "kill",
    weight: always(5),
    apply: ({ sim, rng, ids, crashed, blind }) => {
      const id = rng.pick(ids);
      if (crashed.has(id)) return "nothing";
      crashed.add(id);
      // With a blind probe nothing but the supervisor removes a killed agent's addresses, and
      // it does so when the agent exits: model it as immediate there.
      const supervisorMs = blind ? 0 : rng.int(20, 600);
      sim.killAgent(id, supervisorMs);
      return `kill agent ${id} (supervisor ${supervisorMs} ms)`;
    },
  },
  {
    kind: "quick restart",
    weight: always(4),
    apply: (context) => {
      const { sim, rng, ids, crashed, blind, timers } = context;
      const id = rng.pick(ids);
      if (crashed.has(id)) return "nothing";
      const reboot = rng.chance(0.5);
      const downMs = rng.int(5, 2 * timers.electionTimeoutMs);
      crashed.add(id);
      if (reboot) sim.crash(id);
      else sim.killAgent(id, blind ? 0 : rng.int(0, downMs));
      undoLater(context, downMs, () => {
        crashed.delete(id);
        sim.boot(id);
      });
      return `${reboot ? "reboot" : "agent restart"} of ${id}, up again after ${downMs} ms`;
    },
  },
  {
    kind: "partition",
    weight: always(9),
    apply: (context) => {
      const { sim, rng, ids } = context;
      const order = shuffled(rng, ids);
      const cut = rng.int(1, ids.length);
      const groups = [order.slice(0, cut), order.slice(cut)];
      sim.heal();
      sim.partition(groups);
      reapplySticky(context);
      return `partition ${groups.map((g) => g.join(",")).join(" | ")}`;
    },
  },
  {
    kind: "one-way",
    weight: always(6),
    apply: ({ sim, rng, ids }) => {
      const id = rng.pick(ids);
      const other = rng.pick(ids.filter((x) => x !== id));
      sim.block(id, other);
      return `one-way block ${id} -> ${other}`;
    },
  },
  {
    kind: "long-lived one-way",
    weight: always(4),
    apply: (context) => {
      const { sim, rng, ids } = context;
      const from = rng.pick(ids);
      const to = rng.pick(ids.filter((x) => x !== from));
      const forMs = rng.int(2000, 8000);
      context.sticky.push({ from, to, untilMs: sim.nowMs + forMs });
      sim.block(from, to);
      undoLater(context, forMs, () => sim.unblock(from, to));
      return `one-way block ${from} -> ${to} for ${forMs} ms, through heals`;
    },
  },
  { kind: "heal", weight: always(9), apply: heal },
  {
    kind: "loss",
    weight: always(5),
    apply: ({ sim, rng }) => {
      const loss = rng.pick([0, 0.05, 0.2, 0.5]);
      sim.setLoss(loss);
      return `loss ${loss}`;
    },
  },
  {
    kind: "health",
    weight: always(8),
    apply: ({ sim, rng, ids }) => {
      const id = rng.pick(ids);
      const healthy = rng.chance(0.5);
      sim.setHealth(id, healthy);
      return `health ${id} ${healthy ? "up" : "down"}`;
    },
  },
  {
    kind: "admin move",
    weight: always(7),
    apply: ({ sim, rng, ids, vipCount }) => {
      const id = rng.pick(ids);
      const vip = rng.int(0, vipCount);
      const target = rng.pick(ids);
      sim.admin(id, { type: "move", vip: `198.18.0.${100 + vip}`, node: target });
      return `admin move 198.18.0.${100 + vip} ${target} via ${id}`;
    },
  },
  {
    kind: "admin drain",
    weight: always(6),
    apply: ({ sim, rng, ids }) => {
      const id = rng.pick(ids);
      const drain = rng.chance(0.5);
      const target = rng.pick(ids);
      sim.admin(id, { type: drain ? "drain" : "undrain", node: target });
      return `admin ${drain ? "drain" : "undrain"} ${target} via ${id}`;
    },
  },
  {
    kind: "shutdown",
    weight: always(2),
    apply: ({ sim, rng, ids, crashed }) => {
      const id = rng.pick(ids);
      if (crashed.has(id)) return "nothing";
      sim.shutdown(id);
      crashed.add(id);
      return `shutdown ${id}`;
    },
  },
  {
    kind: "foreign",
    weight: always(3),
    apply: ({ sim, rng, vipCount }) => {
      const vip = rng.int(0, vipCount);
      const present = rng.chance(0.5);
      sim.setForeign(vip, present);
      return `foreign host ${present ? "takes" : "drops"} vip ${vip}`;
    },
  },
  {
    kind: "pause",
    weight: always(8),
    apply: (context) => {
      const { sim, rng, ids, blind } = context;
      const candidates = blind ? ids.filter((id) => !sim.holdsOrAcquires(id)) : ids;
      if (candidates.length === 0) return "nothing";
      const id = rng.pick(candidates);
      const ms = pauseMs(context);
      sim.pause(id, ms);
      return `pause ${id} for ${ms} ms`;
    },
  },
  {
    kind: "pause in a vote write",
    weight: (context) => (context.blind ? 0 : 3),
    apply: (context) => {
      const id = context.rng.pick(context.ids);
      const ms = pauseMs(context);
      context.sim.pauseInNextVoteWrite(id, ms);
      return `pause ${id} for ${ms} ms in its next vote write`;
    },
  },
  {
    // Runtime mode only: a stop between two datagrams of one broadcast, where the control
    // loop's send gate withholds the rest (the core alone has no gate to exercise).
    kind: "pause in a broadcast",
    runtimeOnly: true,
    weight: (context) => (context.runtime && !context.blind ? 3 : 0),
    apply: (context) => {
      const id = context.rng.pick(context.ids);
      const ms = pauseMs(context);
      context.sim.pauseInNextBroadcast(id, ms);
      return `pause ${id} for ${ms} ms in its next broadcast`;
    },
  },
  {
    kind: "wall-clock jump",
    weight: always(3),
    apply: ({ sim, rng, ids }) => {
      const id = rng.pick(ids);
      const jump = rng.pick([-86_400_000, -3_600_000, -1500, 1500, 3_600_000, 86_400_000]);
      sim.jumpWallClock(id, jump);
      return `wall clock of ${id} jumps ${jump} ms`;
    },
  },
  {
    kind: "delay",
    weight: always(6),
    apply: (context) => {
      const { sim, rng, ids, timers } = context;
      const et = timers.electionTimeoutMs;
      const range = rng.pick<[number, number]>([
        [Math.round(et / 2), et],
        [et, 2 * et],
        [2 * et, 4 * et],
      ]);
      const a = rng.pick(ids);
      const b = rng.pick(ids.filter((x) => x !== a));
      const scope = rng.pick(["link", "from", "to", "all"] as const);
      const from = scope === "link" || scope === "from" ? a : undefined;
      const to = scope === "link" ? b : scope === "to" ? a : undefined;
      const forMs = rng.int(200, 3000);
      sim.setDelay(range, from, to);
      undoLater(context, forMs, () => sim.setDelay(undefined, from, to));
      return `delay ${from ?? "*"} -> ${to ?? "*"} ${range[0]}-${range[1]} ms for ${forMs} ms`;
    },
  },
  {
    kind: "duplicates",
    weight: always(2),
    apply: (context) => {
      const { sim, rng } = context;
      const ratio = rng.pick([0.2, 0.5]);
      const forMs = rng.int(500, 3000);
      sim.setDuplicates(ratio);
      undoLater(context, forMs, () => sim.setDuplicates(baseDuplicateRatio));
      return `duplicate ${ratio} of datagrams for ${forMs} ms`;
    },
  },
  {
    kind: "late copies",
    weight: always(2),
    apply: (context) => {
      const { sim, rng, timers } = context;
      const ratio = rng.pick([0.02, 0.1]);
      const forMs = rng.int(500, 3000);
      sim.setLateCopies(ratio, [timers.electionTimeoutMs, 20 * timers.electionTimeoutMs]);
      undoLater(context, forMs, () => sim.setLateCopies(0));
      return `late copies of ${ratio} of datagrams for ${forMs} ms`;
    },
  },
  {
    kind: "replay",
    weight: always(3),
    apply: ({ sim, rng }) => {
      const count = rng.int(5, 60);
      sim.replayOld(count);
      return `replay ${count} old datagrams`;
    },
  },
];

/**
 * The kinds of fault the safety phase draws from (blind-probe runs skip vote-write and
 * broadcast pauses; broadcast pauses need the runtime mode).
 */
export const safetyFaultKinds: readonly string[] = faultTable.map((f) => f.kind);

/** Of those, the kinds drawn only in the runtime mode. */
export const runtimeOnlyFaultKinds: readonly string[] = faultTable
  .filter((f) => f.runtimeOnly)
  .map((f) => f.kind);

function totalChanges(sim: Simulator): number {
  let total = 0;
  for (const history of sim.holderHistory.values()) total += history.length;
  return total;
}

/** The first instant from `fromMs` on at which one of `nodes` alone held every VIP. */
function firstHeldBy(sim: Simulator, nodes: readonly string[], fromMs: number): number | undefined {
  const current = new Map<number, string | undefined>();
  const changes: [number, number, string | undefined][] = [];
  for (const [vip, history] of sim.holderHistory) {
    for (const [at, holder] of history) {
      if (at <= fromMs) current.set(vip, holder);
      else changes.push([at, vip, holder]);
    }
  }
  changes.sort((a, b) => a[0] - b[0]);
  const allHeld = () =>
    [...current.values()].every((holder) => holder !== undefined && nodes.includes(holder));
  if (allHeld()) return fromMs;
  for (let i = 0; i < changes.length; i += 1) {
    const [at, vip, holder] = changes[i]!;
    current.set(vip, holder);
    if (changes[i + 1]?.[0] === at) continue; // settle every change of this instant first
    if (allHeld()) return at;
  }
  return undefined;
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
