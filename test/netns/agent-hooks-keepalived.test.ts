/**
 * `notify: { style: keepalived }`, driven as an operator moving from keepalived would: the
 * script they already have is called as keepalived's `notify` calls it, `INSTANCE NAME STATE
 * PRIORITY`, per VIP (NAME the VIP's address, PRIORITY the node's weight): MASTER when the
 * node takes a VIP, BACKUP when it gives one up, FAULT for every VIP when its health check
 * fails (then no BACKUP for what it releases), BACKUP when the check passes again, STOP on
 * SIGTERM.
 */
import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitFor,
  waitSettled,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

describe("agent: keepalived-style notify hook", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster | undefined;
  after(async () => {
    await cluster?.destroy();
  });

  it("calls the script with INSTANCE NAME STATE PRIORITY on take-over, fault, recovery and stop", async () => {
    const weights = [90, 80, 70];
    cluster = await startCluster({
      prefix: "fipkn-",
      vips: [{ host: 100, policy: "weighted" }],
      weights,
      startAgents: false,
    });
    const c = cluster;
    const hookLog = join(c.dir, "hook.log");
    const flagFile = join(c.dir, "sick");
    writeFileSync(flagFile, "");
    const hook = join(c.dir, "notify.sh");
    // What a keepalived notify script sees: only its arguments (and which node ran it).
    writeFileSync(hook, `#!/bin/sh\necho "$FLOATIP_NODE $*" >> ${hookLog}\n`);
    chmodSync(hook, 0o755);
    const check = ["sh", "-c", `! ip -o -4 address show dev eth0 | grep -qF -f ${flagFile}`];
    writeFileSync(
      c.configPath,
      [
        readFileSync(c.configPath, "utf8"),
        `notify: { command: ${hook}, timeout: 2s, style: keepalived }`,
        "checks:",
        `  - { name: flag, kind: exec, command: ${JSON.stringify(check)}, interval: 1s, timeout: 1s, fall: 2, within: 3s, rise: 2 }`,
        "",
      ].join("\n"),
    );
    for (const id of c.ids) c.startAgent(id);
    const vip = c.vipAddresses[0]!;
    // Weighted placement: usually n1, but a node that started late may find the VIP taken.
    const owner = (await waitSettled(c)).get(vip)!;
    const weightOf = (id: string) => weights[c.ids.indexOf(id)]!;
    const others = c.ids.filter((id) => id !== owner);
    const lines = () => {
      try {
        return readFileSync(hookLog, "utf8").trim().split("\n");
      } catch {
        return [];
      }
    };
    const seen = (line: string) =>
      waitFor(async () => (lines().includes(line) ? true : undefined), 8000);

    const as = (id: string, state: string) => `${id} INSTANCE ${vip} ${state} ${weightOf(id)}`;
    assert.ok(await seen(as(owner, "MASTER")), `${lines().join("\n")}`);

    // The owner's check fails: FAULT for its instance, and another node becomes MASTER.
    const beforeFault = lines().length;
    writeFileSync(flagFile, `${c.topology.host(owner).address}\n`);
    assert.ok(await seen(as(owner, "FAULT")), `${lines().join("\n")}`);
    const successor = await waitFor(
      async () => others.find((id) => lines().slice(beforeFault).includes(as(id, "MASTER"))),
      8000,
    );
    assert.ok(successor, `${lines().join("\n")}\n${allLogs(c)}`);
    await sleep(500);
    assert.ok(
      !lines().slice(beforeFault).includes(as(owner, "BACKUP")),
      `a node in FAULT does not also report BACKUP\n${lines().join("\n")}`,
    );

    // The check passes again: BACKUP (the VIP stays where it is or fails back; either way
    // the states reported follow it).
    const beforeRecovery = lines().length;
    writeFileSync(flagFile, "");
    const recovered = await waitFor(
      async () => (lines().slice(beforeRecovery).includes(as(owner, "BACKUP")) ? true : undefined),
      8000,
    );
    assert.ok(recovered, `${lines().join("\n")}`);

    // The holder's agent is killed: its supervisor removes the VIP and calls the script
    // with FAULT for it (the agent cannot report its own death).
    const holder = (await waitSettled(c)).get(vip)!;
    const beforeKill = lines().length;
    process.kill(c.agentPid(holder)!, "SIGKILL");
    const faulted = await waitFor(
      async () => (lines().slice(beforeKill).includes(as(holder, "FAULT")) ? true : undefined),
      8000,
    );
    assert.ok(faulted, `the supervisor reported FAULT for ${holder}\n${lines().join("\n")}`);
    await waitSettled(c);

    // SIGTERM: STOP, as keepalived reports when it shuts down.
    const stopping = c.ids.find((id) => id !== holder && id !== successor) ?? others[0]!;
    c.signal(stopping, "SIGTERM");
    assert.ok(await seen(as(stopping, "STOP")), `${lines().join("\n")}`);
    // Every call had exactly the four keepalived arguments.
    for (const line of lines()) {
      assert.match(line, /^n\d INSTANCE \S+ (MASTER|BACKUP|FAULT|STOP) \d+$/, line);
    }
  });
});
