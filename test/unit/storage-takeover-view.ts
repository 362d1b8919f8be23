/**
 * The cluster as storage node "b" sees it when it takes over from a dead node "a": a failed,
 * b healthy and coordinator, the storage VIP held by `owner`. Shared by the dispatcher's unit
 * tests and its tests on real Ceph.
 */
import type { ClusterViewSnapshot } from "../../src/ports/cluster-view.ts";

export function takeoverView(vip: string, owner: string | undefined): ClusterViewSnapshot {
  return {
    selfId: "b",
    coordinatorId: "b",
    term: 2,
    members: [
      { id: "a", address: "127.0.0.1", state: "failed" },
      { id: "b", address: "127.0.0.1", state: "healthy" },
    ],
    owners: new Map([[vip, owner]]),
    held: owner === "b" ? new Set([vip]) : new Set(),
  };
}
