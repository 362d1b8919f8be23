/**
 * Sends a fixed number of cluster datagrams of one kind to one UDP port, as fast as the
 * socket takes them (bounded send queue), then prints `{ "sent": N, "seconds": S }` and exits.
 * Run by bench/reject.ts: `node datagram-sender.ts '<json options>'`. Kinds:
 * - `accepted`: authentic and fresh (increasing seq, echoing the receiver's incarnation);
 * - `bad-mac`: the same layout signed with another key (what a spoofed member costs);
 * - `not-fresh`: authentic, echoing an earlier incarnation of the receiver (a replay);
 * - `non-member`: anything at all from a source that is no member (here: bad-MAC datagrams).
 * Bounded: stops after `count` datagrams or `maxSeconds`, whichever comes first.
 */
import { createSocket } from "node:dgram";
import { encodeDatagram } from "../../src/cluster/codec.ts";

interface Options {
  readonly kind: "accepted" | "bad-mac" | "not-fresh" | "non-member";
  readonly port: number;
  readonly source: string;
  readonly count: number;
  readonly maxSeconds: number;
  readonly keyHex: string;
  readonly cluster: string;
  readonly from: string;
  readonly to: string;
  readonly incarnation: number;
  readonly receiverIncarnation: number;
}

const o = JSON.parse(process.argv[2] ?? "{}") as Options;
const key = Buffer.from(o.keyHex, "hex");
const wrongKey = Buffer.alloc(key.length, 0xee);
const payload = {
  type: "heartbeat",
  term: 1,
  tableVersion: [1, 1],
  leaseMs: 400,
  members: { [o.from]: "alive", [o.to]: "alive" },
};
const datagram = (seq: number): Buffer =>
  encodeDatagram(
    o.kind === "accepted" || o.kind === "not-fresh" ? key : wrongKey,
    {
      cluster: o.cluster,
      from: o.from,
      to: o.to,
      incarnation: o.incarnation,
      seq,
      echo: o.kind === "not-fresh" ? o.receiverIncarnation - 1 : o.receiverIncarnation,
    },
    payload,
  );
// Authentic kinds need a new seq each (the replay window); the others may repeat one buffer.
const fixed = o.kind === "accepted" || o.kind === "not-fresh" ? undefined : datagram(1);

const socket = createSocket("udp4");
const startedAt = performance.now();
let sent = 0;
const finish = () => {
  const seconds = (performance.now() - startedAt) / 1000;
  process.stdout.write(`${JSON.stringify({ sent, seconds })}\n`, () => process.exit(0));
};
setTimeout(finish, o.maxSeconds * 1000).unref();
socket.bind(0, o.source, () =>
  socket.connect(o.port, "127.0.0.1", () => {
    const pump = () => {
      for (let i = 0; i < 256 && sent < o.count; i += 1) {
        if (socket.getSendQueueCount() > 512) break;
        sent += 1;
        socket.send(fixed ?? datagram(sent));
      }
      if (sent < o.count) setImmediate(pump);
      else setTimeout(finish, 100);
    };
    pump();
  }),
);
