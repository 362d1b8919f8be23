/**
 * Client REST API of the storage gateway (served on the storage VIP). Every volume operation is
 * a request with a client-chosen id (`request_id` in the body or query, or the
 * `Idempotency-Key` header): it is journaled and replicated, then answered with its record —
 * 202 while unfinished, 200 once final. `?wait=5s` holds the answer until the request is final
 * or the time passes (long-poll, at most 60 s). Read-only operations (list, info, snapshot
 * list) may omit the id; the gateway then picks one.
 *
 * Errors are JSON `{error:{code,message}}` with the stable codes of errors.ts. The full
 * description is served at GET /v1/openapi.json.
 *
 * Credentials: every route needs `Authorization: Bearer TOKEN` with one of the configured
 * client tokens (401 UNAUTHENTICATED otherwise, before any body is looked at). A `read`
 * token may list and inspect volumes and snapshots; changes need a `write` token (403
 * FORBIDDEN). Each request record carries the name of the token that submitted it, and only
 * that client sees it (another client's id is 404 / REQUEST_ID_REUSED, never its record).
 *
 * Reads (list, info, snapshot list) are answered at once with `{result}` by whichever gateway
 * receives them, and journal nothing: a flood of reads writes no records on any node.
 */
import { randomUUID } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import {
  bodyTooLargeMessage,
  defaultHttpLimits,
  enforceRequestTimeout,
  limitConnectionsPerSource,
  limitedServerOptions,
} from "../api/http-limits.ts";
import { bearerToken, tokenMatches } from "../api/token.ts";
import { parseDuration } from "../config/duration.ts";
import {
  isValidRequestId,
  type Operation,
  parseOperation,
  type RequestRecord,
} from "../core/requests/request-record.ts";
import { type Dispatcher, isReadOnly } from "./dispatcher.ts";
import { type GatewayErrorCode, httpStatusOf, StorageError } from "./errors.ts";

const waitMsMax = 60_000;

type Params = Record<string, string | undefined>;
type Body = Record<string, unknown> | null | undefined;

/** Parses `5s`, `500ms`, `2` (seconds). Undefined when absent; throws INVALID_REQUEST when bad. */
export function parseWait(value: unknown): number {
  if (value === undefined || value === "") return 0;
  const ms = parseDuration(String(value), "s");
  if (ms === undefined) {
    throw new StorageError("INVALID_REQUEST", "wait must look like 5s, 500ms or 5 (seconds)");
  }
  return Math.min(ms, waitMsMax);
}

const listLimitDefault = 100;
const listLimitMax = 10_000;

/** Parses `?limit=` of a list: a whole number 1-10,000, 100 when absent; throws INVALID_REQUEST when bad. */
export function parseLimit(value: unknown): number {
  if (value === undefined || value === "") return listLimitDefault;
  const text = String(value);
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1) {
    throw new StorageError(
      "INVALID_REQUEST",
      `limit must be a whole number from 1 to ${listLimitMax} (got ${JSON.stringify(text.slice(0, 40))})`,
    );
  }
  return Math.min(Number(text), listLimitMax);
}

function sendError(reply: FastifyReply, code: GatewayErrorCode | "INTERNAL", message: string) {
  const status = code === "INTERNAL" ? 500 : httpStatusOf(code);
  return reply.status(status).send({ error: { code, message } });
}

function requestIdOf(request: FastifyRequest, body: Body, optional: boolean): string {
  const query = request.query as Params;
  const header = request.headers["idempotency-key"];
  const id =
    body?.request_id ?? query.request_id ?? (typeof header === "string" ? header : undefined);
  if (id === undefined && optional) return `auto-${randomUUID()}`;
  if (!isValidRequestId(id)) {
    throw new StorageError(
      "INVALID_REQUEST",
      "request_id is required: 1-128 characters of letters, digits, '_', '.', ':', '-' (body, ?request_id= or Idempotency-Key header)",
    );
  }
  return id;
}

function sizeOf(body: Body): unknown {
  return body?.sizeBytes ?? body?.size_bytes;
}

/** One client credential of the storage API: who it is, its token, what it may do. */
export interface ClientCredential {
  readonly name: string;
  readonly token: string;
  readonly access: "read" | "write";
}

/** The credential whose token the request presents; undefined when none matches. */
function credentialOf(
  credentials: readonly ClientCredential[],
  header: string | undefined,
): ClientCredential | undefined {
  const presented = bearerToken(header);
  if (presented === undefined) return undefined;
  // Every credential is compared (in constant time each), so the time taken does not tell
  // which one matched.
  let found: ClientCredential | undefined;
  for (const credential of credentials) {
    if (tokenMatches(credential.token, presented) && found === undefined) found = credential;
  }
  return found;
}

/** TLS material of the client API (PEM): when given, it serves HTTPS only. */
export interface ApiTls {
  readonly cert: Buffer;
  readonly key: Buffer;
}

export function createApi(
  dispatcher: Dispatcher,
  credentials: readonly ClientCredential[],
  tls?: ApiTls,
): FastifyInstance {
  // Idle connections close, but never under a request still waiting (`wait` up to a minute).
  // Provisioning services keep pools of connections open: more per source than the local API.
  const limits = {
    ...defaultHttpLimits,
    idleTimeoutMs: waitMsMax + 30_000,
    connectionsPerSource: 256,
  };
  const app = (
    tls === undefined
      ? Fastify({ logger: false, ...limitedServerOptions(limits) })
      : Fastify({
          logger: false,
          ...limitedServerOptions(limits),
          https: { cert: tls.cert, key: tls.key, minVersion: "TLSv1.2" },
        })
  ) as FastifyInstance;
  enforceRequestTimeout(app, limits);
  limitConnectionsPerSource(app.server, limits.connectionsPerSource);
  app.setErrorHandler(
    (error: { statusCode?: number; message: string; code?: string }, _req, reply) => {
      if (error instanceof StorageError) return sendError(reply, error.code, error.message);
      if (error.statusCode === 413) {
        return reply.status(413).send({
          error: {
            code: "PAYLOAD_TOO_LARGE",
            message: bodyTooLargeMessage(defaultHttpLimits.bodyLimitBytes),
          },
        });
      }
      if (error.statusCode !== undefined && error.statusCode < 500) {
        return sendError(reply, "INVALID_REQUEST", error.message);
      }
      return sendError(reply, "INTERNAL", error.message);
    },
  );
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, "NOT_FOUND", `no route ${request.method} ${request.url}`),
  );

  const clients = new WeakMap<FastifyRequest, ClientCredential>();
  // onRequest runs before the body is read: an unauthenticated request costs no body.
  app.addHook("onRequest", async (request, reply) => {
    const credential = credentialOf(credentials, request.headers.authorization);
    if (credential === undefined) {
      reply.header("www-authenticate", 'Bearer realm="floatip-storage"');
      return sendError(
        reply,
        "UNAUTHENTICATED",
        request.headers.authorization === undefined
          ? "send Authorization: Bearer TOKEN with a client token of storage.clients"
          : "the token is not one of storage.clients",
      );
    }
    clients.set(request, credential);
  });
  const clientOf = (request: FastifyRequest): ClientCredential => {
    const credential = clients.get(request);
    if (credential === undefined) throw new StorageError("UNAUTHENTICATED", "no credential");
    return credential;
  };

  const answer = (record: RequestRecord, reply: FastifyReply) => {
    const final = record.state.state === "succeeded" || record.state.state === "failed";
    return reply.status(final ? 200 : 202).send({ request: record });
  };

  /** Shared by every operation route: validate, submit, optionally wait, answer. */
  const submit = async (
    request: FastifyRequest,
    reply: FastifyReply,
    input: Record<string, unknown>,
    readOnly: boolean,
  ) => {
    const client = clientOf(request);
    const body = request.body as Body;
    const operation = parseOperation(input);
    if (!operation.ok) throw new StorageError(operation.error.code, operation.error.message);
    const value = operation.value as Operation;
    if (readOnly || isReadOnly(value)) {
      const outcome = await dispatcher.read(value);
      if (!outcome.ok) throw new StorageError(outcome.error.code, outcome.error.message);
      return reply.status(200).send({ result: outcome.result });
    }
    if (client.access !== "write") {
      throw new StorageError(
        "FORBIDDEN",
        `${value.op} needs a write token; ${client.name} may only read`,
      );
    }
    const waitMs = parseWait((request.query as Params).wait);
    const id = requestIdOf(request, body, false);
    const accepted = await dispatcher.submit(id, value, client.name);
    const record = (await dispatcher.wait(id, waitMs)) ?? accepted;
    return answer(record, reply);
  };

  app.post("/v1/requests", async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const { request_id: _id, ...operation } = body;
    return submit(request, reply, operation, false);
  });
  app.post("/v1/volumes", async (request, reply) => {
    const body = request.body as Body;
    return submit(
      request,
      reply,
      { op: "create", name: body?.name, sizeBytes: sizeOf(body) },
      false,
    );
  });
  app.get("/v1/volumes", async (request, reply) => submit(request, reply, { op: "list" }, true));
  app.get("/v1/volumes/:name", async (request, reply) =>
    submit(request, reply, { op: "info", name: (request.params as Params).name }, true),
  );
  app.delete("/v1/volumes/:name", async (request, reply) =>
    submit(request, reply, { op: "delete", name: (request.params as Params).name }, false),
  );
  app.post("/v1/volumes/:name/resize", async (request, reply) =>
    submit(
      request,
      reply,
      {
        op: "resize",
        name: (request.params as Params).name,
        sizeBytes: sizeOf(request.body as Body),
      },
      false,
    ),
  );
  app.post("/v1/volumes/:name/copy", async (request, reply) =>
    submit(
      request,
      reply,
      { op: "copy", name: (request.params as Params).name, target: (request.body as Body)?.target },
      false,
    ),
  );
  app.post("/v1/volumes/:name/snapshots", async (request, reply) =>
    submit(
      request,
      reply,
      {
        op: "snap-create",
        name: (request.params as Params).name,
        snapshot: (request.body as Body)?.snapshot,
      },
      false,
    ),
  );
  app.get("/v1/volumes/:name/snapshots", async (request, reply) =>
    submit(request, reply, { op: "snap-list", name: (request.params as Params).name }, true),
  );
  app.delete("/v1/volumes/:name/snapshots/:snapshot", async (request, reply) => {
    const params = request.params as Params;
    return submit(
      request,
      reply,
      { op: "snap-delete", name: params.name, snapshot: params.snapshot },
      false,
    );
  });
  app.post("/v1/volumes/:name/snapshots/:snapshot/clone", async (request, reply) => {
    const params = request.params as Params;
    return submit(
      request,
      reply,
      {
        op: "clone",
        name: params.name,
        snapshot: params.snapshot,
        target: (request.body as Body)?.target,
      },
      false,
    );
  });

  app.get("/v1/requests/:id", async (request, reply) => {
    const client = clientOf(request);
    const id = (request.params as Params).id ?? "";
    const mine = dispatcher.get(id)?.client === client.name;
    const waitMs = parseWait((request.query as Params).wait);
    const record = mine ? await dispatcher.wait(id, waitMs) : undefined;
    if (!record) return sendError(reply, "NOT_FOUND", `no request with id ${id}`);
    return reply.status(200).send({ request: record });
  });
  app.get("/v1/requests", async (request) => {
    const limit = parseLimit((request.query as Params).limit);
    return { requests: dispatcher.recent(limit, clientOf(request).name) };
  });
  app.get("/v1/health", async () => ({ ok: true, executing: dispatcher.active }));
  app.get("/v1/openapi.json", async () => openApiDocument);
  return app;
}

const errorSchema = {
  type: "object",
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: {
          type: "string",
          enum: [
            "NOT_FOUND",
            "EXISTS",
            "BUSY",
            "TIMEOUT",
            "BACKEND_ERROR",
            "INVALID_REQUEST",
            "REQUEST_ID_REUSED",
            "REPLICATION_FAILED",
            "NO_REPLICA",
            "FENCED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
          ],
        },
        message: { type: "string" },
      },
    },
  },
};

const recordResponse = {
  description: "the request record (202 while unfinished, 200 when final)",
  content: { "application/json": { schema: { $ref: "#/components/schemas/RequestEnvelope" } } },
};

function operationPath(summary: string, bodyProperties: Record<string, unknown> | undefined) {
  const operation: Record<string, unknown> = {
    summary,
    parameters: [
      { name: "wait", in: "query", schema: { type: "string", example: "5s" } },
      { name: "request_id", in: "query", schema: { type: "string" } },
      { name: "Idempotency-Key", in: "header", schema: { type: "string" } },
    ],
    responses: {
      "200": recordResponse,
      "202": recordResponse,
      "400": {
        description: "invalid request",
        content: { "application/json": { schema: errorSchema } },
      },
      "409": {
        description: "REQUEST_ID_REUSED",
        content: { "application/json": { schema: errorSchema } },
      },
      "503": {
        description: "REPLICATION_FAILED or NO_REPLICA (retry with the same request id)",
        content: { "application/json": { schema: errorSchema } },
      },
    },
  };
  if (bodyProperties) {
    operation.requestBody = {
      required: true,
      content: {
        "application/json": {
          schema: {
            type: "object",
            properties: { request_id: { type: "string" }, ...bodyProperties },
          },
        },
      },
    };
  }
  return operation;
}

const nameParam = { name: "name", in: "path", required: true, schema: { type: "string" } };
const snapParam = { name: "snapshot", in: "path", required: true, schema: { type: "string" } };

/** A read: answered at once with its result, no record kept. */
function readPath(summary: string) {
  return {
    summary,
    responses: {
      "200": {
        description: "the result",
        content: {
          "application/json": {
            schema: { type: "object", properties: { result: { type: "object" } } },
          },
        },
      },
      "404": {
        description: "NOT_FOUND",
        content: { "application/json": { schema: errorSchema } },
      },
    },
  };
}

export const openApiDocument = {
  openapi: "3.1.0",
  info: { title: "floatip storage gateway", version: "2" },
  security: [{ clientToken: [] }],
  paths: {
    "/v1/volumes": {
      get: readPath("list volumes"),
      post: operationPath("create a volume", {
        name: { type: "string" },
        sizeBytes: { type: "integer" },
      }),
    },
    "/v1/volumes/{name}": {
      parameters: [nameParam],
      get: readPath("volume info"),
      delete: operationPath("delete a volume", undefined),
    },
    "/v1/volumes/{name}/resize": {
      parameters: [nameParam],
      post: operationPath("resize a volume", { sizeBytes: { type: "integer" } }),
    },
    "/v1/volumes/{name}/copy": {
      parameters: [nameParam],
      post: operationPath("copy a volume", { target: { type: "string" } }),
    },
    "/v1/volumes/{name}/snapshots": {
      parameters: [nameParam],
      get: readPath("list snapshots"),
      post: operationPath("create a snapshot", { snapshot: { type: "string" } }),
    },
    "/v1/volumes/{name}/snapshots/{snapshot}": {
      parameters: [nameParam, snapParam],
      delete: operationPath("delete a snapshot", undefined),
    },
    "/v1/volumes/{name}/snapshots/{snapshot}/clone": {
      parameters: [nameParam, snapParam],
      post: operationPath("clone a snapshot", { target: { type: "string" } }),
    },
    "/v1/requests": {
      get: {
        summary: "recent requests of this client, newest first; ?limit=1-10000 (default 100)",
        parameters: [
          {
            name: "limit",
            in: "query",
            schema: { type: "integer", minimum: 1, maximum: listLimitMax },
          },
        ],
        responses: {
          "200": { description: "records" },
          "400": {
            description: "a limit that is not a whole number from 1 to 10,000",
            content: { "application/json": { schema: errorSchema } },
          },
        },
      },
      post: operationPath("submit any operation ({op, ...fields})", { op: { type: "string" } }),
    },
    "/v1/requests/{id}": {
      get: {
        summary: "a request record; ?wait=5s long-polls until final",
        parameters: [
          { name: "id", in: "path", required: true, schema: { type: "string" } },
          { name: "wait", in: "query", schema: { type: "string" } },
        ],
        responses: {
          "200": recordResponse,
          "404": {
            description: "unknown id",
            content: { "application/json": { schema: errorSchema } },
          },
        },
      },
    },
  },
  components: {
    securitySchemes: {
      clientToken: {
        type: "http",
        scheme: "bearer",
        description:
          "a token of storage.clients: 401 UNAUTHENTICATED without one, 403 FORBIDDEN when a read token asks for a change",
      },
    },
    schemas: {
      RequestEnvelope: {
        type: "object",
        properties: {
          request: {
            type: "object",
            required: ["id", "operation", "acceptedAtMs", "acceptedBy", "state"],
            properties: {
              id: { type: "string" },
              client: { type: "string", description: "the client that submitted it" },
              operation: { type: "object" },
              acceptedAtMs: { type: "integer" },
              acceptedBy: { type: "string" },
              state: {
                type: "object",
                properties: {
                  state: {
                    type: "string",
                    enum: ["accepted", "running", "outcome_unknown", "succeeded", "failed"],
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};
