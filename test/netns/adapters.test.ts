/**
 * The Linux data-plane adapters against real network namespaces: VIP addresses with kernel
 * lifetimes, gratuitous ARP as seen in a client's neighbour cache, and ARP occupancy probes.
 * ARP code runs in a child `node` inside the host's namespace, exactly as an agent would.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AddressError,
  addAddress,
  linkMac,
  linkState,
  listAddresses,
  removeAddress,
  renewAddress,
} from "../../src/adapters/linux/address.ts";
import { ArpError, announce, probeOccupied } from "../../src/adapters/linux/arp.ts";
import { createTopology, skipUnlessRoot, type Topology } from "../../src/lab/topology.ts";

const arpModuleUrl = new URL("../../src/adapters/linux/arp.ts", import.meta.url).href;

/** Polls `check` every 100 ms until it returns true or `limitMs` passes; returns the last answer. */
async function eventually(check: () => Promise<boolean>, limitMs: number): Promise<boolean> {
  const attempts = Math.ceil(limitMs / 100);
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await check()) return true;
    await sleep(100);
  }
  return check();
}

describe("Linux adapters in network namespaces", { skip: skipUnlessRoot() }, () => {
  let topology: Topology;
  let vip: (lastOctet: number) => string;

  /** Runs `body` (an async function body using `arp`) in a node process inside `host`'s namespace. */
  async function inHost(host: string, body: string): Promise<unknown> {
    const code = [
      `import * as arp from ${JSON.stringify(arpModuleUrl)};`,
      `const result = await (async () => { ${body} })();`,
      "process.stdout.write(JSON.stringify(result));",
    ].join("\n");
    const output = await topology.exec(
      host,
      process.execPath,
      ["--input-type=module", "-e", code],
      15000,
    );
    return JSON.parse(output.stdout);
  }

  async function setArpAccept(host: string, value: 0 | 1): Promise<void> {
    for (const scope of ["all", "eth0"]) {
      await topology.exec(host, "sysctl", [
        "-q",
        "-w",
        `net.ipv4.conf.${scope}.arp_accept=${value}`,
      ]);
    }
  }

  /** Makes `client` resolve `ip` the ordinary way: by opening a TCP connection to it. */
  async function contact(client: string, ip: string): Promise<void> {
    const code = `const s = (await import("node:net")).connect(9, ${JSON.stringify(ip)});
      s.on("connect", () => process.exit(0)); s.on("error", () => process.exit(0));
      setTimeout(() => process.exit(0), 1500);`;
    await topology.exec(client, process.execPath, ["--input-type=module", "-e", code], 5000);
  }

  before(async () => {
    topology = await createTopology({ prefix: "fipa-adp-", hosts: ["a", "b", "client"] });
    vip = (lastOctet) => `${topology.subnet}.${lastOctet}`;
  });

  after(async () => {
    await topology?.destroy();
  });

  describe("address", () => {
    it("adds, renews and removes a VIP with a lifetime, visible in ip addr", async () => {
      const netns = topology.host("a").netns;
      const ip = vip(100);
      await addAddress("eth0", ip, 24, { validLftSec: 30, netns });
      assert.ok((await topology.addresses("a")).includes(`${ip}/24`));
      const added = (await listAddresses("eth0", { netns })).find((entry) => entry.ip === ip);
      assert.ok(
        added?.validLftSec !== undefined && added.validLftSec <= 30 && added.validLftSec > 0,
      );

      // Adding it again is not an error: the agent may retry after a timeout.
      await addAddress("eth0", ip, 24, { validLftSec: 30, netns });

      await renewAddress("eth0", ip, 24, { validLftSec: 120, netns });
      const renewed = (await listAddresses("eth0", { netns })).find((entry) => entry.ip === ip);
      assert.ok(renewed?.validLftSec !== undefined && renewed.validLftSec > 30);

      await removeAddress("eth0", ip, 24, { netns });
      assert.ok(!(await topology.addresses("a")).includes(`${ip}/24`));
      await removeAddress("eth0", ip, 24, { netns });

      // Renewing an address that is gone must not silently re-create it.
      await assert.rejects(renewAddress("eth0", ip, 24, { validLftSec: 30, netns }), {
        code: "ADDRESS_NOT_FOUND",
      });
      assert.ok(!(await topology.addresses("a")).includes(`${ip}/24`));
    });

    it("lets the kernel drop a VIP whose valid_lft runs out", async () => {
      const netns = topology.host("a").netns;
      const ip = vip(101);
      await addAddress("eth0", ip, 24, { validLftSec: 2, netns });
      assert.ok((await topology.addresses("a")).includes(`${ip}/24`));
      const gone = await eventually(
        async () => !(await topology.addresses("a")).includes(`${ip}/24`),
        5000,
      );
      assert.ok(gone, `${ip} still present 5 s after a 2 s lifetime`);
    });

    it("reports errors with stable codes", async () => {
      const netns = topology.host("a").netns;
      await assert.rejects(addAddress("fipa-none0", vip(102), 24, { netns }), {
        code: "ADDRESS_NO_INTERFACE",
      });
      await assert.rejects(addAddress("eth0", "198.18.300.1", 24, { netns }), (error) => {
        assert.ok(error instanceof AddressError);
        assert.equal(error.code, "ADDRESS_INVALID");
        return true;
      });
      await assert.rejects(addAddress("eth0", vip(102), 33, { netns }), {
        code: "ADDRESS_INVALID",
      });
    });

    it("reads link state and MAC", async () => {
      const netns = topology.host("b").netns;
      assert.equal(await linkMac("eth0", { netns }), topology.host("b").mac);
      assert.deepEqual(await linkState("eth0", { netns }), {
        up: true,
        carrier: true,
        operState: "UP",
      });
      await topology.setLink("b", "down");
      try {
        const down = await linkState("eth0", { netns });
        assert.equal(down.up, false);
        assert.equal(down.carrier, false);
      } finally {
        await topology.setLink("b", "up");
      }
      assert.ok(await eventually(async () => (await linkState("eth0", { netns })).carrier, 3000));
    });
  });

  describe("gratuitous ARP", () => {
    it("moves a client's existing neighbour entry for the VIP from A's MAC to B's", async () => {
      const a = topology.host("a");
      const b = topology.host("b");
      const ip = vip(110);
      await setArpAccept("client", 0);
      await addAddress("eth0", ip, 24, { netns: a.netns });
      await contact("client", ip);
      assert.equal((await topology.neighbour("client", ip))?.mac, a.mac);

      // A fails; B takes the VIP. Without an announcement the client keeps A's MAC.
      await removeAddress("eth0", ip, 24, { netns: a.netns });
      await addAddress("eth0", ip, 24, { netns: b.netns });
      assert.equal((await topology.neighbour("client", ip))?.mac, a.mac);

      const sent = await inHost(
        "b",
        `return arp.announceBurst("eth0", [${JSON.stringify(ip)}], { repeat: 2, intervalMs: 50 });`,
      );
      assert.equal(sent, 4);
      const moved = await eventually(
        async () => (await topology.neighbour("client", ip))?.mac === b.mac,
        2000,
      );
      assert.ok(
        moved,
        `client still maps ${ip} to ${(await topology.neighbour("client", ip))?.mac}`,
      );
      await removeAddress("eth0", ip, 24, { netns: b.netns });
    });

    it("stops announcing a VIP given up during the burst", async () => {
      // Two VIPs, three rounds; after the first round only the second is still held: a late
      // announcement of the first would point clients back at this host.
      const [given, kept] = [vip(113), vip(114)];
      const sent = await inHost(
        "b",
        `return arp.announceBurst("eth0", ${JSON.stringify([given, kept])}, { repeat: 3, intervalMs: 20, stillHeld: (v) => v === ${JSON.stringify(kept)} });`,
      );
      assert.equal(sent, 2 * 2 + 2 * 2 * 1, "round 1: both VIPs, rounds 2-3: the held one only");
      const none = await inHost(
        "b",
        `return arp.announceBurst("eth0", ${JSON.stringify([given])}, { repeat: 3, intervalMs: 20, stillHeld: () => false });`,
      );
      assert.equal(none, 2, "only the first round, sent while it was held");
    });

    it("with arp_accept=0 creates no entry for an unknown IP (but updates a known one)", async () => {
      const a = topology.host("a");
      const b = topology.host("b");
      const known = vip(111);
      const unknown = vip(112);
      await setArpAccept("client", 0);
      await addAddress("eth0", known, 24, { netns: a.netns });
      await contact("client", known);
      assert.equal((await topology.neighbour("client", known))?.mac, a.mac);
      await removeAddress("eth0", known, 24, { netns: a.netns });

      // One burst for both: the known entry moving proves the frames reached the client.
      await inHost("b", `return arp.announce("eth0", ${JSON.stringify([known, unknown])});`);
      assert.ok(
        await eventually(
          async () => (await topology.neighbour("client", known))?.mac === b.mac,
          2000,
        ),
      );
      assert.equal(await topology.neighbour("client", unknown), undefined);
    });

    it("with arp_accept=1 creates an entry for an unknown IP", async () => {
      const b = topology.host("b");
      const unknown = vip(113);
      await setArpAccept("client", 1);
      try {
        assert.equal(await topology.neighbour("client", unknown), undefined);
        await inHost("b", `return arp.announce("eth0", [${JSON.stringify(unknown)}]);`);
        assert.ok(
          await eventually(
            async () => (await topology.neighbour("client", unknown))?.mac === b.mac,
            2000,
          ),
        );
      } finally {
        await setArpAccept("client", 0);
      }
    });

    it("sends each form on request and rejects bad input with stable codes", async () => {
      const counts = await inHost(
        "b",
        `const ips = ["${vip(120)}", "${vip(121)}", "${vip(122)}"];
         return [arp.announce("eth0", ips), arp.announce("eth0", ips, { forms: "request" }),
                 arp.announce("eth0", ips, { forms: "reply" }), arp.interfaceMac("eth0")];`,
      );
      assert.deepEqual(counts, [6, 3, 3, topology.host("b").mac]);
      assert.throws(
        () => announce("fipa-none0", ["198.18.0.1"]),
        (error) => error instanceof ArpError && error.code === "ARP_NO_INTERFACE",
      );
      const invalid = await inHost(
        "b",
        `try { arp.announce("eth0", ["198.18.0.300"]); return "sent"; } catch (e) { return e.code; }`,
      );
      assert.equal(invalid, "ARP_INVALID_ARGUMENT");
      await assert.rejects(probeOccupied("fipa-none0", "198.18.0.1", 50), {
        code: "ARP_NO_INTERFACE",
      });
    });
  });

  describe("occupancy probe", () => {
    it("reports a free VIP as not occupied", async () => {
      const result = await inHost("a", `return arp.probeOccupied("eth0", "${vip(130)}", 200);`);
      assert.deepEqual(result, { occupied: false });
    });

    it("reports a VIP held by another namespace as occupied, with its MAC", async () => {
      const b = topology.host("b");
      const ip = vip(131);
      await addAddress("eth0", ip, 24, { netns: b.netns });
      try {
        const result = await inHost("a", `return arp.probeOccupied("eth0", "${ip}", 500);`);
        assert.deepEqual(result, { occupied: true, mac: b.mac });
        const many = await inHost(
          "a",
          `return arp.probeOccupiedMany("eth0", ["${vip(132)}", "${ip}"], 500);`,
        );
        assert.deepEqual(many, [
          { ip: vip(132), occupied: false },
          { ip, occupied: true, mac: b.mac },
        ]);
      } finally {
        await removeAddress("eth0", ip, 24, { netns: b.netns });
      }
    });

    it("does not block the event loop while it waits", async () => {
      const ticks = await inHost(
        "a",
        `let ticks = 0;
         const timer = setInterval(() => { ticks++; }, 10);
         await arp.probeOccupied("eth0", "${vip(133)}", 200);
         clearInterval(timer);
         return ticks;`,
      );
      assert.equal(typeof ticks, "number");
      assert.ok((ticks as number) > 0, "no timer fired during the probe");
    });
  });

  describe("harness", () => {
    it("cuts and heals the link between two hosts", async () => {
      const b = topology.host("b");
      const probeB = () => inHost("a", `return arp.probeOccupied("eth0", "${b.address}", 300);`);
      assert.deepEqual(await probeB(), { occupied: true, mac: b.mac });
      await topology.dropBetween("a", "b");
      try {
        assert.deepEqual(await probeB(), { occupied: false });
      } finally {
        await topology.heal("a", "b");
      }
      assert.deepEqual(await probeB(), { occupied: true, mac: b.mac });
    });

    it("destroy() kills spawned processes and deletes namespaces, also when called twice", async () => {
      const second = await createTopology({ prefix: "fipa-hns-", hosts: ["x"] });
      let destroyed = false;
      try {
        const child = second.spawn("x", "sleep", ["60"]);
        await new Promise((resolve) => child.once("spawn", resolve));
        const pid = child.pid!;
        assert.ok(existsSync("/run/netns/fipa-hns-x"));
        await second.destroy();
        destroyed = true;
        await second.destroy();
        assert.throws(() => process.kill(pid, 0), { code: "ESRCH" });
        assert.ok(!existsSync("/run/netns/fipa-hns-x"));
        assert.ok(!existsSync("/run/netns/fipa-hns-br"));
      } finally {
        if (!destroyed) await second.destroy();
      }
    });
  });
});
