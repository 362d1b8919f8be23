/**
 * The storage gateway (S1) as a capability of the agent: `floatip agent` starts one gateway per
 * node when the cluster YAML has a top-level `storage:` section. Example:
 *
 *   storage:
 *     vip: 198.18.0.102          one of the cluster's `vips`; clients use http://VIP:PORT
 *     port: 7490                 client API (default 7490)
 *     peer_port: 7491            replication between the nodes' gateways (default 7491)
 *     backend: { kind: rbd, pool: rbd, client_id: admin, ceph_conf: /etc/ceph/ceph.conf, timeout: 10s,
 *                fence: blocklist, fence_addresses: { n1: 198.18.9.1 } }
 *                                fence (default blocklist; or off): on a takeover from a holder
 *                                declared failed, blocklist it in Ceph before the re-drive (its
 *                                late commands are refused); fence_addresses: where Ceph sees a
 *                                node, if not at its nodes[].address
 *     # or     { kind: file, dir: /var/lib/floatip/volumes, operation_delay: 0ms }
 *     replication_timeout: 2s    retry_delay: 1s    attempts_max: 5     (defaults)
 *     min_replicas: 1            healthy peers that must confirm a submission before it is
 *                                acknowledged (default 1 with two nodes or more, else 0); with
 *                                fewer, new requests are refused with 503 NO_REPLICA (retry
 *                                with the same id). 0 accepts on the holder alone.
 *     peer_body_limit: 1048576   bytes a peer-port request may carry (pushes are split to fit)
 *     clients:                   who may use the client API (at least one; token files 0600)
 *       - { name: provisioner, token_file: /etc/floatip/storage-provisioner.token, access: write }
 *       - { name: monitor, token_file: /etc/floatip/storage-monitor.token, access: read }
 *     listen: vip                client API address: vip (default), any (0.0.0.0), or an address
 *     retention: { max_age: 168h, max_records: 100000 }   final request records kept (defaults)
 *     tls: { cert_file: /etc/floatip/storage.crt, key_file: /etc/floatip/storage.key }
 *                                optional: the client API serves HTTPS only (key file 0600)
 *
 * Everything else comes from the agent: node id and cluster key from the context, the journal at
 * `<state_dir>/storage-journal.sqlite`, each peer's replication URL from its `nodes[].address`
 * and `peer_port`, membership and VIP ownership from the agent's ClusterView (so the gateway
 * executes exactly while this node's core holds the storage VIP, and re-drives unfinished
 * requests when it takes the VIP over).
 *
 * The client API listens on the storage VIP on every node (bound with IP_FREEBIND, so a node
 * that does not hold the VIP yet is ready the moment it takes it over); `listen: any` binds
 * 0.0.0.0 instead. The peer port binds 0.0.0.0 (peers use node addresses; every request on it
 * is signed with the cluster key). Any node may accept and answer (submissions are replicated
 * to all healthy peers before they are acknowledged, and any node answers queries from its
 * journal), while only the holder of the storage VIP executes operations against the
 * backend: the dispatcher checks `held` before each one. Clients reach the holder by
 * addressing the VIP. The file backend only makes sense when every node sees the
 * same directory (tests, one machine); production uses rbd.
 *
 * Combine with an `rbd` health check (`checks: [{ kind: rbd, pool: rbd }]`) so that a node that
 * lost its connection to the Ceph cluster fails its own health and releases the storage VIP
 * (S1.2); the agent registers the rbd probe kind at start.
 */

import { isIP, isIPv4 } from "node:net";
import type { Capability, CapabilityContext, CreateCapability } from "../agent/capability.ts";
import { CapabilityConfigError } from "../agent/capability.ts";
import { canonicalIp, hostPort } from "../config/ipv6.ts";
import { parseDuration } from "../config/load.ts";
import { isRecord } from "../core/validate.ts";
import { defaultRetention } from "./dispatcher.ts";
import type { BackendConfig, ClientSpec, Gateway, GatewayConfig } from "./gateway.ts";
import { clientProblems, startGateway } from "./gateway.ts";
import { defaultPeerBodyLimitBytes, minPeerBodyLimitBytes } from "./replication.ts";

export const defaultStoragePort = 7490;
export const defaultStoragePeerPort = 7491;

interface Problem {
  path: string;
  message: string;
  fix: string;
}

const topKeys = [
  "vip",
  "port",
  "peer_port",
  "backend",
  "replication_timeout",
  "retry_delay",
  "attempts_max",
  "min_replicas",
  "peer_body_limit",
  "clients",
  "listen",
  "retention",
  "tls",
];
const fileKeys = ["kind", "dir", "operation_delay"];
const rbdKeys = ["kind", "pool", "client_id", "ceph_conf", "timeout", "fence", "fence_addresses"];

/** Reads the section into a gateway config; every problem is collected, then thrown at once. */
export function parseStorageSection(section: unknown, context: CapabilityContext): GatewayConfig {
  const problems: Problem[] = [];
  const problem = (path: string, message: string, fix: string) =>
    problems.push({ path: path === "" ? "storage" : `storage.${path}`, message, fix });
  const o = isRecord(section) ? section : {};
  if (!isRecord(section)) {
    problem(
      "",
      "must be a mapping",
      "write `storage: { vip: …, backend: { kind: file, dir: … } }`",
    );
  }
  const unknownKeys = (obj: Record<string, unknown>, prefix: string, known: readonly string[]) => {
    for (const key of Object.keys(obj)) {
      if (!known.includes(key))
        problem(`${prefix}${key}`, "unknown key", `remove it; known keys: ${known.join(", ")}`);
    }
  };
  unknownKeys(o, "", topKeys);
  const text = (obj: Record<string, unknown>, path: string, key: string, example: string) => {
    const value = obj[key];
    if (typeof value === "string" && value !== "") return value;
    problem(
      `${path}${key}`,
      value === undefined ? "is required" : "must be a non-empty string",
      `e.g. ${key}: ${example}`,
    );
    return "";
  };
  const optionalText = (obj: Record<string, unknown>, path: string, key: string) => {
    const value = obj[key];
    if (value === undefined) return undefined;
    if (typeof value === "string" && value !== "") return value;
    problem(`${path}${key}`, "must be a non-empty string", `give a value or remove ${key}`);
    return undefined;
  };
  const port = (key: string, fallback: number) => {
    const value = o[key];
    if (value === undefined) return fallback;
    if (Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535)
      return value as number;
    problem(key, "must be a port number 1-65535", `e.g. ${key}: ${fallback}`);
    return fallback;
  };
  const duration = (obj: Record<string, unknown>, path: string, key: string, fallback: number) => {
    const value = obj[key];
    if (value === undefined) return fallback;
    const ms = typeof value === "string" ? parseDuration(value) : undefined;
    if (ms !== undefined) return ms;
    problem(
      `${path}${key}`,
      "must be a duration",
      `e.g. ${key}: ${fallback}ms (units ms, s, m, h)`,
    );
    return fallback;
  };

  const vips = context.config.vips.map((v) => v.address);
  const vip = canonicalIp(text(o, "", "vip", vips[0] ?? "198.18.0.102"));
  if (vip !== "" && !vips.includes(vip)) {
    problem(
      "vip",
      `${vip} is not one of the cluster's vips`,
      `use one of ${vips.join(", ") || "(none: add the storage VIP under vips:)"}`,
    );
  }
  const apiPort = port("port", defaultStoragePort);
  const peerPort = port("peer_port", defaultStoragePeerPort);
  if (apiPort === peerPort) {
    problem("peer_port", "must differ from port", `e.g. peer_port: ${apiPort + 1}`);
  }
  const apiListen = context.config.api;
  if (apiListen.port === apiPort || apiListen.port === peerPort) {
    problem(
      apiListen.port === apiPort ? "port" : "peer_port",
      `${apiListen.port} is the agent's own API port`,
      "choose another port",
    );
  }
  const peerCount = context.config.nodes.length - 1;
  let minReplicas = Math.min(1, peerCount);
  if (o.min_replicas !== undefined) {
    const m = o.min_replicas;
    if (Number.isSafeInteger(m) && (m as number) >= 0 && (m as number) <= peerCount) {
      minReplicas = m as number;
    } else {
      problem(
        "min_replicas",
        `must be a whole number from 0 to ${peerCount} (the cluster's other nodes)`,
        `e.g. min_replicas: ${Math.min(1, peerCount)} (0 acknowledges with no peer)`,
      );
    }
  }
  const attemptsRaw = o.attempts_max;
  let attemptsMax = 5;
  if (attemptsRaw !== undefined) {
    if (Number.isInteger(attemptsRaw) && (attemptsRaw as number) >= 1)
      attemptsMax = attemptsRaw as number;
    else problem("attempts_max", "must be an integer >= 1", "e.g. attempts_max: 5");
  }

  let backend: BackendConfig = { kind: "file", dir: "", operationDelayMs: 0 };
  const b = o.backend;
  if (!isRecord(b)) {
    problem(
      "backend",
      b === undefined ? "is required" : "must be a mapping",
      "e.g. backend: { kind: rbd, pool: rbd } or backend: { kind: file, dir: /var/lib/floatip/volumes }",
    );
  } else if (b.kind === "file") {
    unknownKeys(b, "backend.", fileKeys);
    backend = {
      kind: "file",
      dir: text(b, "backend.", "dir", "/var/lib/floatip/volumes"),
      operationDelayMs: duration(b, "backend.", "operation_delay", 0),
    };
  } else if (b.kind === "rbd") {
    unknownKeys(b, "backend.", rbdKeys);
    const clientId = optionalText(b, "backend.", "client_id");
    const cephConf = optionalText(b, "backend.", "ceph_conf");
    const fence = b.fence ?? "blocklist";
    if (fence !== "blocklist" && fence !== "off") {
      problem("backend.fence", "must be blocklist or off", "fence: blocklist (the default)");
    }
    const fenceAddresses: Record<string, string> = {};
    if (b.fence_addresses !== undefined) {
      const nodeIds = new Set(context.config.nodes.map((n) => n.id));
      if (!isRecord(b.fence_addresses)) {
        problem("backend.fence_addresses", "must be a mapping", "e.g. { n1: 198.18.9.1 }");
      } else {
        for (const [id, address] of Object.entries(b.fence_addresses)) {
          if (!nodeIds.has(id)) {
            problem(`backend.fence_addresses.${id}`, "is not a node", "use an id from nodes:");
          } else if (typeof address !== "string" || !isIPv4(address)) {
            problem(
              `backend.fence_addresses.${id}`,
              "must be an IPv4 address",
              "the address Ceph sees this node's rbd client at",
            );
          } else {
            fenceAddresses[id] = address;
          }
        }
      }
    }
    backend = {
      kind: "rbd",
      pool: text(b, "backend.", "pool", "rbd"),
      timeoutMs: duration(b, "backend.", "timeout", 10_000),
      ...(clientId ? { clientId } : {}),
      ...(cephConf ? { cephConf } : {}),
      ...(fence === "off" ? { fence: "off" as const } : {}),
      ...(Object.keys(fenceAddresses).length > 0 ? { fenceAddresses } : {}),
    };
  } else {
    problem("backend.kind", "must be rbd or file", "kind: rbd (Ceph) or kind: file (one machine)");
  }
  const replicationTimeoutMs = duration(o, "", "replication_timeout", 2000);
  let peerBodyLimitBytes = defaultPeerBodyLimitBytes;
  if (o.peer_body_limit !== undefined) {
    const value = o.peer_body_limit;
    if (Number.isInteger(value) && (value as number) >= minPeerBodyLimitBytes) {
      peerBodyLimitBytes = value as number;
    } else {
      problem(
        "peer_body_limit",
        `must be a whole number of bytes, at least ${minPeerBodyLimitBytes}`,
        `e.g. peer_body_limit: ${defaultPeerBodyLimitBytes}`,
      );
    }
  }
  const retryDelayMs = duration(o, "", "retry_delay", 1000);
  const clients: ClientSpec[] = [];
  if (!Array.isArray(o.clients) || o.clients.length === 0) {
    problem(
      "clients",
      o.clients === undefined
        ? "is required: the client API takes no request without a credential"
        : "must be a non-empty list",
      "add clients: [{ name: admin, token_file: /etc/floatip/storage-admin.token, access: write }] and write a random token into that file (head -c 24 /dev/urandom | base64 > FILE; chmod 600 FILE)",
    );
  } else {
    const names = new Set<string>();
    o.clients.forEach((entry, i) => {
      const checked = clientProblems(entry, "token_file");
      for (const p of checked.problems) {
        problem(`clients[${i}]${p.key ? `.${p.key}` : ""}`, p.message, "see the example above");
      }
      if (checked.spec === undefined) return;
      if (names.has(checked.spec.name)) {
        problem(
          `clients[${i}].name`,
          `${checked.spec.name} is listed twice`,
          "give each client its own name",
        );
      }
      names.add(checked.spec.name);
      clients.push({ ...checked.spec, key: `storage.clients[${i}].token_file` });
    });
  }
  let listenHost = vip;
  if (o.listen !== undefined) {
    if (o.listen === "vip") listenHost = vip;
    else if (o.listen === "any") listenHost = vip.includes(":") ? "::" : "0.0.0.0";
    else if (typeof o.listen === "string" && isIP(o.listen) !== 0) listenHost = o.listen;
    else problem("listen", "must be vip, any or an IP address", "listen: vip (the default)");
  }
  const r = isRecord(o.retention) ? o.retention : {};
  if (o.retention !== undefined && !isRecord(o.retention)) {
    problem("retention", "must be a mapping", "retention: { max_age: 168h, max_records: 100000 }");
  }
  unknownKeys(r, "retention.", ["max_age", "max_records"]);
  const maxAgeMs = duration(r, "retention.", "max_age", defaultRetention.maxAgeMs);
  let maxRecords = defaultRetention.maxRecords;
  if (r.max_records !== undefined) {
    if (Number.isSafeInteger(r.max_records) && (r.max_records as number) >= 1) {
      maxRecords = r.max_records as number;
    } else {
      problem("retention.max_records", "must be a whole number >= 1", "e.g. max_records: 100000");
    }
  }
  let tls: GatewayConfig["tls"];
  if (o.tls !== undefined) {
    if (!isRecord(o.tls)) {
      problem("tls", "must be a mapping", "tls: { cert_file: FILE, key_file: FILE }");
    } else {
      unknownKeys(o.tls, "tls.", ["cert_file", "key_file"]);
      const certFile = text(o.tls, "tls.", "cert_file", "/etc/floatip/storage.crt");
      const keyFile = text(o.tls, "tls.", "key_file", "/etc/floatip/storage.key");
      if (certFile !== "" && keyFile !== "")
        tls = { certFile, keyFile, key: "storage.tls.key_file" };
    }
  }
  if (problems.length > 0) throw new CapabilityConfigError(context.config.file, problems);

  return {
    node: context.nodeId,
    keyFile: context.config.keyFile,
    journal: `${context.stateDir}/storage-journal.sqlite`,
    api: { host: listenHost, port: apiPort },
    // Peers talk to each other at their node addresses: all IPv4 or all IPv6.
    peer: {
      host: context.config.nodes.some((n) => n.address.includes(":")) ? "::" : "0.0.0.0",
      port: peerPort,
    },
    peers: Object.fromEntries(
      context.config.nodes.map((n) => [n.id, `http://${hostPort(n.address, peerPort)}`]),
    ),
    vip,
    backend,
    replicationTimeoutMs,
    retryDelayMs,
    attemptsMax,
    minReplicas,
    peerBodyLimitBytes,
    clients,
    retention: { maxAgeMs, maxRecords },
    ...(tls === undefined ? {} : { tls }),
  };
}

export const createCapability: CreateCapability = (section, context): Capability => {
  const config = parseStorageSection(section, context);
  let gateway: Gateway | undefined;
  const vip = config.vip ?? "";
  return {
    name: "storage",
    async start() {
      const log = (event: string, fields: Record<string, unknown>) =>
        context.log.log(event.endsWith("failed") ? "warn" : "info", event, fields);
      gateway = await startGateway(config, context.view, log, context.key);
      context.log.log("info", "storage gateway listening", {
        vip,
        api: gateway.apiUrl,
        peer: gateway.peerUrl,
        backend: config.backend.kind,
      });
    },
    async stop() {
      const running = gateway;
      gateway = undefined;
      await running?.close();
    },
    status() {
      const counts = gateway?.dispatcher.counts() ?? { total: 0, final: 0 };
      return {
        running: gateway !== undefined,
        vip,
        url: `${config.tls === undefined ? "http" : "https"}://${hostPort(vip, config.api.port)}`,
        backend: config.backend.kind,
        serving: gateway?.dispatcher.active ?? false,
        requests: counts.total,
        unfinished: counts.total - counts.final,
        minReplicas: config.minReplicas ?? 0,
        // Takeovers of the storage VIP by this node; those no healthy peer answered re-drove
        // from this node's journal alone (see the dispatcher).
        takeovers: gateway?.dispatcher.takeovers() ?? { count: 0, withoutPeers: 0 },
        // The oldest few unfinished requests (the dashboard's storage panel): where each runs.
        unfinishedRequests: (gateway?.dispatcher.unfinished(10) ?? []).map((r) => ({
          id: r.id,
          op: r.operation.op,
          name: "name" in r.operation ? r.operation.name : undefined,
          state: r.state.state,
          node: "node" in r.state ? r.state.node : undefined,
          attempt: "attempt" in r.state ? r.state.attempt : undefined,
          acceptedBy: r.acceptedBy,
        })),
      };
    },
  };
};
