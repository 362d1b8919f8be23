/**
 * Realtime scheduling and memory locking for the agent's control-plane thread, the way
 * keepalived and Corosync protect their heartbeats from a loaded machine: a realtime policy so
 * that busy normal processes cannot delay the JS thread, locked memory so that it never waits
 * for a page-in, and an RLIMIT_RTTIME cap so that a runaway loop at realtime priority gets
 * SIGXCPU (soft limit) and SIGKILL (hard limit) instead of freezing a core.
 *
 * Everything goes through the native addon (native/floatip_sys.c); the calls are synchronous
 * and act on the CALLING THREAD: `setRealtime` on the JS main thread makes that one thread
 * realtime. The policy is set with SCHED_RESET_ON_FORK, so threads created afterwards (worker
 * threads, a libuv pool started later, child processes) begin as SCHED_OTHER. Threads that
 * already exist (V8's platform threads, a libuv pool started earlier) keep their policy.
 *
 * Every failure is a `RealtimeError` whose `code` the caller can switch on and whose message
 * says what to change; `errno` carries the kernel's errno name when there is one.
 *
 * Memory locking: use `lockMappedFiles`, not `lockMemory`. V8 releases memory with
 * madvise(MADV_DONTNEED) and aborts the process (`Check failed: 0 == ret`, SIGTRAP) when that
 * fails, and the kernel refuses it (EINVAL) on locked pages. Measured with Node 24.21 on Linux
 * 6.18, with and without MCL_ONFAULT: after `lockMemory()` (mlockall) a new Worker thread
 * aborts at once (MCL_FUTURE), code-space pages freed by the GC abort within seconds under
 * code churn, and a natural exit aborts in V8's teardown (MCL_CURRENT); `process.exit()` is
 * fine. `lockMappedFiles` locks only the file-backed mappings (the node binary, shared
 * libraries, the addon): what a page-in under memory pressure would read back from disk. V8's
 * heap is anonymous memory and stays unlocked, so its madvise calls keep working; the heap can
 * still be swapped out if the machine has swap. See test/netns/native-sys.test.ts.
 */
import { addonLoadMessage, loadNativeAddon } from "./native-addon.ts";

export type RealtimeErrorCode =
  /** The addon is not built (or built from older sources): run scripts/setup.sh. */
  | "REALTIME_ADDON_MISSING"
  /** Not allowed: needs root or CAP_SYS_NICE (scheduling), CAP_IPC_LOCK (memory locking) or
   * CAP_SYS_RESOURCE (raising a hard limit). */
  | "REALTIME_PERMISSION"
  /** Bad argument (policy, priority, limits); a programming or configuration error. */
  | "REALTIME_INVALID"
  /** mlock/mlockall hit RLIMIT_MEMLOCK or the memory is short. */
  | "REALTIME_NO_MEMORY"
  /** Any other failure; the message carries the errno. */
  | "REALTIME_FAILED";

export class RealtimeError extends Error {
  readonly code: RealtimeErrorCode;
  /** errno name from the kernel, e.g. "EPERM"; absent for argument checks done here. */
  readonly errno: string | undefined;
  constructor(
    code: RealtimeErrorCode,
    message: string,
    options?: { cause?: unknown; errno?: string },
  ) {
    super(message, options);
    this.name = "RealtimeError";
    this.code = code;
    this.errno = options?.errno;
  }
}

/** Policies `setRealtime` accepts. */
export type RealtimePolicy = "rr" | "fifo";

/** Linux scheduling policies as `currentScheduling` names them. */
export type SchedulingPolicy =
  | "other"
  | "fifo"
  | "rr"
  | "batch"
  | "idle"
  | "deadline"
  | "ext"
  | "unknown";

export interface Scheduling {
  readonly policy: SchedulingPolicy;
  /** Realtime priority 1..99 for "rr"/"fifo", 0 otherwise. */
  readonly priority: number;
  /** SCHED_RESET_ON_FORK is set: children and new threads start as SCHED_OTHER. */
  readonly resetOnFork: boolean;
  /** Kernel thread id of the calling thread. */
  readonly tid: number;
}

export interface LockMemoryResult {
  /** MCL_ONFAULT was accepted: pages are locked as they are touched, RSS does not grow. False
   * only on kernels before 4.4, where every mapping was faulted in and locked at once. */
  readonly onFault: boolean;
}

export interface LockMappedFilesResult {
  /** File-backed mappings locked. */
  readonly regions: number;
  /** Their total size: what /proc/self/status VmLck grows by (the whole mappings, although
   * their pages are locked only once touched). */
  readonly bytes: number;
  /** Mappings that could not be locked (RLIMIT_MEMLOCK reached, or unmapped meanwhile). */
  readonly failed: number;
}

interface RealtimeAddon {
  setRealtime(policy: RealtimePolicy, priority: number): void;
  setRealtimeCpuLimit(softUs: number, hardUs: number): void;
  lockMemory(): LockMemoryResult;
  lockMappedFiles(): LockMappedFilesResult;
  currentScheduling(): Scheduling;
}

const requiredExports = ["setRealtime", "setRealtimeCpuLimit", "lockMemory", "currentScheduling"];

/** The addon; `also` names exports newer than the rest, so that an addon built from older
 * sources fails only the calls that need them. */
function load(also: readonly string[] = []): RealtimeAddon {
  try {
    return loadNativeAddon<RealtimeAddon>([...requiredExports, ...also]);
  } catch (cause) {
    throw new RealtimeError("REALTIME_ADDON_MISSING", addonLoadMessage("realtime", cause), {
      cause,
    });
  }
}

/** What to do about an errno, per call. */
const advice: Record<string, Partial<Record<string, string>>> = {
  setRealtime: {
    EPERM:
      "run as root or grant CAP_SYS_NICE (systemd: AmbientCapabilities=CAP_SYS_NICE), or raise " +
      "RLIMIT_RTPRIO (LimitRTPRIO=); with cgroup v1 realtime group scheduling the agent's cgroup " +
      "also needs a cpu.rt_runtime_us budget",
  },
  setRealtimeCpuLimit: {
    EPERM:
      "raising the hard limit needs root with CAP_SYS_RESOURCE (systemd: LimitRTTIME= sets it " +
      "before start)",
    EINVAL: "the soft limit must not exceed the hard limit",
  },
  lockMemory: {
    EPERM: "run as root or grant CAP_IPC_LOCK (systemd: AmbientCapabilities=CAP_IPC_LOCK)",
    ENOMEM:
      "RLIMIT_MEMLOCK is too small: grant CAP_IPC_LOCK or raise it (systemd: LimitMEMLOCK=infinity)",
  },
  lockMappedFiles: {
    EPERM: "run as root or grant CAP_IPC_LOCK (systemd: AmbientCapabilities=CAP_IPC_LOCK)",
    ENOMEM:
      "RLIMIT_MEMLOCK is smaller than the node binary and its libraries (about 110 MB): grant " +
      "CAP_IPC_LOCK or raise it (systemd: LimitMEMLOCK=infinity)",
  },
};

function toRealtimeError(call: string, error: unknown): RealtimeError {
  if (error instanceof RealtimeError) return error;
  const nativeCode = (error as { code?: unknown } | null)?.code;
  const errno =
    typeof nativeCode === "string" && /^E[A-Z0-9]+$/.test(nativeCode) ? nativeCode : undefined;
  const code: RealtimeErrorCode =
    nativeCode === "ERR_INVALID_ARG" || errno === "EINVAL"
      ? "REALTIME_INVALID"
      : errno === "EPERM" || errno === "EACCES"
        ? "REALTIME_PERMISSION"
        : errno === "ENOMEM" || errno === "EAGAIN"
          ? "REALTIME_NO_MEMORY"
          : "REALTIME_FAILED";
  const base = error instanceof Error ? error.message : String(error);
  const hint = errno ? advice[call]?.[errno] : undefined;
  return new RealtimeError(code, hint ? `${base}: ${hint}` : base, {
    cause: error,
    ...(errno ? { errno } : {}),
  });
}

function guarded<T>(
  call: string,
  action: (addon: RealtimeAddon) => T,
  also: readonly string[] = [],
): T {
  const addon = load(also);
  try {
    return action(addon);
  } catch (error) {
    throw toRealtimeError(call, error);
  }
}

/**
 * Makes the calling thread realtime: `sched_setscheduler(0, SCHED_RR | SCHED_FIFO |
 * SCHED_RESET_ON_FORK, priority)`. Priority 1..99; keepalived's default is SCHED_RR at a low
 * priority, which already beats every SCHED_OTHER process. Pair it with
 * `setRealtimeCpuLimit` so that a busy loop cannot starve the core.
 */
export function setRealtime(policy: RealtimePolicy, priority: number): void {
  if (policy !== "rr" && policy !== "fifo") {
    throw new RealtimeError("REALTIME_INVALID", `policy must be "rr" or "fifo", got ${policy}`);
  }
  if (!Number.isInteger(priority) || priority < 1 || priority > 99) {
    throw new RealtimeError(
      "REALTIME_INVALID",
      `realtime priority must be a whole number 1..99, got ${priority}`,
    );
  }
  guarded("setRealtime", (addon) => addon.setRealtime(policy, priority));
}

/**
 * Caps the CPU time a realtime thread of this process may use without a blocking system call
 * (RLIMIT_RTTIME, microseconds): SIGXCPU at `softUs` (and every second after; Node's default
 * action terminates the process), SIGKILL at `hardUs`. `Infinity` means no limit. Lowering the
 * hard limit is allowed to everyone; raising it again needs CAP_SYS_RESOURCE.
 */
export function setRealtimeCpuLimit(softUs: number, hardUs: number): void {
  for (const [name, value] of [
    ["softUs", softUs],
    ["hardUs", hardUs],
  ] as const) {
    if (!(value === Number.POSITIVE_INFINITY || (Number.isSafeInteger(value) && value >= 1))) {
      throw new RealtimeError(
        "REALTIME_INVALID",
        `${name} must be a whole number of microseconds >= 1 or Infinity, got ${value}`,
      );
    }
  }
  if (softUs > hardUs) {
    throw new RealtimeError(
      "REALTIME_INVALID",
      `the soft limit (${softUs} us) must not exceed the hard limit (${hardUs} us)`,
    );
  }
  guarded("setRealtimeCpuLimit", (addon) => addon.setRealtimeCpuLimit(softUs, hardUs));
}

/**
 * NOT FOR USE IN THE AGENT (use `lockMappedFiles`): `mlockall(MCL_CURRENT | MCL_FUTURE |
 * MCL_ONFAULT)` locks V8's heap too, and V8 aborts the process (`Check failed: 0 == ret`) when
 * the kernel refuses its madvise(MADV_DONTNEED) on locked pages: at once when a Worker thread
 * starts, within seconds when the GC frees JIT code, and in V8's teardown on any exit other
 * than `process.exit()` (see the module comment). Kept for experiments and for the test that
 * watches for V8 changing this.
 *
 * With MCL_ONFAULT pages are locked when first touched, so the resident size stays what it was
 * (without it, every reserved but untouched heap page would be faulted in now: about 46 MB
 * became 685 MB); it is dropped only when the kernel does not know it (EINVAL, Linux < 4.4).
 */
export function lockMemory(): LockMemoryResult {
  return guarded("lockMemory", (addon) => addon.lockMemory());
}

/**
 * Locks every readable file-backed mapping of the process (from /proc/self/maps: the node
 * binary's code and data, the shared libraries, this addon) so that the agent never waits for
 * the disk to page its code back in under memory pressure. Anonymous memory (V8's heap, thread
 * stacks, malloc) is left alone: locking it is what makes `lockMemory` abort Node.
 *
 * Every mapping is locked with mlock2(MLOCK_ONFAULT) (plain mlock() on Linux < 4.4): pages are
 * locked as they are touched, so what the process has run (start-up, election, address and
 * ARP paths, the steady state) stays resident and nothing is read in only to be locked.
 * Measured with Node 24.21 on Linux 6.18: populating the executable mappings (43 MB of node
 * code) grew RSS by 23 MB per process for code that never runs, populating everything by
 * 73 MB; on-fault locking by about 1 MB. A path never taken before may still read its first
 * page from the page cache.
 *
 * Mappings that appear later (a library or addon loaded afterwards) are not covered: call it
 * after startup, once the code is loaded. A mapping that cannot be locked (RLIMIT_MEMLOCK
 * reached, unmapped meanwhile) is counted in `failed`; when none can be locked it throws
 * REALTIME_PERMISSION (no CAP_IPC_LOCK and RLIMIT_MEMLOCK 0) or REALTIME_NO_MEMORY. The locks
 * last until the process exits.
 */
export function lockMappedFiles(): LockMappedFilesResult {
  return guarded("lockMappedFiles", (addon) => addon.lockMappedFiles(), ["lockMappedFiles"]);
}

/** Policy and priority of the calling thread, for logs and tests. */
export function currentScheduling(): Scheduling {
  return guarded("currentScheduling", (addon) => addon.currentScheduling());
}
