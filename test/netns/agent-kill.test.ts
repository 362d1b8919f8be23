/**
 * A VIP owner's agent dies without a word (SIGKILL), end to end in network namespaces: three
 * real agents (each under its supervisor) on one bridge, a client that asks every VIP for the
 * name of the node serving it, and a background sampler that reads every namespace's addresses
 * during the fault to show that no VIP is ever held twice.
 *
 * 1. Only the agent dies: the supervisor removes its VIPs at once, another node takes them and
 *    its gratuitous ARP re-points the client's neighbour entry without waiting for ageing.
 * 2. Agent and supervisor die: nothing on the node can remove the VIP any more, so the kernel
 *    address lifetime (3 s) drops it, and the new owner's occupancy probe keeps it from
 *    claiming the address while the dead node's kernel still answers for it.
 */
import assert from "node:assert/strict";
import { readlinkSync } from "node:fs";
import { basename } from "node:path";
import { after, describe, it } from "node:test";
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
  { host: 100, policy: "round-robin" as const },
  { host: 101, policy: "weighted" as const },
  { host: 102, policy: "hash" as const },
];

describe("agent killed with SIGKILL", { skip: skipUnlessRoot() }, () => {
  const clusters: LiveCluster[] = [];
  // Each test destroys its cluster when it ends; this catches one left by a failed start.
  after(async () => {
    for (const cluster of clusters) await cluster.destroy();
  });
  /** Runs `body` on a fresh cluster and always destroys it (the next test reuses the names). */
  const withCluster = async (body: (cluster: LiveCluster) => Promise<void>) => {
    const cluster = await startCluster({ prefix: "fipe1-", vips, addressLifetime: "3s" });
    clusters.push(cluster);
    try {
      await body(cluster);
    } finally {
      await cluster.destroy();
    }
  };

  it("moves the VIPs to another node and re-points the client's neighbour entry", () =>
    withCluster(async (cluster) => {
      const before = await waitSettled(cluster);
      const target = cluster.vipAddresses[0]!;
      const owner = before.get(target)!;
      const ownerMac = cluster.topology.host(owner).mac;
      assert.equal(
        (await cluster.topology.neighbour("client", target))?.mac,
        ownerMac,
        "client learnt the owner's MAC",
      );
      const moving = [...before].filter(([, o]) => o === owner).map(([vip]) => vip);
      const staying = [...before].filter(([, o]) => o !== owner);

      const watch = watchHolders(cluster);
      const supervisor = cluster.agents.get(owner)?.pid;
      assert.ok(supervisor, "the owner's supervisor runs");
      // `floatip agent` checked the configuration and became the C supervisor (execve).
      assert.equal(basename(readlinkSync(`/proc/${supervisor}/exe`)), "floatip-supervisor");
      const pid = cluster.agentPid(owner);
      assert.ok(pid, "the supervisor has an agent child");
      process.kill(pid, "SIGKILL");
      const newOwner = await waitFor(async () => {
        const holder = await cluster.holderOf(target);
        return holder && holder !== owner ? holder : undefined;
      }, 10_000);
      assert.ok(
        newOwner,
        `${target} was not taken over after ${owner}'s agent died\n${allLogs(cluster)}`,
      );
      // No traffic to the VIP yet: only the new owner's gratuitous ARP can have changed the entry.
      const newMac = cluster.topology.host(newOwner).mac;
      const entry = await waitFor(async () => {
        const n = await cluster.topology.neighbour("client", target);
        return n?.mac === newMac ? n : undefined;
      }, 3000);
      assert.ok(
        entry,
        `client's neighbour entry for ${target} still ${JSON.stringify(await cluster.topology.neighbour("client", target))}, want ${newMac}`,
      );
      assert.equal(
        await cluster.ask(target, 1000),
        newOwner,
        "the client is served by the new owner",
      );
      for (const vip of moving) {
        const holder = await waitFor(async () => {
          const h = await cluster.holderOf(vip);
          return h && h !== owner ? h : undefined;
        }, 10_000);
        assert.ok(holder, `${vip} (held by ${owner}) was taken over`);
        assert.equal(await waitFor(() => cluster.ask(vip, 1000), 3000), holder);
      }
      assert.deepEqual(
        await cluster.heldVips(owner),
        [],
        `${owner} holds nothing after its agent died`,
      );
      // The supervisor's own lines reach the same log as the agent's (standard error is
      // inherited through the execve and the fork).
      assert.match(
        cluster.logs(owner),
        /ERROR the agent died; removing its VIPs at once .*signal=SIGKILL/,
      );
      assert.match(cluster.logs(owner), /INFO {2}agent started node=/);
      for (const [vip, o] of staying)
        assert.equal(await cluster.holderOf(vip), o, `${vip} stayed on live ${o}`);
      const report = await watch.stop();
      assert.ok(report.samples > 5, "the sampler ran during the fault");
      assert.deepEqual(
        report.doubles.slice(0, 3),
        [],
        `no sampled instant with two holders\n${allLogs(cluster)}`,
      );
    }));

  it("lets the kernel drop the VIP of a node whose agent and supervisor both died", () =>
    withCluster(async (cluster) => {
      const before = await waitSettled(cluster);
      const target = cluster.vipAddresses[1]!; // weighted: the heaviest node, n1
      const owner = before.get(target)!;
      const moving = [...before].filter(([, o]) => o === owner).map(([vip]) => vip);

      const watch = watchHolders(cluster);
      const pid = cluster.agentPid(owner);
      assert.ok(pid, "the supervisor has an agent child");
      // The supervisor is stopped first, so that it cannot remove the VIPs when its agent
      // dies (back to back was not enough: on a busy machine the C supervisor, on the other
      // CPU, reaped the agent and removed the VIPs between the two kills), then both die.
      cluster.signal(owner, "SIGSTOP");
      process.kill(pid, "SIGKILL");
      cluster.signal(owner, "SIGKILL");
      const killedAt = Date.now();
      assert.ok(
        (await cluster.heldVips(owner)).includes(target),
        "the VIP outlives the dead agent for a while",
      );
      const gone = await waitFor(
        async () => ((await cluster.heldVips(owner)).length === 0 ? true : undefined),
        6000,
      );
      assert.ok(
        gone,
        `${owner} still holds ${await cluster.heldVips(owner)} ${Date.now() - killedAt} ms after its agent died`,
      );
      for (const vip of moving) {
        const holder = await waitFor(async () => {
          const h = await cluster.holderOf(vip);
          return h && h !== owner ? h : undefined;
        }, 10_000);
        assert.ok(holder, `${vip} was taken over\n${allLogs(cluster)}`);
        assert.equal(
          await waitFor(() => cluster.ask(vip, 1000), 3000),
          holder,
          `${vip} serves the client again`,
        );
      }
      const report = await watch.stop();
      assert.ok(report.samples > 5, "the sampler ran during the fault");
      assert.deepEqual(
        report.doubles.slice(0, 3),
        [],
        `no sampled instant with two holders\n${allLogs(cluster)}`,
      );
    }));
});
