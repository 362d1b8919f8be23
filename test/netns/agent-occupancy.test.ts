/**
 * The occupancy check, end to end in network namespaces (S2: a standby mounts the VIP only if
 * nobody occupies it). A foreign host (the client namespace) already has one VIP's address
 * when the agents start: the owner's ARP probe gets an answer, so no node claims the address
 * and `floatip status --json` reports the conflict, while the other VIP is claimed as usual.
 * Once the foreign host lets go of the address, an agent takes it and serves the client.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitFor,
  watchHolders,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const vips = [
  { host: 140, policy: "hash" as const },
  { host: 141, policy: "round-robin" as const },
];

interface Status {
  vips: { address: string; owner: string | null; conflict: boolean; local: string }[];
}

describe("agent: VIP occupied by a foreign host", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster | undefined;
  after(async () => {
    await cluster?.destroy();
  });

  it("claims no occupied address, reports the conflict, and claims it once it is free", async () => {
    cluster = await startCluster({ prefix: "fipe5-", vips, startAgents: false });
    const c = cluster;
    const [occupied, free] = c.vipAddresses as [string, string];
    await c.topology.exec("client", "ip", ["address", "add", `${occupied}/24`, "dev", "eth0"]);
    for (const id of c.ids) c.startAgent(id);

    const freeHolder = await waitFor(() => c.holderOf(free), 20_000);
    assert.ok(freeHolder, `the free VIP ${free} was never claimed\n${allLogs(c)}`);
    const statuses = async () =>
      Promise.all(
        c.ids.map(async (id) => {
          const result = await c.cli(id, ["status", "--json"]);
          return result.code === 0 ? (JSON.parse(result.stdout) as Status) : undefined;
        }),
      );
    const conflictOf = (views: (Status | undefined)[], vip: string) =>
      views.flatMap((v) => v?.vips.filter((x) => x.address === vip && x.conflict) ?? []);
    const reported = await waitFor(async () => {
      const views = await statuses();
      return conflictOf(views, occupied).length > 0 ? views : undefined;
    }, 10_000);
    assert.ok(reported, `no node reports a conflict for ${occupied}\n${allLogs(c)}`);
    assert.deepEqual(conflictOf(reported, free), [], `no conflict is reported for ${free}`);

    // Several seconds, across several of the owner's probe retries: nobody claims it.
    const watch = watchHolders(c);
    await sleep(3000);
    const quiet = await watch.stop();
    assert.ok(quiet.samples > 20, "the sampler ran");
    assert.deepEqual(
      quiet.seen.get(occupied),
      [],
      `no node took ${occupied} while it was occupied`,
    );
    assert.deepEqual(quiet.doubles.slice(0, 3), [], allLogs(c));
    assert.ok(
      (await c.topology.addresses("client")).includes(`${occupied}/24`),
      "the foreign host kept it",
    );

    await c.topology.exec("client", "ip", ["address", "del", `${occupied}/24`, "dev", "eth0"]);
    const taker = await waitFor(() => c.holderOf(occupied), 10_000);
    assert.ok(
      taker,
      `${occupied} was not claimed after the foreign host released it\n${allLogs(c)}`,
    );
    assert.equal(
      await waitFor(() => c.ask(occupied, 1000), 3000),
      taker,
      "the client is served by the agent",
    );
    const cleared = await waitFor(async () => {
      const views = await statuses();
      return conflictOf(views, occupied).length === 0 ? true : undefined;
    }, 5000);
    assert.ok(cleared, "the conflict is cleared once the agent holds the address");
  });
});
