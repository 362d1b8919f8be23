/**
 * Established TCP connections on given local addresses, from /proc/net/tcp of this process's
 * network namespace: a file read, no process spawned. IPv4 only (the tickle sender is IPv4).
 *
 * /proc/net/tcp prints each address as the 32-bit value in host byte order in hex and each
 * port in hex, e.g. "6400A8C0:1F90" is 192.168.0.100:8080 on a little-endian machine; state
 * 01 is ESTABLISHED.
 */
import { readFileSync } from "node:fs";
import { endianness } from "node:os";

export interface TcpConnection {
  /** The local (VIP) side. */
  readonly localIp: string;
  readonly localPort: number;
  /** The client. */
  readonly remoteIp: string;
  readonly remotePort: number;
}

const littleEndian = endianness() === "LE";

function ipFromHex(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]{8}$/.test(hex)) return undefined;
  const value = Number.parseInt(hex, 16);
  const bytes = [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
  return (littleEndian ? bytes.reverse() : bytes).join(".");
}

function endpoint(text: string | undefined): { ip: string; port: number } | undefined {
  const [hexIp, hexPort] = (text ?? "").split(":");
  const ip = ipFromHex(hexIp ?? "");
  const port = /^[0-9A-Fa-f]{4}$/.test(hexPort ?? "") ? Number.parseInt(hexPort!, 16) : NaN;
  return ip === undefined || !(port > 0) ? undefined : { ip, port };
}

/**
 * The established connections whose local address is one of `locals`, at most `limit` per
 * local address (the rest are counted in `skipped`). Lines that do not parse are skipped.
 */
export function parseProcNetTcp(
  text: string,
  locals: ReadonlySet<string>,
  limit: number,
): { connections: TcpConnection[]; skipped: number } {
  const connections: TcpConnection[] = [];
  const perLocal = new Map<string, number>();
  let skipped = 0;
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || fields[3] !== "01") continue;
    const local = endpoint(fields[1]);
    if (!local || !locals.has(local.ip)) continue;
    const remote = endpoint(fields[2]);
    if (!remote) continue;
    const count = perLocal.get(local.ip) ?? 0;
    if (count >= limit) {
      skipped += 1;
      continue;
    }
    perLocal.set(local.ip, count + 1);
    connections.push({
      localIp: local.ip,
      localPort: local.port,
      remoteIp: remote.ip,
      remotePort: remote.port,
    });
  }
  return { connections, skipped };
}

/** Reads /proc/net/tcp (or `path`) and parses it; an unreadable file lists nothing. */
export function establishedConnections(
  locals: ReadonlySet<string>,
  limit: number,
  path = "/proc/net/tcp",
): { connections: TcpConnection[]; skipped: number } {
  if (locals.size === 0) return { connections: [], skipped: 0 };
  let text: string;
  try {
    text = readFileSync(path, "latin1");
  } catch {
    return { connections: [], skipped: 0 };
  }
  return parseProcNetTcp(text, locals, limit);
}
