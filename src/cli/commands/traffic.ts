/**
 * `floatip traffic NODE [--from T] [--to T] [--step D] [--iface IF] [--json] [WHERE]`
 * `floatip traffic --table [--json] [WHERE]`
 *
 * Asks the local agent's API (GET /v1/traffic/NODE) for NODE's traffic statistics; the answer
 * comes from NODE itself or, when NODE is Failed, from its backup target, and says which.
 * Per-VIP counters appear as interfaces `vip:ADDRESS` (`--iface vip:198.18.0.100`). Times:
 * ms since the epoch, ISO 8601, `now` or `now-1h` (default: the last hour); step: `10s`,
 * `1m`… (default 1m).
 *
 * WHERE: `--api HOST:PORT`, `--config FILE`, env FLOATIP_API, else 127.0.0.1:7480 (like the
 * other commands); `--url URL` instead asks any HTTP endpoint serving the route (the
 * standalone component). Exit codes: 0 done, 1 refused or failed, 2 usage, 3 no agent answers.
 */
import { parseArgs } from "node:util";
import { ApiClient, CliError, resolveTarget, runCli } from "../client.ts";

export const usage = `usage:
  floatip traffic NODE [--from T] [--to T] [--step D] [--iface IF] [--json] [--api HOST:PORT | --config FILE | --url URL]
  floatip traffic --table [--json] [--api HOST:PORT | --config FILE | --url URL]
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

export function run(args: string[]): Promise<number> {
  return runCli("traffic", usage, async () => {
    let parsed: ReturnType<typeof parse>;
    try {
      parsed = parse(args);
    } catch (error) {
      throw new CliError("USAGE", (error as Error).message);
    }
    const { values, positionals } = parsed;
    if (values.table ? positionals.length !== 0 : positionals.length !== 1) {
      throw new CliError("USAGE", values.table ? "--table takes no NODE" : "give one NODE");
    }
    if (values.url !== undefined && (values.api !== undefined || values.config !== undefined)) {
      throw new CliError("USAGE", "--url goes alone, without --api or --config");
    }
    const query = new URLSearchParams();
    for (const key of ["from", "to", "step", "iface"] as const) {
      const v = values[key];
      if (v !== undefined) query.set(key, v);
    }
    const path = values.table
      ? "/v1/traffic"
      : `/v1/traffic/${encodeURIComponent(positionals[0]!)}?${query}`;
    const body =
      values.url !== undefined
        ? await fetchUrl(values.url, path)
        : await new ApiClient(
            resolveTarget({
              positional: positionals,
              json: values.json,
              switches: new Set(),
              ...(values.api === undefined ? {} : { api: values.api }),
              ...(values.config === undefined ? {} : { config: values.config }),
            }),
            { timeoutMs: 10_000 },
          ).get<Record<string, unknown>>(path);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(values.table ? renderTable(body) : renderAnswer(body));
    return 0;
  });
}

/** `--url`: any HTTP endpoint that serves the traffic route (e.g. the standalone component). */
async function fetchUrl(url: string, path: string): Promise<Record<string, unknown>> {
  const base = url.replace(/\/$/, "");
  let response: Response;
  try {
    response = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    throw new CliError("AGENT_UNREACHABLE", `cannot reach ${base}: ${(error as Error).message}`);
  }
  const body = (await response.json().catch(() => undefined)) as
    | Record<string, unknown>
    | undefined;
  if (body === undefined) {
    throw new CliError("BAD_RESPONSE", `${base} sent a non-JSON answer (HTTP ${response.status})`);
  }
  if (!response.ok) {
    const e = (body.error ?? {}) as { code?: string; message?: string };
    const apiCode = e.code ?? `HTTP_${response.status}`;
    throw new CliError("API_ERROR", `${apiCode}: ${e.message ?? "bad answer"}`, {
      apiCode,
      status: response.status,
    });
  }
  return body;
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
      api: { type: "string" },
      config: { type: "string" },
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
