/**
 * The relay (S4) as a capability of `floatip agent`: the cluster YAML's top-level `relays:`
 * section starts one `RelayService` per relay inside the agent.
 *
 * Placement: a relay whose `listen` address is one of the cluster's VIPs runs only on the node
 * that holds that VIP right now. It is started when the VIP appears in the view's `held` set
 * and stopped when it leaves; a relay on any other address runs on every node. `held` lists
 * addresses already configured on the interface, so a `proxy` relay binds to the VIP itself
 * (never to 0.0.0.0, which would also capture the port on every other address of the node)
 * without meeting EADDRNOTAVAIL. A start that fails anyway (port taken, nft missing) is logged
 * and retried every `retryMs` while the relay should run.
 *
 * Starts and stops of one relay run one after the other on a queue, so a quick
 * held -> released -> held never runs two services for one relay.
 *
 * Notify hook: when the cluster config has `notify:`, the relay runs it (through the agent's
 * queue, with the usual FLOATIP_EVENT, FLOATIP_NODE and FLOATIP_CLUSTER) as
 * `COMMAND EVENT RELAY_NAME` on the node where the relay runs:
 *   relay-switched      new connections go elsewhere now. FLOATIP_RELAY (the relay's name),
 *                       FLOATIP_BACKEND_FROM (backend left, "" when the relay was rejecting),
 *                       FLOATIP_BACKEND_TO (backend chosen, "" when every backend is down and
 *                       the relay rejects), FLOATIP_REASON (backend-down | backend-up | failback).
 *   relay-backend-down  a backend reached M anomalies in one unit of time. FLOATIP_RELAY,
 *                       FLOATIP_BACKEND (HOST:PORT).
 *   relay-backend-up    a backend passed `rise` checks in a row. FLOATIP_RELAY, FLOATIP_BACKEND.
 * Backends are named HOST:PORT as in the config. A relay placed on a VIP reports only from the
 * node holding the VIP, so each event is reported once per cluster.
 *
 * API (registered on the agent's local API):
 *   GET /v1/relays        -> { relays: [RelayAgentStatus, …] }
 *   GET /v1/relays/NAME   -> RelayAgentStatus, or 404 { error: { code: "UNKNOWN_RELAY", … } }
 */
import type { FastifyPluginAsync } from "fastify";
import {
  type Capability,
  CapabilityConfigError,
  type CapabilityContext,
  type CreateCapability,
} from "../agent/capability.ts";
import type { LogLevel } from "../agent/log.ts";
import type { RelayEvent } from "../core/relay/relay-machine.ts";
import type { ClusterViewSnapshot } from "../ports/cluster-view.ts";
import { endpointId, parseRelays, type RelaySpec } from "./config.ts";
import { RelayService, type RelayStatus } from "./relay-service.ts";

/** Status of one relay as the agent reports it, on this node. */
export type RelayAgentStatus = Omit<RelayStatus, "backends" | "events" | "activeSince"> & {
  /** Whether the relay runs on this node now. */
  readonly running: boolean;
  /** `vip-holder`: runs where its listen VIP is held; `every-node`: runs on each node. */
  readonly placement: "vip-holder" | "every-node";
  /** For `vip-holder`: the VIP's owner as this node sees it (null while unassigned). */
  readonly vipOwner?: string | null;
  /** Why a relay that should run is not running (last start error). */
  readonly error?: string;
  readonly activeSince: string | null;
  readonly backends: RelayStatus["backends"];
  readonly events: RelayStatus["events"];
};

const retryMs = 2000;

interface Slot {
  readonly spec: RelaySpec;
  readonly onVip: boolean;
  want: boolean;
  service: RelayService | undefined;
  error: string | undefined;
  queue: Promise<void>;
  retry: NodeJS.Timeout | undefined;
}

export const createCapability: CreateCapability = (section, context) => {
  const { relays, problems } = parseRelays(section);
  if (problems.length > 0) throw new CapabilityConfigError(context.config.file, problems);
  return new RelayCapability(relays, context);
};

class RelayCapability implements Capability {
  readonly name = "relays";
  readonly apiPlugin: FastifyPluginAsync;
  readonly #context: CapabilityContext;
  readonly #slots: Slot[];
  #view: ClusterViewSnapshot | undefined;
  #unsubscribe: (() => void) | undefined;
  #stopped = false;

  constructor(relays: readonly RelaySpec[], context: CapabilityContext) {
    this.#context = context;
    const vips = new Set(context.config.vips.map((v) => v.address));
    this.#slots = relays.map((spec) => ({
      spec,
      onVip: vips.has(spec.listen.host),
      want: false,
      service: undefined,
      error: undefined,
      queue: Promise.resolve(),
      retry: undefined,
    }));
    this.apiPlugin = this.#plugin();
  }

  async start(): Promise<void> {
    this.#unsubscribe = this.#context.view.subscribe((view) => this.#onView(view));
    this.#onView(this.#context.view.current());
    // Relays placed on every node are up before the agent reports itself started.
    await Promise.all(this.#slots.map((slot) => slot.queue));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    for (const slot of this.#slots) {
      slot.want = false;
      clearTimeout(slot.retry);
      this.#reconcile(slot);
    }
    await Promise.all(this.#slots.map((slot) => slot.queue));
  }

  status(): { relays: RelayAgentStatus[] } {
    return { relays: this.#slots.map((slot) => this.#statusOf(slot)) };
  }

  #onView(view: ClusterViewSnapshot): void {
    if (this.#stopped) return;
    this.#view = view;
    for (const slot of this.#slots) {
      const want = slot.onVip ? view.held.has(slot.spec.listen.host) : true;
      if (want === slot.want) continue;
      slot.want = want;
      this.#reconcile(slot);
    }
  }

  /** Queues one step towards `slot.want`; the queue keeps starts and stops in order. */
  #reconcile(slot: Slot): void {
    slot.queue = slot.queue.then(async () => {
      if (slot.want && !slot.service && !this.#stopped) await this.#startSlot(slot);
      else if (!slot.want && slot.service) await this.#stopSlot(slot);
    });
  }

  async #startSlot(slot: Slot): Promise<void> {
    const spec = slot.spec;
    const service = new RelayService({
      spec,
      log: (record) => this.#relayLog(record),
      onEvent: (event) => this.#notifyEvent(spec.name, event),
    });
    try {
      await service.start();
      slot.service = service;
      slot.error = undefined;
    } catch (error) {
      await service.stop().catch(() => undefined);
      slot.error = error instanceof Error ? error.message : String(error);
      this.#context.log.log("error", "relay could not start; retrying", {
        relay: spec.name,
        listen: endpointId(spec.listen),
        error: slot.error,
        retryMs,
      });
      clearTimeout(slot.retry);
      slot.retry = setTimeout(() => {
        slot.retry = undefined;
        if (slot.want && !this.#stopped) this.#reconcile(slot);
      }, retryMs);
    }
  }

  async #stopSlot(slot: Slot): Promise<void> {
    const service = slot.service!;
    slot.service = undefined;
    clearTimeout(slot.retry);
    try {
      await service.stop();
    } catch (error) {
      this.#context.log.log("error", "relay failed to stop", {
        relay: slot.spec.name,
        error: error instanceof Error ? error.message : String(error),
      });
    }
    this.#context.log.log("info", "relay-stopped", {
      relay: slot.spec.name,
      reason: this.#stopped ? "agent stopping" : "listen VIP no longer held here",
    });
  }

  /** Hands one relay event to the cluster's notify hook (documented in the file header). */
  #notifyEvent(relay: string, event: RelayEvent): void {
    const notify = this.#context.notify;
    if (!notify) return;
    switch (event.type) {
      case "switched":
        notify("relay-switched", relay, {
          FLOATIP_RELAY: relay,
          FLOATIP_BACKEND_FROM: event.from ?? "",
          FLOATIP_BACKEND_TO: event.to ?? "",
          FLOATIP_REASON: event.reason,
        });
        return;
      case "backend-down":
      case "backend-up":
        notify(`relay-${event.type}`, relay, {
          FLOATIP_RELAY: relay,
          FLOATIP_BACKEND: event.backend,
        });
        return;
    }
  }

  /** Relay records become agent log lines; a lost backend or a switch is worth a warning. */
  #relayLog(record: Record<string, unknown>): void {
    const { event, ...fields } = record;
    const name = String(event ?? "relay");
    let level: LogLevel = "info";
    if (name === "backend-down" || name === "switched" || name === "connection-limit")
      level = "warn";
    if (name.endsWith("-error")) level = "error";
    this.#context.log.log(level, name, fields);
  }

  #statusOf(slot: Slot): RelayAgentStatus {
    const spec = slot.spec;
    const placement = slot.onVip ? "vip-holder" : "every-node";
    const where = slot.onVip ? { vipOwner: this.#view?.owners.get(spec.listen.host) ?? null } : {};
    const error = slot.error !== undefined && !slot.service ? { error: slot.error } : {};
    if (slot.service) return { ...slot.service.status(), running: true, placement, ...where };
    return {
      name: spec.name,
      listen: endpointId(spec.listen),
      mode: spec.mode,
      protocol: spec.protocol,
      active: null,
      activeSince: null,
      backends: [],
      events: [],
      running: false,
      placement,
      ...where,
      ...error,
    };
  }

  #plugin(): FastifyPluginAsync {
    return async (app) => {
      app.get("/v1/relays", async () => this.status());
      app.get<{ Params: { name: string } }>("/v1/relays/:name", async (request, reply) => {
        const slot = this.#slots.find((s) => s.spec.name === request.params.name);
        if (!slot) {
          return reply
            .code(404)
            .type("application/json; charset=utf-8")
            .send({
              error: {
                code: "UNKNOWN_RELAY",
                message: `no relay named ${request.params.name} (GET /v1/relays lists them)`,
              },
            });
        }
        return this.#statusOf(slot);
      });
    };
  }
}
