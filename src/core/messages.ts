/**
 * Structural validation of peer messages. The transport already authenticated the datagram;
 * this guards the core against a peer running another version or a bug: anything that does
 * not have exactly the expected shape is rejected (and counted by the caller), never
 * half-applied.
 */
import {
  type AdminCommand,
  type EmbeddedMessage,
  failoverPhaseCodes,
  type TableVersion,
  type VipTable,
} from "./types.ts";
import { isCount, isName, isRecord } from "./validate.ts";

type Shape = Record<string, unknown>;

function isIndexList(value: unknown, limit: number): value is number[] {
  return Array.isArray(value) && value.every((v) => isCount(v) && v < limit);
}

function isVersion(value: unknown): value is TableVersion {
  return Array.isArray(value) && value.length === 2 && isCount(value[0]) && isCount(value[1]);
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string" && v.length < 256);
}

const memberStates = new Set(["healthy", "failed", "drained"]);
const roles = new Set(["follower", "candidate", "coordinator"]);

function isTable(value: unknown, nodeCount: number, vipCount: number): value is VipTable {
  if (!isRecord(value)) return false;
  const { version, owners, pins, drained, roundRobinCursor, members } = value;
  return (
    isVersion(version) &&
    Array.isArray(owners) &&
    owners.length === vipCount &&
    owners.every(
      (o) => Number.isSafeInteger(o) && (o as number) >= -1 && (o as number) < nodeCount,
    ) &&
    Array.isArray(pins) &&
    pins.every(
      (p) =>
        Array.isArray(p) &&
        p.length === 2 &&
        isCount(p[0]) &&
        p[0] < vipCount &&
        isCount(p[1]) &&
        p[1] < nodeCount,
    ) &&
    isIndexList(drained, nodeCount) &&
    isCount(roundRobinCursor) &&
    Array.isArray(members) &&
    members.length === nodeCount &&
    members.every((m) => memberStates.has(m as string)) &&
    (value.why === undefined ||
      (typeof value.why === "string" &&
        value.why.length === vipCount &&
        /^[a-zA-Z-]*$/.test(value.why)))
  );
}

function isGrants(value: unknown): value is Record<string, readonly [number, number]> {
  if (!isRecord(value)) return false;
  return Object.values(value).every(
    (g) => Array.isArray(g) && g.length === 2 && isCount(g[0]) && isCount(g[1]),
  );
}

function isSighting(value: unknown): boolean {
  return (
    isRecord(value) &&
    typeof value.coordinator === "string" &&
    value.coordinator.length < 256 &&
    isCount(value.term) &&
    isCount(value.firstAgoMs) &&
    isCount(value.lastAgoMs) &&
    value.lastAgoMs <= value.firstAgoMs
  );
}

function isAdminCommand(value: unknown): value is AdminCommand {
  if (!isRecord(value)) return false;
  switch (value.type) {
    case "move":
      return typeof value.vip === "string" && typeof value.node === "string";
    case "unpin":
      return typeof value.vip === "string";
    case "drain":
      return (
        typeof value.node === "string" &&
        (value.force === undefined || typeof value.force === "boolean")
      );
    case "undrain":
      return typeof value.node === "string";
    default:
      return false;
  }
}

/** The fields of a heartbeat that mean the same whatever the sender's configuration. */
function isHeartbeatBase(raw: Shape): boolean {
  return (
    roles.has(raw.role as string) &&
    isCount(raw.incarnation) &&
    isCount(raw.seq) &&
    typeof raw.healthy === "boolean" &&
    typeof raw.leaving === "boolean" &&
    typeof raw.quorum === "boolean" &&
    isStringList(raw.hears) &&
    isVersion(raw.tableVersion) &&
    isCount(raw.roundSeen) &&
    (raw.round === undefined || isCount(raw.round)) &&
    (raw.resign === undefined || typeof raw.resign === "boolean") &&
    (raw.view === undefined || isView(raw.view))
  );
}

/** A heartbeat's `view`: display only, but bounded like everything else that arrives. */
function isView(raw: unknown): boolean {
  if (!isRecord(raw)) return false;
  if (raw.coordinator !== undefined && !isName(raw.coordinator)) return false;
  if (!isCount(raw.leaseLeftMs)) return false;
  if (!isRecord(raw.heardMs)) return false;
  const entries = Object.entries(raw.heardMs);
  if (entries.length > 256 || !entries.every(([id, ms]) => isName(id) && isCount(ms))) return false;
  if (raw.missed !== undefined) {
    if (!isRecord(raw.missed)) return false;
    const missed = Object.entries(raw.missed);
    if (missed.length > 256 || !missed.every(([id, n]) => isName(id) && isCount(n))) return false;
  }
  if (raw.version !== undefined && (typeof raw.version !== "string" || raw.version.length > 64))
    return false;
  if (
    raw.phases !== undefined &&
    !(
      Array.isArray(raw.phases) &&
      raw.phases.length <= 64 &&
      raw.phases.every(
        (m) =>
          Array.isArray(m) &&
          m.length === 5 &&
          Number.isInteger(m[0]) &&
          m[0] >= 0 &&
          m[0] < failoverPhaseCodes.length &&
          isCount(m[1]) &&
          isCount(m[2]) &&
          Number.isInteger(m[3]) &&
          m[3] >= -1 &&
          Number.isInteger(m[4]) &&
          m[4] >= -1,
      )
    )
  )
    return false;
  return (
    raw.held === undefined ||
    (Array.isArray(raw.held) &&
      raw.held.every((h) => Array.isArray(h) && h.length === 2 && isCount(h[0]) && isCount(h[1])))
  );
}

/**
 * Returns the message if it has exactly a known shape for this cluster, else undefined.
 *
 * A heartbeat whose `config` fingerprint differs from `fingerprint` comes from a node with
 * another cluster configuration: its VIP and node indexes mean something else here. It is
 * still a heartbeat (liveness, term, role), so it is returned without what is indexed —
 * `holding` and `conflicts` empty, no `table` — and those fields are not checked against
 * this node's counts.
 */
export function parseMessage(
  raw: unknown,
  nodeCount: number,
  vipCount: number,
  fingerprint = "",
): EmbeddedMessage | undefined {
  if (!isRecord(raw) || !isCount(raw.term)) return undefined;
  switch (raw.type) {
    case "heartbeat": {
      if (raw.config !== undefined && (typeof raw.config !== "string" || raw.config.length > 64))
        return undefined;
      if (!isHeartbeatBase(raw)) return undefined;
      if ((raw.config ?? "") !== fingerprint) {
        const { table: _table, grants: _grants, view, ...rest } = raw;
        // VIP indexes mean something else under another configuration: no `held` either.
        const { held: _held, phases: _phases, ...viewRest } = (view ?? {}) as Shape;
        return {
          ...rest,
          ...(view === undefined ? {} : { view: viewRest }),
          holding: [],
          conflicts: [],
        } as unknown as EmbeddedMessage;
      }
      const held = (raw.view as Shape | undefined)?.held as [number, number][] | undefined;
      const phases = (raw.view as Shape | undefined)?.phases as number[][] | undefined;
      const ok =
        (held === undefined || held.every(([vip]) => vip < vipCount)) &&
        (phases === undefined || phases.every((m) => m[3]! < vipCount && m[4]! < nodeCount)) &&
        isIndexList(raw.holding, vipCount) &&
        isIndexList(raw.conflicts, vipCount) &&
        (raw.table === undefined || isTable(raw.table, nodeCount, vipCount)) &&
        (raw.grants === undefined || isGrants(raw.grants));
      return ok ? (raw as unknown as EmbeddedMessage) : undefined;
    }
    case "pre-vote-request":
    case "vote-request":
      return isVersion(raw.tableVersion) ? (raw as unknown as EmbeddedMessage) : undefined;
    case "pre-vote-response":
    case "vote-response":
      return typeof raw.granted === "boolean" && (raw.seen === undefined || isSighting(raw.seen))
        ? (raw as unknown as EmbeddedMessage)
        : undefined;
    case "admin":
      return isAdminCommand(raw.command) ? (raw as unknown as EmbeddedMessage) : undefined;
    default:
      return undefined;
  }
}

export function compareVersions(a: TableVersion, b: TableVersion): number {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1];
}
