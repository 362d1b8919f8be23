import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { createRecord } from "../../src/core/requests/request-record.ts";
import { StorageError } from "../../src/storage/errors.ts";
import { Journal } from "../../src/storage/journal.ts";

const root = path.resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(path.join(tmpdir(), "fips-journal-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("request journal", () => {
  it("keeps every submitted record after the writing process dies without closing", () => {
    const file = path.join(dir, "crash.sqlite");
    // A child process writes and then exits abruptly (no close, no checkpoint).
    const script = `
      import { Journal } from ${JSON.stringify(path.join(root, "src/storage/journal.ts"))};
      import { createRecord } from ${JSON.stringify(path.join(root, "src/core/requests/request-record.ts"))};
      const j = new Journal(${JSON.stringify(file)});
      for (let i = 0; i < 50; i++) j.submit(createRecord("r" + i, { op: "delete", name: "v" + i }, "a", i));
      j.apply({ ...createRecord("r7", { op: "delete", name: "v7" }, "a", 7), state: { state: "succeeded", result: null } });
      process.kill(process.pid, "SIGKILL");
    `;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    assert.equal(child.signal, "SIGKILL", child.stderr);
    const journal = new Journal(file);
    try {
      assert.equal(journal.recent(1000).length, 50);
      assert.equal(journal.get("r7")?.state.state, "succeeded");
      assert.equal(journal.unfinished().length, 49);
      assert.deepEqual(journal.get("r3")?.operation, { op: "delete", name: "v3" });
    } finally {
      journal.close();
    }
  });

  it("returns the same record for a repeated id and refuses a different body", () => {
    const journal = new Journal(path.join(dir, "ids.sqlite"));
    try {
      const first = journal.submit(createRecord("x", { op: "list" }, "a", 1));
      assert.equal(first.changed, true);
      const again = journal.submit(createRecord("x", { op: "list" }, "b", 99));
      assert.equal(again.changed, false);
      assert.deepEqual(again.record, first.record);
      assert.throws(
        () => journal.submit(createRecord("x", { op: "info", name: "v" }, "a", 1)),
        (error: unknown) => error instanceof StorageError && error.code === "REQUEST_ID_REUSED",
      );
    } finally {
      journal.close();
    }
  });

  it("merges forward only, in acceptance order for re-drives", () => {
    const journal = new Journal(path.join(dir, "merge.sqlite"));
    try {
      const op = { op: "delete", name: "v" } as const;
      journal.submit(createRecord("late", op, "a", 20));
      journal.submit(createRecord("early", { op: "list" }, "a", 10));
      const running = {
        ...createRecord("late", op, "a", 20),
        state: { state: "running", node: "a", attempt: 2 },
      } as const;
      assert.equal(journal.apply(running).changed, true);
      const older = { ...running, state: { state: "running", node: "b", attempt: 1 } } as const;
      const kept = journal.apply(older);
      assert.equal(kept.changed, false);
      assert.deepEqual(kept.record.state, running.state);
      assert.deepEqual(
        journal.unfinished().map((r) => r.id),
        ["early", "late"],
      );
    } finally {
      journal.close();
    }
  });
});
