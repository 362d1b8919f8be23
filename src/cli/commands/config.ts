/**
 * `floatip config check FILE [--node ID] [--json]`: validates a cluster config without starting
 * anything. Exit codes: 0 valid, 1 invalid or unreadable (every problem is printed), 2 usage.
 */

import { checkCapabilitySections } from "../../agent/capability-check.ts";
import { deepCheck } from "../../config/deep-check.ts";
import { ConfigError, type ConfigProblem, formatProblem } from "../../config/errors.ts";
import { loadConfig } from "../../config/load.ts";

export const usage =
  "usage: floatip config check FILE [--node ID] [--json]\n" +
  "  Validates FILE and prints every problem with its key path and a fix.\n" +
  "  Also reads what it names as the agent will: the key file, the API token file, the\n" +
  "  notify and exec check commands; warns for a two-node cluster and a VIP outside every\n" +
  "  node's subnet.\n" +
  "  --node ID  also check that ID is one of the configured nodes, and, run on that node,\n" +
  "             that its interfaces exist and its address is configured here\n" +
  "  --json     print { ok, problems: [{ file, path, message, fix, line?, column? }], warnings }\n" +
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
    // What the file names, read as the agent will read it (key, token, commands, this node).
    const deep = deepCheck(config, { file, ...(nodeId !== undefined ? { nodeId } : {}) });
    const problems = [...capabilityProblems, ...deep.errors];
    const warnings = deep.warnings;
    if (problems.length > 0) {
      if (json) {
        process.stdout.write(
          `${JSON.stringify({ ok: false, code: "CONFIG_INVALID", problems, warnings })}\n`,
        );
      } else {
        const lines = [...problems.map(formatProblem), ...warnings.map(formatWarning)];
        const count = plural(problems.length, "problem", "problems");
        process.stdout.write(`${lines.join("\n")}\n${file}: ${count}\n`);
      }
      return 1;
    }
    if (json) {
      process.stdout.write(`${JSON.stringify({ ok: true, problems: [], warnings })}\n`);
    } else {
      const nodes = plural(config.nodes.length, "node", "nodes");
      const vips = plural(config.vips.length, "VIP", "VIPs");
      const notes =
        warnings.length === 0 ? "" : `, ${plural(warnings.length, "warning", "warnings")}`;
      const lines = warnings.map(formatWarning);
      lines.push(`${file}: ok (${nodes}, ${vips}, profile ${config.profile}${notes})`);
      process.stdout.write(`${lines.join("\n")}\n`);
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

function formatWarning(problem: ConfigProblem): string {
  return `warning: ${formatProblem(problem)}`;
}

function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`;
}
