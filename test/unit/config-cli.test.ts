/**
 * `floatip config check` run as a user runs it: the real CLI in a child process, on files in a
 * temporary directory, asserting on exit codes and printed lines.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

// The example, with the files it names made to exist here: the check reads them.
const good = join(dir, "good.yaml");
const keyFile = join(dir, "cluster.key");
const tokenFile = join(dir, "api.token");
writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
writeFileSync(tokenFile, "s3cret-token\n", { mode: 0o600 });
const hook = join(dir, "notify.sh");
writeFileSync(hook, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
const example = readFileSync(join(root, "examples/cluster.yaml"), "utf8");
writeFileSync(
  good,
  example
    .replace("key_file: /etc/floatip/cluster.key", `key_file: ${keyFile}`)
    .replace("token_file: /etc/floatip/api.token", `token_file: ${tokenFile}`)
    .replace("command: /usr/local/bin/floatip-notify", `command: ${hook}`)
    .replace('command: ["/usr/local/bin/check", "--quick"]', `command: ["${hook}", "--quick"]`),
);

/** A line without its `:line:column` (asserted on its own where it matters). */
const unplaced = (line: string) => line.replace(/^(\S+?):\d+:\d+: /, "$1: ");

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
    const placed = stdout.trimEnd().split("\n");
    const lines = placed.map(unplaced);
    assert.ok(
      placed.some((l) => l.startsWith(`${bad}:11:`) && l.includes("vips[1].preferred")),
      `the text names line and column like --json\n${stdout}`,
    );
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
    assert.deepEqual(JSON.parse(ok.stdout), { ok: true, problems: [], warnings: [] });

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

  it("checks --node against the configured nodes, and that node's address and interfaces here", () => {
    const { code, stdout } = floatip("config", "check", good, "--node", "n7");
    assert.equal(code, 1);
    assert.match(stdout, /node "n7" \(chosen with --node\) is not defined/);
    // This machine is not n2: its address is on no interface here, and eth1 (a VIP's
    // interface override in the example) is no interface of this machine either.
    const elsewhere = floatip("config", "check", good, "--node", "n2");
    assert.equal(elsewhere.code, 1, elsewhere.stdout);
    assert.match(
      elsewhere.stdout,
      /nodes\[1\]\.address: 198\.18\.0\.12 is not configured on any interface of this machine/,
    );
    assert.match(elsewhere.stdout, /vips\[1\]\.interface: interface eth1 does not exist/);
    // A node on the loopback interface is one this machine can be.
    const local = join(dir, "local.yaml");
    writeFileSync(
      local,
      [
        "cluster: local",
        `key_file: ${keyFile}`,
        "nodes:",
        "  - { id: n1, address: 127.0.0.1, interface: lo }",
        "  - { id: n2, address: 127.0.0.2, interface: lo }",
        "  - { id: n3, address: 127.0.0.3, interface: lo }",
        "vips:",
        "  - { address: 127.0.0.100/8 }",
        "",
      ].join("\n"),
    );
    const here = floatip("config", "check", local, "--node", "n1");
    assert.equal(here.code, 0, here.stdout);
    assert.equal(here.stdout, `${local}: ok (3 nodes, 1 VIP, profile lan)\n`);
  });

  it("reads the files the config names, as the agent will", () => {
    const variant = (name: string, edit: (text: string) => string) => {
      const path = join(dir, `${name}.yaml`);
      writeFileSync(path, edit(readFileSync(good, "utf8")));
      return floatip("config", "check", path);
    };
    const short = join(dir, "short.key");
    writeFileSync(short, randomBytes(16), { mode: 0o600 });
    const emptyToken = join(dir, "empty.token");
    writeFileSync(emptyToken, "\n", { mode: 0o600 });
    const notExecutable = join(dir, "hook.txt");
    writeFileSync(notExecutable, "#!/bin/sh\n", { mode: 0o644 });
    const openKey = join(dir, "open.key");
    writeFileSync(openKey, randomBytes(32));
    chmodSync(openKey, 0o644);
    const openToken = join(dir, "open.token");
    writeFileSync(openToken, "a-token\n");
    chmodSync(openToken, 0o640);
    const cases: [string, (t: string) => string, RegExp][] = [
      [
        "openkey",
        (t) => t.replace(keyFile, openKey),
        /key_file: cluster key file .*open\.key is accessible by group or others \(mode 0644\)(.*) — fix: chmod 600 .*open\.key/,
      ],
      [
        "opentoken",
        (t) => t.replace(tokenFile, openToken),
        /api\.token_file: the API token file .*open\.token is accessible by group or others \(mode 0640\) — fix: chmod 600 .*open\.token/,
      ],
      [
        "nokey",
        (t) => t.replace(keyFile, join(dir, "absent.key")),
        /:\d+:\d+: key_file: cluster key file .*absent\.key does not exist — fix: create one/,
      ],
      [
        "shortkey",
        (t) => t.replace(keyFile, short),
        /key_file: cluster key file .* holds 16 bytes of key material/,
      ],
      [
        "notoken",
        (t) => t.replace(tokenFile, join(dir, "absent.token")),
        /api\.token_file: cannot read the API token file .*absent\.token \(ENOENT\)/,
      ],
      [
        "emptytoken",
        (t) => t.replace(tokenFile, emptyToken),
        /api\.token_file: the API token file .* is empty/,
      ],
      [
        "nohook",
        (t) => t.replace(`command: ${hook}`, "command: /nonexistent/hook"),
        /notify\.command: \/nonexistent\/hook does not exist/,
      ],
      [
        "noexec",
        (t) => t.replace(`command: ${hook}`, `command: ${notExecutable}`),
        /notify\.command: .*hook\.txt is not executable/,
      ],
      [
        "nocheck",
        (t) => t.replace(`["${hook}", "--quick"]`, '["no-such-check-command"]'),
        /checks\[3\]\.command: no-such-check-command is not on PATH/,
      ],
    ];
    for (const [name, edit, expected] of cases) {
      const { code, stdout } = variant(name, edit);
      assert.equal(code, 1, `${name}: exit 1\n${stdout}`);
      assert.match(stdout, expected, name);
      assert.match(stdout, /: 1 problem\n$/, `${name}: exactly that problem`);
    }
  });

  it("checks IPv6: VIPs and nodes accepted, a link-local VIP refused with its reason, a VIP outside the nodes' prefix warned", () => {
    const path = join(dir, "six.yaml");
    const six = readFileSync(good, "utf8")
      .replace("address: 198.18.0.11,", "address: 2001:db8::11,")
      .replace("address: 198.18.0.12,", "address: 2001:db8::12,")
      .replace("address: 198.18.0.13,", "address: 2001:db8::13,")
      .replace("address: 198.18.0.100/24", 'address: "2001:db8::100/64"')
      .replace("address: 198.18.0.101/24", 'address: "2001:db8:1::101/64"');
    writeFileSync(path, six);
    const ok = floatip("config", "check", path);
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(
      ok.stdout,
      /^warning: .*vips\[1\]\.address: no node has an address in 2001:db8:1::101\/64/m,
    );
    assert.doesNotMatch(ok.stdout, /vips\[0\]/);
    writeFileSync(path, six.replace('address: "2001:db8::100/64"', 'address: "fe80::100/64"'));
    const refused = floatip("config", "check", path);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(
      refused.stdout,
      /vips\[0\]\.address: fe80::100 is link-local: .* — fix: float a global or unique-local/,
    );
  });

  it("warns, and still exits 0, for a two-node cluster and a VIP outside every node's subnet", () => {
    const path = join(dir, "two.yaml");
    writeFileSync(
      path,
      readFileSync(good, "utf8")
        .replace(/^ {2}- \{ id: n3.*\n/m, "")
        .replace("198.18.0.100/24", "198.19.5.100/24"),
    );
    const { code, stdout } = floatip("config", "check", path);
    assert.equal(code, 0, stdout);
    assert.match(stdout, /^warning: .*:\d+:\d+: nodes: two nodes: a majority of two is both/m);
    assert.match(
      stdout,
      /^warning: .*vips\[0\]\.address: no node has an address in 198\.19\.5\.100\/24/m,
    );
    assert.match(stdout, /: ok \(2 nodes, 2 VIPs, profile lan, 2 warnings\)\n$/);
    const json = JSON.parse(floatip("config", "check", path, "--json").stdout) as {
      ok: boolean;
      warnings: { path: string }[];
    };
    assert.equal(json.ok, true);
    assert.deepEqual(
      json.warnings.map((w) => w.path),
      ["nodes", "vips[0].address"],
    );
  });

  it("warns for a lease too short for a coordinator handover, naming the key and the value that works", () => {
    const path = join(dir, "short-lease.yaml");
    // 400 ms renews (lan's 100 ms heartbeats need 330) but a new coordinator may need 460.
    writeFileSync(
      path,
      readFileSync(good, "utf8").replace("timers: { lease_ms: 500 }", "timers: { lease_ms: 400 }"),
    );
    const { code, stdout } = floatip("config", "check", path);
    assert.equal(code, 0, stdout);
    assert.match(
      stdout,
      /^warning: .*:\d+:\d+: timers\.lease_ms: 400 ms is shorter than a new coordinator needs to grant after the old one crashed \(460 ms .* — fix: set timers\.lease_ms to at least 460/m,
    );
    writeFileSync(
      path,
      readFileSync(good, "utf8").replace("timers: { lease_ms: 500 }", "timers: { lease_ms: 460 }"),
    );
    assert.doesNotMatch(floatip("config", "check", path).stdout, /warning/);
    // On the tick every hop of the handover waits for a tick: lan then asks 1,589 ms.
    writeFileSync(
      path,
      readFileSync(good, "utf8").replace(
        "timers: { lease_ms: 500 }",
        "receive: on-tick\ntimers: { election_timeout_ms: 419 }",
      ),
    );
    const onTick = floatip("config", "check", path);
    assert.equal(onTick.code, 0, onTick.stdout);
    assert.match(
      onTick.stdout,
      /timers\.lease_ms: 460 ms is shorter .*\(1589 ms .*on-tick.* — fix: set timers\.lease_ms to at least 1589, or remove receive: on-tick/,
    );
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

  it("works through the bin/floatip launcher, also from a notify hook (FLOATIP_NODE is a node id there)", () => {
    const result = spawnSync(join(root, "bin/floatip"), ["config", "check", good], {
      encoding: "utf8",
      timeout: 30_000,
      env: { ...process.env, FLOATIP_NODEJS: process.execPath, FLOATIP_NODE: "n1" },
    });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `${good}: ok (3 nodes, 2 VIPs, profile lan)\n`);
  });
});
