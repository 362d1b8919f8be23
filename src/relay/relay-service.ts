/**
 * Runs one relay: probes every backend on its check interval, feeds the results and the data
 * plane's passive failures to the relay machine, and applies the machine's effects to the
 * data plane in order (route first, then close sessions). Effects are applied one step at a
 * time through a queue, so the data plane never sees them out of order.
 *
 * The agent (or `floatip relay run`) calls `start()` once and `stop()` at shutdown; `status()`
 * may be called at any time.
 */
import { hostPort } from "../config/ipv6.ts";
import type { HealthCheckSpec } from "../config/types.ts";
import {
  activeBackend,
  connectCandidates,
  faultsInWindow,
  initialRelayState,
  type RelayEvent,
  type RelayInput,
  type RelayMachineConfig,
  type RelayState,
  step,
} from "../core/relay/relay-machine.ts";
import { probe } from "../health/probes.ts";
import { type Endpoint, endpointId, type RelaySpec } from "./config.ts";
import type { RelayDataPlane, RelayLog } from "./data-plane.ts";
import { NatDataPlane } from "./nat.ts";
import { ProxyDataPlane } from "./proxy.ts";

export interface BackendStatus {
  readonly id: string;
  readonly role: "primary" | "standby";
  readonly state: "up" | "down";
  readonly active: boolean;
  /** Anomalies counted in the current unit of time (S4's Ai / Bi). */
  readonly faultsInWindow: number;
  /** Wall-clock time of the last up/down transition (or of the start). */
  readonly since: string;
  readonly connections: number;
  readonly lastCheck: { readonly ok: boolean; readonly detail: string } | undefined;
}

export interface RelayStatus {
  readonly name: string;
  readonly listen: string;
  readonly mode: RelaySpec["mode"];
  readonly protocol: RelaySpec["protocol"];
  /** Backend receiving new connections; null while every backend is down. */
  readonly active: string | null;
  readonly activeSince: string;
  readonly backends: readonly BackendStatus[];
  /** The most recent events, oldest first. */
  readonly events: readonly (RelayEvent & { readonly at: string })[];
}

export interface RelayServiceOptions {
  readonly spec: RelaySpec;
  readonly log: RelayLog;
  /** Replaces the data plane chosen by `spec.mode` (used by tests of the glue). */
  readonly dataPlane?: RelayDataPlane;
  /**
   * Called once per event of the relay machine (backend down/up, switch), in order, right
   * after the event is logged and before its effects reach the data plane. Must not throw.
   */
  readonly onEvent?: (event: RelayEvent) => void;
}

const eventsKept = 50;

export class RelayService {
  readonly #spec: RelaySpec;
  readonly #log: RelayLog;
  readonly #onEvent: ((event: RelayEvent) => void) | undefined;
  readonly #config: RelayMachineConfig;
  readonly #endpoints: Map<string, Endpoint>;
  readonly #dataPlane: RelayDataPlane;
  readonly #controller = new AbortController();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #lastCheck = new Map<string, { ok: boolean; detail: string }>();
  readonly #events: (RelayEvent & { at: string })[] = [];
  /** Maps the monotonic clock to wall time for display only. */
  readonly #wallOffsetMs = Date.now() - performance.now();
  #state: RelayState;
  #applying: Promise<void> = Promise.resolve();
  /** Candidates last handed to the data plane. */
  #routed: readonly string[] = [];
  #running = false;

  constructor(options: RelayServiceOptions) {
    const spec = options.spec;
    this.#spec = spec;
    this.#log = options.log;
    this.#onEvent = options.onEvent;
    const backends = [spec.primary, ...spec.standby];
    this.#endpoints = new Map(backends.map((b) => [endpointId(b), b]));
    this.#config = {
      backends: backends.map(endpointId),
      damper: {
        faultsToFail: spec.check.fall,
        windowMs: spec.check.withinMs,
        rise: spec.check.rise,
      },
      failback: spec.failback,
      closeOnBackendDown: spec.closeOnBackendDown,
      closeStandbySessionsOnFailback: spec.closeStandbySessionsOnFailback,
    };
    this.#state = initialRelayState(this.#config, performance.now());
    this.#dataPlane = options.dataPlane ?? this.#createDataPlane();
  }

  get name(): string {
    return this.#spec.name;
  }

  async start(): Promise<void> {
    if (this.#running) throw new Error(`relay ${this.#spec.name} already started`);
    this.#running = true;
    try {
      await this.#dataPlane.start();
    } catch (error) {
      this.#running = false;
      throw error;
    }
    this.#routed = connectCandidates(this.#state);
    await this.#dataPlane.route(this.#routed);
    for (const id of this.#config.backends) this.#scheduleCheck(id, 0);
    const tick = setInterval(
      () => this.#input({ type: "tick", atMs: performance.now() }),
      Math.min(this.#spec.check.intervalMs, 1000),
    );
    this.#timers.add(tick);
    this.#log({
      event: "relay-started",
      relay: this.#spec.name,
      mode: this.#spec.mode,
      listen: endpointId(this.#spec.listen),
    });
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#controller.abort();
    for (const timer of this.#timers) {
      clearTimeout(timer);
      clearInterval(timer);
    }
    this.#timers.clear();
    await this.#applying;
    await this.#dataPlane.stop();
  }

  status(): RelayStatus {
    const nowMs = performance.now();
    const state = this.#state;
    const active = activeBackend(state);
    const connections = this.#dataPlane.connections();
    return {
      name: this.#spec.name,
      listen: endpointId(this.#spec.listen),
      mode: this.#spec.mode,
      protocol: this.#spec.protocol,
      active: active ?? null,
      activeSince: this.#wall(state.activeSinceMs),
      backends: state.backends.map((b, i) => ({
        id: b.id,
        role: i === 0 ? "primary" : "standby",
        state: b.damper.up ? "up" : "down",
        active: b.id === active,
        faultsInWindow: faultsInWindow(this.#config, b, nowMs),
        since: this.#wall(b.sinceMs),
        connections: connections.get(b.id) ?? 0,
        lastCheck: this.#lastCheck.get(b.id),
      })),
      events: [...this.#events],
    };
  }

  #createDataPlane(): RelayDataPlane {
    const spec = this.#spec;
    if (spec.mode === "nat") {
      return new NatDataPlane({
        relay: spec.name,
        listen: spec.listen,
        backends: this.#endpoints,
        masquerade: spec.natMasquerade,
        maxConnectionsPerSource: spec.maxConnectionsPerSource,
        log: this.#log,
      });
    }
    return new ProxyDataPlane({
      relay: spec.name,
      listen: spec.listen,
      protocol: spec.protocol,
      backends: this.#endpoints,
      connectTimeoutMs: spec.connectTimeoutMs,
      idleTimeoutMs: spec.idleTimeoutMs,
      maxConnections: spec.maxConnections,
      maxConnectionsPerSource: spec.maxConnectionsPerSource,
      requestTimeoutMs: spec.requestTimeoutMs,
      onPassiveFailure: (backend) =>
        this.#input({ type: "passive-failure", backend, atMs: performance.now() }),
      log: this.#log,
    });
  }

  /** Runs checks of one backend back to back: the next starts one interval after the last began. */
  #scheduleCheck(id: string, delayMs: number): void {
    if (!this.#running) return;
    const timer = setTimeout(async () => {
      this.#timers.delete(timer);
      const startedMs = performance.now();
      const result = await probe(this.#probeSpec(id), { signal: this.#controller.signal });
      if (!this.#running) return;
      this.#lastCheck.set(id, { ok: result.ok, detail: result.detail });
      this.#input({ type: "check-result", backend: id, ok: result.ok, atMs: performance.now() });
      const elapsedMs = performance.now() - startedMs;
      this.#scheduleCheck(id, Math.max(0, this.#spec.check.intervalMs - elapsedMs));
    }, delayMs);
    this.#timers.add(timer);
  }

  #probeSpec(id: string): HealthCheckSpec {
    const endpoint = this.#endpoints.get(id)!;
    const check = this.#spec.check;
    const common = {
      name: `${this.#spec.name}/${id}`,
      intervalMs: check.intervalMs,
      timeoutMs: check.timeoutMs,
      fall: check.fall,
      fallWindowMs: check.withinMs,
      rise: check.rise,
    };
    switch (check.kind) {
      case "tcp":
        return { ...common, kind: "tcp", host: endpoint.host, port: endpoint.port };
      case "http":
        return {
          ...common,
          kind: "http",
          url: `http://${hostPort(endpoint.host, endpoint.port)}${check.path}`,
          expectStatus: check.expectStatus,
        };
      case "exec":
        return {
          ...common,
          kind: "exec",
          command: check.command.map((arg) =>
            arg.replaceAll("{host}", endpoint.host).replaceAll("{port}", String(endpoint.port)),
          ),
        };
    }
  }

  #input(input: RelayInput): void {
    if (!this.#running) return;
    const result = step(this.#config, this.#state, input);
    this.#state = result.state;
    for (const event of result.events) {
      const record = { ...event, at: this.#wall(event.atMs) };
      this.#events.push(record);
      if (this.#events.length > eventsKept) this.#events.shift();
      const { type, atMs: _atMs, ...fields } = record;
      this.#log({ event: type, relay: this.#spec.name, ...fields });
      this.#onEvent?.(event);
    }
    // The candidate list also changes when a backend other than the active one flips, so the
    // data plane is re-routed whenever it changes, not only on a switch.
    const candidates = connectCandidates(this.#state);
    const reroute = candidates.join(" ") !== this.#routed.join(" ");
    const closes = result.effects.filter((e) => e.type === "close-connections");
    if (!reroute && closes.length === 0) return;
    this.#routed = candidates;
    this.#applying = this.#applying.then(async () => {
      if (reroute) await this.#apply("route", () => this.#dataPlane.route(candidates));
      for (const close of closes) {
        await this.#apply("close-connections", () =>
          this.#dataPlane.closeConnections(close.backend),
        );
      }
    });
  }

  async #apply(effect: string, action: () => Promise<void>): Promise<void> {
    try {
      await action();
    } catch (error) {
      this.#log({
        event: "data-plane-error",
        relay: this.#spec.name,
        effect,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  #wall(monotonicMs: number): string {
    return new Date(this.#wallOffsetMs + monotonicMs).toISOString();
  }
}
