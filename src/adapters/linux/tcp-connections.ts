/**
 * Established TCP connections on given local addresses, from /proc/net/tcp and /proc/net/tcp6
 * of this process's network namespace: file reads, no process spawned.
 *
 * /proc/net/tcp prints each address as the 32-bit value in host byte order in hex and each
 * port in hex, e.g. "6400A8C0:1F90" is 192.168.0.100:8080 on a little-endian machine; state
 * 01 is ESTABLISHED. /proc/net/tcp6 prints the 128-bit address as four such 32-bit words. A
 * server listening on "::" (dual stack) has its IPv4 clients there too, as IPv4-mapped
 * addresses (::ffff:198.18.0.100): those are reported as the IPv4 addresses they are.
 */
import { readFileSync } from "node:fs";
import { endianness } from "node:os";
import { ipv6Text } from "../../config/ipv6.ts";

export interface TcpConnection {
  /** The local (VIP) side. */
  readonly localIp: string;
  readonly localPort: number;
  /** The client. */
  readonly remoteIp: string;
  readonly remotePort: number;
}

const littleEndian = endianness() === "LE";

/** The four bytes of one 32-bit word as the kernel printed it (host byte order). */
function wordBytes(hex: string): number[] {
  const value = Number.parseInt(hex, 16);
  const bytes = [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
  return littleEndian ? bytes.reverse() : bytes;
}

function ipFromHex(hex: string): string | undefined {
  if (/^[0-9A-Fa-f]{8}$/.test(hex)) return wordBytes(hex).join(".");
  if (!/^[0-9A-Fa-f]{32}$/.test(hex)) return undefined;
  const bytes = [0, 8, 16, 24].flatMap((i) => wordBytes(hex.slice(i, i + 8)));
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255;
  if (mapped) return bytes.slice(12).join(".");
  return ipv6Text(bytes.reduce((value, byte) => (value << 8n) | BigInt(byte), 0n));
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

/**
 * Reads /proc/net/tcp and /proc/net/tcp6 (or `paths`) and parses them together (the limit per
 * local address counts both); an unreadable file lists nothing.
 */
export function establishedConnections(
  locals: ReadonlySet<string>,
  limit: number,
  paths: readonly string[] = ["/proc/net/tcp", "/proc/net/tcp6"],
): { connections: TcpConnection[]; skipped: number } {
  if (locals.size === 0) return { connections: [], skipped: 0 };
  const texts: string[] = [];
  for (const path of paths) {
    try {
      texts.push(readFileSync(path, "latin1"));
    } catch {
      // No such file (IPv6 disabled) or unreadable: nothing from it.
    }
  }
  return parseProcNetTcp(texts.join("\n"), locals, limit);
}

/**
 * A mark of this network namespace's TCP counters that changes whenever an established
 * connection appears or goes (`ActiveOpens`, `PassiveOpens`, `CurrEstab` of /proc/net/snmp,
 * which count IPv4 and IPv6 alike), or undefined when they cannot be read. Reading them walks
 * no connection table, unlike /proc/net/tcp, which walks the kernel's whole established hash
 * (shared by every namespace) on each read.
 */
export function tcpChangeMark(path = "/proc/net/snmp"): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, "latin1");
  } catch {
    return undefined;
  }
  return parseTcpChangeMark(text);
}

/** The mark `tcpChangeMark` reads, from the text of /proc/net/snmp. */
export function parseTcpChangeMark(text: string): string | undefined {
  const lines = text.split("\n").filter((line) => line.startsWith("Tcp:"));
  if (lines.length < 2) return undefined;
  const names = lines[0]!.trim().split(/\s+/);
  const values = lines[1]!.trim().split(/\s+/);
  const picked: string[] = [];
  for (const name of ["ActiveOpens", "PassiveOpens", "CurrEstab"]) {
    const at = names.indexOf(name);
    const value = at < 1 ? undefined : values[at];
    if (value === undefined || !/^\d+$/.test(value)) return undefined;
    picked.push(value);
  }
  return picked.join(":");
}
