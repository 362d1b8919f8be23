/**
 * Timer arithmetic behind the lease safety argument (README, "Why leases prevent split
 * brain"). Every node measures durations on its own monotonic clock, whose rate may differ
 * from real time by at most `clockDriftRatio` (ρ). Pure functions, shared by the core, the
 * simulator's checkers and the docs.
 */
import type { Timers } from "../config/types.ts";

/**
 * How long a coordinator waits, on its own clock, after the last moment a node's lease can
 * have been anchored, before it treats that lease as surely expired.
 *
 * A holder's lease runs `leaseMs` on the holder's clock from the moment it SENT the heartbeat
 * the grant echoes; that moment precedes the coordinator's receipt. In real time the lease
 * lasts at most leaseMs / (1 - ρ); the coordinator's clock shows at most that × (1 + ρ).
 */
export function leaseSafeWaitMs(timers: Timers): number {
  const rho = timers.clockDriftRatio;
  return Math.ceil((timers.leaseMs * (1 + rho)) / (1 - rho)) + timers.leaseMarginMs;
}

/**
 * A holder gives its VIPs up this long before its lease runs out, so the address is gone
 * before the lease ends even though removing it takes a few milliseconds (and may queue
 * behind an add still in flight): two margins.
 */
export function releaseGuardMs(timers: Timers): number {
  return 2 * timers.leaseMarginMs;
}

/**
 * How long a coordinator keeps its role, counted from the send time of the newest round a
 * majority acknowledged, before it steps down (check-quorum). A follower acknowledges a round
 * with its next heartbeat, up to one interval after the round, so the window is an election
 * timeout of silence counted from when they could have answered: an election timeout plus a
 * heartbeat interval. With the election timeout alone, two followers stalled together for
 * two intervals (a vCPU of a busy VM host descheduled for 100 ms, with `lan`'s 50 ms
 * heartbeats and 150 ms election timeout) made a healthy coordinator step down. Liveness
 * only: grants are bounded by `grantWindowMs`, holders by their own leases.
 * `readOnTick`: one interval more (see the function).
 */
export function checkQuorumWindowMs(timers: Timers, readOnTick = false): number {
  // Reading on the tick (`receive: on-tick`), an acknowledgement waits in the coordinator's
  // socket up to one more interval before it is read.
  return timers.electionTimeoutMs + (readOnTick ? 2 : 1) * timers.heartbeatIntervalMs;
}

/**
 * How long after sending a heartbeat round that a majority acknowledged a coordinator may
 * still grant leases. Followers refuse votes for `electionTimeoutMs` after hearing the
 * coordinator, so every grant happens before any later coordinator can be elected.
 */
export function grantWindowMs(timers: Timers): number {
  const rho = timers.clockDriftRatio;
  return Math.floor((timers.electionTimeoutMs * (1 - rho)) / (1 + rho)) - timers.leaseMarginMs;
}

/**
 * The shortest lease a healthy cluster can keep renewing. A coordinator extends its own lease
 * when it composes a round, from the newest round a majority acknowledged; a follower
 * acknowledges a round with its next heartbeat, up to one interval later, so at a compose that
 * round can be two intervals old, and the lease must reach the next compose, one interval on,
 * then the release guard (two margins) plus a margin for delays: three intervals and three
 * margins. Read on the tick (`receive: on-tick`) every hop waits up to one more interval, and
 * the acknowledgements of a larger majority spread further: four intervals and six margins.
 * Shorter, a coordinator gives up its VIPs with no fault whenever the nodes' phases line up
 * badly. Boundaries the simulator's runtime swarm found (200-400 seeds each, 2026-12-05):
 * 50 ms heartbeats, 10 ms margins: 170 ms lapses and 175 ms holds on 3, 5 and 7 nodes (this
 * bound: 180); 100 ms heartbeats: 320 / 330 on 3 nodes, 330 holds on 7 (bound 330). On the
 * tick: 50 ms heartbeats 220 / 230 on 3 nodes, 230 lapses on 5, 240 / 250 on 7 (bound 260);
 * 100 ms heartbeats on 7 nodes 430 / 450 (bound 460). With `lan`'s 100 ms timers of
 * 2026-12-06 as datagrams come, 40 seeds on 3 nodes: every one lapses at 220 ms, none at 260.
 */
export function renewableLeaseMinMs(timers: Timers, readOnTick = false): number {
  return readOnTick
    ? 4 * timers.heartbeatIntervalMs + 6 * timers.leaseMarginMs
    : 3 * timers.heartbeatIntervalMs + 3 * timers.leaseMarginMs;
}

/**
 * Upper bound, in real time, from the moment faults stop (a healthy majority can talk,
 * no foreign host holds a VIP) until every VIP is held again:
 *   two election timeouts (a fresh election, one split vote) + vote round trips,
 *   + failure detection (suspect delay + M heartbeat rounds),
 *   + the lease wait of a dead owner, + probe and address add, + a heartbeat of slack.
 * `maxDelayMs` is the worst one-way network delay, `actionMs` the worst address/probe time.
 */
export function livenessBoundMs(timers: Timers, maxDelayMs: number, actionMs: number): number {
  const election = 4 * timers.electionTimeoutMs + 4 * maxDelayMs;
  const detection = timers.suspectAfterMs + (timers.faultsToFail + 1) * timers.heartbeatIntervalMs;
  const handover = leaseSafeWaitMs(timers) + timers.probeTimeoutMs + 3 * actionMs;
  return election + detection + handover + 4 * timers.heartbeatIntervalMs + 6 * maxDelayMs;
}

/**
 * The shortest lease that lets a new coordinator grant before the leases of healthy holders
 * run out when their coordinator crashed. A holder's lease runs from the send time of its
 * answer to the round before the coordinator's last one, so at the coordinator's last round
 * it has a lease less one interval left; followers start electing an election timeout after
 * that round (up to one and a half: the timeout is drawn from [e, 1.5 e)), and the new
 * coordinator grants after three round trips (pre-vote, vote, its first round and the answers
 * to it) and up to two early-heartbeat gaps of a tenth of an interval (its first round and its
 * first grants, the second overlapping the answers' round trip); holders give up two margins
 * before the end. One lease margin per round trip: 1.5 e + 1.1 h + 5 margins. Read on the
 * tick (`receive: on-tick`) a follower answers on its tick, not at once, and every hop of the
 * handover waits up to an interval in a socket: eight intervals more. Shorter, a coordinator's
 * crash can make healthy nodes release their VIPs for a moment before the new coordinator's
 * first grant reaches them (liveness, not safety: nothing is held twice).
 * Boundaries the simulator found (`test/sim/coordinator-handover.test.ts`, 2026-12-06): `fast`
 * with a 100 ms lease (this bound: 111) lapsed in 55 coordinator crashes of 200 before
 * followers answered a new coordinator's first heartbeat at once and in 12 after; `lan` at
 * 440 ms holds, at 420 lapses (bound 460); the 50 ms timers on the tick with a 215 ms election
 * timeout lapse in every crash at 400 ms, in 2 of 60 at 700, 1 at 830 (bound 828), none at 900.
 */
export function handoverLeaseMinMs(timers: Timers, readOnTick = false): number {
  const intervals = readOnTick ? 9.1 : 1.1;
  return (
    Math.ceil(1.5 * timers.electionTimeoutMs + intervals * timers.heartbeatIntervalMs) +
    5 * timers.leaseMarginMs
  );
}

/**
 * What is left of a holder's lease at the worst phase of its coordinator's rounds: it runs
 * from the holder's answer to the round before the last (two intervals back), and the holder
 * gives its VIPs up two margins before the end. A holder stalled for less keeps its VIPs.
 */
export function holderLeaseLeftMs(timers: Timers): number {
  return timers.leaseMs - 2 * timers.heartbeatIntervalMs - releaseGuardMs(timers);
}
