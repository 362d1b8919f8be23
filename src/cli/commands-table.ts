/**
 * The `floatip` subcommands: file under src/cli/commands/ and one-line summary. The one
 * source for the dispatcher (main.ts), the help text, the manual page and shell completion.
 */
export const commands: Record<string, { file: string; summary: string }> = {
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
  completion: { file: "completion.ts", summary: "completion bash|zsh (shell completion script)" },
};
