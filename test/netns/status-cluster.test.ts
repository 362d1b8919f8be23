/**
 * `floatip status --cluster`, end to end: three real agents in network namespaces and the real
 * CLI run in one node's namespace against its local API (which listens on loopback only, as by
 * default). Every node's own view comes from its heartbeats, so the command needs no remote
 * API access.
 *
 * 1. A settled cluster: three rows, one term, one coordinator, one table, one configuration,
 *    every node hearing both others recently, every VIP reported by exactly one node, and the
 *    text view says the nodes agree.
 * 2. One node's control plane is stopped (SIGSTOP) for 3 s: the observer marks its row stale,
 *    the third node's own row reports that it has not heard the stopped node for over a
 *    second, and the text view lists both as disagreements. After SIGCONT the views converge
 *    again.
 * 3. `ip list` shows the same SINCE for a VIP on every node, the time its owner acquired it,
 *    also on a node restarted long after that; `ip list --explain` on a follower gives the
 *    coordinator's reason for each owner.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ClusterView } from "../../src/cli/commands/status.ts";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitFor,
  waitSettled,
} from "../../src/lab/cluster.ts";
import { coordinatorOf, pauseProcess } from "../../src/lab/faults.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const vips = [
  { host: 160, policy: "round-robin" as const },
  { host: 161, policy: "round-robin" as const },
  { host: 162, policy: "hash" as const },
];

describe("floatip status --cluster", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster;
  before(async () => {
    cluster = await startCluster({ prefix: "fipsv-", vips });
    await waitSettled(cluster);
  });
  after(async () => {
    await cluster?.destroy();
  });

  const view = async (id: string): Promise<ClusterView> => {
    const result = await cluster.cli(id, ["status", "--cluster", "--json"]);
    assert.equal(result.code, 0, `status --cluster on ${id}: ${result.stderr}`);
    return JSON.parse(result.stdout) as ClusterView;
  };

  it("shows every node's own view side by side, and that they agree", async () => {
    // Settled means every VIP held; the views agree a heartbeat later at the latest.
    const agreed = await waitFor(async () => {
      const v = await view("n1");
      return v.disagreements.length === 0 ? v : undefined;
    }, 10_000);
    assert.ok(agreed, `the views converge\n${JSON.stringify(await view("n1"), null, 2)}`);
    assert.deepEqual(
      agreed.rows.map((r) => [r.id, r.self]),
      [
        ["n1", true],
        ["n2", false],
        ["n3", false],
      ],
    );
    const coordinator = coordinatorOf(cluster);
    for (const row of agreed.rows) {
      assert.equal(row.coordinator, coordinator, `${row.id} follows ${coordinator}`);
      assert.equal(row.term, agreed.rows[0]!.term, `${row.id}: one term`);
      assert.ok(row.heardAgoMs !== null && row.heardAgoMs < 1000, `${row.id} heard recently`);
      assert.ok(row.leaseLeftMs !== null && row.leaseLeftMs > 0, `${row.id} has a lease`);
      const others = cluster.ids.filter((id) => id !== row.id);
      assert.deepEqual(
        Object.keys(row.heardMs ?? {}).sort(),
        others,
        `${row.id} hears both others`,
      );
      for (const id of others)
        assert.ok(row.heardMs![id]! < 1000, `${row.id} heard ${id} recently`);
    }
    const reported = agreed.rows.flatMap((r) => r.holding).sort();
    assert.deepEqual(reported, [...cluster.vipAddresses].sort(), "each VIP reported once");
    const text = await cluster.cli("n2", ["status", "--cluster"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^Cluster \S+ as n2 sees it/);
    assert.match(text.stdout, /^n2\*\s+self\s/m);
    assert.match(text.stdout, /Every node reports the same term, coordinator, table/);
  });

  it("marks a stopped node's row stale and shows who no longer hears it", async () => {
    const coordinator = coordinatorOf(cluster);
    // Observe from a node that is not stopped; the third node's own row must show the gap too.
    const stopped = cluster.ids.find((id) => id !== coordinator)!;
    const observer = coordinator;
    const third = cluster.ids.find((id) => id !== stopped && id !== observer)!;
    const pid = cluster.agentPid(stopped);
    assert.ok(pid, `${stopped}'s control plane runs`);
    const pause = pauseProcess(pid, 4000);
    let during: ClusterView | undefined;
    let text = "";
    try {
      during = await waitFor(async () => {
        const v = await view(observer);
        const row = v.rows.find((r) => r.id === stopped)!;
        const thirdRow = v.rows.find((r) => r.id === third)!;
        const gap = thirdRow.heardMs?.[stopped];
        return row.heardAgoMs !== null && row.heardAgoMs > 1000 && (gap === undefined || gap > 1000)
          ? v
          : undefined;
      }, 3000);
      text = (await cluster.cli(observer, ["status", "--cluster"])).stdout;
    } finally {
      await pause;
    }
    assert.ok(during, `${observer} saw ${stopped} go quiet\n${allLogs(cluster)}`);
    assert.ok(
      during.disagreements.some((d) => d.startsWith(`${stopped}: last heard`)),
      during.disagreements.join("\n"),
    );
    assert.match(text, new RegExp(`^${stopped}\\s+\\S+ s STALE`, "m"), text);
    const healed = await waitFor(async () => {
      const v = await view(observer);
      return v.disagreements.length === 0 ? v : undefined;
    }, 15_000);
    assert.ok(healed, `the views converge after SIGCONT\n${allLogs(cluster)}`);
  });

  it("ip list: one SINCE per VIP on every node, also after a restart; a follower explains with the coordinator's reason", async () => {
    interface Vip {
      address: string;
      owner: string | null;
      since: string | null;
      explain: string;
    }
    /** Undefined while the agent's API is not up yet (a restarted agent is still starting). */
    const listWhenUp = async (id: string): Promise<Vip[] | undefined> => {
      const result = await cluster.cli(id, ["ip", "list", "--json", "--explain"]);
      if (result.code !== 0 && /no floatip agent answers/.test(result.stderr)) return undefined;
      assert.equal(result.code, 0, result.stderr);
      return JSON.parse(result.stdout) as Vip[];
    };
    await waitSettled(cluster);
    const coordinator = coordinatorOf(cluster);
    const restarted = cluster.ids.find((id) => id !== coordinator)!;
    // Restart a follower well after the VIPs were placed: SIGTERM (it hands its VIPs over and
    // exits), then start it again. It learns when each VIP was acquired from the owners.
    await new Promise((done) => setTimeout(done, 2000));
    const agent = cluster.agents.get(restarted)!;
    const exited = new Promise((done) => agent.once("exit", done));
    cluster.signal(restarted, "SIGTERM");
    await exited;
    const restartedAt = Date.now();
    cluster.startAgent(restarted);
    await waitSettled(cluster);
    const agreed = await waitFor(async () => {
      const answers = await Promise.all(cluster.ids.map((id) => listWhenUp(id)));
      if (answers.some((l) => l === undefined)) return undefined;
      const lists = answers as Vip[][];
      for (const [i, vip] of lists[0]!.entries()) {
        const times = lists.map((l) => (l[i]!.since ? Date.parse(l[i]!.since!) : Number.NaN));
        if (times.some(Number.isNaN) || Math.max(...times) - Math.min(...times) > 300)
          return undefined;
        if (lists.some((l) => l[i]!.owner !== vip.owner)) return undefined;
      }
      return lists;
    }, 10_000);
    assert.ok(agreed, `every node shows one SINCE per VIP\n${allLogs(cluster)}`);
    const mine = agreed[cluster.ids.indexOf(restarted)]!;
    assert.ok(
      mine.some((v) => v.owner !== restarted && Date.parse(v.since!) < restartedAt - 1000),
      `the restarted node shows a VIP acquired before it started\n${JSON.stringify(mine, null, 2)}`,
    );
    const follower = cluster.ids.find((id) => id !== coordinator)!;
    for (const vip of agreed[cluster.ids.indexOf(follower)]!) {
      assert.match(
        vip.explain,
        new RegExp(
          `^assigned to ${vip.owner} by coordinator ${coordinator} \\(table \\d+\\.\\d+\\): \\S`,
        ),
      );
    }
  });
});
