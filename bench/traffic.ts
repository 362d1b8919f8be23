/**
 * Traffic backup (S3) benchmark, on loopback:
 *  1. collection cost per sample: reading /proc/net/dev, computing deltas, storing in SQLite;
 *  2. replication throughput: one day of 1-s samples × 4 interfaces (345,600 rows) streamed
 *     from an origin to its (empty) backup target;
 *  3. re-sync time: the target is stopped; measured from its stop until the next node holds
 *     all 345,600 rows (failure detection + report to the coordinator + full re-sync).
 *     Goal: under 5 s.
 * Run: npm run bench:traffic
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Collector, type InterfaceSample } from "../src/traffic/collector.ts";
import { StaticClusterView } from "../src/traffic/static-cluster-view.ts";
import { TrafficStore } from "../src/traffic/store.ts";
import { TrafficNode } from "../src/traffic/traffic-node.ts";

const dir = mkdtempSync(join(tmpdir(), "fipt-bench-"));
const daySamples = 86_400 * 4;

async function waitFor(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function collectionCost(): Promise<void> {
  const store = new TrafficStore(join(dir, "collect.db"), "c1");
  let samples = 0;
  const collector = new Collector({
    onSamples: (s) => {
      store.appendOwn(s);
      samples += s.length;
    },
  });
  await collector.tick();
  const rounds = 2000;
  const start = performance.now();
  for (let i = 0; i < rounds; i++) await collector.tick();
  const ms = performance.now() - start;
  store.close();
  console.log(
    `collection: ${rounds} rounds, ${samples} samples, ${((ms * 1000) / rounds).toFixed(1)} µs per round, ${((ms * 1000) / Math.max(1, samples)).toFixed(1)} µs per sample (read + deltas + SQLite)`,
  );
}

async function replication(): Promise<void> {
  const key = randomBytes(32);
  const ids = ["b1", "b2", "b3"];
  const nodes = ids.map((id, i) => ({ id, ips: [`127.0.0.${31 + i}`] }));
  const port = 17_960;
  const make = (id: string, i: number) =>
    new TrafficNode({
      selfId: id,
      nodes,
      clusterKey: key,
      dbPath: join(dir, `${id}.db`),
      channelPort: port,
      listenHost: nodes[i]!.ips[0]!,
      clusterView: new StaticClusterView(
        id,
        nodes.map((n) => ({ id: n.id, address: n.ips[0]!, state: "healthy" as const })),
        "b1",
      ),
      collect: false,
      collectIntervalMs: 100,
      requestTimeoutMs: 5000,
    });
  // Fill the origin's file before starting: one day of 1-s samples for 4 interfaces.
  const fill = new TrafficStore(join(dir, "b1.db"), "b1");
  const fillStart = performance.now();
  const day0 = Date.now() - 86_400_000;
  for (let second = 0; second < 86_400; second += 600) {
    const batch: InterfaceSample[] = [];
    for (let s = second; s < second + 600; s++) {
      for (let i = 0; i < 4; i++) {
        batch.push({
          tsMs: day0 + s * 1000,
          iface: `eth${i}`,
          ifindex: i + 2,
          intervalMs: 1000,
          rxBytes: s * 7 + i,
          rxPackets: s,
          rxErrors: 0,
          rxDrops: 0,
          txBytes: s * 3 + i,
          txPackets: s,
          txErrors: 0,
          txDrops: 0,
        });
      }
    }
    fill.appendOwn(batch);
  }
  fill.close();
  console.log(
    `fill: ${daySamples} samples written in ${(performance.now() - fillStart).toFixed(0)} ms`,
  );

  const running = ids.map(make);
  try {
    const [b1, b2, b3] = running as [TrafficNode, TrafficNode, TrafficNode];
    const start = performance.now();
    for (const n of running) await n.start();
    // Sequences start at the store's creation time: "all of them" is b1's own highest.
    const all = b1.store.highestSeq("b1");
    await waitFor("initial sync to b2", () => b2.store.highestSeq("b1") >= all);
    const syncMs = performance.now() - start;
    console.log(
      `replication: ${daySamples} samples to an empty target in ${syncMs.toFixed(0)} ms = ${Math.round((daySamples / syncMs) * 1000)} samples/s`,
    );
    const stopAt = performance.now();
    await b2.stop();
    running.splice(1, 1);
    await waitFor("re-sync to b3", () => b3.store.highestSeq("b1") >= all);
    const resyncMs = performance.now() - stopAt;
    const same = JSON.stringify(b3.store.digest("b1")) === JSON.stringify(b1.store.digest("b1"));
    console.log(
      `re-sync: target stopped -> new target holds all ${daySamples} samples in ${resyncMs.toFixed(0)} ms (goal < 5000 ms: ${resyncMs < 5000 ? "met" : "MISSED"}); digests equal: ${same}`,
    );
  } finally {
    for (const n of running) await n.stop().catch(() => {});
  }
}

try {
  await collectionCost();
  await replication();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
