import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDurationMs, parseRelays } from "./config.ts";

const valid = {
  name: "web",
  listen: "198.18.0.100:80",
  protocol: "http",
  mode: "proxy",
  primary: "198.18.1.11:8080",
  standby: ["198.18.1.12:8080"],
  check: {
    kind: "http",
    path: "/health",
    expect_status: 200,
    interval: "100ms",
    timeout: "300ms",
    fall: 3,
    within: "1s",
    rise: 2,
  },
  connect_timeout: "200ms",
  failback: "after 10s",
  close_on_backend_down: true,
  close_standby_sessions_on_failback: false,
  max_connections: 10000,
};

describe("relay config", () => {
  it("parses the documented example", () => {
    const { relays, problems } = parseRelays([valid]);
    assert.deepEqual(problems, []);
    const relay = relays[0]!;
    assert.deepEqual(relay.listen, { host: "198.18.0.100", port: 80 });
    assert.deepEqual(relay.standby, [{ host: "198.18.1.12", port: 8080 }]);
    assert.deepEqual(relay.failback, { mode: "after", afterMs: 10_000 });
    assert.equal(relay.check.kind, "http");
    assert.equal(relay.check.intervalMs, 100);
    assert.equal(relay.check.withinMs, 1000);
    assert.equal(relay.connectTimeoutMs, 200);
  });

  it("takes IPv6 endpoints in brackets, in canonical form; nat mode refuses them", () => {
    const six = {
      ...valid,
      listen: "[2001:DB8::100]:80",
      primary: "[2001:db8:0:0::11]:8080",
      standby: ["198.18.1.12:8080"],
    };
    const { relays, problems } = parseRelays([six]);
    assert.deepEqual(problems, []);
    assert.deepEqual(relays[0]!.listen, { host: "2001:db8::100", port: 80 });
    assert.deepEqual(relays[0]!.primary, { host: "2001:db8::11", port: 8080 });
    const nat = parseRelays([{ ...six, mode: "nat" }]);
    assert.deepEqual(
      nat.problems.map((p) => p.path),
      ["relays[0].mode"],
    );
    for (const bad of ["2001:db8::100:80", "[ff02::1]:80", "[::]:80", "[2001:db8::1]:0"]) {
      const refused = parseRelays([{ ...valid, listen: bad }]);
      assert.deepEqual(
        refused.problems.map((p) => p.path),
        ["relays[0].listen"],
        bad,
      );
    }
  });

  it("fills defaults for a minimal relay", () => {
    const { relays, problems } = parseRelays([
      { name: "db", listen: "198.18.0.100:5432", primary: "198.18.1.11:5432" },
    ]);
    assert.deepEqual(problems, []);
    assert.equal(relays[0]!.mode, "proxy");
    assert.equal(relays[0]!.protocol, "tcp");
    assert.equal(relays[0]!.check.kind, "tcp");
    assert.deepEqual(relays[0]!.failback, { mode: "immediate" });
    assert.deepEqual(relays[0]!.standby, []);
    assert.equal(relays[0]!.maxConnectionsPerSource, 256);
    assert.equal(relays[0]!.idleTimeoutMs, 300_000);
  });

  it("takes a per-source connection limit, 0 for none, and refuses a negative one", () => {
    const off = parseRelays([{ ...valid, max_connections_per_source: 0 }]);
    assert.deepEqual(off.problems, []);
    assert.equal(off.relays[0]!.maxConnectionsPerSource, 0);
    const bad = parseRelays([{ ...valid, max_connections_per_source: -1 }]);
    assert.deepEqual(
      bad.problems.map((p) => p.path),
      ["relays[0].max_connections_per_source"],
    );
  });

  it("reports every problem at once with path and fix", () => {
    const { relays, problems } = parseRelays([
      {
        ...valid,
        listen: "nowhere",
        mode: "bridge",
        failback: "later",
        colour: "blue",
        check: { ...valid.check, interval: "fast", command: ["x"] },
      },
    ]);
    assert.deepEqual(relays, []);
    const paths = problems.map((p) => p.path).sort();
    assert.deepEqual(paths, [
      "relays[0].check.command",
      "relays[0].check.interval",
      "relays[0].colour",
      "relays[0].failback",
      "relays[0].listen",
      "relays[0].mode",
    ]);
    for (const p of problems) assert.ok(p.fix.length > 0);
  });

  it("rejects checks whose fall count cannot fit in the unit of time", () => {
    const { problems } = parseRelays([
      { ...valid, check: { kind: "tcp", interval: "1s", fall: 3, within: "1s" } },
    ]);
    assert.deepEqual(
      problems.map((p) => p.path),
      ["relays[0].check.within"],
    );
  });

  it("rejects duplicate names, listens and backends", () => {
    const { problems } = parseRelays([valid, { ...valid, standby: ["198.18.1.11:8080"] }]);
    assert.deepEqual(problems.map((p) => p.path).sort(), [
      "relays[1].listen",
      "relays[1].name",
      "relays[1].standby[0]",
    ]);
  });

  it("needs an exec command list for exec checks", () => {
    const { problems } = parseRelays([{ ...valid, check: { kind: "exec" } }]);
    assert.deepEqual(
      problems.map((p) => p.path),
      ["relays[0].check.command"],
    );
  });

  it("parses durations", () => {
    assert.equal(parseDurationMs("250ms"), 250);
    assert.equal(parseDurationMs("1.5s"), 1500);
    assert.equal(parseDurationMs("5m"), 300_000);
    assert.equal(parseDurationMs(40), 40);
    assert.equal(parseDurationMs("soon"), undefined);
    assert.equal(parseDurationMs(-1), undefined);
  });
});
