/**
 * The S3 index table: which node backs up its traffic samples to which other node, and which
 * nodes are Failed. The coordinator (S3's master node) is the only writer; it applies the
 * functions below and pushes every new version to all nodes, which keep the highest version
 * they have seen. Pure: no I/O, no clock.
 *
 * Placement rule ("chain"): every Normal node backs up to the next Normal node after it in
 * ring (config) order. A Failed node's row keeps pointing at the node that holds its data
 * (its custodian), so a query for a Failed node is answered there. A custodian forwards the
 * data it holds for Failed nodes to its own backup target, so when the custodian fails too,
 * the Failed node's row is re-pointed to the custodian's target, which already has the data.
 */

export type NodeStatus = "Normal" | "Failed";

export interface IndexRow {
  readonly nodeId: string;
  readonly nodeIps: readonly string[];
  /** Undefined only when no other Normal node exists. */
  readonly backupTargetId: string | undefined;
  readonly backupTargetIp: string | undefined;
  readonly status: NodeStatus;
}

export interface IndexTable {
  /** Bumped on every change; nodes ignore tables with a version not above their own. */
  readonly version: number;
  /** In ring (config) order. */
  readonly rows: readonly IndexRow[];
}

export interface NodeEntry {
  readonly id: string;
  readonly ips: readonly string[];
}

export type IndexTableErrorCode =
  | "UNKNOWN_NODE"
  | "REPORTER_FAILED"
  | "NOT_REPORTERS_TARGET"
  | "ALREADY_FAILED";

export type TableResult =
  | { readonly ok: true; readonly table: IndexTable; readonly changed: boolean }
  | { readonly ok: false; readonly code: IndexTableErrorCode; readonly table: IndexTable };

/** The version-1 table for a fresh cluster: all nodes Normal, chained in ring order. */
export function buildIndexTable(nodes: readonly NodeEntry[]): IndexTable {
  const ids = new Set(nodes.map((n) => n.id));
  if (ids.size !== nodes.length) throw new Error("buildIndexTable: duplicate node id");
  const rows: IndexRow[] = nodes.map((n) => ({
    nodeId: n.id,
    nodeIps: [...n.ips],
    backupTargetId: undefined,
    backupTargetIp: undefined,
    status: "Normal",
  }));
  return { version: 1, rows: rechain(rows) };
}

export function findRow(table: IndexTable, id: string): IndexRow | undefined {
  return table.rows.find((r) => r.nodeId === id);
}

/**
 * `reporter` could not send to `target`: marks `target` Failed and re-points the reporter
 * (and every Normal node and every Failed row that pointed at `target`) to the failed node's
 * own backup target. A report about a node that is already Failed is answered with the
 * current table, unchanged, so a late reporter simply learns its new target.
 */
export function reportTargetFailed(
  table: IndexTable,
  reporterId: string,
  targetId: string,
): TableResult {
  const reporter = findRow(table, reporterId);
  const target = findRow(table, targetId);
  if (!reporter || !target) return { ok: false, code: "UNKNOWN_NODE", table };
  if (reporter.status === "Failed") return { ok: false, code: "REPORTER_FAILED", table };
  if (target.status === "Failed") return { ok: true, table, changed: false };
  if (reporter.backupTargetId !== targetId) {
    return { ok: false, code: "NOT_REPORTERS_TARGET", table };
  }
  return markFailed(table, targetId);
}

/**
 * Marks `id` Failed (from a report or from membership). Its row keeps its current backup
 * target: that node holds its samples. Everyone pointing at it moves to that same node.
 */
export function markFailed(table: IndexTable, id: string): TableResult {
  const failed = findRow(table, id);
  if (!failed) return { ok: false, code: "UNKNOWN_NODE", table };
  if (failed.status === "Failed") return { ok: false, code: "ALREADY_FAILED", table };
  const rows = table.rows.map((r): IndexRow => {
    if (r.nodeId === id) return { ...r, status: "Failed" };
    // Failed rows whose custodian just failed: the custodian forwarded their data onward.
    if (r.status === "Failed" && r.backupTargetId === id) {
      return withTarget(r, failed.backupTargetId, table);
    }
    return r;
  });
  const next = rechain(rows);
  return { ok: true, table: { version: table.version + 1, rows: next }, changed: true };
}

/** `id` is back (its component re-joined): Normal again, and the default chain restored. */
export function nodeRecovered(table: IndexTable, id: string): TableResult {
  const row = findRow(table, id);
  if (!row) return { ok: false, code: "UNKNOWN_NODE", table };
  if (row.status === "Normal") return { ok: true, table, changed: false };
  const rows = table.rows.map((r): IndexRow => (r.nodeId === id ? { ...r, status: "Normal" } : r));
  return { ok: true, table: { version: table.version + 1, rows: rechain(rows) }, changed: true };
}

/**
 * Points every Normal node at the next Normal node in ring order. After a single failure of X
 * this is exactly X's own former target for X's predecessor (the S3 rule); computing it from
 * the ring keeps the chain correct after any sequence of failures and recoveries.
 * Failed rows are left alone (they name their custodian).
 */
function rechain(rows: readonly IndexRow[]): IndexRow[] {
  const n = rows.length;
  return rows.map((r, i) => {
    if (r.status === "Failed") return r;
    for (let step = 1; step < n; step++) {
      const candidate = rows[(i + step) % n]!;
      if (candidate.status === "Normal") {
        return { ...r, backupTargetId: candidate.nodeId, backupTargetIp: candidate.nodeIps[0] };
      }
    }
    return { ...r, backupTargetId: undefined, backupTargetIp: undefined };
  });
}

function withTarget(row: IndexRow, targetId: string | undefined, table: IndexTable): IndexRow {
  const target = targetId === undefined ? undefined : findRow(table, targetId);
  return { ...row, backupTargetId: target?.nodeId, backupTargetIp: target?.nodeIps[0] };
}

/**
 * Origins whose samples `nodeId` must stream to its own backup target: itself (when Normal)
 * and every Failed node whose data it holds as custodian.
 */
export function originsToReplicate(table: IndexTable, nodeId: string): string[] {
  const self = findRow(table, nodeId);
  if (!self || self.status === "Failed") return [];
  const held = table.rows
    .filter((r) => r.status === "Failed" && r.backupTargetId === nodeId)
    .map((r) => r.nodeId);
  return [nodeId, ...held];
}

/** Where a query for `nodeId` must be answered: the node itself, or its custodian. */
export function answeringNode(
  table: IndexTable,
  nodeId: string,
):
  | { readonly nodeId: string; readonly status: NodeStatus; readonly fromBackup: boolean }
  | undefined {
  const row = findRow(table, nodeId);
  if (!row) return undefined;
  if (row.status === "Normal") return { nodeId, status: "Normal", fromBackup: false };
  if (row.backupTargetId === undefined) return undefined;
  return { nodeId: row.backupTargetId, status: "Failed", fromBackup: true };
}

/** Shape check for a table received from the network (after its MAC was verified). */
export function isIndexTable(value: unknown): value is IndexTable {
  if (typeof value !== "object" || value === null) return false;
  const t = value as { version?: unknown; rows?: unknown };
  if (typeof t.version !== "number" || !Number.isInteger(t.version) || !Array.isArray(t.rows)) {
    return false;
  }
  return t.rows.every((r: unknown) => {
    if (typeof r !== "object" || r === null) return false;
    const row = r as Record<string, unknown>;
    return (
      typeof row.nodeId === "string" &&
      Array.isArray(row.nodeIps) &&
      row.nodeIps.every((ip) => typeof ip === "string") &&
      (row.backupTargetId === undefined || typeof row.backupTargetId === "string") &&
      (row.backupTargetIp === undefined || typeof row.backupTargetIp === "string") &&
      (row.status === "Normal" || row.status === "Failed")
    );
  });
}
