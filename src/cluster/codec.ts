/**
 * Wire format of the cluster transport (heartbeats, election messages).
 *
 * Layout, version 2 (all integers big-endian):
 *
 *   "FIP"            3 bytes   magic
 *   version          u8        = 2
 *   cluster length   u8        then that many UTF-8 bytes (1..255)
 *   sender length    u8        then that many UTF-8 bytes (1..255)
 *   recipient length u8        then that many UTF-8 bytes (1..255)
 *   incarnation      u64       1..2^53, chosen once per process start
 *   seq              u64       1..2^53, per-incarnation counter
 *   echo             u64       0..2^53, the recipient's incarnation as the sender last heard it
 *                              (0: not heard yet)
 *   payload length   u32       then that many bytes of UTF-8 JSON
 *   mac              32 bytes  HMAC-SHA256(key, every byte before it)
 *
 * The recipient is authenticated so that a unicast message (a vote granted to one candidate)
 * cannot be captured and replayed to another node, whose replay window has never seen that
 * sequence number. The echo ties a datagram to the recipient's current process: a datagram
 * recorded before the recipient restarted carries its old incarnation, and the transport
 * delivers nothing that does not echo the current one (the replay window alone lives in
 * memory, so a restarted recipient would otherwise accept every recorded datagram once).
 *
 * Version 1 (no echo) is refused as "bad-version": nodes of both versions cannot form one
 * cluster, so a wire change is an upgrade of all nodes, not a rolling one.
 *
 * The codec is pure: no sockets, no clocks (the MAC runs in the native addon when there is
 * one, `mac.ts`). Replay protection lives in `replay-guard.ts` and sender checks in the
 * transport, which both add their own drop reasons.
 */
import { MAC_BYTES, macFor } from "./mac.ts";

/** Largest datagram we send or accept: below the 65,507-byte UDP limit, with room to spare. */
export const DATAGRAM_BYTES_MAX = 60 * 1024;
export const WIRE_VERSION = 2;
/** Incarnations and sequence numbers must stay exact as JavaScript numbers. */
export const COUNTER_MAX = 2 ** 53;

const MAGIC = Buffer.from("FIP", "latin1");
const NAME_BYTES_MAX = 255;
/** magic + version + 3 name lengths + 3 counters + payload length. */
const FIXED_BYTES = MAGIC.length + 1 + 3 + 8 + 8 + 8 + 4;

export interface DatagramHeader {
  readonly cluster: string;
  readonly from: string;
  /** Node id the datagram is addressed to; the receiver drops it unless it is its own id. */
  readonly to: string;
  readonly incarnation: number;
  readonly seq: number;
  /** The recipient's incarnation as the sender knows it; 0 when it has not heard it yet. */
  readonly echo: number;
}

/**
 * Why an incoming datagram was dropped. The codec produces the format reasons; the replay
 * guard produces "replay" and "stale-incarnation"; the transport produces "non-member" (the
 * source address is no configured node's, checked before any parsing), "unknown-sender",
 * "misdirected" and "not-fresh" (authentic, but it does not echo the receiver's current
 * incarnation: recorded before a restart, or sent before the sender heard this process).
 */
export type DropReason =
  | "truncated"
  | "bad-magic"
  | "bad-version"
  | "bad-mac"
  | "foreign-cluster"
  | "malformed"
  | "too-large"
  | "replay"
  | "stale-incarnation"
  | "non-member"
  | "unknown-sender"
  | "misdirected"
  | "not-fresh";

export const DROP_REASONS: readonly DropReason[] = [
  "truncated",
  "bad-magic",
  "bad-version",
  "bad-mac",
  "foreign-cluster",
  "malformed",
  "too-large",
  "replay",
  "stale-incarnation",
  "non-member",
  "unknown-sender",
  "misdirected",
  "not-fresh",
];

export type DecodeResult =
  | { readonly ok: true; readonly header: DatagramHeader; readonly payload: unknown }
  | { readonly ok: false; readonly reason: DropReason };

export type CodecErrorCode = "INVALID_HEADER" | "PAYLOAD_NOT_JSON" | "DATAGRAM_TOO_LARGE";

/** Thrown by `encodeDatagram` only: outgoing data is ours, so a bad value is a caller bug. */
export class CodecError extends Error {
  readonly code: CodecErrorCode;
  constructor(code: CodecErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CodecError";
    this.code = code;
  }
}

function isCounter(value: number): boolean {
  return Number.isInteger(value) && value >= 1 && value <= COUNTER_MAX;
}

/**
 * UTF-8 of the cluster's and nodes' names, the same few every round; only names `nameBytes`
 * accepted are kept (never written to: they are copied into datagrams and compared).
 */
const names = new Map<string, Buffer>();

function nameBytes(field: string, value: string): Buffer {
  const known = names.get(value);
  if (known !== undefined) return known;
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length < 1 || bytes.length > NAME_BYTES_MAX || bytes.toString("utf8") !== value) {
    throw new CodecError(
      "INVALID_HEADER",
      `header.${field} must be 1..${NAME_BYTES_MAX} bytes of valid UTF-8, got ${JSON.stringify(value)}`,
    );
  }
  if (names.size >= 1024) names.clear();
  names.set(value, bytes);
  return bytes;
}

/** The cluster name's bytes a datagram must carry (kept once `nameBytes` accepted them). */
function clusterName(cluster: string): Buffer {
  try {
    return nameBytes("cluster", cluster);
  } catch {
    return Buffer.from(cluster, "utf8"); // not a valid name (the encoder refuses to send it)
  }
}

/** A counter (at most 2^53) as 8 bytes big-endian, without a BigInt per field. */
function writeCounter(out: Buffer, value: number, at: number): number {
  out.writeUInt32BE(Math.floor(value / 2 ** 32), at);
  return out.writeUInt32BE(value >>> 0, at + 4);
}

/**
 * Builds one authenticated datagram. Called by the transport once per outgoing message.
 * Throws `CodecError` if the header is out of range, the payload is not JSON-serialisable,
 * or the result would exceed `DATAGRAM_BYTES_MAX`.
 */
export function encodeDatagram(key: Buffer, header: DatagramHeader, payload: unknown): Buffer {
  return encodeSerialized(key, header, serializePayload(payload));
}

/**
 * A payload's JSON, once for every datagram that carries it (a broadcast sends the same
 * payload to each peer under its own header). Throws `CodecError` PAYLOAD_NOT_JSON.
 */
export function serializePayload(payload: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (cause) {
    throw new CodecError("PAYLOAD_NOT_JSON", "payload is not JSON-serialisable", { cause });
  }
  if (json === undefined) {
    throw new CodecError("PAYLOAD_NOT_JSON", `payload of type ${typeof payload} has no JSON form`);
  }
  return json;
}

/** `encodeDatagram` for a payload `serializePayload` already turned into JSON. */
export function encodeSerialized(key: Buffer, header: DatagramHeader, json: string): Buffer {
  const cluster = nameBytes("cluster", header.cluster);
  const from = nameBytes("from", header.from);
  const to = nameBytes("to", header.to);
  if (!isCounter(header.incarnation) || !isCounter(header.seq)) {
    throw new CodecError(
      "INVALID_HEADER",
      `header.incarnation and header.seq must be integers in 1..2^53, got ${header.incarnation} and ${header.seq}`,
    );
  }
  if (header.echo !== 0 && !isCounter(header.echo)) {
    throw new CodecError(
      "INVALID_HEADER",
      `header.echo must be 0 or an integer in 1..2^53, got ${header.echo}`,
    );
  }
  const bodyLength = Buffer.byteLength(json, "utf8");
  const total = FIXED_BYTES + cluster.length + from.length + to.length + bodyLength + MAC_BYTES;
  if (total > DATAGRAM_BYTES_MAX) {
    throw new CodecError(
      "DATAGRAM_TOO_LARGE",
      `datagram would be ${total} bytes, more than the ${DATAGRAM_BYTES_MAX}-byte limit`,
    );
  }
  // Every byte is written below: the header, the JSON straight from the string, the MAC.
  const out = Buffer.allocUnsafe(total);
  let at = MAGIC.copy(out, 0);
  at = out.writeUInt8(WIRE_VERSION, at);
  for (const name of [cluster, from, to]) {
    at = out.writeUInt8(name.length, at);
    at += name.copy(out, at);
  }
  at = writeCounter(out, header.incarnation, at);
  at = writeCounter(out, header.seq, at);
  at = writeCounter(out, header.echo, at);
  at = out.writeUInt32BE(bodyLength, at);
  at += out.write(json, at, "utf8");
  macFor(key).sign(out, at, out, at);
  return out;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads length-prefixed fields with bounds checks; `undefined` means the datagram ran out. */
class Reader {
  at = 0;
  readonly bytes: Buffer;
  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }
  take(length: number): Buffer | undefined {
    if (this.at + length > this.bytes.length) return undefined;
    const slice = this.bytes.subarray(this.at, this.at + length);
    this.at += length;
    return slice;
  }
  name(): Buffer | undefined {
    const length = this.take(1)?.readUInt8(0);
    return length === undefined ? undefined : this.take(length);
  }
  /** A counter's 8 bytes; NaN above 2^53 (no longer exact as a number), never a BigInt. */
  counter(): number | undefined {
    const at = this.at;
    if (at + 8 > this.bytes.length) return undefined;
    this.at += 8;
    const high = this.bytes.readUInt32BE(at);
    const low = this.bytes.readUInt32BE(at + 4);
    if (high > COUNTER_MAX / 2 ** 32 || (high === COUNTER_MAX / 2 ** 32 && low !== 0)) {
      return Number.NaN;
    }
    return high * 2 ** 32 + low;
  }
}

function decodeText(bytes: Buffer): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

function drop(reason: DropReason): DecodeResult {
  return { ok: false, reason };
}

/**
 * Parses and authenticates one received datagram. Called by the transport for every
 * datagram that arrives; never throws, whatever the bytes.
 *
 * The cluster name is compared before the MAC is checked so that two clusters sharing a
 * network show up as "foreign-cluster" rather than as an anonymous "bad-mac"; nothing from
 * an unauthenticated datagram is ever delivered either way. Every other field is only
 * interpreted after the MAC has matched, except by `screen`: the transport's check that the
 * claimed sender may send from the source address and that the datagram is addressed to this
 * node, which every genuine datagram passes and which costs a forged one no MAC computation.
 */
export function decodeDatagram(
  key: Buffer,
  cluster: string,
  datagram: Buffer,
  screen?: HeaderScreen,
): DecodeResult {
  try {
    return decodeUnsafe(key, cluster, datagram, screen);
  } catch {
    // Unreachable by construction (every read is bounds-checked); kept so that a future
    // mistake drops one datagram instead of crashing the agent on hostile input.
    return drop("malformed");
  }
}

/**
 * A check of the raw sender and recipient names before the MAC is computed: it may only drop
 * (returning the reason), never admit, and must hold for every genuine datagram.
 */
export type HeaderScreen = (from: Buffer, to: Buffer) => DropReason | undefined;

function decodeUnsafe(
  key: Buffer,
  cluster: string,
  datagram: Buffer,
  screen: HeaderScreen | undefined,
): DecodeResult {
  if (datagram.length > DATAGRAM_BYTES_MAX) return drop("too-large");
  if (datagram.length < MAGIC.length) return drop("truncated");
  if (!datagram.subarray(0, MAGIC.length).equals(MAGIC)) return drop("bad-magic");
  if (datagram.length < MAGIC.length + 1) return drop("truncated");
  if (datagram.readUInt8(MAGIC.length) !== WIRE_VERSION) return drop("bad-version");

  const reader = new Reader(datagram);
  reader.at = MAGIC.length + 1;
  const clusterBytes = reader.name();
  if (clusterBytes === undefined) return drop("truncated");
  if (!clusterBytes.equals(clusterName(cluster))) return drop("foreign-cluster");
  const fromBytes = reader.name();
  const toBytes = reader.name();
  const incarnation = reader.counter();
  const seq = reader.counter();
  const echo = reader.counter();
  const bodyLength = reader.take(4)?.readUInt32BE(0);
  if (
    fromBytes === undefined ||
    toBytes === undefined ||
    incarnation === undefined ||
    seq === undefined ||
    echo === undefined ||
    bodyLength === undefined
  ) {
    return drop("truncated");
  }
  const body = reader.take(bodyLength);
  const bodyEnd = reader.at;
  const received = reader.take(MAC_BYTES);
  if (body === undefined || received === undefined) return drop("truncated");
  if (reader.at !== datagram.length) return drop("malformed");
  const screened = screen?.(fromBytes, toBytes);
  if (screened !== undefined) return drop(screened);
  if (!macFor(key).verify(datagram, bodyEnd, received)) return drop("bad-mac");

  return parseAuthenticated(cluster, fromBytes, toBytes, incarnation, seq, echo, body);
}

/** Validates fields of a datagram whose MAC matched: only a buggy or newer peer fails here. */
function parseAuthenticated(
  cluster: string,
  fromBytes: Buffer,
  toBytes: Buffer,
  incarnation: number,
  seq: number,
  echo: number,
  body: Buffer,
): DecodeResult {
  const from = decodeText(fromBytes);
  const to = decodeText(toBytes);
  const text = decodeText(body);
  if (
    from === undefined ||
    from.length === 0 ||
    to === undefined ||
    to.length === 0 ||
    text === undefined ||
    !isCounter(incarnation) ||
    !isCounter(seq) ||
    !(echo === 0 || isCounter(echo))
  ) {
    return drop("malformed");
  }
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    return drop("malformed");
  }
  return {
    ok: true,
    header: { cluster, from, to, incarnation, seq, echo },
    payload,
  };
}
