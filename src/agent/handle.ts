/**
 * What the local HTTP API (and through it the CLI) can ask of a running agent. The agent
 * runtime implements it; the API never touches the core or the adapters directly.
 */

import type { NodeStatus } from "../core/node.ts";
import type { AdminCommand, CoreEvent } from "../core/types.ts";
import type { HealthReport } from "../health/check-runner.ts";
import type { FailoverPhase, HistogramSnapshot } from "./histogram.ts";
import type { LoopLagSnapshot } from "./loop-monitor.ts";

export interface AgentEventRecord {
  /** Monotonically increasing id (for `?since=`). */
  readonly id: number;
  /** Wall-clock time, ISO 8601. */
  readonly at: string;
  readonly node: string;
  readonly event: CoreEvent;
}

export interface AgentStatus extends NodeStatus {
  readonly cluster: string;
  readonly profile: string;
  readonly incarnation: number;
  readonly startedAt: string;
  /** floatip's version on this node. */
  readonly version?: string;
  readonly health: HealthReport;
  /** Wall-clock time since when each VIP has had its current owner, as this node saw it. */
  readonly vipSince: Readonly<Record<string, string>>;
  /** Per VIP, its last owners (null: none) as this node saw the table change, oldest first. */
  readonly ownership?: Readonly<Record<string, readonly { owner: string | null; at: string }[]>>;
  /** `arbiter: etcd`: the connection, the session lease and the arbiter's counters. */
  readonly arbiter?: Readonly<Record<string, unknown>>;
  /** The control plane's event-loop lag and stalls. */
  readonly loop?: LoopLagSnapshot;
  /** Status of each capability the node runs (relays, storage, traffic), by name. */
  readonly capabilities?: Readonly<Record<string, unknown>>;
  /**
   * How long each failover phase took on this node, since start: detected, elected and
   * lease-wait as coordinator; probe, address-added and announced as a VIP's new owner.
   */
  readonly failover?: Readonly<Record<FailoverPhase, HistogramSnapshot>>;
  /** Notify hook calls since start: run, coalesced (replaced by a newer one), dropped, failed. */
  readonly hooks?: {
    readonly run: number;
    readonly coalesced: number;
    readonly dropped: number;
    readonly failed: number;
  };
  /** Since this agent process started (counters reset with it, as Prometheus expects). */
  readonly counters?: {
    /** Coordinators this node saw elected (its own elections included). */
    readonly elections: number;
    readonly vipsAcquired: number;
    readonly vipsReleased: number;
    /** Members this node, as coordinator, declared failed. */
    readonly memberFailures: number;
  };
  readonly transport: {
    readonly sent: number;
    readonly received: number;
    readonly dropped: Readonly<Record<string, number>>;
    /** Datagrams the kernel dropped before the agent read them (receive buffer full). */
    readonly kernelDrops?: number | undefined;
    /** Datagrams that could not be sent (the system call failed; with on-tick, a full buffer). */
    readonly sendErrors?: number | undefined;
  };
}

export type AdminResult =
  | { readonly ok: true; readonly forwardedTo: string | undefined }
  | {
      readonly ok: false;
      readonly code:
        | "NO_COORDINATOR"
        | "UNKNOWN_NODE"
        | "UNKNOWN_VIP"
        | "NODE_NOT_ELIGIBLE"
        | "LAST_ELIGIBLE_NODE";
      readonly message: string;
    };

/**
 * Answers may come at once (in the control plane itself, in tests) or over the channel from
 * the services process, where the API runs: callers await each.
 */
export interface AgentHandle {
  status(): AgentStatus | Promise<AgentStatus>;
  /** Applies (coordinator) or forwards (follower) an administrative command. */
  admin(command: AdminCommand): AdminResult | Promise<AdminResult>;
  /** Recent events, oldest first, with id greater than `sinceId`. */
  events(sinceId: number): readonly AgentEventRecord[] | Promise<readonly AgentEventRecord[]>;
  /** Re-reads and validates the config; keeps running on the old one on error. */
  reload(): Promise<{ ok: true } | { ok: false; message: string }>;
}
