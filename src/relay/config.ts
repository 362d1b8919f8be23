/**
 * The `relays:` section of the cluster YAML (S4). The cluster loader passes it through
 * untouched; `parseRelays()` validates it once at start, reports every problem at once with
 * its key path and a fix, and returns frozen specs. Unknown keys are rejected.
 *
 *   relays:
 *     - name: web
 *       listen: 198.18.0.100:80
 *       protocol: tcp            # tcp | http (http: 503 JSON when no backend is up)
 *       mode: proxy              # proxy (userspace) | nat (nftables DNAT)
 *       primary: 198.18.1.11:8080
 *       standby: [198.18.1.12:8080]
 *       check: { kind: http, path: /health, expect_status: 200, interval: 100ms,
 *                timeout: 300ms, fall: 3, within: 1s, rise: 2 }
 *       connect_timeout: 200ms
 *       idle_timeout: 5m
 *       request_timeout: 10s     # http: first bytes within this, else 408 (0 = off)
 *       failback: immediate      # immediate | never | "after 10s"
 *       close_on_backend_down: true
 *       close_standby_sessions_on_failback: false
 *       max_connections: 10000
 *       max_connections_per_source: 256   # 0 = no per-source limit (nat: counted by the kernel)
 *       nat_masquerade: true     # nat mode: source-NAT forwarded connections to the relay
 *
 * In `nat` mode the kernel forwards packets and cannot write an HTTP answer, so with no
 * backend up new connections get a TCP reset whatever the protocol.
 */
import { parseDuration } from "../config/duration.ts";
import { parsePort, splitHostPort } from "../config/host-port.ts";
import { hostPort, ipv6Text, ipv6Value } from "../config/ipv6.ts";
import type { RelayFailback } from "../core/relay/relay-machine.ts";

export interface RelayConfigProblem {
  /** Key path, e.g. "relays[0].check.interval". */
  readonly path: string;
  readonly message: string;
  /** What to change, in one sentence. */
  readonly fix: string;
}

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export type RelayCheck =
  | (RelayCheckCommon & { readonly kind: "tcp" })
  | (RelayCheckCommon & {
      readonly kind: "http";
      readonly path: string;
      readonly expectStatus: number;
    })
  /** `{host}` and `{port}` in the arguments are replaced by the backend's address. */
  | (RelayCheckCommon & { readonly kind: "exec"; readonly command: readonly string[] });

export interface RelayCheckCommon {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** M: anomalies within one `withinMs` unit of time that declare a backend down. */
  readonly fall: number;
  readonly withinMs: number;
  /** Consecutive good checks that bring a down backend back. */
  readonly rise: number;
}

export interface RelaySpec {
  readonly name: string;
  readonly listen: Endpoint;
  readonly protocol: "tcp" | "http";
  readonly mode: "proxy" | "nat";
  readonly primary: Endpoint;
  readonly standby: readonly Endpoint[];
  readonly check: RelayCheck;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** `http` relays: a client's first bytes within this (no backend connection before). */
  readonly requestTimeoutMs: number;
  readonly failback: RelayFailback;
  readonly closeOnBackendDown: boolean;
  readonly closeStandbySessionsOnFailback: boolean;
  readonly maxConnections: number;
  /** Open connections from one client address at once (0: unlimited); both modes. */
  readonly maxConnectionsPerSource: number;
  readonly natMasquerade: boolean;
}

/** The backend id used in status, events and logs: "host:port". */
export function endpointId(endpoint: Endpoint): string {
  return hostPort(endpoint.host, endpoint.port);
}

const relayKeys = new Set([
  "name",
  "listen",
  "protocol",
  "mode",
  "primary",
  "standby",
  "check",
  "connect_timeout",
  "idle_timeout",
  "request_timeout",
  "failback",
  "close_on_backend_down",
  "close_standby_sessions_on_failback",
  "max_connections",
  "max_connections_per_source",
  "nat_masquerade",
]);
const checkKeys = new Set([
  "kind",
  "path",
  "expect_status",
  "command",
  "interval",
  "timeout",
  "fall",
  "within",
  "rise",
]);

const defaults = {
  protocol: "tcp",
  mode: "proxy",
  checkKind: "tcp",
  intervalMs: 200,
  timeoutMs: 300,
  fall: 3,
  withinMs: 1000,
  rise: 2,
  connectTimeoutMs: 200,
  idleTimeoutMs: 300_000,
  requestTimeoutMs: 10_000,
  maxConnections: 10_000,
  /** One address holding more than this many at once is a flood or a runaway client. */
  maxConnectionsPerSource: 256,
} as const;

/** Parses "250ms", "1s", "1.5s", "5m" or a bare number of milliseconds. */
export function parseDurationMs(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== "string") return undefined;
  const ms = parseDuration(value, "ms");
  return ms === undefined ? undefined : Math.round(ms);
}

const ipv4Pattern = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function parseEndpoint(value: unknown): Endpoint | undefined {
  if (typeof value !== "string") return undefined;
  // 198.18.0.100:80, or [2001:db8::100]:80 (IPv6 in brackets; kept in its canonical form).
  const { host, port: written, bracketed } = splitHostPort(value.trim());
  const port = written === undefined ? undefined : parsePort(written);
  if (port === undefined) return undefined;
  if (bracketed) {
    const v6 = ipv6Value(host);
    if (v6 === undefined || v6 === 0n || Number(v6 >> 112n) >= 0xff00) return undefined;
    return { host: ipv6Text(v6), port };
  }
  if (!ipv4Pattern.test(host)) return undefined;
  return { host, port };
}

/** Validates `relays:`; `undefined` (section absent) is an empty list. */
export function parseRelays(raw: unknown): {
  relays: readonly RelaySpec[];
  problems: readonly RelayConfigProblem[];
} {
  const problems: RelayConfigProblem[] = [];
  if (raw === undefined || raw === null) return { relays: [], problems };
  if (!Array.isArray(raw)) {
    problems.push({
      path: "relays",
      message: "must be a list of relays",
      fix: "write `relays:` followed by items starting with `- name: …`",
    });
    return { relays: [], problems };
  }
  const relays: RelaySpec[] = [];
  raw.forEach((item, index) => {
    const spec = parseRelay(item, `relays[${index}]`, problems);
    if (spec) relays.push(spec);
  });
  crossCheck(relays, problems);
  return { relays: problems.length === 0 ? Object.freeze(relays) : [], problems };
}

function parseRelay(
  item: unknown,
  at: string,
  problems: RelayConfigProblem[],
): RelaySpec | undefined {
  if (typeof item !== "object" || item === null || Array.isArray(item)) {
    problems.push({
      path: at,
      message: "must be a mapping",
      fix: "give the relay as `name: …, listen: …, primary: …`",
    });
    return undefined;
  }
  const o = item as Record<string, unknown>;
  const before = problems.length;
  for (const key of Object.keys(o)) {
    if (!relayKeys.has(key)) {
      problems.push({
        path: `${at}.${key}`,
        message: "unknown key",
        fix: `remove it; known keys: ${[...relayKeys].join(", ")}`,
      });
    }
  }
  const name = o.name;
  if (typeof name !== "string" || !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(name)) {
    problems.push({
      path: `${at}.name`,
      message: name === undefined ? "is required" : "must be a short lowercase name",
      fix: "use letters a-z, digits, '-' or '_' (at most 63), e.g. `name: web`",
    });
  }
  const listen = requireEndpoint(o.listen, `${at}.listen`, problems);
  const primary = requireEndpoint(o.primary, `${at}.primary`, problems);
  const standby = parseStandby(o.standby, `${at}.standby`, problems);
  const protocol = oneOf(
    o.protocol,
    ["tcp", "http"],
    defaults.protocol,
    `${at}.protocol`,
    problems,
  );
  const mode = oneOf(o.mode, ["proxy", "nat"], defaults.mode, `${at}.mode`, problems);
  const check = parseCheck(o.check, `${at}.check`, problems);
  const connectTimeoutMs = duration(
    o.connect_timeout,
    defaults.connectTimeoutMs,
    `${at}.connect_timeout`,
    problems,
    1,
  );
  const idleTimeoutMs = duration(
    o.idle_timeout,
    defaults.idleTimeoutMs,
    `${at}.idle_timeout`,
    problems,
    1,
  );
  const requestTimeoutMs = duration(
    o.request_timeout,
    defaults.requestTimeoutMs,
    `${at}.request_timeout`,
    problems,
    0,
  );
  const failback = parseFailback(o.failback, `${at}.failback`, problems);
  const closeOnBackendDown = bool(
    o.close_on_backend_down,
    true,
    `${at}.close_on_backend_down`,
    problems,
  );
  const closeStandbySessionsOnFailback = bool(
    o.close_standby_sessions_on_failback,
    false,
    `${at}.close_standby_sessions_on_failback`,
    problems,
  );
  const natMasquerade = bool(o.nat_masquerade, true, `${at}.nat_masquerade`, problems);
  const maxConnections = integer(
    o.max_connections,
    defaults.maxConnections,
    1,
    1_000_000,
    `${at}.max_connections`,
    problems,
  );
  const maxConnectionsPerSource = integer(
    o.max_connections_per_source,
    defaults.maxConnectionsPerSource,
    0,
    1_000_000,
    `${at}.max_connections_per_source`,
    problems,
  );
  const v6 = [listen, primary, ...(standby ?? [])].some((e) => e?.host.includes(":"));
  if (mode === "nat" && v6) {
    problems.push({
      path: `${at}.mode`,
      message: "nat relays IPv4 addresses only (its nftables table is `ip`)",
      fix: "use mode: proxy for an IPv6 listen address or backend",
    });
  }
  if (problems.length > before || !listen || !primary || !standby || !check || !failback)
    return undefined;
  return Object.freeze({
    name: name as string,
    listen,
    protocol: protocol as RelaySpec["protocol"],
    mode: mode as RelaySpec["mode"],
    primary,
    standby,
    check,
    connectTimeoutMs,
    idleTimeoutMs,
    requestTimeoutMs,
    failback,
    closeOnBackendDown,
    closeStandbySessionsOnFailback,
    maxConnections,
    maxConnectionsPerSource,
    natMasquerade,
  });
}

function requireEndpoint(
  value: unknown,
  path: string,
  problems: RelayConfigProblem[],
): Endpoint | undefined {
  const endpoint = parseEndpoint(value);
  if (!endpoint) {
    problems.push({
      path,
      message:
        value === undefined
          ? "is required"
          : `"${String(value)}" is not an IPv4 or [IPv6] address with a port`,
      fix: "write it as ADDRESS:PORT, e.g. 198.18.1.11:8080 or [2001:db8::11]:8080",
    });
  }
  return endpoint;
}

function parseStandby(
  value: unknown,
  path: string,
  problems: RelayConfigProblem[],
): Endpoint[] | undefined {
  if (value === undefined) return [];
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list)) {
    problems.push({
      path,
      message: "must be a list of ADDRESS:PORT",
      fix: "write e.g. `standby: [198.18.1.12:8080]`",
    });
    return undefined;
  }
  const out: Endpoint[] = [];
  list.forEach((entry, i) => {
    const endpoint = requireEndpoint(entry, `${path}[${i}]`, problems);
    if (endpoint) out.push(endpoint);
  });
  return out.length === list.length ? out : undefined;
}

function parseCheck(
  value: unknown,
  at: string,
  problems: RelayConfigProblem[],
): RelayCheck | undefined {
  const o = (value ?? {}) as Record<string, unknown>;
  if (typeof o !== "object" || Array.isArray(o)) {
    problems.push({
      path: at,
      message: "must be a mapping",
      fix: "write e.g. `check: { kind: tcp, interval: 200ms }`",
    });
    return undefined;
  }
  const before = problems.length;
  for (const key of Object.keys(o)) {
    if (!checkKeys.has(key)) {
      problems.push({
        path: `${at}.${key}`,
        message: "unknown key",
        fix: `remove it; known keys: ${[...checkKeys].join(", ")}`,
      });
    }
  }
  const kind = oneOf(o.kind, ["tcp", "http", "exec"], defaults.checkKind, `${at}.kind`, problems);
  const common: RelayCheckCommon = {
    intervalMs: duration(o.interval, defaults.intervalMs, `${at}.interval`, problems, 10),
    timeoutMs: duration(o.timeout, defaults.timeoutMs, `${at}.timeout`, problems, 1),
    fall: integer(o.fall, defaults.fall, 1, 1000, `${at}.fall`, problems),
    withinMs: duration(o.within, defaults.withinMs, `${at}.within`, problems, 1),
    rise: integer(o.rise, defaults.rise, 1, 1000, `${at}.rise`, problems),
  };
  if (kind !== "http") {
    for (const key of ["path", "expect_status"]) {
      if (o[key] !== undefined) {
        problems.push({
          path: `${at}.${key}`,
          message: `only applies to kind http`,
          fix: `remove it or set kind: http`,
        });
      }
    }
  }
  if (kind !== "exec" && o.command !== undefined) {
    problems.push({
      path: `${at}.command`,
      message: "only applies to kind exec",
      fix: "remove it or set kind: exec",
    });
  }
  // A backend is only declared down when `fall` checks fail within one unit of time, so the
  // unit must hold that many check intervals or checks alone could never take it out.
  if ((common.fall - 1) * common.intervalMs >= common.withinMs) {
    problems.push({
      path: `${at}.within`,
      message: `${common.fall} failed checks ${common.intervalMs} ms apart never fit in ${common.withinMs} ms`,
      fix: `set within to more than ${(common.fall - 1) * common.intervalMs}ms, or lower fall or interval`,
    });
  }
  let check: RelayCheck | undefined;
  if (kind === "http") {
    const path = o.path ?? "/";
    if (typeof path !== "string" || !path.startsWith("/")) {
      problems.push({
        path: `${at}.path`,
        message: "must start with /",
        fix: "write e.g. `path: /health`",
      });
    }
    const expectStatus = integer(o.expect_status, 200, 100, 599, `${at}.expect_status`, problems);
    check = { ...common, kind: "http", path: String(path), expectStatus };
  } else if (kind === "exec") {
    const command = o.command;
    const valid =
      Array.isArray(command) &&
      command.length > 0 &&
      command.every((c) => typeof c === "string" && c !== "");
    if (!valid) {
      problems.push({
        path: `${at}.command`,
        message: "kind exec needs a command as a list of strings",
        fix: 'write e.g. `command: ["/usr/local/bin/check-db", "{host}", "{port}"]`',
      });
    } else {
      check = { ...common, kind: "exec", command: command as string[] };
    }
  } else {
    check = { ...common, kind: "tcp" };
  }
  return problems.length > before ? undefined : check;
}

function parseFailback(
  value: unknown,
  path: string,
  problems: RelayConfigProblem[],
): RelayFailback | undefined {
  if (value === undefined || value === "immediate") return { mode: "immediate" };
  if (value === "never") return { mode: "never" };
  if (typeof value === "string") {
    const match = /^after\s+(.+)$/.exec(value.trim());
    const afterMs = match ? parseDurationMs(match[1]) : undefined;
    if (afterMs !== undefined) return { mode: "after", afterMs };
  }
  problems.push({
    path,
    message: `"${String(value)}" is not a failback policy`,
    fix: 'use immediate, never or "after DURATION" (e.g. "after 10s")',
  });
  return undefined;
}

function oneOf(
  value: unknown,
  allowed: readonly string[],
  fallback: string,
  path: string,
  problems: RelayConfigProblem[],
): string {
  if (value === undefined) return fallback;
  if (typeof value === "string" && allowed.includes(value)) return value;
  problems.push({
    path,
    message: `"${String(value)}" is not allowed`,
    fix: `use one of: ${allowed.join(", ")}`,
  });
  return fallback;
}

function duration(
  value: unknown,
  fallback: number,
  path: string,
  problems: RelayConfigProblem[],
  minMs: number,
): number {
  if (value === undefined) return fallback;
  const ms = parseDurationMs(value);
  if (ms === undefined || ms < minMs) {
    problems.push({
      path,
      message: `"${String(value)}" is not a duration of at least ${minMs} ms`,
      fix: "write e.g. 250ms, 1s or 5m",
    });
    return fallback;
  }
  return ms;
}

function integer(
  value: unknown,
  fallback: number,
  min: number,
  max: number,
  path: string,
  problems: RelayConfigProblem[],
): number {
  if (value === undefined) return fallback;
  if (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max)
    return value;
  problems.push({
    path,
    message: `"${String(value)}" is not a whole number in ${min}..${max}`,
    fix: `use a whole number from ${min} to ${max}`,
  });
  return fallback;
}

function bool(
  value: unknown,
  fallback: boolean,
  path: string,
  problems: RelayConfigProblem[],
): boolean {
  if (value === undefined) return fallback;
  if (typeof value === "boolean") return value;
  problems.push({
    path,
    message: `"${String(value)}" is not true or false`,
    fix: "write true or false",
  });
  return fallback;
}

/** Rules across relays and fields, one sentence each. */
function crossCheck(relays: RelaySpec[], problems: RelayConfigProblem[]): void {
  const names = new Map<string, number>();
  const listens = new Map<string, number>();
  relays.forEach((relay, i) => {
    const at = `relays[${i}]`;
    const previousName = names.get(relay.name);
    if (previousName !== undefined) {
      problems.push({
        path: `${at}.name`,
        message: `"${relay.name}" is already used by relays[${previousName}]`,
        fix: "give each relay its own name",
      });
    } else names.set(relay.name, i);
    const listen = endpointId(relay.listen);
    const previousListen = listens.get(listen);
    if (previousListen !== undefined) {
      problems.push({
        path: `${at}.listen`,
        message: `${listen} is already used by relays[${previousListen}]`,
        fix: "give each relay its own address or port",
      });
    } else listens.set(listen, i);
    const backends = [relay.primary, ...relay.standby].map(endpointId);
    const seen = new Set<string>();
    backends.forEach((id, j) => {
      const path = j === 0 ? `${at}.primary` : `${at}.standby[${j - 1}]`;
      if (seen.has(id))
        problems.push({ path, message: `${id} is listed twice`, fix: "list every backend once" });
      if (id === listen)
        problems.push({
          path,
          message: "a backend cannot be the relay's own listen address",
          fix: "point it at the server behind the relay",
        });
      seen.add(id);
    });
  });
}
