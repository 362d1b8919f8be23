/**
 * Runs the node's own health checks (S2: a node that finds itself faulty releases its VIPs; S1:
 * the rbd connection is one of the checks) and damps their flapping with S4's rule: a check is
 * declared down only after `fall` failures within one `fallWindowMs` unit of time, and up again
 * after `rise` consecutive successes.
 *
 * Each check runs on its own setTimeout chain: the next run starts `intervalMs` after the
 * previous one started, or at once when the probe took longer — runs of one check never
 * overlap. `onChange` is called synchronously, once per flip of any check, with the new report;
 * it must not throw. The agent calls `start()` once and `stop()` at shutdown.
 */

import type { HealthCheckSpec } from "../config/types.ts";
import {
  type FlapDamperConfig,
  type FlapDamperState,
  initialDamperState,
  observe,
} from "../core/flap-damper.ts";
import { loadProbeModules, type ProbeResult, probe } from "./probes.ts";

export interface CheckStatus {
  readonly name: string;
  readonly kind: HealthCheckSpec["kind"];
  /** The damped verdict. */
  readonly up: boolean;
  /** Outcome of the latest observation (probe or passive); undefined before the first. */
  readonly lastOk: boolean | undefined;
  readonly lastDetail: string;
  /** Faults counted in the current unit of time (S4's per-server anomaly counter). */
  readonly faultsInWindow: number;
  /** Time of the last flip (or of construction), on the runner's monotonic clock, in ms. */
  readonly since: number;
}

export interface HealthReport {
  /** Every check is up; a node without checks is healthy. */
  readonly healthy: boolean;
  readonly checks: readonly CheckStatus[];
}

export interface CheckRunnerOptions {
  readonly checks: readonly HealthCheckSpec[];
  readonly onChange: (report: HealthReport) => void;
  /** Monotonic clock in ms (default `performance.now`). */
  readonly now?: () => number;
  /**
   * Verdict before the first observations. Default false: a check is trusted only after `rise`
   * successes, so a freshly started node never claims a VIP on unverified health (S2).
   */
  readonly initialUp?: boolean;
  /** Network namespace to probe from (tests and the namespace demo). */
  readonly netns?: string;
}

export class CheckRunnerError extends Error {
  readonly code: "HEALTH_DUPLICATE_CHECK" | "HEALTH_UNKNOWN_CHECK" | "HEALTH_ALREADY_STARTED";
  constructor(code: CheckRunnerError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

interface CheckSlot {
  readonly spec: HealthCheckSpec;
  readonly damperConfig: FlapDamperConfig;
  damper: FlapDamperState;
  lastOk: boolean | undefined;
  lastDetail: string;
  since: number;
  timer: NodeJS.Timeout | undefined;
  inFlight: Promise<void> | undefined;
}

export class CheckRunner {
  readonly #slots = new Map<string, CheckSlot>();
  readonly #onChange: (report: HealthReport) => void;
  readonly #now: () => number;
  readonly #netns: string | undefined;
  readonly #controller = new AbortController();
  #phase: "idle" | "running" | "stopped" = "idle";

  constructor(options: CheckRunnerOptions) {
    this.#onChange = options.onChange;
    this.#now = options.now ?? (() => performance.now());
    this.#netns = options.netns;
    const startedMs = this.#now();
    for (const spec of options.checks) {
      if (this.#slots.has(spec.name)) {
        throw new CheckRunnerError(
          "HEALTH_DUPLICATE_CHECK",
          `two health checks are named "${spec.name}"; names must be unique`,
        );
      }
      this.#slots.set(spec.name, {
        spec,
        damperConfig: { faultsToFail: spec.fall, windowMs: spec.fallWindowMs, rise: spec.rise },
        damper: initialDamperState(options.initialUp ?? false),
        lastOk: undefined,
        lastDetail: "not probed yet",
        since: startedMs,
        timer: undefined,
        inFlight: undefined,
      });
    }
    // Before any timer of the agent runs: loading node:http takes tens of milliseconds.
    loadProbeModules(options.checks, this.#netns);
  }

  /** Starts every check's chain; the first probe of each check runs at once. */
  start(): void {
    if (this.#phase !== "idle") {
      throw new CheckRunnerError("HEALTH_ALREADY_STARTED", "a CheckRunner can be started once");
    }
    this.#phase = "running";
    for (const slot of this.#slots.values()) this.#schedule(slot, 0);
  }

  /** Cancels timers and in-flight probes; resolves once nothing of the runner is left running. */
  async stop(): Promise<void> {
    this.#phase = "stopped";
    this.#controller.abort();
    const pending: Promise<void>[] = [];
    for (const slot of this.#slots.values()) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
      if (slot.inFlight) pending.push(slot.inFlight);
    }
    await Promise.all(pending);
  }

  current(): HealthReport {
    const checks = [...this.#slots.values()].map(
      (slot): CheckStatus => ({
        name: slot.spec.name,
        kind: slot.spec.kind,
        up: slot.damper.up,
        lastOk: slot.lastOk,
        lastDetail: slot.lastDetail,
        faultsInWindow: slot.damper.faults,
        since: slot.since,
      }),
    );
    return { healthy: checks.every((check) => check.up), checks };
  }

  /**
   * Feeds an observation made elsewhere (e.g. the relay seeing a connection to a backend fail)
   * into the named check's damper, exactly as if its probe had returned `ok`.
   */
  observePassive(name: string, ok: boolean, detail = ok ? "passive ok" : "passive fault"): void {
    const slot = this.#slots.get(name);
    if (!slot) {
      throw new CheckRunnerError("HEALTH_UNKNOWN_CHECK", `no health check is named "${name}"`);
    }
    if (this.#phase === "stopped") return;
    this.#record(slot, ok, detail);
  }

  #schedule(slot: CheckSlot, delayMs: number): void {
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      slot.inFlight = this.#runOnce(slot);
    }, delayMs);
  }

  async #runOnce(slot: CheckSlot): Promise<void> {
    const startedMs = this.#now();
    const result: ProbeResult = await probe(slot.spec, {
      signal: this.#controller.signal,
      ...(this.#netns ? { netns: this.#netns } : {}),
    });
    slot.inFlight = undefined;
    if (this.#phase !== "running") return;
    this.#record(slot, result.ok, result.detail);
    // `onChange` may have stopped the runner.
    if (this.#phase !== "running") return;
    const elapsedMs = this.#now() - startedMs;
    this.#schedule(slot, Math.max(0, slot.spec.intervalMs - elapsedMs));
  }

  #record(slot: CheckSlot, ok: boolean, detail: string): void {
    const nowMs = this.#now();
    const { state, transition } = observe(slot.damperConfig, slot.damper, ok, nowMs);
    slot.damper = state;
    slot.lastOk = ok;
    slot.lastDetail = detail;
    if (transition === "none") return;
    slot.since = nowMs;
    this.#onChange(this.current());
  }
}
