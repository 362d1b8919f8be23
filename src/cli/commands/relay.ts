/**
 * `floatip relay …`:
 *   relay run --config FILE [--status HOST:PORT|off]   run the relays of FILE's `relays:` section
 *   relay list [--json] [--api HOST:PORT|--config FILE] [--status HOST:PORT]
 *   relay show NAME [--json] [--api HOST:PORT|--config FILE] [--status HOST:PORT]
 *
 * `list` and `show` ask the local agent's API (`GET /v1/relays…`; found through `--api`,
 * `--config`, FLOATIP_API or 127.0.0.1:7480). With `--status HOST:PORT` they read the status
 * endpoint of a standalone `floatip relay run` instead (its default is 127.0.0.1:7981).
 */

import { readFile } from "node:fs/promises";
import type http from "node:http";
import { parse } from "yaml";
import { hostPort } from "../../config/ipv6.ts";
import { parseEndpoint, parseRelays } from "../../relay/config.ts";
import { RelayService, type RelayStatus } from "../../relay/relay-service.ts";
import { defaultStatusEndpoint, startStatusServer } from "../../relay/status-server.ts";
import {
  ApiClient,
  CliError,
  type CommonFlags,
  parseCommonFlags,
  resolveTarget,
  runCli,
} from "../client.ts";

export const usage = `usage:
  floatip relay run --config FILE [--status HOST:PORT|off]
  floatip relay list [--json] [--api HOST:PORT | --config FILE | --status HOST:PORT]
  floatip relay show NAME [--json] [--api HOST:PORT | --config FILE | --status HOST:PORT]
`;

interface Flags {
  positional: string[];
  config?: string;
  status?: string;
  json: boolean;
}

function parseFlags(args: string[]): Flags | string {
  const flags: Flags = { positional: [], json: false };
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i]!;
    if (arg === "--json") flags.json = true;
    else if (arg === "--config" || arg === "--status") {
      const value = args[i + 1];
      if (value === undefined) return `${arg} needs a value`;
      if (arg === "--config") flags.config = value;
      else flags.status = value;
      i += 1;
    } else if (arg.startsWith("--")) return `unknown option ${arg}`;
    else flags.positional.push(arg);
  }
  return flags;
}

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "run": {
      const flags = parseFlags(rest);
      if (typeof flags === "string") {
        process.stderr.write(`floatip relay: ${flags}\n${usage}`);
        return 2;
      }
      return runRelays(flags);
    }
    case "list":
      return runCli("relay list", usage, () => list(rest));
    case "show":
      return runCli("relay show", usage, () => show(rest));
    default:
      process.stderr.write(usage);
      return 2;
  }
}

async function runRelays(flags: Flags): Promise<number> {
  if (!flags.config) {
    process.stderr.write(`floatip relay run: --config FILE is required\n${usage}`);
    return 2;
  }
  const file = flags.config;
  let raw: unknown;
  try {
    raw = parse(await readFile(file, "utf8"));
  } catch (error) {
    process.stderr.write(`${file}: cannot read: ${(error as Error).message}\n`);
    return 2;
  }
  const section = (raw as { relays?: unknown } | null)?.relays;
  const { relays, problems } = parseRelays(section);
  if (problems.length > 0) {
    for (const p of problems)
      process.stderr.write(`${file}: ${p.path}: ${p.message} — fix: ${p.fix}\n`);
    return 2;
  }
  if (relays.length === 0) {
    process.stderr.write(`${file}: relays: no relay configured — fix: add a \`relays:\` list\n`);
    return 2;
  }
  const log = (record: Record<string, unknown>) =>
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  const services = relays.map((spec) => new RelayService({ spec, log }));
  let statusServer: http.Server | undefined;
  const stopAll = async () => {
    statusServer?.close();
    await Promise.allSettled(services.map((s) => s.stop()));
  };
  try {
    for (const service of services) await service.start();
    if (flags.status !== "off") {
      const listen = flags.status ? parseEndpoint(flags.status) : defaultStatusEndpoint;
      if (!listen) throw new Error(`--status ${flags.status}: expected HOST:PORT or off`);
      statusServer = await startStatusServer(listen, () => services.map((s) => s.status()));
      log({ event: "status-listening", address: `${listen.host}:${listen.port}` });
    }
  } catch (error) {
    await stopAll();
    process.stderr.write(`floatip relay run: ${(error as Error).message}\n`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const onSignal = () => resolve();
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  });
  await stopAll();
  log({ event: "relay-stopped" });
  return 0;
}

/** Reads the agent API (`/v1/relays…`), or a standalone `relay run` when `--status` is given. */
function readFlags(args: readonly string[]): { flags: CommonFlags; statusAt?: string } {
  const rest: string[] = [];
  let statusAt: string | undefined;
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i]!;
    if (arg === "--status" || arg.startsWith("--status=")) {
      const inline = arg.includes("=");
      const value = inline ? arg.slice(arg.indexOf("=") + 1) : args[i + 1];
      if (!inline) i += 1;
      if (!value) throw new CliError("USAGE", "--status needs HOST:PORT");
      statusAt = value;
    } else rest.push(arg);
  }
  const flags = parseCommonFlags(rest);
  return statusAt === undefined ? { flags } : { flags, statusAt };
}

async function fetchRelays(
  args: readonly string[],
  path: string,
): Promise<{ status: number; body: unknown; flags: CommonFlags }> {
  const { flags, statusAt } = readFlags(args);
  if (statusAt === undefined) {
    const client = new ApiClient(resolveTarget(flags));
    try {
      return { status: 200, body: await client.get(`/v1${path}`), flags };
    } catch (error) {
      if (
        error instanceof CliError &&
        error.code === "API_ERROR" &&
        error.status === 404 &&
        error.apiCode !== "SECTION_NOT_CONFIGURED"
      )
        return {
          status: 404,
          body: { error: { code: error.apiCode, message: error.message } },
          flags,
        };
      throw error;
    }
  }
  const endpoint = parseEndpoint(statusAt);
  if (!endpoint) throw new CliError("USAGE", `--status ${statusAt}: expected HOST:PORT`);
  let response: Response;
  try {
    response = await fetch(`http://${hostPort(endpoint.host, endpoint.port)}${path}`, {
      signal: AbortSignal.timeout(3000),
    });
  } catch (error) {
    throw new CliError(
      "AGENT_UNREACHABLE",
      `no relay status at ${hostPort(endpoint.host, endpoint.port)} (is \`floatip relay run\` running?): ${(error as Error).message}`,
    );
  }
  return { status: response.status, body: await response.json(), flags };
}

/** What `list` and `show` print; the agent adds `running` and placement to the relay status. */
type ShownRelay = Omit<RelayStatus, "activeSince"> & {
  activeSince: string | null;
  running?: boolean;
  placement?: string;
  vipOwner?: string | null;
  error?: string;
};

function activeText(r: ShownRelay): string {
  if (r.running === false) {
    if (r.error) return `not running: ${r.error}`;
    return r.placement === "vip-holder"
      ? `not here (VIP held by ${r.vipOwner ?? "nobody"})`
      : "not running";
  }
  return r.active ?? "none (rejecting)";
}

async function list(args: readonly string[]): Promise<number> {
  const { body, flags } = await fetchRelays(args, "/relays");
  const relays = (body as { relays?: ShownRelay[] }).relays;
  if (!Array.isArray(relays)) {
    const error = (body as { error?: { message?: string } }).error;
    throw new CliError("BAD_RESPONSE", error?.message ?? "the answer lists no relays");
  }
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(relays, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(`${"NAME".padEnd(16)}${"LISTEN".padEnd(22)}${"MODE".padEnd(7)}ACTIVE\n`);
  for (const r of relays) {
    process.stdout.write(
      `${r.name.padEnd(16)}${r.listen.padEnd(22)}${r.mode.padEnd(7)}${activeText(r)}\n`,
    );
  }
  return 0;
}

async function show(args: readonly string[]): Promise<number> {
  const name = readFlags(args).flags.positional[0];
  if (!name) throw new CliError("USAGE", "NAME is required");
  const { status, body, flags } = await fetchRelays(args, `/relays/${encodeURIComponent(name)}`);
  if (status !== 200) {
    const error = (body as { error?: { code: string; message: string } }).error;
    if (flags.json) process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    else process.stderr.write(`floatip relay show: ${error?.message ?? `status ${status}`}\n`);
    return 1;
  }
  const r = body as ShownRelay;
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return 0;
  }
  const lines = [
    `relay ${r.name}  listen ${r.listen}  ${r.protocol}/${r.mode}`,
    r.running === false
      ? `active: ${activeText(r)}`
      : `active: ${r.active ?? "none (rejecting new connections)"} since ${r.activeSince}`,
    "",
    `${"BACKEND".padEnd(22)}${"ROLE".padEnd(9)}${"STATE".padEnd(7)}${"FAULTS".padEnd(8)}${"CONNS".padEnd(7)}SINCE`,
    ...r.backends.map(
      (b) =>
        `${(b.active ? `*${b.id}` : ` ${b.id}`).padEnd(22)}${b.role.padEnd(9)}${b.state.padEnd(7)}${String(b.faultsInWindow).padEnd(8)}${String(b.connections).padEnd(7)}${b.since}`,
    ),
  ];
  if (r.events.length > 0) {
    lines.push("", "recent events:");
    for (const e of r.events.slice(-10)) {
      const what =
        e.type === "switched"
          ? `switched ${e.from ?? "none"} -> ${e.to ?? "none"} (${e.reason})`
          : `${e.type} ${e.backend}`;
      lines.push(`  ${e.at}  ${what}`);
    }
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}
