import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ChannelConnection,
  ChannelServer,
  encodeFrame,
  FrameDecoder,
  macBytes,
  newChannelStats,
  openChannel,
} from "../../src/traffic/backup-channel.ts";
import { StaticClusterView } from "../../src/traffic/static-cluster-view.ts";
import { TrafficStore, type WireRow } from "../../src/traffic/store.ts";
import { TrafficNode } from "../../src/traffic/traffic-node.ts";

const dir = mkdtempSync(join(tmpdir(), "fipt-channel-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const key = randomBytes(32);

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const row = (seq: number): WireRow => [
  seq,
  seq * 1000,
  "eth0",
  2,
  1000,
  seq,
  1,
  0,
  0,
  seq,
  1,
  0,
  0,
];

describe("backup channel framing", () => {
  it("decodes frames split across arbitrary chunks", () => {
    const frames = Buffer.concat([
      encodeFrame(key, 0n, { t: "get-table" }),
      encodeFrame(key, 1n, { t: "join", node: "n1" }),
    ]);
    const decoder = new FrameDecoder();
    const out = [];
    for (let i = 0; i < frames.length; i += 7) out.push(...decoder.push(frames.subarray(i, i + 7)));
    assert.deepEqual(
      out.map((f) => JSON.parse(f.body.toString())),
      [{ t: "get-table" }, { t: "join", node: "n1" }],
    );
    assert.equal(out[0]?.mac.length, macBytes);
  });

  it("rejects an oversized length before buffering it", () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(0xffffffff);
    assert.throws(() => new FrameDecoder().push(header), { code: "FRAME_TOO_LARGE" });
  });
});

describe("backup channel server", () => {
  const store = new TrafficStore(join(dir, "server.db"), "srv");
  const server = new ChannelServer({
    clusterKey: key,
    selfId: "srv",
    handler: (_peer, m) => {
      if (m.t === "batch")
        return { t: "ack", origin: m.origin, highestSeq: store.appendReplicated(m.origin, m.rows) };
      return { t: "error", code: "UNEXPECTED", message: m.t };
    },
  });
  let port = 0;
  after(async () => {
    await server.close();
    store.close();
  });

  it("drops and counts frames with a bad MAC, and keeps serving good ones", async () => {
    port = await server.listen(0, "127.0.0.1");
    const stats = newChannelStats();
    const c = await openChannel({
      host: "127.0.0.1",
      port,
      clusterKey: key,
      selfId: "cli",
      stats,
      timeoutMs: 2000,
    });
    // Forge a frame: right counter, wrong key. Write it under the connection's own framing.
    const forged = encodeFrame(randomBytes(32), 1n, { t: "batch", origin: "cli", rows: [row(1)] });
    c.socket.write(forged);
    await waitFor("bad MAC counted", () => server.stats.badMac === 1);
    assert.equal(store.highestSeq("cli"), 0, "forged batch must not be stored");
    const reply = await c.request({ t: "batch", origin: "cli", rows: [row(1), row(2)] }, 2000);
    assert.deepEqual(reply, { t: "ack", origin: "cli", highestSeq: 2 });
    c.close();
  });

  it("refuses a peer with another cluster key", async () => {
    const before = server.stats.badMac;
    await assert.rejects(
      openChannel({
        host: "127.0.0.1",
        port,
        clusterKey: randomBytes(32),
        selfId: "evil",
        stats: newChannelStats(),
        timeoutMs: 1000,
      }),
    );
    assert.equal(server.stats.badMac, before + 1);
  });

  it("closes on a frame too large to be real and counts it", async () => {
    const before = server.stats.malformed;
    const socket = connect({ host: "127.0.0.1", port });
    await new Promise((resolve) => socket.once("connect", resolve));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(0x7fffffff);
    socket.write(header);
    await new Promise((resolve) => socket.once("close", resolve));
    assert.equal(server.stats.malformed, before + 1);
  });

  it("a replayed frame (old counter) is rejected", async () => {
    const stats = newChannelStats();
    const c = await openChannel({
      host: "127.0.0.1",
      port,
      clusterKey: key,
      selfId: "cli2",
      stats,
      timeoutMs: 2000,
    });
    assert.ok(c instanceof ChannelConnection);
    const before = server.stats.badMac;
    // Counter 0 with the cluster key is the hello frame's MAC: not valid after the handshake.
    c.socket.write(encodeFrame(key, 0n, { t: "batch", origin: "cli2", rows: [row(1)] }));
    await waitFor("replay counted", () => server.stats.badMac === before + 1);
    assert.equal(store.highestSeq("cli2"), 0);
    c.close();
  });
});

describe("traffic coordinator and the membership view", () => {
  it("marks a member Failed only after it had been healthy a while: a late starter is not failed", async () => {
    const nodes = ["n1", "n2", "n3"].map((id, i) => ({ id, ips: [`127.0.0.${i + 41}`] }));
    const view = new StaticClusterView(
      "n1",
      nodes.map((n) => ({ id: n.id, address: n.ips[0]!, state: "healthy" as const })),
      "n1",
    );
    const coordinator = new TrafficNode({
      selfId: "n1",
      nodes,
      clusterKey: key,
      dbPath: join(dir, "late-n1.db"),
      channelPort: 0,
      listenHost: "127.0.0.41",
      clusterView: view,
      collect: false,
      markFailedFromView: true,
      viewFailGraceMs: 400,
    });
    await coordinator.start();
    try {
      const status = (id: string) =>
        coordinator.currentTable()?.rows.find((r) => r.nodeId === id)?.status;
      // Not heard yet when the coordinator started: "failed" at once is a late start.
      view.setMemberState("n3", "failed");
      await sleep(50);
      assert.equal(status("n3"), "Normal", "a node failed within the grace is not marked");
      // Heard for longer than the grace, then failed: that is a failure.
      view.setMemberState("n3", "healthy");
      await sleep(500);
      view.setMemberState("n3", "failed");
      await waitFor("n3 marked Failed", () => status("n3") === "Failed");
    } finally {
      await coordinator.stop();
    }
  });
});

describe("traffic nodes on loopback", () => {
  it("replicate, re-target after a failure and re-sync everything to the new target", async () => {
    const ids = ["n1", "n2", "n3"];
    const nodes = ids.map((id, i) => ({ id, ips: [`127.0.0.${i + 11}`] }));
    const port = 17_000 + Math.floor(Math.random() * 20_000);
    const make = (id: string, i: number) =>
      new TrafficNode({
        selfId: id,
        nodes,
        clusterKey: key,
        dbPath: join(dir, `${id}.db`),
        channelPort: port,
        listenHost: nodes[i]!.ips[0]!,
        clusterView: new StaticClusterView(
          id,
          nodes.map((n) => ({ id: n.id, address: n.ips[0]!, state: "healthy" })),
          "n1",
        ),
        collect: false,
        collectIntervalMs: 50,
        batchRows: 100,
        requestTimeoutMs: 2000,
      });
    const running = ids.map(make);
    try {
      for (const n of running) await n.start();
      const [n1, n2, n3] = running as [TrafficNode, TrafficNode, TrafficNode];
      const samples = (count: number, base: number) =>
        Array.from({ length: count }, (_, i) => ({
          tsMs: base + i * 10,
          iface: "eth0",
          ifindex: 2,
          intervalMs: 10,
          rxBytes: i,
          rxPackets: 1,
          rxErrors: 0,
          rxDrops: 0,
          txBytes: 2 * i,
          txPackets: 1,
          txErrors: 0,
          txDrops: 0,
        }));
      n2.store.appendOwn(samples(1000, 1_000_000));
      n2.poke();
      // Sequences start at the store's creation time (a wiped store continues above them).
      const n2First = n2.store.highestSeq("n2");
      await waitFor("n2 -> n3 replication", () => n3.store.highestSeq("n2") === n2First);
      await n3.stop();
      running.pop();
      await waitFor(
        "re-target",
        () => n2.currentTable()?.rows.find((r) => r.nodeId === "n2")?.backupTargetId === "n1",
      );
      // Nothing was being sent: the idle channel itself noticed the loss of n3.
      n2.store.appendOwn(samples(500, 2_000_000));
      n2.poke();
      const table = n1.currentTable()!;
      assert.equal(table.rows.find((r) => r.nodeId === "n3")?.status, "Failed");
      assert.equal(table.rows.find((r) => r.nodeId === "n3")?.backupTargetId, "n1");
      await waitFor("re-sync to n1", () => n1.store.highestSeq("n2") === n2.store.highestSeq("n2"));
      assert.deepEqual(n1.store.digest("n2"), n2.store.digest("n2"));
      assert.equal(n1.store.digest("n2").count, 1500);
      const answer = await n2.query({ node: "n3", fromMs: 0, toMs: 1e13, stepMs: 60_000 });
      assert.equal(answer.status, "Failed");
      assert.equal(answer.answeredBy, "n1");
      const own = await n1.query({ node: "n2", fromMs: 0, toMs: 1e13, stepMs: 3_600_000 });
      assert.equal(own.status, "Normal");
      assert.equal(own.answeredBy, "n2");
      assert.equal(
        own.buckets.reduce((s, b) => s + b.samples, 0),
        1500,
      );
    } finally {
      for (const n of running) await n.stop().catch(() => {});
    }
  });
});

describe("backup channel: a peer speaks only from its own address", () => {
  it("refuses a key holder that claims another node's id, serves the node itself", async () => {
    // n1 is configured at 127.0.0.1 and n2 at 127.0.0.2: a client from 127.0.0.1 that holds
    // the cluster key may speak as n1, not as n2.
    const handled: string[] = [];
    const server = new ChannelServer({
      clusterKey: key,
      selfId: "srv",
      handler: (peer) => {
        handled.push(peer);
        return { t: "ack", origin: peer, highestSeq: 0 };
      },
      addressesOf: (peer) => ({ n1: ["127.0.0.1"], n2: ["127.0.0.2"] })[peer],
    });
    const port = await server.listen(0, "127.0.0.1");
    try {
      const open = (selfId: string) =>
        openChannel({
          host: "127.0.0.1",
          port,
          clusterKey: key,
          selfId,
          stats: newChannelStats(),
          timeoutMs: 2000,
        });
      const honest = await open("n1");
      const answer = await honest.request({ t: "get-table" }, 2000);
      assert.deepEqual(answer, { t: "ack", origin: "n1", highestSeq: 0 }, "n1 is served");
      honest.close();
      for (const claimed of ["n2", "stranger"]) {
        const impostor = await open(claimed);
        await assert.rejects(
          impostor.request({ t: "get-table" }, 1000),
          `${claimed} is not served`,
        );
        impostor.close();
      }
      assert.deepEqual(handled, ["n1"], "no request of an impostor reached the handler");
      assert.equal(server.stats.wrongAddress, 2);
    } finally {
      await server.close();
    }
  });

  it("before the handshake: no frame over 4 KB, no source that is no node, at most 16 connections per source", async () => {
    const server = new ChannelServer({
      clusterKey: key,
      selfId: "srv",
      handler: () => ({ t: "get-table" }),
      isNodeAddress: (address) => address === "127.0.0.1",
    });
    const port = await server.listen(0, "127.0.0.1");
    const sockets: ReturnType<typeof connect>[] = [];
    const raw = async (localAddress = "127.0.0.1") => {
      const socket = connect({ host: "127.0.0.1", port, localAddress });
      socket.on("error", () => undefined);
      sockets.push(socket);
      await new Promise((resolve) => socket.once("connect", resolve));
      return socket;
    };
    const closes = (socket: ReturnType<typeof connect>) =>
      new Promise<boolean>((resolve) => {
        if (socket.destroyed) resolve(true);
        socket.once("close", () => resolve(true));
        setTimeout(() => resolve(false), 3000).unref();
      });
    try {
      // An unauthenticated 8 KB "hello": refused on its length, nothing buffered.
      const big = await raw();
      const header = Buffer.alloc(4);
      header.writeUInt32BE(8192);
      big.write(header);
      assert.equal(await closes(big), true, "closed on the length of an oversized hello");
      assert.equal(server.stats.malformed, 1);
      // From an address that is no node's: closed before a byte is read.
      const stranger = await raw("127.0.0.3");
      assert.equal(await closes(stranger), true);
      assert.equal(server.stats.wrongAddress, 1);
      // Sixteen connections from one node's address are held; the seventeenth is closed.
      const held = [];
      for (let i = 0; i < 16; i += 1) held.push(await raw());
      await sleep(100);
      const extra = await raw();
      assert.equal(await closes(extra), true, "the 17th connection is closed");
      assert.equal(server.stats.overLimit, 1);
      assert.ok(
        held.every((socket) => !socket.destroyed),
        "the first 16 stay open",
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      await server.close();
    }
  });
});
