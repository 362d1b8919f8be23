/**
 * The storage gateway as one component: journal + backend + dispatcher + client API + peer
 * replication server. The agent starts one per node with its ClusterView; standalone (tests,
 * a single machine) it runs from a config file with a static view file (gateway-main.ts).
 *
 * Config (YAML or JSON; unknown keys are rejected and every problem is reported at once):
 *   node: a                       this node's id (as in the ClusterView)
 *   keyFile: /etc/floatip/key     cluster key (HMAC of peer bodies)
 *   journal: /var/lib/floatip/storage-a.sqlite
 *   api:  { host: 0.0.0.0, port: 7480 }      client API (reached through the storage VIP)
 *   peer: { host: 0.0.0.0, port: 7481 }      replication between gateways
 *   peers: { b: http://198.18.0.2:7481 }     optional URL per node (default address:peer.port)
 *   vip: 198.18.0.100             storage VIP; absent = this node always executes
 *   view: /path/view.json         static ClusterView file (standalone only; SIGHUP reloads)
 *   backend: { kind: file, dir: /var/lib/floatip/volumes, operationDelayMs: 0 }
 *          | { kind: rbd, pool: rbd, clientId: admin, cephConf: /etc/ceph/ceph.conf, timeoutMs: 10000 }
 *   replicationTimeoutMs: 2000    retryDelayMs: 1000    attemptsMax: 5
 *   minReplicas: 0                healthy peers that must confirm a submission (default 0)
 *   clients:                      client credentials (at least one; token files mode 0600)
 *     - { name: provisioner, tokenFile: /etc/floatip/storage-provisioner.token, access: write }
 *     - { name: monitor, tokenFile: /etc/floatip/storage-monitor.token, access: read }
 *   retention: { maxAgeMs: 604800000, maxRecords: 100000 }   final records kept (defaults)
 *   tls: { certFile: /etc/floatip/storage.crt, keyFile: /etc/floatip/storage.key }
 *                                 optional: the client API serves HTTPS only (PEM files; the
 *                                 key file must not be readable by group or others)
 */
import { readFileSync, statSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { parse as parseYaml } from "yaml";
import { listenFreebind } from "../adapters/linux/freebind.ts";
import { readToken } from "../api/token.ts";
import { hostPort } from "../config/ipv6.ts";
import { isValidClientName } from "../core/requests/request-record.ts";
import type { ClusterView } from "../ports/cluster-view.ts";
import { type ApiTls, type ClientCredential, createApi } from "./api.ts";
import type { StorageBackend } from "./backends/backend.ts";
import { FileBackend } from "./backends/file-backend.ts";
import { RbdBackend } from "./backends/rbd-backend.ts";
import { Dispatcher, defaultRetention, type Retention } from "./dispatcher.ts";
import { Journal } from "./journal.ts";
import {
  createPeerServer,
  defaultPeerBodyLimitBytes,
  minPeerBodyLimitBytes,
  PeerClient,
} from "./replication.ts";

export type BackendConfig =
  | { readonly kind: "file"; readonly dir: string; readonly operationDelayMs: number }
  | {
      readonly kind: "rbd";
      readonly pool: string;
      readonly clientId?: string;
      readonly cephConf?: string;
      readonly timeoutMs: number;
      /**
       * blocklist (default): fence a failed holder on takeover (`ceph osd blocklist`) and lift
       * this node's own fence when it is safe; off: no fencing.
       */
      readonly fence?: "blocklist" | "off";
      /** The address Ceph sees a node at, per node id, where not its cluster address. */
      readonly fenceAddresses?: Readonly<Record<string, string>>;
    };

export interface GatewayConfig {
  readonly node: string;
  readonly keyFile: string;
  readonly journal: string;
  readonly api: { readonly host: string; readonly port: number };
  readonly peer: { readonly host: string; readonly port: number };
  readonly peers: Readonly<Record<string, string>>;
  readonly vip?: string;
  readonly view?: string;
  readonly backend: BackendConfig;
  readonly replicationTimeoutMs: number;
  readonly retryDelayMs: number;
  readonly attemptsMax: number;
  /** Healthy peers that must take a submission before it is acknowledged (default 0). */
  readonly minReplicas?: number;
  /** Largest request body the peer port reads (default 1 MiB); pushes are split to fit. */
  readonly peerBodyLimitBytes?: number;
  /** Client credentials of the API; the token of each is read from its file at start. */
  readonly clients: readonly ClientSpec[];
  readonly retention?: Retention;
  /** PEM certificate (chain) and private key of the client API; absent: plain HTTP. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly key?: string };
}

export interface ClientSpec {
  readonly name: string;
  readonly tokenFile: string;
  readonly access: "read" | "write";
  /** The config key that names the file, for messages (e.g. storage.clients[0].token_file). */
  readonly key?: string;
}

/** Checks one `clients` entry (shape shared by the agent's YAML and the standalone config). */
export function clientProblems(
  entry: unknown,
  fileKey: string,
): { spec?: Omit<ClientSpec, "key">; problems: { key: string; message: string }[] } {
  const problems: { key: string; message: string }[] = [];
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    return {
      problems: [
        { key: "", message: `must be a mapping { name, ${fileKey}, access: read | write }` },
      ],
    };
  }
  const e = entry as Record<string, unknown>;
  for (const k of Object.keys(e)) {
    if (!["name", fileKey, "access"].includes(k)) {
      problems.push({ key: k, message: `unknown key; expected name, ${fileKey}, access` });
    }
  }
  if (!isValidClientName(e.name)) {
    problems.push({
      key: "name",
      message: "must be 1-64 letters, digits, '_', '.', '-' (it names the client in records)",
    });
  }
  if (typeof e[fileKey] !== "string" || e[fileKey] === "") {
    problems.push({ key: fileKey, message: "must name a file holding the token (mode 0600)" });
  }
  if (e.access !== "read" && e.access !== "write") {
    problems.push({
      key: "access",
      message: "must be read (list and inspect) or write (also change volumes)",
    });
  }
  if (problems.length > 0) return { problems };
  return {
    spec: {
      name: e.name as string,
      tokenFile: e[fileKey] as string,
      access: e.access as "read" | "write",
    },
    problems,
  };
}

export class GatewayConfigError extends Error {
  readonly code = "CONFIG_INVALID";
}

/** Validates a parsed config object; `file` names the source in every message. */
export function parseGatewayConfig(raw: unknown, file: string): GatewayConfig {
  const problems: string[] = [];
  const o = (raw ?? {}) as Record<string, unknown>;
  const at = (key: string, fix: string) => problems.push(`${file}: ${key}: ${fix}`);
  const known = [
    "node",
    "keyFile",
    "journal",
    "api",
    "peer",
    "peers",
    "vip",
    "view",
    "backend",
    "replicationTimeoutMs",
    "retryDelayMs",
    "attemptsMax",
    "minReplicas",
    "peerBodyLimitBytes",
    "clients",
    "retention",
    "tls",
  ];
  for (const key of Object.keys(o)) {
    if (!known.includes(key)) at(key, `unknown key; expected one of ${known.join(", ")}`);
  }
  const text = (key: string, value: unknown, required: boolean): string | undefined => {
    if (value === undefined && !required) return undefined;
    if (typeof value !== "string" || value === "") {
      at(key, "must be a non-empty string");
      return undefined;
    }
    return value;
  };
  const int = (key: string, value: unknown, fallback: number, min: number): number => {
    if (value === undefined) return fallback;
    if (!Number.isSafeInteger(value) || (value as number) < min) {
      at(key, `must be an integer >= ${min}`);
      return fallback;
    }
    return value as number;
  };
  const endpoint = (key: string, value: unknown) => {
    const e = (value ?? {}) as Record<string, unknown>;
    if (typeof value !== "object" || value === null) at(key, "must be {host, port}");
    return {
      host: text(`${key}.host`, e.host ?? "0.0.0.0", true) ?? "0.0.0.0",
      port: int(`${key}.port`, e.port, 0, 0),
    };
  };
  const peers: Record<string, string> = {};
  if (o.peers !== undefined) {
    if (typeof o.peers !== "object" || o.peers === null) at("peers", "must map node id to URL");
    else {
      for (const [id, url] of Object.entries(o.peers)) {
        if (typeof url !== "string" || !/^https?:\/\//.test(url))
          at(`peers.${id}`, "must be a URL");
        else peers[id] = url.replace(/\/$/, "");
      }
    }
  }
  const b = (o.backend ?? {}) as Record<string, unknown>;
  let backend: BackendConfig = { kind: "file", dir: "", operationDelayMs: 0 };
  if (b.kind === "file") {
    for (const key of Object.keys(b)) {
      if (!["kind", "dir", "operationDelayMs"].includes(key)) at(`backend.${key}`, "unknown key");
    }
    backend = {
      kind: "file",
      dir: text("backend.dir", b.dir, true) ?? "",
      operationDelayMs: int("backend.operationDelayMs", b.operationDelayMs, 0, 0),
    };
  } else if (b.kind === "rbd") {
    for (const key of Object.keys(b)) {
      if (!["kind", "pool", "clientId", "cephConf", "timeoutMs"].includes(key)) {
        at(`backend.${key}`, "unknown key");
      }
    }
    const clientId = text("backend.clientId", b.clientId, false);
    const cephConf = text("backend.cephConf", b.cephConf, false);
    const fence = text("backend.fence", b.fence, false);
    if (fence !== undefined && fence !== "blocklist" && fence !== "off") {
      at("backend.fence", "must be 'blocklist' or 'off'");
    }
    backend = {
      kind: "rbd",
      pool: text("backend.pool", b.pool, true) ?? "",
      timeoutMs: int("backend.timeoutMs", b.timeoutMs, 10_000, 1),
      ...(clientId ? { clientId } : {}),
      ...(cephConf ? { cephConf } : {}),
      ...(fence === "off" ? { fence: "off" as const } : {}),
    };
  } else {
    at("backend.kind", "must be 'file' or 'rbd'");
  }
  const vip = text("vip", o.vip, false);
  const view = text("view", o.view, false);
  const clients: ClientSpec[] = [];
  if (!Array.isArray(o.clients) || o.clients.length === 0) {
    at(
      "clients",
      "at least one client credential is required: clients: [{ name: admin, tokenFile: /etc/floatip/storage.token, access: write }]",
    );
  } else {
    o.clients.forEach((entry, i) => {
      const checked = clientProblems(entry, "tokenFile");
      for (const p of checked.problems) at(`clients[${i}]${p.key ? `.${p.key}` : ""}`, p.message);
      if (checked.spec) clients.push({ ...checked.spec, key: `clients[${i}].tokenFile` });
    });
  }
  let tls: GatewayConfig["tls"];
  if (o.tls !== undefined) {
    const t = (o.tls ?? {}) as Record<string, unknown>;
    const certFile = text("tls.certFile", t.certFile, true);
    const keyFile = text("tls.keyFile", t.keyFile, true);
    for (const k of Object.keys(t)) {
      if (k !== "certFile" && k !== "keyFile")
        at(`tls.${k}`, "unknown key; expected certFile, keyFile");
    }
    if (certFile && keyFile) tls = { certFile, keyFile };
  }
  const r = (o.retention ?? {}) as Record<string, unknown>;
  const retention: Retention = {
    maxAgeMs: int("retention.maxAgeMs", r.maxAgeMs, defaultRetention.maxAgeMs, 1),
    maxRecords: int("retention.maxRecords", r.maxRecords, defaultRetention.maxRecords, 1),
  };
  const config: GatewayConfig = {
    node: text("node", o.node, true) ?? "",
    keyFile: text("keyFile", o.keyFile, true) ?? "",
    journal: text("journal", o.journal, true) ?? "",
    api: endpoint("api", o.api),
    peer: endpoint("peer", o.peer),
    peers,
    ...(vip ? { vip } : {}),
    ...(view ? { view } : {}),
    backend,
    replicationTimeoutMs: int("replicationTimeoutMs", o.replicationTimeoutMs, 2000, 1),
    retryDelayMs: int("retryDelayMs", o.retryDelayMs, 1000, 0),
    attemptsMax: int("attemptsMax", o.attemptsMax, 5, 1),
    minReplicas: int("minReplicas", o.minReplicas, 0, 0),
    peerBodyLimitBytes: int(
      "peerBodyLimitBytes",
      o.peerBodyLimitBytes,
      defaultPeerBodyLimitBytes,
      minPeerBodyLimitBytes,
    ),
    clients,
    retention,
    ...(tls === undefined ? {} : { tls }),
  };
  if (problems.length > 0) throw new GatewayConfigError(problems.join("\n"));
  return config;
}

export function loadGatewayConfig(file: string): GatewayConfig {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, "utf8"));
  } catch (error) {
    throw new GatewayConfigError(`${file}: cannot read: ${(error as Error).message}`);
  }
  return parseGatewayConfig(raw, file);
}

/** Reads every client's token (mode 0600 or stricter, not empty); throws on the first bad one. */
export function readClientTokens(clients: readonly ClientSpec[]): ClientCredential[] {
  if (clients.length === 0) {
    throw new GatewayConfigError("the storage API needs at least one client credential");
  }
  return clients.map((c) => ({
    name: c.name,
    access: c.access,
    token: readToken(c.tokenFile, {
      what: "storage client token file",
      key: c.key ?? "tokenFile",
      power: c.access === "write" ? "create and delete volumes" : "list volumes",
    }),
  }));
}

/**
 * Reads the client API's certificate and key (PEM). The key file must not be readable by
 * group or others (like ssh and every TLS server): whoever reads it can impersonate the
 * gateway to its clients.
 */
export function readTls(tls: NonNullable<GatewayConfig["tls"]>): ApiTls {
  const keyName = tls.key ?? "tls.keyFile";
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new GatewayConfigError(`cannot read the ${what} ${file} (${reason})`);
    }
  };
  const cert = read(tls.certFile, "TLS certificate");
  const key = read(tls.keyFile, "TLS key");
  const mode = statSync(tls.keyFile).mode;
  if ((mode & 0o077) !== 0) {
    throw new GatewayConfigError(
      `the TLS key ${tls.keyFile} (${keyName}) is accessible by group or others (mode ${(mode & 0o777).toString(8).padStart(4, "0")}): chmod 600 ${tls.keyFile}`,
    );
  }
  if (!cert.includes("-----BEGIN CERTIFICATE-----")) {
    throw new GatewayConfigError(`${tls.certFile} holds no PEM certificate`);
  }
  return { cert, key };
}

export function createBackend(config: BackendConfig): StorageBackend & { init?(): Promise<void> } {
  if (config.kind === "file") {
    return new FileBackend({ dir: config.dir, operationDelayMs: config.operationDelayMs });
  }
  return new RbdBackend(config);
}

export interface Gateway {
  readonly dispatcher: Dispatcher;
  /** http://host:port of the client API and of the replication port (actual ports). */
  readonly apiUrl: string;
  readonly peerUrl: string;
  close(): Promise<void>;
}

export async function startGateway(
  config: GatewayConfig,
  view: ClusterView,
  log: (event: string, fields: Record<string, unknown>) => void = () => {},
  /** The cluster key when the caller already holds it (the agent); else read from `keyFile`. */
  clusterKey?: Buffer,
): Promise<Gateway> {
  const key = clusterKey ?? readFileSync(config.keyFile);
  if (key.length < 16) {
    throw new GatewayConfigError(`${config.keyFile}: the cluster key must be at least 16 bytes`);
  }
  const credentials = readClientTokens(config.clients);
  const tls = config.tls === undefined ? undefined : readTls(config.tls);
  const backend = createBackend(config.backend);
  await backend.init?.();
  const journal = new Journal(config.journal);
  const dispatcher = new Dispatcher({
    nodeId: config.node,
    journal,
    backend,
    view,
    storageVip: config.vip,
    peers: new PeerClient(key, config.replicationTimeoutMs, config.peerBodyLimitBytes),
    peerUrl: (id, address) => config.peers[id] ?? `http://${hostPort(address, config.peer.port)}`,
    retryDelayMs: config.retryDelayMs,
    attemptsMax: config.attemptsMax,
    ...(config.minReplicas === undefined ? {} : { minReplicas: config.minReplicas }),
    nowMs: () => Date.now(),
    log,
    ...(config.retention === undefined ? {} : { retention: config.retention }),
    ...(config.backend.kind === "rbd" && config.backend.fence !== "off"
      ? {
          fencing: true,
          ...(config.backend.fenceAddresses
            ? { fenceAddresses: config.backend.fenceAddresses }
            : {}),
        }
      : {}),
  });
  const peerServer = createPeerServer(
    key,
    {
      receive: (records) => dispatcher.receive(records),
      all: (limit) => journal.recent(limit),
    },
    config.peerBodyLimitBytes,
  );
  const api = createApi(dispatcher, credentials, tls);
  await peerServer.listen({ host: config.peer.host, port: config.peer.port });
  if (config.api.host === "0.0.0.0" || config.api.host === "::") {
    await api.listen({ host: config.api.host, port: config.api.port });
  } else {
    // A specific address (the storage VIP by default) is bound even while this node does
    // not hold it, and served from the moment it does.
    await api.ready();
    await listenFreebind(api.server, config.api.host, config.api.port);
  }
  dispatcher.start();
  const url = (server: typeof api) => {
    const address = server.server.address() as AddressInfo;
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    return `${server === api && tls !== undefined ? "https" : "http"}://${host}:${address.port}`;
  };
  return {
    dispatcher,
    apiUrl: url(api),
    peerUrl: url(peerServer),
    async close() {
      await api.close();
      if (api.server.listening) {
        await new Promise<void>((resolve) => api.server.close(() => resolve()));
      }
      await dispatcher.stop();
      await peerServer.close();
      journal.close();
    },
  };
}
