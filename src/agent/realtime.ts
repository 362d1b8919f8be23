/**
 * Puts the control plane's thread under a realtime policy with locked code, as the config's
 * `realtime:` section says (on by default). Called once on the agent's main thread before
 * the services process starts: the policy carries SCHED_RESET_ON_FORK, so that process and
 * every thread or process started later run at normal priority, and only the heartbeats,
 * elections, leases and address changes pre-empt the rest of the machine.
 *
 * Where the process may not (no root, no CAP_SYS_NICE / CAP_IPC_LOCK, a cgroup without a
 * realtime budget) it logs why, what it costs and how to grant it, and carries on at normal
 * priority — unless `required: true`, which makes that an error.
 */

import {
  currentScheduling,
  lockMappedFiles,
  setRealtime,
  setRealtimeCpuLimit,
} from "../adapters/linux/realtime.ts";
import type { RealtimeSpec } from "../config/types.ts";
import type { Logger } from "./log.ts";

/**
 * CPU time a realtime thread may use without blocking (RLIMIT_RTTIME): a healthy event loop
 * sleeps in epoll many times a second, so only a runaway loop reaches it and is then ended
 * (SIGXCPU, then SIGKILL) instead of holding a core; the supervisor restarts the agent. Set
 * after start-up (`capRealtimeCpu`), and generous: a takeover of 1,000 VIPs keeps the loop
 * busy for a good part of a second.
 */
const cpuLimitSoftUs = 5_000_000;
const cpuLimitHardUs = 10_000_000;

/** Caps realtime CPU time without a sleep; call once start-up is over. Logs a failure. */
export function capRealtimeCpu(spec: RealtimeSpec, log: Logger): void {
  if (spec.policy === "off") return;
  try {
    setRealtimeCpuLimit(cpuLimitSoftUs, cpuLimitHardUs);
  } catch (error) {
    log.log("warn", "cannot cap the realtime thread's CPU time (RLIMIT_RTTIME)", {
      error: describe(error),
    });
  }
}

/** Applies `spec`; returns an error message when it is required and could not be had. */
export function applyRealtime(spec: RealtimeSpec, log: Logger): string | undefined {
  if (spec.policy === "off") {
    log.log("info", "realtime scheduling is off (realtime.policy: off)");
    return undefined;
  }
  const problems: string[] = [];
  try {
    setRealtime(spec.policy, spec.priority);
  } catch (error) {
    problems.push(`scheduling: ${describe(error)}`);
  }
  // Only file-backed memory (the node binary, libraries, the addon): what a page-in would
  // read back from disk under memory pressure. Not mlockall(): V8 hands heap pages back with
  // madvise(MADV_DONTNEED), which the kernel refuses on locked pages, and V8 then aborts.
  let locked: { regions: number; bytes: number } | undefined;
  if (spec.lockMemory) {
    try {
      locked = lockMappedFiles();
    } catch (error) {
      problems.push(`memory locking: ${describe(error)}`);
    }
  }
  const scheduling = safeScheduling();
  if (problems.length === 0) {
    log.log("info", "control plane runs realtime", {
      policy: scheduling?.policy ?? spec.policy,
      priority: scheduling?.priority ?? spec.priority,
      memoryLockedMb: locked ? Math.round(locked.bytes / 1048576) : 0,
    });
    return undefined;
  }
  const message = `realtime scheduling could not be set up: ${problems.join("; ")}`;
  if (spec.required) return message;
  log.log(
    "warn",
    `${message}; the control plane runs at normal priority, so a busy machine can delay its heartbeats (set realtime.policy: off to silence this)`,
    { policy: scheduling?.policy, memoryLockedMb: locked ? Math.round(locked.bytes / 1048576) : 0 },
  );
  return undefined;
}

function safeScheduling() {
  try {
    return currentScheduling();
  } catch {
    return undefined;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
