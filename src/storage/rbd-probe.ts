/**
 * Health probe kind "rbd" (S1.2: the dispatcher monitors its node's rbd client connection to
 * the cluster): one bounded `rbd ls` of the configured pool. Registered with the health probes
 * by `registerRbdProbe()`, called once at start by the agent; the probe runner enforces the
 * check's timeout and the command itself runs under the same deadline, so a hung cluster is an
 * ordinary failed probe, never a hang.
 */
import { ExecError, run } from "../adapters/exec.ts";
import type { HealthCheckSpec } from "../config/types.ts";
import { type ProbeResult, registerProbeKind } from "../health/probes.ts";

type RbdCheck = Extract<HealthCheckSpec, { kind: "rbd" }>;

export async function probeRbd(spec: RbdCheck, signal?: AbortSignal): Promise<ProbeResult> {
  const startedMs = performance.now();
  const args = ["ls", spec.pool, "--format", "json"];
  if (spec.clientId) args.push("--id", spec.clientId);
  if (spec.cephConf) args.push("--conf", spec.cephConf);
  const done = (ok: boolean, detail: string): ProbeResult => ({
    ok,
    detail,
    durationMs: performance.now() - startedMs,
  });
  if (signal?.aborted) return done(false, "aborted");
  try {
    const result = await run("rbd", args, { timeoutMs: spec.timeoutMs });
    const images = JSON.parse(result.stdout || "[]") as unknown[];
    return done(true, `pool ${spec.pool} reachable (${images.length} images)`);
  } catch (error) {
    if (error instanceof ExecError && error.code === "EXEC_TIMEOUT") {
      return done(false, `rbd ls ${spec.pool} timed out after ${spec.timeoutMs} ms`);
    }
    return done(false, (error as Error).message.split("\n")[0] ?? "rbd ls failed");
  }
}

export function registerRbdProbe(): void {
  registerProbeKind("rbd", (spec: RbdCheck, signal: AbortSignal) => probeRbd(spec, signal));
}
