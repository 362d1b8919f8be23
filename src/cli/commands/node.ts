/**
 * `floatip node disable NODE` drains a node: the coordinator moves its VIPs away and gives it
 * none until `floatip node enable NODE`. Both go through any agent's API (a follower forwards
 * to the coordinator) and need the API token (`--token-file`, FLOATIP_TOKEN_FILE or the
 * config's api.token_file).
 */
import {
  ApiClient,
  CliError,
  parseCommonFlags,
  resolveTarget,
  runCli,
  waitInEffect,
} from "../client.ts";
import { acceptedText, pendingHold } from "./ip.ts";
import type { StatusView } from "./status.ts";

export const usage = `usage:
  floatip node disable NODE [--force] [--wait] [--json]   drain NODE: its VIPs move away
  floatip node enable NODE [--wait] [--json]              take NODE back
  --force  drain even the last node that may hold VIPs (leaves every VIP without a holder)
  --wait   return once the change is in effect: NODE drained and its VIPs held by their new
           owners, or NODE healthy again (at most 15 s; exit 4 and the reason otherwise)
options: --api HOST:PORT | --config FILE, --token-file FILE
`;

export async function run(args: string[]): Promise<number> {
  return runCli("node", usage, async () => {
    const flags = parseCommonFlags(args, ["--force", "--wait"]);
    const [sub, node, ...extra] = flags.positional;
    if (sub !== "disable" && sub !== "enable") {
      throw new CliError(
        "USAGE",
        sub === undefined ? "missing subcommand" : `unknown subcommand '${sub}'`,
      );
    }
    if (node === undefined || extra.length > 0)
      throw new CliError("USAGE", `node ${sub} takes exactly one NODE`);
    if (flags.switches.has("--force") && sub !== "disable")
      throw new CliError("USAGE", "--force is for node disable only");
    const client = new ApiClient(resolveTarget(flags));
    // What NODE owns before a drain: `--wait` waits for those VIPs to be held elsewhere.
    const owned =
      flags.switches.has("--wait") && sub === "disable"
        ? await client
            .get<StatusView>("/v1/status")
            .then((s) => s.vips.filter((v) => v.owner === node).map((v) => v.address))
            .catch(() => [] as string[])
        : [];
    const force = flags.switches.has("--force") ? "?force=true" : "";
    const answer = await client.change<{ accepted: boolean; forwardedTo: string | null }>(
      "POST",
      `/v1/nodes/${encodeURIComponent(node)}/${sub}${force}`,
    );
    process.stdout.write(
      flags.json ? `${JSON.stringify(answer)}\n` : acceptedText(`${sub} ${node}`, answer),
    );
    if (flags.switches.has("--wait")) {
      await waitInEffect<StatusView>(client, `${sub} ${node}`, (status) => {
        const state = status.members.find((m) => m.id === node)?.state;
        if (sub === "enable") return state === "healthy" ? undefined : `${node} is ${state}`;
        if (state !== "drained") return `${node} is ${state}`;
        const kept = status.vips.filter((v) => v.owner === node).map((v) => v.address);
        if (kept.length > 0) return `${node} still owns ${kept.join(", ")}`;
        // The VIPs it had are in effect where they went (or have no owner, with --force).
        for (const address of owned) {
          const pending = pendingHold(status, address, undefined);
          if (pending !== undefined) return pending;
        }
        return undefined;
      });
      if (!flags.json) process.stdout.write(`${sub} ${node}: in effect\n`);
    }
    return 0;
  });
}
