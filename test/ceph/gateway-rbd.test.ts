/**
 * The storage gateway on a real Ceph cluster, driven the way a user does: the `floatip volume`
 * CLI against the gateway's API; the outcome is checked with the rbd client itself.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createRecord } from "../../src/core/requests/request-record.ts";
import { RbdBackend } from "../../src/storage/backends/rbd-backend.ts";
import { type Gateway, parseGatewayConfig, startGateway } from "../../src/storage/gateway.ts";
import { Journal } from "../../src/storage/journal.ts";
import { StaticClusterView } from "../../src/storage/static-cluster-view.ts";
import { takeoverDispatcher, takeoverView } from "../unit/storage-takeover-view.ts";
import { startCephCluster } from "./ceph-cluster.ts";

const root = path.resolve(import.meta.dirname, "../..");
const cluster = startCephCluster();
after(() => {
  if (typeof cluster !== "string") cluster.stop();
});

interface CliJson {
  /** What a read (ls, info) answers. */
  result?: { sizeBytes: number; volumes: { name: string }[] };
  request: {
    id: string;
    state: {
      state: string;
      result: { sizeBytes: number; volumes: { name: string }[] };
      error: { code: string };
    };
  };
}

let tokenFile = "";

/** Runs the CLI as a child process without blocking this process (it serves the gateway). */
function cli(
  url: string,
  ...args: string[]
): Promise<{ status: number | null; json: CliJson; stderr: string }> {
  return new Promise((resolve) => {
    // The credential comes from the environment, as a script would pass it.
    const child = spawn(
      process.execPath,
      [path.join(root, "src/cli/main.ts"), ...args, "--url", url, "--json"],
      { env: { ...process.env, FLOATIP_STORAGE_TOKEN_FILE: tokenFile } },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, json: JSON.parse(stdout || "{}") as CliJson, stderr });
    });
  });
}

describe("storage gateway on real Ceph", {
  skip: typeof cluster === "string" ? cluster : false,
}, () => {
  if (typeof cluster === "string") return;
  const dir = mkdtempSync(path.join(tmpdir(), "fips-gw-ceph-"));
  tokenFile = path.join(dir, "client.token");
  let gateway: Gateway;
  before(async () => {
    writeFileSync(path.join(dir, "key"), randomBytes(32), { mode: 0o600 });
    writeFileSync(tokenFile, `${randomBytes(16).toString("hex")}\n`, { mode: 0o600 });
    const config = parseGatewayConfig(
      {
        node: "a",
        keyFile: path.join(dir, "key"),
        journal: path.join(dir, "a.sqlite"),
        api: { host: "127.0.0.1", port: 0 },
        peer: { host: "127.0.0.1", port: 0 },
        backend: { kind: "rbd", pool: "rbd", cephConf: cluster.conf, timeoutMs: 20_000 },
        clients: [{ name: "ops", tokenFile, access: "write" }],
      },
      "test",
    );
    gateway = await startGateway(config, new StaticClusterView("a"));
  });
  after(async () => {
    await gateway?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const rbdInfo = (name: string) =>
    spawnSync("rbd", ["-c", cluster.conf, "info", `rbd/${name}`, "--format", "json"], {
      encoding: "utf8",
      timeout: 20_000,
    });

  it("creates, resizes, snapshots, clones and deletes volumes through the CLI", async () => {
    const url = gateway.apiUrl;
    const created = await cli(url, "volume", "create", "gw1", "--size", "16M", "--wait");
    assert.equal(created.status, 0, created.stderr);
    assert.equal(created.json.request.state.state, "succeeded");
    assert.equal(JSON.parse(rbdInfo("gw1").stdout).size, 16 * 2 ** 20);

    assert.equal((await cli(url, "volume", "resize", "gw1", "--size", "32M", "--wait")).status, 0);
    assert.equal(JSON.parse(rbdInfo("gw1").stdout).size, 32 * 2 ** 20);
    assert.equal((await cli(url, "volume", "snap", "create", "gw1", "s1", "--wait")).status, 0);
    assert.equal((await cli(url, "volume", "clone", "gw1", "s1", "gw1k", "--wait")).status, 0);
    assert.equal(JSON.parse(rbdInfo("gw1k").stdout).parent.image, "gw1");
    const listed = await cli(url, "volume", "ls", "--wait");
    assert.equal(listed.json.request, undefined, "a read keeps no record");
    const names = (listed.json.result?.volumes ?? []).map((v) => v.name);
    assert.deepEqual(names.sort(), ["gw1", "gw1k"]);

    const duplicate = await cli(url, "volume", "create", "gw1", "--size", "16M", "--wait");
    assert.equal(duplicate.status, 1);
    assert.equal(duplicate.json.request.state.error.code, "EXISTS");

    for (const args of [
      ["rm", "gw1k"],
      ["snap", "rm", "gw1", "s1"],
      ["rm", "gw1"],
    ]) {
      const removed = await cli(url, "volume", ...args, "--wait");
      assert.equal(removed.status, 0, `${args.join(" ")}: ${JSON.stringify(removed.json)}`);
    }
    assert.notEqual(rbdInfo("gw1").status, 0);
    const shown = await cli(url, "request", "show", created.json.request.id);
    assert.equal(shown.json.request.state.result.sizeBytes, 16 * 2 ** 20);
    // rbd ls agrees that nothing is left.
    assert.equal(
      execFileSync("rbd", ["-c", cluster.conf, "ls", "rbd"], { encoding: "utf8" }).trim(),
      "",
    );
  });

  it("re-drives a delete cut off by a killed holder once Ceph drops the dead client's watch", async () => {
    // The holder was SIGKILLed inside `rbd rm`: its client's watch stays on the image until
    // Ceph times it out, and the new holder's re-drive meets "image still open" (EBUSY).
    // A watcher killed with SIGKILL leaves exactly that behind.
    const rbd = (...args: string[]) =>
      spawnSync("rbd", ["-c", cluster.conf, ...args], { encoding: "utf8", timeout: 20_000 });
    assert.equal(rbd("create", "rbd/watched", "--size", "8M").status, 0);
    // `rbd watch` runs until its standard input ends: keep a pipe open until the kill.
    const watcher = spawn("rbd", ["-c", cluster.conf, "watch", "rbd/watched"], {
      stdio: ["pipe", "ignore", "ignore"],
    });
    const watchers = () =>
      (
        JSON.parse(rbd("status", "rbd/watched", "--format", "json").stdout || "{}") as {
          watchers?: unknown[];
        }
      ).watchers?.length ?? 0;
    try {
      const deadline = Date.now() + 20_000;
      while (watchers() === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.ok(watchers() > 0, "the watcher registered");
    } finally {
      watcher.kill("SIGKILL");
    }
    await new Promise<void>((resolve) => {
      if (watcher.exitCode !== null || watcher.signalCode !== null) resolve();
      else watcher.once("exit", () => resolve());
    });
    const now = rbd("rm", "rbd/watched", "--no-progress");
    assert.notEqual(now.status, 0, "the dead client's watch makes the image busy at first");
    assert.match(now.stderr, /still open|watchers|busy/i);

    const journal = new Journal(path.join(dir, "takeover.sqlite"));
    const vip = "198.18.0.100";
    const snapshot = (owner: string | undefined) => takeoverView(vip, owner);
    const clusterView = new StaticClusterView("b");
    clusterView.set(snapshot(undefined));
    const events: string[] = [];
    const dispatcher = takeoverDispatcher({
      journal,
      backend: new RbdBackend({ pool: "rbd", cephConf: cluster.conf, timeoutMs: 20_000 }),
      view: clusterView,
      storageVip: vip,
      retryDelayMs: 1000,
      log: (event) => events.push(event),
    });
    dispatcher.start();
    try {
      journal.apply({
        ...createRecord("cut-off", { op: "delete", name: "watched" }, "a", 1),
        state: { state: "running", node: "a", attempt: 1 },
      });
      clusterView.set(snapshot("b")); // b takes over the storage VIP
      const final = await dispatcher.wait("cut-off", 90_000);
      assert.equal(final?.state.state, "succeeded", JSON.stringify(final?.state));
      assert.ok(events.includes("busy_on_redrive"), `the wait is logged: ${events.join(" ")}`);
      assert.notEqual(rbdInfo("watched").status, 0, "the image is gone");
    } finally {
      await dispatcher.stop();
      journal.close();
    }
  });
});

describe("rbd health probe", { skip: typeof cluster === "string" ? cluster : false }, () => {
  it("is healthy against the live cluster and unhealthy (bounded) against a missing pool", async () => {
    if (typeof cluster === "string") return;
    const { probeRbd } = await import("../../src/storage/rbd-probe.ts");
    const common = {
      name: "rbd",
      intervalMs: 1000,
      timeoutMs: 10_000,
      fall: 1,
      fallWindowMs: 1000,
      rise: 1,
    };
    const good = await probeRbd({ ...common, kind: "rbd", pool: "rbd", cephConf: cluster.conf });
    assert.equal(good.ok, true, good.detail);
    const bad = await probeRbd({
      ...common,
      kind: "rbd",
      pool: "absent-pool",
      cephConf: cluster.conf,
    });
    assert.equal(bad.ok, false);
  });
});
