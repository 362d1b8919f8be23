/**
 * Validates the capability sections of a cluster config (relays, storage, traffic) without
 * starting anything, for `floatip config check`: each capability's own parser reports its
 * problems with a key path and a fix, exactly as the agent would at start.
 */
import type { ClusterConfig } from "../config/types.ts";
import { parseRelays } from "../relay/config.ts";
import { parseStorageSection } from "../storage/capability.ts";
import { parseTrafficSection } from "../traffic/capability.ts";
import { CapabilityConfigError, type CapabilityContext } from "./capability.ts";

export interface CapabilityProblem {
  readonly path: string;
  readonly message: string;
  readonly fix: string;
}

export function checkCapabilitySections(
  config: ClusterConfig,
  nodeId?: string,
): CapabilityProblem[] {
  const problems: CapabilityProblem[] = [];
  if (config.relays !== undefined) problems.push(...parseRelays(config.relays).problems);
  if (config.storage !== undefined) {
    // The parser reads only the config, the node id and the state directory.
    const context = {
      config,
      nodeId: nodeId ?? config.nodes[0]?.id ?? "",
      stateDir: config.stateDir,
    } as unknown as CapabilityContext;
    try {
      parseStorageSection(config.storage, context);
    } catch (error) {
      if (!(error instanceof CapabilityConfigError)) throw error;
      problems.push(...error.problems);
    }
  }
  if (config.traffic !== undefined) {
    problems.push(...parseTrafficSection(config.traffic, config.api.port).problems);
  }
  return problems;
}
