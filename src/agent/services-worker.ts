/**
 * The services process: the agent's local API and its capabilities (relay S4, storage
 * gateway S1, traffic backup S3) on an event loop of their own, so that nothing they do —
 * a SQLite query that takes a second, an fsync per journal entry, a burst of requests, a
 * garbage collection of their heap — delays a heartbeat. They see the cluster through the
 * `ClusterView` port, fed by the control plane over the channel (services-protocol.ts),
 * and reach it only through requests that the control plane answers when it gets to them.
 *
 * Started by `ServiceHost` (services.ts) as a child process of the control plane with an IPC
 * channel; restarted by it when it dies. When the channel closes (the control plane died or
 * stopped), it stops its capabilities and exits: the next control plane starts a new one.
 * Logs go straight to file descriptor 2, one write per line.
 */
import { writeSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import { dieWithParent } from "../adapters/linux/parent-death.ts";
import { createApiServer, reloadApiToken, startApi } from "../api/server.ts";
import { loadConfig } from "../config/load.ts";
import type { ClusterView, ClusterViewSnapshot } from "../ports/cluster-view.ts";
import { type Capability, type CreateCapability, capabilityModules } from "./capability.ts";
import type { AdminResult, AgentEventRecord, AgentHandle, AgentStatus } from "./handle.ts";
import { createLogger } from "./log.ts";
import {
  type ControlRequest,
  type FromServices,
  mallocArenaSetEnv,
  type ServicesWorkerData,
  type ToServices,
} from "./services-protocol.ts";
import { TickleService } from "./tickle.ts";

if (!process.send) throw new Error("services-worker.ts runs only as the agent's child process");
// glibc read MALLOC_ARENA_MAX at start; the commands this process runs keep their default.
if (process.env[mallocArenaSetEnv]) {
  delete process.env.MALLOC_ARENA_MAX;
  delete process.env[mallocArenaSetEnv];
}
// Nothing may act for a control plane that is gone: the kernel ends this process with it.
if (!dieWithParent()) process.exit(1);
const send = process.send.bind(process);
const post = (message: FromServices) => {
  if (process.connected) send(message);
};
/** Set by the control plane's first message. */
let data: ServicesWorkerData;
let log = createLogger({ write: (line) => writeSync(2, `${line}\n`) });

/** The cluster as the control plane last published it. */
class ChannelView implements ClusterView {
  #view: ClusterViewSnapshot;
  constructor(view: ClusterViewSnapshot) {
    this.#view = view;
  }
  readonly #listeners = new Set<(view: ClusterViewSnapshot) => void>();

  current(): ClusterViewSnapshot {
    return this.#view;
  }

  subscribe(listener: (view: ClusterViewSnapshot) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  publish(view: ClusterViewSnapshot): void {
    this.#view = view;
    for (const listener of this.#listeners) {
      try {
        listener(view);
      } catch (error) {
        log.log("error", "a cluster view listener failed", { error: describe(error) });
      }
    }
  }
}

const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
let nextId = 0;

function request<T>(body: ControlRequest): Promise<T> {
  const id = ++nextId;
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
    post({ type: "request", id, request: body });
  });
}

let view: ChannelView;
let capabilities: Capability[] = [];
let api: FastifyInstance | undefined;
let tickle: TickleService | undefined;

const handle: AgentHandle = {
  async status() {
    const status = await request<AgentStatus>({ method: "status" });
    return {
      ...status,
      capabilities: Object.fromEntries(
        capabilities.map((c) => [c.name, c.status?.() ?? { running: true }]),
      ),
    };
  },
  admin: (command) => request<AdminResult>({ method: "admin", command }),
  events: (since) => request<readonly AgentEventRecord[]>({ method: "events", since }),
  reload: () => request<{ ok: true } | { ok: false; message: string }>({ method: "reload" }),
};

async function start(): Promise<void> {
  log = createLogger({
    base: { node: data.nodeId },
    write: (line) => writeSync(2, `${line}\n`),
  });
  view = new ChannelView(data.view);
  const config = loadConfig(data.configPath, { nodeId: data.nodeId });
  for (const [section, modulePath] of Object.entries(capabilityModules)) {
    const raw = (config as unknown as Record<string, unknown>)[section];
    if (raw === undefined) continue;
    const module = (await import(modulePath)) as { createCapability: CreateCapability };
    let capability: Capability;
    try {
      capability = await module.createCapability(raw, {
        config,
        nodeId: data.nodeId,
        view,
        key: Buffer.from(data.key),
        stateDir: data.stateDir,
        log: log.child({ capability: section }),
        notify: (eventType, argument, env = {}) =>
          post({ type: "notify", eventType, argument, env }),
      });
    } catch (error) {
      post({ type: "fatal", message: describe(error) });
      return;
    }
    await capability.start();
    capabilities.push(capability);
    log.log("info", "capability started", { capability: capability.name });
  }
  try {
    const spec = config.api;
    api = createApiServer({
      handle,
      ...(spec.tokenFile ? { tokenFile: spec.tokenFile } : {}),
      extraPlugins: capabilities.flatMap((c) => (c.apiPlugin ? [c.apiPlugin] : [])),
    });
    await startApi(api, { host: spec.host, port: spec.port });
    log.log("info", "API listening", { address: `${spec.host}:${spec.port}` });
  } catch (error) {
    log.log("error", "the local API could not start; the agent runs without it", {
      error: describe(error),
    });
  }
  if (config.tickle.enabled) {
    tickle = new TickleService({
      nodeId: data.nodeId,
      view,
      scanIntervalMs: config.tickle.scanIntervalMs,
      log: log.child({ capability: "tickle" }),
      broadcast: (payload) => post({ type: "peer-broadcast", payload }),
    });
    await tickle.start();
    capabilities.push(tickle);
  }
  post({ type: "ready", capabilities: capabilities.map((c) => c.name) });
}

async function stop(): Promise<void> {
  const running = capabilities.reverse();
  capabilities = [];
  for (const capability of running) {
    try {
      await capability.stop();
    } catch (error) {
      log.log("error", "a capability failed to stop", {
        capability: capability.name,
        error: describe(error),
      });
    }
  }
  await api?.close();
  post({ type: "stopped" });
  process.disconnect?.();
  process.exit(0);
}

let stopping = false;
process.on("disconnect", () => {
  // The channel closed without a "stop": the control plane is gone (the kernel's SIGKILL is
  // on its way too). No graceful stop: a storage request finished now would run beside the
  // new VIP holder's re-drive of it.
  if (stopping) return;
  process.exit(1);
});
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
  // Signals to the process group are the control plane's to act on; it tells us over the channel.
  process.on(signal, () => {});
}

process.on("message", (message: ToServices) => {
  switch (message.type) {
    case "start":
      data = message.data;
      start().catch((error: unknown) => {
        log.log("error", "the services process failed to start", { error: describe(error) });
        process.exit(1);
      });
      return;
    case "view":
      view.publish(message.view);
      return;
    case "reply": {
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      if (message.ok) waiter?.resolve(message.value);
      else waiter?.reject(new Error(String(message.value)));
      return;
    }
    case "peer-message":
      tickle?.onPeerMessage(message.from, message.payload);
      return;
    case "reload-token": {
      const error = api ? reloadApiToken(api) : undefined;
      if (error)
        log.log("warn", "API token not reloaded; the previous one stays", {
          error: describe(error),
        });
      return;
    }
    case "stop":
      if (stopping) return;
      stopping = true;
      void stop();
      return;
    default: {
      const unknown: never = message;
      throw new Error(`unknown message ${JSON.stringify(unknown)}`);
    }
  }
});

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
