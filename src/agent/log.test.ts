import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createLogger, createWallClock, isoMicros } from "./log.ts";

describe("log time stamps", () => {
  it("formats RFC 3339 UTC with microseconds", () => {
    assert.equal(
      isoMicros(Date.UTC(2026, 11, 2, 20, 2, 13, 105) + 0.1234),
      "2026-12-02T20:02:13.105123Z",
    );
    assert.equal(isoMicros(Date.UTC(2026, 11, 2, 20, 2, 13, 105)), "2026-12-02T20:02:13.105000Z");
    assert.equal(
      isoMicros(Date.UTC(2026, 11, 2, 20, 2, 13, 105) + 0.9995),
      "2026-12-02T20:02:13.105999Z",
    );
  });

  it("keeps the monotonic fraction within the wall clock's millisecond and re-anchors on a step", () => {
    let wall = 1_000_000;
    let mono = 50.25;
    const clock = createWallClock(
      () => wall,
      () => mono,
    );
    // Anchored: wall - mono; the fraction comes from the monotonic clock.
    mono = 50.75;
    wall = 1_000_000;
    assert.equal(clock(), 1_000_000.5);
    mono = 51.3;
    wall = 1_000_001;
    assert.ok(Math.abs(clock() - 1_000_001.05) < 1e-6);
    // The wall clock steps back by an hour: the next stamp follows it at once.
    mono = 52;
    wall = 1_000_001 - 3_600_000;
    assert.equal(clock(), wall);
    // And forward: never more than a millisecond away from Date.now().
    mono = 53.5;
    wall = 2_000_000;
    const at = clock();
    assert.ok(at >= wall && at < wall + 1);
  });

  it("writes the stamp into JSON and human lines", () => {
    const lines: string[] = [];
    const before = Date.now();
    createLogger({ human: false, write: (l) => lines.push(l) }).log("info", "hello");
    createLogger({ human: true, write: (l) => lines.push(l) }).log("warn", "there");
    const json = JSON.parse(lines[0]!) as { time: string };
    assert.match(json.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.ok(Date.parse(json.time) >= before - 1 && Date.parse(json.time) <= Date.now() + 1);
    assert.match(lines[1]!, /^\d\d:\d\d:\d\d\.\d{6} WARN {2}there$/);
  });
});

describe("syslog priority for journald", () => {
  const root = join(import.meta.dirname, "..", "..");
  const dir = mkdtempSync(join(tmpdir(), "floatip-journal-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs `args` with standard error on a fresh file; JOURNAL_STREAM from `stream(file)`. */
  const stderrOf = (
    name: string,
    command: string,
    args: readonly string[],
    stream: (file: string) => string,
  ) => {
    const file = join(dir, name);
    const fd = openSync(file, "w");
    try {
      const result = spawnSync(command, args, {
        stdio: ["ignore", "ignore", fd],
        env: { ...process.env, JOURNAL_STREAM: stream(file) },
        timeout: 20_000,
      });
      assert.equal(result.error, undefined);
    } finally {
      closeSync(fd);
    }
    return readFileSync(file, "utf8").trim().split("\n");
  };
  const identity = (file: string) => {
    const stat = statSync(file, { bigint: true });
    return `${stat.dev}:${stat.ino}`;
  };
  const program = `
    import { createLogger } from ${JSON.stringify(join(import.meta.dirname, "log.ts"))};
    const log = createLogger({ human: false });
    log.log("error", "e"); log.log("warn", "w"); log.log("info", "i");
  `;

  it("prefixes each line with its priority when standard error is the journal stream", () => {
    const lines = stderrOf(
      "journal",
      process.execPath,
      ["--input-type=module", "-e", program],
      identity,
    );
    assert.deepEqual(
      lines.map((l) => l.slice(0, 4)),
      ["<3>{", "<4>{", "<6>{"],
    );
    assert.equal((JSON.parse(lines[2]!.slice(3)) as { msg: string }).msg, "i");
  });

  it("writes plain JSON when JOURNAL_STREAM names another stream (inherited, redirected)", () => {
    const lines = stderrOf(
      "plain",
      process.execPath,
      ["--input-type=module", "-e", program],
      () => "1:1",
    );
    assert.deepEqual(
      lines.map((l) => l.slice(0, 1)),
      ["{", "{", "{"],
    );
  });

  it("the C supervisor does the same", () => {
    const supervisor = join(root, "native", "build", "Release", "floatip-supervisor");
    const vips = join(dir, "vips");
    writeFileSync(vips, "");
    // `true` exits at once: the supervisor logs that and starts it again after a back-off;
    // `timeout` ends the supervisor after a second.
    const args = [
      "-s",
      "TERM",
      "1",
      supervisor,
      "--node",
      "t",
      "--vips",
      vips,
      "--log",
      "json",
      "--",
      "/bin/true",
    ];
    const journal = stderrOf("supervisor", "timeout", args, identity);
    assert.ok(journal.length > 0 && journal.every((l) => /^<[3-7]>\{/.test(l)), journal.join("\n"));
    assert.ok(
      journal.some((l) => l.startsWith("<6>{")),
      journal.join("\n"),
    );
    const plain = stderrOf("supervisor-plain", "timeout", args, () => "1:1");
    assert.ok(
      plain.every((l) => l.startsWith("{")),
      plain.join("\n"),
    );
  });
});
