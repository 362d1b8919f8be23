/**
 * `floatip status [--json] [--api HOST:PORT | --config FILE]`: one screen with what an
 * operator asks first (like `ctdb status` followed by `ctdb ip`): who is coordinator in which
 * term, whether this node is healthy, has quorum and a valid lease, the members, and where
 * every VIP is, with conflicts spelled out.
 */
import { ApiClient, CliError, parseCommonFlags, resolveTarget, runCli, table } from "../client.ts";

export const usage =
  "usage: floatip status [--cluster] [--json] [--api HOST:PORT | --config FILE]\n" +
  "  --cluster  every node's own view side by side (term, role, coordinator, table, config,\n" +
  "             lease left, whom it hears), as each last reported it in a heartbeat\n";

/** The status as it arrives over JSON (undefined fields come as null). */
export interface StatusView {
  cluster: string;
  profile: string;
  node: string;
  incarnation: number;
  startedAt: string;
  role: string;
  term: number;
  coordinator: string | null;
  healthy: boolean;
  quorum: boolean;
  leaseValid: boolean;
  tableVersion: [number, number];
  /** Absent from agents older than the configuration fingerprint. */
  config?: { fingerprint: string; coordinator?: string; matchesCoordinator: boolean };
  health: {
    healthy: boolean;
    checks: { name: string; kind: string; up: boolean; lastDetail: string }[];
  };
  members: { id: string; state: string; heard: boolean }[];
  vips: VipView[];
  /** Each capability's own status (relays, storage, traffic), by section name. */
  capabilities?: Record<string, unknown>;
  /** `arbiter: etcd` only. */
  arbiter?: {
    kind: string;
    connected?: boolean;
    leaseId?: string;
    revision?: number;
    onLoss?: string;
    endpoints?: string[];
  };
  /** Absent from agents older than `status --cluster`. */
  view?: { coordinator?: string; leaseLeftMs: number; heardMs: Record<string, number> };
  peers?: PeerView[];
}

export interface PeerView {
  id: string;
  heardAgoMs: number | null;
  incarnation: number;
  term: number;
  role: string;
  healthy: boolean;
  leaving: boolean;
  quorum: boolean;
  tableVersion: [number, number];
  config: string;
  holding: string[];
  coordinator: string | null;
  leaseLeftMs: number | null;
  heardMs: Record<string, number> | null;
}

/** One row of `status --cluster`: a node's view, live for this node, reported for the others. */
export interface ClusterRow {
  id: string;
  self: boolean;
  /** Ms since this node heard it (0 for itself; null: never). */
  heardAgoMs: number | null;
  term: number | null;
  role: string | null;
  coordinator: string | null;
  tableVersion: [number, number] | null;
  config: string | null;
  leaseLeftMs: number | null;
  healthy: boolean | null;
  quorum: boolean | null;
  heardMs: Record<string, number> | null;
  holding: string[];
}

export interface ClusterView {
  cluster: string;
  observer: string;
  rows: ClusterRow[];
  /** What the rows disagree on, in words (empty: one view). */
  disagreements: string[];
}

export function clusterView(status: StatusView): ClusterView {
  if (!status.peers || !status.view) {
    throw new CliError(
      "BAD_RESPONSE",
      "this agent predates status --cluster (no peer views in /v1/status); upgrade it",
    );
  }
  const self: ClusterRow = {
    id: status.node,
    self: true,
    heardAgoMs: 0,
    term: status.term,
    role: status.role,
    coordinator: status.coordinator ?? null,
    tableVersion: status.tableVersion,
    config: status.config?.fingerprint ?? null,
    leaseLeftMs: status.view.leaseLeftMs,
    healthy: status.healthy,
    quorum: status.quorum,
    heardMs: status.view.heardMs,
    holding: status.vips.filter((v) => v.local !== "absent").map((v) => v.address),
  };
  const rows: ClusterRow[] = [self];
  for (const peer of status.peers) {
    const heard = peer.heardAgoMs !== null;
    rows.push({
      id: peer.id,
      self: false,
      heardAgoMs: peer.heardAgoMs,
      term: heard ? peer.term : null,
      role: heard ? peer.role : null,
      coordinator: heard ? peer.coordinator : null,
      tableVersion: heard ? peer.tableVersion : null,
      config: heard ? peer.config : null,
      leaseLeftMs: heard ? peer.leaseLeftMs : null,
      healthy: heard ? peer.healthy : null,
      quorum: heard ? peer.quorum : null,
      heardMs: heard ? peer.heardMs : null,
      holding: peer.holding,
    });
  }
  rows.sort((a, b) => a.id.localeCompare(b.id));
  return {
    cluster: status.cluster,
    observer: status.node,
    rows,
    disagreements: disagreements(rows, status.node),
  };
}

/** A row older than this is called stale in the text view. */
const staleAfterMs = 1000;

function disagreements(rows: readonly ClusterRow[], observer: string): string[] {
  const out: string[] = [];
  for (const row of rows) {
    if (row.heardAgoMs === null) out.push(`${row.id}: never heard by ${observer}`);
    else if (row.heardAgoMs > staleAfterMs)
      out.push(`${row.id}: last heard ${seconds(row.heardAgoMs)} ago; its row is that old`);
  }
  // A stale row is named once above; comparing it would only repeat how old it is.
  const heard = rows.filter(
    (r) => r.term !== null && r.heardAgoMs !== null && r.heardAgoMs <= staleAfterMs,
  );
  const distinct = (pick: (r: ClusterRow) => string) => new Set(heard.map(pick));
  const spread = (what: string, pick: (r: ClusterRow) => string) => {
    if (distinct(pick).size <= 1) return;
    out.push(`${what} differs: ${heard.map((r) => `${r.id} ${pick(r)}`).join(", ")}`);
  };
  spread("term", (r) => String(r.term));
  spread("coordinator", (r) => r.coordinator ?? "none");
  spread("table", (r) => r.tableVersion!.join("."));
  spread("config fingerprint", (r) => r.config || "-");
  const holders = new Map<string, string[]>();
  for (const row of heard) {
    for (const address of row.holding)
      holders.set(address, [...(holders.get(address) ?? []), row.id]);
  }
  for (const [address, ids] of holders) {
    if (ids.length > 1) out.push(`${address} reported by ${ids.join(" and ")}`);
  }
  return out;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function heardText(row: ClusterRow): string {
  if (row.self) return "self";
  if (row.heardAgoMs === null) return "NEVER";
  return row.heardAgoMs > staleAfterMs
    ? `${seconds(row.heardAgoMs)} STALE`
    : seconds(row.heardAgoMs);
}

function hearsText(row: ClusterRow): string {
  if (!row.heardMs) return "-";
  const entries = Object.entries(row.heardMs).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return "nobody";
  return entries.map(([id, ms]) => `${id} ${seconds(ms)}`).join(", ");
}

export function renderClusterView(view: ClusterView): string {
  const flag = (value: boolean | null, yes: string, no: string) =>
    value === null ? "-" : value ? yes : no;
  const rows = table([
    [
      "NODE",
      "HEARD",
      "TERM",
      "ROLE",
      "COORDINATOR",
      "TABLE",
      "CONFIG",
      "LEASE",
      "HEALTH",
      "QUORUM",
      "HEARS (ago)",
      "HOLDS",
    ],
    ...view.rows.map((r) => [
      r.self ? `${r.id}*` : r.id,
      heardText(r),
      r.term === null ? "-" : String(r.term),
      r.role ?? "-",
      r.term === null ? "-" : (r.coordinator ?? "none"),
      r.tableVersion ? r.tableVersion.join(".") : "-",
      r.config === null ? "-" : r.config || "-",
      r.leaseLeftMs === null ? "-" : r.leaseLeftMs > 0 ? seconds(r.leaseLeftMs) : "NONE",
      flag(r.healthy, "healthy", "UNHEALTHY"),
      flag(r.quorum, "yes", "NO"),
      hearsText(r),
      r.holding.length === 0 ? "-" : r.holding.join(" "),
    ]),
  ]);
  const footer =
    view.disagreements.length === 0
      ? "Every node reports the same term, coordinator, table and configuration.\n"
      : `Disagreements:\n${view.disagreements.map((d) => `  ${d}`).join("\n")}\n`;
  return (
    `Cluster ${view.cluster} as ${view.observer} sees it (* = this node, live; every other row is ` +
    `what that node reported in its latest heartbeat here)\n\n${rows}\n\n${footer}`
  );
}

export interface VipView {
  address: string;
  owner: string | null;
  desiredOwner: string | null;
  local: string;
  since: string | null;
  /** How long its owner has held it, as the owner reported; absent while not (yet) held. */
  heldForMs?: number | null;
  conflict: boolean;
  explain: string;
}

/** `2030-01-01T00:00:01.000Z` -> `2030-01-01 00:00:01Z`; `-` when unknown. */
export function shortTime(iso: string | null | undefined): string {
  if (!iso) return "-";
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function conflictText(vip: VipView): string {
  return vip.conflict ? "CONFLICT (occupied by another host)" : "";
}

function healthText(status: StatusView): string {
  const checks = status.health?.checks ?? [];
  if (status.healthy)
    return checks.length === 0
      ? "healthy (no checks configured)"
      : `healthy (${checks.length} checks up)`;
  const down = checks.filter((c) => !c.up).map((c) => `${c.name}: ${c.lastDetail || "down"}`);
  return down.length > 0
    ? `UNHEALTHY (${down.join("; ")})`
    : "UNHEALTHY (leaving or self-check failed)";
}

function configText(status: StatusView): string {
  const config = status.config;
  if (config === undefined) return "-";
  if (config.matchesCoordinator) return `fingerprint ${config.fingerprint || "-"}`;
  return `fingerprint ${config.fingerprint}: DIFFERS from the coordinator's ${config.coordinator ?? "?"} (holds no VIPs until they match)`;
}

export function renderStatus(status: StatusView): string {
  const coordinator = status.coordinator ?? "none (election in progress or no quorum)";
  const summary = table([
    ["cluster", `${status.cluster} (profile ${status.profile})`],
    [
      "node",
      `${status.node} (incarnation ${status.incarnation}, up since ${shortTime(status.startedAt)})`,
    ],
    ["role", status.role],
    ["term", String(status.term)],
    ["coordinator", coordinator],
    ["health", healthText(status)],
    ...(status.arbiter
      ? [
          [
            "arbiter",
            `etcd, ${status.arbiter.connected ? "reachable" : "UNREACHABLE"}, lease ${status.arbiter.leaseId ?? "none"}, revision ${status.arbiter.revision ?? 0}, on_loss ${status.arbiter.onLoss ?? "release"}`,
          ],
          [
            "session",
            status.quorum
              ? "valid (etcd confirmed the lease in time)"
              : "NOT VALID (holds no VIPs unless failsafe)",
          ],
        ]
      : [
          [
            "quorum",
            status.quorum ? "yes (hears a majority)" : "NO (hears no majority: holds no VIPs)",
          ],
        ]),
    ["lease", status.leaseValid ? "valid" : "NOT VALID (holds no VIPs)"],
    ["table", status.tableVersion.join(".")],
    ["config", configText(status)],
  ]);
  const members = table([
    ["ID", "STATE", "HEARD"],
    ...status.members.map((m) => [
      m.id === status.node ? `${m.id}*` : m.id,
      m.state,
      m.id === status.node ? "self" : m.heard ? "yes" : "NO",
    ]),
  ]);
  const vips = table([
    ["ADDRESS", "OWNER", "LOCAL", "SINCE", "CONFLICT"],
    ...status.vips.map((v) => [
      v.address,
      v.owner ?? "-",
      v.local,
      shortTime(v.since),
      conflictText(v),
    ]),
  ]);
  const capabilities = capabilityLines(status.capabilities);
  const capabilityText =
    capabilities.length > 0 ? `\n\nCapabilities\n${capabilities.join("\n")}` : "";
  const conflicts = status.vips.filter((v) => v.conflict).length;
  const footer =
    conflicts > 0
      ? `\n${conflicts} VIP(s) in CONFLICT: another host answers for the address; find it with arping.\n`
      : "";
  return `${summary}\n\nMembers (* = this node)\n${members}\n\nVIPs\n${vips}${capabilityText}\n${footer}`;
}

/** What an operator reads first, when a capability or item has it. */
const firstKeys = ["name", "running", "serving", "active", "mode", "listen"];

/** Plain values of an object as `key=value`, at most `limit` of them, `firstKeys` first. */
function scalars(value: Record<string, unknown>, limit = 8): string {
  const rank = (key: string) =>
    firstKeys.includes(key) ? firstKeys.indexOf(key) : firstKeys.length;
  return Object.entries(value)
    .sort(([a], [b]) => rank(a) - rank(b))
    .filter(([, v]) => ["string", "number", "boolean"].includes(typeof v) || v === null)
    .filter(([, v]) => typeof v !== "string" || v.length <= 60)
    .slice(0, limit)
    .map(([k, v]) => `${k}=${v === null ? "-" : String(v)}`)
    .join(" ");
}

/**
 * One line per capability (its plain fields), and one per named item it lists (a relay):
 * what `--json` has in full under `capabilities`.
 */
export function capabilityLines(capabilities: Record<string, unknown> | undefined): string[] {
  const lines: string[] = [];
  for (const [name, raw] of Object.entries(capabilities ?? {})) {
    if (typeof raw !== "object" || raw === null) {
      lines.push(`${name}: ${String(raw)}`);
      continue;
    }
    const value = raw as Record<string, unknown>;
    const own = scalars(value);
    lines.push(own === "" ? `${name}:` : `${name}: ${own}`);
    for (const list of Object.values(value)) {
      if (!Array.isArray(list)) continue;
      for (const item of list) {
        if (typeof item !== "object" || item === null || !("name" in item)) continue;
        lines.push(`  ${scalars(item as Record<string, unknown>)}`);
      }
    }
  }
  return lines;
}

export async function run(args: string[]): Promise<number> {
  return runCli("status", usage, async () => {
    const flags = parseCommonFlags(args, ["--cluster"]);
    if (flags.positional.length > 0)
      throw new CliError("USAGE", `unexpected argument ${flags.positional[0]}`);
    const client = new ApiClient(resolveTarget(flags));
    const status = await client.get<StatusView>("/v1/status");
    if (flags.switches.has("--cluster")) {
      const view = clusterView(status);
      process.stdout.write(
        flags.json ? `${JSON.stringify(view, null, 2)}\n` : renderClusterView(view),
      );
      return 0;
    }
    process.stdout.write(
      flags.json ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status),
    );
    return 0;
  });
}
