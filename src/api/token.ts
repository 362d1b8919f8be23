/**
 * The bearer token that guards the mutating routes. Read from `api.token_file` when the API
 * is created and again on every reload; a reload that cannot read the file keeps the token it
 * had, so a botched edit never locks the operator out of a running agent (nor opens it up).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { ApiSetupError } from "./errors.ts";

/** Which token a file holds, for the messages: its name, config key and what it allows. */
export interface TokenUse {
  readonly what: string;
  readonly key: string;
  readonly power: string;
}

const apiToken: TokenUse = { what: "API token file", key: "api.token_file", power: "move VIPs" };

/** Reads and trims the token; throws `ApiSetupError` when unreadable, too open or empty. */
export function readToken(file: string, use: TokenUse = apiToken): string {
  const { what, key, power } = use;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ApiSetupError(
      "API_TOKEN_UNREADABLE",
      `cannot read the ${what} ${file} (${reason}): check ${key} and its permissions`,
      { cause: error },
    );
  }
  const mode = fileMode(file);
  if (mode !== undefined && (mode & 0o077) !== 0) {
    // Like ssh with a private key: whoever reads the token can move VIPs and drain nodes.
    throw new ApiSetupError(
      "API_TOKEN_TOO_OPEN",
      `the ${what} ${file} is accessible by group or others (mode ${(mode & 0o777).toString(8).padStart(4, "0")}): anyone who reads it can ${power}; chmod 600 ${file}`,
    );
  }
  const token = text.trim();
  if (token === "") {
    throw new ApiSetupError(
      "API_TOKEN_EMPTY",
      `the ${what} ${file} is empty: write a random token into it, e.g. head -c 24 /dev/urandom | base64 > ${file}`,
    );
  }
  return token;
}

function fileMode(file: string): number | undefined {
  try {
    const fd = openSync(file, "r");
    try {
      return fstatSync(fd).mode;
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

/**
 * Compares in constant time. Both sides are hashed first so that neither the length nor a
 * common prefix of the expected token leaks through the comparison time.
 */
export function tokenMatches(expected: string, presented: string): boolean {
  const a = createHash("sha256").update(expected).digest();
  const b = createHash("sha256").update(presented).digest();
  return timingSafeEqual(a, b);
}

/** Extracts the token of an `Authorization: Bearer <token>` header; undefined when absent or malformed. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
