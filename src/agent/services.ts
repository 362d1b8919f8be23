/**
 * Runs the services process (services-worker.ts: the local API and the capabilities) beside
 * the control plane and answers its requests. The control plane's process has nothing else
 * to do; the services process has its own event loop, heap and address space, so a
 * capability that blocks its loop for seconds, a burst of API requests or a storm of child
 * processes delays no heartbeat.
 *
 * A services process that dies (an uncaught error, out of memory, a kill) is logged and
 * started again after a back-off (1 s, doubling to 30 s); the control plane and the VIPs are
 * not touched. A capability section it refuses at start-up is fatal for the agent
 * (`onFatal`), as it was before the split: a restart cannot fix a config. When the control
 * plane dies, the services process sees its channel close and exits, so the new control
 * plane (a new incarnation) starts a new one.
 *
 * Why a process and not a worker thread: a worker thread was tried first and measured. A
 * worker isolates the event loop and the heap, but not the address space: every `nft` or
 * `rbd` the capabilities spawn forks the whole agent, and while the kernel copies its page
 * tables under the memory-map lock the control plane's own page faults wait. With the
 * traffic capability at 100 ms (4 nodes), that was enough for 25-150 ms stalls of the
 * realtime control-plane thread and an election every few seconds; in a process of its own
 * the same load left the control plane alone. It also keeps the realtime policy and the
 * locked memory to the control plane's process.
 */

import { type ChildProcess, fork } from "node:child_process";
import { siblingModule } from "../adapters/module-path.ts";
import type { Logger } from "./log.ts";
import { maglevTopTier, onePlatformThread, singleThreadedGc } from "./process-flags.ts";
import type { Agent } from "./runtime.ts";
import {
  type ControlRequest,
  type FromServices,
  mallocArenaSetEnv,
  type ServicesWorkerData,
  type ToServices,
} from "./services-protocol.ts";

/**
 * The services process's environment: one malloc arena instead of one per thread, about
 * 2 MB less per node. Only here: this process runs at normal priority, while the realtime
 * control plane keeps an arena per thread (an arena lock held by a starved helper thread
 * would stall it). The worker takes the variable out of its environment again once glibc has
 * read it, so that the commands it runs (rbd, nft) do not inherit it; an operator's own
 * MALLOC_ARENA_MAX is kept as it is.
 */
export function servicesProcessEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return env.MALLOC_ARENA_MAX ? env : { ...env, MALLOC_ARENA_MAX: "1", [mallocArenaSetEnv]: "1" };
}

/**
 * The services process's V8 flags: the launcher's, without the control plane's
 * single-threaded collector, single platform thread and Maglev top tier
 * (src/cli/commands/agent.ts): this process runs at normal priority, where V8's helper
 * threads are no risk, and its collector uses them; its relay needs Turbofan's code.
 */
export function servicesExecArgv(execArgv: readonly string[], maxHeapMb: number): string[] {
  return [
    ...execArgv.filter(
      (a) => a !== singleThreadedGc && a !== onePlatformThread && a !== maglevTopTier,
    ),
    `--max-old-space-size=${maxHeapMb}`,
  ];
}

export interface ServiceHostOptions {
  readonly agent: Agent;
  readonly configPath: string;
  readonly log: Logger;
  readonly key: Buffer;
  readonly stateDir: string;
  readonly incarnation: number;
  /** The services process refused to start for good (an invalid capability section). */
  readonly onFatal: (message: string) => void;
  /** Heap limit of the services process, MB. */
  readonly maxHeapMb?: number;
}

export class ServiceHost {
  readonly #options: ServiceHostOptions;
  #worker: ChildProcess | undefined;
  #unsubscribe: (() => void) | undefined;
  #unsubscribePeers: (() => void) | undefined;
  #stopping = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #backoffMs = 1000;
  #startedAtMs = 0;
  #restarts = 0;
  #ready: (() => void) | undefined;

  constructor(options: ServiceHostOptions) {
    this.#options = options;
  }

  /** Starts the services process; resolves once its API and capabilities run (or it gave up). */
  start(): Promise<void> {
    const ready = new Promise<void>((resolve) => {
      this.#ready = resolve;
    });
    this.#unsubscribe = this.#options.agent.subscribe((view) => this.#send({ type: "view", view }));
    this.#unsubscribePeers = this.#options.agent.onServicesDatagram((from, payload) =>
      this.#send({ type: "peer-message", from, payload }),
    );
    this.#spawn();
    return ready;
  }

  /** Stops the capabilities and the API (bounded), then the worker. */
  async stop(graceMs = 5000): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    this.#unsubscribe?.();
    this.#unsubscribePeers?.();
    const worker = this.#worker;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    this.#send({ type: "stop" });
    const timer = setTimeout(() => worker.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** After SIGHUP: the API re-reads its token file. */
  reloadToken(): void {
    this.#send({ type: "reload-token" });
  }

  get restarts(): number {
    return this.#restarts;
  }

  #spawn(): void {
    const { agent, configPath, key, stateDir, incarnation } = this.#options;
    const workerData: ServicesWorkerData = {
      configPath,
      nodeId: agent.nodeId,
      incarnation,
      key: new Uint8Array(key),
      stateDir,
      view: agent.current(),
    };
    const worker = fork(siblingModule(import.meta.url, "services-worker"), [], {
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: servicesProcessEnv(process.env),
      execArgv: servicesExecArgv(process.execArgv, this.#options.maxHeapMb ?? 1024),
    });
    this.#worker = worker;
    this.#startedAtMs = Date.now();
    worker.on("message", (message: FromServices) => this.#onMessage(worker, message));
    worker.on("error", (error) => {
      this.#options.log.log("error", "the services process failed", {
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      });
    });
    worker.on("exit", (code, signal) => this.#onExit(worker, code ?? signal ?? "unknown"));
    this.#send({ type: "start", data: workerData });
  }

  /** PID of the services process (for tests and `status`). */
  get pid(): number | undefined {
    return this.#worker?.pid;
  }

  #onExit(worker: ChildProcess, code: number | string): void {
    if (this.#worker !== worker) return;
    this.#worker = undefined;
    if (this.#stopping) return;
    if (Date.now() - this.#startedAtMs > 60_000) this.#backoffMs = 1000;
    this.#restarts += 1;
    this.#options.log.log(
      "error",
      "the services process (API and capabilities) exited; the control plane and the VIPs are unaffected; restarting it",
      { exitCode: code, restartInMs: this.#backoffMs, restarts: this.#restarts },
    );
    this.#restartTimer = setTimeout(() => this.#spawn(), this.#backoffMs);
    this.#backoffMs = Math.min(30_000, this.#backoffMs * 2);
  }

  #onMessage(worker: ChildProcess, message: FromServices): void {
    if (this.#worker !== worker) return;
    switch (message.type) {
      case "request":
        void this.#answer(message.id, message.request);
        return;
      case "notify":
        this.#options.agent.notifyHook(message.eventType, message.argument, { ...message.env });
        return;
      case "ready":
        this.#ready?.();
        this.#ready = undefined;
        return;
      case "fatal":
        this.#stopping = true;
        this.#ready?.();
        this.#ready = undefined;
        this.#options.onFatal(message.message);
        return;
      case "stopped":
        return;
      case "peer-broadcast":
        this.#options.agent.broadcastServicesDatagram(message.payload);
        return;
      default: {
        const unknown: never = message;
        throw new Error(`unknown message ${JSON.stringify(unknown)}`);
      }
    }
  }

  async #answer(id: number, request: ControlRequest): Promise<void> {
    const agent = this.#options.agent;
    try {
      let value: unknown;
      switch (request.method) {
        case "status":
          value = agent.status();
          break;
        case "admin":
          value = agent.admin(request.command);
          break;
        case "events":
          value = agent.events(request.since);
          break;
        case "reload":
          value = await agent.reload();
          break;
        default: {
          const unknown: never = request;
          throw new Error(`unknown request ${JSON.stringify(unknown)}`);
        }
      }
      this.#send({ type: "reply", id, ok: true, value });
    } catch (error) {
      this.#send({
        type: "reply",
        id,
        ok: false,
        value: error instanceof Error ? error.message : String(error),
      });
    }
  }

  #send(message: ToServices): void {
    const worker = this.#worker;
    if (!worker?.connected) return;
    try {
      worker.send(message);
    } catch {
      // The process is going away; its exit is handled in #onExit.
    }
  }
}
