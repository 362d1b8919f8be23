/**
 * OpenAPI 3.0 description of the agent's local API, served at `GET /v1/openapi.json`.
 * Written by hand next to the routes in `server.ts`; the API tests check that every route the
 * server answers is listed here, so the two cannot drift apart silently.
 */

const error = { $ref: "#/components/responses/Error" };
const vipParam = {
  name: "address",
  in: "path",
  required: true,
  description: "VIP address as configured, without or with its prefix (URL-encode the '/')",
  schema: { type: "string" },
};
const nodeParam = { name: "id", in: "path", required: true, schema: { type: "string" } };
const bearer = [{ bearer: [] }];
const accepted = {
  description: "Accepted: applied by the coordinator, or forwarded to it",
  content: { "application/json": { schema: { $ref: "#/components/schemas/Accepted" } } },
};
const mutationErrors = {
  "401": error,
  "403": error,
  "404": error,
  "409": error,
};
const json = (schema: object, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export const openApiDocument = {
  openapi: "3.0.3",
  info: {
    title: "floatip agent API",
    version: "1",
    description:
      "Local API of one floatip agent. Read routes are open; mutating routes need " +
      "`Authorization: Bearer <token>` with the token from api.token_file. Errors are " +
      '`{"error": {"code", "message"}}`.',
  },
  paths: {
    "/healthz": {
      get: {
        summary: "Liveness of the agent",
        responses: { "200": json({ type: "object" }, "The agent runs"), "503": error },
      },
    },
    "/metrics": {
      get: {
        summary: "Prometheus metrics (text format 0.0.4)",
        responses: {
          "200": {
            description: "Metrics",
            content: { "text/plain": { schema: { type: "string" } } },
          },
        },
      },
    },
    "/v1/openapi.json": {
      get: {
        summary: "This document",
        responses: { "200": json({ type: "object" }, "OpenAPI 3 document") },
      },
    },
    "/v1/status": {
      get: {
        summary: "Node, role, term, coordinator, health, members and VIPs",
        responses: { "200": json({ $ref: "#/components/schemas/Status" }, "Status") },
      },
    },
    "/v1/vips": {
      get: {
        summary: "VIPs: owner, local state, since, conflict, explanation",
        responses: {
          "200": json(
            {
              type: "object",
              properties: { vips: { type: "array", items: { $ref: "#/components/schemas/Vip" } } },
            },
            "VIPs",
          ),
        },
      },
    },
    "/v1/members": {
      get: {
        summary: "Configured nodes and their member state",
        responses: {
          "200": json(
            {
              type: "object",
              properties: {
                members: { type: "array", items: { $ref: "#/components/schemas/Member" } },
              },
            },
            "Members",
          ),
        },
      },
    },
    "/": {
      get: {
        summary: "The dashboard: one self-contained HTML page (read-only without the token)",
        responses: {
          "200": {
            description: "The page",
            content: { "text/html": { schema: { type: "string" } } },
          },
        },
      },
    },
    "/v1/events/stream": {
      get: {
        summary:
          "Server-Sent Events: every event after an id (Last-Event-ID or ?since), as it happens",
        parameters: [
          {
            name: "since",
            in: "query",
            schema: { type: "integer", minimum: 0 },
            description: "Start after this event id (default 0; Last-Event-ID wins)",
          },
        ],
        responses: {
          "200": {
            description: "`event: agent` records with `id:` set to the event id",
            content: { "text/event-stream": { schema: { type: "string" } } },
          },
          "400": error,
          "503": error,
        },
      },
    },
    "/v1/events": {
      get: {
        summary: "Recent events after an id; optionally waits for new ones",
        parameters: [
          {
            name: "since",
            in: "query",
            schema: { type: "integer", minimum: 0 },
            description: "Return events with a greater id (default 0)",
          },
          {
            name: "wait",
            in: "query",
            schema: { type: "string" },
            description:
              "Long-poll up to this long (e.g. 5s, 500ms, or 5 for seconds; at most 30s) when there is nothing new",
          },
        ],
        responses: {
          "200": json(
            {
              type: "object",
              properties: {
                events: { type: "array", items: { type: "object" } },
                last: { type: "integer" },
              },
            },
            "Events, oldest first",
          ),
          "400": error,
        },
      },
    },
    "/v1/vips/{address}/move": {
      post: {
        summary: "Pin a VIP to a node (move it there)",
        security: bearer,
        parameters: [vipParam],
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["node"],
                properties: { node: { type: "string" } },
              },
            },
          },
        },
        responses: { "202": accepted, "400": error, ...mutationErrors },
      },
    },
    "/v1/vips/{address}/pin": {
      delete: {
        summary: "Remove a VIP's pin (placement policy decides again)",
        security: bearer,
        parameters: [vipParam],
        responses: { "202": accepted, ...mutationErrors },
      },
    },
    "/v1/nodes/{id}/disable": {
      post: {
        summary: "Drain a node: its VIPs move away and it gets none",
        security: bearer,
        parameters: [nodeParam],
        responses: { "202": accepted, ...mutationErrors },
      },
    },
    "/v1/nodes/{id}/enable": {
      post: {
        summary: "Take a drained node back",
        security: bearer,
        parameters: [nodeParam],
        responses: { "202": accepted, ...mutationErrors },
      },
    },
    "/v1/reload": {
      post: {
        summary: "Re-read the config file and the API token file",
        security: bearer,
        responses: {
          "200": json(
            { type: "object", properties: { reloaded: { type: "boolean" } } },
            "Reloaded",
          ),
          "401": error,
          "403": error,
          "422": error,
        },
      },
    },
  },
  components: {
    securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    responses: {
      Error: {
        description: "Error",
        content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
      },
    },
    schemas: {
      Error: {
        type: "object",
        required: ["error"],
        properties: {
          error: {
            type: "object",
            required: ["code", "message"],
            properties: { code: { type: "string" }, message: { type: "string" } },
          },
        },
      },
      Accepted: {
        type: "object",
        required: ["accepted"],
        properties: {
          accepted: { type: "boolean" },
          forwardedTo: {
            type: "string",
            nullable: true,
            description: "Coordinator the command was forwarded to; null when applied here",
          },
        },
      },
      Member: {
        type: "object",
        properties: {
          id: { type: "string" },
          state: { type: "string", enum: ["healthy", "failed", "drained", "unknown"] },
          heard: { type: "boolean" },
        },
      },
      Vip: {
        type: "object",
        properties: {
          address: { type: "string" },
          owner: { type: "string", nullable: true },
          desiredOwner: { type: "string", nullable: true },
          local: {
            type: "string",
            enum: ["absent", "probing", "adding", "held", "removing", "conflict"],
          },
          localSinceMs: { type: "number", nullable: true },
          since: {
            type: "string",
            nullable: true,
            description: "Wall-clock time since the current owner has had it",
          },
          heldForMs: {
            type: "number",
            nullable: true,
            description:
              "How long its owner has held the address, as the owner reported it; absent while the owner does not (yet) hold it. With arbiter etcd, reported by the holder only",
          },
          conflict: { type: "boolean" },
          explain: { type: "string" },
        },
      },
      Status: {
        type: "object",
        properties: {
          cluster: { type: "string" },
          profile: { type: "string" },
          node: { type: "string" },
          incarnation: { type: "integer" },
          startedAt: { type: "string" },
          role: { type: "string", enum: ["follower", "candidate", "coordinator"] },
          term: { type: "integer" },
          coordinator: { type: "string", nullable: true },
          healthy: { type: "boolean" },
          quorum: { type: "boolean" },
          leaseValid: { type: "boolean" },
          tableVersion: { type: "array", items: { type: "integer" } },
          config: {
            type: "object",
            properties: {
              fingerprint: { type: "string" },
              coordinator: { type: "string" },
              matchesCoordinator: { type: "boolean" },
            },
          },
          health: { type: "object" },
          vipSince: { type: "object", additionalProperties: { type: "string" } },
          transport: { type: "object" },
          members: { type: "array", items: { $ref: "#/components/schemas/Member" } },
          vips: { type: "array", items: { $ref: "#/components/schemas/Vip" } },
        },
      },
    },
  },
} as const;
