/**
 * The fingerprint of a configuration's cluster-wide part: what every node must agree on for
 * the coordinator's table to mean the same on all of them — the cluster name, the nodes (id,
 * address, port, weight, in order), the VIPs (address, prefix, policy, preferred node,
 * failback, in the cluster-wide order by address that tables index them by, so a reordered
 * `vips:` list is the same configuration: see vip-order.ts) and the timers (a `lan` node beside a
 * `wan` one would judge leases differently) and the heartbeat fan-out. Node-local settings (interfaces, checks, API,
 * notify, state directory, capabilities) are left out: they may differ per node.
 *
 * 16 hex digits of SHA-256 over a canonical JSON form: enough to tell configurations apart,
 * short enough for every heartbeat, logs and `floatip status`.
 */
import { createHash } from "node:crypto";
import type { ClusterConfig } from "./types.ts";
import { canonicalVipOrder } from "./vip-order.ts";

export function configFingerprint(
  config: Pick<ClusterConfig, "cluster" | "nodes" | "vips" | "timers"> &
    Partial<Pick<ClusterConfig, "heartbeats">>,
): string {
  const timers = Object.fromEntries(
    Object.entries(config.timers).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  const canonical = JSON.stringify({
    cluster: config.cluster,
    nodes: config.nodes.map((n) => [n.id, n.address, n.port, n.weight]),
    vips: canonicalVipOrder(config.vips).map((v) => [
      v.address,
      v.prefixLength,
      v.policy,
      v.preferred ?? null,
      v.failback,
    ]),
    timers,
    // A follower that heartbeats the coordinator only, beside nodes that expect to hear it,
    // would be counted as not hearing a majority: the fan-out is cluster-wide. Left out when
    // `all`, so fingerprints of configurations without it stay what they were.
    ...(config.heartbeats === "coordinator" ? { heartbeats: config.heartbeats } : {}),
  });
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}
