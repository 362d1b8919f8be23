/**
 * UDP transport between agents: authenticated, replay-protected datagrams to configured peers.
 *
 * The core hands `send`/`broadcast` plain JSON-serialisable objects and receives them back
 * through `onMessage`; it validates payload shape itself. Delivery is best effort, like UDP:
 * nothing is retried, and `send` never throws (failures are counted and logged).
 *
 * Every received datagram passes, in order: source address is a configured node's (before
 * any parsing or crypto, so a flood from elsewhere costs one map lookup per datagram); the
 * header parsed, with the claimed sender one configured at that source address and the
 * recipient this node (still before the MAC: a forged datagram that fails either costs no
 * MAC computation); the MAC (codec); replay window; freshness (it echoes this process's
 * incarnation). Only then is
 * `onMessage` called, synchronously from the socket's event. An exception thrown by
 * `onMessage` is a core bug and is not caught here.
 *
 * Freshness: every datagram carries the recipient's incarnation as the sender last learned it
 * from an authenticated datagram of the recipient. One that echoes anything else (0 before
 * the sender heard from us; an earlier incarnation of ours, e.g. recorded before this process
 * started) teaches us the sender's incarnation but is not delivered. So after a restart, a
 * peer's first datagram is dropped as "not-fresh" and its next ones, sent after it heard our
 * first heartbeat, are delivered; a recording of a dead node's heartbeats replayed to a
 * restarted node delivers nothing.
 *
 * Reading: `receive: as-they-come` (default) reads through Node's dgram socket, each datagram
 * as libuv sees it. `receive: on-tick` binds a socket of the native addon that libuv never
 * watches (`tick-socket.ts`): datagrams queue in the kernel until the control loop calls
 * `drain()` on its own timer, so a peer's heartbeat wakes nobody (the cost of an idle agent
 * on a paravirtualised machine is the wake-ups, see `bench:idle`).
 *
 * Sending: both modes send through the native addon's `sendto` (on the descriptor of Node's
 * socket with `as-they-come`), which reads the clock once more right before the system call:
 * a datagram the control loop's gate let go is withheld if the process was stopped since
 * (SendGate). Without the addon, Node's send.
 */
import { createSocket, type Socket, type SocketOptions } from "node:dgram";
import { lookup as dnsLookup } from "node:dns";
import { readFileSync } from "node:fs";
import { isIP, isIPv6 } from "node:net";
import {
  CodecError,
  DROP_REASONS,
  type DropReason,
  decodeDatagram,
  encodeSerialized,
  serializePayload,
} from "./codec.ts";
import { ReplayGuard } from "./replay-guard.ts";
import { type FdSender, fdSender, openTickSocket, type TickSocket } from "./tick-socket.ts";

/**
 * dgram's address lookup, answered at once for the IP literals peers are configured with.
 * Node's default (dns.lookup) answers even a literal on the next tick, so a datagram left one
 * tick after `send()`: a process stopped in that gap (SIGSTOP, a frozen VM) sent, on waking,
 * a heartbeat decided before the pause ahead of the stall handling that must come first.
 */
function literalLookup(
  hostname: string,
  family: unknown,
  callback: (error: Error | null, address: string, family: number) => void,
): void {
  const version = isIP(hostname);
  if (version !== 0) {
    callback(null, hostname, version);
    return;
  }
  const wanted = typeof family === "number" ? family : 0;
  dnsLookup(hostname, { family: wanted }, (error, address, found) =>
    callback(error, address, found),
  );
}

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
  /**
   * Learn every peer's incarnation without heartbeats (`arbiter: etcd`, where nodes send each
   * other little): greet every peer when started, and answer a datagram dropped as not-fresh
   * with a greeting (at most one per peer per 200 ms), so that both sides echo each other's
   * incarnation from then on and the next datagram is delivered. Greetings are not delivered.
   * Off: the heartbeats teach the incarnations (the embedded election).
   */
  readonly greet?: boolean;
  /** How datagrams are read (see the module comment); default `as-they-come`. */
  readonly receive?: ReceiveMode;
}

/**
 * Asked right before each datagram a step of the control loop sends (`ControlLoop`): a process
 * stopped between composing a datagram and sending it must not send it on waking, from a node
 * whose lease may have run out meanwhile.
 */
export interface SendGate {
  /** Whether this datagram may go (false: withheld; the gate counts it). */
  open(): boolean;
  /**
   * How long after `open()` the kernel may still take it. The clock is read again right before
   * `sendto` (in the native addon, so the encoding and Node's send path are covered too): past
   * it, the process was stopped in between, and the datagram is withheld.
   */
  readonly withinMs: number;
  /** A datagram `open()` let go was withheld at the kernel call for that reason. */
  late(): void;
}

/** The descriptor of a socket Node's dgram owns: its state's handle (no public accessor). */
function dgramFd(socket: Socket): number | undefined {
  const state = Object.getOwnPropertySymbols(socket).find((k) => k.description === "state symbol");
  const handle =
    state && (socket as unknown as Record<symbol, { handle?: { fd?: unknown } }>)[state];
  const fd = handle?.handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}

/** `as-they-come`: libuv reads each datagram as it arrives; `on-tick`: `drain()` reads them. */
export type ReceiveMode = "as-they-come" | "on-tick";

/** Most datagrams one `drain()` reads: a stall's backlog at `lan` rates is far below it. */
export const DRAIN_MAX = 4096;

interface Remote {
  readonly address: string;
  readonly port: number;
}

/** The payload of a greeting (see `greet`). */
const helloPayload = { type: "hello" } as const;
const helloEveryMs = 200;

export interface TransportStats {
  readonly sent: number;
  readonly received: number;
  readonly dropped: Record<DropReason, number>;
  readonly sendErrors: number;
}

/**
 * Receive buffer asked of the kernel: a stall of a second at `lan` rates, or a few tables of a
 * thousand VIPs (up to 60 KB each), must fit. The kernel caps it at net.core.rmem_max; the
 * effective size is in `receiveBufferBytes()` and the start log line.
 */
export const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

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
  readonly #greetedAt = new Map<string, number>();
  #peers: ReadonlyMap<string, PeerAddress>;
  /**
   * Source addresses of configured nodes, as the socket reports them (both IPv4 forms), each
   * with the ids (as wire bytes) configured at it.
   */
  #memberSources = new Map<string, readonly Buffer[]>();
  readonly #selfIdBytes: Buffer;
  /** The ids configured at the source of the datagram being decoded (read by #screen). */
  #idsAtSource: readonly Buffer[] = [];
  /** The pre-MAC header check, made once: no closure or string per datagram. */
  readonly #screen = (from: Buffer, to: Buffer): DropReason | undefined => {
    if (!this.#idsAtSource.some((id) => id.equals(from))) return "unknown-sender";
    return to.equals(this.#selfIdBytes) ? undefined : "misdirected";
  };
  /** Each peer's incarnation as learned from its authenticated datagrams: what we echo. */
  readonly #peerIncarnations = new Map<string, number>();
  #socket: Socket | undefined;
  #tickSocket: TickSocket | undefined;
  /** Sends with the clock check at the system call (see SendGate); undefined: Node's send. */
  #sender: FdSender | undefined;
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
    this.#memberSources = memberSources(options.peers, options.selfId);
    this.#selfIdBytes = Buffer.from(options.selfId, "utf8");
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** Binds the socket; resolves once it listens, rejects (with the socket error) otherwise. */
  start(): Promise<void> {
    if (this.#socket !== undefined || this.#tickSocket !== undefined || this.#closed) {
      return Promise.reject(new Error("UdpTransport.start called twice or after close"));
    }
    const { address, port } = this.#options.bind;
    if (this.#options.receive === "on-tick") {
      try {
        this.#tickSocket = openTickSocket(address, port, RECEIVE_BUFFER_BYTES);
      } catch (error) {
        return Promise.reject(error);
      }
      this.#sender = this.#tickSocket;
      if (this.#options.greet) this.broadcast(helloPayload);
      return Promise.resolve();
    }
    const socket = createSocket({
      type: isIPv6(address) ? "udp6" : "udp4",
      lookup: literalLookup as NonNullable<SocketOptions["lookup"]>,
    });
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
        try {
          socket.setRecvBufferSize(RECEIVE_BUFFER_BYTES);
        } catch {
          // Refused (unprivileged, a tight rmem_max): the kernel's default stays; the effective
          // size is reported either way.
        }
        // Sends go through the addon on the socket's descriptor (libuv still reads it); without
        // the addon, or if Node's internals change, through Node's send.
        const fd = dgramFd(socket);
        this.#sender = fd === undefined ? undefined : fdSender(fd);
        // After binding, socket errors (ICMP unreachable on some kernels) must not crash.
        socket.on("error", (error) => this.#sendFailed("socket", error));
        socket.on("message", (datagram, remote) => this.#receive(datagram, remote));
        if (this.#options.greet) this.broadcast(helloPayload);
        resolve();
      });
    });
  }

  /** The address actually bound (useful with port 0). */
  boundAddress(): PeerAddress {
    if (this.#tickSocket !== undefined) {
      return { address: this.#options.bind.address, port: this.#tickSocket.port };
    }
    const info = this.#socket?.address();
    if (info === undefined) throw new Error("UdpTransport is not started");
    return { address: info.address, port: info.port };
  }

  /** Sends `payload` to peer `to`; `gate`, when given, is asked right before (SendGate). */
  send(to: string, payload: unknown, gate?: SendGate): void {
    const peer = this.#peers.get(to);
    if (peer === undefined || to === this.#options.selfId) {
      this.#sendFailed(to, new Error(`no configured peer ${JSON.stringify(to)}`));
      return;
    }
    const json = serialize(payload);
    if (typeof json === "string") this.#sendTo(to, peer, json, gate);
    else this.#sendFailed(to, json);
  }

  /**
   * Sends `payload` to every configured peer except this node, each in its own datagram (the
   * JSON is made once). `gate` is asked before each datagram; false withholds that one
   * (`ControlLoop` answers false for the rest of a broadcast interrupted by a stall, and
   * counts each).
   */
  broadcast(payload: unknown, gate?: SendGate): void {
    const json = serialize(payload);
    for (const [id, peer] of this.#peers) {
      if (id === this.#options.selfId) continue;
      if (typeof json === "string") this.#sendTo(id, peer, json, gate);
      else this.#sendFailed(id, json);
    }
  }

  /**
   * `receive: on-tick`: reads every queued datagram (at most DRAIN_MAX) and delivers each as
   * a datagram event would have; the number read. A read error is logged and ends the drain
   * (the next one tries again); nothing here throws. With `as-they-come`, 0.
   */
  drain(): number {
    const socket = this.#tickSocket;
    if (socket === undefined) return 0;
    let batch: ReturnType<TickSocket["drain"]>;
    try {
      batch = socket.drain(DRAIN_MAX);
    } catch (error) {
      this.#logLimited("receive-error", "datagrams not read", {
        error: error instanceof Error ? error.message : String(error),
      });
      return 0;
    }
    for (const [datagram, address, port] of batch) this.#receive(datagram, { address, port });
    return batch.length;
  }

  /** The socket's effective receive buffer in bytes (as the kernel reports it). */
  receiveBufferBytes(): number | undefined {
    if (this.#tickSocket !== undefined) return this.#tickSocket.receiveBufferBytes();
    try {
      return this.#socket?.getRecvBufferSize();
    } catch {
      return undefined;
    }
  }

  /**
   * Datagrams the kernel dropped for this socket (receive buffer full, or memory), from
   * /proc/net/udp(6) of the socket's network namespace; undefined when it cannot be read.
   * Reads a file: call it for status and metrics, not per datagram.
   */
  kernelDrops(): number | undefined {
    if (this.#tickSocket !== undefined) {
      return readKernelDrops(this.#options.bind.address, this.#tickSocket.port);
    }
    const socket = this.#socket;
    if (socket === undefined) return undefined;
    const { address, port } = socket.address();
    return readKernelDrops(address, port);
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
      if (!peers.has(id)) {
        this.#guard.forget(id);
        this.#peerIncarnations.delete(id);
      }
    }
    this.#peers = peers;
    this.#memberSources = memberSources(peers, this.#options.selfId);
  }

  close(): Promise<void> {
    this.#closed = true;
    const socket = this.#socket;
    this.#socket = undefined;
    this.#sender = undefined; // before the descriptor closes: its number may be reused
    this.#tickSocket?.close();
    this.#tickSocket = undefined;
    this.#flushLogs();
    if (socket === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  #sendTo(to: string, peer: PeerAddress, json: string, gate?: SendGate): void {
    const socket = this.#socket;
    const tickSocket = this.#tickSocket;
    if (socket === undefined && tickSocket === undefined) {
      this.#sendFailed(to, new Error("transport is not running"));
      return;
    }
    let datagram: Buffer;
    try {
      datagram = encodeSerialized(
        this.#options.key,
        {
          cluster: this.#options.cluster,
          from: this.#options.selfId,
          to,
          incarnation: this.#options.incarnation,
          seq: this.#seq + 1,
          echo: this.#peerIncarnations.get(to) ?? 0,
        },
        json,
      );
    } catch (error) {
      if (!(error instanceof CodecError)) throw error;
      this.#sendFailed(to, error);
      return;
    }
    // Asked after the encoding, as close to the system call as JavaScript gets.
    if (gate !== undefined && !gate.open()) return;
    this.#seq += 1;
    const sender = this.#sender;
    // While Node's send holds datagrams (the buffer was full), later ones queue behind them:
    // sent around the queue they would arrive first, and a queue longer than the replay
    // window would make the peer drop the older ones as replays.
    if (sender !== undefined && (socket === undefined || socket.getSendQueueCount() === 0)) {
      const notAfterMs = gate === undefined ? undefined : sender.monotonicMs() + gate.withinMs;
      const failure = sender.send(datagram, peer.address, peer.port, notAfterMs);
      if (failure === undefined) this.#sent += 1;
      else if (failure === "LATE") gate?.late();
      else if (failure !== "EAGAIN" || socket === undefined) {
        this.#sendFailed(to, Object.assign(new Error(`sendto: ${failure}`), { code: failure }));
      } else this.#queue(to, socket, datagram, peer); // send buffer full: libuv queues it
      return;
    }
    // Without the addon (or behind its queue), Node's send: unguarded from here to its
    // system call.
    if (socket !== undefined) this.#queue(to, socket, datagram, peer);
  }

  /** Node's send: libuv sends at once, or queues the datagram while the send buffer is full. */
  #queue(to: string, socket: Socket, datagram: Buffer, peer: PeerAddress): void {
    try {
      // No completion callback on the heartbeat path (it costs a closure and a tick per
      // datagram): a failed send surfaces as the socket's 'error' event (#sendFailed).
      socket.send(datagram, peer.port, peer.address);
      this.#sent += 1;
    } catch (error) {
      this.#sendFailed(to, error);
    }
  }

  #receive(datagram: Buffer, remote: Remote): void {
    const idsAtSource = this.#memberSources.get(remote.address);
    if (idsAtSource === undefined) {
      this.#drop("non-member", remote);
      return;
    }
    this.#idsAtSource = idsAtSource;
    const decoded = decodeDatagram(
      this.#options.key,
      this.#options.cluster,
      datagram,
      this.#screen,
    );
    if (!decoded.ok) {
      this.#drop(decoded.reason, remote);
      return;
    }
    const { from, to, incarnation, seq, echo } = decoded.header;
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
    this.#peerIncarnations.set(from, incarnation);
    if (echo !== this.#options.incarnation) {
      this.#drop("not-fresh", remote, from);
      if (this.#options.greet) this.#greet(from);
      return;
    }
    this.#received += 1;
    if (this.#options.greet && isHello(decoded.payload)) return;
    this.#options.onMessage(from, decoded.payload);
  }

  /** Answers a peer that does not know our incarnation yet (rate-limited per peer). */
  #greet(to: string): void {
    const now = this.#nowMs();
    if (now - (this.#greetedAt.get(to) ?? Number.NEGATIVE_INFINITY) < helloEveryMs) return;
    this.#greetedAt.set(to, now);
    this.send(to, helloPayload);
  }

  #drop(reason: DropReason, remote: Remote, claimedFrom?: string): void {
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

/** The source addresses a configured peer's datagrams can show: as configured and v4-mapped. */
function memberSources(
  peers: ReadonlyMap<string, PeerAddress>,
  selfId: string,
): Map<string, readonly Buffer[]> {
  const sources = new Map<string, Buffer[]>();
  const add = (source: string, id: Buffer) => {
    const ids = sources.get(source) ?? [];
    ids.push(id);
    sources.set(source, ids);
  };
  for (const [id, peer] of peers) {
    if (id === selfId) continue;
    const address = normaliseAddress(peer.address);
    const idBytes = Buffer.from(id, "utf8");
    add(address, idBytes);
    if (!isIPv6(address)) add(`::ffff:${address}`, idBytes);
  }
  return sources;
}

/**
 * The `drops` column of this socket's line in /proc/net/udp or /proc/net/udp6 (local address
 * and port in the kernel's hex, little-endian per 32-bit word for the address).
 */
export function readKernelDrops(address: string, port: number): number | undefined {
  const file = isIPv6(address) ? "/proc/net/udp6" : "/proc/net/udp";
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  return kernelDropsFrom(text, address, port);
}

/** Parses /proc/net/udp(6) text; exported for tests. */
export function kernelDropsFrom(text: string, address: string, port: number): number | undefined {
  const portHex = port.toString(16).toUpperCase().padStart(4, "0");
  const wanted = isIPv6(address) ? undefined : procIPv4(address);
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 13) continue;
    const [localAddress, localPort] = (fields[1] ?? "").split(":");
    if (localPort !== portHex) continue;
    // IPv6 sockets: the port identifies ours (one agent per node and network namespace).
    if (wanted !== undefined && localAddress !== wanted && localAddress !== "00000000") continue;
    const drops = Number(fields[12]);
    return Number.isFinite(drops) ? drops : undefined;
  }
  return undefined;
}

function procIPv4(address: string): string {
  return address
    .split(".")
    .reverse()
    .map((octet) => Number(octet).toString(16).toUpperCase().padStart(2, "0"))
    .join("");
}

function isHello(payload: unknown): boolean {
  return (
    typeof payload === "object" &&
    payload !== null &&
    (payload as { type?: unknown }).type === helloPayload.type &&
    Object.keys(payload).length === 1
  );
}

/** The payload's JSON, or the error a send to each recipient fails with. */
function serialize(payload: unknown): string | CodecError {
  try {
    return serializePayload(payload);
  } catch (error) {
    if (!(error instanceof CodecError)) throw error;
    return error;
  }
}
