/**
 * Open connections per source address, for the per-source limits of every listener (the
 * HTTP APIs, the relay, the traffic channel): one host must not take every socket.
 */
export class PerSourceCount {
  readonly #open = new Map<string, number>();

  /** Counts a new connection from `source` unless it already holds `max`; false then. */
  tryOpen(source: string, max: number): boolean {
    const count = this.#open.get(source) ?? 0;
    if (max > 0 && count >= max) return false;
    this.#open.set(source, count + 1);
    return true;
  }

  /** One connection from `source` closed. */
  close(source: string): void {
    const left = (this.#open.get(source) ?? 1) - 1;
    if (left > 0) this.#open.set(source, left);
    else this.#open.delete(source);
  }

  /** Connections open from `source` now. */
  of(source: string): number {
    return this.#open.get(source) ?? 0;
  }
}
