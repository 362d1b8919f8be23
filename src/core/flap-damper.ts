/**
 * Flap damping with the semantics of S4: a subject (node, backend, health check) is declared
 * down only when its count of faults within the current unit of time reaches `faultsToFail`
 * (M); the counter starts again at zero with every new unit. A subject that is down is
 * declared up again only after `rise` consecutive good observations.
 *
 * Pure: callers pass the monotonic time of each observation and keep the returned state.
 * Used by the coordinator's membership, the health-check runner and the relay.
 */

export interface FlapDamperConfig {
  /** M: faults within one unit of time that declare the subject down (>= 1). */
  readonly faultsToFail: number;
  /** Length of the unit of time in ms; the count resets when a unit ends. */
  readonly windowMs: number;
  /** Consecutive good observations that bring a down subject back up (>= 1). */
  readonly rise: number;
}

export interface FlapDamperState {
  readonly up: boolean;
  /** Faults counted in the current unit of time (S4's Ai / Bi). */
  readonly faults: number;
  /** Start of the current unit of time; undefined until the first fault. */
  readonly windowStartMs: number | undefined;
  /** Consecutive good observations while down. */
  readonly goodStreak: number;
}

export type FlapTransition = "none" | "went-down" | "went-up";

export function initialDamperState(up = true): FlapDamperState {
  return { up, faults: 0, windowStartMs: undefined, goodStreak: 0 };
}

/** Records one observation (`ok` = good) made at `nowMs` and says whether the subject flipped. */
export function observe(
  config: FlapDamperConfig,
  state: FlapDamperState,
  ok: boolean,
  nowMs: number,
): { state: FlapDamperState; transition: FlapTransition } {
  let { faults, windowStartMs } = state;
  if (windowStartMs !== undefined && nowMs - windowStartMs >= config.windowMs) {
    // A new unit of time: the counter starts again at zero.
    faults = 0;
    windowStartMs = undefined;
  }
  if (state.up) {
    if (ok) return { state: { ...state, faults, windowStartMs }, transition: "none" };
    windowStartMs ??= nowMs;
    faults += 1;
    if (faults >= config.faultsToFail) {
      return {
        state: { up: false, faults, windowStartMs, goodStreak: 0 },
        transition: "went-down",
      };
    }
    return { state: { up: true, faults, windowStartMs, goodStreak: 0 }, transition: "none" };
  }
  if (!ok) {
    windowStartMs ??= nowMs;
    return {
      state: { up: false, faults: faults + 1, windowStartMs, goodStreak: 0 },
      transition: "none",
    };
  }
  const goodStreak = state.goodStreak + 1;
  if (goodStreak >= config.rise) {
    return { state: initialDamperState(true), transition: "went-up" };
  }
  return { state: { up: false, faults, windowStartMs, goodStreak }, transition: "none" };
}

/** Forces the subject down at once (used when a node reports itself unhealthy). */
export function forceDown(state: FlapDamperState, nowMs: number): FlapDamperState {
  return {
    up: false,
    faults: state.faults,
    windowStartMs: state.windowStartMs ?? nowMs,
    goodStreak: 0,
  };
}
