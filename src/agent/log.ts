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
      const time = new Date().toISOString();
      if (human) {
        const extra = Object.entries({ ...base, ...fields })
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
          .join(" ");
        write(
          `${time.slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${message}${extra ? ` ${extra}` : ""}`,
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
