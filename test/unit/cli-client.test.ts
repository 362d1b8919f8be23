/**
 * The CLI's shared pieces: option parsing, where the API is looked for (flags, config, env,
 * default). Address parsing: src/config/host-port.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CliError, parseCommonFlags, resolveTarget, table } from "../../src/cli/client.ts";

const usageError = (e: unknown) => e instanceof CliError && e.code === "USAGE" && e.exitCode === 2;

describe("parseCommonFlags", () => {
  it("separates options, switches and positional arguments", () => {
    const flags = parseCommonFlags(
      [
        "move",
        "--json",
        "--api=198.18.0.1:7480",
        "198.18.0.100",
        "--explain",
        "n2",
        "--token-file",
        "t",
      ],
      ["--explain"],
    );
    assert.deepEqual(flags.positional, ["move", "198.18.0.100", "n2"]);
    assert.equal(flags.json, true);
    assert.equal(flags.api, "198.18.0.1:7480");
    assert.equal(flags.tokenFile, "t");
    assert.ok(flags.switches.has("--explain"));
  });

  it("rejects unknown options and options without a value as usage errors", () => {
    assert.throws(() => parseCommonFlags(["--explain"]), usageError);
    assert.throws(() => parseCommonFlags(["--api"]), usageError);
    assert.throws(() => parseCommonFlags(["--config="]), usageError);
    assert.throws(() => parseCommonFlags(["-x"]), usageError);
  });
});

describe("resolveTarget", () => {
  it("uses --api, then FLOATIP_API, then 127.0.0.1:7480", () => {
    const env = { FLOATIP_API: "198.18.0.5:9000", FLOATIP_TOKEN_FILE: "/run/token" };
    const explicit = resolveTarget(parseCommonFlags(["--api", "198.18.0.6:9001"]), env);
    assert.deepEqual(
      [explicit.host, explicit.port, explicit.tokenFile],
      ["198.18.0.6", 9001, "/run/token"],
    );
    const fromEnv = resolveTarget(parseCommonFlags([]), env);
    assert.deepEqual([fromEnv.host, fromEnv.port], ["198.18.0.5", 9000]);
    const fallback = resolveTarget(parseCommonFlags([]), {});
    assert.deepEqual(
      [fallback.host, fallback.port, fallback.tokenFile],
      ["127.0.0.1", 7480, undefined],
    );
  });

  it("--token-file wins over FLOATIP_TOKEN_FILE", () => {
    const target = resolveTarget(parseCommonFlags(["--token-file", "/a"]), {
      FLOATIP_TOKEN_FILE: "/b",
    });
    assert.equal(target.tokenFile, "/a");
  });

  it("reaches a wildcard listen address on loopback", () => {
    assert.equal(resolveTarget(parseCommonFlags(["--api", "0.0.0.0:7480"]), {}).host, "127.0.0.1");
    assert.equal(resolveTarget(parseCommonFlags(["--api", "[::]:7480"]), {}).host, "::1");
  });

  it("a malformed address is a usage error naming where it came from", () => {
    assert.throws(() => resolveTarget(parseCommonFlags(["--api", "nope"]), {}), usageError);
    assert.throws(
      () => resolveTarget(parseCommonFlags([]), { FLOATIP_API: "nope" }),
      (e: unknown) => usageError(e) && /FLOATIP_API/.test((e as Error).message),
    );
  });

  it("an unreadable --config is a CONFIG error (exit 1)", () => {
    assert.throws(
      () => resolveTarget(parseCommonFlags(["--config", "/nonexistent/floatip.yaml"]), {}),
      (e: unknown) => e instanceof CliError && e.code === "CONFIG" && e.exitCode === 1,
    );
  });
});

describe("table", () => {
  it("pads every column but the last", () => {
    assert.equal(
      table([
        ["A", "BB", "C"],
        ["long", "x", ""],
      ]),
      "A     BB  C\nlong  x",
    );
  });
});
