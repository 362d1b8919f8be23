/**
 * The storage gateway (S1) inside `floatip agent` on a real Ceph cluster, end to end in network
 * namespaces: three real agents (each under its supervisor) with a `storage:` section whose
 * backend is `rbd`, and one single-node Ceph cluster (one mon, one memstore OSD, no auth,
 * scripts/ceph-test-cluster.sh) running inside the lab's client namespace and listening on the
 * client's bridge address, so every node's rbd client reaches it over the bridge. The client
 * reaches the gateway only through the storage VIP. What is really in Ceph is read with the rbd
 * client itself.
 *
 * 1. Duplicate submissions (same request id) and two concurrent creates of one name: one image,
 *    and a clear error for the loser and for a reused id.
 * 2. Fifty mixed requests through the VIP, then SIGKILL of the VIP holder's agent (the gateway
 *    dies with it) while many are still queued or running: every request reaches a final state
 *    that matches the images in Ceph, and the client fetched every result through the VIP
 *    without submitting anything again.
 * 3. Two clients create one name across a failover: A's create made the image (the wrapper
 *    holds the answer back after the rename) and B's, same name and size, waits behind it;
 *    the holder is killed; the new holder re-drives both: A succeeded, B failed EXISTS, and the
 *    image carries A's request id (before the request id on the image, both were told yes).
 * 4. Fencing: the holder is stopped (SIGSTOP of its whole process tree) inside an `rbd create`
 *    (a wrapper holds the command back 4 s while a flag file exists), the next holder blocklists
 *    it in Ceph and re-drives the request, and when the old holder is continued its late
 *    command is refused by Ceph (logged), no second effect appears, and the old holder lifts its
 *    own fence once it holds nothing and runs nothing.
 * 5. nftables in the holder's namespace drops its traffic to the Ceph ports: its rbd health
 *    check fails, it releases the storage VIP, and the next holder serves the next request.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parentMap, processTree } from "../../bench/lib/owned.ts";
import { run } from "../../src/adapters/exec.ts";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitFor,
  waitSettled,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot, subnetFor } from "../../src/lab/topology.ts";
import { type CephCluster, startCephCluster } from "../ceph/ceph-cluster.ts";
import {
  type Answer,
  type Call,
  type Followed,
  storageClientProgram,
  storageClients,
} from "./storage-client.ts";

const prefix = "fipsc-";
const port = 7490;
const mib = 1024 * 1024;
const pool = "rbd";
/** The OSD's ports (Ceph's default `ms bind port min/max`); the mon's port is in the conf. */
const osdPorts = "6800-7300";
const cutTable = "floatip_test_ceph_cut";

describe("storage gateway inside the agent on real Ceph", { skip: skipUnlessRoot() }, () => {
  const work = mkdtempSync(join(tmpdir(), `${prefix}work-`));
  const cephDir = join(work, "ceph");
  const cephConf = join(cephDir, "ceph.conf");
  const programFile = join(work, "client.cjs");
  const vip = `198.18.${subnetFor(prefix)}.102`;
  const url = `http://${vip}:${port}`;
  let cluster: LiveCluster | undefined;
  let ceph: CephCluster | undefined;
  /** Set when the Ceph packages cannot be installed here (outside CI): every test skips. */
  let skipReason: string | undefined;

  const live = () => {
    assert.ok(cluster, "the cluster started");
    return cluster;
  };
  const clients = storageClients(work, url, programFile, live, 120_000);
  const { writeToken, client } = clients;
  const readVia = (_c: LiveCluster, path: string) => clients.readVia(path);
  /** Runs the rbd client next to the Ceph daemons (in the client namespace) and parses JSON. */
  const rbd = async <T>(args: readonly string[]): Promise<T> => {
    const result = await live().topology.exec(
      "client",
      "rbd",
      [...args, "--conf", cephConf, "--format", "json"],
      15_000,
    );
    return JSON.parse(result.stdout || "null") as T;
  };
  const images = () => rbd<string[]>(["ls", pool]);
  const imageSize = async (name: string) =>
    (await rbd<{ size: number }>(["info", `${pool}/${name}`])).size;
  const snapshots = async (name: string) =>
    (await rbd<Array<{ name: string }>>(["snap", "ls", `${pool}/${name}`])).map((s) => s.name);
  /** Submits through the VIP and follows to the final record (retrying only GETs). */
  /**
   * Waits until every node reports every member healthy. A holder killed by an earlier test
   * is failed until it lifted its fence and its rbd check rose again (two checks 8 s apart),
   * longer with CPU hogs beside the suite; until then a holder may have no healthy peer to
   * replicate a request to and answers 503 NO_REPLICA, as it should.
   */
  const everyMemberHealthy = (c: LiveCluster) =>
    waitFor(async () => {
      const states = await Promise.all(
        c.ids.map(async (id) => {
          const r = await c.topology
            .exec(id, "curl", ["-s", "-m", "2", "http://127.0.0.1:7480/v1/status"], 5000)
            .catch(() => undefined);
          const status = r ? (JSON.parse(r.stdout) as { members?: { state: string }[] }) : {};
          return status.members?.every((m) => m.state === "healthy") === true;
        }),
      );
      return states.every(Boolean) ? true : undefined;
    }, 90_000);

  const submitAndFollow = async (calls: readonly Call[]) => {
    const acks = await client<Answer[]>("submit", calls);
    for (const ack of acks) {
      assert.ok([200, 202].includes(ack.status), `${ack.id}: ${JSON.stringify(ack.body)}`);
    }
    const followed = await client<Followed[]>("follow", calls);
    return new Map(followed.map((f) => [f.id, f.record]));
  };

  /**
   * rbd as the agents run it: held back 4 s before a create while `slow-NODE` exists, and
   * answering 8 s late after a rename (done) while `slow-mv-NODE` exists.
   */
  const binDir = join(work, "bin");
  const slowFlag = (id: string) => join(work, `slow-${id}`);
  const slowRenameFlag = (id: string) => join(work, `slow-mv-${id}`);

  before(async () => {
    writeFileSync(programFile, storageClientProgram(90_000));
    const realRbd = (
      await run("sh", ["-c", "command -v rbd"], { timeoutMs: 5000 }).catch(() => undefined)
    )?.stdout.trim();
    mkdirSync(binDir, { recursive: true });
    writeFileSync(
      join(binDir, "rbd"),
      [
        "#!/bin/sh",
        'if [ "$1" = create ] && [ -e "$FLOATIP_TEST_SLOW_FLAG" ]; then sleep 4; fi',
        `if [ "$1" = mv ] && [ -e "$FLOATIP_TEST_SLOW_MV_FLAG" ]; then ${realRbd || "/usr/bin/rbd"} "$@"; rc=$?; sleep 8; exit $rc; fi`,
        `exec ${realRbd || "/usr/bin/rbd"} "$@"`,
        "",
      ].join("\n"),
    );
    chmodSync(join(binDir, "rbd"), 0o755);
    cluster = await startCluster({
      prefix,
      vips: [{ host: 100 }, { host: 102, policy: "hash" }],
      addressLifetime: "3s",
      agentEnv: (id) => ({
        PATH: `${binDir}:${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`,
        FLOATIP_TEST_SLOW_FLAG: slowFlag(id),
        FLOATIP_TEST_SLOW_MV_FLAG: slowRenameFlag(id),
      }),
      // The agents need Ceph; Ceph needs the client namespace, which startCluster creates.
      startAgents: false,
      extraYaml: [
        "checks:",
        // 8 s per rbd call: under CPU hogs the rbd client alone needs more than a second to
        // start, and with eight hogs on two cores (stress-ng --cpu 8 beside the suite) a 3 s
        // deadline timed out on every node at once ("tasks waited for a CPU 100 % of that
        // time", as the check says), which leaves the storage VIP with no eligible holder.
        `  - { name: ceph, kind: rbd, pool: ${pool}, ceph_conf: ${cephConf}, interval: 8s, timeout: 8s, fall: 2, within: 20s, rise: 2 }`,
        "storage:",
        `  vip: ${vip}`,
        ...clients.yaml,
        `  port: ${port}`,
        "  peer_port: 7491",
        // 30 s per rbd call: the fencing test stops a holder for several seconds inside one,
        // and the call must outlive the pause to reach Ceph (a shorter deadline kills it first).
        `  backend: { kind: rbd, pool: ${pool}, ceph_conf: ${cephConf}, timeout: 30s }`,
        "  replication_timeout: 1s",
        "  retry_delay: 200ms",
      ].join("\n"),
    });
    const started = startCephCluster({
      bind: cluster.topology.host("client").address,
      netns: cluster.topology.host("client").netns,
      dir: cephDir,
    });
    if (typeof started === "string") {
      skipReason = started;
      return;
    }
    ceph = started;
    // Every node reaches Ceph over the bridge before any agent starts.
    for (const id of cluster.ids) {
      await cluster.topology.exec(id, "rbd", ["ls", pool, "--conf", cephConf], 15_000);
    }
    for (const id of cluster.ids) cluster.startAgent(id);
    await waitSettled(cluster, 30_000);
    // The gateway answers through the VIP once the holder's agent has started it.
    const up = await waitFor(async () => {
      const r = await cluster!.topology
        .exec(
          "client",
          "curl",
          ["-s", "-m", "1", "-H", `Authorization: Bearer ${writeToken}`, `${url}/v1/health`],
          3000,
        )
        .catch(() => undefined);
      return r?.stdout.includes('"ok":true') ? true : undefined;
    }, 15_000);
    assert.ok(up, `the storage gateway does not answer on ${url}\n${allLogs(cluster)}`);
  });

  after(async () => {
    // Agents first, while Ceph still answers, so no rbd command of theirs is left waiting.
    try {
      await cluster?.destroy();
    } finally {
      ceph?.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it("gives one image for duplicate submissions and a clear error for a conflicting create", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const dup = {
      method: "POST",
      path: "/v1/volumes?request_id=dup-1",
      body: { name: "d1", sizeBytes: mib },
    };
    const race = (id: string) => ({
      id,
      method: "POST",
      path: `/v1/volumes?request_id=${id}&wait=10s`,
      body: { name: "r1", sizeBytes: 2 * mib },
    });
    const acks = await client<Answer[]>("submit", [
      { id: "dup-1", ...dup },
      { id: "dup-1", ...dup },
      race("race-a"),
      race("race-b"),
    ]);
    for (const ack of acks) assert.ok([200, 202].includes(ack.status), JSON.stringify(ack.body));
    const finals = new Map(
      (
        await client<Followed[]>("follow", [
          { id: "dup-1" },
          { id: "race-a" },
          { id: "race-b" },
        ] as Call[])
      ).map((f) => [f.id, f.record]),
    );
    assert.equal(finals.get("dup-1")?.state.state, "succeeded", JSON.stringify(finals));
    assert.equal(await imageSize("d1"), mib);
    const states = ["race-a", "race-b"].map((id) => finals.get(id)?.state);
    assert.equal(states.filter((s) => s?.state === "succeeded").length, 1, JSON.stringify(states));
    const loser = states.find((s) => s?.state === "failed");
    assert.equal(loser?.error?.code, "EXISTS", JSON.stringify(states));
    assert.equal(await imageSize("r1"), 2 * mib);

    // The same id again: the recorded result, not a second create (which would fail EXISTS).
    const [again, reused] = await client<Answer[]>("submit", [
      { id: "dup-1", ...dup },
      {
        id: "dup-1",
        method: "POST",
        path: "/v1/volumes?request_id=dup-1",
        body: { name: "d2", sizeBytes: mib },
      },
    ]);
    assert.equal(again?.status, 200);
    assert.deepEqual(again?.body.request?.state, finals.get("dup-1")?.state);
    assert.equal(reused?.status, 409);
    assert.equal(reused?.body.error?.code, "REQUEST_ID_REUSED");
    assert.deepEqual((await images()).sort(), ["d1", "r1"]);
  });

  it("finishes every request of a killed holder as Ceph shows, each result fetched through the VIP", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const c = live();
    /**
     * One run of the scenario with its own names (`${pfx}n0`…) and request ids. Answers
     * false when the VIP moved on its own between the submission and the kill: a whole-VM
     * pause of about a second under load ends the holder's lease, the next holder re-drives
     * the work, and killing the node that held it before proves nothing. The caller then
     * runs the scenario again under fresh names.
     */
    const scenario = async (pfx: string): Promise<boolean> => {
      const setup: Call[] = [];
      for (const p of ["p", "q"]) {
        for (let i = 0; i < 10; i++) {
          const id = `${pfx}-setup-${p}${i}`;
          setup.push({
            id,
            method: "POST",
            path: `/v1/volumes?request_id=${id}`,
            body: { name: `${pfx}${p}${i}`, sizeBytes: mib },
          });
        }
      }
      for (const [id, record] of await submitAndFollow(setup)) {
        assert.equal(record?.state.state, "succeeded", `${id}: ${JSON.stringify(record)}`);
      }

      const calls: Call[] = [];
      const add = (id: string, method: string, path: string, body?: unknown) =>
        calls.push({
          id: `${pfx}-${id}`,
          method,
          path: `${path}?request_id=${pfx}-${id}`,
          ...(body ? { body } : {}),
        });
      for (let i = 0; i < 20; i++)
        add(`m-create-n${i}`, "POST", "/v1/volumes", {
          name: `${pfx}n${i}`,
          sizeBytes: (1 + (i % 4)) * mib,
        });
      for (let i = 0; i < 5; i++) add(`m-delete-p${i}`, "DELETE", `/v1/volumes/${pfx}p${i}`);
      for (let i = 5; i < 10; i++)
        add(`m-resize-p${i}`, "POST", `/v1/volumes/${pfx}p${i}/resize`, { sizeBytes: 8 * mib });
      for (let i = 0; i < 5; i++)
        add(`m-snap-q${i}`, "POST", `/v1/volumes/${pfx}q${i}/snapshots`, { snapshot: "s1" });
      for (let i = 5; i < 10; i++)
        add(`m-copy-q${i}`, "POST", `/v1/volumes/${pfx}q${i}/copy`, { target: `${pfx}c${i}` });
      assert.equal(calls.length, 40);
      const mine = (id: string) => id.startsWith(`${pfx}-m-`);

      const holder = await c.holderOf(vip);
      assert.ok(holder, "someone holds the storage VIP");
      const acks = await client<Answer[]>("submit", calls);
      for (const ack of acks) {
        assert.ok([200, 202].includes(ack.status), `${ack.id}: ${JSON.stringify(ack.body)}`);
      }
      const pid = c.agentPid(holder);
      assert.ok(pid, "the holder's supervisor has an agent child");
      // The client is already long-polling the holder through the VIP when the holder dies.
      const following = client<Followed[]>("follow", calls);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const known = await clients.listRequests();
      // Read again right before the kill: the node about to die must still hold the VIP.
      const stillHolder = await c.holderOf(vip).catch(() => undefined);
      if (stillHolder !== holder) {
        t.diagnostic(
          `the storage VIP moved from ${holder} to ${stillHolder} before the kill (the machine stalled); running again under fresh names`,
        );
        const followed = await following;
        // Even so, every request ends succeeded: that move was a failover too.
        for (const f of followed) {
          assert.equal(f.record?.state.state, "succeeded", `${f.id}: ${JSON.stringify(f.record)}`);
        }
        await waitSettled(c, 30_000);
        return false;
      }
      process.kill(pid, "SIGKILL");
      // Who takes the VIP over, seen now: by the end of the follow the killed node may have
      // come back and taken it back (failback), which is no failure.
      const takenOver = waitFor(async () => {
        const h = await c.holderOf(vip).catch(() => undefined);
        return h !== undefined && h !== holder ? h : undefined;
      }, 30_000);
      const unfinishedAtKill = known.filter(
        (r) => mine(r.id) && !["succeeded", "failed"].includes(r.state.state),
      ).length;
      const followed = await following;
      const newHolder = await takenOver;
      assert.ok(
        unfinishedAtKill > 10,
        `the holder should die with work queued (${unfinishedAtKill})`,
      );
      const retries = followed.reduce((sum, f) => sum + f.retries, 0);
      t.diagnostic(
        `holder ${holder} killed with ${unfinishedAtKill}/40 unfinished; VIP now on ${newHolder}; client retried ${retries} GETs`,
      );
      assert.ok(newHolder && newHolder !== holder, `the storage VIP moved (now ${newHolder})`);
      // A node that took the VIP over re-drove the dead holder's unfinished requests against
      // Ceph itself (a re-drive, not the dead holder finishing them: its records say
      // reDrive=false). Usually the final holder; when the killed node's restarted agent got
      // the VIP back for a while first, it may be that one.
      const reDrivenBy = c.ids.map(
        (id) =>
          c
            .logs(id)
            .split("\n")
            .filter(
              (line) => line.includes(` id=${pfx}-m-`) && / executed .*\breDrive=true\b/.test(line),
            ).length,
      );
      const reDriven = reDrivenBy.reduce((a, b) => a + b, 0);
      t.diagnostic(
        `re-driven: ${c.ids.map((id, i) => `${id} ${reDrivenBy[i]}`).join(", ")} (final holder ${newHolder})`,
      );
      assert.ok(reDriven > 0, `no node re-drove the unfinished requests\n${allLogs(c)}`);
      assert.ok(retries > 0, "the client's long-poll on the dead holder was cut off and retried");
      for (const f of followed) {
        assert.ok(
          f.methods.every((m) => m === "GET"),
          "the client never submitted again",
        );
        assert.equal(
          f.record?.state.state,
          "succeeded",
          `${f.id}: ${JSON.stringify(f.record)} (holder ${holder} killed, now ${newHolder}, ${retries} retries)\n${allLogs(c)}`,
        );
      }
      // What is really in Ceph matches every result.
      const names = new Set(await images());
      for (let i = 0; i < 20; i++)
        assert.equal(await imageSize(`${pfx}n${i}`), (1 + (i % 4)) * mib);
      for (let i = 0; i < 5; i++)
        assert.equal(names.has(`${pfx}p${i}`), false, `${pfx}p${i} deleted`);
      for (let i = 5; i < 10; i++) assert.equal(await imageSize(`${pfx}p${i}`), 8 * mib);
      for (let i = 0; i < 5; i++)
        assert.deepEqual(await snapshots(`${pfx}q${i}`), ["s1"], `${pfx}q${i}@s1`);
      for (let i = 5; i < 10; i++) assert.equal(await imageSize(`${pfx}c${i}`), mib);
      // Reads journal nothing: after the failover the client reads the result directly.
      const all = await readVia(c, "/v1/volumes");
      assert.ok(all.result?.volumes?.length, JSON.stringify(all));
      for (let i = 5; i < 10; i++) {
        assert.equal((await readVia(c, `/v1/volumes/${pfx}q${i}`)).result?.sizeBytes, mib);
      }
      // Nothing else under this run's names: no half-made copy left under a temporary name
      // (`${pfx}c5.…`), no image created twice.
      const expected: string[] = [];
      for (let i = 0; i < 20; i++) expected.push(`${pfx}n${i}`);
      for (let i = 5; i < 10; i++) expected.push(`${pfx}p${i}`, `${pfx}c${i}`);
      for (let i = 0; i < 10; i++) expected.push(`${pfx}q${i}`);
      assert.deepEqual([...names].filter((n) => n.startsWith(pfx)).sort(), expected.sort());
      return true;
    };
    const before = (await images()).sort();
    let ran = false;
    for (let attempt = 0; attempt < 3 && !ran; attempt++) ran = await scenario(`k${attempt}`);
    assert.ok(ran, "the storage VIP moved on its own before the kill in three runs out of three");
    // The images from before are untouched, and nothing outside the runs' names appeared.
    const others = (await images()).filter((n) => !/^k\d/.test(n)).sort();
    assert.deepEqual(others, before);
  });

  it("tells only one of two clients that it created a name, across a failover", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const c = live();
    await waitSettled(c, 30_000);
    // The first create must be accepted: it needs a healthy peer to be replicated to.
    assert.ok(await everyMemberHealthy(c), `every member healthy again\n${allLogs(c)}`);
    const holder = await waitFor(() => c.holderOf(vip), 20_000);
    assert.ok(holder, `someone holds the storage VIP\n${allLogs(c)}`);
    writeFileSync(slowRenameFlag(holder), "");
    try {
      const create = (id: string) => ({
        id,
        method: "POST" as const,
        path: `/v1/volumes?request_id=${id}`,
        body: { name: "two-vol", sizeBytes: mib },
      });
      const first = await client<Answer[]>("submit", [create("two-a")]);
      assert.equal(first[0]?.status, 202, JSON.stringify(first[0]?.body));
      // A's rename has happened (the image is there) while its answer is held back.
      const made = await waitFor(
        async () => ((await images()).includes("two-vol") ? true : undefined),
        15_000,
      );
      assert.ok(made, `two-vol was made\n${c.logs(holder)}`);
      const second = await client<Answer[]>("submit", [create("two-b")]);
      assert.equal(second[0]?.status, 202, JSON.stringify(second[0]?.body));
      process.kill(c.agentPid(holder)!, "SIGKILL");
      const finals = new Map(
        (
          await client<Followed[]>("follow", [
            { id: "two-a", method: "GET", path: "" },
            { id: "two-b", method: "GET", path: "" },
          ])
        ).map((f) => [f.id, f.record]),
      );
      assert.equal(finals.get("two-a")?.state.state, "succeeded", JSON.stringify([...finals]));
      assert.equal(finals.get("two-b")?.state.state, "failed", JSON.stringify([...finals]));
      assert.equal(finals.get("two-b")?.state.error?.code, "EXISTS", JSON.stringify([...finals]));
      const meta = await c.topology.exec(
        "client",
        "rbd",
        ["image-meta", "get", `${pool}/two-vol`, "floatip.request", "--conf", cephConf],
        15_000,
      );
      assert.equal(meta.stdout.trim(), "two-a");
    } finally {
      rmSync(slowRenameFlag(holder), { force: true });
    }
    await waitSettled(c, 30_000);
  });

  it("fences a holder stopped inside a command: its late command is refused, then it lifts its fence", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const c = live();
    await waitSettled(c, 30_000);
    // The earlier tests killed holders, and each takeover fenced the node it took over from:
    // such a node is failed until it lifted its fence and its rbd check rose again. Until
    // every member is healthy, the holder would accept the request with no healthy peer to
    // replicate it to, and the stopped holder would take it along.
    assert.ok(await everyMemberHealthy(c), `every member healthy again\n${allLogs(c)}`);
    const holder = await waitFor(() => c.holderOf(vip), 20_000);
    assert.ok(holder, `someone holds the storage VIP\n${allLogs(c)}`);
    const address = c.topology.host(holder).address;
    // The monitor answers a command now and then with EPERM ("problem getting command
    // descriptions from mon") while it commits osdmap changes such as these blocklist
    // entries: the test's own look is retried, as floatip retries its fence.
    const blocklisted = async () => {
      for (let attempt = 1; ; attempt += 1) {
        try {
          const listed = await c.topology.exec(
            "client",
            "ceph",
            ["osd", "blocklist", "ls", "--conf", cephConf],
            15_000,
          );
          return listed.stdout.includes(`${address}:0/0`);
        } catch (error) {
          if (attempt >= 5 || !/EPERM|EAGAIN/.test(String((error as Error).message))) throw error;
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      }
    };
    writeFileSync(slowFlag(holder), "");
    const tree: number[] = [];
    try {
      const acks = await client<Answer[]>("submit", [
        {
          id: "fence-1",
          method: "POST",
          path: "/v1/volumes?request_id=fence-1",
          body: { name: "fenced-vol", sizeBytes: mib },
        },
      ]);
      assert.equal(acks[0]?.status, 202, JSON.stringify(acks[0]?.body));
      // The holder's rbd create is now held back in the wrapper: stop everything of the node.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      tree.push(...processTree(c.agents.get(holder)!.pid!, parentMap()));
      for (const pid of tree) {
        try {
          process.kill(pid, "SIGSTOP");
        } catch (error) {
          // A short-lived child (a check's command) ended between the listing and the signal.
          if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
        }
      }
      const next = await waitFor(async () => {
        const h = await c.holderOf(vip);
        return h && h !== holder ? h : undefined;
      }, 20_000);
      assert.ok(next, `the storage VIP moved\n${allLogs(c)}`);
      const finals = new Map(
        (await client<Followed[]>("follow", [{ id: "fence-1", method: "GET", path: "" }])).map(
          (f) => [f.id, f.record],
        ),
      );
      assert.equal(
        finals.get("fence-1")?.state.state,
        "succeeded",
        `${JSON.stringify([...finals])}\n${allLogs(c)}`,
      );
      assert.ok(await blocklisted(), `${holder} (${address}) is blocklisted\n${c.logs(next)}`);
      assert.match(c.logs(next), /fenced/);
    } finally {
      rmSync(slowFlag(holder), { force: true });
      for (const pid of tree) {
        try {
          process.kill(pid, "SIGCONT");
        } catch {
          // Gone already.
        }
      }
    }
    // Continued, the old holder's rbd create runs at last: Ceph refuses it.
    const refused = await waitFor(
      async () => (/refused_fenced/.test(c.logs(holder)) ? true : undefined),
      20_000,
    );
    assert.ok(refused, `${holder}'s late command was refused\n${c.logs(holder)}`);
    const names = await images();
    assert.equal(names.filter((n) => n === "fenced-vol").length, 1, names.join(" "));
    assert.ok(!names.some((n) => n.startsWith("fenced-vol.")), names.join(" "));
    // Holding nothing and running nothing, it lifts its own fence, and its rbd works again.
    // Ceph may show the entry gone a moment before the node's log line reaches this process.
    const lifted = await waitFor(
      async () => (/unfenced/.test(c.logs(holder)) && !(await blocklisted()) ? true : undefined),
      30_000,
    );
    assert.ok(lifted, `${holder} lifted its fence (and logged "unfenced")\n${c.logs(holder)}`);
    await waitSettled(c, 30_000);
  });

  it("moves the storage VIP away from a node cut off from Ceph", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const c = live();
    assert.ok(ceph, "Ceph started");
    await waitSettled(c, 30_000);
    const cut = await waitFor(() => c.holderOf(vip), 20_000);
    assert.ok(cut, `someone holds the storage VIP\n${allLogs(c)}`);
    const netns = c.topology.host(cut).netns;
    const nft = (lines: readonly string[]) =>
      run("nft", ["-f", "-"], { timeoutMs: 5000, netns, input: `${lines.join("\n")}\n` });
    // Only the node's own connections to the Ceph daemons: the VIP's answers to the client
    // (also in the client namespace) leave from the VIP and stay untouched.
    await nft([
      `table inet ${cutTable} {`,
      "  chain output {",
      "    type filter hook output priority 0; policy accept;",
      `    ip saddr ${c.topology.host(cut).address} ip daddr ${ceph.monAddress} tcp dport { ${ceph.monPort}, ${osdPorts} } drop`,
      "  }",
      "}",
    ]);
    try {
      // The cut is real: the node's own rbd client no longer reaches the cluster.
      const probe = await run("rbd", ["ls", pool, "--conf", cephConf], {
        timeoutMs: 3000,
        netns,
      }).catch((error: { code?: string }) => error.code);
      assert.equal(probe, "EXEC_TIMEOUT", `rbd from ${cut} still reaches Ceph`);
      // Two failed checks of up to 8 s each, 3 s apart, then the handover.
      const next = await waitFor(async () => {
        const holder = await c.holderOf(vip);
        return holder && holder !== cut ? holder : undefined;
      }, 40_000);
      assert.ok(next, `${cut} kept the storage VIP though cut off from Ceph\n${allLogs(c)}`);
      assert.deepEqual(await c.heldVips(cut), [], `${cut} released its VIPs`);
      const finals = await submitAndFollow([
        {
          id: "after-cut",
          method: "POST",
          path: "/v1/volumes?request_id=after-cut",
          body: { name: "h1", sizeBytes: mib },
        },
      ]);
      assert.equal(
        finals.get("after-cut")?.state.state,
        "succeeded",
        JSON.stringify(finals.get("after-cut")),
      );
      assert.equal(await imageSize("h1"), mib);
      assert.equal(
        await c.holderOf(vip),
        next,
        "the request was served while the new holder kept the VIP",
      );
    } finally {
      await nft([`delete table inet ${cutTable}`]);
    }
  });
});
