/**
 * Faults for end-to-end tests on a live cluster (src/lab/cluster.ts): process pauses, a
 * per-process wall-clock jump and nftables packet loss inside a node's namespace, plus the
 * readers of the agents' logs that tell the coordinator and the term.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../adapters/exec.ts";
import { allLogs, type LiveCluster } from "./cluster.ts";
import { ensureDebianPackage } from "./debian.ts";

/** The highest term any agent logged. */
export function maxTerm(cluster: LiveCluster): number {
  let term = 0;
  for (const match of allLogs(cluster).matchAll(/coordinator-changed node=\S+ term=(\d+)/g)) {
    term = Math.max(term, Number(match[1]));
  }
  return term;
}

/** The coordinator named in the last `coordinator-changed` line any agent logged. */
export function coordinatorOf(cluster: LiveCluster): string {
  const lines = [
    ...allLogs(cluster).matchAll(/coordinator-changed node=\S+ term=\d+ coordinator=(n\d+)/g),
  ];
  const last = lines.at(-1)?.[1];
  if (!last) throw new Error(`no coordinator was elected\n${allLogs(cluster)}`);
  return last;
}

export interface Pause {
  /** How long the process was really stopped. */
  readonly stoppedMs: number;
  /** Wall-clock instants (ms since the epoch) of the stop and of the continue. */
  readonly stoppedAt: number;
  readonly resumedAt: number;
}

/**
 * SIGSTOP for `ms`, then SIGCONT (always). The stop and the continue are sent by a small
 * shell at realtime priority 30 (above the control plane's 10): on a loaded machine the test's
 * own event loop wakes late, and a pause meant to stay below the detection time would overrun
 * it. The caller's process still sends a SIGCONT of its own afterwards, so nothing stays
 * stopped if the shell fails.
 */
export async function pauseProcess(pid: number, ms: number): Promise<Pause> {
  const script =
    't0=$(date +%s%N); kill -STOP "$1" || exit 1; sleep "$2"; kill -CONT "$1"; ' +
    't1=$(date +%s%N); echo "$t0" "$t1"';
  const shell = process.getuid?.() === 0 ? ["chrt", "-r", "30", "bash"] : ["bash"];
  try {
    const result = await run(
      shell[0]!,
      [...shell.slice(1), "-c", script, "pause", String(pid), (ms / 1000).toFixed(3)],
      { timeoutMs: ms + 10_000 },
    );
    // Nanoseconds since the epoch, to fractional milliseconds (no rounding below the sleep).
    const [stoppedAt, resumedAt] = result.stdout
      .trim()
      .split(" ")
      .map((ns) => (/^\d+$/.test(ns) ? Number(BigInt(ns) / 1000n) / 1000 : Number.NaN));
    if (Number.isFinite(stoppedAt) && Number.isFinite(resumedAt)) {
      return { stoppedMs: resumedAt! - stoppedAt!, stoppedAt: stoppedAt!, resumedAt: resumedAt! };
    }
    throw new Error(`pause helper printed ${JSON.stringify(result.stdout)}`);
  } finally {
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // Already gone.
    }
  }
}

const faketimeCandidates = [
  "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
  "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
];

/**
 * A wall clock of one agent's own, to be jumped while it runs: libfaketime (Debian's
 * `faketime`, installed when missing) preloaded into the supervisor and the agent, shifting
 * CLOCK_REALTIME only (the monotonic clock, which floatip's timers use, is left alone). The
 * machine's clock, which every other process and the test itself read, does not move.
 */
export interface WallClockShift {
  /** Environment for the agent's process. */
  readonly env: Readonly<Record<string, string>>;
  /** Shifts the process's wall clock to real time plus `offset` (libfaketime: "+1h", "-1h", "+0"). */
  set(offset: string): void;
  /** How long a change takes at most to be seen (libfaketime re-reads its file every second). */
  readonly settleMs: number;
}

export async function wallClockShift(dir: string, id: string): Promise<WallClockShift> {
  await ensureDebianPackage("faketime", faketimeCandidates);
  const library = faketimeCandidates.find((p) => existsSync(p));
  if (!library) throw new Error("libfaketime is missing and could not be installed (faketime)");
  const file = join(dir, `faketime-${id}`);
  writeFileSync(file, "+0\n");
  return {
    env: {
      LD_PRELOAD: library,
      FAKETIME_TIMESTAMP_FILE: file,
      FAKETIME_DONT_FAKE_MONOTONIC: "1",
      FAKETIME_CACHE_DURATION: "1",
    },
    set(offset) {
      if (!/^[+-]\d+[smhd]?$/.test(offset)) throw new Error(`bad faketime offset ${offset}`);
      writeFileSync(file, `${offset}\n`);
    },
    settleMs: 1500,
  };
}

/**
 * Drops packets inside `id`'s namespace with an nftables table of its own (`floatip_fault`),
 * replaced on every call and removed by `clear`: `rules` are nft statements for an `input` and
 * an `output` chain, e.g. `{ output: ["ip daddr 198.18.5.11 udp dport 7946 drop"] }`.
 */
export async function dropPackets(
  cluster: LiveCluster,
  id: string,
  rules: { input?: readonly string[]; output?: readonly string[] },
): Promise<void> {
  const chain = (name: "input" | "output", lines: readonly string[] = []) =>
    `  chain ${name} {\n    type filter hook ${name} priority 0; policy accept;\n${lines.map((l) => `    ${l}\n`).join("")}  }\n`;
  const file = join(cluster.dir, `fault-${id}.nft`);
  writeFileSync(
    file,
    `table inet floatip_fault\ndelete table inet floatip_fault\ntable inet floatip_fault {\n${chain("input", rules.input)}${chain("output", rules.output)}}\n`,
  );
  await cluster.topology.exec(id, "nft", ["-f", file], 5000);
}

/** Removes what `dropPackets` added in `id`'s namespace (nothing if it added nothing). */
export async function clearDrops(cluster: LiveCluster, id: string): Promise<void> {
  await cluster.topology
    .exec(id, "nft", ["delete", "table", "inet", "floatip_fault"], 5000)
    .catch(() => undefined);
}
