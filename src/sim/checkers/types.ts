/**
 * What the simulator's invariant checkers see and what they report.
 *
 * A checker recomputes what it checks from what happened in the simulated world: datagrams
 * as the network carried them (send and delivery instants), each node's clock as the
 * simulator runs it, addresses on the virtual interfaces, processes started, paused and
 * killed. It never reads a core's own fields (its lease, role, term or tables): a bug in
 * the core would then check itself. The promises checked are the README's ("Why leases
 * prevent split brain") in terms of these observations.
 *
 * Contract: the simulator calls `onBoot` when an agent process starts, `onSend` when a core
 * emits a datagram (before the network touches it), `onDeliver` when a datagram reaches a
 * core (after any pause, right before the core steps on it), `onProbeStart` when a core asks
 * for an occupancy probe, and `check` after every simulated event. All in real-time order.
 */
import type { Timers } from "../../config/types.ts";
import type { Message } from "../../core/types.ts";

export type ViolationKind =
  /** Two machines have one VIP configured at the same instant. */
  | "two-holders"
  /** A running, unpaused agent keeps a VIP after its independently computed lease ended. */
  | "holder-without-lease"
  /** A node starts to acquire a VIP that another node holds under a lease still running. */
  | "handover-before-expiry"
  /** Two nodes announce themselves coordinator of one term. */
  | "two-coordinators"
  /** A node announces itself coordinator without a majority of votes delivered to it. */
  | "coordinator-without-majority"
  /** A node grants votes to two candidates in one term. */
  | "double-vote"
  /** A node grants a vote within an election timeout of hearing a coordinator. */
  | "vote-too-soon"
  /** A coordinator grants leases with no round a majority acknowledged within the window. */
  | "grant-outside-window"
  | "liveness"
  | "stability";

export type Report = (kind: ViolationKind, detail: string) => void;

/**
 * The simulated world as the simulator runs it. Clock readings are exactly the numbers the
 * node's core is given (`localAtMs`), so checks on one node's clock have no rounding slack.
 */
export interface World {
  readonly timers: Timers;
  readonly nodeIds: readonly string[];
  readonly vipAddresses: readonly string[];
  /** Real (simulated) time now. */
  nowMs(): number;
  /** What `id`'s monotonic clock showed at real time `realMs`. */
  localAtMs(id: string, realMs: number): number;
  incarnation(id: string): number;
  machineUp(id: string): boolean;
  agentUp(id: string): boolean;
  /** The agent process is stopped (SIGSTOP, a long GC, a stall inside a vote write). */
  paused(id: string): boolean;
  /** Real time the agent last woke from a pause (−∞ if it never paused). */
  wokeAtMs(id: string): number;
  /** VIPs configured on the machine's interface now. */
  addresses(id: string): ReadonlySet<number>;
  /** An occupancy probe or an address add for `vip` is under way on the machine. */
  acquiring(id: string, vip: number): boolean;
  /**
   * How many times any machine's addresses or power changed so far: a checker whose verdict
   * depends on those alone need not look again while it stays the same.
   */
  addressChanges(): number;
}

export interface Checker {
  onBoot?(id: string): void;
  onSend?(from: string, to: string | undefined, message: Message): void;
  onDeliver?(to: string, from: string, message: Message): void;
  onProbeStart?(id: string, vip: number): void;
  /** After every simulated event: report whatever is wrong at this instant. */
  check?(): void;
}
