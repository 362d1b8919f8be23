/**
 * `floatip node disable NODE` drains a node: the coordinator moves its VIPs away and gives it
 * none until `floatip node enable NODE`. Both go through any agent's API (a follower forwards
 * to the coordinator) and need the API token (`--token-file`, FLOATIP_TOKEN_FILE or the
 * config's api.token_file).
 */
import { ApiClient, CliError, parseCommonFlags, resolveTarget, runCli } from "../client.ts";
import { acceptedText } from "./ip.ts";

const usage = `usage:
  floatip node disable NODE [--json]   drain NODE: its VIPs move away
  floatip node enable NODE [--json]    take NODE back
options: --api HOST:PORT | --config FILE, --token-file FILE
`;

export async function run(args: string[]): Promise<number> {
  return runCli("node", usage, async () => {
    const flags = parseCommonFlags(args);
    const [sub, node, ...extra] = flags.positional;
    if (sub !== "disable" && sub !== "enable") {
      throw new CliError(
        "USAGE",
        sub === undefined ? "missing subcommand" : `unknown subcommand '${sub}'`,
      );
    }
    if (node === undefined || extra.length > 0)
      throw new CliError("USAGE", `node ${sub} takes exactly one NODE`);
    const client = new ApiClient(resolveTarget(flags));
    const answer = await client.change<{ accepted: boolean; forwardedTo: string | null }>(
      "POST",
      `/v1/nodes/${encodeURIComponent(node)}/${sub}`,
    );
    process.stdout.write(
      flags.json ? `${JSON.stringify(answer)}\n` : acceptedText(`${sub} ${node}`, answer),
    );
    return 0;
  });
}
