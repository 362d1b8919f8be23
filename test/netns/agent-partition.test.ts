/**
 * A network partition, end to end in network namespaces: five real agents, a cut (nftables
 * drops between every pair across it) that leaves a VIP owner in a minority of two. The client
 * still reaches every node, so only the agents' own decisions keep the address single:
 * the minority hears no majority, loses its lease and releases its VIPs by itself (S2), and
 * the majority takes them over only after that lease has surely expired. A background sampler
 * reads every namespace's addresses throughout. After the heal nothing flaps back.
 */
import assert from "node:assert/strict";
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
  { host: 120, policy: "round-robin" as const },
  { host: 121, policy: "round-robin" as const },
  { host: 122, policy: "weighted" as const },
  { host: 123, policy: "hash" as const },
  { host: 124, policy: "hash" as const },
];

describe("agent: minority partition", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster | undefined;
  after(async () => {
    await cluster?.destroy();
  });

  it("the isolated owner releases, the majority takes over, and the heal moves nothing back", async () => {
    cluster = await startCluster({ prefix: "fipe3-", nodes: 5, vips });
    const c = cluster;
    const before = await waitSettled(c, 30_000);
    // The weighted VIP sits on the heaviest node, n1; cut it off together with one more node.
    const owner = before.get(c.vipAddresses[2]!)!;
    const minority = [owner, c.ids.find((id) => id !== owner)!];
    const majority = c.ids.filter((id) => !minority.includes(id));
    const cut: [string, string][] = minority.flatMap((a) =>
      majority.map((b): [string, string] => [a, b]),
    );

    const watch = watchHolders(c);
    // All pairs at once: cut one pair at a time, the first cut pairs are a partial partition
    // for as long as the rest take, and the coordinator rightly fails a node it no longer
    // hears while a majority still hears it (a majority node's VIP then moves).
    await Promise.all(cut.map(([a, b]) => c.topology.dropBetween(a, b)));
    const released = await waitFor(async () => {
      const held = await Promise.all(minority.map((id) => c.heldVips(id)));
      return held.every((h) => h.length === 0) ? true : undefined;
    }, 5000);
    assert.ok(
      released,
      `the minority ${minority} kept its VIPs\n${minority.map((id) => c.logs(id)).join("\n")}`,
    );
    const during = new Map<string, string>();
    for (const vip of c.vipAddresses) {
      const holder = await waitFor(async () => {
        const h = await c.holderOf(vip);
        return h && majority.includes(h) ? h : undefined;
      }, 10_000);
      assert.ok(holder, `${vip} is not held by the majority ${majority}\n${allLogs(c)}`);
      const previous = before.get(vip)!;
      if (majority.includes(previous))
        assert.equal(holder, previous, `${vip} stayed on ${previous}\n${allLogs(c)}`);
      assert.equal(await waitFor(() => c.ask(vip, 1000), 3000), holder, `${vip} serves the client`);
      during.set(vip, holder);
    }
    const fault = await watch.stop();
    assert.ok(fault.samples > 5, "the sampler ran during the partition");
    assert.deepEqual(
      fault.doubles.slice(0, 3),
      [],
      `no sampled instant with two holders during the partition\n${allLogs(c)}`,
    );

    const afterHeal = watchHolders(c);
    await Promise.all(cut.map(([a, b]) => c.topology.heal(a, b)));
    // Long enough for the minority to be heard again and trusted (rise) several times over.
    await sleep(4000);
    const healed = await afterHeal.stop();
    assert.deepEqual(
      healed.doubles.slice(0, 3),
      [],
      `no sampled instant with two holders after the heal\n${allLogs(c)}`,
    );
    for (const [vip, holder] of during) {
      assert.deepEqual(healed.seen.get(vip), [holder], `${vip} stayed on ${holder} after the heal`);
      assert.equal(await c.ask(vip, 1000), holder);
    }
    const rejoined = await c.cli(majority[0]!, ["status", "--json"]);
    const members = (JSON.parse(rejoined.stdout) as { members: { id: string; state: string }[] })
      .members;
    for (const id of minority) {
      assert.equal(
        members.find((m) => m.id === id)?.state,
        "healthy",
        `${id} rejoined after the heal`,
      );
    }
  });
});
