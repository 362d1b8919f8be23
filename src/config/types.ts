/**
 * The validated, frozen cluster configuration. `loadConfig()` (src/config/load.ts) is the
 * only producer: it parses the YAML file shared by all nodes, applies the timer profile and
 * defaults, and rejects unknown keys. Every other module takes these types as read-only.
 */

/** Timer settings of one profile (`fast`, `lan`, `wan`), all durations in milliseconds. */
export interface Timers {
  /** Every node broadcasts a heartbeat this often. */
  readonly heartbeatIntervalMs: number;
  /** Base election timeout; each follower draws its timeout from [base, 2 × base). */
  readonly electionTimeoutMs: number;
  /** How long a coordinator's grant lets a node hold its VIPs (from the node's own send time). */
  readonly leaseMs: number;
  /** A peer not heard for this long counts one fault per heartbeat round. */
  readonly suspectAfterMs: number;
  /** Flap damping: a node is declared failed after this many faults within one window. */
  readonly faultsToFail: number;
  /** Flap damping: the unit of time over which faults are counted (counters reset each unit). */
  readonly faultWindowMs: number;
  /** Flap damping: consecutive good rounds before a failed node is trusted again. */
  readonly riseRounds: number;
  /** Bound on the relative clock-rate error between any two nodes (0.01 = 1 %). */
  readonly clockDriftRatio: number;
  /** Extra safety margin added to every lease-expiry wait (covers address removal time). */
  readonly leaseMarginMs: number;
  /** How long the occupancy probe (ARP duplicate address detection) listens for answers. */
  readonly probeTimeoutMs: number;
  /** After a conflict, probe the VIP again this much later. */
  readonly probeRetryMs: number;
  /** Gratuitous ARP frames sent on acquisition. */
  readonly garpRepeat: number;
  /** Spacing of the gratuitous ARP burst. */
  readonly garpIntervalMs: number;
  /** Re-announce every held VIP this often (0 = never). */
  readonly garpRefreshMs: number;
}

export type ProfileName = "fast" | "lan" | "wan";

export interface NodeSpec {
  readonly id: string;
  /** IPv4 address peers send heartbeats to. */
  readonly address: string;
  /** UDP port of the cluster transport (default 7946). */
  readonly port: number;
  /** Interface VIPs are added to on this node, unless a VIP names its own. */
  readonly interface: string;
  /** Placement weight for the `weighted` policy (higher wins). */
  readonly weight: number;
}

export type PlacementPolicy = "round-robin" | "weighted" | "hash";

export type Failback =
  | { readonly mode: "immediate" }
  | { readonly mode: "after"; readonly afterMs: number }
  | { readonly mode: "never" };

export interface VipSpec {
  /** IPv4 address without prefix, e.g. "198.18.0.100". Unique key of the VIP. */
  readonly address: string;
  readonly prefixLength: number;
  /** Interface override; when absent each node uses its own `interface`. */
  readonly interface?: string;
  readonly policy: PlacementPolicy;
  readonly preferred?: string;
  readonly failback: Failback;
}

export type HealthCheckSpec =
  | (CheckCommon & { readonly kind: "link"; readonly interface: string })
  | (CheckCommon & { readonly kind: "tcp"; readonly host: string; readonly port: number })
  | (CheckCommon & {
      readonly kind: "http";
      readonly url: string;
      readonly expectStatus: number;
    })
  | (CheckCommon & { readonly kind: "exec"; readonly command: readonly string[] })
  | (CheckCommon & {
      readonly kind: "rbd";
      readonly pool: string;
      readonly clientId?: string;
      readonly cephConf?: string;
    });

export interface CheckCommon {
  readonly name: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Declared failed after `fall` failures within `fallWindowMs` (S4: M anomalies per unit time). */
  readonly fall: number;
  readonly fallWindowMs: number;
  /** Declared healthy again after `rise` consecutive successes. */
  readonly rise: number;
}

export interface ApiSpec {
  readonly host: string;
  readonly port: number;
  /** File holding the bearer token required by mutating calls; absent = mutations refused. */
  readonly tokenFile?: string;
}

export interface NotifySpec {
  /** Executable run on role and VIP changes (arguments documented in the README). */
  readonly command: string;
  readonly timeoutMs: number;
  /**
   * `floatip`: `COMMAND EVENT ARGUMENT` for every event. `keepalived`: the script is called
   * as keepalived calls its `notify` script, `COMMAND INSTANCE NAME STATE PRIORITY` (NAME the
   * VIP's address, STATE MASTER, BACKUP, FAULT or STOP, PRIORITY the node's weight), so
   * existing keepalived scripts run unchanged.
   */
  readonly style: "floatip" | "keepalived";
}

/**
 * Realtime scheduling of the control plane's thread (like keepalived's VRRP process and
 * Corosync): a policy that busy normal processes cannot pre-empt, locked memory so that it
 * never waits for a page-in. Applied by the agent at start; where the process may not,
 * it logs why and runs at normal priority, unless `required`.
 */
export interface RealtimeSpec {
  readonly policy: "rr" | "fifo" | "off";
  /** 1..99 (Corosync and keepalived run their heartbeat threads in this range too). */
  readonly priority: number;
  readonly lockMemory: boolean;
  /** Refuse to start without it (instead of a warning and normal priority). */
  readonly required: boolean;
}

/**
 * `arbiter: { kind: etcd }`: an existing etcd (v3 API) elects the coordinator and grants
 * VIP ownership under leases instead of the embedded election (src/arbiter/etcd-core.ts).
 */
export interface EtcdArbiterSpec {
  readonly kind: "etcd";
  /** `http://HOST:PORT` or `https://HOST:PORT`, one per etcd member. */
  readonly endpoints: readonly string[];
  /** Keys live under `<prefix>/<cluster>/`. */
  readonly prefix: string;
  /** The session lease's TTL, whole seconds (etcd raises it to its own minimum). */
  readonly ttlSec: number;
  /** What a holder does when it cannot renew its lease (see etcd-core.ts). */
  readonly onLoss: "release" | "failsafe";
  /** Deadline of every etcd request. */
  readonly requestTimeoutMs: number;
  readonly tls?: { readonly ca: string; readonly cert?: string; readonly key?: string };
  readonly auth?: { readonly user: string; readonly passwordFile: string };
}

/** Who a follower's heartbeats go to (embedded election): every node, or the coordinator. */
export type HeartbeatFanout = "all" | "coordinator";
export const heartbeatFanouts: readonly HeartbeatFanout[] = ["all", "coordinator"];

/**
 * How the control plane reads its heartbeat socket: each datagram as it arrives, or on its
 * own tick (a peer's datagram wakes nobody; it waits at most one heartbeat interval).
 */
export type ReceiveMode = "as-they-come" | "on-tick";
export const receiveModes: readonly ReceiveMode[] = ["as-they-come", "on-tick"];

export interface ClusterConfig {
  /** Absolute path of the file this was loaded from (for messages). */
  readonly file: string;
  readonly cluster: string;
  readonly keyFile: string;
  readonly profile: ProfileName;
  readonly timers: Timers;
  readonly nodes: readonly NodeSpec[];
  readonly vips: readonly VipSpec[];
  readonly checks: readonly HealthCheckSpec[];
  readonly api: ApiSpec;
  readonly notify?: NotifySpec;
  readonly realtime: RealtimeSpec;
  readonly tickle: TickleSpec;
  /** Directory for the agent's persistent state (vote record, journals, samples). */
  readonly stateDir: string;
  /** Kernel address lifetime for VIPs, renewed while the agent is healthy (seconds). */
  readonly addressLifetimeSec: number;
  /** Heartbeat fan-out of the embedded election (CoreConfig.heartbeats). */
  readonly heartbeats: HeartbeatFanout;
  /** How the heartbeat socket is read (embedded election only). */
  readonly receive: ReceiveMode;
  /** Absent: the embedded election. */
  readonly arbiter?: EtcdArbiterSpec;
  /** Capability sections, validated by their own modules; absent when not configured. */
  readonly relays?: unknown;
  readonly storage?: unknown;
  readonly traffic?: unknown;
}

/**
 * TCP tickle ACKs after a takeover (`tickle:`): the holder of VIPs lists the established
 * connections on them every `scanIntervalMs` and shares the list with its peers; a node that
 * takes a VIP over sends each listed client an ACK that makes its stack reset the connection.
 */
export interface TickleSpec {
  readonly enabled: boolean;
  readonly scanIntervalMs: number;
}
