/**
 * A timeline of VIP holders, seen from outside the cluster: one `ip -ts -o monitor address dev
 * eth0` per node namespace, at realtime priority 20 (every address change, stamped by `ip` when
 * the kernel reported it, so even a flap far shorter than any polling interval is seen), on top
 * of the holders read once at the start. From it, over the measured window:
 *   - holder changes: a node starting to hold a VIP it did not hold (a move to another node,
 *     or the same node taking it back after a release);
 *   - releases: a node dropping a VIP it held;
 *   - time with no holder and time with two or more holders, summed over the VIPs.
 * The kernel repeats "new address" messages when a lifetime is renewed, so only changes of
 * state count. At the end the holders are read again; a difference from the timeline's own
 * end state is reported (it would mean the monitor missed events).
 */
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import type { Topology } from "../../src/lab/topology.ts";
import { sleep } from "./args.ts";

export interface TimelineEvent {
  /** Milliseconds since the start of the window (negative: before it). */
  readonly atMs: number;
  readonly node: string;
  readonly vip: string;
  readonly kind: "acquired" | "released";
}

export interface HolderStats {
  readonly windowMs: number;
  /** Acquisitions in the window (moves + takebacks). */
  readonly holderChanges: number;
  /** Acquisitions by a node other than the VIP's previous holder. */
  readonly moves: number;
  readonly releases: number;
  readonly noHolderMs: number;
  readonly twoHoldersMs: number;
  /** Acquisitions and releases in the window, first 2,000. */
  readonly events: TimelineEvent[];
  /** VIPs whose holders at the end differ from the timeline's end state (events missed). */
  readonly mismatches: string[];
}

export interface HolderTimeline {
  /** Wall-clock start of the window (Date.now()). */
  readonly startedAt: number;
  stop(): Promise<HolderStats>;
}

interface RawEvent {
  readonly at: number;
  readonly node: string;
  readonly vip: string;
  readonly kind: "acquired" | "released";
}

const chrt = "/usr/bin/chrt";

/** `[2026-12-02T08:29:19.718760] Deleted 5: eth0    inet 198.18.3.200/24 …` */
const lineRe =
  /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?\]\s+(Deleted\s+)?\d+:\s+\S+\s+inet\s+([\d.]+)\//;

/** Parses `ip -ts` stamps: local time, microseconds. */
function stampMs(seconds: string, fraction: string | undefined): number {
  return Date.parse(seconds) + (fraction ? Number(fraction) * 1000 : 0);
}

/** `ip -json address show dev eth0` in one node, retried: a loaded machine can be slow. */
async function readAddresses(topology: Topology, id: string): Promise<string[]> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      const { stdout } = await topology.exec(
        id,
        "ip",
        ["-json", "address", "show", "dev", "eth0"],
        20_000,
      );
      const [link] = JSON.parse(stdout) as Array<{ addr_info?: Array<{ local?: string }> }>;
      return (link?.addr_info ?? []).map((a) => String(a.local));
    } catch (error) {
      last = error;
    }
  }
  throw new Error(`cannot read the addresses of ${id}: ${(last as Error)?.message}`);
}

/** Holders of each VIP; throws when a node's addresses cannot be read (never guesses "none"). */
async function readHolders(
  topology: Topology,
  ids: readonly string[],
  vips: readonly string[],
): Promise<Map<string, Set<string>>> {
  const wanted = new Set(vips);
  const held = await Promise.all(
    ids.map((id) => readAddresses(topology, id).then((list) => list.filter((a) => wanted.has(a)))),
  );
  return new Map(vips.map((v) => [v, new Set(ids.filter((_, i) => held[i]!.includes(v)))]));
}

export async function startHolderTimeline(
  topology: Topology,
  ids: readonly string[],
  vips: readonly string[],
): Promise<HolderTimeline> {
  const wanted = new Set(vips);
  const raw: RawEvent[] = [];
  const monitors: ChildProcess[] = ids.map((id) => {
    // At a realtime priority above floatip's control plane (SCHED_RR 10) so that a saturated
    // machine cannot delay the observer: it only wakes for address changes.
    const monitor = ["ip", "-ts", "-o", "monitor", "address", "dev", "eth0"];
    const child = existsSync(chrt)
      ? topology.spawn(id, chrt, ["--rr", "20", ...monitor])
      : topology.spawn(id, monitor[0]!, monitor.slice(1));
    let buffer = "";
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        const m = lineRe.exec(line);
        if (!m || !wanted.has(m[4]!)) continue;
        // Bounded: a flapping cluster over a long window must not exhaust memory.
        if (raw.length < 1_000_000) {
          raw.push({
            at: stampMs(m[1]!, m[2]),
            node: id,
            vip: m[4]!,
            kind: m[3] ? "released" : "acquired",
          });
        }
      }
    });
    return child;
  });
  // `ip monitor` prints nothing when it is ready; give it time to subscribe.
  await sleep(500);
  const readAt = Date.now();
  const initial = await readHolders(topology, ids, vips);
  const startedAt = Date.now();
  return {
    startedAt,
    async stop() {
      const endedAt = Date.now();
      // Lines stamped before the end may still be in the pipes (longer on a loaded machine).
      await sleep(1000);
      for (const m of monitors) {
        if (m.pid !== undefined && m.exitCode === null && m.signalCode === null) {
          try {
            process.kill(m.pid, "SIGTERM");
          } catch {
            // Already gone.
          }
        }
      }
      const finalAt = Date.now();
      const final = await readHolders(topology, ids, vips).catch((error: Error) => error);
      const state = new Map([...initial].map(([v, s]) => [v, new Set(s)]));
      const lastSole = new Map<string, string | undefined>(
        [...state].map(([v, s]) => [v, s.size === 1 ? [...s][0] : undefined]),
      );
      let noHolderMs = 0;
      let twoHoldersMs = 0;
      let holderChanges = 0;
      let moves = 0;
      let releases = 0;
      const events: TimelineEvent[] = [];
      let cursor = startedAt;
      const accumulate = (until: number) => {
        if (until <= cursor) return;
        const span = until - cursor;
        for (const holders of state.values()) {
          if (holders.size === 0) noHolderMs += span;
          else if (holders.size > 1) twoHoldersMs += span;
        }
        cursor = until;
      };
      const ordered = raw.filter((e) => e.at >= readAt && e.at <= endedAt);
      ordered.sort((a, b) => a.at - b.at);
      for (const e of ordered) {
        const inWindow = e.at >= startedAt;
        if (inWindow) accumulate(e.at);
        const holders = state.get(e.vip)!;
        if (e.kind === "acquired" && !holders.has(e.node)) {
          holders.add(e.node);
          if (inWindow) {
            holderChanges += 1;
            if (lastSole.get(e.vip) !== e.node) moves += 1;
          }
        } else if (e.kind === "released" && holders.has(e.node)) {
          holders.delete(e.node);
          if (inWindow) releases += 1;
        } else {
          continue; // a lifetime renewal, or a repeat
        }
        if (holders.size === 1) lastSole.set(e.vip, [...holders][0]);
        if (inWindow && events.length < 2000) {
          events.push({
            atMs: Math.round(e.at - startedAt),
            node: e.node,
            vip: e.vip,
            kind: e.kind,
          });
        }
      }
      accumulate(endedAt);
      // The end state to compare with the final read: the window's state plus what happened
      // between the end of the window and the read.
      for (const e of raw
        .filter((x) => x.at > endedAt && x.at <= finalAt)
        .sort((a, b) => a.at - b.at)) {
        const holders = state.get(e.vip)!;
        if (e.kind === "acquired") holders.add(e.node);
        else holders.delete(e.node);
      }
      const mismatches =
        final instanceof Error
          ? []
          : vips.filter((v) => {
              const a = [...state.get(v)!].sort().join(",");
              const b = [...final.get(v)!].sort().join(",");
              return a !== b;
            });
      return {
        windowMs: endedAt - startedAt,
        holderChanges,
        moves,
        releases,
        noHolderMs: Math.round(noHolderMs),
        twoHoldersMs: Math.round(twoHoldersMs),
        events,
        mismatches:
          final instanceof Error
            ? [`final read failed: ${final.message}`]
            : mismatches.map(
                (v) =>
                  `${v}: timeline ${[...state.get(v)!].join(",") || "none"}, read ${[...(final as Map<string, Set<string>>).get(v)!].join(",") || "none"}`,
              ),
      };
    },
  };
}

/**
 * Waits until every VIP has exactly one holder and the placement has not changed for
 * `stableMs`; returns the holder of each VIP. Throws after `timeoutMs`.
 */
export async function waitOneHolderEach(
  topology: Topology,
  ids: readonly string[],
  vips: readonly string[],
  timeoutMs: number,
  stableMs: number,
): Promise<Map<string, string>> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  let since = Date.now();
  let holders = new Map<string, Set<string>>();
  for (let attempt = 0; attempt < 100_000 && Date.now() < deadline; attempt += 1) {
    const read = await readHolders(topology, ids, vips).catch(() => undefined);
    if (read === undefined) {
      await sleep(500);
      continue;
    }
    holders = read;
    const key = JSON.stringify([...holders].map(([v, s]) => [v, [...s].sort()]));
    if (key !== last) [last, since] = [key, Date.now()];
    const complete = [...holders.values()].every((s) => s.size === 1);
    if (complete && Date.now() - since >= stableMs) {
      return new Map([...holders].map(([v, s]) => [v, [...s][0]!]));
    }
    await sleep(vips.length > 100 ? 500 : 100);
  }
  const counts = { none: 0, one: 0, more: 0 };
  for (const s of holders.values()) {
    if (s.size === 0) counts.none += 1;
    else if (s.size === 1) counts.one += 1;
    else counts.more += 1;
  }
  throw new Error(
    `the VIPs did not each get one stable holder within ${timeoutMs} ms (${counts.one} with one holder, ${counts.none} with none, ${counts.more} with two or more)`,
  );
}
