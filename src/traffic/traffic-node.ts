/**
 * The traffic component the agent starts on every node (S3). It wires the collector, the
 * local store, the backup channel and the index table together:
 *
 * - every node serves the backup channel, collects samples into its store and streams them
 *   (plus the samples it holds as custodian for Failed nodes) to its backup target;
 * - when sending fails twice in a row it reports the target to the coordinator, adopts the
 *   table it gets back and re-syncs everything the new target is missing;
 * - the coordinator (per the ClusterView) owns the index table, applies reports and joins,
 *   persists the table and pushes every new version to all nodes;
 * - any node answers a query for any node, from that node or from its backup target.
 *
 * Wall-clock time is used only for sample timestamps; waits use timers.
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import {
  answeringNode,
  buildIndexTable,
  findRow,
  type IndexTable,
  isIndexTable,
  markFailed,
  type NodeEntry,
  type NodeStatus,
  nodeRecovered,
  originsToReplicate,
  reportTargetFailed,
} from "../core/traffic/index-table.ts";
import { isCount, isName } from "../core/validate.ts";
import type { ClusterView, ClusterViewSnapshot, MemberState } from "../ports/cluster-view.ts";
import {
  type ChannelConnection,
  ChannelError,
  type ChannelMessage,
  ChannelServer,
  newChannelStats,
  openChannel,
} from "./backup-channel.ts";
import { Collector, type InterfaceSample } from "./collector.ts";
import { type TrafficBucket, TrafficStore, type WireRow } from "./store.ts";

/** Node ids and interface names on the traffic channel. */
const nameMaxLength = 64;

export interface TrafficNodeOptions {
  readonly selfId: string;
  /** All nodes in ring (config) order. */
  readonly nodes: readonly NodeEntry[];
  readonly clusterKey: Buffer;
  readonly dbPath: string;
  /** Backup-channel TCP port, the same on every node. */
  readonly channelPort: number;
  /** Address to listen on (default: all). */
  readonly listenHost?: string;
  readonly clusterView: ClusterView;
  readonly collectIntervalMs?: number;
  /** Rows per batch and batches in flight: bounds the memory used by a re-sync. */
  readonly batchRows?: number;
  readonly batchesInFlight?: number;
  readonly requestTimeoutMs?: number;
  /** Consecutive send failures before the target is reported failed. */
  readonly failuresToReport?: number;
  /** How often retention runs (default 5 min). */
  readonly pruneIntervalMs?: number;
  /** Disable the collector (benchmarks feed the store directly). */
  readonly collect?: boolean;
  /** Retention of raw samples and of 1-minute rollups (store defaults: 2 days, 30 days). */
  readonly rawRetentionMs?: number;
  readonly rollupRetentionMs?: number;
  /**
   * Coordinator only: mark a node Failed in the table when the cluster view's member state
   * turns to `failed` (a second signal beside the senders' reports; see `onView`).
   */
  readonly markFailedFromView?: boolean;
  /**
   * With `markFailedFromView`: a member counts as failed by the view only after it had been
   * healthy this long (default 5 s). A node that starts a little after the others is
   * "failed" in the first views only because nobody heard it yet; it is not marked Failed
   * for that.
   */
  readonly viewFailGraceMs?: number;
  readonly log?: (event: string, fields: Record<string, unknown>) => void;
}

export interface TrafficAnswer {
  readonly node: string;
  readonly status: NodeStatus;
  readonly answeredBy: string;
  readonly fromBackup: boolean;
  readonly tableVersion: number;
  readonly buckets: TrafficBucket[];
}

export interface TrafficQueryInput {
  readonly node: string;
  readonly fromMs: number;
  readonly toMs: number;
  readonly stepMs: number;
  readonly iface?: string | undefined;
}

/** What the HTTP route needs; `TrafficNode` implements it. */
export interface TrafficQueryService {
  query(input: TrafficQueryInput): Promise<TrafficAnswer>;
  currentTable(): IndexTable | undefined;
}

const wireRowTypes = "nnsnnnnnnnnnn";
/** An idle backup channel is probed this often, so a dead target is noticed without traffic. */
const keepaliveMs = 1000;

function isWireRow(value: unknown): value is WireRow {
  return (
    Array.isArray(value) &&
    value.length === wireRowTypes.length &&
    value.every((v, i) =>
      wireRowTypes[i] === "s"
        ? typeof v === "string" && v.length <= 64
        : typeof v === "number" && Number.isSafeInteger(v) && v >= 0,
    )
  );
}

function statesOf(view: ClusterViewSnapshot): Map<string, MemberState> {
  return new Map(view.members.map((m) => [m.id, m.state]));
}

export class TrafficNode implements TrafficQueryService {
  readonly store: TrafficStore;
  readonly server: ChannelServer;
  readonly clientStats = newChannelStats();
  private readonly options: TrafficNodeOptions;
  private table: IndexTable | undefined;
  private readonly collector: Collector | undefined;
  private running = false;
  private loops: Promise<void>[] = [];
  private wake: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;
  private port = 0;
  /** Member states of the previous view, to see transitions to `failed`. */
  private memberStates = new Map<string, MemberState>();
  /** Since when (performance.now()) each member has been healthy in every view. */
  private healthySince = new Map<string, number>();
  private readonly stopping = new AbortController();
  private readonly ownAddress: string | undefined;

  constructor(options: TrafficNodeOptions) {
    this.options = options;
    this.ownAddress = options.nodes.find((n) => n.id === options.selfId)?.ips[0];
    this.store = new TrafficStore(options.dbPath, options.selfId, {
      ...(options.rawRetentionMs === undefined ? {} : { rawRetentionMs: options.rawRetentionMs }),
      ...(options.rollupRetentionMs === undefined
        ? {}
        : { rollupRetentionMs: options.rollupRetentionMs }),
    });
    const saved = this.store.loadTable();
    if (saved && isIndexTable(saved)) this.table = saved;
    this.server = new ChannelServer({
      clusterKey: options.clusterKey,
      selfId: options.selfId,
      handler: (peer, message) => this.handle(peer, message),
      addressesOf: (peer) => options.nodes.find((n) => n.id === peer)?.ips,
      isNodeAddress: (address) => options.nodes.some((n) => n.ips.includes(address)),
    });
    if (options.collect !== false) {
      this.collector = new Collector({
        intervalMs: options.collectIntervalMs ?? 1000,
        onSamples: (samples) => {
          this.store.appendOwn(samples);
          this.poke();
        },
        onError: (error) => this.log("collect-failed", { error: String(error) }),
      });
    }
  }

  private log(event: string, fields: Record<string, unknown>): void {
    this.options.log?.(event, { node: this.options.selfId, ...fields });
  }

  private get isCoordinator(): boolean {
    return this.options.clusterView.current().coordinatorId === this.options.selfId;
  }

  currentTable(): IndexTable | undefined {
    return this.table;
  }

  /** Starts serving, collecting and replicating; resolves once the channel listens. */
  async start(): Promise<number> {
    this.running = true;
    this.port = await this.server.listen(
      this.options.channelPort,
      this.options.listenHost ?? "0.0.0.0",
    );
    if (this.isCoordinator && !this.table) this.adoptTable(buildIndexTable(this.options.nodes));
    this.memberStates = statesOf(this.options.clusterView.current());
    this.noteHealthy(this.memberStates);
    this.unsubscribe = this.options.clusterView.subscribe((view) => {
      this.onView(view);
      this.poke();
    });
    this.collector?.start();
    this.loops = [this.membershipLoop(), this.replicationLoop(), this.retentionLoop()];
    return this.port;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopping.abort();
    this.collector?.stop();
    this.unsubscribe?.();
    this.poke();
    await Promise.allSettled(this.loops);
    await this.server.close();
    this.store.close();
  }

  /** Stores samples collected by another source (per-VIP counters) and streams them. */
  addSamples(samples: readonly InterfaceSample[]): void {
    if (samples.length === 0) return;
    this.store.appendOwn(samples);
    this.poke();
  }

  /**
   * The membership view as a second failure signal, kept deliberately narrow: only the
   * coordinator acts, only on a member's transition to `failed` (never on a steady `failed`,
   * so a node that re-joins is not marked again and again), and never on itself. It is safe
   * because marking a live node Failed only costs a moment of answers from its backup copy:
   * the node sees its own row Failed in the next table it fetches and re-joins (see
   * `membershipLoop`). A node the view never declares failed is still caught by its sender.
   */
  private onView(view: ClusterViewSnapshot): void {
    const before = this.memberStates;
    const healthySince = new Map(this.healthySince);
    this.memberStates = statesOf(view);
    this.noteHealthy(this.memberStates);
    if (!this.options.markFailedFromView || !this.running || !this.isCoordinator) return;
    let table = this.table;
    if (!table) return;
    const graceMs = this.options.viewFailGraceMs ?? 5000;
    for (const [id, state] of this.memberStates) {
      if (state !== "failed" || before.get(id) === "failed" || id === this.options.selfId) continue;
      const since = healthySince.get(id);
      if (since === undefined || performance.now() - since < graceMs) {
        // Not heard long enough to have been really up: a late starter, not a failure.
        this.log("member-failed-too-soon", { id, graceMs });
        continue;
      }
      const r = markFailed(table, id);
      if (!r.ok) continue;
      table = r.table;
      this.log("member-failed", { id, version: table.version });
    }
    if (table !== this.table) this.publish(table);
  }

  private noteHealthy(states: ReadonlyMap<string, MemberState>): void {
    const now = performance.now();
    for (const [id, state] of states) {
      if (state !== "healthy") this.healthySince.delete(id);
      else if (!this.healthySince.has(id)) this.healthySince.set(id, now);
    }
  }

  /** Wakes the replication loop early (new samples, new table, view change). */
  poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async idle(ms: number): Promise<void> {
    await Promise.race([this.pause(ms), new Promise<void>((resolve) => (this.wake = resolve))]);
  }

  /** A wait that ends early when the component stops. */
  private pause(ms: number): Promise<void> {
    return sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => {});
  }

  /** Keeps the highest table version seen; persists it so a restarted coordinator resumes. */
  private adoptTable(table: IndexTable): boolean {
    if (this.table && table.version <= this.table.version) return false;
    this.table = table;
    this.store.saveTable(table);
    this.log("table-adopted", { version: table.version });
    this.poke();
    return true;
  }

  private addressOf(nodeId: string): string | undefined {
    const member = this.options.clusterView.current().members.find((m) => m.id === nodeId);
    return member?.address ?? this.options.nodes.find((n) => n.id === nodeId)?.ips[0];
  }

  private async call(nodeId: string, message: ChannelMessage): Promise<ChannelMessage> {
    const host = this.addressOf(nodeId);
    if (!host) throw new ChannelError("UNKNOWN_NODE", `no address for ${nodeId}`);
    const connection = await this.open(host);
    try {
      return await connection.request(message, this.options.requestTimeoutMs ?? 5000);
    } finally {
      connection.close();
    }
  }

  private open(host: string): Promise<ChannelConnection> {
    return openChannel({
      host,
      port: this.options.channelPort,
      clusterKey: this.options.clusterKey,
      selfId: this.options.selfId,
      stats: this.clientStats,
      timeoutMs: this.options.requestTimeoutMs ?? 5000,
      // From our own configured address: the peer admits our id only from there.
      ...(this.ownAddress ? { localAddress: this.ownAddress } : {}),
    });
  }

  // ---- coordinator side ----

  /** Applies a coordinator-side change and pushes the new version to every other node. */
  private publish(table: IndexTable): void {
    if (!this.adoptTable(table)) return;
    for (const row of table.rows) {
      if (row.nodeId === this.options.selfId || row.status === "Failed") continue;
      this.call(row.nodeId, { t: "table", table }).catch((error) =>
        this.log("table-push-failed", { to: row.nodeId, error: String(error) }),
      );
    }
  }

  private coordinatorTable(): IndexTable {
    if (!this.isCoordinator) throw new ChannelError("NOT_COORDINATOR", "not the coordinator");
    if (!this.table) this.adoptTable(buildIndexTable(this.options.nodes));
    return this.table!;
  }

  // ---- channel requests ----

  private handle(peer: string, m: ChannelMessage): ChannelMessage | Promise<ChannelMessage> {
    const self = this.options.selfId;
    switch (m.t) {
      case "position":
        if (!isName(m.origin, nameMaxLength))
          throw new ChannelError("BAD_POSITION", "origin must be a node id");
        return { t: "position", origin: m.origin, highestSeq: this.store.highestSeq(m.origin) };
      case "batch": {
        if (typeof m.origin !== "string" || m.origin === self || !Array.isArray(m.rows)) {
          throw new ChannelError("BAD_BATCH", "batch origin or rows invalid");
        }
        if (!m.rows.every(isWireRow)) throw new ChannelError("BAD_BATCH", "malformed row");
        return {
          t: "ack",
          origin: m.origin,
          highestSeq: this.store.appendReplicated(m.origin, m.rows),
        };
      }
      case "report-failed": {
        // A node reports its own backup target only: the reporter is who authenticated.
        if (m.reporter !== peer || !isName(m.target, nameMaxLength)) {
          throw new ChannelError("BAD_REPORT", "a node reports its own backup target only");
        }
        const r = reportTargetFailed(this.coordinatorTable(), m.reporter, m.target);
        if (!r.ok && r.code !== "NOT_REPORTERS_TARGET") throw new ChannelError(r.code, r.code);
        if (r.ok && r.changed) {
          this.log("target-failed", {
            reporter: m.reporter,
            target: m.target,
            version: r.table.version,
          });
          this.publish(r.table);
        }
        // A stale reporter just gets the current table and its current target.
        return { t: "table", table: this.table! };
      }
      case "join": {
        const r = nodeRecovered(this.coordinatorTable(), peer);
        if (r.ok && r.changed) {
          this.log("node-recovered", { id: peer, version: r.table.version });
          this.publish(r.table);
        }
        return { t: "table", table: this.table! };
      }
      case "get-table":
        if (!this.table) throw new ChannelError("TABLE_UNKNOWN", "no index table yet");
        return { t: "table", table: this.table };
      case "table":
        if (!isIndexTable(m.table)) throw new ChannelError("BAD_TABLE", "malformed table");
        this.adoptTable(m.table);
        return { t: "table-ack", version: this.table?.version ?? 0 };
      case "query":
        if (
          !isName(m.origin, nameMaxLength) ||
          !isCount(m.fromMs) ||
          !isCount(m.toMs) ||
          !isCount(m.stepMs) ||
          m.stepMs < 1 ||
          (m.iface !== undefined && !isName(m.iface, nameMaxLength))
        ) {
          throw new ChannelError("BAD_QUERY", "query needs origin, fromMs, toMs, stepMs >= 1");
        }
        return this.store
          .querySliced({
            origin: m.origin,
            fromMs: m.fromMs,
            toMs: m.toMs,
            stepMs: m.stepMs,
            iface: m.iface,
          })
          .then((buckets): ChannelMessage => ({ t: "query-result", buckets }));
      default:
        throw new ChannelError("UNEXPECTED", `unexpected message ${m.t}`);
    }
  }

  // ---- node side loops ----

  /** Applies retention (raw 2 days, 1-minute rollups 30 days) every few minutes. */
  private async retentionLoop(): Promise<void> {
    while (this.running) {
      try {
        const result = this.store.prune(Date.now());
        if (result.rolledUp > 0) this.log("pruned", { ...result });
      } catch (error) {
        this.log("prune-failed", { error: String(error) });
      }
      await this.pause(this.options.pruneIntervalMs ?? 300_000);
    }
  }

  /**
   * Joins the coordinator (which also marks this node Normal again after a failure) and
   * then refreshes the table now and then, in case a push was lost.
   */
  private async membershipLoop(): Promise<void> {
    let joined = false;
    while (this.running) {
      const coordinator = this.options.clusterView.current().coordinatorId;
      // Marked Failed while alive (a view signal, or a partition that healed): join again.
      if (joined && this.table && findRow(this.table, this.options.selfId)?.status === "Failed") {
        joined = false;
      }
      if (coordinator === this.options.selfId) {
        if (!joined) this.publish(nodeRecovered(this.coordinatorTable(), coordinator).table);
        joined = true;
      } else if (coordinator !== undefined) {
        try {
          const reply = await this.call(
            coordinator,
            joined ? { t: "get-table" } : { t: "join", node: this.options.selfId },
          );
          if (reply.t === "table" && isIndexTable(reply.table)) {
            this.adoptTable(reply.table);
            joined = true;
          }
        } catch (error) {
          this.log("coordinator-unreachable", { coordinator, error: String(error) });
        }
      }
      await this.pause(joined ? 2000 : 300);
    }
  }

  private async replicationLoop(): Promise<void> {
    let failures = 0;
    while (this.running) {
      const table = this.table;
      const row = table && findRow(table, this.options.selfId);
      if (!table || !row || row.status === "Failed" || !row.backupTargetId) {
        await this.idle(this.options.collectIntervalMs ?? 1000);
        continue;
      }
      const targetId = row.backupTargetId;
      try {
        await this.streamTo(targetId, row.backupTargetIp ?? this.addressOf(targetId) ?? "");
        failures = 0;
      } catch (error) {
        if (!this.running) break;
        failures++;
        this.log("send-failed", { target: targetId, failures, error: String(error) });
        if (failures >= (this.options.failuresToReport ?? 2)) {
          await this.reportFailed(targetId);
          failures = 0;
        } else {
          await this.pause(100);
        }
      }
    }
  }

  /**
   * Streams to one target until the table changes (returns) or sending fails (throws).
   * On connect it asks the target's position per origin and sends only what is missing.
   */
  private async streamTo(targetId: string, host: string): Promise<void> {
    const startTable = this.table;
    const connection = await this.open(host);
    try {
      if (connection.peerId !== targetId) {
        throw new ChannelError("WRONG_PEER", `${host} is ${connection.peerId}, not ${targetId}`);
      }
      const sent = new Map<string, number>();
      let lastCheckMs = performance.now();
      while (this.running && this.table === startTable) {
        if (connection.closed) throw new ChannelError("CHANNEL_CLOSED", `${targetId} closed`);
        // With nothing new to send, a failed target would go unnoticed: re-ask positions
        // every keepalive period, which also proves the target still has what it acked.
        if (performance.now() - lastCheckMs >= keepaliveMs) {
          sent.clear();
          lastCheckMs = performance.now();
        }
        for (const origin of originsToReplicate(startTable!, this.options.selfId)) {
          let from = sent.get(origin);
          if (from === undefined) {
            const reply = await connection.request({ t: "position", origin }, this.timeoutMs);
            from = reply.t === "position" ? (reply.highestSeq ?? 0) : 0;
          }
          sent.set(origin, await this.sendMissing(connection, origin, from));
        }
        await this.idle(this.options.collectIntervalMs ?? 1000);
      }
    } finally {
      connection.close();
    }
  }

  private get timeoutMs(): number {
    return this.options.requestTimeoutMs ?? 5000;
  }

  /** Sends rows after `fromSeq` in pipelined batches; resolves with the last acked sequence. */
  async sendMissing(
    connection: ChannelConnection,
    origin: string,
    fromSeq: number,
  ): Promise<number> {
    const batchRows = this.options.batchRows ?? 2000;
    const window = this.options.batchesInFlight ?? 4;
    const inFlight: Promise<number>[] = [];
    let next = fromSeq;
    let acked = fromSeq;
    const ackOf = async (p: Promise<ChannelMessage>, last: number) => {
      const reply = await p;
      if (reply.t !== "ack" || reply.highestSeq < last) {
        throw new ChannelError("BAD_ACK", `target did not store ${origin} up to ${last}`);
      }
      return last;
    };
    for (;;) {
      const rows = this.store.rowsAfter(origin, next, batchRows);
      if (rows.length === 0) break;
      next = rows.at(-1)![0];
      const ack = ackOf(connection.request({ t: "batch", origin, rows }, this.timeoutMs), next);
      // Awaited below in order; this only keeps a failure of a later batch from going unhandled.
      ack.catch(() => {});
      inFlight.push(ack);
      if (inFlight.length >= window) acked = await inFlight.shift()!;
    }
    for (const p of inFlight) acked = await p;
    return acked;
  }

  private async reportFailed(targetId: string): Promise<void> {
    const coordinator = this.options.clusterView.current().coordinatorId;
    const self = this.options.selfId;
    try {
      if (coordinator === self) {
        const r = reportTargetFailed(this.coordinatorTable(), self, targetId);
        if (r.ok && r.changed) this.publish(r.table);
      } else if (coordinator !== undefined && coordinator !== targetId) {
        const reply = await this.call(coordinator, {
          t: "report-failed",
          reporter: self,
          target: targetId,
        });
        if (reply.t === "table" && isIndexTable(reply.table)) this.adoptTable(reply.table);
      } else {
        this.log("no-coordinator-to-report", { target: targetId });
      }
    } catch (error) {
      this.log("report-failed-error", { target: targetId, error: String(error) });
    }
    await this.pause(200);
  }

  // ---- queries ----

  async query(input: TrafficQueryInput): Promise<TrafficAnswer> {
    const table = this.table;
    if (!table) throw new ChannelError("TABLE_UNKNOWN", "this node has no index table yet");
    const answer = answeringNode(table, input.node);
    if (!answer) {
      const known = findRow(table, input.node) !== undefined;
      throw new ChannelError(
        known ? "NO_COPY" : "UNKNOWN_NODE",
        `no data source for ${input.node}`,
      );
    }
    const q = {
      origin: input.node,
      fromMs: input.fromMs,
      toMs: input.toMs,
      stepMs: input.stepMs,
      iface: input.iface,
    };
    let buckets: TrafficBucket[];
    if (answer.nodeId === this.options.selfId) {
      buckets = await this.store.querySliced(q);
    } else {
      const reply = await this.call(answer.nodeId, {
        t: "query",
        ...q,
        ...(input.iface === undefined ? {} : { iface: input.iface }),
      });
      if (reply.t !== "query-result") throw new ChannelError("BAD_REPLY", "unexpected reply");
      buckets = reply.buckets;
    }
    return {
      node: input.node,
      status: answer.status,
      answeredBy: answer.nodeId,
      fromBackup: answer.fromBackup,
      tableVersion: table.version,
      buckets,
    };
  }
}
