/**
 * The relay's decision core (S4): which backend receives new connections, given health
 * checks and passive failures observed on real traffic.
 *
 * Backends are kept in order of preference: the primary first, then the standbys. Each one
 * has a flap damper: it is declared down only after M anomalies within one unit of time and
 * up again after `rise` consecutive good checks. Selection: the primary when it is up, else
 * the first standby that is up, else nobody (the data plane rejects new connections).
 *
 * Contract: the relay service calls `step(config, state, input)` for every check result,
 * every passive failure seen by the data plane and periodically with a `tick` (at least as
 * often as the check interval, so a timed failback happens on time). It keeps the returned
 * state and performs the effects in order: `switch-backend` before `close-connections`, so
 * that no new connection reaches a backend whose sessions are being closed.
 *
 * Pure: no I/O, no clock, no timers; time comes in with each input as monotonic `atMs`.
 */
import {
  type FlapDamperConfig,
  type FlapDamperState,
  initialDamperState,
  observe,
} from "../flap-damper.ts";

/** When the relay returns to a more preferred backend (usually the primary) that came back. */
export type RelayFailback =
  | { readonly mode: "immediate" }
  /** The preferred backend must have stayed up this long before traffic returns to it. */
  | { readonly mode: "after"; readonly afterMs: number }
  /** Stay on the current backend for as long as it stays up. */
  | { readonly mode: "never" };

export interface RelayMachineConfig {
  /** Backend ids in order of preference: primary first, then standbys. At least one. */
  readonly backends: readonly string[];
  readonly damper: FlapDamperConfig;
  readonly failback: RelayFailback;
  /** Close the established sessions of a backend when it is declared down. */
  readonly closeOnBackendDown: boolean;
  /** On failback, close the sessions still open on the backend left behind (HAProxy's
   * `on-marked-up shutdown-backup-sessions`). */
  readonly closeStandbySessionsOnFailback: boolean;
}

export interface BackendState {
  readonly id: string;
  readonly damper: FlapDamperState;
  /** Time of the last up/down transition (or of the machine's start). */
  readonly sinceMs: number;
}

export interface RelayState {
  readonly backends: readonly BackendState[];
  /** Index of the backend receiving new connections; undefined = all down, reject. */
  readonly active: number | undefined;
  /** Time the active backend was last chosen. */
  readonly activeSinceMs: number;
}

export type RelayInput =
  | {
      readonly type: "check-result";
      readonly backend: string;
      readonly ok: boolean;
      readonly atMs: number;
    }
  /** A connect by real traffic failed or timed out: one anomaly, like a failed check. */
  | { readonly type: "passive-failure"; readonly backend: string; readonly atMs: number }
  | { readonly type: "tick"; readonly atMs: number };

export type RelayEffect =
  /** Send new connections to `to`; undefined = reject them (TCP reset / HTTP 503). */
  | { readonly type: "switch-backend"; readonly to: string | undefined }
  | { readonly type: "close-connections"; readonly backend: string };

export type SwitchReason = "backend-down" | "backend-up" | "failback";

export type RelayEvent =
  | { readonly type: "backend-down"; readonly backend: string; readonly atMs: number }
  | { readonly type: "backend-up"; readonly backend: string; readonly atMs: number }
  | {
      readonly type: "switched";
      readonly from: string | undefined;
      readonly to: string | undefined;
      readonly reason: SwitchReason;
      readonly atMs: number;
    };

export interface RelayStep {
  readonly state: RelayState;
  readonly effects: readonly RelayEffect[];
  readonly events: readonly RelayEvent[];
}

/** All backends start up (as HAProxy's servers do), so the relay serves from the first second;
 * the first failed checks take a dead backend out. The primary is active. */
export function initialRelayState(config: RelayMachineConfig, nowMs: number): RelayState {
  if (config.backends.length === 0) throw new Error("a relay needs at least one backend");
  return {
    backends: config.backends.map((id) => ({
      id,
      damper: initialDamperState(true),
      sinceMs: nowMs,
    })),
    active: 0,
    activeSinceMs: nowMs,
  };
}

export function activeBackend(state: RelayState): string | undefined {
  return state.active === undefined ? undefined : state.backends[state.active]?.id;
}

/**
 * Backends a new connection may try, in order: the active one first, then every other
 * backend that is up, by preference. The data plane walks this list when a connect fails, so
 * a client never waits for the checks to notice a dead backend.
 */
export function connectCandidates(state: RelayState): string[] {
  if (state.active === undefined) return [];
  const rest = state.backends.filter((b, i) => i !== state.active && b.damper.up).map((b) => b.id);
  return [state.backends[state.active]!.id, ...rest];
}

/** Faults counted in the unit of time that contains `nowMs` (0 once the unit has ended). */
export function faultsInWindow(config: RelayMachineConfig, backend: BackendState, nowMs: number) {
  const start = backend.damper.windowStartMs;
  if (start === undefined || nowMs - start >= config.damper.windowMs) return 0;
  return backend.damper.faults;
}

export function step(config: RelayMachineConfig, state: RelayState, input: RelayInput): RelayStep {
  const events: RelayEvent[] = [];
  const effects: RelayEffect[] = [];
  let backends = state.backends;
  if (input.type !== "tick") {
    const index = backends.findIndex((b) => b.id === input.backend);
    if (index < 0) return { state, effects, events }; // Unknown backend: a stale report, ignored.
    const ok = input.type === "check-result" ? input.ok : false;
    const current = backends[index]!;
    const result = observe(config.damper, current.damper, ok, input.atMs);
    const changed = result.transition !== "none";
    const next: BackendState = {
      id: current.id,
      damper: result.state,
      sinceMs: changed ? input.atMs : current.sinceMs,
    };
    backends = backends.map((b, i) => (i === index ? next : b));
    if (result.transition === "went-down") {
      events.push({ type: "backend-down", backend: current.id, atMs: input.atMs });
    } else if (result.transition === "went-up") {
      events.push({ type: "backend-up", backend: current.id, atMs: input.atMs });
    }
  }
  const nextState: RelayState = { ...state, backends };
  const chosen = choose(config, nextState, input.atMs);
  if (chosen.index === state.active) {
    appendCloseOnDown(config, state, nextState, events, effects);
    return { state: nextState, effects, events };
  }
  const from = activeBackend(state);
  const to = chosen.index === undefined ? undefined : backends[chosen.index]!.id;
  effects.push({ type: "switch-backend", to });
  events.push({ type: "switched", from, to, reason: chosen.reason, atMs: input.atMs });
  appendCloseOnDown(config, state, nextState, events, effects);
  if (
    chosen.reason === "failback" &&
    config.closeStandbySessionsOnFailback &&
    from !== undefined &&
    !effects.some((e) => e.type === "close-connections" && e.backend === from)
  ) {
    effects.push({ type: "close-connections", backend: from });
  }
  return {
    state: { backends, active: chosen.index, activeSinceMs: input.atMs },
    effects,
    events,
  };
}

function appendCloseOnDown(
  config: RelayMachineConfig,
  before: RelayState,
  after: RelayState,
  events: RelayEvent[],
  effects: RelayEffect[],
): void {
  if (!config.closeOnBackendDown) return;
  for (const event of events) {
    if (event.type !== "backend-down") continue;
    const wasUp = before.backends.find((b) => b.id === event.backend)?.damper.up;
    const isDown = after.backends.find((b) => b.id === event.backend)?.damper.up === false;
    if (wasUp && isDown) effects.push({ type: "close-connections", backend: event.backend });
  }
}

interface Choice {
  readonly index: number | undefined;
  readonly reason: SwitchReason;
}

/**
 * The backend that should be active now. Leaving a backend that is down is immediate;
 * moving from a healthy backend to a more preferred one that came back follows the
 * failback policy (the same rule for the primary and for earlier standbys).
 */
function choose(config: RelayMachineConfig, state: RelayState, nowMs: number): Choice {
  const firstUp = state.backends.findIndex((b) => b.damper.up);
  const best = firstUp < 0 ? undefined : firstUp;
  const active = state.active;
  if (active === undefined) return { index: best, reason: "backend-up" };
  const current = state.backends[active]!;
  if (!current.damper.up) return { index: best, reason: "backend-down" };
  if (best === undefined || best >= active) return { index: active, reason: "backend-up" };
  // A more preferred backend is up while the current one is healthy too.
  switch (config.failback.mode) {
    case "immediate":
      return { index: best, reason: "failback" };
    case "never":
      return { index: active, reason: "failback" };
    case "after": {
      // The earliest preferred backend that has been up long enough.
      for (let i = 0; i < active; i += 1) {
        const b = state.backends[i]!;
        if (b.damper.up && nowMs - b.sinceMs >= config.failback.afterMs) {
          return { index: i, reason: "failback" };
        }
      }
      return { index: active, reason: "failback" };
    }
  }
}
