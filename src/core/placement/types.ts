/**
 * Input and output of VIP placement (S0 step 2). Placement is a pure function the coordinator
 * calls whenever membership, pins or drains change, and on every heartbeat round (so that
 * time-based failback can fire). It must be deterministic: same input, same output, on
 * every node and in every run.
 */
import type { Failback, PlacementPolicy } from "../../config/types.ts";

export interface PlacementMember {
  readonly id: string;
  readonly weight: number;
  /** Healthy, not drained: may own VIPs. */
  readonly eligible: boolean;
  /** Monotonic time since which the member has been continuously eligible (for `failback: after`). */
  readonly eligibleSinceMs: number | undefined;
}

export interface PlacementVip {
  readonly address: string;
  readonly policy: PlacementPolicy;
  readonly preferred?: string;
  readonly failback: Failback;
}

export interface PlacementInput {
  /** VIPs in configuration order; outputs are indexed the same way. */
  readonly vips: readonly PlacementVip[];
  /** Members in configuration order. */
  readonly members: readonly PlacementMember[];
  /** Owner of each VIP before this decision (undefined = unassigned). */
  readonly previous: readonly (string | undefined)[];
  /** Administrative moves still in force: VIP index -> node id. */
  readonly pins: ReadonlyMap<number, string>;
  /** Round-robin position carried from the previous decision (starts at 0). */
  readonly roundRobinCursor: number;
  readonly nowMs: number;
}

/** Why a VIP has the owner it has; `floatip ip list --explain` prints these. */
export type PlacementReason =
  | "kept" // previous owner still eligible, nothing asks for a move
  | "pinned" // administrative move in force
  | "preferred" // first assignment to the preferred node
  | "failback" // preferred node is back (immediate, or eligible for long enough)
  | "round-robin"
  | "weighted"
  | "hash"
  | "no-eligible-node";

/** One character per reason, for the table's `why` (followers explain from it). */
export const reasonCodes: Readonly<Record<PlacementReason, string>> = {
  kept: "k",
  pinned: "p",
  preferred: "P",
  failback: "f",
  "round-robin": "r",
  weighted: "w",
  hash: "h",
  "no-eligible-node": "n",
};

/** What a follower says for a reason code of the coordinator's table. */
export const reasonWords: Readonly<Record<string, string>> = {
  k: "kept: its owner stayed eligible",
  p: "pinned there by an administrative move",
  P: "first assignment, to its preferred node",
  f: "failed back to its preferred node",
  r: "dealt round-robin",
  w: "the heaviest eligible node (weighted)",
  h: "chosen by rendezvous hash",
  n: "no eligible node",
};

export interface PlacementDecision {
  readonly vipIndex: number;
  readonly owner: string | undefined;
  readonly previousOwner: string | undefined;
  readonly reason: PlacementReason;
  /** Eligible members considered, in the order the policy ranked them (best first). */
  readonly candidates: readonly string[];
  /** One plain sentence, e.g. "n2 failed; dealt round-robin to n3 (candidates n1, n3)". */
  readonly text: string;
}

export interface PlacementResult {
  readonly owners: readonly (string | undefined)[];
  readonly roundRobinCursor: number;
  /** One decision per VIP, in VIP order. */
  readonly decisions: readonly PlacementDecision[];
}
