import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { describe, it } from "node:test";
import type { CheckCommon, HealthCheckSpec } from "../config/types.ts";
import { CheckRunner, type HealthReport } from "./check-runner.ts";

function listen(server: net.Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Polls `condition` every 10 ms; fails the test after `limitMs` instead of hanging. */
async function waitFor(what: string, condition: () => boolean, limitMs = 10_000): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`gave up waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
}

const fast: CheckCommon = {
  name: "service",
  intervalMs: 20,
  timeoutMs: 1000,
  fall: 3,
  fallWindowMs: 60_000,
  rise: 2,
};

describe("CheckRunner", () => {
  it("goes down after `fall` failures, up after `rise` successes, and reports flips only", async () => {
    const timersBefore = activeTimers();
    const accepted = new Set<net.Socket>();
    const track = (socket: net.Socket) => {
      accepted.add(socket);
      socket.on("close", () => accepted.delete(socket));
      socket.destroy();
    };
    let server = net.createServer(track);
    const port = await listen(server);
    const reports: HealthReport[] = [];
    const runner = new CheckRunner({
      checks: [{ ...fast, kind: "tcp", host: "127.0.0.1", port }],
      onChange: (report) => reports.push(report),
    });
    assert.equal(runner.current().healthy, false, "unverified checks are not trusted");
    runner.start();
    try {
      await waitFor("check up", () => runner.current().healthy);
      assert.equal(reports.length, 1);
      assert.equal(reports[0]?.checks[0]?.up, true);

      await close(server);
      await waitFor("check down", () => !runner.current().healthy);
      assert.equal(reports.length, 2);
      const down = reports[1]?.checks[0];
      assert.equal(down?.up, false);
      assert.equal(down?.faultsInWindow, fast.fall, "declared down exactly at the M-th fault");
      assert.equal(down?.lastOk, false);
      assert.match(down?.lastDetail ?? "", /ECONNREFUSED/);

      server = net.createServer(track);
      await listen(server, port);
      await waitFor("check up again", () => runner.current().healthy);
      assert.equal(reports.length, 3);
      assert.deepEqual(
        reports.map((report) => report.healthy),
        [true, false, true],
      );
    } finally {
      await runner.stop();
      await close(server);
    }
    assert.equal(activeTimers(), timersBefore, "stop() leaves no timers behind");
  });

  it("a check failing less than M times per unit of time never goes down", async () => {
    // Every third request fails. The runner's clock is the request count × 100 ms, so the
    // outcome depends on the fault rate per unit of time, not on how fast this machine is.
    const outcome = async (fallWindowMs: number, requests: number) => {
      let served = 0;
      const server = http.createServer((_request, response) => {
        served += 1;
        response.statusCode = served % 3 === 0 ? 500 : 200;
        response.end();
      });
      const port = await listen(server);
      const flips: boolean[] = [];
      const runner = new CheckRunner({
        checks: [
          {
            ...fast,
            fall: 2,
            rise: 1,
            fallWindowMs,
            kind: "http",
            url: `http://127.0.0.1:${port}/`,
            expectStatus: 200,
          },
        ],
        onChange: (report) => flips.push(report.healthy),
        now: () => served * 100,
        initialUp: true,
      });
      runner.start();
      try {
        await waitFor(`${requests} probes`, () => served >= requests);
      } finally {
        await runner.stop();
        await close(server);
      }
      return flips;
    };
    // One fault per 300 ms against a 250 ms unit: never two faults in one unit.
    assert.deepEqual(await outcome(250, 30), []);
    // The same pattern with a 1000 ms unit reaches M = 2 and goes down (and back up).
    const damped = await outcome(1000, 30);
    assert.equal(damped[0], false);
  });

  it("stop() cancels a probe in flight and resolves", async () => {
    const timersBefore = activeTimers();
    const held = new Set<net.Socket>();
    let connected = false;
    const mute = net.createServer((socket) => {
      connected = true;
      held.add(socket);
    });
    const port = await listen(mute);
    const runner = new CheckRunner({
      checks: [
        {
          ...fast,
          timeoutMs: 60_000,
          kind: "http",
          url: `http://127.0.0.1:${port}/`,
          expectStatus: 200,
        },
      ],
      onChange: () => assert.fail("no flip expected"),
    });
    runner.start();
    try {
      await waitFor("probe connected", () => connected);
    } finally {
      await runner.stop();
      for (const socket of held) socket.destroy();
      await close(mute);
    }
    assert.equal(runner.current().checks[0]?.lastOk, undefined, "a cancelled probe is not a fault");
    assert.equal(activeTimers(), timersBefore);
  });

  it("passive observations count like probe results; no checks means healthy", async () => {
    const reports: HealthReport[] = [];
    const spec: HealthCheckSpec = { ...fast, intervalMs: 60_000, kind: "exec", command: ["true"] };
    const runner = new CheckRunner({
      checks: [spec],
      onChange: (report) => reports.push(report),
      initialUp: true,
    });
    runner.observePassive("service", false);
    runner.observePassive("service", false);
    assert.equal(runner.current().healthy, true);
    runner.observePassive("service", false, "reset by backend");
    assert.equal(runner.current().healthy, false);
    assert.equal(runner.current().checks[0]?.lastDetail, "reset by backend");
    assert.equal(reports.length, 1);
    assert.throws(() => runner.observePassive("other", true), { code: "HEALTH_UNKNOWN_CHECK" });
    await runner.stop();

    const empty = new CheckRunner({ checks: [], onChange: () => assert.fail("no flip expected") });
    empty.start();
    assert.equal(empty.current().healthy, true);
    await empty.stop();

    assert.throws(() => new CheckRunner({ checks: [spec, spec], onChange: () => {} }), {
      code: "HEALTH_DUPLICATE_CHECK",
    });
  });
});
