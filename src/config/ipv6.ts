/**
 * IPv6 addresses as the config, the agent and the kernel see them: one canonical text form
 * (RFC 5952: lower case, the longest run of two or more zero groups compressed, as `ip` and
 * glibc's inet_ntop print it), the 128-bit value, and the ranges a VIP must not be in.
 * Pure (no Node module): the core uses it too.
 */

/** The 128-bit value of an IPv6 address (no zone, no prefix), or undefined. */
export function ipv6Value(text: string): bigint | undefined {
  // An embedded IPv4 tail (::ffff:198.18.0.1) becomes two hexadecimal groups.
  let plain = text;
  const v4 = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const octets = v4.slice(2, 6).map(Number);
    if (octets.some((o) => o > 255) || v4.slice(2, 6).some((o) => /^0\d/.test(o))) return undefined;
    const word = (a: number, b: number) => (a * 256 + b).toString(16);
    plain = `${v4[1]}${word(octets[0]!, octets[1]!)}:${word(octets[2]!, octets[3]!)}`;
  }
  const halves = plain.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  if (![...left, ...right].every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const fill = halves.length === 2 ? 8 - left.length - right.length : 0;
  if (halves.length === 2 ? fill < 1 : left.length !== 8) return undefined;
  const all = [...left, ...new Array<string>(fill).fill("0"), ...right];
  return all.reduce((value, word) => (value << 16n) | BigInt(Number.parseInt(word, 16)), 0n);
}

/** RFC 5952 text of a 128-bit value. */
export function ipv6Text(value: bigint): string {
  const words: number[] = [];
  for (let i = 7; i >= 0; i--) words.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLength = 1; // a single zero group is never compressed
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j += 1;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]) => list.map((w) => w.toString(16)).join(":");
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLength))}`;
}

/** The canonical form of an IPv6 address, or the text unchanged when it is not one. */
export function canonicalIp(text: string): string {
  const value = ipv6Value(text);
  return value === undefined ? text : ipv6Text(value);
}

/** Why an IPv6 address cannot be a VIP (undefined: it can). */
export function ipv6VipProblem(value: bigint): string | undefined {
  const top16 = Number(value >> 112n);
  if (value === 0n) return "is the unspecified address";
  if (value === 1n) return "is the loopback address";
  if (top16 >= 0xff00) return "is a multicast address";
  if ((top16 & 0xffc0) === 0xfe80) {
    return "is link-local: it is scoped to one link and every interface has its own fe80::/10, so moving it means nothing to a client on another link";
  }
  if (value >> 32n === 0xffffn) return "is an IPv4-mapped address (write the IPv4 address itself)";
  return undefined;
}

/** Whether `a` and `b` (IPv6 values) share their first `prefixLength` bits. */
export function sameIpv6Prefix(a: bigint, b: bigint, prefixLength: number): boolean {
  const shift = BigInt(128 - prefixLength);
  return a >> shift === b >> shift;
}

/** `host:port` for a URL or a socket address: an IPv6 host in brackets (a zone as %25). */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host.replace("%", "%25")}]:${port}` : `${host}:${port}`;
}
