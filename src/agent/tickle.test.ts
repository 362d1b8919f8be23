import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  parseProcNetTcp,
  parseTcpChangeMark,
  type TcpConnection,
  tcpChangeMark,
} from "../adapters/linux/tcp-connections.ts";
import type { ClusterViewSnapshot } from "../ports/cluster-view.ts";
import { StaticClusterView } from "../storage/static-cluster-view.ts";
import { createLogger } from "./log.ts";
import { type ConnectionsMessage, parseConnectionsMessage, TickleService } from "./tickle.ts";

// /proc/net/tcp as a little-endian machine prints it: 198.18.0.100:9000 (listening), two
// clients 198.18.0.50 on it (established), one closing, one on another local address.
const procNetTcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 641212C6:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 641212C6:2328 321212C6:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 641212C6:2328 321212C6:C351 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 641212C6:2328 321212C6:C352 06 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   4: 011212C6:1F90 321212C6:C353 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1
   5: garbage
`;

describe("established connections from /proc/net/tcp", () => {
  it("lists the established ones on the given local addresses, bounded per address", () => {
    const { connections, skipped } = parseProcNetTcp(procNetTcp, new Set(["198.18.18.100"]), 10);
    assert.deepEqual(connections, [
      { localIp: "198.18.18.100", localPort: 9000, remoteIp: "198.18.18.50", remotePort: 50000 },
      { localIp: "198.18.18.100", localPort: 9000, remoteIp: "198.18.18.50", remotePort: 50001 },
    ]);
    assert.equal(skipped, 0);
    const bounded = parseProcNetTcp(procNetTcp, new Set(["198.18.18.100"]), 1);
    assert.equal(bounded.connections.length, 1);
    assert.equal(bounded.skipped, 1);
  });
});

// /proc/net/tcp6 as a little-endian machine prints it: a client 2001:db8:6e::50 on
// [2001:db8:6e::161]:8080, and an IPv4 client 198.18.18.50 of a dual-stack server on
// 198.18.18.100:9000 (::ffff:198.18.18.100, IPv4-mapped).
const procNetTcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: B80D012000006E000000000061010000:1F90 B80D012000006E000000000050000000:D431 01 00000000:00000000 00:00000000 00000000     0        0 7 1 0000000000000000 20 4 30 10 -1
   1: 0000000000000000FFFF0000641212C6:2328 0000000000000000FFFF0000321212C6:C354 01 00000000:00000000 00:00000000 00000000     0        0 8 1 0000000000000000 20 4 30 10 -1
`;

describe("established connections from /proc/net/tcp6", () => {
  it("reads IPv6 connections in canonical form, and IPv4-mapped ones as IPv4", () => {
    const { connections } = parseProcNetTcp(
      `${procNetTcp}\n${procNetTcp6}`,
      new Set(["198.18.18.100", "2001:db8:6e::161"]),
      10,
    );
    assert.deepEqual(connections, [
      { localIp: "198.18.18.100", localPort: 9000, remoteIp: "198.18.18.50", remotePort: 50000 },
      { localIp: "198.18.18.100", localPort: 9000, remoteIp: "198.18.18.50", remotePort: 50001 },
      {
        localIp: "2001:db8:6e::161",
        localPort: 8080,
        remoteIp: "2001:db8:6e::50",
        remotePort: 54321,
      },
      { localIp: "198.18.18.100", localPort: 9000, remoteIp: "198.18.18.50", remotePort: 50004 },
    ]);
  });
});

describe("the TCP change mark from /proc/net/snmp", () => {
  const snmp = `Ip: Forwarding DefaultTTL
Ip: 1 64
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs
Tcp: 1 200 120000 -1 984 872 49 21 3 36751 32387
Udp: InDatagrams NoPorts
Udp: 5 0
`;

  it("reads ActiveOpens, PassiveOpens and CurrEstab by their names", () => {
    assert.equal(parseTcpChangeMark(snmp), "984:872:3");
    assert.equal(parseTcpChangeMark(snmp.replace(" 3 36751", " 4 36751")), "984:872:4");
  });

  it("is undefined for text without the Tcp lines or with a value that is no count", () => {
    assert.equal(parseTcpChangeMark("Ip: Forwarding\nIp: 1\n"), undefined);
    assert.equal(parseTcpChangeMark(snmp.replace("PassiveOpens", "Passive")), undefined);
    assert.equal(parseTcpChangeMark(snmp.replace(" 872 ", " x ")), undefined);
    assert.equal(tcpChangeMark("/nonexistent/snmp"), undefined);
  });

  it("reads this namespace's counters", () => {
    assert.match(tcpChangeMark() ?? "", /^\d+:\d+:\d+$/);
  });
});

describe("connections datagrams", () => {
  const good: ConnectionsMessage = {
    type: "connections",
    vip: "198.18.0.100",
    gen: 1,
    part: 0,
    parts: 1,
    conns: [["198.18.0.50", 50000, 9000]],
  };
  it("accepts exactly the documented shape", () => {
    assert.deepEqual(parseConnectionsMessage(good), good);
    const six = { ...good, vip: "2001:db8::100", conns: [["2001:db8::50", 50000, 9000]] };
    assert.deepEqual(parseConnectionsMessage(six), six);
    for (const bad of [
      { ...good, vip: "not-an-ip" },
      { ...good, part: 1 },
      { ...good, parts: 1000 },
      { ...good, conns: [["198.18.0.50", 0, 9000]] },
      { ...good, conns: [["198.18.0.50", 50000]] },
      // A client of the other family than its VIP.
      { ...good, conns: [["2001:db8::50", 50000, 9000]] },
      { ...good, vip: "2001:db8::100" },
      { ...good, conns: Array.from({ length: 201 }, () => ["198.18.0.50", 1, 2]) },
      { ...good, gen: -1 },
      { ...good, type: "heartbeat" },
      null,
      "connections",
    ]) {
      assert.equal(parseConnectionsMessage(bad), undefined, JSON.stringify(bad));
    }
  });
});

describe("tickle service", () => {
  const vip = "198.18.0.100";
  const snapshot = (held: string[]): ClusterViewSnapshot => ({
    selfId: "n2",
    coordinatorId: "n1",
    term: 1,
    members: [],
    owners: new Map([[vip, held.length > 0 ? "n2" : "n1"]]),
    held: new Set(held),
  });
  const log = createLogger({ base: {}, write: () => {} });

  it("sends its list when it changes, and tickles a peer's clients when it takes the VIP over", async () => {
    // n1 holds the VIP and sees two clients; n2 learns the list, then takes the VIP over.
    const sent: ConnectionsMessage[] = [];
    const n1View = new StaticClusterView("n1");
    n1View.set(snapshot([vip]));
    const n1 = new TickleService({
      nodeId: "n1",
      view: n1View,
      scanIntervalMs: 60_000,
      log,
      broadcast: (m) => sent.push(m),
      list: () => ({
        connections: [
          { localIp: vip, localPort: 9000, remoteIp: "198.18.0.50", remotePort: 50001 },
          { localIp: vip, localPort: 9000, remoteIp: "198.18.0.50", remotePort: 50000 },
        ],
        skipped: 0,
      }),
    });
    await n1.start();
    n1.scan();
    n1.scan(); // unchanged: not sent again
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0]!.conns, [
      ["198.18.0.50", 50000, 9000],
      ["198.18.0.50", 50001, 9000],
    ]);

    const tickles: string[] = [];
    const n2View = new StaticClusterView("n2");
    n2View.set(snapshot([]));
    const n2 = new TickleService({
      nodeId: "n2",
      view: n2View,
      scanIntervalMs: 60_000,
      log,
      broadcast: () => {},
      list: () => ({ connections: [], skipped: 0 }),
      send: (from, fromPort, to, toPort) => {
        tickles.push(`${from}:${fromPort}>${to}:${toPort}`);
        return 1;
      },
    });
    await n2.start();
    n2.onPeerMessage("n1", sent[0]);
    n2.onPeerMessage("n1", { ...sent[0], conns: [["bad", 1, 1]] }); // dropped
    assert.equal(tickles.length, 0);
    n2View.set(snapshot([vip]));
    assert.deepEqual(tickles, [`${vip}:9000>198.18.0.50:50000`, `${vip}:9000>198.18.0.50:50001`]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(tickles.length, 4, "tickled again after 100 ms while still holding");
    n2View.set(snapshot([]));
    await n2.stop();
    await n1.stop();
  });

  it("lists again only when the TCP counters moved, the VIPs changed or 30 s passed", async () => {
    let mark: string | undefined = "1:1:0";
    let nowMs = 1_000_000;
    let listings = 0;
    let connections: TcpConnection[] = [];
    const sent: ConnectionsMessage[] = [];
    const view = new StaticClusterView("n1");
    view.set(snapshot([vip]));
    const service = new TickleService({
      nodeId: "n1",
      view,
      scanIntervalMs: 60_000,
      log,
      broadcast: (m) => sent.push(m),
      changeMark: () => mark,
      nowMs: () => nowMs,
      list: () => {
        listings += 1;
        return { connections, skipped: 0 };
      },
    });
    await service.start();
    const scans = (count: number) => {
      for (let i = 0; i < count; i += 1) {
        nowMs += 1000;
        service.scan();
      }
    };
    scans(5);
    assert.equal(listings, 2, "listed twice with the counters still, then spared");
    // A client connects: the counters move, the next scan lists it and sends it.
    connections = [{ localIp: vip, localPort: 9000, remoteIp: "198.18.0.50", remotePort: 50000 }];
    mark = "1:2:1";
    scans(1);
    assert.equal(listings, 3);
    assert.deepEqual(sent.at(-1)?.conns, [["198.18.0.50", 50000, 9000]]);
    // The counter moved before the connection was in the table: the listing after is not spared.
    scans(1);
    assert.equal(listings, 4);
    scans(3);
    assert.equal(listings, 4);
    // Another VIP held: the listing is for other addresses.
    view.set(snapshot([vip, "198.18.0.101"]));
    const afterGain = listings;
    scans(3);
    assert.equal(listings, afterGain + 1, "one listing for the new set, then its confirmation");
    // The same VIPs in a new view object change nothing.
    view.set(snapshot([vip, "198.18.0.101"]));
    const steady = listings;
    scans(3);
    assert.equal(listings, steady);
    // At most 30 s on one listing.
    scans(30);
    assert.ok(listings >= steady + 1, "listed again within 30 s");
    // Counters that cannot be read: every scan lists.
    mark = undefined;
    const blind = listings;
    scans(3);
    assert.equal(listings, blind + 3);
    assert.equal((service.status() as { scansSpared: number }).scansSpared > 0, true);
    await service.stop();
  });
});
