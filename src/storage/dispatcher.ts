/**
 * The task dispatcher of one storage node (S1.1): accepts management requests, makes them
 * durable and replicated before acknowledging them, executes them against the backend one at a
 * time, and re-drives requests cut off by a failure when this node takes over the storage VIP
 * (S1.4, S1.5: the result of a request in flight is answered by the new target node; the client
 * never resubmits).
 *
 * Who executes: only the node that holds the storage VIP (ClusterView `held`), or every node
 * when no VIP is configured (single-node mode). Any node accepts submissions and answers
 * queries from its journal; records reach the executing node by replication.
 *
 * Order of effects for one request (see replication.ts for the wire protocol):
 *   submit:  journal(accepted) -> push to every healthy peer -> answer 202
 *   execute: journal(running n,k) -> push (best effort) -> backend -> journal(final or
 *            outcome_unknown) -> push (best effort) -> wake long-polls
 *   takeover (this node starts holding the VIP): pull from healthy peers -> merge -> re-drive
 *            every unfinished record in acceptance order.
 * A backend TIMEOUT leaves the request `outcome_unknown`; it is re-driven after `retryDelayMs`,
 * up to `attemptsMax` attempts on this node, and stays `outcome_unknown` after that until the
 * next takeover or restart.
 *
 * A re-drive answered BUSY within `staleWatchWaitMs` of the takeover is tried again every
 * `retryDelayMs` (not counted against `attemptsMax`) until that time has passed: a holder that
 * was killed inside `rbd rm` leaves its client's watch on the image until Ceph drops it
 * (`osd_client_watch_timeout`, 30 s), and meanwhile the image is "still open". After that
 * time, BUSY is the answer (the image is in use by someone else).
 *
 * Fencing (`fencing`): a node that takes the VIP over from a holder the cluster declared
 * failed cuts that holder off from the storage cluster (rbd: `ceph osd blocklist`) before it
 * pulls and re-drives anything, so a holder that was only paused (SIGSTOP, a frozen VM) and
 * wakes in the middle of a command has that command refused (FENCED) instead of applying it
 * beside the re-drive. A holder that handed the VIP over while healthy (a move, a drain) is
 * not fenced. A fenced node lifts its own fence (the monitors still answer it) once it has no
 * command under way: at start, after losing the VIP, after a FENCED answer, every
 * `unfenceRetryMs` while the cluster counts it failed (a node can be fenced without ever
 * running a command: it was the VIP's assigned owner when it failed, and the blocklist then
 * fails its own rbd health check, so it would stay failed for good), and when it takes the
 * VIP over (a fence left from an earlier failure must not refuse its own re-drive).
 */

import {
  createRecord,
  isFinal,
  nextAttempt,
  type ObservedVolume,
  type Operation,
  type OperationResult,
  type Outcome,
  observationFor,
  type RequestRecord,
  resolveOutcome,
} from "../core/requests/request-record.ts";
import type { ClusterView, ClusterViewSnapshot } from "../ports/cluster-view.ts";
import type { StorageBackend } from "./backends/backend.ts";
import { StorageError } from "./errors.ts";
import type { Journal } from "./journal.ts";
import type { Peer, PeerClient, PeerError } from "./replication.ts";

export interface DispatcherOptions {
  readonly nodeId: string;
  readonly journal: Journal;
  readonly backend: StorageBackend;
  readonly view: ClusterView;
  /** Storage VIP; undefined = this node always executes (single node). */
  readonly storageVip: string | undefined;
  readonly peers: PeerClient;
  /** Replication URL of a member (from its address and the peer port, or an override). */
  readonly peerUrl: (memberId: string, address: string) => string;
  readonly retryDelayMs: number;
  readonly attemptsMax: number;
  /** Wall clock, for `acceptedAtMs` only (retry timing uses the monotonic clock). */
  readonly nowMs: () => number;
  readonly log: (event: string, fields: Record<string, unknown>) => void;
  /** Final records older than this, or beyond this many in all, are deleted (every minute). */
  readonly retention?: Retention;
  /** How long after a takeover a re-drive's BUSY may be a dead holder's watch (default 45 s). */
  readonly staleWatchWaitMs?: number;
  /**
   * Fence the previous holder on a takeover from a failed one (the backend's `fence`), and
   * lift this node's own fence once it holds nothing and runs nothing. Default off.
   */
  readonly fencing?: boolean;
  /** The address the storage cluster sees each node at, where not its cluster address. */
  readonly fenceAddresses?: Readonly<Record<string, string>>;
  /** How often a failed node, or one whose unfence failed, looks again (default 10 s). */
  readonly unfenceRetryMs?: number;
  /**
   * Healthy peers that must confirm a submission before it is acknowledged (default 0). With
   * fewer healthy peers the submission is refused with NO_REPLICA and journaled nowhere else:
   * an acknowledged request then survives the loss of its acceptor.
   */
  readonly minReplicas?: number;
}

const fenceAttempts = 3;
const defaultUnfenceRetryMs = 10_000;

/**
 * Default of `staleWatchWaitMs`: Ceph's default `osd_client_watch_timeout` (30 s) from the dead
 * client's last ping, which was before the takeover, with room for a slow monitor.
 */
export const defaultStaleWatchWaitMs = 45_000;

/** What the last takeover of the storage VIP found (status, dashboard). */
export interface TakeoverReport {
  /** Wall clock (ms) of the takeover. */
  readonly atMs: number;
  /** Healthy peers asked for their records, and those that answered. */
  readonly peers: readonly string[];
  readonly pulledFrom: readonly string[];
  /** Unfinished records in the journal once the pull was merged: the re-drive's work. */
  readonly unfinished: number;
}

export interface Retention {
  readonly maxAgeMs: number;
  readonly maxRecords: number;
}

/** Defaults of `storage.retention`: a week, and 100,000 final records. */
export const defaultRetention: Retention = { maxAgeMs: 7 * 24 * 3_600_000, maxRecords: 100_000 };

const pruneEveryMs = 60_000;

const readOnlyOps: ReadonlySet<Operation["op"]> = new Set(["list", "info", "snap-list"]);

/** list, info and snap-list change nothing: they are answered at once and journal nothing. */
export function isReadOnly(operation: Operation): boolean {
  return readOnlyOps.has(operation.op);
}

type Waiter = (record: RequestRecord) => void;

export class Dispatcher {
  readonly #o: DispatcherOptions;
  readonly #waiters = new Map<string, Set<Waiter>>();
  /** Requests still in their submit replication round: not executed before they are acked. */
  readonly #submitting = new Set<string>();
  /** outcome_unknown requests: monotonic time (performance.now) before which they are not retried. */
  readonly #notBeforeMs = new Map<string, number>();
  readonly #attemptsHere = new Map<string, number>();
  #active = false;
  #loop: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #unsubscribe: (() => void) | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #pruneTimer: NodeJS.Timeout | undefined;
  #takeover: Promise<void> = Promise.resolve();
  /** When this node last took over the storage VIP (performance.now). */
  #tookOverAtMs = Number.NEGATIVE_INFINITY;
  /** The last other node seen holding the storage VIP: the one to fence on a takeover. */
  #previousHolder: string | undefined;
  /** This node may be fenced: lift it when it holds nothing and runs nothing. */
  #unfenceWanted = true;
  #unfencing = false;
  /** A failed node looks for a fence of its own at most every `unfenceRetryMs` (monotonic). */
  #unfenceNotBeforeMs = 0;
  /** Counts the reasons given to look for a fence, so one given during a look is not lost. */
  #unfenceAsks = 0;
  #unfenceTimer: NodeJS.Timeout | undefined;
  /**
   * Requests this node accepted while holding the storage VIP, since it last took it over. Any
   * other unfinished record may have run elsewhere meanwhile (this node was away, or its
   * journal missed the holder's pushes): its next attempt here is a re-drive.
   */
  readonly #acceptedInTenure = new Set<string>();
  #takeovers = 0;
  #takeoversWithoutPeers = 0;
  #lastTakeover: TakeoverReport | undefined;

  constructor(options: DispatcherOptions) {
    this.#o = options;
  }

  start(): void {
    this.#unsubscribe = this.#o.view.subscribe((view) => this.#onView(view));
    this.#onView(this.#o.view.current());
    this.prune();
    this.#pruneTimer = setInterval(() => this.prune(), pruneEveryMs);
    this.#pruneTimer.unref();
  }

  /** Applies the retention bounds now; logs what it deleted. */
  prune(): number {
    const { maxAgeMs, maxRecords } = this.#o.retention ?? defaultRetention;
    try {
      const deleted = this.#o.journal.prune(maxAgeMs, maxRecords, this.#o.nowMs());
      if (deleted > 0) this.#o.log("pruned", { deleted, maxAgeMs, maxRecords });
      return deleted;
    } catch (error) {
      this.#o.log("prune_failed", { error: (error as Error).message });
      return 0;
    }
  }

  /**
   * Runs a read-only operation against the backend on this node and returns its outcome:
   * nothing is journaled or replicated (reading twice is harmless, so a client whose read was
   * cut off by a failover simply reads again).
   */
  read(operation: Operation): Promise<Outcome> {
    if (!isReadOnly(operation)) {
      return Promise.reject(new Error(`${operation.op} is not a read-only operation`));
    }
    return perform(this.#o.backend, operation);
  }

  /** Stops executing; waits for the operation in progress to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#unfenceTimer);
    clearInterval(this.#pruneTimer);
    await this.#takeover;
    await this.#loop;
  }

  get active(): boolean {
    return this.#active;
  }

  get(id: string): RequestRecord | undefined {
    return this.#o.journal.get(id);
  }

  /** The oldest `limit` requests without a final state, as this node's journal has them. */
  unfinished(limit: number): RequestRecord[] {
    return this.#o.journal.unfinished(limit);
  }

  /** Takeovers of the storage VIP since start, those no peer answered, and the last one. */
  takeovers(): { count: number; withoutPeers: number; last: TakeoverReport | undefined } {
    return {
      count: this.#takeovers,
      withoutPeers: this.#takeoversWithoutPeers,
      last: this.#lastTakeover,
    };
  }

  /** Journal totals: requests known here, and how many are final. */
  counts(): { total: number; final: number } {
    return this.#o.journal.counts();
  }

  /** Newest first; with `client`, only that client's records (`null`: no credential name). */
  recent(limit: number, client?: string | null): RequestRecord[] {
    return this.#o.journal.recent(limit, client);
  }

  /**
   * Accepts a request: durable locally and on every healthy peer when it resolves. Throws
   * REQUEST_ID_REUSED (same id, other operation) or REPLICATION_FAILED (a peer did not confirm).
   */
  async submit(id: string, operation: Operation, client?: string): Promise<RequestRecord> {
    const minReplicas = this.#o.minReplicas ?? 0;
    const healthy = this.#healthyPeers().length;
    const short = healthy < minReplicas;
    // A new request is refused before it is journaled: nothing of it may run anywhere.
    if (short && this.#o.journal.get(id) === undefined) throw this.#noReplica(id, healthy);
    const write = this.#o.journal.submit(
      createRecord(id, operation, this.#o.nodeId, this.#o.nowMs(), client),
    );
    if (!write.changed && isFinal(write.record.state)) return write.record;
    if (this.#active) this.#acceptedInTenure.add(id);
    if (short) throw this.#noReplica(id, healthy);
    this.#submitting.add(id);
    try {
      const failures = await this.#push([write.record]);
      if (failures.length > 0) {
        throw new StorageError(
          "REPLICATION_FAILED",
          `request ${id} is journaled here but not confirmed by ${failures.join(", ")}; retry with the same request id`,
        );
      }
    } finally {
      this.#submitting.delete(id);
      this.#kick();
    }
    return this.#o.journal.get(id) ?? write.record;
  }

  #noReplica(id: string, healthy: number): StorageError {
    const minReplicas = this.#o.minReplicas ?? 0;
    this.#o.log("refused_no_replica", { id, healthyPeers: healthy, minReplicas });
    return new StorageError(
      "NO_REPLICA",
      `request ${id} refused: ${healthy} healthy peer(s) to replicate it to, ${minReplicas} required (storage.min_replicas); retry with the same request id once a peer is back`,
    );
  }

  /** Waits until the request is final or `timeoutMs` passes; undefined for an unknown id. */
  async wait(id: string, timeoutMs: number): Promise<RequestRecord | undefined> {
    const record = this.#o.journal.get(id);
    if (record === undefined || isFinal(record.state) || timeoutMs <= 0) return record;
    return new Promise((resolve) => {
      const waiters = this.#waiters.get(id) ?? new Set<Waiter>();
      this.#waiters.set(id, waiters);
      const done = (latest: RequestRecord) => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0) this.#waiters.delete(id);
        resolve(latest);
      };
      const timer = setTimeout(() => done(this.#o.journal.get(id) ?? record), timeoutMs);
      waiters.add(done);
    });
  }

  /** Records received from a peer (replication endpoint). */
  receive(records: readonly RequestRecord[]): { records: RequestRecord[]; conflicts: string[] } {
    const writes = this.#o.journal.applyMany(records);
    const merged: RequestRecord[] = [];
    const conflicts: string[] = [];
    writes.forEach((write, i) => {
      if (write === undefined) {
        conflicts.push(records[i]!.id);
        return;
      }
      this.#wake(write);
      merged.push(write.record);
    });
    this.#kick();
    return { records: merged, conflicts };
  }

  #apply(record: RequestRecord): RequestRecord {
    const write = this.#o.journal.apply(record);
    this.#wake(write);
    return write.record;
  }

  /** Hands a record that just became final to those waiting for it. */
  #wake(write: { changed: boolean; record: RequestRecord }): void {
    if (write.changed && isFinal(write.record.state)) {
      for (const waiter of [...(this.#waiters.get(write.record.id) ?? [])]) waiter(write.record);
    }
  }

  #healthyPeers(view: ClusterViewSnapshot = this.#o.view.current()): Peer[] {
    return view.members
      .filter((m) => m.id !== this.#o.nodeId && m.state === "healthy")
      .map((m) => ({ id: m.id, url: this.#o.peerUrl(m.id, m.address) }));
  }

  /** Pushes records to every healthy peer; returns the ids of peers that did not confirm. */
  async #push(records: readonly RequestRecord[]): Promise<string[]> {
    const peers = this.#healthyPeers();
    const results = await Promise.allSettled(peers.map((p) => this.#o.peers.push(p, records)));
    const failed: string[] = [];
    results.forEach((result, i) => {
      if (result.status === "rejected") {
        failed.push(peers[i]!.id);
        this.#o.log("replication_failed", {
          peer: peers[i]!.id,
          error: (result.reason as Error).message,
        });
      }
    });
    return failed;
  }

  #onView(view: ClusterViewSnapshot): void {
    if (this.#stopped) return;
    const active = this.#o.storageVip === undefined || view.held.has(this.#o.storageVip);
    const tookOver = active && !this.#active;
    const lost = !active && this.#active;
    this.#active = active;
    const owner =
      this.#o.storageVip === undefined ? undefined : view.owners.get(this.#o.storageVip);
    if (owner !== undefined && owner !== this.#o.nodeId) this.#previousHolder = owner;
    if (lost) {
      this.#acceptedInTenure.clear();
      this.#askUnfence(true);
    } else if (!active && this.#selfFailed(view)) this.#askUnfence(false);
    if (!active) this.#maybeUnfence();
    if (tookOver) {
      this.#o.log("takeover", { node: this.#o.nodeId, term: view.term });
      this.#tookOverAtMs = performance.now();
      this.#attemptsHere.clear();
      this.#notBeforeMs.clear();
      this.#acceptedInTenure.clear();
      this.#takeovers += 1;
      const atMs = this.#o.nowMs();
      // A pull that fails in an unforeseen way must not wedge every later drain (each one
      // waits for the takeover first): log it and re-drive what the journal has.
      const own = this.#loop === undefined ? this.#liftOwnFence() : Promise.resolve();
      const peers = this.#healthyPeers(view).map((p) => p.id);
      let pulledFrom: string[] = [];
      this.#takeover = Promise.all([this.#fencePrevious(view), own])
        .then(async () => {
          pulledFrom = await this.#pullAll(view);
        })
        .catch((error: unknown) => {
          this.#o.log("pull_failed", { error: (error as Error).message ?? String(error) });
        })
        .then(() => {
          const unfinished = this.#o.journal.unfinished().length;
          this.#lastTakeover = { atMs, peers, pulledFrom, unfinished };
          this.#o.log("takeover_ready", { node: this.#o.nodeId, unfinished, peers, pulledFrom });
          const others = view.members.some((m) => m.id !== this.#o.nodeId);
          if (pulledFrom.length === 0 && others && this.#o.storageVip !== undefined) {
            this.#takeoversWithoutPeers += 1;
            this.#o.log("takeover_without_peers", {
              node: this.#o.nodeId,
              unfinished,
              note: "no healthy peer answered: re-driving from this node's own journal only; every record it did not accept in this tenure is re-driven as possibly done elsewhere",
            });
          }
          this.#kick();
        });
    } else {
      this.#kick();
    }
  }

  /** Fences the previous holder when the cluster declared it failed (see the header). */
  async #fencePrevious(view: ClusterViewSnapshot): Promise<void> {
    const backend = this.#o.backend;
    const id = this.#previousHolder;
    if (!this.#o.fencing || !backend.fence || id === undefined) return;
    const member = view.members.find((m) => m.id === id);
    if (member?.state === "healthy" || member?.state === "drained") {
      this.#o.log("not_fenced", { node: id, state: member.state, reason: "it handed over" });
      return;
    }
    const address = this.#o.fenceAddresses?.[id] ?? member?.address;
    if (address === undefined) return;
    for (let attempt = 1; attempt <= fenceAttempts; attempt += 1) {
      try {
        await backend.fence(address);
        this.#o.log("fenced", { node: id, address, attempt });
        return;
      } catch (error) {
        this.#o.log("fence_failed", {
          node: id,
          address,
          attempt,
          error: (error as Error).message,
        });
      }
    }
    this.#o.log("fence_gave_up", {
      node: id,
      address,
      note: "re-driving without a fence: a paused old holder could still finish a command",
    });
  }

  get #unfenceRetryMs(): number {
    return this.#o.unfenceRetryMs ?? defaultUnfenceRetryMs;
  }

  /**
   * Something says this node may be fenced. `now` (it lost the VIP, a command was refused):
   * look at once, also when a look is under way. Otherwise (it is counted failed): a look
   * under way decides again when it ends, and a failed node looks every `unfenceRetryMs`.
   */
  #askUnfence(now: boolean): void {
    this.#unfenceWanted = true;
    if (!now) return;
    this.#unfenceAsks += 1;
    this.#unfenceNotBeforeMs = 0;
  }

  #selfFailed(view: ClusterViewSnapshot): boolean {
    return view.members.find((m) => m.id === this.#o.nodeId)?.state === "failed";
  }

  #ownFenceAddress(): string | undefined {
    const self = this.#o.view.current().members.find((m) => m.id === this.#o.nodeId);
    return this.#o.fenceAddresses?.[this.#o.nodeId] ?? self?.address;
  }

  /** Lifts this node's own fence when it holds nothing and runs nothing (see the header). */
  #maybeUnfence(): void {
    const backend = this.#o.backend;
    if (!this.#o.fencing || !backend.unfence || this.#stopped) return;
    if (!this.#unfenceWanted || this.#unfencing || this.#active || this.#loop) return;
    const retry = (afterMs: number) => {
      clearTimeout(this.#unfenceTimer);
      this.#unfenceTimer = setTimeout(() => this.#maybeUnfence(), afterMs);
      this.#unfenceTimer.unref();
    };
    const waitMs = this.#unfenceNotBeforeMs - performance.now();
    if (waitMs > 0) {
      retry(Math.ceil(waitMs));
      return;
    }
    const address = this.#ownFenceAddress();
    if (address === undefined) return;
    this.#unfencing = true;
    const asks = this.#unfenceAsks;
    backend
      .unfence(address)
      .then((removed) => {
        if (removed) this.#o.log("unfenced", { node: this.#o.nodeId, address });
        if (this.#unfenceAsks !== asks) return; // asked again meanwhile: look again at once
        // Counted failed, this node may be fenced by a takeover still to come: look again.
        this.#unfenceWanted = this.#selfFailed(this.#o.view.current());
        if (this.#unfenceWanted) {
          this.#unfenceNotBeforeMs = performance.now() + this.#unfenceRetryMs;
        }
      })
      .catch((error: unknown) => {
        this.#o.log("unfence_failed", { address, error: (error as Error).message });
        this.#unfenceNotBeforeMs = performance.now() + this.#unfenceRetryMs;
      })
      .finally(() => {
        this.#unfencing = false;
        // Asked again meanwhile (or to look again later): the wait above is respected.
        if (this.#unfenceWanted) this.#maybeUnfence();
      });
  }

  /** On a takeover with nothing under way: a fence of this node from an earlier failure goes. */
  async #liftOwnFence(): Promise<void> {
    const backend = this.#o.backend;
    const address = this.#ownFenceAddress();
    if (!this.#o.fencing || !backend.unfence || address === undefined) return;
    try {
      if (await backend.unfence(address)) {
        this.#o.log("unfenced", { node: this.#o.nodeId, address, on: "takeover" });
      }
      this.#unfenceWanted = false;
    } catch (error) {
      this.#o.log("unfence_failed", { address, error: (error as Error).message });
    }
  }

  /** Merges every healthy peer's records; returns the peers that answered. */
  async #pullAll(view: ClusterViewSnapshot): Promise<string[]> {
    const peers = this.#healthyPeers(view);
    const results = await Promise.allSettled(peers.map((p) => this.#o.peers.pull(p)));
    const answered: string[] = [];
    results.forEach((result, i) => {
      if (result.status === "fulfilled") {
        answered.push(peers[i]!.id);
        for (const record of result.value) this.#apply(record);
      } else {
        const reason = result.reason as PeerError | Error;
        this.#o.log("pull_failed", { peer: peers[i]!.id, error: reason.message });
      }
    });
    return answered;
  }

  #kick(): void {
    if (this.#stopped || !this.#active) return;
    if (this.#loop) {
      this.#again = true;
      return;
    }
    this.#loop = this.#drain().finally(() => {
      this.#loop = undefined;
      if (this.#again) {
        this.#again = false;
        this.#kick();
      }
      if (!this.#active) this.#maybeUnfence();
    });
  }

  async #drain(): Promise<void> {
    await this.#takeover;
    for (;;) {
      if (this.#stopped || !this.#active) return;
      const next = this.#nextRunnable();
      if (next === undefined) return;
      await this.#execute(next);
    }
  }

  #nextRunnable(): RequestRecord | undefined {
    const now = performance.now();
    let earliestRetryMs: number | undefined;
    for (const record of this.#o.journal.unfinished()) {
      if (this.#submitting.has(record.id)) continue;
      if ((this.#attemptsHere.get(record.id) ?? 0) >= this.#o.attemptsMax) continue;
      const notBefore = this.#notBeforeMs.get(record.id);
      if (notBefore !== undefined && notBefore > now) {
        earliestRetryMs = Math.min(earliestRetryMs ?? notBefore, notBefore);
        continue;
      }
      return record;
    }
    if (earliestRetryMs !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = setTimeout(() => this.#kick(), Math.max(0, earliestRetryMs - now));
    }
    return undefined;
  }

  async #execute(record: RequestRecord): Promise<void> {
    const next = nextAttempt(record, this.#o.nodeId);
    const attempt = {
      state: next.state,
      reDrive: next.reDrive || !this.#acceptedInTenure.has(record.id),
    };
    const running = this.#apply({ ...record, state: attempt.state });
    this.#attemptsHere.set(record.id, (this.#attemptsHere.get(record.id) ?? 0) + 1);
    await this.#push([running]);
    const number = attempt.state.state === "running" ? attempt.state.attempt : 0;
    const outcome = await perform(this.#o.backend, record.operation, record.id);
    if (!outcome.ok && outcome.error.code === "FENCED") {
      this.#askUnfence(true);
      this.#o.log("refused_fenced", {
        id: record.id,
        op: record.operation.op,
        note: "the storage cluster refused this node: the VIP's new holder fenced it; the command had no effect",
      });
    }
    const observed = new Map<string, ObservedVolume | undefined>();
    for (const name of observationFor(record.operation, outcome)) {
      // VOLUME@SNAPSHOT names a snapshot (volume names cannot hold '@').
      const [volume, snapshot] = name.split("@") as [string, string | undefined];
      if (snapshot !== undefined) {
        const createdBy = await this.#o.backend
          .snapCreatorOf(volume, snapshot)
          .catch(() => undefined);
        observed.set(name, { name, sizeBytes: 0, ...(createdBy ? { createdBy } : {}) });
        continue;
      }
      const info = await this.#o.backend.info(name).catch(() => undefined);
      const createdBy = await this.#o.backend.creatorOf(name).catch(() => undefined);
      observed.set(
        name,
        info === undefined ? undefined : { ...info, ...(createdBy ? { createdBy } : {}) },
      );
    }
    const sinceTakeoverMs = performance.now() - this.#tookOverAtMs;
    const staleWatchPossible =
      sinceTakeoverMs < (this.#o.staleWatchWaitMs ?? defaultStaleWatchWaitMs);
    const state = resolveOutcome(
      record.operation,
      { node: this.#o.nodeId, attempt: number, reDrive: attempt.reDrive },
      outcome,
      observed,
      record.id,
      staleWatchPossible,
    );
    if (state.state === "outcome_unknown") {
      this.#notBeforeMs.set(record.id, performance.now() + this.#o.retryDelayMs);
      if (!outcome.ok && outcome.error.code === "BUSY") {
        // Bounded by the wait, not by the attempt count.
        this.#attemptsHere.set(record.id, (this.#attemptsHere.get(record.id) ?? 1) - 1);
        this.#o.log("busy_on_redrive", {
          id: record.id,
          op: record.operation.op,
          sinceTakeoverMs: Math.round(sinceTakeoverMs),
          note: "a holder that died inside its attempt may still watch the image; trying again until Ceph drops its watch",
        });
      }
    }
    const finished = this.#apply({ ...running, state });
    if (isFinal(finished.state)) this.#acceptedInTenure.delete(record.id);
    this.#o.log("executed", {
      id: record.id,
      op: record.operation.op,
      attempt: number,
      reDrive: attempt.reDrive,
      state: finished.state.state,
    });
    await this.#push([finished]);
  }
}

/** Runs one operation against the backend; every failure becomes a coded error value. */
export async function perform(
  backend: StorageBackend,
  operation: Operation,
  requestId?: string,
): Promise<Outcome> {
  try {
    return { ok: true, result: await call(backend, operation, requestId) };
  } catch (error) {
    if (error instanceof StorageError && error.code !== "REQUEST_ID_REUSED") {
      const code =
        error.code === "REPLICATION_FAILED" ||
        error.code === "NO_REPLICA" ||
        error.code === "UNAUTHENTICATED" ||
        error.code === "FORBIDDEN"
          ? "BACKEND_ERROR"
          : error.code;
      return { ok: false, error: { code, message: error.message } };
    }
    return { ok: false, error: { code: "BACKEND_ERROR", message: String(error) } };
  }
}

async function call(
  backend: StorageBackend,
  operation: Operation,
  requestId: string | undefined,
): Promise<OperationResult> {
  switch (operation.op) {
    case "create":
      return backend.create(operation.name, operation.sizeBytes, requestId);
    case "delete":
      await backend.remove(operation.name);
      return { name: operation.name };
    case "list":
      return { volumes: await backend.list() };
    case "info":
      return backend.info(operation.name);
    case "resize":
      return backend.resize(operation.name, operation.sizeBytes);
    case "copy":
      return backend.copy(operation.name, operation.target, requestId);
    case "snap-create":
      return backend.snapCreate(operation.name, operation.snapshot, requestId);
    case "snap-list":
      return { snapshots: await backend.snapList(operation.name) };
    case "snap-delete":
      await backend.snapRemove(operation.name, operation.snapshot);
      return { name: operation.name, snapshot: operation.snapshot };
    case "clone":
      return backend.clone(operation.name, operation.snapshot, operation.target, requestId);
  }
}
