/**
 * V8 flags the supervisor gives the control plane's process (src/cli/commands/agent.ts,
 * `supervise`) and the services process leaves out again (src/agent/services.ts).
 */

/** The collector on the control plane's own (realtime) thread only. */
export const singleThreadedGc = "--single-threaded-gc";
/** One V8 platform thread instead of four: fewer threads, fewer malloc arenas. */
export const onePlatformThread = "--v8-pool-size=1";
/** Maglev as the top tier: no Turbofan code or compiler pages in the control plane. */
export const maglevTopTier = "--max-opt=2";

/** The control plane's V8 flags: the launcher's, and ours where the launcher set none. */
export function controlPlaneExecArgv(execArgv: readonly string[]): string[] {
  return [
    ...execArgv,
    // A 1 MB young generation instead of V8's default (up to 16 MB per semi-space): the
    // control plane and the services process allocate little, so a scavenge still comes
    // seconds apart and takes well under a millisecond, and each process stays about 5 MB
    // smaller (measured: 150 MB instead of 160 MB per idle node, all processes).
    ...(execArgv.some((a) => a.startsWith("--max-semi-space-size"))
      ? []
      : ["--max-semi-space-size=1"]),
    // Garbage collection on the control plane's own (realtime) thread only. V8's helper
    // threads run at normal priority: on a machine whose cores are taken by busy normal
    // processes they are starved, and a realtime thread that waits for them in a parallel
    // scavenge waits as long (a priority inversion; simultaneous ~90 ms stalls of every
    // agent were seen under eight CPU hogs and a datagram flood). The control plane's heap
    // is small, so doing the work alone costs less than waiting. The services process
    // (normal priority) keeps the helpers.
    ...(execArgv.includes(singleThreadedGc) ? [] : [singleThreadedGc]),
    // One V8 platform thread instead of four: with the collector on the main thread they
    // only compile in the background, and each thread costs its own malloc arena.
    ...(execArgv.some((a) => a.startsWith("--v8-pool-size")) ? [] : [onePlatformThread]),
    // Maglev as the top tier (V8's mid-tier optimiser; Turbofan never runs): the control
    // plane's hot code is a few small functions run 20-60 times a second, where Turbofan's
    // code is no faster on cold caches, and its compiler's pages and code cost about 5 MB of
    // resident memory. Measured side by side, 2026-12-06: 70 MB instead of 75 MB per process,
    // CPU B/A 0.974 over four windows (inside the noise). The services process keeps
    // Turbofan: the relay's userspace proxy lost 10-20 % of its requests per second without it.
    ...(execArgv.some((a) => a.startsWith("--max-opt")) ? [] : [maglevTopTier]),
  ];
}
