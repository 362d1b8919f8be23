import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ExecError, run } from "./exec.ts";

describe("run (external commands under a timeout)", () => {
  it("returns the output of a command that succeeds", async () => {
    const result = await run("sh", ["-c", "cat; echo done"], { timeoutMs: 5000, input: "in\n" });
    assert.equal(result.stdout, "in\ndone\n");
  });

  it("kills a command that hangs and reports EXEC_TIMEOUT", async () => {
    await assert.rejects(run("sleep", ["30"], { timeoutMs: 100 }), (error: unknown) => {
      assert.ok(error instanceof ExecError);
      assert.equal(error.code, "EXEC_TIMEOUT");
      return true;
    });
  });

  it("reports a failing exit code with stderr, and a missing program as EXEC_NOT_FOUND", async () => {
    await assert.rejects(
      run("sh", ["-c", "echo bad >&2; exit 3"], { timeoutMs: 5000 }),
      (error: unknown) => {
        assert.ok(error instanceof ExecError);
        assert.equal(error.code, "EXEC_FAILED");
        assert.equal(error.exitCode, 3);
        assert.match(error.stderr, /bad/);
        return true;
      },
    );
    await assert.rejects(
      run("floatip-no-such-program", [], { timeoutMs: 5000 }),
      (error: unknown) => {
        assert.ok(error instanceof ExecError);
        assert.equal(error.code, "EXEC_NOT_FOUND");
        return true;
      },
    );
  });
});
