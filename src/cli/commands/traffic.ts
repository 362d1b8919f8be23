/**
 * `floatip traffic NODE [--from T] [--to T] [--step D] [--iface IF] [--json] [--url URL]`
 * `floatip traffic --table [--json] [--url URL]`
 *
 * Asks any node's API (GET /v1/traffic/NODE) for NODE's traffic statistics; the answer comes
 * from NODE itself or, when NODE is Failed, from its backup target, and says which. Times:
 * ms since the epoch, ISO 8601, `now` or `now-1h` (default: the last hour); step: `10s`,
 * `1m`… (default 1m). URL defaults to $FLOATIP_URL or http://127.0.0.1:7980.
 */
import { parseArgs } from "node:util";

const usage = `usage:
  floatip traffic NODE [--from T] [--to T] [--step D] [--iface IF] [--json] [--url URL]
  floatip traffic --table [--json] [--url URL]
`;

interface Bucket {
  tsMs: number;
  iface: string;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
  rxErrors: number;
  txErrors: number;
  rxDrops: number;
  txDrops: number;
  samples: number;
}

export async function run(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (error) {
    process.stderr.write(`floatip traffic: ${(error as Error).message}\n${usage}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const base = (values.url ?? process.env.FLOATIP_URL ?? "http://127.0.0.1:7980").replace(
    /\/$/,
    "",
  );
  if (!values.table && positionals.length !== 1) {
    process.stderr.write(usage);
    return 2;
  }
  const query = new URLSearchParams();
  for (const key of ["from", "to", "step", "iface"] as const) {
    const v = values[key];
    if (v !== undefined) query.set(key, v);
  }
  const path = values.table
    ? "/v1/traffic"
    : `/v1/traffic/${encodeURIComponent(positionals[0]!)}?${query}`;
  let response: Response;
  try {
    response = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    process.stderr.write(`floatip traffic: cannot reach ${base}: ${(error as Error).message}\n`);
    return 1;
  }
  const body = (await response.json().catch(() => undefined)) as
    | Record<string, unknown>
    | undefined;
  if (!response.ok || body === undefined) {
    const e = (body?.error ?? {}) as { code?: string; message?: string };
    process.stderr.write(
      `floatip traffic: ${e.code ?? response.status}: ${e.message ?? "bad answer"}\n`,
    );
    return 1;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(values.table ? renderTable(body) : renderAnswer(body));
  return 0;
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: {
      from: { type: "string" },
      to: { type: "string" },
      step: { type: "string" },
      iface: { type: "string" },
      url: { type: "string" },
      json: { type: "boolean", default: false },
      table: { type: "boolean", default: false },
    },
  });
}

function renderTable(body: Record<string, unknown>): string {
  const rows = (body.rows ?? []) as {
    nodeId: string;
    nodeIps: string[];
    backupTargetId?: string;
    backupTargetIp?: string;
    status: string;
  }[];
  const lines = [
    `index table version ${body.version}`,
    "NODE       IPS               TARGET     TARGET-IP         STATUS",
  ];
  for (const r of rows) {
    lines.push(
      `${r.nodeId.padEnd(10)} ${r.nodeIps.join(",").padEnd(17)} ${(r.backupTargetId ?? "-").padEnd(10)} ${(r.backupTargetIp ?? "-").padEnd(17)} ${r.status}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

function renderAnswer(body: Record<string, unknown>): string {
  const buckets = (body.buckets ?? []) as Bucket[];
  const lines = [
    `node ${body.node}: ${body.status}, answered by ${body.answeredBy}${body.fromBackup ? " (backup copy)" : ""}, table v${body.tableVersion}`,
    "TIME                      IFACE         RX-BYTES     TX-BYTES  RX-PKTS  TX-PKTS  ERRS  DROPS",
  ];
  for (const b of buckets) {
    lines.push(
      `${new Date(b.tsMs).toISOString().padEnd(25)} ${b.iface.padEnd(10)} ${String(b.rxBytes).padStart(11)} ${String(b.txBytes).padStart(12)} ${String(b.rxPackets).padStart(8)} ${String(b.txPackets).padStart(8)} ${String(b.rxErrors + b.txErrors).padStart(5)} ${String(b.rxDrops + b.txDrops).padStart(6)}`,
    );
  }
  if (buckets.length === 0) lines.push("(no samples in this range)");
  return `${lines.join("\n")}\n`;
}
