/**
 * `floatip status [--json] [--api HOST:PORT | --config FILE]`: one screen with what an
 * operator asks first (like `ctdb status` followed by `ctdb ip`): who is coordinator in which
 * term, whether this node is healthy, has quorum and a valid lease, the members, and where
 * every VIP is, with conflicts spelled out.
 */
import { ApiClient, CliError, parseCommonFlags, resolveTarget, runCli, table } from "../client.ts";

export const usage = "usage: floatip status [--json] [--api HOST:PORT | --config FILE]\n";

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
}

export interface VipView {
  address: string;
  owner: string | null;
  desiredOwner: string | null;
  local: string;
  since: string | null;
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
    ["quorum", status.quorum ? "yes (hears a majority)" : "NO (hears no majority: holds no VIPs)"],
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
  const conflicts = status.vips.filter((v) => v.conflict).length;
  const footer =
    conflicts > 0
      ? `\n${conflicts} VIP(s) in CONFLICT: another host answers for the address; find it with arping.\n`
      : "";
  return `${summary}\n\nMembers (* = this node)\n${members}\n\nVIPs\n${vips}\n${footer}`;
}

export async function run(args: string[]): Promise<number> {
  return runCli("status", usage, async () => {
    const flags = parseCommonFlags(args);
    if (flags.positional.length > 0)
      throw new CliError("USAGE", `unexpected argument ${flags.positional[0]}`);
    const client = new ApiClient(resolveTarget(flags));
    const status = await client.get<StatusView>("/v1/status");
    process.stdout.write(
      flags.json ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status),
    );
    return 0;
  });
}
