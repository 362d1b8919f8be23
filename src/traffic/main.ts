/**
 * Runs the traffic component on its own, without the agent: one process per node, a static
 * membership view (fixed coordinator) and optionally the HTTP route. Used by the netns test
 * and for trying S3 out by hand:
 *
 *   node src/traffic/main.ts --config traffic.json --node n1
 *
 * traffic.json: { "nodes": [{ "id": "n1", "ips": ["198.18.0.1"] }, …], "coordinator": "n1",
 *   "channelPort": 7960, "keyFile": "/path/key", "dataDir": "/var/lib/floatip",
 *   "collectIntervalMs": 1000, "httpPort": 7961 }
 * Logs are JSON lines on stdout. SIGTERM/SIGINT stop it cleanly.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Fastify from "fastify";
import { trafficRoutes } from "./api.ts";
import { StaticClusterView } from "./static-cluster-view.ts";
import { TrafficNode } from "./traffic-node.ts";

interface StandaloneConfig {
  nodes: { id: string; ips: string[] }[];
  coordinator: string;
  channelPort: number;
  keyFile: string;
  dataDir: string;
  collectIntervalMs?: number;
  httpPort?: number;
}

function fail(message: string): never {
  process.stderr.write(`floatip traffic: ${message}\n`);
  process.exit(2);
}

function loadConfig(file: string): StandaloneConfig {
  let c: StandaloneConfig;
  try {
    c = JSON.parse(readFileSync(file, "utf8")) as StandaloneConfig;
  } catch (error) {
    fail(`${file}: cannot read JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(c.nodes) || c.nodes.length < 2) fail(`${file}: nodes: list at least 2 nodes`);
  if (typeof c.coordinator !== "string") fail(`${file}: coordinator: name a node id`);
  if (!Number.isInteger(c.channelPort)) fail(`${file}: channelPort: give a TCP port`);
  if (typeof c.keyFile !== "string") fail(`${file}: keyFile: give the cluster key file`);
  if (typeof c.dataDir !== "string") fail(`${file}: dataDir: give a directory`);
  return c;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { config: { type: "string" }, node: { type: "string" } },
  });
  if (!values.config || !values.node) fail("usage: main.ts --config FILE --node ID");
  const config = loadConfig(values.config);
  const selfId = values.node;
  if (!config.nodes.some((n) => n.id === selfId)) fail(`${values.config}: no node ${selfId}`);
  const view = new StaticClusterView(
    selfId,
    config.nodes.map((n) => ({ id: n.id, address: n.ips[0]!, state: "healthy" as const })),
    config.coordinator,
  );
  const log = (event: string, fields: Record<string, unknown>) =>
    process.stdout.write(`${JSON.stringify({ ts: new Date().toISOString(), event, ...fields })}\n`);
  const node = new TrafficNode({
    selfId,
    nodes: config.nodes,
    clusterKey: readFileSync(config.keyFile),
    dbPath: join(config.dataDir, `traffic-${selfId}.db`),
    channelPort: config.channelPort,
    clusterView: view,
    collectIntervalMs: config.collectIntervalMs ?? 1000,
    log,
  });
  await node.start();
  const http = Fastify();
  if (config.httpPort !== undefined) {
    await http.register(trafficRoutes, { traffic: node });
    await http.listen({ port: config.httpPort, host: "0.0.0.0" });
  }
  log("started", { node: selfId });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await http.close();
    await node.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
}

void main();
