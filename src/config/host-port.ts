/**
 * The one reader of `HOST:PORT` for the tree: node and API addresses in the cluster config,
 * relay endpoints, the CLI's `--api`. What a host may be (an IPv4 literal, an IPv6 literal, a
 * name) is each caller's rule; how host and port are told apart is this module's.
 */

/**
 * Splits `HOST:PORT`, `[V6]:PORT`, `HOST` or `[V6]`; the port as written, undefined when there
 * is none. Text with more than one colon outside brackets is all host (an IPv6 address
 * without a port), so `::1:80` is never read as host `::1` and port 80.
 */
export function splitHostPort(text: string): { host: string; port?: string; bracketed: boolean } {
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    return {
      host: bracketed[1]!,
      ...(bracketed[2] !== undefined ? { port: bracketed[2] } : {}),
      bracketed: true,
    };
  }
  const colon = text.lastIndexOf(":");
  if (colon === -1 || text.indexOf(":") !== colon) return { host: text, bracketed: false };
  return { host: text.slice(0, colon), port: text.slice(colon + 1), bracketed: false };
}

/** A port 1-65535 in decimal, without a sign or leading zeros; undefined otherwise. */
export function parsePort(text: string): number | undefined {
  if (!/^[1-9]\d{0,4}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/** `HOST:PORT` or `[V6]:PORT` with both parts present (spaces around allowed). */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const { host, port: written } = splitHostPort(text.trim());
  const port = written === undefined ? undefined : parsePort(written);
  if (host === "" || port === undefined) return undefined;
  return { host, port };
}
