import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ClusterKeyError, loadClusterKey } from "./key.ts";

const dir = mkdtempSync(join(tmpdir(), "fipw-key-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function keyFile(name: string, content: Buffer | string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

function errorOf(path: string): ClusterKeyError {
  try {
    loadClusterKey(path);
  } catch (error) {
    assert.ok(error instanceof ClusterKeyError);
    return error;
  }
  assert.fail(`loading ${path} succeeded`);
}

describe("cluster key file", () => {
  const material = randomBytes(32);

  it("reads raw bytes, hex and base64 to the same key", () => {
    const raw = loadClusterKey(keyFile("raw", material));
    const hex = loadClusterKey(keyFile("hex", `${material.toString("hex")}\n`));
    const base64 = loadClusterKey(keyFile("b64", `${material.toString("base64")}\n`));
    const base64url = loadClusterKey(keyFile("b64url", material.toString("base64url")));
    assert.deepEqual(
      [raw, hex, base64, base64url].map((k) => [k.key.toString("hex"), k.encoding]),
      [
        [material.toString("hex"), "raw"],
        [material.toString("hex"), "hex"],
        [material.toString("hex"), "base64"],
        [material.toString("hex"), "base64"],
      ],
    );
  });

  it("uses other text byte for byte", () => {
    const phrase = "a long shared secret phrase, with spaces, for the cluster";
    const loaded = loadClusterKey(keyFile("phrase", phrase));
    assert.equal(loaded.encoding, "raw");
    assert.equal(loaded.key.toString("utf8"), phrase);
  });

  it("rejects fewer than 32 bytes of key material, whatever the encoding", () => {
    for (const [name, content] of [
      ["short-raw", randomBytes(31)],
      ["short-hex", randomBytes(31).toString("hex")],
      ["short-b64", randomBytes(16).toString("base64")],
      ["empty", ""],
    ] as const) {
      const path = keyFile(name, content);
      const error = errorOf(path);
      assert.equal(error.code, "KEY_TOO_SHORT");
      assert.match(error.message, new RegExp(path));
      assert.match(error.message, /head -c 32 \/dev\/urandom/);
    }
  });

  it("reports a missing file with its path and the command that creates it", () => {
    const path = join(dir, "nope");
    const error = errorOf(path);
    assert.equal(error.code, "KEY_MISSING");
    assert.equal(error.path, path);
    assert.match(error.message, new RegExp(`chmod 600 ${path}`));
  });

  it("reports a directory as unreadable", () => {
    const path = join(dir, "a-directory");
    mkdirSync(path);
    assert.equal(errorOf(path).code, "KEY_UNREADABLE");
  });

  it("refuses a key file group or others may read or write, like ssh, with the fix", () => {
    assert.ok(loadClusterKey(keyFile("private", material, 0o600)).key.equals(material));
    assert.ok(loadClusterKey(keyFile("read-only", material, 0o400)).key.equals(material));
    for (const [name, mode] of [
      ["group", 0o640],
      ["world", 0o604],
      ["group-write", 0o620],
    ] as const) {
      const path = keyFile(name, material, mode);
      const error = errorOf(path);
      assert.equal(error.code, "KEY_TOO_OPEN", name);
      assert.match(error.message, new RegExp(`mode 0${mode.toString(8)}.*chmod 600 ${path}$`));
    }
  });
});
