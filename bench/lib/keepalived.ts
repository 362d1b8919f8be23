/**
 * keepalived as the incumbent: one daemon per node namespace of a bench topology, each with its
 * own config and pid files in a temporary directory, run in the foreground (`--dont-fork`) with
 * only the VRRP subsystem. Installed from the Debian package when missing.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDebianPackage } from "../../src/lab/debian.ts";
import type { Topology } from "../../src/lab/topology.ts";

/** default: VRRPv2, 1 s adverts; fastest: VRRPv3, 10 ms; ipv6: VRRPv3 (IPv6 needs it), 1 s. */
export type KeepalivedVariant = "default" | "fastest" | "ipv6";

const binaryCandidates = ["/usr/sbin/keepalived", "/usr/local/sbin/keepalived"];

/** Path of the keepalived binary, installing the Debian package first if needed; undefined if impossible. */
export function ensureKeepalived(): Promise<string | undefined> {
  return ensureDebianPackage("keepalived", binaryCandidates);
}

export interface KeepalivedCluster {
  readonly ids: readonly string[];
  readonly vip: string;
  start(id: string): ChildProcess;
  /** SIGKILL to keepalived and every child of it (the VRRP process). */
  killAll(id: string): void;
  /** Removes the VIP a killed daemon left behind (keepalived never does). */
  removeLeftover(id: string): Promise<void>;
  logs(id: string): string;
  stop(): Promise<void>;
}

const priorities = [150, 100, 50];

export function keepalivedConfig(options: {
  readonly variant: KeepalivedVariant;
  readonly id: string;
  readonly index: number;
  readonly iface: string;
  readonly vip: string;
}): string {
  const fastest = options.variant === "fastest";
  const six = options.variant === "ipv6";
  return [
    "global_defs {",
    `  router_id fipb-${options.id}`,
    // VRRPv3 is the only version that accepts sub-second advertisement intervals, and the
    // only one for IPv6 (its adverts go to ff02::12 from the link-local address).
    `  vrrp_version ${fastest || six ? 3 : 2}`,
    "}",
    "vrrp_instance VI_1 {",
    `  state ${options.index === 0 ? "MASTER" : "BACKUP"}`,
    `  interface ${options.iface}`,
    "  virtual_router_id 51",
    `  priority ${priorities[options.index] ?? 10}`,
    `  advert_int ${fastest ? "0.01" : "1"}`,
    "  virtual_ipaddress {",
    `    ${options.vip}/${six ? 64 : 24} dev ${options.iface}`,
    "  }",
    "}",
    "",
  ].join("\n");
}

export function startKeepalived(
  binary: string,
  topology: Topology,
  ids: readonly string[],
  vip: string,
  variant: KeepalivedVariant,
): KeepalivedCluster {
  const dir = mkdtempSync(join(tmpdir(), "fipb-keepalived-"));
  const processes = new Map<string, ChildProcess>();
  const logs = new Map<string, string[]>();
  const file = (id: string, name: string) => join(dir, `${id}.${name}`);
  for (const [index, id] of ids.entries()) {
    const iface = topology.host(id).iface;
    writeFileSync(file(id, "conf"), keepalivedConfig({ variant, id, index, iface, vip }));
  }
  const childrenOf = (pid: number): number[] => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
    } catch {
      return [];
    }
  };
  const kill = (pid: number) => {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  };
  const cluster: KeepalivedCluster = {
    ids,
    vip,
    start(id) {
      for (const name of ["pid", "vrrp.pid", "checkers.pid", "bfd.pid"])
        rmSync(file(id, name), { force: true });
      const child = topology.spawn(
        id,
        binary,
        [
          "--dont-fork",
          "--log-console",
          "--vrrp",
          "-f",
          file(id, "conf"),
          "-p",
          file(id, "pid"),
          "-r",
          file(id, "vrrp.pid"),
          "-c",
          file(id, "checkers.pid"),
          "-b",
          file(id, "bfd.pid"),
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      const lines = logs.get(id) ?? [];
      logs.set(id, lines);
      const keep = (chunk: Buffer) => {
        lines.push(chunk.toString());
        if (lines.length > 500) lines.splice(0, lines.length - 500);
      };
      child.stdout?.on("data", keep);
      child.stderr?.on("data", keep);
      processes.set(id, child);
      return child;
    },
    killAll(id) {
      const pid = processes.get(id)?.pid;
      if (pid === undefined) return;
      // Freeze the parent first so that it can neither respawn the VRRP child nor, by dying
      // first, make the child shut down gracefully and remove the VIP: a crash does neither.
      try {
        process.kill(pid, "SIGSTOP");
      } catch {
        return;
      }
      for (const child of childrenOf(pid)) kill(child);
      kill(pid);
    },
    async removeLeftover(id) {
      await topology
        .exec(id, "ip", [
          "address",
          "del",
          `${vip}/${vip.includes(":") ? 64 : 24}`,
          "dev",
          topology.host(id).iface,
        ])
        .catch(() => undefined);
    },
    logs(id) {
      return (logs.get(id) ?? []).join("");
    },
    async stop() {
      for (const id of ids) cluster.killAll(id);
      for (const id of ids) await cluster.removeLeftover(id);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  for (const id of ids) cluster.start(id);
  return cluster;
}
