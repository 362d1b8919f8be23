/**
 * A ClusterView whose coordinator and member states are set by hand: used to run the traffic
 * component on its own (tests, benchmarks, the standalone runner) before or without the
 * agent's membership. The agent passes its real view instead.
 */
import type {
  ClusterView,
  ClusterViewSnapshot,
  MemberState,
  MemberView,
} from "../ports/cluster-view.ts";

export class StaticClusterView implements ClusterView {
  private snapshot: ClusterViewSnapshot;
  private readonly listeners = new Set<(view: ClusterViewSnapshot) => void>();

  constructor(selfId: string, members: readonly MemberView[], coordinatorId: string | undefined) {
    this.snapshot = {
      selfId,
      coordinatorId,
      term: 1,
      members,
      owners: new Map(),
      held: new Set(),
    };
  }

  current(): ClusterViewSnapshot {
    return this.snapshot;
  }

  subscribe(listener: (view: ClusterViewSnapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  setCoordinator(coordinatorId: string | undefined): void {
    this.update({ ...this.snapshot, coordinatorId, term: this.snapshot.term + 1 });
  }

  setMemberState(id: string, state: MemberState): void {
    const members = this.snapshot.members.map((m) => (m.id === id ? { ...m, state } : m));
    this.update({ ...this.snapshot, members });
  }

  private update(next: ClusterViewSnapshot): void {
    this.snapshot = next;
    for (const listener of this.listeners) listener(next);
  }
}
