/**
 * One agent per node and machine: an exclusive `flock` on `<state_dir>/<node>/agent.lock`,
 * taken before anything touches an address. A second `floatip agent` for the same node (an
 * operator's mistake, a second unit, a test left running) used to remove the live agent's
 * VIPs as "left by an earlier run" and then fail on the port; now it stops with a clear error
 * and changes nothing.
 *
 * The supervisor takes the lock (`floatip agent` does, before it becomes the C supervisor)
 * and keeps the descriptor across execve; every agent it starts inherits the descriptor and
 * so holds the same lock (FLOATIP_STATE_LOCK_FD names it). An agent run with
 * `--no-supervisor` takes the lock itself. The kernel releases it when the last holder
 * exits, however it died, so there is no stale lock to clean up.
 */
import { readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { addonLoadMessage, loadNativeAddon } from "./native-addon.ts";

/** The environment variable through which a supervisor hands its lock to its agents. */
export const stateLockFdEnv = "FLOATIP_STATE_LOCK_FD";

interface LockAddon {
  lockExclusive(path: string, inherit: boolean): number;
}

export class StateLockError extends Error {
  readonly code: "STATE_LOCKED" | "STATE_LOCK_FAILED";
  constructor(code: "STATE_LOCKED" | "STATE_LOCK_FAILED", message: string) {
    super(message);
    this.name = "StateLockError";
    this.code = code;
  }
}

export function stateLockPath(nodeStateDir: string): string {
  return join(nodeStateDir, "agent.lock");
}

/**
 * Takes the node's lock; returns the descriptor. Throws STATE_LOCKED (naming the PID that
 * holds it) when another instance runs, STATE_LOCK_FAILED when the lock cannot be taken at
 * all (the addon is missing, the directory is not writable).
 */
export function lockNodeState(nodeId: string, nodeStateDir: string, inherit: boolean): number {
  const path = stateLockPath(nodeStateDir);
  let addon: LockAddon;
  try {
    addon = loadNativeAddon<LockAddon>(["lockExclusive"]);
  } catch (cause) {
    throw new StateLockError("STATE_LOCK_FAILED", addonLoadMessage("state lock", cause));
  }
  try {
    return addon.lockExclusive(path, inherit);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "EWOULDBLOCK" || code === "EAGAIN") {
      let holder = "";
      try {
        holder = readFileSync(path, "utf8").trim();
      } catch {
        // unreadable: the message goes without the PID
      }
      throw new StateLockError(
        "STATE_LOCKED",
        `an agent for node ${nodeId} already runs on this machine${holder ? ` (pid ${holder})` : ""}: ` +
          `it holds ${path}. Stop it first (systemctl stop floatip@${nodeId}, or kill that pid); ` +
          "this instance changed nothing",
      );
    }
    throw new StateLockError(
      "STATE_LOCK_FAILED",
      `cannot lock ${path}: ${(error as Error).message}`,
    );
  }
}

/**
 * Whether this process inherited the node's lock from its supervisor: FLOATIP_STATE_LOCK_FD
 * names an open descriptor of this very lock file.
 */
export function inheritedStateLock(nodeStateDir: string): boolean {
  const fd = Number(process.env[stateLockFdEnv]);
  if (!Number.isInteger(fd) || fd <= 2) return false;
  try {
    return readlinkSync(`/proc/self/fd/${fd}`) === stateLockPath(nodeStateDir);
  } catch {
    return false;
  }
}
