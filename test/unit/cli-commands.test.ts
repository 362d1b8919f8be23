/**
 * `floatip status`, `ip` and `node` run as an operator runs them: the real CLI in a child
 * process against the real API server on 127.0.0.1 (an ephemeral port), backed by an in-memory
 * agent handle. Asserts on printed lines, `--json` shapes, exit codes and on the commands the
 * agent received.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { InMemoryAgentHandle } from "../../src/api/in-memory-handle.ts";
import { createApiServer, startApi } from "../../src/api/server.ts";
import { pendingHold } from "../../src/cli/commands/ip.ts";
import type { StatusView, VipView } from "../../src/cli/commands/status.ts";

const root = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "floatip-cli-"));
const tokenFile = join(dir, "api.token");
writeFileSync(tokenFile, "cli-test-token\n", { mode: 0o600 });
const wrongTokenFile = join(dir, "wrong.token");
writeFileSync(wrongTokenFile, "not-the-token\n", { mode: 0o600 });

const servers: FastifyInstance[] = [];
after(async () => {
  for (const s of servers) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI without blocking this process's event loop (the server lives here). */
function floatip(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const clean = { ...process.env };
  delete clean.FLOATIP_API;
  delete clean.FLOATIP_TOKEN_FILE;
  return new Promise((done) => {
    execFile(
      process.execPath,
      [join(root, "src/cli/main.ts"), ...args],
      { cwd: dir, env: { ...clean, ...env }, timeout: 30_000, encoding: "utf8" },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : null) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

async function startServer(handle: InMemoryAgentHandle, withToken = true): Promise<string> {
  const app = createApiServer({ handle, ...(withToken ? { tokenFile } : {}) });
  servers.push(app);
  const { port } = await startApi(app, { host: "127.0.0.1", port: 0 });
  return `127.0.0.1:${port}`;
}

/** A port nothing listens on: bound once, then closed. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

const nodes = ["n1", "n2", "n3"];
const vips = ["198.18.0.100", "198.18.0.101", "198.18.0.102"];

let handle: InMemoryAgentHandle;
let api: string;
let follower: InMemoryAgentHandle;
let followerApi: string;

before(async () => {
  handle = new InMemoryAgentHandle({ node: "n1", nodes, vips, term: 12 });
  api = await startServer(handle);
  follower = new InMemoryAgentHandle({
    node: "n2",
    coordinator: "n1",
    nodes,
    vips,
    term: 12,
    checks: [
      {
        name: "web",
        kind: "tcp",
        up: false,
        lastOk: false,
        lastDetail: "connection refused",
        faultsInWindow: 3,
        since: 0,
      },
    ],
  });
  follower.setConflict("198.18.0.101", true);
  follower.setMember("n3", "failed", false);
  followerApi = await startServer(follower);
});

beforeEach(() => {
  handle.commands.length = 0;
  follower.commands.length = 0;
});

describe("floatip status", () => {
  it("prints one screen: summary, members and VIPs with the conflict spelled out", async () => {
    const { code, stdout, stderr } = await floatip(["status", "--api", followerApi]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^cluster\s+demo/m);
    assert.match(stdout, /^node\s+n2\b/m);
    assert.match(stdout, /^role\s+follower$/m);
    assert.match(stdout, /^term\s+12$/m);
    assert.match(stdout, /^coordinator\s+n1$/m);
    assert.match(stdout, /^health\s+UNHEALTHY \(web: connection refused\)$/m);
    assert.match(stdout, /^quorum\s+yes/m);
    assert.match(stdout, /^lease\s+valid$/m);
    assert.match(stdout, /^n3\s+failed\s+NO$/m);
    assert.match(stdout, /^n2\*\s+healthy\s+self$/m);
    assert.match(
      stdout,
      /^198\.18\.0\.101\s+n2\s+conflict\s+\S+ \S+\s+CONFLICT \(occupied by another host\)$/m,
    );
    assert.match(stdout, /^198\.18\.0\.100\s+n1\s+absent\s+2030-01-01 00:00:01Z$/m);
  });

  it("--json prints the status object with node, term, coordinator, members and vips", async () => {
    const { code, stdout } = await floatip(["status", "--json", "--api", api]);
    assert.equal(code, 0);
    const status = JSON.parse(stdout);
    assert.equal(status.node, "n1");
    assert.equal(status.term, 12);
    assert.equal(status.coordinator, "n1");
    assert.deepEqual(
      status.members.map((m: { id: string; state: string }) => ({ id: m.id, state: m.state })),
      nodes.map((id) => ({ id, state: "healthy" })),
    );
    assert.deepEqual(
      status.vips.map((v: { address: string; owner: string }) => ({
        address: v.address,
        owner: v.owner,
      })),
      [
        { address: "198.18.0.100", owner: "n1" },
        { address: "198.18.0.101", owner: "n2" },
        { address: "198.18.0.102", owner: "n3" },
      ],
    );
  });

  it("--json keeps coordinator (null) when no coordinator is elected", async () => {
    const lonely = new InMemoryAgentHandle({
      node: "n3",
      coordinator: undefined,
      role: "candidate",
      nodes,
      vips,
    });
    const address = await startServer(lonely);
    const { code, stdout } = await floatip(["status", "--json", "--api", address]);
    assert.equal(code, 0);
    const status = JSON.parse(stdout);
    assert.ok("coordinator" in status);
    assert.equal(status.coordinator, null);
    const human = await floatip(["status", "--api", address]);
    assert.match(human.stdout, /^coordinator\s+none/m);
    assert.match(human.stdout, /^quorum\s+NO/m);
  });

  it("exits 3 with a clear message when no agent answers", async () => {
    const port = await closedPort();
    const { code, stdout, stderr } = await floatip(["status", "--api", `127.0.0.1:${port}`]);
    assert.equal(code, 3);
    assert.equal(stdout, "");
    assert.match(
      stderr,
      new RegExp(
        `no floatip agent answers at 127\\.0\\.0\\.1:${port}: is it running\\? \\(floatip agent --config`,
      ),
    );
  });

  it("finds the API from FLOATIP_API, and from --config's api.listen", async () => {
    const fromEnv = await floatip(["status", "--json"], { FLOATIP_API: followerApi });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.equal(JSON.parse(fromEnv.stdout).node, "n2");

    const config = join(dir, "cluster.yaml");
    writeFileSync(
      config,
      `cluster: demo
key_file: cluster.key
nodes:
  - { id: n1, address: 198.18.0.11, interface: eth0 }
  - { id: n2, address: 198.18.0.12, interface: eth0 }
  - { id: n3, address: 198.18.0.13, interface: eth0 }
vips:
  - { address: 198.18.0.100/24 }
api: { listen: "${followerApi}", token_file: api.token }
`,
    );
    const fromConfig = await floatip(["status", "--json", "--config", config], {
      FLOATIP_API: api,
    });
    assert.equal(fromConfig.code, 0, fromConfig.stderr);
    assert.equal(JSON.parse(fromConfig.stdout).node, "n2", "--config wins over FLOATIP_API");

    // The config's api.token_file is used for changes.
    const move = await floatip(["ip", "move", "198.18.0.102", "n1", "--config", config]);
    assert.equal(move.code, 0, move.stderr);
    assert.deepEqual(follower.commands, [{ type: "move", vip: "198.18.0.102", node: "n1" }]);
  });

  it("an invalid --config is reported with the file and exit 1", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "cluster: demo\nnodes: 3\n");
    const { code, stderr } = await floatip(["status", "--config", bad]);
    assert.equal(code, 1);
    assert.match(stderr, /bad\.yaml/);
  });

  it("usage errors exit 2 with a usage line", async () => {
    for (const args of [
      ["status", "extra"],
      ["status", "--bogus"],
      ["status", "--api"],
      ["status", "--api", "nonsense"],
      ["ip"],
      ["ip", "shuffle"],
      ["ip", "move", "198.18.0.100"],
      ["ip", "unpin"],
      ["node"],
      ["node", "disable"],
      ["node", "reboot", "n1"],
    ]) {
      // The valid --api goes first, so a malformed one given by the case itself wins.
      const { code, stderr } = await floatip([args[0]!, "--api", api, ...args.slice(1)]);
      assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
      assert.match(stderr, /usage:/, args.join(" "));
    }
    assert.equal(handle.commands.length, 0);
  });
});

describe("floatip ip", () => {
  it("ip list shows owner, state and conflicts; --explain adds the reason", async () => {
    const plain = await floatip(["ip", "list", "--api", followerApi]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^ADDRESS\s+OWNER\s+LOCAL\s+SINCE\s+CONFLICT$/m);
    assert.match(
      plain.stdout,
      /^198\.18\.0\.101\s+n2\s+conflict\s+.*CONFLICT \(occupied by another host\)$/m,
    );
    assert.doesNotMatch(plain.stdout, /round-robin/);
    const explained = await floatip(["ip", "list", "--explain", "--api", followerApi]);
    assert.match(explained.stdout, /EXPLAIN$/m);
    assert.match(explained.stdout, /^198\.18\.0\.101\s+n2\s+conflict\s+.*round-robin: slot 1$/m);
  });

  it("ip list --json prints the VIP array", async () => {
    const { code, stdout } = await floatip(["ip", "list", "--json", "--api", api]);
    assert.equal(code, 0);
    const list = JSON.parse(stdout);
    assert.deepEqual(
      list.map((v: { address: string }) => v.address),
      vips,
    );
    assert.equal(typeof list[0].explain, "string");
  });

  it("ip move VIP NODE with the token pins the VIP; a follower says where it forwarded", async () => {
    const onCoordinator = await floatip([
      "ip",
      "move",
      "198.18.0.100/24",
      "n3",
      "--api",
      api,
      "--token-file",
      tokenFile,
    ]);
    assert.equal(onCoordinator.code, 0, onCoordinator.stderr);
    assert.match(
      onCoordinator.stdout,
      /move 198\.18\.0\.100\/24 to n3: accepted by the coordinator/,
    );
    assert.deepEqual(handle.commands, [{ type: "move", vip: "198.18.0.100/24", node: "n3" }]);

    const viaFollower = await floatip(
      ["ip", "move", "198.18.0.100", "n1", "--json", "--api", followerApi],
      {
        FLOATIP_TOKEN_FILE: tokenFile,
      },
    );
    assert.equal(viaFollower.code, 0, viaFollower.stderr);
    assert.deepEqual(JSON.parse(viaFollower.stdout), { accepted: true, forwardedTo: "n1" });
  });

  it("ip unpin and ip move --clear remove the pin", async () => {
    const unpin = await floatip([
      "ip",
      "unpin",
      "198.18.0.100",
      "--api",
      api,
      "--token-file",
      tokenFile,
    ]);
    assert.equal(unpin.code, 0, unpin.stderr);
    const clear = await floatip([
      "ip",
      "move",
      "198.18.0.101",
      "--clear",
      "--api",
      api,
      "--token-file",
      tokenFile,
    ]);
    assert.equal(clear.code, 0, clear.stderr);
    assert.deepEqual(handle.commands, [
      { type: "unpin", vip: "198.18.0.100" },
      { type: "unpin", vip: "198.18.0.101" },
    ]);
  });

  it("without the token, or with a wrong one, a move is refused (exit 1) and nothing changes", async () => {
    const none = await floatip(["ip", "move", "198.18.0.100", "n2", "--api", api]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /UNAUTHORIZED/);
    assert.match(none.stderr, /--token-file/);
    const wrong = await floatip([
      "ip",
      "move",
      "198.18.0.100",
      "n2",
      "--api",
      api,
      "--token-file",
      wrongTokenFile,
    ]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /UNAUTHORIZED: wrong token/);
    const missing = await floatip([
      "ip",
      "move",
      "198.18.0.100",
      "n2",
      "--api",
      api,
      "--token-file",
      join(dir, "nope"),
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read the API token file/);
    assert.equal(handle.commands.length, 0);
  });

  it("an unknown VIP or node is reported with its code, exit 1", async () => {
    const vip = await floatip([
      "ip",
      "move",
      "198.18.7.7",
      "n2",
      "--api",
      api,
      "--token-file",
      tokenFile,
    ]);
    assert.equal(vip.code, 1);
    assert.match(vip.stderr, /UNKNOWN_VIP/);
    const node = await floatip([
      "ip",
      "move",
      "198.18.0.100",
      "n9",
      "--api",
      api,
      "--token-file",
      tokenFile,
    ]);
    assert.equal(node.code, 1);
    assert.match(node.stderr, /UNKNOWN_NODE/);
  });

  it("an agent without api.token_file refuses changes with MUTATIONS_DISABLED", async () => {
    const locked = new InMemoryAgentHandle({ node: "n1", nodes, vips });
    const address = await startServer(locked, false);
    const { code, stderr } = await floatip([
      "ip",
      "move",
      "198.18.0.100",
      "n2",
      "--api",
      address,
      "--token-file",
      tokenFile,
    ]);
    assert.equal(code, 1);
    assert.match(stderr, /MUTATIONS_DISABLED: .*api\.token_file/);
    assert.equal(locked.commands.length, 0);
  });
});

describe("floatip node", () => {
  it("node disable and enable drain and take back the node", async () => {
    const disable = await floatip([
      "node",
      "disable",
      "n3",
      "--api",
      api,
      "--token-file",
      tokenFile,
    ]);
    assert.equal(disable.code, 0, disable.stderr);
    assert.match(disable.stdout, /disable n3: accepted/);
    const members = JSON.parse((await floatip(["status", "--json", "--api", api])).stdout).members;
    assert.equal(members[2].state, "drained");
    const enable = await floatip([
      "node",
      "enable",
      "n3",
      "--json",
      "--api",
      api,
      "--token-file",
      tokenFile,
    ]);
    assert.equal(enable.code, 0, enable.stderr);
    assert.deepEqual(JSON.parse(enable.stdout), { accepted: true, forwardedTo: null });
    assert.deepEqual(handle.commands, [
      { type: "drain", node: "n3" },
      { type: "undrain", node: "n3" },
    ]);
  });

  it("no coordinator: exit 1 with NO_COORDINATOR", async () => {
    const lonely = new InMemoryAgentHandle({ node: "n1", coordinator: undefined, nodes, vips });
    const address = await startServer(lonely);
    const { code, stderr } = await floatip([
      "node",
      "disable",
      "n2",
      "--api",
      address,
      "--token-file",
      tokenFile,
    ]);
    assert.equal(code, 1);
    assert.match(stderr, /NO_COORDINATOR/);
  });

  it("relay list and traffic on a cluster without those sections name the missing section", async () => {
    const api = await startServer(handle);
    for (const args of [
      ["relay", "list"],
      ["relay", "show", "web"],
      ["traffic", "n1"],
    ]) {
      const { code, stdout, stderr } = await floatip([...args, "--api", api]);
      assert.equal(code, 1, `${args.join(" ")}: ${stdout}${stderr}`);
      assert.match(
        stderr,
        /SECTION_NOT_CONFIGURED: this cluster has no (relays|traffic): section/,
        args.join(" "),
      );
      assert.doesNotMatch(stderr, /is not iterable|no route/);
    }
  });

  it("a closed port: exit 3", async () => {
    const port = await closedPort();
    const { code, stderr } = await floatip([
      "node",
      "enable",
      "n1",
      "--api",
      `127.0.0.1:${port}`,
      "--token-file",
      tokenFile,
    ]);
    assert.equal(code, 3);
    assert.match(stderr, /no floatip agent answers/);
  });
});

describe("--wait: when a VIP counts as in effect", () => {
  const vip = (over: Partial<VipView>): VipView => ({
    address: "198.18.0.100",
    owner: "n2",
    desiredOwner: "n2",
    local: "absent",
    since: null,
    conflict: false,
    explain: "",
    ...over,
  });
  const status = (v: VipView, extra: Partial<StatusView> = {}) =>
    ({ node: "n1", vips: [v], ...extra }) as StatusView;

  it("waits while the table names the owner but the owner does not report holding it", () => {
    assert.match(pendingHold(status(vip({})), "198.18.0.100", "n2") ?? "", /does not hold it yet/);
    assert.equal(pendingHold(status(vip({ heldForMs: 12 })), "198.18.0.100", "n2"), undefined);
  });

  it("waits for the right owner, names a conflict, and has nothing to wait for without owner", () => {
    const elsewhere = vip({ owner: "n3", heldForMs: 5, explain: "n2 is failed" });
    assert.equal(pendingHold(status(elsewhere), "198.18.0.100", "n2"), "n2 is failed");
    const occupied = vip({ conflict: true });
    assert.match(pendingHold(status(occupied), "198.18.0.100", "n2") ?? "", /occupied/);
    assert.equal(pendingHold(status(vip({ owner: null })), "198.18.0.100", undefined), undefined);
    assert.match(pendingHold(status(vip({})), "198.18.0.9", "n2") ?? "", /not in the status/);
  });

  it("with arbiter etcd, another node's claim counts; its own claim needs the address", () => {
    const etcd = { arbiter: { kind: "etcd" } } as Partial<StatusView>;
    assert.equal(pendingHold(status(vip({}), etcd), "198.18.0.100", "n2"), undefined);
    const own = status(vip({ owner: "n1" }), etcd);
    assert.match(pendingHold(own, "198.18.0.100", "n1") ?? "", /does not hold it yet/);
  });
});
