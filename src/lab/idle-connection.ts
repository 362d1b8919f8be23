/**
 * An idle TCP client connection from a lab host to VIP:port, as an application's pooled
 * connection is: connected, silent, watched. A child process in the host's namespace reports
 * (one JSON line each, wall-clock ms) when it connected and when the connection failed or
 * closed; it ends by itself after `maxMs`. Used by the tickle test and the failover bench.
 */
import type { Topology } from "./topology.ts";

export interface IdleConnectionEvent {
  connected?: number;
  failed?: number;
  code?: string;
  closed?: number;
  open?: number;
}

export interface IdleConnection {
  readonly events: readonly IdleConnectionEvent[];
  /** Wall-clock ms of the connect, once connected. */
  connectedAt(): number | undefined;
  /** Wall-clock ms at which the connection failed or closed, and the error code if any. */
  endedAt(): { atMs: number; code?: string } | undefined;
  stop(): void;
}

const script = (vip: string, port: number, maxMs: number) =>
  [
    "const net = require('node:net');",
    `const s = net.connect(${port}, ${JSON.stringify(vip)});`,
    "const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');",
    "s.on('connect', () => say({ connected: Date.now() }));",
    "s.on('error', (e) => say({ failed: Date.now(), code: e.code }));",
    "s.on('close', () => { say({ closed: Date.now() }); process.exit(0); });",
    `setTimeout(() => { say({ open: Date.now() }); process.exit(0); }, ${maxMs});`,
  ].join("\n");

export function openIdleConnection(
  topology: Topology,
  host: string,
  vip: string,
  port: number,
  maxMs = 120_000,
): IdleConnection {
  const events: IdleConnectionEvent[] = [];
  const child = topology.spawn(host, process.execPath, ["-e", script(vip, port, maxMs)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let buffer = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    const lines = buffer.split("\n");
    buffer = lines.pop() ?? "";
    for (const line of lines) {
      if (line.trim()) events.push(JSON.parse(line) as IdleConnectionEvent);
    }
  });
  return {
    events,
    connectedAt: () => events.find((e) => e.connected !== undefined)?.connected,
    endedAt() {
      const end = events.find((e) => e.failed !== undefined || e.closed !== undefined);
      if (!end) return undefined;
      return { atMs: (end.failed ?? end.closed)!, ...(end.code ? { code: end.code } : {}) };
    },
    stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}
