/**
 * Structured logs: one JSON object per line (for journald and log shippers), or a short
 * human line when standard error is a terminal or FLOATIP_LOG_FORMAT=human.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Whether logs are human lines (FLOATIP_LOG_FORMAT=human, or standard error is a terminal). */
export function humanLogFormat(): boolean {
  return process.env.FLOATIP_LOG_FORMAT
    ? process.env.FLOATIP_LOG_FORMAT === "human"
    : process.stderr.isTTY === true;
}

/**
 * The wall clock to the microsecond: the monotonic clock's fraction, anchored to `Date.now()`
 * and re-anchored whenever the two disagree by a millisecond or more (NTP stepped the wall
 * clock, or slewed it away over a long run). The stamp never runs ahead of the wall clock's
 * millisecond, and ordering within a millisecond is exact between re-anchorings: an event
 * logged before a datagram is sent carries an earlier stamp than the capture of that datagram.
 */
export function createWallClock(
  wall: () => number = Date.now,
  monotonic: () => number = () => performance.now(),
): () => number {
  let offset = wall() - monotonic();
  return () => {
    const mono = monotonic();
    const ms = wall();
    let at = mono + offset;
    if (at < ms || at >= ms + 1) {
      offset = ms - mono;
      at = ms;
    }
    return at;
  };
}

const wallClock = createWallClock();

/** RFC 3339 UTC with microseconds: 2026-12-02T20:02:13.105123Z. */
export function isoMicros(atMs: number): string {
  const whole = Math.floor(atMs);
  const micros = Math.min(999, Math.floor((atMs - whole) * 1000));
  return `${new Date(whole).toISOString().slice(0, 23)}${String(micros).padStart(3, "0")}Z`;
}

export function createLogger(options: {
  base?: Record<string, unknown>;
  level?: LogLevel;
  human?: boolean;
  write?: (line: string) => void;
}): Logger {
  const minimum =
    rank[options.level ?? ((process.env.FLOATIP_LOG_LEVEL as LogLevel) || "info")] ?? 20;
  const human = options.human ?? humanLogFormat();
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const base = options.base ?? {};
  return {
    log(level, message, fields = {}) {
      if (rank[level] < minimum) return;
      const time = isoMicros(wallClock());
      if (human) {
        const extra = Object.entries({ ...base, ...fields })
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
          .join(" ");
        write(
          `${time.slice(11, 26)} ${level.toUpperCase().padEnd(5)} ${message}${extra ? ` ${extra}` : ""}`,
        );
      } else {
        write(JSON.stringify({ time, level, msg: message, ...base, ...fields }));
      }
    },
    child(fields) {
      return createLogger({ ...options, base: { ...base, ...fields }, human, write });
    },
  };
}
