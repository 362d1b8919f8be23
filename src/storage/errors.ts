/**
 * Errors of the storage gateway with stable codes. Backends throw `StorageError`; the
 * dispatcher turns it into a request's `failed` / `outcome_unknown` state; the API maps codes to
 * HTTP statuses. Callers match on `code`, never on message text.
 */
import type { StorageErrorCode } from "../core/requests/request-record.ts";

export type GatewayErrorCode =
  | StorageErrorCode
  | "REQUEST_ID_REUSED"
  | "REPLICATION_FAILED"
  | "NO_REPLICA"
  | "UNAUTHENTICATED"
  | "FORBIDDEN";

export class StorageError extends Error {
  readonly code: GatewayErrorCode;
  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** HTTP status of each code (the API answers `{error:{code,message}}` with it). */
export function httpStatusOf(code: GatewayErrorCode): number {
  switch (code) {
    case "NOT_FOUND":
      return 404;
    case "EXISTS":
    case "REQUEST_ID_REUSED":
    case "BUSY":
      return 409;
    case "INVALID_REQUEST":
      return 400;
    case "UNAUTHENTICATED":
      return 401;
    case "FORBIDDEN":
      return 403;
    case "TIMEOUT":
      return 504;
    case "REPLICATION_FAILED":
    case "NO_REPLICA":
    case "FENCED":
      return 503;
    case "BACKEND_ERROR":
      return 502;
  }
}
