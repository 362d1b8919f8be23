/**
 * The agent's local API through `fastify.inject()`, on an in-memory `AgentHandle`: every
 * route, the bearer-token rules, error shapes and codes, the Prometheus text and the OpenAPI
 * document.
 */

import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, beforeEach, describe, it } from "node:test";
import { Script } from "node:vm";
import type { FastifyInstance } from "fastify";
import { LoopMonitor } from "../../src/agent/loop-monitor.ts";
import { ApiSetupError } from "../../src/api/errors.ts";
import { InMemoryAgentHandle } from "../../src/api/in-memory-handle.ts";
import { createApiServer, parseWaitMs, reloadApiToken } from "../../src/api/server.ts";
import { parseWait } from "../../src/storage/api.ts";

const dir = mkdtempSync(join(tmpdir(), "floatip-api-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const tokenFile = join(dir, "api.token");
const token = "Zm9vYmFyLXNlY3JldC10b2tlbg";

const nodes = ["n1", "n2", "n3"];
const vips = ["198.18.0.100", "198.18.0.101"];

function makeHandle(overrides: Partial<ConstructorParameters<typeof InMemoryAgentHandle>[0]> = {}) {
  return new InMemoryAgentHandle({
    node: "n1",
    nodes,
    vips,
    checks: [
      {
        name: "web",
        kind: "tcp",
        up: true,
        lastOk: true,
        lastDetail: "connected",
        faultsInWindow: 0,
        since: 0,
      },
      {
        name: 'up"link',
        kind: "link",
        up: false,
        lastOk: false,
        lastDetail: "down",
        faultsInWindow: 3,
        since: 5,
      },
    ],
    ...overrides,
  });
}

const servers: FastifyInstance[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

function serve(handle: InMemoryAgentHandle, withToken = true): FastifyInstance {
  const app = createApiServer({ handle, ...(withToken ? { tokenFile } : {}) });
  servers.push(app);
  return app;
}

const auth = (t = token) => ({ authorization: `Bearer ${t}` });

function assertError(
  response: { statusCode: number; json(): unknown },
  status: number,
  code: string,
) {
  assert.equal(response.statusCode, status);
  const body = response.json() as { error: { code: string; message: string } };
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, "string");
  assert.ok(body.error.message.length > 0);
}

beforeEach(() => writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 }));

describe("read routes", () => {
  it("GET /v1/status returns the handle's status with every key, undefined as null", async () => {
    const handle = makeHandle({ node: "n2", coordinator: "n1" });
    handle.setConflict("198.18.0.101", true);
    const response = await serve(handle).inject({ method: "GET", url: "/v1/status" });
    assert.equal(response.statusCode, 200);
    const body = response.json();
    assert.equal(body.node, "n2");
    assert.equal(body.role, "follower");
    assert.equal(body.coordinator, "n1");
    assert.equal(body.term, 3);
    assert.deepEqual(
      body.members.map((m: { id: string }) => m.id),
      nodes,
    );
    assert.equal(body.vips[1].conflict, true);
    assert.equal(body.vips[1].owner, "n2");
    assert.equal(body.vips[0].desiredOwner, null, "an undefined field is sent as null");
    assert.equal(body.vips[0].since, "2030-01-01T00:00:01.000Z");
  });

  it("GET /v1/status without a coordinator sends coordinator: null", async () => {
    const response = await serve(makeHandle({ coordinator: undefined, role: "candidate" })).inject(
      "/v1/status",
    );
    const body = response.json();
    assert.ok("coordinator" in body);
    assert.equal(body.coordinator, null);
    assert.equal(body.role, "candidate");
  });

  it("GET /v1/vips and /v1/members return those parts", async () => {
    const handle = makeHandle();
    handle.setMember("n3", "failed", false);
    const app = serve(handle);
    const v = (await app.inject("/v1/vips")).json();
    assert.deepEqual(
      v.vips.map((x: { address: string; owner: string }) => [x.address, x.owner]),
      [
        ["198.18.0.100", "n1"],
        ["198.18.0.101", "n2"],
      ],
    );
    assert.equal(v.vips[0].explain, "round-robin: slot 0");
    const m = (await app.inject("/v1/members")).json();
    assert.deepEqual(m.members[2], { id: "n3", state: "failed", heard: false });
  });

  it("GET /healthz answers 200 while the agent reports status, 503 when it cannot", async () => {
    const handle = makeHandle();
    const app = serve(handle);
    const ok = await app.inject("/healthz");
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.json().ok, true);
    handle.status = () => {
      throw new Error("core stopped");
    };
    assertError(await app.inject("/healthz"), 503, "UNAVAILABLE");
  });

  it("GET /v1/events returns events after ?since, with the last id", async () => {
    const handle = makeHandle();
    const app = serve(handle);
    handle.emit({ type: "vip-acquired", vip: "198.18.0.100" });
    const second = handle.emit({ type: "member-failed", node: "n3", reason: "silent" });
    const all = (await app.inject("/v1/events")).json();
    assert.equal(all.events.length, 2);
    assert.equal(all.last, second);
    const after1 = (await app.inject("/v1/events?since=1")).json();
    assert.deepEqual(
      after1.events.map((e: { event: { type: string } }) => e.event.type),
      ["member-failed"],
    );
    const none = (await app.inject(`/v1/events?since=${second}`)).json();
    assert.deepEqual(none, { events: [], last: second });
  });

  it("GET /v1/events?wait= returns as soon as an event arrives", async () => {
    const handle = makeHandle();
    const app = createApiServer({ handle, eventPollMs: 5 });
    servers.push(app);
    const pending = app.inject("/v1/events?since=0&wait=20s");
    setTimeout(() => handle.emit({ type: "holding-resumed" }), 30);
    const body = (await pending).json();
    assert.equal(body.events.length, 1);
    assert.equal(body.events[0].event.type, "holding-resumed");
  });

  it("GET /v1/events?wait= ends with no events when the wait runs out", async () => {
    const app = createApiServer({ handle: makeHandle(), eventPollMs: 5 });
    servers.push(app);
    const body = (await app.inject("/v1/events?since=4&wait=20ms")).json();
    assert.deepEqual(body, { events: [], last: 4 });
  });

  it("closing the server ends a waiting long-poll at once", { timeout: 10_000 }, async () => {
    const app = createApiServer({ handle: makeHandle(), eventPollMs: 5 });
    const pending = app.inject("/v1/events?since=0&wait=30s");
    await new Promise((r) => setTimeout(r, 20));
    await app.close();
    assert.deepEqual((await pending).json(), { events: [], last: 0 });
  });

  it("GET /v1/events?wait= with a bare number waits that many seconds, as the storage API", async () => {
    const app = createApiServer({ handle: makeHandle(), eventPollMs: 5 });
    servers.push(app);
    const started = Date.now();
    const body = (await app.inject("/v1/events?since=4&wait=0.2")).json();
    assert.deepEqual(body, { events: [], last: 4 });
    // 0.2 read as milliseconds would answer at once; as seconds not before 200 ms.
    assert.ok(Date.now() - started >= 190, `answered after ${Date.now() - started} ms`);
    assert.equal(parseWaitMs("5"), 5000);
    assert.equal(parseWait("5"), parseWaitMs("5"));
  });

  it("GET /v1/events rejects a malformed since or wait with 400 BAD_REQUEST", async () => {
    const app = serve(makeHandle());
    assertError(await app.inject("/v1/events?since=abc"), 400, "BAD_REQUEST");
    assertError(await app.inject("/v1/events?since=-1"), 400, "BAD_REQUEST");
    assertError(await app.inject("/v1/events?wait=soon"), 400, "BAD_REQUEST");
  });
});

describe("errors", () => {
  it("an unknown route is 404 NOT_FOUND", async () => {
    const app = serve(makeHandle());
    assertError(await app.inject("/v1/nothing"), 404, "NOT_FOUND");
    assertError(await app.inject({ method: "PUT", url: "/v1/status" }), 404, "NOT_FOUND");
  });

  it("a capability route of a section that is not configured says which section is missing", async () => {
    const app = serve(makeHandle());
    for (const [url, section] of [
      ["/v1/relays", "relays"],
      ["/v1/relays/web", "relays"],
      ["/v1/traffic", "traffic"],
      ["/v1/traffic/n1?step=1s", "traffic"],
    ] as const) {
      const response = await app.inject(url);
      assertError(response, 404, "SECTION_NOT_CONFIGURED");
      const { message } = (response.json() as { error: { message: string } }).error;
      assert.match(message, new RegExp(`this cluster has no ${section}: section`), url);
    }
    assertError(await app.inject("/v1/relaysx"), 404, "NOT_FOUND");
  });

  it("bad JSON is 400 BAD_REQUEST", async () => {
    const response = await serve(makeHandle()).inject({
      method: "POST",
      url: "/v1/vips/198.18.0.100/move",
      headers: { ...auth(), "content-type": "application/json" },
      payload: '{"node": ',
    });
    assertError(response, 400, "BAD_REQUEST");
  });

  it("a move without a node is 400 BAD_REQUEST and reaches no handle", async () => {
    const handle = makeHandle();
    const app = serve(handle);
    for (const payload of [{}, { node: 5 }, { node: "" }, []]) {
      const response = await app.inject({
        method: "POST",
        url: "/v1/vips/198.18.0.100/move",
        headers: auth(),
        payload,
      });
      assertError(response, 400, "BAD_REQUEST");
    }
    assert.equal(handle.commands.length, 0);
  });

  it("a route that throws is 500 INTERNAL with the error shape", async () => {
    const handle = makeHandle();
    handle.status = () => {
      throw new Error("boom");
    };
    assertError(await serve(handle).inject("/v1/status"), 500, "INTERNAL");
  });
});

describe("authentication of mutating routes", () => {
  const mutations = [
    { method: "POST", url: "/v1/vips/198.18.0.100/move", payload: { node: "n2" } },
    { method: "DELETE", url: "/v1/vips/198.18.0.100/pin" },
    { method: "POST", url: "/v1/nodes/n2/disable" },
    { method: "POST", url: "/v1/nodes/n2/enable" },
    { method: "POST", url: "/v1/reload" },
  ] as const;

  it("without a token file every mutation is 403 MUTATIONS_DISABLED naming api.token_file", async () => {
    const handle = makeHandle();
    const app = serve(handle, false);
    for (const m of mutations) {
      const response = await app.inject({ ...m, headers: auth() });
      assertError(response, 403, "MUTATIONS_DISABLED");
      assert.match(response.json().error.message, /api\.token_file/);
    }
    assert.equal(handle.commands.length, 0);
    assert.equal(handle.reloads, 0);
  });

  it("a missing, malformed or wrong token is 401 UNAUTHORIZED and changes nothing", async () => {
    const handle = makeHandle();
    const app = serve(handle);
    const headerSets = [
      {},
      { authorization: token },
      { authorization: "Basic abc" },
      auth("wrong"),
      auth(`${token}x`),
    ];
    for (const m of mutations) {
      for (const headers of headerSets) {
        assertError(await app.inject({ ...m, headers }), 401, "UNAUTHORIZED");
      }
    }
    assert.equal(handle.commands.length, 0);
    assert.equal(handle.reloads, 0);
  });

  it("an unauthenticated request with bad JSON is refused as 401, before its body is read", async () => {
    const response = await serve(makeHandle()).inject({
      method: "POST",
      url: "/v1/vips/198.18.0.100/move",
      headers: { "content-type": "application/json" },
      payload: "{",
    });
    assertError(response, 401, "UNAUTHORIZED");
  });

  it("the right token is accepted", async () => {
    const handle = makeHandle();
    const response = await serve(handle).inject({
      method: "POST",
      url: "/v1/nodes/n2/disable",
      headers: auth(),
    });
    assert.equal(response.statusCode, 202);
    assert.deepEqual(handle.commands, [{ type: "drain", node: "n2" }]);
  });

  it("creating the server with an unreadable or empty token file fails with a code", () => {
    assert.throws(
      () => createApiServer({ handle: makeHandle(), tokenFile: join(dir, "missing") }),
      (e: unknown) => e instanceof ApiSetupError && e.code === "API_TOKEN_UNREADABLE",
    );
    const empty = join(dir, "empty.token");
    writeFileSync(empty, "\n", { mode: 0o600 });
    assert.throws(
      () => createApiServer({ handle: makeHandle(), tokenFile: empty }),
      (e: unknown) => e instanceof ApiSetupError && e.code === "API_TOKEN_EMPTY",
    );
  });

  it("refuses a token file group or others may read, like ssh, with the fix", () => {
    const open = join(dir, "open.token");
    writeFileSync(open, "a-token\n");
    chmodSync(open, 0o644);
    assert.throws(
      () => createApiServer({ handle: makeHandle(), tokenFile: open }),
      (e: unknown) =>
        e instanceof ApiSetupError &&
        e.code === "API_TOKEN_TOO_OPEN" &&
        e.message.includes(`mode 0644`) &&
        e.message.endsWith(`chmod 600 ${open}`),
    );
    chmodSync(open, 0o600);
    assert.ok(createApiServer({ handle: makeHandle(), tokenFile: open }));
  });

  it("POST /v1/reload re-reads the token file; an unreadable one keeps the old token", async () => {
    const handle = makeHandle();
    const app = serve(handle);
    writeFileSync(tokenFile, "second-token\n");
    const reload = await app.inject({ method: "POST", url: "/v1/reload", headers: auth() });
    assert.equal(reload.statusCode, 200);
    assert.equal(reload.json().reloaded, true);
    assert.equal(handle.reloads, 1);
    assertError(
      await app.inject({ method: "POST", url: "/v1/nodes/n2/enable", headers: auth() }),
      401,
      "UNAUTHORIZED",
    );
    const ok = await app.inject({
      method: "POST",
      url: "/v1/nodes/n2/enable",
      headers: auth("second-token"),
    });
    assert.equal(ok.statusCode, 202);

    rmSync(tokenFile);
    assert.equal(reloadApiToken(app)?.name, "ApiSetupError");
    const still = await app.inject({
      method: "POST",
      url: "/v1/nodes/n2/enable",
      headers: auth("second-token"),
    });
    assert.equal(still.statusCode, 202, "the previous token stays in force");
  });

  it("a failed config reload is 422 RELOAD_FAILED with the reason", async () => {
    const handle = makeHandle();
    handle.failNextReload("vips[0].address: not an IPv4 address");
    const response = await serve(handle).inject({
      method: "POST",
      url: "/v1/reload",
      headers: auth(),
    });
    assertError(response, 422, "RELOAD_FAILED");
    assert.match(response.json().error.message, /vips\[0\]\.address/);
  });
});

describe("administrative routes", () => {
  it("move pins the VIP (prefix form accepted): 202 with forwardedTo null on the coordinator", async () => {
    const handle = makeHandle();
    const app = serve(handle);
    const response = await app.inject({
      method: "POST",
      url: "/v1/vips/198.18.0.101%2F24/move",
      headers: auth(),
      payload: { node: "n3" },
    });
    assert.equal(response.statusCode, 202);
    assert.deepEqual(response.json(), { accepted: true, forwardedTo: null });
    assert.deepEqual(handle.commands, [{ type: "move", vip: "198.18.0.101/24", node: "n3" }]);
    const v = (await app.inject("/v1/vips")).json();
    assert.equal(v.vips[1].owner, "n3");
  });

  it("a follower reports where it forwarded the command", async () => {
    const handle = makeHandle({ node: "n2", coordinator: "n1" });
    const response = await serve(handle).inject({
      method: "DELETE",
      url: "/v1/vips/198.18.0.100/pin",
      headers: auth(),
    });
    assert.equal(response.statusCode, 202);
    assert.deepEqual(response.json(), { accepted: true, forwardedTo: "n1" });
    assert.deepEqual(handle.commands, [{ type: "unpin", vip: "198.18.0.100" }]);
  });

  it("disable and enable drain and undrain the node", async () => {
    const handle = makeHandle();
    const app = serve(handle);
    await app.inject({ method: "POST", url: "/v1/nodes/n3/disable", headers: auth() });
    assert.equal((await app.inject("/v1/members")).json().members[2].state, "drained");
    await app.inject({ method: "POST", url: "/v1/nodes/n3/enable", headers: auth() });
    assert.equal((await app.inject("/v1/members")).json().members[2].state, "healthy");
    assert.deepEqual(handle.commands, [
      { type: "drain", node: "n3" },
      { type: "undrain", node: "n3" },
    ]);
  });

  it("maps the handle's refusals: 404 UNKNOWN_VIP / UNKNOWN_NODE, 409 NO_COORDINATOR", async () => {
    const handle = makeHandle();
    const app = serve(handle);
    assertError(
      await app.inject({
        method: "POST",
        url: "/v1/vips/198.18.9.9/move",
        headers: auth(),
        payload: { node: "n2" },
      }),
      404,
      "UNKNOWN_VIP",
    );
    assertError(
      await app.inject({
        method: "POST",
        url: "/v1/vips/198.18.0.100/move",
        headers: auth(),
        payload: { node: "n9" },
      }),
      404,
      "UNKNOWN_NODE",
    );
    assertError(
      await app.inject({ method: "POST", url: "/v1/nodes/n9/disable", headers: auth() }),
      404,
      "UNKNOWN_NODE",
    );
    handle.setCoordinator(undefined);
    assertError(
      await app.inject({ method: "POST", url: "/v1/nodes/n2/disable", headers: auth() }),
      409,
      "NO_COORDINATOR",
    );
    assert.equal(handle.commands.length, 0);
  });
});

describe("GET /metrics", () => {
  it("serves Prometheus text with role, term, VIPs, members, transport and checks", async () => {
    const handle = makeHandle();
    handle.setMember("n3", "failed", false);
    handle.transport = {
      sent: 120,
      received: 98,
      dropped: { "bad-mac": 4, replay: 1 },
      kernelDrops: 7,
      sendErrors: 2,
    } as typeof handle.transport;
    handle.counters = { elections: 2, vipsAcquired: 5, vipsReleased: 3, memberFailures: 1 };
    const monitor = new LoopMonitor(50);
    for (const lateMs of [0, 3, 40, 2000]) monitor.record(lateMs);
    monitor.recordWithheld();
    handle.loop = monitor.snapshot();
    const response = await serve(handle).inject("/metrics");
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
    const lines = response.body.split("\n");
    const has = (line: string) =>
      assert.ok(lines.includes(line), `missing line: ${line}\n${response.body}`);
    const l = 'cluster="demo",node="n1"';
    has(`floatip_role{${l},role="coordinator"} 1`);
    has(`floatip_role{${l},role="follower"} 0`);
    has(`floatip_term{${l}} 3`);
    has(`floatip_vip_held{${l},vip="198.18.0.100"} 1`);
    has(`floatip_vip_held{${l},vip="198.18.0.101"} 0`);
    has(`floatip_members{${l},state="healthy"} 2`);
    has(`floatip_members{${l},state="failed"} 1`);
    has(`floatip_members{${l},state="drained"} 0`);
    has(`floatip_transport_sent_total{${l}} 120`);
    has(`floatip_transport_received_total{${l}} 98`);
    has(`floatip_transport_dropped_total{${l},reason="bad-mac"} 4`);
    has(`floatip_health_check_up{${l},check="web",kind="tcp"} 1`);
    has(`floatip_health_check_up{${l},check="up\\"link",kind="link"} 0`);
    has("# TYPE floatip_transport_sent_total counter");
    has("# TYPE floatip_loop_lag_seconds histogram");
    has(`floatip_loop_lag_seconds_bucket{${l},le="0.001"} 1`);
    has(`floatip_loop_lag_seconds_bucket{${l},le="0.05"} 3`);
    has(`floatip_loop_lag_seconds_bucket{${l},le="2.5"} 4`);
    has(`floatip_loop_lag_seconds_bucket{${l},le="+Inf"} 4`);
    has(`floatip_loop_lag_seconds_sum{${l}} 2.043`);
    has(`floatip_loop_lag_seconds_count{${l}} 4`);
    has(`floatip_stalls_total{${l}} 2`);
    has(`floatip_datagrams_withheld_total{${l}} 1`);
    has(`floatip_transport_kernel_drops_total{${l}} 7`);
    has(`floatip_transport_send_errors_total{${l}} 2`);
    has(`floatip_elections_total{${l}} 2`);
    has(`floatip_vip_acquired_total{${l}} 5`);
    has(`floatip_vip_released_total{${l}} 3`);
    has(`floatip_member_failures_total{${l}} 1`);
    has(`floatip_config_matches_coordinator{${l},fingerprint="0123456789abcdef"} 1`);
    has(`floatip_peer_last_heard_seconds{${l},peer="n2"} 0.02`);
    has(`floatip_peer_last_heard_seconds{${l},peer="n3"} NaN`);
    has(`floatip_lease_remaining_seconds{${l}} 0.38`);
    assert.ok(
      lines.some((x) =>
        new RegExp(
          `^floatip_build_info\\{${l},version="\\d+\\.\\d+\\.\\d+",wire="2",nodejs="v\\d+\\.\\d+\\.\\d+"\\} 1$`,
        ).test(x),
      ),
      response.body,
    );
    // Every sample line is `name{labels} value` and belongs to a family declared with TYPE.
    const typed = new Set(lines.filter((x) => x.startsWith("# TYPE ")).map((x) => x.split(" ")[2]));
    for (const line of lines.filter((x) => x !== "" && !x.startsWith("#"))) {
      const match = /^([a-z_]+)(\{[^}]*\})? (-?\d+(\.\d+)?|NaN)$/.exec(line);
      assert.ok(match, `malformed sample line: ${line}`);
      const family = match[1]!.replace(/_(bucket|sum|count)$/, "");
      assert.ok(typed.has(match[1]) || typed.has(family), `no TYPE for ${match[1]}`);
    }
    assert.ok(response.body.endsWith("\n"));
  });
});

describe("GET /metrics with arbiter: etcd", () => {
  it("exports the connection, the revision and every arbiter counter", async () => {
    const handle = makeHandle();
    handle.arbiter = {
      kind: "etcd",
      endpoints: ["https://198.18.0.50:2379"],
      connected: true,
      leaseId: "7587",
      revision: 42,
      leasesGranted: 1,
      leasesLost: 0,
      keepAlivesConfirmed: 300,
      keepAlivesFailed: 2,
      writes: 17,
      writesRefused: 3,
      writesFailed: 1,
      resyncs: 0,
      staleViews: 4,
      claimsRefused: 2,
      staleGrants: 1,
      failsafeAcks: 5,
    };
    const response = await serve(handle).inject("/metrics");
    const lines = response.body.split("\n");
    const l = 'cluster="demo",node="n1",arbiter="etcd"';
    for (const line of [
      `floatip_arbiter_connected{${l}} 1`,
      `floatip_arbiter_revision{${l}} 42`,
      `floatip_arbiter_keepalives_confirmed_total{${l}} 300`,
      `floatip_arbiter_keepalives_failed_total{${l}} 2`,
      `floatip_arbiter_writes_refused_total{${l}} 3`,
      `floatip_arbiter_claims_refused_total{${l}} 2`,
      `floatip_arbiter_stale_views_total{${l}} 4`,
      `floatip_arbiter_stale_grants_total{${l}} 1`,
      `floatip_arbiter_failsafe_acks_total{${l}} 5`,
      "# TYPE floatip_arbiter_claims_refused_total counter",
    ]) {
      assert.ok(lines.includes(line), `missing line: ${line}\n${response.body}`);
    }
    // Without an arbiter there is no arbiter series at all.
    const embedded = await serve(makeHandle()).inject("/metrics");
    assert.ok(!embedded.body.includes("floatip_arbiter_"), embedded.body);
  });
});

describe("GET /v1/openapi.json", () => {
  it("is an OpenAPI 3 document listing every route the server answers", async () => {
    const app = serve(makeHandle());
    const response = await app.inject("/v1/openapi.json");
    assert.equal(response.statusCode, 200);
    const doc = JSON.parse(response.body);
    assert.match(doc.openapi, /^3\./);
    const expected: [string, string][] = [
      ["/healthz", "get"],
      ["/metrics", "get"],
      ["/v1/openapi.json", "get"],
      ["/v1/status", "get"],
      ["/v1/vips", "get"],
      ["/v1/members", "get"],
      ["/v1/events", "get"],
      ["/", "get"],
      ["/v1/events/stream", "get"],
      ["/v1/vips/{address}/move", "post"],
      ["/v1/vips/{address}/pin", "delete"],
      ["/v1/nodes/{id}/disable", "post"],
      ["/v1/nodes/{id}/enable", "post"],
      ["/v1/reload", "post"],
    ];
    for (const [path, method] of expected) {
      assert.ok(doc.paths[path]?.[method], `${method.toUpperCase()} ${path} missing`);
    }
    // And the other way round: every documented operation is answered (not 404).
    for (const [path, operations] of Object.entries(doc.paths as Record<string, object>)) {
      for (const method of Object.keys(operations)) {
        if (path === "/v1/events/stream") continue; // never ends: its own test below
        const url = path.replace("{address}", "198.18.0.100").replace("{id}", "n2");
        const r = await app.inject({
          method: method.toUpperCase() as "GET",
          url,
          headers: auth(),
          payload: { node: "n2" },
        });
        assert.notEqual(r.statusCode, 404, `${method} ${path}: ${r.body}`);
      }
    }
    // Every $ref resolves.
    const refs = [...response.body.matchAll(/"\$ref":"#\/([^"]+)"/g)].map((m) => m[1]!);
    for (const ref of refs) {
      const target = ref
        .split("/")
        .reduce<unknown>((node, key) => (node as Record<string, unknown>)?.[key], doc);
      assert.ok(target, `unresolved $ref ${ref}`);
    }
  });
});

describe("extra plugins", () => {
  it("registers capability routes on the same server", async () => {
    const app = createApiServer({
      handle: makeHandle(),
      extraPlugins: [
        async (instance) => {
          instance.get("/v1/extra", async () => ({ extra: true }));
        },
      ],
    });
    servers.push(app);
    assert.deepEqual((await app.inject("/v1/extra")).json(), { extra: true });
  });
});

describe("dashboard", () => {
  it("serves the page at / without the token, with no resource from elsewhere", async () => {
    const app = serve(makeHandle());
    const response = await app.inject("/");
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers["content-type"]), /^text\/html/);
    assert.match(String(response.headers["content-security-policy"]), /default-src 'none'/);
    assert.match(response.body, /<title>floatip<\/title>/);
    // No CDN: nothing is loaded from another origin.
    assert.doesNotMatch(response.body, /(src|href)="(https?:)?\/\//);
    // Its script compiles (a syntax error would leave the page empty in every browser).
    const script = /<script>([\s\S]*)<\/script>/.exec(response.body)?.[1];
    assert.ok(script, "the page has its script inline");
    assert.doesNotThrow(() => new Script(script, { filename: "dashboard.js" }));
  });

  it("streams events as Server-Sent Events from Last-Event-ID on, live", async () => {
    const handle = makeHandle();
    handle.emit({ type: "member-failed", node: "n2", reason: "not heard" });
    const second = handle.emit({ type: "member-recovered", node: "n2" });
    const app = serve(handle);
    const address = await app.listen({ host: "127.0.0.1", port: 0 });
    const controller = new AbortController();
    const response = await fetch(`${address}/v1/events/stream`, {
      headers: { "last-event-id": String(second - 1) },
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    assert.match(String(response.headers.get("content-type")), /^text\/event-stream/);
    const reader = response.body!.getReader();
    let text = "";
    const readUntil = async (pattern: RegExp) => {
      const deadline = Date.now() + 5000;
      while (!pattern.test(text) && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      assert.match(text, pattern);
    };
    await readUntil(/member-recovered/);
    assert.doesNotMatch(text, /member-failed/, "nothing at or before Last-Event-ID");
    assert.match(text, new RegExp(`^id: ${second}$`, "m"));
    // A new event arrives on the open stream.
    const third = handle.emit({ type: "role-changed", role: "coordinator", term: 2, reason: "x" });
    await readUntil(new RegExp(`id: ${third}\\n`));
    controller.abort();
  });

  it("serves at most 16 streams at once and frees a place when a page goes away", async () => {
    const app = serve(makeHandle());
    const address = await app.listen({ host: "127.0.0.1", port: 0 });
    const open = async () => {
      const controller = new AbortController();
      const response = await fetch(`${address}/v1/events/stream`, { signal: controller.signal });
      return { response, controller };
    };
    const streams = [];
    for (let i = 0; i < 16; i += 1) {
      const stream = await open();
      assert.equal(stream.response.status, 200);
      streams.push(stream);
    }
    const refused = await open();
    assert.equal(refused.response.status, 503);
    const body = (await refused.response.json()) as { error: { code: string } };
    assert.equal(body.error.code, "TOO_MANY_STREAMS");
    streams.pop()!.controller.abort();
    let again: Awaited<ReturnType<typeof open>> | undefined;
    for (let attempt = 0; attempt < 50; attempt += 1) {
      again = await open();
      if (again.response.status === 200) break;
      await again.response.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(again?.response.status, 200, "a closed page frees its place");
    again?.controller.abort();
    for (const stream of streams) stream.controller.abort();
  });

  it("refuses a malformed Last-Event-ID with a JSON error", async () => {
    const app = serve(makeHandle());
    const response = await app.inject({
      url: "/v1/events/stream",
      headers: { "last-event-id": "x" },
    });
    assertError(response, 400, "BAD_REQUEST");
  });
});
