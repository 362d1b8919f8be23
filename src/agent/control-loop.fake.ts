/**
 * Test support, not shipped (tsconfig.build.json leaves `*.fake.ts` out): a control-loop
 * platform on virtual time whose timers run only when a test fires them, and whose other
 * operations do nothing unless the test overrides them.
 */
import type { ControlLoopOptions, ControlPlatform } from "./control-loop.ts";

export interface VirtualTimer {
  dueMs: number;
  run: () => void;
  cancelled: boolean;
}

export interface VirtualPlatform {
  readonly platform: ControlPlatform;
  readonly timers: VirtualTimer[];
  now(): number;
  /** Moves the clock (a process stop, or time passing). */
  advance(ms: number): void;
  /** The next timer not cancelled, by due time. */
  next(): VirtualTimer | undefined;
}

export function virtualPlatform(overrides: Partial<ControlPlatform> = {}): VirtualPlatform {
  let nowMs = 1000;
  const timers: VirtualTimer[] = [];
  const platform: ControlPlatform = {
    now: () => nowMs,
    setTimer: (run, delayMs) => {
      const timer = { dueMs: nowMs + delayMs, run, cancelled: false };
      timers.push(timer);
      return timer;
    },
    clearTimer: (handle) => {
      if (handle) (handle as VirtualTimer).cancelled = true;
    },
    soon: (run) => {
      timers.push({ dueMs: nowMs, run, cancelled: false });
    },
    send: (_to, _message, gate) => void gate?.open(),
    broadcast: (_message, gate) => void gate?.open(),
    datagramsSeen: () => 0,
    persistVote: () => {},
    applyAddresses: (_changes, done) => done([]),
    probe: (_iface, addresses, _timeoutMs, done) =>
      done(addresses.map(() => ({ occupied: false }))),
    announce: (_iface, _addresses, _options, done) => done(undefined),
    listAddresses: () => [],
    renewLifetimes: (_iface, entries) => entries.map(() => undefined),
    ...overrides,
  };
  return {
    platform,
    timers,
    now: () => nowMs,
    advance: (ms) => {
      nowMs += ms;
    },
    next: () => timers.filter((t) => !t.cancelled).sort((a, b) => a.dueMs - b.dueMs)[0],
  };
}

/** Loop options for a test: no VIPs, 50 ms heartbeats, no announcements, nothing logged. */
export const testLoopOptions = {
  vips: [],
  heartbeatIntervalMs: 50,
  probeTimeoutMs: 100,
  garpRepeat: 1,
  garpIntervalMs: 0,
  garpRefreshMs: 0,
  addressLifetimeSec: 3,
  log: () => {},
  onEvent: () => {},
} satisfies Partial<ControlLoopOptions>;
