/**
 * One-shot health probes: a single look at a link, a TCP port, an HTTP endpoint, a command or
 * a plug-in kind (the storage gateway registers "rbd"). Used by the node's own check runner
 * (S2: a node that finds itself faulty releases its VIPs) and by the relay for its backends
 * (S4: port or service status).
 *
 * Contract: `probe()` never rejects and always settles within `spec.timeoutMs` (plus event-loop
 * latency): a probe that cannot finish in time is an ordinary "not ok" result, never a hang.
 * Callers decide what a failure means; flap damping lives in the runner, not here.
 */

import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { ExecError, run } from "../adapters/exec.ts";
import { siblingModule } from "../adapters/module-path.ts";
import { httpModule, httpsModule } from "../adapters/node-http.ts";
import type { HealthCheckSpec } from "../config/types.ts";

export interface ProbeResult {
  readonly ok: boolean;
  /** One line for logs and the status API: why the probe failed, or what it saw. */
  readonly detail: string;
  readonly durationMs: number;
}

export type ProbeSpec = HealthCheckSpec;

export interface ProbeOptions {
  /** Aborting settles the probe at once as "not ok" with detail "aborted". */
  readonly signal?: AbortSignal;
  /** Probe from inside this network namespace (tcp/http run a short-lived helper process). */
  readonly netns?: string;
}

type Outcome = { readonly ok: boolean; readonly detail: string };
// biome-ignore lint/suspicious/noExplicitAny: each plug-in receives the spec of its own kind.
type ProbeFn = (spec: any, signal: AbortSignal) => Promise<ProbeResult>;

/** Most body bytes an HTTP probe reads: enough for an error page, never a download. */
const httpBodyLimitBytes = 4 * 1024;

const plugins = new Map<string, ProbeFn>();

/**
 * Registers the probe for `kind` (called once at start by the module that owns the kind, e.g.
 * the storage gateway for "rbd"). A later registration replaces an earlier one. Plug-ins get an
 * AbortSignal that fires on timeout or cancel; their `durationMs` is replaced by the measured one.
 */
export function registerProbeKind(kind: string, fn: ProbeFn): void {
  plugins.set(kind, fn);
}

export async function probe(spec: ProbeSpec, options: ProbeOptions = {}): Promise<ProbeResult> {
  const startedMs = performance.now();
  const pressureAtStartUs = cpuPressureStallUs();
  const finish = (outcome: Outcome): ProbeResult => {
    const durationMs = performance.now() - startedMs;
    let detail = outcome.detail;
    if (!outcome.ok && detail.startsWith("timed out")) {
      detail += starvationNote(pressureAtStartUs, cpuPressureStallUs(), durationMs);
    }
    return { ok: outcome.ok, detail, durationMs };
  };
  if (!(Number.isFinite(spec.timeoutMs) && spec.timeoutMs > 0)) {
    return finish({ ok: false, detail: `invalid timeoutMs ${spec.timeoutMs}` });
  }
  if (options.signal?.aborted) return finish({ ok: false, detail: "aborted" });

  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onOuterAbort: (() => void) | undefined;
  // Settles when the deadline passes or the caller aborts, whichever comes first.
  const interrupted = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => {
      resolve({ ok: false, detail: `timed out after ${spec.timeoutMs} ms` });
      controller.abort();
    }, spec.timeoutMs);
    onOuterAbort = () => {
      resolve({ ok: false, detail: "aborted" });
      controller.abort();
    };
    options.signal?.addEventListener("abort", onOuterAbort, { once: true });
  });
  try {
    const attempt = runKind(spec, controller.signal, options.netns).catch(
      (error: unknown): Outcome => ({ ok: false, detail: describeError(error) }),
    );
    return finish(await Promise.race([attempt, interrupted]));
  } finally {
    clearTimeout(timer);
    if (onOuterAbort) options.signal?.removeEventListener("abort", onOuterAbort);
    // Anything still running (a socket, a plug-in) is told to give up.
    controller.abort();
  }
}

/**
 * Microseconds during which some runnable task waited for a CPU, machine-wide (Linux PSI,
 * `/proc/pressure/cpu`, "some" total); undefined where the kernel has no PSI.
 */
export function cpuPressureStallUs(): number | undefined {
  try {
    const match = /^some .*total=(\d+)/m.exec(readFileSync("/proc/pressure/cpu", "utf8"));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What a timed-out probe adds to its detail when the machine was starved of CPU while it ran:
 * the share of the probe's time that runnable tasks spent waiting for a CPU. A timeout under
 * heavy pressure usually means the timeout is too tight for a busy machine, not that the
 * service hung; the operator reads that in the log line instead of guessing.
 */
export function starvationNote(
  startUs: number | undefined,
  endUs: number | undefined,
  durationMs: number,
): string {
  if (startUs === undefined || endUs === undefined || durationMs <= 0) return "";
  const share = Math.min(1, (endUs - startUs) / 1000 / durationMs);
  if (share < 0.25) return "";
  return ` (tasks waited for a CPU ${Math.round(share * 100)} % of that time: the machine was busy; consider a longer timeout)`;
}

function runKind(spec: ProbeSpec, signal: AbortSignal, netns?: string): Promise<Outcome> {
  const plugin = plugins.get(spec.kind);
  if (plugin) return plugin(spec, signal);
  switch (spec.kind) {
    case "link":
      return netns
        ? probeLinkInNetns(spec.interface, netns, spec.timeoutMs)
        : probeLink(spec.interface);
    case "tcp":
      return netns ? probeViaHelper(spec, netns) : probeTcp(spec.host, spec.port, signal);
    case "http":
      return netns ? probeViaHelper(spec, netns) : probeHttp(spec.url, spec.expectStatus, signal);
    case "exec":
      return probeExec(spec.command, spec.timeoutMs, netns);
    case "rbd":
      return Promise.resolve({ ok: false, detail: "no rbd probe registered" });
    default: {
      const kind = (spec as { kind: unknown }).kind;
      return Promise.resolve({ ok: false, detail: `no ${String(kind)} probe registered` });
    }
  }
}

// ---- link ----------------------------------------------------------------------------------

/** Interface names as the kernel allows them; also keeps the sysfs path inside its directory. */
const interfaceNamePattern = /^[A-Za-z0-9_.:@-]{1,15}$/;

function checkInterfaceName(name: string): string | undefined {
  if (!interfaceNamePattern.test(name) || name === "." || name === "..") {
    return `invalid interface name "${name}"`;
  }
  return undefined;
}

async function probeLink(name: string): Promise<Outcome> {
  const invalid = checkInterfaceName(name);
  if (invalid) return { ok: false, detail: invalid };
  const base = `/sys/class/net/${name}`;
  let operstate: string;
  try {
    operstate = (await readFile(`${base}/operstate`, "utf8")).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      return { ok: false, detail: `interface ${name} does not exist` };
    }
    return { ok: false, detail: `interface ${name}: ${describeError(error)}` };
  }
  let carrier = false;
  try {
    carrier = (await readFile(`${base}/carrier`, "utf8")).trim() === "1";
  } catch {
    // The kernel refuses to read `carrier` (EINVAL) while the interface is administratively down.
  }
  return linkOutcome(name, operstate, carrier);
}

/**
 * Loads, now, the modules the probes of `checks` will need (node:http or node:https for HTTP
 * checks probed from this process). Loading node:http takes tens of milliseconds (52 ms
 * measured on this project's test machines): done when the checks are set up, before the
 * control loop runs, not on its loop at the first probe. A reload that adds the first HTTP
 * check pays it once, then.
 */
export function loadProbeModules(checks: readonly HealthCheckSpec[], netns?: string): void {
  if (netns !== undefined) return; // probed through the helper process
  for (const check of checks) {
    if (check.kind !== "http") continue;
    // The probe's own reading of the scheme (URL.protocol is lower-case); an invalid URL is
    // the probe's to report.
    let protocol: string;
    try {
      protocol = new URL(check.url).protocol;
    } catch {
      continue;
    }
    httpClientFor(protocol);
  }
}

/** The client module for a URL's `protocol` (loaded on first use); null for other schemes. */
function httpClientFor(
  protocol: string,
): typeof import("node:http") | typeof import("node:https") | null {
  if (protocol === "https:") return httpsModule();
  return protocol === "http:" ? httpModule() : null;
}

/** Loopback and some virtual devices report operstate "unknown" but do carry traffic. */
function linkOutcome(name: string, operstate: string, carrier: boolean): Outcome {
  const ok = carrier && (operstate === "up" || operstate === "unknown");
  return {
    ok,
    detail: `interface ${name} operstate ${operstate}, carrier ${carrier ? "on" : "off"}`,
  };
}

async function probeLinkInNetns(name: string, netns: string, timeoutMs: number): Promise<Outcome> {
  const invalid = checkInterfaceName(name);
  if (invalid) return { ok: false, detail: invalid };
  let stdout: string;
  try {
    ({ stdout } = await run("ip", ["-n", netns, "-json", "link", "show", "dev", name], {
      timeoutMs,
    }));
  } catch (error) {
    if (error instanceof ExecError && /does not exist/i.test(error.stderr)) {
      return { ok: false, detail: `interface ${name} does not exist in netns ${netns}` };
    }
    return { ok: false, detail: describeError(error) };
  }
  const links = JSON.parse(stdout) as Array<{ operstate?: string; flags?: string[] }>;
  const link = links[0];
  if (!link) return { ok: false, detail: `interface ${name} does not exist in netns ${netns}` };
  const operstate = (link.operstate ?? "unknown").toLowerCase();
  return linkOutcome(name, operstate, link.flags?.includes("LOWER_UP") ?? false);
}

// ---- tcp -----------------------------------------------------------------------------------

function probeTcp(host: string, port: number, signal: AbortSignal): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const settle = (outcome: Outcome) => {
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      resolve(outcome);
    };
    const onAbort = () => settle({ ok: false, detail: "aborted" });
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => settle({ ok: true, detail: `connected to ${host}:${port}` }));
    socket.once("error", (error) =>
      settle({ ok: false, detail: `tcp ${host}:${port}: ${describeError(error)}` }),
    );
  });
}

// ---- http ----------------------------------------------------------------------------------

function probeHttp(url: string, expectStatus: number, signal: AbortSignal): Promise<Outcome> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return Promise.resolve({ ok: false, detail: `invalid url "${url}"` });
  }
  const client = httpClientFor(parsed.protocol);
  if (!client) return Promise.resolve({ ok: false, detail: `unsupported url scheme in "${url}"` });
  return new Promise((resolve) => {
    let settled = false;
    // No keep-alive agent: a probe must not leave pooled sockets behind.
    const request = client.get(parsed, { agent: false, signal }, (response) => {
      const status = response.statusCode ?? 0;
      let bodyBytes = 0;
      const done = () => {
        const ok = status === expectStatus;
        settle({ ok, detail: ok ? `HTTP ${status}` : `HTTP ${status}, expected ${expectStatus}` });
      };
      response.on("data", (chunk: Buffer) => {
        bodyBytes += chunk.length;
        if (bodyBytes >= httpBodyLimitBytes) done();
      });
      response.once("end", done);
      response.once("error", done);
    });
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      request.destroy();
      resolve(outcome);
    };
    request.once("error", (error) =>
      settle({ ok: false, detail: `GET ${url}: ${describeError(error)}` }),
    );
  });
}

// ---- exec ----------------------------------------------------------------------------------

async function probeExec(
  command: readonly string[],
  timeoutMs: number,
  netns?: string,
): Promise<Outcome> {
  const [file, ...args] = command;
  if (!file) return { ok: false, detail: "empty command" };
  try {
    const result = await run(file, args, { timeoutMs, ...(netns ? { netns } : {}) });
    return { ok: true, detail: lastLine(result.stderr) || "exit 0" };
  } catch (error) {
    if (!(error instanceof ExecError)) return { ok: false, detail: describeError(error) };
    if (error.code === "EXEC_TIMEOUT")
      return { ok: false, detail: `timed out after ${timeoutMs} ms` };
    if (error.code === "EXEC_NOT_FOUND") return { ok: false, detail: `command not found: ${file}` };
    return { ok: false, detail: lastLine(error.stderr) || `exit ${error.exitCode ?? "by signal"}` };
  }
}

function lastLine(text: string): string {
  const lines = text.trim().split("\n");
  return (lines[lines.length - 1] ?? "").trim();
}

// ---- probes from inside a network namespace --------------------------------------------------

const helperPath = fileURLToPath(siblingModule(import.meta.url, "probe-in-netns"));

/**
 * A process cannot open a socket in another namespace without switching threads into it, so a
 * tcp/http probe for a namespace runs in a helper process started with `ip netns exec`. Its
 * start-up time counts against the probe's timeout.
 */
async function probeViaHelper(spec: ProbeSpec, netns: string): Promise<Outcome> {
  try {
    const { stdout } = await run("ip", ["netns", "exec", netns, process.execPath, helperPath], {
      timeoutMs: spec.timeoutMs,
      input: JSON.stringify(spec),
    });
    const result = JSON.parse(stdout) as Outcome;
    return { ok: result.ok === true, detail: `${String(result.detail)} (netns ${netns})` };
  } catch (error) {
    return { ok: false, detail: describeError(error) };
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code && !error.message.includes(code) ? `${code} ${error.message}` : error.message;
  }
  return String(error);
}
