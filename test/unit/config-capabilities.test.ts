/**
 * `floatip config check` validates the capability sections (relays, storage, traffic) with
 * the same parsers the agent uses at start, reporting every problem with key path and fix.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

const main = join(import.meta.dirname, "..", "..", "src", "cli", "main.ts");
const dir = mkdtempSync(join(tmpdir(), "floatip-config-capabilities-"));
writeFileSync(join(dir, "cluster.key"), Buffer.alloc(32, 7), { mode: 0o600 });
writeFileSync(join(dir, "storage.token"), "storage-token\n", { mode: 0o600 });

const base = `cluster: t
key_file: cluster.key
nodes:
  - { id: n1, address: 198.18.0.11, interface: eth0 }
  - { id: n2, address: 198.18.0.12, interface: eth0 }
  - { id: n3, address: 198.18.0.13, interface: eth0 }
vips:
  - { address: 198.18.0.100/24 }
`;

function check(name: string, yaml: string): Promise<{ code: number; stdout: string }> {
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return new Promise((resolve) => {
    execFile(process.execPath, [main, "config", "check", file, "--json"], (error, stdout) => {
      resolve({ code: error ? Number(error.code) : 0, stdout });
    });
  });
}

describe("config check of capability sections", () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("accepts valid relays, storage and traffic sections", async () => {
    const result = await check(
      "good.yaml",
      `${base}relays:
  - { name: web, listen: 198.18.0.100:80, primary: 198.18.1.11:8080, standby: [198.18.1.12:8080] }
storage:
  vip: 198.18.0.100
  backend: { kind: file, dir: /tmp/volumes }
  clients: [{ name: ops, token_file: ${join(dir, "storage.token")}, access: write }]
traffic: { interval: 1s }
`,
    );
    assert.equal(result.code, 0, result.stdout);
    assert.equal(JSON.parse(result.stdout).ok, true);
  });

  it("reports every problem of every section at once, with paths", async () => {
    const result = await check(
      "bad.yaml",
      `${base}relays:
  - { name: web, listen: 198.18.0.100:80, primary: 198.18.1.11:8080, standby: [nope] }
storage: { vip: 198.18.0.99, backend: { kind: file, dir: /tmp/volumes } }
traffic: { interval: fast }
`,
    );
    assert.equal(result.code, 1);
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      problems: { path: string; fix: string }[];
    };
    assert.equal(report.ok, false);
    const paths = report.problems.map((p) => p.path);
    assert.ok(paths.includes("relays[0].standby[0]"), paths.join(", "));
    assert.ok(paths.includes("storage.vip"), paths.join(", "));
    assert.ok(paths.includes("traffic.interval"), paths.join(", "));
    assert.ok(report.problems.every((p) => p.fix.length > 0));
  });

  it("reads the storage client token files as the gateway will: missing and too open are errors", async () => {
    writeFileSync(join(dir, "open.token"), "open-token\n", { mode: 0o644 });
    const result = await check(
      "tokens.yaml",
      `${base}storage:
  vip: 198.18.0.100
  backend: { kind: file, dir: /tmp/volumes }
  clients:
    - { name: ok, token_file: ${join(dir, "storage.token")}, access: write }
    - { name: open, token_file: ${join(dir, "open.token")}, access: read }
    - { name: gone, token_file: ${join(dir, "absent.token")}, access: read }
  tls: { cert_file: ${join(dir, "absent.crt")}, key_file: ${join(dir, "open.token")} }
`,
    );
    assert.equal(result.code, 1, result.stdout);
    const report = JSON.parse(result.stdout) as {
      problems: { path: string; message: string; fix: string }[];
    };
    const byPath = new Map(report.problems.map((p) => [p.path, p]));
    assert.match(
      byPath.get("storage.clients[1].token_file")?.fix ?? "",
      /chmod 600 .*open\.token/,
      result.stdout,
    );
    assert.match(byPath.get("storage.clients[2].token_file")?.message ?? "", /ENOENT/);
    assert.equal(byPath.has("storage.clients[0].token_file"), false, result.stdout);
    assert.match(byPath.get("storage.tls.cert_file")?.message ?? "", /ENOENT/);
    assert.match(byPath.get("storage.tls.key_file")?.fix ?? "", /chmod 600/);
  });
});
