/**
 * Storage gateway (S1) benchmark, `npm run bench:storage`:
 *
 * 1. Cost of the gateway: create + delete of a volume, one pair after another, through the
 *    gateway's REST API (journal in SQLite, replication to two peers before the ack, execution on
 *    the VIP holder, `?wait=` until final) against the rbd CLI called directly, in the same run
 *    against the same Ceph cluster (scripts/ceph-test-cluster.sh on loopback). Requests/s and
 *    p50/p99 latency per operation. When Ceph cannot start here, both sides use the file backend
 *    and the output says so.
 * 2. Failover: three gateway processes on loopback (own ports and journals, static ClusterView
 *    file, as in test/unit/storage-failover.test.ts). `--inflight` creates are acknowledged by
 *    the holder A, A is SIGKILLed, the view hands the VIP to B (SIGHUP), and the clock runs from
 *    the kill until the client has every request's final result from B. Membership detection is
 *    not included (the agent's own failover time is measured by bench/failover.ts); this is the
 *    gateway's part: fencing of A on rbd (ceph osd blocklist, see startTrio), takeover pull,
 *    re-drive of the cut-off requests, answers.
 *
 * Options: --pairs N (create+delete pairs per side, default 30), --inflight N (default 20),
 * --rounds N (failover rounds, default 3), --out FILE.
 * Everything is bounded: each HTTP call has a timeout, each wait a deadline.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { run } from "../src/adapters/exec.ts";
import { positiveInteger, readOptions } from "./lib/args.ts";
import { printHeader } from "./lib/machine.ts";
import { writeResult } from "./lib/results.ts";
import { formatTable, ms, percentile } from "./lib/stats.ts";

const usage =
  "usage: npm run bench:storage -- [--pairs 30] [--inflight 20] [--rounds 3] [--out FILE]";
const options = readOptions(usage, {
  pairs: { default: "30" },
  inflight: { default: "20" },
  rounds: { default: "3" },
  out: { default: "" },
});
const pairs = positiveInteger("pairs", options.pairs!, usage);
const inflight = positiveInteger("inflight", options.inflight!, usage);
const rounds = positiveInteger("rounds", options.rounds!, usage);

const root = path.resolve(import.meta.dirname, "..");
const cephScript = path.join(root, "scripts", "ceph-test-cluster.sh");
const vip = "198.18.0.100"; // only a name in the static view: nothing is configured on an interface
const mib = 1024 * 1024;
const rbdTimeoutMs = 30_000;
/** The client token of every gateway of the run (written to a 0600 file each trio). */
const clientToken = randomBytes(18).toString("base64url");

type Backend =
  | { kind: "rbd"; pool: string; cephConf: string; timeoutMs: number }
  | { kind: "file"; dir: string; operationDelayMs: number };

interface Ceph {
  conf: string;
  stop(): void;
}

function startCeph(work: string): Ceph | string {
  const dir = path.join(work, "ceph");
  const result = spawnSync(cephScript, ["start", dir], { encoding: "utf8", timeout: 900_000 });
  const stop = () => spawnSync(cephScript, ["stop", dir], { timeout: 60_000 });
  if (result.status !== 0) {
    stop();
    return `ceph-test-cluster.sh exited ${result.status}: ${(result.stderr ?? "").trim().split("\n").pop()}`;
  }
  return { conf: result.stdout.trim().split("\n").pop() ?? "", stop };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Gw {
  id: string;
  apiPort: number;
  peerPort: number;
  child?: ChildProcess;
  output: string;
}

interface Trio {
  nodes: Gw[];
  setView(owner: string, failed: readonly string[]): void;
  stop(): void;
}

/** Three gateway processes on loopback sharing `backend`, A holding the VIP. */
async function startTrio(dir: string, backend: Backend, label: string): Promise<Trio> {
  const viewFile = path.join(dir, `${label}-view.json`);
  const keyFile = path.join(dir, "key");
  writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
  const tokenFile = path.join(dir, "client.token");
  writeFileSync(tokenFile, `${clientToken}\n`, { mode: 0o600 });
  const nodes: Gw[] = [];
  for (const id of ["a", "b", "c"]) {
    nodes.push({ id, apiPort: await freePort(), peerPort: await freePort(), output: "" });
  }
  const setView = (owner: string, failed: readonly string[]) =>
    writeFileSync(
      viewFile,
      JSON.stringify({
        term: failed.length + 1,
        // Each member at an address of its own that no rbd client uses (they all reach Ceph
        // from 127.0.0.1): the new holder fences the killed one by that address, so the
        // failover pays for the fence (a monitor command before the re-drive) without cutting
        // the survivors off, as fencing 127.0.0.1 would on one loopback host.
        members: nodes.map((n, i) => ({
          id: n.id,
          address: `127.0.0.${2 + i}`,
          state: failed.includes(n.id) ? "failed" : "healthy",
        })),
        owners: { [vip]: owner },
      }),
    );
  setView("a", []);
  const stop = () => {
    for (const n of nodes) {
      if (n.child && n.child.exitCode === null && n.child.signalCode === null)
        n.child.kill("SIGKILL");
    }
  };
  try {
    for (const n of nodes) {
      const file = path.join(dir, `${label}-${n.id}.json`);
      writeFileSync(
        file,
        JSON.stringify({
          node: n.id,
          keyFile,
          journal: path.join(dir, `${label}-${n.id}.sqlite`),
          api: { host: "127.0.0.1", port: n.apiPort },
          peer: { host: "127.0.0.1", port: n.peerPort },
          peers: Object.fromEntries(nodes.map((p) => [p.id, `http://127.0.0.1:${p.peerPort}`])),
          vip,
          view: viewFile,
          backend,
          replicationTimeoutMs: 2000,
          retryDelayMs: 200,
          clients: [{ name: "bench", tokenFile, access: "write" }],
        }),
      );
      await startGateway(n, file);
    }
  } catch (error) {
    stop();
    throw error;
  }
  return { nodes, setView, stop };
}

function startGateway(node: Gw, configFile: string): Promise<void> {
  const child = spawn(
    process.execPath,
    [path.join(root, "src/storage/gateway-main.ts"), "--config", configFile],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  node.child = child;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${node.id} did not start: ${node.output}`)),
      15_000,
    );
    const onData = (chunk: Buffer) => {
      node.output = (node.output + chunk.toString()).slice(-20_000);
      if (node.output.includes('"event":"listening"')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${node.id} exited with ${code}: ${node.output}`));
    });
  });
}

interface Reply {
  status: number;
  state: string;
  error?: string;
}

async function call(node: Gw, method: string, url: string, body?: unknown): Promise<Reply> {
  const response = await fetch(`http://127.0.0.1:${node.apiPort}${url}`, {
    method,
    headers: {
      authorization: `Bearer ${clientToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const json = (await response.json()) as {
    request?: { state: { state: string; error?: { code: string } } };
    error?: { code: string };
  };
  return {
    status: response.status,
    state: json.request?.state.state ?? "error",
    ...(json.request?.state.error ? { error: json.request.state.error.code } : {}),
    ...(json.error ? { error: json.error.code } : {}),
  };
}

interface Series {
  side: string;
  createMs: number[];
  deleteMs: number[];
  totalMs: number;
}

async function timed(body: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await body();
  return performance.now() - started;
}

/** One create+delete pair straight on the backend (the rbd CLI, or the file backend). */
async function directPair(backend: Backend, name: string, series: Series): Promise<void> {
  if (backend.kind === "rbd") {
    const common = ["--conf", backend.cephConf];
    const spec = `${backend.pool}/${name}`;
    series.createMs.push(
      await timed(async () => {
        await run("rbd", ["create", "--size", `${mib}B`, spec, ...common], {
          timeoutMs: rbdTimeoutMs,
        });
      }),
    );
    series.deleteMs.push(
      await timed(async () => {
        await run("rbd", ["rm", "--no-progress", spec, ...common], { timeoutMs: rbdTimeoutMs });
      }),
    );
  } else {
    const { FileBackend } = await import("../src/storage/backends/file-backend.ts");
    const file = new FileBackend({ dir: backend.dir });
    await file.init();
    series.createMs.push(await timed(async () => void (await file.create(name, mib))));
    series.deleteMs.push(await timed(() => file.remove(name)));
  }
}

/** One create+delete pair through the holder's REST API, each waited for until final. */
async function gatewayPair(a: Gw, name: string, series: Series): Promise<void> {
  {
    let reply: Reply | undefined;
    series.createMs.push(
      await timed(async () => {
        reply = await call(a, "POST", `/v1/volumes?request_id=c-${name}&wait=30s`, {
          name,
          sizeBytes: mib,
        });
      }),
    );
    if (reply?.state !== "succeeded") throw new Error(`create ${name}: ${JSON.stringify(reply)}`);
    series.deleteMs.push(
      await timed(async () => {
        reply = await call(a, "DELETE", `/v1/volumes/${name}?request_id=d-${name}&wait=30s`);
      }),
    );
    if (reply?.state !== "succeeded") throw new Error(`delete ${name}: ${JSON.stringify(reply)}`);
  }
}

/**
 * Both sides in one loop, pair by pair alternately after a short warm-up, so that a cluster
 * that is still settling (or background load) affects both the same; ops/s is over the time
 * each side actually spent.
 */
async function compare(backend: Backend, a: Gw, tag: string): Promise<[Series, Series]> {
  const warm: Series = { side: "warm-up", createMs: [], deleteMs: [], totalMs: 0 };
  for (let i = 0; i < 3; i++) {
    await directPair(backend, `${tag}-warm-d${i}`, warm);
    await gatewayPair(a, `${tag}-warm-g${i}`, warm);
  }
  const direct: Series = { side: "direct", createMs: [], deleteMs: [], totalMs: 0 };
  const gateway: Series = { side: "gateway", createMs: [], deleteMs: [], totalMs: 0 };
  for (let i = 0; i < pairs; i++) {
    await directPair(backend, `${tag}-direct-${i}`, direct);
    await gatewayPair(a, `${tag}-gw-${i}`, gateway);
  }
  for (const s of [direct, gateway]) {
    s.totalMs = [...s.createMs, ...s.deleteMs].reduce((sum, v) => sum + v, 0);
  }
  return [direct, gateway];
}

/** One failover round; returns ms from A's SIGKILL until B answered every request finally. */
async function failoverRound(trio: Trio, tag: string) {
  const [a, b, c] = trio.nodes as [Gw, Gw, Gw];
  const ids = Array.from({ length: inflight }, (_, i) => `${tag}-f${i}`);
  const acks = await Promise.all(
    ids.map((id) => call(a, "POST", `/v1/volumes?request_id=${id}`, { name: id, sizeBytes: mib })),
  );
  if (acks.some((r) => r.status !== 200 && r.status !== 202))
    throw new Error(`not acknowledged: ${JSON.stringify(acks)}`);
  const killedAt = performance.now();
  a.child?.kill("SIGKILL");
  const unfinishedAtKill = acks.filter(
    (r) => r.state !== "succeeded" && r.state !== "failed",
  ).length;
  trio.setView("b", ["a"]);
  b.child?.kill("SIGHUP");
  c.child?.kill("SIGHUP");
  const deadline = Date.now() + 120_000;
  const finals: Reply[] = [];
  for (const id of ids) {
    for (;;) {
      const got = await call(b, "GET", `/v1/requests/${id}?wait=5s`);
      if (got.state === "succeeded" || got.state === "failed") {
        finals.push(got);
        break;
      }
      if (Date.now() > deadline) throw new Error(`${id} never finished: ${JSON.stringify(got)}`);
    }
  }
  return {
    allFinalMs: performance.now() - killedAt,
    /** Whether B fenced A before its re-drive (rbd only; B's log says so). */
    fenced: /\bfenced\b/.test(b.output),
    unfinishedAtKill,
    succeeded: finals.filter((f) => f.state === "succeeded").length,
    failed: finals.filter((f) => f.state === "failed").length,
  };
}

function row(series: Series, op: "create" | "delete"): string[] {
  const values = op === "create" ? series.createMs : series.deleteMs;
  const perSecond = (2 * pairs) / (series.totalMs / 1000);
  return [
    `${series.side} ${op}`,
    String(values.length),
    ms(percentile(values, 50)),
    ms(percentile(values, 99)),
    perSecond.toFixed(1),
  ];
}

async function main(): Promise<void> {
  const machine = printHeader(
    "storage gateway: cost per request and failover of in-flight requests",
  );
  const work = mkdtempSync(path.join(tmpdir(), "fipsb-storage-"));
  const cleanups: (() => void)[] = [() => rmSync(work, { recursive: true, force: true })];
  try {
    console.log("starting a throw-away Ceph cluster (scripts/ceph-test-cluster.sh) …");
    const ceph = startCeph(work);
    let backend: Backend;
    let note: string;
    if (typeof ceph === "string") {
      backend = { kind: "file", dir: path.join(work, "volumes"), operationDelayMs: 0 };
      note = `Ceph unavailable (${ceph}); file backend on both sides`;
    } else {
      cleanups.unshift(() => ceph.stop());
      backend = { kind: "rbd", pool: "rbd", cephConf: ceph.conf, timeoutMs: rbdTimeoutMs };
      note = "rbd: one mon + one memstore OSD on 127.0.0.1, replica size 1";
    }
    console.log(`backend: ${note}\n`);
    const tag = `b${Date.now().toString(36)}`;

    const trio = await startTrio(work, backend, "cost");
    cleanups.unshift(() => trio.stop());
    const [directSeries, gatewaySeries] = await compare(backend, trio.nodes[0]!, tag);
    trio.stop();
    console.log(
      formatTable(
        ["path", "count", "p50 ms", "p99 ms", "ops/s (create+delete)"],
        [
          row(directSeries, "create"),
          row(directSeries, "delete"),
          row(gatewaySeries, "create"),
          row(gatewaySeries, "delete"),
        ],
      ),
    );
    console.log("");

    const failovers = [];
    for (let r = 0; r < rounds; r++) {
      const fresh = await startTrio(work, backend, `failover${r}`);
      cleanups.unshift(() => fresh.stop());
      try {
        failovers.push(await failoverRound(fresh, `${tag}-r${r}`));
      } finally {
        fresh.stop();
      }
    }
    console.log(
      formatTable(
        [
          "failover round",
          "in flight",
          "unfinished at kill",
          "succeeded",
          "failed",
          "A fenced",
          "kill -> all final ms",
        ],
        failovers.map((f, i) => [
          String(i + 1),
          String(inflight),
          String(f.unfinishedAtKill),
          String(f.succeeded),
          String(f.failed),
          f.fenced ? "yes" : "no",
          ms(f.allFinalMs),
        ]),
      ),
    );
    const finalMs = failovers.map((f) => f.allFinalMs);
    const summary = (s: Series) => ({
      createP50Ms: percentile(s.createMs, 50),
      createP99Ms: percentile(s.createMs, 99),
      deleteP50Ms: percentile(s.deleteMs, 50),
      deleteP99Ms: percentile(s.deleteMs, 99),
      opsPerSecond: (2 * pairs) / (s.totalMs / 1000),
    });
    const out = writeResult(
      "storage",
      {
        machine,
        backend: backend.kind,
        note,
        pairs,
        direct: {
          ...summary(directSeries),
          createMs: directSeries.createMs,
          deleteMs: directSeries.deleteMs,
        },
        gateway: {
          ...summary(gatewaySeries),
          createMs: gatewaySeries.createMs,
          deleteMs: gatewaySeries.deleteMs,
        },
        failover: {
          inflight,
          rounds: failovers,
          allFinalP50Ms: percentile(finalMs, 50),
          allFinalMaxMs: percentile(finalMs, 100),
          excludes: "membership detection (static view moved by the benchmark at the kill)",
        },
      },
      options.out || undefined,
    );
    console.log(`\nresult: ${out}`);
  } finally {
    for (const cleanup of cleanups) {
      try {
        cleanup();
      } catch {
        // Best effort: the remaining cleanups still run.
      }
    }
  }
}

await main();
