/**
 * `floatip volume …`: client of the storage gateway's REST API (src/storage/api.ts), reached
 * through the storage VIP (`--url http://VIP:PORT`, or FLOATIP_STORAGE_URL). Every call sends a
 * request id (fresh, or `--request-id ID` so that a script can repeat a call safely: the same id
 * is the same request and runs once), so a re-drive by the gateway after a failover is
 * recognised as the same request; `--wait` follows the request until it is final (long-poll,
 * riding out the moment the VIP moves: connection errors are retried, the request is never
 * submitted again), `--json` prints the record.
 *   volume create NAME --size 1G | rm NAME | ls | info NAME | resize NAME --size 2G
 *   volume cp NAME TARGET | clone NAME SNAPSHOT TARGET
 *   volume snap create NAME SNAPSHOT | snap ls NAME | snap rm NAME SNAPSHOT
 *   volume serve --config FILE   (run a gateway without the agent)
 * Every call presents a client token of `storage.clients`: `--token-file FILE`, else
 * FLOATIP_STORAGE_TOKEN (the token itself), else FLOATIP_STORAGE_TOKEN_FILE. Reads (ls, info,
 * snap ls) are answered at once and leave no request record.
 */

import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

export const defaultStorageUrl = "http://127.0.0.1:7480";
const waitSliceSeconds = 10;
const waitTotalMs = 10 * 60_000;

export const usage = `usage: floatip volume <create NAME --size SIZE | rm NAME | ls | info NAME |
  resize NAME --size SIZE | cp NAME TARGET | clone NAME SNAPSHOT TARGET |
  snap create NAME SNAPSHOT | snap ls NAME | snap rm NAME SNAPSHOT |
  serve --config FILE> [--wait] [--json] [--url http://VIP:PORT] [--request-id ID]
  [--token-file FILE]
sizes: bytes, or a number with K, M, G, T (powers of 1024)
credential: --token-file FILE, or FLOATIP_STORAGE_TOKEN, or FLOATIP_STORAGE_TOKEN_FILE
`;

export class UsageError extends Error {
  readonly code = "USAGE";
}

/** Parses "10G", "512M", "4096" into bytes (binary units). */
export function parseSize(text: string | undefined): number {
  const match = /^(\d+)([KMGTP]i?B?)?$/i.exec(text ?? "");
  if (!match) throw new UsageError(`--size must look like 10G, 512M or 4096 (got ${text})`);
  const units: Record<string, number> = {
    K: 2 ** 10,
    M: 2 ** 20,
    G: 2 ** 30,
    T: 2 ** 40,
    P: 2 ** 50,
  };
  const unit = match[2] ? (units[match[2][0]!.toUpperCase()] ?? 1) : 1;
  return Number(match[1]) * unit;
}

export interface CommonOptions {
  readonly url: string;
  readonly wait: boolean;
  readonly json: boolean;
  readonly rest: string[];
  readonly size?: string;
  readonly config?: string;
  readonly requestId?: string;
  readonly tokenFile?: string;
  /** The client token (parseWithToken); undefined when none was given. */
  readonly token?: string;
}

/** The client token from --token-file, FLOATIP_STORAGE_TOKEN or FLOATIP_STORAGE_TOKEN_FILE. */
export function resolveToken(tokenFile: string | undefined): string | undefined {
  const fromFile = (file: string, where: string) => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new UsageError(
        `cannot read the storage token file ${file} (${reason}): check ${where}`,
      );
    }
    const token = text.trim();
    if (token === "") throw new UsageError(`the storage token file ${file} is empty (${where})`);
    return token;
  };
  if (tokenFile !== undefined) return fromFile(tokenFile, "--token-file");
  const direct = process.env.FLOATIP_STORAGE_TOKEN?.trim();
  if (direct) return direct;
  const file = process.env.FLOATIP_STORAGE_TOKEN_FILE;
  if (file) return fromFile(file, "FLOATIP_STORAGE_TOKEN_FILE");
  return undefined;
}

export function parseCommon(args: readonly string[]): CommonOptions {
  const rest: string[] = [];
  let url = process.env.FLOATIP_STORAGE_URL ?? defaultStorageUrl;
  let wait = false;
  let json = false;
  let size: string | undefined;
  let config: string | undefined;
  let requestId: string | undefined;
  let tokenFile: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = () => {
      const next = args[++i];
      if (next === undefined) throw new UsageError(`${arg} needs a value`);
      return next;
    };
    if (arg === "--url") url = value().replace(/\/$/, "");
    else if (arg === "--wait") wait = true;
    else if (arg === "--json") json = true;
    else if (arg === "--size") size = value();
    else if (arg === "--config") config = value();
    else if (arg === "--request-id") requestId = value();
    else if (arg === "--token-file") tokenFile = value();
    else if (arg.startsWith("--")) throw new UsageError(`unknown option ${arg}`);
    else rest.push(arg);
  }
  return {
    url,
    wait,
    json,
    rest,
    ...(size ? { size } : {}),
    ...(config ? { config } : {}),
    ...(requestId ? { requestId } : {}),
    ...(tokenFile ? { tokenFile } : {}),
  };
}

/** `parseCommon` plus the token, which every call to the gateway needs. */
export function parseWithToken(args: readonly string[]): CommonOptions {
  const options = parseCommon(args);
  const token = resolveToken(options.tokenFile);
  return token === undefined ? options : { ...options, token };
}

function needToken(options: CommonOptions): string {
  if (options.token === undefined) {
    throw new UsageError(
      "the storage API needs a client token: --token-file FILE, FLOATIP_STORAGE_TOKEN or FLOATIP_STORAGE_TOKEN_FILE (one of storage.clients)",
    );
  }
  return options.token;
}

interface Envelope {
  /** What a read (ls, info, snap ls) answers: no record is kept. */
  result?: unknown;
  request?: {
    id: string;
    state: { state: string; result?: unknown; error?: { code: string; message: string } };
  };
  error?: { code: string; message: string };
}

export async function callApi(
  url: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Envelope }> {
  let response: Response;
  try {
    response = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout((waitSliceSeconds + 20) * 1000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message;
    const hint =
      why !== undefined && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(why)
        ? ": the gateway's certificate is not trusted here (NODE_EXTRA_CA_CERTS=FILE adds its CA)"
        : "";
    throw new Error(
      `cannot reach the storage gateway at ${url}: ${(error as Error).message}${why ? ` (${why})` : ""}${hint}`,
    );
  }
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) as Envelope };
  } catch {
    throw new Error(`the storage gateway at ${url} answered ${response.status} without JSON`);
  }
}

/**
 * Follows a request until it is final (or the overall wait passes). While the storage VIP moves
 * (the old holder died, the new one is taking over) the gateway is briefly unreachable or answers
 * from a journal that has not caught up yet; both are retried after `retryDelayMs`, since the
 * request itself was already acknowledged and will be re-driven by the new holder.
 */
export async function follow(
  url: string,
  token: string,
  envelope: Envelope,
  totalMs = waitTotalMs,
  retryDelayMs = 250,
): Promise<Envelope> {
  const deadline = Date.now() + totalMs;
  let current = envelope;
  while (current.request && !["succeeded", "failed"].includes(current.request.state.state)) {
    if (Date.now() > deadline) break;
    const path = `/v1/requests/${encodeURIComponent(current.request.id)}?wait=${waitSliceSeconds}s`;
    const next = await callApi(url, token, "GET", path).catch((error: Error) => error);
    if (next instanceof Error || next.status >= 500) {
      if (Date.now() + retryDelayMs > deadline) return next instanceof Error ? current : next.body;
      await new Promise((resolve) => setTimeout(resolve, retryDelayMs));
      continue;
    }
    if (next.status !== 200 && next.status !== 202) return next.body;
    current = next.body;
  }
  return current;
}

/** Prints the outcome; returns the exit code (0 ok, 1 failed or error, 3 still unfinished). */
export function report(envelope: Envelope, json: boolean): number {
  if (json) process.stdout.write(`${JSON.stringify(envelope, null, 2)}\n`);
  if (envelope.error) {
    if (!json) process.stderr.write(`error ${envelope.error.code}: ${envelope.error.message}\n`);
    return 1;
  }
  if (envelope.result !== undefined && envelope.request === undefined) {
    if (!json) process.stdout.write(`${formatResult(envelope.result)}\n`);
    return 0;
  }
  const record = envelope.request;
  if (!record) return 1;
  const state = record.state;
  if (!json) {
    if (state.state === "succeeded") {
      process.stdout.write(`${formatResult(state.result)}\n`);
    } else if (state.state === "failed") {
      process.stderr.write(
        `request ${record.id} failed: ${state.error?.code}: ${state.error?.message}\n`,
      );
    } else {
      process.stdout.write(
        `request ${record.id} ${state.state} (floatip request show ${record.id})\n`,
      );
    }
  }
  if (state.state === "failed") return 1;
  return state.state === "succeeded" ? 0 : 3;
}

function formatResult(result: unknown): string {
  const r = (result ?? {}) as Record<string, unknown>;
  const line = (v: Record<string, unknown>) =>
    [
      v.name,
      v.snapshot === undefined ? "" : `@${v.snapshot}`,
      v.sizeBytes === undefined ? "" : ` ${v.sizeBytes} bytes`,
      v.parent ? ` (clone of ${v.parent})` : "",
    ].join("");
  if (Array.isArray(r.volumes))
    return (r.volumes as Record<string, unknown>[]).map(line).join("\n");
  if (Array.isArray(r.snapshots))
    return (r.snapshots as Record<string, unknown>[]).map(line).join("\n");
  return line(r);
}

function need(rest: string[], count: number, what: string): string[] {
  if (rest.length !== count) throw new UsageError(`expected ${what}\n${usage}`);
  return rest;
}

export async function run(args: string[]): Promise<number> {
  let options: CommonOptions;
  try {
    options = parseCommon(args);
    const [sub, ...rest] = options.rest;
    if (sub === "serve") {
      const { serve } = await import("../../storage/gateway-main.ts");
      return serve(options.config ? ["--config", options.config] : []);
    }
    options = parseWithToken(args);
    const token = needToken(options);
    const id = options.requestId ?? `cli-${randomUUID()}`;
    const q = `?request_id=${id}${options.wait ? `&wait=${waitSliceSeconds}s` : ""}`;
    const e = encodeURIComponent;
    let call: { method: string; path: string; body?: unknown };
    switch (sub) {
      case "create": {
        const [name] = need(rest, 1, "create NAME --size SIZE");
        call = {
          method: "POST",
          path: `/v1/volumes${q}`,
          body: { name, sizeBytes: parseSize(options.size) },
        };
        break;
      }
      case "rm":
        call = { method: "DELETE", path: `/v1/volumes/${e(need(rest, 1, "rm NAME")[0]!)}${q}` };
        break;
      case "ls":
        need(rest, 0, "ls");
        call = { method: "GET", path: `/v1/volumes${q}` };
        break;
      case "info":
        call = { method: "GET", path: `/v1/volumes/${e(need(rest, 1, "info NAME")[0]!)}${q}` };
        break;
      case "resize": {
        const [name] = need(rest, 1, "resize NAME --size SIZE");
        call = {
          method: "POST",
          path: `/v1/volumes/${e(name!)}/resize${q}`,
          body: { sizeBytes: parseSize(options.size) },
        };
        break;
      }
      case "cp": {
        const [name, target] = need(rest, 2, "cp NAME TARGET");
        call = { method: "POST", path: `/v1/volumes/${e(name!)}/copy${q}`, body: { target } };
        break;
      }
      case "clone": {
        const [name, snapshot, target] = need(rest, 3, "clone NAME SNAPSHOT TARGET");
        call = {
          method: "POST",
          path: `/v1/volumes/${e(name!)}/snapshots/${e(snapshot!)}/clone${q}`,
          body: { target },
        };
        break;
      }
      case "snap": {
        const [action, ...snapArgs] = rest;
        if (action === "create") {
          const [name, snapshot] = need(snapArgs, 2, "snap create NAME SNAPSHOT");
          call = {
            method: "POST",
            path: `/v1/volumes/${e(name!)}/snapshots${q}`,
            body: { snapshot },
          };
        } else if (action === "ls") {
          call = {
            method: "GET",
            path: `/v1/volumes/${e(need(snapArgs, 1, "snap ls NAME")[0]!)}/snapshots${q}`,
          };
        } else if (action === "rm") {
          const [name, snapshot] = need(snapArgs, 2, "snap rm NAME SNAPSHOT");
          call = {
            method: "DELETE",
            path: `/v1/volumes/${e(name!)}/snapshots/${e(snapshot!)}${q}`,
          };
        } else {
          throw new UsageError(usage);
        }
        break;
      }
      default:
        throw new UsageError(usage);
    }
    const answer = await callApi(options.url, token, call.method, call.path, call.body);
    const final = options.wait ? await follow(options.url, token, answer.body) : answer.body;
    return report(final, options.json);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
}
