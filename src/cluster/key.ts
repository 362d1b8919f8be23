/**
 * Loads the shared cluster key that authenticates every datagram (HMAC-SHA256).
 * Called once at agent start and on config reload; the file is small and read synchronously.
 *
 * The file may hold raw bytes (`head -c 32 /dev/urandom`) or the same bytes as hex or base64
 * text (`openssl rand -hex 32`). Text that is neither hex nor base64 is used byte for byte.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

export const KEY_BYTES_MIN = 32;
/** Key files are tiny; refusing big files keeps a wrong path (a disk image) from being slurped. */
const KEY_FILE_BYTES_MAX = 64 * 1024;

export type ClusterKeyErrorCode =
  | "KEY_MISSING"
  | "KEY_TOO_SHORT"
  | "KEY_UNREADABLE"
  | "KEY_TOO_OPEN";

export class ClusterKeyError extends Error {
  readonly code: ClusterKeyErrorCode;
  readonly path: string;
  constructor(code: ClusterKeyErrorCode, path: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "ClusterKeyError";
    this.code = code;
    this.path = path;
  }
}

export interface ClusterKey {
  readonly key: Buffer;
  readonly encoding: "raw" | "hex" | "base64";
}

function fix(path: string): string {
  return `create one with: head -c 32 /dev/urandom > ${path}; chmod 600 ${path} (and copy the same file to every node)`;
}

const HEX = /^(?:[0-9a-fA-F]{2})+$/;
/** Standard or URL-safe alphabet, padding optional. */
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** Interprets the file content; exported for tests. */
export function parseKeyMaterial(raw: Buffer): { key: Buffer; encoding: ClusterKey["encoding"] } {
  const text = raw.toString("latin1").trim();
  if (text.length > 0 && HEX.test(text)) return { key: Buffer.from(text, "hex"), encoding: "hex" };
  if (text.length > 0 && BASE64.test(text)) {
    return { key: Buffer.from(text, "base64"), encoding: "base64" };
  }
  return { key: raw, encoding: "raw" };
}

function readWhole(path: string): { content: Buffer; mode: number } {
  const fd = openSync(path, "r");
  try {
    // fstat on the open descriptor, so mode and content come from the same file.
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw Object.assign(new Error("not a regular file"), { code: "EISDIR" });
    if (stat.size > KEY_FILE_BYTES_MAX) {
      throw Object.assign(new Error(`file is ${stat.size} bytes, not a key`), { code: "EFBIG" });
    }
    const content = Buffer.alloc(stat.size);
    let filled = 0;
    while (filled < content.length) {
      const n = readSync(fd, content, filled, content.length - filled, filled);
      if (n === 0) break;
      filled += n;
    }
    return { content: content.subarray(0, filled), mode: stat.mode };
  } finally {
    closeSync(fd);
  }
}

/** Reads and checks the key file; throws `ClusterKeyError` naming the file and the fix. */
export function loadClusterKey(path: string): ClusterKey {
  let file: { content: Buffer; mode: number };
  try {
    file = readWhole(path);
  } catch (cause) {
    const code = (cause as { code?: unknown }).code;
    if (code === "ENOENT") {
      throw new ClusterKeyError(
        "KEY_MISSING",
        path,
        `cluster key file ${path} does not exist; ${fix(path)}`,
        cause,
      );
    }
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new ClusterKeyError(
      "KEY_UNREADABLE",
      path,
      `cluster key file ${path} cannot be read (${detail}); it must be a regular file readable by the agent, or ${fix(path)}`,
      cause,
    );
  }
  const { key, encoding } = parseKeyMaterial(file.content);
  if (key.length < KEY_BYTES_MIN) {
    throw new ClusterKeyError(
      "KEY_TOO_SHORT",
      path,
      `cluster key file ${path} holds ${key.length} bytes of key material (${encoding}), at least ${KEY_BYTES_MIN} are needed; ${fix(path)}`,
    );
  }
  if ((file.mode & 0o077) !== 0) {
    // Like ssh with a private key: whoever can read it can forge heartbeats and take VIPs.
    throw new ClusterKeyError(
      "KEY_TOO_OPEN",
      path,
      `cluster key file ${path} is accessible by group or others (mode ${(file.mode & 0o777).toString(8).padStart(4, "0")}): anyone who reads it can forge heartbeats; chmod 600 ${path}`,
    );
  }
  return { key, encoding };
}
