/**
 * The client of the storage gateway's end-to-end tests (file backend and real Ceph), run as a
 * program inside the client namespace, with the record shapes it prints, and the client
 * credentials both tests configure.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LiveCluster } from "../../src/lab/cluster.ts";

/**
 * Two client credentials for `storage.clients` (token files in `work`): one that may change
 * volumes and one that may only read; the YAML lines naming them; the client program run
 * with the write token; and a read through the VIP with the read token.
 */
export function storageClients(
  work: string,
  url: string,
  programFile: string,
  live: () => LiveCluster,
  timeoutMs: number,
) {
  const writeToken = `rw-${randomBytes(12).toString("hex")}`;
  const readToken = `ro-${randomBytes(12).toString("hex")}`;
  const writeTokenFile = join(work, "rw.token");
  const readTokenFile = join(work, "ro.token");
  writeFileSync(writeTokenFile, `${writeToken}\n`, { mode: 0o600 });
  writeFileSync(readTokenFile, `${readToken}\n`, { mode: 0o600 });
  return {
    writeToken,
    readToken,
    yaml: [
      "  clients:",
      `    - { name: provisioner, token_file: ${writeTokenFile}, access: write }`,
      `    - { name: monitor, token_file: ${readTokenFile}, access: read }`,
    ],
    /** Runs the client program (`submit` or `follow`) over `calls` with the write token. */
    async client<T>(mode: "submit" | "follow", calls: readonly Call[]): Promise<T> {
      const file = join(work, `${mode}-${Date.now()}.json`);
      writeFileSync(file, JSON.stringify(calls));
      const result = await live().topology.exec(
        "client",
        process.execPath,
        [programFile, mode, url, file, writeTokenFile],
        timeoutMs,
      );
      return JSON.parse(result.stdout) as T;
    },
    /** The write client's request records as the gateway behind the VIP lists them. */
    async listRequests(): Promise<RecordJson[]> {
      const r = await live().topology.exec(
        "client",
        "curl",
        [
          "-s",
          "-m",
          "2",
          "-H",
          `Authorization: Bearer ${writeToken}`,
          `${url}/v1/requests?limit=500`,
        ],
        5000,
      );
      return (JSON.parse(r.stdout) as { requests: RecordJson[] }).requests;
    },
    /** A read through the VIP with the read-only token (reads keep no record). */
    async readVia(path: string): Promise<ReadAnswer> {
      const r = await live().topology.exec(
        "client",
        "curl",
        ["-s", "-m", "5", "-H", `Authorization: Bearer ${readToken}`, `${url}${path}`],
        10_000,
      );
      return JSON.parse(r.stdout) as ReadAnswer;
    },
  };
}
/** What a read (list, info, snapshot list) answers: the result, no record. */
export interface ReadAnswer {
  result?: { sizeBytes?: number; volumes?: unknown[] };
  error?: { code: string; message: string };
}
export interface Call {
  id: string;
  method: string;
  path: string;
  body?: unknown;
}
export interface RecordJson {
  id: string;
  state: {
    state: string;
    result?: { sizeBytes?: number; volumes?: unknown[] };
    error?: { code: string; message: string };
  };
}
export interface Answer {
  id: string;
  status: number;
  /** Resubmissions after REPLICATION_FAILED (the same request id, as the API asks). */
  replicationRetries?: number;
  body: { request?: RecordJson; error?: { code: string; message: string } };
}
export interface Followed {
  id: string;
  record?: RecordJson;
  /** Failed attempts (connection refused/reset, timeouts) while the VIP moved. */
  retries: number;
  /** Every HTTP method the client used for this id (must be GET only). */
  methods: string[];
}

/**
 * The client program, run inside the client namespace. `submit` sends every call once
 * (concurrently, bounded) and prints the answers; `follow` only ever GETs each request's record
 * through the VIP until it is final, retrying connection errors (the VIP is moving), bounded
 * in time.
 */
export function storageClientProgram(followDeadlineMs: number): string {
  return `
const [mode, url, file, tokenFile] = process.argv.slice(2);
const calls = JSON.parse(require("node:fs").readFileSync(file, "utf8"));
const token = require("node:fs").readFileSync(tokenFile, "utf8").trim();
const request = async (method, path, body) => {
  const r = await fetch(url + path, {
    method,
    headers: {
      authorization: "Bearer " + token,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  return { status: r.status, body: await r.json() };
};
(async () => {
  if (mode === "submit") {
    // REPLICATION_FAILED (503) means "journaled here, a peer did not confirm in time; retry
    // with the same request id", NO_REPLICA (503) "no healthy peer to take it yet; retry":
    // what the API tells a client to do, done here (bounded).
    const once = async (c) => {
      try { return { id: c.id, ...(await request(c.method, c.path, c.body)) }; }
      catch (e) { return { id: c.id, status: 0, body: { error: { code: "NETWORK", message: String(e) } } }; }
    };
    const out = await Promise.all(calls.map(async (c) => {
      let answer = await once(c);
      for (let retry = 1; retry <= 5 && ["REPLICATION_FAILED", "NO_REPLICA"].includes(answer.body?.error?.code); retry++) {
        await new Promise((r) => setTimeout(r, 300 * retry));
        answer = { ...(await once(c)), replicationRetries: retry };
      }
      return answer;
    }));
    process.stdout.write(JSON.stringify(out));
    return;
  }
  const deadline = Date.now() + ${followDeadlineMs};
  const out = [];
  for (const c of calls) {
    const entry = { id: c.id, retries: 0, methods: [] };
    while (Date.now() < deadline) {
      entry.methods.push("GET");
      const got = await request("GET", "/v1/requests/" + c.id + "?wait=5s").catch(() => undefined);
      const state = got?.body?.request?.state?.state;
      if (got?.status === 200 && (state === "succeeded" || state === "failed")) {
        entry.record = got.body.request;
        break;
      }
      if (got === undefined || got.status >= 500) {
        entry.retries += 1;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    out.push(entry);
  }
  process.stdout.write(JSON.stringify(out));
})();
`;
}
