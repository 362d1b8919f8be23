/**
 * The storage gateway (S1) running inside `floatip agent`, end to end in network namespaces:
 * three real agents (each under its supervisor) with a `storage:` section, and a client
 * namespace that reaches the gateway only through the storage VIP. The backend is `file` in one
 * host directory that all three node namespaces see (namespaces share the filesystem): it
 * stands in for the shared Ceph cluster, which these namespaces cannot reach (the test Ceph
 * cluster listens on the root namespace's loopback).
 *
 * 1. Duplicate submissions (same request id) and two concurrent creates of one name: one
 *    effect, and a clear error for the loser and for a reused id.
 * 2. Fifty mixed requests through the VIP, then SIGKILL of the VIP holder's agent (the gateway
 *    dies with it) while most are still queued or running (the backend is slowed down): every
 *    request reaches a final state that matches the backend directory, and the client fetched
 *    every result through the VIP without submitting anything again.
 * 3. A node whose own health check fails (an exec check on a flag file, the stand-in for the
 *    rbd check) releases the storage VIP; the next holder serves the next request.
 * 4. A stale journal: the holder stops with requests it accepted still queued, the next holder
 *    finishes them, and the first comes back and takes the VIP over while no peer is healthy
 *    (one stopped, one failing its check): it pulls from nobody, re-drives its own journal,
 *    and still answers every request as succeeded, as the node that ran them did.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  allLogs,
  type LiveCluster,
  processExited,
  startCluster,
  waitFor,
  waitSettled,
  watchHolders,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot, subnetFor } from "../../src/lab/topology.ts";
import {
  type Answer,
  type Call,
  type Followed,
  storageClientProgram,
  storageClients,
} from "./storage-client.ts";

const prefix = "fipsa-";
const port = 7490;
const mib = 1024 * 1024;

describe("storage gateway inside the agent", { skip: skipUnlessRoot() }, () => {
  const work = mkdtempSync(join(tmpdir(), `${prefix}work-`));
  const volumesDir = join(work, "volumes");
  const flagFile = join(work, "sick");
  const programFile = join(work, "client.cjs");
  const vip = `198.18.${subnetFor(prefix)}.102`;
  const url = `http://${vip}:${port}`;
  let cluster: LiveCluster | undefined;

  const live = () => {
    assert.ok(cluster, "the cluster started");
    return cluster;
  };
  const clients = storageClients(work, url, programFile, live, 90_000);
  const { writeToken, readToken, client } = clients;
  const readVia = (_c: LiveCluster, path: string) => clients.readVia(path);
  const volume = (name: string) => join(volumesDir, "volumes", `${name}.img`);
  /** Submits through the VIP and follows to the final record (retrying only GETs). */
  const run = async (calls: readonly Call[]) => {
    const acks = await client<Answer[]>("submit", calls);
    for (const ack of acks) {
      assert.ok([200, 202].includes(ack.status), `${ack.id}: ${JSON.stringify(ack.body)}`);
    }
    const followed = await client<Followed[]>("follow", calls);
    return new Map(followed.map((f) => [f.id, f.record]));
  };

  before(async () => {
    writeFileSync(programFile, storageClientProgram(60_000));
    writeFileSync(flagFile, "");
    // Healthy unless one of this node's own eth0 addresses is listed in the flag file. The
    // timeout leaves room for a busy machine (with 250 ms a healthy node's check timed out
    // beside stress-ng, "tasks waited for a CPU 99 % of that time", and its VIP moved).
    const check = ["sh", "-c", `! ip -o -4 address show dev eth0 | grep -qF -f ${flagFile}`];
    cluster = await startCluster({
      prefix,
      vips: [{ host: 100 }, { host: 102, policy: "hash" }],
      addressLifetime: "3s",
      extraYaml: [
        "checks:",
        `  - { name: flag, kind: exec, command: ${JSON.stringify(check)}, interval: 1s, timeout: 1s, fall: 2, within: 3s, rise: 2 }`,
        "storage:",
        `  vip: ${vip}`,
        ...clients.yaml,
        `  port: ${port}`,
        "  peer_port: 7491",
        // Slow enough that the holder dies with most of the 50 requests queued or running.
        `  backend: { kind: file, dir: ${volumesDir}, operation_delay: 120ms }`,
        "  replication_timeout: 1s",
        "  retry_delay: 200ms",
      ].join("\n"),
    });
    await waitSettled(cluster);
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
    await cluster?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it("gives one effect for duplicate submissions and a clear error for a conflicting create", async () => {
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
    assert.equal(finals.get("dup-1")?.state.state, "succeeded");
    assert.equal(statSync(volume("d1")).size, mib);
    const states = ["race-a", "race-b"].map((id) => finals.get(id)?.state);
    assert.equal(states.filter((s) => s?.state === "succeeded").length, 1, JSON.stringify(states));
    const loser = states.find((s) => s?.state === "failed");
    assert.equal(loser?.error?.code, "EXISTS", JSON.stringify(states));
    assert.equal(statSync(volume("r1")).size, 2 * mib);

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
    assert.equal(existsSync(volume("d2")), false);
  });

  it("answers only clients with a token, on the VIP only, and keeps no record of reads", async () => {
    const c = live();
    const holder = (await c.holderOf(vip))!;
    /** HTTP status of one curl from the client namespace ("000": no connection). */
    const status = async (...args: string[]) => {
      const quoted = args.map((a) => `'${a}'`).join(" ");
      const r = await c.topology.exec(
        "client",
        "sh",
        ["-c", `curl -s -m 3 -o /dev/null -w '%{http_code}' ${quoted}; true`],
        8000,
      );
      return r.stdout.trim();
    };
    assert.equal(await status(`${url}/v1/volumes`), "401", "no token");
    assert.equal(await status("-H", "Authorization: Bearer wrong", `${url}/v1/volumes`), "401");
    assert.equal(
      await status(
        "-X",
        "DELETE",
        "-H",
        `Authorization: Bearer ${readToken}`,
        `${url}/v1/volumes/d1?request_id=ro-delete`,
      ),
      "403",
      "a read token deletes nothing",
    );
    assert.ok(existsSync(volume("d1")), "d1 is still there");
    assert.equal(
      await status("-H", `Authorization: Bearer ${readToken}`, `${url}/v1/volumes/d1`),
      "200",
    );
    // The client API listens on the storage VIP only: not on the holder's own address.
    const own = c.topology.host(holder).address;
    assert.equal(
      await status("-H", `Authorization: Bearer ${writeToken}`, `http://${own}:${port}/v1/volumes`),
      "000",
      `nothing answers on ${own}:${port}`,
    );
    // 300 reads (curl's URL range: one process, one after the other) write no record anywhere.
    const records = async () =>
      Promise.all(
        c.ids.map(async (id) => {
          const r = await c.cli(id, ["status", "--json"]);
          const parsed = JSON.parse(r.stdout) as {
            capabilities?: { storage?: { requests?: number } };
          };
          return parsed.capabilities?.storage?.requests;
        }),
      );
    const before = await records();
    const reads = await c.topology.exec(
      "client",
      "curl",
      [
        "-s",
        "-m",
        "60",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}\\n",
        "-H",
        `Authorization: Bearer ${readToken}`,
        `${url}/v1/volumes?n=[1-300]`,
      ],
      70_000,
    );
    const codes = reads.stdout.trim().split("\n");
    assert.equal(codes.length, 300);
    assert.ok(
      codes.every((code) => code === "200"),
      reads.stdout.slice(0, 200),
    );
    // The finding as it was: 2,000 GETs without a token (they used to write 2,001 records).
    const anonymous = await c.topology.exec(
      "client",
      "curl",
      [
        "-s",
        "-m",
        "120",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}\\n",
        `${url}/v1/volumes?n=[1-2000]`,
      ],
      130_000,
    );
    const refused = anonymous.stdout.trim().split("\n");
    assert.equal(refused.length, 2000);
    assert.ok(
      refused.every((code) => code === "401"),
      anonymous.stdout.slice(0, 200),
    );
    assert.deepEqual(await records(), before, "reads journal nothing on any node");
    // Records are the submitting client's: the read-only client sees none of them.
    const seen = await c.topology.exec(
      "client",
      "curl",
      ["-s", "-m", "5", "-H", `Authorization: Bearer ${readToken}`, `${url}/v1/requests?limit=500`],
      10_000,
    );
    assert.deepEqual(JSON.parse(seen.stdout), { requests: [] });
    assert.ok(
      before.every((n) => typeof n === "number" && n > 0),
      JSON.stringify(before),
    );
  });

  it("refuses unsigned 60 MB bodies on the peer port unread: no memory growth, no VIP moves", async () => {
    const c = live();
    const holder = (await c.holderOf(vip))!;
    const agent = c.agentPid(holder)!;
    const services = Number(
      readFileSync(`/proc/${agent}/task/${agent}/children`, "utf8").trim().split(/\s+/)[0],
    );
    const rssMb = () =>
      Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${services}/status`, "utf8"))?.[1]) /
      1024;
    const before = rssMb();
    const watch = watchHolders(c, 20, 1000, 30_000);
    // Eight connections at once, each announcing and then streaming 60 MB of an unsigned body
    // (the attack that used to be read in full before its 401): each records its status and
    // how long the answer took, and stops sending once answered.
    const attack = `
      const net = require("node:net");
      const [host, port] = process.argv.slice(1);
      const size = 60 * 1024 * 1024, chunk = Buffer.alloc(1024 * 1024, 0x7b);
      const one = () => new Promise((resolve) => {
        const s = net.connect(Number(port), host), t0 = Date.now();
        let sent = 0, text = "", done = false;
        const finish = (status) => { if (!done) { done = true; s.destroy(); resolve({ status, ms: Date.now() - t0, sentMb: sent / 1048576 }); } };
        const pump = () => { while (!done && sent < size) { sent += chunk.length; if (!s.write(chunk)) break; } };
        s.on("connect", () => { s.write("POST /v1/peer/records HTTP/1.1\\r\\nhost: x\\r\\ncontent-type: application/json\\r\\ncontent-length: " + size + "\\r\\n\\r\\n"); pump(); });
        s.on("drain", pump);
        s.on("data", (d) => { text += d; const m = /^HTTP\\/1\\.1 (\\d+)/.exec(text); if (m) finish(Number(m[1])); });
        s.on("error", () => finish(text ? Number(/^HTTP\\/1\\.1 (\\d+)/.exec(text)?.[1] ?? 0) : 0));
        s.on("close", () => finish(Number(/^HTTP\\/1\\.1 (\\d+)/.exec(text)?.[1] ?? 0)));
        setTimeout(() => finish(-1), 20000).unref();
      });
      Promise.all(Array.from({ length: 8 }, one)).then((r) => { console.log(JSON.stringify(r)); process.exit(0); });
    `;
    const result = await c.topology.exec(
      "client",
      process.execPath,
      ["-e", attack, c.topology.host(holder).address, "7491"],
      60_000,
    );
    const answers = JSON.parse(result.stdout) as { status: number; ms: number; sentMb: number }[];
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const report = await watch.stop();
    const grown = rssMb() - before;
    console.log(
      `# peer port attack: ${JSON.stringify(answers)}; services RSS +${grown.toFixed(1)} MB`,
    );
    // Every client reads its 413: the server closes lingering (a FIN, then it discards what
    // still comes), so no reset overtakes the answer (closed at once, all eight were reset
    // in one run and read nothing).
    assert.ok(
      answers.every((a) => a.status === 413 && a.ms < 1000),
      `every request refused before its body, and the refusal read\n${result.stdout}`,
    );
    assert.ok(grown < 50, `the services process grew by ${grown.toFixed(1)} MB`);
    assert.deepEqual(report.doubles, [], "never two holders");
    assert.deepEqual(report.unheld, [], `no VIP went unheld\n${allLogs(c)}`);
    assert.equal(await c.holderOf(vip), holder, "the storage VIP stayed where it was");
  });

  it("finishes every request of a killed holder and returns each result through the VIP", async (t) => {
    const c = live();
    // Setup, waited for: p0..p9 and q0..q9 of 1 MiB.
    const setup: Call[] = [];
    for (const p of ["p", "q"]) {
      for (let i = 0; i < 10; i++) {
        setup.push({
          id: `setup-${p}${i}`,
          method: "POST",
          path: `/v1/volumes?request_id=setup-${p}${i}`,
          body: { name: `${p}${i}`, sizeBytes: mib },
        });
      }
    }
    for (const [id, record] of await run(setup)) {
      assert.equal(record?.state.state, "succeeded", `${id}: ${JSON.stringify(record)}`);
    }

    const calls: Call[] = [];
    const add = (id: string, method: string, path: string, body?: unknown) =>
      calls.push({ id, method, path: `${path}?request_id=${id}`, ...(body ? { body } : {}) });
    for (let i = 0; i < 20; i++)
      add(`m-create-n${i}`, "POST", "/v1/volumes", {
        name: `n${i}`,
        sizeBytes: (1 + (i % 4)) * mib,
      });
    for (let i = 0; i < 5; i++) add(`m-delete-p${i}`, "DELETE", `/v1/volumes/p${i}`);
    for (let i = 5; i < 10; i++)
      add(`m-resize-p${i}`, "POST", `/v1/volumes/p${i}/resize`, { sizeBytes: 8 * mib });
    for (let i = 0; i < 5; i++)
      add(`m-snap-q${i}`, "POST", `/v1/volumes/q${i}/snapshots`, { snapshot: "s1" });
    for (let i = 5; i < 10; i++)
      add(`m-copy-q${i}`, "POST", `/v1/volumes/q${i}/copy`, { target: `c${i}` });
    assert.equal(calls.length, 40);

    const holder = await c.holderOf(vip);
    assert.ok(holder, "someone holds the storage VIP");
    const acks = await client<Answer[]>("submit", calls);
    for (const ack of acks) {
      assert.ok(
        [200, 202].includes(ack.status),
        `${ack.id}: ${JSON.stringify(ack.body)}\n${allLogs(c)}`,
      );
    }
    const pid = c.agentPid(holder);
    assert.ok(pid, "the holder's supervisor has an agent child");
    // The client is already long-polling the holder through the VIP when the holder dies.
    const following = client<Followed[]>("follow", calls);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const known = await clients.listRequests();
    process.kill(pid, "SIGKILL");
    // Who takes the VIP over, seen now: by the end of the follow the killed node may have
    // come back and taken it back (failback), which is no failure.
    const takenOver = waitFor(async () => {
      const h = await c.holderOf(vip).catch(() => undefined);
      return h !== undefined && h !== holder ? h : undefined;
    }, 30_000);
    const unfinishedAtKill = known.filter(
      (r) => r.id.startsWith("m-") && !["succeeded", "failed"].includes(r.state.state),
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
    // What is really in the backend matches every result.
    for (let i = 0; i < 20; i++) assert.equal(statSync(volume(`n${i}`)).size, (1 + (i % 4)) * mib);
    for (let i = 0; i < 5; i++) assert.equal(existsSync(volume(`p${i}`)), false, `p${i} deleted`);
    for (let i = 5; i < 10; i++) assert.equal(statSync(volume(`p${i}`)).size, 8 * mib);
    for (let i = 0; i < 5; i++)
      assert.ok(existsSync(join(volumesDir, "snapshots", `q${i}`, "s1.img")), `q${i}@s1`);
    for (let i = 5; i < 10; i++) {
      assert.equal(statSync(volume(`c${i}`)).size, mib);
    }
    // Reads journal nothing: after the failover the client reads the result directly.
    const all = await readVia(c, "/v1/volumes");
    assert.ok(all.result?.volumes?.length, JSON.stringify(all));
    for (let i = 5; i < 10; i++) {
      assert.equal((await readVia(c, `/v1/volumes/q${i}`)).result?.sizeBytes, mib);
    }
  });

  it("moves the storage VIP away from a node whose health check fails", async () => {
    const c = live();
    await waitSettled(c, 30_000);
    const sick = await c.holderOf(vip);
    assert.ok(sick, "someone holds the storage VIP");
    writeFileSync(flagFile, `inet ${c.topology.host(sick).address}/\n`);
    try {
      const next = await waitFor(async () => {
        const holder = await c.holderOf(vip);
        return holder && holder !== sick ? holder : undefined;
      }, 15_000);
      assert.ok(next, `${sick} kept the storage VIP despite its failing check\n${allLogs(c)}`);
      assert.deepEqual(await c.heldVips(sick), [], `${sick} released its VIPs`);
      const finals = await run([
        {
          id: "after-sick",
          method: "POST",
          path: "/v1/volumes?request_id=after-sick",
          body: { name: "h1", sizeBytes: mib },
        },
      ]);
      assert.equal(
        finals.get("after-sick")?.state.state,
        "succeeded",
        JSON.stringify(finals.get("after-sick")),
      );
      assert.equal(statSync(volume("h1")).size, mib);
      assert.equal(
        await c.holderOf(vip),
        next,
        "the request was served while the new holder kept the VIP",
      );
    } finally {
      writeFileSync(flagFile, "");
    }
  });

  it("a node back with a stale journal and no healthy peer answers what the others finished", async (t) => {
    const c = live();
    await waitSettled(c, 30_000);
    const made = await run(
      [0, 1, 2, 3, 4].map((i) => ({
        id: `stale-setup-${i}`,
        method: "POST",
        path: `/v1/volumes?request_id=stale-setup-${i}`,
        body: { name: `sd${i}`, sizeBytes: mib },
      })),
    );
    for (const [id, record] of made) assert.equal(record?.state.state, "succeeded", id);
    const calls: Call[] = [];
    for (let i = 0; i < 10; i++) {
      calls.push({
        id: `stale-create-${i}`,
        method: "POST",
        path: `/v1/volumes?request_id=stale-create-${i}`,
        body: { name: `sc${i}`, sizeBytes: mib },
      });
    }
    for (let i = 0; i < 5; i++) {
      calls.push({
        id: `stale-delete-${i}`,
        method: "DELETE",
        path: `/v1/volumes/sd${i}?request_id=stale-delete-${i}`,
      });
    }
    const first = await c.holderOf(vip);
    assert.ok(first, "someone holds the storage VIP");
    const acks = await client<Answer[]>("submit", calls);
    for (const ack of acks) assert.ok([200, 202].includes(ack.status), JSON.stringify(ack));
    // The holder stops (an orderly stop: it finishes the command under way and hands the VIP
    // over) with most of the 15 still accepted in its journal.
    const child = c.agents.get(first)!;
    c.signal(first, "SIGTERM");
    await processExited(child);
    const finished = new Map(
      (await client<Followed[]>("follow", calls)).map((f) => [f.id, f.record]),
    );
    for (const call of calls) {
      assert.equal(finished.get(call.id)?.state.state, "succeeded", call.id);
    }
    const second = await c.holderOf(vip);
    assert.ok(second && second !== first, `the VIP moved on from ${first}`);
    const third = c.ids.find((id) => id !== first && id !== second)!;
    // The third node fails its check (alive, still counted for quorum), the second stops: the
    // first comes back to a cluster where nobody it could pull from is healthy.
    writeFileSync(flagFile, `inet ${c.topology.host(third).address}/\n`);
    const secondChild = c.agents.get(second)!;
    try {
      const thirdFailed = await waitFor(async () => {
        const r = await c.cli(second, ["status", "--json"]);
        if (r.code !== 0) return undefined;
        const status = JSON.parse(r.stdout) as { members: { id: string; state: string }[] };
        return status.members.find((m) => m.id === third)?.state === "failed" ? true : undefined;
      }, 20_000);
      assert.ok(thirdFailed, `${third} fails its check\n${allLogs(c)}`);
      c.signal(second, "SIGTERM");
      await processExited(secondChild);
      c.startAgent(first);
      const back = await waitFor(
        async () => ((await c.holderOf(vip)) === first ? true : undefined),
        30_000,
      );
      if (!back) {
        // Seen twice in fresh runs before 2026-12-05: when the first node was also the
        // coordinator, its SIGTERM drained it in the table for good (test/sim/shutdown.test.ts).
        // The statuses say per member what each node sees.
        const statuses: string[] = [];
        for (const id of [first, third]) {
          const r = await c
            .cli(id, ["status", "--json"])
            .catch((e: Error) => ({ stdout: e.message }));
          statuses.push(`--- status of ${id}\n${r.stdout}`);
        }
        assert.fail(`${first} takes the storage VIP back\n${statuses.join("\n")}\n${allLogs(c)}`);
      }
      const alone = await waitFor(
        async () => (c.logs(first).includes("takeover_without_peers") ? true : undefined),
        10_000,
      );
      assert.ok(alone, `${first} took over with no peer to pull from\n${c.logs(first)}`);
      const answered = new Map(
        (await client<Followed[]>("follow", calls)).map((f) => [f.id, f.record]),
      );
      t.diagnostic(
        `${first} stopped, ${second} finished ${calls.length} requests, ${third} failed, ${second} stopped, ${first} took over alone`,
      );
      for (const call of calls) {
        assert.equal(
          answered.get(call.id)?.state.state,
          "succeeded",
          `${call.id} as ${first} answers it: ${JSON.stringify(answered.get(call.id))}\n${c.logs(first)}`,
        );
      }
      for (let i = 0; i < 10; i++) assert.equal(statSync(volume(`sc${i}`)).size, mib);
      for (let i = 0; i < 5; i++) assert.equal(existsSync(volume(`sd${i}`)), false);
    } finally {
      writeFileSync(flagFile, "");
      if (secondChild.exitCode !== null || secondChild.signalCode !== null) c.startAgent(second);
    }
    await waitSettled(c, 30_000);
  });
});
