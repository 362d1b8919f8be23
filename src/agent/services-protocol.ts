/**
 * The channel between the control plane (the agent's process: core, transport, address and
 * ARP adapters, vote file, self-checks) and the services process (the local API and the
 * capabilities: relay, storage gateway, traffic backup). Plain data over an IPC channel
 * (structured clone: maps and sets survive); every call of the services process into the
 * control plane is a request with an id and one reply, so a slow or crashed services process
 * never holds the control plane.
 */
import type { AdminCommand } from "../core/types.ts";
import type { ClusterViewSnapshot } from "../ports/cluster-view.ts";

/** What the services process is started with (its first message). */
export interface ServicesWorkerData {
  readonly configPath: string;
  readonly nodeId: string;
  /** The control plane's incarnation: a new one means the control plane restarted. */
  readonly incarnation: number;
  readonly key: Uint8Array;
  readonly stateDir: string;
  readonly view: ClusterViewSnapshot;
}

export type ControlRequest =
  | { readonly method: "status" }
  | { readonly method: "admin"; readonly command: AdminCommand }
  | { readonly method: "events"; readonly since: number }
  | { readonly method: "reload" };

/** Control plane -> services process. */
export type ToServices =
  | { readonly type: "start"; readonly data: ServicesWorkerData }
  | { readonly type: "view"; readonly view: ClusterViewSnapshot }
  | { readonly type: "reply"; readonly id: number; readonly ok: boolean; readonly value: unknown }
  | { readonly type: "reload-token" }
  /** A services datagram from a peer (`connections`: tickle.ts), authenticated. */
  | { readonly type: "peer-message"; readonly from: string; readonly payload: unknown }
  | { readonly type: "stop" };

/** Services process -> control plane. */
export type FromServices =
  | { readonly type: "request"; readonly id: number; readonly request: ControlRequest }
  | {
      readonly type: "notify";
      readonly eventType: string;
      readonly argument: string;
      readonly env: Readonly<Record<string, string>>;
    }
  | { readonly type: "ready"; readonly capabilities: readonly string[] }
  /** Send to every peer over the cluster transport (only the services datagram types). */
  | { readonly type: "peer-broadcast"; readonly payload: unknown }
  /** Start-up failed for a reason a restart cannot fix (an invalid capability section). */
  | { readonly type: "fatal"; readonly message: string }
  | { readonly type: "stopped" };

/** Set beside MALLOC_ARENA_MAX when the agent chose it for the services process. */
export const mallocArenaSetEnv = "FLOATIP_SERVICES_MALLOC_ARENA";
