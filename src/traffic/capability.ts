/**
 * Traffic backup (S3) as a capability of `floatip agent`: the cluster YAML's top-level
 * `traffic:` section starts one `TrafficNode` inside every agent.
 *
 *   traffic:
 *     interval: 1s                          # collection period (100ms … 1h)
 *     channel_port: 7950                    # backup-channel TCP port, the same on every node
 *     retention: { raw: 2d, rollup: 30d }   # raw samples, then 1-minute rollups
 *     vip_counters: true                    # bytes and packets per held VIP (nftables)
 *
 * `traffic: {}` (or an empty `traffic:`) takes all defaults. The node list and addresses come
 * from the cluster config, the key from the cluster key, the data file is
 * `<state_dir>/<node>/traffic.db`. The agent's own ClusterView drives the component: its
 * coordinator keeps and pushes the index table (S3's master node), and a member the agent's
 * core declares `failed` is also marked Failed in the table (see `TrafficNode.onView`). The
 * backup channel listens on this node's cluster address only.
 *
 * API (on the agent's local API): `GET /v1/traffic` (the index table) and
 * `GET /v1/traffic/:node` (that node's samples with its status, from it or its backup target).
 */
import type { FastifyPluginAsync } from "fastify";
import {
  type Capability,
  CapabilityConfigError,
  type CapabilityContext,
  type CreateCapability,
} from "../agent/capability.ts";
import type { LogLevel } from "../agent/log.ts";
import { parseDuration } from "../config/duration.ts";
import { findRow } from "../core/traffic/index-table.ts";
import { isRecord } from "../core/validate.ts";
import { trafficRoutes } from "./api.ts";
import { TrafficNode } from "./traffic-node.ts";
import { VipCounters } from "./vip-counters.ts";

export interface TrafficSettings {
  readonly intervalMs: number;
  readonly channelPort: number;
  readonly rawRetentionMs: number;
  readonly rollupRetentionMs: number;
  readonly vipCounters: boolean;
}

export interface TrafficProblem {
  readonly path: string;
  readonly message: string;
  readonly fix: string;
}

export const trafficDefaults: TrafficSettings = {
  intervalMs: 1000,
  channelPort: 7950,
  rawRetentionMs: 2 * 86_400_000,
  rollupRetentionMs: 30 * 86_400_000,
  vipCounters: true,
};

/** "100ms", "1s", "2d" -> whole ms; undefined when malformed (bare numbers have no unit). */
export function parseTrafficDuration(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const ms = parseDuration(value);
  return ms !== undefined && Number.isInteger(ms) ? ms : undefined;
}

function describe(value: unknown): string {
  return typeof value === "string" ? `"${value}"` : (JSON.stringify(value) ?? String(value));
}

/**
 * Validates the `traffic:` section; every problem is reported (path `traffic.…`, with a fix),
 * never just the first. `apiPort` is the agent API's port (the channel must not take it).
 */
export function parseTrafficSection(
  section: unknown,
  apiPort?: number,
): { settings: TrafficSettings; problems: TrafficProblem[] } {
  const problems: TrafficProblem[] = [];
  const add = (path: string, message: string, fix: string) =>
    problems.push({ path: `traffic${path}`, message, fix });
  const s = { ...trafficDefaults };
  if (section === null) return { settings: s, problems };
  if (!isRecord(section)) {
    add("", `must be a mapping, got ${describe(section)}`, "write traffic: {} for the defaults");
    return { settings: s, problems };
  }
  const known = ["interval", "channel_port", "retention", "vip_counters"];
  for (const key of Object.keys(section)) {
    if (!known.includes(key))
      add(`.${key}`, "is not a known key", `remove it; known keys: ${known.join(", ")}`);
  }
  const duration = (
    path: string,
    value: unknown,
    minMs: number,
    maxMs: number,
    example: string,
  ): number | undefined => {
    if (value === undefined) return undefined;
    const ms = parseTrafficDuration(value);
    if (ms === undefined) {
      add(path, `is not a duration: ${describe(value)}`, `write e.g. ${example} (ms, s, m, h, d)`);
    } else if (ms < minMs || ms > maxMs) {
      add(
        path,
        `must be between ${minMs} ms and ${maxMs} ms, got ${ms} ms`,
        `write e.g. ${example}`,
      );
    } else return ms;
    return undefined;
  };
  s.intervalMs = duration(".interval", section.interval, 100, 3_600_000, "1s") ?? s.intervalMs;
  const port = section.channel_port;
  if (port !== undefined) {
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
      add(
        ".channel_port",
        `must be a TCP port 1-65535, got ${describe(port)}`,
        "write channel_port: 7950",
      );
    } else if (port === apiPort) {
      add(".channel_port", `is the agent API's port ${port}`, "choose another port, e.g. 7950");
    } else s.channelPort = port;
  }
  const retention = section.retention;
  if (retention !== undefined) {
    if (!isRecord(retention)) {
      add(
        ".retention",
        `must be a mapping, got ${describe(retention)}`,
        "write retention: { raw: 2d, rollup: 30d }",
      );
    } else {
      for (const key of Object.keys(retention)) {
        if (key !== "raw" && key !== "rollup")
          add(`.retention.${key}`, "is not a known key", "remove it; known keys: raw, rollup");
      }
      const year = 366 * 86_400_000;
      s.rawRetentionMs =
        duration(".retention.raw", retention.raw, 60_000, year, "2d") ?? s.rawRetentionMs;
      s.rollupRetentionMs =
        duration(".retention.rollup", retention.rollup, 60_000, 10 * year, "30d") ??
        s.rollupRetentionMs;
      if (s.rollupRetentionMs < s.rawRetentionMs) {
        add(
          ".retention.rollup",
          `(${s.rollupRetentionMs} ms) is shorter than retention.raw (${s.rawRetentionMs} ms): rollups would be deleted before the raw samples they summarise`,
          "make rollup at least as long as raw, e.g. raw: 2d, rollup: 30d",
        );
      }
    }
  }
  const vipCounters = section.vip_counters;
  if (vipCounters !== undefined) {
    if (typeof vipCounters !== "boolean") {
      add(
        ".vip_counters",
        `must be true or false, got ${describe(vipCounters)}`,
        "write vip_counters: true",
      );
    } else s.vipCounters = vipCounters;
  }
  return { settings: s, problems };
}

/** Agent log level of a component event: failures are warnings, the rest information. */
function levelOf(event: string): LogLevel {
  return /failed|unreachable|error|no-coordinator/.test(event) ? "warn" : "info";
}

export const createCapability: CreateCapability = (section, context) => {
  const { settings, problems } = parseTrafficSection(section, context.config.api.port);
  if (problems.length > 0) throw new CapabilityConfigError(context.config.file, problems);
  return new TrafficCapability(settings, context);
};

class TrafficCapability implements Capability {
  readonly name = "traffic";
  readonly apiPlugin: FastifyPluginAsync;
  readonly #settings: TrafficSettings;
  readonly #context: CapabilityContext;
  readonly #node: TrafficNode;
  readonly #vipCounters: VipCounters | undefined;
  #vipCounterError: string | undefined;

  constructor(settings: TrafficSettings, context: CapabilityContext) {
    this.#settings = settings;
    this.#context = context;
    const self = context.config.nodes.find((n) => n.id === context.nodeId);
    if (!self) throw new Error(`traffic: node ${context.nodeId} is not in the config`);
    this.#node = new TrafficNode({
      selfId: context.nodeId,
      nodes: context.config.nodes.map((n) => ({ id: n.id, ips: [n.address] })),
      clusterKey: context.key,
      dbPath: `${context.stateDir}/traffic.db`,
      channelPort: settings.channelPort,
      listenHost: self.address,
      clusterView: context.view,
      collectIntervalMs: settings.intervalMs,
      rawRetentionMs: settings.rawRetentionMs,
      rollupRetentionMs: settings.rollupRetentionMs,
      markFailedFromView: true,
      log: (event, fields) => context.log.log(levelOf(event), `traffic ${event}`, fields),
    });
    if (settings.vipCounters) {
      this.#vipCounters = new VipCounters({
        view: context.view,
        intervalMs: settings.intervalMs,
        onSamples: (samples) => {
          this.#vipCounterError = undefined;
          this.#node.addSamples(samples);
        },
        onError: (what, error) => {
          const text = error instanceof Error ? error.message : String(error);
          // Logged once per distinct failure, not every round.
          if (text !== this.#vipCounterError)
            context.log.log("warn", `traffic ${what}`, { error: text });
          this.#vipCounterError = text;
        },
      });
    }
    const node = this.#node;
    this.apiPlugin = async (app) => {
      await app.register(trafficRoutes, { traffic: node });
    };
  }

  async start(): Promise<void> {
    await this.#node.start();
    this.#vipCounters?.start();
  }

  async stop(): Promise<void> {
    await this.#vipCounters?.stop();
    await this.#node.stop();
  }

  status(): unknown {
    const table = this.#node.currentTable();
    const row = table && findRow(table, this.#context.nodeId);
    const store = this.#node.store;
    return {
      running: true,
      tableVersion: table?.version ?? null,
      status: row?.status ?? null,
      backupTarget: row?.backupTargetId ?? null,
      channelPort: this.#settings.channelPort,
      intervalMs: this.#settings.intervalMs,
      samplesStored: {
        own: store.highestSeq(this.#context.nodeId),
        backup: Object.fromEntries(store.replicatedOrigins().map((o) => [o, store.highestSeq(o)])),
      },
      vipCounters: this.#vipCounters
        ? {
            vips: this.#vipCounters.vips,
            rounds: this.#vipCounters.rounds,
            error: this.#vipCounterError ?? null,
          }
        : null,
    };
  }
}
