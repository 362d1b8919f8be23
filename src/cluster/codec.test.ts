import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  COUNTER_MAX,
  CodecError,
  DATAGRAM_BYTES_MAX,
  type DatagramHeader,
  decodeDatagram,
  encodeDatagram,
} from "./codec.ts";

const key = Buffer.alloc(32, 7);
const otherKey = Buffer.alloc(32, 8);
const header: DatagramHeader = {
  cluster: "prod",
  from: "node-a",
  to: "node-b",
  incarnation: 1_717_171_717_171,
  seq: 42,
  echo: 1_717_171_717_999,
};
const payload = { type: "heartbeat", term: 3, hears: ["node-b", "node-c"], health: { ok: true } };

/** Builds a datagram field by field, so tests can put any value in any field. */
function craft(fields: {
  magic?: string;
  version?: number;
  cluster?: Buffer | string;
  from?: Buffer | string;
  to?: Buffer | string;
  incarnation?: bigint;
  seq?: bigint;
  echo?: bigint;
  body?: Buffer | string;
  bodyLength?: number;
  macKey?: Buffer;
  trailing?: Buffer;
}): Buffer {
  const name = (v: Buffer | string) => {
    const b = Buffer.from(v);
    return Buffer.concat([Buffer.from([b.length]), b]);
  };
  const u64 = (v: bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    return b;
  };
  const body = Buffer.from(fields.body ?? JSON.stringify(payload));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(fields.bodyLength ?? body.length);
  const signed = Buffer.concat([
    Buffer.from(fields.magic ?? "FIP", "latin1"),
    Buffer.from([fields.version ?? 2]),
    name(fields.cluster ?? header.cluster),
    name(fields.from ?? header.from),
    name(fields.to ?? header.to),
    u64(fields.incarnation ?? BigInt(header.incarnation)),
    u64(fields.seq ?? BigInt(header.seq)),
    u64(fields.echo ?? BigInt(header.echo)),
    length,
    body,
  ]);
  const mac = createHmac("sha256", fields.macKey ?? key)
    .update(signed)
    .digest();
  return Buffer.concat([signed, mac, fields.trailing ?? Buffer.alloc(0)]);
}

function reasonOf(datagram: Buffer, cluster = "prod"): string {
  const result = decodeDatagram(key, cluster, datagram);
  return result.ok ? "ok" : result.reason;
}

describe("codec", () => {
  it("round-trips header and payload", () => {
    const result = decodeDatagram(key, "prod", encodeDatagram(key, header, payload));
    assert.equal(result.ok, true);
    assert.ok(result.ok);
    assert.deepEqual(result.header, header);
    assert.deepEqual(result.payload, payload);
  });

  it("round-trips UTF-8 names, the counter limits and a scalar payload", () => {
    const edge = {
      cluster: "grappe-été",
      from: "nœud-1",
      to: "узел",
      incarnation: COUNTER_MAX,
      seq: 1,
      echo: 0,
    };
    const result = decodeDatagram(key, "grappe-été", encodeDatagram(key, edge, null));
    assert.ok(result.ok);
    assert.deepEqual(result.header, edge);
    assert.equal(result.payload, null);
  });

  it("the crafting helper agrees with the encoder byte for byte", () => {
    assert.deepEqual(craft({}), encodeDatagram(key, header, payload));
  });

  it("drops a datagram authenticated with another key as bad-mac", () => {
    assert.equal(reasonOf(encodeDatagram(otherKey, header, payload)), "bad-mac");
    assert.equal(reasonOf(craft({ macKey: otherKey })), "bad-mac");
  });

  it("produces each format drop reason from a crafted datagram", () => {
    const valid = craft({});
    const cases: Array<[string, Buffer, string?]> = [
      ["truncated", Buffer.alloc(0)],
      ["truncated", Buffer.from("FI")],
      ["truncated", Buffer.from("FIP")],
      ["truncated", valid.subarray(0, valid.length - 1)],
      ["truncated", valid.subarray(0, 20)],
      ["truncated", craft({ bodyLength: 1_000_000 })],
      ["bad-magic", craft({ magic: "FIQ" })],
      ["bad-magic", Buffer.from("garbage that is not a datagram")],
      ["bad-version", craft({ version: 1 })],
      ["bad-version", craft({ version: 3 })],
      ["bad-version", craft({ version: 0 })],
      ["foreign-cluster", craft({ cluster: "staging" })],
      ["foreign-cluster", craft({}), "prod2"],
      [
        "bad-mac",
        Buffer.concat([valid.subarray(0, valid.length - 1), Buffer.from([valid.at(-1)! ^ 1])]),
      ],
      ["malformed", craft({ trailing: Buffer.from([0]) })],
      ["malformed", craft({ body: "{not json" })],
      ["malformed", craft({ body: Buffer.from([0x22, 0xff, 0x22]) })],
      ["malformed", craft({ from: Buffer.from([0xc3, 0x28]) })],
      ["malformed", craft({ from: "" })],
      ["malformed", craft({ to: "" })],
      ["malformed", craft({ seq: 0n })],
      ["malformed", craft({ incarnation: 0n })],
      ["malformed", craft({ incarnation: BigInt(COUNTER_MAX) + 1n })],
      ["malformed", craft({ seq: 2n ** 64n - 1n })],
      ["malformed", craft({ echo: BigInt(COUNTER_MAX) + 1n })],
      ["too-large", Buffer.alloc(DATAGRAM_BYTES_MAX + 1)],
      ["too-large", craft({ body: JSON.stringify("x".repeat(DATAGRAM_BYTES_MAX)) })],
    ];
    for (const [expected, datagram, cluster] of cases) {
      assert.equal(
        reasonOf(datagram, cluster),
        expected,
        `expected ${expected} for ${datagram.toString("hex").slice(0, 80)}`,
      );
    }
  });

  it("refuses to encode out-of-range headers and unserialisable or oversized payloads", () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        assert.ok(error instanceof CodecError);
        return error.code;
      }
      return "no error";
    };
    assert.equal(
      code(() => encodeDatagram(key, { ...header, seq: 0 }, 1)),
      "INVALID_HEADER",
    );
    assert.equal(
      code(() => encodeDatagram(key, { ...header, incarnation: 1.5 }, 1)),
      "INVALID_HEADER",
    );
    assert.equal(
      code(() => encodeDatagram(key, { ...header, incarnation: COUNTER_MAX * 2 }, 1)),
      "INVALID_HEADER",
    );
    assert.equal(
      code(() => encodeDatagram(key, { ...header, echo: -1 }, 1)),
      "INVALID_HEADER",
    );
    assert.equal(
      code(() => encodeDatagram(key, { ...header, from: "" }, 1)),
      "INVALID_HEADER",
    );
    assert.equal(
      code(() => encodeDatagram(key, { ...header, cluster: "c".repeat(256) }, 1)),
      "INVALID_HEADER",
    );
    assert.equal(
      code(() => encodeDatagram(key, { ...header, to: "\ud800" }, 1)),
      "INVALID_HEADER",
    );
    assert.equal(
      code(() => encodeDatagram(key, header, undefined)),
      "PAYLOAD_NOT_JSON",
    );
    assert.equal(
      code(() => encodeDatagram(key, header, { n: 1n })),
      "PAYLOAD_NOT_JSON",
    );
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    assert.equal(
      code(() => encodeDatagram(key, header, loop)),
      "PAYLOAD_NOT_JSON",
    );
    assert.equal(
      code(() => encodeDatagram(key, header, "x".repeat(DATAGRAM_BYTES_MAX))),
      "DATAGRAM_TOO_LARGE",
    );
  });
});

describe("codec fuzzing", () => {
  const names = fc
    .string({ minLength: 1, maxLength: 40, unit: "grapheme" })
    .filter((s) => Buffer.byteLength(s) <= 255);
  const headers = fc.record({
    cluster: fc.constant("prod"),
    from: names,
    to: names,
    incarnation: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    echo: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  });
  const payloads = fc.jsonValue({ maxDepth: 3 });

  it("never throws and never accepts arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.boolean(), (bytes, withPrefix) => {
        // Half the inputs start like a real datagram, to reach the deeper parsing paths.
        const prefix = withPrefix ? craft({}).subarray(0, 9) : Buffer.alloc(0);
        const result = decodeDatagram(key, "prod", Buffer.concat([prefix, bytes]));
        assert.equal(result.ok, false);
      }),
      { numRuns: 2000 },
    );
  });

  it("accepts every encoded datagram and returns exactly what was sent", () => {
    fc.assert(
      fc.property(headers, payloads, (h, p) => {
        const result = decodeDatagram(key, "prod", encodeDatagram(key, h, p));
        assert.ok(result.ok);
        assert.deepEqual(result.header, { ...h });
        // JSON normalises -0 to 0; compare through JSON like the wire does.
        assert.deepEqual(result.payload, JSON.parse(JSON.stringify(p)));
      }),
      { numRuns: 500 },
    );
  });

  const mutations = fc.oneof(
    fc.record({
      kind: fc.constant("flip" as const),
      bits: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
    }),
    fc.record({ kind: fc.constant("truncate" as const), keep: fc.nat() }),
    fc.record({
      kind: fc.constant("extend" as const),
      extra: fc.uint8Array({ minLength: 1, maxLength: 64 }),
    }),
  );

  it("never throws and never accepts a mutated datagram (bit flips, truncation, extension)", () => {
    fc.assert(
      fc.property(headers, payloads, mutations, (h, p, mutation) => {
        const original = encodeDatagram(key, h, p);
        let mutated: Buffer;
        if (mutation.kind === "flip") {
          mutated = Buffer.from(original);
          for (const bit of mutation.bits) {
            const at = Math.floor(bit / 8) % mutated.length;
            mutated[at] = mutated[at]! ^ (1 << (bit % 8));
          }
        } else if (mutation.kind === "truncate") {
          mutated = original.subarray(0, mutation.keep % original.length);
        } else {
          mutated = Buffer.concat([original, mutation.extra]);
        }
        const result = decodeDatagram(key, "prod", mutated);
        if (mutated.equals(original)) assert.equal(result.ok, true);
        else assert.equal(result.ok, false, `accepted a ${mutation.kind} mutation`);
      }),
      { numRuns: 3000 },
    );
  });

  it("screens the raw sender and recipient before the MAC: a screened datagram costs no MAC and keeps the screen's reason", () => {
    const seen: string[] = [];
    const screen = (from: Buffer, to: Buffer) => {
      seen.push(`${from.toString()}>${to.toString()}`);
      return from.toString() === "node-a" ? undefined : ("unknown-sender" as const);
    };
    // Wrong key: the MAC would fail, but the screen decides first.
    const forged = encodeDatagram(otherKey, { ...header, from: "node-c" }, { type: "x" });
    assert.deepEqual(decodeDatagram(key, "prod", forged, screen), {
      ok: false,
      reason: "unknown-sender",
    });
    // Passing the screen is no admission: the MAC is still checked.
    const wrongKey = encodeDatagram(otherKey, header, { type: "x" });
    assert.deepEqual(decodeDatagram(key, "prod", wrongKey, screen), {
      ok: false,
      reason: "bad-mac",
    });
    const genuine = encodeDatagram(key, header, { type: "x" });
    assert.equal(decodeDatagram(key, "prod", genuine, screen).ok, true);
    assert.deepEqual(seen, ["node-c>node-b", "node-a>node-b", "node-a>node-b"]);
  });
});
