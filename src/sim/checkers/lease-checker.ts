/**
 * The lease rules, checked against leases recomputed from the wire (`LeaseLedger`):
 *
 * - holder-without-lease: a running agent that is not paused has no VIP configured once its
 *   lease has ended on its own clock. Holders release two margins early (`releaseGuardMs`)
 *   so that the removal has finished by then, so no further allowance is due. A paused
 *   process cannot release: leases do not cover pauses (the kernel address lifetime and the
 *   new owner's occupancy probe do), so after waking it gets `releaseGuardMs`, the
 *   documented release time, to remove what its lease no longer covers.
 * - handover-before-expiry: when a node starts to acquire a VIP (asks for the occupancy
 *   probe), no other machine may have that VIP configured, or be probing or adding it,
 *   under a lease that still runs. A coordinator hands a VIP over only after every other
 *   node reported it released (then its address is gone and stays gone) or its lease surely
 *   expired. This holds whatever the occupancy probe would have found, so handover bugs
 *   show even when the probe hides them.
 */
import { releaseGuardMs } from "../../core/timing.ts";
import type { LeaseLedger } from "./lease-ledger.ts";
import type { Checker, Report, World } from "./types.ts";

export class LeaseChecker implements Checker {
  readonly #world: World;
  readonly #ledger: LeaseLedger;
  readonly #report: Report;

  constructor(world: World, ledger: LeaseLedger, report: Report) {
    this.#world = world;
    this.#ledger = ledger;
    this.#report = report;
  }

  onProbeStart(id: string, vip: number): void {
    const world = this.#world;
    for (const other of world.nodeIds) {
      if (other === id || !world.machineUp(other)) continue;
      if (!world.addresses(other).has(vip) && !world.acquiring(other, vip)) continue;
      const left = this.#ledger.leaseLeftMs(other);
      if (left > 0) {
        this.#report(
          "handover-before-expiry",
          `${id} starts to acquire ${world.vipAddresses[vip]} while ${other} has it under a lease that runs ${left} ms more`,
        );
      }
    }
  }

  check(): void {
    const world = this.#world;
    const now = world.nowMs();
    const guard = releaseGuardMs(world.timers);
    for (const id of world.nodeIds) {
      if (!world.agentUp(id) || world.paused(id)) continue;
      const held = world.addresses(id);
      if (held.size === 0) continue;
      const local = world.localAtMs(id, now);
      if (local < this.#ledger.leaseEndLocalMs(id)) continue;
      const woke = world.wokeAtMs(id);
      if (Number.isFinite(woke) && local < world.localAtMs(id, woke) + guard) continue;
      const addresses = [...held].map((vip) => world.vipAddresses[vip]).join(" ");
      this.#report("holder-without-lease", `${id} holds ${addresses} after its lease ended`);
    }
  }
}
