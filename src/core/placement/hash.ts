/**
 * Stable 32-bit string hashing for rendezvous (highest-random-weight) placement.
 *
 * Every node must rank members identically for the same VIP, in every run and on every
 * platform, so the hash is defined over the UTF-8 bytes of the string (not UTF-16 code units
 * or anything locale- or engine-dependent): FNV-1a 32-bit, followed by the MurmurHash3 `fmix32`
 * finaliser. FNV-1a alone mixes its last bytes poorly (strings that differ only in the final
 * character, like member ids "n1" and "n2", get scores that differ in few bits); the
 * finaliser spreads every input bit over the whole word. Results are unsigned (0..2^32-1).
 */

const fnvOffsetBasis = 0x811c9dc5;
const fnvPrime = 0x01000193;

/** FNV-1a 32-bit over the UTF-8 encoding of `text`. */
export function fnv1a32(text: string): number {
  let hash = fnvOffsetBasis;
  for (const byte of utf8Bytes(text)) {
    hash ^= byte;
    hash = Math.imul(hash, fnvPrime);
  }
  return hash >>> 0;
}

/** MurmurHash3 `fmix32`: a bijective avalanche step on a 32-bit word. */
export function mix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The placement hash: FNV-1a then avalanche. */
export function hash32(text: string): number {
  return mix32(fnv1a32(text));
}

/**
 * Rendezvous score of a (VIP address, member id) pair. The address is length-prefixed so that
 * no two distinct pairs serialise to the same string (e.g. "1.2.3.45"+"6" vs "1.2.3.4"+"56").
 */
export function rendezvousScore(address: string, memberId: string): number {
  return hash32(`${address.length}:${address}${memberId}`);
}

function* utf8Bytes(text: string): Generator<number> {
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (code < 0x80) {
      yield code;
    } else if (code < 0x800) {
      yield 0xc0 | (code >> 6);
      yield 0x80 | (code & 0x3f);
    } else if (code < 0x10000) {
      // Lone surrogates land here too; they are encoded as-is (WTF-8) so hashing never throws.
      yield 0xe0 | (code >> 12);
      yield 0x80 | ((code >> 6) & 0x3f);
      yield 0x80 | (code & 0x3f);
    } else {
      yield 0xf0 | (code >> 18);
      yield 0x80 | ((code >> 12) & 0x3f);
      yield 0x80 | ((code >> 6) & 0x3f);
      yield 0x80 | (code & 0x3f);
    }
  }
}
