/**
 * Plays recorded UDP datagrams back: run inside a namespace by replay.test.ts (which adds a
 * source NAT rule there to put the recorded source address back),
 * `node udp-replayer.ts '<json options>'`. Reads a tcpdump pcap file, and for `seconds`
 * sends its datagrams in recorded order, each to its recorded destination, from a socket
 * bound to its recorded source port, paced at `pps` in all, starting over at the
 * end of the recording. Prints `{ "sent": N, "sentTo": { address: N }, "errors": N }` and exits; also stops on SIGTERM or when its
 * standard input closes.
 */
import { createSocket, type Socket } from "node:dgram";
import { readFileSync } from "node:fs";
import { udpDatagramsFromPcap } from "../../src/lab/pcap.ts";

const o = JSON.parse(process.argv[2] ?? "{}") as { file: string; seconds: number; pps: number };
const datagrams = udpDatagramsFromPcap(readFileSync(o.file));
if (datagrams.length === 0) {
  process.stderr.write(`no UDP datagram in ${o.file}\n`);
  process.exit(1);
}
const sockets = new Map<string, Socket>();
let sent = 0;
const sentTo: Record<string, number> = {};
let finished = false;
const finish = () => {
  if (finished) return;
  finished = true;
  for (const socket of sockets.values()) socket.close();
  process.stdout.write(`${JSON.stringify({ sent, sentTo, errors })}\n`, () => process.exit(0));
};
const endAt = performance.now() + o.seconds * 1000;
const gapMs = 1000 / o.pps;

let errors = 0;

async function socketFor(port: number): Promise<Socket> {
  const name = String(port);
  let socket = sockets.get(name);
  if (socket === undefined) {
    const created = createSocket("udp4");
    created.on("error", () => {
      errors += 1;
    });
    sockets.set(name, created);
    await new Promise<void>((resolve) => created.bind(port, resolve));
    socket = created;
  }
  return socket;
}

async function play(): Promise<void> {
  for (let i = 0; !finished && performance.now() < endAt; i += 1) {
    const d = datagrams[i % datagrams.length]!;
    const socket = await socketFor(d.sourcePort);
    socket.send(d.payload, d.destinationPort, d.destination);
    sent += 1;
    sentTo[d.destination] = (sentTo[d.destination] ?? 0) + 1;
    await new Promise((resolve) => setTimeout(resolve, gapMs));
  }
  finish();
}

process.once("SIGTERM", finish);
process.stdin.on("end", finish);
process.stdin.resume();
setTimeout(finish, o.seconds * 1000 + 2000).unref();
void play();
