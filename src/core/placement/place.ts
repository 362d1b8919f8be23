/**
 * VIP placement (S0 step 2): decides the owner of every VIP from the members' eligibility,
 * the previous owners, administrative pins and each VIP's policy. The coordinator calls
 * `place()` whenever membership, pins or drains change and on every heartbeat round (so that
 * `failback: after` can fire), then publishes `owners` and keeps `roundRobinCursor` for the
 * next call. Pure and deterministic: same input, same output on every node and in every run.
 *
 * Rules, applied to each VIP in configuration order:
 * 1. A member may own VIPs only while `eligible` (healthy and not drained). A VIP whose previous
 *    owner is still eligible stays there ("kept") unless rule 2 or 3 applies. A failure or a
 *    drain therefore moves only the VIPs of that member, whatever the policy.
 * 2. A pin (administrative move) wins when the pinned member is eligible ("pinned"). A pin to a
 *    member that is not eligible, or not a member, is not in force: the VIP is placed by the
 *    other rules and its text says so.
 * 3. Preferred node, when it is eligible and the VIP is not on it:
 *    - first assignment (no previous owner), or the previous owner is no longer eligible:
 *      the VIP goes to the preferred node ("preferred"), whatever the failback mode, because it
 *      has to move anyway and moving it elsewhere would only cost a second move later;
 *    - otherwise `failback: immediate` moves it back ("failback"); `after` moves it back only
 *      once the preferred node has been eligible for `afterMs` (`nowMs - eligibleSinceMs >=
 *      afterMs`; an unknown `eligibleSinceMs` counts as not long enough), else keeps it;
 *      `never` keeps it on its current owner.
 * 4. Every other VIP that needs an owner (none yet, or the previous owner is not eligible) is
 *    assigned by its policy, in VIP order:
 *    - `round-robin` (the default): dealt in turn to eligible members, cycling in configuration
 *      order from the cursor; after each assignment the cursor moves just past the member dealt
 *      to, and the result carries the new cursor (modulo the member count);
 *    - `weighted`: the eligible member with the highest weight, equal weights by smallest id;
 *    - `hash`: rendezvous hashing of (VIP address, member id), highest score wins.
 *    With no eligible member the VIP is left without owner ("no-eligible-node").
 *
 * `candidates` lists the eligible members ranked by the policy for policy assignments; for
 * kept, pinned, preferred and failback decisions it is the single member that was considered.
 */
import type { Failback } from "../../config/types.ts";
import { rankHash, rankRoundRobin, rankWeighted } from "./policies.ts";
import type {
  PlacementDecision,
  PlacementInput,
  PlacementMember,
  PlacementResult,
  PlacementVip,
} from "./types.ts";

export function place(input: PlacementInput): PlacementResult {
  checkInput(input);
  const membersById = new Map(input.members.map((member) => [member.id, member]));
  const memberCount = input.members.length;
  let cursor = memberCount === 0 ? 0 : modulo(input.roundRobinCursor, memberCount);
  const decisions: PlacementDecision[] = [];
  input.vips.forEach((vip, vipIndex) => {
    const context: VipContext = {
      vip,
      vipIndex,
      previousOwner: input.previous[vipIndex],
      pin: input.pins.get(vipIndex),
      membersById,
      nowMs: input.nowMs,
    };
    const settled = settleWithoutPolicy(context);
    if (settled.decision !== undefined) {
      decisions.push(settled.decision);
      return;
    }
    const assigned = assignByPolicy(context, input.members, cursor, settled.notes);
    cursor = assigned.cursor;
    decisions.push(assigned.decision);
  });
  return {
    owners: decisions.map((decision) => decision.owner),
    roundRobinCursor: cursor,
    decisions,
  };
}

interface VipContext {
  readonly vip: PlacementVip;
  readonly vipIndex: number;
  readonly previousOwner: string | undefined;
  readonly pin: string | undefined;
  readonly membersById: ReadonlyMap<string, PlacementMember>;
  readonly nowMs: number;
}

/**
 * Rules 1-3. Returns a decision when pin, preferred node or previous owner settles the VIP;
 * otherwise the clauses (pin or preferred node not in force) that the policy text must repeat.
 */
function settleWithoutPolicy(context: VipContext): {
  decision?: PlacementDecision;
  notes: string[];
} {
  const { vip, pin, previousOwner, membersById } = context;
  const notes: string[] = [];
  if (pin !== undefined) {
    if (isEligible(membersById.get(pin))) {
      const from =
        previousOwner === pin ? "already there" : `moved from ${previousOwner ?? "no owner"}`;
      const clauses = [`pinned to ${pin} by an administrative move, ${from}`];
      return { decision: decide(context, pin, "pinned", [pin], clauses), notes };
    }
    // When the pin names the previous owner, the clause about that owner follows anyway.
    const why = pin === previousOwner ? "" : ` (${ineligibility(pin, membersById)})`;
    notes.push(`pin to ${pin} not in force${why}`);
  }
  const preferred = vip.preferred;
  if (preferred !== undefined && previousOwner !== preferred) {
    const preferredMember = membersById.get(preferred);
    if (isEligible(preferredMember)) {
      return settlePreferred(context, preferredMember!, notes);
    }
    notes.push(`preferred node ${ineligibility(preferred, membersById)}`);
  }
  if (previousOwner !== undefined && isEligible(membersById.get(previousOwner))) {
    return {
      decision: decide(
        context,
        previousOwner,
        "kept",
        [previousOwner],
        [...notes, `kept on ${previousOwner}, still eligible`],
      ),
      notes,
    };
  }
  return { notes };
}

/** Rule 3, with the preferred member eligible and not yet the owner. */
function settlePreferred(
  context: VipContext,
  preferred: PlacementMember,
  notes: string[],
): { decision: PlacementDecision; notes: string[] } {
  const { previousOwner, membersById } = context;
  const id = preferred.id;
  if (previousOwner === undefined) {
    const clauses = [...notes, `first assignment, to preferred node ${id}`];
    return { decision: decide(context, id, "preferred", [id], clauses), notes };
  }
  if (!isEligible(membersById.get(previousOwner))) {
    const clauses = [
      ...notes,
      ineligibility(previousOwner, membersById),
      `moved to preferred node ${id}`,
    ];
    return { decision: decide(context, id, "preferred", [id], clauses), notes };
  }
  const failback = failbackDue(context.vip.failback, preferred, context.nowMs);
  if (failback.due) {
    const clauses = [
      ...notes,
      `failed back from ${previousOwner} to preferred node ${id} (${failback.why})`,
    ];
    return { decision: decide(context, id, "failback", [id], clauses), notes };
  }
  const clauses = [...notes, `kept on ${previousOwner}, preferred node ${id} ${failback.why}`];
  return { decision: decide(context, previousOwner, "kept", [previousOwner], clauses), notes };
}

function failbackDue(
  failback: Failback,
  preferred: PlacementMember,
  nowMs: number,
): { due: boolean; why: string } {
  switch (failback.mode) {
    case "immediate":
      return { due: true, why: "failback immediate" };
    case "never":
      return { due: false, why: "is eligible but failback is never" };
    case "after": {
      const sinceMs = preferred.eligibleSinceMs;
      if (sinceMs === undefined) {
        return { due: false, why: "is eligible since an unknown time, failback waits" };
      }
      const eligibleMs = nowMs - sinceMs;
      if (eligibleMs >= failback.afterMs) {
        return {
          due: true,
          why: `eligible for ${eligibleMs} ms, failback after ${failback.afterMs} ms`,
        };
      }
      return {
        due: false,
        why: `eligible for only ${eligibleMs} ms of the ${failback.afterMs} ms before failback`,
      };
    }
  }
}

/** Rule 4: the VIP needs an owner and its policy picks one. */
function assignByPolicy(
  context: VipContext,
  members: readonly PlacementMember[],
  cursor: number,
  notes: readonly string[],
): { decision: PlacementDecision; cursor: number } {
  const { vip, previousOwner, membersById } = context;
  const cause =
    previousOwner === undefined ? "not yet assigned" : ineligibility(previousOwner, membersById);
  let candidates: string[];
  let nextCursor = cursor;
  let how: string;
  switch (vip.policy) {
    case "round-robin": {
      const ranked = rankRoundRobin(members, cursor);
      candidates = ranked.ids;
      if (ranked.positions.length > 0) nextCursor = (ranked.positions[0]! + 1) % members.length;
      how = "dealt round-robin to";
      break;
    }
    case "weighted":
      candidates = rankWeighted(members);
      how = "assigned to the heaviest eligible node,";
      break;
    case "hash":
      candidates = rankHash(vip.address, members);
      how = "assigned by rendezvous hash to";
      break;
  }
  const owner = candidates[0];
  if (owner === undefined) {
    const clauses = [...notes, cause, "no eligible node, left without owner"];
    return { decision: decide(context, undefined, "no-eligible-node", [], clauses), cursor };
  }
  const clauses = [...notes, cause, `${how} ${owner} (candidates ${candidates.join(", ")})`];
  return { decision: decide(context, owner, vip.policy, candidates, clauses), cursor: nextCursor };
}

function decide(
  context: VipContext,
  owner: string | undefined,
  reason: PlacementDecision["reason"],
  candidates: readonly string[],
  clauses: readonly string[],
): PlacementDecision {
  return {
    vipIndex: context.vipIndex,
    owner,
    previousOwner: context.previousOwner,
    reason,
    candidates,
    text: `${context.vip.address}: ${clauses.join("; ")}`,
  };
}

function isEligible(member: PlacementMember | undefined): boolean {
  return member?.eligible === true;
}

function ineligibility(id: string, membersById: ReadonlyMap<string, PlacementMember>): string {
  return membersById.has(id) ? `${id} is not eligible` : `${id} is not a member`;
}

function modulo(value: number, divisor: number): number {
  return ((value % divisor) + divisor) % divisor;
}

/**
 * The coordinator builds the input from validated config and its own tables, so a mismatch here
 * is a bug in the caller: fail loudly rather than publish a wrong table.
 */
function checkInput(input: PlacementInput): void {
  invariant(
    input.previous.length === input.vips.length,
    `previous has ${input.previous.length} entries for ${input.vips.length} VIPs`,
  );
  const ids = new Set<string>();
  for (const member of input.members) {
    invariant(!ids.has(member.id), `member id ${member.id} appears twice`);
    invariant(Number.isFinite(member.weight), `member ${member.id} has weight ${member.weight}`);
    ids.add(member.id);
  }
  for (const vipIndex of input.pins.keys()) {
    invariant(
      Number.isInteger(vipIndex) && vipIndex >= 0 && vipIndex < input.vips.length,
      `pin for VIP index ${vipIndex}, but there are ${input.vips.length} VIPs`,
    );
  }
  invariant(
    Number.isSafeInteger(input.roundRobinCursor),
    `round-robin cursor ${input.roundRobinCursor} is not an integer`,
  );
}

function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`placement input invariant broken: ${message}`);
}
