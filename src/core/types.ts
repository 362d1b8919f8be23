/**
 * The vocabulary of the floatip core: what goes in (`Input`), what comes out (`Effect`,
 * `CoreEvent`) and what the nodes say to each other (`Message`). All plain data, so the same
 * core runs under the simulator and the agent runtime, and every run can be replayed.
 *
 * Ordering contract for the runtime (like raft's `Ready`): perform `effects` in array order.
 * `persist-vote` must be durable before any later `send`/`broadcast` of the same step goes
 * out. Address effects may complete asynchronously; their completion comes back as an
 * input (`address-added`, `address-removed`, `probe-result`…). Call `step` again with a
 * `tick` no later than `wakeAtMs` (monotonic, milliseconds).
 */
import type { HeartbeatFanout, Timers } from "../config/types.ts";
import type { PlacementVip } from "./placement/types.ts";

export type Role = "follower" | "candidate" | "coordinator";

export interface CoreNodeSpec {
  readonly id: string;
  readonly weight: number;
}

/** What the core needs from the cluster configuration (same on every node). */
export interface CoreConfig {
  readonly nodes: readonly CoreNodeSpec[];
  readonly vips: readonly PlacementVip[];
  readonly timers: Timers;
  /**
   * Fingerprint of the cluster-wide part of the configuration (nodes, VIPs in order, timers),
   * sent in every heartbeat. Tables index nodes and VIPs by configuration order, so a node
   * whose fingerprint differs from the coordinator's holds nothing, and the coordinator
   * counts it failed, until they match. Absent: "" (the simulator's nodes all agree).
   */
  readonly fingerprint?: string;
  /** This node's software version, reported in its heartbeats' view (display only). */
  readonly version?: string;
  /**
   * Who a node's heartbeats go to. `all` (default): every node to every other node.
   * `coordinator`: a follower that hears its coordinator sends to the coordinator only (the
   * coordinator still sends to every node), and counts the nodes the coordinator reports
   * hearing as heard; without a timely coordinator heartbeat it sends to every node again.
   * Datagrams per cluster grow with n instead of n²; links between followers are not
   * monitored. Cluster-wide: part of the fingerprint when not `all`.
   */
  readonly heartbeats?: HeartbeatFanout;
  /**
   * The runtime reads datagrams on its tick (`receive: on-tick`): a message is read up to one
   * heartbeat interval after it arrived, so check-quorum allows acknowledgements an interval
   * more (`checkQuorumWindowMs`). Local to the node: not part of the fingerprint.
   */
  readonly readOnTick?: boolean;
}

export type { HeartbeatFanout };

/** Injected source of chance: uniform in [0, 1). Seeded in the simulator. */
export interface Random {
  next(): number;
}

/** What survives a restart of the agent (written by `persist-vote`). */
export interface PersistentState {
  readonly term: number;
  readonly votedFor: string | undefined;
}

export type AdminCommand =
  | { readonly type: "move"; readonly vip: string; readonly node: string }
  | { readonly type: "unpin"; readonly vip: string }
  | {
      readonly type: "drain";
      readonly node: string;
      /** Drain even the last eligible node (every VIP is then left without a holder). */
      readonly force?: boolean;
    }
  | { readonly type: "undrain"; readonly node: string };

/** Table version: ordered by term, then version within the term. */
export type TableVersion = readonly [term: number, version: number];

/** Member state codes in the published table. */
export type MemberStateCode = "healthy" | "failed" | "drained";

/**
 * The VIP table the coordinator publishes with every heartbeat. Indexes refer to the
 * configuration order of nodes and VIPs (identical on all nodes: the config is shared).
 */
export interface VipTable {
  readonly version: TableVersion;
  /** Owner node index per VIP, -1 = unassigned (or being moved: waiting for a release). */
  readonly owners: readonly number[];
  /** Administrative pins: [vip index, node index]. */
  readonly pins: readonly (readonly [number, number])[];
  /** Drained node indexes. */
  readonly drained: readonly number[];
  readonly roundRobinCursor: number;
  /** Member state per node index, as decided by the coordinator. */
  readonly members: readonly MemberStateCode[];
  /**
   * Why each VIP got its owner, one character per VIP (`reasonCodes` in placement/types.ts),
   * as the coordinator decided when it assigned it: followers explain with it. Display only.
   */
  readonly why?: string;
}

export interface HeartbeatMessage {
  readonly type: "heartbeat";
  readonly term: number;
  readonly role: Role;
  readonly incarnation: number;
  /** Per-incarnation heartbeat counter; a coordinator's grant echoes it. */
  readonly seq: number;
  /** Own health (S2 self-checks, S1 rbd connection). */
  readonly healthy: boolean;
  /** The node is shutting down for good and holds nothing. */
  readonly leaving: boolean;
  /** Whether this node hears a majority of the configured nodes (an S1 observation). */
  readonly quorum: boolean;
  /** Peers this node hears right now (S1: failure observations are shared). */
  readonly hears: readonly string[];
  /** VIP indexes this node may have configured (probing, adding, held or removing). */
  readonly holding: readonly number[];
  /** VIP indexes this node found occupied by a foreign host. */
  readonly conflicts: readonly number[];
  /** Version of the VIP table this node has applied. */
  readonly tableVersion: TableVersion;
  /** Latest coordinator round received in `term` (check-quorum acknowledgement). */
  readonly roundSeen: number;
  /** Fingerprint of the sender's cluster-wide configuration (CoreConfig.fingerprint). */
  readonly config?: string;
  /** Coordinator only: heartbeat round number within the term. */
  readonly round?: number;
  /** Coordinator only: the VIP table. */
  readonly table?: VipTable;
  /** Coordinator only: lease grants, node id -> [incarnation, seq] of the heartbeat echoed. */
  readonly grants?: Readonly<Record<string, readonly [number, number]>>;
  /** Coordinator only: it is stepping down for good (shutdown); followers may elect at once. */
  readonly resign?: boolean;
  /** The sender's own view, for operators (`floatip status --cluster`); decides nothing. */
  readonly view?: HeartbeatView;
}

/** What a node reports of its own view in its heartbeats (display only). */
export interface HeartbeatView {
  /** The coordinator it follows in its term (absent: none). */
  readonly coordinator?: string;
  /** Its lease's remaining time when it sent the heartbeat, ms (0: no valid lease). */
  readonly leaseLeftMs: number;
  /** Per peer it has heard: ms since it last heard that peer, when it sent the heartbeat. */
  readonly heardMs: Readonly<Record<string, number>>;
  /**
   * [VIP index, ms it has held it] for every VIP it holds; sent about once a second and when
   * what it holds changes, so every node shows the owner's own "since".
   */
  readonly held?: readonly (readonly [number, number])[];
  /**
   * Per peer, the heartbeats it missed from that peer in the last `missWindowMs` (gaps in
   * what arrived, and the silence now); peers with none are left out, and so is the field.
   */
  readonly missed?: Readonly<Record<string, number>>;
  /** Its software version; sent with `held`, about once a second. */
  readonly version?: string;
  /**
   * The failover phases it timed in the last minute (at most 24, newest last), each
   * [phase code (index in `failoverPhaseCodes`), ms it took, ms ago it ended, VIP index or -1,
   * index of the node found failed or -1]; sent when one is added and with `held`. Every node
   * shows the same failover timeline from these: the coordinator's phases and the owner's.
   */
  readonly phases?: readonly (readonly [number, number, number, number, number])[];
}

/** Failover phases in order: three on the coordinator, three on the new owner. */
export const failoverPhaseCodes = [
  "detected",
  "elected",
  "lease-wait",
  "probe",
  "address-added",
  "announced",
] as const;
export type FailoverPhaseName = (typeof failoverPhaseCodes)[number];

export interface PreVoteRequest {
  readonly type: "pre-vote-request";
  /** The term the sender would campaign for. */
  readonly term: number;
  readonly tableVersion: TableVersion;
}

export interface VoteRequest {
  readonly type: "vote-request";
  readonly term: number;
  readonly tableVersion: TableVersion;
}

/**
 * What a voter last saw of a coordinator: who, in which term, and how long ago (on the
 * voter's clock, at the time it answered) it first and last heard that coordinator's
 * heartbeats. The new coordinator uses it to bound the old coordinator's own lease.
 */
export interface CoordinatorSighting {
  readonly coordinator: string;
  readonly term: number;
  readonly firstAgoMs: number;
  readonly lastAgoMs: number;
}

export interface VoteResponse {
  readonly type: "pre-vote-response" | "vote-response";
  readonly term: number;
  readonly granted: boolean;
  /** Vote responses that grant: the voter's latest coordinator sighting, if any. */
  readonly seen?: CoordinatorSighting;
}

export interface AdminMessage {
  readonly type: "admin";
  readonly term: number;
  readonly command: AdminCommand;
}

/**
 * `arbiter: etcd` with `on_loss: failsafe`: a holder that lost etcd asks every peer to leave
 * its VIPs alone (`vips`); each peer answers with the request's `seq` and, for the lease time,
 * claims none of them. `end`: the holder is back on etcd and has let go of `vips`.
 */
export interface FailsafeMessage {
  readonly type: "failsafe";
  readonly seq: number;
  readonly vips: readonly string[];
  readonly end?: boolean;
}

export interface FailsafeAck {
  readonly type: "failsafe-ack";
  readonly seq: number;
}

/** What the embedded election's nodes say to each other. */
export type EmbeddedMessage =
  | HeartbeatMessage
  | PreVoteRequest
  | VoteRequest
  | VoteResponse
  | AdminMessage;

export type Message = EmbeddedMessage | FailsafeMessage | FailsafeAck;

/** One key under the etcd arbiter's prefix, as the watch last delivered it. */
export interface EtcdKv {
  /** Relative to the cluster's prefix, e.g. `coordinator`, `owners/198.18.0.100`. */
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  /** The lease it is attached to ("0": none). */
  readonly lease: string;
}

/**
 * A write the etcd arbiter asks for; each is one etcd transaction whose guard fences it
 * (see src/arbiter/etcd-core.ts). Its outcome comes back as an `etcd-result` input.
 */
export type EtcdOp =
  | { readonly kind: "campaign" }
  | { readonly kind: "register"; readonly value: string }
  | { readonly kind: "publish"; readonly value: string; readonly term: number }
  | {
      readonly kind: "claim";
      readonly vip: number;
      readonly address: string;
      readonly tableRevision: number;
    }
  | {
      readonly kind: "release";
      readonly vip: number;
      readonly address: string;
      readonly claimRevision: number;
    }
  | {
      readonly kind: "admin";
      readonly value: string;
      /** The admin key's mod revision the change was computed from (0: absent). */
      readonly expectRevision: number;
      readonly command: AdminCommand;
    }
  | { readonly kind: "resign"; readonly term: number };

export type Input =
  | { readonly type: "tick"; readonly nowMs: number }
  /**
   * The runtime was not scheduled for `stalledMs` (a process pause: GC, SIGSTOP, an
   * overloaded machine, a blocked event loop), measured as the lateness of its own timer.
   * Deliver it first on waking, before any datagram that queued up meanwhile and before the
   * next `tick`: the core then counts no faults against peers for the window it could not
   * listen in, and if its lease ran out meanwhile it releases its VIPs and sends nothing
   * until they are gone (corosync's "process pause detected").
   */
  | { readonly type: "stall"; readonly nowMs: number; readonly stalledMs: number }
  | {
      readonly type: "message";
      readonly nowMs: number;
      readonly from: string;
      readonly message: unknown;
    }
  | { readonly type: "health"; readonly nowMs: number; readonly healthy: boolean }
  | {
      readonly type: "probe-result";
      readonly nowMs: number;
      readonly vip: number;
      readonly occupied: boolean;
      readonly by?: string;
    }
  | { readonly type: "address-added"; readonly nowMs: number; readonly vip: number }
  | {
      readonly type: "address-add-failed";
      readonly nowMs: number;
      readonly vip: number;
      readonly reason: string;
    }
  | { readonly type: "address-removed"; readonly nowMs: number; readonly vip: number }
  | {
      readonly type: "address-remove-failed";
      readonly nowMs: number;
      readonly vip: number;
      readonly reason: string;
    }
  | {
      /** The address vanished without being asked to (kernel lifetime ran out, operator). */
      readonly type: "address-lost";
      readonly nowMs: number;
      readonly vip: number;
    }
  | { readonly type: "admin"; readonly nowMs: number; readonly command: AdminCommand }
  | { readonly type: "shutdown"; readonly nowMs: number }
  /**
   * Etcd arbiter: the session lease. `leaseId` undefined: no lease (lost, or never granted);
   * else etcd confirmed it alive for `ttlMs` from a keep-alive sent at `validFromMs`.
   */
  | {
      readonly type: "etcd-session";
      readonly nowMs: number;
      readonly leaseId: string | undefined;
      readonly validFromMs: number;
      readonly ttlMs: number;
    }
  /** Etcd arbiter: every key under the cluster's prefix as of `revision`. */
  | {
      readonly type: "etcd-view";
      readonly nowMs: number;
      readonly revision: number;
      readonly kvs: readonly EtcdKv[];
    }
  /** Etcd arbiter: the outcome of an `etcd` effect (`ok` false: its guard failed, or etcd). */
  | {
      readonly type: "etcd-result";
      readonly nowMs: number;
      readonly op: EtcdOp;
      readonly ok: boolean;
      /** The revision of the transaction (of the key it created, for a claim). */
      readonly revision?: number;
      readonly error?: string;
    }
  | {
      /** Several outcomes delivered together (probe results, address changes): one decision. */
      readonly type: "batch";
      readonly nowMs: number;
      readonly inputs: readonly Exclude<Input, { type: "batch" }>[];
    };

export type Effect =
  | { readonly type: "persist-vote"; readonly state: PersistentState }
  | { readonly type: "send"; readonly to: string; readonly message: Message }
  | { readonly type: "broadcast"; readonly message: Message }
  | { readonly type: "probe-address"; readonly vip: number }
  | { readonly type: "add-address"; readonly vip: number }
  | { readonly type: "announce"; readonly vip: number }
  | { readonly type: "remove-address"; readonly vip: number }
  | { readonly type: "etcd"; readonly op: EtcdOp };

export type CoreEvent =
  | {
      readonly type: "role-changed";
      readonly term: number;
      readonly role: Role;
      readonly reason: string;
    }
  | {
      readonly type: "coordinator-changed";
      readonly term: number;
      readonly coordinator: string | undefined;
    }
  | { readonly type: "member-failed"; readonly node: string; readonly reason: string }
  | { readonly type: "member-recovered"; readonly node: string }
  | {
      readonly type: "vip-assigned";
      readonly vip: string;
      readonly owner: string | undefined;
      readonly previous: string | undefined;
      readonly reason: string;
    }
  | { readonly type: "vip-acquired"; readonly vip: string }
  | { readonly type: "vip-released"; readonly vip: string; readonly reason: string }
  | { readonly type: "vip-conflict"; readonly vip: string; readonly by: string | undefined }
  | { readonly type: "address-failed"; readonly vip: string; readonly reason: string }
  | { readonly type: "holding-suspended"; readonly reason: string }
  /** The coordinator's configuration fingerprint differs from this node's (or matches again). */
  | {
      readonly type: "config-mismatch";
      readonly coordinator: string;
      readonly own: string;
      readonly theirs: string;
    }
  | { readonly type: "config-matched"; readonly coordinator: string }
  | { readonly type: "holding-resumed" }
  /** This node was paused for `stalledMs`; `leaseExpired`: its lease ran out meanwhile. */
  | { readonly type: "stall-detected"; readonly stalledMs: number; readonly leaseExpired: boolean }
  | { readonly type: "admin-applied"; readonly command: AdminCommand }
  | { readonly type: "admin-rejected"; readonly command: AdminCommand; readonly reason: string }
  | { readonly type: "message-dropped"; readonly from: string; readonly reason: string }
  /**
   * How long one phase of a failover took, for the failover histogram: `detected` (a member's
   * silence until it was declared failed), `elected` (the last word of the old coordinator until
   * this node won), `lease-wait` (a VIP's new owner chosen until it was safe to publish). The
   * new owner's phases (probe, address added, announced) are timed by the runtime.
   */
  | {
      readonly type: "failover-phase";
      readonly phase: "detected" | "elected" | "lease-wait";
      readonly ms: number;
      /** lease-wait: the VIP. */
      readonly vip?: string;
      /** detected: the member found failed. */
      readonly node?: string;
    };

export interface StepOutput {
  readonly effects: readonly Effect[];
  readonly events: readonly CoreEvent[];
  /** Call `step` with a tick no later than this (monotonic ms). */
  readonly wakeAtMs: number;
}
