/**
 * The bearer token that guards the mutating routes. Read from `api.token_file` when the API
 * is created and again on every reload; a reload that cannot read the file keeps the token it
 * had, so a botched edit never locks the operator out of a running agent (nor opens it up).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { ApiSetupError } from "./errors.ts";

/** Reads and trims the token; throws `ApiSetupError` when unreadable or empty. */
export function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ApiSetupError(
      "API_TOKEN_UNREADABLE",
      `cannot read the API token file ${file} (${reason}): check api.token_file and its permissions`,
      { cause: error },
    );
  }
  const mode = fileMode(file);
  if (mode !== undefined && (mode & 0o077) !== 0) {
    // Like ssh with a private key: whoever reads the token can move VIPs and drain nodes.
    throw new ApiSetupError(
      "API_TOKEN_TOO_OPEN",
      `the API token file ${file} is accessible by group or others (mode ${(mode & 0o777).toString(8).padStart(4, "0")}): anyone who reads it can move VIPs; chmod 600 ${file}`,
    );
  }
  const token = text.trim();
  if (token === "") {
    throw new ApiSetupError(
      "API_TOKEN_EMPTY",
      `the API token file ${file} is empty: write a random token into it, e.g. head -c 24 /dev/urandom | base64 > ${file}`,
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
