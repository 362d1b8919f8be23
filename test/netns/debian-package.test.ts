/**
 * The Debian package as an operator installs it: scripts/deb.sh builds it, `dpkg -i`
 * installs it on this machine, the installed /usr/bin/floatip (with the Node.js the package
 * ships) prints its version, checks a config and runs a one-node cluster in a namespace
 * whose agent takes its VIP; `dpkg -r` then leaves nothing but the config, and the cleanup
 * purges that too. Skipped where dpkg is missing or floatip is already installed (the test
 * must not replace an operator's package).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { run } from "../../src/adapters/exec.ts";
import { allLogs, type LiveCluster, startCluster, waitSettled } from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const root = join(import.meta.dirname, "..", "..");

function skipReason(): string | false {
  const notRoot = skipUnlessRoot();
  if (notRoot) return notRoot;
  if (spawnSync("dpkg", ["--version"]).status !== 0) return "dpkg is not available";
  // dpkg-query's own format syntax, not a template string.
  const format = ["$", "{Status}"].join("");
  const installed = spawnSync("dpkg-query", ["-W", "-f", format, "floatip"], {
    encoding: "utf8",
  });
  if (installed.status === 0 && installed.stdout.includes("installed")) {
    return "a floatip package is already installed here";
  }
  return false;
}

describe("Debian package", { skip: skipReason() }, () => {
  const work = mkdtempSync(join(tmpdir(), "fipdeb-"));
  let cluster: LiveCluster | undefined;
  let installed = false;
  after(async () => {
    await cluster?.destroy();
    if (installed) spawnSync("dpkg", ["--purge", "floatip"], { timeout: 120_000 });
    rmSync(work, { recursive: true, force: true });
  });

  it("builds, installs with dpkg, runs the installed agent, and removes cleanly", async () => {
    const built = await run("bash", [join(root, "scripts", "deb.sh"), work], {
      timeoutMs: 900_000,
    });
    const deb = built.stdout.trim().split("\n").at(-1)!;
    assert.ok(existsSync(deb), `deb.sh made ${deb}`);
    const contents = await run("dpkg-deb", ["--contents", deb], { timeoutMs: 60_000 });
    for (const path of [
      "./usr/bin/floatip",
      "./usr/lib/floatip/node/bin/node",
      "./etc/floatip/cluster.yaml",
      "./lib/systemd/system/floatip@.service",
      "./usr/share/man/man8/floatip.8.gz",
      "./usr/share/bash-completion/completions/floatip",
    ]) {
      assert.ok(contents.stdout.includes(path), `${path} in the package`);
    }

    installed = true;
    await run("dpkg", ["-i", deb], { timeoutMs: 300_000 });
    const version = await run("/usr/bin/floatip", ["--version"], { timeoutMs: 30_000 });
    assert.match(version.stdout, /\d+\.\d+\.\d+/);
    writeFileSync(join(work, "cluster.key"), Buffer.alloc(32, 5), { mode: 0o600 });
    const config = join(work, "one.yaml");
    writeFileSync(
      config,
      [
        "cluster: deb",
        `key_file: ${join(work, "cluster.key")}`,
        "nodes:",
        "  - { id: n1, address: 198.18.251.11, interface: eth0 }",
        "vips:",
        "  - { address: 198.18.251.100/24 }",
      ].join("\n"),
    );
    const checked = await run("/usr/bin/floatip", ["config", "check", config], {
      timeoutMs: 30_000,
    });
    assert.match(checked.stdout, /ok/);

    cluster = await startCluster({
      prefix: "fipdeb-",
      nodes: 1,
      vips: [{ host: 100 }],
      main: "/usr/lib/floatip/dist/cli/main.js",
      node: "/usr/lib/floatip/node/bin/node",
    });
    const held = await waitSettled(cluster);
    assert.equal(held.get(cluster.vipAddresses[0]!), "n1", allLogs(cluster));
    await cluster.destroy();
    cluster = undefined;

    await run("dpkg", ["-r", "floatip"], { timeoutMs: 120_000 });
    assert.equal(existsSync("/usr/bin/floatip"), false, "the launcher is gone");
    assert.equal(existsSync("/usr/lib/floatip"), false, "the program is gone");
    assert.equal(existsSync("/etc/floatip/cluster.yaml"), true, "the config stays until purge");
    await run("dpkg", ["--purge", "floatip"], { timeoutMs: 120_000 });
    installed = false;
    assert.equal(existsSync("/etc/floatip/cluster.yaml"), false, "purge removes the config");
  });
});
