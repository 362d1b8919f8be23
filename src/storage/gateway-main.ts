/**
 * Runs one storage gateway without the agent: `node src/storage/gateway-main.ts --config FILE`
 * (also `floatip volume serve --config FILE`). Membership comes from the static view file named
 * in the config (SIGHUP re-reads it); SIGTERM/SIGINT close the gateway cleanly. Logs are JSON
 * lines on stdout; the first is `{"event":"listening","api":…,"peer":…}`.
 */
import { loadGatewayConfig, startGateway } from "./gateway.ts";
import { StaticClusterView } from "./static-cluster-view.ts";

export async function serve(args: readonly string[]): Promise<number> {
  const index = args.indexOf("--config");
  const file = index >= 0 ? args[index + 1] : undefined;
  if (!file) {
    process.stderr.write("usage: floatip volume serve --config FILE\n");
    return 2;
  }
  const config = loadGatewayConfig(file);
  const view = new StaticClusterView(config.node, config.view);
  const log = (event: string, fields: Record<string, unknown>) =>
    process.stdout.write(`${JSON.stringify({ event, node: config.node, ...fields })}\n`);
  const gateway = await startGateway(config, view, log);
  log("listening", { api: gateway.apiUrl, peer: gateway.peerUrl });
  process.on("SIGHUP", () => {
    try {
      view.reload();
      log("view_reloaded", { held: [...view.current().held] });
    } catch (error) {
      log("view_invalid", { error: (error as Error).message });
    }
  });
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  await gateway.close();
  return 0;
}

if (import.meta.main) {
  serve(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`floatip storage gateway: ${(error as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
