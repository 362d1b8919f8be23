/**
 * The S3 backup channel: one authenticated TCP protocol for everything the traffic component
 * says to its peers — streaming samples to the backup target (with acknowledgements and
 * resumable positions), reporting a failed target to the coordinator, pushing the index
 * table, and forwarding traffic queries.
 *
 * Framing: u32 big-endian body length | JSON body | HMAC-SHA256 (32 bytes). The MAC covers a
 * 64-bit frame counter (per direction, never sent) and the body. The two hello frames are
 * MACed with the cluster key and counter 0; they carry fresh nonces from which each side
 * derives a per-direction session key, so frames cannot be replayed into another connection
 * or reordered within one. A frame with a bad MAC is dropped and counted (and the connection
 * closed after a few); an oversized or unparsable frame is counted and closes the connection.
 *
 * Requests are answered strictly in order, one reply each, so a client may pipeline.
 */

import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { PerSourceCount } from "../adapters/per-source.ts";
import type { IndexTable } from "../core/traffic/index-table.ts";
import type { TrafficBucket, WireRow } from "./store.ts";

export const macBytes = 32;
export const maxFrameBodyBytes = 8 * 1024 * 1024;
/**
 * Largest frame before the handshake: a hello is under 200 bytes, so an unauthenticated
 * peer cannot make the receiver buffer megabytes before its MAC is checked.
 */
export const maxHelloFrameBytes = 4096;
/** Connections one source address may hold on a channel server (a peer needs one or two). */
export const maxConnectionsPerSource = 16;
const badMacsBeforeClose = 3;

export type ChannelMessage =
  | { readonly t: "hello"; readonly node: string; readonly nonce: string }
  | { readonly t: "position"; readonly origin: string; readonly highestSeq?: number }
  | { readonly t: "batch"; readonly origin: string; readonly rows: WireRow[] }
  | { readonly t: "ack"; readonly origin: string; readonly highestSeq: number }
  | { readonly t: "report-failed"; readonly reporter: string; readonly target: string }
  | { readonly t: "join"; readonly node: string }
  | { readonly t: "get-table" }
  | { readonly t: "table"; readonly table: IndexTable }
  | { readonly t: "table-ack"; readonly version: number }
  | {
      readonly t: "query";
      readonly origin: string;
      readonly fromMs: number;
      readonly toMs: number;
      readonly stepMs: number;
      readonly iface?: string;
    }
  | { readonly t: "query-result"; readonly buckets: TrafficBucket[] }
  | { readonly t: "error"; readonly code: string; readonly message: string };

/** Counters of rejected input, per server or client; exported for metrics and tests. */
export interface ChannelStats {
  badMac: number;
  malformed: number;
  framesIn: number;
  /**
   * Server: connections from an address that is no node's (closed before the handshake),
   * and authenticated peers that claimed a node id from another node's address.
   */
  wrongAddress: number;
  /** Server: connections closed at once because their source held too many already. */
  overLimit: number;
}

export function newChannelStats(): ChannelStats {
  return { badMac: 0, malformed: 0, framesIn: 0, wrongAddress: 0, overLimit: 0 };
}

export class ChannelError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

function mac(key: Buffer, counter: bigint, body: Buffer): Buffer {
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64BE(counter);
  return createHmac("sha256", key).update(prefix).update(body).digest();
}

/** Encodes one frame: length, body, MAC over (counter, body). */
export function encodeFrame(key: Buffer, counter: bigint, message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), "utf8");
  if (body.length > maxFrameBodyBytes) throw new ChannelError("FRAME_TOO_LARGE", "frame too large");
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length);
  return Buffer.concat([header, body, mac(key, counter, body)]);
}

/** Splits a byte stream into (body, mac) frames; throws FRAME_TOO_LARGE on a bad length. */
export class FrameDecoder {
  private buffer: Buffer = Buffer.alloc(0);
  /** Largest body accepted; the connection lowers it until the handshake is done. */
  limit = maxFrameBodyBytes;

  push(chunk: Buffer): { body: Buffer; mac: Buffer }[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const frames: { body: Buffer; mac: Buffer }[] = [];
    while (this.buffer.length >= 4) {
      const length = this.buffer.readUInt32BE(0);
      if (length > this.limit) throw new ChannelError("FRAME_TOO_LARGE", "frame too large");
      const total = 4 + length + macBytes;
      if (this.buffer.length < total) break;
      frames.push({
        body: this.buffer.subarray(4, 4 + length),
        mac: this.buffer.subarray(4 + length, total),
      });
      this.buffer = this.buffer.subarray(total);
    }
    return frames;
  }
}

function sessionKey(clusterKey: Buffer, direction: string, a: string, b: string): Buffer {
  return createHmac("sha256", clusterKey).update(`floatip-traffic ${direction} ${a} ${b}`).digest();
}

function isMessage(value: unknown): value is ChannelMessage {
  return (
    typeof value === "object" && value !== null && typeof (value as { t?: unknown }).t === "string"
  );
}

/**
 * One authenticated connection, either side. Call `handshake()` first; then `send` (server
 * replies) or `request` (client, pipelined, replies matched in order).
 */
export class ChannelConnection {
  readonly socket: Socket;
  peerId: string | undefined;
  private readonly clusterKey: Buffer;
  private readonly selfId: string;
  private readonly role: "client" | "server";
  private readonly stats: ChannelStats;
  private readonly decoder = new FrameDecoder();
  private sendKey: Buffer;
  private receiveKey: Buffer;
  private sendCounter = 0n;
  private receiveCounter = 0n;
  private badMacs = 0;
  private readonly pending: {
    resolve: (m: ChannelMessage) => void;
    reject: (e: Error) => void;
  }[] = [];
  private closedError: Error | undefined;
  private helloWaiter: ((m: ChannelMessage) => void) | undefined;
  onMessage: ((m: ChannelMessage) => void) | undefined;

  constructor(
    socket: Socket,
    role: "client" | "server",
    clusterKey: Buffer,
    selfId: string,
    stats: ChannelStats,
  ) {
    this.socket = socket;
    this.role = role;
    this.clusterKey = clusterKey;
    this.selfId = selfId;
    this.stats = stats;
    this.sendKey = clusterKey;
    this.receiveKey = clusterKey;
    this.decoder.limit = maxHelloFrameBytes;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => this.fail(new ChannelError("CHANNEL_CLOSED", "connection closed")));
  }

  private fail(error: Error): void {
    if (this.closedError) return;
    this.closedError = error;
    for (const p of this.pending.splice(0)) p.reject(error);
    this.socket.destroy();
  }

  /** Set once the connection failed or was closed; later requests reject at once. */
  get closed(): boolean {
    return this.closedError !== undefined;
  }

  close(): void {
    this.fail(new ChannelError("CHANNEL_CLOSED", "connection closed"));
  }

  private receive(chunk: Buffer): void {
    let frames: { body: Buffer; mac: Buffer }[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      this.stats.malformed++;
      this.fail(error as Error);
      return;
    }
    for (const frame of frames) {
      if (this.closedError) return;
      const expected = mac(this.receiveKey, this.receiveCounter, frame.body);
      if (!timingSafeEqual(expected, frame.mac)) {
        this.stats.badMac++;
        if (++this.badMacs >= badMacsBeforeClose || this.receiveCounter === 0n) {
          this.fail(new ChannelError("BAD_MAC", "too many frames with a bad MAC"));
        }
        continue;
      }
      this.receiveCounter++;
      let message: unknown;
      try {
        message = JSON.parse(frame.body.toString("utf8"));
      } catch {
        message = undefined;
      }
      if (!isMessage(message)) {
        this.stats.malformed++;
        this.fail(new ChannelError("MALFORMED", "malformed frame"));
        return;
      }
      this.stats.framesIn++;
      this.dispatch(message);
    }
  }

  private dispatch(message: ChannelMessage): void {
    if (this.helloWaiter) {
      const waiter = this.helloWaiter;
      this.helloWaiter = undefined;
      waiter(message);
      return;
    }
    if (this.role === "client") {
      const p = this.pending.shift();
      if (p) p.resolve(message);
      else this.stats.malformed++;
      return;
    }
    this.onMessage?.(message);
  }

  /** Exchanges hello frames and switches to the session keys; resolves with the peer's id. */
  handshake(timeoutMs: number): Promise<string> {
    const ownNonce = randomBytes(16).toString("hex");
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new ChannelError("HANDSHAKE_TIMEOUT", "no hello from peer"));
        this.close();
      }, timeoutMs);
      this.helloWaiter = (m) => {
        clearTimeout(timer);
        if (m.t !== "hello" || typeof m.node !== "string" || typeof m.nonce !== "string") {
          this.stats.malformed++;
          this.close();
          reject(new ChannelError("MALFORMED", "expected hello"));
          return;
        }
        if (this.role === "server")
          this.writeFrame({ t: "hello", node: this.selfId, nonce: ownNonce });
        const [clientNonce, serverNonce] =
          this.role === "client" ? [ownNonce, m.nonce] : [m.nonce, ownNonce];
        const c2s = sessionKey(this.clusterKey, "c2s", clientNonce, serverNonce);
        const s2c = sessionKey(this.clusterKey, "s2c", clientNonce, serverNonce);
        this.sendKey = this.role === "client" ? c2s : s2c;
        this.receiveKey = this.role === "client" ? s2c : c2s;
        this.sendCounter = 1n;
        this.receiveCounter = 1n;
        this.decoder.limit = maxFrameBodyBytes;
        this.peerId = m.node;
        resolve(m.node);
      };
      if (this.role === "client")
        this.writeFrame({ t: "hello", node: this.selfId, nonce: ownNonce });
      this.socket.once("close", () => {
        clearTimeout(timer);
        reject(this.closedError ?? new ChannelError("CHANNEL_CLOSED", "connection closed"));
      });
    });
  }

  private writeFrame(message: ChannelMessage): void {
    if (this.closedError) throw this.closedError;
    this.socket.write(encodeFrame(this.sendKey, this.sendCounter, message));
    this.sendCounter++;
  }

  /** Server side: sends a reply. */
  send(message: ChannelMessage): void {
    this.writeFrame(message);
  }

  /** Client side: sends a request; the reply is the next frame not yet claimed. */
  request(message: ChannelMessage, timeoutMs: number): Promise<ChannelMessage> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = new ChannelError("REQUEST_TIMEOUT", `no reply to ${message.t}`);
        reject(error);
        this.fail(error);
      }, timeoutMs);
      this.pending.push({
        resolve: (m) => {
          clearTimeout(timer);
          if (m.t === "error") reject(new ChannelError(m.code, m.message));
          else resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      try {
        this.writeFrame(message);
      } catch (error) {
        this.fail(error as Error);
      }
    });
  }
}

/** Opens an authenticated client connection to `host:port`. */
export async function openChannel(options: {
  readonly host: string;
  readonly port: number;
  readonly clusterKey: Buffer;
  readonly selfId: string;
  readonly stats: ChannelStats;
  readonly timeoutMs: number;
  /** Source address (this node's configured address: servers check it against its id). */
  readonly localAddress?: string;
}): Promise<ChannelConnection> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect({
      host: options.host,
      port: options.port,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new ChannelError("CONNECT_TIMEOUT", `connect to ${options.host}:${options.port}`));
    }, options.timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", (cause) => {
      clearTimeout(timer);
      reject(
        new ChannelError("CONNECT_FAILED", `connect to ${options.host}:${options.port}`, { cause }),
      );
    });
  });
  const connection = new ChannelConnection(
    socket,
    "client",
    options.clusterKey,
    options.selfId,
    options.stats,
  );
  await connection.handshake(options.timeoutMs);
  return connection;
}

/**
 * Handles one request from an authenticated peer and returns the reply. Called in arrival
 * order per connection; the next request waits for this one's reply.
 */
export type ChannelHandler = (
  peerId: string,
  message: ChannelMessage,
) => ChannelMessage | Promise<ChannelMessage>;

/** Listens for backup-channel connections; every connection must complete the handshake. */
export class ChannelServer {
  readonly stats: ChannelStats = newChannelStats();
  private readonly server: Server;
  private readonly connections = new Set<ChannelConnection>();

  constructor(options: {
    readonly clusterKey: Buffer;
    readonly selfId: string;
    readonly handler: ChannelHandler;
    readonly handshakeTimeoutMs?: number;
    /**
     * The addresses a peer id may connect from (its configured node addresses): anyone else
     * holding the cluster key cannot speak for another node. Absent: any address.
     */
    readonly addressesOf?: (peerId: string) => readonly string[] | undefined;
    /** Whether a source address is any configured node's; others are closed unheard. */
    readonly isNodeAddress?: (address: string) => boolean;
  }) {
    const perSource = new PerSourceCount();
    this.server = createServer((socket) => {
      const source = (socket.remoteAddress ?? "").replace(/^::ffff:/, "");
      if (options.isNodeAddress !== undefined && !options.isNodeAddress(source)) {
        this.stats.wrongAddress += 1;
        socket.destroy();
        return;
      }
      if (!perSource.tryOpen(source, maxConnectionsPerSource)) {
        this.stats.overLimit += 1;
        socket.destroy();
        return;
      }
      socket.once("close", () => perSource.close(source));
      const connection = new ChannelConnection(
        socket,
        "server",
        options.clusterKey,
        options.selfId,
        this.stats,
      );
      this.connections.add(connection);
      socket.on("close", () => this.connections.delete(connection));
      let queue: Promise<void> = Promise.resolve();
      // Set once the peer's address matched its claimed id (at once without `addressesOf`).
      let admitted = options.addressesOf === undefined;
      connection.onMessage = (message) => {
        queue = queue.then(async () => {
          if (!admitted) return;
          let reply: ChannelMessage;
          try {
            reply = await options.handler(connection.peerId!, message);
          } catch (error) {
            const code = (error as { code?: unknown }).code;
            reply = {
              t: "error",
              code: typeof code === "string" ? code : "INTERNAL",
              message: error instanceof Error ? error.message : String(error),
            };
          }
          try {
            connection.send(reply);
          } catch {
            // Peer went away; nothing to reply to.
          }
        });
      };
      connection.handshake(options.handshakeTimeoutMs ?? 2000).then(
        (peerId) => {
          if (!options.addressesOf) return;
          const from = (socket.remoteAddress ?? "").replace(/^::ffff:/, "");
          if (options.addressesOf(peerId)?.includes(from)) {
            admitted = true;
            return;
          }
          this.stats.wrongAddress += 1;
          connection.close();
        },
        () => {
          // Failed handshakes are counted by the connection (bad MAC / malformed).
        },
      );
    });
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        const address = this.server.address();
        resolve(typeof address === "object" && address ? address.port : port);
      });
    });
  }

  close(): Promise<void> {
    for (const c of this.connections) c.close();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
