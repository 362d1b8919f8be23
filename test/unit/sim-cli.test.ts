/**
 * `floatip sim --timers`: the profile's timers overridden by name, as in the config's
 * `timers:` section. What config check would refuse is a warning (the simulator is where such
 * timers are tried), a typo or a non-number is a usage error (exit 2), and a violation's
 * replay line repeats the options the swarm ran with, so that it reproduces.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { overrideTimers } from "../../src/cli/commands/sim.ts";
import { profiles } from "../../src/config/profiles.ts";

const root = resolve(import.meta.dirname, "../..");

function floatip(...args: string[]) {
  const result = spawnSync(process.execPath, [join(root, "src/cli/main.ts"), ...args], {
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(result.error, undefined);
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("floatip sim --timers", () => {
  it("overrides timers by their config names and refuses what it cannot read", () => {
    assert.deepEqual(overrideTimers(profiles.lan, "lease_ms=180, heartbeat_interval_ms=40"), {
      ...profiles.lan,
      leaseMs: 180,
      heartbeatIntervalMs: 40,
    });
    assert.match(String(overrideTimers(profiles.lan, "lease=3")), /'lease=3': expected NAME=VALUE/);
    assert.match(String(overrideTimers(profiles.lan, "lease_ms=")), /is not a number/);
    assert.match(String(overrideTimers(profiles.lan, "lease_ms=1=2")), /expected NAME=VALUE/);
  });

  it("runs timers config check refuses, with a warning, and its replay line reproduces", () => {
    const swarm = floatip(
      "sim",
      ...["--seeds", "3", "--first", "56", "--nodes", "3", "--runtime", "--jobs", "1"],
      // lan's 100 ms heartbeats renew a lease of 330 ms or more.
      ...["--timers", "lease_ms=220"],
    );
    assert.equal(swarm.code, 1, swarm.stdout + swarm.stderr);
    assert.match(swarm.stderr, /warning: config check would refuse: lease_ms must be at least/);
    const replay = /\(replay: floatip (sim --seed 57 [^)]*)\)/.exec(swarm.stdout);
    assert.ok(replay, swarm.stdout);
    assert.match(replay[1]!, /--nodes 3 --runtime --timers lease_ms=220 --trace$/);
    const again = floatip(...replay[1]!.split(" "));
    assert.equal(again.code, 1);
    assert.match(again.stdout, /VIOLATION stability at 4567 ms/);
    // The lease the check asks for: the same seed is clean.
    const fixed = floatip(
      ...["sim", "--seed", "57", "--nodes", "3", "--runtime", "--timers", "lease_ms=330"],
    );
    assert.equal(fixed.code, 0, fixed.stdout);
    assert.equal(fixed.stderr, "");
  });

  it("a name it does not know is a usage error", () => {
    const typo = floatip("sim", "--seed", "1", "--timers", "lease=3");
    assert.equal(typo.code, 2);
    assert.match(
      typo.stderr,
      /--timers: 'lease=3': expected NAME=VALUE with NAME one of .*lease_ms/,
    );
  });
});
