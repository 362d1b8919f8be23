/**
 * The small local HTTP status endpoint of `floatip relay run` (until the agent API serves
 * relays): JSON over plain HTTP, read-only, bound to loopback by default (127.0.0.1:7981).
 *
 *   GET /relays         -> { "relays": [RelayStatus, …] }
 *   GET /relays/NAME    -> RelayStatus, or 404 { "error": { "code": "RELAY_NOT_FOUND", … } }
 *
 * `floatip relay list|show` read it.
 */
import type { Server } from "node:http";
import { httpModule } from "../adapters/node-http.ts";
import type { Endpoint } from "./config.ts";
import type { RelayStatus } from "./relay-service.ts";

export const defaultStatusEndpoint: Endpoint = { host: "127.0.0.1", port: 7981 };

export function startStatusServer(
  listen: Endpoint,
  statuses: () => readonly RelayStatus[],
): Promise<Server> {
  const server = httpModule().createServer((request, response) => {
    const send = (status: number, body: unknown) => {
      const text = `${JSON.stringify(body, null, 2)}\n`;
      response.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      });
      response.end(text);
    };
    const url = new URL(request.url ?? "/", "http://relay");
    if (request.method !== "GET") {
      send(405, {
        error: { code: "METHOD_NOT_ALLOWED", message: "the status endpoint is read-only" },
      });
      return;
    }
    if (url.pathname === "/relays") {
      send(200, { relays: statuses() });
      return;
    }
    const match = /^\/relays\/([^/]+)$/.exec(url.pathname);
    if (match) {
      const name = decodeURIComponent(match[1]!);
      const found = statuses().find((s) => s.name === name);
      if (found) send(200, found);
      else send(404, { error: { code: "RELAY_NOT_FOUND", message: `no relay named ${name}` } });
      return;
    }
    send(404, { error: { code: "NOT_FOUND", message: `no route ${url.pathname}` } });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
