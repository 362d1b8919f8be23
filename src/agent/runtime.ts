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
import { closeSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { run } from "../adapters/exec.ts";
import { listAddresses, removeAddress } from "../adapters/linux/address.ts";
import { SystemdNotifier } from "../adapters/linux/sd-notify.ts";
import { inheritedStateLock, lockNodeState } from "../adapters/linux/state-lock.ts";
import { supervisorVipsEnv, writeVipManifest } from "../adapters/linux/supervisor.ts";
import { EtcdCore } from "../arbiter/etcd-core.ts";
import type { EtcdDriver } from "../arbiter/etcd-driver.ts";
import { loadClusterKey } from "../cluster/key.ts";
import { UdpTransport } from "../cluster/udp-transport.ts";
import { configFingerprint } from "../config/fingerprint.ts";
import { canonicalIp } from "../config/ipv6.ts";
import { loadConfig } from "../config/load.ts";
import type { ClusterConfig, VipSpec } from "../config/types.ts";
import { canonicalVipOrder } from "../config/vip-order.ts";
import type { ArbiterCore } from "../core/arbiter.ts";
import { CoreNode, type VipStatus } from "../core/node.ts";
import { SeededRandom } from "../core/prng.ts";
import type { AdminCommand, CoreEvent, Input } from "../core/types.ts";
import { CheckRunner, type HealthReport } from "../health/check-runner.ts";
import type { ClusterView, ClusterViewSnapshot } from "../ports/cluster-view.ts";
import { registerRbdProbe } from "../storage/rbd-probe.ts";
import { floatipVersion } from "../version.ts";
import { ControlLoop } from "./control-loop.ts";
import type { AdminResult, AgentEventRecord, AgentHandle, AgentStatus } from "./handle.ts";
import {
  type FailoverPhase,
  failoverPhases,
  Histogram,
  type HistogramSnapshot,
} from "./histogram.ts";
import { type HookCall, HookQueue, type HookQueueCounts, hookKey } from "./hook-queue.ts";
import { LinuxPlatform, readNodeState, writeNodeState } from "./linux-platform.ts";
import type { Logger } from "./log.ts";
import type { LoopLagSnapshot } from "./loop-monitor.ts";
import { SchedProbe } from "./sched-probe.ts";

export interface AgentOptions {
  readonly configPath: string;
  readonly nodeId: string;
  readonly log: Logger;
}

const eventHistory = 1000;
/** Owner changes kept per VIP for the dashboard's timeline. */
const ownershipKept = 10;

function monotonicMs(): number {
  return Math.floor(performance.now());
}

export class Agent implements AgentHandle, ClusterView {
  readonly nodeId: string;
  #config: ClusterConfig;
  /**
   * The VIPs in the cluster-wide order (by address) that the core, the tables and the
   * heartbeats index them by; `#config.vips` keeps the file's order. Fixed for the process's
   * life: a reload never changes the set of VIPs.
   */
  readonly #vips: readonly VipSpec[];
  readonly #configPath: string;
  readonly #log: Logger;
  readonly #core: ArbiterCore;
  /** `arbiter: etcd`: the etcd client performing the arbiter's writes and feeding its view. */
  readonly #etcd: EtcdDriver | undefined;
  readonly #transport: UdpTransport;
  readonly #control: ControlLoop;
  readonly #incarnation: number;
  readonly #key: Buffer;
  readonly #startedAt = new Date().toISOString();
  #checks: CheckRunner;
  #health: HealthReport = { healthy: true, checks: [] };
  /** systemd notification (Type=notify): readiness, status lines, watchdog, stopping. */
  readonly #systemd = new SystemdNotifier(process.env, (message) => this.#log.log("warn", message));
  #systemdTimers: NodeJS.Timeout[] = [];
  #systemdReady = false;
  #systemdStatus = "";
  #viewScheduled = false;
  /** The table version of the last view published. */
  #publishedTable: readonly [number, number] = [0, 0];
  /** keepalived-style hooks: after FAULT or STOP, releases are not reported as BACKUP. */
  #keepalivedQuiet = false;
  #events: AgentEventRecord[] = [];
  #eventId = 0;
  /** Counters for /metrics, from the core's events since this process started. */
  readonly #counters = { elections: 0, vipsAcquired: 0, vipsReleased: 0, memberFailures: 0 };
  /**
   * Per VIP, its last owners in the table as this node saw them change (newest last): the
   * newest entry is also the VIP's "since" when its owner reports none.
   */
  readonly #ownership = new Map<string, { owner: string | null; at: string }[]>();
  #listeners = new Set<(view: ClusterViewSnapshot) => void>();
  #servicesDatagramListeners = new Set<(from: string, payload: unknown) => void>();
  readonly #hooks = new HookQueue({
    run: (call) => this.#runHookNow(call),
    report: (skipped) =>
      this.#log.log(
        "warn",
        "notify hook calls skipped: a newer call about the same thing replaced them, or too many waited",
        {
          coalesced: skipped.coalesced,
          dropped: skipped.dropped,
          examples: skipped.examples.join("; "),
        },
      ),
  });
  #stopped = false;
  #hookFailures = 0;
  readonly #phases = new Map<FailoverPhase, Histogram>(
    failoverPhases.map((p) => [p, new Histogram()]),
  );

  /**
   * Reads the configuration and builds the agent. The etcd client (etcd3 with gRPC: 25 MB of
   * RSS in a bare Node.js process, about 9 MB in a running control plane) is loaded only with
   * `arbiter: etcd`: the embedded mode's control plane never carries it.
   */
  static async create(options: AgentOptions): Promise<Agent> {
    const config = loadConfig(options.configPath, { nodeId: options.nodeId });
    const driver = config.arbiter
      ? (await import("../arbiter/etcd-driver.ts")).EtcdDriver
      : undefined;
    return new Agent(options, config, driver);
  }

  private constructor(
    options: AgentOptions,
    config: ClusterConfig,
    etcdDriver: typeof EtcdDriver | undefined,
  ) {
    this.nodeId = options.nodeId;
    this.#configPath = options.configPath;
    this.#log = options.log;
    registerRbdProbe(); // health checks of kind rbd (S1: the node's connection to Ceph)
    this.#config = config;
    this.#vips = canonicalVipOrder(config.vips);
    const self = this.#self();
    this.#key = loadClusterKey(config.keyFile).key;
    const stateDir = join(config.stateDir, this.nodeId);
    mkdirSync(stateDir, { recursive: true });
    // One agent per node and machine, before any state or address is touched (throws
    // STATE_LOCKED with the other instance's PID). Under a supervisor, the supervisor holds
    // the lock and this process inherited it.
    if (!inheritedStateLock(stateDir)) this.#lockFd = lockNodeState(this.nodeId, stateDir, false);
    const persisted = readNodeState(stateDir);
    this.#incarnation = Math.max(Date.now(), (persisted.incarnation ?? 0) + 1);
    writeNodeState(stateDir, { ...persisted, incarnation: this.#incarnation });
    // The supervisor removes what this list names when this process dies: the VIPs of the
    // configuration read now, which a restart may have changed.
    const supervisorVips = process.env[supervisorVipsEnv];
    if (supervisorVips) writeVipManifest(supervisorVips, config, this.nodeId);
    const coreConfig = {
      nodes: config.nodes.map((n) => ({ id: n.id, weight: n.weight })),
      vips: this.#vips.map((v) => ({
        address: v.address,
        policy: v.policy,
        ...(v.preferred ? { preferred: v.preferred } : {}),
        failback: v.failback,
      })),
      timers: config.timers,
      heartbeats: config.heartbeats,
      ...(config.receive === "on-tick" ? { readOnTick: true } : {}),
      fingerprint: configFingerprint(config),
      version: floatipVersion,
    };
    const arbiter = config.arbiter;
    this.#core = arbiter
      ? new EtcdCore({
          id: this.nodeId,
          config: coreConfig,
          ttlMs: arbiter.ttlSec * 1000,
          onLoss: arbiter.onLoss,
          incarnation: this.#incarnation,
          nowMs: monotonicMs(),
        })
      : new CoreNode({
          id: this.nodeId,
          config: coreConfig,
          random: new SeededRandom(randomInt(2 ** 31)),
          incarnation: this.#incarnation,
          nowMs: monotonicMs(),
          ...(persisted.vote ? { persisted: persisted.vote } : {}),
        });
    if (arbiter && !etcdDriver)
      throw new Error("arbiter: etcd needs the etcd driver (Agent.create)");
    this.#etcd =
      arbiter && etcdDriver
        ? new etcdDriver({
            spec: arbiter,
            cluster: config.cluster,
            nodeId: this.nodeId,
            now: monotonicMs,
            deliver: (input) => this.#step(input),
            log: (level, msg, fields) => this.#log.log(level, msg, fields),
            leaseFile: join(stateDir, "etcd-lease"),
          })
        : undefined;
    this.#stateDir = stateDir;
    this.#transport = new UdpTransport({
      cluster: config.cluster,
      selfId: this.nodeId,
      key: this.#key,
      bind: { address: self.address, port: self.port },
      peers: new Map(config.nodes.map((n) => [n.id, { address: n.address, port: n.port }])),
      incarnation: this.#incarnation,
      // No heartbeats under etcd: greetings teach the peers' incarnations (failsafe
      // requests, tickle connection lists).
      greet: config.arbiter !== undefined,
      receive: config.receive,
      onMessage: (from, payload) => {
        if (isServicesDatagram(payload)) {
          for (const listener of this.#servicesDatagramListeners) listener(from, payload);
          return;
        }
        this.#control.receive(from, payload);
      },
      log: (level, msg, fields) => this.#log.log(level, msg, fields),
    });
    const etcd = this.#etcd;
    this.#control = new ControlLoop({
      core: this.#core,
      ...(etcd ? { etcd: (op) => etcd.perform(op) } : {}),
      platform: new LinuxPlatform({
        transport: this.#transport,
        stateDir,
        incarnation: this.#incarnation,
      }),
      vips: this.#vips.map((v) => ({
        address: v.address,
        prefixLength: v.prefixLength,
        iface: this.#interfaceOf(v),
      })),
      heartbeatIntervalMs: config.timers.heartbeatIntervalMs,
      probeTimeoutMs: config.timers.probeTimeoutMs,
      garpRepeat: config.timers.garpRepeat,
      garpIntervalMs: config.timers.garpIntervalMs,
      garpRefreshMs: config.timers.garpRefreshMs,
      addressLifetimeSec: config.addressLifetimeSec,
      log: (level, msg, fields) => this.#log.log(level, msg, fields as Record<string, unknown>),
      onEvent: (event) => this.#onEvent(event),
      afterStep: (events) => this.#afterStep(events),
      recordPhase: (phase, ms, vip) => {
        this.#phases.get(phase)!.record(ms);
        this.#core.notePhase(phase, ms, vip, monotonicMs());
      },
      sched: new SchedProbe(),
      readOnTick: config.receive === "on-tick",
    });
    this.#checks = this.#createChecks();
  }

  readonly #stateDir: string;
  /** The node's state lock when this process took it itself (`--no-supervisor`). */
  #lockFd: number | undefined;

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    await this.#removeStaleVips("start-up: removing VIPs left by an earlier run");
    await this.#transport.start();
    this.#checks.start();
    this.#health = this.#checks.current();
    this.#step({ type: "health", nowMs: monotonicMs(), healthy: this.#health.healthy });
    this.#control.start();
    this.#etcd?.start();
    this.#startSystemdNotify();
    this.#log.log("info", "agent started", {
      node: this.nodeId,
      cluster: this.#config.cluster,
      profile: this.#config.profile,
      arbiter: this.#config.arbiter
        ? `etcd (${this.#config.arbiter.endpoints.join(", ")}; on_loss ${this.#config.arbiter.onLoss})`
        : "embedded",
      incarnation: this.#incarnation,
      receiveBufferBytes: this.#transport.receiveBufferBytes(),
      receive: this.#config.receive,
    });
  }

  /** SIGTERM: release VIPs, tell the peers, wait until handed over (bounded), stop. */
  async shutdown(graceMs = 3000): Promise<void> {
    if (this.#stopped) return;
    this.#log.log("info", "shutting down: handing VIPs over");
    this.#systemd.stopping("shutting down: handing VIPs over");
    if (this.#config.notify?.style === "keepalived") {
      this.#keepalivedQuiet = true;
      this.#notifyKeepalived(this.#allVips, "STOP");
    }
    this.#step({ type: "shutdown", nowMs: monotonicMs() });
    const deadline = monotonicMs() + graceMs;
    while (!this.#core.drainedForShutdown && monotonicMs() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await this.#control.idle();
    await this.stop();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#control.stop();
    for (const timer of this.#systemdTimers) clearInterval(timer);
    await this.#checks.stop();
    await this.#transport.close();
    await this.#control.idle();
    await this.#removeStaleVips("stopping: removing any VIP still configured");
    // After the VIPs are gone: revoking the lease frees their ownership keys at once.
    await this.#etcd?.stop();
    await this.#hooks.idle();
    // Our own lock (not one inherited from a supervisor) goes once nothing is left to remove.
    if (this.#lockFd !== undefined) closeSync(this.#lockFd);
    this.#lockFd = undefined;
    this.#log.log("info", "agent stopped");
  }

  /**
   * Under systemd (NOTIFY_SOCKET): WATCHDOG=1 from this loop every half WatchdogSec, so a
   * stalled control plane is restarted; READY=1 once a coordinator is known and this node
   * hears a majority, or after 10 election timeouts without (it runs, and says so in
   * STATUS); a STATUS line (role, term, coordinator, VIPs held) whenever it changes,
   * checked once a second.
   */
  #startSystemdNotify(): void {
    if (!this.#systemd.enabled) return;
    const every = this.#systemd.watchdogEveryMs;
    if (every !== undefined) {
      this.#systemd.watchdog();
      this.#systemdTimers.push(setInterval(() => this.#systemd.watchdog(), every));
    }
    const readyByMs = monotonicMs() + 10 * this.#config.timers.electionTimeoutMs;
    const check = () => {
      const status = this.#core.status(monotonicMs(), { explain: false });
      const held = this.current().held.size;
      const line = `${status.role}, term ${status.term}, coordinator ${status.coordinator ?? "none"}, ${status.quorum ? "quorum" : "NO QUORUM"}, holding ${held} of ${this.#vips.length} VIPs`;
      if (
        !this.#systemdReady &&
        ((status.coordinator !== undefined && status.quorum) || monotonicMs() >= readyByMs)
      ) {
        this.#systemdReady = true;
        this.#systemdStatus = line;
        this.#systemd.ready(line);
        return;
      }
      if (this.#systemdReady && line !== this.#systemdStatus) {
        this.#systemdStatus = line;
        this.#systemd.status(line);
      }
    };
    this.#systemdTimers.push(setInterval(check, 1000));
    // Readiness as soon as it is true, not on the next whole second; then this one stops.
    const soon = setInterval(() => {
      check();
      if (this.#systemdReady) clearInterval(soon);
    }, this.#config.timers.heartbeatIntervalMs);
    this.#systemdTimers.push(soon);
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
      version: floatipVersion,
      health: this.#health,
      vipSince: this.#vipSinceOf(core.vips),
      ownership: Object.fromEntries(this.#ownership),
      loop: this.#control.monitor.snapshot(),
      ...(this.#etcd && this.#core instanceof EtcdCore
        ? {
            arbiter: {
              kind: "etcd",
              endpoints: this.#config.arbiter?.endpoints,
              onLoss: this.#config.arbiter?.onLoss,
              ...this.#etcd.stats(),
              ...this.#core.counters,
            },
          }
        : {}),
      transport: {
        sent: transport.sent,
        received: transport.received,
        dropped: { ...transport.dropped },
        kernelDrops: this.#transport.kernelDrops(),
        sendErrors: transport.sendErrors,
      },
      counters: { ...this.#counters },
      hooks: this.hookCounts,
      failover: Object.fromEntries(
        [...this.#phases].map(([phase, histogram]) => [phase, histogram.snapshot()]),
      ) as Record<FailoverPhase, HistogramSnapshot>,
    };
  }

  /**
   * Since when each VIP is where it is: the owner's own acquisition time (it reports how long
   * it has held each VIP), the same on every node up to clock offsets; else when this node
   * saw the owner change.
   */
  #vipSinceOf(vips: readonly VipStatus[]): Record<string, string> {
    const since: Record<string, string> = {};
    for (const [address, history] of this.#ownership) since[address] = history.at(-1)!.at;
    const nowMs = Date.now();
    for (const vip of vips) {
      if (vip.heldForMs !== undefined) {
        since[vip.address] = new Date(nowMs - vip.heldForMs).toISOString();
      }
    }
    return since;
  }

  admin(given: AdminCommand): AdminResult {
    const config = this.#config;
    // A VIP as the operator wrote it (an IPv6 address has many spellings; a prefix may follow).
    const command: AdminCommand =
      "vip" in given ? { ...given, vip: canonicalIp(given.vip.split("/")[0]!) } : given;
    if ("node" in command && !config.nodes.some((n) => n.id === command.node)) {
      return {
        ok: false,
        code: "UNKNOWN_NODE",
        message: `node ${command.node} is not in ${config.file}`,
      };
    }
    if ("vip" in command && !config.vips.some((v) => v.address === command.vip)) {
      return {
        ok: false,
        code: "UNKNOWN_VIP",
        message: `VIP ${"vip" in given ? given.vip : command.vip} is not in ${config.file}`,
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
    const refused = refusal(command, this.#core.status(monotonicMs(), { explain: false }).members);
    if (refused) return refused;
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
      JSON.stringify([
        c.cluster,
        c.nodes,
        canonicalVipOrder(c.vips),
        c.timers,
        c.keyFile,
        c.addressLifetimeSec,
      ]);
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

  /** What the services process needs: the cluster key, the state directory, the incarnation. */
  get serviceContext(): { key: Buffer; stateDir: string; incarnation: number } {
    return { key: this.#key, stateDir: this.#stateDir, incarnation: this.#incarnation };
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
      owners: new Map(this.#vips.map((v, i) => [v.address, owners[i]])),
      held: new Set(this.#vips.filter((_, i) => local[i] === "held").map((v) => v.address)),
    };
  }

  subscribe(listener: (view: ClusterViewSnapshot) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Datagrams of the services process's own peer protocol (`connections` lists for tickle
   * ACKs) go past the core to `listener`; returns a function that unsubscribes.
   */
  onServicesDatagram(listener: (from: string, payload: unknown) => void): () => void {
    this.#servicesDatagramListeners.add(listener);
    return () => this.#servicesDatagramListeners.delete(listener);
  }

  /** Sends a services datagram to every peer; anything else is refused (never a core message). */
  broadcastServicesDatagram(payload: unknown): void {
    if (this.#stopped || !isServicesDatagram(payload)) return;
    // Not ahead of a stall's release: the lists are sent again (tickle.ts, resendMs).
    if (!this.#control.maySendNow()) return;
    this.#transport.broadcast(payload);
  }

  // ---------------------------------------------------------------- the loop

  #step(input: Input): void {
    if (this.#stopped) return;
    this.#control.step(input);
  }

  /**
   * Republish on events, and on a newer table without one: a follower adopts the
   * coordinator's table (a member recovered, a VIP moved between other nodes) silently, and
   * a services process with stale members would, for one, replicate storage requests to too
   * few peers.
   */
  #afterStep(events: readonly CoreEvent[]): void {
    const version = this.#core.tableVersion;
    const newTable =
      version[0] !== this.#publishedTable[0] || version[1] !== this.#publishedTable[1];
    if (
      newTable ||
      events.some((e) => e.type !== "message-dropped" && e.type !== "failover-phase")
    ) {
      this.#publishedTable = version;
      this.#publishView();
    }
  }

  /** The control plane's own lag histogram and stall count. */
  loopLag(): LoopLagSnapshot {
    return this.#control.monitor.snapshot();
  }

  async #removeStaleVips(reason: string): Promise<void> {
    const byInterface = new Map<string, VipSpec[]>();
    for (const spec of this.#vips) {
      const iface = this.#interfaceOf(spec);
      byInterface.set(iface, [...(byInterface.get(iface) ?? []), spec]);
    }
    for (const [iface, specs] of byInterface) {
      let present: Set<string>;
      try {
        present = new Set((await listAddresses(iface)).map((a) => canonicalIp(a.ip)));
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
    if (event.type === "failover-phase") {
      this.#phases.get(event.phase)!.record(event.ms);
      return;
    }
    if (event.type === "message-dropped") {
      this.#log.log("debug", "peer message dropped", { from: event.from, reason: event.reason });
      return;
    }
    // Stalls are logged (rate-limited) and counted where they are measured; only one that
    // cost the lease is an event of its own.
    if (event.type === "stall-detected" && !event.leaseExpired) return;
    if (event.type === "coordinator-changed" && event.coordinator !== undefined)
      this.#counters.elections += 1;
    else if (event.type === "vip-acquired") this.#counters.vipsAcquired += 1;
    else if (event.type === "vip-released") this.#counters.vipsReleased += 1;
    else if (event.type === "member-failed") this.#counters.memberFailures += 1;
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
      type === "vip-conflict" ||
      type === "address-failed" ||
      type === "member-failed" ||
      type === "stall-detected" ||
      type === "config-mismatch"
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
      this.#vips.forEach((spec, i) => {
        const owner = owners[i] ?? null;
        const history = this.#ownership.get(spec.address) ?? [];
        if (history.length > 0 && history.at(-1)!.owner === owner) return;
        history.push({ owner, at: new Date().toISOString() });
        if (history.length > ownershipKept) history.shift();
        this.#ownership.set(spec.address, history);
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
    if (notify?.style === "keepalived") {
      if (event.type === "vip-acquired") this.#notifyKeepalived([event.vip], "MASTER");
      // A fault or a stop already said why the node let its VIPs go.
      if (event.type === "vip-released" && !this.#keepalivedQuiet) {
        this.#notifyKeepalived([event.vip], "BACKUP");
      }
      return;
    }
    const wanted = new Set([
      "role-changed",
      "vip-acquired",
      "vip-released",
      "vip-conflict",
      "member-failed",
      "member-recovered",
    ]);
    if (!notify || !wanted.has(event.type)) return;
    // Role and term on every event: the node's role and term as the event happened.
    const env: Record<string, string> = {
      FLOATIP_EVENT: event.type,
      FLOATIP_NODE: this.nodeId,
      FLOATIP_CLUSTER: this.#config.cluster,
      FLOATIP_ROLE: this.#core.role,
      FLOATIP_TERM: String(this.#core.term),
    };
    let argument = "";
    if ("vip" in event && event.vip !== undefined) env.FLOATIP_VIP = argument = event.vip;
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
    if (notify.style === "keepalived") return; // capability events have no keepalived form
    this.#runHook(hookKey(eventType, argument), [eventType, argument], env);
  }

  /** Every configured VIP's address. */
  get #allVips(): string[] {
    return this.#vips.map((v) => v.address);
  }

  /**
   * keepalived's notify call, per VIP as per VRRP instance: `INSTANCE NAME STATE PRIORITY`,
   * NAME the VIP's address, PRIORITY this node's weight.
   */
  #notifyKeepalived(vips: readonly string[], state: "MASTER" | "BACKUP" | "FAULT" | "STOP"): void {
    const priority = String(this.#self().weight);
    for (const vip of vips) {
      this.#runHook(`vip:${vip}`, ["INSTANCE", vip, state, priority], {
        ...process.env,
        FLOATIP_NODE: this.nodeId,
        FLOATIP_CLUSTER: this.#config.cluster,
        FLOATIP_VIP: vip,
      });
    }
  }

  /**
   * Queues a notify call: one at a time, each under its timeout; a newer call with the same
   * key replaces one still waiting (see hook-queue.ts).
   */
  #runHook(key: string, args: readonly string[], env: NodeJS.ProcessEnv): void {
    if (!this.#config.notify) return;
    this.#hooks.push({ key, args, env });
  }

  async #runHookNow(call: HookCall): Promise<void> {
    const notify = this.#config.notify;
    if (!notify) return;
    try {
      await run(notify.command, call.args, { timeoutMs: notify.timeoutMs, env: call.env });
    } catch (error) {
      this.#hookFailures += 1;
      this.#log.log("warn", "notify hook failed", {
        command: notify.command,
        event: call.args.join(" "),
        error: describe(error),
      });
    }
  }

  /** Notify calls run, coalesced, dropped and failed since start (for /metrics). */
  get hookCounts(): HookQueueCounts & { failed: number } {
    return { ...this.#hooks.counts, failed: this.#hookFailures };
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
        if (this.#config.notify?.style === "keepalived") {
          // keepalived: every instance goes FAULT, and back to BACKUP once the checks pass.
          this.#keepalivedQuiet = !report.healthy;
          this.#notifyKeepalived(this.#allVips, report.healthy ? "BACKUP" : "FAULT");
        }
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
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Administrative commands that cannot do what they say, refused at once from this node's view
 * of the coordinator's table (the coordinator checks again on its own state): a move to a node
 * that may hold nothing, and draining the last node that may hold anything (unless forced).
 */
function refusal(
  command: AdminCommand,
  members: readonly { id: string; state: string }[],
): AdminResult | undefined {
  const state = (id: string) => members.find((m) => m.id === id)?.state;
  if (command.type === "move") {
    const target = state(command.node);
    if (target === "drained") {
      return {
        ok: false,
        code: "NODE_NOT_ELIGIBLE",
        message: `${command.node} is drained: a VIP moved there would have no holder; enable it first (floatip node enable ${command.node})`,
      };
    }
    if (target === "failed") {
      return {
        ok: false,
        code: "NODE_NOT_ELIGIBLE",
        message: `${command.node} is failed in the coordinator's table: a VIP moved there would have no holder; see floatip status for why`,
      };
    }
  }
  if (command.type === "drain" && !command.force && state(command.node) === "healthy") {
    const others = members.filter((m) => m.id !== command.node && m.state === "healthy");
    if (others.length === 0) {
      return {
        ok: false,
        code: "LAST_ELIGIBLE_NODE",
        message: `${command.node} is the last node that may hold VIPs: draining it leaves every VIP without a holder; add --force to do it anyway`,
      };
    }
  }
  return undefined;
}

/** The services process's datagram types, which the core never sees. */
function isServicesDatagram(payload: unknown): boolean {
  return (
    typeof payload === "object" &&
    payload !== null &&
    (payload as { type?: unknown }).type === "connections"
  );
}
