/**
 * What the relay service needs from a data plane (userspace `proxy` or kernel `nat`). The
 * service calls `start()` once, then `route()` after every decision of the relay machine
 * (before `closeConnections()` of the same step, so no new connection reaches a backend
 * whose sessions are being closed), and `stop()` at shutdown.
 */
export interface RelayDataPlane {
  start(): Promise<void>;
  /**
   * New connections go to `candidates[0]`; when a connect to it fails, the data plane may try
   * the next ones at once. Empty = every backend is down: reject new connections.
   */
  route(candidates: readonly string[]): Promise<void>;
  /** Ends the established sessions of one backend (it was declared down, or failback). */
  closeConnections(backend: string): Promise<void>;
  /** Established sessions per backend id, where the data plane can count them. */
  connections(): ReadonlyMap<string, number>;
  stop(): Promise<void>;
}

/** One structured log line; the runner prints it as JSON. */
export type RelayLog = (record: Record<string, unknown>) => void;
