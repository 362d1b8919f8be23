/**
 * What the mutation suite runs against a mutated copy of the tree (`scripts/mutants.ts`
 * imports this file from the copy): every property check, then swarm seeds until one
 * violates an invariant or the budget runs out. The seeds rotate through four settings so
 * that every checker gets its chance: `lan` and `wan` with the occupancy probe working, and
 * `lan` and `fast` with it blinded (leases alone); two of them also drive the agent's own
 * control loop (the simulator's `runtime` mode), so mutations of src/agent/control-loop.ts
 * are hunted too. An exception thrown by the core counts as
 * nothing caught: only an invariant or a property may catch a mutation.
 */
import { profiles } from "../config/profiles.ts";
import type { Timers } from "../config/types.ts";
import { properties } from "./properties.ts";
import { runSwarmSeed } from "./swarm.ts";

export interface HuntOptions {
  /** Swarm seeds to try at most. */
  readonly seeds: number;
  readonly firstSeed: number;
  /** Stop the swarm at its first violation (else run every seed, for the baseline). */
  readonly stopAtFirst: boolean;
}

export interface HuntResult {
  /** Properties that failed, with what went wrong. */
  readonly properties: readonly { name: string; failure: string }[];
  /** The first swarm violation, if any. */
  readonly swarm:
    | {
        readonly kind: string;
        readonly detail: string;
        readonly seed: number;
        readonly setting: string;
        readonly seedsRun: number;
      }
    | undefined;
  readonly seedsRun: number;
  /** Seeds on which the core threw instead of an invariant firing. */
  readonly exceptions: readonly string[];
}

const settings: readonly {
  name: string;
  timers: Timers;
  blindProbe: boolean;
  runtime: boolean;
}[] = [
  { name: "lan", timers: profiles.lan, blindProbe: false, runtime: false },
  { name: "lan, runtime", timers: profiles.lan, blindProbe: false, runtime: true },
  { name: "lan, blind probe", timers: profiles.lan, blindProbe: true, runtime: false },
  { name: "fast, blind probe, runtime", timers: profiles.fast, blindProbe: true, runtime: true },
  { name: "fast, blind probe", timers: profiles.fast, blindProbe: true, runtime: false },
  { name: "wan", timers: profiles.wan, blindProbe: false, runtime: false },
];

export function hunt(options: HuntOptions): HuntResult {
  const failed: { name: string; failure: string }[] = [];
  const exceptions: string[] = [];
  for (const property of properties) {
    try {
      const failure = property.check();
      if (failure) failed.push({ name: property.id, failure });
    } catch (error) {
      exceptions.push(`property ${property.id}: ${String(error)}`);
    }
  }
  let swarm: HuntResult["swarm"];
  let seedsRun = 0;
  for (let i = 0; i < options.seeds; i += 1) {
    const setting = settings[i % settings.length]!;
    const seed = options.firstSeed + i;
    seedsRun = i + 1;
    try {
      const result = runSwarmSeed({
        seed,
        timers: setting.timers,
        blindProbe: setting.blindProbe,
        runtime: setting.runtime,
      });
      const violation = result.violations[0];
      if (violation && !swarm) {
        swarm = {
          kind: violation.kind,
          detail: violation.detail,
          seed,
          setting: setting.name,
          seedsRun,
        };
        if (options.stopAtFirst) break;
      }
    } catch (error) {
      exceptions.push(`seed ${seed} (${setting.name}): ${String(error).split("\n")[0]}`);
    }
  }
  return { properties: failed, swarm, seedsRun, exceptions };
}
