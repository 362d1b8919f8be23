/**
 * Rolling configuration changes, as an operator does them.
 *
 * First, only the order of `vips:` changes on one node. VIPs are identified by address (the
 * tables index them in one cluster-wide order by address), so this is the same configuration:
 * the node matches the coordinator, holds VIPs as before, and an `ip move` asked on it moves
 * the VIP it names (before, a reordered node plus one `ip move` left a VIP without a holder,
 * and only the ARP probe prevented two holders).
 *
 * Then the VIP list is reordered and a VIP added, and the three nodes restart with the new
 * file one at a time, the coordinator last. Until the coordinator runs the new file a node
 * that does must hold nothing: another set of VIPs is another configuration.
 *
 * Checked after each step: the restarted node reports the mismatch (status, log) and holds
 * nothing, the coordinator counts it failed with the reason, every VIP of the old file is
 * held by one node; through the whole change no sampled instant has two holders; at the end
 * every node matches, all four VIPs are held and every member is healthy.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  allLogs,
  type LiveCluster,
  processExited,
  startCluster,
  waitFor,
  waitSettled,
  watchHolders,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

interface Status {
  role: string;
  coordinator?: string;
  config: { fingerprint: string; coordinator?: string; matchesCoordinator: boolean };
  members: { id: string; state: string }[];
  vips: { address: string; owner?: string | null; local: string }[];
}

describe("agent: a rolling configuration change", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster | undefined;
  after(async () => {
    await cluster?.destroy();
  });

  it("only reordered VIPs: the same configuration, and ip move moves the VIP it names", async () => {
    const c = await startCluster({
      prefix: "fipro-",
      vips: [{ host: 160 }, { host: 161 }, { host: 162 }],
    });
    try {
      await waitSettled(c);
      const status = async (id: string) => {
        const result = await c.cli(id, ["status", "--json"]);
        return result.code === 0 ? (JSON.parse(result.stdout) as Status) : undefined;
      };
      const [a, b, v] = c.vipAddresses as [string, string, string];
      const oldText = readFileSync(c.configPath, "utf8");
      // The list backwards: v, b, a.
      const newText = oldText
        .replace(`address: ${a}/24`, "address: @A/24")
        .replace(`address: ${v}/24`, `address: ${a}/24`)
        .replace("address: @A/24", `address: ${v}/24`);
      assert.ok(newText.indexOf(v) < newText.indexOf(b) && newText.indexOf(b) < newText.indexOf(a));
      const newConfig = join(c.dir, "cluster-reordered.yaml");
      writeFileSync(newConfig, newText);
      const coordinator = (await status("n1"))?.coordinator;
      assert.ok(coordinator, "a coordinator");
      const id = c.ids.find((x) => x !== coordinator)!;
      const watch = watchHolders(c, 20, 4000, 60_000);

      const child = c.agents.get(id)!;
      c.signal(id, "SIGTERM");
      await processExited(child);
      c.startAgent(id, newConfig);
      // The coordinator it follows now: a pause of the whole machine (seen under stress-ng)
      // can elect another one meanwhile, which changes nothing this test is about.
      const trusted = await waitFor(async () => {
        const own = await status(id);
        const now = own?.coordinator;
        if (now === undefined || now === id) return undefined;
        const boss = await status(now);
        return own?.config.matchesCoordinator === true &&
          boss?.coordinator === now &&
          boss.members.find((m) => m.id === id)?.state === "healthy"
          ? { own, boss, now }
          : undefined;
      }, 20_000);
      assert.ok(trusted, `${id} on the reordered file matches and is healthy\n${allLogs(c)}`);
      const boss = trusted.now;
      assert.equal(trusted.own.config.fingerprint, trusted.boss.config.fingerprint);
      assert.doesNotMatch(c.logs(id), /config-mismatch/, "no mismatch reported");

      // The VIP that is first in the new file and last in the old one, moved from the node
      // on the new file, lands on the node it names, and every VIP stays held once.
      const before = await c.holderOf(v);
      const to = before === id ? boss : id;
      const moved = await c.cli(id, [
        "ip",
        "move",
        v,
        to,
        "--wait",
        "--token-file",
        join(c.dir, "api.token"),
      ]);
      assert.equal(moved.code, 0, `ip move accepted and done: ${moved.stdout}${moved.stderr}`);
      const settled = await waitFor(async () => {
        const holders = await c.holders();
        const once = [a, b, v].every((vip) => (holders.get(vip) ?? []).length === 1);
        return once && holders.get(v)?.[0] === to ? holders : undefined;
      }, 15_000);
      assert.ok(settled, `${v} moved to ${to}, every VIP held once\n${allLogs(c)}`);
      const report = await watch.stop();
      assert.deepEqual(report.doubles.slice(0, 3), [], `never two holders\n${allLogs(c)}`);
    } finally {
      await c.destroy();
    }
  });

  it("reordered VIPs and a new one: nodes on the new file hold nothing until the coordinator has it", async () => {
    cluster = await startCluster({
      prefix: "fiprc-",
      vips: [{ host: 150 }, { host: 151 }, { host: 152 }],
    });
    const c = cluster;
    await waitSettled(c);
    const status = async (id: string) => {
      const result = await c.cli(id, ["status", "--json"]);
      return result.code === 0 ? (JSON.parse(result.stdout) as Status) : undefined;
    };
    // The new file: the VIPs in another order, and one more.
    const added = `${c.topology.subnet}.153`;
    const [a, b, v] = c.vipAddresses as [string, string, string];
    const oldText = readFileSync(c.configPath, "utf8");
    const newText = oldText
      .replace(`address: ${a}/24`, "address: @A/24")
      .replace(`address: ${v}/24`, `address: ${a}/24`)
      .replace("address: @A/24", `address: ${v}/24`)
      .replace(/(vips:\n(?: {2}- .*\n)*)/, `$1  - { address: ${added}/24, policy: round-robin }\n`);
    assert.notEqual(newText, oldText);
    assert.ok(newText.includes(added) && newText.indexOf(v) < newText.indexOf(b));
    const newConfig = join(c.dir, "cluster-new.yaml");
    writeFileSync(newConfig, newText);
    const check = await c.cli("n1", ["config", "check", newConfig]);
    assert.equal(check.code, 0, `the new file is valid: ${check.stdout}${check.stderr}`);

    const coordinator = (await status("n1"))?.coordinator;
    assert.ok(coordinator, "a coordinator");
    const order = [...c.ids.filter((id) => id !== coordinator), coordinator];
    const watch = watchHolders(c, 20, 4000, 90_000);
    const restart = async (id: string) => {
      const child = c.agents.get(id)!;
      c.signal(id, "SIGTERM");
      await processExited(child);
      c.startAgent(id, newConfig);
    };

    // Every node but the coordinator, one by one: each holds nothing and is reported.
    const updated: string[] = [];
    for (const id of order.slice(0, -1)) {
      await restart(id);
      updated.push(id);
      const reported = await waitFor(async () => {
        const own = await status(id);
        const boss = await status(coordinator);
        return own?.config.matchesCoordinator === false &&
          boss?.members.find((m) => m.id === id)?.state === "failed"
          ? { own, boss }
          : undefined;
      }, 15_000);
      assert.ok(reported, `${id} on the new file is reported as differing\n${allLogs(c)}`);
      assert.equal(
        reported.own.config.coordinator,
        (await status(coordinator))?.config.fingerprint,
      );
      assert.match(c.logs(id), /config-mismatch/, `${id} logs the mismatch`);
      const text = await c.cli(id, ["status"]);
      assert.match(text.stdout, /DIFFERS from the coordinator's/);
      const settled = await waitFor(async () => {
        const holders = await c.holders();
        const ok = c.vipAddresses.every((vip) => {
          const h = holders.get(vip) ?? [];
          return h.length === 1 && !updated.includes(h[0]!);
        });
        return ok ? holders : undefined;
      }, 15_000);
      assert.ok(settled, `every old VIP held once, by nodes on the old file\n${allLogs(c)}`);
      assert.deepEqual(await c.heldVips(id), [], `${id} holds nothing`);
    }

    // The coordinator last: a node on the new file is elected and everyone matches.
    await restart(coordinator);
    const matched = await waitFor(async () => {
      const views = await Promise.all(c.ids.map((id) => status(id)));
      return views.every(
        (view) =>
          view?.config.matchesCoordinator &&
          view.coordinator !== undefined &&
          view.members.every((m) => m.state === "healthy"),
      )
        ? views
        : undefined;
    }, 20_000);
    assert.ok(matched, `every node on the new file, all trusted\n${allLogs(c)}`);
    const allHeld = await waitFor(async () => {
      const addresses = await Promise.all(c.ids.map((id) => c.topology.addresses(id)));
      const held = (vip: string) =>
        addresses.filter((list) => list.some((x) => x.split("/")[0] === vip)).length;
      return [...c.vipAddresses, added].every((vip) => held(vip) === 1) ? true : undefined;
    }, 15_000);
    assert.ok(allHeld, `all four VIPs held, once each\n${allLogs(c)}`);

    const report = await watch.stop();
    assert.deepEqual(report.doubles.slice(0, 3), [], `never two holders\n${allLogs(c)}`);
  });
});
