/**
 * The manual pages and shell completion, generated from what the program itself uses: the
 * command table and each command's `usage` (floatip(8), completion) and the config loader's
 * key lists with their descriptions (floatip.yaml(5)). `scripts/man.ts` writes the pages
 * (npm's `prepack` runs it; package.json's `man` installs them); `floatip completion` prints
 * the completion scripts.
 */
import { configSchema } from "../config/load.ts";
import { keyReference, sectionIntro } from "../config/reference.ts";
import { floatipVersion } from "../version.ts";
import { commands } from "./commands-table.ts";

/**
 * Escapes text for roff: backslashes, characters beyond ASCII (as \[uXXXX]), and a leading
 * dot or quote that would be a request.
 */
function esc(text: string): string {
  return text
    .replaceAll("\\", "\\e")
    .replace(
      /[^\x00-\x7f]/gu,
      (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}]`,
    )
    .split("\n")
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join("\n");
}

const environment: readonly [string, string][] = [
  ["FLOATIP_API", "Address of the agent's local API for the CLI (default 127.0.0.1:7480)."],
  ["FLOATIP_TOKEN_FILE", "File with the local API's bearer token, for mutating commands."],
  ["FLOATIP_STORAGE_URL", "URL of the storage gateway (http://VIP:PORT or https://…)."],
  ["FLOATIP_STORAGE_TOKEN", "A storage client token itself (volume and request commands)."],
  ["FLOATIP_STORAGE_TOKEN_FILE", "A file with a storage client token."],
  [
    "FLOATIP_NODEJS",
    "The Node.js binary to run floatip with (default: the newest found, 22 or later).",
  ],
  [
    "FLOATIP_EVENT, FLOATIP_NODE, FLOATIP_VIP, FLOATIP_ROLE, FLOATIP_TERM, FLOATIP_PEER",
    "What the notify command receives: the event, this node's id, and the VIP, role, term or peer it concerns.",
  ],
  ["FLOATIP_LOG_FORMAT", "json (default) or human: the agent's log lines."],
  [
    "NOTIFY_SOCKET, WATCHDOG_USEC",
    "Set by systemd for Type=notify units: readiness, status, watchdog.",
  ],
];

async function usageOf(file: string): Promise<string | undefined> {
  const module = (await import(`./commands/${file}`)) as { usage?: string };
  return module.usage?.trim();
}

/** floatip(8): every command with its summary and its own usage text. */
export async function commandManPage(): Promise<string> {
  const lines = [
    `.TH FLOATIP 8 "" "floatip ${floatipVersion}" "System Administration"`,
    ".SH NAME",
    "floatip \\- virtual IPs, relays, a storage gateway and traffic backup for Linux clusters",
    ".SH SYNOPSIS",
    ".B floatip",
    ".I command",
    "[options]",
    ".SH DESCRIPTION",
    esc(
      "floatip runs one agent per node (floatip agent). The agents elect a coordinator, place the cluster's virtual IPs on healthy nodes under leases (no two holders, even during partitions and process pauses), announce them with gratuitous ARP, and run the capabilities configured in the cluster file: relays, a storage gateway and traffic backup. The other commands talk to the local agent's API, check a config, or run the simulator and the namespace demo.",
    ),
    ".SH COMMANDS",
  ];
  for (const [name, command] of Object.entries(commands)) {
    lines.push(".TP", `.B ${name}`, esc(command.summary));
    const usage = await usageOf(command.file);
    if (usage) lines.push(".RS", ".nf", esc(usage), ".fi", ".RE");
  }
  lines.push(".TP", ".B version", "floatip, Node.js and wire-format versions.");
  lines.push(".SH ENVIRONMENT");
  for (const [name, text] of environment) lines.push(".TP", `.B ${esc(name)}`, esc(text));
  lines.push(
    ".SH FILES",
    ".TP",
    ".I /etc/floatip/cluster.yaml",
    "The cluster config, the same on every node (see floatip.yaml(5)).",
    ".TP",
    ".I /var/lib/floatip",
    "The node's state: votes, incarnation, journals.",
    ".SH EXIT STATUS",
    "0 on success, 1 on failure, 2 on a usage error; floatip config check exits 1 when the file has problems.",
    ".SH SEE ALSO",
    ".BR floatip.yaml (5),",
    ".BR systemctl (1)",
    "",
  );
  return lines.join("\n");
}

const sectionTitles: Readonly<Record<string, string>> = {
  "": "TOP-LEVEL KEYS",
  timers: "TIMERS",
  "nodes[]": "NODES",
  "vips[]": "VIPS",
  "checks[]": "CHECKS",
  api: "API",
  notify: "NOTIFY",
  realtime: "REALTIME",
  tickle: "TICKLE",
  arbiter: "ARBITER",
  "arbiter.tls": "ARBITER TLS",
  "arbiter.auth": "ARBITER AUTHENTICATION",
};

/** Every documented key path, as the manual and its test see them. */
export function documentedPaths(): string[] {
  return Object.entries(configSchema).flatMap(([section, keys]) =>
    keys.map((key) => (section === "" ? key : `${section}.${key}`)),
  );
}

/** floatip.yaml(5): every key the loader accepts, section by section. */
export function configManPage(): string {
  const lines = [
    `.TH FLOATIP.YAML 5 "" "floatip ${floatipVersion}" "File Formats"`,
    ".SH NAME",
    "floatip.yaml \\- the floatip cluster configuration",
    ".SH DESCRIPTION",
    esc(
      "One YAML file, the same on every node, read once at start and on SIGHUP. Every problem is reported at once with the file, the key path and a fix; unknown keys are errors; durations are written with a unit (500ms, 1.5s, 2m, 1h, 1d) except under keys ending in _ms, where a bare number is milliseconds. Relative paths are taken from the file's directory. floatip config check FILE checks a file without starting anything.",
    ),
  ];
  for (const [section, keys] of Object.entries(configSchema)) {
    lines.push(`.SH ${sectionTitles[section] ?? section.toUpperCase()}`);
    const intro = sectionIntro[section];
    if (intro) lines.push(esc(intro));
    for (const key of keys) {
      const path = section === "" ? key : `${section}.${key}`;
      lines.push(".TP", `.B ${esc(key)}`, esc(keyReference[path] ?? "(undocumented)"));
    }
  }
  lines.push(
    ".SH EXAMPLE",
    ".nf",
    esc(
      [
        "cluster: prod",
        "key_file: /etc/floatip/cluster.key",
        "nodes:",
        "  - { id: n1, address: 198.18.0.11, interface: eth0 }",
        "  - { id: n2, address: 198.18.0.12, interface: eth0 }",
        "  - { id: n3, address: 198.18.0.13, interface: eth0 }",
        "vips:",
        "  - { address: 198.18.0.100/24 }",
      ].join("\n"),
    ),
    ".fi",
    ".SH SEE ALSO",
    ".BR floatip (8)",
    "",
  );
  return lines.join("\n");
}

/** Words after `floatip`: the commands, and the first word each command's usage expects. */
async function completionWords(): Promise<{ commands: string[]; sub: Record<string, string[]> }> {
  const names = [...Object.keys(commands), "version", "help"];
  const sub: Record<string, string[]> = {};
  for (const [name, command] of Object.entries(commands)) {
    const usage = (await usageOf(command.file)) ?? "";
    const words = new Set<string>();
    for (const match of usage.matchAll(new RegExp(`floatip ${name} ([a-z][a-z-]*)`, "g"))) {
      words.add(match[1]!);
    }
    for (const match of usage.matchAll(/--[a-z][a-z-]*/g)) words.add(match[0]);
    sub[name] = [...words].sort();
  }
  return { commands: names, sub };
}

export async function bashCompletion(): Promise<string> {
  const { commands: names, sub } = await completionWords();
  const cases = Object.entries(sub)
    .map(([name, words]) => `    ${name}) words="${words.join(" ")}" ;;`)
    .join("\n");
  return `# bash completion for floatip (generated by floatip completion bash)
_floatip() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" words=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    words="${names.join(" ")}"
  else
    case "\${COMP_WORDS[1]}" in
${cases}
    esac
  fi
  case "$cur" in
    -*|"") ;;
    *) ;;
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
  [ \${#COMPREPLY[@]} -eq 0 ] && COMPREPLY=( $(compgen -f -- "$cur") )
  return 0
}
complete -F _floatip floatip
`;
}

export async function zshCompletion(): Promise<string> {
  const { commands: names, sub } = await completionWords();
  const cases = Object.entries(sub)
    .map(([name, words]) => `    ${name}) compadd -- ${words.join(" ")} ;;`)
    .join("\n");
  return `#compdef floatip
# zsh completion for floatip (generated by floatip completion zsh)
_floatip() {
  if (( CURRENT == 2 )); then
    compadd -- ${names.join(" ")}
    return
  fi
  case "$words[2]" in
${cases}
  esac
  _files
}
_floatip "$@"
`;
}
