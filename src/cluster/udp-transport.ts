/**
 * UDP transport between agents: authenticated, replay-protected datagrams to configured peers.
 *
 * The core hands `send`/`broadcast` plain JSON-serialisable objects and receives them back
 * through `onMessage`; it validates payload shape itself. Delivery is best effort, like UDP:
 * nothing is retried, and `send` never throws (failures are counted and logged).
 *
 * Every received datagram passes, in order: decode + MAC (codec), sender known and source
 * address matching its configured address, addressed to this node, replay window. Only then
 * is `onMessage` called, synchronously from the socket's event. An exception thrown by
 * `onMessage` is a core bug and is not caught here.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import {
  CodecError,
  DROP_REASONS,
  type DropReason,
  decodeDatagram,
  encodeDatagram,
} from "./codec.ts";
import { ReplayGuard } from "./replay-guard.ts";

export interface PeerAddress {
  readonly address: string;
  readonly port: number;
}

export type TransportLog = (
  level: "warn" | "info",
  msg: string,
  fields: Record<string, unknown>,
) => void;

export interface UdpTransportOptions {
  readonly cluster: string;
  readonly selfId: string;
  readonly key: Buffer;
  readonly bind: PeerAddress;
  /** Every configured node, possibly including this one (it is skipped when sending). */
  readonly peers: ReadonlyMap<string, PeerAddress>;
  /** Positive integer <= 2^53, larger than any earlier incarnation of this node (boot time in ms). */
  readonly incarnation: number;
  readonly onMessage: (from: string, payload: unknown) => void;
  readonly log?: TransportLog;
  /** Wall clock for log rate limiting only; injectable so the limiter can be tested. */
  readonly nowMs?: () => number;
}

export interface TransportStats {
  readonly sent: number;
  readonly received: number;
  readonly dropped: Record<DropReason, number>;
  readonly sendErrors: number;
}

/** At most one log line per drop reason (and for send errors) per interval. */
export const DROP_LOG_INTERVAL_MS = 10_000;

interface LogGate {
  lastAtMs: number | undefined;
  sinceLast: number;
}

/** `::ffff:198.18.0.1` and `198.18.0.1` are the same IPv4 sender on a dual-stack socket. */
function normaliseAddress(address: string): string {
  return address.toLowerCase().startsWith("::ffff:") && address.includes(".")
    ? address.slice(7)
    : address.toLowerCase();
}

export class UdpTransport {
  readonly #options: UdpTransportOptions;
  readonly #guard = new ReplayGuard();
  readonly #nowMs: () => number;
  #peers: ReadonlyMap<string, PeerAddress>;
  #socket: Socket | undefined;
  #closed = false;
  #seq = 0;
  #sent = 0;
  #received = 0;
  #sendErrors = 0;
  readonly #dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<
    DropReason,
    number
  >;
  readonly #gates = new Map<string, LogGate>();

  constructor(options: UdpTransportOptions) {
    this.#options = options;
    this.#peers = options.peers;
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** Binds the socket; resolves once it listens, rejects (with the socket error) otherwise. */
  start(): Promise<void> {
    if (this.#socket !== undefined || this.#closed) {
      return Promise.reject(new Error("UdpTransport.start called twice or after close"));
    }
    const { address, port } = this.#options.bind;
    const socket = createSocket({ type: isIPv6(address) ? "udp6" : "udp4" });
    this.#socket = socket;
    return new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => {
        this.#socket = undefined;
        socket.close();
        reject(error);
      };
      socket.once("error", onError);
      socket.bind(port, address, () => {
        socket.off("error", onError);
        // After binding, socket errors (ICMP unreachable on some kernels) must not crash.
        socket.on("error", (error) => this.#sendFailed("socket", error));
        socket.on("message", (datagram, remote) => this.#receive(datagram, remote));
        resolve();
      });
    });
  }

  /** The address actually bound (useful with port 0). */
  boundAddress(): PeerAddress {
    const info = this.#socket?.address();
    if (info === undefined) throw new Error("UdpTransport is not started");
    return { address: info.address, port: info.port };
  }

  send(to: string, payload: unknown): void {
    const peer = this.#peers.get(to);
    if (peer === undefined || to === this.#options.selfId) {
      this.#sendFailed(to, new Error(`no configured peer ${JSON.stringify(to)}`));
      return;
    }
    this.#sendTo(to, peer, payload);
  }

  /** Sends `payload` to every configured peer except this node, each in its own datagram. */
  broadcast(payload: unknown): void {
    for (const [id, peer] of this.#peers) {
      if (id !== this.#options.selfId) this.#sendTo(id, peer, payload);
    }
  }

  stats(): TransportStats {
    return {
      sent: this.#sent,
      received: this.#received,
      dropped: { ...this.#dropped },
      sendErrors: this.#sendErrors,
    };
  }

  /**
   * Replaces the peer table (config reload). Replay state of removed peers is forgotten;
   * peers that stay keep their windows, so a reload does not reopen replays.
   */
  updatePeers(peers: ReadonlyMap<string, PeerAddress>): void {
    for (const id of this.#peers.keys()) {
      if (!peers.has(id)) this.#guard.forget(id);
    }
    this.#peers = peers;
  }

  close(): Promise<void> {
    this.#closed = true;
    const socket = this.#socket;
    this.#socket = undefined;
    this.#flushLogs();
    if (socket === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  #sendTo(to: string, peer: PeerAddress, payload: unknown): void {
    const socket = this.#socket;
    if (socket === undefined) {
      this.#sendFailed(to, new Error("transport is not running"));
      return;
    }
    let datagram: Buffer;
    try {
      datagram = encodeDatagram(
        this.#options.key,
        {
          cluster: this.#options.cluster,
          from: this.#options.selfId,
          to,
          incarnation: this.#options.incarnation,
          seq: this.#seq + 1,
        },
        payload,
      );
    } catch (error) {
      if (!(error instanceof CodecError)) throw error;
      this.#sendFailed(to, error);
      return;
    }
    this.#seq += 1;
    try {
      socket.send(datagram, peer.port, peer.address, (error) => {
        if (error) this.#sendFailed(to, error);
        else this.#sent += 1;
      });
    } catch (error) {
      this.#sendFailed(to, error);
    }
  }

  #receive(datagram: Buffer, remote: RemoteInfo): void {
    const decoded = decodeDatagram(this.#options.key, this.#options.cluster, datagram);
    if (!decoded.ok) {
      this.#drop(decoded.reason, remote);
      return;
    }
    const { from, to, incarnation, seq } = decoded.header;
    const peer = this.#peers.get(from);
    if (
      peer === undefined ||
      from === this.#options.selfId ||
      normaliseAddress(peer.address) !== normaliseAddress(remote.address)
    ) {
      this.#drop("unknown-sender", remote, from);
      return;
    }
    if (to !== this.#options.selfId) {
      this.#drop("misdirected", remote, from);
      return;
    }
    const verdict = this.#guard.check(from, incarnation, seq);
    if (verdict !== undefined) {
      this.#drop(verdict, remote, from);
      return;
    }
    this.#received += 1;
    this.#options.onMessage(from, decoded.payload);
  }

  #drop(reason: DropReason, remote: RemoteInfo, claimedFrom?: string): void {
    this.#dropped[reason] += 1;
    this.#logLimited(`drop:${reason}`, "datagram dropped", {
      reason,
      source: `${remote.address}:${remote.port}`,
      ...(claimedFrom === undefined ? {} : { claimedFrom }),
    });
  }

  #sendFailed(to: string, error: unknown): void {
    this.#sendErrors += 1;
    const code = (error as { code?: unknown })?.code;
    this.#logLimited("send-error", "datagram not sent", {
      to,
      code: typeof code === "string" ? code : undefined,
      error: error instanceof Error ? error.message : String(error),
    });
  }

  /** Logs the first event of a kind, then at most one line per interval with the count since. */
  #logLimited(kind: string, msg: string, fields: Record<string, unknown>): void {
    const log = this.#options.log;
    if (log === undefined) return;
    const gate = this.#gates.get(kind) ?? { lastAtMs: undefined, sinceLast: 0 };
    this.#gates.set(kind, gate);
    gate.sinceLast += 1;
    const now = this.#nowMs();
    if (gate.lastAtMs !== undefined && now - gate.lastAtMs < DROP_LOG_INTERVAL_MS) return;
    log("warn", msg, { ...fields, count: gate.sinceLast, intervalMs: DROP_LOG_INTERVAL_MS });
    gate.lastAtMs = now;
    gate.sinceLast = 0;
  }

  /** On close, reports events suppressed since the last line so no count is lost. */
  #flushLogs(): void {
    const log = this.#options.log;
    if (log === undefined) return;
    for (const [kind, gate] of this.#gates) {
      if (gate.sinceLast > 0)
        log("info", "suppressed events at close", { kind, count: gate.sinceLast });
      gate.sinceLast = 0;
    }
  }
}
