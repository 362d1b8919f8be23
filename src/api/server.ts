/**
 * The agent's local HTTP API (fastify 5), built only on `AgentHandle`: it reads the agent's
 * status and hands administrative commands to it, and never touches the core or the adapters.
 *
 * Read routes are open (bind the API to loopback or a management network). Mutating routes
 * need `Authorization: Bearer <token>` with the token from `api.token_file`; without a token
 * file they are refused with 403 MUTATIONS_DISABLED, so a fresh install cannot be steered by
 * anyone who reaches the port. Every error is `{ "error": { "code", "message" } }`.
 *
 * Lifecycle: the agent calls `createApiServer` once after its handle works, then `startApi`;
 * `server.close()` at shutdown ends waiting long-polls at once.
 */

import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
} from "fastify";
import type { AdminResult, AgentHandle, AgentStatus } from "../agent/handle.ts";
import { parseDuration } from "../config/duration.ts";
import type { AdminCommand } from "../core/types.ts";
import { registerDashboard } from "./dashboard.ts";
import { sendError } from "./errors.ts";
import {
  bodyTooLargeMessage,
  defaultHttpLimits,
  enforceRequestTimeout,
  type HttpLimits,
  limitConnectionsPerSource,
  limitedServerOptions,
} from "./http-limits.ts";
import { renderMetrics } from "./metrics.ts";
import { openApiDocument } from "./openapi.ts";
import { bearerToken, readToken, tokenMatches } from "./token.ts";

export interface ApiServerOptions {
  readonly handle: AgentHandle;
  /** File with the bearer token for mutating routes; absent = mutations refused (403). */
  readonly tokenFile?: string;
  /** Capability routes (traffic, relay, storage…) registered on the same server. */
  readonly extraPlugins?: readonly FastifyPluginAsync[];
  /** Poll period of `GET /v1/events?wait=` (default 100 ms). */
  readonly eventPollMs?: number;
  /** Body, idle and request limits (default `defaultHttpLimits`; tests shorten them). */
  readonly limits?: HttpLimits;
}

/** Longest `?wait=` honoured, so a client cannot hold a request open for ever. */
export const maxEventWaitMs = 30_000;

interface ServerState {
  readonly tokenFile: string | undefined;
  token: string | undefined;
}

const states = new WeakMap<FastifyInstance, ServerState>();

/**
 * Re-reads the token file (the agent calls this on SIGHUP; `POST /v1/reload` does it too).
 * On failure the previous token stays in force and the error is returned.
 */
export function reloadApiToken(server: FastifyInstance): Error | undefined {
  const state = states.get(server);
  if (!state?.tokenFile) return undefined;
  try {
    state.token = readToken(state.tokenFile);
    return undefined;
  } catch (error) {
    return error as Error;
  }
}

/** Serializes with `undefined` fields as `null`, so clients always see every key. */
function jsonWithNulls(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v === undefined ? null : v));
}

function sendJson(reply: FastifyReply, status: number, value: unknown): FastifyReply {
  return reply.code(status).type("application/json; charset=utf-8").send(jsonWithNulls(value));
}

/** VIP entries with the wall-clock `since` of their current owner merged in. */
function vipsOf(status: AgentStatus) {
  return status.vips.map((vip) => ({ ...vip, since: status.vipSince[vip.address] }));
}

/**
 * Parses `5s`, `500ms`, `2m` or a plain number of seconds (as the storage API's `wait`: one
 * meaning of `?wait=5` on every route); undefined for anything else (a query parameter given
 * twice arrives as an array).
 */
export function parseWaitMs(text: unknown): number | undefined {
  if (typeof text !== "string") return undefined;
  const ms = parseDuration(text, "s");
  return ms === undefined ? undefined : Math.round(ms);
}

/** API paths that belong to a capability, and the config section that enables it. */
const capabilitySections = [
  { prefix: "/v1/relays", key: "relays", what: "relay" },
  { prefix: "/v1/traffic", key: "traffic", what: "traffic statistics" },
];

const adminErrorStatus: Record<Extract<AdminResult, { ok: false }>["code"], number> = {
  NO_COORDINATOR: 409,
  UNKNOWN_NODE: 404,
  UNKNOWN_VIP: 404,
  NODE_NOT_ELIGIBLE: 409,
  LAST_ELIGIBLE_NODE: 409,
};

function answerAdmin(reply: FastifyReply, result: AdminResult): FastifyReply {
  if (result.ok) return sendJson(reply, 202, { accepted: true, forwardedTo: result.forwardedTo });
  return sendError(reply, adminErrorStatus[result.code], result.code, result.message);
}

/**
 * The VIP of a path: `198.18.0.100`, or `198.18.0.100%2F24` which the router has already
 * decoded to `198.18.0.100/24` (the core matches either form).
 */
function vipFromPath(param: string): string {
  return param;
}

export function createApiServer(options: ApiServerOptions): FastifyInstance {
  const { handle } = options;
  const limits = options.limits ?? defaultHttpLimits;
  const app = Fastify({
    logger: false,
    forceCloseConnections: true,
    ...limitedServerOptions(limits),
  });
  enforceRequestTimeout(app, limits);
  limitConnectionsPerSource(
    app.server,
    limits.connectionsPerSource ?? defaultHttpLimits.connectionsPerSource ?? 64,
  );
  const state: ServerState = {
    tokenFile: options.tokenFile,
    token: options.tokenFile === undefined ? undefined : readToken(options.tokenFile),
  };
  states.set(app, state);
  const pollMs = options.eventPollMs ?? 100;
  const waiters = new Set<() => void>();

  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const status = error.statusCode ?? 500;
    if (status === 415)
      return sendError(
        reply,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "send JSON (Content-Type: application/json)",
      );
    if (status === 413) {
      return sendError(reply, 413, "PAYLOAD_TOO_LARGE", bodyTooLargeMessage(limits.bodyLimitBytes));
    }
    if (status >= 400 && status < 500) return sendError(reply, 400, "BAD_REQUEST", error.message);
    return sendError(reply, 500, "INTERNAL", error.message);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0] ?? "";
    // Capability routes exist only when the capability runs: say which section is missing.
    const section = capabilitySections.find(
      (c) => path === c.prefix || path.startsWith(`${c.prefix}/`),
    );
    if (section) {
      return sendError(
        reply,
        404,
        "SECTION_NOT_CONFIGURED",
        `this cluster has no ${section.key}: section, so this agent runs no ${section.what}; add the section to the cluster config and restart the agents`,
      );
    }
    return sendError(
      reply,
      404,
      "NOT_FOUND",
      `no route ${request.method} ${path}; see GET /v1/openapi.json`,
    );
  });
  app.addHook("preClose", async () => {
    for (const wake of waiters) wake();
  });

  const requireToken = async (request: FastifyRequest, reply: FastifyReply) => {
    if (state.tokenFile === undefined || state.token === undefined) {
      return sendError(
        reply,
        403,
        "MUTATIONS_DISABLED",
        "this agent refuses changes over the API: set api.token_file in the cluster config to a file holding a secret token, then restart or reload the agent",
      );
    }
    const presented = bearerToken(request.headers.authorization);
    if (presented === undefined || !tokenMatches(state.token, presented)) {
      return sendError(
        reply,
        401,
        "UNAUTHORIZED",
        presented === undefined
          ? "missing 'Authorization: Bearer <token>' header (the token is in api.token_file)"
          : "wrong token (the token is in api.token_file)",
      );
    }
    return undefined;
  };

  registerDashboard(app, handle);

  app.get("/healthz", async (_request, reply) => {
    try {
      const status = await handle.status();
      return sendJson(reply, 200, { ok: true, node: status.node, role: status.role });
    } catch (error) {
      return sendError(
        reply,
        503,
        "UNAVAILABLE",
        `the agent cannot report its status: ${(error as Error).message}`,
      );
    }
  });

  app.get("/metrics", async (_request, reply) =>
    reply
      .type("text/plain; version=0.0.4; charset=utf-8")
      .send(renderMetrics(await handle.status())),
  );

  app.get("/v1/openapi.json", async (_request, reply) => sendJson(reply, 200, openApiDocument));

  app.get("/v1/status", async (_request, reply) => {
    const status = await handle.status();
    return sendJson(reply, 200, { ...status, vips: vipsOf(status) });
  });

  app.get("/v1/vips", async (_request, reply) =>
    sendJson(reply, 200, { vips: vipsOf(await handle.status()) }),
  );

  app.get("/v1/members", async (_request, reply) =>
    sendJson(reply, 200, { members: (await handle.status()).members }),
  );

  app.get<{ Querystring: { since?: string; wait?: string } }>(
    "/v1/events",
    async (request, reply) => {
      const sinceText: unknown = request.query.since ?? "0";
      if (typeof sinceText !== "string" || !/^\d+$/.test(sinceText)) {
        return sendError(
          reply,
          400,
          "BAD_REQUEST",
          "since: expected a non-negative integer event id",
        );
      }
      const since = Number(sinceText);
      let waitMs = 0;
      if (request.query.wait !== undefined) {
        const parsed = parseWaitMs(request.query.wait);
        if (parsed === undefined)
          return sendError(
            reply,
            400,
            "BAD_REQUEST",
            "wait: expected a duration like 5s, 500ms or 5 (seconds)",
          );
        waitMs = Math.min(parsed, maxEventWaitMs);
      }
      let events = await handle.events(since);
      if (events.length === 0 && waitMs > 0) events = await waitForEvents(since, waitMs);
      const last = events.length > 0 ? events[events.length - 1]!.id : since;
      return sendJson(reply, 200, { events, last });
    },
  );

  /** Polls the handle until an event arrives, the wait ends, or the server closes. */
  function waitForEvents(since: number, waitMs: number) {
    return new Promise<Awaited<ReturnType<AgentHandle["events"]>>>((resolve) => {
      const deadline = Date.now() + waitMs;
      let timer: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(timer);
        waiters.delete(finish);
        resolve(handle.events(since));
      };
      const poll = async () => {
        const events = await handle.events(since);
        if (!waiters.has(finish)) return;
        if (events.length > 0 || Date.now() >= deadline) return finish();
        timer = setTimeout(poll, Math.min(pollMs, Math.max(1, deadline - Date.now())));
      };
      waiters.add(finish);
      timer = setTimeout(poll, Math.min(pollMs, waitMs));
    });
  }

  const admin = async (reply: FastifyReply, command: AdminCommand) =>
    answerAdmin(reply, await handle.admin(command));

  app.post<{ Params: { address: string }; Body: unknown }>(
    "/v1/vips/:address/move",
    { onRequest: requireToken },
    async (request, reply) => {
      const body = request.body as { node?: unknown } | null | undefined;
      if (
        typeof body !== "object" ||
        body === null ||
        typeof body.node !== "string" ||
        body.node === ""
      ) {
        return sendError(reply, 400, "BAD_REQUEST", 'body must be JSON {"node": "<node id>"}');
      }
      return admin(reply, {
        type: "move",
        vip: vipFromPath(request.params.address),
        node: body.node,
      });
    },
  );

  app.delete<{ Params: { address: string } }>(
    "/v1/vips/:address/pin",
    { onRequest: requireToken },
    async (request, reply) =>
      admin(reply, { type: "unpin", vip: vipFromPath(request.params.address) }),
  );

  app.post<{ Params: { id: string }; Querystring: { force?: string } }>(
    "/v1/nodes/:id/disable",
    { onRequest: requireToken },
    async (request, reply) =>
      admin(reply, {
        type: "drain",
        node: request.params.id,
        ...(request.query.force === "true" || request.query.force === "1" ? { force: true } : {}),
      }),
  );

  app.post<{ Params: { id: string } }>(
    "/v1/nodes/:id/enable",
    { onRequest: requireToken },
    async (request, reply) => admin(reply, { type: "undrain", node: request.params.id }),
  );

  app.post("/v1/reload", { onRequest: requireToken }, async (_request, reply) => {
    const result = await handle.reload();
    if (!result.ok)
      return sendError(
        reply,
        422,
        "RELOAD_FAILED",
        `config not reloaded, still running on the old one: ${result.message}`,
      );
    const tokenError = reloadApiToken(app);
    return sendJson(reply, 200, {
      reloaded: true,
      ...(tokenError
        ? { warning: `${tokenError.message}; the previous token stays in force` }
        : {}),
    });
  });

  for (const plugin of options.extraPlugins ?? []) app.register(plugin);
  return app;
}

/** Listens and returns the bound address (useful with port 0). */
export async function startApi(
  server: FastifyInstance,
  listen: { host: string; port: number },
): Promise<{ host: string; port: number }> {
  await server.listen({ host: listen.host, port: listen.port });
  const address = server.server.address();
  if (address === null || typeof address === "string") return listen;
  return { host: address.address, port: address.port };
}
