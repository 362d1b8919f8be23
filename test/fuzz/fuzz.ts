/**
 * A small corpus-driven fuzzer for floatip's decoders (test/unit/fuzz.test.ts runs it).
 *
 * Each target has a corpus directory under test/fuzz/corpus/TARGET: the seed inputs the
 * mutations start from, and every input that once broke the target (kept as a regression
 * case, named `crash-HASH`). A run first replays the whole corpus, then tries a fixed number
 * of mutated inputs derived from it with a seeded generator. The seed changes from run to run
 * (printed; FLOATIP_FUZZ_SEED repeats one), so CI explores new inputs every time while a
 * failure can be replayed exactly. FLOATIP_FUZZ_SCALE multiplies the number of cases for a
 * longer hunt (`npm run fuzz` uses 20).
 *
 * The oracle is the target's own `check`: it throws when the target misbehaved (an exception
 * the decoder must not throw, a 500, a dead server). A failing input is written to the corpus
 * (so that the next run of this checkout replays it first) and printed in base64 (so that a
 * CI failure can be added to the corpus by hand).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SeededRandom } from "../../src/core/prng.ts";

export const corpusRoot = join(import.meta.dirname, "corpus");

export interface FuzzTarget {
  readonly name: string;
  /** Mutated cases per run (on top of the corpus). */
  readonly cases: number;
  /** Throws when the target misbehaved on `input`. */
  check(input: Buffer): void | Promise<void>;
}

export interface FuzzReport {
  readonly seed: number;
  readonly corpus: number;
  readonly cases: number;
}

/** Reads a target's corpus: every file in its directory, sorted by name. */
export function readCorpus(target: string): Buffer[] {
  const dir = join(corpusRoot, target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((file) => readFileSync(join(dir, file)));
}

/** The seed of this run: FLOATIP_FUZZ_SEED, or a fresh one. */
export function runSeed(): number {
  const fixed = process.env.FLOATIP_FUZZ_SEED;
  if (fixed !== undefined && /^\d+$/.test(fixed)) return Number(fixed) >>> 0;
  return Math.floor(Math.random() * 2 ** 32) >>> 0;
}

const interesting = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2c];
const tokens = [
  "null",
  "true",
  "-1",
  "0",
  "1e308",
  "9007199254740993",
  '""',
  "[]",
  "{}",
  '"\\u0000"',
  '"__proto__"',
  '{"__proto__":{"x":1}}',
  "NaN",
  "1.5",
  "-0",
  "\n",
  "'",
  "~",
  "&a",
  "*a",
  "!!binary",
  ": ",
  "- ",
  "  ",
];

/** One mutation of `input` (bytes), sometimes spliced with another corpus entry. */
export function mutate(random: SeededRandom, input: Buffer, corpus: readonly Buffer[]): Buffer {
  let bytes = Buffer.from(input);
  const rounds = 1 + random.int(0, 4);
  for (let round = 0; round < rounds; round += 1) {
    const at = bytes.length === 0 ? 0 : random.int(0, bytes.length);
    switch (random.int(0, 9)) {
      case 0: // flip a bit
        if (bytes.length > 0) bytes[at] = bytes[at]! ^ (1 << random.int(0, 8));
        break;
      case 1: // an interesting byte
        if (bytes.length > 0) bytes[at] = random.pick(interesting);
        break;
      case 2: {
        // delete a range
        const end = Math.min(bytes.length, at + 1 + random.int(0, 16));
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(end)]);
        break;
      }
      case 3: {
        // duplicate a range
        const end = Math.min(bytes.length, at + 1 + random.int(0, 32));
        bytes = Buffer.concat([
          bytes.subarray(0, end),
          bytes.subarray(at, end),
          bytes.subarray(end),
        ]);
        break;
      }
      case 4: {
        // insert random bytes
        const extra = Buffer.alloc(1 + random.int(0, 8));
        for (let i = 0; i < extra.length; i += 1) extra[i] = random.int(0, 256);
        bytes = Buffer.concat([bytes.subarray(0, at), extra, bytes.subarray(at)]);
        break;
      }
      case 5: // truncate
        bytes = bytes.subarray(0, at);
        break;
      case 6: {
        // insert a token that parsers care about
        const token = Buffer.from(random.pick(tokens));
        bytes = Buffer.concat([bytes.subarray(0, at), token, bytes.subarray(at)]);
        break;
      }
      case 7: {
        // splice with another corpus entry
        const other = corpus.length > 0 ? random.pick(corpus) : bytes;
        const from = other.length === 0 ? 0 : random.int(0, other.length);
        bytes = Buffer.concat([bytes.subarray(0, at), other.subarray(from)]);
        break;
      }
      default: {
        // change a number in text
        const text = bytes.toString("latin1");
        const numbers = [...text.matchAll(/\d+/g)];
        if (numbers.length === 0) break;
        const n = random.pick(numbers);
        const replacement = random.pick(["0", "-1", "65536", "4294967296", "1e21", "99999999999"]);
        bytes = Buffer.from(
          text.slice(0, n.index) + replacement + text.slice(n.index + n[0].length),
          "latin1",
        );
      }
    }
    if (bytes.length > 64 * 1024) bytes = bytes.subarray(0, 64 * 1024);
  }
  return bytes;
}

/** Keeps a failing input in the corpus; returns the file's name. */
export function keepCrash(target: string, input: Buffer): string {
  const dir = join(corpusRoot, target);
  mkdirSync(dir, { recursive: true });
  const name = `crash-${createHash("sha256").update(input).digest("hex").slice(0, 16)}`;
  writeFileSync(join(dir, name), input);
  return join(dir, name);
}

/**
 * Replays the corpus, then `target.cases` mutations. Throws on the first failure with the
 * seed, the case, where the input was kept and the input in base64.
 */
export async function fuzz(target: FuzzTarget, seed: number): Promise<FuzzReport> {
  const corpus = readCorpus(target.name);
  if (corpus.length === 0) throw new Error(`no corpus for ${target.name} in ${corpusRoot}`);
  const random = new SeededRandom(seed);
  const attempt = async (input: Buffer, what: string) => {
    try {
      await target.check(input);
    } catch (error) {
      const kept = keepCrash(target.name, input);
      const reason = error instanceof Error ? (error.stack ?? error.message) : String(error);
      throw new Error(
        `${target.name}: ${what} (seed ${seed}) broke it; input kept as ${kept}\n` +
          `input (base64): ${input.toString("base64")}\n${reason}`,
      );
    }
  };
  for (const [i, input] of corpus.entries()) await attempt(input, `corpus entry ${i}`);
  const scale = Number(process.env.FLOATIP_FUZZ_SCALE ?? "1");
  const cases = Math.round(target.cases * (Number.isFinite(scale) && scale > 0 ? scale : 1));
  for (let i = 0; i < cases; i += 1) {
    await attempt(mutate(random, random.pick(corpus), corpus), `case ${i}`);
  }
  return { seed, corpus: corpus.length, cases };
}
