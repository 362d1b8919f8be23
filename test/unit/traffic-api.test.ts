import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Fastify from "fastify";
import { parseDurationMs, parseTimeMs, trafficRoutes } from "../../src/traffic/api.ts";
import { ChannelError } from "../../src/traffic/backup-channel.ts";
import type { TrafficQueryInput, TrafficQueryService } from "../../src/traffic/traffic-node.ts";

function service(calls: TrafficQueryInput[]): TrafficQueryService {
  return {
    currentTable: () => ({ version: 3, rows: [] }),
    async query(input) {
      calls.push(input);
      if (input.node === "ghost") throw new ChannelError("UNKNOWN_NODE", "no such node");
      if (input.node === "far") throw new ChannelError("CONNECT_FAILED", "unreachable");
      return {
        node: input.node,
        status: "Failed",
        answeredBy: "n5",
        fromBackup: true,
        tableVersion: 3,
        buckets: [],
      };
    },
  };
}

async function app(calls: TrafficQueryInput[]) {
  const a = Fastify();
  await a.register(trafficRoutes, { traffic: service(calls), nowMs: () => 10_000_000 });
  return a;
}

describe("traffic HTTP route", () => {
  it("parses times and steps", () => {
    assert.equal(parseDurationMs("10s"), 10_000);
    assert.equal(parseDurationMs("250"), 250);
    assert.equal(parseDurationMs("1x"), undefined);
    assert.equal(parseTimeMs("now-1m", 100_000), 40_000);
    assert.equal(parseTimeMs("1970-01-01T00:00:01Z", 0), 1000);
    assert.equal(parseTimeMs("yesterday", 0), undefined);
  });

  it("passes the query through and returns status and answering node", async () => {
    const calls: TrafficQueryInput[] = [];
    const a = await app(calls);
    const r = await a.inject({ url: "/v1/traffic/n4?from=1000&to=now&step=10s&iface=eth0" });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(calls, [
      { node: "n4", fromMs: 1000, toMs: 10_000_000, stepMs: 10_000, iface: "eth0" },
    ]);
    const body = r.json();
    assert.equal(body.status, "Failed");
    assert.equal(body.answeredBy, "n5");
    const table = await a.inject({ url: "/v1/traffic" });
    assert.equal(table.json().version, 3);
  });

  it("answers bad input and failures with JSON codes", async () => {
    const a = await app([]);
    const cases: [string, number, string][] = [
      ["/v1/traffic/n1?step=abc", 400, "BAD_STEP"],
      ["/v1/traffic/n1?from=soon", 400, "BAD_FROM"],
      ["/v1/traffic/n1?from=5000&to=4000", 400, "BAD_RANGE"],
      ["/v1/traffic/ghost", 404, "UNKNOWN_NODE"],
      ["/v1/traffic/far", 503, "CONNECT_FAILED"],
    ];
    for (const [url, status, code] of cases) {
      const r = await a.inject({ url });
      assert.equal(r.statusCode, status, url);
      assert.equal(r.json().error.code, code, url);
    }
  });
});
