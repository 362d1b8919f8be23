/**
 * Every subcommand answers `--help` (anywhere on its line) and `floatip help CMD` with its
 * usage on standard output and exit 0, doing nothing else; `floatip version` (and `--version`,
 * `-v`) prints the versions an operator pastes into a bug report.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";

const root = resolve(import.meta.dirname, "../..");

function floatip(...args: string[]) {
  const result = spawnSync(process.execPath, [join(root, "src/cli/main.ts"), ...args], {
    encoding: "utf8",
    timeout: 30_000,
    // No agent is reachable: a command that ignored --help would fail, not print usage.
    env: { ...process.env, FLOATIP_API: "127.0.0.1:1" },
  });
  assert.equal(result.error, undefined);
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const commands = [
  "agent",
  "status",
  "ip",
  "node",
  "config",
  "sim",
  "demo",
  "relay",
  "volume",
  "request",
  "traffic",
];

describe("floatip help and version", () => {
  it("prints each command's usage for COMMAND --help and for help COMMAND, exit 0", () => {
    for (const command of commands) {
      const direct = floatip(command, "--help");
      assert.equal(direct.code, 0, `${command} --help: ${direct.stderr}`);
      assert.match(direct.stdout, /^usage:/, `${command} --help`);
      assert.match(direct.stdout, new RegExp(`floatip ${command}\\b`), command);
      const viaHelp = floatip("help", command);
      assert.equal(viaHelp.code, 0);
      assert.equal(viaHelp.stdout, direct.stdout, `help ${command}`);
    }
  });

  it("treats --help after other arguments the same way, and touches nothing", () => {
    const moved = floatip("ip", "move", "198.18.0.100", "n3", "--help");
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, /floatip ip move VIP NODE/);
    assert.equal(floatip("sim", "--seeds", "5", "-h").code, 0);
  });

  it("refuses help for an unknown command with exit 2", () => {
    const unknown = floatip("help", "frobnicate");
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  });

  it("prints floatip, Node.js and wire-format versions for version, --version and -v", () => {
    const version = floatip("version");
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^floatip \d+\.\d+\.\d+\nnode v\d+\.\d+\.\d+\nwire format 2\n/);
    assert.match(version.stdout, /running TypeScript sources/);
    assert.equal(floatip("--version").stdout, version.stdout);
    assert.equal(floatip("-v").stdout, version.stdout);
  });
});
