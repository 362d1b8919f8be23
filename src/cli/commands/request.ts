/**
 * `floatip request show ID [--wait] [--json] [--url http://VIP:PORT]`: the record of one storage
 * request, from whichever gateway answers on the storage VIP (after a failover, the new one).
 */
import { callApi, follow, parseWithToken, report, UsageError } from "./volume.ts";

export const usage =
  "usage: floatip request show ID [--wait] [--json] [--url URL] [--token-file FILE]\n";

export async function run(args: string[]): Promise<number> {
  try {
    const options = parseWithToken(args);
    const token = options.token;
    if (token === undefined) {
      throw new UsageError(
        "the storage API needs a client token: --token-file FILE, FLOATIP_STORAGE_TOKEN or FLOATIP_STORAGE_TOKEN_FILE",
      );
    }
    const [sub, id, ...extra] = options.rest;
    if (sub !== "show" || id === undefined || extra.length > 0) {
      throw new UsageError(usage.trimEnd());
    }
    const answer = await callApi(
      options.url,
      token,
      "GET",
      `/v1/requests/${encodeURIComponent(id)}`,
    );
    const final =
      options.wait && answer.status === 200
        ? await follow(options.url, token, answer.body)
        : answer.body;
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
