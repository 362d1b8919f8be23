/**
 * A TCP listening socket on an address this node may not hold yet: the storage gateway binds
 * its client API to the storage VIP on every node (IP_FREEBIND), so that the port is served
 * only on the VIP and is ready the moment this node takes the VIP over. Node's `net` cannot
 * set IP_FREEBIND; the native addon makes the socket and `net.Server.listen({ fd })` adopts it.
 */
import type { Server } from "node:net";
import { addonLoadMessage, loadNativeAddon } from "./native-addon.ts";

interface FreebindAddon {
  listenFreebind(address: string, port: number, backlog: number): number;
}

export class FreebindError extends Error {
  readonly code = "LISTEN_FAILED";
}

/** Makes `server` listen on `address:port` with IP_FREEBIND; resolves once it listens. */
export function listenFreebind(server: Server, address: string, port: number): Promise<void> {
  let addon: FreebindAddon;
  try {
    addon = loadNativeAddon<FreebindAddon>(["listenFreebind"]);
  } catch (cause) {
    return Promise.reject(new FreebindError(addonLoadMessage("socket", cause)));
  }
  let fd: number;
  try {
    fd = addon.listenFreebind(address, port, 511);
  } catch (error) {
    const code = (error as { code?: string }).code ?? "";
    return Promise.reject(
      new FreebindError(
        `cannot listen on ${address}:${port} (${code || (error as Error).message})${code === "EADDRINUSE" ? ": another process uses that port" : ""}`,
      ),
    );
  }
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ fd }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}
