/**
 * Errors of the config area. `loadConfig()` throws a `ConfigError` carrying every problem it
 * found, so that an operator fixes the whole file in one pass instead of one error per restart.
 * Callers react to `code`; `problems` is for display (`floatip config check --json`).
 */

/** `CONFIG_UNREADABLE`: the file could not be read at all; `CONFIG_INVALID`: it was read and is wrong. */
export type ConfigErrorCode = "CONFIG_INVALID" | "CONFIG_UNREADABLE";

/** One thing wrong with the config file. */
export interface ConfigProblem {
  /** The config file as the caller named it. */
  readonly file: string;
  /** Key path inside the file, e.g. "vips[1].preferred"; "" when it concerns the whole file. */
  readonly path: string;
  readonly message: string;
  /** What to change, in one sentence. */
  readonly fix: string;
  /** 1-based position in the file, when known. */
  readonly line?: number;
  readonly column?: number;
}

/** Renders a problem as `FILE: path: message — fix: fix` (the path part is left out when empty). */
/** `file:line:column: path: message — fix: …` (line and column when known, as compilers do). */
export function formatProblem(problem: ConfigProblem): string {
  const where = problem.path === "" ? "" : `${problem.path}: `;
  const at =
    problem.line === undefined
      ? ""
      : `:${problem.line}${problem.column === undefined ? "" : `:${problem.column}`}`;
  return `${problem.file}${at}: ${where}${problem.message} — fix: ${problem.fix}`;
}

export class ConfigError extends Error {
  readonly code: ConfigErrorCode;
  readonly problems: readonly ConfigProblem[];
  constructor(code: ConfigErrorCode, problems: readonly ConfigProblem[], options?: ErrorOptions) {
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    const title = code === "CONFIG_UNREADABLE" ? "unreadable config" : `invalid config (${count})`;
    super(`${title}:\n${problems.map(formatProblem).join("\n")}`, options);
    this.name = "ConfigError";
    this.code = code;
    this.problems = Object.freeze([...problems]);
  }
}
