/**
 * Child program of udp-send-buffer.test.ts: runs inside a test namespace whose loopback
 * sends through a slow token bucket (`tc qdisc … tbf`), so that datagrams wait in the qdisc
 * and hold the sending socket's buffer. Two transports on 127.0.0.1 greet each other, then
 * one sends COUNT datagrams in one synchronous burst: more than its send buffer holds. It
 * prints what arrived, in which order, what the transports counted, and how many datagrams
 * went through Node's own send (the fallback when the addon's sendto finds the buffer full).
 */
import { Socket } from "node:dgram";
import { setTimeout as sleep } from "node:timers/promises";
import { type PeerAddress, UdpTransport } from "../../src/cluster/udp-transport.ts";

const count = Number(process.argv[2] ?? "400");
const key = Buffer.alloc(32, 0x5a);

// Node's send is the fallback only: every datagram it sends here is one the addon could not.
let nodeSends = 0;
const send = Socket.prototype.send;
Socket.prototype.send = function (this: Socket, ...args: unknown[]) {
  nodeSends += 1;
  return (send as (...a: unknown[]) => void).apply(this, args);
} as typeof Socket.prototype.send;

const received: number[] = [];
const make = (id: string, incarnation: number) =>
  new UdpTransport({
    cluster: "send-buffer",
    selfId: id,
    key,
    bind: { address: "127.0.0.1", port: 0 },
    peers: new Map(),
    incarnation,
    onMessage: (_from, payload) => {
      const n = (payload as { n?: number }).n;
      if (typeof n === "number") received.push(n);
    },
  });
const a = make("a", 101);
const b = make("b", 102);
await a.start();
await b.start();
const peers = new Map<string, PeerAddress>([
  ["a", a.boundAddress()],
  ["b", b.boundAddress()],
]);
a.updatePeers(peers);
b.updatePeers(peers);
// One greeting each way (dropped as not-fresh) teaches each the other's incarnation.
for (let i = 0; i < 100 && b.stats().dropped["not-fresh"] === 0; i += 1) {
  a.broadcast({ type: "hello" });
  b.broadcast({ type: "hello" });
  await sleep(20);
}
const nodeSendsBefore = nodeSends;
const filler = "x".repeat(200);
for (let n = 0; n < count; n += 1) a.broadcast({ n, filler });
const burstNodeSends = nodeSends - nodeSendsBefore;
for (let waited = 0; received.length < count && waited < 20_000; waited += 50) await sleep(50);
await sleep(200); // anything after the last one (duplicates) shows up too
let inOrder = true;
for (let i = 1; i < received.length; i += 1) if (received[i]! <= received[i - 1]!) inOrder = false;
console.log(
  JSON.stringify({
    count,
    received: received.length,
    distinct: new Set(received).size,
    inOrder,
    nodeSends: burstNodeSends,
    sender: a.stats(),
    receiver: b.stats(),
  }),
);
await a.close();
await b.close();
