/**
 * The C supervisor (native/floatip_supervisor.c) on its own, in a network namespace, with a
 * stand-in agent (a shell script) so that every rule is driven directly: the VIPs of its list
 * (IPv4 and IPv6) leave the interface the moment the agent dies, the agent is started again
 * after the back-off, SIGTERM is forwarded and a clean exit is not a death, six deaths in a
 * minute make it give up, and each log line is a JSON object in the agent's format.
 * (`floatip agent` becoming this supervisor with a real agent is in agent-kill.test.ts.)
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { supervisorBinaryPath } from "../../src/adapters/linux/supervisor.ts";
import { createTopology, skipUnlessRoot, type Topology } from "../../src/lab/topology.ts";

const prefix = "fipsv-";

describe("C supervisor", { skip: skipUnlessRoot() }, () => {
  let topology: Topology | undefined;
  const work = mkdtempSync(join(tmpdir(), `${prefix}work-`));
  const started: ChildProcess[] = [];

  before(async () => {
    assert.ok(existsSync(supervisorBinaryPath), `${supervisorBinaryPath} is built by setup`);
    topology = await createTopology({ prefix, hosts: ["a"] });
  });
  after(async () => {
    for (const child of started) if (child.exitCode === null) child.kill("SIGKILL");
    await topology?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  const live = () => {
    assert.ok(topology, "the namespace exists");
    return topology;
  };
  const ip = async (...args: string[]) => {
    const result = await live().exec("a", "ip", args);
    assert.equal(result.exitCode, 0, `ip ${args.join(" ")}: ${result.stderr}`);
  };
  /** Addresses on eth0 other than the host's own (IPv4, IPv6) and the link-local ones. */
  const vipsOnEth0 = async () =>
    (await live().addresses("a")).filter(
      (a) =>
        a !== `${live().host("a").address}/24` &&
        a !== `${live().host("a").address6}/64` &&
        !a.startsWith("fe80:"),
    );
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const childrenOf = (pid: number) =>
    readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);

  /** Starts the supervisor in the namespace with `script` as the agent; collects its log lines. */
  const supervise = (name: string, script: string, vipsFile: string) => {
    const agent = join(work, `${name}.sh`);
    writeFileSync(agent, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
    const child = live().spawn(
      "a",
      supervisorBinaryPath,
      ["--node", name, "--vips", vipsFile, "--log", "json", "--", agent],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    started.push(child);
    const lines: Record<string, unknown>[] = [];
    let rest = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      rest += chunk.toString();
      const parts = rest.split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) {
        if (line.startsWith("{")) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    return { child, lines, exited };
  };
  const waitUntil = async (what: string, test: () => boolean | Promise<boolean>, ms = 5000) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await test()) return;
      await sleep(50);
    }
    assert.fail(`timed out waiting for ${what}`);
  };

  it("removes the listed VIPs the moment the agent dies and starts it again", async () => {
    const { address, iface } = live().host("a");
    const net = address.split(".").slice(0, 3).join(".");
    await ip("address", "add", `${net}.100/24`, "dev", iface);
    await ip("address", "add", "fd00:5f:1::100/64", "dev", iface, "nodad");
    await ip("address", "add", `${net}.101/24`, "dev", iface);
    const vipsFile = join(work, "vips");
    // .101 is not listed (it stays); .102 is listed but absent (no error); bad0 does not exist.
    writeFileSync(
      vipsFile,
      `# test\n${iface} ${net}.100/24\n${iface} fd00:5f:1::100/64\n${iface} ${net}.102/24\nbad0 ${net}.103/24\n`,
    );
    const { child, lines, exited } = supervise(
      "kill",
      `echo "$FLOATIP_SUPERVISOR_VIPS" > ${join(work, "env")}; exec sleep 60`,
      vipsFile,
    );
    const pid = child.pid!;
    await waitUntil("the first agent", () => childrenOf(pid).length === 1);
    const first = Number(childrenOf(pid)[0]);
    assert.deepEqual((await vipsOnEth0()).sort(), [
      `${net}.100/24`,
      `${net}.101/24`,
      "fd00:5f:1::100/64",
    ]);
    process.kill(first, "SIGKILL");
    await waitUntil("the VIPs removed", async () => (await vipsOnEth0()).length === 1, 2000);
    assert.deepEqual(await vipsOnEth0(), [`${net}.101/24`], "only the unlisted address stays");
    await waitUntil("a second agent", () => {
      const now = childrenOf(pid);
      return now.length === 1 && Number(now[0]) !== first;
    });
    // The new agent's shell may not have run its `echo` yet (its `>` already emptied the
    // file): under load the test read an empty file once.
    await waitUntil(
      "the second agent wrote its environment",
      () => readFileSync(join(work, "env"), "utf8").trim() !== "",
    );
    assert.equal(readFileSync(join(work, "env"), "utf8").trim(), vipsFile, "the list's path");

    const died = lines.find((l) => l.msg === "the agent died; removing its VIPs at once");
    assert.deepEqual(
      { node: died?.node, signal: died?.signal, exitCode: died?.exitCode, level: died?.level },
      { node: "kill", signal: "SIGKILL", exitCode: null, level: "error" },
    );
    const failures = lines.filter((l) => l.msg === "cannot remove a VIP");
    assert.deepEqual(
      failures.map((l) => [l.vip, l.interface]),
      [[`${net}.103/24`, "bad0"]],
      "only the address on a missing interface is an error",
    );
    assert.equal(lines.filter((l) => l.msg === "supervisor started the agent").length, 2);
    assert.equal(typeof lines[0]?.time, "string");

    child.kill("SIGTERM"); // the stand-in dies of it: a death while stopping, exit 1
    assert.equal(await exited, 1);
    await ip("address", "flush", "dev", iface, "to", `${net}.101/32`);
  });

  it("forwards SIGTERM and exits 0 when the agent exits 0, removing nothing", async () => {
    const { address, iface } = live().host("a");
    const net = address.split(".").slice(0, 3).join(".");
    await ip("address", "add", `${net}.110/24`, "dev", iface);
    const vipsFile = join(work, "vips-term");
    writeFileSync(vipsFile, `${iface} ${net}.110/24\n`);
    const marker = join(work, "term-seen");
    const { child, lines, exited } = supervise(
      "term",
      `trap 'echo seen > ${marker}; exit 0' TERM\nwhile :; do sleep 0.05; done`,
      vipsFile,
    );
    await waitUntil("the agent", () => childrenOf(child.pid!).length === 1);
    await sleep(200); // the trap is set
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
    assert.ok(existsSync(marker), "the agent received SIGTERM");
    assert.deepEqual(await vipsOnEth0(), [`${net}.110/24`], "a clean hand-over keeps the list");
    assert.equal(lines.filter((l) => l.level === "error").length, 0, JSON.stringify(lines));
    await ip("address", "del", `${net}.110/24`, "dev", iface);
  });

  it("gives up after more than five deaths in a minute", async () => {
    const vipsFile = join(work, "vips-none");
    writeFileSync(vipsFile, "");
    const { lines, exited } = supervise("crash", "exit 3", vipsFile);
    const code = await Promise.race([exited, sleep(20_000).then(() => "timeout" as const)]);
    assert.equal(code, 1);
    assert.equal(lines.filter((l) => l.msg === "supervisor started the agent").length, 6);
    const deaths = lines.filter((l) => l.msg === "the agent died; removing its VIPs at once");
    assert.deepEqual(
      deaths.map((l) => l.exitCode),
      [3, 3, 3, 3, 3, 3],
    );
    assert.equal(lines.at(-1)?.msg, "the agent died more than 5 times in a minute; giving up");
  });
});
