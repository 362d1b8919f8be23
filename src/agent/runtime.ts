/**
 * The agent runtime: wires one node's core to the real world. It feeds the core its inputs
 * (datagrams, health changes, address and probe outcomes, ticks at `wakeAtMs`) and performs
 * the effects in order:
 *   persist-vote  written and fsynced synchronously, before any later send of the same step;
 *   send/broadcast over the authenticated UDP transport;
 *   probe-address ARP duplicate-address detection on the VIP's interface;
 *   add/remove-address  `ip addr` with a kernel lifetime, serialised per VIP;
 *   announce      a burst of gratuitous ARP frames.
 * It also renews the kernel lifetime of held VIPs while the lease is valid (so the kernel
 * drops the VIPs of an agent that dies), re-announces held VIPs periodically, runs the health
 * checks, notify hooks and the local API, and hands over cleanly on SIGTERM.
 */
import { randomInt } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { run } from "../adapters/exec.ts";
import {
  AddressError,
  addAddress,
  listAddresses,
  removeAddress,
  renewAddress,
} from "../adapters/linux/address.ts";
import { announceBurst, probeOccupied } from "../adapters/linux/arp.ts";
import { loadClusterKey } from "../cluster/key.ts";
import { UdpTransport } from "../cluster/udp-transport.ts";
import { loadConfig } from "../config/load.ts";
import type { ClusterConfig, VipSpec } from "../config/types.ts";
import { CoreNode } from "../core/node.ts";
import { SeededRandom } from "../core/prng.ts";
import type { AdminCommand, CoreEvent, Effect, Input, PersistentState } from "../core/types.ts";
import { CheckRunner, type HealthReport } from "../health/check-runner.ts";
import type { ClusterView, ClusterViewSnapshot } from "../ports/cluster-view.ts";
import { registerRbdProbe } from "../storage/rbd-probe.ts";
import { type Capability, type CreateCapability, capabilityModules } from "./capability.ts";
import type { AdminResult, AgentEventRecord, AgentHandle, AgentStatus } from "./handle.ts";
import type { Logger } from "./log.ts";

export interface AgentOptions {
  readonly configPath: string;
  readonly nodeId: string;
  readonly log: Logger;
}

const eventHistory = 1000;

function monotonicMs(): number {
  return Math.floor(performance.now());
}

export class Agent implements AgentHandle, ClusterView {
  readonly nodeId: string;
  #config: ClusterConfig;
  readonly #configPath: string;
  readonly #log: Logger;
  readonly #core: CoreNode;
  readonly #transport: UdpTransport;
  readonly #incarnation: number;
  readonly #key: Buffer;
  #capabilities: Capability[] = [];
  readonly #startedAt = new Date().toISOString();
  #checks: CheckRunner;
  #health: HealthReport = { healthy: true, checks: [] };
  #wakeTimer: NodeJS.Timeout | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  #addressQueues = new Map<number, Promise<void>>();
  #events: AgentEventRecord[] = [];
  #eventId = 0;
  #vipSince: Record<string, string> = {};
  #lastOwners = new Map<string, string | undefined>();
  #listeners = new Set<(view: ClusterViewSnapshot) => void>();
  #notifyQueue: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: AgentOptions) {
    this.nodeId = options.nodeId;
    this.#configPath = options.configPath;
    this.#log = options.log;
    registerRbdProbe(); // health checks of kind rbd (S1: the node's connection to Ceph)
    this.#config = loadConfig(options.configPath, { nodeId: options.nodeId });
    const config = this.#config;
    const self = this.#self();
    const key = loadClusterKey(config.keyFile);
    this.#key = key.key;
    if (key.readableByOthers) {
      this.#log.log("warn", "cluster key file is readable by group or others; chmod 600 it", {
        file: config.keyFile,
      });
    }
    const stateDir = join(config.stateDir, this.nodeId);
    mkdirSync(stateDir, { recursive: true });
    const persisted = this.#readState(stateDir);
    this.#incarnation = Math.max(Date.now(), (persisted.incarnation ?? 0) + 1);
    this.#writeState(stateDir, { ...persisted, incarnation: this.#incarnation });
    this.#core = new CoreNode({
      id: this.nodeId,
      config: {
        nodes: config.nodes.map((n) => ({ id: n.id, weight: n.weight })),
        vips: config.vips.map((v) => ({
          address: v.address,
          policy: v.policy,
          ...(v.preferred ? { preferred: v.preferred } : {}),
          failback: v.failback,
        })),
        timers: config.timers,
      },
      random: new SeededRandom(randomInt(2 ** 31)),
      incarnation: this.#incarnation,
      nowMs: monotonicMs(),
      ...(persisted.vote ? { persisted: persisted.vote } : {}),
    });
    this.#stateDir = stateDir;
    this.#transport = new UdpTransport({
      cluster: config.cluster,
      selfId: this.nodeId,
      key: key.key,
      bind: { address: self.address, port: self.port },
      peers: new Map(config.nodes.map((n) => [n.id, { address: n.address, port: n.port }])),
      incarnation: this.#incarnation,
      onMessage: (from, payload) =>
        this.#step({ type: "message", nowMs: monotonicMs(), from, message: payload }),
      log: (level, msg, fields) => this.#log.log(level, msg, fields),
    });
    this.#checks = this.#createChecks();
  }

  readonly #stateDir: string;

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    await this.#removeStaleVips("start-up: removing VIPs left by an earlier run");
    await this.#transport.start();
    this.#checks.start();
    this.#health = this.#checks.current();
    this.#step({ type: "health", nowMs: monotonicMs(), healthy: this.#health.healthy });
    const lifetimeMs = this.#config.addressLifetimeSec * 1000;
    this.#renewTimer = setInterval(
      () => void this.#renewHeld(),
      Math.max(250, Math.floor(lifetimeMs / 3)),
    );
    const refreshMs = this.#config.timers.garpRefreshMs;
    if (refreshMs > 0)
      this.#refreshTimer = setInterval(() => void this.#refreshAnnouncements(), refreshMs);
    await this.#startCapabilities();
    this.#log.log("info", "agent started", {
      node: this.nodeId,
      cluster: this.#config.cluster,
      profile: this.#config.profile,
      incarnation: this.#incarnation,
    });
  }

  /** SIGTERM: release VIPs, tell the peers, wait until handed over (bounded), stop. */
  async shutdown(graceMs = 3000): Promise<void> {
    if (this.#stopped) return;
    this.#log.log("info", "shutting down: handing VIPs over");
    await this.#stopCapabilities();
    this.#step({ type: "shutdown", nowMs: monotonicMs() });
    const deadline = monotonicMs() + graceMs;
    while (!this.#core.drainedForShutdown && monotonicMs() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await Promise.allSettled([...this.#addressQueues.values()]);
    await this.stop();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#stopCapabilities();
    clearTimeout(this.#wakeTimer);
    clearInterval(this.#renewTimer);
    clearInterval(this.#refreshTimer);
    await this.#checks.stop();
    await this.#transport.close();
    await Promise.allSettled([...this.#addressQueues.values()]);
    await this.#removeStaleVips("stopping: removing any VIP still configured");
    await this.#notifyQueue;
    this.#log.log("info", "agent stopped");
  }

  // ---------------------------------------------------------------- AgentHandle

  status(): AgentStatus {
    const core = this.#core.status(monotonicMs());
    const transport = this.#transport.stats();
    return {
      ...core,
      cluster: this.#config.cluster,
      profile: this.#config.profile,
      incarnation: this.#incarnation,
      startedAt: this.#startedAt,
      health: this.#health,
      vipSince: { ...this.#vipSince },
      transport: {
        sent: transport.sent,
        received: transport.received,
        dropped: { ...transport.dropped },
      },
    };
  }

  admin(command: AdminCommand): AdminResult {
    const config = this.#config;
    if ("node" in command && !config.nodes.some((n) => n.id === command.node)) {
      return {
        ok: false,
        code: "UNKNOWN_NODE",
        message: `node ${command.node} is not in ${config.file}`,
      };
    }
    if ("vip" in command && !config.vips.some((v) => v.address === command.vip.split("/")[0])) {
      return {
        ok: false,
        code: "UNKNOWN_VIP",
        message: `VIP ${command.vip} is not in ${config.file}`,
      };
    }
    const coordinator = this.#core.coordinator;
    if (coordinator === undefined) {
      return {
        ok: false,
        code: "NO_COORDINATOR",
        message: "no coordinator is elected right now; try again shortly",
      };
    }
    this.#step({ type: "admin", nowMs: monotonicMs(), command });
    return { ok: true, forwardedTo: coordinator === this.nodeId ? undefined : coordinator };
  }

  events(sinceId: number): readonly AgentEventRecord[] {
    return this.#events.filter((e) => e.id > sinceId);
  }

  async reload(): Promise<{ ok: true } | { ok: false; message: string }> {
    let next: ClusterConfig;
    try {
      next = loadConfig(this.#configPath, { nodeId: this.nodeId });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#log.log(
        "error",
        "reload refused: the new configuration is invalid; keeping the running one",
        { error: message },
      );
      return { ok: false, message };
    }
    const structural = (c: ClusterConfig) =>
      JSON.stringify([c.cluster, c.nodes, c.vips, c.timers, c.keyFile, c.addressLifetimeSec]);
    if (structural(next) !== structural(this.#config)) {
      const message =
        "nodes, VIPs, timers, key file and address lifetime change only with a restart (rolling, one node at a time)";
      this.#log.log("warn", `reload refused: ${message}`);
      return { ok: false, message };
    }
    await this.#checks.stop();
    this.#config = next;
    this.#checks = this.#createChecks();
    this.#checks.start();
    this.#log.log("info", "configuration reloaded (checks, notify, API token)");
    return { ok: true };
  }

  get config(): ClusterConfig {
    return this.#config;
  }

  /** API plugins of the running capabilities (registered on the local API by the command). */
  get apiPlugins() {
    return this.#capabilities.flatMap((c) => (c.apiPlugin ? [c.apiPlugin] : []));
  }

  /** Status of each running capability, by name. */
  capabilityStatus(): Record<string, unknown> {
    return Object.fromEntries(
      this.#capabilities.map((c) => [c.name, c.status?.() ?? { running: true }]),
    );
  }

  async #startCapabilities(): Promise<void> {
    for (const [section, modulePath] of Object.entries(capabilityModules)) {
      const raw = (this.#config as unknown as Record<string, unknown>)[section];
      if (raw === undefined) continue;
      const module = (await import(modulePath)) as { createCapability: CreateCapability };
      const capability = await module.createCapability(raw, {
        config: this.#config,
        nodeId: this.nodeId,
        view: this,
        key: this.#key,
        stateDir: this.#stateDir,
        log: this.#log.child({ capability: section }),
      });
      await capability.start();
      this.#capabilities.push(capability);
      this.#log.log("info", "capability started", { capability: capability.name });
    }
  }

  async #stopCapabilities(): Promise<void> {
    const running = this.#capabilities.reverse();
    this.#capabilities = [];
    for (const capability of running) {
      try {
        await capability.stop();
      } catch (error) {
        this.#log.log("error", "a capability failed to stop", {
          capability: capability.name,
          error: describe(error),
        });
      }
    }
  }

  // ---------------------------------------------------------------- ClusterView

  current(): ClusterViewSnapshot {
    const status = this.#core.status(monotonicMs());
    return {
      selfId: this.nodeId,
      coordinatorId: status.coordinator,
      term: status.term,
      members: status.members.map((m) => ({
        id: m.id,
        address: this.#config.nodes.find((n) => n.id === m.id)!.address,
        state: m.state,
      })),
      owners: new Map(status.vips.map((v) => [v.address, v.owner])),
      held: new Set(status.vips.filter((v) => v.local === "held").map((v) => v.address)),
    };
  }

  subscribe(listener: (view: ClusterViewSnapshot) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // ---------------------------------------------------------------- the loop

  #step(input: Input): void {
    if (this.#stopped) return;
    const output = this.#core.step(input);
    for (const event of output.events) this.#onEvent(event);
    for (const effect of output.effects) this.#perform(effect);
    clearTimeout(this.#wakeTimer);
    const delay = Math.max(0, output.wakeAtMs - monotonicMs());
    this.#wakeTimer = setTimeout(() => this.#step({ type: "tick", nowMs: monotonicMs() }), delay);
    if (output.events.some((e) => e.type !== "message-dropped")) this.#publishView();
  }

  #perform(effect: Effect): void {
    switch (effect.type) {
      case "persist-vote":
        this.#writeState(this.#stateDir, { incarnation: this.#incarnation, vote: effect.state });
        return;
      case "send":
        this.#transport.send(effect.to, effect.message);
        return;
      case "broadcast":
        this.#transport.broadcast(effect.message);
        return;
      case "probe-address":
        void this.#probe(effect.vip);
        return;
      case "add-address":
        this.#enqueue(effect.vip, () => this.#add(effect.vip));
        return;
      case "remove-address":
        this.#enqueue(effect.vip, () => this.#remove(effect.vip));
        return;
      case "announce":
        void this.#announce([effect.vip], this.#config.timers.garpRepeat);
        return;
      default: {
        const unknown: never = effect;
        throw new Error(`unknown effect ${JSON.stringify(unknown)}`);
      }
    }
  }

  /** Address changes of one VIP run in order: a remove never overtakes the add before it. */
  #enqueue(vip: number, action: () => Promise<void>): void {
    const previous = this.#addressQueues.get(vip) ?? Promise.resolve();
    const next = previous.then(action, action);
    this.#addressQueues.set(vip, next);
    void next.finally(() => {
      if (this.#addressQueues.get(vip) === next) this.#addressQueues.delete(vip);
    });
  }

  async #probe(vip: number): Promise<void> {
    const spec = this.#config.vips[vip]!;
    let occupied: boolean;
    let by: string | undefined;
    try {
      const result = await probeOccupied(
        this.#interfaceOf(spec),
        spec.address,
        this.#config.timers.probeTimeoutMs,
      );
      occupied = result.occupied;
      by = result.mac;
    } catch (error) {
      // Without a working probe we cannot know the address is free: treat it as occupied.
      occupied = true;
      by = `probe failed: ${error instanceof Error ? error.message : String(error)}`;
    }
    this.#step({
      type: "probe-result",
      nowMs: monotonicMs(),
      vip,
      occupied,
      ...(by ? { by } : {}),
    });
  }

  async #add(vip: number): Promise<void> {
    const spec = this.#config.vips[vip]!;
    try {
      await addAddress(this.#interfaceOf(spec), spec.address, spec.prefixLength, {
        validLftSec: this.#config.addressLifetimeSec,
      });
      this.#step({ type: "address-added", nowMs: monotonicMs(), vip });
    } catch (error) {
      this.#step({
        type: "address-add-failed",
        nowMs: monotonicMs(),
        vip,
        reason: describe(error),
      });
    }
  }

  async #remove(vip: number): Promise<void> {
    const spec = this.#config.vips[vip]!;
    try {
      await removeAddress(this.#interfaceOf(spec), spec.address, spec.prefixLength);
      this.#step({ type: "address-removed", nowMs: monotonicMs(), vip });
    } catch (error) {
      this.#step({
        type: "address-remove-failed",
        nowMs: monotonicMs(),
        vip,
        reason: describe(error),
      });
    }
  }

  async #announce(vips: readonly number[], repeat: number): Promise<void> {
    const byInterface = new Map<string, string[]>();
    for (const vip of vips) {
      const spec = this.#config.vips[vip]!;
      const iface = this.#interfaceOf(spec);
      byInterface.set(iface, [...(byInterface.get(iface) ?? []), spec.address]);
    }
    for (const [iface, addresses] of byInterface) {
      try {
        await announceBurst(iface, addresses, {
          repeat,
          intervalMs: this.#config.timers.garpIntervalMs,
        });
      } catch (error) {
        this.#log.log("warn", "gratuitous ARP failed", {
          interface: iface,
          error: describe(error),
        });
      }
    }
  }

  /**
   * Keeps the kernel lifetime of held VIPs ahead; a VIP the kernel already dropped is lost.
   * Each renewal runs in the VIP's address queue and checks again, right before it, that the
   * VIP is still held under a valid lease: `ip address change` re-creates a missing IPv4
   * address, so a renewal that overtook a release would bring the released VIP back for a
   * whole lifetime, next to its new owner.
   */
  async #renewHeld(): Promise<void> {
    const status = this.#core.status(monotonicMs());
    if (!status.leaseValid) return;
    status.vips.forEach((v, vip) => {
      if (v.local === "held") this.#enqueue(vip, () => this.#renew(vip));
    });
  }

  async #renew(vip: number): Promise<void> {
    const status = this.#core.status(monotonicMs());
    if (this.#stopped || !status.leaseValid || status.vips[vip]?.local !== "held") return;
    const spec = this.#config.vips[vip]!;
    try {
      await renewAddress(this.#interfaceOf(spec), spec.address, spec.prefixLength, {
        validLftSec: this.#config.addressLifetimeSec,
      });
    } catch (error) {
      if (error instanceof AddressError && error.code === "ADDRESS_NOT_FOUND") {
        this.#log.log("warn", "a held VIP vanished from its interface", { vip: spec.address });
        this.#step({ type: "address-lost", nowMs: monotonicMs(), vip });
      } else {
        this.#log.log("warn", "renewing a VIP lifetime failed", {
          vip: spec.address,
          error: describe(error),
        });
      }
    }
  }

  async #refreshAnnouncements(): Promise<void> {
    const held = this.#core
      .status(monotonicMs())
      .vips.map((v, i) => (v.local === "held" ? i : -1))
      .filter((i) => i >= 0);
    if (held.length > 0) await this.#announce(held, 1);
  }

  async #removeStaleVips(reason: string): Promise<void> {
    const byInterface = new Map<string, VipSpec[]>();
    for (const spec of this.#config.vips) {
      const iface = this.#interfaceOf(spec);
      byInterface.set(iface, [...(byInterface.get(iface) ?? []), spec]);
    }
    for (const [iface, specs] of byInterface) {
      let present: Set<string>;
      try {
        present = new Set((await listAddresses(iface)).map((a) => a.ip));
      } catch (error) {
        this.#log.log("warn", "cannot list addresses", {
          interface: iface,
          error: describe(error),
        });
        continue;
      }
      for (const spec of specs) {
        if (!present.has(spec.address)) continue;
        this.#log.log("info", reason, { vip: spec.address, interface: iface });
        await removeAddress(iface, spec.address, spec.prefixLength).catch((error: unknown) => {
          this.#log.log("error", "cannot remove a VIP", {
            vip: spec.address,
            error: describe(error),
          });
        });
      }
    }
  }

  // ---------------------------------------------------------------- events, hooks

  #onEvent(event: CoreEvent): void {
    if (event.type === "message-dropped") {
      this.#log.log("debug", "peer message dropped", { from: event.from, reason: event.reason });
      return;
    }
    const record: AgentEventRecord = {
      id: ++this.#eventId,
      at: new Date().toISOString(),
      node: this.nodeId,
      event,
    };
    this.#events.push(record);
    if (this.#events.length > eventHistory) this.#events.shift();
    const { type, ...fields } = event;
    const level =
      type === "vip-conflict" || type === "address-failed" || type === "member-failed"
        ? "warn"
        : "info";
    this.#log.log(level, type, fields as Record<string, unknown>);
    this.#notify(event);
  }

  #publishView(): void {
    const status = this.#core.status(monotonicMs());
    for (const vip of status.vips) {
      if (this.#lastOwners.get(vip.address) !== vip.owner || !(vip.address in this.#vipSince)) {
        this.#lastOwners.set(vip.address, vip.owner);
        this.#vipSince[vip.address] = new Date().toISOString();
      }
    }
    if (this.#listeners.size === 0) return;
    const view = this.current();
    for (const listener of this.#listeners) {
      try {
        listener(view);
      } catch (error) {
        this.#log.log("error", "a cluster view listener failed", { error: describe(error) });
      }
    }
  }

  /**
   * Notify hook (like keepalived's `notify`): `COMMAND EVENT [VIP|NODE|ROLE]` with the
   * environment FLOATIP_EVENT, FLOATIP_NODE, FLOATIP_CLUSTER, FLOATIP_VIP, FLOATIP_ROLE,
   * FLOATIP_TERM, FLOATIP_PEER. Runs one at a time, each under the configured timeout.
   */
  #notify(event: CoreEvent): void {
    const notify = this.#config.notify;
    const wanted = new Set([
      "role-changed",
      "vip-acquired",
      "vip-released",
      "vip-conflict",
      "member-failed",
      "member-recovered",
    ]);
    if (!notify || !wanted.has(event.type)) return;
    const env: Record<string, string> = {
      FLOATIP_EVENT: event.type,
      FLOATIP_NODE: this.nodeId,
      FLOATIP_CLUSTER: this.#config.cluster,
    };
    let argument = "";
    if ("vip" in event) env.FLOATIP_VIP = argument = event.vip;
    if (event.type === "role-changed") {
      env.FLOATIP_ROLE = argument = event.role;
      env.FLOATIP_TERM = String(event.term);
    }
    if (event.type === "member-failed" || event.type === "member-recovered")
      env.FLOATIP_PEER = argument = event.node;
    this.#notifyQueue = this.#notifyQueue.then(async () => {
      try {
        await run(notify.command, [event.type, argument], {
          timeoutMs: notify.timeoutMs,
          env: { ...process.env, ...env },
        });
      } catch (error) {
        this.#log.log("warn", "notify hook failed", {
          command: notify.command,
          event: event.type,
          error: describe(error),
        });
      }
    });
  }

  // ---------------------------------------------------------------- helpers

  #createChecks(): CheckRunner {
    return new CheckRunner({
      checks: this.#config.checks,
      onChange: (report) => {
        this.#health = report;
        this.#log.log(
          report.healthy ? "info" : "warn",
          report.healthy ? "node healthy" : "node unhealthy",
          {
            checks: report.checks.filter((c) => !c.up).map((c) => `${c.name}: ${c.lastDetail}`),
          },
        );
        this.#step({ type: "health", nowMs: monotonicMs(), healthy: report.healthy });
      },
    });
  }

  #self() {
    return this.#config.nodes.find((n) => n.id === this.nodeId)!;
  }

  #interfaceOf(spec: VipSpec): string {
    return spec.interface ?? this.#self().interface;
  }

  #readState(dir: string): { incarnation?: number; vote?: PersistentState } {
    try {
      return JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as {
        incarnation?: number;
        vote?: PersistentState;
      };
    } catch {
      return {};
    }
  }

  /** Durable before return: write a temporary file, fsync it, rename over the old one. */
  #writeState(dir: string, state: { incarnation?: number; vote?: PersistentState }): void {
    const path = join(dir, "state.json");
    const temporary = `${path}.tmp`;
    const fd = openSync(temporary, "w", 0o600);
    try {
      writeSync(fd, JSON.stringify(state));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
