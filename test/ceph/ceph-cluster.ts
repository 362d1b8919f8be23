/**
 * Starts a throw-away Ceph cluster with scripts/ceph-test-cluster.sh for one test file. When
 * the Ceph packages cannot be installed the tests skip with a clear message — except under
 * CI=true, where that is a failure.
 *
 * By default the daemons listen on 127.0.0.1 of the root namespace. End-to-end tests whose
 * agents run in network namespaces pass `bind` (an address on their test bridge) and `netns`
 * (the namespace holding it), so that every node reaches the cluster over the bridge.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const script = path.resolve(import.meta.dirname, "../../scripts/ceph-test-cluster.sh");

export interface CephClusterOptions {
  /** Address the mon and the OSD listen on (default 127.0.0.1). */
  readonly bind?: string;
  /** Network namespace the daemons run in; it must hold `bind`. */
  readonly netns?: string;
  /**
   * Directory of the cluster (must not exist yet), when the caller needs the conf path before
   * the start: the conf is always `<dir>/ceph.conf`. Default: a new temporary directory.
   */
  readonly dir?: string;
}

export interface CephCluster {
  readonly conf: string;
  /** The mon's address and port, from `mon host` in the conf. */
  readonly monAddress: string;
  readonly monPort: number;
  stop(): void;
}

/** Returns the cluster, or a reason to skip (string). Throws when the cluster fails to start. */
export function startCephCluster(options: CephClusterOptions = {}): CephCluster | string {
  const parent = options.dir ? undefined : mkdtempSync(path.join(tmpdir(), "fips-ceph-"));
  const dir = options.dir ?? path.join(parent!, "cluster");
  const args = ["start", dir];
  if (options.bind) args.push("--bind", options.bind);
  if (options.netns) args.push("--netns", options.netns);
  const stop = () => {
    spawnSync(script, ["stop", dir], { timeout: 60_000 });
    if (parent) rmSync(parent, { recursive: true, force: true });
  };
  let result = spawnSync(script, args, { encoding: "utf8", timeout: 900_000 });
  if (result.status !== 0 && result.status !== 3) {
    // Test infrastructure, not floatip: a mon that could not start (a port taken between the
    // check and the bind, a slow machine) gets one more try on a fresh port, and says so.
    const first = `${result.status ?? result.signal}: ${result.stderr}`;
    spawnSync(script, ["stop", dir], { timeout: 60_000 });
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`ceph test cluster did not start (${first.trim()}); trying once more\n`);
    result = spawnSync(script, args, { encoding: "utf8", timeout: 900_000 });
  }
  if (result.status === 3) {
    stop();
    const reason = "Ceph packages (ceph-mon ceph-osd ceph-common) cannot be installed here";
    if (process.env.CI === "true") throw new Error(`${reason}; required under CI=true`);
    return reason;
  }
  if (result.status !== 0) {
    stop();
    throw new Error(
      `ceph-test-cluster.sh ${args.join(" ")} failed (${result.status ?? result.signal}): ${result.stderr}`,
    );
  }
  const conf = result.stdout.trim().split("\n").pop() ?? "";
  const mon = /^mon host = v1:([0-9.]+):(\d+)$/m.exec(readFileSync(conf, "utf8"));
  if (!mon) {
    stop();
    throw new Error(`${conf}: no "mon host = v1:ADDRESS:PORT" line`);
  }
  return { conf, monAddress: mon[1]!, monPort: Number(mon[2]), stop };
}
