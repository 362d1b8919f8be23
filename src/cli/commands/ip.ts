/**
 * `floatip ip …`: where the VIPs are, and moving them by hand.
 *   ip list [--explain] [--json]   owner, local state, since, conflict (and why, with --explain)
 *   ip move VIP NODE               pin VIP to NODE (it stays there while NODE is eligible)
 *   ip move VIP --clear | ip unpin VIP   remove the pin; the placement policy decides again
 * Address options as for `floatip status`; changes need the API token (`--token-file`).
 */
import { canonicalIp } from "../../config/ipv6.ts";
import {
  ApiClient,
  CliError,
  parseCommonFlags,
  resolveTarget,
  runCli,
  table,
  waitInEffect,
} from "../client.ts";
import { conflictText, type StatusView, shortTime, type VipView } from "./status.ts";

export const usage = `usage:
  floatip ip list [--explain] [--json]
  floatip ip move VIP NODE [--wait] [--json]
                                       --wait: until NODE owns it and reports holding it
                                       (at most 15 s; exit 4 with the reason otherwise)
  floatip ip unpin VIP [--json]        (also: floatip ip move VIP --clear)
options: --api HOST:PORT | --config FILE, --token-file FILE
`;

interface Accepted {
  accepted: boolean;
  forwardedTo: string | null;
}

export function acceptedText(what: string, answer: Accepted): string {
  return answer.forwardedTo
    ? `${what}: accepted, forwarded to coordinator ${answer.forwardedTo}\n`
    : `${what}: accepted by the coordinator (this node)\n`;
}

export function renderVips(vips: readonly VipView[], explain: boolean): string {
  const header = ["ADDRESS", "OWNER", "LOCAL", "SINCE", "CONFLICT"];
  const rows = vips.map((v) => {
    const row = [v.address, v.owner ?? "-", v.local, shortTime(v.since), conflictText(v) || "-"];
    return explain ? [...row, v.explain] : row;
  });
  return `${table([explain ? [...header, "EXPLAIN"] : header, ...rows])}\n`;
}

const vipPath = (vip: string) => `/v1/vips/${encodeURIComponent(vip)}`;

export async function run(args: string[]): Promise<number> {
  return runCli("ip", usage, async () => {
    const flags = parseCommonFlags(args, ["--explain", "--clear", "--wait"]);
    const [sub, ...rest] = flags.positional;
    const expect = (count: number, shape: string) => {
      if (rest.length !== count) throw new CliError("USAGE", `ip ${sub} takes ${shape}`);
    };
    const print = (answer: Accepted, what: string) =>
      process.stdout.write(flags.json ? `${JSON.stringify(answer)}\n` : acceptedText(what, answer));
    switch (sub) {
      case "list": {
        expect(0, "no arguments");
        const client = new ApiClient(resolveTarget(flags));
        const { vips } = await client.get<{ vips: VipView[] }>("/v1/vips");
        process.stdout.write(
          flags.json
            ? `${JSON.stringify(vips, null, 2)}\n`
            : renderVips(vips, flags.switches.has("--explain")),
        );
        return 0;
      }
      case "move": {
        if (flags.switches.has("--clear")) {
          expect(1, "VIP --clear");
          const client = new ApiClient(resolveTarget(flags));
          print(
            await client.change<Accepted>("DELETE", `${vipPath(rest[0]!)}/pin`),
            `unpin ${rest[0]}`,
          );
          return 0;
        }
        expect(2, "VIP NODE");
        const [vip, node] = rest as [string, string];
        const client = new ApiClient(resolveTarget(flags));
        print(
          await client.change<Accepted>("POST", `${vipPath(vip)}/move`, { node }),
          `move ${vip} to ${node}`,
        );
        if (flags.switches.has("--wait")) {
          // The status lists each VIP in canonical form (an IPv6 address has many spellings).
          const address = canonicalIp(vip.split("/")[0]!);
          await waitInEffect<StatusView>(client, `move ${vip} to ${node}`, (status) =>
            pendingHold(status, address, node),
          );
          if (!flags.json) process.stdout.write(`move ${vip} to ${node}: in effect\n`);
        }
        return 0;
      }
      case "unpin": {
        expect(1, "VIP");
        const client = new ApiClient(resolveTarget(flags));
        print(
          await client.change<Accepted>("DELETE", `${vipPath(rest[0]!)}/pin`),
          `unpin ${rest[0]}`,
        );
        return 0;
      }
      case undefined:
        throw new CliError("USAGE", "missing subcommand");
      default:
        throw new CliError("USAGE", `unknown subcommand '${sub}'`);
    }
  });
}

/**
 * Why `address` is not yet in effect on `node` (undefined once it is): the table names `node`
 * its owner and `node` reports holding it, so the address is on its interface. With `arbiter:
 * etcd` a node reports only what it holds itself: there, holding the VIP's owner key counts.
 */
export function pendingHold(
  status: StatusView,
  address: string,
  node: string | undefined,
): string | undefined {
  const entry = status.vips.find((v) => v.address === address);
  if (!entry) return `${address} is not in the status`;
  if (node !== undefined && entry.owner !== node) {
    return entry.explain || `owner is ${entry.owner ?? "nobody"}`;
  }
  if (entry.owner === null || entry.owner === undefined) return undefined; // nobody to wait for
  if (entry.conflict) return `${address} is occupied by another host`;
  if (entry.heldForMs !== undefined && entry.heldForMs !== null) return undefined;
  if (status.arbiter && entry.owner !== status.node) return undefined;
  return `${entry.owner} owns ${address} but does not hold it yet (${entry.local === "absent" ? "" : `here: ${entry.local}; `}waiting for its report)`;
}
