/**
 * The client of the storage gateway's end-to-end tests (file backend and real Ceph), run as a
 * program inside the client namespace, with the record shapes it prints.
 */
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
const [mode, url, file] = process.argv.slice(2);
const calls = JSON.parse(require("node:fs").readFileSync(file, "utf8"));
const request = async (method, path, body) => {
  const r = await fetch(url + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  return { status: r.status, body: await r.json() };
};
(async () => {
  if (mode === "submit") {
    const out = await Promise.all(calls.map(async (c) => {
      try { return { id: c.id, ...(await request(c.method, c.path, c.body)) }; }
      catch (e) { return { id: c.id, status: 0, body: { error: { code: "NETWORK", message: String(e) } } }; }
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
