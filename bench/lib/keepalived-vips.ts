/**
 * keepalived with several VIPs on a bench topology: one VRRP instance per node (virtual router
 * ids 51, 52, …), node k the preferred master of instance k (priority 150, then 100 and 50 on
 * the others, preemption on, like floatip's `preferred` with immediate failback), the VIPs
 * spread over the instances. An instance carries at most 20 addresses in its adverts
 * (`virtual_ipaddress`); the rest go under `virtual_ipaddress_excluded`, as keepalived
 * recommends for many addresses. One daemon per node namespace, in the foreground with only the
 * VRRP subsystem, started through `topology.spawn` (so `topology.destroy()` ends it by PID).
 *
 * Every line the daemons log is counted; "Entering MASTER STATE" lines are kept with their
 * arrival time, so that MASTER transitions within a window can be counted.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Topology } from "../../src/lab/topology.ts";

/** `1s`: VRRPv2, advert_int 1 (the defaults); `10ms`: VRRPv3, advert_int 0.01 (its fastest). */
export type AdvertInterval = "1s" | "10ms";

export const firstRouterId = 51;
const advertLimit = 20;

export interface KeepalivedGroup {
  readonly ids: readonly string[];
  /** The VIPs of each instance, instance k preferring node k. */
  readonly instances: readonly (readonly string[])[];
  pid(id: string): number | undefined;
  /** MASTER transitions logged (any instance) with arrival time in [fromMs, toMs]. */
  masterTransitions(fromMs: number, toMs: number): number;
  /** Lines logged by all daemons so far. */
  lines(): number;
  logTail(id: string): string;
  /** Removes the configuration directory (the processes end with the topology). */
  cleanup(): void;
}

/** Spreads VIPs over `count` instances: VIP i goes to instance i mod count. */
export function spreadVips(vips: readonly string[], count: number): string[][] {
  const instances: string[][] = Array.from({ length: count }, () => []);
  for (const [i, v] of vips.entries()) instances[i % count]!.push(v);
  return instances;
}

export function keepalivedVipsConfig(options: {
  readonly id: string;
  readonly index: number;
  readonly nodes: number;
  readonly iface: string;
  /** Per instance, the VIPs as `address/prefix`. */
  readonly instances: readonly (readonly string[])[];
  readonly interval: AdvertInterval;
}): string {
  const fastest = options.interval === "10ms";
  const lines = [
    "global_defs {",
    `  router_id fipld-${options.id}`,
    // VRRPv3 is the only version that accepts sub-second advertisement intervals.
    `  vrrp_version ${fastest ? 3 : 2}`,
    "}",
  ];
  options.instances.forEach((vips, k) => {
    const rank = (options.index - k + options.nodes) % options.nodes;
    const priority = [150, 100, 50][rank] ?? 10;
    lines.push(
      `vrrp_instance VI_${k + 1} {`,
      `  state ${rank === 0 ? "MASTER" : "BACKUP"}`,
      `  interface ${options.iface}`,
      `  virtual_router_id ${firstRouterId + k}`,
      `  priority ${priority}`,
      `  advert_int ${fastest ? "0.01" : "1"}`,
      "  virtual_ipaddress {",
      ...vips.slice(0, advertLimit).map((v) => `    ${v} dev ${options.iface}`),
      "  }",
    );
    if (vips.length > advertLimit) {
      lines.push(
        "  virtual_ipaddress_excluded {",
        ...vips.slice(advertLimit).map((v) => `    ${v} dev ${options.iface}`),
        "  }",
      );
    }
    lines.push("}");
  });
  lines.push("");
  return lines.join("\n");
}

export function startKeepalivedVips(
  binary: string,
  topology: Topology,
  ids: readonly string[],
  instances: readonly (readonly string[])[],
  interval: AdvertInterval,
): KeepalivedGroup {
  const dir = mkdtempSync(join(tmpdir(), "fipld-keepalived-"));
  const file = (id: string, name: string) => join(dir, `${id}.${name}`);
  const processes = new Map<string, ChildProcess>();
  const tails = new Map<string, string[]>();
  const masters: number[] = [];
  let lineCount = 0;
  for (const [index, id] of ids.entries()) {
    const iface = topology.host(id).iface;
    writeFileSync(
      file(id, "conf"),
      keepalivedVipsConfig({ id, index, nodes: ids.length, iface, instances, interval }),
    );
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
    const tail: string[] = [];
    tails.set(id, tail);
    let buffer = "";
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        lineCount += 1;
        if (line.includes("Entering MASTER STATE") && masters.length < 1_000_000) {
          masters.push(Date.now());
        }
        tail.push(line);
        if (tail.length > 200) tail.splice(0, tail.length - 200);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    processes.set(id, child);
  }
  return {
    ids,
    instances,
    pid: (id) => processes.get(id)?.pid,
    masterTransitions: (fromMs, toMs) => masters.filter((t) => t >= fromMs && t <= toMs).length,
    lines: () => lineCount,
    logTail: (id) => (tails.get(id) ?? []).join("\n"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
