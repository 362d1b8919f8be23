/**
 * A clean handover, end to end in network namespaces: SIGTERM to a VIP owner's supervisor
 * (what systemd sends on `systemctl stop`). The agent releases its VIPs, tells the
 * coordinator, the others take them over and announce them; the supervisor exits 0. Meanwhile
 * the client asks the VIP for the serving node's name every 20 ms in a bounded loop: it sees at
 * most a short gap, then only the new owner, and never the old owner again.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitFor,
  waitSettled,
  watchHolders,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const vips = [
  { host: 170, policy: "weighted" as const },
  { host: 171, policy: "round-robin" as const },
  { host: 172, policy: "hash" as const },
];

describe("agent: SIGTERM hands the VIPs over", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster | undefined;
  after(async () => {
    await cluster?.destroy();
  });

  it("moves the owner's VIPs with a short gap and exits 0", async (t) => {
    cluster = await startCluster({ prefix: "fipe7-", vips });
    const c = cluster;
    const before = await waitSettled(c);
    const vip = c.vipAddresses[0]!;
    const owner = before.get(vip)!;
    const supervisor = c.agents.get(owner)!;
    const exited = once(supervisor, "exit") as Promise<[number | null, NodeJS.Signals | null]>;

    const watch = watchHolders(c);
    const answers: (string | undefined)[] = [];
    let terminatedAt = -1;
    for (let attempt = 0; attempt < 300; attempt += 1) {
      if (attempt === 10) {
        terminatedAt = answers.length;
        c.signal(owner, "SIGTERM");
      }
      answers.push(await c.ask(vip, 300));
      // Enough once the new owner has answered 30 times in a row.
      const tail = answers.slice(-30);
      if (attempt > 10 && tail.length === 30 && tail.every((a) => a && a !== owner)) break;
      await sleep(20);
    }
    const [code, signal] = await Promise.race([
      exited,
      sleep(10_000, undefined, { ref: false }).then(() => [undefined, undefined] as const),
    ]);
    assert.equal(signal, null, `the supervisor was not killed by a signal\n${c.logs(owner)}`);
    assert.equal(code, 0, `the supervisor exits 0 after a clean handover\n${c.logs(owner)}`);

    assert.ok(
      answers.slice(0, terminatedAt).every((a) => a === owner),
      "served by the owner before",
    );
    const after = answers.slice(terminatedAt);
    const failed = after.filter((a) => a === undefined).length;
    const firstNew = after.findIndex((a) => a !== undefined && a !== owner);
    assert.ok(
      firstNew >= 0,
      `no other node ever answered: ${JSON.stringify(after)}\n${allLogs(c)}`,
    );
    const successor = after[firstNew]!;
    assert.ok(
      after.slice(firstNew).every((a) => a === successor || a === undefined),
      `after the handover only ${successor} answers: ${JSON.stringify(after)}`,
    );
    t.diagnostic(`${failed} of ${after.length} probes failed after SIGTERM`);
    assert.ok(failed < 25, `${failed} probes failed during the handover: ${JSON.stringify(after)}`);
    assert.equal(await c.holderOf(vip), successor, `${successor} holds ${vip}`);

    for (const [other, previous] of before) {
      if (previous !== owner) {
        assert.equal(await c.holderOf(other), previous, `${other} stayed on ${previous}`);
        continue;
      }
      const holder = await waitFor(async () => {
        const h = await c.holderOf(other);
        return h && h !== owner ? h : undefined;
      }, 5000);
      assert.ok(holder, `${other} was handed over too`);
      assert.equal(await waitFor(() => c.ask(other, 1000), 3000), holder);
    }
    assert.deepEqual(await c.heldVips(owner), [], `${owner} holds nothing after stopping`);
    const report = await watch.stop();
    assert.deepEqual(
      report.doubles.slice(0, 3),
      [],
      `no sampled instant with two holders\n${allLogs(c)}`,
    );
    c.startAgent(owner);
    await waitSettled(c);
  });

  it("the coordinator stopped with SIGTERM and started again is a healthy member, not drained", async () => {
    const c = cluster!;
    type Status = { coordinator?: string; members: { id: string; state: string }[] };
    const status = async (id: string): Promise<Status | undefined> => {
      const r = await c.cli(id, ["status", "--json"]);
      return r.code === 0 ? (JSON.parse(r.stdout) as Status) : undefined;
    };
    const coordinator = await waitFor(async () => (await status(c.ids[0]!))?.coordinator, 10_000);
    assert.ok(coordinator, "a coordinator");
    const supervisor = c.agents.get(coordinator)!;
    const exited = once(supervisor, "exit");
    c.signal(coordinator, "SIGTERM");
    await exited;
    const other = c.ids.find((id) => id !== coordinator)!;
    const gone = await waitFor(async () => {
      const s = await status(other);
      const state = s?.members.find((m) => m.id === coordinator)?.state;
      return s?.coordinator && s.coordinator !== coordinator && state !== "healthy"
        ? state
        : undefined;
    }, 10_000);
    assert.equal(gone, "failed", `${coordinator} is a failed member while stopped, not drained`);
    c.startAgent(coordinator);
    const back = await waitFor(async () => {
      const s = await status(other);
      return s?.members.find((m) => m.id === coordinator)?.state === "healthy" ? true : undefined;
    }, 15_000);
    assert.ok(
      back,
      `${coordinator} is a healthy member again\n${JSON.stringify(await status(other))}`,
    );
    await waitSettled(c);
  });
});
