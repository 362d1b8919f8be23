/**
 * The `floatip` executable: one subcommand per file under `src/cli/commands/`, each exporting
 * `run(args): Promise<number>` (the exit code). Subcommands load lazily so that `floatip
 * status` does not pay for the simulator or the storage gateway.
 */

import { commands } from "./commands-table.ts";

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  return (
    `usage: floatip <command> [options]\n\ncommands:\n${lines.join("\n")}\n` +
    "  version  floatip, Node.js and wire-format versions\n" +
    "\nfloatip help COMMAND, or floatip COMMAND --help, for a command's options.\n"
  );
}

interface CommandModule {
  run(args: string[]): Promise<number>;
  readonly usage?: string;
}

async function load(name: string): Promise<CommandModule | undefined> {
  const command = commands[name];
  if (!command) return undefined;
  return (await import(`./commands/${command.file}`)) as CommandModule;
}

/** `floatip version`: what an operator pastes into a bug report. */
async function versionText(): Promise<string> {
  const { readFileSync, existsSync } = await import("node:fs");
  const { WIRE_VERSION } = await import("../cluster/codec.ts");
  const { floatipVersion } = await import("../version.ts");
  const root = new URL("../../", import.meta.url);
  // Compiled JavaScript carries the time it was built; the sources have none.
  const stamp = new URL("dist/.build-stamp", root);
  const compiled = import.meta.url.endsWith(".js");
  const build = compiled && existsSync(stamp) ? readFileSync(stamp, "utf8").trim() : "";
  return [
    `floatip ${floatipVersion}`,
    `node ${process.version}`,
    `wire format ${WIRE_VERSION}`,
    `running ${compiled ? `compiled JavaScript${build ? ` built ${build}` : ""}` : "TypeScript sources"}`,
  ].join("\n");
}

const withNewline = (text: string) => (text.endsWith("\n") ? text : `${text}\n`);

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === "--help" || name === "-h") {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "version" || name === "--version" || name === "-v") {
    process.stdout.write(`${await versionText()}\n`);
    return 0;
  }
  if (name === "help") {
    const topic = args[0];
    if (topic === undefined) {
      process.stdout.write(usage());
      return 0;
    }
    const module = await load(topic);
    if (!module) {
      process.stderr.write(`floatip help: unknown command '${topic}'\n\n${usage()}`);
      return 2;
    }
    process.stdout.write(withNewline(module.usage ?? commands[topic]!.summary));
    return 0;
  }
  const module = await load(name);
  if (!module) {
    process.stderr.write(`floatip: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  // `--help` anywhere (`floatip ip move --help`) prints the command's usage and does nothing.
  if (module.usage !== undefined && args.some((a) => a === "--help" || a === "-h")) {
    process.stdout.write(withNewline(module.usage));
    return 0;
  }
  return module.run(args);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`floatip: ${message}\n`);
    process.exitCode = 1;
  },
);
