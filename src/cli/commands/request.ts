/**
 * `floatip request show ID [--wait] [--json] [--url http://VIP:PORT]`: the record of one storage
 * request, from whichever gateway answers on the storage VIP (after a failover, the new one).
 */
import { callApi, follow, parseCommon, report, UsageError } from "./volume.ts";

export const usage = "usage: floatip request show ID [--wait] [--json] [--url URL]\n";

export async function run(args: string[]): Promise<number> {
  try {
    const options = parseCommon(args);
    const [sub, id, ...extra] = options.rest;
    if (sub !== "show" || id === undefined || extra.length > 0) {
      throw new UsageError(usage.trimEnd());
    }
    const answer = await callApi(options.url, "GET", `/v1/requests/${encodeURIComponent(id)}`);
    const final =
      options.wait && answer.status === 200 ? await follow(options.url, answer.body) : answer.body;
    if (!options.json && final.request) {
      process.stdout.write(`${final.request.id}: ${final.request.state.state}\n`);
    }
    return report(final, options.json);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
}
