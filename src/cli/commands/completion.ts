/**
 * `floatip completion bash|zsh`: prints the shell completion script, generated from the
 * command table and each command's usage (src/cli/manual.ts). Install with, for example,
 * `floatip completion bash > /etc/bash_completion.d/floatip`.
 */
import { bashCompletion, zshCompletion } from "../manual.ts";

export const usage = "usage: floatip completion bash|zsh\n";

export async function run(args: string[]): Promise<number> {
  const [shell, ...rest] = args;
  if (rest.length > 0 || (shell !== "bash" && shell !== "zsh")) {
    process.stderr.write(usage);
    return 2;
  }
  process.stdout.write(shell === "bash" ? await bashCompletion() : await zshCompletion());
  return 0;
}
