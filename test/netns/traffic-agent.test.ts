/**
 * Traffic backup (S3) inside `floatip agent`, end to end: four real agents (each under its
 * supervisor) in namespaces with `traffic: { interval: 100ms }`, one VIP preferred on n3.
 * The client sends a bounded 2 MB to the VIP, so the holder's per-VIP nftables counters and
 * eth0 counters see it. Then the holder's agent and supervisor are killed with SIGKILL.
 * Checked from the outside, through `floatip traffic` on the nodes and the real SQLite files:
 * the node that backed up to the victim is re-targeted to the victim's own target, its whole
 * history is re-synced there (count and SHA-256 equal), the victim's samples are on its
 * target, and a query for the victim run on a third node says `Failed`, answered by the
 * target, with the VIP's bytes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { findRow, type IndexTable } from "../../src/core/traffic/index-table.ts";
import { allLogs, type LiveCluster, startCluster, waitSettled } from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";
import { TrafficStore } from "../../src/traffic/store.ts";

interface Answer {
  node: string;
  status: string;
  answeredBy: string;
  fromBackup: boolean;
  buckets: { iface: string; rxBytes: number; rxPackets: number; samples: number }[];
}

/** Polls `probe` every 200 ms (at most 150 times) until it returns a value. */
async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  logs: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 150; i += 1) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) break;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}\n${logs()}`);
}

describe("traffic backup inside the agent", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster | undefined;
  after(async () => {
    await cluster?.destroy();
  });

  it("re-targets, re-syncs and answers for a killed VIP holder from its backup", async () => {
    cluster = await startCluster({
      prefix: "fipta-",
      nodes: 4,
      vips: [{ host: 100, preferred: "n3" }],
      extraYaml: "traffic: { interval: 100ms }",
    });
    const c = cluster;
    const logs = () => allLogs(c).slice(-20_000);
    const vip = c.vipAddresses[0]!;
    const owners = await waitSettled(c);
    const victim = owners.get(vip)!;
    const dbPath = (id: string) => join(c.dir, "state", id, "traffic.db");
    const withStore = <T>(id: string, body: (s: TrafficStore) => T): T => {
      const store = new TrafficStore(dbPath(id), id);
      try {
        return body(store);
      } finally {
        store.close();
      }
    };
    const cliJson = async <T>(id: string, args: string[]): Promise<T | undefined> => {
      const r = await c.cli(id, ["traffic", ...args, "--json"]);
      return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
    };
    const vipRx = (a: Answer) =>
      a.buckets.filter((b) => b.iface === `vip:${vip}`).reduce((s, b) => s + b.rxBytes, 0);

    // Every node has the version-1 chain from the agents' coordinator.
    const before = await waitUntil(
      "the index table on n1",
      () => cliJson<IndexTable>("n1", ["--table"]),
      20_000,
      logs,
    );
    const target = findRow(before, victim)?.backupTargetId;
    const predecessor = before.rows.find((r) => r.backupTargetId === victim)?.nodeId;
    assert.ok(target && predecessor, `chain around ${victim}: ${JSON.stringify(before)}`);
    const asker = c.ids.find((id) => id !== victim && id !== target)!;

    // Bounded traffic to the VIP: one 2 MB TCP transfer from the client to a sink on the holder.
    const sink = c.topology.spawn(victim, process.execPath, [
      "-e",
      "require('net').createServer((s) => s.resume()).listen(9000, () => console.log('up'))",
    ]);
    await new Promise((resolve) => sink.stdout?.once("data", resolve));
    const bytes = 2_000_000;
    await c.topology.exec(
      "client",
      process.execPath,
      [
        "-e",
        `const s = require('net').connect(9000, '${vip}', () => s.end(Buffer.alloc(${bytes})));`,
      ],
      10_000,
    );
    // The holder counted the VIP's bytes, and its samples reached its backup target.
    await waitUntil(
      `${victim}'s per-VIP bytes`,
      async () => {
        const a = await cliJson<Answer>(victim, [victim, "--from", "0", "--step", "1h"]);
        return a && vipRx(a) >= bytes ? a : undefined;
      },
      10_000,
      logs,
    );
    // Up to the sample that counted those bytes: a sample still on its way to the target
    // (each is sent as soon as it is taken) is what a backup may lack when its node dies,
    // and the bytes must not be in one.
    const counted = withStore(victim, (s) => s.highestSeq(victim));
    await waitUntil(
      `${victim}'s samples up to ${counted} on ${target}`,
      () => (withStore(target, (s) => s.highestSeq(victim)) >= counted ? true : undefined),
      10_000,
      logs,
    );

    // Agent and supervisor die without a word.
    const pid = c.agentPid(victim);
    assert.ok(pid, "the supervisor has an agent child");
    process.kill(pid, "SIGKILL");
    c.signal(victim, "SIGKILL");

    // The predecessor is re-pointed to the victim's own target; the victim is Failed.
    const after = await waitUntil(
      "the re-targeted table",
      async () => {
        const t = await cliJson<IndexTable>(asker, ["--table"]);
        return t && findRow(t, predecessor)?.backupTargetId === target ? t : undefined;
      },
      20_000,
      logs,
    );
    assert.equal(findRow(after, victim)?.status, "Failed");
    assert.equal(findRow(after, victim)?.backupTargetId, target);
    assert.equal(findRow(after, predecessor)?.backupTargetIp, c.topology.host(target).address);
    assert.ok(after.version > before.version);

    // Re-sync completeness: the predecessor's whole history is on the new target.
    const upTo = withStore(predecessor, (s) => s.highestSeq(predecessor));
    await waitUntil(
      `${predecessor}'s history on ${target}`,
      () => (withStore(target, (s) => s.highestSeq(predecessor)) >= upTo ? true : undefined),
      15_000,
      logs,
    );
    const origin = withStore(predecessor, (s) => s.digest(predecessor, upTo));
    assert.ok(origin.count > 20, `${predecessor} collected ${origin.count} samples`);
    assert.deepEqual(
      withStore(target, (s) => s.digest(predecessor, upTo)),
      origin,
    );

    // The victim's samples survive on its target, identical to its own file.
    const victimOwn = withStore(victim, (s) => s.highestSeq(victim));
    const held = withStore(target, (s) => s.highestSeq(victim));
    assert.ok(victimOwn - held <= 8, `${target} holds ${victim} up to ${held} of ${victimOwn}`);
    assert.deepEqual(
      withStore(target, (s) => s.digest(victim, held)),
      withStore(victim, (s) => s.digest(victim, held)),
    );

    // Asked on a third node, through its agent API: Failed, answered by the target, VIP bytes.
    const answer = await cliJson<Answer>(asker, [victim, "--from", "0", "--step", "1h"]);
    assert.ok(answer, `floatip traffic ${victim} on ${asker} failed\n${logs()}`);
    assert.equal(answer.status, "Failed");
    assert.equal(answer.answeredBy, target);
    assert.equal(answer.fromBackup, true);
    assert.ok(vipRx(answer) >= bytes, `${vip} received ${vipRx(answer)} bytes on ${victim}`);
    const eth0 = answer.buckets.filter((b) => b.iface === "eth0");
    assert.ok(eth0.reduce((s, b) => s + b.rxBytes, 0) >= bytes);
    assert.equal(
      answer.buckets.reduce((s, b) => s + b.samples, 0),
      withStore(target, (s) => s.digest(victim).count),
    );
  });
});
