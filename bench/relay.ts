/**
 * The relay (S4) against HAProxy, in namespaces: client -> relay -> backends b1 (primary) and
 * b2 (standby), all on one bridge. The backends are HAProxy static responders answering
 * `200 b1` / `200 b2`.
 *
 * 1. Throughput and latency: wrk (one thread, `--connections` kept-alive connections,
 *    `--seconds` each) against, in this order: the primary directly, floatip `proxy`
 *    (userspace), floatip `nat` (nftables DNAT with masquerade), HAProxy (`mode tcp`, primary
 *    + `backup` server). Requests/s, p50 and p99 from wrk's latency distribution.
 * 2. Switch-over: a client sends a fresh-connection request every 5 ms (1 s timeout); after
 *    1 s the primary backend is killed (SIGKILL), the loop goes on for 2 s. Errors = failed
 *    requests of the trial; error window = first to last failed request (send times);
 *    switch = kill -> first answer from the standby. floatip and HAProxy check every 100 ms
 *    (TCP connect, fall 2, rise 2); the primary is restarted and failed back between trials.
 *
 * Both floatip relays run in one `floatip relay run` process in the relay namespace.
 * Run: npm run bench:relay -- [--seconds 5] [--connections 16] [--trials 3] [--out FILE]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTopology, type Topology } from "../src/lab/topology.ts";
import { positiveInteger, readOptions, sleep } from "./lib/args.ts";
import { printHeader } from "./lib/machine.ts";
import { now, type ProbeRecord, startProber } from "./lib/prober.ts";
import {
  ensureRelayTools,
  type FailoverRelayTimers,
  runWrk,
  type Started,
  startHaproxyRelay,
  startIn,
  startResponder,
  type WrkResult,
} from "./lib/relay-tools.ts";
import { writeResult } from "./lib/results.ts";
import { formatTable, ms, percentile } from "./lib/stats.ts";

const usage = "usage: bench/relay.ts [--seconds 5] [--connections 16] [--trials 3] [--out FILE]";
const options = readOptions(usage, {
  seconds: { default: "5" },
  connections: { default: "16" },
  trials: { default: "3" },
  out: { default: "" },
});
const seconds = positiveInteger("seconds", options.seconds!, usage);
const connections = positiveInteger("connections", options.connections!, usage);
const trials = positiveInteger("trials", options.trials!, usage);
if (seconds > 120 || connections > 1000 || trials > 50) {
  console.error(`at most --seconds 120, --connections 1000, --trials 50\n${usage}`);
  process.exit(2);
}

const cliMain = join(import.meta.dirname, "..", "src", "cli", "main.ts");
const backendPort = 8081;
const ports = { proxy: 9000, nat: 9001, haproxy: 9002 } as const;
const timers: FailoverRelayTimers = {
  checkIntervalMs: 100,
  fall: 2,
  rise: 2,
  connectTimeoutMs: 200,
};

type PathName = "direct" | "floatip-proxy" | "floatip-nat" | "haproxy";
type SwitchName = "floatip-proxy" | "floatip-nat" | "haproxy";

interface SwitchTrial {
  readonly errors: number;
  readonly errorWindowMs: number;
  readonly switchMs: number | undefined;
  readonly requests: number;
}

function floatipConfig(relay: string, b1: string, b2: string): string {
  const common = (name: string, port: number, mode: string) => `  - name: ${name}
    listen: ${relay}:${port}
    protocol: tcp
    mode: ${mode}
    primary: ${b1}:${backendPort}
    standby: [${b2}:${backendPort}]
    check: { kind: tcp, interval: ${timers.checkIntervalMs}ms, timeout: ${timers.checkIntervalMs}ms, fall: ${timers.fall}, within: 1s, rise: ${timers.rise} }
    connect_timeout: ${timers.connectTimeoutMs}ms
    failback: immediate
`;
  return `relays:\n${common("bench-proxy", ports.proxy, "proxy")}${common("bench-nat", ports.nat, "nat")}`;
}

/** Requests until `count` answers in a row came from `who` (bounded by `timeoutMs`). */
async function waitServedBy(
  topology: Topology,
  address: string,
  port: number,
  who: string,
  timeoutMs: number,
): Promise<boolean> {
  const prober = startProber(topology, {
    host: "client",
    vip: address,
    port,
    intervalMs: 20,
    timeoutMs: 500,
    maxCount: Math.ceil(timeoutMs / 20),
    maxMs: timeoutMs,
  });
  const ok = await prober.until(
    (r) => r.length >= 10 && r.slice(-10).every((x) => x.who === who),
    timeoutMs,
  );
  await prober.stop();
  return ok;
}

function measureSwitch(records: readonly ProbeRecord[], killedAt: number): SwitchTrial {
  const sorted = [...records].sort((a, b) => a.sentAt - b.sentAt);
  const failed = sorted.filter((r) => r.who === null);
  const firstStandby = sorted.find((r) => r.sentAt >= killedAt && r.who === "b2");
  return {
    errors: failed.length,
    errorWindowMs: failed.length === 0 ? 0 : failed.at(-1)!.sentAt - failed[0]!.sentAt,
    switchMs: firstStandby ? firstStandby.sentAt - killedAt : undefined,
    requests: sorted.length,
  };
}

async function benchmark(): Promise<void> {
  const machine = printHeader("relay: floatip proxy / nat against HAProxy");
  const missing = await ensureRelayTools();
  if (missing.length > 0) {
    console.error(`missing ${missing.join(", ")}: cannot run the relay benchmark`);
    process.exit(1);
  }
  const topology = await createTopology({
    prefix: "fiprb-",
    hosts: ["client", "relay", "b1", "b2"],
  });
  const dir = mkdtempSync(join(tmpdir(), "fiprb-"));
  const address = (host: string) => topology.host(host).address;
  const relay = address("relay");
  const b1 = address("b1");
  const b2 = address("b2");
  let primary: Started | undefined;
  try {
    await topology.exec("relay", "sysctl", ["-w", "net.ipv4.ip_forward=1"]);
    primary = startResponder(topology, dir, "b1", backendPort);
    startResponder(topology, dir, "b2", backendPort);
    const configPath = join(dir, "relays.yaml");
    writeFileSync(configPath, floatipConfig(relay, b1, b2));
    const floatip = startIn(topology, "relay", process.execPath, [
      cliMain,
      "relay",
      "run",
      "--config",
      configPath,
      "--status",
      "off",
    ]);
    const haproxy = startHaproxyRelay(
      topology,
      dir,
      "relay",
      `${relay}:${ports.haproxy}`,
      `${b1}:${backendPort}`,
      `${b2}:${backendPort}`,
      timers,
    );
    const targets: [PathName, string, number][] = [
      ["direct", b1, backendPort],
      ["floatip-proxy", relay, ports.proxy],
      ["floatip-nat", relay, ports.nat],
      ["haproxy", relay, ports.haproxy],
    ];
    for (const [name, host, port] of targets) {
      if (!(await waitServedBy(topology, host, port, "b1", 15_000))) {
        throw new Error(
          `${name} (${host}:${port}) does not serve b1; floatip: ${floatip.stderr() || "running"}; haproxy: ${haproxy.stderr() || "running"}`,
        );
      }
    }

    console.log(`throughput: wrk, 1 thread, ${connections} connections, ${seconds} s each`);
    const throughput = new Map<PathName, WrkResult>();
    for (const [name, host, port] of targets) {
      throughput.set(
        name,
        await runWrk(topology, "client", `http://${host}:${port}/`, seconds, connections),
      );
    }
    const direct = throughput.get("direct")!;
    const ratio = (a: number | undefined, b: number | undefined) =>
      a === undefined || b === undefined || b === 0 ? "-" : (a / b).toFixed(2);
    const rows = [...throughput].map(([name, r]) => [
      name,
      r.requestsPerSecond.toFixed(0),
      ms(r.p50Ms),
      ms(r.p99Ms),
      String(r.errors),
      ratio(r.requestsPerSecond, direct.requestsPerSecond),
    ]);
    console.log(
      formatTable(["path", "req/s", "p50 ms", "p99 ms", "errors", "req/s vs direct"], rows),
    );
    const proxy = throughput.get("floatip-proxy")!;
    const nat = throughput.get("floatip-nat")!;
    const ha = throughput.get("haproxy")!;
    const ratios = {
      natOverDirectRequests: Number(ratio(nat.requestsPerSecond, direct.requestsPerSecond)),
      proxyOverHaproxyRequests: Number(ratio(proxy.requestsPerSecond, ha.requestsPerSecond)),
      proxyOverHaproxyP99: Number(ratio(proxy.p99Ms, ha.p99Ms)),
      natOverHaproxyRequests: Number(ratio(nat.requestsPerSecond, ha.requestsPerSecond)),
    };
    console.log(
      `ratios: nat/direct req/s ${ratios.natOverDirectRequests}, proxy/HAProxy req/s ${ratios.proxyOverHaproxyRequests}, proxy/HAProxy p99 ${ratios.proxyOverHaproxyP99}`,
    );
    console.log("");

    console.log(
      `switch-over: primary killed, client every 5 ms, checks every ${timers.checkIntervalMs} ms (fall ${timers.fall}, rise ${timers.rise}), ${trials} trial(s) each`,
    );
    const switchTargets: [SwitchName, number][] = [
      ["floatip-proxy", ports.proxy],
      ["floatip-nat", ports.nat],
      ["haproxy", ports.haproxy],
    ];
    const switches = new Map<SwitchName, SwitchTrial[]>(switchTargets.map(([n]) => [n, []]));
    // Contenders alternate trial by trial, so that drift of the machine hits them alike.
    for (let trial = 0; trial < trials; trial += 1) {
      for (const [name, port] of switchTargets) {
        if (!primary || primary.child.exitCode !== null || primary.child.signalCode !== null)
          primary = startResponder(topology, dir, "b1", backendPort);
        if (!(await waitServedBy(topology, relay, port, "b1", 10_000)))
          throw new Error(`${name} did not fail back to b1 before trial ${trial + 1}`);
        const prober = startProber(topology, {
          host: "client",
          vip: relay,
          port,
          intervalMs: 5,
          timeoutMs: 1000,
          maxCount: 1000,
          maxMs: 4000,
        });
        await sleep(1000);
        const killedAt = now();
        await primary.kill();
        await sleep(2000);
        await prober.stop();
        switches.get(name)!.push(measureSwitch(prober.records, killedAt));
      }
    }
    const median = (values: (number | undefined)[]) =>
      percentile(
        values.filter((v): v is number => v !== undefined),
        50,
      );
    const switchRows = [...switches].map(([name, list]) => [
      name,
      String(list.length),
      String(list.reduce((s, t) => s + t.errors, 0)),
      String(median(list.map((t) => t.errors)) ?? "-"),
      ms(median(list.map((t) => t.errorWindowMs))),
      ms(Math.max(...list.map((t) => t.errorWindowMs))),
      ms(median(list.map((t) => t.switchMs))),
    ]);
    console.log(
      formatTable(
        [
          "relay",
          "trials",
          "errors",
          "errors p50",
          "window p50 ms",
          "window max ms",
          "switch p50 ms",
        ],
        switchRows,
      ),
    );
    const path = writeResult(
      "relay",
      {
        machine,
        options: { seconds, connections, trials, timers },
        throughput: Object.fromEntries(throughput),
        ratios,
        switchOver: Object.fromEntries(switches),
      },
      options.out || undefined,
    );
    console.log(`\nresults: ${path}`);
    await floatip.kill();
  } finally {
    await topology.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await benchmark();
