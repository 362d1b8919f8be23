/**
 * One holder per VIP: at no instant do two machines have the same VIP configured. The
 * end-to-end promise, checked on the virtual interfaces themselves (a killed agent's or a
 * paused agent's addresses count: clients reach them).
 */
import type { Checker, Report, World } from "./types.ts";

export class HoldersChecker implements Checker {
  readonly #world: World;
  readonly #report: Report;
  /** `world.addressChanges()` at the last look: nothing else can make two holders. */
  #checkedAt = -1;

  constructor(world: World, report: Report) {
    this.#world = world;
    this.#report = report;
  }

  check(): void {
    const world = this.#world;
    const changes = world.addressChanges();
    if (changes === this.#checkedAt) return;
    this.#checkedAt = changes;
    world.vipAddresses.forEach((address, vip) => {
      const holders = world.nodeIds.filter(
        (id) => world.machineUp(id) && world.addresses(id).has(vip),
      );
      if (holders.length > 1) {
        this.#report("two-holders", `${address} held by ${holders.join(" and ")}`);
      }
    });
  }
}
