/**
 * Storage request records (S1): the state of one client request, merged across nodes.
 *
 * A record is `accepted -> running(node, attempt) -> succeeded(result) | failed(error)`, with
 * `outcome_unknown(node, attempt)` for an attempt whose effect cannot be decided (the backend
 * timed out, or the node running it died). Records only move forward: `merge(a, b)` returns the
 * furthest of the two, so replicas that exchange records in any order, any number of times,
 * converge on the same value (merge is commutative, associative and idempotent: a join on a
 * total order). Progress is ordered by
 *   1. final (succeeded/failed) above everything unfinished;
 *   2. among unfinished states: attempt number, then `running` < `outcome_unknown` of the same
 *      attempt (an attempt that was cut off is further than the same attempt still running),
 *      then node id — a later attempt always wins, whichever node started it;
 *   3. among final states: succeeded above failed (a success reports an effect that exists),
 *      then the canonical JSON text, so that even two different results have one winner.
 * Immutable metadata (`operation`) must be equal on both sides; `acceptedAtMs`/`acceptedBy`
 * take the earliest pair, which is itself a join.
 *
 * Idempotent re-drive. A request may be executed again by another node after a failover
 * (`reDrive` = a previous attempt may have had its effect). `resolveOutcome()` then maps backend
 * errors that mean "the effect is already there" to success:
 *   create       EXISTS and the image has the requested size  -> succeeded (observed info)
 *   delete       NOT_FOUND                                    -> succeeded
 *   resize       re-run (resizing to the same size is a no-op) -> the backend's answer
 *   copy         EXISTS on the target with the source's size  -> succeeded (observed info)
 *   snap-create  EXISTS                                       -> succeeded
 *   snap-delete  NOT_FOUND                                    -> succeeded
 *   clone        EXISTS on the target                         -> succeeded (observed info)
 *   list, info, snap-list: read-only, simply run again.
 * An EXISTS rule needs the object to carry this request's id (the backends record it with the
 * object atomically), and it applies on a first attempt too: only this request records its id,
 * so a first attempt meets it only when another node ran the request unbeknown to this node's
 * journal. NOT_FOUND on a first attempt is an ordinary failure (a delete of a missing volume).
 * The dispatcher also counts as a re-drive every record it did not accept itself while holding
 * the VIP in its current tenure (it may have run elsewhere meanwhile). Backends make create/copy/clone atomic (a temporary name, then a rename),
 * so an image that exists under its final name is complete.
 *
 * Pure: no I/O, no clock. Times are passed in by the caller.
 */

export type Operation =
  | { readonly op: "create"; readonly name: string; readonly sizeBytes: number }
  | { readonly op: "delete"; readonly name: string }
  | { readonly op: "list" }
  | { readonly op: "info"; readonly name: string }
  | { readonly op: "resize"; readonly name: string; readonly sizeBytes: number }
  | { readonly op: "copy"; readonly name: string; readonly target: string }
  | { readonly op: "snap-create"; readonly name: string; readonly snapshot: string }
  | { readonly op: "snap-list"; readonly name: string }
  | { readonly op: "snap-delete"; readonly name: string; readonly snapshot: string }
  | {
      readonly op: "clone";
      readonly name: string;
      readonly snapshot: string;
      readonly target: string;
    };

export type OperationKind = Operation["op"];

export const operationKinds: readonly OperationKind[] = [
  "create",
  "delete",
  "list",
  "info",
  "resize",
  "copy",
  "snap-create",
  "snap-list",
  "snap-delete",
  "clone",
];

/** Stable error codes of backends and requests (see src/storage/errors.ts for the edge). */
export type StorageErrorCode =
  | "NOT_FOUND"
  | "EXISTS"
  | "BUSY"
  | "TIMEOUT"
  | "BACKEND_ERROR"
  | "INVALID_REQUEST"
  /** The storage cluster refused this node: the VIP's new holder fenced it (rbd: blocklist). */
  | "FENCED";

export interface RequestError {
  readonly code: StorageErrorCode;
  readonly message: string;
}

/** JSON value produced by a backend operation (volume info, a list, nothing). */
export type OperationResult = unknown;

export type RequestState =
  | { readonly state: "accepted" }
  | { readonly state: "running"; readonly node: string; readonly attempt: number }
  | { readonly state: "outcome_unknown"; readonly node: string; readonly attempt: number }
  | { readonly state: "succeeded"; readonly result: OperationResult }
  | { readonly state: "failed"; readonly error: RequestError };

export interface RequestRecord {
  readonly id: string;
  readonly operation: Operation;
  /** Wall time at which the first node accepted the request (orders re-drives). */
  readonly acceptedAtMs: number;
  readonly acceptedBy: string;
  readonly state: RequestState;
  /**
   * Name of the credential that submitted the request (the storage API's token name); only
   * that client sees the record. Absent on records of a gateway without client credentials.
   */
  readonly client?: string;
}

const clientPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** A credential name: 1-64 letters, digits, '_', '.', '-', starting with a letter or digit. */
export function isValidClientName(name: unknown): name is string {
  return typeof name === "string" && clientPattern.test(name);
}

export type Result<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: RequestError };

const namePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
/** Largest size accepted (1 PiB): beyond any real volume, below Number.MAX_SAFE_INTEGER. */
export const sizeBytesMax = 2 ** 50;

export function isFinal(state: RequestState): boolean {
  return state.state === "succeeded" || state.state === "failed";
}

/** Canonical JSON: object keys sorted, so equal values have equal text on every node. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(entries.map(([k, v]) => [k, sortKeys(v)]));
  }
  return value;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function rank(state: RequestState): number {
  switch (state.state) {
    case "accepted":
      return 0;
    case "running":
    case "outcome_unknown":
      return 1;
    case "failed":
      return 2;
    case "succeeded":
      return 3;
  }
}

/** Total order on states: negative when `a` is behind `b`, 0 only when they are equal. */
export function compareStates(a: RequestState, b: RequestState): number {
  const byRank = rank(a) - rank(b);
  if (byRank !== 0) return byRank;
  if (
    (a.state === "running" || a.state === "outcome_unknown") &&
    (b.state === "running" || b.state === "outcome_unknown")
  ) {
    if (a.attempt !== b.attempt) return a.attempt - b.attempt;
    const phase = (a.state === "outcome_unknown" ? 1 : 0) - (b.state === "outcome_unknown" ? 1 : 0);
    if (phase !== 0) return phase;
    return compareText(a.node, b.node);
  }
  return compareText(canonicalJson(a), canonicalJson(b));
}

/** The join of two replicas of the same request. Throws on different ids or operations. */
export function merge(a: RequestRecord, b: RequestRecord): RequestRecord {
  if (a.id !== b.id) throw new Error(`merge of different requests ${a.id} and ${b.id}`);
  if (canonicalJson(a.operation) !== canonicalJson(b.operation)) {
    throw new Error(`request ${a.id} has two different operations`);
  }
  const aFirst =
    a.acceptedAtMs !== b.acceptedAtMs
      ? a.acceptedAtMs < b.acceptedAtMs
      : compareText(a.acceptedBy, b.acceptedBy) <= 0;
  const origin = aFirst ? a : b;
  const state = compareStates(a.state, b.state) >= 0 ? a.state : b.state;
  if ((a.client ?? "") !== (b.client ?? "")) {
    throw new Error(`request ${a.id} has two different clients`);
  }
  return {
    id: a.id,
    operation: a.operation,
    acceptedAtMs: origin.acceptedAtMs,
    acceptedBy: origin.acceptedBy,
    state,
    ...(a.client === undefined ? {} : { client: a.client }),
  };
}

export function createRecord(
  id: string,
  operation: Operation,
  acceptedBy: string,
  acceptedAtMs: number,
  client?: string,
): RequestRecord {
  return {
    id,
    operation,
    acceptedAtMs,
    acceptedBy,
    state: { state: "accepted" },
    ...(client === undefined ? {} : { client }),
  };
}

/** Number of the last attempt (0 before any). */
export function lastAttempt(state: RequestState): number {
  return state.state === "running" || state.state === "outcome_unknown" ? state.attempt : 0;
}

/**
 * The state with which `node` starts the next attempt of an unfinished record, and whether that
 * attempt is a re-drive (an earlier attempt, on any node, may already have had its effect).
 */
export function nextAttempt(
  record: RequestRecord,
  node: string,
): { readonly state: RequestState; readonly reDrive: boolean } {
  if (isFinal(record.state)) throw new Error(`request ${record.id} is already final`);
  const previous = lastAttempt(record.state);
  return {
    state: { state: "running", node, attempt: previous + 1 },
    // The acceptor may have crashed after starting an attempt it could not replicate, so a
    // record executed by any other node is treated as a re-drive even at attempt 1.
    reDrive: previous > 0 || node !== record.acceptedBy,
  };
}

/** What the dispatcher saw when it ran one attempt against the backend. */
export type Outcome =
  | { readonly ok: true; readonly result: OperationResult }
  | { readonly ok: false; readonly error: RequestError };

/** Volume facts the dispatcher looked up to decide a re-drive (see `observationFor`). */
export interface ObservedVolume {
  readonly name: string;
  readonly sizeBytes: number;
  /**
   * The request whose own effect made this volume, as the backend recorded it with the
   * volume (undefined: made outside floatip, or by a version that did not record it).
   */
  readonly createdBy?: string;
}

/**
 * For an attempt that failed with EXISTS (a first attempt too: see `resolveOutcome`), the
 * volume(s) whose size and creator decide whether the effect is already there; the dispatcher
 * reads them (`info`, the creator metadata) and passes them to `resolveOutcome`.
 */
export function observationFor(operation: Operation, outcome: Outcome): readonly string[] {
  if (outcome.ok || outcome.error.code !== "EXISTS") return [];
  switch (operation.op) {
    case "create":
      return [operation.name];
    case "copy":
      return [operation.target, operation.name];
    case "clone":
      return [operation.target];
    case "snap-create":
      return [`${operation.name}@${operation.snapshot}`];
    default:
      return [];
  }
}

/** Final (or outcome_unknown) state of an attempt, applying the re-drive rules above. */
export function resolveOutcome(
  operation: Operation,
  attempt: { readonly node: string; readonly attempt: number; readonly reDrive: boolean },
  outcome: Outcome,
  observed: ReadonlyMap<string, ObservedVolume | undefined> = new Map(),
  /** This request's id: a volume found on re-drive is its effect only if it carries it. */
  requestId?: string,
  /**
   * A crashed predecessor's client may still be registered on the image: the re-drive runs
   * within the time Ceph takes to drop a dead client's watch (see the dispatcher).
   */
  staleWatchPossible = false,
): RequestState {
  if (outcome.ok) return { state: "succeeded", result: outcome.result };
  const code = outcome.error.code;
  // TIMEOUT: the effect may or may not have happened. FENCED: this node was cut off from the
  // storage cluster by the VIP's new holder, whose own attempt decides the request.
  if (code === "TIMEOUT" || code === "FENCED") {
    return { state: "outcome_unknown", node: attempt.node, attempt: attempt.attempt };
  }
  const failed: RequestState = { state: "failed", error: outcome.error };
  // EXISTS on an object that carries this request's id is this request's effect, on any
  // attempt: only this request ever records its id (a first attempt meets it when another node
  // ran the request and this node's journal did not hear of it).
  if (code === "EXISTS") return existsAsEffect(operation, observed, requestId) ?? failed;
  if (!attempt.reDrive) return failed;
  // The previous holder died inside its own attempt (`rbd rm` has the image open): its client
  // still watches the image until Ceph times the watch out, and every open or removal meanwhile
  // is BUSY. That BUSY is the dead attempt's shadow, not this request's answer: try again.
  if (code === "BUSY" && staleWatchPossible) {
    return { state: "outcome_unknown", node: attempt.node, attempt: attempt.attempt };
  }
  switch (operation.op) {
    case "delete":
      return code === "NOT_FOUND"
        ? { state: "succeeded", result: { name: operation.name } }
        : failed;
    case "snap-delete":
      return code === "NOT_FOUND"
        ? { state: "succeeded", result: { name: operation.name, snapshot: operation.snapshot } }
        : failed;
    case "snap-create":
    case "create":
    case "copy":
    case "clone":
    case "list":
    case "info":
    case "resize":
    case "snap-list":
      return failed;
  }
}

/**
 * The success an EXISTS answer stands for when the object is this request's own effect, else
 * undefined. A snapshot or clone that exists is this request's effect only when it carries this
 * request's id; a volume (create, copy) also needs the requested size: another client's request
 * may have made an object of the same name.
 */
function existsAsEffect(
  operation: Operation,
  observed: ReadonlyMap<string, ObservedVolume | undefined>,
  requestId: string | undefined,
): RequestState | undefined {
  switch (operation.op) {
    case "snap-create": {
      const seen = observed.get(`${operation.name}@${operation.snapshot}`);
      return seen !== undefined && madeBy(seen, requestId)
        ? { state: "succeeded", result: { name: operation.name, snapshot: operation.snapshot } }
        : undefined;
    }
    case "create": {
      const seen = observed.get(operation.name);
      return seen !== undefined && seen.sizeBytes === operation.sizeBytes && madeBy(seen, requestId)
        ? { state: "succeeded", result: withoutCreator(seen) }
        : undefined;
    }
    case "copy": {
      const target = observed.get(operation.target);
      const source = observed.get(operation.name);
      return target !== undefined &&
        source !== undefined &&
        target.sizeBytes === source.sizeBytes &&
        madeBy(target, requestId)
        ? { state: "succeeded", result: withoutCreator(target) }
        : undefined;
    }
    case "clone": {
      const target = observed.get(operation.target);
      return target !== undefined && madeBy(target, requestId)
        ? { state: "succeeded", result: withoutCreator(target) }
        : undefined;
    }
    default:
      return undefined;
  }
}

/** Whether `volume` records `requestId` as its maker (never when either is unknown). */
function madeBy(volume: ObservedVolume, requestId: string | undefined): boolean {
  return requestId !== undefined && volume.createdBy === requestId;
}

function withoutCreator(volume: ObservedVolume): ObservedVolume {
  const { createdBy: _createdBy, ...rest } = volume;
  return rest;
}

/**
 * Validates an operation received as JSON (API body, replicated record). Every problem is
 * reported in one message with the field name.
 */
export function parseOperation(input: unknown): Result<Operation> {
  const bad = (message: string): Result<Operation> => ({
    ok: false,
    error: { code: "INVALID_REQUEST", message },
  });
  if (input === null || typeof input !== "object") return bad("operation must be an object");
  const o = input as Record<string, unknown>;
  const kind = o.op;
  if (typeof kind !== "string" || !operationKinds.includes(kind as OperationKind)) {
    return bad(`op must be one of ${operationKinds.join(", ")}`);
  }
  const problems: string[] = [];
  const name = (field: string): string => {
    const value = o[field];
    if (typeof value !== "string" || !namePattern.test(value)) {
      problems.push(
        `${field} must be 1-100 characters of letters, digits, '_', '.', '-' starting with a letter or digit`,
      );
      return "";
    }
    return value;
  };
  const size = (): number => {
    const value = o.sizeBytes;
    if (
      typeof value !== "number" ||
      !Number.isSafeInteger(value) ||
      value <= 0 ||
      value > sizeBytesMax
    ) {
      problems.push(`sizeBytes must be a positive integer of at most ${sizeBytesMax}`);
      return 0;
    }
    return value;
  };
  const allowed: Record<OperationKind, readonly string[]> = {
    create: ["name", "sizeBytes"],
    delete: ["name"],
    list: [],
    info: ["name"],
    resize: ["name", "sizeBytes"],
    copy: ["name", "target"],
    "snap-create": ["name", "snapshot"],
    "snap-list": ["name"],
    "snap-delete": ["name", "snapshot"],
    clone: ["name", "snapshot", "target"],
  };
  const kindChecked = kind as OperationKind;
  for (const key of Object.keys(o)) {
    if (key !== "op" && !allowed[kindChecked].includes(key)) {
      problems.push(`unknown field ${key} for op ${kindChecked}`);
    }
  }
  let operation: Operation;
  switch (kindChecked) {
    case "create":
      operation = { op: "create", name: name("name"), sizeBytes: size() };
      break;
    case "delete":
      operation = { op: "delete", name: name("name") };
      break;
    case "list":
      operation = { op: "list" };
      break;
    case "info":
      operation = { op: "info", name: name("name") };
      break;
    case "resize":
      operation = { op: "resize", name: name("name"), sizeBytes: size() };
      break;
    case "copy":
      operation = { op: "copy", name: name("name"), target: name("target") };
      break;
    case "snap-create":
      operation = { op: "snap-create", name: name("name"), snapshot: name("snapshot") };
      break;
    case "snap-list":
      operation = { op: "snap-list", name: name("name") };
      break;
    case "snap-delete":
      operation = { op: "snap-delete", name: name("name"), snapshot: name("snapshot") };
      break;
    case "clone":
      operation = {
        op: "clone",
        name: name("name"),
        snapshot: name("snapshot"),
        target: name("target"),
      };
      break;
  }
  if (problems.length > 0) return bad(problems.join("; "));
  return { ok: true, value: operation };
}

const requestIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

export function isValidRequestId(id: unknown): id is string {
  return typeof id === "string" && requestIdPattern.test(id);
}

/** Validates a whole record received from a peer (never trusted blindly, even when signed). */
export function parseRecord(input: unknown): Result<RequestRecord> {
  const bad = (message: string): Result<RequestRecord> => ({
    ok: false,
    error: { code: "INVALID_REQUEST", message },
  });
  if (input === null || typeof input !== "object") return bad("record must be an object");
  const r = input as Record<string, unknown>;
  if (!isValidRequestId(r.id)) return bad("record id is invalid");
  const operation = parseOperation(r.operation);
  if (!operation.ok) return operation;
  if (!Number.isSafeInteger(r.acceptedAtMs) || (r.acceptedAtMs as number) < 0) {
    return bad("acceptedAtMs must be a whole number of milliseconds");
  }
  if (typeof r.acceptedBy !== "string" || r.acceptedBy === "") {
    return bad("acceptedBy must be a node id");
  }
  if (r.client !== undefined && !isValidClientName(r.client)) {
    return bad("client must be a credential name");
  }
  const s = r.state as Record<string, unknown> | null;
  if (s === null || typeof s !== "object") return bad("state must be an object");
  let state: RequestState;
  switch (s.state) {
    case "accepted":
      state = { state: "accepted" };
      break;
    case "running":
    case "outcome_unknown":
      if (
        typeof s.node !== "string" ||
        !Number.isSafeInteger(s.attempt) ||
        (s.attempt as number) < 1
      ) {
        return bad("running state needs node and attempt >= 1");
      }
      state = { state: s.state, node: s.node, attempt: s.attempt as number };
      break;
    case "succeeded":
      state = { state: "succeeded", result: s.result ?? null };
      break;
    case "failed": {
      const e = s.error as Record<string, unknown> | null;
      if (e === null || typeof e !== "object" || typeof e.code !== "string") {
        return bad("failed state needs error.code");
      }
      state = {
        state: "failed",
        error: { code: e.code as StorageErrorCode, message: String(e.message ?? "") },
      };
      break;
    }
    default:
      return bad("unknown state");
  }
  return {
    ok: true,
    value: {
      id: r.id,
      operation: operation.value,
      acceptedAtMs: r.acceptedAtMs as number,
      acceptedBy: r.acceptedBy,
      state,
      ...(r.client === undefined ? {} : { client: r.client as string }),
    },
  };
}
