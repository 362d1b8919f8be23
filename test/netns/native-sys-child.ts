/**
 * Child program of native-sys.test.ts: runs inside a test namespace (`ip netns exec NS node
 * native-sys-child.ts OP ARGS_JSON`), performs one operation through the native wrappers and
 * prints its result as JSON on stdout. A wrapper error is printed as `{ error: { name, code,
 * errno, message } }` (exit 0) so that the test can check the error codes; realtime changes
 * stay inside this short-lived process.
 */
import { readdirSync, readFileSync, realpathSync } from "node:fs";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { nativeAddonPath } from "../../src/adapters/linux/native-addon.ts";
import {
  listAddressesNetlink,
  renewAddressLifetime,
  renewAddressLifetimes,
} from "../../src/adapters/linux/netlink.ts";
import {
  currentScheduling,
  lockMappedFiles,
  lockMemory,
  setRealtime,
  setRealtimeCpuLimit,
} from "../../src/adapters/linux/realtime.ts";

export interface ChildError {
  readonly name: string;
  readonly code?: string;
  readonly errno?: string;
  readonly message: string;
}

/** Policy and realtime priority of every thread of this process, from /proc. */
function threadPolicies(): Array<{ tid: number; policy: number; priority: number }> {
  return readdirSync("/proc/self/task").map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    // Fields after "(comm)" start at field 3; rt_priority is field 40, policy field 41.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { tid: Number(tid), priority: Number(fields[37]), policy: Number(fields[38]) };
  });
}

function statusKb(field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
    readFileSync("/proc/self/status", "utf8"),
  );
  return match ? Number(match[1]) : Number.NaN;
}

function limitLine(name: string): string {
  const line = readFileSync("/proc/self/limits", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith(name));
  return (line ?? "").replace(/\s+/g, " ").trim();
}

/** What /proc/self/smaps says is locked ("lo" in VmFlags), split by what backs it. */
export interface LockedMappings {
  /** Locked mappings that are not files (no "/" path, or a deleted file): must stay empty. */
  readonly anonymous: string[];
  /** Distinct paths of the locked file mappings. */
  readonly files: string[];
  /** Readable file mappings left unlocked, e.g. "r--p /usr/lib/...". */
  readonly unlockedFiles: string[];
  /** Every executable mapping of the node binary and of the addon is locked. */
  readonly nodeCodeLocked: boolean;
  readonly addonCodeLocked: boolean;
}

function lockedMappings(): LockedMappings {
  const node = realpathSync(process.execPath);
  const addon = realpathSync(nativeAddonPath);
  const anonymous: string[] = [];
  const files = new Set<string>();
  const unlockedFiles: string[] = [];
  const code = new Map<string, boolean>([
    [node, true],
    [addon, true],
  ]);
  let header = "";
  for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) {
      header = line;
      continue;
    }
    if (!line.startsWith("VmFlags:")) continue;
    const fields = header.split(/\s+/);
    const perms = fields[1] ?? "";
    const path = fields.slice(5).join(" ");
    const file = path.startsWith("/") && !path.endsWith("(deleted)");
    const locked = line.split(/\s+/).includes("lo");
    if (locked && !file) anonymous.push(header);
    if (locked && file) files.add(path);
    if (!locked && file && perms.startsWith("r") && !path.startsWith("/dev/")) {
      unlockedFiles.push(`${perms} ${path}`);
    }
    if (perms.includes("x") && code.has(path)) code.set(path, code.get(path)! && locked);
  }
  return {
    anonymous,
    files: [...files],
    unlockedFiles,
    nodeCodeLocked: code.get(node)!,
    addonCodeLocked: code.get(addon)!,
  };
}

/**
 * Allocates and drops garbage for `ms`: arrays in the young generation, large arrays (large
 * object space, freed page by page), and fresh functions made hot and dropped so that the GC
 * frees JIT code; a full GC each round when --expose-gc is on. This is what makes V8 madvise
 * and unmap memory, the calls that abort a process under mlockall.
 */
function churn(ms: number): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  const end = Date.now() + ms;
  let rounds = 0;
  while (Date.now() < end) {
    let arrays: unknown[] = [];
    for (let i = 0; i < 200; i++) arrays.push(new Array(1000).fill(i));
    for (let i = 0; i < 4; i++) arrays.push(new Array(1 << 17).fill(rounds));
    const hot = new Function(
      "n",
      `let s = ${rounds}; for (let i = 0; i < n; i++) s += i % ${(rounds % 7) + 2}; return s;`,
    ) as (n: number) => number;
    for (let i = 0; i < 500; i++) hot(200);
    arrays = [];
    gc?.();
    rounds++;
  }
  return rounds;
}

/** Runs `action`; a thrown error becomes `{ error }`. */
function attempt(action: () => unknown): unknown {
  try {
    return { ok: action() ?? null };
  } catch (error) {
    const e = error as Error & { code?: string; errno?: string };
    return {
      error: {
        name: e.name,
        message: e.message,
        ...(e.code ? { code: e.code } : {}),
        ...(e.errno ? { errno: e.errno } : {}),
      } satisfies ChildError,
    };
  }
}

/** Starts a worker thread (created after any scheduling change) and returns what it reports. */
function schedulingInNewThread(): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: "scheduling" });
    worker.once("message", resolve);
    worker.once("error", reject);
  });
}

const operations: Record<string, (...args: never[]) => unknown> = {
  list: (ifname: string) => attempt(() => listAddressesNetlink(ifname)),
  renew: (ifname: string, ip: string, prefixLength: number, validLftSec: number) =>
    attempt(() => renewAddressLifetime(ifname, ip, prefixLength, validLftSec)),
  renewMany: (ifname: string, ips: string[], prefixLengths: number[], validLftSec: number) =>
    attempt(() =>
      renewAddressLifetimes(
        ifname,
        ips.map((ip, i) => ({ ip, prefixLength: prefixLengths[i]! })),
        validLftSec,
      ).map((e) => e?.code ?? null),
    ),
  invalid: () => ({
    prefix: attempt(() => renewAddressLifetime("eth0", "198.18.0.1", 33, 30)),
    lifetime: attempt(() => renewAddressLifetime("eth0", "198.18.0.1", 24, 0)),
    ip: attempt(() => renewAddressLifetime("eth0", "198.18.300.1", 24, 30)),
    ifname: attempt(() => listAddressesNetlink("much-too-long-name0")),
    policy: attempt(() => setRealtime("idle" as "rr", 10)),
    priority: attempt(() => setRealtime("rr", 100)),
    limits: attempt(() => setRealtimeCpuLimit(2000, 1000)),
  }),
  async realtime(policy: "rr" | "fifo", priority: number) {
    const before = currentScheduling();
    const set = attempt(() => setRealtime(policy, priority));
    const after = currentScheduling();
    const worker = await schedulingInNewThread();
    const realtimeThreads = threadPolicies().filter((thread) => thread.policy !== 0);
    return { before, set, after, worker, realtimeThreads };
  },
  cpuLimit(softUs: number, hardUs: number) {
    const set = attempt(() => setRealtimeCpuLimit(softUs, hardUs));
    const limits = limitLine("Max realtime timeout");
    // Raising the hard limit again needs CAP_SYS_RESOURCE (bit 24 of the effective set).
    const capEff = BigInt(
      `0x${/^CapEff:\s+([0-9a-f]+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "0"}`,
    );
    const raise = attempt(() => setRealtimeCpuLimit(softUs, Number.POSITIVE_INFINITY));
    return { set, limits, raise, canRaise: (capEff & (1n << 24n)) !== 0n };
  },
  /** The known V8 incompatibility: a Worker started after mlockall aborts the process. */
  async lockThenWorker() {
    lockMemory();
    return { worker: await schedulingInNewThread() };
  },
  /** Realtime with a small RLIMIT_RTTIME, then a busy loop: the kernel must stop it. */
  runaway(softUs: number, hardUs: number, loopMs: number) {
    setRealtimeCpuLimit(softUs, hardUs);
    setRealtime("rr", 5);
    const end = Date.now() + loopMs;
    while (Date.now() < end) {
      // Busy: no blocking system call, so RLIMIT_RTTIME keeps counting.
    }
    return "survived";
  },
  /**
   * lockMappedFiles, then a Worker and heavy GC on both threads for ~1 s, then a natural exit
   * (see `naturalExit`): everything that aborts Node under mlockall must keep working.
   */
  async lockFiles(churnMs: number) {
    const rssBefore = { rssKb: statusKb("VmRSS"), anonKb: statusKb("RssAnon") };
    const locked = attempt(() => lockMappedFiles());
    const rssAfter = { rssKb: statusKb("VmRSS"), anonKb: statusKb("RssAnon") };
    const lockedKb = statusKb("VmLck");
    const mappings = lockedMappings();
    const worker = new Worker(new URL(import.meta.url), { workerData: { churnMs } });
    const workerRounds = new Promise((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    const mainRounds = churn(churnMs);
    return {
      locked,
      rssBefore,
      rssAfter,
      lockedKb,
      mappings,
      mainRounds,
      workerRounds: await workerRounds,
      lockedAfterChurnKb: statusKb("VmLck"),
      gcExposed: typeof (globalThis as { gc?: unknown }).gc === "function",
    };
  },
  /** Ends with process.exit (see the main block): V8's own teardown aborts on locked memory. */
  lock() {
    const rssBeforeKb = statusKb("VmRSS");
    const locked = attempt(() => lockMemory());
    const rssAfterKb = statusKb("VmRSS");
    const lockedKb = statusKb("VmLck");
    // Memory allocated after the call is locked too (MCL_FUTURE) as it is touched.
    const buffer = Buffer.alloc(8 * 1024 * 1024, 1);
    return {
      locked,
      rssBeforeKb,
      rssAfterKb,
      lockedKb,
      allocatedKb: buffer.length / 1024,
      rssAfterAllocKb: statusKb("VmRSS"),
    };
  },
};

/** Operations that end with a natural exit (the event loop drains, V8 tears down). */
const naturalExit = new Set(["lockFiles"]);

if (!isMainThread) {
  const churnMs = (workerData as { churnMs?: number } | undefined)?.churnMs;
  parentPort?.postMessage(churnMs === undefined ? currentScheduling() : churn(churnMs));
} else {
  const [op = "", argsJson = "[]"] = process.argv.slice(2);
  const operation = operations[op];
  if (!operation) {
    process.stderr.write(`unknown operation ${op}\n`);
    process.exit(2);
  }
  const result = await (operation as (...args: unknown[]) => unknown)(...JSON.parse(argsJson));
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // Exit at once: after lockMemory, V8's teardown on a natural exit would abort (it madvises
  // locked pages). stdout is a pipe, written synchronously on Linux, so nothing is lost.
  if (!naturalExit.has(op)) process.exit(0);
}
