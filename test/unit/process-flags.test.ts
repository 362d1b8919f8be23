/**
 * The flags and environment of the agent's two Node.js processes: the control plane gets a
 * small young generation, the collector on its own thread, one V8 platform thread and Maglev
 * as its top tier; the services process keeps V8's helpers and Turbofan and gets one malloc
 * arena, which it does not pass on.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  controlPlaneExecArgv,
  maglevTopTier,
  onePlatformThread,
  singleThreadedGc,
} from "../../src/agent/process-flags.ts";
import { servicesExecArgv, servicesProcessEnv } from "../../src/agent/services.ts";
import { mallocArenaSetEnv } from "../../src/agent/services-protocol.ts";

describe("the control plane's V8 flags", () => {
  it("adds the young generation, single-threaded collector, one platform thread and Maglev as top tier", () => {
    assert.deepEqual(controlPlaneExecArgv(["--enable-source-maps"]), [
      "--enable-source-maps",
      "--max-semi-space-size=1",
      singleThreadedGc,
      onePlatformThread,
      maglevTopTier,
    ]);
  });

  it("keeps what the launcher set instead of adding its own", () => {
    const own = ["--max-semi-space-size=4", singleThreadedGc, "--v8-pool-size=2", "--max-opt=3"];
    assert.deepEqual(controlPlaneExecArgv(own), own);
  });
});

describe("the services process", () => {
  it("leaves out the control plane's collector, platform and tier flags, keeps the rest", () => {
    const argv = servicesExecArgv(controlPlaneExecArgv(["--enable-source-maps"]), 512);
    assert.deepEqual(argv, [
      "--enable-source-maps",
      "--max-semi-space-size=1",
      "--max-old-space-size=512",
    ]);
  });

  it("runs with one malloc arena, marked as the agent's choice", () => {
    const env = servicesProcessEnv({ PATH: "/usr/bin" });
    assert.equal(env.MALLOC_ARENA_MAX, "1");
    assert.equal(env[mallocArenaSetEnv], "1");
    assert.equal(env.PATH, "/usr/bin");
  });

  it("keeps an operator's MALLOC_ARENA_MAX, unmarked", () => {
    const env = servicesProcessEnv({ MALLOC_ARENA_MAX: "4" });
    assert.equal(env.MALLOC_ARENA_MAX, "4");
    assert.equal(env[mallocArenaSetEnv], undefined);
  });
});
