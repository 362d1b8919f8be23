/**
 * The cluster as storage node "b" sees it when it takes over from a dead node "a": a failed,
 * b healthy and coordinator, the storage VIP held by `owner`. Shared by the dispatcher's unit
 * tests and its tests on real Ceph, with `takeoverDispatcher` below.
 */
import type { ClusterViewSnapshot } from "../../src/ports/cluster-view.ts";
import { Dispatcher, type DispatcherOptions } from "../../src/storage/dispatcher.ts";
import { PeerClient } from "../../src/storage/replication.ts";

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

/**
 * Node b's dispatcher for those tests: no reachable peer (a's replication URL answers
 * nothing), 3 attempts, the wall clock; `options` gives the rest.
 */
export function takeoverDispatcher(
  options: Pick<DispatcherOptions, "journal" | "backend" | "view" | "storageVip" | "retryDelayMs"> &
    Partial<DispatcherOptions>,
): Dispatcher {
  return new Dispatcher({
    nodeId: "b",
    peers: new PeerClient(Buffer.alloc(32, 1), 500),
    peerUrl: () => "http://127.0.0.1:1",
    attemptsMax: 3,
    nowMs: () => Date.now(),
    log: () => {},
    ...options,
  });
}
