/**
 * Runs an external command (`ip`, `nft`, `rbd`, `conntrack`…) under a hard timeout. Some of
 * these hang forever on real machines (`rbd rm` on a locked image, `arping -i 0`), so every
 * call has a deadline and a timeout is an outcome the caller handles, never a hang.
 */
import { spawn } from "node:child_process";

export type ExecErrorCode = "EXEC_TIMEOUT" | "EXEC_FAILED" | "EXEC_NOT_FOUND";

export class ExecError extends Error {
  readonly code: ExecErrorCode;
  readonly command: string;
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
  constructor(
    code: ExecErrorCode,
    command: string,
    details: { exitCode: number | null; stdout: string; stderr: string; cause?: unknown },
  ) {
    const why =
      code === "EXEC_TIMEOUT"
        ? "timed out"
        : code === "EXEC_NOT_FOUND"
          ? "not found"
          : `exited with ${details.exitCode}`;
    const tail = details.stderr.trim().split("\n").slice(-3).join(" | ");
    super(`${command} ${why}${tail ? `: ${tail}` : ""}`, { cause: details.cause });
    this.code = code;
    this.command = command;
    this.exitCode = details.exitCode;
    this.stdout = details.stdout;
    this.stderr = details.stderr;
  }
}

export interface ExecOptions {
  /** Hard deadline; the process group gets SIGKILL when it passes. */
  readonly timeoutMs: number;
  /** Data written to the command's standard input (then closed). */
  readonly input?: string;
  /** Run inside this network namespace (`ip netns exec NAME …`). */
  readonly netns?: string;
  /** Exit codes that count as success (default: 0 only). */
  readonly okExitCodes?: readonly number[];
  readonly env?: NodeJS.ProcessEnv;
  /** Working directory (default: this process's). */
  readonly cwd?: string;
  /**
   * The command is killed (SIGKILL) the moment this process dies, whatever killed it
   * (`setpriv --pdeathsig`): for work done on behalf of a VIP this node may stop holding,
   * such as the storage gateway's `rbd` calls, which must not go on after their gateway.
   */
  readonly dieWithParent?: boolean;
}

export interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

const outputLimitBytes = 16 * 1024 * 1024;

/** Runs `file args…`, resolves on an accepted exit code, rejects with an `ExecError` otherwise. */
export function run(
  file: string,
  args: readonly string[],
  options: ExecOptions,
): Promise<ExecResult> {
  const command0 = options.dieWithParent
    ? ["setpriv", "--pdeathsig", "KILL", "--", file, ...args]
    : [file, ...args];
  const argv = options.netns ? ["ip", "netns", "exec", options.netns, ...command0] : command0;
  const command = argv.join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
      env: options.env ?? process.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    let stdout = "";
    let stderr = "";
    let settled = false;
    const finish = (error: ExecError | undefined, result?: ExecResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(result!);
    };
    const timer = setTimeout(() => {
      try {
        // The whole process group: `ip netns exec` forks the real command.
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
      finish(new ExecError("EXEC_TIMEOUT", command, { exitCode: null, stdout, stderr }));
    }, options.timeoutMs);
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      if (stdout.length < outputLimitBytes) stdout += chunk;
    });
    child.stderr.on("data", (chunk: string) => {
      if (stderr.length < outputLimitBytes) stderr += chunk;
    });
    child.on("error", (cause: NodeJS.ErrnoException) => {
      const code = cause.code === "ENOENT" ? "EXEC_NOT_FOUND" : "EXEC_FAILED";
      finish(new ExecError(code, command, { exitCode: null, stdout, stderr, cause }));
    });
    child.on("close", (exitCode) => {
      const accepted = options.okExitCodes ?? [0];
      if (exitCode !== null && accepted.includes(exitCode)) {
        finish(undefined, { exitCode, stdout, stderr });
      } else {
        finish(new ExecError("EXEC_FAILED", command, { exitCode, stdout, stderr }));
      }
    });
    child.stdin.on("error", () => {
      // The command may exit before reading its input; its exit status tells the story.
    });
    child.stdin.end(options.input ?? "");
  });
}
