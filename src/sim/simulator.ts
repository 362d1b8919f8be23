/**
 * Deterministic simulator: N cores on a virtual clock over a simulated network with delay,
 * loss, duplication, reordering, symmetric and one-way partitions, machine crashes and
 * restarts (new incarnation, persisted vote kept), agent kills that leave addresses behind
 * until a supervisor removes them, per-node clock drift, health flaps, failing `ip` calls and
 * foreign hosts squatting on a VIP. Same seed, same run, bit for bit.
 *
 * Invariants are checked after every event (see `checkSafety`); a violation stops the run
 * and carries the seed and the trace so that `floatip sim --seed S --trace` replays it.
 */
import type { Timers } from "../config/types.ts";
import { CoreNode } from "../core/node.ts";
import type { PlacementVip } from "../core/placement/types.ts";
import { SeededRandom } from "../core/prng.ts";
import type {
  AdminCommand,
  CoreConfig,
  CoreEvent,
  Effect,
  Input,
  Message,
  PersistentState,
} from "../core/types.ts";

export interface SimOptions {
  readonly seed: number;
  readonly nodes: readonly { id: string; weight: number }[];
  readonly vips: readonly PlacementVip[];
  readonly timers: Timers;
  /** One-way network delay range in ms (real time). */
  readonly delayMs?: readonly [number, number];
  readonly lossRatio?: number;
  readonly duplicateRatio?: number;
  /** Time `ip addr add/del` takes (real ms); keep below the lease margin. */
  readonly actionMs?: readonly [number, number];
  /** Chance that an `ip addr add` fails. */
  readonly addFailureRatio?: number;
  /** Apply clock drift (each node's rate within ±clockDriftRatio/2 of real time). */
  readonly drift?: boolean;
  /** Test the checkers: real drift bound, overriding the one the core is told (timers). */
  readonly actualDriftRatio?: number;
  /** False: occupancy probes never see other hosts (lost ARP), so leases alone keep safety. */
  readonly probeSeesOthers?: boolean;
  /** Keep a readable trace (costs memory; on for scenarios and replays). */
  readonly trace?: boolean;
}

export interface Violation {
  readonly atMs: number;
  readonly kind:
    | "two-holders"
    | "holder-without-lease"
    | "two-coordinators"
    | "liveness"
    | "stability";
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
  /** Clock: local = offset + rate × real. */
  rate: number;
  offset: number;
  addresses: Set<number>;
  healthy: boolean;
  wakeEvent: number;
}

interface QueueEntry {
  at: number;
  seq: number;
  run: () => void;
}

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
  #coordinators = new Map<number, string>();
  #lossRatio: number;
  #lastActionAt = new Map<string, number>();
  readonly #config: CoreConfig;

  constructor(options: SimOptions) {
    this.options = options;
    this.random = new SeededRandom(options.seed);
    this.#lossRatio = options.lossRatio ?? 0;
    this.#config = { nodes: options.nodes, vips: options.vips, timers: options.timers };
    const drift = (options.actualDriftRatio ?? options.timers.clockDriftRatio) / 2;
    this.nodes = options.nodes.map((n, index) => ({
      id: n.id,
      index,
      core: undefined,
      machineUp: false,
      agentUp: false,
      incarnation: 0,
      persisted: undefined,
      rate: options.drift === false ? 1 : 1 - drift + this.random.next() * 2 * drift,
      offset: this.random.int(0, 1_000_000),
      addresses: new Set(),
      healthy: true,
      wakeEvent: 0,
    }));
    options.vips.forEach((_, vip) => {
      this.holderHistory.set(vip, [[0, undefined]]);
    });
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
    // The agent's start-up removes VIPs a previous incarnation left behind, before the core runs.
    for (const vip of [...node.addresses]) this.#removeAddress(node, vip);
    node.agentUp = true;
    node.incarnation += 1;
    const random = new SeededRandom(this.random.int(0, 2 ** 31));
    node.core = new CoreNode({
      id,
      config: this.#config,
      random,
      incarnation: node.incarnation,
      nowMs: this.#local(node),
      ...(node.persisted ? { persisted: node.persisted } : {}),
    });
    this.log(`${id} boots (incarnation ${node.incarnation})`);
    this.#deliver(node, { type: "health", nowMs: this.#local(node), healthy: node.healthy });
  }

  /** Power loss: the agent dies and the machine's addresses vanish with it. */
  crash(id: string): void {
    const node = this.#node(id);
    node.machineUp = false;
    node.agentUp = false;
    node.core = undefined;
    for (const vip of [...node.addresses]) this.#removeAddress(node, vip);
    this.log(`${id} crashes`);
  }

  /** SIGKILL of the agent: addresses stay until the supervisor removes them. */
  killAgent(id: string, supervisorDelayMs: number): void {
    const node = this.#node(id);
    node.agentUp = false;
    node.core = undefined;
    this.log(`${id} agent killed (supervisor cleans up in ${supervisorDelayMs} ms)`);
    this.at(this.nowMs + supervisorDelayMs, () => {
      if (node.agentUp) return;
      for (const vip of [...node.addresses]) this.#removeAddress(node, vip);
    });
  }

  /** Drops traffic from `from` to `to` (one way). */
  block(from: string, to: string): void {
    this.#blocked.add(`${from}>${to}`);
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

  heal(): void {
    this.#blocked.clear();
    this.log("network healed");
  }

  setLoss(ratio: number): void {
    this.#lossRatio = ratio;
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

  localNow(id: string): number {
    return this.#local(this.#node(id));
  }

  log(line: string): void {
    if (this.options.trace) this.trace.push(`${this.nowMs.toString().padStart(6)} ${line}`);
  }

  // ---------------------------------------------------------------- internals

  #node(id: string): SimNode {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`no node ${id} in the simulation`);
    return node;
  }

  #local(node: SimNode): number {
    return Math.floor(node.offset + node.rate * this.nowMs);
  }

  /** Real time at which `node`'s clock shows `localMs`. */
  #realAt(node: SimNode, localMs: number): number {
    return Math.ceil((localMs - node.offset) / node.rate);
  }

  #deliver(node: SimNode, input: Input): void {
    const core = node.core;
    if (!core || !node.agentUp) return;
    const output = core.step(input);
    for (const event of output.events) this.#onEvent(node, event);
    for (const effect of output.effects) this.#perform(node, effect);
    const incarnation = node.incarnation;
    const wakeReal = Math.max(this.#realAt(node, output.wakeAtMs), this.nowMs + 1);
    node.wakeEvent = this.at(wakeReal, () => {
      if (node.incarnation !== incarnation || node.wakeEvent !== wakeSeq) return;
      this.#deliver(node, { type: "tick", nowMs: this.#local(node) });
    });
    const wakeSeq = node.wakeEvent;
    this.#checkSafety();
  }

  #onEvent(node: SimNode, event: CoreEvent): void {
    if (event.type === "role-changed" && event.role === "coordinator") {
      const existing = this.#coordinators.get(event.term);
      if (existing !== undefined && existing !== node.id) {
        this.#violate("two-coordinators", `term ${event.term}: ${existing} and ${node.id}`);
      }
      this.#coordinators.set(event.term, node.id);
    }
    if (this.options.trace && event.type !== "message-dropped") {
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
        this.#send(node, effect.to, effect.message);
        return;
      case "broadcast":
        for (const peer of this.nodes) if (peer !== node) this.#send(node, peer.id, effect.message);
        return;
      case "probe-address": {
        const vip = effect.vip;
        const probeReal = Math.ceil(t.probeTimeoutMs / node.rate);
        this.at(this.nowMs + probeReal, () => {
          if (!sameAgent()) return;
          const blind = this.options.probeSeesOthers === false;
          const by = blind
            ? undefined
            : this.#foreign.has(vip)
              ? "foreign"
              : this.nodes.find((n) => n !== node && n.machineUp && n.addresses.has(vip))?.id;
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
        this.at(this.#actionAt(node, vip), () => {
          if (!sameAgent()) return;
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
      default: {
        const unknown: never = effect;
        throw new Error(`unknown effect ${JSON.stringify(unknown)}`);
      }
    }
  }

  #send(from: SimNode, to: string, message: Message): void {
    if (this.#blocked.has(`${from.id}>${to}`)) return;
    if (this.random.chance(this.#lossRatio)) return;
    const copies = this.random.chance(this.options.duplicateRatio ?? 0) ? 2 : 1;
    const [low, high] = this.options.delayMs ?? [1, 3];
    for (let i = 0; i < copies; i += 1) {
      const delay = low + this.random.next() * (high - low);
      this.at(this.nowMs + Math.max(1, Math.round(delay)), () => {
        const target = this.#node(to);
        if (!target.machineUp || this.#blocked.has(`${from.id}>${to}`)) return;
        this.delivered += 1;
        this.#deliver(target, {
          type: "message",
          nowMs: this.#local(target),
          from: from.id,
          message,
        });
      });
    }
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
    this.#recordHolder(vip);
  }

  #removeAddress(node: SimNode, vip: number): void {
    if (!node.addresses.delete(vip)) return;
    this.#recordHolder(vip);
  }

  #recordHolder(vip: number): void {
    const history = this.holderHistory.get(vip)!;
    const holders = this.holders(vip);
    history.push([this.nowMs, holders.length === 1 ? holders[0] : undefined]);
    this.log(`holders of ${this.options.vips[vip]?.address}: ${holders.join(" ") || "none"}`);
  }

  #checkSafety(): void {
    this.options.vips.forEach((vip, index) => {
      const holders = this.holders(index);
      if (holders.length > 1) {
        this.#violate("two-holders", `${vip.address} held by ${holders.join(" and ")}`);
      }
    });
    for (const node of this.nodes) {
      if (!node.core || !node.agentUp || node.addresses.size === 0) continue;
      if (this.#local(node) >= node.core.leaseExpiryMs()) {
        const held = [...node.addresses].map((v) => this.options.vips[v]?.address).join(" ");
        this.#violate("holder-without-lease", `${node.id} holds ${held} after its lease expired`);
      }
    }
  }

  #violate(kind: Violation["kind"], detail: string): void {
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
    case "admin-applied":
      return `applies ${JSON.stringify(event.command)}`;
    case "admin-rejected":
      return `rejects ${JSON.stringify(event.command)}: ${event.reason}`;
    case "message-dropped":
      return `drops a message from ${event.from}: ${event.reason}`;
    default: {
      const unknown: never = event;
      return JSON.stringify(unknown);
    }
  }
}
