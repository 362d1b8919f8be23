/**
 * Counts changes of VIP holders from `ip -o monitor address` in each node namespace, so that
 * even a flap shorter than any polling interval is seen. A change is a node starting to hold a
 * VIP it did not hold; a release is a node dropping one it held. The kernel repeats "new
 * address" messages on lifetime renewal, so only changes of state count.
 */
import type { ChildProcess } from "node:child_process";
import type { LiveCluster } from "../../src/lab/cluster.ts";
import { now } from "./prober.ts";

export interface HolderChange {
  readonly atMs: number;
  readonly node: string;
  readonly vip: string;
}

export interface HolderCount {
  readonly changes: HolderChange[];
  readonly releases: number;
}

export interface HolderMonitor {
  /** When it started (`now()` of prober.ts): changes' `atMs` count from here. */
  readonly startedAt: number;
  /** Ends every `ip monitor` child (by its PID) and returns what was seen. */
  stop(): HolderCount;
}

/** Starts one monitor per node; the current holders are read first as the starting state. */
export async function monitorHolders(cluster: LiveCluster): Promise<HolderMonitor> {
  const held = new Map<string, boolean>();
  for (const id of cluster.ids) {
    for (const vip of await cluster.heldVips(id)) held.set(`${id} ${vip}`, true);
  }
  const changes: HolderChange[] = [];
  let releases = 0;
  const startedAt = now();
  const onLine = (id: string, line: string) => {
    const vip = cluster.vipAddresses.find((v) => line.includes(` ${v}/`));
    if (!vip) return;
    const key = `${id} ${vip}`;
    const deleted = line.startsWith("Deleted");
    if (deleted && held.get(key)) {
      releases += 1;
      held.set(key, false);
    } else if (!deleted && !held.get(key)) {
      changes.push({ atMs: Math.round(now() - startedAt), node: id, vip });
      held.set(key, true);
    }
  };
  const monitors: ChildProcess[] = cluster.ids.map((id) => {
    const child = cluster.topology.spawn(id, "ip", ["-o", "monitor", "address", "dev", "eth0"]);
    let buffer = "";
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) onLine(id, line);
    });
    return child;
  });
  return {
    startedAt,
    stop() {
      for (const m of monitors) {
        if (m.pid !== undefined && m.exitCode === null && m.signalCode === null) {
          process.kill(m.pid, "SIGTERM");
        }
      }
      return { changes: [...changes], releases };
    },
  };
}
