/**
 * Per-VIP counters, pure part: counter names, the nft ruleset, parsing `nft -j list counters`
 * (the text below is the shape nft 1.0 prints) and the per-interval deltas.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  parseNftCounters,
  parseVipCounterName,
  renderVipCounterRuleset,
  vipCounterDeltas,
  vipCounterName,
} from "../../src/core/traffic/vip-counters.ts";

const counter = (name: string, bytes: number, packets: number, table = "floatip_traffic") => ({
  counter: { family: "inet", name, table, handle: 3, packets, bytes },
});

function nftJson(...entries: unknown[]): string {
  return JSON.stringify({
    nftables: [{ metainfo: { version: "1.0.6", json_schema_version: 1 } }, ...entries],
  });
}

describe("per-VIP counter names", () => {
  it("round-trips an address and a direction", () => {
    assert.equal(vipCounterName("198.18.0.100", "in"), "in_198_18_0_100");
    assert.deepEqual(parseVipCounterName("out_198_18_0_100"), {
      vip: "198.18.0.100",
      direction: "out",
    });
  });

  it("names IPv6 VIPs by their 32 hexadecimal digits, and reads them back canonically", () => {
    assert.equal(vipCounterName("2001:db8::100", "in"), "in6_20010db8000000000000000000000100");
    assert.deepEqual(parseVipCounterName("out6_20010db8000000000000000000000100"), {
      vip: "2001:db8::100",
      direction: "out",
    });
    assert.equal(parseVipCounterName("in6_20010db8"), undefined);
  });

  it("rejects what is not an IP address or not one of its names", () => {
    assert.throws(() => vipCounterName("198.18.0.300", "in"));
    assert.throws(() => vipCounterName("x; flush ruleset", "in"));
    assert.equal(parseVipCounterName("in_198_18_0_256"), undefined);
    assert.equal(parseVipCounterName("total_bytes"), undefined);
  });
});

describe("per-VIP nft ruleset", () => {
  it("counts to and from every VIP once, and replaces the table atomically", () => {
    const text = renderVipCounterRuleset(["198.18.0.101", "198.18.0.100", "198.18.0.101"]);
    const lines = text.split("\n").map((l) => l.trim());
    assert.equal(lines[0], "table inet floatip_traffic");
    assert.equal(lines[1], "delete table inet floatip_traffic");
    for (const vip of ["198.18.0.100", "198.18.0.101"]) {
      const name = vip.replaceAll(".", "_");
      assert.equal(lines.filter((l) => l === `counter in_${name} { }`).length, 1);
      assert.equal(
        lines.filter((l) => l === `ip daddr ${vip} counter name "in_${name}"`).length,
        1,
      );
      assert.equal(
        lines.filter((l) => l === `ip saddr ${vip} counter name "out_${name}"`).length,
        1,
      );
    }
    const six = renderVipCounterRuleset(["2001:db8::100", "198.18.0.100"]);
    assert.ok(
      six.includes('ip6 daddr 2001:db8::100 counter name "in6_20010db8000000000000000000000100"'),
    );
    assert.ok(
      six.includes('ip6 saddr 2001:db8::100 counter name "out6_20010db8000000000000000000000100"'),
    );
    assert.ok(six.includes('ip daddr 198.18.0.100 counter name "in_198_18_0_100"'));
    assert.ok(lines.includes("type filter hook prerouting priority -300; policy accept;"));
    assert.ok(lines.includes("type filter hook postrouting priority 300; policy accept;"));
  });

  it("has no hooks when no VIP is held", () => {
    const text = renderVipCounterRuleset([]);
    assert.ok(!text.includes("hook"));
    assert.ok(text.includes("table inet floatip_traffic {"));
  });
});

describe("parseNftCounters", () => {
  it("pairs in and out counters per VIP and skips foreign or malformed entries", () => {
    const text = nftJson(
      counter("in_198_18_0_100", 5000, 40),
      counter("out_198_18_0_100", 700, 30),
      counter("in_198_18_0_101", 10, 1),
      counter("out_198_18_0_101", 20, 2),
      counter("in_198_18_0_102", 1, 1), // no out counter: skipped
      counter("in_198_18_0_103", 1, 1, "other_table"),
      counter("out_198_18_0_103", 1, 1, "other_table"),
      counter("packets_seen", 9, 9),
      { counter: { family: "inet", table: "floatip_traffic", name: "in_198_18_0_104", bytes: -1 } },
      { table: { family: "inet", name: "floatip_traffic" } },
      null,
    );
    assert.deepEqual(parseNftCounters(text), [
      { vip: "198.18.0.100", rxBytes: 5000, rxPackets: 40, txBytes: 700, txPackets: 30 },
      { vip: "198.18.0.101", rxBytes: 10, rxPackets: 1, txBytes: 20, txPackets: 2 },
    ]);
  });

  it("reads an empty table as no readings and rejects text that is not nft JSON", () => {
    assert.deepEqual(parseNftCounters(nftJson()), []);
    assert.throws(() => parseNftCounters("Error: No such file or directory"));
    assert.throws(() => parseNftCounters('{"something": []}'));
  });
});

describe("vipCounterDeltas", () => {
  const reading = (vip: string, rxBytes: number, txBytes: number) => ({
    vip,
    rxBytes,
    rxPackets: rxBytes / 100,
    txBytes,
    txPackets: txBytes / 100,
  });

  it("gives increases since the baseline, from zero for a new VIP", () => {
    const before = new Map([["198.18.0.100", reading("198.18.0.100", 1000, 500)]]);
    const deltas = vipCounterDeltas(before, [
      reading("198.18.0.100", 3000, 800),
      reading("198.18.0.101", 200, 100),
    ]);
    assert.deepEqual(deltas, [
      { vip: "198.18.0.100", rxBytes: 2000, rxPackets: 20, txBytes: 300, txPackets: 3 },
      reading("198.18.0.101", 200, 100),
    ]);
  });

  it("treats a counter below its baseline as recreated (counts from zero)", () => {
    const before = new Map([["198.18.0.100", reading("198.18.0.100", 9000, 9000)]]);
    const [delta] = vipCounterDeltas(before, [reading("198.18.0.100", 300, 9100)]);
    assert.equal(delta?.rxBytes, 300);
    assert.equal(delta?.txBytes, 100);
  });
});
