import assert from "node:assert/strict";
import net from "node:net";
import { after, describe, it } from "node:test";
import Fastify from "fastify";
import type { CapabilityContext } from "../agent/capability.ts";
import { createLogger } from "../agent/log.ts";
import type { ClusterConfig } from "../config/types.ts";
import type { ClusterView, ClusterViewSnapshot } from "../ports/cluster-view.ts";
import { createCapability } from "./capability.ts";

/** A view the test moves by hand: which listen VIPs this node holds. */
function manualView(): ClusterView & { hold(addresses: string[]): void } {
  const listeners = new Set<(view: ClusterViewSnapshot) => void>();
  let view: ClusterViewSnapshot = {
    selfId: "n1",
    coordinatorId: "n1",
    term: 1,
    members: [],
    owners: new Map(),
    held: new Set(),
  };
  return {
    current: () => view,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    hold(addresses) {
      view = {
        ...view,
        held: new Set(addresses),
        owners: new Map(addresses.map((a) => [a, "n1"])),
      };
      for (const listener of listeners) listener(view);
    },
  };
}

type Notified = { event: string; argument: string; env: Record<string, string> };

function context(view: ClusterView, lines: string[], notified?: Notified[]): CapabilityContext {
  return {
    ...(notified
      ? {
          notify: (event: string, argument: string, env: Record<string, string> = {}) =>
            notified.push({ event, argument, env }),
        }
      : {}),
    config: {
      file: "/etc/floatip/cluster.yaml",
      vips: [{ address: "127.0.0.1" }],
    } as unknown as ClusterConfig,
    nodeId: "n1",
    view,
    key: Buffer.alloc(32),
    stateDir: "/nonexistent",
    log: createLogger({ human: false, write: (line) => lines.push(line) }),
  };
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function until(predicate: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 100; i += 1) {
    if (await predicate()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

const port = 20_000 + (process.pid % 20_000);
const section = [
  {
    name: "web",
    listen: `127.0.0.1:${port}`,
    primary: "127.0.0.2:9",
    check: { interval: "1s", within: "5s" },
  },
];

describe("relay capability", () => {
  const stops: (() => Promise<void>)[] = [];
  after(async () => {
    for (const stop of stops) await stop();
  });

  it("rejects an invalid section with every problem and its relays… path", () => {
    assert.throws(
      () => createCapability([{ name: "Bad Name", listen: "nowhere" }], context(manualView(), [])),
      (error: unknown) => {
        const e = error as { code: string; problems: { path: string }[]; message: string };
        assert.equal(e.code, "CAPABILITY_CONFIG_INVALID");
        const paths = e.problems.map((p) => p.path);
        assert.ok(paths.includes("relays[0].name"), paths.join());
        assert.ok(paths.includes("relays[0].listen"), paths.join());
        assert.ok(paths.includes("relays[0].primary"), paths.join());
        assert.match(e.message, /\/etc\/floatip\/cluster\.yaml: relays\[0\]\.listen/);
        return true;
      },
    );
  });

  it("runs a relay on a VIP only while the VIP is held, and serves it on the API", async () => {
    const view = manualView();
    const lines: string[] = [];
    const capability = await createCapability(section, context(view, lines));
    stops.push(() => capability.stop());
    await capability.start();
    assert.equal(await connects(port), false, "listening without holding the VIP");
    const app = Fastify();
    await app.register(capability.apiPlugin!);
    const idle = (await app.inject({ url: "/v1/relays/web" })).json();
    assert.equal(idle.running, false);
    assert.equal(idle.placement, "vip-holder");

    view.hold(["127.0.0.1"]);
    assert.ok(await until(() => connects(port)), "not listening after the VIP was acquired");
    const running = (await app.inject({ url: "/v1/relays" })).json();
    assert.equal(running.relays[0].running, true);
    assert.equal(running.relays[0].active, "127.0.0.2:9");
    assert.ok(
      lines.some((l) => l.includes('"msg":"relay-started"')),
      lines.join("\n"),
    );

    view.hold([]);
    assert.ok(await until(async () => !(await connects(port))), "still listening after release");
    assert.ok(
      lines.some((l) => l.includes('"msg":"relay-stopped"')),
      lines.join("\n"),
    );

    const missing = await app.inject({ url: "/v1/relays/nope" });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, "UNKNOWN_RELAY");
    await app.close();
    await capability.stop();
  });

  it("reports a backend going down and the switch to the notify hook", async () => {
    const standby = net.createServer((socket) => {
      socket.on("error", () => undefined); // checks connect and hang up at once
      socket.end("standby\n");
    });
    await new Promise<void>((resolve) => standby.listen(0, "127.0.0.1", () => resolve()));
    stops.push(() => new Promise((resolve) => standby.close(() => resolve())));
    const standbyId = `127.0.0.1:${(standby.address() as net.AddressInfo).port}`;
    const notified: Notified[] = [];
    const capability = await createCapability(
      [
        {
          name: "hooked",
          listen: `127.0.0.3:${port}`,
          // Nothing listens on port 9 of 127.0.0.2: every check of the primary fails.
          primary: "127.0.0.2:9",
          standby: [standbyId],
          check: { kind: "tcp", interval: "50ms", timeout: "50ms", fall: 2, within: "1s", rise: 2 },
        },
      ],
      context(manualView(), [], notified),
    );
    stops.push(() => capability.stop());
    await capability.start();
    assert.ok(
      await until(async () => notified.some((n) => n.event === "relay-switched")),
      JSON.stringify(notified),
    );
    await capability.stop();
    const down = notified.find((n) => n.event === "relay-backend-down");
    assert.deepEqual(down, {
      event: "relay-backend-down",
      argument: "hooked",
      env: { FLOATIP_RELAY: "hooked", FLOATIP_BACKEND: "127.0.0.2:9" },
    });
    const switched = notified.find((n) => n.event === "relay-switched");
    assert.deepEqual(switched, {
      event: "relay-switched",
      argument: "hooked",
      env: {
        FLOATIP_RELAY: "hooked",
        FLOATIP_BACKEND_FROM: "127.0.0.2:9",
        FLOATIP_BACKEND_TO: standbyId,
        FLOATIP_REASON: "backend-down",
      },
    });
    assert.ok(
      notified.indexOf(down!) < notified.indexOf(switched!),
      "the backend is reported down before the switch",
    );
  });
});
