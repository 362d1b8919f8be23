/**
 * The C supervisor (native/floatip_supervisor.c, built next to the addon as
 * native/build/Release/floatip-supervisor): `floatip agent` checks the configuration, writes
 * the list of the node's VIPs, and then becomes the supervisor with execve, so that the layer
 * that removes a dead agent's VIPs costs about 1 MB instead of a second Node.js runtime.
 *
 * The list ("INTERFACE ADDRESS/PREFIX" per line) is what the supervisor removes, with
 * rtnetlink, when the agent dies. The agent rewrites it at every start (the supervisor hands
 * its path down in FLOATIP_SUPERVISOR_VIPS), so it follows configuration changes that a
 * restart picked up.
 */
import { existsSync, renameSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { ClusterConfig } from "../../config/types.ts";
import { addonLoadMessage, loadNativeAddon } from "./native-addon.ts";

export const supervisorBinaryPath = fileURLToPath(
  new URL("../../../native/build/Release/floatip-supervisor", import.meta.url),
);

/** The environment variable naming the list the supervisor reads. */
export const supervisorVipsEnv = "FLOATIP_SUPERVISOR_VIPS";

/** The VIPs of `nodeId` as the supervisor reads them. */
export function vipManifest(config: ClusterConfig, nodeId: string): string {
  const self = config.nodes.find((n) => n.id === nodeId);
  if (!self) throw new Error(`node ${nodeId} is not in the configuration`);
  const lines = config.vips.map(
    (vip) => `${vip.interface ?? self.interface} ${vip.address}/${vip.prefixLength}`,
  );
  const notify = config.notify;
  if (notify && !/[\r\n]/.test(notify.command)) {
    // The agent cannot report its own death: the supervisor runs the hook for it.
    lines.push(
      `notify ${notify.timeoutMs} ${notify.style} ${self.weight} ${config.cluster} ${notify.command}`,
    );
  }
  return `# VIPs the supervisor of ${nodeId} removes when its agent dies (written by the agent)\n${lines.join("\n")}\n`;
}

/** Writes the list atomically (a reader sees the old or the new list, never half of one). */
export function writeVipManifest(file: string, config: ClusterConfig, nodeId: string): void {
  const temporary = `${file}.tmp-${process.pid}`;
  writeFileSync(temporary, vipManifest(config, nodeId), { mode: 0o644 });
  renameSync(temporary, file);
}

interface ExecAddon {
  execProgram(path: string, argv: readonly string[]): never;
}

export interface SupervisorExec {
  readonly nodeId: string;
  readonly vipsFile: string;
  readonly human: boolean;
  /** The agent's command line: argv[0] is the executable's path. */
  readonly agent: readonly string[];
}

/**
 * Becomes the C supervisor. Returns only with a reason when it cannot (binary not built,
 * addon without execProgram, execve failed): the caller then supervises in Node.js.
 */
export function execSupervisor(options: SupervisorExec): string {
  if (!existsSync(supervisorBinaryPath)) {
    return `${supervisorBinaryPath} is not built (run scripts/setup.sh)`;
  }
  let addon: ExecAddon;
  try {
    addon = loadNativeAddon<ExecAddon>(["execProgram"]);
  } catch (cause) {
    return addonLoadMessage("exec", cause);
  }
  try {
    addon.execProgram(supervisorBinaryPath, [
      supervisorBinaryPath,
      "--node",
      options.nodeId,
      "--vips",
      options.vipsFile,
      "--log",
      options.human ? "human" : "json",
      "--",
      ...options.agent,
    ]);
  } catch (error) {
    return (error as Error).message;
  }
  return "execve returned";
}
