/**
 * `floatip config check` run as a user runs it: the real CLI in a child process, on files in a
 * temporary directory, asserting on exit codes and printed lines.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, it } from "node:test";

const root = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "floatip-config-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function floatip(...args: string[]) {
  const result = spawnSync(process.execPath, [join(root, "src/cli/main.ts"), ...args], {
    cwd: dir,
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(result.error, undefined);
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const good = join(dir, "good.yaml");
copyFileSync(join(root, "examples/cluster.yaml"), good);

const bad = join(dir, "bad.yaml");
writeFileSync(
  bad,
  `cluster: demo
key_file: /etc/floatip/cluster.key
profile: lan
timers: { lease_ms: 100 }
nodes:
  - { id: n1, address: 198.18.0.11, interface: eth0 }
  - { id: n2, address: 198.18.0.12, interface: eth0, wieght: 5 }
  - { id: n3, address: 198.18.0.12, interface: eth0 }
vips:
  - { address: 198.18.0.100/24 }
  - { address: 198.18.0.101/24, preferred: n9 }
checks:
  - { name: web, kind: tcp, host: 127.0.0.1 }
`,
);

describe("floatip config check", () => {
  it("accepts a valid file: one summary line, exit 0", () => {
    const { code, stdout } = floatip("config", "check", good);
    assert.equal(code, 0);
    assert.equal(stdout, `${good}: ok (3 nodes, 2 VIPs, profile lan)\n`);
  });

  it("prints every problem of an invalid file with path and fix, exit 1", () => {
    const { code, stdout } = floatip("config", "check", bad);
    assert.equal(code, 1);
    const lines = stdout.trimEnd().split("\n");
    const expected = [
      `${bad}: vips[1].preferred: node "n9" is not defined — fix: use one of n1, n2, n3`,
      `${bad}: nodes[1].wieght: unknown key "wieght" — fix: did you mean "weight"?`,
      `${bad}: checks[0].port: is required — fix: add port: 80`,
    ];
    for (const line of expected)
      assert.ok(lines.includes(line), `missing line: ${line}\n${stdout}`);
    assert.ok(
      lines.some((l) => l.startsWith(`${bad}: nodes[2].address: 198.18.0.12:7946 is already used`)),
    );
    assert.ok(lines.some((l) => l.startsWith(`${bad}: timers.lease_ms: `)));
    assert.equal(lines.at(-1), `${bad}: ${lines.length - 1} problems`);
    assert.ok(lines.length - 1 >= 5);
  });

  it("prints a JSON report with --json", () => {
    const ok = floatip("config", "check", good, "--json");
    assert.equal(ok.code, 0);
    assert.deepEqual(JSON.parse(ok.stdout), { ok: true, problems: [] });

    const failed = floatip("config", "check", "--json", bad);
    assert.equal(failed.code, 1);
    const report = JSON.parse(failed.stdout) as {
      ok: boolean;
      code: string;
      problems: { file: string; path: string; message: string; fix: string; line?: number }[];
    };
    assert.equal(report.ok, false);
    assert.equal(report.code, "CONFIG_INVALID");
    const preferred = report.problems.find((p) => p.path === "vips[1].preferred");
    assert.equal(preferred?.file, bad);
    assert.equal(preferred?.fix, "use one of n1, n2, n3");
    assert.equal(preferred?.line, 11);
  });

  it("checks --node against the configured nodes", () => {
    assert.equal(floatip("config", "check", good, "--node", "n2").code, 0);
    const { code, stdout } = floatip("config", "check", good, "--node", "n7");
    assert.equal(code, 1);
    assert.match(stdout, /node "n7" \(chosen with --node\) is not defined/);
  });

  it("reports a missing file, exit 1", () => {
    const missing = join(dir, "nope.yaml");
    const { code, stdout } = floatip("config", "check", missing, "--json");
    assert.equal(code, 1);
    assert.equal(JSON.parse(stdout).code, "CONFIG_UNREADABLE");
  });

  it("reports a YAML syntax error with its line, exit 1", () => {
    const broken = join(dir, "broken.yaml");
    writeFileSync(broken, "cluster: demo\nnodes: [\n  { id: n1\n");
    const { code, stdout } = floatip("config", "check", broken);
    assert.equal(code, 1);
    assert.match(stdout, /YAML syntax error at line \d+, column \d+/);
  });

  it("exits 2 on usage errors", () => {
    for (const args of [
      ["config"],
      ["config", "verify", good],
      ["config", "check"],
      ["config", "check", good, "--strict"],
      ["config", "check", good, good],
    ]) {
      const { code, stderr } = floatip(...args);
      assert.equal(code, 2, args.join(" "));
      assert.match(stderr, /usage: floatip config check FILE/);
    }
  });

  it("works through the bin/floatip launcher", () => {
    const result = spawnSync(join(root, "bin/floatip"), ["config", "check", good], {
      encoding: "utf8",
      timeout: 30_000,
      env: { ...process.env, FLOATIP_NODE: process.execPath },
    });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `${good}: ok (3 nodes, 2 VIPs, profile lan)\n`);
  });
});
