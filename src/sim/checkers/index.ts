/**
 * The simulator's invariant checkers, in the order they run. The ledger comes first: the
 * checkers after it read the leases and acknowledgements it has just updated.
 */
import { ElectionChecker } from "./election-checker.ts";
import { GrantChecker } from "./grant-checker.ts";
import { HoldersChecker } from "./holders-checker.ts";
import { LeaseChecker } from "./lease-checker.ts";
import { LeaseLedger } from "./lease-ledger.ts";
import type { Checker, Report, World } from "./types.ts";

export type { Checker, Report, ViolationKind, World } from "./types.ts";

export function createCheckers(world: World, report: Report): Checker[] {
  const ledger = new LeaseLedger(world);
  return [
    ledger,
    new HoldersChecker(world, report),
    new LeaseChecker(world, ledger, report),
    new GrantChecker(world, ledger, report),
    new ElectionChecker(world, report),
  ];
}
