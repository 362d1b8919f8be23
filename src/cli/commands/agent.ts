/**
 * `floatip agent --config FILE --node ID`: runs one node.
 *
 * By default the process checks the configuration and becomes (execve) a small C supervisor
 * (native/floatip_supervisor.c, about 1 MB) that starts the agent as a child and, the moment
 * that child dies for any reason (SIGKILL included), removes the node's VIPs from its
 * interfaces and starts a new agent after a back-off. When the supervisor binary is not built
 * (or FLOATIP_SUPERVISOR=node), this Node.js process supervises the same way. This is the second of three layers
 * against a dead agent's VIPs lingering (the kernel address lifetime is the first, the new
 * owner's occupancy probe the third). `--no-supervisor` runs the agent in this process;
 * `--cleanup` only removes the VIPs (for systemd's ExecStopPost=).
 *
 * Signals: SIGTERM/SIGINT hand the VIPs over and exit 0; SIGHUP reloads the configuration.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { run as runCommand } from "../../adapters/exec.ts";
import { removeAddress } from "../../adapters/linux/address.ts";
import { lockNodeState, StateLockError, stateLockFdEnv } from "../../adapters/linux/state-lock.ts";
import { execSupervisor, writeVipManifest } from "../../adapters/linux/supervisor.ts";
import { createLogger, humanLogFormat, type Logger } from "../../agent/log.ts";
import { controlPlaneExecArgv } from "../../agent/process-flags.ts";
import { loadConfig } from "../../config/load.ts";

export const usage = "usage: floatip agent --config FILE --node ID [--no-supervisor] [--cleanup]";

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
  // Loaded here, not at the top: the supervisor (the same command without --no-supervisor)
  // needs none of it and stays small.
  const [{ applyRealtime, capRealtimeCpu }, { Agent }, { ServiceHost }] = await Promise.all([
    import("../../agent/realtime.ts"),
    import("../../agent/runtime.ts"),
    import("../../agent/services.ts"),
  ]);
  let agent: Awaited<ReturnType<typeof Agent.create>>;
  try {
    agent = await Agent.create({ configPath, nodeId, log });
  } catch (error) {
    if (!(error instanceof StateLockError)) throw error;
    log.log("error", error.message, { code: error.code });
    return 1;
  }
  const realtimeError = applyRealtime(agent.config.realtime, log);
  if (realtimeError !== undefined) {
    log.log("error", `${realtimeError} (realtime.required is true)`);
    return 1;
  }
  await agent.start();
  // Only now: start-up (imports, the first address and probe rounds) is not what the cap on
  // realtime CPU time is for.
  capRealtimeCpu(agent.config.realtime, log);
  let fatal: string | undefined;
  let stop: (signal: string) => void = () => {};
  const services = new ServiceHost({
    agent,
    configPath,
    log,
    ...agent.serviceContext,
    onFatal: (message) => {
      fatal = message;
      log.log("error", "a capability cannot start; stopping the agent", { error: message });
      stop("fatal");
    },
  });
  const done = new Promise<number>((resolve) => {
    let stopping = false;
    stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      if (signal !== "fatal") log.log("info", `${signal} received`);
      void (async () => {
        await services.stop();
        await agent.shutdown();
        resolve(fatal === undefined ? 0 : 1);
      })();
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", () => {
      void agent.reload().then((result) => {
        if (result.ok) services.reloadToken();
      });
    });
  });
  await services.start();
  return done;
}

/** Removes every configured VIP of this node from its interfaces. */
async function cleanup(
  configPath: string,
  nodeId: string,
  log: Logger,
  removed: string[] = [],
): Promise<number> {
  const config = loadConfig(configPath, { nodeId });
  const self = config.nodes.find((n) => n.id === nodeId)!;
  let failures = 0;
  await Promise.all(
    config.vips.map(async (vip) => {
      try {
        if (await removeAddress(vip.interface ?? self.interface, vip.address, vip.prefixLength))
          removed.push(vip.address);
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

/**
 * The agent cannot report its own death: the supervisor runs the notify hook for it, after
 * removing its VIPs, as the C supervisor does (`COMMAND agent-died REASON`, or per removed VIP
 * `COMMAND INSTANCE ADDRESS FAULT PRIORITY` in the keepalived style).
 */
async function deathHook(
  configPath: string,
  nodeId: string,
  log: Logger,
  reason: string,
  removed: readonly string[],
): Promise<void> {
  const config = loadConfig(configPath, { nodeId });
  const notify = config.notify;
  if (!notify) return;
  const env = {
    ...process.env,
    FLOATIP_EVENT: "agent-died",
    FLOATIP_NODE: nodeId,
    FLOATIP_CLUSTER: config.cluster,
    FLOATIP_REASON: reason,
    FLOATIP_VIPS: removed.join(" "),
  };
  const weight = String(config.nodes.find((n) => n.id === nodeId)!.weight);
  const calls =
    notify.style === "keepalived"
      ? removed.map((vip) => ["INSTANCE", vip, "FAULT", weight])
      : [["agent-died", reason]];
  for (const args of calls) {
    try {
      await runCommand(notify.command, args, { timeoutMs: notify.timeoutMs, env });
    } catch (error) {
      log.log("warn", "the notify hook for the agent's death failed", {
        command: notify.command,
        error: (error as Error).message,
      });
    }
  }
}

async function supervise(configPath: string, nodeId: string, log: Logger): Promise<number> {
  // Fail fast, with every problem listed, before anything is started.
  const config = loadConfig(configPath, { nodeId });
  const agentArgv = [
    process.execPath,
    ...controlPlaneExecArgv(process.execArgv),
    process.argv[1]!,
    "agent",
    "--config",
    configPath,
    "--node",
    nodeId,
    "--no-supervisor",
  ];
  const stateDir = join(config.stateDir, nodeId);
  mkdirSync(stateDir, { recursive: true });
  // One agent per node and machine: a second instance stops here, before the supervisor
  // could remove the live agent's VIPs. The supervisor keeps the lock (the descriptor
  // survives execve) and its agents inherit it.
  try {
    process.env[stateLockFdEnv] = String(lockNodeState(nodeId, stateDir, true));
  } catch (error) {
    if (!(error instanceof StateLockError)) throw error;
    log.log("error", error.message, { code: error.code });
    return 1;
  }
  if (process.env.FLOATIP_SUPERVISOR !== "node") {
    const vipsFile = join(stateDir, "supervisor-vips");
    writeVipManifest(vipsFile, config, nodeId);
    // Returns only when the C supervisor cannot run; then this process supervises.
    const reason = execSupervisor({ nodeId, vipsFile, human: humanLogFormat(), agent: agentArgv });
    log.log("warn", "cannot run the C supervisor; supervising in Node.js (about 50 MB more)", {
      reason,
    });
  }
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
    child = spawn(agentArgv[0]!, agentArgv.slice(1), { stdio: "inherit" });
    log.log("info", "supervisor started the agent", { pid: child.pid });
    const { code, signal } = await new Promise<{
      code: number | null;
      signal: NodeJS.Signals | null;
    }>((resolve) => {
      child!.on("exit", (exitCode, exitSignal) =>
        resolve({ code: exitSignal ? null : exitCode, signal: exitSignal }),
      );
    });
    child = undefined;
    if (stopping && code === 0) return 0;
    log.log("error", "the agent died; removing its VIPs at once", {
      exitCode: code,
      ...(signal ? { signal } : {}),
      ...(signal === "SIGXCPU"
        ? { why: "its realtime thread ran past RLIMIT_RTTIME without blocking (a busy loop)" }
        : {}),
    });
    const removed: string[] = [];
    await cleanup(configPath, nodeId, log, removed);
    await deathHook(configPath, nodeId, log, signal ? `signal ${signal}` : `exit ${code}`, removed);
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
