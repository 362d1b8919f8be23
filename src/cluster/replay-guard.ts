/**
 * Anti-replay window per sender, as in IPsec (RFC 4303 §3.4.3): the highest sequence number
 * seen plus a 64-bit bitmap of the 64 numbers at and below it.
 *
 * Contract: the transport calls `check` once per datagram, after the MAC has been verified
 * and the sender has been recognised (so forged datagrams cannot move a window), and only
 * delivers the payload if it returns `undefined`. UDP may reorder, so anything inside the
 * window that has not been seen is still accepted.
 */
import type { DropReason } from "./codec.ts";

export const REPLAY_WINDOW_SIZE = 64;

const WINDOW_MASK = (1n << BigInt(REPLAY_WINDOW_SIZE)) - 1n;

interface SenderWindow {
  incarnation: number;
  highestSeq: number;
  /** Bit i set means `highestSeq - i` has been accepted. */
  seen: bigint;
}

/** The drop reasons this guard produces; `undefined` means "new, deliver it". */
export type ReplayVerdict = Extract<DropReason, "replay" | "stale-incarnation"> | undefined;

export class ReplayGuard {
  readonly #windows = new Map<string, SenderWindow>();

  /**
   * Records (`from`, `incarnation`, `seq`) and returns `undefined` if it is new; otherwise
   * returns why it must be dropped. A higher incarnation means the peer restarted, so its
   * window starts afresh.
   */
  check(from: string, incarnation: number, seq: number): ReplayVerdict {
    const window = this.#windows.get(from);
    if (window === undefined || incarnation > window.incarnation) {
      this.#windows.set(from, { incarnation, highestSeq: seq, seen: 1n });
      return undefined;
    }
    if (incarnation < window.incarnation) return "stale-incarnation";
    if (seq > window.highestSeq) {
      const shift = seq - window.highestSeq;
      window.seen =
        shift >= REPLAY_WINDOW_SIZE ? 1n : ((window.seen << BigInt(shift)) | 1n) & WINDOW_MASK;
      window.highestSeq = seq;
      return undefined;
    }
    const age = window.highestSeq - seq;
    if (age >= REPLAY_WINDOW_SIZE) return "replay";
    const bit = 1n << BigInt(age);
    if ((window.seen & bit) !== 0n) return "replay";
    window.seen |= bit;
    return undefined;
  }

  /** Drops the state of a sender removed from the configuration. */
  forget(from: string): void {
    this.#windows.delete(from);
  }

  /** Highest incarnation seen from `from`, for diagnostics. */
  incarnationOf(from: string): number | undefined {
    return this.#windows.get(from)?.incarnation;
  }
}
