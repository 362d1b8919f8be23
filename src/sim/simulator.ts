/**
 * Deterministic simulator: N cores on a virtual clock over a simulated network with delay
 * (per link, up to and beyond the election timeout), loss, duplication, very late copies and
 * replays of old datagrams, reordering, symmetric and one-way partitions, machine crashes and
 * restarts (new incarnation, persisted vote kept), agent kills that leave addresses behind
 * until a supervisor removes them, process pauses of any length (also in the middle of a
 * vote write), per-node clock drift, wall-clock jumps, kernel address lifetimes, health
 * flaps, failing `ip` calls and foreign hosts squatting on a VIP. Same seed, same run, bit
 * for bit.
 *
 * Time: every node has a monotonic clock (`local = offset + rate × real`), the only time its
 * core is ever given, and a wall clock that may jump; the simulated agent reads the wall
 * clock only for its incarnation number at start (`wallClockIncarnations`), as the agent does.
 *
 * Invariants are checked after every event by the checkers in `checkers/`, which recompute
 * what they check from what happened here and never read a core's fields; a violation stops
 * the run and carries the seed and the trace so that `floatip sim --seed S --trace` replays it.
 */
import {
  type AddressChange,
  ControlLoop,
  type ControlPlatform,
  type ProbeOutcome,
} from "../agent/control-loop.ts";
import type { FailoverPhase } from "../agent/histogram.ts";
import type { ReceiveMode, Timers } from "../config/types.ts";
import { CoreNode } from "../core/node.ts";
import type { PlacementVip } from "../core/placement/types.ts";
import { SeededRandom } from "../core/prng.ts";
import type {
  AdminCommand,
  CoreConfig,
  CoreEvent,
  Effect,
  HeartbeatFanout,
  Input,
  Message,
  PersistentState,
} from "../core/types.ts";
import { type Checker, createCheckers, type ViolationKind, type World } from "./checkers/index.ts";

export interface SimOptions {
  readonly seed: number;
  readonly nodes: readonly { id: string; weight: number }[];
  readonly vips: readonly PlacementVip[];
  readonly timers: Timers;
  /** Who heartbeats go to (CoreConfig.heartbeats); default `all`. */
  readonly heartbeats?: HeartbeatFanout;
  /** One-way network delay range in ms (real time), unless a link has its own. */
  readonly delayMs?: readonly [number, number];
  readonly lossRatio?: number;
  readonly duplicateRatio?: number;
  /** Time `ip addr add/del` takes (real ms); keep below the lease margin. */
  readonly actionMs?: readonly [number, number];
  /** Chance that an `ip addr add` fails. */
  readonly addFailureRatio?: number;
  /** Apply clock drift (each node's rate within ±clockDriftRatio/2 of real time). */
  readonly drift?: boolean;
  /** Clock rate per node (local ms per real ms), overriding the drawn ones. */
  readonly clockRates?: readonly number[];
  /** Test the checkers: real drift bound, overriding the one the core is told (timers). */
  readonly actualDriftRatio?: number;
  /** False: occupancy probes never see other hosts (lost ARP), so leases alone keep safety. */
  readonly probeSeesOthers?: boolean;
  /**
   * Kernel lifetime (`valid_lft`) of an added VIP in ms, renewed every third of it while the
   * agent runs, is not paused and its lease is valid, as the agent does. Undefined: forever.
   */
  readonly addressLifetimeMs?: number;
  /** Incarnation numbers from the node's wall clock (never below the last one + 1). */
  readonly wallClockIncarnations?: boolean;
  /**
   * Configuration fingerprint per node id (CoreConfig.fingerprint), for nodes whose
   * cluster-wide configuration differs from the others'; absent nodes have none ("").
   */
  readonly fingerprints?: Readonly<Record<string, string>>;
  /** Keep a readable trace (costs memory; on for scenarios and replays). */
  readonly trace?: boolean;
  /**
   * Drive each node through the agent's own control loop (src/agent/control-loop.ts) on a
   * virtual platform instead of the core alone: the real effect batching, address chain,
   * lifetime renewal (which, like the kernel, re-creates a missing address) and stall
   * detection run under the faults. A paused process runs nothing; on waking it runs what
   * queued up, I/O or timers first as a seeded coin says (both happen in libuv).
   */
  readonly runtime?: boolean;
  /**
   * Runtime mode: `on-tick` reads datagrams as the agent's `receive: on-tick` does. An
   * arriving datagram runs nothing in the process; it waits in the socket until the control
   * loop drains it at its next wake-up.
   */
  readonly receive?: ReceiveMode;
  /** Runtime mode: the failover phases each node's control loop timed (probe, added, announced). */
  readonly onPhase?: (node: string, phase: FailoverPhase, ms: number) => void;
}

export interface Violation {
  readonly atMs: number;
  readonly kind: ViolationKind;
  readonly detail: string;
}

interface SimNode {
  readonly id: string;
  readonly index: number;
  core: CoreNode | undefined;
  /** Machine powered and reachable. */
  machineUp: boolean;
  /** The agent process runs (false after a kill while the machine stays up). */
  agentUp: boolean;
  incarnation: number;
  persisted: PersistentState | undefined;
  /** Monotonic clock: local = offset + rate × real. */
  rate: number;
  offset: number;
  /** Wall clock: wallEpochMs + real + wallOffsetMs (jumps move the offset). */
  wallOffsetMs: number;
  addresses: Set<number>;
  /** Real time each address's kernel lifetime ends (with `addressLifetimeMs`). */
  addressExpiryMs: Map<number, number>;
  /** Probes and adds the agent has asked for whose outcome it has not consumed yet. */
  probing: Set<number>;
  adding: Set<number>;
  healthy: boolean;
  wakeEvent: number;
  /**
   * The agent process is paused (SIGSTOP, a long GC, a busy loop) until `pausedUntil` (real
   * time): from the pause until its wake event has run, even at the instant it is due.
   */
  paused: boolean;
  pausedUntil: number;
  pauseToken: number;
  pauseStartLocal: number;
  wokeAtMs: number;
  /** Inputs that arrived during the pause, delivered in order when it ends. */
  pausedInputs: Input[];
  /** Effects of a step that stalled in its vote write: performed first on waking. */
  deferredEffects: Effect[];
  /** Armed: the next vote write stalls for this long. */
  voteWritePauseMs: number | undefined;
  /** Runtime mode, armed: the next broadcast stops after its first datagram for this long. */
  broadcastPauseMs: number | undefined;
  /**
   * Runtime mode: the process stopped inside a step (a broadcast). The rest of that step runs
   * synchronously here but, in the real process, after the wake: its clock reads the wake's
   * local time until real time has caught up with it. Such a stop cannot be ended early.
   */
  clockHeldLocal: number | undefined;
  /** Messages this node sent: real time and type (to check what a woken node says first). */
  readonly sent: { atMs: number; type: string }[];
  /** Runtime mode: the agent's control loop, and what its paused process has yet to run. */
  loop: ControlLoop | undefined;
  pausedTasks: { kind: "out" | "io" | "timer"; run: () => void }[];
  /** Datagrams the process read (the platform's `datagramsSeen`). */
  read: number;
  /** `receive: on-tick`: datagrams in the socket, not read yet. */
  socket: { from: string; message: Message }[];
}

interface QueueEntry {
  at: number;
  seq: number;
  run: () => void;
}

interface Datagram {
  readonly from: string;
  readonly to: string;
  readonly message: Message;
}

interface HeldDatagram extends Datagram {
  /** Simulated time at which it arrived and was held. */
  readonly heldAtMs: number;
}

/** Wall-clock reading at real time 0 (2027-01-15). */
const wallEpochMs = 1_800_000_000_000;
/** Datagrams kept for `replayOld`. */
const datagramHistory = 4096;

export class Simulator {
  readonly options: SimOptions;
  readonly random: SeededRandom;
  readonly nodes: SimNode[];
  readonly violations: Violation[] = [];
  readonly trace: string[] = [];
  /** Gratuitous ARP bursts the nodes asked for: when, who, which VIP. */
  readonly announcements: { atMs: number; node: string; vip: number }[] = [];
  /** Real-time instants at which each VIP's holder changed: [time, holder or undefined]. */
  readonly holderHistory: Map<number, [number, string | undefined][]> = new Map();
  nowMs = 0;
  delivered = 0;
  #queue: QueueEntry[] = [];
  #seq = 0;
  #blocked = new Set<string>();
  #foreign = new Set<number>();
  #lossRatio: number;
  /** Bumped on every address or power change (World.addressChanges). */
  #addressChanges = 0;
  #duplicateRatio: number;
  #linkDelay = new Map<string, readonly [number, number]>();
  #allDelay: readonly [number, number] | undefined;
  #late: { ratio: number; rangeMs: readonly [number, number] } | undefined;
  #history: Datagram[] = [];
  #historyNext = 0;
  /** Links ("from>to") whose datagrams wait in `#held` for a scenario's deliver or drop. */
  #holding = new Set<string>();
  #held: HeldDatagram[] = [];
  #lastActionAt = new Map<string, number>();
  readonly #byId = new Map<string, SimNode>();
  readonly #config: CoreConfig;
  readonly #checkers: Checker[];

  constructor(options: SimOptions) {
    this.options = options;
    this.random = new SeededRandom(options.seed);
    this.#lossRatio = options.lossRatio ?? 0;
    this.#duplicateRatio = options.duplicateRatio ?? 0;
    this.#config = {
      nodes: options.nodes,
      vips: options.vips,
      timers: options.timers,
      ...(options.heartbeats ? { heartbeats: options.heartbeats } : {}),
      ...(options.runtime && options.receive === "on-tick" ? { readOnTick: true } : {}),
    };
    const drift = (options.actualDriftRatio ?? options.timers.clockDriftRatio) / 2;
    this.nodes = options.nodes.map((n, index) => ({
      id: n.id,
      index,
      core: undefined,
      machineUp: false,
      agentUp: false,
      incarnation: 0,
      persisted: undefined,
      rate:
        options.clockRates?.[index] ??
        (options.drift === false ? 1 : 1 - drift + this.random.next() * 2 * drift),
      offset: this.random.int(0, 1_000_000),
      wallOffsetMs: 0,
      addresses: new Set(),
      addressExpiryMs: new Map(),
      probing: new Set(),
      adding: new Set(),
      healthy: true,
      wakeEvent: 0,
      paused: false,
      pausedUntil: 0,
      pauseToken: 0,
      pauseStartLocal: 0,
      wokeAtMs: Number.NEGATIVE_INFINITY,
      pausedInputs: [],
      deferredEffects: [],
      voteWritePauseMs: undefined,
      broadcastPauseMs: undefined,
      clockHeldLocal: undefined,
      sent: [],
      loop: undefined,
      pausedTasks: [],
      read: 0,
      socket: [],
    }));
    for (const node of this.nodes) this.#byId.set(node.id, node);
    options.vips.forEach((_, vip) => {
      this.holderHistory.set(vip, [[0, undefined]]);
    });
    this.#checkers = createCheckers(this.#world(), (kind, detail) => this.#violate(kind, detail));
  }

  // ---------------------------------------------------------------- control

  /** Boots every machine (staggered by a few ms, as real clusters start). */
  bootAll(): void {
    for (const node of this.nodes) {
      this.at(this.random.int(0, 20), () => this.boot(node.id));
    }
  }

  boot(id: string): void {
    const node = this.#node(id);
    if (node.agentUp) return;
    node.machineUp = true;
    this.#addressChanges += 1;
    // The agent's start-up removes VIPs a previous incarnation left behind, before the core runs.
    for (const vip of [...node.addresses]) this.#removeAddress(node, vip);
    node.agentUp = true;
    node.incarnation = this.options.wallClockIncarnations
      ? Math.max(this.wallNowMs(id), node.incarnation + 1)
      : node.incarnation + 1;
    this.#resetProcess(node);
    const random = new SeededRandom(this.random.int(0, 2 ** 31));
    for (const checker of this.#checkers) checker.onBoot?.(id);
    const fingerprint = this.options.fingerprints?.[id];
    node.core = new CoreNode({
      id,
      config: fingerprint === undefined ? this.#config : { ...this.#config, fingerprint },
      random,
      incarnation: node.incarnation,
      nowMs: this.#local(node),
      ...(node.persisted ? { persisted: node.persisted } : {}),
    });
    this.log(`${id} boots (incarnation ${node.incarnation})`);
    if (this.options.runtime) {
      node.loop = this.#createLoop(node, node.core);
      node.loop.start();
    } else if (this.options.addressLifetimeMs !== undefined) this.#scheduleRenewal(node);
    this.#deliver(node, { type: "health", nowMs: this.#local(node), healthy: node.healthy });
  }

  /** Power loss: the agent dies and the machine's addresses vanish with it. */
  crash(id: string): void {
    const node = this.#node(id);
    node.machineUp = false;
    this.#addressChanges += 1;
    node.agentUp = false;
    node.core = undefined;
    this.#resetProcess(node);
    for (const vip of [...node.addresses]) this.#removeAddress(node, vip);
    this.log(`${id} crashes`);
  }

  /**
   * SIGKILL of the agent: addresses stay until the supervisor removes them after
   * `supervisorDelayMs`, or (undefined: the supervisor died too) until their kernel lifetime
   * runs out.
   */
  killAgent(id: string, supervisorDelayMs: number | undefined): void {
    const node = this.#node(id);
    node.agentUp = false;
    node.core = undefined;
    this.#resetProcess(node);
    if (supervisorDelayMs === undefined) {
      this.log(`${id} agent and supervisor killed`);
      return;
    }
    this.log(`${id} agent killed (supervisor cleans up in ${supervisorDelayMs} ms)`);
    this.at(this.nowMs + supervisorDelayMs, () => {
      if (node.agentUp) return;
      for (const vip of [...node.addresses]) this.#removeAddress(node, vip);
    });
  }

  /**
   * Pauses the agent process for `durationMs` of real time (SIGSTOP then SIGCONT): nothing it
   * would do happens, its addresses stay configured, datagrams queue up. On waking it does
   * what the agent runtime does: finishes the step it was in (a stalled vote write), reports
   * the stall (its own timer's lateness) first, then delivers the queued datagrams and
   * outcomes, then ticks. Pausing a paused agent extends the pause.
   */
  pause(id: string, durationMs: number): void {
    const node = this.#node(id);
    if (!node.agentUp) return;
    this.log(`${id} paused for ${durationMs} ms`);
    this.#beginPause(node, durationMs);
  }

  /**
   * Ends a pause now (SIGCONT before the planned end). Not a stop inside a step
   * (`pauseInNextBroadcast`): the rest of that step already ran on the planned wake's clock,
   * so the process wakes then (`stepStopEndsAt`).
   */
  resume(id: string): void {
    const node = this.#node(id);
    if (!node.agentUp || !node.paused) return;
    if (this.stepStopEndsAt(id) !== undefined) return;
    node.pauseToken += 1;
    this.#wake(node);
  }

  /** The next vote the node writes stalls for `durationMs` after it is durable (undefined: not). */
  pauseInNextVoteWrite(id: string, durationMs: number | undefined): void {
    const node = this.#node(id);
    node.voteWritePauseMs = durationMs;
    if (durationMs !== undefined)
      this.log(`${id} will stall ${durationMs} ms in its next vote write`);
  }

  /**
   * Runtime mode: the node's next broadcast stops its process for `durationMs` right after
   * the broadcast's first datagram (a SIGSTOP between two `sendto`s of one step). The process
   * resumes with its next `sendto`: the rest of the broadcast asks the control loop's send
   * gate first, then the rest of the step runs, all on the wake's clock (`clockHeldLocal`);
   * what may still go leaves on waking, before the overdue timer and the queued datagrams.
   * Undefined disarms. The core-only mode has no send gate: refused there.
   */
  pauseInNextBroadcast(id: string, durationMs: number | undefined): void {
    if (!this.options.runtime && durationMs !== undefined) {
      throw new Error("pauseInNextBroadcast needs the runtime mode (the control loop's send gate)");
    }
    const node = this.#node(id);
    node.broadcastPauseMs = durationMs;
    if (durationMs !== undefined)
      this.log(`${id} will stop ${durationMs} ms in its next broadcast`);
  }

  /** When a process stopped inside a step wakes (real ms), or undefined. */
  stepStopEndsAt(id: string): number | undefined {
    const node = this.#node(id);
    const held = node.clockHeldLocal;
    if (!node.paused || held === undefined || this.#local(node) >= held) return undefined;
    return node.pausedUntil;
  }

  isPaused(id: string): boolean {
    return this.#node(id).paused;
  }

  /**
   * Runs 1 ms at a time until `id` is stopped (a pause armed for its next broadcast has hit)
   * or `withinMs` have passed; whether it is stopped.
   */
  runUntilPaused(id: string, withinMs: number): boolean {
    const until = this.nowMs + withinMs;
    while (!this.isPaused(id) && this.nowMs < until) this.runUntil(this.nowMs + 1);
    return this.isPaused(id);
  }

  /** Whether the node's agent process runs (a shutting-down agent still does). */
  agentRunning(id: string): boolean {
    return this.#node(id).agentUp;
  }

  /** Whether the machine has a VIP configured, or its agent is probing or adding one. */
  holdsOrAcquires(id: string): boolean {
    const node = this.#node(id);
    return node.addresses.size > 0 || node.probing.size > 0 || node.adding.size > 0;
  }

  /** The node's wall clock (real-time clock), which may jump. */
  wallNowMs(id: string): number {
    return wallEpochMs + this.nowMs + this.#node(id).wallOffsetMs;
  }

  /** Steps the node's wall clock by `deltaMs` (NTP step, an operator, a bad RTC). */
  jumpWallClock(id: string, deltaMs: number): void {
    this.#node(id).wallOffsetMs += deltaMs;
    this.log(`${id} wall clock jumps ${deltaMs > 0 ? "+" : ""}${deltaMs} ms`);
  }

  /** Drops traffic from `from` to `to` (one way). */
  block(from: string, to: string): void {
    this.#blocked.add(`${from}>${to}`);
  }

  unblock(from: string, to: string): void {
    this.#blocked.delete(`${from}>${to}`);
  }

  partition(groups: readonly (readonly string[])[]): void {
    for (const a of groups) {
      for (const b of groups) {
        if (a === b) continue;
        for (const x of a) for (const y of b) this.block(x, y);
      }
    }
    this.log(`partition ${groups.map((g) => g.join(" ")).join(" | ")}`);
  }

  /**
   * Holds every datagram that arrives from `from` to `to` from now on, in arrival order, until
   * `deliverHeld`, `dropHeld` or `release` (message-level control for scenario scripts).
   */
  hold(from: string, to: string): void {
    this.#holding.add(`${from}>${to}`);
    this.log(`hold ${from} -> ${to}`);
  }

  /** Stops holding `from` -> `to` and delivers what was held there, oldest first. */
  release(from: string, to: string): void {
    this.#holding.delete(`${from}>${to}`);
    this.log(`release ${from} -> ${to}`);
    for (const d of this.#held.filter((h) => h.from === from && h.to === to)) {
      this.#takeHeld(d);
      this.#arrive(d.from, d.to, d.message, true);
    }
  }

  /**
   * Delivers the oldest held datagram from `from` to `to` (of message type `type` if given)
   * now; false if there is none.
   */
  deliverHeld(from: string, to: string, type?: string): boolean {
    const d = this.#findHeld(from, to, type);
    if (!d) return false;
    this.#takeHeld(d);
    this.log(`deliver ${describe(d)}`);
    this.#arrive(d.from, d.to, d.message, true);
    return true;
  }

  /** Drops the oldest held datagram from `from` to `to` (of type `type`); false if none. */
  dropHeld(from: string, to: string, type?: string): boolean {
    const d = this.#findHeld(from, to, type);
    if (!d) return false;
    this.#takeHeld(d);
    this.log(`drop ${describe(d)}`);
    return true;
  }

  /** The held datagrams, oldest first, one line each. */
  heldMessages(): string[] {
    return this.#held.map((d) => `${describe(d)}, held since ${d.heldAtMs}`);
  }

  #findHeld(from: string, to: string, type: string | undefined) {
    return this.#held.find(
      (h) => h.from === from && h.to === to && (type === undefined || h.message.type === type),
    );
  }

  #takeHeld(d: HeldDatagram): void {
    this.#held.splice(this.#held.indexOf(d), 1);
  }

  /** Removes every block (delays, loss and duplication are separate faults). */
  heal(): void {
    this.#blocked.clear();
    this.log("network healed");
  }

  setLoss(ratio: number): void {
    this.#lossRatio = ratio;
  }

  setDuplicates(ratio: number): void {
    this.#duplicateRatio = ratio;
  }

  /**
   * One-way delay range for datagrams from `from` to `to` (either undefined: every node),
   * or back to the default with `range` undefined.
   */
  setDelay(range: readonly [number, number] | undefined, from?: string, to?: string): void {
    if (from === undefined && to === undefined) {
      this.#allDelay = range;
      if (range === undefined) this.#linkDelay.clear();
    } else {
      for (const a of from === undefined ? this.nodes.map((n) => n.id) : [from]) {
        for (const b of to === undefined ? this.nodes.map((n) => n.id) : [to]) {
          if (a === b) continue;
          if (range) this.#linkDelay.set(`${a}>${b}`, range);
          else this.#linkDelay.delete(`${a}>${b}`);
        }
      }
    }
    const what = range ? `${range[0]}-${range[1]} ms` : "normal";
    this.log(`delay ${from ?? "*"} -> ${to ?? "*"}: ${what}`);
  }

  /** A share of datagrams also arrives a second time, `rangeMs` later (a stuck queue). */
  setLateCopies(ratio: number, rangeMs: readonly [number, number] = [500, 5000]): void {
    this.#late = ratio > 0 ? { ratio, rangeMs } : undefined;
  }

  /** Delivers `count` datagrams sent earlier (up to a few thousand back) once more, now. */
  replayOld(count: number): void {
    const kept = this.#history.length;
    if (kept === 0) return;
    this.log(`replaying ${count} old datagrams`);
    for (let i = 0; i < count; i += 1) {
      const datagram = this.#history[this.random.int(0, kept)]!;
      this.at(this.nowMs + 1, () => this.#arrive(datagram.from, datagram.to, datagram.message));
    }
  }

  setHealth(id: string, healthy: boolean): void {
    const node = this.#node(id);
    node.healthy = healthy;
    this.log(`${id} health ${healthy ? "up" : "down"}`);
    if (node.core) this.#deliver(node, { type: "health", nowMs: this.#local(node), healthy });
  }

  admin(id: string, command: AdminCommand): void {
    const node = this.#node(id);
    this.log(`${id} admin ${JSON.stringify(command)}`);
    if (node.core) this.#deliver(node, { type: "admin", nowMs: this.#local(node), command });
  }

  shutdown(id: string): void {
    const node = this.#node(id);
    this.log(`${id} shutdown (SIGTERM)`);
    if (!node.core) return;
    this.#deliver(node, { type: "shutdown", nowMs: this.#local(node) });
    // Like the agent: exit once everything is handed over, or after a grace period.
    const incarnation = node.incarnation;
    const deadline = this.nowMs + 2000;
    const poll = () => {
      if (node.incarnation !== incarnation || !node.agentUp) return;
      if (node.core?.drainedForShutdown || this.nowMs >= deadline) {
        this.killAgent(id, 0);
        return;
      }
      this.at(this.nowMs + 10, poll);
    };
    this.at(this.nowMs + 10, poll);
  }

  /** A host outside the cluster configures `vip` (or stops doing so). */
  setForeign(vip: number, present: boolean): void {
    if (present) this.#foreign.add(vip);
    else this.#foreign.delete(vip);
    this.log(`foreign host ${present ? "takes" : "drops"} ${this.options.vips[vip]?.address}`);
  }

  /** Runs events until real time `untilMs`. */
  runUntil(untilMs: number): void {
    while (this.#queue.length > 0 && this.#queue[0]!.at <= untilMs) {
      const entry = this.#pop();
      this.nowMs = entry.at;
      entry.run();
      if (this.violations.length > 0) return;
    }
    this.nowMs = untilMs;
  }

  at(atMs: number, run: () => void): number {
    const seq = ++this.#seq;
    this.#push({ at: Math.max(atMs, this.nowMs), seq, run });
    return seq;
  }

  holders(vip: number): string[] {
    return this.nodes.filter((n) => n.addresses.has(vip)).map((n) => n.id);
  }

  /** Node that holds `vip` now, if exactly one does. */
  holder(vip: number): string | undefined {
    const holders = this.holders(vip);
    return holders.length === 1 ? holders[0] : undefined;
  }

  core(id: string): CoreNode | undefined {
    return this.#node(id).core;
  }

  /** A node whose core is coordinator now (the first in node order), or undefined. */
  coordinator(): string | undefined {
    return this.nodes.find((n) => n.core?.role === "coordinator")?.id;
  }

  localNow(id: string): number {
    return this.#local(this.#node(id));
  }

  log(line: string): void {
    if (this.options.trace) this.trace.push(`${this.nowMs.toString().padStart(6)} ${line}`);
  }

  // ---------------------------------------------------------------- internals

  #node(id: string): SimNode {
    const node = this.#byId.get(id);
    if (!node) throw new Error(`no node ${id} in the simulation`);
    return node;
  }

  /** What the checkers may see: this simulator's bookkeeping, never a core's fields. */
  #world(): World {
    return {
      timers: this.options.timers,
      nodeIds: this.nodes.map((n) => n.id),
      vipAddresses: this.options.vips.map((v) => v.address),
      nowMs: () => this.nowMs,
      localAtMs: (id, realMs) => this.#localAt(this.#node(id), realMs),
      incarnation: (id) => this.#node(id).incarnation,
      machineUp: (id) => this.#node(id).machineUp,
      agentUp: (id) => this.#node(id).agentUp,
      paused: (id) => this.#node(id).paused,
      wokeAtMs: (id) => this.#node(id).wokeAtMs,
      addresses: (id) => this.#node(id).addresses,
      acquiring: (id, vip) => {
        const node = this.#node(id);
        return node.agentUp && (node.probing.has(vip) || node.adding.has(vip));
      },
      addressChanges: () => this.#addressChanges,
    };
  }

  #local(node: SimNode): number {
    return this.#localAt(node, this.nowMs);
  }

  #localAt(node: SimNode, realMs: number): number {
    return Math.floor(node.offset + node.rate * realMs);
  }

  /** Real time at which `node`'s clock shows `localMs`. */
  #realAt(node: SimNode, localMs: number): number {
    return Math.ceil((localMs - node.offset) / node.rate);
  }

  /** A new or dead agent process: nothing paused, queued, deferred or in flight. */
  #resetProcess(node: SimNode): void {
    node.loop?.stop();
    node.loop = undefined;
    node.pausedTasks = [];
    node.socket = [];
    node.paused = false;
    node.pausedUntil = 0;
    node.pauseToken += 1;
    node.pausedInputs = [];
    node.deferredEffects = [];
    node.clockHeldLocal = undefined;
    node.probing.clear();
    node.adding.clear();
  }

  #beginPause(node: SimNode, durationMs: number): void {
    const until = this.nowMs + durationMs;
    if (node.paused) {
      if (until <= node.pausedUntil) return;
    } else {
      node.pauseStartLocal = this.#local(node);
      node.pausedInputs = [];
    }
    node.paused = true;
    node.pausedUntil = until;
    node.pauseToken += 1;
    const token = node.pauseToken;
    const incarnation = node.incarnation;
    this.at(until, () => {
      if (node.pauseToken !== token || node.incarnation !== incarnation || !node.agentUp) return;
      this.#wake(node);
    });
  }

  #wake(node: SimNode): void {
    if (node.loop) {
      this.#wakeProcess(node);
      return;
    }
    node.paused = false;
    node.pausedUntil = 0;
    node.wokeAtMs = this.nowMs;
    const deferred = node.deferredEffects;
    const queued = node.pausedInputs;
    node.deferredEffects = [];
    node.pausedInputs = [];
    this.log(`${node.id} wakes`);
    // The rest of the stalled step: datagrams (late, like a network delay, which leases are
    // built to tolerate) and address changes. It holds no acquisition: a step that writes a
    // vote starts none (the core decides them again after the stall is reported).
    for (const effect of deferred) this.#perform(node, effect);
    const stalledMs = this.#local(node) - node.pauseStartLocal;
    this.#deliver(node, { type: "stall", nowMs: this.#local(node), stalledMs });
    for (const input of queued) this.#deliver(node, { ...input, nowMs: this.#local(node) });
    this.#deliver(node, { type: "tick", nowMs: this.#local(node) });
  }

  #deliver(node: SimNode, input: Input): void {
    const core = node.core;
    if (!core || !node.agentUp) return;
    const loop = node.loop;
    if (loop) {
      if (input.type === "tick" || input.type === "stall") return; // the loop times itself
      if (input.type === "message" && this.options.receive === "on-tick") {
        node.socket.push({ from: input.from, message: input.message as Message });
        return;
      }
      this.#inProcess(node, "io", () => {
        if (input.type === "message") {
          for (const checker of this.#checkers) {
            checker.onDeliver?.(node.id, input.from, input.message as Message);
          }
          node.read += 1;
          loop.receive(input.from, input.message);
        } else {
          loop.step({ ...input, nowMs: this.#local(node) });
        }
      });
      return;
    }
    if (node.paused) {
      if (input.type !== "tick") node.pausedInputs.push(input);
      return;
    }
    if (input.type === "message") {
      for (const checker of this.#checkers) {
        checker.onDeliver?.(node.id, input.from, input.message as Message);
      }
    } else if (input.type === "probe-result") {
      node.probing.delete(input.vip);
    }
    const output = core.step(input);
    for (const event of output.events) this.#onEvent(node, event);
    const effects = output.effects;
    for (let i = 0; i < effects.length; i += 1) {
      const effect = effects[i]!;
      this.#perform(node, effect);
      if (effect.type === "persist-vote" && node.voteWritePauseMs !== undefined) {
        // The vote is durable; the process stalls before the datagrams that follow it.
        const pauseMs = node.voteWritePauseMs;
        node.voteWritePauseMs = undefined;
        this.log(`${node.id} stalls ${pauseMs} ms in a vote write`);
        this.#beginPause(node, pauseMs);
        node.deferredEffects = effects.slice(i + 1);
        break;
      }
    }
    const incarnation = node.incarnation;
    const wakeReal = Math.max(this.#realAt(node, output.wakeAtMs), this.nowMs + 1);
    node.wakeEvent = this.at(wakeReal, () => {
      if (node.incarnation !== incarnation || node.wakeEvent !== wakeSeq) return;
      this.#deliver(node, { type: "tick", nowMs: this.#local(node) });
    });
    const wakeSeq = node.wakeEvent;
    this.#checkSafety();
  }

  // ---------------------------------------------------------------- runtime mode

  /**
   * Runs `task` in the node's agent process: now, or when it wakes if it is paused; never
   * once the process is gone (a new incarnation runs none of the old one's tasks).
   */
  #inProcess(node: SimNode, kind: "out" | "io" | "timer", task: () => void): void {
    if (!node.agentUp || !node.loop) return;
    if (node.paused) {
      node.pausedTasks.push({ kind, run: task });
      return;
    }
    task();
    this.#checkSafety();
  }

  /** A task of this incarnation's process, dropped if the process died meanwhile. */
  #processTask(node: SimNode, kind: "io" | "timer", task: () => void): () => void {
    const incarnation = node.incarnation;
    const loop = node.loop;
    return () => {
      if (node.incarnation !== incarnation || node.loop !== loop) return;
      this.#inProcess(node, kind, task);
    };
  }

  #wakeProcess(node: SimNode): void {
    node.paused = false;
    node.pausedUntil = 0;
    node.wokeAtMs = this.nowMs;
    const tasks = node.pausedTasks;
    node.pausedTasks = [];
    this.log(`${node.id} wakes`);
    // What the stalled step had left (datagrams after a vote write) goes first; then a
    // process stopped in epoll_wait reads its sockets before its timers, one stopped while
    // running runs its overdue timers first: both happen, so a coin decides.
    const ioFirst = this.random.chance(0.5);
    const order = (kind: string) => (kind === "out" ? 0 : (kind === "io") === ioFirst ? 1 : 2);
    const sorted = tasks
      .map((task, i) => ({ task, i }))
      .sort((a, b) => order(a.task.kind) - order(b.task.kind) || a.i - b.i);
    const incarnation = node.incarnation;
    for (const { task } of sorted) {
      if (node.incarnation !== incarnation || !node.agentUp) return;
      this.#inProcess(node, task.kind, task.run);
    }
  }

  #createLoop(node: SimNode, core: CoreNode): ControlLoop {
    const t = this.options.timers;
    const lifetimeMs = this.options.addressLifetimeMs;
    const index = new Map(this.options.vips.map((v, i) => [v.address, i]));
    const vipOf = (address: string) => {
      const vip = index.get(address);
      if (vip === undefined) throw new Error(`${address} is not a VIP of the simulation`);
      return vip;
    };
    const sim = this;
    const incarnation = node.incarnation;
    const sameAgent = () => node.agentUp && node.incarnation === incarnation;
    // The process's clock: held at a stop's wake for the rest of a step it stopped in.
    const now = () => {
      const local = this.#local(node);
      const held = node.clockHeldLocal;
      if (held === undefined || local >= held) {
        node.clockHeldLocal = undefined;
        return local;
      }
      return held;
    };
    const platform: ControlPlatform = {
      now,
      setTimer: (run, delayMs) => {
        const timer = { cancelled: false };
        const dueReal = Math.max(this.#realAt(node, now() + delayMs), this.nowMs);
        const task = this.#processTask(node, "timer", () => {
          if (!timer.cancelled) run();
        });
        this.at(dueReal, task);
        return timer;
      },
      clearTimer: (handle) => {
        if (handle) (handle as { cancelled: boolean }).cancelled = true;
      },
      soon: (run) => {
        this.at(this.nowMs, this.#processTask(node, "io", run));
      },
      send: (to, message, gate) => {
        if (gate === undefined || gate.open()) this.#transmitFromProcess(node, to, message);
      },
      broadcast: (message, gate) =>
        this.#broadcastFromProcess(node, message, gate && (() => gate.open())),
      datagramsSeen: () => node.read,
      drainDatagrams: () => {
        const queued = node.socket;
        node.socket = [];
        for (const { from, message } of queued) {
          if (!sameAgent()) return;
          const heard = () => {
            for (const checker of this.#checkers) checker.onDeliver?.(node.id, from, message);
          };
          // Stopped inside this drain (a vote write): the rest of the batch is handled after
          // the wake, behind what the stalled step still sends; the checkers hear it then.
          if (node.paused) node.pausedTasks.push({ kind: "out", run: heard });
          else heard();
          node.read += 1;
          node.loop?.receive(from, message);
        }
      },
      persistVote: (state) => {
        node.persisted = state;
        if (node.voteWritePauseMs !== undefined) {
          // The vote is durable; the process stalls before the datagrams that follow it.
          const pauseMs = node.voteWritePauseMs;
          node.voteWritePauseMs = undefined;
          this.log(`${node.id} stalls ${pauseMs} ms in a vote write`);
          this.#beginPause(node, pauseMs);
        }
      },
      applyAddresses(changes: readonly AddressChange[], done) {
        const vips = changes.map((c) => vipOf(c.ip));
        const fails = changes.map(
          (c) => c.op === "add" && sim.random.chance(sim.options.addFailureRatio ?? 0),
        );
        for (const [i, vip] of vips.entries()) if (changes[i]!.op === "add") node.adding.add(vip);
        // One `ip -batch`: every change in order, done when the slowest one is.
        let doneAt = sim.nowMs;
        for (const vip of vips) doneAt = Math.max(doneAt, sim.#actionAt(node, vip));
        let outcomes: (Error | undefined)[] = [];
        const reply = sim.#processTask(node, "io", () => done(outcomes));
        sim.at(doneAt, () => {
          outcomes = changes.map((change, i): Error | undefined => {
            const vip = vips[i]!;
            if (change.op === "add") {
              node.adding.delete(vip);
              if (!sameAgent()) return new Error("the agent is gone");
              if (fails[i]) return new Error("injected");
              sim.#addAddress(node, vip);
              return undefined;
            }
            if (node.machineUp) sim.#removeAddress(node, vip);
            return undefined;
          });
          sim.#checkSafety();
          reply();
        });
      },
      probe(_iface, addresses: readonly string[], timeoutMs, done) {
        const vips = addresses.map(vipOf);
        for (const vip of vips) {
          for (const checker of sim.#checkers) checker.onProbeStart?.(node.id, vip);
          node.probing.add(vip);
        }
        const probeReal = Math.ceil(timeoutMs / node.rate);
        let results: ProbeOutcome[] = [];
        const reply = sim.#processTask(node, "io", () => {
          for (const vip of vips) node.probing.delete(vip);
          done(results);
        });
        sim.at(sim.nowMs + probeReal, () => {
          if (!sameAgent()) return;
          results = vips.map((vip): ProbeOutcome => {
            const by = sim.#probeOccupant(node, vip);
            return { occupied: by !== undefined, ...(by ? { mac: by } : {}) };
          });
          reply();
        });
      },
      announce(_iface, addresses: readonly string[], options, done) {
        for (const address of addresses) {
          if (options.stillHeld(address)) {
            sim.announcements.push({ atMs: sim.nowMs, node: node.id, vip: vipOf(address) });
          }
        }
        sim.at(
          sim.nowMs,
          sim.#processTask(node, "io", () => done(undefined)),
        );
      },
      listAddresses: () =>
        [...node.addresses].map((vip) => ({ ip: this.options.vips[vip]!.address })),
      renewLifetimes: (_iface, entries) =>
        entries.map(({ address }) => {
          const vip = vipOf(address);
          if (lifetimeMs === undefined) return undefined;
          if (node.addresses.has(vip)) {
            this.#expireAt(node, vip, this.nowMs + lifetimeMs);
            return undefined;
          }
          // The kernel's RTM_NEWADDR creates a missing address: the renewal brings it back.
          this.log(`${node.id} re-creates ${address} by renewing its lifetime`);
          this.#addAddress(node, vip);
          this.#checkSafety();
          return undefined;
        }),
    };
    return new ControlLoop({
      core,
      platform,
      vips: this.options.vips.map((v) => ({ address: v.address, prefixLength: 24, iface: "sim0" })),
      heartbeatIntervalMs: t.heartbeatIntervalMs,
      probeTimeoutMs: t.probeTimeoutMs,
      garpRepeat: 1,
      garpIntervalMs: 0,
      garpRefreshMs: 0,
      addressLifetimeSec: lifetimeMs === undefined ? 10 ** 6 : lifetimeMs / 1000,
      log: () => {},
      onEvent: (event) => this.#onEvent(node, event),
      recordPhase: (phase, ms, vip) => {
        core.notePhase(phase, ms, vip, platform.now());
        this.options.onPhase?.(node.id, phase, ms);
      },
      ...(this.options.receive === "on-tick" ? { readOnTick: true } : {}),
    });
  }

  #onEvent(node: SimNode, event: CoreEvent): void {
    if (this.options.trace && event.type !== "message-dropped" && event.type !== "failover-phase") {
      this.log(`${node.id} ${describeEvent(event)}`);
    }
  }

  #perform(node: SimNode, effect: Effect): void {
    const incarnation = node.incarnation;
    const sameAgent = () => node.agentUp && node.incarnation === incarnation;
    const t = this.options.timers;
    switch (effect.type) {
      case "persist-vote":
        node.persisted = effect.state;
        return;
      case "send":
        this.#transmit(node, effect.to, effect.message);
        return;
      case "broadcast":
        this.#transmit(node, undefined, effect.message);
        return;
      case "probe-address": {
        const vip = effect.vip;
        for (const checker of this.#checkers) checker.onProbeStart?.(node.id, vip);
        node.probing.add(vip);
        const probeReal = Math.ceil(t.probeTimeoutMs / node.rate);
        this.at(this.nowMs + probeReal, () => {
          if (!sameAgent()) return;
          const by = this.#probeOccupant(node, vip);
          this.#deliver(node, {
            type: "probe-result",
            nowMs: this.#local(node),
            vip,
            occupied: by !== undefined,
            ...(by ? { by } : {}),
          });
        });
        return;
      }
      case "add-address": {
        const vip = effect.vip;
        const fails = this.random.chance(this.options.addFailureRatio ?? 0);
        node.adding.add(vip);
        this.at(this.#actionAt(node, vip), () => {
          if (!sameAgent()) return;
          node.adding.delete(vip);
          if (fails) {
            this.#deliver(node, {
              type: "address-add-failed",
              nowMs: this.#local(node),
              vip,
              reason: "injected",
            });
            return;
          }
          this.#addAddress(node, vip);
          this.#deliver(node, { type: "address-added", nowMs: this.#local(node), vip });
        });
        return;
      }
      case "remove-address": {
        const vip = effect.vip;
        this.at(this.#actionAt(node, vip), () => {
          if (!node.machineUp) return;
          this.#removeAddress(node, vip);
          if (sameAgent()) {
            this.#deliver(node, { type: "address-removed", nowMs: this.#local(node), vip });
          }
        });
        return;
      }
      case "announce":
        this.announcements.push({ atMs: this.nowMs, node: node.id, vip: effect.vip });
        return;
      case "etcd":
        throw new Error("the simulator runs the embedded election only");
      default: {
        const unknown: never = effect;
        throw new Error(`unknown effect ${JSON.stringify(unknown)}`);
      }
    }
  }

  /** A datagram (to one peer, or `to` undefined: every peer) leaves `node`, checkers told. */
  #transmit(node: SimNode, to: string | undefined, message: Message): void {
    node.sent.push({ atMs: this.nowMs, type: message.type });
    for (const checker of this.#checkers) checker.onSend?.(node.id, to, message);
    if (to !== undefined) this.#send(node, to, message);
    else for (const peer of this.nodes) if (peer !== node) this.#send(node, peer.id, message);
  }

  /** Runtime mode: a process stalled in its vote write sends the rest of its step on waking. */
  #transmitFromProcess(node: SimNode, to: string | undefined, message: Message): void {
    const out = () => this.#transmit(node, to, message);
    if (node.paused) node.pausedTasks.push({ kind: "out", run: out });
    else out();
  }

  /**
   * Runtime mode: a broadcast. Armed with `pauseInNextBroadcast`, the process stops after the
   * first datagram; each of the others goes on waking if the loop's gate (`mayContinue`) lets
   * it.
   */
  #broadcastFromProcess(node: SimNode, message: Message, mayContinue?: () => boolean): void {
    const pauseMs = node.broadcastPauseMs;
    if (pauseMs === undefined || node.paused || mayContinue === undefined) {
      this.#transmitFromProcess(node, undefined, message);
      return;
    }
    node.broadcastPauseMs = undefined;
    const [first, ...rest] = this.nodes.filter((peer) => peer !== node);
    if (first && mayContinue()) this.#transmit(node, first.id, message);
    this.log(`${node.id} stops ${pauseMs} ms in a broadcast (${rest.length} datagrams to go)`);
    this.#beginPause(node, pauseMs);
    // The process resumes here: each remaining datagram asks the gate now (on the held
    // clock, before the rest of the step runs) and leaves when the process runs again.
    node.clockHeldLocal = this.#localAt(node, node.pausedUntil);
    for (const peer of rest) {
      if (!mayContinue()) continue;
      node.pausedTasks.push({ kind: "out", run: () => this.#transmit(node, peer.id, message) });
    }
  }

  /** Who answers an occupancy probe of `vip` from `node` now (undefined: nobody). */
  #probeOccupant(node: SimNode, vip: number): string | undefined {
    if (this.options.probeSeesOthers === false) return undefined;
    if (this.#foreign.has(vip)) return "foreign";
    return this.nodes.find((n) => n !== node && n.machineUp && n.addresses.has(vip))?.id;
  }

  #send(from: SimNode, to: string, message: Message): void {
    if (this.#blocked.has(`${from.id}>${to}`)) return;
    if (this.random.chance(this.#lossRatio)) return;
    const copies = this.random.chance(this.#duplicateRatio) ? 2 : 1;
    const [low, high] = this.#linkDelay.get(`${from.id}>${to}`) ??
      this.#allDelay ??
      this.options.delayMs ?? [1, 3];
    for (let i = 0; i < copies; i += 1) {
      const delay = low + this.random.next() * (high - low);
      this.at(this.nowMs + Math.max(1, Math.round(delay)), () =>
        this.#arrive(from.id, to, message),
      );
    }
    const late = this.#late;
    if (late && this.random.chance(late.ratio)) {
      const lateMs = this.random.int(late.rangeMs[0], late.rangeMs[1] + 1);
      this.at(this.nowMs + lateMs, () => this.#arrive(from.id, to, message));
    }
    this.#history[this.#historyNext] = { from: from.id, to, message };
    this.#historyNext = (this.#historyNext + 1) % datagramHistory;
  }

  #arrive(from: string, to: string, message: Message, released = false): void {
    const target = this.#node(to);
    if (!released && this.#holding.has(`${from}>${to}`)) {
      this.#held.push({ from, to, message, heldAtMs: this.nowMs });
      return;
    }
    if (!target.machineUp || this.#blocked.has(`${from}>${to}`)) return;
    this.delivered += 1;
    this.#deliver(target, { type: "message", nowMs: this.#local(target), from, message });
  }

  /**
   * When an address action on (node, vip) completes. Actions on one address run in order,
   * as the agent's adapter serialises them.
   */
  #actionAt(node: SimNode, vip: number): number {
    const [low, high] = this.options.actionMs ?? [1, 4];
    const key = `${node.id}/${vip}`;
    const at = Math.max(
      this.nowMs + this.random.int(low, high + 1),
      (this.#lastActionAt.get(key) ?? 0) + 1,
    );
    this.#lastActionAt.set(key, at);
    return at;
  }

  #addAddress(node: SimNode, vip: number): void {
    node.addresses.add(vip);
    this.#addressChanges += 1;
    const lifetime = this.options.addressLifetimeMs;
    if (lifetime !== undefined) this.#expireAt(node, vip, this.nowMs + lifetime);
    this.#recordHolder(vip);
  }

  #removeAddress(node: SimNode, vip: number): void {
    node.addressExpiryMs.delete(vip);
    if (!node.addresses.delete(vip)) return;
    this.#addressChanges += 1;
    this.#recordHolder(vip);
  }

  /** The kernel drops the address at `atMs` unless a renewal moves the expiry first. */
  #expireAt(node: SimNode, vip: number, atMs: number): void {
    node.addressExpiryMs.set(vip, atMs);
    this.at(atMs, () => {
      if (node.addressExpiryMs.get(vip) !== atMs || !node.addresses.has(vip)) return;
      this.log(`${node.id} loses ${this.options.vips[vip]?.address}: kernel lifetime ran out`);
      this.#removeAddress(node, vip);
    });
  }

  /**
   * The agent's lifetime renewal: every third of the lifetime, while its lease is valid, the
   * held VIPs get a fresh lifetime; a held VIP the kernel already dropped is reported lost.
   * A paused agent renews nothing.
   */
  #scheduleRenewal(node: SimNode): void {
    const lifetime = this.options.addressLifetimeMs!;
    const periodMs = Math.max(250, Math.floor(lifetime / 3));
    const incarnation = node.incarnation;
    const renew = () => {
      if (node.incarnation !== incarnation || !node.agentUp) return;
      this.at(this.nowMs + periodMs, renew);
      const core = node.core;
      if (!core || node.paused) return;
      const nowLocal = this.#local(node);
      if (!core.leaseValid(nowLocal)) return;
      core.ownership().local.forEach((state, vip) => {
        if (state !== "held") return;
        if (node.addresses.has(vip)) this.#expireAt(node, vip, this.nowMs + lifetime);
        else this.#deliver(node, { type: "address-lost", nowMs: nowLocal, vip });
      });
    };
    this.at(this.nowMs + periodMs, renew);
  }

  #recordHolder(vip: number): void {
    const history = this.holderHistory.get(vip)!;
    const holders = this.holders(vip);
    history.push([this.nowMs, holders.length === 1 ? holders[0] : undefined]);
    this.log(`holders of ${this.options.vips[vip]?.address}: ${holders.join(" ") || "none"}`);
  }

  #checkSafety(): void {
    for (const checker of this.#checkers) checker.check?.();
  }

  #violate(kind: ViolationKind, detail: string): void {
    if (this.violations.some((v) => v.kind === kind && v.detail === detail)) return;
    this.violations.push({ atMs: this.nowMs, kind, detail });
    this.log(`VIOLATION ${kind}: ${detail}`);
  }

  // A binary heap keyed by (time, insertion sequence): deterministic ordering.
  #push(entry: QueueEntry): void {
    const q = this.#queue;
    q.push(entry);
    let i = q.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(q[i]!, q[parent]!)) break;
      [q[i], q[parent]] = [q[parent]!, q[i]!];
      i = parent;
    }
  }

  #pop(): QueueEntry {
    const q = this.#queue;
    const top = q[0]!;
    const last = q.pop()!;
    if (q.length > 0) {
      q[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < q.length && before(q[left]!, q[smallest]!)) smallest = left;
        if (right < q.length && before(q[right]!, q[smallest]!)) smallest = right;
        if (smallest === i) break;
        [q[i], q[smallest]] = [q[smallest]!, q[i]!];
        i = smallest;
      }
    }
    return top;
  }
}

function before(a: QueueEntry, b: QueueEntry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export function describeEvent(event: CoreEvent): string {
  switch (event.type) {
    case "role-changed":
      return `becomes ${event.role} in term ${event.term} (${event.reason})`;
    case "coordinator-changed":
      return `sees coordinator ${event.coordinator ?? "none"} in term ${event.term}`;
    case "member-failed":
      return `declares ${event.node} failed (${event.reason})`;
    case "member-recovered":
      return `declares ${event.node} healthy again`;
    case "vip-assigned":
      return `assigns ${event.vip} to ${event.owner ?? "nobody"}: ${event.reason}`;
    case "vip-acquired":
      return `acquires ${event.vip}`;
    case "vip-released":
      return `releases ${event.vip}`;
    case "vip-conflict":
      return `finds ${event.vip} occupied by ${event.by ?? "an unknown host"}`;
    case "address-failed":
      return `address change failed for ${event.vip}: ${event.reason}`;
    case "holding-suspended":
      return `stops holding VIPs: ${event.reason}`;
    case "holding-resumed":
      return "may hold VIPs again";
    case "config-mismatch":
      return `finds ${event.coordinator}'s configuration differs (${event.theirs} vs ${event.own})`;
    case "config-matched":
      return `finds ${event.coordinator}'s configuration matches again`;
    case "stall-detected":
      return `was paused for ${event.stalledMs} ms${event.leaseExpired ? " beyond its lease" : ""}`;
    case "admin-applied":
      return `applies ${JSON.stringify(event.command)}`;
    case "admin-rejected":
      return `rejects ${JSON.stringify(event.command)}: ${event.reason}`;
    case "failover-phase":
      return `${event.phase} took ${event.ms} ms`;
    case "message-dropped":
      return `drops a message from ${event.from}: ${event.reason}`;
    default: {
      const unknown: never = event;
      return JSON.stringify(unknown);
    }
  }
}

/** "n1 -> n2 heartbeat (term 3)": a held datagram as scenario traces show it. */
function describe(d: Datagram): string {
  const term = "term" in d.message ? ` (term ${d.message.term})` : "";
  return `${d.from} -> ${d.to} ${d.message.type}${term}`;
}
