/**
 * A ClusterView read from a JSON file, for running gateways without the agent (a single
 * machine, failover drills, tests). One file can serve every node of a cluster:
 *   { "term": 1,
 *     "members": [{ "id": "a", "address": "127.0.0.1", "state": "healthy" }, …],
 *     "owners": { "198.18.0.100": "a" } }
 * A node holds the VIPs whose owner is its own id. `reload()` re-reads the file (gateway-main
 * calls it on SIGHUP) and notifies subscribers when the file changed.
 */
import { readFileSync } from "node:fs";
import type {
  ClusterView,
  ClusterViewSnapshot,
  MemberState,
  MemberView,
} from "../ports/cluster-view.ts";

const memberStates: readonly MemberState[] = ["healthy", "failed", "drained", "unknown"];

export function parseViewFile(text: string, selfId: string, file: string): ClusterViewSnapshot {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`${file}: not JSON: ${(error as Error).message}`);
  }
  const members: MemberView[] = [];
  for (const [i, m] of ((raw.members ?? []) as Record<string, unknown>[]).entries()) {
    if (
      typeof m?.id !== "string" ||
      typeof m.address !== "string" ||
      !memberStates.includes(m.state as MemberState)
    ) {
      throw new Error(
        `${file}: members[${i}] needs id, address and state (${memberStates.join("|")})`,
      );
    }
    members.push({ id: m.id, address: m.address, state: m.state as MemberState });
  }
  const owners = new Map<string, string | undefined>();
  const held = new Set<string>();
  for (const [vip, owner] of Object.entries((raw.owners ?? {}) as Record<string, unknown>)) {
    const id = typeof owner === "string" ? owner : undefined;
    owners.set(vip, id);
    if (id === selfId) held.add(vip);
  }
  return {
    selfId,
    coordinatorId: typeof raw.coordinator === "string" ? raw.coordinator : undefined,
    term: typeof raw.term === "number" ? raw.term : 0,
    members,
    owners,
    held,
  };
}

/** The view of a node alone: itself healthy, no VIPs. */
export function singleNodeView(selfId: string): ClusterViewSnapshot {
  return {
    selfId,
    coordinatorId: selfId,
    term: 0,
    members: [{ id: selfId, address: "127.0.0.1", state: "healthy" }],
    owners: new Map(),
    held: new Set(),
  };
}

export class StaticClusterView implements ClusterView {
  readonly #listeners = new Set<(view: ClusterViewSnapshot) => void>();
  readonly #file: string | undefined;
  readonly #selfId: string;
  #text = "";
  #view: ClusterViewSnapshot;

  constructor(selfId: string, file?: string) {
    this.#selfId = selfId;
    this.#file = file;
    this.#view = singleNodeView(selfId);
    if (file) this.reload();
  }

  current(): ClusterViewSnapshot {
    return this.#view;
  }

  subscribe(listener: (view: ClusterViewSnapshot) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Re-reads the file; throws (and keeps the old view) when it is invalid. */
  reload(): void {
    if (!this.#file) return;
    const text = readFileSync(this.#file, "utf8");
    if (text === this.#text) return;
    this.#view = parseViewFile(text, this.#selfId, this.#file);
    this.#text = text;
    for (const listener of [...this.#listeners]) listener(this.#view);
  }

  /** Replaces the view directly (in-process use). */
  set(view: ClusterViewSnapshot): void {
    this.#view = view;
    for (const listener of [...this.#listeners]) listener(view);
  }
}
