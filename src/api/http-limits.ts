/**
 * The limits every floatip HTTP listener runs with (the local API, the storage gateway), and
 * the answers for what breaks them, in the one error shape `{"error":{"code","message"}}`:
 *
 *   body over the limit          413 PAYLOAD_TOO_LARGE   (Fastify's bodyLimit, read no further)
 *   headers over 16 KB           431 HEADERS_TOO_LARGE   (Node's parser, before any route)
 *   a request that never ends    408 REQUEST_TIMEOUT     (requestTimeout)
 *   malformed HTTP               400 BAD_REQUEST
 *
 * and idle connections are closed: a socket with no traffic for `idleTimeoutMs` (a client that
 * connects and sends nothing, or a keep-alive connection left open) is destroyed. One source
 * address may hold at most `connectionsPerSource` connections at once; a connection beyond
 * that gets 503 TOO_MANY_CONNECTIONS and is closed, so that one host cannot take every
 * socket (and the memory behind them) of a listener.
 */
import type { ServerOptions } from "node:http";
import type { Server, Socket } from "node:net";
import type { FastifyInstance, FastifyRequest, FastifyServerOptions } from "fastify";
import { PerSourceCount } from "../adapters/per-source.ts";

export interface HttpLimits {
  readonly bodyLimitBytes: number;
  /** Socket inactivity after which a connection is closed (must exceed any long poll). */
  readonly idleTimeoutMs: number;
  /** Longest a whole request may take to arrive. */
  readonly requestTimeoutMs: number;
  /** Connections one source address may hold open at once (default 64). */
  readonly connectionsPerSource?: number;
}

export const defaultHttpLimits: HttpLimits = {
  bodyLimitBytes: 1024 * 1024,
  idleTimeoutMs: 60_000,
  requestTimeoutMs: 30_000,
  connectionsPerSource: 64,
};

/** Node's default header limit, named here because the 431 message quotes it. */
const maxHeaderBytes = 16 * 1024;

function errorResponse(status: number, reason: string, code: string, message: string): string {
  const body = JSON.stringify({ error: { code, message } });
  return [
    `HTTP/1.1 ${status} ${reason}`,
    "Content-Type: application/json; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Connection: close",
    "",
    body,
  ].join("\r\n");
}

/** Answers what Node's HTTP parser refused before any route ran, in the JSON error shape. */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  let response: string;
  if (error.code === "HPE_HEADER_OVERFLOW") {
    response = errorResponse(
      431,
      "Request Header Fields Too Large",
      "HEADERS_TOO_LARGE",
      `request headers exceed ${maxHeaderBytes} bytes`,
    );
  } else if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    response = errorResponse(
      408,
      "Request Timeout",
      "REQUEST_TIMEOUT",
      "the request did not arrive in time",
    );
  } else {
    response = errorResponse(400, "Bad Request", "BAD_REQUEST", "malformed HTTP request");
  }
  if (socket.writable) socket.end(response);
  else socket.destroy();
}

/**
 * What Fastify refuses before any route or error handler (an undecodable URL, a bad
 * Content-Type, an unsupported media type): answered 400 in the one error shape instead of
 * Fastify's own `{"error":"Bad Request","code":"FST_…"}`.
 */
export function frameworkErrors(
  error: { statusCode?: number; message: string },
  _request: unknown,
  reply: { status(code: number): { send(body: unknown): unknown } },
): void {
  const status =
    typeof error.statusCode === "number" && error.statusCode >= 400 && error.statusCode < 500
      ? error.statusCode
      : 400;
  reply
    .status(status)
    .send({ error: { code: "BAD_REQUEST", message: error.message || "malformed request" } });
}

/** `frameworkErrors` typed as Fastify's option (its generic reply type is not worth spelling). */
export const fastifyFrameworkErrors =
  frameworkErrors as unknown as FastifyServerOptions["frameworkErrors"];

/** Fastify options that apply `limits` (spread into `Fastify({...})`). */
export function limitedServerOptions(
  limits: HttpLimits = defaultHttpLimits,
): Pick<
  FastifyServerOptions,
  "bodyLimit" | "connectionTimeout" | "requestTimeout" | "keepAliveTimeout" | "clientErrorHandler"
> & { http: ServerOptions; frameworkErrors: FastifyServerOptions["frameworkErrors"] } {
  return {
    frameworkErrors: fastifyFrameworkErrors,
    bodyLimit: limits.bodyLimitBytes,
    connectionTimeout: limits.idleTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: 5_000,
    clientErrorHandler,
    // Node checks request timeouts this often (default 30 s): a quarter of the timeout keeps
    // a request that never finishes arriving from living much past it.
    http: {
      connectionsCheckingInterval: Math.max(100, Math.floor(limits.requestTimeoutMs / 4)),
    },
  };
}

/**
 * A request whose body has not fully arrived `requestTimeoutMs` after its headers gets 408 and
 * its connection is closed (a client that trickles a body byte by byte keeps the socket from
 * going idle; Node's own request timeout does not cover a body the route is still reading).
 */
export function enforceRequestTimeout(app: FastifyInstance, limits: HttpLimits): void {
  const timers = new WeakMap<object, NodeJS.Timeout>();
  app.addHook("onRequest", async (request) => {
    const socket = request.raw.socket;
    const timer = setTimeout(() => {
      if (socket.destroyed) return;
      socket.end(
        errorResponse(
          408,
          "Request Timeout",
          "REQUEST_TIMEOUT",
          "the request did not arrive in time",
        ),
      );
      socket.destroySoon?.();
    }, limits.requestTimeoutMs);
    timer.unref();
    timers.set(request.raw, timer);
  });
  const clear = async (request: FastifyRequest) => {
    clearTimeout(timers.get(request.raw));
  };
  app.addHook("preHandler", clear);
  app.addHook("onResponse", clear);
  app.addHook("onRequestAbort", clear);
}

/** The 413 message for a body over the limit. */
export function bodyTooLargeMessage(limitBytes: number): string {
  return `request body exceeds ${limitBytes} bytes`;
}

/**
 * Caps the connections one source address holds open on `server` at once: the one beyond the
 * cap is answered 503 TOO_MANY_CONNECTIONS and closed. Call before the server listens.
 */
export function limitConnectionsPerSource(server: Server, max: number): void {
  const open = new PerSourceCount();
  server.on("connection", (socket: Socket) => {
    const source = socket.remoteAddress ?? "";
    if (!open.tryOpen(source, max)) {
      socket.on("error", () => undefined);
      socket.end(
        errorResponse(
          503,
          "Service Unavailable",
          "TOO_MANY_CONNECTIONS",
          `at most ${max} connections at once from one address: close some or reuse them`,
        ),
      );
      socket.destroySoon?.();
      return;
    }
    socket.once("close", () => open.close(source));
  });
}

/**
 * Makes the server close `socket` the way HTTP servers close a connection whose request body
 * they refused ("lingering close", as nginx and Apache do): once the response is out, a FIN,
 * then whatever the client still sends is read and thrown away (Node's server discards an
 * unconsumed body) until the client closes or `lingerMs` passes, and only then the socket is
 * destroyed. Destroyed at once with data unread, the kernel answers the client's next segment
 * with a reset, and a reset that reaches the client before it read the response discards the
 * response: the client sees ECONNRESET instead of its error. Nothing is buffered meanwhile.
 */
export function lingerOnClose(socket: Socket, lingerMs = 1000): void {
  // Node's server ends a `connection: close` response with socket.destroySoon().
  socket.destroySoon = function (this: Socket): void {
    this.end();
    const timer = setTimeout(() => this.destroy(), lingerMs);
    timer.unref();
    this.once("close", () => clearTimeout(timer));
    this.once("end", () => this.destroy());
  };
}
