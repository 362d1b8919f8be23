/**
 * `applyAddressBatch`: many address changes through one `ip -batch` process, with one outcome
 * per operation, on a real interface in a namespace.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { applyAddressBatch, listAddresses } from "../../src/adapters/linux/address.ts";
import { createTopology, skipUnlessRoot, type Topology } from "../../src/lab/topology.ts";

describe("address batches", { skip: skipUnlessRoot() }, () => {
  let topology: Topology;
  before(async () => {
    topology = await createTopology({ prefix: "fipab-", hosts: ["a"] });
  });
  after(async () => {
    await topology?.destroy();
  });

  it("adds, re-times and removes 200 addresses in order, reporting each outcome", async () => {
    const host = topology.host("a");
    const ips = Array.from(
      { length: 200 },
      (_, i) => `198.19.${Math.floor(i / 200)}.${(i % 200) + 1}`,
    );
    const options = { netns: host.netns };
    const added = await applyAddressBatch(
      ips.map((ip) => ({ op: "add" as const, iface: host.iface, ip, prefix: 16, validLftSec: 5 })),
      options,
    );
    assert.deepEqual(added.filter(Boolean), []);
    const present = (await listAddresses(host.iface, options)).filter((a) =>
      a.ip.startsWith("198.19."),
    );
    assert.equal(present.length, 200);
    assert.ok(present.every((a) => a.validLftSec !== undefined && a.validLftSec <= 5));

    // Adding again and removing what is absent count as done; a bad device is an error.
    const mixed = await applyAddressBatch(
      [
        { op: "add", iface: host.iface, ip: ips[0]!, prefix: 16, validLftSec: 5 },
        { op: "del", iface: host.iface, ip: "198.19.9.9", prefix: 16 },
        { op: "change", iface: host.iface, ip: ips[1]!, prefix: 16, validLftSec: 30 },
        { op: "add", iface: "nosuch0", ip: "198.19.9.10", prefix: 16, validLftSec: 5 },
      ],
      options,
    );
    assert.equal(mixed[0], undefined);
    assert.equal(mixed[1], undefined);
    assert.equal(mixed[2], undefined);
    assert.equal(mixed[3]?.code, "ADDRESS_NO_INTERFACE");
    const renewed = (await listAddresses(host.iface, options)).find((a) => a.ip === ips[1]);
    assert.ok(renewed?.validLftSec !== undefined && renewed.validLftSec > 5);

    const removed = await applyAddressBatch(
      ips.map((ip) => ({ op: "del" as const, iface: host.iface, ip, prefix: 16 })),
      options,
    );
    assert.deepEqual(removed.filter(Boolean), []);
    const left = (await listAddresses(host.iface, options)).filter((a) =>
      a.ip.startsWith("198.19."),
    );
    assert.deepEqual(left, []);
  });
});
