/**
 * How the capabilities on top of VIPs (relay S4, storage gateway S1, traffic backup S3) plug
 * into the agent. Each lives in its own folder and exports, from `<folder>/capability.ts`,
 * `createCapability(section, context)`: it validates its own config section (reporting
 * every problem with key path and fix, like the cluster config) and returns a `Capability`
 * the agent starts after its core runs and stops before it hands its VIPs over.
 *
 * The agent calls, in order: `createCapability` once at start (an error stops the agent
 * with the message), `start()`, then `stop()` on shutdown. `apiPlugin` is registered on the
 * agent's local API (mutating routes of a plugin do their own auth), `status()` is included
 * in `GET /v1/status` under `capabilities.<name>`.
 */
import type { FastifyPluginAsync } from "fastify";
import type { ClusterConfig } from "../config/types.ts";
import type { ClusterView } from "../ports/cluster-view.ts";
import type { Logger } from "./log.ts";

export interface CapabilityContext {
  readonly config: ClusterConfig;
  readonly nodeId: string;
  /** Membership, coordinator and VIP ownership as this node's core sees them. */
  readonly view: ClusterView;
  /** The cluster key (authenticates the capability's own peer traffic). */
  readonly key: Buffer;
  /** This node's state directory (exists; the capability may create files and folders in it). */
  readonly stateDir: string;
  readonly log: Logger;
  /**
   * Runs the cluster's notify hook (if configured) as `COMMAND EVENT ARGUMENT` with the
   * FLOATIP_EVENT/NODE/CLUSTER environment plus `env`; queued, never throws.
   */
  readonly notify?: (eventType: string, argument: string, env?: Record<string, string>) => void;
}

export interface Capability {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly apiPlugin?: FastifyPluginAsync;
  status?(): unknown;
}

/** Thrown by `createCapability` for an invalid section; `problems` are shown one per line. */
export class CapabilityConfigError extends Error {
  readonly code = "CAPABILITY_CONFIG_INVALID";
  readonly problems: readonly { path: string; message: string; fix: string }[];
  constructor(file: string, problems: readonly { path: string; message: string; fix: string }[]) {
    super(problems.map((p) => `${file}: ${p.path}: ${p.message} — fix: ${p.fix}`).join("\n"));
    this.problems = problems;
  }
}

export type CreateCapability = (
  section: unknown,
  context: CapabilityContext,
) => Promise<Capability> | Capability;

/** Config sections and the module that serves each. */
export const capabilityModules = {
  relays: "../relay/capability.ts",
  storage: "../storage/capability.ts",
  traffic: "../traffic/capability.ts",
} as const;
