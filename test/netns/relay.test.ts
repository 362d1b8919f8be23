/**
 * The relay (S4) end to end in network namespaces: a client, the relay (`floatip relay run`),
 * a primary and a standby, all on one bridge. Backends are tiny HTTP servers that answer with
 * their name and can be told (over stdin) to hang or to fail their health endpoint. Clients
 * are bounded request loops running in the client namespace; they report what they received.
 *
 * Topology: 198.18.S.10 client, .11 relay, .12 primary, .13 standby (src/lab/topology.ts). In `nat`
 * mode the backends sit on the client's subnet and would answer the client directly, so the
 * relay masquerades forwarded connections (`nat_masquerade: true`, the default) and has
 * `net.ipv4.ip_forward=1`.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createTopology, skipUnlessRoot, type Topology } from "../../src/lab/topology.ts";

const mainTs = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const node = process.execPath;

/** Answers `NAME\n` on any path; `/health` answers 200 unless told to fail. Commands on stdin:
 * `hang` (accept, never answer), `ok` (normal), `fail N` (next N health checks answer 500,
 * -1 = until `ok`). Each command is acknowledged with `ack <command>` on stdout. */
const backendCode = `
const http = require("node:http");
const [name, port] = process.argv.slice(1);
let hang = false;
let failHealth = 0;
const server = http.createServer((req, res) => {
  if (hang) return;
  if (req.url === "/health") {
    if (failHealth !== 0) {
      if (failHealth > 0) failHealth -= 1;
      res.statusCode = 500;
      return res.end("sick\\n");
    }
    return res.end("ok\\n");
  }
  res.setHeader("connection", "close");
  res.end(name + "\\n");
});
server.listen(Number(port), "0.0.0.0", () => console.log("listening"));
let pending = "";
process.stdin.on("data", (chunk) => {
  pending += chunk;
  let i;
  while ((i = pending.indexOf("\\n")) >= 0) {
    const line = pending.slice(0, i).trim();
    pending = pending.slice(i + 1);
    const [command, arg] = line.split(" ");
    if (command === "hang") hang = true;
    if (command === "ok") { hang = false; failHealth = 0; }
    if (command === "fail") failHealth = Number(arg);
    console.log("ack " + line);
  }
});
`;

/** A bounded loop of requests, each on a new connection; prints one JSON summary.
 * argv: host port count pauseMs protocol(http|tcp) timeoutMs */
const clientCode = `
const net = require("node:net");
const [host, port, count, pauseMs, protocol, timeoutMs] = process.argv.slice(1);
function once() {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect({ host, port: Number(port) });
    let data = "";
    let settled = false;
    const done = (result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...result, ms: Math.round(performance.now() - started) });
    };
    const timer = setTimeout(() => done({ outcome: "timeout" }), Number(timeoutMs));
    socket.on("connect", () => socket.write("GET / HTTP/1.1\\r\\nHost: relay\\r\\nConnection: close\\r\\n\\r\\n"));
    socket.on("data", (d) => (data += d));
    socket.on("error", (e) => {
      if (e.code === "ECONNREFUSED") return done({ outcome: "refused" });
      done({ outcome: e.code === "ECONNRESET" && data === "" ? "reset" : "error", error: e.code, data });
    });
    socket.on("end", () => {
      const status = Number(/^HTTP\\/1\\.1 (\\d+)/.exec(data)?.[1] ?? 0);
      const body = data.split("\\r\\n\\r\\n").slice(1).join("").trim();
      if (data === "") return done({ outcome: "empty" });
      done({ outcome: status === 200 ? "ok" : "status", status, body });
    });
  });
}
(async () => {
  const results = [];
  for (let i = 0; i < Number(count); i++) {
    results.push(await once());
    if (Number(pauseMs) > 0) await new Promise((r) => setTimeout(r, Number(pauseMs)));
  }
  process.stdout.write(JSON.stringify(results));
})();
`;

interface ClientResult {
  /** `refused`: reset in answer to the SYN; `reset`: reset after the connection was accepted. */
  outcome: "ok" | "status" | "reset" | "refused" | "error" | "timeout" | "empty";
  status?: number;
  body?: string;
  error?: string;
  ms: number;
}

interface BackendStatusJson {
  id: string;
  state: "up" | "down";
  active: boolean;
  faultsInWindow: number;
}
interface RelayStatusJson {
  name: string;
  active: string | null;
  backends: BackendStatusJson[];
  events: Array<{ type: string; from?: string; to?: string; reason?: string }>;
}

function waitForLine(child: ChildProcess, pattern: RegExp, limitMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => {
      child.stdout?.off("data", onData);
      reject(
        new Error(`no line matching ${pattern} within ${limitMs} ms; got: ${buffer.slice(-500)}`),
      );
    }, limitMs);
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      const line = buffer.split("\n").find((l) => pattern.test(l));
      if (line !== undefined) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        resolve(line);
      }
    };
    child.stdout?.on("data", onData);
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Polls `check` every 100 ms until it returns true or `limitMs` passes; returns the last answer. */
async function eventually(check: () => Promise<boolean>, limitMs: number): Promise<boolean> {
  const attempts = Math.ceil(limitMs / 100);
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await check()) return true;
    await sleep(100);
  }
  return check();
}

/** One namespace topology with a primary, a standby and a relay runner per describe. */
class RelayLab {
  topology!: Topology;
  readonly backends = new Map<string, ChildProcess>();
  relayProcess: ChildProcess | undefined;
  relayLog = "";
  readonly dir = mkdtempSync(join(tmpdir(), "fipr-"));
  readonly statusAddress = "127.0.0.1:7981";

  async create(): Promise<void> {
    this.topology = await createTopology({
      prefix: "fipr-",
      hosts: ["client", "relay", "primary", "standby"],
    });
  }

  address(host: string): string {
    return this.topology.host(host).address;
  }

  async startBackend(name: "primary" | "standby"): Promise<void> {
    const child = this.topology.spawn(name, node, ["-e", backendCode, name, "8080"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.backends.set(name, child);
    await waitForLine(child, /^listening$/, 5000);
  }

  async killBackend(name: "primary" | "standby"): Promise<void> {
    const child = this.backends.get(name);
    if (!child) return;
    child.kill("SIGKILL");
    await exited(child);
    this.backends.delete(name);
  }

  async tell(name: "primary" | "standby", command: string): Promise<void> {
    const child = this.backends.get(name)!;
    const acked = waitForLine(child, new RegExp(`^ack ${command}$`), 3000);
    child.stdin!.write(`${command}\n`);
    await acked;
  }

  async startRelay(yaml: string): Promise<void> {
    const file = join(this.dir, "relay.yaml");
    writeFileSync(file, yaml);
    const child = this.topology.spawn("relay", node, [
      mainTs,
      "relay",
      "run",
      "--config",
      file,
      "--status",
      this.statusAddress,
    ]);
    child.stdout!.on("data", (d: Buffer) => {
      this.relayLog += d.toString();
    });
    child.stderr!.on("data", (d: Buffer) => {
      this.relayLog += d.toString();
    });
    this.relayProcess = child;
    await waitForLine(child, /status-listening/, 10_000);
  }

  async status(name: string): Promise<RelayStatusJson> {
    const { stdout } = await this.topology.exec(
      "relay",
      node,
      [mainTs, "relay", "show", name, "--json", "--status", this.statusAddress],
      10_000,
    );
    return JSON.parse(stdout) as RelayStatusJson;
  }

  async waitActive(relay: string, backend: string | null, limitMs = 5000): Promise<void> {
    let last: string | null | undefined;
    const reached = await eventually(async () => {
      last = (await this.status(relay)).active;
      return last === backend;
    }, limitMs);
    assert.ok(
      reached,
      `relay ${relay}: expected active ${backend}, still ${last}\n${this.relayLog.slice(-3000)}`,
    );
  }

  async client(
    port: number,
    options: {
      count?: number;
      pauseMs?: number;
      protocol?: "http" | "tcp";
      timeoutMs?: number;
    } = {},
  ): Promise<ClientResult[]> {
    const { count = 1, pauseMs = 0, protocol = "http", timeoutMs = 3000 } = options;
    const { stdout } = await this.topology.exec(
      "client",
      node,
      [
        "-e",
        clientCode,
        this.address("relay"),
        String(port),
        String(count),
        String(pauseMs),
        protocol,
        String(timeoutMs),
      ],
      count * (timeoutMs + pauseMs) + 10_000,
    );
    return JSON.parse(stdout) as ClientResult[];
  }

  async body(port: number): Promise<string | undefined> {
    const [result] = await this.client(port);
    return result?.body;
  }

  async destroy(): Promise<void> {
    try {
      await this.topology?.destroy();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

function relayYaml(lab: RelayLab, mode: "proxy" | "nat"): string {
  const relay = lab.address("relay");
  const primary = `${lab.address("primary")}:8080`;
  const standby = `${lab.address("standby")}:8080`;
  const check =
    "{ kind: http, path: /health, expect_status: 200, interval: 100ms, timeout: 300ms, fall: 3, within: 1s, rise: 2 }";
  const common = (name: string, port: number, protocol: string, failback: string) => `
  - name: ${name}
    listen: ${relay}:${port}
    protocol: ${protocol}
    mode: ${mode}
    primary: ${primary}
    standby: [${standby}]
    check: ${check}
    connect_timeout: 200ms
    failback: ${failback}
    close_on_backend_down: true`;
  return `relays:${common("web", 80, "http", "immediate")}${common("raw", 81, "tcp", "immediate")}${common("sticky", 82, "http", "never")}\n`;
}

const bodies = (results: ClientResult[]) => results.map((r) => r.body ?? r.outcome);

describe("relay, proxy data plane, in network namespaces", { skip: skipUnlessRoot() }, () => {
  const lab = new RelayLab();

  before(async () => {
    await lab.create();
    await lab.startBackend("primary");
    await lab.startBackend("standby");
    await lab.startRelay(relayYaml(lab, "proxy"));
  });

  after(async () => {
    await lab.destroy();
  });

  it("sends clients to the primary while it is up", async () => {
    const results = await lab.client(80, { count: 5 });
    assert.deepEqual(bodies(results), ["primary", "primary", "primary", "primary", "primary"]);
    assert.equal(await lab.body(82), "primary");
    const raw = await lab.client(81, { protocol: "tcp" });
    assert.equal(raw[0]?.body, "primary");
  });

  it("moves clients to the standby when the primary dies, without a single client error", async () => {
    const loop = lab.client(80, { count: 150, pauseMs: 10, timeoutMs: 3000 });
    await sleep(500);
    await lab.killBackend("primary");
    const results = await loop;
    // A request the primary had already accepted when it was killed is cut off with it
    // ("empty" or "reset"): replaying it elsewhere could run it twice, so the relay does not.
    // Every other request, and every new connection after the kill, must be answered.
    const failures = results.filter((r) => r.outcome !== "ok");
    const cutInFlight = failures.filter((r) => r.outcome === "empty" || r.outcome === "reset");
    assert.ok(
      cutInFlight.length <= 1,
      `more than the one in-flight request failed: ${JSON.stringify(failures)}`,
    );
    assert.deepEqual(
      failures.filter((r) => !cutInFlight.includes(r)),
      [],
      "no refused, timed-out or 5xx request while the standby was healthy",
    );
    const seen = bodies(results);
    assert.ok(seen.includes("primary") && seen.at(-1) === "standby", `answers: ${seen.join(",")}`);
    // The first answer after the kill came from the standby at once, not after a client wait.
    const worstMs = Math.max(...results.map((r) => r.ms));
    assert.ok(worstMs < 2000, `slowest request took ${worstMs} ms`);
    await lab.waitActive("web", `${lab.address("standby")}:8080`);
  });

  it("fails back to the restarted primary (immediate) but not where failback is never", async () => {
    await lab.startBackend("primary");
    await lab.waitActive("web", `${lab.address("primary")}:8080`);
    assert.equal(await lab.body(80), "primary");
    const sticky = await lab.status("sticky");
    assert.equal(sticky.active, `${lab.address("standby")}:8080`);
    assert.equal(sticky.backends[0]?.state, "up");
    assert.equal(await lab.body(82), "standby");
  });

  it("takes a hung primary out by its HTTP check and closes its stuck sessions", async () => {
    await lab.tell("primary", "hang");
    // A request caught by the hang: the relay closes it when the primary is declared down
    // (close_on_backend_down), long before the client's own 8 s deadline.
    const stuck = lab.client(80, { timeoutMs: 8000 });
    await lab.waitActive("web", `${lab.address("standby")}:8080`, 5000);
    assert.equal(await lab.body(80), "standby");
    const [caught] = await stuck;
    assert.notEqual(caught?.outcome, "timeout");
    assert.notEqual(caught?.outcome, "ok");
    await lab.tell("primary", "ok");
    await lab.waitActive("web", `${lab.address("primary")}:8080`);
    assert.equal(await lab.body(80), "primary");
  });

  it("ignores fewer than M anomalies per unit of time, switches on M", async () => {
    const before = (await lab.status("web")).events.length;
    await lab.tell("primary", "fail 2");
    await sleep(1500); // into the next unit: the counter starts again at zero
    await lab.tell("primary", "fail 2");
    await sleep(600);
    const calm = await lab.status("web");
    assert.equal(calm.active, `${lab.address("primary")}:8080`);
    assert.equal(calm.events.length, before, "no backend-down, no switch");
    assert.equal(await lab.body(80), "primary");

    await lab.tell("primary", "fail -1");
    await lab.waitActive("web", `${lab.address("standby")}:8080`);
    const switched = (await lab.status("web")).events.filter((e) => e.type === "switched").at(-1);
    assert.equal(switched?.reason, "backend-down");
    assert.equal(await lab.body(80), "standby");
    await lab.tell("primary", "ok");
    await lab.waitActive("web", `${lab.address("primary")}:8080`);
  });

  it("rejects at once when both backends are down: TCP reset, HTTP 503 JSON", async () => {
    await lab.killBackend("primary");
    await lab.killBackend("standby");
    await lab.waitActive("web", null);
    await lab.waitActive("raw", null);
    const [http] = await lab.client(80, { timeoutMs: 3000 });
    assert.equal(http?.outcome, "status");
    assert.equal(http?.status, 503);
    assert.equal(JSON.parse(http?.body ?? "{}").error?.code, "NO_BACKEND");
    const [tcp] = await lab.client(81, { protocol: "tcp", timeoutMs: 3000 });
    assert.equal(tcp?.outcome, "reset");
  });

  it("serves again from the primary when it comes back", async () => {
    await lab.startBackend("primary");
    await lab.waitActive("web", `${lab.address("primary")}:8080`);
    assert.equal(await lab.body(80), "primary");
    const raw = await lab.client(81, { protocol: "tcp" });
    assert.equal(raw[0]?.body, "primary");
  });
});

describe("relay, nat data plane (nftables DNAT), in network namespaces", {
  skip: skipUnlessRoot(),
}, () => {
  const lab = new RelayLab();
  const primary = () => `${lab.address("primary")}:8080`;
  const standby = () => `${lab.address("standby")}:8080`;

  before(async () => {
    await lab.create();
    // The relay forwards between client and backends (the backends share the client's subnet,
    // so the relay also masquerades: replies must come back through it to be un-NATed).
    await lab.topology.exec("relay", "sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
    await lab.startBackend("primary");
    await lab.startBackend("standby");
    await lab.startRelay(relayYaml(lab, "nat"));
  });

  after(async () => {
    await lab.destroy();
  });

  it("forwards clients to the primary through a DNAT map", async () => {
    assert.deepEqual(bodies(await lab.client(80, { count: 3 })), ["primary", "primary", "primary"]);
    const { stdout } = await lab.topology.exec("relay", "nft", [
      "list",
      "map",
      "ip",
      "floatip_relay",
      "targets",
    ]);
    assert.match(
      stdout,
      new RegExp(`${lab.address("relay")} \\. 80 : ${lab.address("primary")} \\. 8080`),
    );
  });

  it("moves new connections to the standby when the primary dies", async () => {
    const loop = lab.client(80, { count: 100, pauseMs: 10, timeoutMs: 2000 });
    await sleep(300);
    await lab.killBackend("primary");
    const results = await loop;
    const seen = bodies(results);
    assert.ok(seen.includes("primary") && seen.at(-1) === "standby", `answers: ${seen.join(",")}`);
    await lab.waitActive("web", standby());
    assert.equal(await lab.body(80), "standby");
  });

  it("fails back to the restarted primary (immediate) but not where failback is never", async () => {
    await lab.startBackend("primary");
    await lab.waitActive("web", primary());
    assert.equal(await lab.body(80), "primary");
    assert.equal((await lab.status("sticky")).active, standby());
    assert.equal(await lab.body(82), "standby");
  });

  it("takes a hung primary out by its HTTP check", async () => {
    await lab.tell("primary", "hang");
    await lab.waitActive("web", standby());
    assert.equal(await lab.body(80), "standby");
    await lab.tell("primary", "ok");
    await lab.waitActive("web", primary());
    assert.equal(await lab.body(80), "primary");
  });

  it("ignores fewer than M anomalies per unit of time, switches on M", async () => {
    const eventsBefore = (await lab.status("web")).events.length;
    await lab.tell("primary", "fail 2");
    await sleep(1500);
    await lab.tell("primary", "fail 2");
    await sleep(600);
    const calm = await lab.status("web");
    assert.equal(calm.active, primary());
    assert.equal(calm.events.length, eventsBefore);
    await lab.tell("primary", "fail -1");
    await lab.waitActive("web", standby());
    assert.equal(await lab.body(80), "standby");
    await lab.tell("primary", "ok");
    await lab.waitActive("web", primary());
  });

  it("resets new connections at once when both backends are down", async () => {
    await lab.killBackend("primary");
    await lab.killBackend("standby");
    await lab.waitActive("web", null);
    await lab.waitActive("raw", null);
    // Something listens on the relay's own ports, answering like a backend would: without the
    // reject rule a client would reach it, so only the rule can produce the reset below.
    const local = lab.topology.spawn(
      "relay",
      node,
      [
        "-e",
        `for (const port of [80, 81]) require("node:net").createServer((s) => s.end("relay-local\\n")).listen(port, "${lab.address("relay")}", () => console.log("listening " + port));`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      await waitForLine(local, /^listening 81$/, 5000);
      // The kernel answers the SYN itself with a reset: the client sees "connection refused".
      const [http] = await lab.client(80, { timeoutMs: 3000 });
      assert.equal(http?.outcome, "refused", JSON.stringify(http));
      const [tcp] = await lab.client(81, { protocol: "tcp", timeoutMs: 3000 });
      assert.equal(tcp?.outcome, "refused", JSON.stringify(tcp));
    } finally {
      local.kill("SIGKILL");
      await exited(local);
    }
    const { stdout } = await lab.topology.exec("relay", "nft", [
      "list",
      "set",
      "ip",
      "floatip_relay",
      "rejecting",
    ]);
    assert.match(stdout, new RegExp(`${lab.address("relay")} \\. 80`));
  });

  it("serves again from the primary when it comes back", async () => {
    await lab.startBackend("primary");
    await lab.waitActive("web", primary());
    assert.equal(await lab.body(80), "primary");
  });
});
