/**
 * What the relay benchmark drives: wrk as the load tool, HAProxy as the incumbent relay and as
 * the backends' static responder (a C server, so that the backend is not what limits the
 * figures), and floatip's own `relay run`. Every process runs inside a namespace of a bench
 * topology and is started through `topology.spawn`, so `topology.destroy()` ends it by PID.
 */
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureDebianPackage } from "../../src/lab/debian.ts";
import type { Topology } from "../../src/lab/topology.ts";

const tools = { wrk: "/usr/bin/wrk", haproxy: "/usr/sbin/haproxy" } as const;

/** Installs wrk and HAProxy from the Debian packages when missing; returns what is missing after. */
export async function ensureRelayTools(): Promise<string[]> {
  const missing: string[] = [];
  for (const [name, path] of Object.entries(tools)) {
    if (!(await ensureDebianPackage(name, [path]))) missing.push(name);
  }
  return missing;
}

/** A process started in a namespace, with a promise of its exit. */
export interface Started {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  /** SIGKILL, resolved once the process is gone (its sockets are closed then). */
  kill(): Promise<void>;
  /** The first 8 KiB the process wrote to standard error (for failure messages). */
  stderr(): string;
}

export function startIn(
  topology: Topology,
  host: string,
  file: string,
  args: readonly string[],
): Started {
  const child = topology.spawn(host, file, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => {
    if (stderr.length < 8192) stderr += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  return {
    child,
    exited,
    async kill() {
      if (!gone && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
      await exited;
    },
    stderr: () => stderr,
  };
}

/** A backend answering every HTTP request with `200 <name>` (HAProxy `http-request return`). */
export function startResponder(
  topology: Topology,
  dir: string,
  host: string,
  port: number,
): Started {
  const path = join(dir, `responder-${host}.cfg`);
  writeFileSync(
    path,
    `global
  maxconn 4096
  nbthread 1
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
frontend answer
  bind 0.0.0.0:${port}
  http-request return status 200 content-type text/plain string "${host}"
`,
  );
  return startIn(topology, host, tools.haproxy, ["-db", "-f", path]);
}

export interface FailoverRelayTimers {
  readonly checkIntervalMs: number;
  readonly fall: number;
  readonly rise: number;
  readonly connectTimeoutMs: number;
}

/**
 * HAProxy as a primary/standby relay, its idiomatic way: the standby is a `backup` server,
 * TCP checks at the same interval, fall and rise as floatip's, and a failed connect redispatched
 * (`retries 1`, `option redispatch 1`). Layer 4 (`mode tcp`) like floatip's proxy, one thread
 * like floatip's one event loop.
 */
export function startHaproxyRelay(
  topology: Topology,
  dir: string,
  host: string,
  listen: string,
  primary: string,
  standby: string,
  timers: FailoverRelayTimers,
): Started {
  const path = join(dir, "haproxy-relay.cfg");
  const check = `check inter ${timers.checkIntervalMs} fall ${timers.fall} rise ${timers.rise}`;
  writeFileSync(
    path,
    `global
  maxconn 4096
  nbthread 1
defaults
  mode tcp
  timeout connect ${timers.connectTimeoutMs}ms
  timeout client 30s
  timeout server 30s
  retries 1
  option redispatch 1
listen relay
  bind ${listen}
  server primary ${primary} ${check}
  server standby ${standby} ${check} backup
`,
  );
  return startIn(topology, host, tools.haproxy, ["-db", "-f", path]);
}

export interface WrkResult {
  readonly requestsPerSecond: number;
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
  /** Socket errors (connect, read, write, timeout) plus non-2xx/3xx answers. */
  readonly errors: number;
}

/** Runs wrk from `host` for `seconds` with `connections` kept-alive connections on one thread. */
export async function runWrk(
  topology: Topology,
  host: string,
  url: string,
  seconds: number,
  connections: number,
): Promise<WrkResult> {
  const { stdout } = await topology.exec(
    host,
    tools.wrk,
    ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "2s", "--latency", url],
    (seconds + 15) * 1000,
  );
  return parseWrk(stdout);
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  if (unit === "us") return n / 1000;
  if (unit === "s") return n * 1000;
  if (unit === "m") return n * 60_000;
  return n;
}

export function parseWrk(text: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!rps) throw new Error(`wrk printed no Requests/sec:\n${text}`);
  const percentile = (p: number) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, "m").exec(text);
    return m ? toMs(m[1]!, m[2]!) : undefined;
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const errors =
    (socket ? socket.slice(1, 5).reduce((sum, v) => sum + Number(v), 0) : 0) +
    (non2xx ? Number(non2xx[1]) : 0);
  return {
    requestsPerSecond: Number(rps[1]),
    p50Ms: percentile(50),
    p99Ms: percentile(99),
    errors,
  };
}
