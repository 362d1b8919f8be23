/**
 * What the agent runtime and the control loop need of the node's arbiter: the embedded
 * election (`CoreNode`, src/core/node.ts) or an etcd cluster (`EtcdCore`,
 * src/arbiter/etcd-core.ts). Both are step machines over the same inputs and effects
 * (src/core/types.ts), so the address chain, probes, announcements, lifetime renewal and
 * stall handling of the control loop serve both.
 */
import type { NodeStatus } from "./node.ts";
import type { FailoverPhaseName, Input, Role, StepOutput, TableVersion } from "./types.ts";

export type LocalVipState = "probing" | "adding" | "held" | "removing" | "conflict";

export interface ArbiterCore {
  step(input: Input): StepOutput;
  readonly role: Role;
  readonly term: number;
  readonly coordinator: string | undefined;
  /**
   * True while the node may send nothing: after a stall that outlived its lease, until the
   * VIPs it held are removed (a lease later at most). Datagrams that bypass the core (the
   * services process's) are held to it too.
   */
  readonly sendsWithheld: boolean;
  /** True once a leaving node holds nothing and (if coordinator) has resigned. */
  readonly drainedForShutdown: boolean;
  readonly tableVersion: TableVersion;
  /** Whether this node has `vip` (by index) configured and announced now. */
  holds(vip: number): boolean;
  /** Owner per VIP and this node's local state per VIP (cheap). */
  ownership(): { owners: (string | undefined)[]; local: (LocalVipState | "absent")[] };
  /** Whether this node's lease still covers holding. */
  leaseValid(nowMs: number): boolean;
  status(nowMs: number, options?: { explain?: boolean }): NodeStatus;
  /** A failover phase the runtime timed (probe, address added, announced). */
  notePhase(phase: FailoverPhaseName, ms: number, vip: number, nowMs: number): void;
}
