/**
 * Timers on libuv handles of their own (native/floatip_timer.c), for the control loop.
 *
 * Node.js runs every JavaScript timer off one libuv timer armed for the earliest expiry and
 * does not arm it later when that timer is cleared: the cleared expiry still wakes the
 * process, which finds nothing due. The control loop moves its wake-up later on every round
 * of a follower (the coordinator's heartbeat arrives before the follower's own fallback), so
 * with Node's timers each round cost a second wake-up of a sleeping process. A native timer
 * is re-armed exactly: cleared, it wakes nobody.
 *
 * `NativeTimers` keeps the handles it made and reuses them (a handle is a few dozen bytes of
 * the process's life; the loop has at most three armed at once). The handles are never
 * closed: for a process's main thread (the control plane), not for a worker thread, whose
 * loop would end with them open. Without the addon (not built, or built from older sources)
 * it falls back to Node's timers: same behaviour, the extra wake-ups included.
 */
import { loadNativeAddon } from "./native-addon.ts";

interface TimerAddon {
  timerCreate(callback: () => void): object;
  timerStart(timer: object, ms: number): void;
  timerStop(timer: object): void;
}

/** One armed timer; `run` is cleared when it fires or is cancelled. */
class Armed {
  run: (() => void) | undefined;
  native: object | undefined;
}

export class NativeTimers {
  readonly #addon: TimerAddon | undefined;
  readonly #idle: Armed[] = [];

  /** `null`: Node's timers (for comparisons). */
  constructor(addon?: TimerAddon | null) {
    this.#addon = addon === null ? undefined : (addon ?? loadTimerAddon());
  }

  /** Whether the timers are native (false: Node's timers). */
  get native(): boolean {
    return this.#addon !== undefined;
  }

  /** Runs `run` once after `delayMs`; the handle is for `clear`. */
  set(run: () => void, delayMs: number): unknown {
    const addon = this.#addon;
    if (addon === undefined) return setTimeout(run, delayMs);
    const armed = this.#idle.pop() ?? this.#create(addon);
    armed.run = run;
    addon.timerStart(armed.native!, Math.max(0, delayMs));
    return armed;
  }

  /** Cancels a timer of `set` (a handle that fired or was cleared already is ignored). */
  clear(handle: unknown): void {
    if (handle === undefined) return;
    if (!(handle instanceof Armed)) {
      clearTimeout(handle as NodeJS.Timeout);
      return;
    }
    if (handle.run === undefined) return;
    this.#addon!.timerStop(handle.native!);
    handle.run = undefined;
    this.#idle.push(handle);
  }

  #create(addon: TimerAddon): Armed {
    const armed = new Armed();
    armed.native = addon.timerCreate(() => {
      const run = armed.run;
      if (run === undefined) return;
      armed.run = undefined;
      this.#idle.push(armed);
      run();
    });
    return armed;
  }
}

function loadTimerAddon(): TimerAddon | undefined {
  try {
    return loadNativeAddon<TimerAddon>(["timerCreate", "timerStart", "timerStop"]);
  } catch {
    return undefined;
  }
}
