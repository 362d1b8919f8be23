/**
 * Makes an agent's API (127.0.0.1:7480 inside its network namespace) reachable from the
 * machine itself, for `floatip demo`'s dashboard URL. A filesystem Unix socket is the bridge:
 * unlike TCP ports, socket paths are not per network namespace. A small relay inside the
 * namespace listens on the socket and connects to the API; a listener on the machine's
 * loopback connects each client to the socket. Nothing listens beyond loopback.
 */
import { once } from "node:events";
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import type { Topology } from "./topology.ts";

export interface ApiForward {
  readonly url: string;
  close(): Promise<void>;
}

const relayScript = `
const net = require("node:net");
net.createServer((client) => {
  const api = net.connect(7480, "127.0.0.1");
  client.pipe(api).pipe(client);
  client.on("error", () => api.destroy());
  api.on("error", () => client.destroy());
}).listen(process.argv[1], () => console.log("up"));
`;

function splice(a: Socket, b: Socket): void {
  a.pipe(b).pipe(a);
  a.on("error", () => b.destroy());
  b.on("error", () => a.destroy());
}

/**
 * Forwards 127.0.0.1:`port` on this machine (the next free port up to `port` + 20) to the
 * API of `host`. The relay runs as a process of the topology's, ended with it.
 */
export async function forwardApi(
  topology: Topology,
  host: string,
  dir: string,
  port = 7480,
): Promise<ApiForward> {
  const socketPath = join(dir, `api-${host}.sock`);
  const relay = topology.spawn(host, process.execPath, ["-e", relayScript, socketPath]);
  const up = new Promise<void>((resolve, reject) => {
    relay.stdout?.once("data", () => resolve());
    relay.once("exit", (code) => reject(new Error(`the API relay in ${host} exited (${code})`)));
  });
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`the API relay in ${host} did not start`)), 10_000).unref(),
  );
  await Promise.race([up, timeout]);
  for (let candidate = port; candidate <= port + 20; candidate += 1) {
    const open = new Set<Socket>();
    const server: Server = createServer((client) => {
      open.add(client);
      client.once("close", () => open.delete(client));
      splice(client, netConnect(socketPath));
    });
    server.listen(candidate, "127.0.0.1");
    const outcome = await Promise.race([
      once(server, "listening").then(() => "ok" as const),
      once(server, "error").then(() => "busy" as const),
    ]);
    if (outcome === "ok") {
      return {
        url: `http://127.0.0.1:${candidate}/`,
        close: () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            for (const client of open) client.destroy();
            relay.kill("SIGTERM");
          }),
      };
    }
    server.close();
  }
  relay.kill("SIGTERM");
  throw new Error(`no free port on 127.0.0.1 from ${port} to ${port + 20}`);
}
