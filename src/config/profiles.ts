/**
 * Named timer profiles. Operators pick one (`profile: lan`) instead of tuning fourteen knobs;
 * single fields can still be overridden under `timers:`, and every combination goes through
 * `validateTimers()` so that an override cannot silently break a safety rule.
 *
 * Failover time is roughly suspicion (suspectAfterMs + (faultsToFail - 1) heartbeat rounds)
 * + lease expiry + leaseMarginMs + the gratuitous ARP burst. Faster timers fail over sooner
 * but cost more packets and mistake short stalls (GC pauses, a busy switch) for failures.
 */
import { renewableLeaseMinMs } from "../core/timing.ts";
import type { ProfileName, Timers } from "./types.ts";

export const defaultProfile: ProfileName = "lan";

export const profiles: Readonly<Record<ProfileName, Timers>> = Object.freeze({
  /**
   * `fast`: nodes on one switch or one machine (tests, the namespace demo). Fails over in about
   * 150 ms, at 100 heartbeats per second per node and with no tolerance for stalls above ~30 ms:
   * a loaded host will see false failovers. The lease was 100 ms until 2026-12-06: shorter
   * than a handover takes (`handoverLeaseMinMs`, 111 ms), so a coordinator's crash made
   * healthy nodes drop their VIPs for a moment in the simulator: in 55 crashes of 200, and
   * still in 12 once followers answered a new coordinator's first heartbeat at once.
   */
  fast: Object.freeze({
    heartbeatIntervalMs: 10,
    electionTimeoutMs: 50,
    leaseMs: 120,
    suspectAfterMs: 30,
    faultsToFail: 2,
    faultWindowMs: 200,
    riseRounds: 3,
    clockDriftRatio: 0.01,
    leaseMarginMs: 5,
    probeTimeoutMs: 10,
    probeRetryMs: 200,
    garpRepeat: 3,
    garpIntervalMs: 10,
    garpRefreshMs: 60000,
  }),
  /**
   * `lan` (the default): a data-centre LAN. Fails over in about half a second (a node silent
   * for 350 ms is failed, the lease is 460 ms) while riding out stalls of a few hundred
   * milliseconds, at 10 heartbeats per second per node. Until 2026-12-06 `lan` sent 20 a
   * second (50 ms heartbeats, 150 ms election timeout, 400 ms lease, suspicion after 150 ms
   * and 3 faults): about 8 % faster failover in the simulator (18 % after a SIGKILL on this
   * machine, 3 % after a link failure) at 1.8 times the idle CPU, and an election after
   * 150 ms of a coordinator's silence instead of 200 (README, "Timer profiles"). Halving those
   * (25 ms heartbeats, 250 ms lease) moved VIPs under load: kept opt-in.
   */
  lan: Object.freeze({
    heartbeatIntervalMs: 100,
    electionTimeoutMs: 200,
    leaseMs: 460,
    suspectAfterMs: 250,
    faultsToFail: 2,
    faultWindowMs: 1000,
    riseRounds: 3,
    clockDriftRatio: 0.01,
    leaseMarginMs: 10,
    probeTimeoutMs: 20,
    probeRetryMs: 500,
    garpRepeat: 3,
    garpIntervalMs: 50,
    garpRefreshMs: 60000,
  }),
  /**
   * `wan`: nodes across sites or on a lossy, high-latency path. Fails over in a few seconds
   * but tolerates jitter and packet loss that would make `lan` flap, at 5 heartbeats per second.
   */
  wan: Object.freeze({
    heartbeatIntervalMs: 200,
    electionTimeoutMs: 1000,
    leaseMs: 2500,
    suspectAfterMs: 600,
    faultsToFail: 3,
    faultWindowMs: 5000,
    riseRounds: 3,
    clockDriftRatio: 0.01,
    leaseMarginMs: 50,
    probeTimeoutMs: 100,
    probeRetryMs: 2000,
    garpRepeat: 3,
    garpIntervalMs: 200,
    garpRefreshMs: 60000,
  }),
});

/**
 * `lan`'s timers until 2026-12-06 (50 ms heartbeats, 150 ms election timeout, 400 ms lease,
 * suspicion after 150 ms and 3 faults): not a profile, but a valid `timers:` set for an
 * operator who wants a faster failover (1.08 times as fast in the simulator) at 1.8 times the
 * idle CPU (README, "Timer profiles"). The simulator's scenario scripts and the mechanism
 * tests written against these timelines run on them (`timers=lan50`), so retuning `lan` does
 * not change what they show.
 */
export const lan50Timers: Timers = Object.freeze({
  ...profiles.lan,
  heartbeatIntervalMs: 50,
  electionTimeoutMs: 150,
  leaseMs: 400,
  suspectAfterMs: 150,
  faultsToFail: 3,
});

/**
 * `lan50Timers` with `receive: on-tick`: there the grant window spans four heartbeat
 * intervals, so the election timeout grows to 215 ms (`floatip config check` names the value).
 */
export const lan50OnTickTimers: Timers = Object.freeze({ ...lan50Timers, electionTimeoutMs: 215 });

export const profileNames: readonly ProfileName[] = Object.freeze(["fast", "lan", "wan"]);

export function isProfileName(value: unknown): value is ProfileName {
  return typeof value === "string" && (profileNames as readonly string[]).includes(value);
}

/** One broken timer rule: the field to change, what is wrong and how to fix it. */
export interface TimerProblem {
  readonly field: keyof Timers;
  readonly message: string;
  readonly fix: string;
}

/** Fields that may be zero: `garpRefreshMs` 0 turns periodic re-announcement off. */
const zeroAllowed: ReadonlySet<keyof Timers> = new Set(["garpRefreshMs"]);

/**
 * Checks a complete set of timers, the profile merged with any overrides. Returns every
 * broken rule (empty when valid); the config loader turns them into config problems.
 */
export function validateTimers(t: Timers): TimerProblem[] {
  const problems: TimerProblem[] = [];
  const fields = Object.keys(t) as (keyof Timers)[];
  for (const field of fields) {
    if (field === "clockDriftRatio") continue;
    const value = t[field];
    const min = zeroAllowed.has(field) ? 0 : 1;
    if (!Number.isInteger(value) || value < min) {
      problems.push({
        field,
        message: `must be a ${min === 0 ? "non-negative" : "positive"} integer, got ${value}`,
        fix: `use a whole number ${min === 0 ? ">= 0" : ">= 1"}`,
      });
    }
  }
  const badFields = new Set(problems.map((p) => p.field));
  const ok = (...names: (keyof Timers)[]) => names.every((n) => !badFields.has(n));

  // A peer must be allowed to miss at least one heartbeat before it is suspected.
  if (ok("heartbeatIntervalMs", "suspectAfterMs") && t.heartbeatIntervalMs >= t.suspectAfterMs) {
    problems.push({
      field: "suspectAfterMs",
      message: `must be greater than heartbeat_interval_ms (${t.heartbeatIntervalMs}), got ${t.suspectAfterMs}: every peer would be suspected between two heartbeats`,
      fix: `set suspect_after_ms to at least ${3 * t.heartbeatIntervalMs} (three heartbeats)`,
    });
  }
  // Followers must hear at least two heartbeats of a live coordinator before starting an election.
  if (
    ok("heartbeatIntervalMs", "electionTimeoutMs") &&
    t.electionTimeoutMs < 2 * t.heartbeatIntervalMs
  ) {
    problems.push({
      field: "electionTimeoutMs",
      message: `must be at least twice heartbeat_interval_ms (${t.heartbeatIntervalMs}), got ${t.electionTimeoutMs}: one lost heartbeat would start an election`,
      fix: `set election_timeout_ms to at least ${2 * t.heartbeatIntervalMs}`,
    });
  }
  // Renewals ride on heartbeats: a lease must reach the next renewal (renewableLeaseMinMs).
  if (ok("heartbeatIntervalMs", "leaseMs", "leaseMarginMs") && t.leaseMs < renewableLeaseMinMs(t)) {
    const min = renewableLeaseMinMs(t);
    problems.push({
      field: "leaseMs",
      message: `must be at least three heartbeat intervals and three lease margins (${min} ms), got ${t.leaseMs}: a coordinator renews its own lease once per heartbeat, from a round acknowledged up to two intervals earlier, and gives its VIPs up two margins before the end, so a shorter lease lapses on a healthy cluster`,
      fix: `set lease_ms to at least ${min}`,
    });
  }
  // A lease must outlast an election, or every change of coordinator drops all VIPs.
  if (ok("electionTimeoutMs", "leaseMs") && t.leaseMs <= t.electionTimeoutMs) {
    problems.push({
      field: "leaseMs",
      message: `must be greater than election_timeout_ms (${t.electionTimeoutMs}), got ${t.leaseMs}: every election would drop all VIPs`,
      fix: `set lease_ms to more than ${t.electionTimeoutMs} (twice election_timeout_ms is a good value)`,
    });
  }
  // The damper counts one fault per heartbeat round; the window must hold faultsToFail rounds.
  if (
    ok("heartbeatIntervalMs", "faultsToFail", "faultWindowMs") &&
    (t.faultsToFail - 1) * t.heartbeatIntervalMs >= t.faultWindowMs
  ) {
    problems.push({
      field: "faultWindowMs",
      message: `is too short for faults_to_fail (${t.faultsToFail}) faults at one per heartbeat (${t.heartbeatIntervalMs} ms): no node could ever be declared failed`,
      fix: `set fault_window_ms to more than ${(t.faultsToFail - 1) * t.heartbeatIntervalMs}`,
    });
  }
  // Lease safety assumes clocks run at nearly the same rate; 10 % is far beyond real hardware.
  if (
    typeof t.clockDriftRatio !== "number" ||
    !Number.isFinite(t.clockDriftRatio) ||
    t.clockDriftRatio < 0 ||
    t.clockDriftRatio >= 0.1
  ) {
    problems.push({
      field: "clockDriftRatio",
      message: `must be at least 0 and below 0.1, got ${t.clockDriftRatio}`,
      fix: "use 0.01 (1 %), which covers ordinary crystal oscillators with a wide margin",
    });
  }
  return problems;
}
