/**
 * Error codes of the agent's local HTTP API. Every error answer has the shape
 * `{ "error": { "code": "…", "message": "…" } }`; clients (the CLI, scripts) react to `code`
 * and show `message` to a person.
 */
import type { FastifyReply } from "fastify";

export type ApiErrorCode =
  | "BAD_REQUEST"
  | "NOT_FOUND"
  | "SECTION_NOT_CONFIGURED"
  | "UNAUTHORIZED"
  | "MUTATIONS_DISABLED"
  | "NO_COORDINATOR"
  | "UNKNOWN_NODE"
  | "UNKNOWN_VIP"
  | "NODE_NOT_ELIGIBLE"
  | "LAST_ELIGIBLE_NODE"
  | "RELOAD_FAILED"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "PAYLOAD_TOO_LARGE"
  | "UNAVAILABLE"
  | "TOO_MANY_STREAMS"
  | "INTERNAL";

export interface ApiErrorBody {
  readonly error: { readonly code: ApiErrorCode; readonly message: string };
}

export function sendError(
  reply: FastifyReply,
  status: number,
  code: ApiErrorCode,
  message: string,
): FastifyReply {
  const body: ApiErrorBody = { error: { code, message } };
  return reply.code(status).type("application/json; charset=utf-8").send(body);
}

/** Raised when the API cannot start as configured (e.g. the token file is unreadable). */
export class ApiSetupError extends Error {
  readonly code: "API_TOKEN_UNREADABLE" | "API_TOKEN_EMPTY" | "API_TOKEN_TOO_OPEN";
  constructor(code: ApiSetupError["code"], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ApiSetupError";
    this.code = code;
  }
}
