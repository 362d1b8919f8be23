/**
 * Per-VIP traffic counters (S3, bytes and packets per VIP held), pure part: the nftables
 * ruleset that counts them, the parser of `nft -j list counters`, and the per-interval deltas.
 *
 * One table `inet floatip_traffic` holds two named counters per held VIP (IPv4 and IPv6):
 * `in_A_B_C_D` (IPv6: `in6_` and the address's 32 hexadecimal digits) counts
 * packets whose destination is the VIP (prerouting, priority -300: before any DNAT of a relay
 * rewrites it) and `out_A_B_C_D` packets whose source is the VIP (postrouting, priority 300:
 * after the reverse NAT of replies has put the VIP back as their source). Packets a node sends
 * to its own VIP never pass prerouting and are not counted as received.
 *
 * The ruleset replaces the whole table in one nft transaction, so the counters restart at zero
 * whenever it is applied: the caller reads the counters just before, and starts its baselines
 * at zero just after.
 */

import { ipv6Text, ipv6Value } from "../../config/ipv6.ts";
import { isCount } from "../validate.ts";

export const vipCounterTable = "floatip_traffic";

/** Prefix of the pseudo-interface name under which a VIP's counters are stored. */
export const vipIfacePrefix = "vip:";

export interface VipCounterReading {
  readonly vip: string;
  readonly rxBytes: number;
  readonly rxPackets: number;
  readonly txBytes: number;
  readonly txPackets: number;
}

const ipv4Pattern = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Counter name of one direction of one VIP: `in_198_18_0_100`, `in6_20010db8…0100`. */
export function vipCounterName(vip: string, direction: "in" | "out"): string {
  const v6 = ipv6Value(vip);
  if (v6 !== undefined) return `${direction}6_${v6.toString(16).padStart(32, "0")}`;
  if (!ipv4Pattern.test(vip)) throw new Error(`vipCounterName: not an IP address: ${vip}`);
  return `${direction}_${vip.replaceAll(".", "_")}`;
}

/** Inverse of `vipCounterName`; undefined for a name this module did not make. */
export function parseVipCounterName(
  name: string,
): { readonly vip: string; readonly direction: "in" | "out" } | undefined {
  const six = /^(in|out)6_([0-9a-f]{32})$/.exec(name);
  if (six) return { vip: ipv6Text(BigInt(`0x${six[2]}`)), direction: six[1] as "in" | "out" };
  const m = /^(in|out)_(\d{1,3})_(\d{1,3})_(\d{1,3})_(\d{1,3})$/.exec(name);
  if (!m) return undefined;
  const vip = `${m[2]}.${m[3]}.${m[4]}.${m[5]}`;
  if (!ipv4Pattern.test(vip)) return undefined;
  return { vip, direction: m[1] as "in" | "out" };
}

/**
 * The nft script that (re)creates the table for exactly `vips`. The leading `table` + `delete
 * table` pair makes it work whether or not the table exists; nft applies the file atomically.
 * With no VIPs the table is left empty (no hooks, no per-packet cost).
 */
export function renderVipCounterRuleset(vips: readonly string[]): string {
  const sorted = [...new Set(vips)].sort();
  const lines = [
    `table inet ${vipCounterTable}`,
    `delete table inet ${vipCounterTable}`,
    `table inet ${vipCounterTable} {`,
  ];
  for (const vip of sorted) {
    lines.push(`  counter ${vipCounterName(vip, "in")} { }`);
    lines.push(`  counter ${vipCounterName(vip, "out")} { }`);
  }
  if (sorted.length > 0) {
    lines.push("  chain prerouting {");
    lines.push("    type filter hook prerouting priority -300; policy accept;");
    for (const vip of sorted) {
      lines.push(`    ${family(vip)} daddr ${vip} counter name "${vipCounterName(vip, "in")}"`);
    }
    lines.push("  }");
    lines.push("  chain postrouting {");
    lines.push("    type filter hook postrouting priority 300; policy accept;");
    for (const vip of sorted) {
      lines.push(`    ${family(vip)} saddr ${vip} counter name "${vipCounterName(vip, "out")}"`);
    }
    lines.push("  }");
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

/** The nft command (arguments) whose output `parseNftCounters` reads. */
export const listCountersArgs = ["-j", "list", "counters", "table", "inet", vipCounterTable];

/** The nft match keyword of a VIP's family. */
function family(vip: string): "ip" | "ip6" {
  return vip.includes(":") ? "ip6" : "ip";
}

/**
 * Parses the JSON of `nft -j list counters …`: one reading per VIP that has both counters in
 * our table. Entries of other tables, unknown names and malformed entries are skipped; text
 * that is not the expected JSON shape is an error (the caller logs it and skips the round).
 */
export function parseNftCounters(text: string): VipCounterReading[] {
  const parsed = JSON.parse(text) as unknown;
  const list = (parsed as { nftables?: unknown } | null)?.nftables;
  if (!Array.isArray(list)) throw new Error("nft counters: no nftables array");
  const byVip = new Map<string, { in?: [number, number]; out?: [number, number] }>();
  for (const entry of list) {
    const counter = (entry as { counter?: unknown } | null)?.counter as
      | Record<string, unknown>
      | undefined;
    if (typeof counter !== "object" || counter === null) continue;
    if (counter.table !== vipCounterTable || counter.family !== "inet") continue;
    if (typeof counter.name !== "string" || !isCount(counter.bytes) || !isCount(counter.packets))
      continue;
    const name = parseVipCounterName(counter.name);
    if (!name) continue;
    const slot = byVip.get(name.vip) ?? {};
    slot[name.direction] = [counter.bytes, counter.packets];
    byVip.set(name.vip, slot);
  }
  const out: VipCounterReading[] = [];
  for (const [vip, slot] of [...byVip].sort(([a], [b]) => a.localeCompare(b))) {
    if (!slot.in || !slot.out) continue;
    out.push({
      vip,
      rxBytes: slot.in[0],
      rxPackets: slot.in[1],
      txBytes: slot.out[0],
      txPackets: slot.out[1],
    });
  }
  return out;
}

/** One counter's increase; a counter below its baseline was recreated, so it counts from 0. */
function increase(previous: number, current: number): number {
  return current >= previous ? current - previous : current;
}

/**
 * Increases since `previous` (by VIP). A VIP without a baseline counts from zero: its counters
 * were created by the last ruleset, which the caller applies before it reads them.
 */
export function vipCounterDeltas(
  previous: ReadonlyMap<string, VipCounterReading>,
  readings: readonly VipCounterReading[],
): VipCounterReading[] {
  return readings.map((r) => {
    const before = previous.get(r.vip);
    return {
      vip: r.vip,
      rxBytes: increase(before?.rxBytes ?? 0, r.rxBytes),
      rxPackets: increase(before?.rxPackets ?? 0, r.rxPackets),
      txBytes: increase(before?.txBytes ?? 0, r.txBytes),
      txPackets: increase(before?.txPackets ?? 0, r.txPackets),
    };
  });
}
