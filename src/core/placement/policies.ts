/**
 * Candidate ranking for the three VIP allocation policies of S0. Each function returns the
 * eligible members best first; `place()` gives the VIP to the first one. Ids are compared by
 * UTF-16 code unit (`<`), never with `localeCompare`, whose order depends on the ICU data and
 * locale of the node and would let two nodes disagree.
 */
import { rendezvousScore } from "./hash.ts";
import type { PlacementMember } from "./types.ts";

/**
 * Round-robin: eligible members in configuration order, cycling from position `cursor` of the
 * full member list (ineligible members keep their positions, so the cursor means the same thing
 * whatever the eligibility). Returns ids and their positions in `members`.
 */
export function rankRoundRobin(
  members: readonly PlacementMember[],
  cursor: number,
): { readonly ids: string[]; readonly positions: number[] } {
  const ids: string[] = [];
  const positions: number[] = [];
  for (let step = 0; step < members.length; step += 1) {
    const position = (cursor + step) % members.length;
    const member = members[position]!;
    if (member.eligible) {
      ids.push(member.id);
      positions.push(position);
    }
  }
  return { ids, positions };
}

/** Weighted: highest weight first; equal weights by smallest id. */
export function rankWeighted(members: readonly PlacementMember[]): string[] {
  return members
    .filter((member) => member.eligible)
    .sort((a, b) => b.weight - a.weight || compareIds(a.id, b.id))
    .map((member) => member.id);
}

/**
 * Hash: rendezvous (highest-random-weight) hashing. Each member's score depends only on the
 * VIP address and its own id, so removing a member changes the winner only for the VIPs that
 * member won. Equal scores (rare) fall back to the smallest id.
 */
export function rankHash(address: string, members: readonly PlacementMember[]): string[] {
  return members
    .filter((member) => member.eligible)
    .map((member) => ({ id: member.id, score: rendezvousScore(address, member.id) }))
    .sort((a, b) => b.score - a.score || compareIds(a.id, b.id))
    .map((entry) => entry.id);
}

export function compareIds(a: string, b: string): number {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}
