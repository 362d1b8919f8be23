/**
 * The loads of bench/load.ts. Each starts bounded in time (it ends by itself a little after the
 * window even if nobody stops it) and `stop()` ends it earlier, by PID, returning what it did.
 *   cpu     stress-ng --cpu, 4 hogs per core (else busy-loop processes, lib/cpu-load.ts)
 *   fork    stress-ng --fork (1 worker per core) and one bash loop per core exec'ing /bin/true
 *   memory  stress-ng --vm, 2 workers × 25% of MemAvailable (else Node processes touching
 *           the same amount of memory)
 *   flood   native/floatip_udpflood.c (floatip) or lib/vrrp-flooder.ts (keepalived), from the
 *           client
 *   suite   the namespace test suite of a fresh clone of this repository, beside the run
 * plus the drivers of the `capabilities` load (wrk through the relay, a storage request
 * stream), whose configuration is `capabilitiesYaml()`.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../../src/adapters/exec.ts";
import { encodeDatagram } from "../../src/cluster/codec.ts";
import type { LiveCluster } from "../../src/lab/cluster.ts";
import { ensureDebianPackage } from "../../src/lab/debian.ts";
import type { Topology } from "../../src/lab/topology.ts";
import { sleep } from "./args.ts";
import { startCpuLoad } from "./cpu-load.ts";
import {
  atExit,
  beforeExitKill,
  isAlive,
  killSnapshot,
  type ProcessId,
  sleepSync,
  snapshotTree,
  spawnOwned,
  statFields,
  stopOwned,
} from "./owned.ts";
import { parseWrk } from "./relay-tools.ts";
import { vrrpFlooderProgram } from "./vrrp-flooder.ts";

export interface RunningLoad {
  /** One line saying what runs, for the progress output and the JSON. */
  readonly description: string;
  /** Ends the load (by PID) and returns what it reports. */
  stop(): Promise<Record<string, unknown>>;
}

const stressNgPath = "/usr/bin/stress-ng";

/** Path of stress-ng, installing the Debian package first if needed; undefined if impossible. */
export function ensureStressNg(): Promise<string | undefined> {
  return ensureDebianPackage("stress-ng", [stressNgPath]);
}

/** Collects a child's output (bounded) and resolves its exit. */
function collect(child: ChildProcess): { text(): string; exited: Promise<void> } {
  let text = "";
  const keep = (chunk: Buffer) => {
    text += chunk.toString();
    if (text.length > 200_000) text = text.slice(-100_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.once("error", () => resolve());
  });
  return { text: () => text, exited };
}

function stressNg(binary: string, args: readonly string[], description: string): RunningLoad {
  const child = spawnOwned(binary, [...args, "--quiet"], { stdio: ["ignore", "pipe", "pipe"] });
  const output = collect(child);
  const startedAt = Date.now();
  return {
    description,
    async stop() {
      const ranMs = Date.now() - startedAt;
      const exitedEarly = child.exitCode !== null || child.signalCode !== null;
      await stopOwned(child, "SIGTERM", 3000);
      return {
        tool: "stress-ng",
        args,
        ranMs,
        exitedEarly,
        exitCode: child.exitCode,
        output: output.text().slice(-2000),
      };
    },
  };
}

export function startCpuHogs(stressNgBinary: string | undefined, maxSeconds: number): RunningLoad {
  const hogs = 4 * availableParallelism();
  if (stressNgBinary) {
    return stressNg(
      stressNgBinary,
      ["--cpu", String(hogs), "--timeout", `${maxSeconds}s`],
      `stress-ng --cpu ${hogs} (4 per core)`,
    );
  }
  const load = startCpuLoad(maxSeconds, hogs);
  return {
    description: `${hogs} busy-loop processes (4 per core; stress-ng unavailable)`,
    async stop() {
      await load.stop();
      return { tool: "busy-loop", hogs };
    },
  };
}

export function startForkStorm(
  stressNgBinary: string | undefined,
  maxSeconds: number,
): RunningLoad {
  const cores = availableParallelism();
  const loops: ChildProcess[] = [];
  // Bounded in time (bash's SECONDS) and in count.
  const script = `end=$((SECONDS+${maxSeconds})); n=0; while ((SECONDS<end && n<20000000)); do /bin/true; n=$((n+1)); done; echo "$n"`;
  const outputs: Array<() => string> = [];
  for (let i = 0; i < cores; i += 1) {
    const child = spawnOwned("bash", ["-c", script], { stdio: ["ignore", "pipe", "pipe"] });
    outputs.push(collect(child).text);
    loops.push(child);
  }
  const fork = stressNgBinary
    ? stressNg(stressNgBinary, ["--fork", String(cores), "--timeout", `${maxSeconds}s`], "")
    : undefined;
  return {
    description: `${fork ? `stress-ng --fork ${cores} and ` : ""}${cores} bash loops exec'ing /bin/true`,
    async stop() {
      const forkInfo = await fork?.stop();
      // SIGKILL: bash would otherwise finish the current /bin/true and print a count nobody reads.
      await Promise.all(loops.map((c) => stopOwned(c, "SIGKILL", 1000)));
      return { fork: forkInfo ?? "stress-ng unavailable", execLoops: cores };
    },
  };
}

function memAvailableBytes(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

export function startMemoryPressure(
  stressNgBinary: string | undefined,
  maxSeconds: number,
): RunningLoad {
  const available = memAvailableBytes();
  const perWorkerMiB = Math.max(64, Math.floor((available * 0.25) / 1024 / 1024));
  if (stressNgBinary) {
    const load = stressNg(
      stressNgBinary,
      ["--vm", "2", "--vm-bytes", `${perWorkerMiB}M`, "--timeout", `${maxSeconds}s`],
      `stress-ng --vm 2 --vm-bytes ${perWorkerMiB}M (2 × 25% of MemAvailable ${Math.round(available / 2 ** 20)} MiB)`,
    );
    return {
      description: load.description,
      stop: async () => ({
        ...(await load.stop()),
        memAvailableMiB: Math.round(available / 2 ** 20),
      }),
    };
  }
  // Allocate in 64 MiB buffers, then keep writing every page until the end time.
  const program = `const mib = ${perWorkerMiB}; const end = Date.now() + ${maxSeconds * 1000}; const bufs = []; for (let i = 0; i < mib; i += 64) bufs.push(Buffer.alloc(64 * 1048576)); let x = 0; while (Date.now() < end) { for (const b of bufs) { for (let o = 0; o < b.length; o += 4096) b[o] = x & 255; if (Date.now() >= end) break; } x += 1; }`;
  const workers = [0, 1].map(() =>
    spawnOwned(process.execPath, ["--max-old-space-size=256", "-e", program]),
  );
  return {
    description: `2 Node processes touching ${perWorkerMiB} MiB each (stress-ng unavailable)`,
    async stop() {
      await Promise.all(workers.map((w) => stopOwned(w, "SIGKILL", 1000)));
      return { tool: "node", perWorkerMiB };
    },
  };
}

/** A program started in a namespace that prints one JSON line when its standard input closes. */
function startReporter(
  topology: Topology,
  host: string,
  file: string,
  args: readonly string[],
  description: string,
  input?: Buffer,
): RunningLoad {
  const child = topology.spawn(host, file, args, { stdio: ["pipe", "pipe", "pipe"] });
  const output = collect(child);
  // Written, not ended: closing standard input is the program's stop signal.
  if (input !== undefined) child.stdin?.write(input);
  return {
    description,
    async stop() {
      // A program starved of CPU (realtime agents busy with a flood) may need a while.
      child.stdin?.end();
      let timer: NodeJS.Timeout | undefined;
      const wait = (ms: number) =>
        Promise.race([
          output.exited,
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, ms);
          }),
        ]).finally(() => clearTimeout(timer));
      await wait(5000);
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGTERM");
        } catch {
          // Gone in between.
        }
        await wait(10_000);
      }
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(child.pid, "SIGKILL");
        } catch {
          // Gone in between.
        }
        await output.exited;
      }
      const text = output.text();
      const last = text
        .trim()
        .split("\n")
        .reverse()
        .find((l) => l.startsWith("{"));
      try {
        return last ? (JSON.parse(last) as Record<string, unknown>) : { output: text.slice(-2000) };
      } catch {
        return { output: text.slice(-2000) };
      }
    },
  };
}

export interface UdpFloodOptions {
  readonly cluster: string;
  readonly members: readonly string[];
  readonly targets: readonly { address: string; port: number; to: string }[];
  /** Datagrams per second to each target. */
  readonly pps: number;
  readonly maxSeconds: number;
  /** Spoof this source address (a member's) instead of sending from the host's own. */
  readonly source?: string;
}

/** Local ports the spoofing flooder sends from: the source NAT rule matches them only. */
const spoofPortBase = 40_900;

/**
 * Makes `host` send the UDP datagrams of local ports `ports` (inclusive range) with source
 * address `address`: a source NAT rule in the host's namespace (nftables, its own table), so
 * that an ordinary socket spoofs another host. Linux does not route a datagram from a
 * non-local address bound with ip_nonlocal_bind (that needs IP_TRANSPARENT or a raw socket);
 * NAT after routing does, and the host's ARP requests still carry its own address.
 */
export async function spoofSource(
  topology: Topology,
  host: string,
  address: string,
  ports: readonly [number, number],
): Promise<void> {
  const table = `fipspoof${ports[0]}`;
  const script = [
    `table ip ${table} {`,
    "  chain post {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    `    udp sport ${ports[0]}-${ports[1]} snat to ${address}`,
    "  }",
    "}",
  ].join("\n");
  const result = await topology.exec(host, "sh", ["-c", `printf '%s\\n' "$0" | nft -f -`, script]);
  if (result.exitCode !== 0) throw new Error(`nft in ${host}: ${result.stderr}`);
}

/**
 * Floods floatip's heartbeat port of every target from `host` with the C flooder
 * (native/floatip_udpflood.c): well-formed cluster datagrams made by the real codec — the
 * real cluster name, member ids as sender and the target's as recipient, heartbeat-like
 * payloads — signed with a random key, so that every agent that looks at one must check its
 * MAC to drop it. With `source`, the datagrams leave with that address (a member's) as their
 * source (spoofSource). Up to `pps` per target, for at most `maxSeconds`.
 */
export async function startUdpFlood(
  topology: Topology,
  host: string,
  o: UdpFloodOptions,
): Promise<RunningLoad> {
  const flooder = fileURLToPath(
    new URL("../../native/build/Release/floatip-udpflood", import.meta.url),
  );
  if (!existsSync(flooder)) {
    throw new Error(`${flooder} is missing: run bash scripts/setup.sh (it builds native/)`);
  }
  if (o.source !== undefined) {
    await spoofSource(topology, host, o.source, [
      spoofPortBase,
      spoofPortBase + o.targets.length - 1,
    ]);
  }
  const from = o.source === undefined ? host : `${host}, spoofing ${o.source}`;
  return startReporter(
    topology,
    host,
    flooder,
    [
      "--pps",
      String(o.pps),
      "--seconds",
      String(o.maxSeconds),
      "--max",
      String(Math.ceil(o.pps * o.targets.length * o.maxSeconds)),
    ],
    `${o.pps}/s forged cluster datagrams (bad MAC) to each node's UDP ${o.targets[0]?.port ?? "?"} from ${from}`,
    floodPool(o, o.source === undefined ? undefined : spoofPortBase),
  );
}

/** The flooder's standard input: per target, its address, port, local port and datagrams. */
function floodPool(o: UdpFloodOptions, bindPortBase: number | undefined): Buffer {
  const forgedKey = randomBytes(32);
  const parts: Buffer[] = [u32(o.targets.length)];
  o.targets.forEach((target, k) => {
    const senders = o.members.filter((m) => m !== target.to);
    const datagrams = Array.from({ length: 256 }, (_, i) =>
      encodeDatagram(
        forgedKey,
        {
          cluster: o.cluster,
          from: senders[i % senders.length] ?? "n0",
          to: target.to,
          incarnation: randomInt(1, 2 ** 40),
          seq: i + 1,
          echo: randomInt(1, 2 ** 40),
        },
        {
          type: "heartbeat",
          term: randomInt(1, 1000),
          tableVersion: [randomInt(1, 1000), randomInt(1, 1000)],
          leaseMs: 400,
          members: { [target.to]: "alive" },
        },
      ),
    );
    const address = target.address.split(".").reduce((a, octet) => a * 256 + Number(octet), 0);
    const header = Buffer.alloc(12);
    header.writeUInt32BE(address, 0);
    header.writeUInt16BE(target.port, 4);
    header.writeUInt16BE(bindPortBase === undefined ? 0 : bindPortBase + k, 6);
    header.writeUInt32BE(datagrams.length, 8);
    parts.push(header);
    for (const d of datagrams) {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(d.length);
      parts.push(length, d);
    }
  });
  return Buffer.concat(parts);
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}

export interface VrrpFloodOptions {
  readonly source: string;
  readonly version: 2 | 3;
  readonly routers: readonly [number, string][];
  /** Packets per second in all (multicast: every node receives each one). */
  readonly pps: number;
  readonly maxSeconds: number;
}

export function pythonPath(): string | undefined {
  for (const p of ["/usr/bin/python3", "/usr/local/bin/python3"]) if (existsSync(p)) return p;
  return undefined;
}

/** Floods VRRP (IP protocol 112, 224.0.0.18) from `host` (see vrrp-flooder.ts). */
export function startVrrpFlood(
  topology: Topology,
  host: string,
  python: string,
  o: VrrpFloodOptions,
): RunningLoad {
  const options = { ...o, seconds: o.maxSeconds };
  return startReporter(
    topology,
    host,
    python,
    ["-c", vrrpFlooderProgram, JSON.stringify(options)],
    `${o.pps}/s VRRPv${o.version} adverts (priority 1, valid checksum) to 224.0.0.18 from ${host}`,
  );
}

/** Deletes namespace `name` unless a process still runs in it. */
async function removeIfEmpty(name: string): Promise<void> {
  const pids = await run("ip", ["netns", "pids", name], { timeoutMs: 5000 }).catch(() => undefined);
  if (pids === undefined || pids.stdout.trim() !== "") return;
  await run("ip", ["netns", "del", name], { timeoutMs: 5000 }).catch(() => undefined);
}

async function listNamespaces(): Promise<string[]> {
  const result = await run("ip", ["-json", "netns", "list"], { timeoutMs: 5000 });
  return (JSON.parse(result.stdout.trim() || "[]") as Array<{ name: string }>).map((e) => e.name);
}

/**
 * The namespace test suite of a fresh clone of `repoRoot` (its committed state), with
 * node_modules linked and native/build copied from `repoRoot` (`prepareSuite`), then run
 * (`start`) under `timeout` so that it ends by itself after `maxSeconds`. `stop()` sends SIGTERM to its process group (the tests' own
 * handlers then remove their namespaces and agents), SIGKILL after 15 s, then SIGKILL to any
 * process of its tree seen before the SIGTERM that still runs (agents in their own groups).
 */
export async function prepareSuite(
  repoRoot: string,
): Promise<{ start(maxSeconds: number): Promise<RunningLoad>; discard(): void }> {
  const dir = mkdtempSync(join(tmpdir(), "fipld-suite-"));
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  const unregister = atExit(removeDir);
  const clone = join(dir, "floatip");
  try {
    await run("git", ["clone", "-q", repoRoot, clone], { timeoutMs: 120_000 });
    symlinkSync(join(repoRoot, "node_modules"), join(clone, "node_modules"));
    const build = join(repoRoot, "native", "build");
    if (existsSync(build)) {
      mkdirSync(join(clone, "native"), { recursive: true });
      cpSync(build, join(clone, "native", "build"), { recursive: true });
    }
  } catch (error) {
    removeDir();
    unregister();
    throw error;
  }
  const discard = () => {
    removeDir();
    unregister();
  };
  return { start: (maxSeconds) => startPrepared(clone, maxSeconds, discard), discard };
}

async function startPrepared(
  clone: string,
  maxSeconds: number,
  discard: () => void,
): Promise<RunningLoad> {
  const tmp = join(dirname(clone), "tmp");
  mkdirSync(tmp, { recursive: true });
  const before = new Set(await listNamespaces());
  const child = spawnOwned(
    "timeout",
    [
      "-s",
      "TERM",
      "-k",
      "20",
      String(maxSeconds),
      process.execPath,
      "--test",
      "--test-reporter=tap",
      "--test-concurrency=1",
      "test/netns/**/*.test.ts",
    ],
    // TMPDIR inside the suite's directory: the tests' own temporary directories (which a test
    // ended by a signal leaves behind) go with it.
    { cwd: clone, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, TMPDIR: tmp } },
  );
  const output = collect(child);
  const startedAt = Date.now();
  /**
   * SIGTERM to the test files first, alone: each then removes its namespaces and agents
   * through the topology's signal handler. (SIGTERM to the whole group at once lets the runner
   * end them before they have cleaned up.) Returns them, to wait for.
   */
  const signalTestFiles = (tree: ProcessId[]): ProcessId[] => {
    const testFiles = tree.filter((p, i) => {
      const fields = statFields(p.pid);
      return i >= 2 && fields !== undefined && Number(fields[2]) === child.pid;
    });
    for (const p of testFiles) {
      try {
        process.kill(p.pid, "SIGTERM");
      } catch {
        // Gone in between.
      }
    }
    return testFiles;
  };
  // On SIGINT or an error exit, the same graceful order, synchronously, before the SIGKILLs.
  const unregisterExitStop = beforeExitKill(() => {
    if (child.pid === undefined) return;
    const tree = snapshotTree(child.pid);
    const testFiles = signalTestFiles(tree);
    for (let i = 0; i < 100 && testFiles.some((p) => isAlive(p)); i += 1) sleepSync(100);
    killSnapshot(tree);
  });
  return {
    description: `node --test test/netns/**/*.test.ts in a clone (${clone})`,
    async stop() {
      const ranMs = Date.now() - startedAt;
      unregisterExitStop();
      const tree = child.pid === undefined ? [] : snapshotTree(child.pid);
      const testFiles = signalTestFiles(tree);
      for (let i = 0; i < 150 && testFiles.some((p) => isAlive(p)); i += 1) await sleep(100);
      await stopOwned(child, "SIGTERM", 15_000);
      const stragglers = killSnapshot(tree);
      await sleep(500);
      const text = output.text();
      const ok = (text.match(/^\s*ok \d+/gm) ?? []).length;
      const notOk = (text.match(/^\s*not ok \d+/gm) ?? []).length;
      // Namespaces that appeared while the suite ran and are still there after its test files
      // exited: theirs (one namespace suite runs on a machine at a time), left by a test that
      // the stop cut short. Reported, and removed when no process runs in them any more.
      const leftover = (await listNamespaces().catch(() => [] as string[])).filter(
        (n) => !before.has(n),
      );
      for (const name of leftover) await removeIfEmpty(name);
      discard();
      return {
        ranMs,
        processes: tree.length,
        stragglersKilled: stragglers,
        testsOk: ok,
        testsNotOk: notOk,
        newNamespacesAfterStop: leftover,
        outputTail: text.slice(-1500),
      };
    },
  };
}

export interface CapabilityPlan {
  readonly relayVip: string;
  readonly relayPort: number;
  readonly storageVip: string;
  readonly storagePort: number;
  readonly volumesDir: string;
}

/**
 * floatip's capabilities at their tightest settings: traffic collection every 100 ms (its
 * minimum), a proxy relay on the first VIP with TCP checks every 10 ms (the minimum) of its
 * primary (n2's :8080 service) and standby (n3's), and the storage gateway (file backend, no
 * artificial delay) on the third VIP.
 */
export function capabilitiesYaml(plan: CapabilityPlan, primary: string, standby: string): string {
  mkdirSync(plan.volumesDir, { recursive: true });
  writeFileSync(storageTokenFile(plan), `${storageToken}\n`, { mode: 0o600 });
  return [
    "traffic: { interval: 100ms }",
    "relays:",
    "  - name: web",
    `    listen: ${plan.relayVip}:${plan.relayPort}`,
    "    protocol: http",
    "    mode: proxy",
    `    primary: ${primary}`,
    `    standby: [${standby}]`,
    "    check: { kind: tcp, interval: 10ms, timeout: 50ms, fall: 3, within: 1s, rise: 2 }",
    "    connect_timeout: 200ms",
    "storage:",
    `  vip: ${plan.storageVip}`,
    `  port: ${plan.storagePort}`,
    `  peer_port: ${plan.storagePort + 1}`,
    `  backend: { kind: file, dir: ${plan.volumesDir}, operation_delay: 0ms }`,
    "  replication_timeout: 1s",
    "  retry_delay: 200ms",
    `  clients: [{ name: load, token_file: ${storageTokenFile(plan)}, access: write }]`,
  ].join("\n");
}

/** The storage client token of the capability load (one per run of this process). */
const storageToken = randomBytes(18).toString("base64url");

function storageTokenFile(plan: CapabilityPlan): string {
  return `${plan.volumesDir}.token`;
}

/** Polls `url` with curl from the client until the body matches, or throws. */
async function waitServed(
  cluster: LiveCluster,
  url: string,
  match: RegExp,
  timeoutMs: number,
  headers: readonly string[] = [],
) {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const r = await cluster.topology
      .exec("client", "curl", ["-s", "-m", "1", ...headers.flatMap((h) => ["-H", h]), url], 3000)
      .catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? "" }));
    last = r.stdout;
    if (match.test(r.stdout)) return;
    await sleep(200);
  }
  throw new Error(
    `${url} did not answer as expected within ${timeoutMs} ms (last: ${last.slice(0, 200)})`,
  );
}

const storageStreamProgram = String.raw`
const [url, seconds, maxOps, tag, token] = process.argv.slice(1);
const end = Date.now() + Number(seconds) * 1000;
let n = 0, ok = 0, failed = 0, errors = 0, stop = false;
const latencies = [];
const request = async (method, path, body) => {
  const r = await fetch(url + path, {
    method,
    headers: { authorization: "Bearer " + token, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  return { status: r.status, body: await r.json() };
};
const good = (a) => a.status === 200 && a.body?.request?.state?.state === "succeeded";
const worker = async (w) => {
  while (!stop && Date.now() < end && n < Number(maxOps)) {
    const i = n++;
    const name = tag + "-" + w + "-" + i;
    const t = performance.now();
    try {
      const c = await request("POST", "/v1/volumes?request_id=" + name + "-c&wait=5s", { name, sizeBytes: 1048576 });
      const d = await request("DELETE", "/v1/volumes/" + name + "?request_id=" + name + "-d&wait=5s");
      if (good(c) && good(d)) ok++; else failed++;
      latencies.push(performance.now() - t);
    } catch {
      errors++;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
};
let printed = false;
const finish = () => {
  if (printed) return;
  printed = true;
  latencies.sort((a, b) => a - b);
  const p = (q) => latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]) : null;
  process.stdout.write(JSON.stringify({ pairs: ok, failed, errors, p50Ms: p(0.5), p99Ms: p(0.99) }) + "\n", () => process.exit(0));
};
process.stdin.on("end", () => { stop = true; });
process.stdin.resume();
setTimeout(finish, Number(seconds) * 1000 + 15000).unref();
Promise.all([worker(0), worker(1)]).then(finish);
`;

/** Waits until the storage gateway and the relay answer through their VIPs (or throws). */
export async function waitCapabilities(cluster: LiveCluster, plan: CapabilityPlan): Promise<void> {
  await waitServed(
    cluster,
    `http://${plan.storageVip}:${plan.storagePort}/v1/health`,
    /"ok":true/,
    20_000,
    [`Authorization: Bearer ${storageToken}`],
  );
  await waitServed(cluster, `http://${plan.relayVip}:${plan.relayPort}/`, /^n\d$/, 20_000);
}

/** wrk through the relay and a create+delete stream through the storage VIP, from the client. */
export function startCapabilityLoad(
  cluster: LiveCluster,
  plan: CapabilityPlan,
  wrk: string | undefined,
  maxSeconds: number,
): RunningLoad {
  const relayUrl = `http://${plan.relayVip}:${plan.relayPort}/`;
  const storageUrl = `http://${plan.storageVip}:${plan.storagePort}`;
  const parts: RunningLoad[] = [];
  let wrkChild: ChildProcess | undefined;
  let wrkOutput: { text(): string; exited: Promise<void> } | undefined;
  if (wrk) {
    wrkChild = cluster.topology.spawn(
      "client",
      wrk,
      ["-t1", "-c8", `-d${maxSeconds}s`, "--timeout", "2s", relayUrl],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    wrkOutput = collect(wrkChild);
  }
  parts.push(
    startReporter(
      cluster.topology,
      "client",
      process.execPath,
      [
        "-e",
        storageStreamProgram,
        storageUrl,
        String(maxSeconds),
        "1000000",
        `ld${Date.now() % 100000}`,
        storageToken,
      ],
      "",
    ),
  );
  return {
    description: `traffic every 100 ms; ${wrk ? "wrk -t1 -c8" : "(wrk unavailable)"} through the proxy relay at ${relayUrl} (checks every 10 ms); 2 parallel create+delete loops through ${storageUrl}`,
    async stop() {
      let relay: Record<string, unknown> = { wrk: "unavailable" };
      if (wrkChild && wrkOutput) {
        // wrk prints its summary on SIGINT.
        if (wrkChild.exitCode === null && wrkChild.pid !== undefined)
          process.kill(wrkChild.pid, "SIGINT");
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          wrkOutput.exited,
          new Promise<void>((r) => {
            timer = setTimeout(r, 5000);
          }),
        ]);
        clearTimeout(timer);
        if (
          wrkChild.exitCode === null &&
          wrkChild.signalCode === null &&
          wrkChild.pid !== undefined
        ) {
          process.kill(wrkChild.pid, "SIGKILL");
        }
        try {
          relay = { ...parseWrk(wrkOutput.text()) };
        } catch {
          relay = { wrkOutput: wrkOutput.text().slice(-1500) };
        }
      }
      const storage = await parts[0]!.stop();
      return { relay, storage };
    },
  };
}
