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
  type AddressOperation,
  applyAddressBatch,
  listAddresses,
  removeAddress,
} from "../adapters/linux/address.ts";
import { announceBurst, probeOccupiedMany } from "../adapters/linux/arp.ts";
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
  /** Effects collected during one turn of the event loop, performed together (see #flush). */
  #pending: {
    addresses: { vip: number; op: "add" | "del" }[];
    probes: Set<number>;
    announce: Set<number>;
  } = {
    addresses: [],
    probes: new Set(),
    announce: new Set(),
  };
  #flushScheduled = false;
  #viewScheduled = false;
  /** The address batch in flight: batches (and renewals) run one after the other, in order. */
  #addressBatch: Promise<void> = Promise.resolve();
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
      () => this.#renewHeld(),
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
    await this.#addressBatch;
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
    await this.#addressBatch;
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
        notify: (eventType, argument, env) => this.notifyHook(eventType, argument, env),
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
    const { owners, local } = this.#core.ownership();
    const status = this.#core.status(monotonicMs(), { explain: false });
    return {
      selfId: this.nodeId,
      coordinatorId: status.coordinator,
      term: status.term,
      members: status.members.map((m) => ({
        id: m.id,
        address: this.#config.nodes.find((n) => n.id === m.id)!.address,
        state: m.state,
      })),
      owners: new Map(this.#config.vips.map((v, i) => [v.address, owners[i]])),
      held: new Set(this.#config.vips.filter((_, i) => local[i] === "held").map((v) => v.address)),
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
        this.#pending.probes.add(effect.vip);
        this.#scheduleFlush();
        return;
      case "add-address":
        this.#pending.addresses.push({ vip: effect.vip, op: "add" });
        this.#scheduleFlush();
        return;
      case "remove-address":
        this.#pending.addresses.push({ vip: effect.vip, op: "del" });
        this.#scheduleFlush();
        return;
      case "announce":
        this.#pending.announce.add(effect.vip);
        this.#scheduleFlush();
        return;
      default: {
        const unknown: never = effect;
        throw new Error(`unknown effect ${JSON.stringify(unknown)}`);
      }
    }
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#flush());
  }

  /**
   * Performs the effects of this turn together: one `ip -batch` for every address change
   * (after the previous batch, so a remove never overtakes the add before it), one ARP probe
   * socket per interface for every VIP to probe, one announcement burst per interface. A
   * thousand VIPs then cost a handful of processes instead of thousands.
   */
  #flush(): void {
    this.#flushScheduled = false;
    const { addresses, probes, announce } = this.#pending;
    this.#pending = { addresses: [], probes: new Set(), announce: new Set() };
    if (addresses.length > 0) this.#chain(() => this.#applyAddresses(addresses));
    if (probes.size > 0) void this.#probe([...probes]);
    if (announce.size > 0) void this.#announce([...announce], this.#config.timers.garpRepeat);
  }

  /** Runs `task` after every address change queued before it. */
  #chain(task: () => Promise<void>): void {
    this.#addressBatch = this.#addressBatch.then(task).catch((error: unknown) => {
      this.#log.log("error", "an address batch failed", { error: describe(error) });
    });
  }

  async #applyAddresses(batch: readonly { vip: number; op: "add" | "del" }[]): Promise<void> {
    const operations: AddressOperation[] = batch.map(({ vip, op }) => {
      const spec = this.#config.vips[vip]!;
      return {
        op,
        iface: this.#interfaceOf(spec),
        ip: spec.address,
        prefix: spec.prefixLength,
        ...(op === "add" ? { validLftSec: this.#config.addressLifetimeSec } : {}),
      };
    });
    const outcomes = await applyAddressBatch(operations);
    const nowMs = monotonicMs();
    const inputs = batch.map(({ vip, op }, i): Exclude<Input, { type: "batch" }> => {
      const failure = outcomes[i];
      if (op === "add") {
        return failure
          ? { type: "address-add-failed", nowMs, vip, reason: failure.message }
          : { type: "address-added", nowMs, vip };
      }
      return failure
        ? { type: "address-remove-failed", nowMs, vip, reason: failure.message }
        : { type: "address-removed", nowMs, vip };
    });
    this.#step({ type: "batch", nowMs, inputs });
  }

  async #probe(vips: readonly number[]): Promise<void> {
    const byInterface = new Map<string, number[]>();
    for (const vip of vips) {
      const iface = this.#interfaceOf(this.#config.vips[vip]!);
      byInterface.set(iface, [...(byInterface.get(iface) ?? []), vip]);
    }
    await Promise.all(
      [...byInterface].map(async ([iface, group]) => {
        const addresses = group.map((vip) => this.#config.vips[vip]!.address);
        let results: { occupied: boolean; mac?: string }[];
        try {
          results = await probeOccupiedMany(iface, addresses, this.#config.timers.probeTimeoutMs);
        } catch (error) {
          // Without a working probe we cannot know an address is free: treat it as occupied.
          const by = `probe failed: ${describe(error)}`;
          results = group.map(() => ({ occupied: true, mac: by }));
        }
        const nowMs = monotonicMs();
        const inputs = group.map((vip, i): Exclude<Input, { type: "batch" }> => {
          const result = results[i] ?? { occupied: true, mac: "probe returned no result" };
          return {
            type: "probe-result",
            nowMs,
            vip,
            occupied: result.occupied,
            ...(result.mac ? { by: result.mac } : {}),
          };
        });
        this.#step({ type: "batch", nowMs, inputs });
      }),
    );
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
   * Keeps the kernel lifetime of held VIPs ahead: one listing and one `ip -batch` per
   * interface, run in the address chain and checked again right before it that each VIP is
   * still held under a valid lease: `ip address change` re-creates a missing IPv4 address,
   * so a renewal that overtook a release would bring the released VIP back for a whole
   * lifetime, next to its new owner. A held VIP the kernel already dropped is lost.
   */
  #renewHeld(): void {
    this.#chain(async () => {
      if (this.#stopped || !this.#core.status(monotonicMs(), { explain: false }).leaseValid) return;
      const byInterface = new Map<string, number[]>();
      this.#core.ownership().local.forEach((state, vip) => {
        if (state !== "held") return;
        const iface = this.#interfaceOf(this.#config.vips[vip]!);
        byInterface.set(iface, [...(byInterface.get(iface) ?? []), vip]);
      });
      for (const [iface, vips] of byInterface) await this.#renewOn(iface, vips);
    });
  }

  async #renewOn(iface: string, vips: readonly number[]): Promise<void> {
    let present: Set<string>;
    try {
      present = new Set((await listAddresses(iface)).map((a) => a.ip));
    } catch (error) {
      this.#log.log("warn", "cannot list addresses to renew lifetimes", {
        interface: iface,
        error: describe(error),
      });
      return;
    }
    const renew = vips.filter((vip) => present.has(this.#config.vips[vip]!.address));
    for (const vip of vips) {
      if (renew.includes(vip)) continue;
      this.#log.log("warn", "a held VIP vanished from its interface", {
        vip: this.#config.vips[vip]!.address,
      });
      this.#step({ type: "address-lost", nowMs: monotonicMs(), vip });
    }
    const outcomes = await applyAddressBatch(
      renew.map((vip) => {
        const spec = this.#config.vips[vip]!;
        return {
          op: "change",
          iface,
          ip: spec.address,
          prefix: spec.prefixLength,
          validLftSec: this.#config.addressLifetimeSec,
        };
      }),
    );
    outcomes.forEach((failure, i) => {
      if (failure) {
        const vip = this.#config.vips[renew[i]!]!.address;
        this.#log.log("warn", "renewing a VIP lifetime failed", { vip, error: failure.message });
      }
    });
  }

  async #refreshAnnouncements(): Promise<void> {
    const held = this.#core
      .ownership()
      .local.map((state, i) => (state === "held" ? i : -1))
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

  /** Coalesced: many steps in one turn of the event loop publish one view. */
  #publishView(): void {
    if (this.#viewScheduled) return;
    this.#viewScheduled = true;
    setImmediate(() => {
      this.#viewScheduled = false;
      const { owners } = this.#core.ownership();
      this.#config.vips.forEach((spec, i) => {
        const owner = owners[i];
        if (this.#lastOwners.get(spec.address) !== owner || !(spec.address in this.#vipSince)) {
          this.#lastOwners.set(spec.address, owner);
          this.#vipSince[spec.address] = new Date().toISOString();
        }
      });
      if (this.#listeners.size === 0) return;
      const view = this.current();
      for (const listener of this.#listeners) {
        try {
          listener(view);
        } catch (error) {
          this.#log.log("error", "a cluster view listener failed", { error: describe(error) });
        }
      }
    });
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
    this.notifyHook(event.type, argument, env);
  }

  /**
   * Runs the configured notify command with `EVENT ARGUMENT` and the FLOATIP_* environment,
   * one at a time, under its timeout. Capabilities call it for their own events (for example
   * `relay-switched`), with extra variables of their own.
   */
  notifyHook(eventType: string, argument: string, extraEnv: Record<string, string> = {}): void {
    const notify = this.#config.notify;
    if (!notify) return;
    const env = {
      ...process.env,
      FLOATIP_EVENT: eventType,
      FLOATIP_NODE: this.nodeId,
      FLOATIP_CLUSTER: this.#config.cluster,
      ...extraEnv,
    };
    this.#notifyQueue = this.#notifyQueue.then(async () => {
      try {
        await run(notify.command, [eventType, argument], { timeoutMs: notify.timeoutMs, env });
      } catch (error) {
        this.#log.log("warn", "notify hook failed", {
          command: notify.command,
          event: eventType,
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
