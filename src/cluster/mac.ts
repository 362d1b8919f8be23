/**
 * The heartbeat codec's HMAC-SHA-256, one object per key. With the native addon the key's
 * padded blocks are hashed once (native/floatip_hmac.c) and a datagram costs two SHA-256
 * passes; Node's crypto builds an Hmac object, an OpenSSL context and the key schedule for
 * every datagram, about a tenth of an idle control plane's CPU at 20 rounds a second. Without
 * the addon (a checkout not set up, another platform) Node's crypto does it: same bytes.
 */
import { createHmac, createSecretKey, timingSafeEqual } from "node:crypto";
import { loadNativeAddon } from "../adapters/linux/native-addon.ts";

export const MAC_BYTES = 32;

export interface Mac {
  /** Writes the MAC of `data[0, length)` into `out[offset, offset + 32)`. */
  sign(data: Buffer, length: number, out: Buffer, offset: number): void;
  /** Whether `mac` (32 bytes) is the MAC of `data[0, length)`, compared in constant time. */
  verify(data: Buffer, length: number, mac: Buffer): boolean;
}

interface HmacAddon {
  hmacKey(key: Buffer): Buffer;
  hmacSign(state: Buffer, data: Buffer, length: number, out: Buffer, offset: number): void;
  hmacVerify(state: Buffer, data: Buffer, length: number, mac: Buffer): boolean;
}

/** Node's crypto, a KeyObject imported once. */
export function nodeMac(key: Buffer): Mac {
  const keyObject = createSecretKey(key);
  const digest = (data: Buffer, length: number) =>
    createHmac("sha256", keyObject).update(data.subarray(0, length)).digest();
  return {
    sign: (data, length, out, offset) => {
      digest(data, length).copy(out, offset);
    },
    verify: (data, length, mac) =>
      mac.length === MAC_BYTES && timingSafeEqual(digest(data, length), mac),
  };
}

/** The addon's, or undefined when the addon cannot be loaded or lacks it. */
export function nativeMac(key: Buffer): Mac | undefined {
  let addon: HmacAddon;
  try {
    addon = loadNativeAddon<HmacAddon>(["hmacKey", "hmacSign", "hmacVerify"]);
  } catch {
    return undefined;
  }
  const state = addon.hmacKey(key);
  return {
    sign: (data, length, out, offset) => addon.hmacSign(state, data, length, out, offset),
    verify: (data, length, mac) =>
      mac.length === MAC_BYTES && addon.hmacVerify(state, data, length, mac),
  };
}

const macs = new WeakMap<Buffer, Mac>();

/** The MAC for `key` (by buffer identity: a cluster's key is read once). */
export function macFor(key: Buffer): Mac {
  let mac = macs.get(key);
  if (mac === undefined) {
    mac = nativeMac(key) ?? nodeMac(key);
    macs.set(key, mac);
  }
  return mac;
}
