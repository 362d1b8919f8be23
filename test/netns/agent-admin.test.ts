/**
 * Preferred nodes and the operator's commands, end to end in network namespaces with three
 * real agents and the real `floatip` CLI run inside a node's namespace against its local API:
 *
 * 1. Failback: a VIP prefers n1 with `failback: immediate`. n1 dies (agent and supervisor), the
 *    VIP moves; n1 comes back and the VIP returns to it.
 * 2. `floatip ip move VIP n3` (with the API token; refused without it) pins the VIP to n3.
 * 3. `floatip node disable n3` drains n3 (it holds nothing); `enable` makes it eligible again,
 *    which shows as the pinned VIP going back to it.
 * 4. What cannot be done is refused with the reason (a move to a drained node; draining the
 *    last eligible node without --force), and `--wait` returns once the change is in effect.
 * A background sampler checks every namespace's addresses during each step.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  allLogs,
  type HolderReport,
  type LiveCluster,
  startCluster,
  waitFor,
  waitSettled,
  watchHolders,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const vips = [
  { host: 150, policy: "round-robin" as const, preferred: "n1", failback: "immediate" },
  { host: 151, policy: "round-robin" as const },
  { host: 152, policy: "weighted" as const },
  { host: 153, policy: "hash" as const },
];

interface Status {
  coordinator: string | null;
  members: { id: string; state: string }[];
}

describe("agent: failback and administrative commands", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster;
  let token: string[];
  /** The VIP the move test pinned to n3. */
  let pinned: string | undefined;
  before(async () => {
    // A slow occupancy probe (400 ms, `lan` has 10) keeps a taker "not yet holding" long
    // enough that `--wait` returning on the table alone would be seen.
    cluster = await startCluster({
      prefix: "fipe6-",
      vips,
      extraYaml: "timers: { probe_timeout_ms: 400 }",
    });
    token = ["--token-file", join(cluster.dir, "api.token")];
    await waitSettled(cluster);
  });
  after(async () => {
    await cluster?.destroy();
  });

  /** Waits until `vip` is held by a node for which `wanted` holds; returns it. */
  const heldBy = (vip: string, wanted: (id: string) => boolean, timeoutMs = 10_000) =>
    waitFor(async () => {
      const holder = await cluster.holderOf(vip);
      return holder && wanted(holder) ? holder : undefined;
    }, timeoutMs);
  const noDoubles = (report: HolderReport) => {
    assert.ok(report.samples > 5, "the sampler ran");
    assert.deepEqual(
      report.doubles.slice(0, 3),
      [],
      `no sampled instant with two holders\n${allLogs(cluster)}`,
    );
  };
  const status = async (id: string) => {
    const result = await cluster.cli(id, ["status", "--json"]);
    return result.code === 0 ? (JSON.parse(result.stdout) as Status) : undefined;
  };

  it("fails back to the preferred node when it returns", async () => {
    const vip = cluster.vipAddresses[0]!;
    // A node that starts late is first passed over, then gets its preferred VIP back.
    const start = await heldBy(vip, (id) => id === "n1");
    assert.ok(start, `the VIP starts on its preferred node\n${allLogs(cluster)}`);
    const watch = watchHolders(cluster);
    const pid = cluster.agentPid("n1");
    assert.ok(pid);
    process.kill(pid, "SIGKILL");
    cluster.signal("n1", "SIGKILL");
    const away = await heldBy(vip, (id) => id !== "n1");
    assert.ok(away, `${vip} did not leave the dead n1\n${allLogs(cluster)}`);
    assert.equal(await waitFor(() => cluster.ask(vip, 1000), 3000), away);

    cluster.startAgent("n1");
    const back = await heldBy(vip, (id) => id === "n1", 20_000);
    assert.ok(back, `${vip} did not fail back to n1\n${allLogs(cluster)}`);
    assert.equal(
      await waitFor(() => cluster.ask(vip, 1000), 3000),
      "n1",
      "the client is served by n1 again",
    );
    noDoubles(await watch.stop());
    await waitSettled(cluster);
  });

  it("moves a VIP to n3 on the operator's command, and only with the token", async () => {
    const owners = await waitSettled(cluster);
    const vip = cluster.vipAddresses.slice(1).find((v) => owners.get(v) !== "n3");
    assert.ok(vip, "some VIP is not on n3 yet");
    const refused = await cluster.cli("n2", ["ip", "move", vip, "n3"]);
    assert.notEqual(refused.code, 0, "a move without the token is refused");

    const watch = watchHolders(cluster);
    const moved = await cluster.cli("n2", ["ip", "move", vip, "n3", ...token, "--json"]);
    assert.equal(moved.code, 0, `ip move failed: ${moved.stderr}${moved.stdout}`);
    assert.equal(JSON.parse(moved.stdout).accepted, true);
    const holder = await heldBy(vip, (id) => id === "n3");
    assert.ok(holder, `${vip} did not move to n3\n${allLogs(cluster)}`);
    assert.equal(await waitFor(() => cluster.ask(vip, 1000), 3000), "n3");
    noDoubles(await watch.stop());
    pinned = vip;
  });

  it("drains a disabled node and takes it back when enabled", async () => {
    const owners = await waitSettled(cluster);
    const moved = pinned;
    assert.ok(moved && owners.get(moved) === "n3", "the VIP moved in the previous test is on n3");

    const drain = watchHolders(cluster);
    const disabled = await cluster.cli("n1", ["node", "disable", "n3", ...token]);
    assert.equal(disabled.code, 0, `node disable failed: ${disabled.stderr}${disabled.stdout}`);
    const empty = await waitFor(
      async () => ((await cluster.heldVips("n3")).length === 0 ? true : undefined),
      10_000,
    );
    assert.ok(empty, `n3 still holds ${await cluster.heldVips("n3")}\n${allLogs(cluster)}`);
    for (const vip of cluster.vipAddresses) {
      const holder = await heldBy(vip, (id) => id !== "n3");
      assert.ok(holder, `${vip} is held by n1 or n2 while n3 is disabled`);
      assert.equal(await waitFor(() => cluster.ask(vip, 1000), 3000), holder);
    }
    const coordinator = (await status("n1"))?.coordinator;
    assert.ok(coordinator);
    const drained = (await status(coordinator))?.members.find((m) => m.id === "n3")?.state;
    assert.notEqual(
      drained,
      "healthy",
      "the coordinator does not count a disabled node as eligible",
    );
    noDoubles(await drain.stop());

    const back = watchHolders(cluster);
    const enabled = await cluster.cli("n2", ["node", "enable", "n3", ...token]);
    assert.equal(enabled.code, 0, `node enable failed: ${enabled.stderr}${enabled.stdout}`);
    const returned = await heldBy(moved, (id) => id === "n3");
    assert.ok(
      returned,
      `the VIP pinned to n3 did not return once n3 was enabled\n${allLogs(cluster)}`,
    );
    assert.equal(await waitFor(() => cluster.ask(moved, 1000), 3000), "n3");
    noDoubles(await back.stop());
  });

  it("refuses what it cannot do, and --wait returns once the change is in effect", async () => {
    const owners = await waitSettled(cluster);
    const watch = watchHolders(cluster);
    const cli = (id: string, ...args: string[]) => cluster.cli(id, [...args, ...token]);

    // A move with --wait: when it returns, the address is on the target's interface (its
    // 400 ms probe keeps it "owner, not yet holder" well past the table's change).
    const target = cluster.ids.find((id) => id !== owners.get(cluster.vipAddresses[2]!))!;
    const first = await cli("n2", "ip", "move", cluster.vipAddresses[2]!, target, "--wait");
    assert.equal(first.code, 0, `${first.stderr}${first.stdout}`);
    assert.equal(
      await cluster.holderOf(cluster.vipAddresses[2]!),
      target,
      `${cluster.vipAddresses[2]} is on ${target} once --wait returned`,
    );
    assert.equal((await cli("n2", "ip", "unpin", cluster.vipAddresses[2]!)).code, 0);
    await waitSettled(cluster);

    // Drain n2 and wait for it: when the command returns, n2 owns nothing in the table.
    const drained = await cli("n1", "node", "disable", "n2", "--wait");
    assert.equal(drained.code, 0, `${drained.stderr}${drained.stdout}`);
    assert.match(drained.stdout, /disable n2: in effect/);
    // In effect, not only in the table: every VIP has its holder, none of them n2.
    for (const address of cluster.vipAddresses) {
      const holder = await cluster.holderOf(address);
      assert.ok(
        holder && holder !== "n2",
        `${address} is held (by ${holder}) once --wait returned`,
      );
    }
    const view = JSON.parse((await cli("n1", "status", "--json")).stdout) as Status & {
      vips: { address: string; owner: string | null }[];
    };
    assert.equal(view.members.find((m) => m.id === "n2")?.state, "drained");
    assert.deepEqual(
      view.vips.filter((v) => v.owner === "n2"),
      [],
      "no VIP is n2's once --wait returned",
    );

    // A move to the drained node: refused at once, with the reason and the way out.
    const vip = cluster.vipAddresses[1]!;
    const toDrained = await cli("n3", "ip", "move", vip, "n2");
    assert.equal(toDrained.code, 1, toDrained.stdout);
    assert.match(toDrained.stderr, /n2 is drained: .*floatip node enable n2/);
    assert.match(toDrained.stderr, /NODE_NOT_ELIGIBLE/);

    // Draining n1 leaves n3; draining n3 then would leave nothing: refused without --force.
    assert.equal((await cli("n3", "node", "disable", "n1", "--wait")).code, 0);
    const last = await cli("n1", "node", "disable", "n3");
    assert.equal(last.code, 1, last.stdout);
    assert.match(last.stderr, /n3 is the last node that may hold VIPs: .*add --force/);
    for (const address of cluster.vipAddresses) {
      const holder = await heldBy(address, (id) => id === "n3");
      assert.ok(holder, `${address} is on n3, the only eligible node, and stays there`);
    }

    // A move that can happen: --wait returns when n3 holds it (the address on its interface).
    const move = await cli("n1", "ip", "move", vip, "n3", "--wait");
    assert.equal(move.code, 0, `${move.stderr}${move.stdout}`);
    assert.match(move.stdout, /in effect/);
    assert.equal(await cluster.holderOf(vip), "n3", `${vip} is on n3 once --wait returned`);

    for (const id of ["n1", "n2"]) {
      const enabled = await cli("n3", "node", "enable", id, "--wait");
      assert.equal(enabled.code, 0, `${enabled.stderr}${enabled.stdout}`);
      assert.match(enabled.stdout, new RegExp(`enable ${id}: in effect`));
    }
    await cli("n1", "ip", "unpin", vip);
    noDoubles(await watch.stop());
    await waitSettled(cluster);
  });
});
