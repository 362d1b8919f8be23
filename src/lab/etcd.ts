/**
 * A real etcd cluster for the etcd arbiter's tests and benchmarks: one Debian `etcd` process
 * per member, each in its own namespace of a lab topology (198.18.x addresses, client port
 * 2379, peer port 2380), with fast raft timers (50 ms heartbeat, 500 ms election, so the
 * minimum lease TTL is 1 s). Optional TLS (a CA, server and client certificates made with
 * openssl under the lab directory) and authentication (root and a floatip user).
 * Members are killed, stopped, continued and restarted by PID; `destroy` of the topology
 * ends them.
 */
import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../adapters/exec.ts";
import type { Topology } from "./topology.ts";

export interface EtcdLabOptions {
  readonly topology: Topology;
  /** Host names of the members in the topology (e.g. e1, e2, e3). */
  readonly members: readonly string[];
  readonly dir: string;
  readonly tls?: boolean;
  /** Enable authentication with user `floatip` and this password (and `root`). */
  readonly password?: string;
}

export interface EtcdLab {
  readonly endpoints: readonly string[];
  readonly members: readonly string[];
  /** With `tls`: the CA, client certificate and key the agents use. */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string };
  start(member: string): void;
  signal(member: string, signal: NodeJS.Signals): void;
  /** Kills the member and waits until its process is gone. */
  kill(member: string): Promise<void>;
  running(member: string): boolean;
  /** The member that leads raft now, or undefined (asked of every running member). */
  leader(): Promise<string | undefined>;
  /** `etcdctl` against the cluster (as root when auth is on). */
  ctl(args: readonly string[]): Promise<string>;
}

const clientPort = 2379;
const peerPort = 2380;

export async function startEtcd(options: EtcdLabOptions): Promise<EtcdLab> {
  const { topology, members, dir } = options;
  const scheme = options.tls ? "https" : "http";
  const address = (m: string) => topology.host(m).address;
  const endpoints = members.map((m) => `${scheme}://${address(m)}:${clientPort}`);
  const initialCluster = members.map((m) => `${m}=${scheme}://${address(m)}:${peerPort}`).join(",");
  mkdirSync(dir, { recursive: true });
  const tls = options.tls ? await makeCertificates(dir, members.map(address)) : undefined;
  const processes = new Map<string, ChildProcess>();
  let started = false;

  const args = (m: string): string[] => {
    const a = address(m);
    const list = [
      "--name",
      m,
      "--data-dir",
      join(dir, `${m}.etcd`),
      "--listen-client-urls",
      `${scheme}://${a}:${clientPort}`,
      "--advertise-client-urls",
      `${scheme}://${a}:${clientPort}`,
      "--listen-peer-urls",
      `${scheme}://${a}:${peerPort}`,
      "--initial-advertise-peer-urls",
      `${scheme}://${a}:${peerPort}`,
      "--initial-cluster",
      initialCluster,
      "--initial-cluster-state",
      started ? "existing" : "new",
      "--initial-cluster-token",
      `floatip-lab-${topology.subnet}`,
      "--heartbeat-interval",
      "50",
      "--election-timeout",
      "500",
      "--logger",
      "zap",
      "--log-level",
      "error",
    ];
    if (tls) {
      list.push(
        "--cert-file",
        tls.server,
        "--key-file",
        tls.serverKey,
        "--trusted-ca-file",
        tls.ca,
        "--client-cert-auth",
        "--peer-cert-file",
        tls.server,
        "--peer-key-file",
        tls.serverKey,
        "--peer-trusted-ca-file",
        tls.ca,
        "--peer-client-cert-auth",
      );
    }
    return list;
  };

  const lab: EtcdLab = {
    endpoints,
    members,
    ...(tls ? { tls: { ca: tls.ca, cert: tls.client, key: tls.clientKey } } : {}),
    start(m) {
      if (lab.running(m)) return;
      const child = topology.spawn(m, "etcd", args(m), { stdio: "ignore" });
      processes.set(m, child);
    },
    signal(m, signal) {
      const child = processes.get(m);
      if (child?.pid && child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, signal);
      }
    },
    async kill(m) {
      const child = processes.get(m);
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      lab.signal(m, "SIGKILL");
      await gone;
    },
    running(m) {
      const child = processes.get(m);
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async leader() {
      for (const m of members) {
        if (!lab.running(m)) continue;
        try {
          const out = await ctlAt(
            [`${scheme}://${address(m)}:${clientPort}`],
            ["endpoint", "status", "-w", "json"],
          );
          const [status] = JSON.parse(out) as {
            Status: { header: { member_id: number }; leader: number };
          }[];
          if (!status) continue;
          if (status.Status.leader === status.Status.header.member_id) return m;
        } catch {
          // not answering: ask the next
        }
      }
      return undefined;
    },
    ctl: (a) => ctlAt(endpoints, a),
  };

  const ctlAt = async (at: readonly string[], a: readonly string[]): Promise<string> => {
    const flags = [`--endpoints=${at.join(",")}`, "--command-timeout=3s", "--dial-timeout=2s"];
    if (tls) flags.push(`--cacert=${tls.ca}`, `--cert=${tls.client}`, `--key=${tls.clientKey}`);
    if (options.password !== undefined && authEnabled)
      flags.push(`--user=root:${options.password}`);
    // etcdctl from the first member's namespace: the bridge is reachable only from inside.
    const result = await topology.exec(
      members[0]!,
      "env",
      ["ETCDCTL_API=3", "etcdctl", ...flags, ...a],
      10_000,
    );
    return result.stdout;
  };
  let authEnabled = false;

  for (const m of members) lab.start(m);
  started = true;
  // Wait until the cluster answers a write.
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await ctlAt(endpoints, ["put", "/floatip-lab/ready", "1"]);
      break;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`etcd did not come up: ${String(error)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  if (options.password !== undefined) {
    await ctlAt(endpoints, ["user", "add", `root:${options.password}`]);
    await ctlAt(endpoints, ["user", "add", `floatip:${options.password}`]);
    await ctlAt(endpoints, ["role", "add", "floatip"]);
    await ctlAt(endpoints, [
      "role",
      "grant-permission",
      "floatip",
      "--prefix=true",
      "readwrite",
      "/floatip/",
    ]);
    await ctlAt(endpoints, ["user", "grant-role", "floatip", "floatip"]);
    await ctlAt(endpoints, ["auth", "enable"]);
    authEnabled = true;
  }
  return lab;
}

interface Certificates {
  readonly ca: string;
  readonly server: string;
  readonly serverKey: string;
  readonly client: string;
  readonly clientKey: string;
}

/** A CA, one server certificate for every member address, and a client certificate. */
async function makeCertificates(dir: string, addresses: readonly string[]): Promise<Certificates> {
  const p = (name: string) => join(dir, name);
  const openssl = (args: string[]) => run("openssl", args, { timeoutMs: 30_000 });
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=floatip-lab-ca",
    "-keyout",
    p("ca-key.pem"),
    "-out",
    p("ca.pem"),
  ]);
  const sign = async (name: string, cn: string, ext: string) => {
    writeFileSync(p(`${name}.ext`), ext);
    await openssl([
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-subj",
      `/CN=${cn}`,
      "-keyout",
      p(`${name}-key.pem`),
      "-out",
      p(`${name}.csr`),
    ]);
    await openssl([
      "x509",
      "-req",
      "-in",
      p(`${name}.csr`),
      "-CA",
      p("ca.pem"),
      "-CAkey",
      p("ca-key.pem"),
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      p(`${name}.ext`),
      "-out",
      p(`${name}.pem`),
    ]);
  };
  const sans = addresses.map((a) => `IP:${a}`).join(",");
  await sign(
    "server",
    "etcd",
    `subjectAltName=${sans},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`,
  );
  await sign("client", "floatip", "extendedKeyUsage=clientAuth\n");
  return {
    ca: p("ca.pem"),
    server: p("server.pem"),
    serverKey: p("server-key.pem"),
    client: p("client.pem"),
    clientKey: p("client-key.pem"),
  };
}
