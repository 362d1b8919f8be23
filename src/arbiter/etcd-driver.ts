/**
 * Performs the etcd arbiter's effects and feeds etcd's facts back to it
 * (src/arbiter/etcd-core.ts), with the `etcd3` client over gRPC:
 *   - the session lease: granted with the configured TTL, kept alive over one keep-alive
 *     stream every quarter of the TTL; each confirmation reports the time its request was
 *     sent (the lease surely lives until then + TTL), a TTL of 0 reports the lease lost;
 *   - the view: every key under `<prefix>/<cluster>/`, read once and then kept by a watch
 *     (re-read when the watch fails), delivered whole with its revision, coalesced per turn;
 *   - the writes: one guarded transaction each (see the core for the guards).
 * Every unary call has a deadline (`timeout`); the keep-alive stream is reopened when an
 * answer is later than that. The client's own retries and circuit breaker are shortened so
 * that an outage and a recovery are seen within a TTL, not after the library's 5 s back-off.
 *
 * The keep-alive stream is opened on an endpoint this driver chooses (a client per endpoint),
 * and a stream that fails, ends, cannot be opened or goes unanswered moves to the next
 * endpoint. Left to the shared client, a new stream went to an endpoint at random, the dead
 * one included (a stream's failure never reaches the client's circuit breaker): after etcd's
 * leader was killed, two nodes reopened their streams on the dead member and waited 1.6 s for
 * gRPC to give up on the connection, 1.6 s of the TTL lost to the client.
 *
 * The etcd3 package's Election helper is not used: it elected two leaders after an etcd
 * restart (microsoft/etcd3#158, #176). The campaign here is a create-if-absent transaction
 * under the node's own lease.
 */
import { readFileSync, writeFileSync } from "node:fs";
import {
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleAll,
  retry,
} from "cockatiel";
import { Etcd3, type IOptions, type Watcher } from "etcd3";
import type { EtcdArbiterSpec } from "../config/types.ts";
import type { EtcdKv, EtcdOp, Input } from "../core/types.ts";

type Log = (
  level: "debug" | "info" | "warn" | "error",
  msg: string,
  fields?: Record<string, unknown>,
) => void;

export interface EtcdDriverOptions {
  readonly spec: EtcdArbiterSpec;
  readonly cluster: string;
  readonly nodeId: string;
  readonly now: () => number;
  readonly deliver: (input: Input) => void;
  readonly log: Log;
  /**
   * Where the session lease's id is kept across restarts: a new agent revokes its dead
   * predecessor's lease at once (its keys go with it) instead of waiting a TTL for it to
   * expire. Only one agent per node runs (the state lock), and the supervisor starts a new
   * one only after the old one died and its VIPs were removed.
   */
  readonly leaseFile?: string;
  /** [0, 1): picks the endpoint the first keep-alive stream opens on (default Math.random). */
  readonly random?: () => number;
}

export interface EtcdDriverStats {
  readonly connected: boolean;
  readonly leaseId: string | undefined;
  readonly revision: number;
  readonly leasesGranted: number;
  readonly leasesLost: number;
  readonly keepAlivesConfirmed: number;
  readonly keepAlivesFailed: number;
  readonly writes: number;
  readonly writesRefused: number;
  readonly writesFailed: number;
  readonly resyncs: number;
}

type WatchBackoff = NonNullable<NonNullable<IOptions["faultHandling"]>["watchBackoff"]>;

interface KeepAliveStream {
  write(request: { ID: string }): void;
  on(event: string, handler: (arg: never) => void): void;
  end(): void;
  cancel?(): void;
}

/** Client options from the config: endpoints, TLS files, user and password, fault handling. */
export function etcdClientOptions(spec: EtcdArbiterSpec): IOptions {
  const timeoutMs = spec.requestTimeoutMs;
  return {
    hosts: [...spec.endpoints],
    dialTimeout: timeoutMs,
    defaultCallOptions: (context) =>
      context.isStream ? {} : { deadline: new Date(Date.now() + timeoutMs) },
    faultHandling: {
      // One failure marks an endpoint down for half a TTL (the library's default: three,
      // for 5 s), and a call goes on to the next endpoint at once.
      host: () =>
        circuitBreaker(handleAll, {
          halfOpenAfter: Math.max(250, Math.floor((spec.ttlSec * 1000) / 2)),
          breaker: new ConsecutiveBreaker(1),
        }),
      global: retry(handleAll, { maxAttempts: Math.max(1, spec.endpoints.length - 1) }),
      // The library's type names an older cockatiel interface; the object is what it calls.
      watchBackoff: new ExponentialBackoff({
        initialDelay: 100,
        maxDelay: 1000,
      }) as unknown as WatchBackoff,
    },
    ...(spec.tls
      ? {
          credentials: {
            rootCertificate: readFileSync(spec.tls.ca),
            ...(spec.tls.cert ? { certChain: readFileSync(spec.tls.cert) } : {}),
            ...(spec.tls.key ? { privateKey: readFileSync(spec.tls.key) } : {}),
          },
        }
      : {}),
    ...(spec.auth
      ? {
          auth: {
            username: spec.auth.user,
            password: readFileSync(spec.auth.passwordFile, "utf8").trim(),
            // A deadline per attempt. A fixed object here (computed once, when the client
            // was built) gave every later authentication the first one's deadline: after one
            // slow start under load, each attempt failed at once ("Deadline exceeded after
            // 0.000s") and the node never reached etcd again.
            callOptions: () => ({ deadline: new Date(Date.now() + timeoutMs) }),
          },
        }
      : {}),
  };
}

export class EtcdDriver {
  readonly #o: EtcdDriverOptions;
  readonly #client: Etcd3;
  /** One client per endpoint, for the keep-alive stream (see the header). */
  readonly #keepAliveClients: readonly Etcd3[];
  /** The endpoint the next keep-alive stream opens on. */
  #endpoint: number;
  /** Streams failed since the last answer (see #retrySoon). */
  #failuresInTurn = 0;
  readonly #base: string;
  readonly #ttlMs: number;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #leaseId: string | undefined;
  #granting = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #predecessorChecked = false;
  #stream: KeepAliveStream | undefined;
  /** Send times of keep-alives not answered yet, oldest first (a stream answers in order). */
  #pendingKeepAlives: number[] = [];
  #watcher: Watcher | undefined;
  #kvs = new Map<string, EtcdKv>();
  #revision = 0;
  #viewScheduled = false;
  #syncing = false;
  #connected = false;
  #lastOutageLogMs = Number.NEGATIVE_INFINITY;
  #stats = {
    leasesGranted: 0,
    leasesLost: 0,
    keepAlivesConfirmed: 0,
    keepAlivesFailed: 0,
    writes: 0,
    writesRefused: 0,
    writesFailed: 0,
    resyncs: 0,
  };

  constructor(options: EtcdDriverOptions) {
    this.#o = options;
    this.#client = new Etcd3(etcdClientOptions(options.spec));
    this.#keepAliveClients = options.spec.endpoints.map(
      (endpoint) => new Etcd3(etcdClientOptions({ ...options.spec, endpoints: [endpoint] })),
    );
    // Nodes start on different endpoints, so one member's death stalls a third of them.
    this.#endpoint = Math.floor((options.random ?? Math.random)() * options.spec.endpoints.length);
    this.#base = `${options.spec.prefix.replace(/\/+$/, "")}/${options.cluster}/`;
    this.#ttlMs = options.spec.ttlSec * 1000;
  }

  /** The key prefix of this cluster. */
  get base(): string {
    return this.#base;
  }

  stats(): EtcdDriverStats {
    return {
      connected: this.#connected,
      leaseId: this.#leaseId,
      revision: this.#revision,
      ...this.#stats,
    };
  }

  start(): void {
    const every = Math.max(100, Math.floor(this.#ttlMs / 4));
    const round = () => {
      if (this.#stopped) return;
      this.#timer = setTimeout(round, every);
      this.#keepAlive();
      if (this.#watcher === undefined && !this.#syncing) void this.#sync();
    };
    round();
  }

  /** Revokes the session lease (its keys go at once) and closes the client. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#retryTimer);
    this.#closeStream();
    const lease = this.#leaseId;
    this.#leaseId = undefined;
    if (lease !== undefined) {
      try {
        await this.#client.leaseClient.leaseRevoke(
          { ID: lease },
          { deadline: new Date(Date.now() + this.#o.spec.requestTimeoutMs) },
        );
      } catch (error) {
        this.#o.log("warn", "could not revoke the etcd lease; its keys expire with its TTL", {
          error: message(error),
        });
      }
    }
    try {
      await this.#watcher?.cancel();
    } catch {
      // closing anyway
    }
    this.#client.close();
    for (const client of this.#keepAliveClients) client.close();
  }

  perform(op: EtcdOp): void {
    void this.#write(op).then(
      ({ ok, revision }) => {
        this.#stats.writes += 1;
        if (!ok) this.#stats.writesRefused += 1;
        this.#deliver({ type: "etcd-result", nowMs: this.#o.now(), op, ok, revision });
      },
      (error: unknown) => {
        this.#stats.writesFailed += 1;
        this.#noteOutage("an etcd write failed", error);
        this.#deliver({
          type: "etcd-result",
          nowMs: this.#o.now(),
          op,
          ok: false,
          error: `etcd: ${message(error)}`,
        });
      },
    );
  }

  // ---------------------------------------------------------------- session lease

  #keepAlive(): void {
    if (this.#leaseId === undefined) {
      if (!this.#granting) void this.#grant();
      return;
    }
    const now = this.#o.now();
    const oldest = this.#pendingKeepAlives[0];
    if (oldest !== undefined && now - oldest > this.#o.spec.requestTimeoutMs) {
      // No answer in time: this stream may be stuck on a dead endpoint; open one on the next.
      this.#stats.keepAlivesFailed += this.#pendingKeepAlives.length;
      this.#noteOutage(
        "etcd keep-alive unanswered",
        new Error(`no answer for ${Math.round(now - oldest)} ms from ${this.keepAliveEndpoint}`),
      );
      this.#closeStream();
      this.#nextEndpoint();
    }
    if (!this.#stream) {
      void this.#openStream();
      return;
    }
    this.#pendingKeepAlives.push(now);
    try {
      this.#stream.write({ ID: this.#leaseId });
    } catch (error) {
      this.#noteOutage("etcd keep-alive failed", error);
      this.#closeStream();
    }
  }

  async #grant(): Promise<void> {
    this.#granting = true;
    try {
      await this.#revokePredecessor();
    } catch (error) {
      this.#noteOutage("cannot revoke the previous agent's etcd lease", error);
      this.#granting = false;
      return;
    }
    const sentAt = this.#o.now();
    try {
      const response = await this.#client.leaseClient.leaseGrant({
        TTL: this.#o.spec.ttlSec,
        ID: 0,
      });
      if (this.#stopped) return;
      this.#leaseId = String(response.ID);
      this.#stats.leasesGranted += 1;
      if (this.#o.leaseFile) writeFileSync(this.#o.leaseFile, `${this.#leaseId}\n`);
      this.#setConnected(true);
      this.#o.log("info", "etcd session lease granted", {
        lease: this.#leaseId,
        ttlSec: Number(response.TTL),
      });
      this.#deliver({
        type: "etcd-session",
        nowMs: this.#o.now(),
        leaseId: this.#leaseId,
        validFromMs: sentAt,
        ttlMs: this.#ttlMs,
      });
    } catch (error) {
      this.#noteOutage("cannot get an etcd lease", error);
    } finally {
      this.#granting = false;
    }
  }

  /** Revokes the lease a previous agent of this node left behind (once, at start). */
  async #revokePredecessor(): Promise<void> {
    const file = this.#o.leaseFile;
    if (!file || this.#predecessorChecked) return;
    let previous: string | undefined;
    try {
      previous = readFileSync(file, "utf8").trim() || undefined;
    } catch {
      previous = undefined; // none kept: a first start
    }
    if (previous !== undefined) {
      try {
        await this.#client.leaseClient.leaseRevoke({ ID: previous });
        this.#o.log("info", "revoked the previous agent's etcd lease: its keys are gone", {
          lease: previous,
        });
      } catch (error) {
        // Already expired (not found) is the common case after a longer stop.
        if (!/not found/i.test(message(error))) throw error;
      }
    }
    this.#predecessorChecked = true;
  }

  async #openStream(): Promise<void> {
    if (this.#stream || this.#stopped) return;
    let stream: KeepAliveStream;
    const client = this.#keepAliveClients[this.#endpoint]!;
    try {
      stream = (await client.leaseClient.leaseKeepAlive()) as unknown as KeepAliveStream;
    } catch (error) {
      this.#noteOutage("cannot open the etcd keep-alive stream", error);
      this.#nextEndpoint();
      this.#retrySoon();
      return;
    }
    if (this.#stopped || this.#stream) {
      stream.end();
      return;
    }
    this.#stream = stream;
    this.#pendingKeepAlives = [];
    stream.on("data", (response: { ID: string; TTL: string }) => {
      if (this.#stream !== stream) return;
      const sentAt = this.#pendingKeepAlives.shift();
      if (sentAt === undefined || String(response.ID) !== this.#leaseId) return;
      if (Number(response.TTL) <= 0) {
        this.#stats.leasesLost += 1;
        this.#o.log("warn", "etcd session lease expired: every claim under it is void", {
          lease: this.#leaseId,
        });
        this.#leaseId = undefined;
        this.#closeStream();
        this.#deliver({
          type: "etcd-session",
          nowMs: this.#o.now(),
          leaseId: undefined,
          validFromMs: sentAt,
          ttlMs: this.#ttlMs,
        });
        return;
      }
      this.#stats.keepAlivesConfirmed += 1;
      this.#failuresInTurn = 0;
      this.#setConnected(true);
      this.#deliver({
        type: "etcd-session",
        nowMs: this.#o.now(),
        leaseId: this.#leaseId,
        validFromMs: sentAt,
        ttlMs: this.#ttlMs,
      });
    });
    stream.on("error", (error: unknown) => {
      if (this.#stream !== stream) return;
      this.#noteOutage("etcd keep-alive stream failed", error);
      this.#closeStream();
      this.#nextEndpoint();
      this.#retrySoon();
    });
    stream.on("end", () => {
      if (this.#stream !== stream) return;
      this.#closeStream();
      this.#nextEndpoint();
      this.#retrySoon();
    });
    this.#keepAlive();
  }

  /**
   * A keep-alive stream failed (its endpoint died, or the connection dropped): open another
   * on the next endpoint at once rather than at the next round, so a dead endpoint costs a
   * few tens of milliseconds of the TTL, not a quarter of it. Once every endpoint failed in
   * turn without an answer between (etcd down), the rounds retry, not this. At most one
   * retry waits at a time.
   */
  #retrySoon(): void {
    this.#failuresInTurn += 1;
    if (this.#failuresInTurn > this.#keepAliveClients.length) return;
    if (this.#retryTimer !== undefined || this.#stopped) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (!this.#stopped) this.#keepAlive();
    }, 50);
  }

  /** The endpoint the stream opens on from now on: the next one in the configured order. */
  #nextEndpoint(): void {
    this.#endpoint = (this.#endpoint + 1) % this.#keepAliveClients.length;
  }

  /** The endpoint the keep-alive stream uses or opens on (for tests and diagnostics). */
  get keepAliveEndpoint(): string {
    return this.#o.spec.endpoints[this.#endpoint]!;
  }

  #closeStream(): void {
    const stream = this.#stream;
    this.#stream = undefined;
    this.#pendingKeepAlives = [];
    if (!stream) return;
    try {
      stream.cancel?.();
      stream.end();
    } catch {
      // already gone
    }
  }

  // ---------------------------------------------------------------- view

  /** Reads every key of the cluster, then watches from the next revision. */
  async #sync(): Promise<void> {
    this.#syncing = true;
    try {
      const response = await this.#client.getAll().prefix(this.#base).exec();
      if (this.#stopped) return;
      const revision = Number(response.header.revision);
      this.#kvs = new Map();
      for (const kv of response.kvs) {
        const entry = this.#entry(kv);
        if (entry) this.#kvs.set(entry.key, entry);
      }
      this.#revision = Math.max(this.#revision, revision);
      this.#scheduleView();
      const watcher = await this.#client
        .watch()
        .prefix(this.#base)
        .startRevision(String(revision + 1))
        .create();
      if (this.#stopped) {
        await watcher.cancel();
        return;
      }
      this.#watcher = watcher;
      watcher.on("data", (res) => {
        for (const event of res.events) {
          const entry = this.#entry(event.kv);
          if (!entry) continue;
          if (event.type === "Delete") this.#kvs.delete(entry.key);
          else this.#kvs.set(entry.key, entry);
        }
        this.#revision = Math.max(this.#revision, Number(res.header.revision));
        this.#scheduleView();
      });
      watcher.on("disconnected", (error) => {
        this.#noteOutage("etcd watch disconnected", error);
      });
      watcher.on("connected", () => this.#setConnected(true));
      watcher.on("error", (error) => {
        // The watch cannot go on (compacted past it, canceled): read everything again.
        this.#o.log("warn", "etcd watch failed; reading the cluster's keys again", {
          error: message(error),
        });
        this.#stats.resyncs += 1;
        if (this.#watcher === watcher) this.#watcher = undefined;
        void watcher.cancel().catch(() => undefined);
      });
    } catch (error) {
      this.#noteOutage("cannot read the cluster's keys from etcd", error);
    } finally {
      this.#syncing = false;
    }
  }

  #entry(kv: {
    key: Buffer;
    value: Buffer;
    create_revision: string;
    mod_revision: string;
    lease: string;
  }): EtcdKv | undefined {
    const key = kv.key.toString();
    if (!key.startsWith(this.#base)) return undefined;
    return {
      key: key.slice(this.#base.length),
      value: kv.value.toString(),
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
      lease: String(kv.lease ?? "0"),
    };
  }

  #scheduleView(): void {
    if (this.#viewScheduled) return;
    this.#viewScheduled = true;
    setImmediate(() => {
      this.#viewScheduled = false;
      this.#deliver({
        type: "etcd-view",
        nowMs: this.#o.now(),
        revision: this.#revision,
        kvs: [...this.#kvs.values()],
      });
    });
  }

  // ---------------------------------------------------------------- writes

  async #write(op: EtcdOp): Promise<{ ok: boolean; revision?: number }> {
    const c = this.#client;
    const k = (key: string) => `${this.#base}${key}`;
    const lease = this.#leaseId;
    const needsLease = op.kind === "campaign" || op.kind === "register" || op.kind === "claim";
    if (needsLease && lease === undefined) return { ok: false };
    let txn: ReturnType<Etcd3["if"]>;
    switch (op.kind) {
      case "campaign":
        txn = c
          .if(k("coordinator"), "Create", "==", 0)
          .then(c.put(k("coordinator")).value(this.#o.nodeId).lease(lease!));
        break;
      case "register":
        // Unconditional: a member key is only ever written by its node.
        txn = c.if(k(`members/${this.#o.nodeId}`), "Create", ">", -1).then(
          c
            .put(k(`members/${this.#o.nodeId}`))
            .value(op.value)
            .lease(lease!),
        );
        break;
      case "publish":
        txn = c
          .if(k("coordinator"), "Create", "==", op.term)
          .and(k("coordinator"), "Value", "==", this.#o.nodeId)
          .then(c.put(k("table")).value(op.value));
        break;
      case "claim":
        txn = c
          .if(k(`owners/${op.address}`), "Create", "==", 0)
          .and(k("table"), "Mod", "==", op.tableRevision)
          .then(
            c
              .put(k(`owners/${op.address}`))
              .value(this.#o.nodeId)
              .lease(lease!),
          );
        break;
      case "release":
        txn = c
          .if(k(`owners/${op.address}`), "Create", "==", op.claimRevision)
          .then(c.delete().key(k(`owners/${op.address}`)));
        break;
      case "admin":
        txn = c
          .if(k("admin"), "Mod", "==", op.expectRevision)
          .then(c.put(k("admin")).value(op.value));
        break;
      case "resign":
        txn = c
          .if(k("coordinator"), "Create", "==", op.term)
          .and(k("coordinator"), "Value", "==", this.#o.nodeId)
          .then(c.delete().key(k("coordinator")));
        break;
      default: {
        const unknown: never = op;
        throw new Error(`unknown etcd op ${JSON.stringify(unknown)}`);
      }
    }
    const response = await txn.commit();
    this.#setConnected(true);
    return { ok: response.succeeded, revision: Number(response.header.revision) };
  }

  // ---------------------------------------------------------------- helpers

  #deliver(input: Input): void {
    if (!this.#stopped) this.#o.deliver(input);
  }

  #setConnected(connected: boolean): void {
    if (connected === this.#connected) return;
    this.#connected = connected;
    if (connected) this.#o.log("info", "etcd reachable");
  }

  /** One warning per outage, and at most one every 5 s while it lasts. */
  #noteOutage(what: string, error: unknown): void {
    const now = this.#o.now();
    const first = this.#connected;
    this.#connected = false;
    if (!first && now - this.#lastOutageLogMs < 5000) return;
    this.#lastOutageLogMs = now;
    this.#o.log("warn", `${what}: etcd unreachable or slow`, {
      error: message(error),
      endpoints: this.#o.spec.endpoints.join(","),
    });
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
