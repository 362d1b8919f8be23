/**
 * Structured logs: one JSON object per line (for journald and log shippers), or a short
 * human line when standard error is a terminal or FLOATIP_LOG_FORMAT=human.
 *
 * Under systemd, when standard error is the journal (JOURNAL_STREAM names its device and
 * inode), each line starts with its syslog priority, `<3>` error, `<4>` warn, `<6>` info,
 * `<7>` debug: journald strips the prefix and files the line at that priority, so
 * `journalctl -u floatip@n1 -p warning` shows warnings and errors only. Anywhere else the
 * lines stay plain JSON.
 */
import { fstatSync } from "node:fs";
export type LogLevel = "debug" | "info" | "warn" | "error";

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** syslog priorities (RFC 5424): what journald files each level as. */
export const syslogPriority: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3 };

/**
 * Whether file descriptor `fd` is the journal stream systemd connected (JOURNAL_STREAM is
 * "DEVICE:INODE" of that stream; a child whose standard error was redirected elsewhere
 * inherits the variable but not the stream, so both must match).
 */
export function isJournalStream(fd = 2, env: NodeJS.ProcessEnv = process.env): boolean {
  const match = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? "");
  if (!match) return false;
  try {
    const stat = fstatSync(fd, { bigint: true });
    return stat.dev === BigInt(match[1]!) && stat.ino === BigInt(match[2]!);
  } catch {
    return false;
  }
}

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
  /** Prefix lines with their syslog priority (default: when standard error is the journal). */
  journal?: boolean;
}): Logger {
  const minimum =
    rank[options.level ?? ((process.env.FLOATIP_LOG_LEVEL as LogLevel) || "info")] ?? 20;
  const human = options.human ?? humanLogFormat();
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const journal = options.journal ?? (options.write === undefined && isJournalStream());
  const prefix = (level: LogLevel) => (journal ? `<${syslogPriority[level]}>` : "");
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
          `${prefix(level)}${time.slice(11, 26)} ${level.toUpperCase().padEnd(5)} ${message}${extra ? ` ${extra}` : ""}`,
        );
      } else {
        write(
          `${prefix(level)}${JSON.stringify({ time, level, msg: message, ...base, ...fields })}`,
        );
      }
    },
    child(fields) {
      return createLogger({ ...options, base: { ...base, ...fields }, human, write, journal });
    },
  };
}
