/**
 * Loads the cluster config: one YAML file, the same on every node, read once at start.
 *
 * The file is checked against one schema and every problem is reported at once (a
 * `ConfigError` with file, key path and fix for each), then the result is deep-frozen. Nothing
 * is guessed: unknown keys are errors (with a "did you mean" for near misses), numbers in
 * quotes are errors, and a duration without a unit is an error except under `*_ms` keys.
 *
 * Shape and defaults (see examples/cluster.yaml for a commented file):
 *
 *   cluster: NAME            required, [a-z0-9][a-z0-9_-]*
 *   key_file: PATH           required; shared secret of 32+ random bytes
 *   profile: lan             fast | lan | wan (default lan), see src/config/profiles.ts
 *   timers: { lease_ms: 500 }  optional overrides, snake_case names of the Timers fields
 *   nodes: [...]             required, at least one: { id, address, port = 7946, interface,
 *                            weight = 1 }; address may be "IP:PORT"
 *   vips: [...]              default none: { address: IP/PREFIX, interface = the node's,
 *                            policy = round-robin, preferred, failback = immediate when
 *                            preferred is set, else never }; failback: immediate | never |
 *                            "after 30s"
 *   checks: [...]            default none: { name, kind: link|tcp|http|exec|rbd, interval = 1s,
 *                            timeout = interval / 2, fall = 3, within = 10 × interval, rise = 2,
 *                            plus the kind's own fields }
 *   api: { listen = 127.0.0.1:7480, token_file }   no token file = mutating calls refused
 *   notify: { command, timeout = 5s, style = floatip|keepalived }   optional
 *   realtime: { policy = rr, priority = 10, lock_memory = true, required = false }
 *                            the control plane's thread under SCHED_RR/SCHED_FIFO with locked
 *                            memory where the process may (root, CAP_SYS_NICE); policy: off
 *   state_dir: /var/lib/floatip
 *   address_lifetime: 3s     kernel valid_lft of VIPs, whole seconds, longer than lease_ms
 *   heartbeats: all          all | coordinator: followers heartbeat every node (default) or
 *                            the coordinator only (embedded election; larger clusters)
 *   receive: as-they-come    as-they-come | on-tick: read each heartbeat as it arrives
 *                            (default), or on the control plane's own tick: a peer's datagram
 *                            wakes nothing and waits at most one heartbeat interval (embedded
 *                            election; the idle cost, see README "Idle cost")
 *   arbiter: { kind: etcd, endpoints: [http://HOST:2379, …], prefix = /floatip, ttl = 2s,
 *              on_loss = release|failsafe, timeout = 1s, tls: { ca, cert, key },
 *              auth: { user, password_file } }   default: the embedded election
 *   relays, storage, traffic passed through untouched (validated by their own modules)
 *   x-…                      ignored: a place for YAML anchors (&name / *name / <<: *name)
 *
 * Relative paths (key_file, token_file, state_dir, ceph_conf) are taken relative to the
 * directory of the config file. Durations are "500ms", "2s", "1m" or "1h".
 *
 * One or two nodes are accepted without complaint, but note that quorum needs a majority of
 * the configured nodes: a two-node cluster has no quorum protection (each side of a partition
 * cannot tell a dead peer from a cut link) unless a tie-breaker is added, so use three nodes
 * wherever a split brain would hurt.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { type Document, LineCounter, parseDocument } from "yaml";
import { grantWindowMs, renewableLeaseMinMs } from "../core/timing.ts";
import { isRecord } from "../core/validate.ts";
import { durationUnits, parseDuration as parseDurationIn } from "./duration.ts";
import { ConfigError, type ConfigProblem } from "./errors.ts";
import { parsePort, splitHostPort } from "./host-port.ts";
import { canonicalIp, ipv6Text, ipv6Value, ipv6VipProblem } from "./ipv6.ts";
import { defaultProfile, profileNames, profiles, validateTimers } from "./profiles.ts";
import {
  type ApiSpec,
  type CheckCommon,
  type ClusterConfig,
  type EtcdArbiterSpec,
  type Failback,
  type HealthCheckSpec,
  type HeartbeatFanout,
  heartbeatFanouts,
  type NodeSpec,
  type NotifySpec,
  type PlacementPolicy,
  type ProfileName,
  type RealtimeSpec,
  type ReceiveMode,
  receiveModes,
  type TickleSpec,
  type Timers,
  type VipSpec,
} from "./types.ts";

export interface LoadOptions {
  /** The node this process runs as (`--node`); must be one of `nodes`. */
  readonly nodeId?: string;
}

export const defaultPort = 7946;
export const defaultStateDir = "/var/lib/floatip";
export const defaultApiListen = "127.0.0.1:7480";
export const defaultAddressLifetimeSec = 3;

/** Reads and validates the config file. Throws `ConfigError` (CONFIG_UNREADABLE or CONFIG_INVALID). */
export function loadConfig(path: string, options: LoadOptions = {}): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError(
      "CONFIG_UNREADABLE",
      [
        {
          file: path,
          path: "",
          message: `cannot read the file (${reason})`,
          fix: "check the path and its permissions; examples/cluster.yaml is a starting point",
        },
      ],
      { cause: error },
    );
  }
  return parseConfig(text, path, options);
}

/** Validates config text; `path` names the file in messages and anchors relative paths. */
export function parseConfig(text: string, path: string, options: LoadOptions = {}): ClusterConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, merge: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      "CONFIG_INVALID",
      doc.errors.map((e) => syntaxProblem(path, e)),
    );
  }
  const ctx = new Context(path, doc, lineCounter);
  let root: unknown;
  try {
    root = doc.toJS({ maxAliasCount: 1000 });
  } catch (error) {
    ctx.add(
      [],
      `cannot expand the YAML: ${(error as Error).message}`,
      "simplify anchors and aliases",
    );
    throw new ConfigError("CONFIG_INVALID", ctx.problems);
  }
  if (root === null || root === undefined) {
    ctx.add([], "the file is empty", "start from examples/cluster.yaml");
    throw new ConfigError("CONFIG_INVALID", ctx.problems);
  }
  const config = readRoot(ctx, root, options);
  if (ctx.problems.length > 0 || config === undefined) {
    throw new ConfigError("CONFIG_INVALID", ctx.problems);
  }
  return deepFreeze(config);
}

// ---------------------------------------------------------------------------------------------
// Problem collection

type Segment = string | number;

/** Renders key path segments as `vips[1].preferred`. */
export function formatPath(segments: readonly Segment[]): string {
  let out = "";
  for (const s of segments) out += typeof s === "number" ? `[${s}]` : out === "" ? s : `.${s}`;
  return out;
}

function syntaxProblem(
  file: string,
  error: { message: string; linePos?: [{ line: number; col: number }, ...unknown[]] },
): ConfigProblem {
  const firstLine = error.message.split("\n")[0] ?? error.message;
  const bare = firstLine.replace(/ at line \d+, column \d+:?$/, "");
  const pos = error.linePos?.[0];
  const at = pos ? ` at line ${pos.line}, column ${pos.col}` : "";
  return {
    file,
    path: "",
    message: `YAML syntax error${at}: ${bare}`,
    fix: "correct the YAML syntax there (indentation, brackets, quotes, duplicate keys)",
    ...(pos ? { line: pos.line, column: pos.col } : {}),
  };
}

class Context {
  readonly file: string;
  readonly baseDir: string;
  readonly problems: ConfigProblem[] = [];
  readonly #doc: Document;
  readonly #lines: LineCounter;

  constructor(file: string, doc: Document, lines: LineCounter) {
    this.file = file;
    this.baseDir = dirname(resolve(file));
    this.#doc = doc;
    this.#lines = lines;
  }

  add(segments: readonly Segment[], message: string, fix: string): void {
    const pos = this.#locate(segments);
    this.problems.push({ file: this.file, path: formatPath(segments), message, fix, ...pos });
  }

  /** Position of the nearest node on the path that exists in the document. */
  #locate(segments: readonly Segment[]): { line: number; column: number } | Record<never, never> {
    for (let n = segments.length; n > 0; n--) {
      const node = this.#doc.getIn(segments.slice(0, n), true) as
        | { range?: [number, number, number] }
        | undefined;
      if (node?.range) {
        const { line, col } = this.#lines.linePos(node.range[0]);
        return { line, column: col };
      }
    }
    return {};
  }

  resolvePath(p: string): string {
    return isAbsolute(p) ? p : resolve(this.baseDir, p);
  }
}

// ---------------------------------------------------------------------------------------------
// Generic readers: each reports its own problem and returns undefined when the value is unusable.

type Obj = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return value.length === 0 ? "an empty list" : "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

/** Edit distance with transpositions (optimal string alignment), for "did you mean". */
function distance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    d[i] = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        d[0]![j] = j;
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate a mistyped word most likely meant, if any is close enough. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  const squash = (s: string) => s.toLowerCase().replace(/[-_\s]/g, "");
  const exact = candidates.find((c) => squash(c) === squash(word));
  if (exact !== undefined) return exact;
  // "heartbeat" for "heartbeat_interval_ms": a unique candidate that starts with the word.
  const prefixed = candidates.filter((c) => squash(c).startsWith(squash(word)));
  if (word.length >= 4 && prefixed.length === 1) return prefixed[0];
  let best: string | undefined;
  let bestDistance = word.length <= 4 ? 1 : 2;
  for (const c of candidates) {
    const d = distance(squash(word), squash(c));
    if (d < bestDistance || (d === bestDistance && best === undefined)) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Checks that `value` is a mapping and has no keys outside `allowed`. */
function mapping(
  ctx: Context,
  value: unknown,
  at: readonly Segment[],
  allowed: readonly string[],
  example: string,
): Obj | undefined {
  if (!isRecord(value)) {
    ctx.add(at, `must be a mapping (key: value), got ${describe(value)}`, `write it as ${example}`);
    return undefined;
  }
  for (const key of Object.keys(value)) {
    if (allowed.includes(key)) continue;
    if (at.length === 0 && key.startsWith("x-")) continue;
    const near = suggest(key, allowed);
    ctx.add(
      [...at, key],
      `unknown key "${key}"`,
      near !== undefined
        ? `did you mean "${near}"?`
        : `remove it; allowed keys here: ${allowed.join(", ")}`,
    );
  }
  return value;
}

function list(ctx: Context, value: unknown, at: readonly Segment[], example: string) {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    ctx.add(at, `must be a list, got ${describe(value)}`, `write it as a list: ${example}`);
    return undefined;
  }
  return value as unknown[];
}

interface StringRule {
  readonly required?: boolean;
  readonly pattern?: RegExp;
  readonly patternText?: string;
  readonly maxLength?: number;
  readonly example: string;
}

function str(ctx: Context, obj: Obj, key: string, at: readonly Segment[], rule: StringRule) {
  const value = obj[key];
  const here = [...at, key];
  if (value === undefined) {
    if (rule.required) ctx.add(here, "is required", `add ${key}: ${rule.example}`);
    return undefined;
  }
  if (typeof value !== "string") {
    const quoted = typeof value === "number" || typeof value === "boolean";
    ctx.add(
      here,
      `must be a string, got ${describe(value)}`,
      quoted ? `quote it: ${key}: "${String(value)}"` : `write ${key}: ${rule.example}`,
    );
    return undefined;
  }
  if (value.trim() === "") {
    ctx.add(here, "must not be empty", `write ${key}: ${rule.example}`);
    return undefined;
  }
  if (rule.maxLength !== undefined && value.length > rule.maxLength) {
    ctx.add(here, `is longer than ${rule.maxLength} characters`, "use a shorter value");
    return undefined;
  }
  if (rule.pattern && !rule.pattern.test(value)) {
    ctx.add(
      here,
      `"${value}" is not valid: ${rule.patternText ?? `must match ${rule.pattern}`}`,
      `write something like ${rule.example}`,
    );
    return undefined;
  }
  return value;
}

function int(
  ctx: Context,
  obj: Obj,
  key: string,
  at: readonly Segment[],
  range: { min: number; max: number; fallback?: number; example?: number },
): number | undefined {
  const value = obj[key];
  const here = [...at, key];
  if (value === undefined) {
    if (range.fallback === undefined) {
      ctx.add(here, "is required", `add ${key}: ${range.example ?? range.min}`);
    }
    return range.fallback;
  }
  if (typeof value === "string" && /^-?\d+$/.test(value.trim())) {
    ctx.add(
      here,
      `must be a number, got ${describe(value)}`,
      `remove the quotes: ${key}: ${value}`,
    );
    return undefined;
  }
  if (typeof value !== "number" || !Number.isInteger(value)) {
    ctx.add(here, `must be a whole number, got ${describe(value)}`, `write ${key}: ${range.min}`);
    return undefined;
  }
  if (value < range.min || value > range.max) {
    ctx.add(
      here,
      `must be between ${range.min} and ${range.max}, got ${value}`,
      `use a value from ${range.min} to ${range.max}`,
    );
    return undefined;
  }
  return value;
}

function oneOf<T extends string>(
  ctx: Context,
  obj: Obj,
  key: string,
  at: readonly Segment[],
  options: readonly T[],
  fallback: T | undefined,
): T | undefined {
  const value = obj[key];
  const here = [...at, key];
  if (value === undefined) {
    if (fallback === undefined)
      ctx.add(here, "is required", `add ${key}: one of ${options.join(", ")}`);
    return fallback;
  }
  if (typeof value === "string" && (options as readonly string[]).includes(value))
    return value as T;
  const near = typeof value === "string" ? suggest(value, options) : undefined;
  ctx.add(
    here,
    `must be one of ${options.join(", ")}, got ${describe(value)}`,
    near !== undefined ? `did you mean "${near}"?` : `use one of ${options.join(", ")}`,
  );
  return undefined;
}

/**
 * A config value's duration ("500ms", "2s", "1m", "1h", "1d") in whole milliseconds; undefined
 * when malformed, bare (no unit) or not a whole number of milliseconds.
 */
export function parseDuration(text: string): number | undefined {
  const ms = parseDurationIn(text);
  return ms !== undefined && Number.isInteger(ms) ? ms : undefined;
}

/**
 * Reads a duration in ms. Under `*_ms` keys a bare number means milliseconds; elsewhere a bare
 * number is ambiguous (seconds? milliseconds?) and rejected.
 */
function duration(
  ctx: Context,
  obj: Obj,
  key: string,
  at: readonly Segment[],
  rule: { min: number; fallback?: number; example: string },
): number | undefined {
  const value = obj[key];
  const here = [...at, key];
  if (value === undefined) {
    if (rule.fallback === undefined) ctx.add(here, "is required", `add ${key}: ${rule.example}`);
    return rule.fallback;
  }
  let ms: number | undefined;
  if (typeof value === "number") {
    if (!key.endsWith("_ms")) {
      ctx.add(
        here,
        `needs a unit, got the bare number ${value}`,
        `write ${key}: ${value}ms or ${key}: ${value}s`,
      );
      return undefined;
    }
    ms = Number.isInteger(value) ? value : undefined;
  } else if (typeof value === "string") {
    ms = parseDuration(value);
  }
  if (ms === undefined) {
    ctx.add(
      here,
      `is not a duration in whole milliseconds: ${describe(value)}`,
      `write ${key}: ${rule.example} (units: ${durationUnits})`,
    );
    return undefined;
  }
  if (ms < rule.min) {
    ctx.add(here, `must be at least ${rule.min} ms, got ${ms} ms`, `write ${key}: ${rule.example}`);
    return undefined;
  }
  return ms;
}

// ---------------------------------------------------------------------------------------------
// Addresses and names

const namePattern = /^[a-z0-9][a-z0-9_-]*$/;
const nameRule = "lower-case letters, digits, '_' and '-', starting with a letter or digit";
const interfacePattern = /^[^\s/:]{1,15}$/;
const interfaceRule = "a Linux interface name: 1 to 15 characters, no spaces, '/' or ':'";

/** Parses dotted-quad IPv4 (no leading zeros, which some tools read as octal). */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

/** A unicast address a node or VIP can use: not 0.x.x.x, multicast, or reserved 240/4. */
function isUsableUnicast(address: number): boolean {
  const first = Math.floor(address / 2 ** 24);
  return first !== 0 && first < 224;
}

// ---------------------------------------------------------------------------------------------
// Sections

const rootKeys = [
  "cluster",
  "key_file",
  "profile",
  "timers",
  "nodes",
  "vips",
  "checks",
  "api",
  "notify",
  "realtime",
  "tickle",
  "state_dir",
  "address_lifetime",
  "heartbeats",
  "receive",
  "arbiter",
  "relays",
  "storage",
  "traffic",
];

const optionalSections = [
  "timers",
  "vips",
  "checks",
  "api",
  "notify",
  "realtime",
  "tickle",
  "arbiter",
  "relays",
  "storage",
  "traffic",
];

function readRoot(ctx: Context, raw: unknown, options: LoadOptions): ClusterConfig | undefined {
  const parsed = mapping(ctx, raw, [], rootKeys, "cluster: demo (see examples/cluster.yaml)");
  if (!parsed) return undefined;
  // An optional section left empty ("vips:" with everything below commented out) is absent.
  const root: Obj = { ...parsed };
  for (const key of optionalSections) if (root[key] === null) delete root[key];
  const cluster = str(ctx, root, "cluster", [], {
    required: true,
    pattern: namePattern,
    patternText: nameRule,
    maxLength: 63,
    example: "demo",
  });
  const keyFile = str(ctx, root, "key_file", [], {
    required: true,
    example: "/etc/floatip/cluster.key (32+ random bytes, same file on every node)",
  });
  const profile = oneOf<ProfileName>(ctx, root, "profile", [], profileNames, defaultProfile);
  const timers = readTimers(ctx, root.timers, profile ?? defaultProfile);
  const nodes = readNodes(ctx, root.nodes);
  const vips = readVips(ctx, root.vips, nodes);
  const checks = readChecks(ctx, root.checks);
  const api = readApi(ctx, root.api);
  const notify = root.notify === undefined ? undefined : readNotify(ctx, root.notify);
  const realtime = readRealtime(ctx, root.realtime);
  const tickle = readTickle(ctx, root.tickle);
  const stateDir = str(ctx, root, "state_dir", [], { example: defaultStateDir }) ?? defaultStateDir;
  const addressLifetimeSec = readAddressLifetime(ctx, root, timers);
  const arbiter = readArbiter(ctx, root.arbiter);
  const heartbeats = oneOf<HeartbeatFanout>(ctx, root, "heartbeats", [], heartbeatFanouts, "all");
  if (heartbeats === "coordinator" && arbiter) {
    ctx.add(
      ["heartbeats"],
      "applies to the embedded election only: with arbiter kind etcd nodes send no heartbeats",
      "remove heartbeats, or remove arbiter to use the embedded election",
    );
  }
  const receive = oneOf<ReceiveMode>(ctx, root, "receive", [], receiveModes, "as-they-come");
  if (
    receive === "on-tick" &&
    timers &&
    grantWindowMs(timers) < onTickGrantIntervals * timers.heartbeatIntervalMs
  ) {
    // Read on the tick, an acknowledgement can be read up to about three intervals after its
    // round was sent; with a grant window of fewer than four the coordinator keeps its role
    // but stops renewing leases once the nodes' phases line up badly (seen in the simulator
    // with lan's 150 ms election timeout).
    const needMs = onTickGrantIntervals * timers.heartbeatIntervalMs;
    let minimum = timers.electionTimeoutMs;
    while (grantWindowMs({ ...timers, electionTimeoutMs: minimum }) < needMs) minimum += 1;
    ctx.add(
      ["receive"],
      `on-tick needs a lease grant window of at least ${onTickGrantIntervals} heartbeat intervals (${onTickGrantIntervals * timers.heartbeatIntervalMs} ms); these timers give ${grantWindowMs(timers)} ms`,
      `set timers.election_timeout_ms to at least ${minimum}, or remove receive`,
    );
  }
  if (
    receive === "on-tick" &&
    timers &&
    timers.leaseMs >= renewableLeaseMinMs(timers) &&
    timers.leaseMs < renewableLeaseMinMs(timers, true)
  ) {
    // Read on the tick, an acknowledgement waits up to one more interval before it counts.
    ctx.add(
      ["timers", "lease_ms"],
      `on-tick needs a lease of at least four heartbeat intervals and six lease margins (${renewableLeaseMinMs(timers, true)} ms), got ${timers.leaseMs}: acknowledgements are read up to an interval late, so a shorter lease lapses on a healthy cluster`,
      `set timers.lease_ms to at least ${renewableLeaseMinMs(timers, true)}, or remove receive`,
    );
  }
  if (receive === "on-tick" && arbiter) {
    ctx.add(
      ["receive"],
      "applies to the embedded election only: with arbiter kind etcd the control plane does not tick every heartbeat interval",
      "remove receive, or remove arbiter to use the embedded election",
    );
  }
  if (options.nodeId !== undefined && nodes.ids.length > 0 && !nodes.ids.includes(options.nodeId)) {
    ctx.add(
      ["nodes"],
      `node "${options.nodeId}" (chosen with --node) is not defined`,
      `use one of ${nodes.ids.join(", ")}, or add it to nodes`,
    );
  }
  if (
    cluster === undefined ||
    keyFile === undefined ||
    profile === undefined ||
    !timers ||
    !nodes.complete ||
    !vips ||
    !checks ||
    !api ||
    !realtime ||
    !tickle ||
    addressLifetimeSec === undefined ||
    heartbeats === undefined ||
    receive === undefined ||
    arbiter === false
  ) {
    return undefined;
  }
  return {
    file: resolve(ctx.file),
    cluster,
    keyFile: ctx.resolvePath(keyFile),
    profile,
    timers,
    nodes: nodes.nodes,
    vips,
    checks,
    api,
    ...(notify ? { notify } : {}),
    realtime,
    tickle,
    stateDir: ctx.resolvePath(stateDir),
    addressLifetimeSec,
    heartbeats,
    receive,
    ...(arbiter ? { arbiter } : {}),
    ...(root.relays !== undefined ? { relays: root.relays } : {}),
    ...(root.storage !== undefined ? { storage: root.storage } : {}),
    ...(root.traffic !== undefined ? { traffic: root.traffic } : {}),
  };
}

/** `receive: on-tick` needs a grant window of this many heartbeat intervals (see its check). */
export const onTickGrantIntervals = 4;

function snake(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

const timerFields = Object.keys(profiles.lan) as (keyof Timers)[];

function readTimers(ctx: Context, raw: unknown, profile: ProfileName): Timers | undefined {
  const base = profiles[profile];
  if (raw === undefined) return base;
  const keys = timerFields.map(snake);
  const obj = mapping(ctx, raw, ["timers"], keys, "timers: { lease_ms: 500 }");
  if (!obj) return undefined;
  const merged: Record<string, number> = { ...base };
  for (const field of timerFields) {
    const key = snake(field);
    if (obj[key] === undefined) continue;
    const value = readTimerValue(ctx, obj, key, field);
    if (value !== undefined) merged[field] = value;
  }
  const timers = merged as unknown as Timers;
  for (const p of validateTimers(timers)) ctx.add(["timers", snake(p.field)], p.message, p.fix);
  return timers;
}

function readTimerValue(ctx: Context, obj: Obj, key: string, field: keyof Timers) {
  const value = obj[key];
  if (field === "clockDriftRatio") {
    if (typeof value === "number") return value;
    ctx.add(["timers", key], `must be a number, got ${describe(value)}`, `write ${key}: 0.01`);
    return undefined;
  }
  if (key.endsWith("_ms")) {
    return duration(ctx, obj, key, ["timers"], { min: 0, example: `${profiles.lan[field]}` });
  }
  if (typeof value === "number") return value; // range checked by validateTimers
  ctx.add(["timers", key], `must be a whole number, got ${describe(value)}`, `write ${key}: 3`);
  return undefined;
}

const nodeKeys = ["id", "address", "port", "interface", "weight"];
const nodeExample = "{ id: n1, address: 198.18.0.11, interface: eth0 }";

/**
 * The nodes section as far as it could be read: `nodes` holds the valid entries, `ids` every id
 * written (so that references to a node with another mistake are not reported as undefined).
 */
interface NodeSet {
  readonly nodes: NodeSpec[];
  readonly ids: string[];
  readonly complete: boolean;
}

function readNodes(ctx: Context, raw: unknown): NodeSet {
  const none = { nodes: [], ids: [], complete: false };
  if (raw === undefined) {
    ctx.add(["nodes"], "is required", `list at least one node: nodes: [ ${nodeExample} ]`);
    return none;
  }
  const items = list(ctx, raw, ["nodes"], `nodes: [ ${nodeExample} ]`);
  if (!items) return none;
  if (items.length === 0) {
    ctx.add(["nodes"], "needs at least one node", `add a node: ${nodeExample}`);
    return none;
  }
  const ids = [
    ...new Set(
      items.flatMap((item) => (isRecord(item) && typeof item.id === "string" ? [item.id] : [])),
    ),
  ];
  const nodes: NodeSpec[] = [];
  let broken = false;
  items.forEach((item, i) => {
    const node = readNode(ctx, item, i);
    if (node) nodes.push(node);
    else broken = true;
  });
  const rawId = (item: Obj) => (typeof item.id === "string" ? item.id : undefined);
  checkUnique(ctx, items, "nodes", "id", rawId, "give each node its own id");
  const fix = "give each node its own address (or, on one host, its own port)";
  checkUnique(ctx, items, "nodes", "address", rawEndpoint, fix);
  // One socket family carries the heartbeats: every node talks IPv4, or every node IPv6.
  const family = (n: NodeSpec) => (n.address.includes(":") ? 6 : 4);
  const first = nodes[0];
  nodes.forEach((node, i) => {
    if (first !== undefined && family(node) !== family(first)) {
      const index = items.findIndex((item) => isRecord(item) && item.id === node.id);
      ctx.add(
        ["nodes", index >= 0 ? index : i, "address"],
        `${node.address} is IPv${family(node)} while node ${first.id} talks IPv${family(first)}`,
        "give every node an address of one family (VIPs of either family float over both)",
      );
      broken = true;
    }
  });
  return { nodes, ids, complete: !broken };
}

/**
 * Reports the second and later entries of a list that share a key. Works on the raw entries, so
 * that a duplicate is reported even when one of the two has another mistake.
 */
function checkUnique(
  ctx: Context,
  items: readonly unknown[],
  section: string,
  field: string,
  keyOf: (item: Obj) => string | undefined,
  fix: string,
): void {
  const seen = new Map<string, number>();
  items.forEach((item, index) => {
    const key = isRecord(item) ? keyOf(item) : undefined;
    if (key === undefined) return;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, index);
    else ctx.add([section, index, field], `${key} is already used by ${section}[${first}]`, fix);
  });
}

/** `address:port` of a raw node entry, with the default port, for duplicate detection. */
function rawEndpoint(item: Obj): string | undefined {
  if (typeof item.address !== "string") return undefined;
  const { host, port } = splitHostPort(item.address);
  return `${host}:${port ?? (typeof item.port === "number" ? item.port : defaultPort)}`;
}

function readNode(ctx: Context, raw: unknown, i: number): NodeSpec | undefined {
  const at = ["nodes", i];
  const obj = mapping(ctx, raw, at, nodeKeys, nodeExample);
  if (!obj) return undefined;
  const id = str(ctx, obj, "id", at, {
    required: true,
    pattern: namePattern,
    patternText: nameRule,
    maxLength: 63,
    example: "n1",
  });
  const endpoint = readNodeAddress(ctx, obj, at);
  const iface = str(ctx, obj, "interface", at, {
    required: true,
    pattern: interfacePattern,
    patternText: interfaceRule,
    example: "eth0",
  });
  const weight = int(ctx, obj, "weight", at, { min: 1, max: 1_000_000, fallback: 1 });
  if (id === undefined || !endpoint || iface === undefined || weight === undefined)
    return undefined;
  return { id, address: endpoint.address, port: endpoint.port, interface: iface, weight };
}

function readNodeAddress(ctx: Context, obj: Obj, at: readonly Segment[]) {
  const text = str(ctx, obj, "address", at, { required: true, example: "198.18.0.11" });
  const portOverride =
    obj.port === undefined ? undefined : int(ctx, obj, "port", at, { min: 1, max: 65535 });
  if (text === undefined) return undefined;
  const { host: written, port } = splitHostPort(text);
  let host = written;
  const [bare = "", zone] = written.split("%");
  const v6 = ipv6Value(bare);
  if (v6 !== undefined) {
    // IPv6 node addresses: unicast; a link-local one needs its zone (fe80::11%eth0).
    const linkLocal = Number(v6 >> 112n) >> 6 === 0xfe80 >> 6;
    const problem =
      v6 === 0n || v6 === 1n || Number(v6 >> 112n) >= 0xff00
        ? "is not a unicast address"
        : linkLocal && !zone
          ? "is link-local and names no interface"
          : !linkLocal && zone !== undefined
            ? "has a zone, which only a link-local address takes"
            : undefined;
    if (problem !== undefined) {
      ctx.add(
        [...at, "address"],
        `"${text}" ${problem}`,
        linkLocal
          ? `write it with its interface, such as "[${bare}%eth0]:${defaultPort}" or "${bare}%eth0"`
          : "write a unicast IPv6 address such as 2001:db8::11 or [2001:db8::11]:7946",
      );
      return undefined;
    }
    host = zone === undefined ? ipv6Text(v6) : `${ipv6Text(v6)}%${zone}`;
  } else {
    const ip = parseIpv4(host);
    if (ip === undefined || !isUsableUnicast(ip)) {
      ctx.add(
        [...at, "address"],
        `"${text}" is not a usable IPv4 or IPv6 address`,
        "write a unicast address such as 198.18.0.11 or 2001:db8::11 (optionally with :PORT; [2001:db8::11]:PORT for IPv6)",
      );
      return undefined;
    }
  }
  let parsedPort: number | undefined;
  if (port !== undefined) {
    parsedPort = parsePort(port);
    if (parsedPort === undefined) {
      ctx.add(
        [...at, "address"],
        `port "${port}" is not in 1-65535`,
        `write ${host.includes(":") ? `[${host}]` : host}:${defaultPort}`,
      );
      return undefined;
    }
    if (obj.port !== undefined && portOverride !== parsedPort) {
      ctx.add(
        [...at, "port"],
        `conflicts with the port in address "${text}"`,
        "give the port once: either address: IP:PORT or port: PORT",
      );
      return undefined;
    }
  }
  if (obj.port !== undefined && portOverride === undefined) return undefined;
  return { address: host, port: parsedPort ?? portOverride ?? defaultPort };
}

const vipKeys = ["address", "interface", "policy", "preferred", "failback"];
const vipExample = "{ address: 198.18.0.100/24 } (or an IPv6 address: 2001:db8::100/64)";
const policies: readonly PlacementPolicy[] = ["round-robin", "weighted", "hash"];

function readVips(ctx: Context, raw: unknown, nodes: NodeSet): VipSpec[] | undefined {
  const items = list(ctx, raw, ["vips"], `vips: [ ${vipExample} ]`);
  if (!items) return undefined;
  const vips: VipSpec[] = [];
  let broken = false;
  items.forEach((item, i) => {
    const vip = readVip(ctx, item, i, nodes);
    if (vip) vips.push(vip);
    else broken = true;
  });
  const rawAddress = (item: Obj) =>
    typeof item.address === "string" ? canonicalIp(item.address.split("/")[0]!) : undefined;
  checkUnique(ctx, items, "vips", "address", rawAddress, "list each VIP once");
  return broken ? undefined : vips;
}

function readVip(ctx: Context, raw: unknown, i: number, nodes: NodeSet): VipSpec | undefined {
  const at = ["vips", i];
  const obj = mapping(ctx, raw, at, vipKeys, vipExample);
  if (!obj) return undefined;
  const cidr = readVipAddress(ctx, obj, at, nodes.nodes);
  const iface = str(ctx, obj, "interface", at, {
    pattern: interfacePattern,
    patternText: interfaceRule,
    example: "eth0",
  });
  const policy = oneOf(ctx, obj, "policy", at, policies, "round-robin");
  const preferred = str(ctx, obj, "preferred", at, { example: "n1" });
  const ids = nodes.ids;
  const unknownPreferred = preferred !== undefined && ids.length > 0 && !ids.includes(preferred);
  if (unknownPreferred) {
    ctx.add(
      [...at, "preferred"],
      `node "${preferred}" is not defined`,
      `use one of ${ids.join(", ")}`,
    );
  }
  const failback = readFailback(ctx, obj, at, preferred !== undefined);
  if (
    !cidr ||
    policy === undefined ||
    !failback ||
    (obj.interface !== undefined && iface === undefined)
  ) {
    return undefined;
  }
  if (unknownPreferred || (obj.preferred !== undefined && preferred === undefined))
    return undefined;
  return {
    address: cidr.address,
    prefixLength: cidr.prefixLength,
    ...(iface !== undefined ? { interface: iface } : {}),
    policy,
    ...(preferred !== undefined ? { preferred } : {}),
    failback,
  };
}

function readVipAddress(
  ctx: Context,
  obj: Obj,
  at: readonly Segment[],
  nodes: readonly NodeSpec[],
) {
  const text = str(ctx, obj, "address", at, { required: true, example: "198.18.0.100/24" });
  if (text === undefined) return undefined;
  const here = [...at, "address"];
  const match = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!match) {
    ctx.add(
      here,
      `"${text}" has no prefix length`,
      `write it as ${text.split("/")[0]}/24 (your subnet's prefix)`,
    );
    return undefined;
  }
  const written = match[1]!;
  const prefixLength = Number(match[2]);
  const v6 = ipv6Value(written);
  if (v6 !== undefined) return readIpv6Vip(ctx, here, v6, prefixLength, nodes);
  const address = written;
  const ip = parseIpv4(address);
  if (ip === undefined || !isUsableUnicast(ip)) {
    ctx.add(
      here,
      `"${address}" is not a usable IPv4 or IPv6 address`,
      "write a unicast address with its prefix, such as 198.18.0.100/24 or 2001:db8::100/64",
    );
    return undefined;
  }
  if (badPrefix(ctx, here, address, prefixLength, 32, 24)) return undefined;
  if (prefixLength <= 30) {
    const hostBits = 2 ** (32 - prefixLength);
    const offset = ip % hostBits;
    if (offset === 0 || offset === hostBits - 1) {
      ctx.add(
        here,
        `${address} is the ${offset === 0 ? "network" : "broadcast"} address of /${prefixLength}`,
        "pick a host address inside the subnet",
      );
      return undefined;
    }
  }
  if (isNodeAddress(ctx, here, address, nodes)) return undefined;
  return { address, prefixLength };
}

/** Reports a prefix length outside 1..max; true when it did. */
function badPrefix(
  ctx: Context,
  here: readonly Segment[],
  address: string,
  prefixLength: number,
  max: number,
  typical: number,
): boolean {
  if (prefixLength >= 1 && prefixLength <= max) return false;
  ctx.add(
    here,
    `prefix length /${prefixLength} is not in 1-${max}`,
    `write ${address}/${typical} (your subnet's prefix)`,
  );
  return true;
}

/** Reports a VIP that is a node's own address; true when it did. */
function isNodeAddress(
  ctx: Context,
  here: readonly Segment[],
  address: string,
  nodes: readonly NodeSpec[],
): boolean {
  const owner = nodes.find((n) => n.address === address);
  if (owner === undefined) return false;
  ctx.add(
    here,
    `${address} is the peer address of node ${owner.id}`,
    "use an address no node owns permanently; a VIP moves between nodes",
  );
  return true;
}

function readIpv6Vip(
  ctx: Context,
  here: readonly Segment[],
  value: bigint,
  prefixLength: number,
  nodes: readonly NodeSpec[],
): { address: string; prefixLength: number } | undefined {
  const address = ipv6Text(value);
  const problem = ipv6VipProblem(value);
  if (problem !== undefined) {
    ctx.add(
      here,
      `${address} ${problem}`,
      "float a global or unique-local address such as 2001:db8::100/64 or fd00::100/64",
    );
    return undefined;
  }
  if (badPrefix(ctx, here, address, prefixLength, 128, 64)) return undefined;
  if (prefixLength <= 126 && value % (1n << BigInt(128 - prefixLength)) === 0n) {
    ctx.add(
      here,
      `${address} is the subnet-router anycast address of /${prefixLength} (all host bits zero)`,
      "pick a host address inside the subnet",
    );
    return undefined;
  }
  if (isNodeAddress(ctx, here, address, nodes)) return undefined;
  return { address, prefixLength };
}

function readFailback(
  ctx: Context,
  obj: Obj,
  at: readonly Segment[],
  hasPreferred: boolean,
): Failback | undefined {
  const value = obj.failback;
  if (value === undefined) return hasPreferred ? { mode: "immediate" } : { mode: "never" };
  const fix = 'use immediate, never or "after 30s"';
  if (value === "immediate" || value === "never") return { mode: value };
  if (typeof value === "string") {
    const after = /^after\s+(.+)$/.exec(value.trim());
    const ms = after ? parseDuration(after[1]!) : undefined;
    if (ms !== undefined && ms > 0) return { mode: "after", afterMs: ms };
  }
  ctx.add(
    [...at, "failback"],
    `must be immediate, never or "after DURATION", got ${describe(value)}`,
    fix,
  );
  return undefined;
}

const apiKeys = ["listen", "token_file"];
const realtimeKeys = ["policy", "priority", "lock_memory", "required"];
const notifyKeys = ["command", "timeout", "style"];
const commonCheckKeys = ["name", "kind", "interval", "timeout", "fall", "within", "rise"];
const checkKinds = {
  link: ["interface"],
  tcp: ["host", "port"],
  http: ["url", "expect_status"],
  exec: ["command"],
  rbd: ["pool", "client_id", "ceph_conf"],
} as const;
type CheckKind = keyof typeof checkKinds;
const checkKindNames = Object.keys(checkKinds) as CheckKind[];
const allCheckKeys = [...commonCheckKeys, ...Object.values(checkKinds).flat()];

function readChecks(ctx: Context, raw: unknown): HealthCheckSpec[] | undefined {
  const items = list(
    ctx,
    raw,
    ["checks"],
    "checks: [ { name: uplink, kind: link, interface: eth0 } ]",
  );
  if (!items) return undefined;
  const checks: HealthCheckSpec[] = [];
  let broken = false;
  items.forEach((item, i) => {
    const check = readCheck(ctx, item, i);
    if (check) checks.push(check);
    else broken = true;
  });
  const rawName = (item: Obj) => (typeof item.name === "string" ? item.name : undefined);
  checkUnique(ctx, items, "checks", "name", rawName, "give each check its own name");
  return broken ? undefined : checks;
}

function readCheck(ctx: Context, raw: unknown, i: number): HealthCheckSpec | undefined {
  const at = ["checks", i];
  // Kind first: it decides which keys are allowed.
  const kindValue = isRecord(raw) ? raw.kind : undefined;
  const kind = checkKindNames.includes(kindValue as CheckKind)
    ? (kindValue as CheckKind)
    : undefined;
  const allowed = kind ? [...commonCheckKeys, ...checkKinds[kind]] : allCheckKeys;
  const obj = mapping(ctx, raw, at, allowed, "{ name: uplink, kind: link, interface: eth0 }");
  if (!obj) return undefined;
  if (kind === undefined) oneOf(ctx, obj, "kind", at, checkKindNames, undefined);
  const common = readCheckCommon(ctx, obj, at);
  const specific = kind ? readCheckKind(ctx, obj, at, kind) : undefined;
  if (!common || !specific) return undefined;
  return { ...common, ...specific } as HealthCheckSpec;
}

function readCheckCommon(ctx: Context, obj: Obj, at: readonly Segment[]): CheckCommon | undefined {
  const name = str(ctx, obj, "name", at, {
    required: true,
    pattern: namePattern,
    patternText: nameRule,
    maxLength: 63,
    example: "web",
  });
  const intervalMs = duration(ctx, obj, "interval", at, { min: 10, fallback: 1000, example: "1s" });
  const timeoutFallback =
    intervalMs === undefined ? undefined : Math.max(1, Math.floor(intervalMs / 2));
  const timeoutMs = duration(ctx, obj, "timeout", at, {
    min: 1,
    fallback: timeoutFallback ?? 1,
    example: "500ms",
  });
  const fall = int(ctx, obj, "fall", at, { min: 1, max: 1000, fallback: 3 });
  const windowFallback = intervalMs === undefined ? 1 : 10 * intervalMs;
  const fallWindowMs = duration(ctx, obj, "within", at, {
    min: 1,
    fallback: windowFallback,
    example: "10s",
  });
  const rise = int(ctx, obj, "rise", at, { min: 1, max: 1000, fallback: 2 });
  if (
    name === undefined ||
    intervalMs === undefined ||
    timeoutMs === undefined ||
    fall === undefined ||
    fallWindowMs === undefined ||
    rise === undefined
  ) {
    return undefined;
  }
  let ok = true;
  // A probe that may outlast its interval would overlap the next one.
  if (timeoutMs > intervalMs) {
    ctx.add(
      [...at, "timeout"],
      `(${timeoutMs} ms) must not exceed interval (${intervalMs} ms)`,
      `set timeout to at most ${intervalMs}ms`,
    );
    ok = false;
  }
  // Failures arrive at most one per interval; the window must be able to hold `fall` of them.
  if ((fall - 1) * intervalMs >= fallWindowMs) {
    ctx.add(
      [...at, "within"],
      `(${fallWindowMs} ms) cannot hold fall (${fall}) failures at one per interval (${intervalMs} ms), so the check could never fail`,
      `set within to more than ${(fall - 1) * intervalMs}ms, or lower fall`,
    );
    ok = false;
  }
  return ok ? { name, intervalMs, timeoutMs, fall, fallWindowMs, rise } : undefined;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type CheckSpecific = DistributiveOmit<HealthCheckSpec, keyof CheckCommon>;

function readCheckKind(
  ctx: Context,
  obj: Obj,
  at: readonly Segment[],
  kind: CheckKind,
): CheckSpecific | undefined {
  switch (kind) {
    case "link": {
      const iface = str(ctx, obj, "interface", at, {
        required: true,
        pattern: interfacePattern,
        patternText: interfaceRule,
        example: "eth0",
      });
      return iface === undefined ? undefined : { kind, interface: iface };
    }
    case "tcp": {
      const host = str(ctx, obj, "host", at, { required: true, example: "127.0.0.1" });
      const port = int(ctx, obj, "port", at, { min: 1, max: 65535, example: 80 });
      return host === undefined || port === undefined ? undefined : { kind, host, port };
    }
    case "http": {
      const url = str(ctx, obj, "url", at, {
        required: true,
        example: '"http://127.0.0.1:8080/health"',
      });
      const expectStatus = int(ctx, obj, "expect_status", at, {
        min: 100,
        max: 599,
        fallback: 200,
      });
      if (url !== undefined && !isHttpUrl(url)) {
        ctx.add(
          [...at, "url"],
          `"${url}" is not an http:// or https:// URL`,
          'write url: "http://127.0.0.1:8080/health"',
        );
        return undefined;
      }
      return url === undefined || expectStatus === undefined
        ? undefined
        : { kind, url, expectStatus };
    }
    case "exec": {
      const command = readCommand(ctx, obj, at);
      return command ? { kind, command } : undefined;
    }
    case "rbd": {
      const pool = str(ctx, obj, "pool", at, { required: true, example: "rbd" });
      const clientId = str(ctx, obj, "client_id", at, { example: "admin" });
      const cephConf = str(ctx, obj, "ceph_conf", at, { example: "/etc/ceph/ceph.conf" });
      if (pool === undefined) return undefined;
      if (
        (obj.client_id !== undefined && clientId === undefined) ||
        (obj.ceph_conf !== undefined && cephConf === undefined)
      ) {
        return undefined;
      }
      return {
        kind,
        pool,
        ...(clientId !== undefined ? { clientId } : {}),
        ...(cephConf !== undefined ? { cephConf: ctx.resolvePath(cephConf) } : {}),
      };
    }
  }
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

/** A command is a list of words run without a shell; a single string is a program without arguments. */
function readCommand(ctx: Context, obj: Obj, at: readonly Segment[]): string[] | undefined {
  const value = obj.command;
  const here = [...at, "command"];
  const fix = 'write command: ["/usr/local/bin/check", "--quick"] (no shell is used)';
  if (value === undefined) {
    ctx.add(here, "is required", fix);
    return undefined;
  }
  if (typeof value === "string" && value.trim() !== "") return [value];
  if (Array.isArray(value) && value.length > 0 && value.every((w) => typeof w === "string")) {
    if ((value[0] as string).trim() !== "") return value as string[];
  }
  ctx.add(here, `must be a non-empty list of strings, got ${describe(value)}`, fix);
  return undefined;
}

function readApi(ctx: Context, raw: unknown): ApiSpec | undefined {
  const obj =
    raw === undefined
      ? {}
      : mapping(ctx, raw, ["api"], apiKeys, `api: { listen: ${defaultApiListen} }`);
  if (!obj) return undefined;
  const listen =
    str(ctx, obj, "listen", ["api"], { example: defaultApiListen }) ??
    (obj.listen === undefined ? defaultApiListen : undefined);
  const tokenFile = str(ctx, obj, "token_file", ["api"], { example: "/etc/floatip/api.token" });
  if (listen === undefined || (obj.token_file !== undefined && tokenFile === undefined))
    return undefined;
  const { host, port } = splitHostPort(listen);
  const parsedPort = port === undefined ? undefined : parsePort(port);
  if (host === "" || parsedPort === undefined) {
    ctx.add(
      ["api", "listen"],
      `"${listen}" is not HOST:PORT with a port in 1-65535`,
      `write listen: ${defaultApiListen}`,
    );
    return undefined;
  }
  return {
    host,
    port: parsedPort,
    ...(tokenFile !== undefined ? { tokenFile: ctx.resolvePath(tokenFile) } : {}),
  };
}

function readRealtime(ctx: Context, raw: unknown): RealtimeSpec | undefined {
  const at = ["realtime"];
  const obj =
    raw === undefined
      ? {}
      : mapping(ctx, raw, at, realtimeKeys, "realtime: { policy: rr, priority: 10 }");
  if (!obj) return undefined;
  const policy = oneOf(ctx, obj, "policy", at, ["rr", "fifo", "off"] as const, "rr");
  const priority = int(ctx, obj, "priority", at, { min: 1, max: 99, fallback: 10 });
  const lockMemory = bool(ctx, obj, "lock_memory", at, true);
  const required = bool(ctx, obj, "required", at, false);
  if (policy === "off" && required === true) {
    ctx.add(
      [...at, "required"],
      "is true while policy is off",
      "set policy: rr (or fifo), or remove required",
    );
    return undefined;
  }
  if (
    policy === undefined ||
    priority === undefined ||
    lockMemory === undefined ||
    required === undefined
  )
    return undefined;
  return { policy, priority, lockMemory, required };
}

const arbiterKeys = ["kind", "endpoints", "prefix", "ttl", "on_loss", "timeout", "tls", "auth"];
const arbiterTlsKeys = ["ca", "cert", "key"];
const arbiterAuthKeys = ["user", "password_file"];
const arbiterExample =
  "arbiter: { kind: etcd, endpoints: [http://198.18.0.21:2379, http://198.18.0.22:2379, http://198.18.0.23:2379] }";

/**
 * `arbiter:` absent or `kind: embedded`: the embedded election (undefined). `kind: etcd`: the
 * etcd arbiter's settings. False: invalid (problems recorded).
 */
function readArbiter(ctx: Context, raw: unknown): EtcdArbiterSpec | undefined | false {
  if (raw === undefined) return undefined;
  const at = ["arbiter"];
  const obj = mapping(ctx, raw, at, arbiterKeys, arbiterExample);
  if (!obj) return false;
  const kind = oneOf(ctx, obj, "kind", at, ["embedded", "etcd"] as const, undefined);
  if (kind === undefined) return false;
  if (kind === "embedded") {
    const extra = Object.keys(obj).filter((k) => k !== "kind");
    for (const key of extra) {
      ctx.add([...at, key], "applies to kind: etcd only", "remove it, or set kind: etcd");
    }
    return extra.length > 0 ? false : undefined;
  }
  let ok = true;
  const endpoints: string[] = [];
  const rawEndpoints = list(ctx, obj.endpoints, [...at, "endpoints"], "[http://198.18.0.21:2379]");
  if (rawEndpoints === undefined) ok = false;
  else if (rawEndpoints.length === 0) {
    ctx.add([...at, "endpoints"], "is required for kind: etcd", `add ${arbiterExample}`);
    ok = false;
  }
  (rawEndpoints ?? []).forEach((value, i) => {
    const text = typeof value === "string" ? value : "";
    const match = /^(https?):\/\/(\[[0-9a-fA-F:.]+\]|[^\s/:[\]]+):(\d{1,5})$/.exec(text);
    const port = match ? Number(match[3]) : 0;
    if (!match || port < 1 || port > 65535) {
      ctx.add(
        [...at, "endpoints", i],
        `${describe(value)} is not an etcd client URL`,
        "write http://HOST:PORT or https://HOST:PORT (etcd's --advertise-client-urls), e.g. http://198.18.0.21:2379",
      );
      ok = false;
      return;
    }
    endpoints.push(text);
  });
  const prefix =
    str(ctx, obj, "prefix", at, {
      pattern: /^\/[A-Za-z0-9._\-/]*$/,
      patternText: "an etcd key prefix starting with '/'",
      example: "/floatip",
    }) ?? (obj.prefix === undefined ? "/floatip" : undefined);
  const ttlMs = duration(ctx, obj, "ttl", at, { min: 1000, fallback: 2000, example: "2s" });
  if (ttlMs !== undefined && ttlMs % 1000 !== 0) {
    ctx.add(
      [...at, "ttl"],
      `must be whole seconds (etcd leases are), got ${ttlMs} ms`,
      "write ttl: 2s",
    );
    ok = false;
  }
  const onLoss = oneOf(ctx, obj, "on_loss", at, ["release", "failsafe"] as const, "release");
  const timeoutMs = duration(ctx, obj, "timeout", at, { min: 50, fallback: 1000, example: "1s" });
  if (ttlMs !== undefined && timeoutMs !== undefined && timeoutMs >= ttlMs) {
    ctx.add(
      [...at, "timeout"],
      `(${timeoutMs} ms) must be shorter than ttl (${ttlMs} ms): a keep-alive answered later is of no use`,
      "write timeout: 1s with ttl: 2s, or raise ttl",
    );
    ok = false;
  }
  let tls: EtcdArbiterSpec["tls"];
  if (obj.tls !== undefined) {
    const t = mapping(
      ctx,
      obj.tls,
      [...at, "tls"],
      ["ca", "cert", "key"],
      "tls: { ca: etcd-ca.pem, cert: client.pem, key: client-key.pem }",
    );
    if (!t) ok = false;
    else {
      const ca = str(ctx, t, "ca", [...at, "tls"], {
        required: true,
        example: "/etc/floatip/etcd-ca.pem",
      });
      const cert = str(ctx, t, "cert", [...at, "tls"], { example: "/etc/floatip/etcd-client.pem" });
      const key = str(ctx, t, "key", [...at, "tls"], {
        example: "/etc/floatip/etcd-client-key.pem",
      });
      if ((t.cert === undefined) !== (t.key === undefined)) {
        ctx.add(
          [...at, "tls"],
          "has only one of cert and key",
          "give both (a client certificate and its key), or neither",
        );
        ok = false;
      }
      if (
        ca === undefined ||
        (t.cert !== undefined && cert === undefined) ||
        (t.key !== undefined && key === undefined)
      )
        ok = false;
      else {
        tls = {
          ca: ctx.resolvePath(ca),
          ...(cert !== undefined ? { cert: ctx.resolvePath(cert) } : {}),
          ...(key !== undefined ? { key: ctx.resolvePath(key) } : {}),
        };
      }
    }
  }
  const schemes = new Set(endpoints.map((e) => e.split(":")[0]));
  if (schemes.size > 1) {
    ctx.add(
      [...at, "endpoints"],
      "mixes http:// and https://",
      "use https:// for every endpoint (with tls:), or http:// for every one",
    );
    ok = false;
  } else if (schemes.has("https") && obj.tls === undefined) {
    ctx.add(
      [...at, "tls"],
      "is required with https:// endpoints",
      "add tls: { ca: /etc/floatip/etcd-ca.pem } (and cert, key for client certificates)",
    );
    ok = false;
  } else if (schemes.has("http") && obj.tls !== undefined) {
    ctx.add(
      [...at, "endpoints"],
      "are http:// while tls: is set",
      "write https:// endpoints, or remove tls:",
    );
    ok = false;
  }
  let auth: EtcdArbiterSpec["auth"];
  if (obj.auth !== undefined) {
    const a = mapping(
      ctx,
      obj.auth,
      [...at, "auth"],
      ["user", "password_file"],
      "auth: { user: floatip, password_file: etcd.password }",
    );
    if (!a) ok = false;
    else {
      const user = str(ctx, a, "user", [...at, "auth"], { required: true, example: "floatip" });
      const passwordFile = str(ctx, a, "password_file", [...at, "auth"], {
        required: true,
        example: "/etc/floatip/etcd.password",
      });
      if (user === undefined || passwordFile === undefined) ok = false;
      else auth = { user, passwordFile: ctx.resolvePath(passwordFile) };
    }
  }
  if (
    !ok ||
    prefix === undefined ||
    ttlMs === undefined ||
    onLoss === undefined ||
    timeoutMs === undefined
  )
    return false;
  return {
    kind: "etcd",
    endpoints,
    prefix,
    ttlSec: ttlMs / 1000,
    onLoss,
    requestTimeoutMs: timeoutMs,
    ...(tls ? { tls } : {}),
    ...(auth ? { auth } : {}),
  };
}

const tickleKeys = ["enabled", "scan_interval"];

function readTickle(ctx: Context, raw: unknown): TickleSpec | undefined {
  const at = ["tickle"];
  const obj =
    raw === undefined
      ? {}
      : mapping(ctx, raw, at, tickleKeys, "tickle: { enabled: true, scan_interval: 1s }");
  if (!obj) return undefined;
  const enabled = bool(ctx, obj, "enabled", at, true);
  const scanIntervalMs = duration(ctx, obj, "scan_interval", at, {
    min: 100,
    fallback: 1000,
    example: "1s",
  });
  if (enabled === undefined || scanIntervalMs === undefined) return undefined;
  return { enabled, scanIntervalMs };
}

function bool(
  ctx: Context,
  obj: Obj,
  key: string,
  at: readonly Segment[],
  fallback: boolean,
): boolean | undefined {
  const value = obj[key];
  if (value === undefined) return fallback;
  if (typeof value === "boolean") return value;
  ctx.add(
    [...at, key],
    `must be true or false, got ${describe(value)}`,
    `write ${key}: ${fallback}`,
  );
  return undefined;
}

function readNotify(ctx: Context, raw: unknown): NotifySpec | undefined {
  const obj = mapping(
    ctx,
    raw,
    ["notify"],
    notifyKeys,
    "notify: { command: /usr/local/bin/floatip-notify }",
  );
  if (!obj) return undefined;
  const style = obj.style ?? "floatip";
  if (style !== "floatip" && style !== "keepalived") {
    ctx.add(
      ["notify", "style"],
      `must be floatip or keepalived, got ${describe(style)}`,
      "write style: keepalived to call the script as keepalived's notify (INSTANCE NAME STATE PRIORITY), or leave it out",
    );
    return undefined;
  }
  const command = str(ctx, obj, "command", ["notify"], {
    required: true,
    example: "/usr/local/bin/floatip-notify",
  });
  const timeoutMs = duration(ctx, obj, "timeout", ["notify"], {
    min: 1,
    fallback: 5000,
    example: "5s",
  });
  return command === undefined || timeoutMs === undefined
    ? undefined
    : { command, timeoutMs, style };
}

function readAddressLifetime(
  ctx: Context,
  root: Obj,
  timers: Timers | undefined,
): number | undefined {
  const ms = duration(ctx, root, "address_lifetime", [], {
    min: 1000,
    fallback: defaultAddressLifetimeSec * 1000,
    example: "3s",
  });
  if (ms === undefined) return undefined;
  if (ms % 1000 !== 0) {
    ctx.add(
      ["address_lifetime"],
      `must be whole seconds (the kernel counts valid_lft in seconds), got ${ms} ms`,
      `write address_lifetime: ${Math.ceil(ms / 1000)}s`,
    );
    return undefined;
  }
  // The kernel must not drop a VIP while its owner's lease is still valid.
  if (timers && ms <= timers.leaseMs) {
    ctx.add(
      ["address_lifetime"],
      `(${ms / 1000} s) must be longer than lease_ms (${timers.leaseMs} ms): the kernel would drop VIPs of healthy owners`,
      `write address_lifetime: ${Math.floor(timers.leaseMs / 1000) + 1}s or more`,
    );
    return undefined;
  }
  return ms / 1000;
}

// ---------------------------------------------------------------------------------------------

function deepFreeze<T>(value: T): T {
  if (typeof value !== "object" || value === null || Object.isFrozen(value)) return value;
  for (const key of Reflect.ownKeys(value))
    deepFreeze((value as Record<PropertyKey, unknown>)[key]);
  return Object.freeze(value);
}

/**
 * Every key the loader accepts, per section, in the order the reference lists them: the one
 * source of the key lists above, read by the manual page generator (src/cli/manual.ts) and
 * checked against its descriptions (src/config/reference.ts) so that they cannot drift.
 * Capability sections (relays, storage, traffic) are documented by their own modules.
 */
export const configSchema: Readonly<Record<string, readonly string[]>> = {
  "": rootKeys,
  timers: Object.keys(profiles.lan).map(snake),
  "nodes[]": nodeKeys,
  "vips[]": vipKeys,
  "checks[]": allCheckKeys,
  api: apiKeys,
  notify: notifyKeys,
  realtime: realtimeKeys,
  tickle: tickleKeys,
  arbiter: arbiterKeys,
  "arbiter.tls": arbiterTlsKeys,
  "arbiter.auth": arbiterAuthKeys,
};
