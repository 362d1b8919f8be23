import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { EtcdArbiterSpec } from "../config/types.ts";
import { etcdClientOptions } from "./etcd-driver.ts";

describe("etcd client options", () => {
  it("gives every authentication attempt its own deadline, also long after the client was built", async () => {
    const dir = mkdtempSync(join(tmpdir(), "floatip-etcd-options-"));
    try {
      const passwordFile = join(dir, "password");
      writeFileSync(passwordFile, "lab-secret\n");
      const spec: EtcdArbiterSpec = {
        kind: "etcd",
        endpoints: ["https://198.18.0.50:2379"],
        prefix: "/floatip",
        ttlSec: 2,
        onLoss: "release",
        requestTimeoutMs: 40,
        auth: { user: "floatip", passwordFile },
      };
      const options = etcdClientOptions(spec);
      assert.equal(options.auth?.password, "lab-secret");
      const factory = options.auth?.callOptions;
      const context = { method: "authenticate", params: {}, service: "Auth", isStream: false };
      const resolve = () =>
        (typeof factory === "function"
          ? factory(context as Parameters<typeof factory>[0])
          : factory) ?? {};
      // An attempt made after the first deadline has passed still has time left.
      await sleep(60);
      const deadline = resolve().deadline;
      assert.ok(deadline !== undefined, "the authentication has a deadline");
      const leftMs = new Date(deadline).getTime() - Date.now();
      assert.ok(leftMs > 20 && leftMs <= 40, `deadline ${leftMs} ms ahead, not ~40 ms`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
