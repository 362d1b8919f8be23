/**
 * Reads the UDP datagrams out of a classic pcap file as tcpdump writes it (`-w`, Ethernet
 * link type, microsecond or nanosecond timestamps, either byte order), for tests that record
 * real traffic and play it back. IPv4 only; anything else in the file is skipped. Pure: the
 * caller reads the file.
 */

export interface CapturedDatagram {
  /** Capture time in milliseconds since the epoch. */
  readonly atMs: number;
  readonly source: string;
  readonly sourcePort: number;
  readonly destination: string;
  readonly destinationPort: number;
  readonly payload: Buffer;
}

const ethernet = 1;

export function udpDatagramsFromPcap(file: Buffer): CapturedDatagram[] {
  if (file.length < 24) throw new Error(`not a pcap file: ${file.length} bytes`);
  const magic = file.readUInt32LE(0);
  let little: boolean;
  let nanos: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) {
    little = true;
    nanos = magic === 0xa1b23c4d;
  } else if (file.readUInt32BE(0) === 0xa1b2c3d4 || file.readUInt32BE(0) === 0xa1b23c4d) {
    little = false;
    nanos = file.readUInt32BE(0) === 0xa1b23c4d;
  } else {
    throw new Error(`not a pcap file (magic ${magic.toString(16)}; pcapng is not read)`);
  }
  const u32 = (at: number) => (little ? file.readUInt32LE(at) : file.readUInt32BE(at));
  const linkType = u32(20);
  if (linkType !== ethernet) throw new Error(`pcap link type ${linkType}, expected Ethernet (1)`);
  const out: CapturedDatagram[] = [];
  for (let at = 24; at + 16 <= file.length; ) {
    const seconds = u32(at);
    const fraction = u32(at + 4);
    const length = u32(at + 8);
    const frame = file.subarray(at + 16, at + 16 + length);
    at += 16 + length;
    if (frame.length < length) break; // a truncated last record
    const datagram = udpOf(frame);
    if (datagram === undefined) continue;
    out.push({ atMs: seconds * 1000 + (nanos ? fraction / 1e6 : fraction / 1e3), ...datagram });
  }
  return out;
}

function udpOf(frame: Buffer): Omit<CapturedDatagram, "atMs"> | undefined {
  if (frame.length < 14 + 20 || frame.readUInt16BE(12) !== 0x0800) return undefined;
  const ip = frame.subarray(14);
  const headerBytes = (ip[0]! & 0x0f) * 4;
  if (ip[0]! >> 4 !== 4 || headerBytes < 20 || ip[9] !== 17) return undefined;
  // Fragments carry no UDP header of their own (or only part of the datagram).
  if ((ip.readUInt16BE(6) & 0x3fff) !== 0) return undefined;
  const total = Math.min(ip.readUInt16BE(2), ip.length);
  const udp = ip.subarray(headerBytes, total);
  if (udp.length < 8) return undefined;
  const udpLength = udp.readUInt16BE(4);
  if (udpLength < 8 || udpLength > udp.length) return undefined;
  const address = (at: number) => [...ip.subarray(at, at + 4)].join(".");
  return {
    source: address(12),
    sourcePort: udp.readUInt16BE(0),
    destination: address(16),
    destinationPort: udp.readUInt16BE(2),
    payload: Buffer.from(udp.subarray(8, udpLength)),
  };
}
