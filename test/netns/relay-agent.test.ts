/**
 * The relay (S4) inside `floatip agent`, end to end in network namespaces: three agents, a
 * relay in proxy mode listening on a cluster VIP port 9000, its primary backend on n2:8081
 * and its standby on n3:8081, and a client sending HTTP requests to VIP:9000.
 *
 * 1. The relay runs only on the node holding the VIP, and forwards to the primary.
 * 2. The primary backend is killed: once it is gone, every request is answered by the
 *    standby (a failed connect is retried on the standby at once, before any check runs).
 * 3. The agent holding the VIP is killed: the VIP moves, the relay starts on the new
 *    holder, and the client is answered again; `floatip relay list --json` there shows the
 *    standby active.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { now, type ProbeRecord, startProber } from "../../bench/lib/prober.ts";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitFor,
  waitSettled,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot, subnetFor } from "../../src/lab/topology.ts";

const prefix = "fipra-";
const subnet = `198.18.${subnetFor(prefix)}`;
const vip = `${subnet}.100`;
// Hosts get .10, .11, … in the order n1, n2, n3, client (src/lab/topology.ts).
const primary = `${subnet}.11:8081`;
const standby = `${subnet}.12:8081`;

const relayYaml = `relays:
  - name: web
    listen: ${vip}:9000
    protocol: http
    mode: proxy
    primary: ${primary}
    standby: [${standby}]
    check: { kind: tcp, interval: 100ms, timeout: 200ms, fall: 2, within: 1s, rise: 2 }
    connect_timeout: 200ms
    request_timeout: 1s
    max_connections_per_source: 8
`;

const backendScript = `require("node:http").createServer((q, s) => s.end(process.argv[1])).listen(8081, "0.0.0.0")`;

interface ListedRelay {
  name: string;
  running: boolean;
  active: string | null;
  placement: string;
  backends: { id: string; state: string }[];
}

async function relayList(cluster: LiveCluster, id: string): Promise<ListedRelay[]> {
  const { code, stdout, stderr } = await cluster.cli(id, ["relay", "list", "--json"]);
  assert.equal(code, 0, `relay list on ${id} failed: ${stderr}`);
  return JSON.parse(stdout) as ListedRelay[];
}

function summary(records: readonly ProbeRecord[]): string {
  const counts = new Map<string, number>();
  for (const r of records) counts.set(r.who ?? "error", (counts.get(r.who ?? "error") ?? 0) + 1);
  return JSON.stringify([...counts]);
}

describe("relay inside the agent", { skip: skipUnlessRoot(), concurrency: 1 }, () => {
  let cluster: LiveCluster | undefined;
  let primaryBackend: ChildProcess | undefined;
  let holder = "";

  before(async () => {
    cluster = await startCluster({
      prefix,
      vips: [{ host: 100, policy: "round-robin" }],
      extraYaml: relayYaml,
    });
    primaryBackend = cluster.topology.spawn(
      "n2",
      process.execPath,
      ["-e", backendScript, "primary"],
      {
        stdio: "ignore",
      },
    );
    cluster.topology.spawn("n3", process.execPath, ["-e", backendScript, "standby"], {
      stdio: "ignore",
    });
    holder = (await waitSettled(cluster)).get(vip)!;
  });

  after(async () => {
    await cluster?.destroy();
  });

  it("runs the relay on the VIP holder only, forwarding to the primary", async () => {
    const c = cluster!;
    const answer = await waitFor(async () => {
      const prober = startProber(c.topology, {
        host: "client",
        vip,
        port: 9000,
        intervalMs: 20,
        timeoutMs: 1000,
        maxCount: 5,
      });
      await prober.until((r) => r.length >= 5, 5000);
      await prober.stop();
      return prober.records.length === 5 && prober.records.every((r) => r.who === "primary")
        ? "primary"
        : undefined;
    }, 10_000);
    assert.equal(answer, "primary", `the relay on ${vip}:9000 did not serve\n${allLogs(c)}`);
    const listed = await relayList(c, holder);
    assert.equal(listed[0]?.name, "web");
    assert.equal(listed[0]?.running, true);
    assert.equal(listed[0]?.active, primary);
    // The same in `floatip status`: under `capabilities` in --json, a line per relay in text.
    const json = await c.cli(holder, ["status", "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const relays = JSON.parse(json.stdout).capabilities?.relays?.relays as
      | { name: string; running: boolean }[]
      | undefined;
    assert.deepEqual(
      relays?.map((r) => [r.name, r.running]),
      [["web", true]],
      json.stdout,
    );
    const text = await c.cli(holder, ["status"]);
    assert.match(
      text.stdout,
      /^Capabilities\nrelays:\n {2}name=web running=true active=\S+ mode=proxy listen=\S+:9000/m,
      text.stdout,
    );
    for (const id of c.ids.filter((i) => i !== holder)) {
      const other = await relayList(c, id);
      assert.equal(other[0]?.running, false, `${id} runs the relay without holding ${vip}`);
      assert.equal(other[0]?.placement, "vip-holder");
    }
  });

  it("answers a silent client 408 and resets a ninth connection from one host", async () => {
    const c = cluster!;
    // Eight connections that send nothing, then a ninth at once: each reports what it got.
    const script = `
      const net = require("node:net");
      const [host, port] = process.argv.slice(1);
      const one = () => new Promise((resolve) => {
        const s = net.connect(Number(port), host), t0 = Date.now();
        let text = "";
        s.on("data", (d) => (text += d));
        s.on("error", (e) => resolve({ error: e.code, ms: Date.now() - t0 }));
        s.on("close", () => resolve({ status: Number(/^HTTP\\/1\\.1 (\\d+)/.exec(text)?.[1] ?? 0), ms: Date.now() - t0 }));
        setTimeout(() => { s.destroy(); resolve({ status: -1, ms: Date.now() - t0 }); }, 8000).unref();
      });
      (async () => {
        const silent = Array.from({ length: 8 }, one);
        await new Promise((r) => setTimeout(r, 300));
        const ninth = await one();
        console.log(JSON.stringify({ silent: await Promise.all(silent), ninth }));
      })();
    `;
    const result = await c.topology.exec(
      "client",
      process.execPath,
      ["-e", script, vip, "9000"],
      20_000,
    );
    const report = JSON.parse(result.stdout) as {
      silent: { status?: number; error?: string; ms: number }[];
      ninth: { status?: number; error?: string; ms: number };
    };
    assert.ok(
      report.silent.every((r) => r.status === 408 && r.ms >= 900 && r.ms < 5000),
      `every silent client gets 408 after about a second: ${result.stdout}`,
    );
    assert.ok(
      report.ninth.error === "ECONNRESET" || (report.ninth.status === 0 && report.ninth.ms < 1000),
      `the ninth connection from one host is reset: ${result.stdout}`,
    );
  });

  it("answers from the standby with no client error once the primary is dead", async () => {
    const c = cluster!;
    const prober = startProber(c.topology, {
      host: "client",
      vip,
      port: 9000,
      intervalMs: 10,
      timeoutMs: 1000,
      maxCount: 400,
      maxMs: 10_000,
    });
    try {
      assert.ok(await prober.until((r) => r.filter((x) => x.who).length >= 20, 5000));
      const exited = new Promise((resolve) => primaryBackend!.once("exit", resolve));
      primaryBackend!.kill("SIGKILL");
      await exited;
      // Requests sent from here on can no longer meet the dying process half way.
      const goneAt = now();
      assert.ok(
        await prober.until((r) => r.filter((x) => x.sentAt >= goneAt).length >= 100, 8000),
        `too few answers after the kill: ${summary(prober.records)}`,
      );
      await prober.stop();
      const afterKill = prober.records.filter((r) => r.sentAt >= goneAt);
      const errors = afterKill.filter((r) => r.who === null);
      assert.equal(errors.length, 0, `client errors after the kill: ${summary(afterKill)}`);
      assert.ok(
        afterKill.every((r) => r.who === "standby"),
        summary(afterKill),
      );
    } finally {
      await prober.stop();
    }
    const active = await waitFor(async () => {
      const listed = await relayList(c, holder);
      return listed[0]?.active === standby ? standby : undefined;
    }, 5000);
    assert.equal(active, standby, "the relay did not switch to the standby");
    const show = await c.cli(holder, ["relay", "show", "web", "--json"]);
    assert.equal(show.code, 0, show.stderr);
    const shown = JSON.parse(show.stdout) as ListedRelay;
    assert.equal(shown.backends.find((b) => b.id === primary)?.state, "down");
    const unknown = await c.cli(holder, ["relay", "show", "nope", "--json"]);
    assert.equal(unknown.code, 1);
    assert.equal(JSON.parse(unknown.stdout).error.code, "UNKNOWN_RELAY");
  });

  it("moves with the VIP when the holder's agent is killed", async () => {
    const c = cluster!;
    const pid = c.agentPid(holder);
    assert.ok(pid, `no agent process for ${holder}`);
    process.kill(pid, "SIGKILL");
    const moved = await waitFor(async () => {
      const h = await c.holderOf(vip);
      return h && h !== holder ? h : undefined;
    }, 15_000);
    assert.ok(moved, `${vip} did not leave ${holder}\n${allLogs(c)}`);
    const prober = startProber(c.topology, {
      host: "client",
      vip,
      port: 9000,
      intervalMs: 20,
      timeoutMs: 1000,
      maxCount: 500,
      maxMs: 15_000,
    });
    try {
      const served = await prober.until(
        (r) => r.slice(-5).length === 5 && r.slice(-5).every((x) => x.who === "standby"),
        15_000,
      );
      assert.ok(served, `no answers through ${moved}: ${summary(prober.records)}\n${allLogs(c)}`);
    } finally {
      await prober.stop();
    }
    // The VIP may have moved on again (a restarted agent); ask whoever holds it now.
    const current = (await c.holderOf(vip)) ?? moved;
    const listed = await relayList(c, current);
    assert.equal(listed[0]?.running, true, `relay not running on ${current}`);
    const active = await waitFor(async () => {
      const list = await relayList(c, current);
      return list[0]?.active === standby ? standby : undefined;
    }, 5000);
    assert.equal(active, standby);
    assert.match(c.logs(current), /relay-started/);
  });
});
