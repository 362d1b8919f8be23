/**
 * The control loop's platform on Linux: native timers (native-timer.ts), the authenticated UDP
 * transport, one `ip -batch` per address batch, AF_PACKET ARP probes and bursts (native
 * addon), netlink for listings and lifetime renewals, and the node's fsynced state file for
 * votes.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { applyAddressBatch } from "../adapters/linux/address.ts";
import { announceBurst, probeOccupiedMany } from "../adapters/linux/arp.ts";
import { NativeTimers } from "../adapters/linux/native-timer.ts";
import { listAddressesNetlink, renewAddressLifetimes } from "../adapters/linux/netlink.ts";
import type { SendGate, UdpTransport } from "../cluster/udp-transport.ts";
import { canonicalIp } from "../config/ipv6.ts";
import type { Message, PersistentState } from "../core/types.ts";
import type {
  AddressChange,
  ControlPlatform,
  ListedAddress,
  ProbeOutcome,
} from "./control-loop.ts";

export function monotonicMs(): number {
  return Math.floor(performance.now());
}

export interface NodeState {
  incarnation?: number;
  vote?: PersistentState;
}

export function readNodeState(dir: string): NodeState {
  try {
    return JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as NodeState;
  } catch {
    return {};
  }
}

/** Durable before return: write a temporary file, fsync it, rename over the old one. */
export function writeNodeState(dir: string, state: NodeState): void {
  const path = join(dir, "state.json");
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, "w", 0o600);
  try {
    writeSync(fd, JSON.stringify(state));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
}

export class LinuxPlatform implements ControlPlatform {
  readonly #transport: UdpTransport;
  readonly #stateDir: string;
  readonly #incarnation: number;
  /** Exactly re-armed: a wake-up moved later wakes nobody at its old time (native-timer.ts). */
  readonly #timers = new NativeTimers();

  constructor(options: { transport: UdpTransport; stateDir: string; incarnation: number }) {
    this.#transport = options.transport;
    this.#stateDir = options.stateDir;
    this.#incarnation = options.incarnation;
  }

  now(): number {
    return monotonicMs();
  }

  setTimer(run: () => void, delayMs: number): unknown {
    return this.#timers.set(run, delayMs);
  }

  clearTimer(handle: unknown): void {
    this.#timers.clear(handle);
  }

  soon(run: () => void): void {
    setImmediate(run);
  }

  send(to: string, message: Message, gate?: SendGate): void {
    this.#transport.send(to, message, gate);
  }

  broadcast(message: Message, gate?: SendGate): void {
    this.#transport.broadcast(message, gate);
  }

  datagramsSeen(): number {
    const stats = this.#transport.stats();
    let count = stats.received;
    for (const n of Object.values(stats.dropped)) count += n;
    return count;
  }

  drainDatagrams(): void {
    this.#transport.drain();
  }

  persistVote(state: PersistentState): void {
    writeNodeState(this.#stateDir, { incarnation: this.#incarnation, vote: state });
  }

  applyAddresses(
    changes: readonly AddressChange[],
    done: (outcomes: readonly (Error | undefined)[] | Error) => void,
  ): void {
    applyAddressBatch(changes).then(done, (error: unknown) => done(asError(error)));
  }

  probe(
    iface: string,
    addresses: readonly string[],
    timeoutMs: number,
    done: (outcomes: readonly ProbeOutcome[] | Error) => void,
  ): void {
    probeOccupiedMany(iface, addresses, timeoutMs).then(done, (error: unknown) =>
      done(asError(error)),
    );
  }

  announce(
    iface: string,
    addresses: readonly string[],
    options: { repeat: number; intervalMs: number; stillHeld: (address: string) => boolean },
    done: (error: Error | undefined) => void,
  ): void {
    announceBurst(iface, addresses, options).then(
      () => done(undefined),
      (error: unknown) => done(asError(error)),
    );
  }

  listAddresses(iface: string): readonly ListedAddress[] {
    return listAddressesNetlink(iface).map((a) => ({
      ip: canonicalIp(a.ip),
      ...(a.dadFailed ? { dadFailed: true } : a.tentative ? { tentative: true } : {}),
    }));
  }

  renewLifetimes(
    iface: string,
    entries: readonly { readonly address: string; readonly prefix: number }[],
    lifetimeSec: number,
  ): readonly (Error | undefined)[] {
    return renewAddressLifetimes(
      iface,
      entries.map((e) => ({ ip: e.address, prefixLength: e.prefix })),
      lifetimeSec,
    );
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
