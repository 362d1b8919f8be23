/**
 * grant-outside-window: a coordinator echoes lease grants only within `grantWindowMs`, on
 * its own clock, of sending a round that a majority had really received (`LeaseLedger`: the
 * rounds delivered to each acknowledging node before it sent its acknowledgement, not the
 * round number it wrote). Voters refuse votes for an election timeout after hearing that
 * round, so every grant precedes the election of any later coordinator.
 */
import { grantWindowMs } from "../../core/timing.ts";
import type { Message } from "../../core/types.ts";
import type { LeaseLedger } from "./lease-ledger.ts";
import type { Checker, Report, World } from "./types.ts";

export class GrantChecker implements Checker {
  readonly #world: World;
  readonly #ledger: LeaseLedger;
  readonly #report: Report;

  constructor(world: World, ledger: LeaseLedger, report: Report) {
    this.#world = world;
    this.#ledger = ledger;
    this.#report = report;
  }

  /** Called after the ledger has recorded this heartbeat's round. */
  onSend(from: string, _to: string | undefined, message: Message): void {
    if (message.type !== "heartbeat" || message.role !== "coordinator") return;
    const granted = Object.keys(message.grants ?? {});
    if (granted.length === 0 || message.round === undefined) return;
    const world = this.#world;
    const acknowledgedAt = this.#ledger.acknowledgedRoundSentAtMs(from, message.round);
    const now = world.localAtMs(from, world.nowMs());
    const window = grantWindowMs(world.timers);
    if (acknowledgedAt === undefined) {
      this.#report(
        "grant-outside-window",
        `${from} grants leases to ${granted.join(", ")} in term ${message.term} with no round a majority received`,
      );
      return;
    }
    const ageMs = now - world.localAtMs(from, acknowledgedAt);
    if (ageMs >= window) {
      this.#report(
        "grant-outside-window",
        `${from} grants leases to ${granted.join(", ")} in term ${message.term} ${ageMs} ms after the newest round a majority received (window ${window} ms)`,
      );
    }
  }
}
