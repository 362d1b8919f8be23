/**
 * One floatip node as a deterministic state machine: election (with pre-vote and
 * check-quorum), membership with flap damping, VIP placement, leases with self-release,
 * occupancy probing and administrative commands.
 *
 * Contract: the runtime (agent or simulator) creates one `CoreNode` per process incarnation
 * and calls `step(input)` for every input, serially; it performs the returned effects in
 * order (see `types.ts`) and calls `step({type: "tick"})` no later than `wakeAtMs`. The
 * node never reads a clock, sets a timer or draws a random number of its own.
 *
 * Safety in one paragraph (the README has the full argument): a node configures a VIP only
 * while (a) the current coordinator's table assigns it to the node, (b) its lease is valid,
 * (c) it hears a majority and (d) it is healthy. A lease runs from the node's own send time
 * of a heartbeat the coordinator echoed. A coordinator moves a VIP to a new owner only after
 * every other node either reported (in a heartbeat that applied the release) that it no
 * longer holds it, or its lease surely expired (`leaseSafeWaitMs`). A coordinator grants only
 * within `grantWindowMs` of a round a majority acknowledged, and voters refuse votes for an
 * election timeout after hearing a coordinator, so all grants of an old coordinator precede
 * the election of a new one, which waits out `leaseSafeWaitMs` before moving anything whose
 * holder it has not heard release.
 */

import type { ArbiterCore, LocalVipState } from "./arbiter.ts";
import { type FlapDamperState, forceDown, initialDamperState, observe } from "./flap-damper.ts";
import { compareVersions, parseMessage } from "./messages.ts";
import { place } from "./placement/place.ts";
import {
  type PlacementDecision,
  type PlacementVip,
  reasonCodes,
  reasonWords,
} from "./placement/types.ts";
import { checkQuorumWindowMs, grantWindowMs, leaseSafeWaitMs, releaseGuardMs } from "./timing.ts";
import {
  type AdminCommand,
  type CoordinatorSighting,
  type CoreConfig,
  type CoreEvent,
  type Effect,
  type FailoverPhaseName,
  failoverPhaseCodes,
  type HeartbeatMessage,
  type HeartbeatView,
  type Input,
  type MemberStateCode,
  type Message,
  type PersistentState,
  type Random,
  type Role,
  type StepOutput,
  type TableVersion,
  type VipTable,
} from "./types.ts";

interface LocalVip {
  state: LocalVipState;
  /** For `conflict`: probe again at this time. For `removing`: retry a failed removal at. */
  retryAtMs: number;
  conflictBy: string | undefined;
  sinceMs: number;
}

interface PeerInfo {
  lastHeardMs: number;
  incarnation: number;
  seq: number;
  healthy: boolean;
  leaving: boolean;
  quorum: boolean;
  hears: readonly string[];
  holding: ReadonlySet<number>;
  conflicts: readonly number[];
  tableVersion: TableVersion;
  /** Term and round of the latest coordinator heartbeat this peer acknowledged. */
  roundSeenTerm: number;
  roundSeen: number;
  /** The peer's configuration fingerprint ("" when it sends none). */
  config: string;
  /** The role and the view it reported in its latest heartbeat (display only). */
  role: Role;
  view: HeartbeatView | undefined;
  /** VIP -> when (our clock) the peer began to hold it, from its `held` reports. */
  heldSince: Map<number, number>;
  /** Heartbeats missed from this peer: [receipt ms, how many were missed before it], in window. */
  missGaps: readonly (readonly [number, number])[];
  /** Its software version, as its latest report said ("" none yet). */
  version: string;
  /** The failover phases it reported timing in the last minute (our clock). */
  marks: readonly PhaseMark[];
  /**
   * Coordinator only: receipt of the peer's latest heartbeat that acknowledged one of our
   * rounds sent within an election timeout. A peer whose heartbeats arrive but whose
   * acknowledgements lag (long delays, or it does not hear us) would never hold what we
   * assign it: it is judged like a peer not heard, one heartbeat later.
   */
  lastTimelyAckMs: number;
}

/** A failover phase a node timed: which, how long, when it ended, for which VIP / node. */
interface PhaseMark {
  readonly phase: number;
  readonly ms: number;
  readonly atMs: number;
  /** VIP index, -1 when the phase is not a VIP's. */
  readonly vip: number;
  /** Index of the node found failed (`detected`), else -1. */
  readonly node: number;
}

/** A failover phase as `status()` lists it, with the node that timed it. */
export interface FailoverMark {
  readonly by: string;
  readonly phase: FailoverPhaseName;
  readonly ms: number;
  /** How long ago the phase ended (this node's clock). */
  readonly agoMs: number;
  readonly vip?: string;
  readonly failed?: string;
}

/**
 * Heartbeats missed in a gap of `gapMs` between two heard (k intervals: k - 1 missed); one
 * late by less than 0.8 of an interval is late, not missed.
 */
function missedIn(gapMs: number, intervalMs: number): number {
  return Math.max(0, Math.floor(gapMs / intervalMs + 0.2) - 1);
}

/** Phases are reported for a minute, at most this many per node. */
const marksKeptMs = 60_000;
const marksMax = 24;

interface MemberRecord {
  damper: FlapDamperState;
  eligibleSinceMs: number | undefined;
  /** Receipt time of the newest heartbeat of this node whose seq we echoed in a grant. */
  lastGrantAnchorMs: number | undefined;
  failReason: string;
  /** The node's agent incarnation when last heard: a new one means its agent restarted. */
  incarnation: number | undefined;
}

interface CoordinatorState {
  electedAtMs: number;
  round: number;
  roundSentAtMs: Map<number, number>;
  members: MemberRecord[];
  /** Owners placement wants (the published table may lag while releases are awaited). */
  desired: (number | undefined)[];
  /** Reason code per VIP for its desired owner, as decided when it was assigned (table `why`). */
  why: string[];
  /** When each VIP's desired owner was chosen (for the lease-wait phase). */
  desiredAtMs: number[];
  /** Table version at which each VIP was last published as unassigned. */
  releasedAt: TableVersion[];
  decisions: PlacementDecision[];
  nextMembershipRoundMs: number;
  tableDirty: boolean;
  /**
   * Whether the next membership round must place again although no input changed: the last
   * placement moved something, or a VIP waits for time to pass (`failback: after`).
   */
  placeAgain: boolean;
  pins: Map<number, number>;
  drained: Set<number>;
  roundRobinCursor: number;
  resigning: boolean;
  /** Whether the last step could grant leases (a change sends a heartbeat at once). */
  granting: boolean;
  /** The coordinator before us and how early its leases surely began (from votes). */
  previousCoordinator: { index: number; anchorMs: number } | undefined;
}

/** What `floatip status` / `ip list --explain` show about one VIP. */
export interface VipStatus {
  readonly address: string;
  readonly owner: string | undefined;
  readonly desiredOwner: string | undefined;
  readonly local: LocalVipState | "absent";
  readonly localSinceMs: number | undefined;
  /** How long its owner has held it: this node's own time, or the owner's latest report. */
  readonly heldForMs: number | undefined;
  readonly conflict: boolean;
  readonly explain: string;
  /** Its placement policy, and the node an operator pinned it to (if any). */
  readonly policy: PlacementVip["policy"];
  readonly pinnedTo: string | undefined;
}

export interface NodeStatus {
  readonly node: string;
  readonly role: Role;
  readonly term: number;
  readonly coordinator: string | undefined;
  readonly healthy: boolean;
  readonly quorum: boolean;
  readonly leaseValid: boolean;
  readonly tableVersion: TableVersion;
  /**
   * This node's configuration fingerprint, the coordinator's when it differs, and whether
   * they match (a node whose configuration differs holds no VIP).
   */
  readonly config: {
    readonly fingerprint: string;
    readonly coordinator?: string;
    readonly matchesCoordinator: boolean;
  };
  readonly members: readonly { id: string; state: MemberStateCode | "unknown"; heard: boolean }[];
  /**
   * Present when followers heartbeat the coordinator only: links between two followers are
   * not watched (the matrix shows them as such, not as silent).
   */
  readonly heartbeats?: "coordinator";
  readonly vips: readonly VipStatus[];
  /** This node's own view as its heartbeats report it now (coordinator, lease left, heard). */
  readonly view: HeartbeatView;
  /** Every other configured node as last heard (`floatip status --cluster`). */
  readonly peers: readonly PeerStatus[];
  /**
   * The failover phases timed in the last minute by this node and, from their heartbeats, by
   * every peer, oldest first: the coordinator's and the new owners' phases on one timeline.
   */
  readonly failoverMarks: readonly FailoverMark[];
  /**
   * Coordinator only: its flap damping of every member (S4: M faults per unit of time), with
   * the faults counted in the current unit and, for a member that is down, its good rounds
   * so far towards `rise`.
   */
  readonly damping?: {
    readonly faultsToFail: number;
    readonly windowMs: number;
    readonly rise: number;
    readonly members: readonly {
      readonly id: string;
      readonly up: boolean;
      readonly faults: number;
      readonly goodStreak: number;
      readonly reason: string;
    }[];
  };
}

/** Durations in a heartbeat's view are capped (a day): they are for display. */
const viewMsMax = 86_400_000;
/** A heartbeat's view repeats what the node holds, and since when, this often. */
const heldReportEveryMs = 1000;
/** The window over which a heartbeat's view counts the heartbeats missed per peer. */
export const missWindowMs = 10_000;

/** A peer as this node last heard it, with the view it reported (`floatip status --cluster`). */
export interface PeerStatus {
  readonly id: string;
  /** Ms since this node last heard the peer; undefined: never (in this incarnation). */
  readonly heardAgoMs: number | undefined;
  readonly incarnation: number;
  readonly term: number;
  readonly role: Role;
  readonly healthy: boolean;
  readonly leaving: boolean;
  readonly quorum: boolean;
  readonly tableVersion: TableVersion;
  /** Its configuration fingerprint ("" when it sends none). */
  readonly config: string;
  /** The VIPs it reports holding or acquiring (empty when its configuration differs). */
  readonly holding: readonly string[];
  /** From its view: the coordinator it follows, its lease left, whom it heard how long ago. */
  readonly coordinator: string | undefined;
  readonly leaseLeftMs: number | undefined;
  readonly heardMs: Readonly<Record<string, number>> | undefined;
  /** From its view: per peer, heartbeats it missed in the last `missWindowMs`. */
  readonly missed: Readonly<Record<string, number>> | undefined;
  /** Its software version ("" until it reported one). */
  readonly version: string;
}

const noTable = (nodeCount: number, vipCount: number): VipTable => ({
  version: [0, 0],
  owners: new Array<number>(vipCount).fill(-1),
  pins: [],
  drained: [],
  roundRobinCursor: 0,
  members: new Array<MemberStateCode>(nodeCount).fill("healthy"),
});

export class CoreNode implements ArbiterCore {
  readonly id: string;
  readonly #config: CoreConfig;
  readonly #random: Random;
  readonly #incarnation: number;
  readonly #index: number;
  readonly #majority: number;
  readonly #bootMs: number;
  /** CoreConfig.fingerprint, "" when absent. */
  readonly #fingerprint: string;
  /** Heartbeats `coordinator` (see CoreConfig.heartbeats). */
  readonly #star: boolean;
  /** Set while the coordinator we follow has another configuration fingerprint than ours. */
  #configMismatch: { coordinator: string; theirs: string } | undefined;

  #role: Role = "follower";
  #term: number;
  #votedFor: string | undefined;
  #coordinator: string | undefined;
  #lastCoordinatorContactMs = Number.NEGATIVE_INFINITY;
  /**
   * Per node, the agent incarnation a coordinator last granted a lease to (ours or one we
   * followed): a member found running another one when we are elected restarted while the
   * coordinator changed, and whatever it held went with the old process.
   */
  readonly #grantedIncarnation = new Map<string, number>();
  #electionDeadlineMs: number;
  #preVotes: Set<string> | undefined;
  #preVoteStartedMs = Number.NEGATIVE_INFINITY;
  /** Nodes that refused our running pre-vote: we stand aside for them (#onPreVoteRequest). */
  readonly #preVoteRefusedBy = new Set<string>();
  #votes: Set<string> | undefined;
  /** Sightings reported with the votes of the running election, with their receipt times. */
  #voteSightings: { receivedMs: number; seen: CoordinatorSighting }[] = [];
  /** The latest coordinator this node heard: who, term, first and last heartbeat times. */
  #sighting: { coordinator: string; term: number; firstMs: number; lastMs: number } | undefined;
  #nextHeartbeatMs: number;
  #lastHeartbeatMs = Number.NEGATIVE_INFINITY;
  #lastReannounceMs = Number.NEGATIVE_INFINITY;
  #seq = 0;
  #sentAtMs = new Map<number, number>();
  #leaseExpiryMs = Number.NEGATIVE_INFINITY;
  #healthy = true;
  #leaving = false;
  #holdingAllowed = false;
  #roundSeen = 0;
  #table: VipTable;
  #placements = 0;
  #peers = new Map<string, PeerInfo>();
  #vips = new Map<number, LocalVip>();
  #coordinatorState: CoordinatorState | undefined;

  #effects: Effect[] = [];
  #events: CoreEvent[] = [];
  #heartbeatNow = false;
  /** This step delivered a heartbeat of our coordinator (a follower answers it at once). */
  #coordinatorBeat = false;
  /**
   * This step delivered the first heartbeat we heard of a coordinator in its term: answered
   * at once even right after a heartbeat of our own, since none of ours acknowledged a round
   * of this coordinator yet, and it grants no lease before a majority did (#mayGrant).
   */
  #firstCoordinatorBeat = false;
  /** The end of this node's latest own stall (check-quorum gives the majority time after it). */
  #stallEndedMs = Number.NEGATIVE_INFINITY;
  /**
   * From a stall until the next tick: release if need be, but evaluate no timer yet. The
   * runtime delivers the datagrams that queued up meanwhile in between, so what this node
   * says next (its heartbeat's acknowledgement, a vote) reflects all of them.
   */
  #stallStep = false;
  /**
   * After a stall that outlived the lease: send nothing until the VIPs held then are removed
   * (or until this bound, if removal keeps failing).
   */
  #silentAfterStall: { untilMs: number; vips: Set<number> } | undefined;
  /** Transitions into or out of `held` so far, and as of the latest `held` report (sent at). */
  #heldChanges = 0;
  #marks: PhaseMark[] = [];
  #marksDirty = false;
  #heldReported = 0;
  #heldReportMs = Number.NEGATIVE_INFINITY;
  /** This step withheld an acquisition behind a vote write: wake again at once. */
  #acquisitionsWithheld = false;

  constructor(options: {
    id: string;
    config: CoreConfig;
    random: Random;
    incarnation: number;
    nowMs: number;
    persisted?: PersistentState;
  }) {
    this.id = options.id;
    this.#config = options.config;
    this.#fingerprint = options.config.fingerprint ?? "";
    this.#star = options.config.heartbeats === "coordinator";
    this.#random = options.random;
    this.#incarnation = options.incarnation;
    this.#index = options.config.nodes.findIndex((n) => n.id === options.id);
    if (this.#index < 0) throw new Error(`node ${options.id} is not in the configuration`);
    this.#majority = Math.floor(options.config.nodes.length / 2) + 1;
    this.#bootMs = options.nowMs;
    this.#term = options.persisted?.term ?? 0;
    this.#votedFor = options.persisted?.votedFor;
    this.#table = noTable(options.config.nodes.length, options.config.vips.length);
    this.#electionDeadlineMs = options.nowMs + this.#randomElectionTimeout();
    this.#nextHeartbeatMs = options.nowMs;
  }

  // ---------------------------------------------------------------- public surface

  step(input: Input): StepOutput {
    this.#effects = [];
    this.#events = [];
    this.#heartbeatNow = false;
    this.#coordinatorBeat = false;
    this.#firstCoordinatorBeat = false;
    const now = input.nowMs;
    if (input.type === "batch") {
      // Many outcomes at once (a thousand probes or address changes): apply each, then
      // decide once, so the cost is linear in the batch instead of quadratic.
      for (const item of input.inputs) this.#apply(item, Math.max(now, item.nowMs));
    } else {
      this.#apply(input, now);
    }
    this.#advance(now);
    this.#withholdAcquisitionsBehindVote();
    if (this.#silentAfterStall) this.#keepSilentAfterStall(now);
    return { effects: this.#effects, events: this.#events, wakeAtMs: this.#wakeAt(now) };
  }

  /**
   * A step that writes a vote starts no acquisition (probe or add): the write is an fsync,
   * and a process that stalls inside it would start, on waking, an acquisition decided before
   * a pause that may have outlived its lease. The acquisition is decided again one
   * millisecond later, after the runtime has reported any stall (the `stall` input).
   */
  #withholdAcquisitionsBehindVote(): void {
    this.#acquisitionsWithheld = false;
    if (!this.#effects.some((e) => e.type === "persist-vote")) return;
    this.#effects = this.#effects.filter((effect) => {
      if (effect.type !== "probe-address" && effect.type !== "add-address") return true;
      const state = this.#vips.get(effect.vip)?.state;
      // Nothing is configured yet in either state: forget it, the next step probes afresh.
      if (state === "probing" || state === "adding") this.#vips.delete(effect.vip);
      this.#acquisitionsWithheld = true;
      return false;
    });
  }

  /**
   * A process pause (see the `stall` input). Peers' silence during it is not theirs: their
   * last-heard times, the coordinator contact and the election deadline move forward by the
   * stall, so no fault is counted, no election started and no member failed for a window in
   * which this node could not listen; the datagrams that queued up meanwhile come next. The
   * lease is not moved: it is real time, and a node whose lease ran out while it was paused
   * releases before it does anything else.
   */
  #onStall(stalledMs: number, now: number): void {
    this.#stallStep = true;
    this.#stallEndedMs = now;
    for (const peer of this.#peers.values()) {
      peer.lastHeardMs = Math.min(now, peer.lastHeardMs + stalledMs);
      peer.lastTimelyAckMs = Math.min(now, peer.lastTimelyAckMs + stalledMs);
    }
    if (Number.isFinite(this.#lastCoordinatorContactMs)) {
      this.#lastCoordinatorContactMs = Math.min(now, this.#lastCoordinatorContactMs + stalledMs);
    }
    this.#electionDeadlineMs += stalledMs;
    const held = [...this.#vips]
      .filter(([, local]) => local.state !== "conflict")
      .map(([vip]) => vip);
    // Only a lease that covered something matters: one that ran out with nothing held is news
    // to nobody.
    const leaseExpired =
      held.length > 0 && now >= this.#leaseExpiryMs - releaseGuardMs(this.#config.timers);
    if (leaseExpired) {
      this.#silentAfterStall = { untilMs: now + this.#config.timers.leaseMs, vips: new Set(held) };
    }
    this.#events.push({ type: "stall-detected", stalledMs, leaseExpired });
  }

  /** Drops this step's datagrams while a post-stall release is still under way. */
  #keepSilentAfterStall(now: number): void {
    const silent = this.#silentAfterStall!;
    for (const vip of silent.vips) if (!this.#vips.has(vip)) silent.vips.delete(vip);
    if (silent.vips.size === 0 || now >= silent.untilMs) {
      this.#silentAfterStall = undefined;
      this.#heartbeatNow = true;
      this.#nextHeartbeatMs = Math.min(this.#nextHeartbeatMs, now);
      return;
    }
    this.#effects = this.#effects.filter((e) => e.type !== "send" && e.type !== "broadcast");
  }

  #apply(input: Exclude<Input, { type: "batch" }>, now: number): void {
    switch (input.type) {
      case "tick":
        this.#stallStep = false;
        break;
      case "stall":
        this.#onStall(input.stalledMs, now);
        break;
      case "message":
        this.#onMessage(input.from, input.message, now);
        break;
      case "health":
        if (input.healthy !== this.#healthy) {
          this.#healthy = input.healthy;
          this.#heartbeatNow = true;
        }
        break;
      case "probe-result":
        this.#onProbeResult(input.vip, input.occupied, input.by, now);
        break;
      case "address-added":
        this.#onAddressAdded(input.vip, now);
        break;
      case "address-add-failed":
        this.#onAddressAddFailed(input.vip, input.reason, now);
        break;
      case "address-removed":
        this.#onAddressRemoved(input.vip, now);
        break;
      case "address-remove-failed":
        this.#onAddressRemoveFailed(input.vip, input.reason, now);
        break;
      case "address-lost":
        if (this.#vips.delete(input.vip)) {
          this.#heldChanges += 1; // it may have been held: report what is held now
          this.#events.push({
            type: "vip-released",
            vip: this.#address(input.vip),
            reason: "address lost",
          });
          this.#heartbeatNow = true;
        }
        break;
      case "admin":
        this.#onAdmin(input.command, now);
        break;
      case "shutdown":
        this.#onShutdown(now);
        break;
      case "etcd-session":
      case "etcd-view":
      case "etcd-result":
        break; // the etcd arbiter's inputs (src/arbiter/etcd-core.ts); none reach this core
      default: {
        const unknown: never = input;
        throw new Error(`unknown input ${JSON.stringify(unknown)}`);
      }
    }
  }

  get role(): Role {
    return this.#role;
  }

  get term(): number {
    return this.#term;
  }

  get coordinator(): string | undefined {
    return this.#coordinator;
  }

  /** True once a leaving node holds nothing and (if coordinator) has resigned. */
  get sendsWithheld(): boolean {
    return this.#silentAfterStall !== undefined;
  }

  get drainedForShutdown(): boolean {
    return this.#leaving && this.#vips.size === 0 && this.#role !== "coordinator";
  }

  /** Local VIP indexes that may be configured (for checkers and the runtime). */
  localVipStates(): ReadonlyMap<number, LocalVipState> {
    return new Map([...this.#vips].map(([vip, v]) => [vip, v.state]));
  }

  /** Whether this node has `vip` (by index) configured and announced now. */
  holds(vip: number): boolean {
    return this.#vips.get(vip)?.state === "held";
  }

  /**
   * The version of the VIP table this node follows. A follower adopts the coordinator's
   * newer tables without an event of its own, so whoever mirrors members or owners (the
   * services process's view) must watch this too.
   */
  get tableVersion(): TableVersion {
    return this.#table.version;
  }

  /** How many times this node ran placement as coordinator (since it started). */
  get placements(): number {
    return this.#placements;
  }

  /**
   * Owner per VIP (table order) and this node's local state per VIP: cheap, unlike
   * `status()`, for publishing views after every step.
   */
  ownership(): { owners: (string | undefined)[]; local: (LocalVipState | "absent")[] } {
    const nodes = this.#config.nodes;
    return {
      owners: this.#table.owners.map((o) => (o >= 0 ? nodes[o]?.id : undefined)),
      local: this.#config.vips.map((_, i) => this.#vips.get(i)?.state ?? "absent"),
    };
  }

  leaseExpiryMs(): number {
    return this.#leaseExpiryMs;
  }

  /** Whether this node's lease still covers holding (it releases two margins before its end). */
  leaseValid(nowMs: number): boolean {
    return nowMs < this.#leaseExpiryMs - releaseGuardMs(this.#config.timers);
  }

  status(nowMs: number, options: { explain?: boolean } = {}): NodeStatus {
    const explain = options.explain ?? true;
    const nodes = this.#config.nodes;
    const coordinatorState = this.#coordinatorState;
    return {
      node: this.id,
      role: this.#role,
      term: this.#term,
      coordinator: this.#coordinator,
      healthy: this.#healthy && !this.#leaving,
      quorum: this.#hearsMajority(nowMs),
      leaseValid: this.leaseValid(nowMs),
      tableVersion: this.#table.version,
      config: {
        fingerprint: this.#fingerprint,
        ...(this.#configMismatch
          ? { coordinator: this.#configMismatch.theirs, matchesCoordinator: false }
          : { matchesCoordinator: true }),
      },
      members: nodes.map((n, i) => ({
        id: n.id,
        state: this.#table.version[0] === 0 ? "unknown" : (this.#table.members[i] ?? "unknown"),
        heard: n.id === this.id || this.#heardOrRelayed(n.id, nowMs),
      })),
      ...(this.#star ? { heartbeats: "coordinator" as const } : {}),
      vips: this.#config.vips.map((vip, i) => {
        const owner = this.#table.owners[i] ?? -1;
        const desired = coordinatorState?.desired[i];
        const local = this.#vips.get(i);
        const conflict = this.#vipHasConflict(i);
        const pin = this.#table.pins.find(([v]) => v === i);
        return {
          address: vip.address,
          owner: owner >= 0 ? nodes[owner]?.id : undefined,
          desiredOwner: desired !== undefined ? nodes[desired]?.id : undefined,
          local: local?.state ?? "absent",
          localSinceMs: local?.sinceMs,
          heldForMs: this.#heldForMs(i, owner, nowMs),
          conflict,
          explain: explain ? this.#explain(i, nowMs) : "",
          policy: vip.policy,
          pinnedTo: pin ? nodes[pin[1]]?.id : undefined,
        };
      }),
      view: this.#ownView(nowMs),
      peers: nodes.filter((n) => n.id !== this.id).map((n) => this.#peerStatus(n.id, nowMs)),
      failoverMarks: this.#failoverMarks(nowMs),
      ...(coordinatorState
        ? {
            damping: {
              faultsToFail: this.#config.timers.faultsToFail,
              windowMs: this.#config.timers.faultWindowMs,
              rise: this.#config.timers.riseRounds,
              members: nodes.map((n, i) => {
                const member = coordinatorState.members[i]!;
                const fresh =
                  member.damper.windowStartMs !== undefined &&
                  nowMs - member.damper.windowStartMs < this.#config.timers.faultWindowMs;
                return {
                  id: n.id,
                  up: member.damper.up,
                  // A unit of time that has ended counts nothing any more.
                  faults: fresh || !member.damper.up ? member.damper.faults : 0,
                  goodStreak: member.damper.goodStreak,
                  reason: member.damper.up ? "" : member.failReason,
                };
              }),
            },
          }
        : {}),
    };
  }

  #heldForMs(vip: number, owner: number, nowMs: number): number | undefined {
    if (owner < 0) return undefined;
    if (owner === this.#index) {
      const local = this.#vips.get(vip);
      return local?.state === "held" ? Math.max(0, nowMs - local.sinceMs) : undefined;
    }
    const peer = this.#peers.get(this.#config.nodes[owner]!.id);
    const since = peer?.heldSince.get(vip);
    return since === undefined ? undefined : Math.max(0, nowMs - since);
  }

  #peerStatus(id: string, nowMs: number): PeerStatus {
    const peer = this.#peers.get(id);
    if (!peer) {
      return {
        id,
        heardAgoMs: undefined,
        incarnation: 0,
        term: 0,
        role: "follower",
        healthy: false,
        leaving: false,
        quorum: false,
        tableVersion: [0, 0],
        config: "",
        holding: [],
        coordinator: undefined,
        leaseLeftMs: undefined,
        heardMs: undefined,
        missed: undefined,
        version: "",
      };
    }
    const vips = this.#config.vips;
    return {
      id,
      heardAgoMs: Math.max(0, nowMs - peer.lastHeardMs),
      incarnation: peer.incarnation,
      term: peer.roundSeenTerm,
      role: peer.role,
      healthy: peer.healthy,
      leaving: peer.leaving,
      quorum: peer.quorum,
      tableVersion: peer.tableVersion,
      config: peer.config,
      holding: [...peer.holding].sort((a, b) => a - b).map((i) => vips[i]!.address),
      coordinator: peer.view?.coordinator,
      leaseLeftMs: peer.view?.leaseLeftMs,
      heardMs: peer.view?.heardMs,
      missed: peer.view?.missed ?? {},
      version: peer.version,
    };
  }

  // ---------------------------------------------------------------- inputs

  #onMessage(from: string, raw: unknown, now: number): void {
    const fromIndex = this.#config.nodes.findIndex((n) => n.id === from);
    if (fromIndex < 0 || from === this.id) {
      this.#events.push({ type: "message-dropped", from, reason: "unknown-sender" });
      return;
    }
    const message = parseMessage(
      raw,
      this.#config.nodes.length,
      this.#config.vips.length,
      this.#fingerprint,
    );
    if (!message) {
      this.#events.push({ type: "message-dropped", from, reason: "malformed" });
      return;
    }
    switch (message.type) {
      case "heartbeat":
        this.#onHeartbeat(from, message, now);
        return;
      case "pre-vote-request":
        this.#onPreVoteRequest(from, message.term, message.tableVersion, now);
        return;
      case "vote-request":
        this.#onVoteRequest(from, message.term, message.tableVersion, now);
        return;
      case "pre-vote-response":
        this.#onPreVoteResponse(from, message.term, message.granted, now);
        return;
      case "vote-response":
        this.#onVoteResponse(from, message.term, message.granted, message.seen, now);
        return;
      case "admin":
        if (this.#role === "coordinator") this.#applyAdmin(message.command, now);
        return;
      default: {
        const unknown: never = message;
        throw new Error(`unhandled message ${JSON.stringify(unknown)}`);
      }
    }
  }

  /** The peer's own "held since" per VIP: a new report replaces, else keep what it holds. */
  #heldSinceOf(
    message: HeartbeatMessage,
    previous: PeerInfo | undefined,
    now: number,
  ): Map<number, number> {
    const held = message.view?.held;
    if (held) return new Map(held.map(([vip, forMs]) => [vip, now - forMs]));
    const kept = new Map<number, number>();
    if (!previous || previous.incarnation !== message.incarnation) return kept;
    for (const vip of message.holding) {
      const since = previous.heldSince.get(vip);
      if (since !== undefined) kept.set(vip, since);
    }
    return kept;
  }

  #onHeartbeat(from: string, message: HeartbeatMessage, now: number): void {
    const previous = this.#peers.get(from);
    if (previous && message.incarnation < previous.incarnation) return;
    if (previous && message.incarnation === previous.incarnation && message.seq <= previous.seq) {
      return; // reordered or duplicated: an older view must never overwrite a newer one
    }
    // Heartbeats `coordinator`: a follower hears another follower only now and then; that
    // link is not watched (no re-announcement when it "comes back", no missed count).
    const watched = this.#watches(from) || message.role === "coordinator";
    if (previous && now - previous.lastHeardMs > this.#config.timers.suspectAfterMs && watched) {
      // A peer we had lost is back: the split (or its outage) healed. Neighbours on its side
      // may still map our VIPs to an old owner's MAC, so announce every held VIP again.
      this.#reannounce(now);
    }
    const state = this.#coordinatorState;
    const ackedSentAt =
      state && message.term === this.#term ? state.roundSentAtMs.get(message.roundSeen) : undefined;
    // A peer's first heartbeat (of an incarnation) starts a fresh window.
    const timely =
      (ackedSentAt !== undefined && now - ackedSentAt < this.#config.timers.electionTimeoutMs) ||
      previous === undefined ||
      message.incarnation !== previous.incarnation;
    this.#peers.set(from, {
      lastHeardMs: now,
      lastTimelyAckMs: timely ? now : previous.lastTimelyAckMs,
      incarnation: message.incarnation,
      seq: message.seq,
      healthy: message.healthy,
      leaving: message.leaving,
      quorum: message.quorum,
      hears: message.hears,
      holding: new Set(message.holding),
      conflicts: message.conflicts,
      tableVersion: message.tableVersion,
      roundSeenTerm: message.term,
      roundSeen: message.roundSeen,
      config: message.config ?? "",
      role: message.role,
      view: message.view,
      heldSince: this.#heldSinceOf(message, previous, now),
      missGaps: watched ? this.#missGapsOf(message, previous, now) : [],
      version: message.view?.version ?? previous?.version ?? "",
      marks: message.view?.phases
        ? message.view.phases.map(([phase, ms, agoMs, vip, node]) => ({
            phase,
            ms,
            atMs: now - agoMs,
            vip,
            node,
          }))
        : (previous?.marks ?? []),
    });

    if (message.term > this.#term) {
      this.#adoptTerm(message.term, now, `heard term ${message.term} from ${from}`);
    }
    if (message.role !== "coordinator" || message.term < this.#term) return;

    // A heartbeat of the coordinator of our term.
    if (this.#role === "coordinator") {
      throw new Error(`two coordinators in term ${this.#term}: ${this.id} and ${from}`);
    }
    if (this.#role === "candidate") this.#becomeFollower(now, `${from} is coordinator`);
    this.#setCoordinator(from);
    if (message.resign) {
      // The coordinator leaves for good and has stopped granting: elect without waiting.
      this.#lastCoordinatorContactMs = Number.NEGATIVE_INFINITY;
      this.#electionDeadlineMs =
        now + Math.floor(this.#random.next() * this.#config.timers.heartbeatIntervalMs * 2);
      this.#setCoordinator(undefined);
      return;
    }
    this.#lastCoordinatorContactMs = now;
    this.#coordinatorBeat = true;
    // A pre-vote of ours still in flight is moot: the grants it gathers were given by nodes
    // that had not heard this coordinator yet, and an election now would only unseat it.
    this.#preVotes = undefined;
    const sighting = this.#sighting;
    if (sighting && sighting.coordinator === from && sighting.term === message.term)
      sighting.lastMs = now;
    else {
      this.#sighting = { coordinator: from, term: message.term, firstMs: now, lastMs: now };
      this.#firstCoordinatorBeat = true;
    }
    this.#electionDeadlineMs = now + this.#randomElectionTimeout();
    if (message.round !== undefined) this.#roundSeen = message.round;
    this.#noteCoordinatorConfig(from, message.config ?? "");
    // (A coordinator with another configuration sends no table here: parseMessage drops it.)
    if (message.table && compareVersions(message.table.version, this.#table.version) > 0) {
      this.#table = message.table;
    }
    // The coordinator holds under its own lease, in the incarnation it sends from.
    this.#grantedIncarnation.set(from, message.incarnation);
    if (message.grants) {
      for (const id in message.grants) this.#grantedIncarnation.set(id, message.grants[id]![0]);
    }
    const grant = message.grants?.[this.id];
    if (grant && grant[0] === this.#incarnation) {
      const sentAt = this.#sentAtMs.get(grant[1]);
      if (sentAt !== undefined) {
        this.#leaseExpiryMs = Math.max(this.#leaseExpiryMs, sentAt + this.#config.timers.leaseMs);
      }
    }
  }

  #onPreVoteRequest(from: string, term: number, version: TableVersion, now: number): void {
    let granted =
      term > this.#term && this.#mayVote(now) && compareVersions(version, this.#table.version) >= 0;
    const newer = compareVersions(version, this.#table.version) > 0;
    if (
      granted &&
      this.#preVotes &&
      !newer &&
      now - this.#preVoteStartedMs < this.#config.timers.electionTimeoutMs
    ) {
      // Two nodes with the same table timed out together: the lower configuration index
      // campaigns, the other stands aside, so the real election is not split (a split
      // costs another timeout). A requester with a newer table always gets the grant, and
      // so does one that refused our pre-vote (it still heard the coordinator when we asked):
      // it will not grant ours, with three nodes and one down ours cannot win without it, and
      // refusing in turn would leave both waiting a second election timeout while healthy
      // leases run out.
      const fromIndex = this.#config.nodes.findIndex((n) => n.id === from);
      granted = fromIndex < this.#index || this.#preVoteRefusedBy.has(from);
    }
    // A pre-vote grant changes no timer (only a real vote does): a requester that can send
    // but never hears the answers would otherwise hold every election off for good.
    if (granted) this.#preVotes = undefined;
    this.#effects.push({
      type: "send",
      to: from,
      message: { type: "pre-vote-response", term, granted },
    });
  }

  #onVoteRequest(from: string, term: number, version: TableVersion, now: number): void {
    if (!this.#mayVote(now)) {
      // Within the election timeout of hearing a coordinator: ignore entirely (check-quorum).
      this.#effects.push({
        type: "send",
        to: from,
        message: { type: "vote-response", term, granted: false },
      });
      return;
    }
    if (term > this.#term) this.#adoptTerm(term, now, `vote request for term ${term} from ${from}`);
    const granted =
      term === this.#term &&
      (this.#votedFor === undefined || this.#votedFor === from) &&
      compareVersions(version, this.#table.version) >= 0;
    if (granted && this.#votedFor === undefined) {
      this.#votedFor = from;
      this.#effects.push({ type: "persist-vote", state: { term: this.#term, votedFor: from } });
      this.#electionDeadlineMs = now + this.#randomElectionTimeout();
    }
    const seen = granted ? this.#currentSighting(now) : undefined;
    this.#effects.push({
      type: "send",
      to: from,
      message: { type: "vote-response", term, granted, ...(seen ? { seen } : {}) },
    });
  }

  #currentSighting(now: number): CoordinatorSighting | undefined {
    const s = this.#sighting;
    if (!s) return undefined;
    return {
      coordinator: s.coordinator,
      term: s.term,
      firstAgoMs: Math.max(0, now - s.firstMs),
      lastAgoMs: Math.max(0, now - s.lastMs),
    };
  }

  #onPreVoteResponse(from: string, term: number, granted: boolean, now: number): void {
    if (!this.#preVotes || term !== this.#term + 1) return;
    if (!granted) {
      this.#preVoteRefusedBy.add(from);
      return;
    }
    this.#preVotes.add(from);
    if (this.#preVotes.size >= this.#majority) this.#startElection(now);
  }

  #onVoteResponse(
    from: string,
    term: number,
    granted: boolean,
    seen: CoordinatorSighting | undefined,
    now: number,
  ): void {
    if (this.#role !== "candidate" || term !== this.#term || !this.#votes || !granted) return;
    if (this.#votes.has(from)) return;
    this.#votes.add(from);
    if (seen) this.#voteSightings.push({ receivedMs: now, seen });
    if (this.#votes.size >= this.#majority) this.#becomeCoordinator(now);
  }

  #onProbeResult(vip: number, occupied: boolean, by: string | undefined, now: number): void {
    const local = this.#vips.get(vip);
    if (local?.state !== "probing") return;
    if (!this.#wants(vip) || !this.#mayHold(now)) {
      this.#vips.delete(vip); // nothing was configured: the probe only listens
      return;
    }
    if (occupied) {
      const address = this.#address(vip);
      this.#setLocal(vip, "conflict", now, now + this.#config.timers.probeRetryMs, by);
      this.#events.push({ type: "vip-conflict", vip: address, by });
      this.#heartbeatNow = true;
      return;
    }
    this.#setLocal(vip, "adding", now);
    this.#effects.push({ type: "add-address", vip });
  }

  #onAddressAdded(vip: number, now: number): void {
    const local = this.#vips.get(vip);
    if (local?.state !== "adding") return;
    this.#setLocal(vip, "held", now);
    this.#effects.push({ type: "announce", vip });
    this.#events.push({ type: "vip-acquired", vip: this.#address(vip) });
    this.#heartbeatNow = true;
  }

  #onAddressAddFailed(vip: number, reason: string, now: number): void {
    const local = this.#vips.get(vip);
    if (local?.state !== "adding") return;
    this.#events.push({ type: "address-failed", vip: this.#address(vip), reason });
    // The address may or may not be there: remove it to know, then try again later.
    this.#setLocal(vip, "removing", now, now + this.#config.timers.probeRetryMs);
    this.#effects.push({ type: "remove-address", vip });
  }

  #onAddressRemoved(vip: number, _now: number): void {
    const local = this.#vips.get(vip);
    if (local?.state !== "removing") return;
    this.#vips.delete(vip);
    this.#events.push({ type: "vip-released", vip: this.#address(vip), reason: "removed" });
    this.#heartbeatNow = true;
  }

  #onAddressRemoveFailed(vip: number, reason: string, now: number): void {
    const local = this.#vips.get(vip);
    if (local?.state !== "removing") return;
    this.#events.push({ type: "address-failed", vip: this.#address(vip), reason });
    local.retryAtMs = now + this.#config.timers.probeRetryMs;
  }

  #onAdmin(command: AdminCommand, now: number): void {
    if (this.#role === "coordinator") {
      this.#applyAdmin(command, now);
      return;
    }
    if (!this.#coordinator) {
      this.#events.push({ type: "admin-rejected", command, reason: "no coordinator is elected" });
      return;
    }
    this.#effects.push({
      type: "send",
      to: this.#coordinator,
      message: { type: "admin", term: this.#term, command },
    });
  }

  #onShutdown(now: number): void {
    this.#leaving = true;
    this.#heartbeatNow = true;
    const state = this.#coordinatorState;
    if (state) {
      // Hand our own VIPs over first, then resign (in #advanceCoordinator). Our own member
      // goes down at once, as a leaving follower's does at its coordinator; not into
      // `drained`, which every later coordinator inherits with the table: a drain is the
      // operator's and outlives a restart, a shutdown is not (a coordinator restarted with
      // SIGTERM came back drained and never held a VIP again until enabled by hand).
      const self = state.members[this.#index]!;
      if (self.damper.up) {
        self.damper = forceDown(self.damper, now);
        self.failReason = "leaving";
        self.eligibleSinceMs = undefined;
        this.#events.push({ type: "member-failed", node: this.id, reason: "leaving" });
      }
      state.resigning = true;
      state.tableDirty = true;
    }
  }

  // ---------------------------------------------------------------- the step's core

  #advance(now: number): void {
    if (this.#stallStep) {
      // Release what the lease no longer covers; timers wait for the queued datagrams.
      this.#reconcileLocal(now);
      return;
    }
    if (this.#role === "coordinator") this.#advanceCoordinator(now);
    if (this.#role !== "coordinator" && now >= this.#electionDeadlineMs && !this.#leaving) {
      this.#startPreVote(now);
    }
    this.#reconcileLocal(now);
    if (this.#silentAfterStall) {
      // Nothing leaves while a post-stall release is under way (#keepSilentAfterStall), so
      // nothing is composed either: composing is what extends a coordinator's own lease (from
      // the acknowledgements that queued up during the stall) and what fixes a round's send
      // time. A lease must come from a round that was sent; the first one after the silence
      // goes out at once.
      if (now >= this.#nextHeartbeatMs) {
        this.#nextHeartbeatMs = now + this.#config.timers.heartbeatIntervalMs;
      }
    } else if (now >= this.#nextHeartbeatMs || this.#answersCoordinatorBeat(now)) {
      this.#sendHeartbeat(now);
    } else if (this.#heartbeatNow) {
      // Something peers should learn early (a release, a new table): send now, but at most one
      // early heartbeat per gap, so a thousand VIPs changing at once cost a few heartbeats.
      const earliest = this.#lastHeartbeatMs + this.#earlyHeartbeatGapMs();
      if (now >= earliest) this.#sendHeartbeat(now);
      else this.#nextHeartbeatMs = Math.min(this.#nextHeartbeatMs, earliest);
    }
  }

  /**
   * Rounds in step with the coordinator's: a follower sends its heartbeat when the
   * coordinator's arrives (at most one per half interval), and its own timer, a tenth of an
   * interval longer, only when that heartbeat is late. The round's datagrams then come in one
   * burst: a follower that would wake three times a round (its timer, two peers' datagrams at
   * their own phases) wakes about once, the coordinator about twice (its timer, the answers),
   * and the coordinator hears each round acknowledged at once instead of up to an interval
   * later. Not when reading on the tick: there the node wakes on its timer anyway.
   */
  #answersCoordinatorBeat(now: number): boolean {
    if (!this.#coordinatorBeat || this.#config.readOnTick) return false;
    if (this.#firstCoordinatorBeat) return true;
    const intervalMs = this.#config.timers.heartbeatIntervalMs;
    if (now - this.#lastHeartbeatMs >= intervalMs / 2) return true;
    // Sent on its own timer just before: the next one waits for the coordinator's next beat,
    // but never longer than one and a half intervals after the last.
    this.#nextHeartbeatMs = Math.max(
      this.#nextHeartbeatMs,
      Math.min(now + intervalMs + this.#beatSlackMs(), this.#lastHeartbeatMs + intervalMs * 1.5),
    );
    return false;
  }

  /** How much longer a follower's own timer waits than an interval (see above). */
  #beatSlackMs(): number {
    if (this.#config.readOnTick || this.#role !== "follower" || this.#coordinator === undefined) {
      return 0;
    }
    return Math.max(1, Math.floor(this.#config.timers.heartbeatIntervalMs / 10));
  }

  #wakeAt(now: number): number {
    const t = this.#config.timers;
    let wake = Math.min(this.#nextHeartbeatMs, now + t.heartbeatIntervalMs + this.#beatSlackMs());
    if (this.#role !== "coordinator") wake = Math.min(wake, this.#electionDeadlineMs);
    const leaseEnd = this.#leaseExpiryMs - releaseGuardMs(t);
    if (this.#vips.size > 0 && leaseEnd > now) wake = Math.min(wake, leaseEnd);
    for (const local of this.#vips.values()) {
      if ((local.state === "conflict" || local.state === "removing") && local.retryAtMs > now) {
        wake = Math.min(wake, local.retryAtMs);
      }
    }
    if (this.#silentAfterStall) wake = Math.min(wake, this.#silentAfterStall.untilMs);
    if (this.#acquisitionsWithheld) wake = now + 1;
    const pendingAt = this.#coordinatorState ? this.#nextPendingAssignAt(now) : undefined;
    if (pendingAt !== undefined) wake = Math.min(wake, pendingAt);
    return Math.max(wake, now + 1);
  }

  /** Decides what this node should have configured and emits the address effects. */
  #reconcileLocal(now: number): void {
    const allowed = this.#mayHold(now);
    if (allowed !== this.#holdingAllowed) {
      this.#holdingAllowed = allowed;
      if (allowed) this.#events.push({ type: "holding-resumed" });
      else this.#events.push({ type: "holding-suspended", reason: this.#whyNotHolding(now) });
    }
    const vipCount = this.#config.vips.length;
    for (let vip = 0; vip < vipCount; vip += 1) {
      const wanted = allowed && this.#wants(vip);
      const local = this.#vips.get(vip);
      if (wanted) {
        if (!local) {
          this.#setLocal(vip, "probing", now);
          this.#effects.push({ type: "probe-address", vip });
        } else if (local.state === "conflict" && now >= local.retryAtMs) {
          this.#setLocal(vip, "probing", now);
          this.#effects.push({ type: "probe-address", vip });
        }
        continue;
      }
      if (!local) continue;
      if (local.state === "conflict") {
        this.#vips.delete(vip);
      } else if (local.state === "held" || local.state === "adding") {
        // An add in flight is removed too: `ip addr del` after `add` leaves nothing behind.
        this.#setLocal(vip, "removing", now, now + this.#config.timers.probeRetryMs);
        this.#effects.push({ type: "remove-address", vip });
        this.#heartbeatNow = true;
      } else if (local.state === "removing" && now >= local.retryAtMs) {
        local.retryAtMs = now + this.#config.timers.probeRetryMs;
        this.#effects.push({ type: "remove-address", vip });
      }
      // `probing` without a wish: the result is discarded when it arrives.
    }
  }

  /** Follows whether the coordinator's configuration fingerprint is ours; events on changes. */
  #noteCoordinatorConfig(coordinator: string, theirs: string): void {
    const mismatch = theirs !== this.#fingerprint;
    const was = this.#configMismatch;
    if (
      mismatch &&
      (was === undefined || was.coordinator !== coordinator || was.theirs !== theirs)
    ) {
      this.#configMismatch = { coordinator, theirs };
      this.#events.push({
        type: "config-mismatch",
        coordinator,
        own: this.#fingerprint,
        theirs,
      });
    } else if (!mismatch && was !== undefined) {
      this.#configMismatch = undefined;
      this.#events.push({ type: "config-matched", coordinator });
    }
  }

  #mayHold(now: number): boolean {
    return (
      this.#configMismatch === undefined &&
      this.#healthy &&
      !this.#leaving &&
      now < this.#leaseExpiryMs - releaseGuardMs(this.#config.timers) &&
      this.#hearsMajority(now)
    );
  }

  #whyNotHolding(now: number): string {
    if (this.#leaving) return "shutting down";
    if (this.#configMismatch !== undefined) {
      return `configuration differs from the coordinator's (${this.#configMismatch.coordinator})`;
    }
    if (!this.#healthy) return "own health checks failed";
    if (!this.#hearsMajority(now)) return "does not hear a majority of the nodes";
    return "lease expired";
  }

  #wants(vip: number): boolean {
    return this.#table.owners[vip] === this.#index;
  }

  #earlyHeartbeatGapMs(): number {
    return Math.max(1, Math.floor(this.#config.timers.heartbeatIntervalMs / 10));
  }

  #sendHeartbeat(now: number): void {
    const t = this.#config.timers;
    this.#lastHeartbeatMs = now;
    this.#seq += 1;
    this.#sentAtMs.set(this.#seq, now);
    this.#sentAtMs.delete(this.#seq - 256);
    this.#nextHeartbeatMs = now + t.heartbeatIntervalMs + this.#beatSlackMs();
    const holding: number[] = [];
    const conflicts: number[] = [];
    for (const [vip, local] of this.#vips) {
      if (local.state === "conflict") conflicts.push(vip);
      else holding.push(vip);
    }
    const hears = this.#config.nodes
      .filter((n) => n.id !== this.id && this.#heard(n.id, now))
      .map((n) => n.id);
    const message: HeartbeatMessage = {
      type: "heartbeat",
      term: this.#term,
      role: this.#role,
      incarnation: this.#incarnation,
      seq: this.#seq,
      healthy: this.#healthy && !this.#leaving,
      leaving: this.#leaving,
      quorum: this.#hearsMajority(now),
      hears,
      holding,
      conflicts,
      tableVersion: this.#table.version,
      roundSeen: this.#roundSeen,
      ...(this.#fingerprint === "" ? {} : { config: this.#fingerprint }),
      ...this.#coordinatorFields(now),
      view: this.#withHeld(this.#ownView(now), now),
    };
    const to = this.#starTarget(now);
    this.#effects.push(
      to === undefined ? { type: "broadcast", message } : { type: "send", to, message },
    );
  }

  /**
   * Heartbeats `coordinator`: the coordinator a follower's heartbeats go to alone, while its
   * own heartbeats are on time (at most one interval missed). Undefined: send to every node
   * (the embedded default, a coordinator, and a follower that may soon need an election,
   * whose voters then hear each other before the election timeout).
   */
  #starTarget(now: number): string | undefined {
    if (!this.#star || this.#role !== "follower" || this.#coordinator === undefined)
      return undefined;
    const t = this.#config.timers;
    return now - this.#lastCoordinatorContactMs <= 2 * t.heartbeatIntervalMs
      ? this.#coordinator
      : undefined;
  }

  /**
   * Whether this node watches its link with `id` (heartbeats `all`: every link; `coordinator`:
   * the links to and from the coordinator). Unwatched links are left out of the view and of
   * the missed-heartbeat counts: display only, nothing is decided from it.
   */
  #watches(id: string): boolean {
    return !this.#star || this.#role === "coordinator" || id === this.#coordinator;
  }

  /** What this node reports of its view for operators; nothing is decided from it. */
  #ownView(now: number): HeartbeatView {
    const heardMs: Record<string, number> = {};
    let missed: Record<string, number> | undefined;
    const intervalMs = this.#config.timers.heartbeatIntervalMs;
    for (const [id, peer] of this.#peers) {
      if (!this.#watches(id) && !this.#heard(id, now)) continue;
      const silentMs = Math.max(0, now - peer.lastHeardMs);
      heardMs[id] = Math.min(viewMsMax, Math.round(silentMs));
      // The silence now counts like a gap that ends now.
      let count = missedIn(silentMs, intervalMs);
      for (const [atMs, n] of peer.missGaps) if (now - atMs < missWindowMs) count += n;
      if (count > 0) {
        missed ??= {};
        missed[id] = Math.min(count, Math.ceil(missWindowMs / intervalMs));
      }
    }
    const leaseEnd = this.#leaseExpiryMs - releaseGuardMs(this.#config.timers);
    return {
      ...(this.#coordinator !== undefined ? { coordinator: this.#coordinator } : {}),
      leaseLeftMs: Math.min(viewMsMax, Math.max(0, Math.round(leaseEnd - now))),
      heardMs,
      ...(missed ? { missed } : {}),
    };
  }

  /**
   * The heartbeats missed before this one from the same process (a gap of k intervals is
   * k - 1 missed, from 1.8 intervals on), kept for `missWindowMs`: a fresh array only when
   * something changes.
   */
  #missGapsOf(
    message: HeartbeatMessage,
    previous: PeerInfo | undefined,
    now: number,
  ): readonly (readonly [number, number])[] {
    if (previous === undefined || previous.incarnation !== message.incarnation) return [];
    let gaps = previous.missGaps;
    if (gaps.length > 0 && now - gaps[0]![0] >= missWindowMs) {
      gaps = gaps.filter(([atMs]) => now - atMs < missWindowMs);
    }
    const intervalMs = this.#config.timers.heartbeatIntervalMs;
    const missed = missedIn(now - previous.lastHeardMs, intervalMs);
    return missed > 0 ? [...gaps, [now, missed] as const] : gaps;
  }

  #withHeld(view: HeartbeatView, now: number): HeartbeatView {
    const held = this.#heldReport(now);
    if (held === undefined && !this.#marksDirty) return view;
    this.#marksDirty = false;
    const phases = this.#phaseReport(now);
    const version = this.#config.version;
    return {
      ...view,
      ...(held !== undefined ? { held } : {}),
      ...(held !== undefined && version !== undefined ? { version } : {}),
      ...(phases.length > 0 ? { phases } : {}),
    };
  }

  /** Notes a failover phase this node timed (the runtime's: probe, address added, announced). */
  notePhase(phase: FailoverPhaseName, ms: number, vip: number, nowMs: number): void {
    this.#mark(phase, ms, nowMs, vip);
  }

  #mark(phase: FailoverPhaseName, ms: number, now: number, vip = -1, node = -1): void {
    this.#marks.push({
      phase: failoverPhaseCodes.indexOf(phase),
      ms: Math.max(0, Math.round(ms)),
      atMs: now,
      vip,
      node,
    });
    if (this.#marks.length > marksMax) this.#marks.shift();
    this.#marksDirty = true;
  }

  #phaseReport(now: number): (readonly [number, number, number, number, number])[] {
    while (this.#marks.length > 0 && now - this.#marks[0]!.atMs >= marksKeptMs) this.#marks.shift();
    return this.#marks.map((m) => [m.phase, m.ms, Math.round(now - m.atMs), m.vip, m.node]);
  }

  /** Every failover phase timed in the last minute, by this node and as peers reported theirs. */
  #failoverMarks(now: number): FailoverMark[] {
    const nodes = this.#config.nodes;
    const vips = this.#config.vips;
    const list: FailoverMark[] = [];
    const add = (by: string, m: PhaseMark) => {
      if (now - m.atMs >= marksKeptMs) return;
      list.push({
        by,
        phase: failoverPhaseCodes[m.phase] ?? "detected",
        ms: m.ms,
        agoMs: Math.max(0, Math.round(now - m.atMs)),
        ...(m.vip >= 0 && vips[m.vip] ? { vip: vips[m.vip]!.address } : {}),
        ...(m.node >= 0 && nodes[m.node] ? { failed: nodes[m.node]!.id } : {}),
      });
    };
    for (const m of this.#marks) add(this.id, m);
    for (const [id, peer] of this.#peers) for (const m of peer.marks) add(id, m);
    return list.sort((a, b) => b.agoMs - a.agoMs);
  }

  /**
   * `held` for this heartbeat's view: when what this node holds changed since the last report,
   * and about once a second (so a peer that starts later learns it too); else nothing.
   */
  #heldReport(now: number): (readonly [number, number])[] | undefined {
    // Decided before anything is built: most heartbeats report nothing.
    if (this.#heldChanges === this.#heldReported && now - this.#heldReportMs < heldReportEveryMs)
      return undefined;
    this.#heldReported = this.#heldChanges;
    this.#heldReportMs = now;
    const held: [number, number][] = [];
    for (const [vip, local] of this.#vips) {
      if (local.state === "held")
        held.push([vip, Math.min(viewMsMax, Math.round(now - local.sinceMs))]);
    }
    return held;
  }

  // ---------------------------------------------------------------- election

  /**
   * A node that restarted forgot what it acknowledged before: the coordinator it heard (the
   * sighting a new coordinator bounds that coordinator's own lease with) and the table it
   * applied. It abstains until every lease that may rest on those acknowledgements has surely
   * ended: grants within the grant window of its last acknowledgement, then a lease.
   */
  #mayVote(now: number): boolean {
    const t = this.#config.timers;
    return (
      now - this.#lastCoordinatorContactMs >= t.electionTimeoutMs &&
      now - this.#bootMs >= grantWindowMs(t) + leaseSafeWaitMs(t) &&
      this.#role !== "coordinator"
    );
  }

  #startPreVote(now: number): void {
    this.#electionDeadlineMs = now + this.#randomElectionTimeout();
    if (!this.#mayVote(now)) return;
    this.#preVotes = new Set([this.id]);
    this.#preVoteRefusedBy.clear();
    this.#preVoteStartedMs = now;
    this.#effects.push({
      type: "broadcast",
      message: {
        type: "pre-vote-request",
        term: this.#term + 1,
        tableVersion: this.#table.version,
      },
    });
    if (this.#preVotes.size >= this.#majority) this.#startElection(now);
  }

  #startElection(now: number): void {
    this.#preVotes = undefined;
    this.#term += 1;
    this.#roundSeen = 0;
    this.#votedFor = this.id;
    this.#setRole("candidate", `pre-vote won for term ${this.#term}`);
    this.#setCoordinator(undefined);
    this.#votes = new Set([this.id]);
    const own = this.#currentSighting(now);
    this.#voteSightings = own ? [{ receivedMs: now, seen: own }] : [];
    this.#electionDeadlineMs = now + this.#randomElectionTimeout();
    this.#effects.push({ type: "persist-vote", state: { term: this.#term, votedFor: this.id } });
    this.#effects.push({
      type: "broadcast",
      message: { type: "vote-request", term: this.#term, tableVersion: this.#table.version },
    });
    if (this.#votes.size >= this.#majority) this.#becomeCoordinator(now);
  }

  #adoptTerm(term: number, now: number, reason: string): void {
    this.#term = term;
    this.#votedFor = undefined;
    this.#roundSeen = 0; // rounds are per coordinator: an older one's must not ack the new one's
    this.#effects.push({ type: "persist-vote", state: { term, votedFor: undefined } });
    this.#setCoordinator(undefined);
    if (this.#role !== "follower") this.#becomeFollower(now, reason);
  }

  #becomeFollower(now: number, reason: string): void {
    this.#coordinatorState = undefined;
    this.#preVotes = undefined;
    this.#votes = undefined;
    this.#setRole("follower", reason);
    this.#electionDeadlineMs = now + this.#randomElectionTimeout();
  }

  #becomeCoordinator(now: number): void {
    const nodeCount = this.#config.nodes.length;
    const vipCount = this.#config.vips.length;
    this.#votes = undefined;
    if (Number.isFinite(this.#lastCoordinatorContactMs)) {
      const ms = now - this.#lastCoordinatorContactMs;
      this.#events.push({ type: "failover-phase", phase: "elected", ms });
      this.#mark("elected", ms, now);
    }
    this.#setRole("coordinator", `won the election for term ${this.#term}`);
    this.#setCoordinator(this.id);
    // The coordinator's configuration is the reference: our own.
    this.#noteCoordinatorConfig(this.id, this.#fingerprint);
    const previous = this.#table;
    const members: MemberRecord[] = this.#config.nodes.map((node) => ({
      damper: initialDamperState(true),
      eligibleSinceMs: now,
      lastGrantAnchorMs: undefined,
      failReason: "",
      // The incarnation last granted a lease, if any: one that restarted while no coordinator
      // watched (our election) is a restart like any other (see #observeMembers).
      incarnation: this.#grantedIncarnation.get(node.id) ?? this.#peers.get(node.id)?.incarnation,
    }));
    const version: TableVersion = [this.#term, 1];
    // Peers get a suspicion window from our election to acknowledge a round of ours.
    for (const peer of this.#peers.values()) peer.lastTimelyAckMs = now;
    this.#coordinatorState = {
      electedAtMs: now,
      round: 0,
      roundSentAtMs: new Map(),
      members,
      desired: previous.owners.map((o) => (o >= 0 ? o : undefined)),
      why: (previous.why ?? "-".repeat(vipCount)).split(""),
      desiredAtMs: new Array<number>(vipCount).fill(now),
      releasedAt: new Array<TableVersion>(vipCount).fill(version),
      decisions: [],
      nextMembershipRoundMs: now + this.#config.timers.heartbeatIntervalMs,
      tableDirty: true,
      placeAgain: true,
      pins: new Map(previous.pins.map(([v, n]) => [v, n])),
      drained: new Set(previous.drained),
      roundRobinCursor: previous.roundRobinCursor,
      resigning: false,
      granting: false,
      previousCoordinator: this.#previousCoordinatorAnchor(),
    };
    this.#table = { ...previous, version, members: new Array(nodeCount).fill("healthy") };
    this.#roundSeen = 0;
    this.#heartbeatNow = true;
  }

  #setRole(role: Role, reason: string): void {
    if (role === this.#role) return;
    this.#role = role;
    this.#events.push({ type: "role-changed", term: this.#term, role, reason });
  }

  #setCoordinator(coordinator: string | undefined): void {
    if (coordinator === this.#coordinator) return;
    this.#coordinator = coordinator;
    this.#events.push({ type: "coordinator-changed", term: this.#term, coordinator });
  }

  /** Drawn from [base, 1.5 × base): pre-vote tie-breaking keeps splits rare without a wider spread. */
  #randomElectionTimeout(): number {
    const base = this.#config.timers.electionTimeoutMs;
    return base + Math.floor(this.#random.next() * (base / 2));
  }

  // ---------------------------------------------------------------- coordinator

  #advanceCoordinator(now: number): void {
    const state = this.#coordinatorState!;
    const t = this.#config.timers;
    if (!this.#checkQuorum(now)) {
      this.#becomeFollower(now, "lost contact with a majority (check-quorum)");
      this.#setCoordinator(undefined);
      return;
    }
    // Placement runs whenever membership, pins or drains changed (they mark the table dirty),
    // and on a membership round only while time itself can change its outcome (#place sets
    // `placeAgain`): not on every datagram nor every round, where with nothing changed it
    // would only repeat itself (with a thousand VIPs, more than everything else a step does).
    let placementDue = state.tableDirty;
    if (now >= state.nextMembershipRoundMs) {
      state.nextMembershipRoundMs = now + t.heartbeatIntervalMs;
      this.#observeMembers(now);
      placementDue ||= state.placeAgain;
    }
    const mayGrant = this.#mayGrant(now);
    if (mayGrant && !state.granting) this.#heartbeatNow = true; // first grants of the term: at once
    state.granting = mayGrant;
    if (placementDue || state.tableDirty) this.#place(now);
    this.#publish(now);
    if (state.resigning && this.#ownVipsHandedOver()) {
      this.#resign(now);
    }
  }

  /** False when no round sent within the check-quorum window was acknowledged by a majority. */
  #checkQuorum(now: number): boolean {
    const state = this.#coordinatorState!;
    if (now - state.electedAtMs < this.#config.timers.electionTimeoutMs) return true;
    // After our own stall the majority gets one election timeout to acknowledge a new round:
    // its silence was ours. Grants still need a recently acknowledged round (#mayGrant).
    if (now - this.#stallEndedMs < this.#config.timers.electionTimeoutMs) return true;
    const acknowledgedAt = this.#majorityRoundSentAt();
    return (
      acknowledgedAt !== undefined &&
      now - acknowledgedAt < checkQuorumWindowMs(this.#config.timers, this.#config.readOnTick)
    );
  }

  /** Send time of the newest round that a majority (counting ourselves) has acknowledged. */
  #majorityRoundSentAt(): number | undefined {
    const state = this.#coordinatorState!;
    const rounds: number[] = [state.round];
    for (const [, peer] of this.#peers) {
      if (peer.roundSeenTerm === this.#term) rounds.push(peer.roundSeen);
    }
    if (rounds.length < this.#majority) return undefined;
    rounds.sort((a, b) => b - a);
    const round = rounds[this.#majority - 1]!;
    return round > 0 ? state.roundSentAtMs.get(round) : undefined;
  }

  #mayGrant(now: number): boolean {
    const acknowledgedAt = this.#majorityRoundSentAt();
    return (
      acknowledgedAt !== undefined && now < acknowledgedAt + grantWindowMs(this.#config.timers)
    );
  }

  #observeMembers(now: number): void {
    const state = this.#coordinatorState!;
    const t = this.#config.timers;
    const damping = { faultsToFail: t.faultsToFail, windowMs: t.faultWindowMs, rise: t.riseRounds };
    this.#config.nodes.forEach((node, i) => {
      const member = state.members[i]!;
      let ok: boolean;
      let reason: string;
      let immediate = false;
      if (node.id === this.id) {
        ok = this.#healthy && !this.#leaving;
        reason = this.#leaving ? "leaving" : "own health checks failed";
        immediate = !ok;
      } else {
        const peer = this.#peers.get(node.id);
        const heard = peer !== undefined && now - peer.lastHeardMs <= t.suspectAfterMs;
        const restarted =
          heard && member.incarnation !== undefined && peer.incarnation !== member.incarnation;
        if (heard) member.incarnation = peer.incarnation;
        if (!heard) {
          ok = false;
          reason = "not heard";
        } else if (restarted) {
          // Its agent restarted: whatever it held went with the old process (its supervisor or
          // the new agent removed the addresses). A failure like any other, reported as one,
          // and the node comes back only after rise rounds, so a crash loop cannot keep
          // taking VIPs back.
          ok = false;
          immediate = true;
          reason = "its agent restarted: new incarnation";
        } else if (peer.config !== this.#fingerprint) {
          // Its node and VIP indexes mean something else: it must hold nothing of ours.
          ok = false;
          immediate = true;
          reason = `configuration differs from the coordinator's (fingerprint ${peer.config || "none"}, coordinator ${this.#fingerprint || "none"})`;
        } else if (!peer.healthy || peer.leaving) {
          // The node damped its own checks already and has released its VIPs itself.
          ok = false;
          immediate = true;
          reason = peer.leaving ? "leaving" : "reports itself unhealthy";
        } else if (!peer.quorum) {
          ok = false;
          reason = "does not hear a majority";
        } else if (now - peer.lastTimelyAckMs > t.suspectAfterMs + t.heartbeatIntervalMs) {
          ok = false;
          reason = "acknowledges none of our rounds in time";
        } else {
          ok = true;
          reason = "";
        }
      }
      const wasUp = member.damper.up;
      if (immediate && member.damper.up) {
        member.damper = forceDown(member.damper, now);
      } else {
        member.damper = observe(damping, member.damper, ok, now).state;
      }
      if (!ok) member.failReason = reason;
      if (wasUp && !member.damper.up) {
        member.eligibleSinceMs = undefined;
        this.#events.push({ type: "member-failed", node: node.id, reason: member.failReason });
        const silentSince = this.#peers.get(node.id)?.lastHeardMs;
        if (node.id !== this.id && silentSince !== undefined) {
          const ms = now - silentSince;
          this.#events.push({ type: "failover-phase", phase: "detected", ms, node: node.id });
          this.#mark("detected", ms, now, -1, this.#config.nodes.indexOf(node));
        }
        state.tableDirty = true;
      } else if (!wasUp && member.damper.up) {
        member.eligibleSinceMs = now;
        this.#events.push({ type: "member-recovered", node: node.id });
        state.tableDirty = true;
      }
    });
  }

  #place(now: number): void {
    const state = this.#coordinatorState!;
    this.#placements += 1;
    const nodes = this.#config.nodes;
    const members = nodes.map((n, i) => {
      const record = state.members[i]!;
      const eligible = record.damper.up && !state.drained.has(i);
      return {
        id: n.id,
        weight: n.weight,
        eligible,
        eligibleSinceMs: eligible ? record.eligibleSinceMs : undefined,
      };
    });
    const pins = new Map<number, string>();
    for (const [vip, node] of state.pins) pins.set(vip, nodes[node]!.id);
    const result = place({
      vips: this.#config.vips,
      members,
      previous: state.desired.map((o) => (o === undefined ? undefined : nodes[o]!.id)),
      pins,
      roundRobinCursor: state.roundRobinCursor,
      nowMs: now,
    });
    state.roundRobinCursor = result.roundRobinCursor;
    state.decisions = [...result.decisions];
    let moved = false;
    result.owners.forEach((owner, vip) => {
      const index = owner === undefined ? undefined : nodes.findIndex((n) => n.id === owner);
      if (index !== state.desired[vip]) {
        const decision = result.decisions[vip];
        this.#events.push({
          type: "vip-assigned",
          vip: this.#address(vip),
          owner,
          previous: decision?.previousOwner,
          reason: decision?.text ?? "",
        });
        state.desired[vip] = index;
        state.why[vip] = decision ? reasonCodes[decision.reason] : "-";
        state.desiredAtMs[vip] = now;
        state.tableDirty = true;
        moved = true;
      }
    });
    state.placeAgain = moved || this.#placementWaits(state.desired);
  }

  /**
   * Whether placement's outcome can change with time alone: a VIP without an owner, or one off
   * its preferred node under `failback: after` (eligibility, pins and drains mark the table
   * dirty when they change; the clock is the one input that moves by itself).
   */
  #placementWaits(desired: readonly (number | undefined)[]): boolean {
    const nodes = this.#config.nodes;
    return this.#config.vips.some((vip, i) => {
      const owner = desired[i];
      if (owner === undefined) return true;
      return (
        vip.failback.mode === "after" &&
        vip.preferred !== undefined &&
        nodes[owner]!.id !== vip.preferred
      );
    });
  }

  /** Brings the published table toward `desired`, never faster than safety allows. */
  #publish(now: number): void {
    const state = this.#coordinatorState!;
    const owners = [...this.#table.owners];
    let changed = state.tableDirty;
    const nextVersion: TableVersion = [this.#term, this.#table.version[1] + 1];
    owners.forEach((current, vip) => {
      const desired = state.desired[vip] ?? -1;
      if (current === desired) return;
      if (current >= 0) {
        owners[vip] = -1; // first the old owner lets go
        state.releasedAt[vip] = nextVersion;
        changed = true;
        return;
      }
      if (desired >= 0 && this.#safeToAssign(vip, desired, now)) {
        owners[vip] = desired;
        changed = true;
        const waitedMs = now - (state.desiredAtMs[vip] ?? now);
        const address = this.#config.vips[vip]!.address;
        this.#events.push({
          type: "failover-phase",
          phase: "lease-wait",
          ms: waitedMs,
          vip: address,
        });
        this.#mark("lease-wait", waitedMs, now, vip);
      }
    });
    if (!changed) return;
    const members: MemberStateCode[] = state.members.map((m, i) =>
      state.drained.has(i) ? "drained" : m.damper.up ? "healthy" : "failed",
    );
    const table: VipTable = {
      version: nextVersion,
      owners,
      pins: [...state.pins],
      drained: [...state.drained],
      roundRobinCursor: state.roundRobinCursor,
      members,
      why: state.why.join(""),
    };
    if (
      JSON.stringify({ ...table, version: 0 }) === JSON.stringify({ ...this.#table, version: 0 })
    ) {
      state.tableDirty = false;
      return;
    }
    this.#table = table;
    state.tableDirty = false;
    this.#heartbeatNow = true;
  }

  /** True when no node other than `to` can still have `vip` configured. */
  #safeToAssign(vip: number, to: number, now: number): boolean {
    return this.#config.nodes.every(
      (node, i) => i === to || this.#releasedBy(vip, i, node.id, now),
    );
  }

  #releasedBy(vip: number, nodeIndex: number, nodeId: string, now: number): boolean {
    const state = this.#coordinatorState!;
    if (nodeId === this.id) {
      return !this.#vips.has(vip);
    }
    const peer = this.#peers.get(nodeId);
    if (peer && !peer.holding.has(vip)) {
      if (peer.leaving) return true;
      if (compareVersions(peer.tableVersion, state.releasedAt[vip]!) >= 0) return true;
    }
    return now >= this.#leaseSafeAt(nodeIndex);
  }

  /** When every lease `nodeIndex` may hold (from us or an earlier coordinator) has expired. */
  #leaseSafeAt(nodeIndex: number): number {
    const state = this.#coordinatorState!;
    const previous = state.previousCoordinator;
    // Leases an earlier coordinator granted all precede our election; for that coordinator
    // itself the voters' sightings give a tighter bound (#previousCoordinatorAnchor).
    const inherited = previous?.index === nodeIndex ? previous.anchorMs : state.electedAtMs;
    const anchor = Math.max(
      inherited,
      state.members[nodeIndex]!.lastGrantAnchorMs ?? Number.NEGATIVE_INFINITY,
    );
    return anchor + leaseSafeWaitMs(this.#config.timers);
  }

  /**
   * Bounds, on our clock, the anchor of every lease the latest earlier coordinator X can
   * still hold, from the sightings our voters reported:
   * - X's own leases of its latest term run from rounds a majority acknowledged; that
   *   majority shares a voter with ours, who heard the round, so they start no later than
   *   the last time any voter heard X;
   * - every other lease of X (as a follower, or coordinator of an older term) was granted
   *   before X's election in that term, which precedes the first time any voter heard X
   *   as coordinator in it.
   * A voter's "ago" runs on its clock and was measured before we received it, so each
   * moment lies at most `receipt - ago × (1-ρ)/(1+ρ)` on ours. Undefined when no voter saw
   * a coordinator (then `electedAtMs` bounds everything, as for any other node).
   */
  #previousCoordinatorAnchor(): { index: number; anchorMs: number } | undefined {
    const sightings = this.#voteSightings;
    if (sightings.length === 0) return undefined;
    const latestTerm = Math.max(...sightings.map((s) => s.seen.term));
    const latest = sightings.filter((s) => s.seen.term === latestTerm);
    const coordinator = latest[0]!.seen.coordinator;
    if (coordinator === this.id || latest.some((s) => s.seen.coordinator !== coordinator))
      return undefined;
    const index = this.#config.nodes.findIndex((n) => n.id === coordinator);
    if (index < 0) return undefined;
    const rho = this.#config.timers.clockDriftRatio;
    const k = (1 - rho) / (1 + rho);
    const lastHeard = Math.max(
      ...sightings
        .filter((s) => s.seen.coordinator === coordinator)
        .map((s) => s.receivedMs - s.seen.lastAgoMs * k),
    );
    const firstHeard = Math.min(...latest.map((s) => s.receivedMs - s.seen.firstAgoMs * k));
    return { index, anchorMs: Math.ceil(Math.max(lastHeard, firstHeard)) };
  }

  #nextPendingAssignAt(now: number): number | undefined {
    const state = this.#coordinatorState!;
    let at: number | undefined;
    state.desired.forEach((desired, vip) => {
      if (desired === undefined || this.#table.owners[vip] === desired) return;
      this.#config.nodes.forEach((node, i) => {
        if (i === desired || this.#releasedBy(vip, i, node.id, now)) return;
        const safeAt = this.#leaseSafeAt(i);
        at = at === undefined ? safeAt : Math.min(at, safeAt);
      });
    });
    return at;
  }

  #coordinatorFields(now: number): Partial<HeartbeatMessage> {
    const state = this.#coordinatorState;
    if (!state || this.#role !== "coordinator") return {};
    state.round += 1;
    state.roundSentAtMs.set(state.round, now);
    state.roundSentAtMs.delete(state.round - 1024);
    const grants: Record<string, readonly [number, number]> = {};
    if (this.#mayGrant(now)) {
      this.#config.nodes.forEach((node, i) => {
        const member = state.members[i]!;
        if (!member.damper.up) return;
        if (node.id === this.id) {
          // Our own lease runs from the send time of the newest round a majority
          // acknowledged: a later coordinator can bound it through its voters (one of them
          // acknowledged that round), see #previousCoordinatorAnchor.
          const acknowledgedAt = this.#majorityRoundSentAt();
          if (acknowledgedAt !== undefined) {
            this.#leaseExpiryMs = Math.max(
              this.#leaseExpiryMs,
              acknowledgedAt + this.#config.timers.leaseMs,
            );
            member.lastGrantAnchorMs = Math.max(member.lastGrantAnchorMs ?? 0, acknowledgedAt);
          }
          return;
        }
        const peer = this.#peers.get(node.id);
        if (!peer || !this.#mayGrant(now)) return;
        grants[node.id] = [peer.incarnation, peer.seq];
        this.#grantedIncarnation.set(node.id, peer.incarnation);
        member.lastGrantAnchorMs = Math.max(member.lastGrantAnchorMs ?? 0, peer.lastHeardMs);
      });
    }
    // The table rides along only while some peer may lack it (most rounds carry none): a peer
    // reports the version it applied in every heartbeat, and nothing the coordinator decides
    // rests on what it sent, only on what peers report (#releasedBy) and on leases.
    return this.#someoneLacksTable()
      ? { round: state.round, table: this.#table, grants }
      : { round: state.round, grants };
  }

  /** Whether a peer reported another table version than ours in its last heartbeat, or none. */
  #someoneLacksTable(): boolean {
    const version = this.#table.version;
    for (const node of this.#config.nodes) {
      if (node.id === this.id) continue;
      const peer = this.#peers.get(node.id);
      if (peer === undefined || compareVersions(peer.tableVersion, version) !== 0) return true;
    }
    return false;
  }

  #ownVipsHandedOver(): boolean {
    const state = this.#coordinatorState!;
    const mine = state.desired.some((d) => d === this.#index);
    return !mine && this.#vips.size === 0;
  }

  #resign(now: number): void {
    const message: HeartbeatMessage = {
      type: "heartbeat",
      term: this.#term,
      role: "coordinator",
      incarnation: this.#incarnation,
      seq: ++this.#seq,
      healthy: false,
      leaving: true,
      quorum: this.#hearsMajority(now),
      hears: [],
      holding: [],
      conflicts: [],
      tableVersion: this.#table.version,
      roundSeen: this.#roundSeen,
      resign: true,
    };
    this.#effects.push({ type: "broadcast", message });
    this.#becomeFollower(now, "resigned for shutdown");
    this.#setCoordinator(undefined);
    this.#electionDeadlineMs = Number.POSITIVE_INFINITY;
  }

  #applyAdmin(command: AdminCommand, _now: number): void {
    const state = this.#coordinatorState!;
    const nodeIndex =
      "node" in command ? this.#config.nodes.findIndex((n) => n.id === command.node) : -1;
    const vipIndex = "vip" in command ? this.#vipIndex(command.vip) : -1;
    const reject = (reason: string): void => {
      this.#events.push({ type: "admin-rejected", command, reason });
    };
    if ("node" in command && nodeIndex < 0) {
      reject(`node ${command.node} is not configured`);
      return;
    }
    if ("vip" in command && vipIndex < 0) {
      reject(`VIP ${command.vip} is not configured`);
      return;
    }
    // The same refusals as the agent's admin() (which answers the operator at once from its
    // own view): here they are decided on the coordinator's current state.
    const eligible = (i: number) => state.members[i]!.damper.up && !state.drained.has(i);
    if (command.type === "move" && !eligible(nodeIndex)) {
      reject(
        `${command.node} is ${state.drained.has(nodeIndex) ? "drained" : "failed"}: a VIP pinned there would have no holder`,
      );
      return;
    }
    if (
      command.type === "drain" &&
      !command.force &&
      eligible(nodeIndex) &&
      !this.#config.nodes.some((_, i) => i !== nodeIndex && eligible(i))
    ) {
      reject(`${command.node} is the last eligible node; draining it needs force`);
      return;
    }
    switch (command.type) {
      case "move":
        state.pins.set(vipIndex, nodeIndex);
        break;
      case "unpin":
        state.pins.delete(vipIndex);
        break;
      case "drain":
        state.drained.add(nodeIndex);
        break;
      case "undrain":
        state.drained.delete(nodeIndex);
        state.members[nodeIndex]!.eligibleSinceMs = _now;
        break;
    }
    state.tableDirty = true;
    this.#events.push({ type: "admin-applied", command });
  }

  // ---------------------------------------------------------------- helpers

  #heard(id: string, now: number): boolean {
    const peer = this.#peers.get(id);
    return peer !== undefined && now - peer.lastHeardMs <= this.#config.timers.electionTimeoutMs;
  }

  /**
   * Heard directly, or (heartbeats `coordinator`, where followers do not hear each other) by
   * the coordinator this follower hears, as its latest heartbeat reported.
   */
  #heardOrRelayed(id: string, now: number): boolean {
    if (this.#heard(id, now)) return true;
    const coordinator = this.#coordinator;
    if (!this.#star || this.#role === "coordinator" || coordinator === undefined) return false;
    return (
      this.#heard(coordinator, now) && (this.#peers.get(coordinator)?.hears.includes(id) ?? false)
    );
  }

  #hearsMajority(now: number): boolean {
    let count = 1;
    for (const node of this.#config.nodes) {
      if (node.id !== this.id && this.#heardOrRelayed(node.id, now)) count += 1;
    }
    return count >= this.#majority;
  }

  #vipHasConflict(vip: number): boolean {
    if (this.#vips.get(vip)?.state === "conflict") return true;
    for (const peer of this.#peers.values()) if (peer.conflicts.includes(vip)) return true;
    return false;
  }

  #setLocal(vip: number, state: LocalVipState, now: number, retryAtMs = 0, by?: string): void {
    const previous = this.#vips.get(vip);
    if ((previous?.state === "held") !== (state === "held")) this.#heldChanges += 1;
    this.#vips.set(vip, {
      state,
      retryAtMs,
      conflictBy: by,
      sinceMs: previous && state === "held" ? now : (previous?.sinceMs ?? now),
    });
  }

  /** At most once per second: a loaded node may hear several peers "come back" in a row. */
  #reannounce(now: number): void {
    if (now - this.#lastReannounceMs < 1000) return;
    this.#lastReannounceMs = now;
    for (const [vip, local] of this.#vips) {
      if (local.state === "held") this.#effects.push({ type: "announce", vip });
    }
  }

  #address(vip: number): string {
    return this.#config.vips[vip]?.address ?? `vip#${vip}`;
  }

  #vipIndex(address: string): number {
    const bare = address.split("/")[0];
    return this.#config.vips.findIndex((v) => v.address === bare);
  }

  #explain(vip: number, now: number): string {
    const state = this.#coordinatorState;
    const nodes = this.#config.nodes;
    const owner = this.#table.owners[vip] ?? -1;
    if (!state) {
      if (this.#table.version[0] === 0) return "no VIP table received yet";
      const why = reasonWords[this.#table.why?.[vip] ?? ""];
      return owner >= 0
        ? `assigned to ${nodes[owner]!.id} by coordinator ${this.#coordinator ?? "(none now)"} (table ${this.#table.version.join(".")})${why ? `: ${why}` : ""}`
        : "unassigned in the coordinator's table (moving or no eligible node)";
    }
    const decision = state.decisions[vip];
    const desired = state.desired[vip];
    let text = decision?.text ?? "not placed yet";
    if (desired !== undefined && owner !== desired) {
      const waiting = nodes
        .map((n, i) => ({ n, i }))
        .filter(({ n, i }) => i !== desired && !this.#releasedBy(vip, i, n.id, now))
        .map(({ n, i }) => `${n.id} (lease safe in ${Math.max(0, this.#leaseSafeAt(i) - now)} ms)`);
      text += waiting.length > 0 ? `; waiting for release by ${waiting.join(", ")}` : "; assigning";
    }
    return text;
  }
}

export type { LocalVipState, Message };
