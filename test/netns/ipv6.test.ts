/**
 * IPv6 VIPs end to end in network namespaces (documentation space 2001:db8::/32, inside the
 * namespaces only), beside IPv4 VIPs in the same cluster:
 * 1. A foreign host (the client namespace) already has one IPv6 VIP's address when the agents
 *    start: the owner's DAD-style Neighbour Solicitation gets an answer, so nobody claims it
 *    and the conflict is reported, while the free IPv6 VIP and the IPv4 VIP are claimed. Once
 *    the foreign host lets go, an agent takes it and serves the client over IPv6.
 * 2. The owner of an IPv6 VIP is SIGKILLed while the client talks to it: the VIP moves, and the
 *    client's neighbour entry for it, REACHABLE with the old owner's MAC, now names the new
 *    owner's (an unsolicited Neighbour Advertisement with the Override flag: receivers only
 *    update entries they already have, RFC 4861 §7.2.5); the client's idle connection to the
 *    VIP is reset by the new owner's tickle ACK.
 * 3. The kernel's DAD marks a held VIP dadfailed (someone re-added it by hand while a foreign
 *    host has it): the holder lets it go, logs the duplicate, and nobody takes it while the
 *    foreign host answers for it.
 * 4. Nodes that send their heartbeats over IPv6 float an IPv4 and an IPv6 VIP, serve the
 *    storage gateway on the IPv6 VIP (replicating over IPv6; the traffic capability counts
 *    the VIP's bytes), and move both after an owner's SIGKILL; the new holder answers the
 *    request the old one acknowledged.
 * 5. The owner's link goes down: the IPv6 VIP moves, the client probing over IPv6.
 * 6. Nodes that know each other by link-local address and zone (fe80::10%eth0).
 * Also: a relay (proxy) listening on an IPv6 VIP, to backends at IPv6 addresses.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
import { openIdleConnection } from "../../src/lab/idle-connection.ts";
import { skipUnlessRoot, subnetFor } from "../../src/lab/topology.ts";

interface Status {
  vips: { address: string; owner: string | null; conflict: boolean }[];
}

/** Asks through `vip` every 20 ms (bounded) until a node other than `not` answers. */
async function firstAnswerFrom(
  c: LiveCluster,
  vip: string,
  not: string,
  timeoutMs: number,
): Promise<{ node: string; afterMs: number } | undefined> {
  const started = performance.now();
  for (let i = 0; i < 2000 && performance.now() - started < timeoutMs; i++) {
    const node = await c.ask(vip, 300);
    if (node !== undefined && node !== not) {
      return { node, afterMs: Math.round(performance.now() - started) };
    }
    await sleep(20);
  }
  return undefined;
}

describe("IPv6 VIPs", { skip: skipUnlessRoot() }, () => {
  const clusters: LiveCluster[] = [];
  const cleanups: (() => void)[] = [];
  after(async () => {
    for (const c of clusters) await c.destroy();
    for (const cleanup of cleanups) cleanup();
  });

  it("probes before it claims (a foreign host keeps its address), then claims and serves over IPv6", async () => {
    const net6 = `2001:db8:${subnetFor("fip6a-").toString(16)}::`;
    const c = await startCluster({
      prefix: "fip6a-",
      vips: [{ host: 160, family: 6, policy: "hash" }, { host: 161, family: 6 }, { host: 162 }],
      startAgents: false,
      // A relay on an IPv6 VIP to the nodes' own services over IPv6 (n1 is 10, n2 is 11).
      extraYaml: [
        "relays:",
        `  - { name: six, listen: "[${net6}161]:8081", primary: "[${net6}10]:8080", standby: ["[${net6}11]:8080"] }`,
      ].join("\n"),
    });
    clusters.push(c);
    const [occupied, free, v4] = c.vipAddresses as [string, string, string];
    await c.topology.exec("client", "ip", [
      "address",
      "add",
      `${occupied}/64`,
      "dev",
      "eth0",
      "nodad",
    ]);
    for (const id of c.ids) c.startAgent(id);
    for (const vip of [free, v4]) {
      const holder = await waitFor(() => c.holderOf(vip), 20_000);
      assert.ok(holder, `${vip} was never claimed\n${allLogs(c)}`);
    }
    const reported = await waitFor(async () => {
      for (const id of c.ids) {
        const result = await c.cli(id, ["status", "--json"]);
        if (result.code !== 0) continue;
        const status = JSON.parse(result.stdout) as Status;
        if (status.vips.some((v) => v.address === occupied && v.conflict)) return true;
      }
      return undefined;
    }, 10_000);
    assert.ok(reported, `no node reports a conflict for ${occupied}\n${allLogs(c)}`);
    const watch = watchHolders(c);
    await sleep(2000);
    const quiet = await watch.stop();
    assert.deepEqual(quiet.seen.get(occupied), [], `nobody took ${occupied} while occupied`);
    assert.deepEqual(quiet.doubles.slice(0, 3), [], allLogs(c));

    await c.topology.exec("client", "ip", ["address", "del", `${occupied}/64`, "dev", "eth0"]);
    const taker = await waitFor(() => c.holderOf(occupied), 15_000);
    assert.ok(taker, `${occupied} was not claimed once free\n${allLogs(c)}`);
    const served = await waitFor(() => c.ask(occupied, 500), 5000);
    assert.equal(served, taker, "the client reaches the new holder over IPv6");
    // No kernel DAD: the address was usable at once, never "tentative".
    const flags = await c.topology.exec(taker, "ip", ["-6", "address", "show", "dev", "eth0"]);
    assert.match(flags.stdout, new RegExp(`${occupied}/64 .*nodad`));
    assert.doesNotMatch(flags.stdout, /tentative|dadfailed/);
  });

  it("relays from an IPv6 VIP to backends over IPv6", async () => {
    const c = clusters[0]!;
    const vip = c.vipAddresses[1]!;
    const answer = await waitFor(async () => {
      const r = await c.topology
        .exec("client", "curl", ["-s", "-g", "-m", "1", `http://[${vip}]:8081/`], 3000)
        .catch(() => undefined);
      return r?.stdout.trim() || undefined;
    }, 15_000);
    assert.equal(answer, "n1", `the relay on [${vip}]:8081 reaches its primary\n${allLogs(c)}`);
  });

  it("moves an IPv6 VIP on the operator's command, written in another spelling", async () => {
    const c = clusters[0]!;
    const owners = await waitSettled(c, 30_000);
    const vip = c.vipAddresses[1]!;
    const target = c.ids.find((id) => id !== owners.get(vip))!;
    // 2001:db8:6e::161 as 2001:DB8:6E:0:0:0:0:161/64: the same VIP.
    const spelled = `${vip.replace("::", ":0:0:0:0:").toUpperCase()}/64`;
    const token = ["--token-file", join(c.dir, "api.token")];
    const moved = await c.cli("n1", ["ip", "move", spelled, target, ...token, "--wait"]);
    assert.equal(moved.code, 0, `ip move ${spelled}: ${moved.stderr}${moved.stdout}`);
    assert.equal(await c.holderOf(vip), target, `${vip} is on ${target}`);
    const unpinned = await c.cli("n1", ["ip", "unpin", spelled, ...token]);
    assert.equal(unpinned.code, 0, `${unpinned.stderr}${unpinned.stdout}`);
  });

  it("moves an IPv6 VIP after its owner's SIGKILL, and the client's neighbour entry follows", async (t) => {
    const c = clusters[0]!;
    await waitSettled(c, 30_000);
    const vip = c.vipAddresses[1]!;
    const owner = await c.holderOf(vip);
    assert.ok(owner, `${vip} is held`);
    assert.equal(await c.ask(vip, 1000), owner, "the client talks to the owner over IPv6");
    const before = await c.topology.neighbour("client", vip);
    assert.equal(before?.mac, c.topology.host(owner).mac, JSON.stringify(before));
    assert.match(before?.state ?? "", /REACHABLE|DELAY|PROBE/, JSON.stringify(before));

    // An idle connection to the VIP, older than the owner's connection scan (1 s): the new
    // owner tickles it, and the client learns at once that it is gone.
    const idle = openIdleConnection(c.topology, "client", vip, 8080, 30_000);
    cleanups.push(() => idle.stop());
    const connected = await waitFor(async () => idle.connectedAt(), 5000);
    assert.ok(connected, "the idle connection is up");
    await sleep(1500);
    const pid = c.agentPid(owner);
    assert.ok(pid, `${owner} runs an agent`);
    process.kill(pid, "SIGKILL");
    // The client sends nothing meanwhile: only an advertisement can change its entry (its own
    // resolution would wait for traffic, and then for the entry to go stale and be probed).
    const newOwner = await waitFor(async () => {
      const h = await c.holderOf(vip).catch(() => undefined);
      return h !== undefined && h !== owner ? h : undefined;
    }, 15_000);
    assert.ok(newOwner, `nobody took ${vip} over\n${allLogs(c)}`);
    const started = performance.now();
    const followed = await waitFor(async () => {
      const entry = await c.topology.neighbour("client", vip);
      return entry?.mac === c.topology.host(newOwner).mac ? entry : undefined;
    }, 5000);
    const afterMs = Math.round(performance.now() - started);
    assert.ok(
      followed,
      `the client's entry still names ${JSON.stringify(await c.topology.neighbour("client", vip))}, not ${newOwner}\n${allLogs(c)}`,
    );
    t.diagnostic(
      `${vip}: ${owner} killed; ${newOwner} holds it; the client's entry ${before?.mac} ${before?.state} -> ${followed.mac} ${followed.state} within ${afterMs} ms of seeing the new holder, with no traffic of its own`,
    );
    const moved = await firstAnswerFrom(c, vip, owner, 15_000);
    assert.equal(moved?.node, newOwner, "the client reaches the new owner over IPv6");
    const reset = await waitFor(async () => idle.endedAt(), 5000);
    assert.equal(
      reset?.code,
      "ECONNRESET",
      `the idle connection was tickled: ${JSON.stringify(idle.events)}\n${c.logs(newOwner)}`,
    );
    t.diagnostic(
      `idle IPv6 connection reset ${reset!.atMs - Math.round(performance.timeOrigin + started)} ms from when this test saw the new holder (it polls: negative is before)`,
    );
    idle.stop();
  });

  it("lets go of a VIP the kernel's duplicate address detection failed, and reports the conflict", async () => {
    const c = clusters[0]!;
    await waitSettled(c, 30_000);
    const vip = c.vipAddresses[0]!;
    const holder = await c.holderOf(vip);
    assert.ok(holder, `${vip} is held`);
    // A foreign host takes the address too, and someone re-adds it on the holder by hand
    // with the kernel's DAD (floatip itself adds with nodad): the foreign host answers the
    // DAD solicitation, and the kernel marks the holder's address dadfailed. (Permanent, as a
    // hand-added address is: the kernel deletes an address with a finite lifetime that fails
    // DAD, which floatip sees as a vanished VIP, with the same outcome.)
    await c.topology.exec("client", "ip", ["address", "add", `${vip}/64`, "dev", "eth0", "nodad"]);
    // The kernel sends its DAD solicitation after a random delay of up to router_solicitation_delay
    // (1 s); at 0 it fails within milliseconds, before the holder's next lifetime renewal
    // (which would make the address non-permanent, so that the kernel deletes it on failure).
    const delay = ["-w", "net.ipv6.conf.eth0.router_solicitation_delay=0"];
    await c.topology.exec(holder, "sysctl", delay);
    try {
      await c.topology.exec(holder, "sh", [
        "-c",
        `printf 'address del ${vip}/64 dev eth0\naddress add ${vip}/64 dev eth0\n' | ip -batch -`,
      ]);
      const logged = await waitFor(
        async () =>
          c.logs(holder).includes("duplicate address detected") &&
          (await c.holderOf(vip)) !== holder
            ? true
            : undefined,
        10_000,
      );
      assert.ok(logged, `${holder} kept its dadfailed ${vip}\n${c.logs(holder)}`);
      const line = c
        .logs(holder)
        .split("\n")
        .find((l) => l.includes("duplicate address detected"));
      assert.match(line ?? "", /kernel DAD \(dadfailed\)/);
      const gone = await c.topology.exec(holder, "ip", ["-6", "address", "show", "dev", "eth0"]);
      assert.doesNotMatch(gone.stdout, new RegExp(`${vip}/64`), "the dadfailed address is removed");
      // The owner probes before it takes the VIP again: the foreign host answers, so nobody
      // takes it and the conflict is reported.
      const watch = watchHolders(c);
      await sleep(2000);
      const quiet = await watch.stop();
      assert.deepEqual(quiet.seen.get(vip), [], `nobody took ${vip} back while it was occupied`);
    } finally {
      await c.topology.exec(holder, "sysctl", [
        "-w",
        "net.ipv6.conf.eth0.router_solicitation_delay=1",
      ]);
      await c.topology.exec("client", "ip", ["address", "del", `${vip}/64`, "dev", "eth0"]);
    }
    const back = await waitFor(() => c.holderOf(vip), 15_000);
    assert.ok(back, `${vip} is held again once free\n${allLogs(c)}`);
  });

  it("runs its heartbeats over IPv6, floats both families, and serves storage on an IPv6 VIP", async (t) => {
    const work = mkdtempSync(join(tmpdir(), "fip6b-work-"));
    const token = randomBytes(12).toString("hex");
    writeFileSync(join(work, "rw.token"), `${token}\n`, { mode: 0o600 });
    const c = await startCluster({
      prefix: "fip6b-",
      nodeFamily: 6,
      vips: [{ host: 170, family: 6 }, { host: 171 }],
      extraYaml: [
        "storage:",
        // The VIP written in another spelling than vips: has it: the same address.
        `  vip: "2001:db8:${subnetFor("fip6b-").toString(16)}:0::170"`,
        `  clients: [{ name: ops, token_file: ${join(work, "rw.token")}, access: write }]`,
        `  backend: { kind: file, dir: ${join(work, "volumes")} }`,
        "traffic: { interval: 200ms }",
      ].join("\n"),
    });
    clusters.push(c);
    cleanups.push(() => rmSync(work, { recursive: true, force: true }));
    const holders = await waitSettled(c, 30_000);
    for (const vip of c.vipAddresses) {
      assert.ok(holders.get(vip), `${vip} is held\n${allLogs(c)}`);
    }
    const storage = c.vipAddresses[0]!;
    const api = async (method: string, path: string, body?: object) => {
      const args = ["-s", "-g", "-m", "8", "-X", method, "-H", `Authorization: Bearer ${token}`];
      if (body) args.push("-H", "content-type: application/json", "-d", JSON.stringify(body));
      const r = await c.topology.exec(
        "client",
        "curl",
        [...args, `http://[${storage}]:7490${path}`],
        12_000,
      );
      return JSON.parse(r.stdout) as { request?: { state: { state: string } } };
    };
    const created = await waitFor(async () => {
      const answer = await api("POST", "/v1/volumes?wait=5s", {
        request_id: "six-1",
        name: "v6vol",
        sizeBytes: 1024 * 1024,
      }).catch(() => undefined);
      return answer?.request?.state.state === "succeeded" ? answer : undefined;
    }, 20_000);
    assert.ok(created, `a create through [${storage}]:7490 succeeds\n${allLogs(c)}`);
    // The traffic capability counts the IPv6 VIP's own bytes (nftables `ip6 daddr`).
    const storageHolder = holders.get(storage)!;
    const counted = await waitFor(async () => {
      const r = await c.cli(storageHolder, [
        "traffic",
        storageHolder,
        "--from",
        "0",
        "--step",
        "1h",
        "--json",
      ]);
      if (r.code !== 0) return undefined;
      const answer = JSON.parse(r.stdout) as { buckets: { iface: string; rxBytes: number }[] };
      const rx = answer.buckets
        .filter((b) => b.iface === `vip:${storage}`)
        .reduce((sum, b) => sum + b.rxBytes, 0);
      return rx > 0 ? rx : undefined;
    }, 10_000);
    assert.ok(
      counted,
      `per-VIP bytes for ${storage} on ${storageHolder}\n${c.logs(storageHolder)}`,
    );
    t.diagnostic(`${storage}: ${counted} bytes received, counted per VIP`);
    const config = await c.cli("n1", ["status", "--json"]);
    assert.equal(config.code, 0, config.stderr);
    const status = JSON.parse(config.stdout) as { members: { id: string; state: string }[] };
    assert.deepEqual(
      status.members.map((m) => m.state),
      ["healthy", "healthy", "healthy"],
      "the nodes see each other over IPv6",
    );
    const owner = holders.get(c.vipAddresses[0]!)!;
    const pid = c.agentPid(owner);
    assert.ok(pid);
    process.kill(pid, "SIGKILL");
    for (const vip of c.vipAddresses) {
      const wasOwner = holders.get(vip)!;
      if (wasOwner !== owner) continue;
      const moved = await firstAnswerFrom(c, vip, owner, 15_000);
      assert.ok(moved, `${vip} did not move from ${owner}\n${allLogs(c)}`);
      t.diagnostic(`${vip}: ${owner} killed, ${moved.node} answered ${moved.afterMs} ms later`);
    }
    // The request was replicated to the peers over IPv6 before it was acknowledged: the new
    // holder of the storage VIP answers it.
    const record = await waitFor(async () => {
      const answer = await api("GET", "/v1/requests/six-1").catch(() => undefined);
      return answer?.request?.state.state === "succeeded" ? answer : undefined;
    }, 15_000);
    assert.ok(record, `the new holder of ${storage} answers six-1\n${allLogs(c)}`);
  });

  it("moves an IPv6 VIP away from an owner whose link went down, the client probing over IPv6", async (t) => {
    const c = clusters[1]!;
    await waitSettled(c, 30_000);
    const vip = c.vipAddresses[0]!;
    const owner = await c.holderOf(vip);
    assert.ok(owner, `${vip} is held`);
    assert.equal(await c.ask(vip, 1000), owner);
    await c.topology.setLink(owner, "down");
    try {
      const moved = await firstAnswerFrom(c, vip, owner, 15_000);
      assert.ok(moved, `${vip} did not move from ${owner} after its link went down\n${allLogs(c)}`);
      t.diagnostic(
        `${vip}: ${owner}'s link down, ${moved.node} answered ${moved.afterMs} ms later`,
      );
      const entry = await c.topology.neighbour("client", vip);
      assert.equal(entry?.mac, c.topology.host(moved.node).mac, JSON.stringify(entry));
    } finally {
      await c.topology.setLink(owner, "up");
    }
  });

  it("runs its heartbeats over link-local addresses with their zone", async (t) => {
    const c = await startCluster({
      prefix: "fip6c-",
      nodeFamily: "link-local",
      vips: [{ host: 180, family: 6 }],
    });
    clusters.push(c);
    const vip = c.vipAddresses[0]!;
    const holders = await waitSettled(c, 30_000);
    const owner = holders.get(vip);
    assert.ok(owner, `${vip} is held\n${allLogs(c)}`);
    const result = await c.cli("n1", ["status", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const status = JSON.parse(result.stdout) as { members: { id: string; state: string }[] };
    assert.deepEqual(
      status.members.map((m) => [m.id, m.state]),
      c.ids.map((id) => [id, "healthy"]),
      "the nodes hear each other at fe80::1x%eth0",
    );
    assert.match(readFileSync(c.configPath, "utf8"), /address: "fe80::10%eth0"/);
    process.kill(c.agentPid(owner)!, "SIGKILL");
    const moved = await firstAnswerFrom(c, vip, owner, 15_000);
    assert.ok(moved, `${vip} did not move from ${owner}\n${allLogs(c)}`);
    t.diagnostic(`${vip}: ${owner} killed, ${moved.node} answered ${moved.afterMs} ms later`);
  });
});
