/**
 * The relay's notify hook inside `floatip agent`, end to end in network namespaces: three
 * agents whose cluster config names a hook script, a relay in proxy mode on a VIP port 9000,
 * its primary backend on n2:8081 and its standby on n3:8081. The hook appends
 * "$1 $2 $FLOATIP_BACKEND_TO $FLOATIP_BACKEND $FLOATIP_REASON" to a file.
 *
 * The primary backend is killed: the node holding the VIP (and only it) runs the hook with
 * `relay-backend-down web` for the primary, then `relay-switched web` to the standby. The
 * primary is started again: `relay-backend-up`, then `relay-switched` back to it (failback).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitFor,
  waitSettled,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot, subnetFor } from "../../src/lab/topology.ts";

const prefix = "fiprc-";
const subnet = `198.18.${subnetFor(prefix)}`;
const vip = `${subnet}.100`;
// Hosts get .10, .11, … in the order n1, n2, n3, client (src/lab/topology.ts).
const primary = `${subnet}.11:8081`;
const standby = `${subnet}.12:8081`;

const relayYaml = `relays:
  - name: web
    listen: ${vip}:9000
    protocol: http
    mode: proxy
    primary: ${primary}
    standby: [${standby}]
    check: { kind: tcp, interval: 100ms, timeout: 200ms, fall: 2, within: 1s, rise: 2 }
    connect_timeout: 200ms
    failback: immediate
`;

const backendScript = `require("node:http").createServer((q, s) => s.end(process.argv[1])).listen(8081, "0.0.0.0")`;

describe("relay notify hook inside the agent", { skip: skipUnlessRoot(), concurrency: 1 }, () => {
  let cluster: LiveCluster | undefined;
  let primaryBackend: ChildProcess | undefined;
  let standbyBackend: ChildProcess | undefined;
  let hookLog = "";
  let holder = "";

  const hookLines = (): string[] => {
    try {
      return readFileSync(hookLog, "utf8").trim().split("\n");
    } catch {
      return [];
    }
  };
  const relayLines = () => hookLines().filter((l) => l.includes(" relay-"));

  before(async () => {
    cluster = await startCluster({
      prefix,
      vips: [{ host: 100, policy: "round-robin" }],
      extraYaml: relayYaml,
      startAgents: false,
    });
    hookLog = join(cluster.dir, "hook.log");
    const hook = join(cluster.dir, "hook.sh");
    writeFileSync(
      hook,
      `#!/bin/sh\necho "$FLOATIP_NODE $1 $2 to=$FLOATIP_BACKEND_TO backend=$FLOATIP_BACKEND reason=$FLOATIP_REASON" >> ${hookLog}\n`,
    );
    chmodSync(hook, 0o755);
    writeFileSync(
      cluster.configPath,
      `${readFileSync(cluster.configPath, "utf8")}\nnotify: { command: ${hook}, timeout: 2s }\n`,
    );
    primaryBackend = cluster.topology.spawn(
      "n2",
      process.execPath,
      ["-e", backendScript, "primary"],
      {
        stdio: "ignore",
      },
    );
    standbyBackend = cluster.topology.spawn(
      "n3",
      process.execPath,
      ["-e", backendScript, "standby"],
      {
        stdio: "ignore",
      },
    );
    for (const id of cluster.ids) cluster.startAgent(id);
    holder = (await waitSettled(cluster)).get(vip)!;
  });

  after(async () => {
    primaryBackend?.kill("SIGKILL");
    standbyBackend?.kill("SIGKILL");
    await cluster?.destroy();
  });

  it("runs relay-backend-down and relay-switched to the standby when the primary dies", async () => {
    const c = cluster!;
    // The relay is running on the holder and routing to the primary before the kill.
    const running = await waitFor(async () => {
      const { stdout } = await c.cli(holder, ["relay", "list", "--json"]);
      const [web] = JSON.parse(stdout || "[]") as { running: boolean; active: string | null }[];
      return web?.running && web.active === primary ? true : undefined;
    }, 10_000);
    assert.ok(running, `relay not running on ${holder}\n${allLogs(c)}`);
    assert.deepEqual(relayLines(), [], "no relay event before any backend changed");

    primaryBackend!.kill("SIGKILL");
    const switched = await waitFor(
      async () => relayLines().find((l) => l.includes(" relay-switched ")),
      10_000,
    );
    assert.equal(
      switched,
      `${holder} relay-switched web to=${standby} backend= reason=backend-down`,
      `hook lines:\n${hookLines().join("\n")}\n${allLogs(c)}`,
    );
    const lines = relayLines();
    const down = lines.indexOf(`${holder} relay-backend-down web to= backend=${primary} reason=`);
    assert.ok(down >= 0 && down < lines.indexOf(switched), lines.join("\n"));
  });

  it("runs relay-backend-up and relay-switched back when the primary returns", async () => {
    const c = cluster!;
    const already = relayLines().length;
    primaryBackend = c.topology.spawn("n2", process.execPath, ["-e", backendScript, "primary"], {
      stdio: "ignore",
    });
    const back = await waitFor(
      async () =>
        relayLines()
          .slice(already)
          .find((l) => l.includes(" relay-switched ")),
      10_000,
    );
    assert.equal(
      back,
      `${holder} relay-switched web to=${primary} backend= reason=failback`,
      hookLines().join("\n"),
    );
    const fresh = relayLines().slice(already);
    assert.ok(
      fresh.includes(`${holder} relay-backend-up web to= backend=${primary} reason=`),
      fresh.join("\n"),
    );
    // Only the node running the relay reports its events.
    assert.deepEqual(
      relayLines().filter((l) => !l.startsWith(`${holder} `)),
      [],
      relayLines().join("\n"),
    );
  });
});
