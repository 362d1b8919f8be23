/**
 * The cluster-wide order of the VIPs: by address, numerically (IPv4 before IPv6), whatever
 * their order in `vips:`. Tables, heartbeats and the core index VIPs by position in this
 * order, so every node agrees on what index 3 means as long as the set of VIPs is the same:
 * a file whose `vips:` list was only reordered (what a rolling change, a merge or a config
 * generator produces) is the same configuration, with the same fingerprint, and a node that
 * runs it holds VIPs as before.
 */
import { isIPv4 } from "node:net";
import { ipv6Value } from "./ipv6.ts";

/** Sort key: IPv4 as four bytes behind a "4", IPv6 as sixteen behind a "6". */
function key(address: string): string {
  if (isIPv4(address)) {
    return `4${address
      .split(".")
      .map((octet) => Number(octet).toString(16).padStart(2, "0"))
      .join("")}`;
  }
  const v6 = ipv6Value(address);
  return v6 === undefined ? `6${address.toLowerCase()}` : `6${v6.toString(16).padStart(32, "0")}`;
}

/** A copy of `vips` in the cluster-wide order (the input is left as it is). */
export function canonicalVipOrder<T extends { readonly address: string }>(vips: readonly T[]): T[] {
  return vips
    .map((vip) => ({ vip, key: key(vip.address) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map(({ vip }) => vip);
}
