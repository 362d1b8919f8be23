/**
 * Election rules, checked on the datagrams alone:
 *
 * - two-coordinators: one sender of coordinator heartbeats per term, across restarts.
 * - coordinator-without-majority: a node's first coordinator heartbeat of a term comes after
 *   granted votes of that term from a majority (itself included) were delivered to it.
 * - double-vote: a node grants its vote in a term to one candidate only (a candidate votes
 *   for itself when it asks for votes); the vote survives restarts, as the vote file does.
 * - vote-too-soon: a node grants no vote within an election timeout, on its own clock, of
 *   the delivery of a heartbeat from a coordinator it accepted. This is what makes every
 *   grant of an old coordinator precede the election of the next one.
 *
 * "Accepted" follows the datagram rules every node applies, from observations only: the
 * heartbeat is newer than any delivered from the same sender incarnation to this incarnation
 * of the receiver, and its term is at least the highest term the receiver can be known to
 * have reached (from the heartbeats and vote requests delivered to it and what it sent
 * itself). That estimate is never below the node's real term, so the checker never counts
 * a contact the node itself could have ignored; a resignation clears the contact.
 */
import type { HeartbeatMessage, Message } from "../../core/types.ts";
import type { Checker, Report, World } from "./types.ts";

export class ElectionChecker implements Checker {
  readonly #world: World;
  readonly #report: Report;
  readonly #majority: number;
  readonly #coordinatorOfTerm = new Map<number, string>();
  /** Per term: the candidate each voter gave its vote to. */
  readonly #votes = new Map<number, Map<string, string>>();
  /** Per `candidate/term`: voters whose granted vote reached the candidate. */
  readonly #votesDelivered = new Map<string, Set<string>>();
  readonly #announced = new Set<string>();
  /** Per node: real time of the last delivery of an accepted coordinator heartbeat. */
  readonly #contactMs = new Map<string, number>();
  /** Per node: the highest term it can be known to have reached (never below its real term). */
  readonly #knownTerm = new Map<string, number>();
  /** Per receiver incarnation: newest (incarnation, seq) delivered from each sender. */
  readonly #newest = new Map<string, Map<string, readonly [number, number]>>();

  constructor(world: World, report: Report) {
    this.#world = world;
    this.#report = report;
    this.#majority = Math.floor(world.nodeIds.length / 2) + 1;
  }

  onBoot(id: string): void {
    this.#newest.set(id, new Map());
  }

  onSend(from: string, to: string | undefined, message: Message): void {
    switch (message.type) {
      case "heartbeat":
        this.#raiseTerm(from, message.term);
        if (message.role === "coordinator") this.#coordinatorAnnounced(from, message.term);
        return;
      case "vote-request":
        this.#raiseTerm(from, message.term);
        this.#vote(message.term, from, from);
        return;
      case "vote-response":
        if (!message.granted || to === undefined) return;
        this.#raiseTerm(from, message.term);
        this.#vote(message.term, from, to);
        this.#checkVoteTiming(from, to, message.term);
        return;
      default:
        return;
    }
  }

  onDeliver(to: string, from: string, message: Message): void {
    switch (message.type) {
      case "heartbeat":
        this.#heartbeatDelivered(to, from, message);
        return;
      case "vote-request":
        this.#raiseTerm(to, message.term);
        return;
      case "vote-response": {
        if (!message.granted) return;
        const key = `${to}/${message.term}`;
        let voters = this.#votesDelivered.get(key);
        if (!voters) {
          voters = new Set();
          this.#votesDelivered.set(key, voters);
        }
        voters.add(from);
        return;
      }
      default:
        return;
    }
  }

  #heartbeatDelivered(to: string, from: string, message: HeartbeatMessage): void {
    const newest = this.#newest.get(to);
    const previous = newest?.get(from);
    if (
      previous &&
      (message.incarnation < previous[0] ||
        (message.incarnation === previous[0] && message.seq <= previous[1]))
    ) {
      return; // reordered or duplicated: no node acts on it
    }
    newest?.set(from, [message.incarnation, message.seq]);
    this.#raiseTerm(to, message.term);
    if (message.role !== "coordinator") return;
    if (message.resign) {
      this.#contactMs.delete(to);
      return;
    }
    if (message.term >= (this.#knownTerm.get(to) ?? 0)) {
      this.#contactMs.set(to, this.#world.nowMs());
    }
  }

  #raiseTerm(id: string, term: number): void {
    if (term > (this.#knownTerm.get(id) ?? 0)) this.#knownTerm.set(id, term);
  }

  #coordinatorAnnounced(id: string, term: number): void {
    const existing = this.#coordinatorOfTerm.get(term);
    if (existing !== undefined && existing !== id) {
      this.#report("two-coordinators", `term ${term}: ${existing} and ${id}`);
      return;
    }
    this.#coordinatorOfTerm.set(term, id);
    const key = `${id}/${term}`;
    if (this.#announced.has(key)) return;
    this.#announced.add(key);
    const voters = new Set(this.#votesDelivered.get(key));
    voters.add(id);
    if (voters.size < this.#majority) {
      this.#report(
        "coordinator-without-majority",
        `${id} acts as coordinator of term ${term} with votes from ${[...voters].join(", ")} only`,
      );
    }
  }

  #vote(term: number, voter: string, candidate: string): void {
    let votes = this.#votes.get(term);
    if (!votes) {
      votes = new Map();
      this.#votes.set(term, votes);
    }
    const earlier = votes.get(voter);
    if (earlier !== undefined && earlier !== candidate) {
      this.#report(
        "double-vote",
        `${voter} voted for ${earlier} and for ${candidate} in term ${term}`,
      );
    }
    votes.set(voter, candidate);
  }

  #checkVoteTiming(voter: string, candidate: string, term: number): void {
    const contact = this.#contactMs.get(voter);
    if (contact === undefined) return;
    const world = this.#world;
    const sinceMs = world.localAtMs(voter, world.nowMs()) - world.localAtMs(voter, contact);
    if (sinceMs < world.timers.electionTimeoutMs) {
      this.#report(
        "vote-too-soon",
        `${voter} votes for ${candidate} in term ${term} ${sinceMs} ms after hearing a coordinator`,
      );
    }
  }
}
