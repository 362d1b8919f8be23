/**
 * The traffic capability as the agent uses it: section validation (every problem at once,
 * with `traffic.…` paths and fixes), and two real capabilities on 127.0.0.1 / 127.0.0.2 with
 * real SQLite files and backup channels, driven by hand-set cluster views: the coordinator
 * builds the table, the API plugin serves it, a member the view declares `failed` is marked
 * Failed and re-joins by itself, and `floatip traffic` reaches the route through `--api`.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import Fastify from "fastify";
import type { Capability } from "../../src/agent/capability.ts";
import { CapabilityConfigError } from "../../src/agent/capability.ts";
import { createLogger } from "../../src/agent/log.ts";
import type { ClusterConfig } from "../../src/config/types.ts";
import type { IndexTable } from "../../src/core/traffic/index-table.ts";
import {
  createCapability,
  parseTrafficSection,
  trafficDefaults,
} from "../../src/traffic/capability.ts";
import { StaticClusterView } from "../../src/traffic/static-cluster-view.ts";

const root = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "fipta-unit-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const nodes = [
  { id: "n1", address: "127.0.0.1", port: 7946, interface: "lo", weight: 100 },
  { id: "n2", address: "127.0.0.2", port: 7946, interface: "lo", weight: 90 },
];
const config = {
  file: "/etc/floatip/cluster.yaml",
  nodes,
  vips: [],
  api: { host: "127.0.0.1", port: 7480 },
} as unknown as ClusterConfig;

describe("traffic section", () => {
  it("takes the defaults for {} and for an empty section", () => {
    assert.deepEqual(parseTrafficSection({}), { settings: trafficDefaults, problems: [] });
    assert.deepEqual(parseTrafficSection(null), { settings: trafficDefaults, problems: [] });
  });

  it("reads every key", () => {
    const { settings, problems } = parseTrafficSection({
      interval: "100ms",
      channel_port: 7951,
      retention: { raw: "1d", rollup: "7d" },
      vip_counters: false,
    });
    assert.deepEqual(problems, []);
    assert.deepEqual(settings, {
      intervalMs: 100,
      channelPort: 7951,
      rawRetentionMs: 86_400_000,
      rollupRetentionMs: 7 * 86_400_000,
      vipCounters: false,
    });
  });

  it("reports every problem at once, each with its path and a fix", () => {
    const { problems } = parseTrafficSection(
      {
        interval: 5,
        channel_port: 7480,
        retention: { raw: "30d", rollup: "2d", keep: "1d" },
        vip_counters: "yes",
        intervall: "1s",
      },
      7480,
    );
    const paths = problems.map((p) => p.path).sort();
    assert.deepEqual(paths, [
      "traffic.channel_port",
      "traffic.interval",
      "traffic.intervall",
      "traffic.retention.keep",
      "traffic.retention.rollup",
      "traffic.vip_counters",
    ]);
    for (const p of problems) assert.ok(p.fix.length > 0, p.path);
    assert.equal(parseTrafficSection("on").problems[0]?.path, "traffic");
    assert.equal(parseTrafficSection({ interval: "50ms" }).problems[0]?.path, "traffic.interval");
    assert.equal(parseTrafficSection({ channel_port: 70000 }).problems.length, 1);
  });

  it("makes createCapability throw CapabilityConfigError naming the file", () => {
    const view = new StaticClusterView("n1", [], "n1");
    const context = {
      config,
      nodeId: "n1",
      view,
      key: randomBytes(32),
      stateDir: dir,
      log: createLogger({ write: () => {} }),
    };
    assert.throws(
      () => createCapability({ interval: "soon" }, context),
      (error: unknown) =>
        error instanceof CapabilityConfigError &&
        error.code === "CAPABILITY_CONFIG_INVALID" &&
        error.problems[0]?.path === "traffic.interval" &&
        error.message.startsWith("/etc/floatip/cluster.yaml: traffic.interval"),
    );
  });
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((done) => server.close(done));
  return port;
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1000; i += 1) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) break;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function floatip(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.FLOATIP_API;
  return new Promise((done) => {
    execFile(
      process.execPath,
      [join(root, "src/cli/main.ts"), ...args],
      { env, timeout: 30_000, encoding: "utf8" },
      (error, stdout, stderr) =>
        done({
          code: error ? (typeof error.code === "number" ? error.code : null) : 0,
          stdout,
          stderr,
        }),
    );
  });
}

describe("traffic capability with real channels", () => {
  it("keeps the table on the coordinator, serves it, follows the view and re-joins", async () => {
    const key = randomBytes(32);
    const port = await freePort();
    const members = nodes.map((n) => ({ id: n.id, address: n.address, state: "healthy" as const }));
    const views = new Map(nodes.map((n) => [n.id, new StaticClusterView(n.id, members, "n1")]));
    const capabilities = new Map<string, Capability>();
    const app = Fastify();
    const startedAt = performance.now();
    try {
      for (const n of nodes) {
        const stateDir = join(dir, n.id);
        mkdirSync(stateDir, { recursive: true });
        const capability = await createCapability(
          { interval: "100ms", channel_port: port, vip_counters: false },
          {
            config,
            nodeId: n.id,
            view: views.get(n.id)!,
            key,
            stateDir,
            log: createLogger({ write: () => {} }),
          },
        );
        await capability.start();
        capabilities.set(n.id, capability);
      }
      await app.register(capabilities.get("n1")!.apiPlugin!);
      const address = await app.listen({ host: "127.0.0.1", port: 0 });
      const get = async (path: string) => (await fetch(`${address}${path}`)).json();
      type Status = {
        tableVersion: number;
        backupTarget: string;
        samplesStored: { own: number; backup: Record<string, number> };
      };
      const status = (id: string) => capabilities.get(id)!.status!() as Status;

      // Both nodes back up to each other and n2's samples reach n1.
      await until("n2's samples on n1", () =>
        (status("n1").samplesStored.backup.n2 ?? 0) > 5 ? true : undefined,
      );
      assert.equal(status("n1").backupTarget, "n2");
      assert.equal(status("n2").backupTarget, "n1");
      const first = (await get("/v1/traffic")) as IndexTable;
      assert.deepEqual(
        first.rows.map((r) => [r.nodeId, r.status]),
        [
          ["n1", "Normal"],
          ["n2", "Normal"],
        ],
      );
      const answer = (await get("/v1/traffic/n2?from=0&step=1h")) as {
        status: string;
        answeredBy: string;
        buckets: { iface: string; samples: number }[];
      };
      assert.equal(answer.status, "Normal");
      assert.equal(answer.answeredBy, "n2");
      assert.ok(answer.buckets.some((b) => b.iface === "lo" && b.samples > 0));

      // The coordinator's view declares n2 failed: the table says so at once (once n2 has
      // been up longer than the 5 s in which a "failed" is taken for a late start).
      await sleep(Math.max(0, startedAt + 5200 - performance.now()));
      views.get("n1")!.setMemberState("n2", "failed");
      const marked = (await get("/v1/traffic")) as IndexTable;
      assert.equal(marked.rows.find((r) => r.nodeId === "n2")?.status, "Failed");
      assert.ok(marked.version > first.version);
      const fromBackup = (await get("/v1/traffic/n2?from=0&step=1h")) as {
        status: string;
        answeredBy: string;
      };
      assert.deepEqual([fromBackup.status, fromBackup.answeredBy], ["Failed", "n1"]);

      // n2 is alive: it sees its row Failed and re-joins; a steady `failed` does not re-mark it.
      let table: IndexTable | undefined;
      for (let i = 0; i < 200; i += 1) {
        table = (await get("/v1/traffic")) as IndexTable;
        if (table.rows.find((r) => r.nodeId === "n2")?.status === "Normal") break;
        await sleep(100);
      }
      assert.equal(table?.rows.find((r) => r.nodeId === "n2")?.status, "Normal");
      assert.ok(table!.version > marked.version);

      // The CLI reaches the route through --api, like the other commands.
      const apiPort = new URL(address).port;
      const cli = await floatip([
        "traffic",
        "n2",
        "--api",
        `127.0.0.1:${apiPort}`,
        "--from",
        "0",
        "--json",
      ]);
      assert.equal(cli.code, 0, cli.stderr);
      assert.equal((JSON.parse(cli.stdout) as { node: string }).node, "n2");
      const shown = await floatip(["traffic", "--table", "--api", `127.0.0.1:${apiPort}`]);
      assert.match(shown.stdout, /^n2\s+127\.0\.0\.2\s+n1\s+127\.0\.0\.1\s+Normal$/m);
      const unknown = await floatip(["traffic", "ghost", "--api", `127.0.0.1:${apiPort}`]);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /UNKNOWN_NODE/);
      const nobody = await floatip(["traffic", "n2", "--api", `127.0.0.1:${await freePort()}`]);
      assert.equal(nobody.code, 3);
    } finally {
      await app.close();
      for (const c of capabilities.values()) await c.stop();
    }
  });
});
