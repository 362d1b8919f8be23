/**
 * The narrow view of cluster membership that capabilities (relay, storage, traffic) consume.
 * The agent runtime publishes a new view after every core step that changed membership,
 * coordinator or VIP ownership; subscribers must not block (do work asynchronously).
 */
export type MemberState = "healthy" | "failed" | "drained" | "unknown";

export interface MemberView {
  readonly id: string;
  /** Peer address from the config (where the node's services listen). */
  readonly address: string;
  readonly state: MemberState;
}

export interface ClusterViewSnapshot {
  readonly selfId: string;
  /** Current coordinator as known by this node; undefined during elections. */
  readonly coordinatorId: string | undefined;
  readonly term: number;
  readonly members: readonly MemberView[];
  /** VIP address -> owner id (undefined while unassigned or moving). */
  readonly owners: ReadonlyMap<string, string | undefined>;
  /** VIP addresses this node holds right now (configured on its interface). */
  readonly held: ReadonlySet<string>;
}

export interface ClusterView {
  current(): ClusterViewSnapshot;
  /** Calls `listener` after each change; returns a function that unsubscribes. */
  subscribe(listener: (view: ClusterViewSnapshot) => void): () => void;
}
