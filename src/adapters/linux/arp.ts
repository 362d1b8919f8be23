/**
 * Gratuitous ARP announcements and ARP occupancy probes, through the native `floatip_arp`
 * addon (an AF_PACKET socket; see native/floatip_arp.c for why it is native).
 *
 * Every list of VIPs may mix IPv4 and IPv6 addresses (text, no prefix). IPv6 VIPs use
 * Neighbour Discovery instead of ARP: an announcement is an unsolicited Neighbour
 * Advertisement (RFC 4861 §7.2.6: to ff02::1, Override set, Router set when the interface
 * forwards IPv6, the MAC in a Target Link-Layer Address option), a probe is duplicate address
 * detection (RFC 4862 §5.4: Neighbour Solicitations from ::). IPv6 link-local, multicast,
 * unspecified and loopback addresses are rejected (`ARP_INVALID_ARGUMENT`). The error codes
 * and the `Arp…` names cover both families.
 *
 * The agent calls `announceBurst` right after it adds VIPs (and again on refresh, like
 * keepalived's `garp_master_repeat` / `garp_master_refresh`), and `probeOccupied` before it adds
 * a VIP: if another MAC answers for the address, the VIP is taken and must not be claimed.
 * Sockets live in the network namespace of this process, so run the agent inside its
 * namespace (`ip netns exec`).
 */
import { addonLoadMessage, loadNativeAddon } from "./native-addon.ts";

export type ArpErrorCode =
  /** The addon is not built: run scripts/setup.sh. */
  | "ARP_ADDON_MISSING"
  | "ARP_INVALID_ARGUMENT"
  | "ARP_NO_INTERFACE"
  | "ARP_NOT_ETHERNET"
  /** Raw sockets need root or CAP_NET_RAW. */
  | "ARP_PERMISSION"
  /** Sending failed, e.g. the interface is down. */
  | "ARP_SEND_FAILED"
  | "ARP_SOCKET_FAILED";

export class ArpError extends Error {
  readonly code: ArpErrorCode;
  constructor(code: ArpErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ArpError";
    this.code = code;
  }
}

/**
 * Which gratuitous ARP frames to send per IPv4 VIP: request and reply ("both", two frames) or
 * one of them. IPv6 VIPs always get exactly one Neighbour Advertisement, whatever the forms.
 */
export type GarpForms = "both" | "request" | "reply";

export interface ProbeResult {
  readonly occupied: boolean;
  /**
   * MAC of the host that claimed the address, when occupied. IPv4: the sender of an ARP frame
   * for it. IPv6: the Target Link-Layer Address of a Neighbour Advertisement for it (else the
   * frame's Ethernet source), or the Ethernet source of another host's concurrent duplicate
   * address detection for it.
   */
  readonly mac?: string;
}

interface ArpAddon {
  interfaceMac(ifname: string): string;
  announce(ifname: string, ips: readonly string[], mac: string, forms: GarpForms): number;
  probe(ifname: string, ip: string, timeoutMs: number): Promise<ProbeResult>;
  probe(
    ifname: string,
    ips: readonly string[],
    timeoutMs: number,
  ): Promise<Array<ProbeResult & { ip: string }>>;
}

function load(): ArpAddon {
  try {
    return loadNativeAddon<ArpAddon>(["interfaceMac", "announce", "probe"]);
  } catch (cause) {
    throw new ArpError("ARP_ADDON_MISSING", addonLoadMessage("ARP", cause), { cause });
  }
}

const nativeCodes: Record<string, ArpErrorCode> = {
  ERR_ARP_INVALID_ARGUMENT: "ARP_INVALID_ARGUMENT",
  ERR_ARP_NO_INTERFACE: "ARP_NO_INTERFACE",
  ERR_ARP_NOT_ETHERNET: "ARP_NOT_ETHERNET",
  ERR_ARP_PERMISSION: "ARP_PERMISSION",
  ERR_ARP_SEND: "ARP_SEND_FAILED",
  ERR_ARP_SOCKET: "ARP_SOCKET_FAILED",
};

function toArpError(error: unknown): ArpError {
  if (error instanceof ArpError) return error;
  const nativeCode = (error as { code?: unknown } | null)?.code;
  const code = typeof nativeCode === "string" ? nativeCodes[nativeCode] : undefined;
  const message = error instanceof Error ? error.message : String(error);
  return new ArpError(code ?? "ARP_SOCKET_FAILED", message, { cause: error });
}

function guarded<T>(action: () => T): T {
  try {
    return action();
  } catch (error) {
    throw toArpError(error);
  }
}

/** Hardware address of `iface` as the kernel reports it (SIOCGIFHWADDR). */
export function interfaceMac(iface: string): string {
  return guarded(() => load().interfaceMac(iface));
}

/**
 * Sends one round of announcements for every VIP, synchronously (1,000 VIPs take a few
 * milliseconds): gratuitous ARP for an IPv4 VIP (one or two frames, see `GarpForms`), one
 * unsolicited Neighbour Advertisement for an IPv6 VIP. Returns the number of frames sent.
 * A neighbour updates only an entry it already has for the VIP (as with ARP and arp_accept=0).
 */
export function announce(
  iface: string,
  vips: readonly string[],
  options: { forms?: GarpForms; mac?: string } = {},
): number {
  return guarded(() => load().announce(iface, vips, options.mac ?? "", options.forms ?? "both"));
}

export interface AnnounceBurstOptions {
  /** Rounds to send, at least 1. A lost frame or a switch still learning is covered by repeats. */
  readonly repeat?: number;
  /** Pause between rounds. */
  readonly intervalMs?: number;
  readonly forms?: GarpForms;
  /** Sender MAC; defaults to the interface's own. */
  readonly mac?: string;
  /** Stops the remaining rounds (e.g. the VIP was released meanwhile). */
  readonly signal?: AbortSignal;
  /**
   * Asked before every round after the first: whether a VIP is still this node's. A VIP given
   * up meanwhile is announced no more (a late gratuitous ARP would point clients back at a
   * node that no longer has the address, and fool the new owner's occupancy probe).
   */
  readonly stillHeld?: (vip: string) => boolean;
}

/**
 * Sends `repeat` rounds spaced by `intervalMs` (setTimeout, never a busy wait). Resolves with
 * the total number of frames sent; rejects with an `ArpError` if a round fails.
 */
export async function announceBurst(
  iface: string,
  vips: readonly string[],
  options: AnnounceBurstOptions = {},
): Promise<number> {
  const repeat = options.repeat ?? 1;
  const intervalMs = options.intervalMs ?? 0;
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 1000) {
    throw new ArpError(
      "ARP_INVALID_ARGUMENT",
      `repeat must be a whole number 1..1000, got ${repeat}`,
    );
  }
  if (!(intervalMs >= 0)) {
    throw new ArpError("ARP_INVALID_ARGUMENT", `intervalMs must be >= 0, got ${intervalMs}`);
  }
  const roundOptions = {
    ...(options.forms ? { forms: options.forms } : {}),
    ...(options.mac ? { mac: options.mac } : {}),
  };
  let sent = 0;
  let current = vips;
  for (let round = 0; round < repeat; round++) {
    if (options.signal?.aborted) break;
    if (round > 0) await new Promise((resolve) => setTimeout(resolve, intervalMs));
    if (options.signal?.aborted) break;
    if (round > 0 && options.stillHeld) current = current.filter(options.stillHeld);
    if (current.length === 0) break;
    sent += announce(iface, current, roundOptions);
  }
  return sent;
}

/**
 * Duplicate address detection for one VIP; reports whether another MAC claimed the address
 * within `timeoutMs` (1..60000). Probes go out at once and again halfway through. Runs off
 * the event loop.
 * - IPv4 (RFC 5227): ARP probes with sender IP 0.0.0.0; claimed by any ARP frame from another
 *   MAC whose sender IP is the VIP.
 * - IPv6 (RFC 4862 §5.4): Neighbour Solicitations from :: to the VIP's solicited-node group,
 *   which the socket joins meanwhile; claimed by a Neighbour Advertisement for the VIP, or by
 *   another MAC's solicitation from :: for it (a host probing the same address at the same
 *   time: both may then report it occupied, and neither should claim it).
 */
export async function probeOccupied(
  iface: string,
  vip: string,
  timeoutMs: number,
): Promise<ProbeResult> {
  try {
    return await load().probe(iface, vip, timeoutMs);
  } catch (error) {
    throw toArpError(error);
  }
}

/**
 * The same probe for many VIPs at once (IPv4 and IPv6 mixed: one socket per family); results
 * in the order given, each `ip` exactly as given.
 */
export async function probeOccupiedMany(
  iface: string,
  vips: readonly string[],
  timeoutMs: number,
): Promise<Array<ProbeResult & { ip: string }>> {
  try {
    return await load().probe(iface, vips, timeoutMs);
  } catch (error) {
    throw toArpError(error);
  }
}
