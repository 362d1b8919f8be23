/**
 * What one datagram costs the receiving agent, by how it ends: the real UdpTransport on
 * loopback receives N datagrams of one kind from a sender process, and its own CPU time
 * (process.cpuUsage, user + system) is divided by the datagrams it handled (delivered plus
 * dropped by reason; kernel drops are not handled and do not count). Kinds:
 *   accepted     authentic and fresh: decode, HMAC, replay window, delivery (the core's own
 *                work is not included: the receiver only counts)
 *   not-fresh    authentic, but echoing an earlier incarnation (a replay after a restart)
 *   bad-mac      a forged datagram from a member's address: decode and one HMAC, then dropped
 *   non-member   anything from an address that is no member: dropped before parsing
 * The ratio column compares each kind with an accepted heartbeat, measured in the same run.
 * Run: npm run bench:reject -- [--count 50000] [--out FILE]
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { DropReason } from "../src/cluster/codec.ts";
import { UdpTransport } from "../src/cluster/udp-transport.ts";
import { positiveInteger, readOptions, sleep } from "./lib/args.ts";
import { printHeader } from "./lib/machine.ts";
import { writeResult } from "./lib/results.ts";
import { formatTable } from "./lib/stats.ts";

const usage = "usage: bench/reject.ts [--count N (1000..1000000)] [--out FILE]";
const options = readOptions(usage, { count: { default: "50000" }, out: { default: "" } });
const count = positiveInteger("count", options.count!, usage);
if (count < 1000 || count > 1_000_000) {
  console.error(`--count must be 1000..1000000\n${usage}`);
  process.exit(2);
}

const kinds = ["accepted", "not-fresh", "bad-mac", "non-member"] as const;
type Kind = (typeof kinds)[number];
const reasonOf: Record<Exclude<Kind, "accepted">, DropReason> = {
  "not-fresh": "not-fresh",
  "bad-mac": "bad-mac",
  "non-member": "non-member",
};

interface Row {
  readonly kind: Kind;
  readonly sent: number;
  readonly handled: number;
  readonly kernelDrops: number;
  readonly cpuMs: number;
  readonly microsPerDatagram: number;
}

const machine = printHeader("bench:reject — receiver CPU per datagram, by outcome");
const key = randomBytes(32);
const cluster = "bench";
const receiverIncarnation = 5_000_000;
let senderIncarnation = 1_000;

async function measure(kind: Kind): Promise<Row> {
  let delivered = 0;
  const transport = new UdpTransport({
    cluster,
    selfId: "b",
    key,
    bind: { address: "127.0.0.1", port: 0 },
    peers: new Map([["a", { address: "127.0.0.1", port: 9 }]]),
    incarnation: receiverIncarnation,
    onMessage: () => {
      delivered += 1;
    },
  });
  await transport.start();
  const handled = () => {
    const stats = transport.stats();
    return kind === "accepted" ? delivered : stats.dropped[reasonOf[kind]];
  };
  try {
    const { port } = transport.boundAddress();
    senderIncarnation += 1;
    const args = {
      kind,
      port,
      source: kind === "non-member" ? "127.0.0.2" : "127.0.0.1",
      count,
      maxSeconds: 120,
      keyHex: key.toString("hex"),
      cluster,
      from: "a",
      to: "b",
      incarnation: senderIncarnation,
      receiverIncarnation,
    };
    const child = spawn(
      process.execPath,
      [join(import.meta.dirname, "lib", "datagram-sender.ts"), JSON.stringify(args)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const dropsBefore = transport.kernelDrops() ?? 0;
    const cpuBefore = process.cpuUsage();
    await exited;
    // The last datagrams may still be queued in the socket: read until the count stops moving.
    for (let last = -1; handled() !== last; ) {
      last = handled();
      await sleep(50);
    }
    const cpu = process.cpuUsage(cpuBefore);
    const sent = Number((JSON.parse(output.trim() || "{}") as { sent?: number }).sent ?? 0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const done = handled();
    return {
      kind,
      sent,
      handled: done,
      kernelDrops: (transport.kernelDrops() ?? 0) - dropsBefore,
      cpuMs,
      microsPerDatagram: done > 0 ? (cpuMs * 1000) / done : Number.NaN,
    };
  } finally {
    await transport.close();
  }
}

const rows: Row[] = [];
for (const kind of kinds) {
  const row = await measure(kind);
  rows.push(row);
  console.log(
    `${kind}: ${row.handled} of ${row.sent} handled (${row.kernelDrops} dropped by the kernel), ${row.microsPerDatagram.toFixed(2)} µs each`,
  );
}
const accepted = rows.find((r) => r.kind === "accepted")!.microsPerDatagram;
console.log(
  `\n${formatTable(
    ["outcome", "handled", "µs per datagram", "vs accepted"],
    rows.map((r) => [
      r.kind,
      String(r.handled),
      r.microsPerDatagram.toFixed(2),
      `${(r.microsPerDatagram / accepted).toFixed(2)}×`,
    ]),
  )}`,
);
const path = writeResult("reject", { machine, count, rows }, options.out || undefined);
console.log(`\nwrote ${path}`);
const broken = rows.filter((r) => r.handled === 0);
if (broken.length > 0) {
  console.error(`no datagram handled for ${broken.map((r) => r.kind).join(", ")}`);
  process.exit(1);
}
