import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canonicalIp, ipv6Text, ipv6Value, ipv6VipProblem, sameIpv6Prefix } from "./ipv6.ts";

describe("IPv6 addresses", () => {
  it("prints the RFC 5952 form, as inet_ntop and `ip` do", () => {
    const cases: [string, string][] = [
      ["2001:DB8::1", "2001:db8::1"],
      ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
      // The longest run of zeros is compressed; of two equal runs, the first.
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["fd00::a:0:0:0:1", "fd00:0:0:a::1"],
      // A single zero group stays.
      ["1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"],
      ["2001:db8::", "2001:db8::"],
      ["::", "::"],
      ["198.18.0.1", "198.18.0.1"],
    ];
    for (const [written, canonical] of cases) assert.equal(canonicalIp(written), canonical);
  });

  it("reads the 128-bit value, embedded IPv4 included, and refuses what is not IPv6", () => {
    assert.equal(ipv6Value("::1"), 1n);
    assert.equal(ipv6Value("::ffff:198.18.0.1"), 0xffffc6120001n);
    assert.equal(ipv6Text(0x20010db8n << 96n), "2001:db8::");
    assert.equal(ipv6Value("198.18.0.1"), undefined);
    assert.equal(ipv6Value("fe80::1%eth0"), undefined);
    assert.equal(ipv6Value("2001:db8::g"), undefined);
    for (const bad of [
      "",
      ":",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      "12345::",
      "1:2:3:4:5:6:7::8",
      "::ffff:1.2.3.256",
      "::1.2.3",
      ":::",
    ]) {
      assert.equal(ipv6Value(bad), undefined, bad);
    }
    assert.equal(ipv6Value("1:2:3:4:5:6:7::"), 0x00010002000300040005000600070000n);
    assert.equal(ipv6Value("::2:3:4:5:6:7:8"), 0x00000002000300040005000600070008n);
  });

  it("names why an address cannot float", () => {
    const problem = (text: string) => ipv6VipProblem(ipv6Value(text)!);
    assert.match(problem("fe80::5") ?? "", /link-local/);
    assert.match(problem("febf::5") ?? "", /link-local/);
    assert.match(problem("ff02::1") ?? "", /multicast/);
    assert.match(problem("::") ?? "", /unspecified/);
    assert.match(problem("::1") ?? "", /loopback/);
    assert.match(problem("::ffff:198.18.0.1") ?? "", /IPv4-mapped/);
    assert.equal(problem("fec0::5"), undefined);
    assert.equal(problem("2001:db8::100"), undefined);
    assert.equal(problem("fd00::100"), undefined);
  });

  it("compares prefixes", () => {
    const a = ipv6Value("2001:db8:1::5")!;
    assert.ok(sameIpv6Prefix(a, ipv6Value("2001:db8:1::ffff")!, 64));
    assert.ok(!sameIpv6Prefix(a, ipv6Value("2001:db8:2::5")!, 64));
    assert.ok(sameIpv6Prefix(a, ipv6Value("2001:db8:2::5")!, 32));
  });
});
