/**
 * `floatip agent --config FILE --node ID`: runs one node.
 *
 * By default the process is a small supervisor that starts the agent as a child and, the
 * moment that child dies for any reason (SIGKILL included), removes the node's VIPs from its
 * interfaces and starts a new agent after a back-off. This is the second of three layers
 * against a dead agent's VIPs lingering (the kernel address lifetime is the first, the new
 * owner's occupancy probe the third). `--no-supervisor` runs the agent in this process;
 * `--cleanup` only removes the VIPs (for systemd's ExecStopPost=).
 *
 * Signals: SIGTERM/SIGINT hand the VIPs over and exit 0; SIGHUP reloads the configuration.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { parseArgs } from "node:util";
import type { FastifyInstance } from "fastify";
import { removeAddress } from "../../adapters/linux/address.ts";
import { createLogger, type Logger } from "../../agent/log.ts";
import { Agent } from "../../agent/runtime.ts";
import { loadConfig } from "../../config/load.ts";

const usage = "usage: floatip agent --config FILE --node ID [--no-supervisor] [--cleanup]";

export async function run(args: string[]): Promise<number> {
  let values: { config?: string; node?: string; "no-supervisor"?: boolean; cleanup?: boolean };
  try {
    values = parseArgs({
      args,
      options: {
        config: { type: "string" },
        node: { type: "string" },
        "no-supervisor": { type: "boolean", default: false },
        cleanup: { type: "boolean", default: false },
      },
      strict: true,
    }).values;
  } catch (error) {
    process.stderr.write(`floatip agent: ${(error as Error).message}\n${usage}\n`);
    return 2;
  }
  if (!values.config || !values.node) {
    process.stderr.write(`floatip agent: --config and --node are required\n${usage}\n`);
    return 2;
  }
  const log = createLogger({ base: { node: values.node } });
  if (values.cleanup) return cleanup(values.config, values.node, log);
  if (values["no-supervisor"]) return runAgent(values.config, values.node, log);
  return supervise(values.config, values.node, log);
}

async function runAgent(configPath: string, nodeId: string, log: Logger): Promise<number> {
  const agent = new Agent({ configPath, nodeId, log });
  await agent.start();
  let api: FastifyInstance | undefined;
  try {
    const { createApiServer, startApi } = await import("../../api/server.ts");
    const spec = agent.config.api;
    api = createApiServer({
      handle: agent,
      ...(spec.tokenFile ? { tokenFile: spec.tokenFile } : {}),
      extraPlugins: agent.apiPlugins,
    });
    await startApi(api, { host: spec.host, port: spec.port });
    log.log("info", "API listening", { address: `${spec.host}:${spec.port}` });
  } catch (error) {
    log.log("error", "the local API could not start; the agent runs without it", {
      error: error instanceof Error ? error.message : String(error),
    });
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.log("info", `${signal} received`);
      void (async () => {
        await agent.shutdown();
        await api?.close();
        resolve(0);
      })();
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", () => {
      void agent.reload();
    });
  });
}

/** Removes every configured VIP of this node from its interfaces. */
async function cleanup(configPath: string, nodeId: string, log: Logger): Promise<number> {
  const config = loadConfig(configPath, { nodeId });
  const self = config.nodes.find((n) => n.id === nodeId)!;
  let failures = 0;
  await Promise.all(
    config.vips.map(async (vip) => {
      try {
        await removeAddress(vip.interface ?? self.interface, vip.address, vip.prefixLength);
      } catch (error) {
        failures += 1;
        log.log("error", "cannot remove a VIP", {
          vip: vip.address,
          error: (error as Error).message,
        });
      }
    }),
  );
  return failures > 0 ? 1 : 0;
}

async function supervise(configPath: string, nodeId: string, log: Logger): Promise<number> {
  loadConfig(configPath, { nodeId }); // fail fast, with every problem listed, before forking
  const restarts: number[] = [];
  let child: ChildProcess | undefined;
  let stopping = false;
  const forward = (signal: NodeJS.Signals) => {
    if (signal !== "SIGHUP") stopping = true;
    if (child?.pid) child.kill(signal);
    else if (stopping) process.exit(0);
  };
  process.on("SIGTERM", () => forward("SIGTERM"));
  process.on("SIGINT", () => forward("SIGINT"));
  process.on("SIGHUP", () => forward("SIGHUP"));
  for (;;) {
    const startedAt = Date.now();
    child = spawn(
      process.execPath,
      [
        ...process.execArgv,
        process.argv[1]!,
        "agent",
        "--config",
        configPath,
        "--node",
        nodeId,
        "--no-supervisor",
      ],
      { stdio: "inherit" },
    );
    log.log("info", "supervisor started the agent", { pid: child.pid });
    const code = await new Promise<number | null>((resolve) => {
      child!.on("exit", (exitCode, signal) => resolve(signal ? null : exitCode));
    });
    child = undefined;
    if (stopping && code === 0) return 0;
    log.log("error", "the agent died; removing its VIPs at once", { exitCode: code });
    await cleanup(configPath, nodeId, log);
    if (stopping) return 1;
    restarts.push(Date.now());
    while (restarts.length > 0 && restarts[0]! < Date.now() - 60_000) restarts.shift();
    if (restarts.length > 5) {
      log.log("error", "the agent died more than 5 times in a minute; giving up");
      return 1;
    }
    const backoffMs = Math.min(5000, 500 * restarts.length) - Math.min(500, Date.now() - startedAt);
    await new Promise((resolve) => setTimeout(resolve, Math.max(100, backoffMs)));
  }
}
