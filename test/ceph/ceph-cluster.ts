/**
 * Starts a throw-away Ceph cluster with scripts/ceph-test-cluster.sh for one test file. When
 * the Ceph packages cannot be installed the tests skip with a clear message — except under
 * CI=true, where that is a failure.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const script = path.resolve(import.meta.dirname, "../../scripts/ceph-test-cluster.sh");

export interface CephCluster {
  readonly conf: string;
  stop(): void;
}

/** Returns the cluster, or a reason to skip (string). Throws when the cluster fails to start. */
export function startCephCluster(): CephCluster | string {
  const parent = mkdtempSync(path.join(tmpdir(), "fips-ceph-"));
  const dir = path.join(parent, "cluster");
  const result = spawnSync(script, ["start", dir], { encoding: "utf8", timeout: 900_000 });
  const stop = () => {
    spawnSync(script, ["stop", dir], { timeout: 60_000 });
    rmSync(parent, { recursive: true, force: true });
  };
  if (result.status === 3) {
    stop();
    const reason = "Ceph packages (ceph-mon ceph-osd ceph-common) cannot be installed here";
    if (process.env.CI === "true") throw new Error(`${reason}; required under CI=true`);
    return reason;
  }
  if (result.status !== 0) {
    stop();
    throw new Error(`ceph-test-cluster.sh start failed (${result.status}): ${result.stderr}`);
  }
  return { conf: result.stdout.trim().split("\n").pop() ?? "", stop };
}
