/**
 * What the `status`, `ip` and `node` commands share: argument parsing, finding the agent's
 * API, and a small JSON client over node:http with a timeout.
 *
 * Where the API is, first match wins: `--api HOST:PORT`, `--config FILE` (its `api.listen`),
 * env `FLOATIP_API`, then 127.0.0.1:7480. The bearer token for changes comes from
 * `--token-file`, env `FLOATIP_TOKEN_FILE`, or the config's `api.token_file`.
 *
 * Exit codes: 0 done, 1 the agent refused or failed, 2 usage error, 3 no agent answers.
 */
import { readFileSync } from "node:fs";
import { httpModule } from "../adapters/node-http.ts";
import { parseHostPort } from "../config/host-port.ts";
import { loadConfig } from "../config/load.ts";

export const defaultApi = { host: "127.0.0.1", port: 7480 };
export const defaultTimeoutMs = 5000;

export type CliErrorCode =
  | "USAGE"
  | "AGENT_UNREACHABLE"
  | "AGENT_TIMEOUT"
  | "BAD_RESPONSE"
  | "CONFIG"
  | "TOKEN_FILE"
  | "API_ERROR"
  | "NOT_IN_EFFECT";

const exitCodes: Record<CliErrorCode, number> = {
  USAGE: 2,
  AGENT_UNREACHABLE: 3,
  AGENT_TIMEOUT: 3,
  BAD_RESPONSE: 1,
  CONFIG: 1,
  TOKEN_FILE: 1,
  API_ERROR: 1,
  NOT_IN_EFFECT: 4,
};

export class CliError extends Error {
  readonly code: CliErrorCode;
  /** For API_ERROR: the API's error code (e.g. UNKNOWN_NODE) and HTTP status. */
  readonly apiCode: string | undefined;
  readonly status: number | undefined;
  constructor(
    code: CliErrorCode,
    message: string,
    extra: { apiCode?: string; status?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: extra.cause });
    this.name = "CliError";
    this.code = code;
    this.apiCode = extra.apiCode;
    this.status = extra.status;
  }

  get exitCode(): number {
    return exitCodes[this.code];
  }
}

export interface CommonFlags {
  readonly positional: string[];
  readonly json: boolean;
  /** Command-specific boolean flags that were given (e.g. `--explain`). */
  readonly switches: ReadonlySet<string>;
  readonly api?: string;
  readonly config?: string;
  readonly tokenFile?: string;
}

/** Parses the shared options; `switches` lists the command's own boolean flags. Throws USAGE. */
export function parseCommonFlags(
  args: readonly string[],
  switches: readonly string[] = [],
): CommonFlags {
  const positional: string[] = [];
  const given = new Set<string>();
  const values: { api?: string; config?: string; tokenFile?: string } = {};
  let json = false;
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i]!;
    const [name, inline] =
      arg.startsWith("--") && arg.includes("=")
        ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
        : [arg, undefined];
    if (name === "--json") json = true;
    else if (name === "--api" || name === "--config" || name === "--token-file") {
      const value = inline ?? args[i + 1];
      if (value === undefined || value === "") throw new CliError("USAGE", `${name} needs a value`);
      if (inline === undefined) i += 1;
      if (name === "--api") values.api = value;
      else if (name === "--config") values.config = value;
      else values.tokenFile = value;
    } else if (switches.includes(name)) given.add(name);
    else if (name.startsWith("--") || (name.startsWith("-") && name.length > 1)) {
      throw new CliError("USAGE", `unknown option ${name}`);
    } else positional.push(arg);
  }
  return { positional, json, switches: given, ...values };
}

export interface ApiTarget {
  readonly host: string;
  readonly port: number;
  readonly tokenFile: string | undefined;
  /** The config file the address came from, for hints in messages. */
  readonly configFile: string | undefined;
}

/** A wildcard listen address is reached on loopback. */
function connectHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "::1";
  return host;
}

export function resolveTarget(flags: CommonFlags, env: NodeJS.ProcessEnv = process.env): ApiTarget {
  let address: { host: string; port: number } | undefined;
  let tokenFile = flags.tokenFile ?? (env.FLOATIP_TOKEN_FILE || undefined);
  if (flags.api !== undefined) {
    address = parseHostPort(flags.api);
    if (!address)
      throw new CliError("USAGE", `--api ${flags.api}: expected HOST:PORT, e.g. 127.0.0.1:7480`);
  }
  if (flags.config !== undefined) {
    let config: ReturnType<typeof loadConfig>;
    try {
      config = loadConfig(flags.config);
    } catch (error) {
      throw new CliError("CONFIG", (error as Error).message, { cause: error });
    }
    address ??= { host: config.api.host, port: config.api.port };
    tokenFile ??= config.api.tokenFile;
  }
  if (address === undefined && env.FLOATIP_API) {
    address = parseHostPort(env.FLOATIP_API);
    if (!address)
      throw new CliError(
        "USAGE",
        `FLOATIP_API=${env.FLOATIP_API}: expected HOST:PORT, e.g. 127.0.0.1:7480`,
      );
  }
  address ??= defaultApi;
  return {
    host: connectHost(address.host),
    port: address.port,
    tokenFile,
    configFile: flags.config,
  };
}

export function formatAddress(target: { host: string; port: number }): string {
  return target.host.includes(":")
    ? `[${target.host}]:${target.port}`
    : `${target.host}:${target.port}`;
}

export class ApiClient {
  readonly target: ApiTarget;
  readonly #timeoutMs: number;

  constructor(target: ApiTarget, options: { timeoutMs?: number } = {}) {
    this.target = target;
    this.#timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  }

  get<T>(path: string): Promise<T> {
    return this.#request<T>("GET", path, undefined, false);
  }

  /** A mutating call: sends the bearer token when one is configured. */
  change<T>(method: "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
    return this.#request<T>(method, path, body, true);
  }

  #token(): string | undefined {
    const file = this.target.tokenFile;
    if (file === undefined) return undefined;
    try {
      return readFileSync(file, "utf8").trim();
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new CliError(
        "TOKEN_FILE",
        `cannot read the API token file ${file} (${reason}): check --token-file, FLOATIP_TOKEN_FILE or api.token_file`,
        { cause: error },
      );
    }
  }

  #request<T>(method: string, path: string, body: unknown, authenticated: boolean): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    const token = authenticated ? this.#token() : undefined;
    if (token) headers.authorization = `Bearer ${token}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(Buffer.byteLength(payload));
    }
    const where = formatAddress(this.target);
    return new Promise<T>((resolve, reject) => {
      const request = httpModule().request(
        {
          host: this.target.host,
          port: this.target.port,
          method,
          path,
          headers,
          timeout: this.#timeoutMs,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("error", reject);
          response.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {
              reject(
                new CliError(
                  "BAD_RESPONSE",
                  `the agent at ${where} sent a non-JSON answer (HTTP ${response.statusCode}) to ${method} ${path}`,
                ),
              );
              return;
            }
            const status = response.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              resolve(parsed as T);
              return;
            }
            const error = (parsed as { error?: { code?: unknown; message?: unknown } }).error;
            const apiCode = typeof error?.code === "string" ? error.code : `HTTP_${status}`;
            const message = typeof error?.message === "string" ? error.message : `HTTP ${status}`;
            const hint =
              apiCode === "UNAUTHORIZED" && this.target.tokenFile === undefined
                ? " — give the token with --token-file FILE, FLOATIP_TOKEN_FILE or --config FILE"
                : "";
            reject(new CliError("API_ERROR", `${apiCode}: ${message}${hint}`, { apiCode, status }));
          });
        },
      );
      request.on("timeout", () => {
        request.destroy(
          new CliError(
            "AGENT_TIMEOUT",
            `the floatip agent at ${where} did not answer within ${this.#timeoutMs} ms`,
          ),
        );
      });
      request.on("error", (error: NodeJS.ErrnoException) => {
        if (error instanceof CliError) return reject(error);
        if (
          error.code === "ECONNREFUSED" ||
          error.code === "ENOTFOUND" ||
          error.code === "EHOSTUNREACH" ||
          error.code === "ENETUNREACH"
        ) {
          const hint = `floatip agent --config ${this.target.configFile ?? "/etc/floatip/cluster.yaml"} --node ID`;
          return reject(
            new CliError(
              "AGENT_UNREACHABLE",
              `no floatip agent answers at ${where}: is it running? (${hint})`,
              { cause: error },
            ),
          );
        }
        reject(
          new CliError(
            "AGENT_UNREACHABLE",
            `cannot reach the floatip agent at ${where}: ${error.message}`,
            { cause: error },
          ),
        );
      });
      request.end(payload);
    });
  }
}

/**
 * Runs one command body and turns a `CliError` into its message on stderr and its exit code
 * (usage errors also print the command's usage).
 */
export async function runCli(
  name: string,
  usage: string,
  body: () => Promise<number>,
): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    process.stderr.write(`floatip ${name}: ${error.message}\n`);
    if (error.code === "USAGE") process.stderr.write(usage);
    return error.exitCode;
  }
}

/** Pads columns to a table; the last column is not padded. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** How long `--wait` waits for an accepted change to show in the agent's status. */
export const waitTimeoutMs = 15_000;

/**
 * `--wait`: polls the agent's status until `check` says the change is in effect (returns
 * undefined), or fails after `waitTimeoutMs` with the last reason `check` gave (exit 4).
 */
export async function waitInEffect<T>(
  client: ApiClient,
  what: string,
  check: (status: T) => string | undefined,
  timeoutMs = waitTimeoutMs,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let reason = "no answer yet";
  for (;;) {
    try {
      const pending = check(await client.get<T>("/v1/status"));
      if (pending === undefined) return;
      reason = pending;
    } catch (error) {
      if (!(error instanceof CliError) || error.code === "USAGE") throw error;
      reason = error.message;
    }
    if (Date.now() >= deadline) {
      throw new CliError(
        "NOT_IN_EFFECT",
        `${what}: accepted, but not in effect after ${timeoutMs / 1000} s: ${reason}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
