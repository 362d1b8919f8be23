import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { fnv1a32, hash32, mix32, rendezvousScore } from "./hash.ts";

/** Textbook FNV-1a over the bytes Node's own UTF-8 encoder produces. */
function referenceFnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, "utf8")) {
    hash = Number((BigInt((hash ^ byte) >>> 0) * 0x01000193n) % 0x100000000n);
  }
  return hash;
}

describe("placement hash", () => {
  it("matches the published FNV-1a 32-bit test vectors", () => {
    assert.equal(fnv1a32(""), 0x811c9dc5);
    assert.equal(fnv1a32("a"), 0xe40c292c);
    assert.equal(fnv1a32("foobar"), 0xbf9cf968);
  });

  it("hashes the UTF-8 bytes of any string, like a textbook FNV-1a", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 20 }), (text) => {
        assert.equal(fnv1a32(text), referenceFnv1a(text));
      }),
      { numRuns: 300 },
    );
  });

  it("avalanches: ids differing in their last character get scores far apart", () => {
    // fmix32 is a bijection with mix32(0) = 0; neighbouring inputs must differ in many bits.
    assert.equal(mix32(0), 0);
    const differingBits = (a: number, b: number) => (a ^ b).toString(2).replaceAll("0", "").length;
    assert.ok(differingBits(hash32("n1"), hash32("n2")) >= 8);
    assert.ok(
      differingBits(rendezvousScore("198.18.0.1", "n1"), rendezvousScore("198.18.0.1", "n2")) >= 8,
    );
  });

  it("spreads 300 VIPs roughly evenly over three members by highest score", () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i += 1) {
      const address = `198.18.${i >> 8}.${i & 255}`;
      const winner = ["n1", "n2", "n3"].reduce((best, id) =>
        rendezvousScore(address, id) > rendezvousScore(address, best) ? id : best,
      );
      counts.set(winner, (counts.get(winner) ?? 0) + 1);
    }
    for (const id of ["n1", "n2", "n3"]) {
      const count = counts.get(id) ?? 0;
      assert.ok(count >= 70 && count <= 130, `${id} won ${count} of 300`);
    }
  });
});
