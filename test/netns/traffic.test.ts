/**
 * Traffic backup (S3) end to end: four namespaces on a bridge, each running the standalone
 * traffic component (src/traffic/main.ts, 100 ms collection, n1 coordinator). The chain is
 * n1 -> n2 -> n3 -> n4 -> n1. A bounded TCP transfer makes real traffic into n3; then n3's
 * process is killed outright. Checked from the outside, on the real SQLite files and through
 * the CLI: n2 re-targets to n4, n2's complete history is re-synced to n4 (count and SHA-256
 * equal to n2's own), n4 holds n3's samples, and a query for n3 answered through n1's HTTP
 * route says `Failed`, answered by n4, with the bytes of the transfer. Then n3 is started
 * again: it is Normal, the chain is restored and n2 catches n3 up.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { findRow, type IndexTable } from "../../src/core/traffic/index-table.ts";
import { createTopology, skipUnlessRoot, type Topology } from "../../src/lab/topology.ts";
import { TrafficStore } from "../../src/traffic/store.ts";

const mainTs = new URL("../../src/traffic/main.ts", import.meta.url).pathname;
const cliTs = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const node = process.execPath;
const ids = ["n1", "n2", "n3", "n4"];
const channelPort = 7960;
const httpPort = 7961;

async function waitFor<T>(
  what: string,
  probe: () => T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe("traffic backup in namespaces", { skip: skipUnlessRoot() }, () => {
  let topology: Topology | undefined;
  const dir = mkdtempSync(join(tmpdir(), "fipt-e2e-"));
  const processes = new Map<string, ChildProcess>();
  const logs = new Map<string, string>();
  const dbPath = (id: string) => join(dir, `traffic-${id}.db`);
  /** Reads another process's live database (WAL allows a concurrent reader). */
  const withStore = <T>(id: string, body: (s: TrafficStore) => T): T => {
    const store = new TrafficStore(dbPath(id), id);
    try {
      return body(store);
    } finally {
      store.close();
    }
  };

  before(async () => {
    topology = await createTopology({ prefix: "fipt-", hosts: ids });
    writeFileSync(join(dir, "key"), randomBytes(32), { mode: 0o600 });
    const config = {
      nodes: topology.hosts.map((h) => ({ id: h.name, ips: [h.address] })),
      coordinator: "n1",
      channelPort,
      keyFile: join(dir, "key"),
      dataDir: dir,
      collectIntervalMs: 100,
      httpPort,
    };
    writeFileSync(join(dir, "traffic.json"), JSON.stringify(config));
    for (const id of ids) {
      const child = topology.spawn(id, node, [
        mainTs,
        "--config",
        join(dir, "traffic.json"),
        "--node",
        id,
      ]);
      logs.set(id, "");
      child.stdout?.on("data", (d: Buffer) => logs.set(id, logs.get(id) + d.toString()));
      child.stderr?.on("data", (d: Buffer) => logs.set(id, logs.get(id) + d.toString()));
      processes.set(id, child);
    }
    await waitFor("all components started", () =>
      ids.every((id) => logs.get(id)?.includes('"started"')),
    );
  });

  after(async () => {
    try {
      await topology?.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("re-targets, re-syncs and answers for the killed node from its backup", async (t) => {
    const topo = topology!;
    const addr = (id: string) => topo.host(id).address;
    let passed = false;
    t.after(() => {
      if (!passed) for (const [id, log] of logs) console.log(`--- ${id}\n${log.slice(-3000)}`);
    });
    // Every node learned the version-1 chain.
    // Sequences start at the store's creation time: compare with n2's own, not a count.
    await waitFor("n2 -> n3 replication", () => {
      const own = withStore("n2", (s) => s.highestSeq("n2"));
      return own > 0 && withStore("n3", (s) => s.highestSeq("n2")) >= own - 4;
    });
    // A history worth re-syncing: more than 20 samples on n2 before anything fails (a quick
    // machine gets through the rest of the test in about a second).
    await waitFor("n2's first 21 samples", () => withStore("n2", (s) => s.digest("n2").count > 20));

    // Bounded traffic into n3: one 2 MB TCP transfer from n1.
    const sink = topo.spawn("n3", node, [
      "-e",
      "require('net').createServer((s) => s.resume()).listen(9000, () => console.log('up'))",
    ]);
    await new Promise((resolve) => sink.stdout?.once("data", resolve));
    const bytes = 2_000_000;
    await topo.exec(
      "n1",
      node,
      [
        "-e",
        `const s = require('net').connect(9000, '${addr("n3")}', () => s.end(Buffer.alloc(${bytes})));`,
      ],
      10_000,
    );
    // Let n3 collect and replicate a few rounds that contain the transfer.
    await sleep(600);
    await waitFor("n3's recent samples on n4", () => {
      const own = withStore("n3", (s) => s.highestSeq("n3"));
      return withStore("n4", (s) => s.highestSeq("n3") >= own - 4) || undefined;
    });

    // Kill n3's component outright.
    const victim = processes.get("n3")!;
    process.kill(-victim.pid!, "SIGKILL");
    await new Promise((resolve) => victim.once("exit", resolve));

    // n2 reports n3; the coordinator marks it Failed and points n2 at n4.
    const table = await waitFor("re-targeted table on n2", () => {
      const tab = withStore("n2", (s) => s.loadTable()) as IndexTable | undefined;
      return tab && findRow(tab, "n2")?.backupTargetId === "n4" ? tab : undefined;
    });
    assert.equal(findRow(table, "n3")?.status, "Failed");
    assert.equal(findRow(table, "n3")?.backupTargetId, "n4");
    assert.equal(findRow(table, "n2")?.backupTargetIp, addr("n4"));
    assert.ok(table.version >= 2);

    // Re-sync completeness: everything n2 had by now, from seq 1, is on n4, byte for byte.
    const upTo = withStore("n2", (s) => s.highestSeq("n2"));
    await waitFor(
      "n2's history on n4",
      () => withStore("n4", (s) => s.highestSeq("n2") >= upTo) || undefined,
    );
    const origin = withStore("n2", (s) => s.digest("n2", upTo));
    const copy = withStore("n4", (s) => s.digest("n2", upTo));
    assert.ok(origin.count > 20, `n2 collected ${origin.count} samples`);
    assert.deepEqual(copy, origin);

    // n3's samples survive on n4 (only the last round or two before the kill may be missing).
    const n3Own = withStore("n3", (s) => s.highestSeq("n3"));
    const held = withStore("n4", (s) => s.highestSeq("n3"));
    assert.ok(n3Own - held <= 8, `n4 holds n3 up to ${held} of ${n3Own}`);
    assert.deepEqual(
      withStore("n4", (s) => s.digest("n3", held)),
      withStore("n3", (s) => s.digest("n3", held)),
    );

    // The CLI, run in n1 against n1's HTTP route, answers for n3 from its backup target.
    const cli = await topo.exec(
      "n1",
      node,
      [
        cliTs,
        "traffic",
        "n3",
        "--url",
        `http://${addr("n1")}:${httpPort}`,
        "--from",
        "0",
        "--step",
        "1h",
        "--json",
      ],
      15_000,
    );
    const answer = JSON.parse(cli.stdout) as {
      status: string;
      answeredBy: string;
      fromBackup: boolean;
      buckets: { iface: string; rxBytes: number; samples: number }[];
    };
    assert.equal(answer.status, "Failed");
    assert.equal(answer.answeredBy, "n4");
    assert.equal(answer.fromBackup, true);
    const eth0 = answer.buckets.filter((b) => b.iface === "eth0");
    const rx = eth0.reduce((sum, b) => sum + b.rxBytes, 0);
    assert.ok(rx >= bytes, `n3 eth0 received ${rx} bytes, expected at least ${bytes}`);
    assert.equal(
      answer.buckets.reduce((sum, b) => sum + b.samples, 0),
      withStore("n4", (s) => s.digest("n3").count),
    );

    // A Normal node is answered by itself.
    const normal = await topo.exec(
      "n1",
      node,
      [
        cliTs,
        "traffic",
        "n2",
        "--url",
        `http://${addr("n1")}:${httpPort}`,
        "--from",
        "0",
        "--json",
      ],
      15_000,
    );
    const n2Answer = JSON.parse(normal.stdout) as { status: string; answeredBy: string };
    assert.equal(n2Answer.status, "Normal");
    assert.equal(n2Answer.answeredBy, "n2");

    // n3 comes back (same data file): it re-joins, is Normal again, the chain is restored
    // and n2 re-syncs to n3 what n3 is missing.
    const back = topo.spawn("n3", node, [
      mainTs,
      "--config",
      join(dir, "traffic.json"),
      "--node",
      "n3",
    ]);
    back.stdout?.on("data", (d: Buffer) => logs.set("n3", logs.get("n3") + d.toString()));
    processes.set("n3", back);
    const restored = await waitFor("restored chain on n2", () => {
      const tab = withStore("n2", (s) => s.loadTable()) as IndexTable | undefined;
      return tab && findRow(tab, "n2")?.backupTargetId === "n3" ? tab : undefined;
    });
    assert.equal(findRow(restored, "n3")?.status, "Normal");
    assert.ok(restored.version > table.version);
    const nowAt = withStore("n2", (s) => s.highestSeq("n2"));
    await waitFor(
      "n2 caught up on n3",
      () => withStore("n3", (s) => s.highestSeq("n2") >= nowAt) || undefined,
    );
    assert.deepEqual(
      withStore("n3", (s) => s.digest("n2", nowAt)),
      withStore("n2", (s) => s.digest("n2", nowAt)),
    );
    passed = true;
  });
});
