/**
 * Who answers ARP for each VIP, round by round, seen from the client namespace
 * (native/floatip_arpwatch.c): the outside view of "never two hosts answering for one VIP at
 * the same instant" and of how long a VIP went unanswered. A host's kernel answers for an
 * address on its interface whether or not its agent runs, so a frozen agent's VIP counts.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Topology } from "./topology.ts";

export const arpWatchBinary = join(
  import.meta.dirname,
  "..",
  "..",
  "native",
  "build",
  "Release",
  "floatip-arpwatch",
);

export interface ArpDouble {
  readonly round: number;
  /** Wall-clock ms when the round's requests went out. */
  readonly at: number;
  readonly vip: string;
  /** Names (or MACs, for hosts not in the map) that answered in the same round. */
  readonly by: readonly string[];
}

export interface ArpGap {
  readonly vip: string;
  readonly from: number;
  readonly to: number;
  readonly ms: number;
}

export interface ArpWatchReport {
  readonly rounds: number;
  readonly doubles: readonly ArpDouble[];
  /** Runs of rounds in which nobody answered for a VIP (closed by an answered round). */
  readonly gaps: readonly ArpGap[];
  /** Per VIP: the longest unanswered run, in ms (0 when every round was answered). */
  readonly longestGapMs: ReadonlyMap<string, number>;
  /** Per VIP: who answered, in order, each change listed once (n1, n2, n1, …). */
  readonly answerers: ReadonlyMap<string, readonly string[]>;
  /** Per VIP: rounds still unanswered at the end (a VIP nobody holds when the watch ended). */
  readonly unansweredAtEnd: ReadonlyMap<string, number>;
  readonly errors: readonly string[];
}

/** Reads floatip-arpwatch's output (see its header); `names` maps MAC to host name. */
export function analyzeArpWatch(
  text: string,
  vips: readonly string[],
  names: ReadonlyMap<string, string>,
): ArpWatchReport {
  const sentAt = new Map<number, number>();
  const answers = new Map<number, Map<string, Set<string>>>();
  const errors: string[] = [];
  for (const line of text.split("\n")) {
    const parts = line.trim().split(" ");
    if (parts[0] === "S" && parts.length === 3) {
      sentAt.set(Number(parts[1]), Number(parts[2]) / 1000);
    } else if (parts[0] === "A" && parts.length === 5) {
      const round = Number(parts[1]);
      const by = answers.get(round) ?? new Map<string, Set<string>>();
      answers.set(round, by);
      const set = by.get(parts[2]!) ?? new Set<string>();
      by.set(parts[2]!, set);
      set.add(names.get(parts[3]!) ?? parts[3]!);
    } else if (parts[0] === "E") {
      errors.push(line.slice(2));
    }
  }
  const rounds = [...sentAt.keys()].sort((a, b) => a - b);
  const doubles: ArpDouble[] = [];
  const gaps: ArpGap[] = [];
  const longestGapMs = new Map<string, number>(vips.map((v) => [v, 0]));
  const answerers = new Map<string, string[]>(vips.map((v) => [v, []]));
  const unansweredAtEnd = new Map<string, number>(vips.map((v) => [v, 0]));
  for (const vip of vips) {
    let gapStart: number | undefined;
    let unanswered = 0;
    for (const round of rounds) {
      const at = sentAt.get(round)!;
      const by = [...(answers.get(round)?.get(vip) ?? [])].sort();
      if (by.length > 1) doubles.push({ round, at, vip, by });
      if (by.length === 0) {
        gapStart ??= at;
        unanswered += 1;
        continue;
      }
      if (gapStart !== undefined) {
        gaps.push({ vip, from: gapStart, to: at, ms: at - gapStart });
        longestGapMs.set(vip, Math.max(longestGapMs.get(vip)!, at - gapStart));
        gapStart = undefined;
      }
      unanswered = 0;
      const list = answerers.get(vip)!;
      for (const who of by) if (list.at(-1) !== who) list.push(who);
    }
    unansweredAtEnd.set(vip, unanswered);
  }
  return { rounds: rounds.length, doubles, gaps, longestGapMs, answerers, unansweredAtEnd, errors };
}

export interface ArpWatch {
  /** Stops the watcher (it also ends by itself after `maxSeconds`) and analyses its output. */
  stop(): Promise<ArpWatchReport>;
}

/**
 * Starts floatip-arpwatch in `host`'s namespace for `vips`, every `intervalMs`, bounded by
 * `maxSeconds` (and the matching round count). It runs at realtime priority 20 as root (above
 * the control plane's 10, so a loaded machine does not thin its rounds out).
 */
export function startArpWatch(
  topology: Topology,
  vips: readonly string[],
  options: { host?: string; intervalMs?: number; maxSeconds: number },
): ArpWatch {
  if (!existsSync(arpWatchBinary)) {
    throw new Error(`${arpWatchBinary} is missing: run bash scripts/setup.sh (it builds native/)`);
  }
  const host = topology.host(options.host ?? "client");
  const intervalMs = options.intervalMs ?? 5;
  const maxRounds = Math.ceil((options.maxSeconds * 1000) / intervalMs);
  const args = [
    "netns",
    "exec",
    host.netns,
    arpWatchBinary,
    host.iface,
    String(intervalMs),
    String(maxRounds),
    String(options.maxSeconds),
    ...vips,
  ];
  const child: ChildProcess =
    process.getuid?.() === 0
      ? spawn("chrt", ["-r", "20", "ip", ...args], { stdio: ["ignore", "pipe", "pipe"] })
      : spawn("ip", args, { stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("close", () => resolve());
  });
  const names = new Map(topology.hosts.map((h) => [h.mac, h.name]));
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await done;
      const report = analyzeArpWatch(text, vips, names);
      if (stderr.trim()) return { ...report, errors: [...report.errors, stderr.trim()] };
      return report;
    },
  };
}
