import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { afterEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DROP_REASONS, type DropReason, encodeDatagram } from "./codec.ts";
import {
  kernelDropsFrom,
  type PeerAddress,
  type SendGate,
  type TransportStats,
  UdpTransport,
  type UdpTransportOptions,
} from "./udp-transport.ts";

const key = Buffer.alloc(32, 0x5a);
const cluster = "test-cluster";

interface Node {
  readonly id: string;
  readonly transport: UdpTransport;
  readonly inbox: Array<{ from: string; payload: unknown }>;
  readonly logs: Array<{ level: string; msg: string; fields: Record<string, unknown> }>;
  base?: TransportStats;
}

const cleanup: Array<() => Promise<void> | void> = [];
let nextIncarnation = 1_000;
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function startNode(id: string, extra: Partial<UdpTransportOptions> = {}): Promise<Node> {
  const inbox: Node["inbox"] = [];
  const logs: Node["logs"] = [];
  const transport = new UdpTransport({
    cluster,
    selfId: id,
    key,
    bind: { address: "127.0.0.1", port: 0 },
    peers: new Map(),
    incarnation: nextIncarnation++,
    onMessage: (from, payload) => inbox.push({ from, payload }),
    log: (level, msg, fields) => logs.push({ level, msg, fields }),
    ...extra,
  });
  await transport.start();
  cleanup.push(() => transport.close());
  return { id, transport, inbox, logs };
}

/**
 * Starts nodes on ephemeral ports, gives every node the full peer table and lets each learn
 * the others' incarnations (one hello each way, dropped as not-fresh), so that what the test
 * sends next is delivered. Counters and logs start at zero after the handshake.
 */
async function startCluster(ids: string[]): Promise<Map<string, Node>> {
  const nodes = new Map<string, Node>();
  for (const id of ids) nodes.set(id, await startNode(id));
  const peers = new Map<string, PeerAddress>();
  for (const [id, node] of nodes) peers.set(id, node.transport.boundAddress());
  for (const node of nodes.values()) node.transport.updatePeers(peers);
  for (const node of nodes.values()) node.transport.broadcast({ type: "hello" });
  for (const node of nodes.values()) {
    await waitFor(
      `${node.id} heard every peer`,
      () => node.transport.stats().dropped["not-fresh"] === ids.length - 1,
    );
  }
  for (const node of nodes.values()) {
    node.base = node.transport.stats();
    node.logs.length = 0;
  }
  return nodes;
}

/** A node's transport counters since the handshake of `startCluster` (or since start). */
function statsOf(node: Node): TransportStats {
  const now = node.transport.stats();
  const base = node.base;
  if (base === undefined) return now;
  const dropped = { ...now.dropped };
  for (const reason of DROP_REASONS) dropped[reason] -= base.dropped[reason];
  return {
    sent: now.sent - base.sent,
    received: now.received - base.received,
    dropped,
    sendErrors: now.sendErrors - base.sendErrors,
  };
}

async function rawSocket(address = "127.0.0.1"): Promise<Socket> {
  const socket = createSocket("udp4");
  socket.bind(0, address);
  await once(socket, "listening");
  cleanup.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return socket;
}

function sendRaw(socket: Socket, bytes: Buffer, to: PeerAddress): Promise<void> {
  return new Promise((resolve, reject) =>
    socket.send(bytes, to.port, to.address, (error) => (error ? reject(error) : resolve())),
  );
}

/** Polls until `condition` holds; bounded, so a lost datagram fails the test instead of hanging. */
async function waitFor(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited >= timeoutMs) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function totalDropped(node: Node): number {
  return Object.values(statsOf(node).dropped).reduce((a, b) => a + b, 0);
}

function get(nodes: Map<string, Node>, id: string): Node {
  const node = nodes.get(id);
  assert.ok(node);
  return node;
}

describe("UDP transport", () => {
  it("three nodes exchange unicast and broadcast messages", async () => {
    const nodes = await startCluster(["a", "b", "c"]);
    const [a, b, c] = [get(nodes, "a"), get(nodes, "b"), get(nodes, "c")];

    a.transport.broadcast({ type: "heartbeat", term: 1 });
    b.transport.send("c", { type: "vote", granted: true });
    c.transport.send("a", { type: "hello", list: [1, 2, 3] });

    await waitFor(
      "deliveries",
      () => a.inbox.length === 1 && b.inbox.length === 1 && c.inbox.length === 2,
    );
    assert.deepEqual(a.inbox, [{ from: "c", payload: { type: "hello", list: [1, 2, 3] } }]);
    assert.deepEqual(b.inbox, [{ from: "a", payload: { type: "heartbeat", term: 1 } }]);
    assert.deepEqual(
      [...c.inbox].sort((x, y) => x.from.localeCompare(y.from)),
      [
        { from: "a", payload: { type: "heartbeat", term: 1 } },
        { from: "b", payload: { type: "vote", granted: true } },
      ],
    );
    await waitFor("send callbacks", () => statsOf(a).sent === 2);
    assert.equal(statsOf(c).received, 2);
    for (const node of [a, b, c]) assert.equal(totalDropped(node), 0);
  });

  it("asks the gate before each datagram of a broadcast and withholds those it refuses", async () => {
    const nodes = await startCluster(["a", "b", "c", "d"]);
    const [a, b, c, d] = [get(nodes, "a"), get(nodes, "b"), get(nodes, "c"), get(nodes, "d")];
    const heard = () => b.inbox.length + c.inbox.length + d.inbox.length;
    let asked = 0;
    const gate = (open: () => boolean): SendGate => ({ open, withinMs: 1000, late: () => {} });
    a.transport.broadcast(
      { type: "heartbeat", term: 2 },
      gate(() => ++asked <= 1),
    );
    await waitFor("the one allowed datagram", () => heard() === 1);
    assert.equal(asked, 3, "asked once per peer");
    await sleep(100);
    assert.equal(heard(), 1, "the refused ones never left");
    assert.equal(statsOf(a).sent, 1);
    a.transport.broadcast(
      { type: "heartbeat", term: 3 },
      gate(() => false),
    );
    a.transport.broadcast(
      { type: "heartbeat", term: 4 },
      gate(() => true),
    );
    await waitFor("the next full broadcast", () => heard() === 4);
    for (const node of [b, c, d]) {
      assert.ok(!node.inbox.some((m) => (m.payload as { term: number }).term === 3));
    }
  });

  it("drops garbage, replays, foreign clusters, wrong keys and spoofed senders, and keeps working", async () => {
    const nodes = await startCluster(["a", "b", "c"]);
    const [a, b, c] = [get(nodes, "a"), get(nodes, "b"), get(nodes, "c")];
    const addressOf = (id: string) => get(nodes, id).transport.boundAddress();
    const spy = await rawSocket();

    // An on-path attacker: a's datagrams for b go through the spy, which captures them.
    const captured: Buffer[] = [];
    spy.on("message", (bytes) => captured.push(bytes));
    const spyAddress = spy.address();
    a.transport.updatePeers(
      new Map([
        ["a", addressOf("a")],
        ["b", { address: "127.0.0.1", port: spyAddress.port }],
        ["c", addressOf("c")],
      ]),
    );
    a.transport.send("b", { type: "vote", granted: true, term: 7 });
    await waitFor("capture", () => captured.length === 1);
    const datagram = captured[0]!;

    // Forwarded once it is a genuine message; every further copy is a replay.
    await sendRaw(spy, datagram, addressOf("b"));
    await waitFor("forwarded delivery", () => b.inbox.length === 1);
    await sendRaw(spy, datagram, addressOf("b"));
    await sendRaw(spy, datagram, addressOf("b"));
    // The same bytes sent to c: addressed to b, so a vote cannot be redirected.
    await sendRaw(spy, datagram, addressOf("c"));

    const header = { cluster, from: "a", to: "b", incarnation: 1_000, seq: 500, echo: 0 };
    await sendRaw(spy, Buffer.from("definitely not a floatip datagram"), addressOf("b"));
    await sendRaw(spy, Buffer.from("FIP"), addressOf("b"));
    await sendRaw(spy, Buffer.alloc(0), addressOf("b"));
    await sendRaw(
      spy,
      encodeDatagram(key, { ...header, cluster: "other" }, { x: 1 }),
      addressOf("b"),
    );
    await sendRaw(spy, encodeDatagram(Buffer.alloc(32, 1), header, { x: 2 }), addressOf("b"));
    await sendRaw(
      spy,
      encodeDatagram(key, { ...header, from: "intruder" }, { x: 3 }),
      addressOf("b"),
    );
    // Right key and a configured sender id, but not from that sender's configured address.
    const elsewhere = await rawSocket("127.0.0.2");
    await sendRaw(
      elsewhere,
      encodeDatagram(key, { ...header, seq: 501 }, { x: 4 }),
      addressOf("b"),
    );

    await waitFor("drops at b", () => totalDropped(b) === 9);
    await waitFor("drop at c", () => totalDropped(c) === 1);
    const expectedAtB: Partial<Record<DropReason, number>> = {
      replay: 2,
      "bad-magic": 1,
      truncated: 2,
      "foreign-cluster": 1,
      "bad-mac": 1,
      "unknown-sender": 1,
      "non-member": 1,
    };
    for (const reason of DROP_REASONS) {
      assert.equal(statsOf(b).dropped[reason], expectedAtB[reason] ?? 0, reason);
    }
    assert.equal(statsOf(c).dropped.misdirected, 1);
    assert.deepEqual(b.inbox, [{ from: "a", payload: { type: "vote", granted: true, term: 7 } }]);
    assert.deepEqual(c.inbox, []);

    // Rate-limited logging: one line for the first drop of each reason, not one per datagram.
    const replayLines = b.logs.filter((l) => l.fields.reason === "replay");
    assert.equal(replayLines.length, 1);
    assert.equal(replayLines[0]?.level, "warn");

    // Still working afterwards, in both directions.
    a.transport.updatePeers(
      new Map([
        ["a", addressOf("a")],
        ["b", addressOf("b")],
        ["c", addressOf("c")],
      ]),
    );
    a.transport.send("b", { type: "after" });
    b.transport.send("c", { type: "after" });
    await waitFor("deliveries after attack", () => b.inbox.length === 2 && c.inbox.length === 1);
    assert.deepEqual(b.inbox[1], { from: "a", payload: { type: "after" } });
    assert.deepEqual(c.inbox[0], { from: "b", payload: { type: "after" } });
  });

  it("drops a restarted peer's old incarnation and accepts its new one", async () => {
    const b = await startNode("b");
    const old = await startNode("a", { incarnation: 2_000 });
    const restarted = await startNode("a", { incarnation: 3_000 });
    const peersOfA = new Map([["b", b.transport.boundAddress()]]);
    old.transport.updatePeers(peersOfA);
    restarted.transport.updatePeers(peersOfA);

    b.transport.updatePeers(new Map([["a", restarted.transport.boundAddress()]]));
    b.transport.send("a", { type: "hello" });
    await waitFor("a learns b", () => statsOf(restarted).dropped["not-fresh"] === 1);
    restarted.transport.send("b", { from: "new" });
    await waitFor("new incarnation delivered", () => b.inbox.length === 1);
    old.transport.send("b", { from: "old" });
    await waitFor("stale drop", () => statsOf(b).dropped["stale-incarnation"] === 1);
    assert.deepEqual(b.inbox, [{ from: "a", payload: { from: "new" } }]);
  });

  it("delivers only what echoes this process's incarnation: a recording replayed after a restart delivers nothing", async () => {
    const nodes = await startCluster(["a", "b"]);
    const [a, b] = [get(nodes, "a"), get(nodes, "b")];
    const spy = await rawSocket();
    const captured: Buffer[] = [];
    spy.on("message", (bytes) => captured.push(bytes));
    // a's heartbeats for b pass through the spy, which records and forwards them.
    a.transport.updatePeers(
      new Map([
        ["a", a.transport.boundAddress()],
        ["b", { address: "127.0.0.1", port: spy.address().port }],
      ]),
    );
    for (let i = 0; i < 5; i += 1) a.transport.send("b", { type: "heartbeat", n: i });
    await waitFor("recording", () => captured.length === 5);
    for (const datagram of captured) await sendRaw(spy, datagram, b.transport.boundAddress());
    await waitFor("live delivery", () => b.inbox.length === 5);

    // b restarts on the same port (a new process: new incarnation, empty replay window), and
    // the recording is played to it again.
    const port = b.transport.boundAddress().port;
    await b.transport.close();
    const restarted = await startNode("b", {
      bind: { address: "127.0.0.1", port },
      peers: new Map([["a", a.transport.boundAddress()]]),
    });
    for (const datagram of captured) await sendRaw(spy, datagram, { address: "127.0.0.1", port });
    await waitFor("replay dropped", () => statsOf(restarted).dropped["not-fresh"] === 5);
    assert.deepEqual(restarted.inbox, [], "nothing recorded before the restart is delivered");
    assert.equal(statsOf(restarted).received, 0);

    // The live peer learns the new incarnation from the restarted node's first datagram (which
    // is delivered: the dropped recording did teach b a's current incarnation, harmlessly).
    a.transport.updatePeers(
      new Map([
        ["a", a.transport.boundAddress()],
        ["b", { address: "127.0.0.1", port }],
      ]),
    );
    restarted.transport.send("a", { type: "heartbeat", hello: true });
    await waitFor("a heard the new b", () => a.inbox.length === 1);
    a.transport.send("b", { type: "heartbeat", live: true });
    await waitFor("fresh delivery", () => restarted.inbox.length === 1);
    assert.deepEqual(restarted.inbox, [{ from: "a", payload: { type: "heartbeat", live: true } }]);
  });

  it("with greet, answers a not-fresh datagram with a greeting, so the next one is delivered", async () => {
    const a = await startNode("a", { greet: true });
    const b = await startNode("b", { greet: true });
    const peers = new Map<string, PeerAddress>([
      ["a", a.transport.boundAddress()],
      ["b", b.transport.boundAddress()],
    ]);
    a.transport.updatePeers(peers);
    b.transport.updatePeers(peers);
    a.transport.send("b", { type: "list", n: 1 });
    await waitFor(
      "b dropped the first and greeted a",
      () => b.transport.stats().dropped["not-fresh"] === 1 && a.transport.stats().received === 1,
    );
    assert.deepEqual(a.inbox, [], "a greeting is not delivered");
    a.transport.send("b", { type: "list", n: 2 });
    await waitFor("the second delivered", () => b.inbox.length === 1);
    assert.deepEqual(b.inbox, [{ from: "a", payload: { type: "list", n: 2 } }]);
    // Without greet (the embedded election), a not-fresh drop is not answered.
    const c = await startNode("c");
    const d = await startNode("d");
    const cd = new Map<string, PeerAddress>([
      ["c", c.transport.boundAddress()],
      ["d", d.transport.boundAddress()],
    ]);
    c.transport.updatePeers(cd);
    d.transport.updatePeers(cd);
    c.transport.send("d", { type: "list", n: 1 });
    await waitFor("d dropped it", () => d.transport.stats().dropped["not-fresh"] === 1);
    await sleep(50);
    assert.equal(d.transport.stats().sent, 0, "no greeting");
  });

  it("drops datagrams from a source that is no configured node before parsing them", async () => {
    const nodes = await startCluster(["a", "b"]);
    const b = get(nodes, "b");
    const outsider = await rawSocket("127.0.0.3");
    // Valid-looking, well-formed, correctly signed even: the source alone decides.
    const datagram = encodeDatagram(
      key,
      { cluster, from: "a", to: "b", incarnation: 99_999, seq: 1, echo: 0 },
      { type: "heartbeat" },
    );
    for (let i = 0; i < 20; i += 1) await sendRaw(outsider, datagram, b.transport.boundAddress());
    await sendRaw(outsider, Buffer.from("junk"), b.transport.boundAddress());
    await waitFor("21 drops", () => statsOf(b).dropped["non-member"] === 21);
    assert.equal(totalDropped(b), 21, "no other reason: nothing was parsed");
    assert.equal(b.logs.filter((l) => l.fields.reason === "non-member").length, 1);
  });

  it("drops a datagram whose claimed sender is not configured at its source, or that is for another node, before its MAC", async () => {
    const b = await startNode("b");
    const fromC = await rawSocket("127.0.0.4");
    b.transport.updatePeers(
      new Map([
        ["a", { address: "127.0.0.1", port: 9 }],
        ["b", b.transport.boundAddress()],
        ["c", { address: "127.0.0.4", port: fromC.address().port }],
      ]),
    );
    const header = { cluster, from: "c", to: "b", incarnation: 7, seq: 1, echo: 0 };
    const forgedKey = Buffer.alloc(32, 0x11);
    // From c's address: claiming a (configured elsewhere), or addressed to a.
    await sendRaw(
      fromC,
      encodeDatagram(forgedKey, { ...header, from: "a" }, {}),
      b.transport.boundAddress(),
    );
    await sendRaw(
      fromC,
      encodeDatagram(forgedKey, { ...header, to: "a" }, {}),
      b.transport.boundAddress(),
    );
    // The right sender and recipient with a wrong key: only the MAC can tell.
    await sendRaw(fromC, encodeDatagram(forgedKey, header, {}), b.transport.boundAddress());
    await waitFor("3 drops", () => totalDropped(b) === 3);
    assert.equal(statsOf(b).dropped["unknown-sender"], 1);
    assert.equal(statsOf(b).dropped.misdirected, 1);
    assert.equal(statsOf(b).dropped["bad-mac"], 1);
  });

  it("asks for a large receive buffer and reports the kernel's drops for its socket", async () => {
    const b = await startNode("b", { peers: new Map([["x", { address: "127.0.0.1", port: 9 }]]) });
    const address = b.transport.boundAddress();
    assert.ok((b.transport.receiveBufferBytes() ?? 0) >= 200 * 1024);
    assert.equal(b.transport.kernelDrops(), 0);
    // While this process is blocked (execFileSync), a child overfills the socket's buffer.
    const sender = [
      "const s = require('node:dgram').createSocket('udp4');",
      "const b = Buffer.alloc(1200, 1); let n = 0;",
      `const go = () => { for (let i = 0; i < 500 && n < 20000; i += 1, n += 1) s.send(b, ${address.port}, '127.0.0.1'); if (n < 20000) setImmediate(go); else setTimeout(() => s.close(), 200); };`,
      "go();",
    ].join("\n");
    execFileSync(process.execPath, ["-e", sender], { timeout: 20_000 });
    const drops = b.transport.kernelDrops() ?? 0;
    assert.ok(drops > 0, `the kernel dropped ${drops} datagrams`);
    await waitFor("reading the backlog", () => statsOf(b).dropped["bad-magic"] > 0);
  });

  it("puts a datagram on the wire inside send(), not a tick later (a pause in between would reorder it after the wake)", async () => {
    const receiver = await rawSocket();
    const port = receiver.address().port;
    const a = await startNode("a", { peers: new Map([["b", { address: "127.0.0.1", port }]]) });
    const portHex = port.toString(16).toUpperCase().padStart(4, "0");
    /** Bytes waiting in the receiver's kernel queue (/proc/net/udp, rx_queue). */
    const queued = () => {
      for (const line of readFileSync("/proc/net/udp", "utf8").split("\n")) {
        const fields = line.trim().split(/\s+/);
        if (fields[1] === `0100007F:${portHex}`)
          return Number.parseInt(fields[4]!.split(":")[1]!, 16);
      }
      return 0;
    };
    assert.equal(queued(), 0);
    a.transport.send("b", { type: "heartbeat", term: 1 });
    // Still inside this turn of the event loop: no tick has run since send().
    const deadline = performance.now() + 50;
    let bytes = queued();
    while (bytes === 0 && performance.now() < deadline) bytes = queued();
    assert.ok(bytes > 0, "the datagram reached the receiver before send()'s turn ended");
  });

  it("finds its socket's drop counter in /proc/net/udp text", () => {
    const text = [
      "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops",
      "  101: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5555 2 0000000000000000 3",
      "  102: 011212C6:1D4C 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7777 2 0000000000000000 42",
      "  103: 00000000:1D4D 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 8888 2 0000000000000000 7",
    ].join("\n");
    assert.equal(kernelDropsFrom(text, "198.18.18.1", 7500), 42);
    assert.equal(kernelDropsFrom(text, "127.0.0.1", 8080), 3);
    assert.equal(kernelDropsFrom(text, "198.18.18.2", 7500), undefined, "another address");
    assert.equal(kernelDropsFrom(text, "198.18.18.1", 7501), 7, "a wildcard bind");
    assert.equal(kernelDropsFrom("", "198.18.18.1", 7500), undefined);
  });

  it("never throws from send: unknown peers, oversized payloads and a closed socket are counted", async () => {
    const nodes = await startCluster(["a", "b"]);
    const a = get(nodes, "a");
    a.transport.send("nobody", { x: 1 });
    a.transport.send("a", { x: 1 });
    a.transport.send("b", "x".repeat(100_000));
    a.transport.send("b", { n: 1n });
    a.transport.broadcast({ n: 2n }); // no JSON: a failure per recipient
    assert.equal(statsOf(a).sendErrors, 5);
    assert.equal(a.logs.filter((l) => l.msg === "datagram not sent").length, 1);
    await a.transport.close();
    a.transport.send("b", { x: 1 });
    a.transport.broadcast({ x: 1 });
    assert.equal(statsOf(a).sendErrors, 7);
  });

  it("logs at most one line per reason per 10 s, with the count since the last line", async () => {
    let nowMs = 0;
    // A configured peer on the loopback address, so the garbage passes the source check.
    const b = await startNode("b", {
      nowMs: () => nowMs,
      peers: new Map([["x", { address: "127.0.0.1", port: 9 }]]),
    });
    const spy = await rawSocket();
    const garbage = Buffer.from("garbage");
    const badMagicLines = () => b.logs.filter((l) => l.fields.reason === "bad-magic");

    for (let i = 0; i < 5; i += 1) await sendRaw(spy, garbage, b.transport.boundAddress());
    await waitFor("5 drops", () => statsOf(b).dropped["bad-magic"] === 5);
    assert.equal(badMagicLines().length, 1);
    assert.equal(badMagicLines()[0]?.fields.count, 1);

    nowMs = 9_999;
    await sendRaw(spy, garbage, b.transport.boundAddress());
    await waitFor("6 drops", () => statsOf(b).dropped["bad-magic"] === 6);
    assert.equal(badMagicLines().length, 1);

    nowMs = 10_000;
    await sendRaw(spy, garbage, b.transport.boundAddress());
    await waitFor("7 drops", () => statsOf(b).dropped["bad-magic"] === 7);
    assert.equal(badMagicLines().length, 2);
    assert.equal(badMagicLines()[1]?.fields.count, 6);
  });

  it("rejects start when the port is taken", async () => {
    const a = await startNode("a");
    const clash = new UdpTransport({
      cluster,
      selfId: "x",
      key,
      bind: a.transport.boundAddress(),
      peers: new Map(),
      incarnation: 1,
      onMessage: () => assert.fail("no message expected"),
    });
    await assert.rejects(clash.start(), { code: "EADDRINUSE" });
    await clash.close();
  });
});

describe("UDP transport, receive: on-tick", () => {
  /** a reads as datagrams come, b on its tick (drain); each knows the other's incarnation. */
  async function pair(): Promise<{ a: Node; b: Node }> {
    const a = await startNode("a");
    const b = await startNode("b", { receive: "on-tick" });
    const peers = new Map<string, PeerAddress>([
      ["a", a.transport.boundAddress()],
      ["b", b.transport.boundAddress()],
    ]);
    a.transport.updatePeers(peers);
    b.transport.updatePeers(peers);
    a.transport.send("b", { type: "hello" });
    b.transport.send("a", { type: "hello" });
    await waitFor(
      "a learned b's incarnation",
      () => a.transport.stats().dropped["not-fresh"] === 1,
    );
    await waitFor("b's hello queued", () => b.transport.drain() === 1);
    assert.equal(b.transport.stats().dropped["not-fresh"], 1);
    a.base = a.transport.stats();
    b.base = b.transport.stats();
    return { a, b };
  }

  it("keeps a datagram in the socket until drain(), then delivers it through every check", async () => {
    const { a, b } = await pair();
    a.transport.send("b", { type: "ping", n: 1 });
    a.transport.send("b", { type: "ping", n: 2 });
    // Nothing reads the socket meanwhile: no event, no count.
    await sleep(100);
    assert.deepEqual(b.inbox, []);
    assert.equal(statsOf(b).received, 0);
    assert.equal(b.transport.drain(), 2);
    assert.deepEqual(b.inbox, [
      { from: "a", payload: { type: "ping", n: 1 } },
      { from: "a", payload: { type: "ping", n: 2 } },
    ]);
    assert.equal(b.transport.drain(), 0, "a drained socket is empty");
    // b's sends go out at once (a reads as they come).
    b.transport.send("a", { type: "pong" });
    await waitFor("a got b's pong", () => a.inbox.length === 1);
    assert.deepEqual(a.inbox[0], { from: "b", payload: { type: "pong" } });
    assert.equal(statsOf(b).sent, 1);
  });

  it("drops what it drains from a non-member and garbage from a member's address, as the socket path does", async () => {
    const { a, b } = await pair();
    const stranger = await rawSocket("127.0.0.2");
    await sendRaw(stranger, Buffer.from("not a floatip datagram"), b.transport.boundAddress());
    const atMemberAddress = await rawSocket("127.0.0.1");
    await sendRaw(atMemberAddress, Buffer.alloc(64, 7), b.transport.boundAddress());
    a.transport.send("b", { type: "ping" });
    await sleep(50);
    assert.equal(b.transport.drain(), 3);
    const dropped = statsOf(b).dropped;
    assert.equal(dropped["non-member"], 1);
    assert.equal(totalDropped(b), 2, JSON.stringify(dropped));
    assert.deepEqual(b.inbox, [{ from: "a", payload: { type: "ping" } }]);
  });

  it("reports its bound port, its receive buffer and the kernel's drops, and refuses a taken port", async () => {
    const { b } = await pair();
    const bound = b.transport.boundAddress();
    assert.equal(bound.address, "127.0.0.1");
    assert.ok(bound.port > 0);
    assert.ok((b.transport.receiveBufferBytes() ?? 0) > 0);
    assert.equal(typeof b.transport.kernelDrops(), "number");
    const clash = new UdpTransport({
      cluster,
      selfId: "x",
      key,
      bind: bound,
      peers: new Map(),
      incarnation: 1,
      receive: "on-tick",
      onMessage: () => assert.fail("no message expected"),
    });
    await assert.rejects(clash.start(), { code: "EADDRINUSE" });
    await clash.close();
  });

  it("after close, drain reads nothing and send counts an error instead of throwing", async () => {
    const { b } = await pair();
    await b.transport.close();
    assert.equal(b.transport.drain(), 0);
    b.transport.send("a", { type: "ping" });
    assert.equal(statsOf(b).sendErrors, 1);
  });
});

/**
 * A process stopped after the gate let a datagram go, before the system call (SIGSTOP, a frozen
 * VM): on waking it must send nothing, whatever the gate decided before the stop. The stop is
 * real: this test process stops itself where the transport reads the gate's `withinMs` (right
 * after the clock reading that check is anchored on, right before the addon's sendto), and a
 * helper process started first resumes it 300 ms later.
 */
describe("UDP transport: a stop between the gate and the system call", () => {
  async function stoppedSend(receive: "as-they-come" | "on-tick") {
    const a = await startNode("a", { receive });
    const b = await startNode("b");
    const peers = new Map<string, PeerAddress>([
      ["a", a.transport.boundAddress()],
      ["b", b.transport.boundAddress()],
    ]);
    a.transport.updatePeers(peers);
    b.transport.updatePeers(peers);
    // Each learns the other's incarnation (the hellos are dropped as not fresh).
    b.transport.send("a", { type: "hello" });
    if (receive === "on-tick") await waitFor("a read b's hello", () => a.transport.drain() === 1);
    else await waitFor("a heard b", () => a.transport.stats().dropped["not-fresh"] === 1);
    let late = 0;
    const resumer = spawn("sh", ["-c", `sleep 0.3; kill -CONT ${process.pid}`], {
      stdio: "ignore",
    });
    cleanup.push(() => {
      if (resumer.exitCode === null) resumer.kill();
    });
    await once(resumer, "spawn");
    const gate: SendGate = {
      open: () => true,
      get withinMs() {
        process.kill(process.pid, "SIGSTOP");
        return 100;
      },
      late: () => {
        late += 1;
      },
    };
    const before = a.transport.stats().sent;
    a.transport.send("b", { type: "heartbeat", term: 7 }, gate);
    // Resumed: the datagram was withheld, reported to the gate, counted as neither sent nor failed.
    assert.equal(late, 1, "the gate heard the datagram was late");
    assert.equal(a.transport.stats().sent, before);
    assert.equal(a.transport.stats().sendErrors, 0);
    // The next one, not stopped, goes.
    const plain: SendGate = { open: () => true, withinMs: 100, late: gate.late };
    a.transport.send("b", { type: "heartbeat", term: 8 }, plain);
    await waitFor("the next datagram", () => b.inbox.length === 1);
    await sleep(50);
    assert.deepEqual(b.inbox, [{ from: "a", payload: { type: "heartbeat", term: 8 } }]);
    if (resumer.exitCode === null) await once(resumer, "exit");
  }

  it("as-they-come (sent on Node's socket through the addon): nothing leaves on waking", () =>
    stoppedSend("as-they-come"));

  it("on-tick: nothing leaves on waking", () => stoppedSend("on-tick"));
});
