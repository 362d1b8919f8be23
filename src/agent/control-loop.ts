/**
 * The control loop: one node's core and the code that performs its effects, on a platform
 * port. The agent runs it on Linux (`LinuxPlatform` in linux-platform.ts: UDP, `ip -batch`,
 * AF_PACKET ARP, netlink, an fsynced state file, Node timers); the simulator runs the very
 * same code on virtual ones (src/sim/runtime-platform.ts), so effect batching, the address
 * chain, lifetime renewal, stall detection and persist-before-send get the swarm's coverage.
 *
 * Effects are performed in order:
 *   persist-vote  written and fsynced synchronously, before any later send of the same step;
 *   send/broadcast over the authenticated UDP transport;
 *   probe-address ARP duplicate-address detection on the VIP's interface;
 *   add/remove-address  one batch per turn, batches serialised;
 *   announce      a burst of gratuitous ARP frames.
 * It also renews the kernel lifetime of held VIPs while the lease is valid (so the kernel
 * drops the VIPs of an agent that dies) and re-announces held VIPs periodically.
 *
 * The port is callback-based, not promise-based: the simulator runs everything in one
 * synchronous event queue, where promise continuations would never get their turn.
 */
import type { SendGate } from "../cluster/udp-transport.ts";
import type { ArbiterCore } from "../core/arbiter.ts";
import type { CoreEvent, Effect, EtcdOp, Input, Message, PersistentState } from "../core/types.ts";
import type { FailoverPhase } from "./histogram.ts";
import { LoopMonitor } from "./loop-monitor.ts";
import type { SchedProbe } from "./sched-probe.ts";

/** One address change of a batch (the same shape `ip -batch` takes). */
export interface AddressChange {
  readonly op: "add" | "del";
  readonly iface: string;
  readonly ip: string;
  readonly prefix: number;
  /** Kernel lifetime for an add. */
  readonly validLftSec?: number;
}

export interface ProbeOutcome {
  readonly occupied: boolean;
  /** Who answered (a MAC address), or why the probe could not tell. */
  readonly mac?: string;
}

/** What the control loop needs from the machine it runs on. */
export interface ControlPlatform {
  /** Monotonic milliseconds (never the wall clock). */
  now(): number;
  setTimer(run: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
  /** Runs `run` after the I/O of this turn (Node: setImmediate). */
  soon(run: () => void): void;
  /** One datagram; `gate`, when given, is asked right before it goes (see SendGate). */
  send(to: string, message: Message, gate?: SendGate): void;
  /**
   * One datagram to every peer. `gate`, when given, is asked before each datagram; false
   * withholds that one (once false, the loop answers false for the rest of the step).
   */
  broadcast(message: Message, gate?: SendGate): void;
  /** Datagrams received or dropped so far: tells when the backlog after a stall is read. */
  datagramsSeen(): number;
  /**
   * `receive: on-tick`: reads every datagram queued on the socket now, each handed to the
   * loop's `receive` before this returns. Required when the loop reads on its tick.
   */
  drainDatagrams?(): void;
  /** Durable before it returns. */
  persistVote(state: PersistentState): void;
  /** Applies the changes in order; `done` gets one outcome per change (undefined: done). */
  applyAddresses(
    changes: readonly AddressChange[],
    done: (outcomes: readonly (Error | undefined)[] | Error) => void,
  ): void;
  /** Probes each address; `done` gets one outcome per address, or the probe's failure. */
  probe(
    iface: string,
    addresses: readonly string[],
    timeoutMs: number,
    done: (outcomes: readonly ProbeOutcome[] | Error) => void,
  ): void;
  /** A gratuitous ARP burst; `stillHeld` is asked before every repeat. */
  announce(
    iface: string,
    addresses: readonly string[],
    options: { repeat: number; intervalMs: number; stillHeld: (address: string) => boolean },
    done: (error: Error | undefined) => void,
  ): void;
  /**
   * Addresses on `iface` now, in canonical text (throws when it cannot tell); `dadFailed`: the
   * kernel's IPv6 duplicate address detection found another host with the address.
   */
  listAddresses(iface: string): readonly ListedAddress[];
  /**
   * Gives each address a fresh kernel lifetime, in one call; one outcome per address
   * (undefined: renewed). Like the kernel's RTM_NEWADDR, it CREATES an address that is
   * missing: callers list first and renew only what is there.
   */
  renewLifetimes(
    iface: string,
    entries: readonly { readonly address: string; readonly prefix: number }[],
    lifetimeSec: number,
  ): readonly (Error | undefined)[];
}

export interface ListedAddress {
  readonly ip: string;
  readonly dadFailed?: boolean;
  /** IPv6: the kernel's DAD still runs on it (services cannot bind it yet). */
  readonly tentative?: boolean;
}

export interface ControlVip {
  readonly address: string;
  readonly prefixLength: number;
  readonly iface: string;
}

export interface ControlLoopOptions {
  readonly core: ArbiterCore;
  readonly platform: ControlPlatform;
  /** Etcd arbiter: performs its writes (src/arbiter/etcd-driver.ts). */
  readonly etcd?: (op: EtcdOp) => void;
  /** VIPs in the core's order. */
  readonly vips: readonly ControlVip[];
  readonly heartbeatIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly garpRepeat: number;
  readonly garpIntervalMs: number;
  /** 0: no periodic re-announcement. */
  readonly garpRefreshMs: number;
  readonly addressLifetimeSec: number;
  readonly log: (level: "debug" | "info" | "warn" | "error", msg: string, fields?: object) => void;
  /** Every core event, in order. */
  readonly onEvent: (event: CoreEvent) => void;
  /** After every step, with its events. */
  readonly afterStep?: (events: readonly CoreEvent[]) => void;
  /** A failover phase this loop timed (probe, address-added, announced). */
  readonly recordPhase?: (phase: FailoverPhase, ms: number, vip: number) => void;
  /** What the kernel says this thread did around a stall (fields of the stall's log line). */
  readonly sched?: SchedProbe;
  /**
   * `receive: on-tick`: datagrams are not read as they arrive (a peer's datagram wakes
   * nobody); every wake-up of the loop first drains the socket (`drainDatagrams`), and the
   * loop wakes at least once per heartbeat interval. A datagram waits at most one interval.
   */
  readonly readOnTick?: boolean;
}

type SingleInput = Exclude<Input, { type: "batch" }>;

export class ControlLoop {
  readonly core: ArbiterCore;
  readonly #p: ControlPlatform;
  readonly #o: ControlLoopOptions;
  readonly #vips: readonly ControlVip[];
  readonly #monitor: LoopMonitor;
  #stopped = false;
  #wakeTimer: unknown;
  #wakeDueMs = 0;
  /** Reading the datagrams queued during a stall: no tick until they are in. */
  #draining = false;
  #stallLogMs = Number.NEGATIVE_INFINITY;
  #stallsUnlogged = 0;
  /**
   * When this step last did something (its start, a datagram, a durable write): a datagram
   * further from it than the stall threshold was composed before a stall and is withheld.
   */
  #sendClockMs = 0;
  /** This step withheld its remaining datagrams (see #gate). */
  #sendsCut = false;
  /** Datagrams withheld since the last stall line (they go into it). */
  #withheldSinceLog = 0;
  /** What the transport asks before each datagram (see #freshSend). */
  readonly #gate: SendGate;
  #renewTimer: unknown;
  #refreshTimer: unknown;
  /** Effects collected during one turn of the event loop, performed together (see #flush). */
  #pending = {
    addresses: [] as { vip: number; op: "add" | "del" }[],
    probes: new Set<number>(),
    announce: new Set<number>(),
  };
  #flushScheduled = false;
  /** Address batches and renewals, one after the other, in order. */
  #chainQueue: ((next: () => void) => void)[] = [];
  #chainBusy = false;
  #idleWaiters: (() => void)[] = [];
  /** When each VIP was added here, until its first announcement (the `announced` phase). */
  readonly #addedAtMs = new Map<number, number>();

  constructor(options: ControlLoopOptions) {
    this.core = options.core;
    this.#p = options.platform;
    this.#o = options;
    this.#vips = options.vips;
    this.#monitor = new LoopMonitor(options.heartbeatIntervalMs);
    this.#gate = {
      open: () => this.#freshSend(),
      // A stall threshold between the decision and the system call: stopped there.
      withinMs: this.#monitor.stallThresholdMs,
      late: () => {
        this.#sendsCut = true;
        this.#withheld();
      },
    };
    if (options.readOnTick && options.platform.drainDatagrams === undefined) {
      throw new Error("ControlLoop: readOnTick needs a platform with drainDatagrams");
    }
  }

  get monitor(): LoopMonitor {
    return this.#monitor;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Starts the periodic work: lifetime renewal and re-announcement. */
  start(): void {
    const lifetimeMs = this.#o.addressLifetimeSec * 1000;
    const renewEvery = Math.max(250, Math.floor(lifetimeMs / 3));
    const renew = () => {
      if (this.#stopped) return;
      this.#renewTimer = this.#p.setTimer(renew, renewEvery);
      this.#renewHeld();
    };
    this.#renewTimer = this.#p.setTimer(renew, renewEvery);
    const refreshMs = this.#o.garpRefreshMs;
    if (refreshMs > 0) {
      const refresh = () => {
        if (this.#stopped) return;
        this.#refreshTimer = this.#p.setTimer(refresh, refreshMs);
        this.#refreshAnnouncements();
      };
      this.#refreshTimer = this.#p.setTimer(refresh, refreshMs);
    }
  }

  /** Stops timers and steps; address changes already queued still run (see `idle`). */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#p.clearTimer(this.#wakeTimer);
    this.#p.clearTimer(this.#renewTimer);
    this.#p.clearTimer(this.#refreshTimer);
    this.#wakeTimer = undefined;
  }

  /** Resolves once every queued address change (and renewal) has run. */
  idle(): Promise<void> {
    if (!this.#chainBusy && this.#chainQueue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Whether a datagram that bypasses the core may go out now (the services process's). An
   * overdue wake timer is a stall this process has not reported yet: it goes to the core
   * first (as for every input), so a node whose stall outlived its lease sends nothing until
   * it has removed its VIPs.
   */
  maySendNow(): boolean {
    if (this.#stopped) return false;
    this.#catchStall(this.#p.now());
    return !this.core.sendsWithheld;
  }

  /** A datagram from a peer. */
  receive(from: string, message: Extract<Input, { type: "message" }>["message"]): void {
    this.step({ type: "message", nowMs: this.#p.now(), from, message });
  }

  step(input: Input): void {
    if (this.#stopped) return;
    if (input.type !== "tick" && input.type !== "stall") this.#catchStall(input.nowMs);
    // The core's own work counts: a stop while it composed is a stop before its datagrams.
    const begunMs = this.#p.now();
    const output = this.core.step(input);
    for (const event of output.events) this.#o.onEvent(event);
    this.#sendClockMs = begunMs;
    this.#sendsCut = false;
    for (const effect of output.effects) this.#perform(effect);
    if (!this.#draining) this.#armWake(output.wakeAtMs);
    this.#o.afterStep?.(output.events);
  }

  #armWake(wakeAtMs: number): void {
    // Reading on the tick: nothing else wakes the loop for a datagram, so wake at least once
    // an interval whatever the core asks (it asks for the next heartbeat in steady state).
    const dueMs = this.#o.readOnTick
      ? Math.min(wakeAtMs, this.#p.now() + this.#o.heartbeatIntervalMs)
      : wakeAtMs;
    // Most datagrams leave the next wake where it was (the next heartbeat): keep that timer
    // instead of allocating a new one per datagram.
    if (dueMs === this.#wakeDueMs && this.#wakeTimer !== undefined) return;
    this.#p.clearTimer(this.#wakeTimer);
    this.#wakeDueMs = dueMs;
    this.#wakeTimer = this.#p.setTimer(() => this.#onWake(), Math.max(0, dueMs - this.#p.now()));
  }

  /**
   * The wake timer fired. After a stall, timers run before the poll phase that reads the
   * datagrams which queued up meanwhile, so a plain tick now would judge peers by a silence
   * that was ours. Instead: tell the core first (it shifts its failure detection past the
   * stall and, if the lease ran out, releases before it sends anything), then read what
   * queued up, and only then tick.
   */
  #onWake(): void {
    this.#wakeTimer = undefined;
    if (this.#stopped) return;
    const nowMs = this.#p.now();
    const lateMs = nowMs - this.#wakeDueMs;
    if (!this.#monitor.record(lateMs)) {
      this.#o.sched?.tick(nowMs);
      if (this.#o.readOnTick) {
        // What arrived since the last wake-up first, so the tick judges no peer by a silence
        // that sat unread in the socket.
        this.#draining = true;
        this.#p.drainDatagrams!();
        this.#draining = false;
        this.step({ type: "tick", nowMs: this.#p.now() });
        return;
      }
      this.step({ type: "tick", nowMs });
      return;
    }
    this.#logStall(lateMs);
    this.step({ type: "stall", nowMs, stalledMs: lateMs });
    this.#afterStall();
  }

  /**
   * A stall noticed by an input instead of the wake timer. A process stopped inside
   * `epoll_wait` resumes in libuv's poll phase: the datagrams that queued up meanwhile are
   * handled before the overdue timer runs, and a holder whose lease ran out would answer
   * them (a heartbeat out) before it released. So every input first checks the wake timer:
   * overdue by the stall threshold means this process was paused, and the stall goes to the
   * core before the input does, exactly as if the timer had fired first.
   */
  #catchStall(nowMs: number): void {
    if (this.#wakeTimer === undefined || this.#draining) return;
    const lateMs = nowMs - this.#wakeDueMs;
    if (lateMs < this.#monitor.stallThresholdMs) return;
    this.#p.clearTimer(this.#wakeTimer);
    this.#wakeTimer = undefined;
    this.#monitor.record(lateMs);
    this.#logStall(lateMs);
    this.#afterStall(); // draining from here on: the tick comes after the queued datagrams
    this.step({ type: "stall", nowMs, stalledMs: lateMs });
  }

  /**
   * Reads the datagrams queued during a stall before the next tick: libuv reads a bounded
   * number per socket per loop turn, so hop through turns (after the poll phase) while
   * datagrams keep arriving, at most 32 turns.
   */
  #afterStall(): void {
    this.#draining = true;
    if (this.#o.readOnTick) {
      // Nothing read the socket during the stall: drain it now, then tick.
      this.#p.soon(() => {
        if (this.#stopped) return;
        this.#p.drainDatagrams!();
        this.#draining = false;
        this.step({ type: "tick", nowMs: this.#p.now() });
      });
      return;
    }
    let hops = 0;
    let seen = -1;
    const hop = () => {
      const count = this.#p.datagramsSeen();
      if (count !== seen && hops < 32 && !this.#stopped) {
        seen = count;
        hops += 1;
        this.#p.soon(hop);
        return;
      }
      this.#draining = false;
      this.step({ type: "tick", nowMs: this.#p.now() });
    };
    this.#p.soon(hop);
  }

  /** One warning per stall, at most one a second (with the count of the rest). */
  #logStall(lateMs: number): void {
    const nowMs = this.#p.now();
    if (nowMs - this.#stallLogMs < 1000) {
      this.#stallsUnlogged += 1;
      return;
    }
    this.#o.log("warn", "control plane stalled (process pause detected)", {
      stalledMs: lateMs,
      thresholdMs: this.#monitor.stallThresholdMs,
      ...this.#o.sched?.explain(nowMs),
      ...(this.#stallsUnlogged > 0 ? { stallsNotLogged: this.#stallsUnlogged } : {}),
      ...(this.#withheldSinceLog > 0 ? { datagramsWithheld: this.#withheldSinceLog } : {}),
    });
    this.#stallLogMs = nowMs;
    this.#stallsUnlogged = 0;
    this.#withheldSinceLog = 0;
  }

  /**
   * Whether the next datagram of this step may go out. A process stopped (SIGSTOP, a pause of
   * the VM, a long reclaim) between two sends of one step resumes with the next send, before
   * its wake timer can tell the core of the stall: a datagram composed before the stall would
   * leave after it, from a node whose lease may have run out meanwhile. So when the gap since
   * the step's previous action reaches the stall threshold, this datagram and every later one
   * of the step are withheld (to the peers, a lost datagram); the overdue wake timer then hands
   * the core the stall, as for any other stall. A durable write (the vote file) restarts the
   * clock: an fsync may be slow without the process having stopped.
   */
  #freshSend(): boolean {
    if (this.#sendsCut) {
      this.#withheld();
      return false;
    }
    const nowMs = this.#p.now();
    if (nowMs - this.#sendClockMs >= this.#monitor.stallThresholdMs) {
      this.#sendsCut = true;
      this.#withheld();
      return false;
    }
    this.#sendClockMs = nowMs;
    return true;
  }

  #withheld(): void {
    this.#withheldSinceLog += 1;
    this.#monitor.recordWithheld();
  }

  #perform(effect: Effect): void {
    switch (effect.type) {
      case "persist-vote":
        this.#p.persistVote(effect.state);
        this.#sendClockMs = this.#p.now();
        return;
      case "send":
        this.#p.send(effect.to, effect.message, this.#gate);
        return;
      case "broadcast":
        this.#p.broadcast(effect.message, this.#gate);
        return;
      case "probe-address":
        this.#pending.probes.add(effect.vip);
        this.#scheduleFlush();
        return;
      case "add-address":
        this.#pending.addresses.push({ vip: effect.vip, op: "add" });
        this.#scheduleFlush();
        return;
      case "remove-address":
        this.#pending.addresses.push({ vip: effect.vip, op: "del" });
        this.#scheduleFlush();
        return;
      case "announce":
        this.#pending.announce.add(effect.vip);
        this.#scheduleFlush();
        return;
      case "etcd":
        if (!this.#o.etcd) throw new Error("an etcd effect without an etcd arbiter");
        this.#o.etcd(effect.op);
        return;
      default: {
        const unknown: never = effect;
        throw new Error(`unknown effect ${JSON.stringify(unknown)}`);
      }
    }
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    this.#p.soon(() => this.#flush());
  }

  /**
   * Performs the effects of this turn together: one batch for every address change (after
   * the previous batch, so a remove never overtakes the add before it), one ARP probe socket
   * per interface for every VIP to probe, one announcement burst per interface. A thousand
   * VIPs then cost a handful of system calls instead of thousands of processes.
   */
  #flush(): void {
    this.#flushScheduled = false;
    if (this.#stopped) return;
    // The process may have been paused between the step that queued these effects and now
    // (a stop between two phases of one loop turn runs the flush before the overdue timer):
    // report the stall first, so that the core releases what its lease no longer covers, and
    // then perform only what the core still wants. Found by the simulator's runtime mode: a
    // coordinator paused right after deciding to acquire probed, on waking 6.5 s later, VIPs
    // other nodes held under their leases.
    this.#catchStall(this.#p.now());
    const { addresses, probes, announce } = this.#pending;
    this.#pending = { addresses: [], probes: new Set(), announce: new Set() };
    const local = this.core.ownership().local;
    const wanted = addresses.filter(({ vip, op }) => op === "del" || local[vip] === "adding");
    // A probe whose result the core would discard (it acquires only under a valid lease) is
    // not sent: the core gets that result at once instead, and probes again once it may hold.
    const nowMs = this.#p.now();
    const mayAcquire = probes.size > 0 && this.core.leaseValid(nowMs);
    const live = [...probes].filter((vip) => local[vip] === "probing");
    const probing = mayAcquire ? live : [];
    if (wanted.length > 0) this.#chain((next) => this.#applyAddresses(wanted, next));
    if (!mayAcquire && live.length > 0) {
      const by = "not probed: the lease ran out before the probe was sent";
      this.step({
        type: "batch",
        nowMs,
        inputs: live.map((vip) => ({ type: "probe-result", nowMs, vip, occupied: true, by })),
      });
    }
    if (probing.length > 0) this.#probe(probing);
    if (announce.size > 0) this.#announce([...announce], this.#o.garpRepeat);
  }

  /** Runs `task` after every address change queued before it; `task` calls `next` when done. */
  #chain(task: (next: () => void) => void): void {
    this.#chainQueue.push(task);
    if (!this.#chainBusy) this.#runChain();
  }

  #runChain(): void {
    const task = this.#chainQueue.shift();
    if (!task) {
      this.#chainBusy = false;
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const resolve of waiters) resolve();
      return;
    }
    this.#chainBusy = true;
    let called = false;
    const next = () => {
      if (called) return;
      called = true;
      this.#runChain();
    };
    try {
      task(next);
    } catch (error) {
      this.#o.log("error", "an address batch failed", { error: describe(error) });
      next();
    }
  }

  #applyAddresses(batch: readonly { vip: number; op: "add" | "del" }[], next: () => void): void {
    const changes: AddressChange[] = batch.map(({ vip, op }) => {
      const spec = this.#vips[vip]!;
      return {
        op,
        iface: spec.iface,
        ip: spec.address,
        prefix: spec.prefixLength,
        ...(op === "add" ? { validLftSec: this.#o.addressLifetimeSec } : {}),
      };
    });
    const startedMs = this.#p.now();
    this.#p.applyAddresses(changes, (outcomes) => {
      try {
        if (outcomes instanceof Error) {
          this.#o.log("error", "an address batch failed", { error: outcomes.message });
          return;
        }
        const nowMs = this.#p.now();
        batch.forEach(({ vip, op }, i) => {
          if (op !== "add" || outcomes[i]) return;
          this.#o.recordPhase?.("address-added", nowMs - startedMs, vip);
          this.#addedAtMs.set(vip, nowMs);
        });
        const inputs = batch.map(({ vip, op }, i): SingleInput => {
          const failure = outcomes[i];
          if (op === "add") {
            return failure
              ? { type: "address-add-failed", nowMs, vip, reason: failure.message }
              : { type: "address-added", nowMs, vip };
          }
          return failure
            ? { type: "address-remove-failed", nowMs, vip, reason: failure.message }
            : { type: "address-removed", nowMs, vip };
        });
        this.step({ type: "batch", nowMs, inputs });
      } finally {
        next();
      }
    });
  }

  #probe(vips: readonly number[]): void {
    const byInterface = new Map<string, number[]>();
    for (const vip of vips) {
      const iface = this.#vips[vip]!.iface;
      byInterface.set(iface, [...(byInterface.get(iface) ?? []), vip]);
    }
    for (const [iface, group] of byInterface) {
      const addresses = group.map((vip) => this.#vips[vip]!.address);
      const startedMs = this.#p.now();
      this.#p.probe(iface, addresses, this.#o.probeTimeoutMs, (outcome) => {
        // Without a working probe we cannot know an address is free: treat it as occupied.
        const results: readonly ProbeOutcome[] =
          outcome instanceof Error
            ? group.map(() => ({ occupied: true, mac: `probe failed: ${outcome.message}` }))
            : outcome;
        const nowMs = this.#p.now();
        for (const vip of group) this.#o.recordPhase?.("probe", nowMs - startedMs, vip);
        const inputs = group.map((vip, i): SingleInput => {
          const result = results[i] ?? { occupied: true, mac: "probe returned no result" };
          return {
            type: "probe-result",
            nowMs,
            vip,
            occupied: result.occupied,
            ...(result.mac ? { by: result.mac } : {}),
          };
        });
        this.step({ type: "batch", nowMs, inputs });
      });
    }
  }

  #announce(vips: readonly number[], repeat: number): void {
    const byInterface = new Map<string, string[]>();
    const indexOf = new Map(vips.map((vip) => [this.#vips[vip]!.address, vip]));
    const nowMs = this.#p.now();
    for (const vip of vips) {
      const addedAt = this.#addedAtMs.get(vip);
      if (addedAt !== undefined) {
        // The first announcement of a fresh acquisition leaves now (a burst sends its first
        // frames before it waits).
        this.#o.recordPhase?.("announced", nowMs - addedAt, vip);
        this.#addedAtMs.delete(vip);
      }
      const spec = this.#vips[vip]!;
      byInterface.set(spec.iface, [...(byInterface.get(spec.iface) ?? []), spec.address]);
    }
    // One interface after the other, as one burst at a time.
    const queue = [...byInterface];
    const nextInterface = () => {
      const entry = queue.shift();
      if (!entry) return;
      const [iface, addresses] = entry;
      this.#p.announce(
        iface,
        addresses,
        {
          repeat,
          intervalMs: this.#o.garpIntervalMs,
          stillHeld: (address) => !this.#stopped && this.core.holds(indexOf.get(address) ?? -1),
        },
        (error) => {
          if (error) {
            this.#o.log("warn", "gratuitous ARP failed", {
              interface: iface,
              error: error.message,
            });
          }
          nextInterface();
        },
      );
    };
    nextInterface();
  }

  /**
   * Keeps the kernel lifetime of held VIPs ahead: one listing per interface and one renewal
   * per VIP, run in the address chain and checked again right before it that each VIP is
   * still held under a valid lease: a renewal re-creates a missing address, so a renewal
   * that overtook a release would bring the released VIP back for a whole lifetime, next to
   * its new owner. A held VIP the kernel already dropped is lost.
   */
  #renewHeld(): void {
    this.#chain((next) => {
      try {
        if (this.#stopped || !this.core.leaseValid(this.#p.now())) return;
        const byInterface = new Map<string, number[]>();
        this.core.ownership().local.forEach((state, vip) => {
          if (state !== "held") return;
          const iface = this.#vips[vip]!.iface;
          byInterface.set(iface, [...(byInterface.get(iface) ?? []), vip]);
        });
        for (const [iface, vips] of byInterface) this.#renewOn(iface, vips);
      } finally {
        next();
      }
    });
  }

  /**
   * One listing and one request per VIP, in this process: renewals run every third of the
   * address lifetime on every node, so they must not spawn processes. On Linux these are
   * netlink requests on one local socket with a receive timeout (one socket for all of an
   * interface's VIPs: a socket per VIP held a 1,000-VIP control loop ~40 ms every round), and
   * they cannot hang.
   */
  #renewOn(iface: string, vips: readonly number[]): void {
    let present: Map<string, ListedAddress>;
    try {
      present = new Map(this.#p.listAddresses(iface).map((a) => [a.ip, a]));
    } catch (error) {
      this.#o.log("warn", "cannot list addresses to renew lifetimes", {
        interface: iface,
        error: describe(error),
      });
      return;
    }
    const renew: number[] = [];
    for (const vip of vips) {
      const spec = this.#vips[vip]!;
      const listed = present.get(spec.address);
      if (listed === undefined) {
        this.#o.log("warn", "a held VIP vanished from its interface", { vip: spec.address });
        this.step({ type: "address-lost", nowMs: this.#p.now(), vip });
        continue;
      }
      if (listed.dadFailed) {
        // floatip adds IPv6 VIPs with nodad; a `dadfailed` address was re-added by someone
        // else (permanent: the kernel deletes one with a finite lifetime that fails DAD, which
        // shows here as a vanished VIP) and another host answered: the address is in use
        // elsewhere. Let it go; the core probes before it takes the VIP again and reports the
        // conflict.
        this.#o.log("error", "duplicate address detected: another host answers for this VIP", {
          vip: spec.address,
          interface: iface,
          detectedBy: "kernel DAD (dadfailed)",
        });
        this.#chain((next) =>
          this.#p.applyAddresses(
            [{ op: "del", iface, ip: spec.address, prefix: spec.prefixLength }],
            () => next(),
          ),
        );
        this.step({ type: "address-lost", nowMs: this.#p.now(), vip });
        continue;
      }
      if (listed.tentative) {
        // Added without nodad by someone else: the kernel's DAD decides within about a
        // second (a failure is handled above on the next renewal).
        this.#o.log(
          "warn",
          "a held VIP is tentative: the kernel's duplicate address detection runs on it",
          {
            vip: spec.address,
            interface: iface,
          },
        );
      }
      renew.push(vip);
    }
    if (renew.length === 0) return;
    let outcomes: readonly (Error | undefined)[];
    try {
      outcomes = this.#p.renewLifetimes(
        iface,
        renew.map((vip) => ({
          address: this.#vips[vip]!.address,
          prefix: this.#vips[vip]!.prefixLength,
        })),
        this.#o.addressLifetimeSec,
      );
    } catch (error) {
      this.#o.log("warn", "renewing VIP lifetimes failed", {
        interface: iface,
        vips: renew.length,
        error: describe(error),
      });
      return;
    }
    renew.forEach((vip, i) => {
      const failure = outcomes[i];
      if (failure === undefined) return;
      this.#o.log("warn", "renewing a VIP lifetime failed", {
        vip: this.#vips[vip]!.address,
        error: describe(failure),
      });
    });
  }

  #refreshAnnouncements(): void {
    const held = this.core
      .ownership()
      .local.map((state, i) => (state === "held" ? i : -1))
      .filter((i) => i >= 0);
    if (held.length > 0) this.#announce(held, 1);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
