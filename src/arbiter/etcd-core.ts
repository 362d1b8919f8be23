/**
 * The etcd arbiter (`arbiter: { kind: etcd }`): the same step machine contract as the
 * embedded core (src/core/types.ts), with etcd deciding who may hold what instead of
 * heartbeats among the nodes. Pure: every etcd write is an `etcd` effect, every etcd fact
 * an input (`etcd-session`, `etcd-view`, `etcd-result`), performed and fed back by
 * src/arbiter/etcd-driver.ts.
 *
 * Keys, under `<prefix>/<cluster>/`:
 *   coordinator       the coordinator's id, under its session lease; its create revision is
 *                     the term. Campaign: create it if absent.
 *   members/<id>      each node's health, under its session lease: a node whose lease
 *                     expired (dead, cut off from etcd) has no member key.
 *   table             the owner of every VIP, written only by the coordinator, and only
 *                     while the coordinator key is still its own of its term.
 *   admin             pins and drains (`floatip ip move`, `node drain`), written by any node
 *                     against the mod revision it read.
 *   owners/<address>  the VIP's holder, under the holder's session lease: created only when
 *                     absent and only against the table revision that named the holder.
 *
 * Safety. A node adds a VIP only while it owns `owners/<address>` (created by its own
 * transaction at revision R), and only while its session lease is surely alive: etcd
 * confirmed it for `ttl` from a keep-alive sent at `t`, and etcd expires a lease no sooner
 * than `ttl` after it received the last keep-alive, so the lease lives until at least
 * `t + ttl`. The node lets go of every VIP at `t + ttl·(1-ρ) - guard`, before anyone else
 * can create the key. Every view carries its revision: a node acts only on the newest
 * revision it has seen (older views are refused and counted), and lets go of a VIP as soon
 * as a view at or after R shows the key deleted or created again by another transaction (a
 * paused node cannot act on an old grant). Transactions fence the writers: the table only
 * from the coordinator of the current term, a claim only against the table revision it read.
 * A holder that does not run (SIGSTOP) is covered as in the embedded mode: the kernel
 * lifetime of its addresses (renewed only while the lease is valid) and the new owner's
 * occupancy probe.
 *
 * When etcd is unreachable (`on_loss`):
 *   release   (default) each holder lets go of its VIPs when its lease may have run out;
 *             nothing is held until etcd answers again. Never two holders.
 *   failsafe  (Patroni's failsafe_mode) a holder that cannot renew its lease keeps its VIPs
 *             for as long as every other configured node acknowledges, over the cluster's
 *             authenticated UDP channel, that it will claim none of them for `ttl` from the
 *             acknowledgement. A node acknowledges only when it holds or claims none of
 *             them, and claims nothing for `ttl` after it starts (it forgets acknowledgements
 *             when it restarts). One node unreachable: the holder releases as with `release`.
 */
import type { Timers } from "../config/types.ts";
import type { ArbiterCore, LocalVipState } from "../core/arbiter.ts";
import type { FailoverMark, NodeStatus, PeerStatus, VipStatus } from "../core/node.ts";
import { place } from "../core/placement/place.ts";
import { type PlacementVip, reasonCodes } from "../core/placement/types.ts";
import {
  type AdminCommand,
  type CoreConfig,
  type CoreEvent,
  type Effect,
  type EtcdKv,
  type EtcdOp,
  type FailoverPhaseName,
  failoverPhaseCodes,
  type Input,
  type MemberStateCode,
  type Role,
  type StepOutput,
  type TableVersion,
} from "../core/types.ts";

export type LossPolicy = "release" | "failsafe";

export interface EtcdCoreCounters {
  /** Views older than one already acted on, refused. */
  readonly staleViews: number;
  /** Claims etcd refused (the key existed, or the table changed since it was read). */
  readonly claimsRefused: number;
  /** VIPs let go because a newer view showed their ownership key gone or re-created. */
  readonly staleGrants: number;
  /** Failsafe requests of peers this node acknowledged. */
  readonly failsafeAcks: number;
}

export interface EtcdCoreOptions {
  readonly id: string;
  readonly config: CoreConfig;
  readonly ttlMs: number;
  readonly onLoss: LossPolicy;
  readonly incarnation: number;
  readonly nowMs: number;
}

/** A member's record (`members/<id>`). */
interface MemberValue {
  readonly healthy: boolean;
  readonly leaving: boolean;
  readonly incarnation: number;
  readonly fingerprint: string;
}

/** The table (`table`): owner per VIP address, and why (placement reason code). */
interface TableValue {
  readonly term: number;
  /** The incarnation of every member when it was published: a later coordinator tells restarts. */
  readonly incarnations?: Readonly<Record<string, number>>;
  readonly owners: Readonly<Record<string, string>>;
  readonly why: Readonly<Record<string, string>>;
  readonly cursor: number;
}

/** Pins and drains (`admin`). */
interface AdminValue {
  readonly pins: Readonly<Record<string, string>>;
  readonly drained: readonly string[];
}

type Local =
  | { state: "claiming"; sinceMs: number }
  | { state: LocalVipState; sinceMs: number; claimRevision: number; retryAtMs: number }
  | { state: "releasing"; sinceMs: number; claimRevision: number };

/** Failsafe requests go out this often while the session is in doubt (of the ttl). */
const failsafeEveryShare = 1 / 4;
/** Failsafe requests start once this share of the ttl passed without a keep-alive answer. */
const failsafeAfterShare = 1 / 2;
/** claimRevision of a VIP held in failsafe mode whose lease was replaced: claim it again. */
const reclaimPending = -1;
/** … and whose claim under the new lease is under way. */
const reclaiming = -2;
/** A claim or release refused by etcd is tried again after this long. */
const retryMs = 100;
/** Failover phases kept for status (a minute). */
const phasesKeptMs = 60_000;

export class EtcdCore implements ArbiterCore {
  readonly id: string;
  readonly #config: CoreConfig;
  readonly #ttlMs: number;
  readonly #onLoss: LossPolicy;
  readonly #incarnation: number;
  readonly #fingerprint: string;
  readonly #startedAtMs: number;
  readonly #addresses: readonly string[];
  #effects: Effect[] = [];
  #events: CoreEvent[] = [];

  #leaseId: string | undefined;
  #validFromMs = Number.NEGATIVE_INFINITY;
  #revision = 0;
  #kvs = new Map<string, EtcdKv>();
  #staleViews = 0;
  #healthy = true;
  #leaving = false;
  #resigned = false;

  /** In-flight writes, one of each kind (claims and releases per VIP). */
  #campaigning = false;
  #registering: string | undefined;
  #publishing: string | undefined;
  #adminWriting = false;
  #retryAtMs = new Map<string, number>();

  readonly #local = new Map<number, Local>();
  /** Coordinator: when each member became eligible (failback "after"). */
  readonly #eligibleSince = new Map<string, number>();
  #role: Role = "follower";
  #coordinatorSinceMs = 0;
  #lastNowMs = 0;
  /** Coordinator: when to publish the cluster's first table at the latest. */
  #firstTableAtMs = 0;
  #coordinator: string | undefined;
  #term = 0;
  #suspended: string | undefined;
  #lastAssigned = new Map<string, string | undefined>();
  #knownMembers = new Set<string>();
  /** Coordinator: each member's incarnation as last seen, and restarts' hold-downs. */
  readonly #incarnations = new Map<string, number>();
  readonly #restartedUntil = new Map<string, number>();

  /** Failsafe, holder side: requests sent (seq -> sent at) and each peer's newest ack. */
  #failsafeSeq = 0;
  readonly #failsafeSent = new Map<number, number>();
  readonly #failsafeAcked = new Map<string, number>();
  #nextFailsafeMs = 0;
  #failsafeHolding = false;
  /** Failsafe, peer side: VIP address -> the node that asked and until when we keep off it. */
  readonly #foreignHolds = new Map<string, { node: string; untilMs: number }>();
  #failsafeEndPending = new Set<string>();
  /** Failsafe: VIP -> until when a refused claim-again is retried before it lets go. */
  readonly #reclaimUntil = new Map<number, number>();

  readonly #phases: { phase: number; ms: number; atMs: number; vip: number }[] = [];
  readonly #counters = { staleViews: 0, claimsRefused: 0, staleGrants: 0, failsafeAcks: 0 };

  constructor(options: EtcdCoreOptions) {
    this.id = options.id;
    this.#config = options.config;
    this.#ttlMs = options.ttlMs;
    this.#onLoss = options.onLoss;
    this.#incarnation = options.incarnation;
    this.#fingerprint = options.config.fingerprint ?? "";
    this.#startedAtMs = options.nowMs;
    this.#addresses = options.config.vips.map((v) => v.address);
  }

  // ---------------------------------------------------------------- ArbiterCore

  step(input: Input): StepOutput {
    this.#effects = [];
    this.#events = [];
    const now = input.nowMs;
    if (input.type === "batch") {
      for (const item of input.inputs) this.#apply(item, Math.max(now, item.nowMs));
    } else {
      this.#apply(input, now);
    }
    this.#advance(now);
    return { effects: this.#effects, events: this.#events, wakeAtMs: this.#wakeAt(now) };
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

  /** Its holders are fenced by etcd leases and revisions; nothing here waits out a stall. */
  get sendsWithheld(): boolean {
    return false;
  }

  get drainedForShutdown(): boolean {
    return (
      this.#leaving && this.#local.size === 0 && (this.#role !== "coordinator" || this.#resigned)
    );
  }

  get tableVersion(): TableVersion {
    return [this.#term, this.#kvs.get("table")?.modRevision ?? 0];
  }

  /** Counters for status and metrics. */
  get counters(): EtcdCoreCounters {
    return { ...this.#counters, staleViews: this.#staleViews };
  }

  holds(vip: number): boolean {
    return this.#local.get(vip)?.state === "held";
  }

  ownership(): { owners: (string | undefined)[]; local: (LocalVipState | "absent")[] } {
    const table = this.#table();
    return {
      owners: this.#addresses.map((a) => this.#ownerKey(a)?.value ?? table?.owners[a]),
      local: this.#addresses.map((_, i) => this.#configuredState(i)),
    };
  }

  leaseValid(nowMs: number): boolean {
    return this.#sessionValid(nowMs) || this.#failsafeHolding;
  }

  notePhase(phase: FailoverPhaseName, ms: number, vip: number, nowMs: number): void {
    this.#phases.push({ phase: failoverPhaseCodes.indexOf(phase), ms, atMs: nowMs, vip });
    while (this.#phases.length > 0 && nowMs - this.#phases[0]!.atMs > phasesKeptMs) {
      this.#phases.shift();
    }
  }

  status(nowMs: number, options: { explain?: boolean } = {}): NodeStatus {
    const explain = options.explain ?? true;
    const table = this.#table();
    const admin = this.#admin();
    const nodes = this.#config.nodes;
    const members = this.#members();
    const vips: VipStatus[] = this.#addresses.map((address, i) => {
      const local = this.#local.get(i);
      const ownerKey = this.#ownerKey(address);
      const configured = this.#configuredState(i);
      return {
        address,
        owner: ownerKey?.value,
        desiredOwner: table?.owners[address],
        local: configured,
        localSinceMs: local && configured !== "absent" ? local.sinceMs : undefined,
        heldForMs: configured === "held" && local ? Math.max(0, nowMs - local.sinceMs) : undefined,
        conflict: configured === "conflict",
        explain: explain ? this.#explain(i, nowMs) : "",
        policy: this.#config.vips[i]!.policy,
        pinnedTo: admin.pins[address],
      };
    });
    const leaseLeftMs = Math.max(0, Math.round(this.#sessionUntilMs() - nowMs));
    return {
      node: this.id,
      role: this.#role,
      term: this.#term,
      coordinator: this.#coordinator,
      healthy: this.#healthy && !this.#leaving,
      quorum: this.#sessionValid(nowMs),
      leaseValid: this.leaseValid(nowMs),
      tableVersion: this.tableVersion,
      config: { fingerprint: this.#fingerprint, matchesCoordinator: true },
      members: nodes.map((n) => ({
        id: n.id,
        state: this.#memberState(n.id, members, admin),
        heard: members.has(n.id),
      })),
      vips,
      view: {
        ...(this.#coordinator ? { coordinator: this.#coordinator } : {}),
        leaseLeftMs,
        heardMs: {},
      },
      peers: nodes.filter((n) => n.id !== this.id).map((n) => this.#peerStatus(n.id, members)),
      failoverMarks: this.#phases.map(
        (p): FailoverMark => ({
          by: this.id,
          phase: failoverPhaseCodes[p.phase]!,
          ms: p.ms,
          agoMs: Math.max(0, nowMs - p.atMs),
          ...(p.vip >= 0 ? { vip: this.#addresses[p.vip]! } : {}),
        }),
      ),
    };
  }

  // ---------------------------------------------------------------- inputs

  #apply(input: Exclude<Input, { type: "batch" }>, now: number): void {
    switch (input.type) {
      case "tick":
      case "stall":
        return; // time alone decides the session (#advance); a stall changes nothing else
      case "etcd-session":
        this.#onSession(input.leaseId, input.validFromMs, now);
        return;
      case "etcd-view":
        this.#onView(input.revision, input.kvs);
        return;
      case "etcd-result":
        this.#onResult(input.op, input.ok, input.revision, input.error, now);
        return;
      case "message":
        this.#onMessage(input.from, input.message, now);
        return;
      case "health":
        this.#healthy = input.healthy;
        return;
      case "probe-result":
        this.#onProbeResult(input.vip, input.occupied, input.by, now);
        return;
      case "address-added":
        this.#onAddressAdded(input.vip, now);
        return;
      case "address-add-failed":
        this.#events.push({
          type: "address-failed",
          vip: this.#addresses[input.vip]!,
          reason: input.reason,
        });
        this.#toRemoving(input.vip, now);
        return;
      case "address-removed":
        this.#onAddressRemoved(input.vip, now);
        return;
      case "address-remove-failed": {
        const local = this.#local.get(input.vip);
        this.#events.push({
          type: "address-failed",
          vip: this.#addresses[input.vip]!,
          reason: input.reason,
        });
        if (local && local.state === "removing") {
          local.retryAtMs = now + this.#config.timers.probeRetryMs;
        }
        return;
      }
      case "address-lost": {
        const local = this.#local.get(input.vip);
        if (local && local.state !== "claiming" && local.state !== "releasing") {
          this.#events.push({
            type: "vip-released",
            vip: this.#addresses[input.vip]!,
            reason: "address lost",
          });
          this.#release(input.vip, local.claimRevision, now);
        }
        return;
      }
      case "admin":
        this.#onAdmin(input.command);
        return;
      case "shutdown":
        this.#leaving = true;
        return;
      default: {
        const unknown: never = input;
        throw new Error(`unknown input ${JSON.stringify(unknown)}`);
      }
    }
  }

  #onSession(leaseId: string | undefined, validFromMs: number, now: number): void {
    if (leaseId !== this.#leaseId) {
      // A new lease (or none): keys under the old one are gone or going, and so is every
      // claim made with it.
      this.#leaseId = leaseId;
      this.#validFromMs = leaseId === undefined ? Number.NEGATIVE_INFINITY : validFromMs;
      this.#registering = undefined;
      for (const [vip, local] of this.#local) {
        if (local.state === "claiming" || local.state === "releasing") continue;
        if (this.#onLoss === "failsafe" && (local.state === "held" || local.state === "conflict")) {
          // Failsafe: what it holds stays while the peers acknowledge (#failsafe); with a new
          // lease it claims the keys again in place (#reclaim), and lets go if it cannot.
          local.claimRevision = reclaimPending;
          this.#reclaimUntil.delete(vip);
          continue;
        }
        this.#events.push({
          type: "vip-released",
          vip: this.#addresses[vip]!,
          reason: "etcd lease replaced: the claim made under the old lease is void",
        });
        this.#toRemoving(vip, now);
      }
      return;
    }
    if (validFromMs > this.#validFromMs) this.#validFromMs = validFromMs;
  }

  #onView(revision: number, kvs: readonly EtcdKv[]): void {
    if (revision < this.#revision) {
      this.#staleViews += 1; // an older view than one already acted on: refused
      return;
    }
    this.#revision = revision;
    this.#kvs = new Map(kvs.map((kv) => [kv.key, kv]));
  }

  #onResult(
    op: EtcdOp,
    ok: boolean,
    revision: number | undefined,
    error: string | undefined,
    now: number,
  ): void {
    switch (op.kind) {
      case "campaign":
        this.#campaigning = false;
        if (!ok) this.#retryAtMs.set("campaign", now + retryMs);
        return;
      case "register":
        if (!ok) {
          this.#registering = undefined;
          this.#retryAtMs.set("register", now + retryMs);
        }
        return;
      case "publish":
        this.#publishing = undefined;
        if (!ok) this.#retryAtMs.set("publish", now + retryMs);
        return;
      case "admin":
        this.#adminWriting = false;
        this.#events.push(
          ok
            ? { type: "admin-applied", command: op.command }
            : {
                type: "admin-rejected",
                command: op.command,
                reason: error ?? "another change to pins and drains came first; try again",
              },
        );
        return;
      case "resign":
        this.#resigned = ok || this.#resigned;
        return;
      case "claim": {
        const local = this.#local.get(op.vip);
        if (local && "claimRevision" in local && local.claimRevision === reclaiming) {
          // A held VIP claimed again under a new lease (failsafe): keep it, or let go.
          if (ok && revision !== undefined) {
            local.claimRevision = revision;
            this.#reclaimUntil.delete(op.vip);
            return;
          }
          this.#counters.claimsRefused += 1;
          if (now < (this.#reclaimUntil.get(op.vip) ?? 0)) {
            // Refused, most often because the coordinator published a table (membership,
            // incarnations) while the claim was on its way: the table revision it named is
            // no longer the table's. Try again on the newer view; #reconcile lets go at once
            // if the table names another node or another node's key exists.
            local.claimRevision = reclaimPending;
            this.#retryAtMs.set(`reclaim:${op.vip}`, now + retryMs);
          } else {
            this.#reclaimUntil.delete(op.vip);
            local.claimRevision = 0;
            this.#events.push({
              type: "vip-released",
              vip: op.address,
              reason: "could not claim it again after etcd came back",
            });
            this.#toRemoving(op.vip, now);
          }
          return;
        }
        if (local?.state !== "claiming") return;
        if (!ok || revision === undefined) {
          this.#counters.claimsRefused += 1;
          this.#local.delete(op.vip);
          this.#retryAtMs.set(`claim:${op.vip}`, now + retryMs);
          return;
        }
        this.#local.set(op.vip, {
          state: "probing",
          sinceMs: now,
          claimRevision: revision,
          retryAtMs: 0,
        });
        this.#effects.push({ type: "probe-address", vip: op.vip });
        return;
      }
      case "release": {
        const local = this.#local.get(op.vip);
        if (local?.state === "releasing") this.#local.delete(op.vip);
        return;
      }
      default: {
        const unknown: never = op;
        throw new Error(`unknown etcd op ${JSON.stringify(unknown)}`);
      }
    }
  }

  #onProbeResult(vip: number, occupied: boolean, by: string | undefined, now: number): void {
    const local = this.#local.get(vip);
    if (local?.state !== "probing") return;
    if (!this.#mayKeep(vip, local.claimRevision, now)) {
      this.#release(vip, local.claimRevision, now);
      return;
    }
    if (occupied) {
      this.#local.set(vip, {
        ...local,
        state: "conflict",
        retryAtMs: now + this.#config.timers.probeRetryMs,
      });
      this.#events.push({ type: "vip-conflict", vip: this.#addresses[vip]!, by });
      return;
    }
    this.#local.set(vip, { ...local, state: "adding", sinceMs: now });
    this.#effects.push({ type: "add-address", vip });
  }

  #onAddressAdded(vip: number, now: number): void {
    const local = this.#local.get(vip);
    if (local?.state !== "adding") return;
    this.#local.set(vip, { ...local, state: "held", sinceMs: now });
    this.#events.push({ type: "vip-acquired", vip: this.#addresses[vip]! });
    this.#effects.push({ type: "announce", vip });
  }

  #onAddressRemoved(vip: number, now: number): void {
    const local = this.#local.get(vip);
    if (local?.state !== "removing") return;
    this.#release(vip, local.claimRevision, now);
  }

  #onMessage(from: string, raw: unknown, now: number): void {
    if (!this.#config.nodes.some((n) => n.id === from) || from === this.id) {
      this.#events.push({ type: "message-dropped", from, reason: "unknown-sender" });
      return;
    }
    if (typeof raw !== "object" || raw === null) {
      this.#events.push({ type: "message-dropped", from, reason: "malformed" });
      return;
    }
    const message = raw as { type?: unknown; seq?: unknown; vips?: unknown; end?: unknown };
    const seq = message.seq;
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) {
      this.#events.push({ type: "message-dropped", from, reason: "malformed" });
      return;
    }
    if (message.type === "failsafe-ack") {
      if (this.#failsafeSent.has(seq) && (this.#failsafeAcked.get(from) ?? 0) < seq) {
        this.#failsafeAcked.set(from, seq);
      }
      return;
    }
    const vips = message.vips;
    if (
      message.type !== "failsafe" ||
      !Array.isArray(vips) ||
      !vips.every((v) => typeof v === "string" && this.#addresses.includes(v))
    ) {
      this.#events.push({ type: "message-dropped", from, reason: "malformed" });
      return;
    }
    if (message.end === true) {
      for (const address of vips) {
        if (this.#foreignHolds.get(address)?.node === from) this.#foreignHolds.delete(address);
      }
      return;
    }
    // Acknowledge only what this node neither holds nor claims; then keep off it for a ttl.
    const mine = vips.some((address) => this.#local.has(this.#addresses.indexOf(address)));
    if (mine) return;
    for (const address of vips)
      this.#foreignHolds.set(address, { node: from, untilMs: now + this.#ttlMs });
    this.#counters.failsafeAcks += 1;
    this.#effects.push({ type: "send", to: from, message: { type: "failsafe-ack", seq } });
  }

  #onAdmin(command: AdminCommand): void {
    if (this.#adminWriting) {
      this.#events.push({
        type: "admin-rejected",
        command,
        reason: "another change is being written; try again",
      });
      return;
    }
    const current = this.#admin();
    const pins = { ...current.pins };
    const drained = new Set(current.drained);
    switch (command.type) {
      case "move":
        pins[command.vip] = command.node;
        break;
      case "unpin":
        delete pins[command.vip];
        break;
      case "drain": {
        const left = this.#config.nodes.filter((n) => n.id !== command.node && !drained.has(n.id));
        if (left.length === 0 && command.force !== true) {
          this.#events.push({
            type: "admin-rejected",
            command,
            reason: "it is the last node that could hold VIPs (use --force)",
          });
          return;
        }
        drained.add(command.node);
        break;
      }
      case "undrain":
        drained.delete(command.node);
        break;
      default: {
        const unknown: never = command;
        throw new Error(`unknown admin command ${JSON.stringify(unknown)}`);
      }
    }
    const value: AdminValue = { pins, drained: [...drained].sort() };
    this.#adminWriting = true;
    this.#effects.push({
      type: "etcd",
      op: {
        kind: "admin",
        value: JSON.stringify(value),
        expectRevision: this.#kvs.get("admin")?.modRevision ?? 0,
        command,
      },
    });
  }

  // ---------------------------------------------------------------- the step's core

  #advance(now: number): void {
    this.#lastNowMs = now;
    this.#followCoordinator();
    this.#noteSession(now);
    this.#failsafe(now);
    if (this.#sessionValid(now)) {
      this.#register(now);
      this.#campaign(now);
      if (this.#role === "coordinator") this.#coordinate(now);
    }
    this.#reconcile(now);
  }

  #followCoordinator(): void {
    const key = this.#kvs.get("coordinator");
    const coordinator = key?.value;
    const term = key?.createRevision ?? 0;
    if (coordinator !== this.#coordinator || term !== this.#term) {
      this.#coordinator = coordinator;
      this.#term = term;
      this.#events.push({ type: "coordinator-changed", term, coordinator });
    }
    const role: Role =
      coordinator === this.id && key?.lease === this.#leaseId && this.#leaseId !== undefined
        ? "coordinator"
        : "follower";
    if (role !== this.#role) {
      this.#role = role;
      if (role === "coordinator") this.#coordinatorSinceMs = this.#lastNowMs;
      this.#events.push({
        type: "role-changed",
        term,
        role,
        reason:
          role === "coordinator" ? "won the etcd campaign" : "the coordinator key is not ours",
      });
    }
  }

  /** Events when holding stops or resumes for want of a valid session. */
  #noteSession(now: number): void {
    const valid = this.leaseValid(now);
    if (!valid && this.#suspended === undefined) {
      this.#suspended =
        this.#leaseId === undefined
          ? "no etcd lease"
          : "etcd lease not renewed in time (etcd unreachable or slow)";
      this.#events.push({ type: "holding-suspended", reason: this.#suspended });
    } else if (valid && this.#suspended !== undefined) {
      this.#suspended = undefined;
      this.#events.push({ type: "holding-resumed" });
    }
  }

  #register(now: number): void {
    const want: MemberValue = {
      healthy: this.#healthy,
      leaving: this.#leaving,
      incarnation: this.#incarnation,
      fingerprint: this.#fingerprint,
    };
    const value = JSON.stringify(want);
    const key = this.#kvs.get(`members/${this.id}`);
    if (key?.value === value && key.lease === this.#leaseId) return;
    if (this.#registering === value || !this.#due("register", now)) return;
    this.#registering = value;
    this.#effects.push({ type: "etcd", op: { kind: "register", value } });
  }

  #campaign(now: number): void {
    if (this.#kvs.has("coordinator") || this.#campaigning || this.#leaving) return;
    if (!this.#healthy || !this.#due("campaign", now)) return;
    this.#campaigning = true;
    this.#effects.push({ type: "etcd", op: { kind: "campaign" } });
  }

  /** Coordinator: place the VIPs over the members etcd lists, publish the table. */
  #coordinate(now: number): void {
    if (this.#leaving && this.#local.size === 0) {
      // Our own VIPs are handed over: let the next coordinator be elected at once.
      if (!this.#resigned) {
        this.#effects.push({ type: "etcd", op: { kind: "resign", term: this.#term } });
        this.#resigned = true;
      }
      return;
    }
    const members = this.#members();
    const admin = this.#admin();
    const drained = new Set(admin.drained);
    const table = this.#table();
    for (const node of this.#config.nodes) {
      const member = members.get(node.id);
      // A node whose agent restarted (a new incarnation) lost its VIPs with the old process:
      // a failure, as in the embedded mode. It is eligible again a ttl later, so a crash loop
      // cannot keep taking VIPs back.
      // A coordinator new in its term knows the incarnations from the table.
      const seen = this.#incarnations.get(node.id) ?? table?.incarnations?.[node.id];
      if (member && seen !== undefined && seen !== member.incarnation) {
        this.#events.push({
          type: "member-failed",
          node: node.id,
          reason: "its agent restarted (new incarnation)",
        });
        this.#restartedUntil.set(node.id, now + this.#ttlMs);
      }
      if (member) this.#incarnations.set(node.id, member.incarnation);
      const restarted = now < (this.#restartedUntil.get(node.id) ?? 0);
      const eligible =
        member?.healthy &&
        !member.leaving &&
        !restarted &&
        member.fingerprint === this.#fingerprint &&
        !(node.id === this.id && (this.#leaving || !this.#healthy));
      if (eligible && !drained.has(node.id)) {
        if (!this.#eligibleSince.has(node.id)) this.#eligibleSince.set(node.id, now);
      } else {
        this.#eligibleSince.delete(node.id);
      }
      const known = member !== undefined;
      if (known && !this.#knownMembers.has(node.id)) {
        this.#knownMembers.add(node.id);
        this.#events.push({ type: "member-recovered", node: node.id });
      } else if (!known && this.#knownMembers.has(node.id)) {
        this.#knownMembers.delete(node.id);
        this.#events.push({
          type: "member-failed",
          node: node.id,
          reason: "its etcd lease expired",
        });
      }
    }
    // A new coordinator gives every configured node a ttl to register before it places
    // anything: at the cluster's first start (so the VIPs are spread, not all handed to the
    // early nodes) and after an etcd outage that expired every lease (so the holders claim
    // their VIPs again in place instead of seeing them moved to whoever registered first).
    // The cost: the VIPs of a coordinator that died move up to a ttl later.
    if (members.size < this.#config.nodes.length && now < this.#coordinatorSinceMs + this.#ttlMs) {
      this.#firstTableAtMs = this.#coordinatorSinceMs + this.#ttlMs;
      return;
    }
    const pins = new Map<number, string>();
    this.#addresses.forEach((address, i) => {
      const pin = admin.pins[address];
      if (pin !== undefined) pins.set(i, pin);
    });
    const vips: PlacementVip[] = [...this.#config.vips];
    const result = place({
      vips,
      members: this.#config.nodes.map((n) => ({
        id: n.id,
        weight: n.weight,
        eligible: this.#eligibleSince.has(n.id),
        eligibleSinceMs: this.#eligibleSince.get(n.id),
      })),
      previous: this.#addresses.map((a) => table?.owners[a]),
      pins,
      roundRobinCursor: table?.cursor ?? 0,
      nowMs: now,
    });
    const owners: Record<string, string> = {};
    const why: Record<string, string> = {};
    result.owners.forEach((placed, i) => {
      const address = this.#addresses[i]!;
      // Failsafe: an owner cut off from etcd whose hold this node acknowledged keeps its VIP
      // in the table. It is alive and holding (every peer answered it); a new owner could not
      // take the VIP before the hold ended anyway, and when etcd came back the owner would
      // release it for the table: a move and an outage for a node that never failed.
      const hold = this.#foreignHolds.get(address);
      const keptInFailsafe =
        hold !== undefined && now < hold.untilMs && table?.owners[address] === hold.node;
      const owner = keptInFailsafe ? hold.node : placed;
      const decision = keptInFailsafe
        ? { reason: "kept" as const, text: `${address}: ${hold.node} holds it in failsafe mode` }
        : result.decisions[i];
      if (owner !== undefined) owners[address] = owner;
      why[address] = decision ? reasonCodes[decision.reason] : "-";
      if (this.#lastAssigned.get(address) !== owner && table?.owners[address] !== owner) {
        this.#events.push({
          type: "vip-assigned",
          vip: address,
          owner,
          previous: table?.owners[address],
          reason: decision?.text ?? "",
        });
      }
      this.#lastAssigned.set(address, owner);
    });
    const incarnations: Record<string, number> = {};
    for (const [id, member] of members) incarnations[id] = member.incarnation;
    const same =
      table !== undefined &&
      table.term === this.#term &&
      JSON.stringify(table.owners) === JSON.stringify(owners) &&
      JSON.stringify(table.incarnations ?? {}) === JSON.stringify(incarnations);
    if (same) return;
    const value = JSON.stringify({
      term: this.#term,
      owners,
      why,
      cursor: result.roundRobinCursor,
      incarnations,
    } satisfies TableValue);
    if (this.#publishing === value || !this.#due("publish", now)) return;
    this.#publishing = value;
    this.#effects.push({ type: "etcd", op: { kind: "publish", value, term: this.#term } });
  }

  /** Every VIP: claim, probe, add what this node should hold; let go of the rest. */
  #reconcile(now: number): void {
    const table = this.#table();
    const tableRevision = this.#kvs.get("table")?.modRevision ?? 0;
    this.#addresses.forEach((address, vip) => {
      const local = this.#local.get(vip);
      const wants = this.#wants(address, table, now);
      if (!local) {
        if (!wants || !this.#sessionValid(now) || !this.#due(`claim:${vip}`, now)) return;
        const key = this.#ownerKey(address);
        if (key && key.value === this.id && key.lease === this.#leaseId) {
          // Ours already (a claim whose answer was lost, or a release that failed): go on.
          this.#local.set(vip, {
            state: "probing",
            sinceMs: now,
            claimRevision: key.createRevision,
            retryAtMs: 0,
          });
          this.#effects.push({ type: "probe-address", vip });
          return;
        }
        if (key) return; // someone else's, until it is deleted or its lease expires
        this.#local.set(vip, { state: "claiming", sinceMs: now });
        this.#effects.push({ type: "etcd", op: { kind: "claim", vip, address, tableRevision } });
        return;
      }
      if (local.state === "claiming" || local.state === "releasing") return;
      if (local.state === "removing") {
        if (local.retryAtMs > 0 && now >= local.retryAtMs) {
          local.retryAtMs = 0;
          this.#effects.push({ type: "remove-address", vip });
        }
        return;
      }
      if (!wants || !this.#mayKeep(vip, local.claimRevision, now)) {
        this.#events.push({
          type: "vip-released",
          vip: address,
          reason: this.#whyLetGo(address, table, local.claimRevision, now),
        });
        this.#toRemoving(vip, now);
        return;
      }
      if (
        local.claimRevision === reclaimPending &&
        this.#sessionValid(now) &&
        this.#due(`reclaim:${vip}`, now)
      ) {
        // Held through an etcd outage in failsafe mode, now on a new lease: claim it again in
        // place if the table still names this node (else the table's owner gets it).
        const key = this.#ownerKey(address);
        if (table?.owners[address] !== this.id || (key && key.value !== this.id)) {
          this.#reclaimUntil.delete(vip);
          this.#events.push({
            type: "vip-released",
            vip: address,
            reason:
              key && key.value !== this.id
                ? `${key.value} claimed it in etcd`
                : `the table assigns it to ${table?.owners[address] ?? "nobody"}`,
          });
          this.#toRemoving(vip, now);
          return;
        }
        if (key && key.lease === this.#leaseId) {
          // Claimed again already (an answer that was lost): keep that claim.
          this.#reclaimUntil.delete(vip);
          local.claimRevision = key.createRevision;
          return;
        }
        if (!this.#reclaimUntil.has(vip)) this.#reclaimUntil.set(vip, now + this.#ttlMs);
        local.claimRevision = reclaiming;
        this.#effects.push({ type: "etcd", op: { kind: "claim", vip, address, tableRevision } });
        return;
      }
      if (local.state === "conflict" && now >= local.retryAtMs) {
        this.#local.set(vip, { ...local, state: "probing" });
        this.#effects.push({ type: "probe-address", vip });
      }
    });
  }

  #wants(address: string, table: TableValue | undefined, now: number): boolean {
    if (this.#leaving || !this.#healthy || !this.leaseValid(now)) return false;
    if (table?.owners[address] !== this.id && !this.#failsafeHolding) return false;
    const foreign = this.#foreignHolds.get(address);
    if (foreign && foreign.node !== this.id && now < foreign.untilMs) return false;
    if (this.#onLoss === "failsafe" && now < this.#startedAtMs + this.#ttlMs) return false;
    return true;
  }

  /**
   * Whether a claim made at `claimRevision` still stands: the session is valid (or failsafe
   * holds) and no view at or after the claim shows the owner key gone or re-created.
   */
  #mayKeep(vip: number, claimRevision: number, now: number): boolean {
    if (!this.leaseValid(now)) return false;
    if (this.#failsafeHolding) return true;
    if (claimRevision === reclaimPending || claimRevision === reclaiming) return true;
    if (this.#revision < claimRevision) return true; // the view has not caught up yet
    const key = this.#ownerKey(this.#addresses[vip]!);
    if (key?.createRevision === claimRevision && key.value === this.id) return true;
    this.#counters.staleGrants += 1;
    return false;
  }

  #whyLetGo(
    address: string,
    table: TableValue | undefined,
    claimRevision: number,
    now: number,
  ): string {
    if (this.#leaving) return "shutting down";
    if (!this.#healthy) return "node unhealthy";
    if (!this.leaseValid(now)) return "etcd lease may have expired (not renewed in time)";
    const key = this.#ownerKey(address);
    if (
      claimRevision > 0 &&
      this.#revision >= claimRevision &&
      key?.createRevision !== claimRevision
    ) {
      return `ownership key of revision ${claimRevision} is gone in etcd (revision ${this.#revision}): an old grant is not acted on`;
    }
    const foreign = this.#foreignHolds.get(address);
    if (foreign && now < foreign.untilMs) return `${foreign.node} holds it in failsafe mode`;
    return `the table assigns it to ${table?.owners[address] ?? "nobody"}`;
  }

  #toRemoving(vip: number, now: number): void {
    const local = this.#local.get(vip);
    if (!local || local.state === "claiming" || local.state === "releasing") return;
    if (local.state === "probing") {
      // Nothing configured yet.
      this.#release(vip, local.claimRevision, now);
      return;
    }
    if (local.state === "removing") return;
    this.#local.set(vip, { ...local, state: "removing", sinceMs: now, retryAtMs: 0 });
    this.#effects.push({ type: "remove-address", vip });
  }

  /** Nothing is configured any more: delete the owner key if it is still this claim's. */
  #release(vip: number, claimRevision: number, now: number): void {
    const address = this.#addresses[vip]!;
    const key = this.#ownerKey(address);
    if (this.#failsafeEndPending.size > 0 || this.#failsafeHolding)
      this.#failsafeEndPending.add(address);
    if (key && key.createRevision === claimRevision && this.#sessionValid(now)) {
      this.#local.set(vip, { state: "releasing", sinceMs: now, claimRevision });
      this.#effects.push({ type: "etcd", op: { kind: "release", vip, address, claimRevision } });
      return;
    }
    this.#local.delete(vip);
  }

  /**
   * Failsafe: while the session is in doubt and this node holds VIPs, ask every peer to keep
   * off them; hold past the session only while every peer acknowledged recently enough.
   */
  #failsafe(now: number): void {
    for (const [address, hold] of this.#foreignHolds) {
      if (now >= hold.untilMs) this.#foreignHolds.delete(address);
    }
    if (this.#onLoss !== "failsafe") return;
    const held = [...this.#local]
      .filter(([, l]) => l.state === "held" || l.state === "adding" || l.state === "conflict")
      .map(([vip]) => this.#addresses[vip]!);
    const inDoubt = now >= this.#validFromMs + this.#ttlMs * failsafeAfterShare;
    const peers = this.#config.nodes.filter((n) => n.id !== this.id).map((n) => n.id);
    if (inDoubt && held.length > 0 && now >= this.#nextFailsafeMs) {
      this.#failsafeSeq += 1;
      this.#failsafeSent.set(this.#failsafeSeq, now);
      for (const [seq, at] of this.#failsafeSent) {
        if (now - at > 2 * this.#ttlMs) this.#failsafeSent.delete(seq);
      }
      this.#nextFailsafeMs = now + Math.max(50, Math.floor(this.#ttlMs * failsafeEveryShare));
      for (const peer of peers) {
        this.#effects.push({
          type: "send",
          to: peer,
          message: { type: "failsafe", seq: this.#failsafeSeq, vips: held },
        });
      }
    }
    const wasHolding = this.#failsafeHolding;
    this.#failsafeHolding =
      !this.#sessionValid(now) && held.length > 0 && now < this.#failsafeUntilMs(peers);
    if (wasHolding !== this.#failsafeHolding) {
      this.#events.push(
        this.#failsafeHolding
          ? {
              type: "holding-suspended",
              reason: "etcd unreachable: holding in failsafe mode, every peer acknowledged",
            }
          : { type: "holding-resumed" },
      );
    }
    // Back on etcd: tell the peers what this node no longer holds in failsafe mode.
    if (this.#sessionValid(now) && this.#failsafeEndPending.size > 0) {
      const vips = [...this.#failsafeEndPending].filter(
        (a) => !this.#local.has(this.#addresses.indexOf(a)),
      );
      if (vips.length > 0) {
        this.#failsafeSeq += 1;
        for (const peer of peers) {
          this.#effects.push({
            type: "send",
            to: peer,
            message: { type: "failsafe", seq: this.#failsafeSeq, vips, end: true },
          });
        }
        for (const a of vips) this.#failsafeEndPending.delete(a);
      }
    }
  }

  /** Until when every peer's newest acknowledgement covers holding (-inf: one is missing). */
  #failsafeUntilMs(peers: readonly string[]): number {
    let until = Number.POSITIVE_INFINITY;
    for (const peer of peers) {
      const seq = this.#failsafeAcked.get(peer);
      const sentAt = seq === undefined ? undefined : this.#failsafeSent.get(seq);
      if (sentAt === undefined) return Number.NEGATIVE_INFINITY;
      until = Math.min(until, sentAt + this.#holdableMs());
    }
    return until;
  }

  #wakeAt(now: number): number {
    let wake = now + 1000;
    if (this.#firstTableAtMs > now) wake = Math.min(wake, this.#firstTableAtMs);
    for (const until of this.#restartedUntil.values()) {
      if (until > now) wake = Math.min(wake, until);
    }
    const until = this.#sessionUntilMs();
    if (until > now) wake = Math.min(wake, until);
    if (this.#onLoss === "failsafe") {
      const doubt = this.#validFromMs + this.#ttlMs * failsafeAfterShare;
      if (doubt > now) wake = Math.min(wake, doubt);
      if (this.#nextFailsafeMs > now) wake = Math.min(wake, this.#nextFailsafeMs);
      if (this.#startedAtMs + this.#ttlMs > now)
        wake = Math.min(wake, this.#startedAtMs + this.#ttlMs);
    }
    for (const at of this.#retryAtMs.values()) if (at > now) wake = Math.min(wake, at);
    for (const local of this.#local.values()) {
      if ("retryAtMs" in local && local.retryAtMs > now) wake = Math.min(wake, local.retryAtMs);
    }
    for (const hold of this.#foreignHolds.values())
      wake = Math.min(wake, Math.max(now, hold.untilMs));
    return wake;
  }

  // ---------------------------------------------------------------- helpers

  /** How long after a confirmed keep-alive's send time the lease surely lives, less a guard. */
  #holdableMs(): number {
    const timers: Timers = this.#config.timers;
    const guard = Math.max(250, Math.floor(this.#ttlMs / 8), 2 * timers.leaseMarginMs);
    return this.#ttlMs * (1 - timers.clockDriftRatio) - guard;
  }

  #sessionUntilMs(): number {
    return this.#leaseId === undefined
      ? Number.NEGATIVE_INFINITY
      : this.#validFromMs + this.#holdableMs();
  }

  #sessionValid(now: number): boolean {
    return now < this.#sessionUntilMs();
  }

  #due(what: string, now: number): boolean {
    const at = this.#retryAtMs.get(what);
    if (at === undefined) return true;
    if (now < at) return false;
    this.#retryAtMs.delete(what);
    return true;
  }

  #configuredState(vip: number): LocalVipState | "absent" {
    const local = this.#local.get(vip);
    if (!local || local.state === "claiming" || local.state === "releasing") return "absent";
    return local.state;
  }

  #ownerKey(address: string): EtcdKv | undefined {
    return this.#kvs.get(`owners/${address}`);
  }

  #table(): TableValue | undefined {
    return parseJson<TableValue>(this.#kvs.get("table")?.value, (v) => {
      const t = v as Partial<TableValue>;
      return (
        typeof t.term === "number" &&
        isStringRecord(t.owners) &&
        isStringRecord(t.why) &&
        typeof t.cursor === "number"
      );
    });
  }

  #admin(): AdminValue {
    return (
      parseJson<AdminValue>(this.#kvs.get("admin")?.value, (v) => {
        const a = v as Partial<AdminValue>;
        return (
          isStringRecord(a.pins) &&
          Array.isArray(a.drained) &&
          a.drained.every((d) => typeof d === "string")
        );
      }) ?? { pins: {}, drained: [] }
    );
  }

  #members(): Map<string, MemberValue> {
    const members = new Map<string, MemberValue>();
    for (const node of this.#config.nodes) {
      const member = parseJson<MemberValue>(this.#kvs.get(`members/${node.id}`)?.value, (v) => {
        const m = v as Partial<MemberValue>;
        return (
          typeof m.healthy === "boolean" &&
          typeof m.leaving === "boolean" &&
          typeof m.incarnation === "number" &&
          typeof m.fingerprint === "string"
        );
      });
      if (member) members.set(node.id, member);
    }
    return members;
  }

  #memberState(
    id: string,
    members: Map<string, MemberValue>,
    admin: AdminValue,
  ): MemberStateCode | "unknown" {
    if (admin.drained.includes(id)) return "drained";
    const member = members.get(id);
    if (!member) return this.#revision === 0 ? "unknown" : "failed";
    return member.healthy && !member.leaving ? "healthy" : "failed";
  }

  #peerStatus(id: string, members: Map<string, MemberValue>): PeerStatus {
    const member = members.get(id);
    const holding = this.#addresses.filter((a) => this.#ownerKey(a)?.value === id);
    return {
      id,
      heardAgoMs: member ? 0 : undefined,
      incarnation: member?.incarnation ?? 0,
      term: this.#term,
      role: this.#coordinator === id ? "coordinator" : "follower",
      healthy: member?.healthy ?? false,
      leaving: member?.leaving ?? false,
      quorum: member !== undefined,
      tableVersion: this.tableVersion,
      config: member?.fingerprint ?? "",
      holding,
      coordinator: this.#coordinator,
      leaseLeftMs: undefined,
      heardMs: undefined,
      missed: {},
      version: "",
    };
  }

  #explain(vip: number, now: number): string {
    const address = this.#addresses[vip]!;
    const table = this.#table();
    const key = this.#ownerKey(address);
    const owner = table?.owners[address];
    const parts = [
      owner === undefined ? "no owner in the etcd table" : `the etcd table assigns it to ${owner}`,
      key
        ? `held by ${key.value} (ownership key revision ${key.createRevision})`
        : "no holder in etcd",
    ];
    if (owner === this.id && !this.#wants(address, table, now)) {
      parts.push(`this node may not hold it now: ${this.#whyLetGo(address, table, 0, now)}`);
    }
    return `${parts.join("; ")}.`;
  }
}

function parseJson<T>(text: string | undefined, valid: (value: unknown) => boolean): T | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && valid(value) ? (value as T) : undefined;
  } catch {
    return undefined;
  }
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === "string")
  );
}
