/**
 * The userspace data plane of a relay: accepts clients on the listen address and splices each
 * one to a backend with `pipe()` (backpressure both ways).
 *
 * The connect to the active backend has a short deadline. When it fails or times out, that
 * counts as a passive anomaly (reported to the relay machine) and the next healthy backend is
 * tried at once, so the client sees neither a hang nor an error while any backend is healthy.
 * With no backend up, a `tcp` client gets a TCP reset and an `http` client gets an immediate
 * `503` with a JSON error body.
 */
import net from "node:net";
import { PerSourceCount } from "../adapters/per-source.ts";
import type { Endpoint } from "./config.ts";
import type { RelayDataPlane, RelayLog } from "./data-plane.ts";

export interface ProxyOptions {
  readonly relay: string;
  readonly listen: Endpoint;
  readonly protocol: "tcp" | "http";
  /** Backend id -> address. */
  readonly backends: ReadonlyMap<string, Endpoint>;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
  /**
   * `http` relays: how long a client may take to send its first bytes before it gets 408 and
   * is closed; no backend connection is opened for it until then. 0 = connect at once.
   */
  readonly requestTimeoutMs?: number;
  /** Clients from one source address at once (connecting or established); 0 = no limit. */
  readonly maxConnectionsPerSource?: number;
  /** Called for every failed or timed-out connect by real traffic. Must not throw. */
  readonly onPassiveFailure: (backend: string) => void;
  readonly log: RelayLog;
}

/**
 * One client spliced to one backend. The sockets' listeners are the session's own methods,
 * bound once, so a session costs one object and a few bound functions, and nothing runs per
 * chunk of data beyond `pipe()` itself.
 */
class Session {
  readonly backend: string;
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  /** Sum of both sockets' byte counters at the last idle sweep that saw them move. */
  bytesSeen = -1;
  /** Monotonic time of the last sweep that saw bytes move. */
  activeAtMs: number;
  #open = 2;
  readonly #onGone: (session: Session) => void;

  constructor(
    backend: string,
    client: net.Socket,
    upstream: net.Socket,
    nowMs: number,
    onGone: (session: Session) => void,
  ) {
    this.backend = backend;
    this.client = client;
    this.upstream = upstream;
    this.activeAtMs = nowMs;
    this.#onGone = onGone;
    const abort = this.abort.bind(this);
    upstream.on("error", abort);
    client.on("error", abort);
    upstream.on("close", this.#upstreamClosed.bind(this));
    client.on("close", this.#clientClosed.bind(this));
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  }

  /** Bytes received from either side so far (grows whenever data moves either way). */
  bytes(): number {
    return this.client.bytesRead + this.upstream.bytesRead;
  }

  abort(): void {
    this.client.destroy();
    this.upstream.destroy();
  }

  #upstreamClosed(): void {
    this.#closed(this.client);
  }

  #clientClosed(): void {
    this.#closed(this.upstream);
  }

  #closed(other: net.Socket): void {
    this.#open -= 1;
    if (this.#open === 0) this.#onGone(this);
    // Graceful: what is still buffered for the other side gets delivered first.
    else other.end();
  }
}

/** Listener of a client's `error` until it is spliced (`this` is the socket): no closure per client. */
function destroyOnError(this: net.Socket): void {
  this.destroy();
}

/** How long a rejected HTTP client gets to read its 503 before the socket is destroyed. */
const rejectGraceMs = 2000;
/** At most one "connection limit reached" line per this interval. */
const limitLogIntervalMs = 5000;

export class ProxyDataPlane implements RelayDataPlane {
  readonly #options: ProxyOptions;
  readonly #server: net.Server;
  /** Clients accepted and not yet closed (connecting or established), with their source. */
  readonly #clients = new Map<net.Socket, string>();
  /** Open clients per source address. */
  readonly #perSource = new PerSourceCount();
  #sourceRejected = 0;
  #sourceLoggedAtMs = Number.NEGATIVE_INFINITY;
  readonly #sessions = new Set<Session>();
  readonly #forget = (session: Session) => this.#sessions.delete(session);
  readonly #clientClosed: (this: net.Socket) => void;
  /** Closes idle sessions; runs only while there are sessions. */
  #idleSweep: NodeJS.Timeout | undefined;
  #candidates: readonly string[] = [];
  #limitRejected = 0;
  #limitLoggedAtMs = Number.NEGATIVE_INFINITY;

  constructor(options: ProxyOptions) {
    this.#options = options;
    const clients = this.#clients;
    const perSource = this.#perSource;
    this.#clientClosed = function (this: net.Socket) {
      const source = clients.get(this);
      clients.delete(this);
      if (source !== undefined) perSource.close(source);
    };
    this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) =>
      this.#accept(client),
    );
  }

  start(): Promise<void> {
    const { host, port } = this.#options.listen;
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen({ host, port, backlog: 1024 }, () => {
        this.#server.off("error", reject);
        this.#server.on("error", (error) =>
          this.#options.log({
            event: "proxy-error",
            relay: this.#options.relay,
            error: error.message,
          }),
        );
        resolve();
      });
    });
  }

  /** The bound port (useful when `listen.port` is 0). */
  port(): number {
    const address = this.#server.address();
    return typeof address === "object" && address !== null
      ? address.port
      : this.#options.listen.port;
  }

  async route(candidates: readonly string[]): Promise<void> {
    this.#candidates = [...candidates];
  }

  async closeConnections(backend: string): Promise<void> {
    for (const session of this.#sessions) {
      if (session.backend !== backend) continue;
      session.upstream.destroy();
      session.client.destroy();
    }
  }

  connections(): ReadonlyMap<string, number> {
    const counts = new Map<string, number>();
    for (const session of this.#sessions) {
      counts.set(session.backend, (counts.get(session.backend) ?? 0) + 1);
    }
    return counts;
  }

  async stop(): Promise<void> {
    clearTimeout(this.#idleSweep);
    this.#idleSweep = undefined;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const client of this.#clients.keys()) client.destroy();
    for (const session of this.#sessions) session.upstream.destroy();
    await closed;
  }

  #accept(client: net.Socket): void {
    if (this.#clients.size >= this.#options.maxConnections) {
      this.#noteLimit();
      client.resetAndDestroy();
      return;
    }
    const source = client.remoteAddress ?? "";
    if (!this.#perSource.tryOpen(source, this.#options.maxConnectionsPerSource ?? 0)) {
      this.#noteSourceLimit(source);
      client.resetAndDestroy();
      return;
    }
    this.#clients.set(client, source);
    client.on("close", this.#clientClosed);
    // Until a backend is connected, the client's bytes wait in its socket buffer.
    client.pause();
    client.on("error", destroyOnError);
    const waitMs = this.#options.requestTimeoutMs ?? 0;
    if (this.#options.protocol === "http" && waitMs > 0) {
      // An HTTP client speaks first: a backend connection waits for its first bytes, so a
      // client that connects and sends nothing holds no backend connection.
      const timer = setTimeout(() => this.#answer(client, 408, "REQUEST_TIMEOUT"), waitMs);
      timer.unref();
      client.once("readable", () => {
        clearTimeout(timer);
        if (client.destroyed) return;
        if (client.readableLength === 0) {
          client.destroy(); // closed without a byte
          return;
        }
        void this.#connectFirst(client, this.#candidates);
      });
      client.once("close", () => clearTimeout(timer));
      return;
    }
    // `route()` replaces the list and never changes it, so the current one can be shared.
    void this.#connectFirst(client, this.#candidates);
  }

  async #connectFirst(client: net.Socket, candidates: readonly string[]): Promise<void> {
    for (const backend of candidates) {
      const endpoint = this.#options.backends.get(backend);
      if (!endpoint) continue;
      const upstream = await this.#connect(endpoint);
      if (client.destroyed) {
        upstream?.destroy();
        return;
      }
      if (upstream) {
        this.#splice(client, upstream, backend);
        return;
      }
      this.#options.onPassiveFailure(backend);
    }
    this.#reject(client);
  }

  /** Resolves with a connected socket, or undefined when the connect failed or timed out. */
  #connect(endpoint: Endpoint): Promise<net.Socket | undefined> {
    return new Promise((resolve) => {
      const upstream = net.connect({
        host: endpoint.host,
        port: endpoint.port,
        allowHalfOpen: true,
        noDelay: true,
      });
      const timer = setTimeout(() => fail(), this.#options.connectTimeoutMs);
      const fail = () => {
        clearTimeout(timer);
        upstream.destroy();
        resolve(undefined);
      };
      upstream.once("error", fail);
      upstream.once("connect", () => {
        clearTimeout(timer);
        upstream.off("error", fail);
        resolve(upstream);
      });
    });
  }

  #splice(client: net.Socket, upstream: net.Socket, backend: string): void {
    this.#sessions.add(new Session(backend, client, upstream, performance.now(), this.#forget));
    this.#scheduleIdleSweep();
  }

  /**
   * Idle sessions are found by a sweep comparing byte counters, not by a timer per socket:
   * Node re-arms a socket's timeout on every read and write, which is work per chunk on the
   * hot path. A session is closed between one and one and a half idle timeouts after its last
   * byte.
   */
  #scheduleIdleSweep(): void {
    const idleMs = this.#options.idleTimeoutMs;
    if (this.#idleSweep || idleMs <= 0 || this.#sessions.size === 0) return;
    this.#idleSweep = setTimeout(
      () => {
        this.#idleSweep = undefined;
        this.#sweepIdle(idleMs);
        this.#scheduleIdleSweep();
      },
      Math.max(idleMs / 2, 50),
    );
    this.#idleSweep.unref();
  }

  #sweepIdle(idleMs: number): void {
    const nowMs = performance.now();
    for (const session of this.#sessions) {
      const bytes = session.bytes();
      if (bytes !== session.bytesSeen) {
        session.bytesSeen = bytes;
        session.activeAtMs = nowMs;
      } else if (nowMs - session.activeAtMs >= idleMs) {
        session.abort();
      }
    }
  }

  #reject(client: net.Socket): void {
    if (this.#options.protocol === "tcp") {
      client.resetAndDestroy();
      return;
    }
    this.#answer(client, 503, "NO_BACKEND");
  }

  /** An HTTP error answer in the JSON error shape, then the connection closes. */
  #answer(client: net.Socket, status: 408 | 503, code: "REQUEST_TIMEOUT" | "NO_BACKEND"): void {
    if (client.destroyed) return;
    const reason = status === 408 ? "Request Timeout" : "Service Unavailable";
    const message =
      status === 408
        ? `relay ${this.#options.relay}: no request within ${this.#options.requestTimeoutMs} ms`
        : `relay ${this.#options.relay}: no backend is up`;
    const body = JSON.stringify({ error: { code, message } });
    // Read and drop the request: closing a socket with unread bytes would send a reset
    // that can overtake the answer.
    client.resume();
    client.on("end", () => client.destroy());
    client.end(
      `HTTP/1.1 ${status} ${reason}\r\n` +
        "Content-Type: application/json\r\n" +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        "Connection: close\r\n\r\n" +
        body,
    );
    setTimeout(() => client.destroy(), rejectGraceMs).unref();
  }

  /** Open client connections from `source` (for tests and status). */
  connectionsFrom(source: string): number {
    return this.#perSource.of(source);
  }

  #noteSourceLimit(source: string): void {
    this.#sourceRejected += 1;
    const nowMs = performance.now();
    if (nowMs - this.#sourceLoggedAtMs < limitLogIntervalMs) return;
    this.#options.log({
      event: "source-connection-limit",
      relay: this.#options.relay,
      source,
      maxConnectionsPerSource: this.#options.maxConnectionsPerSource,
      rejected: this.#sourceRejected,
    });
    this.#sourceLoggedAtMs = nowMs;
    this.#sourceRejected = 0;
  }

  #noteLimit(): void {
    this.#limitRejected += 1;
    const nowMs = performance.now();
    if (nowMs - this.#limitLoggedAtMs < limitLogIntervalMs) return;
    this.#options.log({
      event: "connection-limit",
      relay: this.#options.relay,
      maxConnections: this.#options.maxConnections,
      rejected: this.#limitRejected,
    });
    this.#limitLoggedAtMs = nowMs;
    this.#limitRejected = 0;
  }
}
