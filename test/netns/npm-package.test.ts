/**
 * The npm package as an operator installs it: `npm pack` of this checkout (the `prepack`
 * step compiles to dist/), `npm install -g` of the tarball into a temporary prefix (the
 * `install` step builds the native addon with node-gyp; dependencies come from the
 * registry), then the installed `floatip` prints its version, has its manual pages and
 * completion, checks a config, and runs a
 * one-node cluster in a network namespace whose agent takes its VIP and gives it back on
 * SIGTERM. Nothing of the checkout is used after the install.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { run } from "../../src/adapters/exec.ts";
import { allLogs, type LiveCluster, startCluster, waitSettled } from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const root = join(import.meta.dirname, "..", "..");
// npm and node-gyp run with the Node that runs this test (Node 24 from scripts/setup.sh).
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}` };

describe("npm package", { skip: skipUnlessRoot() }, () => {
  const work = mkdtempSync(join(tmpdir(), "fipnp-"));
  const prefix = join(work, "prefix");
  let cluster: LiveCluster | undefined;
  after(async () => {
    await cluster?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it("packs, installs globally and runs: version, config check, an agent that takes its VIP", async () => {
    await run("npm", ["pack", "--pack-destination", work], {
      cwd: root,
      env,
      timeoutMs: 300_000,
    });
    const tarball = readdirSync(work).find((f) => f.endsWith(".tgz"));
    assert.ok(tarball, "npm pack made a tarball");
    await run("npm", ["install", "-g", "--prefix", prefix, join(work, tarball)], {
      env,
      timeoutMs: 600_000,
    });
    const floatip = join(prefix, "bin", "floatip");
    const version = await run(floatip, ["--version"], { env, timeoutMs: 30_000 });
    assert.match(version.stdout, /\d+\.\d+\.\d+/);

    // The manual pages come with the package and are linked where man finds them.
    for (const page of ["man8/floatip.8", "man5/floatip.yaml.5"]) {
      assert.ok(existsSync(join(prefix, "share", "man", page)), `${page} installed`);
    }
    const completion = await run(floatip, ["completion", "bash"], { env, timeoutMs: 30_000 });
    assert.match(completion.stdout, /complete -F _floatip floatip/);

    const installed = join(prefix, "lib", "node_modules", "floatip");
    const config = join(work, "one.yaml");
    writeFileSync(join(work, "cluster.key"), Buffer.alloc(32, 9), { mode: 0o600 });
    writeFileSync(
      config,
      [
        "cluster: pkg",
        `key_file: ${join(work, "cluster.key")}`,
        "nodes:",
        "  - { id: n1, address: 198.18.250.11, interface: eth0 }",
        "vips:",
        "  - { address: 198.18.250.100/24 }",
      ].join("\n"),
    );
    const checked = await run(floatip, ["config", "check", config], { env, timeoutMs: 30_000 });
    assert.match(checked.stdout, /ok/i, checked.stdout);

    // The installed agent in a namespace: a one-node cluster takes its VIP.
    cluster = await startCluster({
      prefix: "fipnp-",
      nodes: 1,
      vips: [{ host: 100 }],
      main: join(installed, "dist", "cli", "main.js"),
    });
    const held = await waitSettled(cluster);
    const vip = cluster.vipAddresses[0]!;
    assert.equal(held.get(vip), "n1", `n1 holds ${vip}\n${allLogs(cluster)}`);
    cluster.signal("n1", "SIGTERM");
    const deadline = Date.now() + 10_000;
    while ((await cluster.heldVips("n1")).length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(await cluster.heldVips("n1"), [], "the VIP is gone after SIGTERM");
  });
});
