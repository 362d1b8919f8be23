/**
 * Fuzzing of every decoder that reads bytes from outside (test/fuzz/fuzz.ts has the engine):
 * the heartbeat wire format and the messages inside it (as the core receives them), the
 * traffic channel's frames and messages, the records a storage peer pushes, the JSON bodies
 * of both HTTP APIs, and the cluster config YAML with its capability sections. Each target
 * replays its corpus (seeds and kept crash inputs) and then a fixed number of mutations, with
 * a seed that changes every run (FLOATIP_FUZZ_SEED repeats one).
 *
 * What counts as a failure, per target: an exception the decoder must not throw (anything but
 * its own error type), a 5xx from an API, or a core that throws on a datagram.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { checkCapabilitySections } from "../../src/agent/capability-check.ts";
import { createLogger } from "../../src/agent/log.ts";
import { TickleService } from "../../src/agent/tickle.ts";
import { InMemoryAgentHandle } from "../../src/api/in-memory-handle.ts";
import { createApiServer } from "../../src/api/server.ts";
import { decodeDatagram } from "../../src/cluster/codec.ts";
import { ConfigError } from "../../src/config/errors.ts";
import { parseConfig } from "../../src/config/load.ts";
import { profiles } from "../../src/config/profiles.ts";
import { parseMessage } from "../../src/core/messages.ts";
import type { CoreNode } from "../../src/core/node.ts";
import { threeNodeCluster } from "../../src/sim/properties.ts";
import { createApi } from "../../src/storage/api.ts";
import { FileBackend } from "../../src/storage/backends/file-backend.ts";
import { Dispatcher } from "../../src/storage/dispatcher.ts";
import { Journal } from "../../src/storage/journal.ts";
import { createPeerServer, PeerClient, signRequest } from "../../src/storage/replication.ts";
import { StaticClusterView } from "../../src/storage/static-cluster-view.ts";
import { ChannelError, FrameDecoder } from "../../src/traffic/backup-channel.ts";
import { TrafficNode } from "../../src/traffic/traffic-node.ts";
import { type FuzzTarget, fuzz, runSeed } from "../fuzz/fuzz.ts";

const seed = runSeed();

/**
 * A target for JSON payloads as peers send them: each input that is JSON goes to `deliver`
 * with the next sender in turn (the codec drops datagrams that are not JSON).
 */
function peerJsonTarget(
  name: string,
  cases: number,
  senders: readonly string[],
  deliver: (from: string, message: unknown) => void,
): FuzzTarget {
  let i = 0;
  return {
    name,
    cases,
    check(input) {
      const message = jsonOf(input);
      if (message === undefined) return;
      i += 1;
      deliver(senders[i % senders.length]!, message);
    },
  };
}

/** The input as JSON, or undefined when it is none (the codec drops such datagrams). */
function jsonOf(input: Buffer): unknown {
  try {
    return JSON.parse(input.toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
}
const key = Buffer.alloc(32, 7);
const dir = mkdtempSync(path.join(tmpdir(), "floatip-fuzz-"));

/** n1 coordinator of three healthy nodes on loopback. */
function trafficView(): StaticClusterView {
  const view = new StaticClusterView("n1");
  view.set({
    selfId: "n1",
    coordinatorId: "n1",
    term: 1,
    members: ["n1", "n2", "n3"].map((id, i) => ({
      id,
      address: `127.0.0.${i + 1}`,
      state: "healthy" as const,
    })),
    owners: new Map(),
    held: new Set(),
  });
  return view;
}

/** Splits "METHOD URL\nBODY" (the API corpora's format). */
function asRequest(input: Buffer): { method: string; url: string; body: string } | undefined {
  const text = input.toString("utf8");
  const newline = text.indexOf("\n");
  const head = newline === -1 ? text : text.slice(0, newline);
  const match = /^(GET|POST|DELETE|PUT|PATCH) (\/[\x21-\x7e]*)$/.exec(head);
  if (!match) return undefined;
  // A target the URL parser refuses never reaches a route: Node's HTTP parser answers it
  // (clientErrorHandler, tested on a real socket in api-limits.test.ts).
  if (!URL.canParse(match[2]!, "http://127.0.0.1")) return undefined;
  return { method: match[1]!, url: match[2]!, body: newline === -1 ? "" : text.slice(newline + 1) };
}

/** An API answer must be JSON; an error must be 4xx with {error:{code,message}}. */
async function checkAnswer(app: FastifyInstance, input: Buffer, token: string): Promise<void> {
  const request = asRequest(input);
  if (request === undefined) return;
  const response = await app.inject({
    method: request.method as "GET",
    url: request.url,
    headers: {
      authorization: `Bearer ${token}`,
      ...(request.body === "" ? {} : { "content-type": "application/json" }),
    },
    ...(request.body === "" ? {} : { payload: request.body }),
  });
  assert.ok(
    response.statusCode < 500,
    `${request.method} ${request.url}: ${response.statusCode} ${response.body}`,
  );
  if (response.statusCode >= 400 && response.headers["content-type"]?.includes("json")) {
    const body = response.json() as { error?: { code?: unknown; message?: unknown } };
    assert.equal(typeof body.error?.code, "string", response.body);
    assert.equal(typeof body.error?.message, "string", response.body);
  }
}

describe(`fuzzing the decoders (seed ${seed}; FLOATIP_FUZZ_SEED=${seed} repeats it)`, () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("heartbeat wire format: decodeDatagram and parseMessage never throw", async () => {
    const target: FuzzTarget = {
      name: "wire",
      cases: 15000,
      check(input) {
        const decoded = decodeDatagram(key, "fuzz", input);
        if (decoded.ok) parseMessage(decoded.payload, 3, 3, "");
      },
    };
    const report = await fuzz(target, seed);
    assert.ok(report.corpus > 0);
  });

  it("messages as the core receives them: a core never throws on a datagram's payload", async () => {
    const sim = threeNodeCluster(11, profiles.lan);
    const core = sim.core("n1") as CoreNode;
    let nowMs = sim.nowMs + 1;
    const target = peerJsonTarget(
      "core-message",
      15000,
      ["n2", "n3", "n1", "n9"],
      (from, message) => {
        nowMs += 1;
        core.step({ type: "message", nowMs, from, message });
      },
    );
    await fuzz(target, seed);
  });

  it("connections datagrams (tickle lists): a peer's payload never throws and stays bounded", async () => {
    const view = new StaticClusterView("n2");
    view.set({
      selfId: "n2",
      coordinatorId: "n1",
      term: 1,
      members: [],
      owners: new Map([["198.18.0.100", "n1"]]),
      held: new Set(),
    });
    const tickle = new TickleService({
      nodeId: "n2",
      view,
      scanIntervalMs: 60_000,
      log: createLogger({ base: {}, write: () => {} }),
      broadcast: () => {},
      list: () => ({ connections: [], skipped: 0 }),
      send: () => 1,
    });
    await tickle.start();
    const target = peerJsonTarget("tickle-connections", 5000, ["n1", "n3", "n2"], (from, m) => {
      tickle.onPeerMessage(from, m);
      const known = (tickle.status() as { knownConnections: number }).knownConnections;
      assert.ok(Number.isInteger(known) && known >= 0);
    });
    try {
      await fuzz(target, seed);
    } finally {
      await tickle.stop();
    }
  });

  describe("traffic channel", () => {
    let node: TrafficNode;
    before(() => {
      node = new TrafficNode({
        selfId: "n1",
        nodes: [
          { id: "n1", ips: ["127.0.0.1"] },
          { id: "n2", ips: ["127.0.0.2"] },
          { id: "n3", ips: ["127.0.0.3"] },
        ],
        clusterKey: key,
        dbPath: path.join(dir, "traffic.db"),
        channelPort: 0,
        clusterView: trafficView(),
        collect: false,
      });
    });
    after(() => node.store.close?.());

    it("binds a report to the peer that sent it, and refuses a malformed query with its code", () => {
      const handle = (node as unknown as { handle(peer: string, m: unknown): unknown }).handle.bind(
        node,
      );
      assert.throws(
        () => handle("n2", { t: "report-failed", reporter: "n3", target: "n1" }),
        (error: unknown) => error instanceof ChannelError && error.code === "BAD_REPORT",
      );
      assert.throws(
        () => handle("n2", { t: "query", origin: "n2", fromMs: 0, toMs: 10, stepMs: 0.5 }),
        (error: unknown) => error instanceof ChannelError && error.code === "BAD_QUERY",
      );
    });

    it("frames and messages: only the channel's own errors, never a crash", async () => {
      const decoderRandom = { n: seed };
      const handle = (node as unknown as { handle(peer: string, m: unknown): unknown }).handle.bind(
        node,
      );
      const target: FuzzTarget = {
        name: "traffic-frames",
        cases: 8000,
        check(input) {
          // Arbitrary chunking of the stream, as TCP may deliver it.
          const decoder = new FrameDecoder();
          let frames: { body: Buffer }[] = [];
          try {
            for (let at = 0; at < input.length; ) {
              decoderRandom.n = (decoderRandom.n * 1103515245 + 12345) >>> 0;
              const size = 1 + (decoderRandom.n % 64);
              frames = frames.concat(decoder.push(input.subarray(at, at + size)));
              at += size;
            }
          } catch (error) {
            if (!(error instanceof ChannelError)) throw error;
          }
          for (const frame of frames) {
            let message: unknown;
            try {
              message = JSON.parse(frame.body.toString("utf8"));
            } catch {
              continue; // counted as malformed by the connection
            }
            if (typeof message !== "object" || message === null) continue;
            if (typeof (message as { t?: unknown }).t !== "string") continue;
            try {
              handle("n2", message);
            } catch (error) {
              // An authenticated peer's bad message is answered with the error's code: it
              // must be one of the channel's own, not a TypeError from unchecked input.
              if (!(error instanceof ChannelError)) throw error;
            }
          }
        },
      };
      await fuzz(target, seed);
    });
  });

  describe("storage", () => {
    let journal: Journal;
    let dispatcher: Dispatcher;
    before(async () => {
      const backend = new FileBackend({ dir: path.join(dir, "volumes") });
      await backend.init();
      journal = new Journal(path.join(dir, "storage.sqlite"));
      const view = new StaticClusterView("b");
      dispatcher = new Dispatcher({
        nodeId: "b",
        journal,
        backend,
        view,
        storageVip: undefined,
        peers: new PeerClient(key, 500),
        peerUrl: () => "http://127.0.0.1:1",
        retryDelayMs: 10,
        attemptsMax: 2,
        nowMs: () => Date.now(),
        log: () => {},
      });
      dispatcher.start();
    });
    after(async () => {
      await dispatcher.stop();
      journal.close();
    });

    it("records a peer pushes: the signed peer port answers below 500 and keeps working", async () => {
      const app = createPeerServer(key, {
        receive: (records) => dispatcher.receive(records),
        all: (limit) => journal.recent(limit),
      });
      const target: FuzzTarget = {
        name: "storage-records",
        cases: 1500,
        async check(input) {
          const body = input.toString("utf8");
          const response = await app.inject({
            method: "POST",
            url: "/v1/peer/records",
            headers: {
              "content-type": "application/json",
              ...signRequest(key, "/v1/peer/records", body),
            },
            payload: body,
          });
          assert.ok(response.statusCode < 500, `${response.statusCode} ${response.body}`);
        },
      };
      try {
        await fuzz(target, seed);
      } finally {
        await app.close();
      }
    });

    it("client API bodies: 4xx in the JSON error shape, never 5xx", async () => {
      const app = createApi(dispatcher, [{ name: "fuzz", token: "fuzz-token", access: "write" }]);
      const target: FuzzTarget = {
        name: "api-storage",
        cases: 1500,
        check: (input) => checkAnswer(app, input, "fuzz-token"),
      };
      try {
        await fuzz(target, seed);
      } finally {
        await app.close();
      }
    });
  });

  it("local API bodies: 4xx in the JSON error shape, never 5xx", async () => {
    const tokenFile = path.join(dir, "api.token");
    writeFileSync(tokenFile, "api-token\n", { mode: 0o600 });
    const app = createApiServer({
      handle: new InMemoryAgentHandle({
        node: "n1",
        nodes: ["n1", "n2", "n3"],
        vips: ["198.18.0.100", "198.18.0.101"],
      }),
      tokenFile,
    });
    const target: FuzzTarget = {
      name: "api-local",
      cases: 2500,
      check: (input) => checkAnswer(app, input, "api-token"),
    };
    try {
      await fuzz(target, seed);
    } finally {
      await app.close();
    }
  });

  it("cluster config YAML: a ConfigError with a path, or a config whose sections check cleanly", async () => {
    const target: FuzzTarget = {
      name: "config",
      cases: 1500,
      check(input) {
        let config: ReturnType<typeof parseConfig>;
        try {
          config = parseConfig(input.toString("utf8"), path.join(dir, "fuzz.yaml"));
        } catch (error) {
          if (error instanceof ConfigError) return;
          throw error;
        }
        checkCapabilitySections(config);
      },
    };
    await fuzz(target, seed);
  });
});
