/**
 * The shipped systemd unit (examples/floatip@.service) as systemd itself reads it:
 * `systemd-analyze verify` finds nothing wrong (with its commands pointed at this checkout's
 * `bin/floatip`, since /usr/bin/floatip exists only once the package is installed), and
 * `systemd-analyze security --offline` rates its exposure at 3.0 or better.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

const root = join(import.meta.dirname, "..", "..");
const analyze = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" });
const skip = analyze.status === 0 ? false : "systemd-analyze is not installed";

describe("systemd unit", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "floatip-unit-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const unit = join(dir, "floatip@.service");
  writeFileSync(
    unit,
    readFileSync(join(root, "examples", "floatip@.service"), "utf8").replaceAll(
      "/usr/bin/floatip",
      join(root, "bin", "floatip"),
    ),
  );

  it("is Type=notify with a watchdog, and systemd-analyze verify finds nothing to say", () => {
    const text = readFileSync(unit, "utf8");
    assert.match(text, /^Type=notify$/m);
    assert.match(text, /^NotifyAccess=all$/m);
    assert.match(text, /^WatchdogSec=\d+s$/m);
    const verify = spawnSync("systemd-analyze", ["verify", unit], {
      encoding: "utf8",
      timeout: 60_000,
    });
    const problems = `${verify.stdout}${verify.stderr}`
      .split("\n")
      .filter((line) => line.trim() !== "");
    assert.deepEqual(problems, [], problems.join("\n"));
  });

  it("has an exposure level of 3.0 or better in systemd-analyze security", () => {
    const result = spawnSync("systemd-analyze", ["security", "--offline=true", unit], {
      encoding: "utf8",
      timeout: 60_000,
    });
    const match = /Overall exposure level for \S+: (\d+\.\d+)/.exec(result.stdout);
    assert.ok(match, result.stdout + result.stderr);
    const level = Number(match[1]);
    console.log(`# systemd-analyze security --offline: ${level}`);
    assert.ok(level <= 3.0, `exposure ${level}:\n${result.stdout}`);
  });
});
