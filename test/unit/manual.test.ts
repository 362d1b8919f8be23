/**
 * The manual pages and shell completion are generated from the program itself, so they
 * cannot drift: every key the config loader accepts is described in floatip.yaml(5) and
 * nothing else is, every command appears in floatip(8) with its usage, both pages render
 * without a groff warning, and the bash completion completes commands and their options.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { commands } from "../../src/cli/commands-table.ts";
import {
  bashCompletion,
  commandManPage,
  configManPage,
  documentedPaths,
} from "../../src/cli/manual.ts";
import { keyReference } from "../../src/config/reference.ts";

const dir = mkdtempSync(join(tmpdir(), "floatip-manual-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function groffWarnings(page: string, name: string): string {
  const file = join(dir, name);
  writeFileSync(file, page);
  const result = spawnSync("groff", ["-man", "-Tutf8", "-ww", "-z", file], {
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(result.status, 0, result.stderr);
  return result.stderr.trim();
}

describe("manual pages and completion", () => {
  it("floatip.yaml(5) describes exactly the keys the loader accepts", () => {
    const accepted = new Set(documentedPaths());
    const described = new Set(Object.keys(keyReference));
    assert.deepEqual(
      [...accepted].filter((p) => !described.has(p)),
      [],
      "accepted by the loader but not described",
    );
    assert.deepEqual(
      [...described].filter((p) => !accepted.has(p)),
      [],
      "described but not accepted",
    );
    const page = configManPage();
    assert.doesNotMatch(page, /\(undocumented\)/);
    assert.equal(groffWarnings(page, "floatip.yaml.5"), "");
  });

  it("floatip(8) lists every command with its usage and renders cleanly", async () => {
    const page = await commandManPage();
    for (const name of Object.keys(commands)) assert.match(page, new RegExp(`^\\.B ${name}$`, "m"));
    assert.match(page, /usage: floatip volume/);
    assert.equal(groffWarnings(page, "floatip.8"), "");
  });

  it("bash completion completes commands and each command's words", async () => {
    const script = join(dir, "floatip.bash");
    writeFileSync(script, await bashCompletion());
    const complete = (...words: string[]) => {
      const result = spawnSync(
        "bash",
        [
          "-c",
          `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _floatip; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ],
        { encoding: "utf8", timeout: 10_000 },
      );
      assert.equal(result.status, 0, result.stderr);
      return result.stdout.trim().split("\n");
    };
    assert.deepEqual(complete("floatip", "sta"), ["status"]);
    assert.ok(complete("floatip", "").includes("volume"));
    assert.deepEqual(complete("floatip", "volume", "--tok"), ["--token-file"]);
    assert.ok(complete("floatip", "ip", "").includes("move"));
  });
});
