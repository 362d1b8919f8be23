/**
 * Gratuitous ARP announcements and ARP occupancy probes, through the native `floatip_arp`
 * addon (an AF_PACKET socket; see native/floatip_arp.c for why it is native).
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

export type GarpForms = "both" | "request" | "reply";

export interface ProbeResult {
  readonly occupied: boolean;
  /** MAC of the host that answered for the address, when occupied. */
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
 * Sends one round of gratuitous ARP for every VIP, synchronously (1,000 VIPs take a few
 * milliseconds). Returns the number of frames sent.
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
 * RFC 5227 duplicate address detection for one VIP: sends ARP probes (sender IP 0.0.0.0) and
 * reports whether another MAC claimed the address within `timeoutMs`. Runs off the event loop.
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

/** The same probe for many VIPs at once, on one socket; results in the order given. */
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
