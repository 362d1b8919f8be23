import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { loadNativeAddon } from "../adapters/linux/native-addon.ts";
import { type Mac, macFor, nativeMac, nodeMac } from "./mac.ts";

/** RFC 4231, test cases 1, 2, 6 and 7 (6 and 7: a key longer than a block, hashed first). */
const vectors = [
  {
    key: Buffer.alloc(20, 0x0b),
    data: Buffer.from("Hi There"),
    mac: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
  },
  {
    key: Buffer.from("Jefe"),
    data: Buffer.from("what do ya want for nothing?"),
    mac: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  },
  {
    key: Buffer.alloc(131, 0xaa),
    data: Buffer.from("Test Using Larger Than Block-Size Key - Hash Key First"),
    mac: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
  },
  {
    key: Buffer.alloc(131, 0xaa),
    data: Buffer.from(
      "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
    ),
    mac: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
  },
];

function signed(mac: Mac, data: Buffer): Buffer {
  const out = Buffer.alloc(32);
  mac.sign(data, data.length, out, 0);
  return out;
}

function native(key: Buffer): Mac {
  const mac = nativeMac(key);
  assert.ok(mac, "the native addon has no HMAC: run scripts/setup.sh");
  return mac;
}

describe("the codec's HMAC-SHA-256", () => {
  for (const [name, make] of [
    ["native", native],
    ["Node's crypto", nodeMac],
  ] as const) {
    it(`${name}: the RFC 4231 vectors`, () => {
      for (const v of vectors) assert.equal(signed(make(v.key), v.data).toString("hex"), v.mac);
    });
  }

  it("native equals Node's crypto at every length around the block boundaries, any key", () => {
    const data = randomBytes(300);
    for (const keyLength of [1, 16, 32, 63, 64, 65, 200]) {
      const key = randomBytes(keyLength);
      const ours = native(key);
      for (let length = 0; length <= 300; length += 1) {
        const expected = createHmac("sha256", key).update(data.subarray(0, length)).digest();
        const out = Buffer.alloc(40);
        ours.sign(data, length, out, 8);
        assert.deepEqual(out.subarray(8), expected, `key ${keyLength} B, data ${length} B`);
        assert.ok(ours.verify(data, length, expected));
      }
    }
  });

  it("signs into the buffer it reads (the datagram's own tail) and verifies only the exact MAC", () => {
    const key = randomBytes(32);
    for (const mac of [native(key), nodeMac(key)]) {
      const datagram = Buffer.concat([randomBytes(100), Buffer.alloc(32)]);
      mac.sign(datagram, 100, datagram, 100);
      const tag = Buffer.from(datagram.subarray(100));
      assert.deepEqual(tag, createHmac("sha256", key).update(datagram.subarray(0, 100)).digest());
      assert.ok(mac.verify(datagram, 100, tag));
      for (let bit = 0; bit < 256; bit += 37) {
        const bad = Buffer.from(tag);
        bad[bit >> 3]! ^= 1 << (bit & 7);
        assert.equal(mac.verify(datagram, 100, bad), false, `bit ${bit} of the MAC flipped`);
      }
      const body = Buffer.from(datagram);
      body[3]! ^= 0x40;
      assert.equal(mac.verify(body, 100, tag), false, "a byte of the data flipped");
      assert.equal(mac.verify(datagram, 99, tag), false, "one byte less");
      assert.equal(mac.verify(datagram, 100, tag.subarray(0, 31)), false, "a short MAC");
    }
  });

  it("the addon refuses bad arguments with a TypeError instead of reading past a buffer", () => {
    const mac = native(randomBytes(32));
    const data = Buffer.alloc(10);
    assert.throws(() => mac.sign(data, 11, Buffer.alloc(32), 0), TypeError);
    assert.throws(() => mac.sign(data, 10, Buffer.alloc(32), 1), TypeError);
    assert.throws(() => mac.verify(data, 11, Buffer.alloc(32)), TypeError);
  });

  it("the addon reads a key state at any alignment (a slice at an odd offset)", () => {
    const addon = loadNativeAddon<{
      hmacKey(key: Buffer): Buffer;
      hmacSign(state: Buffer, data: Buffer, length: number, out: Buffer, offset: number): void;
      hmacVerify(state: Buffer, data: Buffer, length: number, mac: Buffer): boolean;
    }>(["hmacKey", "hmacSign", "hmacVerify"]);
    const key = randomBytes(32);
    const data = randomBytes(100);
    const expected = createHmac("sha256", key).update(data).digest();
    const state = addon.hmacKey(key);
    for (const at of [1, 2, 3, 5, 7]) {
      const shifted = Buffer.alloc(state.length + 8, 0xee);
      state.copy(shifted, at);
      const slice = shifted.subarray(at, at + state.length);
      const out = Buffer.alloc(32);
      addon.hmacSign(slice, data, data.length, out, 0);
      assert.deepEqual(out, expected, `state at offset ${at}`);
      assert.ok(addon.hmacVerify(slice, data, data.length, expected));
    }
  });

  it("macFor keeps one MAC per key buffer, the native one in a set-up checkout", () => {
    const key = randomBytes(32);
    assert.equal(macFor(key), macFor(key));
    assert.notEqual(macFor(key), macFor(Buffer.from(key)));
    const data = randomBytes(77);
    assert.deepEqual(signed(macFor(key), data), signed(nodeMac(key), data));
  });
});
