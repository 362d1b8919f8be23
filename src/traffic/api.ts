/**
 * HTTP route of the traffic capability, as a fastify plugin the agent's API registers:
 * `GET /v1/traffic/:node?from&to&step&iface`. Times are ms since the epoch or ISO 8601;
 * `step` is ms or a duration like `10s`, `1m`, `1h`. The answer always carries the node's
 * status (`Normal` / `Failed`) and which node answered. Errors are JSON with a `code`.
 */
import type { FastifyPluginAsync } from "fastify";
import { parseDuration } from "../config/duration.ts";
import type { TrafficQueryService } from "./traffic-node.ts";

export interface TrafficRoutesOptions {
  readonly traffic: TrafficQueryService;
  /** Wall clock for defaults (`to` = now, `from` = now - 1 h); injected for tests. */
  readonly nowMs?: () => number;
}

/** Parses `1500`, `10s`, `5m`… (a bare number is milliseconds); undefined when malformed. */
export function parseDurationMs(text: string): number | undefined {
  const ms = parseDuration(text, "ms");
  return ms === undefined ? undefined : Math.round(ms);
}

/** Parses ms since the epoch, ISO 8601, `now` or `now-1h`; undefined when malformed. */
export function parseTimeMs(text: string, nowMs: number): number | undefined {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  if (t === "now") return nowMs;
  const relative = /^now-(.+)$/.exec(t);
  if (relative) {
    const d = parseDurationMs(relative[1]!);
    return d === undefined ? undefined : nowMs - d;
  }
  const parsed = Date.parse(t);
  return Number.isNaN(parsed) ? undefined : parsed;
}

export const trafficRoutes: FastifyPluginAsync<TrafficRoutesOptions> = async (app, options) => {
  const now = options.nowMs ?? Date.now;
  app.get<{
    Params: { node: string };
    Querystring: { from?: string; to?: string; step?: string; iface?: string };
  }>("/v1/traffic/:node", async (request, reply) => {
    const q = request.query;
    const nowMs = now();
    const toMs = q.to === undefined ? nowMs : parseTimeMs(q.to, nowMs);
    const fromMs = q.from === undefined ? nowMs - 3_600_000 : parseTimeMs(q.from, nowMs);
    const stepMs = q.step === undefined ? 60_000 : parseDurationMs(q.step);
    const bad = (code: string, message: string) =>
      reply.code(400).send({ error: { code, message } });
    if (fromMs === undefined) return bad("BAD_FROM", "from: use ms, ISO 8601 or now-1h");
    if (toMs === undefined) return bad("BAD_TO", "to: use ms, ISO 8601 or now");
    if (stepMs === undefined || stepMs <= 0) return bad("BAD_STEP", "step: use e.g. 1000, 10s, 1m");
    if (toMs <= fromMs) return bad("BAD_RANGE", "to must be after from");
    try {
      return await options.traffic.query({
        node: request.params.node,
        fromMs,
        toMs,
        stepMs,
        iface: q.iface,
      });
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      const known = typeof code === "string" ? code : "INTERNAL";
      const status =
        known === "UNKNOWN_NODE"
          ? 404
          : known === "QUERY_TOO_LARGE"
            ? 400
            : known === "INTERNAL"
              ? 500
              : 503;
      return reply.code(status).send({
        error: { code: known, message: error instanceof Error ? error.message : String(error) },
      });
    }
  });
  app.get("/v1/traffic", async (_request, reply) => {
    const table = options.traffic.currentTable();
    if (!table)
      return reply
        .code(503)
        .send({ error: { code: "TABLE_UNKNOWN", message: "no index table yet" } });
    return table;
  });
};
