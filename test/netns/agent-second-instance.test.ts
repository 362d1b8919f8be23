/**
 * A second agent for a node that already runs one, as an operator might start it by mistake
 * (a second unit, a shell left open): it must stop with a clear error before it touches
 * anything. Before the node's state lock it removed the live agent's VIPs as "left by an
 * earlier run" and then failed on the port, and its supervisor retried: the live holder's
 * VIP vanished four times in twelve seconds.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitSettled,
  watchHolders,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

describe("agent: a second instance for a running node", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster | undefined;
  before(async () => {
    cluster = await startCluster({
      prefix: "fipsi-",
      vips: [
        { host: 100, policy: "round-robin" },
        { host: 101, policy: "round-robin" },
        { host: 102, policy: "round-robin" },
      ],
    });
  });
  after(async () => {
    await cluster?.destroy();
  });

  for (const mode of ["supervised", "--no-supervisor"] as const) {
    it(`(${mode}) exits with the reason and leaves the live agent's VIPs alone`, async () => {
      const c = cluster!;
      const owners = await waitSettled(c);
      const holder = owners.get(c.vipAddresses[0]!)!;
      const held = await c.heldVips(holder);
      assert.ok(held.length > 0, `${holder} holds a VIP`);
      const livePid = c.agentPid(holder);
      const watch = watchHolders(c);
      const args = ["agent", "--config", c.configPath, "--node", holder];
      if (mode === "--no-supervisor") args.push("--no-supervisor");
      const second = await c.cli(holder, args);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const report = await watch.stop();

      assert.equal(second.code, 1, `the second instance fails\n${second.stderr}`);
      assert.match(second.stderr, new RegExp(`an agent for node ${holder} already runs`));
      assert.match(second.stderr, /this instance changed nothing/);
      assert.match(second.stderr, /agent\.lock/);
      assert.doesNotMatch(second.stderr, /removing VIPs left by an earlier run/);
      assert.ok(report.samples > 5, "the sampler ran");
      for (const vip of held) {
        assert.deepEqual(
          report.seen.get(vip),
          [holder],
          `${vip} stayed on ${holder} at every sample\n${allLogs(c)}`,
        );
      }
      assert.deepEqual(await c.heldVips(holder), held);
      assert.equal(c.agentPid(holder), livePid, "the live agent was not restarted");
    });
  }
});
