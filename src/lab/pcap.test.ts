import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { udpDatagramsFromPcap } from "./pcap.ts";

function frame(payload: Buffer, options: { proto?: number; fragment?: boolean } = {}): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(7400, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + payload.length, 2);
  if (options.fragment) ip.writeUInt16BE(0x2000, 6);
  ip[9] = options.proto ?? 17;
  Buffer.from([198, 18, 7, 11]).copy(ip, 12);
  Buffer.from([198, 18, 7, 10]).copy(ip, 16);
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([eth, ip, udp, payload]);
}

function pcap(frames: Buffer[], magic = 0xa1b2c3d4): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(magic, 0);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(1, 20);
  const records = frames.map((f, i) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(1_700_000_000 + i, 0);
    r.writeUInt32LE(magic === 0xa1b2c3d4 ? 500_000 : 500_000_000, 4);
    r.writeUInt32LE(f.length, 8);
    r.writeUInt32LE(f.length, 12);
    return Buffer.concat([r, f]);
  });
  return Buffer.concat([header, ...records]);
}

describe("pcap reader", () => {
  it("returns each UDP datagram with addresses, ports, payload and time", () => {
    const file = pcap([frame(Buffer.from("one")), frame(Buffer.from("two"))]);
    const datagrams = udpDatagramsFromPcap(file);
    assert.equal(datagrams.length, 2);
    assert.deepEqual(
      { ...datagrams[1]!, payload: datagrams[1]!.payload.toString() },
      {
        atMs: 1_700_000_001_500,
        source: "198.18.7.11",
        sourcePort: 40000,
        destination: "198.18.7.10",
        destinationPort: 7400,
        payload: "two",
      },
    );
  });

  it("reads nanosecond files, skips non-UDP, fragments and a truncated last record", () => {
    const file = pcap(
      [
        frame(Buffer.from("a"), { proto: 6 }),
        frame(Buffer.from("b"), { fragment: true }),
        frame(Buffer.from("c")),
      ],
      0xa1b23c4d,
    );
    const datagrams = udpDatagramsFromPcap(Buffer.concat([file, Buffer.alloc(20, 1)]));
    assert.deepEqual(
      datagrams.map((d) => [d.payload.toString(), d.atMs]),
      [["c", 1_700_000_002_500]],
    );
  });

  it("refuses what is not a pcap file", () => {
    assert.throws(() => udpDatagramsFromPcap(Buffer.alloc(10)), /not a pcap file/);
    assert.throws(() => udpDatagramsFromPcap(Buffer.alloc(24, 7)), /not a pcap file/);
  });
});
