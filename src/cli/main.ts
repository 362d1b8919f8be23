/**
 * The `floatip` executable: one subcommand per file under `src/cli/commands/`, each exporting
 * `run(args): Promise<number>` (the exit code). Subcommands load lazily so that `floatip
 * status` does not pay for the simulator or the storage gateway.
 */

const commands: Record<string, { file: string; summary: string }> = {
  agent: {
    file: "agent.ts",
    summary: "run the agent of one node: floatip agent --config FILE --node ID",
  },
  status: { file: "status.ts", summary: "cluster, term, coordinator, members and VIPs [--json]" },
  ip: { file: "ip.ts", summary: "ip list [--explain] | ip move VIP NODE [--clear]" },
  node: { file: "node.ts", summary: "node disable|enable NODE (drain a node or take it back)" },
  config: { file: "config.ts", summary: "config check FILE (validate without starting)" },
  sim: {
    file: "sim.ts",
    summary: "deterministic fault-injecting simulation: sim --seeds N [--nodes K]",
  },
  demo: { file: "demo.ts", summary: "a live three-node cluster in network namespaces (root)" },
  relay: { file: "relay.ts", summary: "relay list | relay show NAME [--json]" },
  volume: {
    file: "volume.ts",
    summary: "volume create|rm|ls|info|resize|cp|snap … (storage gateway)",
  },
  request: { file: "request.ts", summary: "request show ID (storage request record)" },
  traffic: { file: "traffic.ts", summary: "traffic NODE [--from --to --step --iface] [--json]" },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  return `usage: floatip <command> [options]\n\ncommands:\n${lines.join("\n")}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version") {
    process.stdout.write("floatip 0.1.0\n");
    return 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`floatip: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  const module = (await import(`./commands/${command.file}`)) as {
    run(args: string[]): Promise<number>;
  };
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
