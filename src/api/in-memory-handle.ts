/**
 * A small `AgentHandle` kept entirely in memory: a fixed set of nodes and VIPs whose owners,
 * pins and drains follow admin commands at once, as a coordinator would settle them. It lets
 * the API and the CLI be exercised (tests, documentation examples) without a running cluster;
 * the agent runtime is the real implementation.
 */

import type { AdminResult, AgentEventRecord, AgentHandle, AgentStatus } from "../agent/handle.ts";
import type { LoopLagSnapshot } from "../agent/loop-monitor.ts";
import type { VipStatus } from "../core/node.ts";
import type { AdminCommand, CoreEvent, MemberStateCode, Role } from "../core/types.ts";
import type { CheckStatus } from "../health/check-runner.ts";

export interface InMemoryHandleOptions {
  readonly cluster?: string;
  readonly node: string;
  readonly nodes: readonly string[];
  readonly vips: readonly string[];
  readonly role?: Role;
  readonly coordinator?: string | undefined;
  readonly term?: number;
  readonly checks?: readonly CheckStatus[];
}

export class InMemoryAgentHandle implements AgentHandle {
  readonly commands: AdminCommand[] = [];
  readonly #options: InMemoryHandleOptions;
  readonly #members = new Map<string, { state: MemberStateCode; heard: boolean }>();
  readonly #owners = new Map<string, string | undefined>();
  readonly #conflicts = new Set<string>();
  readonly #explain = new Map<string, string>();
  readonly #events: AgentEventRecord[] = [];
  #coordinator: string | undefined;
  #reloadError: string | undefined;
  reloads = 0;
  transport = { sent: 0, received: 0, dropped: {} as Record<string, number> };
  counters: AgentStatus["counters"];
  /** The control plane's loop lag, when a test sets it (see LoopMonitor). */
  loop: LoopLagSnapshot | undefined;
  /** `arbiter: etcd` status fields, when a test sets them. */
  arbiter: Readonly<Record<string, unknown>> | undefined;

  constructor(options: InMemoryHandleOptions) {
    this.#options = options;
    this.#coordinator = "coordinator" in options ? options.coordinator : options.node;
    for (const id of options.nodes) this.#members.set(id, { state: "healthy", heard: true });
    options.vips.forEach((vip, i) => {
      this.#owners.set(vip, options.nodes[i % options.nodes.length]);
      this.#explain.set(vip, `round-robin: slot ${i}`);
    });
  }

  setCoordinator(id: string | undefined): void {
    this.#coordinator = id;
  }

  setMember(id: string, state: MemberStateCode, heard: boolean): void {
    this.#members.set(id, { state, heard });
  }

  setConflict(vip: string, conflict: boolean): void {
    if (conflict) this.#conflicts.add(vip);
    else this.#conflicts.delete(vip);
  }

  failNextReload(message: string): void {
    this.#reloadError = message;
  }

  /** Appends an event as the agent would; returns its id. */
  emit(event: CoreEvent): number {
    const id = (this.#events.at(-1)?.id ?? 0) + 1;
    this.#events.push({
      id,
      at: new Date(Date.UTC(2030, 0, 1, 0, 0, id)).toISOString(),
      node: this.#options.node,
      event,
    });
    return id;
  }

  status(): AgentStatus {
    const self = this.#options.node;
    const coordinator = this.#coordinator;
    const role: Role = this.#options.role ?? (coordinator === self ? "coordinator" : "follower");
    const vips: VipStatus[] = this.#options.vips.map((address) => {
      const owner = this.#owners.get(address);
      const conflict = this.#conflicts.has(address);
      const mine = owner === self;
      return {
        address,
        owner,
        desiredOwner: role === "coordinator" ? owner : undefined,
        local: mine ? (conflict ? "conflict" : "held") : "absent",
        localSinceMs: mine ? 1000 : undefined,
        heldForMs: owner !== undefined && !conflict ? 5000 : undefined,
        conflict,
        policy: "round-robin",
        pinnedTo: undefined,
        explain: this.#explain.get(address) ?? "",
      };
    });
    const checks = this.#options.checks ?? [];
    return {
      cluster: this.#options.cluster ?? "demo",
      profile: "lan",
      incarnation: 7,
      startedAt: "2030-01-01T00:00:00.000Z",
      node: self,
      role,
      term: this.#options.term ?? 3,
      coordinator,
      healthy: checks.every((c) => c.up),
      quorum: coordinator !== undefined,
      leaseValid: coordinator !== undefined,
      tableVersion: [this.#options.term ?? 3, 5],
      config: { fingerprint: "0123456789abcdef", matchesCoordinator: true },
      members: [...this.#members].map(([id, m]) => ({ id, state: m.state, heard: m.heard })),
      vips,
      failoverMarks: [],
      view: {
        ...(coordinator !== undefined ? { coordinator } : {}),
        leaseLeftMs: coordinator !== undefined ? 380 : 0,
        heardMs: Object.fromEntries(
          [...this.#members].filter(([id, m]) => id !== self && m.heard).map(([id]) => [id, 20]),
        ),
      },
      peers: [...this.#members]
        .filter(([id]) => id !== self)
        .map(([id, m]) => ({
          id,
          heardAgoMs: m.heard ? 20 : undefined,
          incarnation: 7,
          term: this.#options.term ?? 3,
          role: id === coordinator ? ("coordinator" as const) : ("follower" as const),
          healthy: m.state === "healthy",
          leaving: false,
          quorum: m.heard,
          tableVersion: [this.#options.term ?? 3, 5] as [number, number],
          config: "0123456789abcdef",
          holding: [...this.#owners].filter(([, o]) => o === id).map(([address]) => address),
          coordinator,
          leaseLeftMs: m.heard ? 380 : undefined,
          heardMs: m.heard ? { [self]: 20 } : undefined,
          missed: m.heard ? {} : undefined,
          version: "0.1.0",
        })),
      health: { healthy: checks.every((c) => c.up), checks },
      vipSince: Object.fromEntries(this.#options.vips.map((v) => [v, "2030-01-01T00:00:01.000Z"])),
      transport: this.transport,
      ...(this.counters ? { counters: this.counters } : {}),
      ...(this.loop ? { loop: this.loop } : {}),
      ...(this.arbiter ? { arbiter: this.arbiter } : {}),
    };
  }

  admin(command: AdminCommand): AdminResult {
    if (this.#coordinator === undefined) {
      return {
        ok: false,
        code: "NO_COORDINATOR",
        message: "no coordinator is elected right now; retry in a moment",
      };
    }
    if ("node" in command && !this.#members.has(command.node)) {
      return { ok: false, code: "UNKNOWN_NODE", message: `node ${command.node} is not configured` };
    }
    const vip = "vip" in command ? command.vip.split("/")[0]! : undefined;
    if (vip !== undefined && !this.#owners.has(vip)) {
      return { ok: false, code: "UNKNOWN_VIP", message: `VIP ${vip} is not configured` };
    }
    this.commands.push(command);
    switch (command.type) {
      case "move":
        this.#owners.set(vip!, command.node);
        this.#explain.set(vip!, `pinned to ${command.node} by an operator`);
        break;
      case "unpin":
        this.#explain.set(vip!, "round-robin: pin removed");
        break;
      case "drain":
        this.#members.set(command.node, { state: "drained", heard: true });
        break;
      case "undrain":
        this.#members.set(command.node, { state: "healthy", heard: true });
        break;
    }
    this.emit({ type: "admin-applied", command });
    const forwardedTo = this.#coordinator === this.#options.node ? undefined : this.#coordinator;
    return { ok: true, forwardedTo };
  }

  events(sinceId: number): readonly AgentEventRecord[] {
    return this.#events.filter((e) => e.id > sinceId);
  }

  async reload(): Promise<{ ok: true } | { ok: false; message: string }> {
    this.reloads += 1;
    const error = this.#reloadError;
    this.#reloadError = undefined;
    return error === undefined ? { ok: true } : { ok: false, message: error };
  }
}
