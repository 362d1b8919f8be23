/**
 * A client that probes a VIP from the client namespace (probe-client.ts in a child process)
 * and keeps every answer, so that a benchmark can tell when the service went away and which
 * node answered first afterwards.
 */
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import type { Topology } from "../../src/lab/topology.ts";

export interface ProbeRecord {
  readonly sentAt: number;
  readonly doneAt: number;
  /** The answering node's name, or null for a failed or timed-out request. */
  readonly who: string | null;
}

export interface ProberOptions {
  readonly host: string;
  readonly vip: string;
  readonly port?: number;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly maxCount?: number;
  readonly maxMs?: number;
}

export interface Prober {
  readonly records: ProbeRecord[];
  /** Resolves once `predicate` holds for the records, or with false after `timeoutMs`. */
  until(
    predicate: (records: readonly ProbeRecord[]) => boolean,
    timeoutMs: number,
  ): Promise<boolean>;
  stop(): Promise<void>;
}

const script = join(import.meta.dirname, "probe-client.ts");

export const now = (): number => performance.timeOrigin + performance.now();

export function startProber(topology: Topology, options: ProberOptions): Prober {
  const args = [
    script,
    options.vip,
    String(options.port ?? 8080),
    String(options.intervalMs ?? 5),
    String(options.timeoutMs ?? 100),
    String(options.maxCount ?? 12_000),
    String(options.maxMs ?? 60_000),
  ];
  const child: ChildProcess = topology.spawn(options.host, process.execPath, args, {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const records: ProbeRecord[] = [];
  let buffer = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split("\n");
    buffer = lines.pop() ?? "";
    for (const line of lines) if (line) records.push(JSON.parse(line) as ProbeRecord);
  });
  let ended = false;
  child.once("exit", () => {
    ended = true;
  });
  return {
    records,
    async until(predicate, timeoutMs) {
      const deadline = now() + timeoutMs;
      while (now() < deadline && !ended) {
        if (predicate(records)) return true;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return predicate(records);
    },
    async stop() {
      child.stdin?.end();
      const timer = setTimeout(() => {
        if (child.pid !== undefined && !ended) process.kill(child.pid, "SIGKILL");
      }, 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface Outage {
  /** First request sent after the fault that failed, or undefined if none failed. */
  readonly firstFailureAt: number | undefined;
  /** First request sent after the fault that a node other than `oldOwner` answered. */
  readonly firstNewAnswerAt: number | undefined;
  readonly newOwner: string | undefined;
  /** firstNewAnswer − firstFailure (0 when no request failed); undefined without a new answer. */
  readonly outageMs: number | undefined;
  /** fault → first answer from the new owner (send time). */
  readonly switchMs: number | undefined;
  readonly failedRequests: number;
}

export function measureOutage(
  records: readonly ProbeRecord[],
  faultAt: number,
  oldOwner: string,
): Outage {
  const after = records.filter((r) => r.sentAt >= faultAt).sort((a, b) => a.sentAt - b.sentAt);
  const firstNew = after.find((r) => r.who !== null && r.who !== oldOwner);
  const firstFailure = after.find((r) => r.who === null);
  const failedRequests = after.filter(
    (r) => r.who === null && (!firstNew || r.sentAt < firstNew.sentAt),
  ).length;
  const firstNewAnswerAt = firstNew?.sentAt;
  const firstFailureAt =
    firstFailure && firstNew && firstFailure.sentAt < firstNew.sentAt
      ? firstFailure.sentAt
      : undefined;
  return {
    firstFailureAt,
    firstNewAnswerAt,
    newOwner: firstNew?.who ?? undefined,
    outageMs:
      firstNewAnswerAt === undefined
        ? undefined
        : firstFailureAt === undefined
          ? 0
          : firstNewAnswerAt - firstFailureAt,
    switchMs: firstNewAnswerAt === undefined ? undefined : firstNewAnswerAt - faultAt,
    failedRequests,
  };
}
