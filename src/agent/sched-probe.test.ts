import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseProcStat, parseSchedstat, procReader, SchedProbe } from "./sched-probe.ts";

const stat = (softirq: number, steal: number) =>
  `cpu  100 0 50 9000 3 0 ${softirq} ${steal} 0 0\ncpu0 50 0 25 4500 1 0 1 0 0 0\nintr 1 2 3\n`;

/** Spins until this process has had `ms` of CPU (whatever else the machine runs meanwhile). */
function busy(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms) return;
  }
}

describe("SchedProbe", () => {
  it("parses the thread's schedstat and the machine's softirq and steal", () => {
    assert.deepEqual(parseSchedstat("123456 7890 12\n"), { runNs: 123456, waitNs: 7890 });
    assert.equal(parseSchedstat("garbage"), undefined);
    assert.deepEqual(parseProcStat(stat(7, 3)), { softirqMs: 70, stealMs: 30 });
    assert.equal(parseProcStat("intr 1 2\n"), undefined);
  });

  it("splits a stall's window into running, waiting for a CPU and off the CPU", () => {
    const files = new Map<string, string>();
    const set = (runMs: number, waitMs: number, softirq: number, steal: number) => {
      files.set("/proc/thread-self/schedstat", `${runMs * 1e6} ${waitMs * 1e6} 5\n`);
      files.set("/proc/stat", stat(softirq, steal));
    };
    const probe = new SchedProbe(200, (p) => files.get(p) ?? "");
    set(10, 1, 5, 0);
    probe.tick(1000);
    // Too soon for a new sample: the window of the next stall still starts at 1000.
    set(11, 1, 5, 0);
    probe.tick(1100);
    // 120 ms later: ran 2 ms more, waited 90 ms for a CPU, the rest off the CPU.
    set(12, 91, 8, 1);
    assert.deepEqual(probe.explain(1120), {
      windowMs: 120,
      ranMs: 2,
      waitedForCpuMs: 90,
      offCpuMs: 28,
      machineSoftirqMs: 30,
      machineStealMs: 10,
    });
  });

  it("stays silent where procfs cannot be read", () => {
    const probe = new SchedProbe(200, () => {
      throw new Error("ENOENT");
    });
    probe.tick(0);
    assert.equal(probe.explain(500), undefined);
  });

  it("reads procfs again on every sample through the kept descriptors (Linux)", () => {
    const read = procReader();
    const before = parseSchedstat(read("/proc/thread-self/schedstat"));
    assert.ok(before && parseProcStat(read("/proc/stat")), "procfs is readable here");
    busy(30);
    const after = parseSchedstat(read("/proc/thread-self/schedstat"))!;
    assert.ok(after.runNs - before.runNs >= 20e6, `ran ${(after.runNs - before.runNs) / 1e6} ms`);
    assert.ok(parseProcStat(read("/proc/stat")), "the cpu line again");
    // The default probe explains a busy window of its own thread from those reads.
    const probe = new SchedProbe();
    probe.tick(performance.now());
    busy(30);
    const explained = probe.explain(performance.now());
    assert.ok(explained && explained.ranMs >= 20, JSON.stringify(explained));
  });
});
