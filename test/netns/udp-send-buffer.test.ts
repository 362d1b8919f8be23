/**
 * A full send buffer loses nothing and reorders nothing. The transport sends through the
 * native addon's `sendto` (the stall gate's last check is there); when the kernel answers
 * EAGAIN, the datagram goes to Node's send, which libuv queues until the socket is writable,
 * and every later datagram must queue behind it: sent around the queue, it would arrive
 * first, and a queue longer than the replay window (64) would make the receiver drop the
 * older ones as replays.
 *
 * Real kernel, real sockets: a namespace whose loopback sends through a token bucket of
 * 1 Mbit/s, so datagrams wait in the qdisc and hold the sender's buffer, and one burst of
 * 400 datagrams (about 166 fill the default buffer). See udp-send-buffer-child.ts.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { nativeAddonPath } from "../../src/adapters/linux/native-addon.ts";
import { createTopology, skipUnlessRoot, type Topology } from "../../src/lab/topology.ts";

const childScript = fileURLToPath(new URL("./udp-send-buffer-child.ts", import.meta.url));

interface Report {
  count: number;
  received: number;
  distinct: number;
  inOrder: boolean;
  nodeSends: number;
  sender: { sent: number; sendErrors: number };
  receiver: { dropped: Record<string, number> };
}

describe("a full UDP send buffer", { skip: skipUnlessRoot() }, () => {
  let topology: Topology | undefined;
  before(async () => {
    topology = await createTopology({ prefix: "fipsbuf-", hosts: ["a"] });
    await topology.exec("a", "ip", ["link", "set", "lo", "up"]);
    await topology.exec("a", "tc", [
      ...["qdisc", "add", "dev", "lo", "root", "tbf"],
      ...["rate", "1mbit", "burst", "1600", "latency", "5s"],
    ]);
  });
  after(async () => {
    await topology?.destroy();
  });

  it("queues behind Node's send once the addon finds it full: every datagram arrives, in order", async () => {
    assert.ok(existsSync(nativeAddonPath), `the native addon is built (${nativeAddonPath})`);
    const { stdout } = await topology!.exec("a", process.execPath, [childScript, "400"], 40_000);
    const report = JSON.parse(stdout) as Report;
    const summary = JSON.stringify(report);
    console.log(`# ${summary}`);
    assert.equal(report.received, report.count, `every datagram arrived: ${summary}`);
    // Inconclusive unless the buffer really filled: then some datagrams took Node's send.
    assert.ok(report.nodeSends > 0, `the send buffer never filled: ${summary}`);
    assert.equal(report.sender.sendErrors, 0, summary);
    assert.ok(report.sender.sent >= report.count, `every datagram counted sent: ${summary}`);
    assert.equal(report.distinct, report.count, summary);
    assert.ok(report.inOrder, `in the order sent: ${summary}`);
    assert.equal(report.receiver.dropped.replay ?? 0, 0, summary);
  });
});
