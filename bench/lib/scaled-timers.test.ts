import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import { profiles } from "../../src/config/profiles.ts";
import { scaledTimers, timerProblems, timersYaml } from "./scaled-timers.ts";

describe("scaledTimers", () => {
  it("reproduces the fast profile at h = 10 ms", () => {
    assert.deepEqual(scaledTimers(10), profiles.fast);
  });

  it("gives valid timers across the benchmarked range", () => {
    for (const h of [1, 2, 5, 10, 20, 35, 50, 100, 250]) {
      assert.equal(timerProblems(scaledTimers(h)), "", `h = ${h}`);
    }
  });

  it("reports a broken set with the snake_case field name", () => {
    const broken = { ...scaledTimers(20), suspectAfterMs: 10 };
    assert.match(timerProblems(broken), /^suspect_after_ms must be greater/);
  });

  it("writes a timers block that the config loader reads back unchanged", () => {
    const timers = scaledTimers(35);
    const yaml = [
      "cluster: fipts-unit",
      "key_file: /dev/null",
      "profile: fast",
      "nodes:",
      "  - { id: n1, address: 198.18.0.1, interface: eth0 }",
      "vips:",
      "  - { address: 198.18.0.200/24 }",
      timersYaml(timers),
    ].join("\n");
    const config = parseConfig(yaml, "cluster.yaml", {});
    assert.deepEqual(config.timers, timers);
  });
});
