/**
 * Every node's lease, recomputed from the datagrams the simulated network carried — never
 * read from a core.
 *
 * The rules are the README's, stated on observations:
 * - A follower's lease runs `leaseMs` on its own clock from the instant it SENT the
 *   heartbeat whose (incarnation, seq) a coordinator's heartbeat echoed in a grant, counted
 *   once that heartbeat was delivered to it.
 * - A coordinator's own lease runs `leaseMs` on its own clock from the instant it sent the
 *   newest round of its term that a majority (itself included) had really received, as far
 *   as their acknowledgements had reached it when it sent a heartbeat. "Really received" is
 *   what the network delivered to the acknowledging node before it sent the heartbeat that
 *   carried the acknowledgement, not the `roundSeen` number it wrote into it.
 *
 * Each grant counts whatever the term of the coordinator that sent it: a node that ignored a
 * grant holds a shorter lease than the one computed here, and the protocol must wait out
 * every grant of every coordinator anyway. A restart ends the incarnation's lease.
 */
import type { HeartbeatMessage, Message } from "../../core/types.ts";
import type { Checker, World } from "./types.ts";

/** A coordinator's term as seen on the wire: when it sent each round, who really acked what. */
interface CoordinatorTerm {
  readonly term: number;
  readonly roundSentAtMs: Map<number, number>;
  /** Highest round of this term each peer had received when it sent an acknowledgement. */
  readonly acks: Map<string, number>;
}

/** Seq numbers kept per incarnation: echoes of older heartbeats no longer anchor anything. */
const sentSeqsKept = 4096;

export class LeaseLedger implements Checker {
  readonly #world: World;
  readonly #majority: number;
  /** Per node, current incarnation: real send time of each heartbeat seq. */
  readonly #sentAtMs = new Map<string, Map<number, number>>();
  /** Per node, current incarnation: end of its lease on its own clock. */
  readonly #leaseEndLocalMs = new Map<string, number>();
  /** Per node, current incarnation: per term, highest round delivered from each coordinator. */
  readonly #roundsHeard = new Map<string, Map<number, Map<string, number>>>();
  /** Per node: the term it coordinates now (from its own heartbeats) with its rounds and acks. */
  readonly #coordinating = new Map<string, CoordinatorTerm>();
  /** Per heartbeat: the rounds of the sender's term it had really received, per coordinator. */
  readonly #acknowledges = new WeakMap<Message, Map<string, number>>();

  constructor(world: World) {
    this.#world = world;
    this.#majority = Math.floor(world.nodeIds.length / 2) + 1;
  }

  /** End of `id`'s current lease on its own clock (−∞ without one). */
  leaseEndLocalMs(id: string): number {
    return this.#leaseEndLocalMs.get(id) ?? Number.NEGATIVE_INFINITY;
  }

  /** Milliseconds of `id`'s clock its lease still runs (≤ 0: expired). */
  leaseLeftMs(id: string): number {
    return this.leaseEndLocalMs(id) - this.#world.localAtMs(id, this.#world.nowMs());
  }

  /**
   * Real send time of the newest round of `id`'s current term that a majority had really
   * received, counting `currentRound` (being sent now) as its own; undefined when none.
   */
  acknowledgedRoundSentAtMs(id: string, currentRound: number): number | undefined {
    const term = this.#coordinating.get(id);
    if (!term) return undefined;
    const rounds = [currentRound, ...term.acks.values()];
    if (rounds.length < this.#majority) return undefined;
    rounds.sort((a, b) => b - a);
    const round = rounds[this.#majority - 1]!;
    return round > 0 ? term.roundSentAtMs.get(round) : undefined;
  }

  onBoot(id: string): void {
    this.#sentAtMs.set(id, new Map());
    this.#leaseEndLocalMs.delete(id);
    this.#roundsHeard.set(id, new Map());
    this.#coordinating.delete(id);
  }

  onSend(from: string, _to: string | undefined, message: Message): void {
    if (message.type !== "heartbeat") return;
    const now = this.#world.nowMs();
    const sent = this.#sentAtMs.get(from)!;
    sent.set(message.seq, now);
    sent.delete(message.seq - sentSeqsKept);
    this.#acknowledges.set(message, this.#heardInTerm(from, message.term));
    if (message.role !== "coordinator") {
      this.#coordinating.delete(from);
      return;
    }
    if (message.round === undefined) return; // a resignation carries no round
    let term = this.#coordinating.get(from);
    if (!term || term.term !== message.term) {
      term = { term: message.term, roundSentAtMs: new Map(), acks: new Map() };
      this.#coordinating.set(from, term);
    }
    term.roundSentAtMs.set(message.round, now);
    const acknowledgedAt = this.acknowledgedRoundSentAtMs(from, message.round);
    if (acknowledgedAt !== undefined) {
      this.#extend(from, this.#world.localAtMs(from, acknowledgedAt));
    }
  }

  onDeliver(to: string, from: string, message: Message): void {
    if (message.type !== "heartbeat") return;
    this.#noteRound(to, from, message);
    this.#noteAcknowledgement(to, from, message);
    this.#noteGrant(to, message);
  }

  #heardInTerm(id: string, term: number): Map<string, number> {
    return new Map(this.#roundsHeard.get(id)?.get(term));
  }

  #noteRound(to: string, from: string, message: HeartbeatMessage): void {
    if (message.role !== "coordinator" || message.round === undefined) return;
    const terms = this.#roundsHeard.get(to);
    if (!terms) return;
    let heard = terms.get(message.term);
    if (!heard) {
      heard = new Map();
      terms.set(message.term, heard);
    }
    heard.set(from, Math.max(heard.get(from) ?? 0, message.round));
  }

  #noteAcknowledgement(to: string, from: string, message: HeartbeatMessage): void {
    const term = this.#coordinating.get(to);
    if (!term || message.term !== term.term) return;
    const round = this.#acknowledges.get(message)?.get(to);
    if (round === undefined) return;
    term.acks.set(from, Math.max(term.acks.get(from) ?? 0, round));
  }

  #noteGrant(to: string, message: HeartbeatMessage): void {
    if (message.role !== "coordinator") return;
    const grant = message.grants?.[to];
    if (!grant || grant[0] !== this.#world.incarnation(to)) return;
    const sentAt = this.#sentAtMs.get(to)?.get(grant[1]);
    if (sentAt === undefined) return;
    this.#extend(to, this.#world.localAtMs(to, sentAt));
  }

  #extend(id: string, anchorLocalMs: number): void {
    const end = anchorLocalMs + this.#world.timers.leaseMs;
    this.#leaseEndLocalMs.set(id, Math.max(this.leaseEndLocalMs(id), end));
  }
}
