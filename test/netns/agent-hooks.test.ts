/**
 * Notify hooks and configuration reload, driven as an operator would: a hook script the
 * config names records what the agents report, and SIGHUP (and the API's reload) re-read the
 * config file, refusing an invalid one while the agent keeps running.
 */
import assert from "node:assert/strict";
import { chmodSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitFor,
  waitSettled,
} from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

describe("agent: notify hooks and reload", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster;
  let hookLog: string;
  let killed: string | undefined;
  let slowFlag: string;

  before(async () => {
    cluster = await startCluster({
      prefix: "fiph2-",
      vips: [{ host: 100 }, { host: 101, policy: "hash" }],
      startAgents: false,
    });
    hookLog = join(cluster.dir, "hook.log");
    const hook = join(cluster.dir, "hook.sh");
    slowFlag = join(cluster.dir, "slow-hooks");
    writeFileSync(
      hook,
      [
        "#!/bin/sh",
        `if [ "$1" = agent-died ]; then echo "$FLOATIP_NODE agent-died reason=$FLOATIP_REASON vips=$FLOATIP_VIPS event=$FLOATIP_EVENT" >> ${hookLog}; exit 0; fi`,
        `[ -f ${slowFlag} ] && sleep 4`, // a slow hook (the coalescing test)
        `echo "$FLOATIP_NODE $1 $2 vip=$FLOATIP_VIP role=$FLOATIP_ROLE term=$FLOATIP_TERM" >> ${hookLog}`,
        "",
      ].join("\n"),
    );
    chmodSync(hook, 0o755);
    writeFileSync(
      cluster.configPath,
      `${readFileSync(cluster.configPath, "utf8")}\nnotify: { command: ${hook}, timeout: 10s }\n`,
    );
    for (const id of cluster.ids) cluster.startAgent(id);
    await waitSettled(cluster);
  });

  after(async () => {
    await cluster?.destroy();
  });

  const hookLines = () => {
    try {
      return readFileSync(hookLog, "utf8").trim().split("\n");
    } catch {
      return [];
    }
  };

  it("runs the hook with documented arguments and environment on role and VIP changes", async () => {
    const vip = cluster.vipAddresses[0]!;
    const owner = (await cluster.holderOf(vip))!;
    const acquired = await waitFor(
      async () => hookLines().find((l) => l.startsWith(`${owner} vip-acquired ${vip} vip=${vip}`)),
      5000,
    );
    assert.ok(acquired, `no vip-acquired line for ${owner}:\n${hookLines().join("\n")}`);
    // Role and term are set on every event, not only on role changes.
    assert.match(acquired, / role=(follower|coordinator) term=[1-9]\d*$/, acquired);
    const coordinator = await waitFor(
      async () =>
        hookLines().find((l) =>
          / role-changed coordinator vip= role=coordinator term=\d+$/.test(l),
        ),
      5000,
    );
    assert.ok(coordinator, hookLines().join("\n"));

    // The owner's agent dies: the survivors report the failure and the new owner the VIP,
    // and the dead agent's supervisor (what outlives it) reports the death itself.
    killed = owner;
    process.kill(cluster.agentPid(owner)!, "SIGKILL");
    const died = await waitFor(
      async () => hookLines().find((l) => l.startsWith(`${owner} agent-died `)),
      5000,
    );
    assert.ok(died, `the supervisor ran the hook for the death\n${hookLines().join("\n")}`);
    assert.match(died, /^\S+ agent-died reason=signal SIGKILL vips=(\S+ )*\S+ event=agent-died$/);
    assert.ok(
      died.split("vips=")[1]!.split(" ").includes(vip),
      `${vip} among the removed: ${died}`,
    );
    const taken = await waitFor(async () => {
      const holder = await cluster.holderOf(vip);
      return holder && holder !== owner ? holder : undefined;
    }, 10_000);
    assert.ok(taken, allLogs(cluster));
    const seen = await waitFor(
      async () => hookLines().find((l) => l.startsWith(`${taken} vip-acquired ${vip}`)),
      5000,
    );
    assert.ok(seen, hookLines().join("\n"));
    const failed = await waitFor(
      async () => hookLines().find((l) => l.includes(` member-failed ${owner} `)),
      5000,
    );
    assert.ok(failed, hookLines().join("\n"));
    assert.match(failed, / role=coordinator term=[1-9]\d*$/, "the coordinator reports failures");

    // The same story in /metrics, as a Prometheus scrape sees it.
    const metrics = async (id: string) =>
      (await cluster.topology.exec(id, "curl", ["-s", "http://127.0.0.1:7480/metrics"])).stdout;
    assert.match(await metrics(taken), /^floatip_vip_acquired_total\{[^}]*\} [1-9]\d*$/m);
    const reporter = failed.split(" ")[0]!;
    const scraped = await metrics(reporter);
    assert.match(scraped, /^floatip_member_failures_total\{[^}]*\} [1-9]\d*$/m);
    assert.match(scraped, /^floatip_elections_total\{[^}]*\} [1-9]\d*$/m);
    assert.match(scraped, /^floatip_build_info\{[^}]*wire="2"[^}]*\} 1$/m);
    // Nothing failed to leave this node: the counter is there, at zero.
    assert.match(scraped, /^floatip_transport_send_errors_total\{[^}]*\} 0$/m);
    // The failover by phase: detected and lease-wait on the coordinator that declared the
    // failure, probe, address-added and announced on the new owner.
    const phaseCount = (text: string, phase: string) =>
      Number(
        new RegExp(
          `^floatip_failover_phase_seconds_count\\{[^}]*phase="${phase}"\\} (\\d+)$`,
          "m",
        ).exec(text)?.[1] ?? "0",
      );
    for (const phase of ["detected", "lease-wait"]) {
      assert.ok(phaseCount(scraped, phase) >= 1, `${reporter} timed ${phase}\n${scraped}`);
    }
    const ownerMetrics = await metrics(taken);
    for (const phase of ["probe", "address-added", "announced"]) {
      assert.ok(phaseCount(ownerMetrics, phase) >= 1, `${taken} timed ${phase}\n${ownerMetrics}`);
    }
    assert.match(
      ownerMetrics,
      /^floatip_failover_phase_seconds_bucket\{[^}]*phase="probe",le="\+Inf"\} [1-9]\d*$/m,
    );
  });

  it("SIGHUP reloads a valid config and refuses an invalid one, keeping the agent running", async () => {
    // A node whose agent was not killed (the supervisor of that one may be in its back-off).
    const id = cluster.ids.find((n) => n !== killed)!;
    const original = readFileSync(cluster.configPath, "utf8");
    // A valid change that reload applies: a new health check.
    writeFileSync(
      cluster.configPath,
      `${original}\nchecks:\n  - { name: always, kind: exec, command: ["true"], interval: 1s, timeout: 1s }\n`,
    );
    cluster.signal(id, "SIGHUP");
    const reloaded = await waitFor(
      async () => (cluster.logs(id).includes("configuration reloaded") ? true : undefined),
      5000,
    );
    assert.ok(reloaded, cluster.logs(id));

    // An invalid file: refused with the problem named, and the agent stays up and serving.
    writeFileSync(cluster.configPath, `${original}\nnot_a_key: 1\n`);
    cluster.signal(id, "SIGHUP");
    const refused = await waitFor(
      async () => (/reload refused.*not_a_key/s.test(cluster.logs(id)) ? true : undefined),
      5000,
    );
    assert.ok(refused, cluster.logs(id));
    const status = await cluster.cli(id, ["status", "--json"]);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).node, id);

    // The same through the API, with the token: 422 and a code while the file is invalid.
    const token = readFileSync(join(cluster.dir, "api.token"), "utf8").trim();
    const post = () =>
      cluster.topology.exec(id, "curl", [
        "-s",
        "-X",
        "POST",
        "-H",
        `Authorization: Bearer ${token}`,
        "-w",
        "\n%{http_code}",
        "http://127.0.0.1:7480/v1/reload",
      ]);
    const [body, code] = (await post()).stdout.trim().split("\n");
    assert.equal(code, "422", body);
    assert.equal(JSON.parse(body!).error.code, "RELOAD_FAILED");
    writeFileSync(cluster.configPath, original);
    const [, okCode] = (await post()).stdout.trim().split("\n");
    assert.equal(okCode, "200");
  });

  it("a burst of events while the hook is slow coalesces to the latest state per VIP, and says so", async () => {
    await waitSettled(cluster);
    const token = ["--token-file", join(cluster.dir, "api.token")];
    const vip = cluster.vipAddresses[1]!;
    const start = (await cluster.holderOf(vip))!;
    const other =
      cluster.ids.find((id) => id !== start && id !== killed) ??
      cluster.ids.find((id) => id !== start)!;
    writeFileSync(slowFlag, "");
    try {
      // Back and forth: each move makes both nodes report the VIP (released, acquired). A call
      // takes 4 s, longer than the six moves together, so the calls about the VIP that come
      // while one runs must coalesce.
      for (let i = 0; i < 6; i += 1) {
        const target = i % 2 === 0 ? other : start;
        const moved = await cluster.cli(start, ["ip", "move", vip, target, "--wait", ...token]);
        assert.equal(moved.code, 0, moved.stderr);
      }
      const last = start; // the sixth move went back to where it started
      const skipped = await waitFor(
        async () =>
          cluster.ids.some((id) => cluster.logs(id).includes("notify hook calls skipped"))
            ? true
            : undefined,
        20_000,
      );
      assert.ok(skipped, `a node logged what it coalesced\n${allLogs(cluster)}`);
      // Once the hooks have caught up, each node's last call about the VIP is its final state.
      const settled = await waitFor(async () => {
        const lines = hookLines().filter((l) => l.includes(` ${vip} vip=${vip} `));
        const lastOf = (id: string) => lines.filter((l) => l.startsWith(`${id} `)).at(-1);
        return lastOf(last)?.includes(" vip-acquired ") && lastOf(other)?.includes(" vip-released ")
          ? true
          : undefined;
      }, 30_000);
      assert.ok(settled, `the last call per node is its final state\n${hookLines().join("\n")}`);
      // A move is never a conflict: the old owner stops announcing the VIP once it gives it up
      // (a late gratuitous ARP from it once fooled the new owner's probe here).
      assert.deepEqual(
        hookLines().filter((l) => l.includes(` vip-conflict ${vip} `)),
        [],
        "no conflict reported while the VIP moved back and forth",
      );
      const counted = await Promise.all(
        [start, other].map(
          async (id) =>
            (await cluster.topology.exec(id, "curl", ["-s", "http://127.0.0.1:7480/metrics"]))
              .stdout,
        ),
      );
      assert.ok(
        counted.some((m) =>
          /^floatip_notify_hook_calls_total\{[^}]*outcome="coalesced"\} [1-9]\d*$/m.test(m),
        ),
        counted.join("\n"),
      );
    } finally {
      rmSync(slowFlag, { force: true });
    }
  });
});
