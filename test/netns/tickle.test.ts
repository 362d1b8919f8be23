/**
 * TCP tickle ACKs, driven as a client sees them: a client holds an idle TCP connection to a
 * VIP (a server on every node listens on port 9000), the VIP's owner dies (SIGKILL of its
 * agent; its supervisor removes the addresses), another node takes the VIP over and tickles
 * the client, and the client's socket fails at once with a reset — without the tickle an idle
 * connection to a dead owner stays "established" until the client sends something and its
 * retransmissions give up (minutes).
 *
 * Checked: the new owner learned the connection from the old owner's list before the kill
 * (status), the client's connection is reset after the takeover, the time from the new owner's
 * `vip-acquired` to the reset is printed (speed is the benchmark's business; the test bounds
 * it loosely), and a second idle connection to a VIP that did not move stays open.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitFor,
  waitSettled,
} from "../../src/lab/cluster.ts";
import { openIdleConnection } from "../../src/lab/idle-connection.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

/** Accepts TCP connections on 0.0.0.0:9000 and keeps them open, silently (bounded life). */
const server = [
  "const net = require('node:net');",
  "const kept = [];",
  "net.createServer((s) => { kept.push(s); s.on('error', () => {}); }).listen(9000, '0.0.0.0');",
  "setTimeout(() => process.exit(0), 180000);",
].join("\n");

interface Status {
  capabilities?: {
    tickle?: { knownConnections?: number; tickled?: number; scans?: number; scansSpared?: number };
  };
}

describe("agent: tickle ACKs after a takeover", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster;

  before(async () => {
    cluster = await startCluster({
      prefix: "fiptk-",
      vips: [{ host: 170 }, { host: 171 }],
      extraYaml: "tickle: { scan_interval: 200ms }",
    });
    for (const id of cluster.ids) {
      cluster.topology.spawn(id, process.execPath, ["-e", server], { stdio: "ignore" });
    }
    await waitSettled(cluster);
  });

  after(async () => {
    await cluster?.destroy();
  });

  it("resets a client's idle connection to a dead owner's VIP right after the takeover", async () => {
    const [moving, staying] = cluster.vipAddresses as [string, string];
    const owner = (await cluster.holderOf(moving))!;
    assert.ok(owner, "the VIP has an owner");
    const status = async (id: string) => {
      const result = await cluster.cli(id, ["status", "--json"]);
      return result.code === 0 ? (JSON.parse(result.stdout) as Status) : undefined;
    };

    // Idle, the holder does not walk the kernel's connection table on every scan: its TCP
    // counters have not moved (a status request is itself a connection, so two are taken).
    const idleBefore = (await status(owner))?.capabilities?.tickle;
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const idleAfter = (await status(owner))?.capabilities?.tickle;
    const spared = (idleAfter?.scansSpared ?? 0) - (idleBefore?.scansSpared ?? 0);
    const listed = (idleAfter?.scans ?? 0) - (idleBefore?.scans ?? 0);
    console.log(`# idle holder, 3 s: ${listed} listings, ${spared} scans spared`);
    assert.ok(spared >= 3, `idle scans spared: ${JSON.stringify({ idleBefore, idleAfter })}`);
    const other = await cluster.holderOf(staying);
    const kept =
      other !== owner ? openIdleConnection(cluster.topology, "client", staying, 9000) : undefined;
    const watched = openIdleConnection(cluster.topology, "client", moving, 9000);
    const connectedAt = await waitFor(async () => watched.connectedAt(), 10_000);
    assert.ok(connectedAt, "the client connected to the VIP");

    // Every other node learns the owner's list (the scan runs every 200 ms), although the
    // owner spared its scans before the client came.
    const peers = cluster.ids.filter((id) => id !== owner);
    const learned = await waitFor(async () => {
      const views = await Promise.all(peers.map((id) => status(id)));
      return views.every((v) => (v?.capabilities?.tickle?.knownConnections ?? 0) >= 1)
        ? views
        : undefined;
    }, 10_000);
    assert.ok(learned, `the peers know the connection\n${allLogs(cluster)}`);

    process.kill(cluster.agentPid(owner)!, "SIGKILL");
    const taken = await waitFor(async () => {
      const holder = await cluster.holderOf(moving);
      return holder && holder !== owner ? holder : undefined;
    }, 15_000);
    assert.ok(taken, `the VIP moved\n${allLogs(cluster)}`);
    const ended = await waitFor(async () => watched.endedAt(), 10_000);
    assert.ok(ended, `the client's connection failed\n${allLogs(cluster)}`);
    assert.equal(ended.code ?? "ECONNRESET", "ECONNRESET", JSON.stringify(watched.events));
    // Human log lines: "HH:MM:SS.mmmuuu INFO  vip-acquired node=n2 vip=…", UTC.
    const day = new Date(connectedAt).toISOString().slice(0, 11);
    const acquired = [
      ...cluster
        .logs(taken)
        .matchAll(/^(\d\d:\d\d:\d\d\.\d{3})\d{3} INFO {2}vip-acquired node=\S+ vip=(\S+)/gm),
    ].find((m) => m[2] === moving);
    const acquiredAt = acquired ? Date.parse(`${day}${acquired[1]}Z`) : Number.NaN;
    const resetAt = ended.atMs;
    if (Number.isFinite(acquiredAt)) {
      const ms = resetAt - acquiredAt;
      console.log(`# reset ${ms} ms after ${taken} acquired ${moving}`);
      assert.ok(ms < 3000, `reset ${ms} ms after the takeover`);
    }
    assert.match(cluster.logs(taken), /tickle ACKs sent/);

    if (kept) {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.ok(kept.connectedAt(), "the second client connected");
      assert.equal(
        kept.endedAt(),
        undefined,
        `a connection to a VIP that did not move stays open: ${JSON.stringify(kept.events)}`,
      );
    }
    kept?.stop();
    watched.stop();
  });
});
