/**
 * `floatip config check FILE [--node ID] [--json]`: validates a cluster config without starting
 * anything. Exit codes: 0 valid, 1 invalid or unreadable (every problem is printed), 2 usage.
 */

import { checkCapabilitySections } from "../../agent/capability-check.ts";
import { ConfigError, formatProblem } from "../../config/errors.ts";
import { loadConfig } from "../../config/load.ts";

const usage =
  "usage: floatip config check FILE [--node ID] [--json]\n" +
  "  Validates FILE and prints every problem with its key path and a fix.\n" +
  "  --node ID  also check that ID is one of the configured nodes\n" +
  "  --json     print { ok, problems: [{ file, path, message, fix, line?, column? }] }\n" +
  "  Exit status: 0 valid, 1 invalid, 2 usage error.\n";

interface CheckArgs {
  readonly file: string;
  readonly nodeId?: string;
  readonly json: boolean;
}

function parseArgs(args: readonly string[]): CheckArgs | string {
  let file: string | undefined;
  let nodeId: string | undefined;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--json") json = true;
    else if (arg === "--node") {
      nodeId = args[++i];
      if (nodeId === undefined) return "--node needs a node id";
    } else if (arg.startsWith("--node=")) nodeId = arg.slice("--node=".length);
    else if (arg.startsWith("-")) return `unknown option '${arg}'`;
    else if (file === undefined) file = arg;
    else return `unexpected argument '${arg}'`;
  }
  if (file === undefined) return "missing FILE";
  return { file, json, ...(nodeId !== undefined ? { nodeId } : {}) };
}

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "--help" || sub === "-h" || sub === "help") {
    process.stdout.write(usage);
    return 0;
  }
  if (sub !== "check") {
    const what = sub === undefined ? "missing subcommand" : `unknown subcommand '${sub}'`;
    process.stderr.write(`floatip config: ${what}\n${usage}`);
    return 2;
  }
  const parsed = parseArgs(rest);
  if (typeof parsed === "string") {
    process.stderr.write(`floatip config check: ${parsed}\n${usage}`);
    return 2;
  }
  return check(parsed);
}

function check({ file, nodeId, json }: CheckArgs): number {
  try {
    const config = loadConfig(file, nodeId !== undefined ? { nodeId } : {});
    const capabilityProblems = checkCapabilitySections(config, nodeId).map((p) => ({ file, ...p }));
    if (capabilityProblems.length > 0) {
      if (json) {
        process.stdout.write(
          `${JSON.stringify({ ok: false, code: "CONFIG_INVALID", problems: capabilityProblems })}\n`,
        );
      } else {
        const lines = capabilityProblems.map(formatProblem);
        const count = plural(capabilityProblems.length, "problem", "problems");
        process.stdout.write(`${lines.join("\n")}\n${file}: ${count}\n`);
      }
      return 1;
    }
    if (json) {
      process.stdout.write(`${JSON.stringify({ ok: true, problems: [] })}\n`);
    } else {
      const nodes = plural(config.nodes.length, "node", "nodes");
      const vips = plural(config.vips.length, "VIP", "VIPs");
      process.stdout.write(`${file}: ok (${nodes}, ${vips}, profile ${config.profile})\n`);
    }
    return 0;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    if (json) {
      process.stdout.write(
        `${JSON.stringify({ ok: false, code: error.code, problems: error.problems })}\n`,
      );
    } else {
      const lines = error.problems.map(formatProblem);
      const count = plural(error.problems.length, "problem", "problems");
      process.stdout.write(`${lines.join("\n")}\n${file}: ${count}\n`);
    }
    return 1;
  }
}

function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`;
}
