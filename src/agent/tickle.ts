/**
 * TCP tickle ACKs after a takeover (what CTDB does and keepalived does not). Runs in the
 * services process.
 *
 * - While this node holds VIPs it lists the established connections on them every
 *   `scanIntervalMs` (/proc/net/tcp, bounded per VIP) and, when a list changed or every 30 s,
 *   sends it to every peer over the cluster's authenticated transport (`connections`
 *   datagrams, up to 200 connections each). A scan first reads the namespace's TCP counters
 *   (`tcpChangeMark`): while they have not moved since two listings in a row, no connection
 *   was established or closed, and the last listing stands (read again at least every 30 s).
 *   Reading /proc/net/tcp walks the kernel's whole connection hash, 2-4 ms of CPU even with
 *   no connection at all; an idle holder no longer pays that every second.
 * - Every node keeps the latest list each peer reported per VIP (for two minutes).
 * - When this node starts holding a VIP, it sends each client on the other nodes' lists for
 *   that VIP an ACK from VIP:port with sequence 0 (native `tcpTickle`): the client's stack
 *   answers with its own ACK, this node's kernel has no socket for it and resets it, and the
 *   client's connection fails at once instead of when its retransmissions give up. The
 *   tickles go out at once and again after 100 ms and 1 s, in case the client's neighbour
 *   entry still pointed at the old owner for the first.
 *
 * IPv4 and IPv6 (/proc/net/tcp6 too: a dual-stack server's IPv4 clients are listed there,
 * IPv4-mapped, and count as IPv4). Limits: a connection opened after the holder's last scan
 * before it died is not on any list.
 */
import { isIP } from "node:net";
import { loadNativeAddon } from "../adapters/linux/native-addon.ts";
import {
  establishedConnections,
  type TcpConnection,
  tcpChangeMark,
} from "../adapters/linux/tcp-connections.ts";
import type { ClusterView, ClusterViewSnapshot } from "../ports/cluster-view.ts";
import type { Capability } from "./capability.ts";
import type { Logger } from "./log.ts";

/** The peer datagram that carries (part of) a holder's connection list for one VIP. */
export interface ConnectionsMessage {
  readonly type: "connections";
  readonly vip: string;
  /** Generation of the list (the sender's wall clock at the scan, ms): newer replaces older. */
  readonly gen: number;
  readonly part: number;
  readonly parts: number;
  /** [client address, client port, VIP port] */
  readonly conns: readonly (readonly [string, number, number])[];
}

export const maxConnectionsPerVip = 4096;
const perDatagram = 200;
const maxParts = Math.ceil(maxConnectionsPerVip / perDatagram);
const resendMs = 30_000;
const listMaxAgeMs = 120_000;
const tickleDelaysMs = [0, 100, 1000] as const;

function isPort(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535;
}

/** The message if it has exactly the shape of a `connections` datagram, else undefined. */
export function parseConnectionsMessage(raw: unknown): ConnectionsMessage | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const m = raw as Record<string, unknown>;
  const ok =
    m.type === "connections" &&
    typeof m.vip === "string" &&
    isIP(m.vip) !== 0 &&
    typeof m.gen === "number" &&
    Number.isSafeInteger(m.gen) &&
    m.gen >= 0 &&
    typeof m.parts === "number" &&
    Number.isInteger(m.parts) &&
    m.parts >= 1 &&
    m.parts <= maxParts &&
    typeof m.part === "number" &&
    Number.isInteger(m.part) &&
    m.part >= 0 &&
    m.part < m.parts &&
    Array.isArray(m.conns) &&
    m.conns.length <= perDatagram &&
    m.conns.every(
      (c) =>
        Array.isArray(c) &&
        c.length === 3 &&
        typeof c[0] === "string" &&
        isIP(c[0]) === isIP(m.vip as string) &&
        isPort(c[1]) &&
        isPort(c[2]),
    );
  return ok ? (m as unknown as ConnectionsMessage) : undefined;
}

export type TickleSender = (
  fromIp: string,
  fromPort: number,
  toIp: string,
  toPort: number,
  count: number,
) => number;

export interface TickleOptions {
  readonly nodeId: string;
  readonly view: ClusterView;
  readonly scanIntervalMs: number;
  readonly log: Logger;
  /** Sends a payload to every peer over the cluster transport. */
  readonly broadcast: (payload: ConnectionsMessage) => void;
  /** Lists established connections on `locals` (default: /proc/net/tcp). */
  readonly list?: (
    locals: ReadonlySet<string>,
    limit: number,
  ) => { connections: TcpConnection[]; skipped: number };
  /**
   * A value that changes whenever a connection is established or closed, or undefined when
   * unknown (default: `tcpChangeMark`, the namespace's TCP counters); undefined lists always.
   */
  readonly changeMark?: () => string | undefined;
  /** Sends tickle ACKs (default: the native addon's tcpTickle). */
  readonly send?: TickleSender;
  readonly nowMs?: () => number;
}

/** The last listing of this node's connections, and what it was made for. */
interface Listing {
  readonly held: ReadonlySet<string>;
  readonly mark: string | undefined;
  /** The mark had not moved since the listing before: nothing was on its way in. */
  readonly stable: boolean;
  readonly atMs: number;
  readonly connections: readonly TcpConnection[];
}

interface KnownList {
  readonly gen: number;
  readonly parts: number;
  readonly received: Map<number, ConnectionsMessage["conns"]>;
  readonly atMs: number;
}

function nativeSender(): TickleSender {
  const addon = loadNativeAddon<{ tcpTickle: TickleSender }>(["tcpTickle"]);
  return (fromIp, fromPort, toIp, toPort, count) =>
    addon.tcpTickle(fromIp, fromPort, toIp, toPort, count);
}

export class TickleService implements Capability {
  readonly name = "tickle";
  readonly #o: TickleOptions;
  readonly #now: () => number;
  /** vip -> peer node -> its latest list. */
  readonly #known = new Map<string, Map<string, KnownList>>();
  /** What this node last sent per VIP: the list's key and when. */
  readonly #sent = new Map<string, { key: string; atMs: number }>();
  #held = new Set<string>();
  #listing: Listing | undefined;
  #scanTimer: NodeJS.Timeout | undefined;
  #timers = new Set<NodeJS.Timeout>();
  #unsubscribe: (() => void) | undefined;
  #send: TickleSender | undefined;
  #counts = {
    listsSent: 0,
    listsReceived: 0,
    tickled: 0,
    tickleErrors: 0,
    skipped: 0,
    scans: 0,
    scansSpared: 0,
  };

  constructor(options: TickleOptions) {
    this.#o = options;
    this.#now = options.nowMs ?? Date.now;
  }

  async start(): Promise<void> {
    this.#held = new Set(this.#o.view.current().held);
    this.#unsubscribe = this.#o.view.subscribe((view) => this.#onView(view));
    this.#scanTimer = setInterval(() => this.scan(), this.#o.scanIntervalMs);
    this.#scanTimer.unref();
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    clearInterval(this.#scanTimer);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  status(): unknown {
    let known = 0;
    for (const byNode of this.#known.values()) {
      for (const list of byNode.values()) {
        for (const conns of list.received.values()) known += conns.length;
      }
    }
    return { running: true, knownConnections: known, ...this.#counts };
  }

  /** Lists this node's connections on its VIPs and sends the lists that changed. */
  scan(): void {
    if (this.#held.size === 0) return;
    const now = this.#now();
    const byVip = new Map<string, (readonly [string, number, number])[]>();
    for (const vip of this.#held) byVip.set(vip, []);
    for (const c of this.#connections(now)) {
      byVip.get(c.localIp)?.push([c.remoteIp, c.remotePort, c.localPort]);
    }
    for (const [vip, conns] of byVip) {
      conns.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1] || a[2] - b[2]));
      const key = conns.map((c) => c.join(":")).join(",");
      const last = this.#sent.get(vip);
      if (last && last.key === key && now - last.atMs < resendMs) continue;
      this.#sent.set(vip, { key, atMs: now });
      const parts = Math.max(1, Math.ceil(conns.length / perDatagram));
      for (let part = 0; part < parts; part += 1) {
        this.#o.broadcast({
          type: "connections",
          vip,
          gen: now,
          part,
          parts,
          conns: conns.slice(part * perDatagram, (part + 1) * perDatagram),
        });
      }
      this.#counts.listsSent += 1;
    }
  }

  /**
   * This node's connections on the VIPs it holds: the last listing while the TCP counters
   * have not moved since two listings in a row for the same VIPs (and it is under 30 s old),
   * a new listing otherwise. Two in a row, because a counter may move just before the
   * connection it counts is in the table.
   */
  #connections(now: number): readonly TcpConnection[] {
    const mark = (this.#o.changeMark ?? tcpChangeMark)();
    const last = this.#listing;
    const same =
      last !== undefined &&
      mark !== undefined &&
      mark === last.mark &&
      last.held.size === this.#held.size &&
      [...this.#held].every((vip) => last.held.has(vip));
    if (same && last.stable && now - last.atMs < resendMs) {
      this.#counts.scansSpared += 1;
      return last.connections;
    }
    const list = this.#o.list ?? establishedConnections;
    const { connections, skipped } = list(this.#held, maxConnectionsPerVip);
    this.#counts.skipped += skipped;
    this.#counts.scans += 1;
    this.#listing = { held: this.#held, mark, stable: same, atMs: now, connections };
    return connections;
  }

  /** A `connections` datagram from a peer (already authenticated by the transport). */
  onPeerMessage(from: string, raw: unknown): void {
    const message = parseConnectionsMessage(raw);
    if (!message || from === this.#o.nodeId) return;
    // Only the cluster's own VIPs: what is kept stays bounded by the configuration.
    if (!this.#o.view.current().owners.has(message.vip)) return;
    let byNode = this.#known.get(message.vip);
    if (!byNode) {
      byNode = new Map();
      this.#known.set(message.vip, byNode);
    }
    const current = byNode.get(from);
    if (current && current.gen > message.gen) return;
    const list =
      current && current.gen === message.gen
        ? current
        : { gen: message.gen, parts: message.parts, received: new Map(), atMs: this.#now() };
    list.received.set(message.part, message.conns);
    byNode.set(from, list);
    if (list.received.size === list.parts) this.#counts.listsReceived += 1;
  }

  #onView(view: ClusterViewSnapshot): void {
    const gained = [...view.held].filter((vip) => !this.#held.has(vip));
    this.#held = new Set(view.held);
    for (const vip of gained) this.#tickle(vip);
    if (gained.length > 0) this.scan();
  }

  #tickle(vip: string): void {
    const byNode = this.#known.get(vip);
    if (!byNode) return;
    this.#known.delete(vip);
    const now = this.#now();
    const targets: (readonly [string, number, number])[] = [];
    const sources: string[] = [];
    for (const [node, list] of byNode) {
      if (now - list.atMs > listMaxAgeMs) continue;
      sources.push(`${node} (${now - list.atMs} ms old)`);
      for (const conns of list.received.values()) targets.push(...conns);
    }
    if (targets.length === 0) return;
    const round = (attempt: number) => {
      let sent = 0;
      let firstError: string | undefined;
      for (const [client, clientPort, vipPort] of targets) {
        try {
          this.#send ??= this.#o.send ?? nativeSender();
          sent += this.#send(vip, vipPort, client, clientPort, 1) > 0 ? 1 : 0;
        } catch (error) {
          this.#counts.tickleErrors += 1;
          firstError ??= error instanceof Error ? error.message : String(error);
        }
      }
      this.#counts.tickled += sent;
      if (attempt === 0 || firstError) {
        this.#o.log.log(
          firstError ? "warn" : "info",
          "tickle ACKs sent to the clients of a VIP taken over, so their connections reset now",
          {
            vip,
            connections: targets.length,
            sent,
            attempt: attempt + 1,
            lists: sources.join(", "),
            ...(firstError ? { error: firstError } : {}),
          },
        );
      }
    };
    tickleDelaysMs.forEach((delayMs, attempt) => {
      if (delayMs === 0) {
        round(attempt);
        return;
      }
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        // Only while this node still holds the VIP: a VIP handed on is the next owner's.
        if (this.#held.has(vip)) round(attempt);
      }, delayMs);
      timer.unref();
      this.#timers.add(timer);
    });
  }
}
