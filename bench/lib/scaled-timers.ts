/**
 * Timer sets derived from one heartbeat interval h with the ratios of the `fast` profile
 * (h = 10 ms): election 5h, lease 12h (10h until 2026-12-06), suspect 3h, two faults in a window of 20h, occupancy
 * probe max(5, h), lease margin max(2, h/2), probe retry 20h, gratuitous ARP spacing h. The
 * tradeoff benchmark walks h to show what each step of speed costs in spurious failovers; the
 * ratios stay fixed so that h is the only variable. Every set still goes through
 * `validateTimers()` before a cluster is started with it.
 */
import { profiles, validateTimers } from "../../src/config/profiles.ts";
import type { Timers } from "../../src/config/types.ts";

export function scaledTimers(heartbeatIntervalMs: number): Timers {
  const h = heartbeatIntervalMs;
  return {
    ...profiles.fast,
    heartbeatIntervalMs: h,
    electionTimeoutMs: 5 * h,
    leaseMs: 12 * h,
    suspectAfterMs: 3 * h,
    faultsToFail: 2,
    faultWindowMs: 20 * h,
    probeTimeoutMs: Math.max(5, h),
    leaseMarginMs: Math.max(2, Math.round(h / 2)),
    probeRetryMs: 20 * h,
    garpIntervalMs: h,
  };
}

/** The problems `validateTimers()` finds, one line each ("" when the set is valid). */
export function timerProblems(timers: Timers): string {
  return validateTimers(timers)
    .map((p) => `${snakeCase(p.field)} ${p.message} (fix: ${p.fix})`)
    .join("\n");
}

/** The `timers:` block of a cluster YAML that sets every field of `timers`. */
export function timersYaml(timers: Timers): string {
  const pairs = Object.entries(timers).map(([field, value]) => `${snakeCase(field)}: ${value}`);
  return `timers: { ${pairs.join(", ")} }`;
}

function snakeCase(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
