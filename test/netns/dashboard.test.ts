/**
 * The dashboard in real headless Chromium (Debian's `chromium`, driven by playwright-core,
 * no browser download) against three real agents in network namespaces. The browser runs
 * inside the coordinator's namespace (a wrapper execs it under `ip netns exec`) and opens
 * that agent's own page at http://127.0.0.1:7480/, as an operator would through an SSH
 * tunnel. Checked on the page, without a reload:
 *   1. every VIP with the owner the namespaces show;
 *   2. SIGKILL of another VIP owner's agent: the row shows the new owner, the events show
 *      the failure and the acquisition, and the coordinator's failover phases count it;
 *   3. one direction of one link cut (nftables in one namespace): the heartbeat matrix
 *      marks that one cell, not its mirror;
 *   4. a move without the token is refused (UNAUTHORIZED) and changes nothing; with the
 *      token it is done and the VIP moves;
 *   5. the capability panels: the relay's backends and its switch when the primary backend
 *      dies; the storage gateway's unfinished requests and where each runs, until they are
 *      final; the traffic index table with a chart per node from the agent's own store;
 *   6. a long-open page: thousands of status renders and events leave the DOM and the JS heap
 *      bounded;
 *   7. a second cluster with `heartbeats: coordinator`: a follower's page shows its link to
 *      the other follower as "not watched" (not as a silent link) and the coordinator's as heard.
 * Screenshots of each step go to test/artifacts/dashboard/ (not tracked), also at phone size.
 */
/// <reference lib="dom" />
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { profiles } from "../../src/config/profiles.ts";
import {
  allLogs,
  type LiveCluster,
  startCluster,
  waitFor,
  waitSettled,
} from "../../src/lab/cluster.ts";
import { ensureDebianPackage } from "../../src/lab/debian.ts";
import { clearDrops, coordinatorOf, dropPackets } from "../../src/lab/faults.ts";
import { skipUnlessRoot, subnetFor } from "../../src/lab/topology.ts";
import {
  type Answer,
  type Call,
  type Followed,
  storageClientProgram,
  storageClients,
} from "./storage-client.ts";

/** The default profile the clusters here run: the damping rule the page shows is its. */
const lan = profiles.lan;
const artifacts = new URL("../artifacts/dashboard/", import.meta.url).pathname;
const prefix = "fipdb-";
const subnet = `198.18.${subnetFor(prefix)}`;
const storageVip = `${subnet}.162`;
const storageUrl = `http://${storageVip}:7490`;
// Hosts get .10, .11, … in the order n1, n2, n3, client (src/lab/topology.ts).
const backendScript = `require("node:http").createServer((q, s) => s.end(process.argv[1])).listen(8081, "0.0.0.0")`;

/**
 * Headless Chromium in `node`'s namespace (the API listens on its loopback only) with that
 * agent's page open, as an operator would open it through an SSH tunnel.
 */
async function openPage(
  cluster: LiveCluster,
  node: string,
  executable: string,
  pageErrors: string[],
): Promise<{ browser: Browser; page: Page }> {
  const wrapper = join(cluster.dir, "chromium-in-netns");
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexec ip netns exec ${cluster.topology.host(node).netns} ${executable} "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  const browser = await chromium.launch({
    executablePath: wrapper,
    headless: true,
    timeout: 60_000,
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  await page.goto("http://127.0.0.1:7480/", { timeout: 30_000 });
  return { browser, page };
}

describe("dashboard in headless Chromium", { skip: skipUnlessRoot() }, () => {
  let cluster: LiveCluster;
  let browser: Browser | undefined;
  let page: Page;
  let viewer: string;
  const pageErrors: string[] = [];
  const work = mkdtempSync(join(tmpdir(), `${prefix}work-`));
  const programFile = join(work, "client.cjs");
  const live = () => cluster;
  const clients = storageClients(work, storageUrl, programFile, live, 60_000);
  let primaryBackend: ChildProcess | undefined;
  const shot = async (name: string) => {
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
  };
  /** The owner the page shows for `vip` (the table cell's text). */
  const shownOwner = (vip: string) =>
    page.locator(`#vips tr[data-vip="${vip}"] td.owner`).textContent({ timeout: 5000 });

  before(async () => {
    const executable = await ensureDebianPackage("chromium", ["/usr/bin/chromium"]);
    assert.ok(executable, "Debian's chromium package is needed (apt-get install chromium)");
    writeFileSync(programFile, storageClientProgram(30_000));
    cluster = await startCluster({
      prefix,
      vips: [
        { host: 160, policy: "round-robin" },
        { host: 161, policy: "round-robin" },
        { host: 162, policy: "round-robin" },
      ],
      extraYaml: [
        "traffic: { interval: 1s }",
        // On every node (its own loopback): the viewer's page shows a relay that runs there.
        "relays:",
        "  - name: web",
        "    listen: 127.0.0.1:9000",
        "    protocol: http",
        "    mode: proxy",
        `    primary: ${subnet}.11:8081`,
        `    standby: [${subnet}.12:8081]`,
        "    check: { kind: tcp, interval: 100ms, timeout: 500ms, fall: 2, within: 1s, rise: 2 }",
        "storage:",
        `  vip: ${storageVip}`,
        ...clients.yaml,
        "  port: 7490",
        "  peer_port: 7491",
        // Slow enough that the page sees the requests unfinished, each with where it runs.
        `  backend: { kind: file, dir: ${join(work, "volumes")}, operation_delay: 1500ms }`,
      ].join("\n"),
    });
    primaryBackend = cluster.topology.spawn("n2", process.execPath, ["-e", backendScript, "n2"], {
      stdio: "ignore",
    });
    cluster.topology.spawn("n3", process.execPath, ["-e", backendScript, "n3"], {
      stdio: "ignore",
    });
    await waitSettled(cluster);
    viewer = coordinatorOf(cluster);
    ({ browser, page } = await openPage(cluster, viewer, executable, pageErrors));
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await cluster?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it("lists every VIP with the owner the namespaces show", async () => {
    await page.waitForSelector("#vips tr[data-vip]", { timeout: 10_000 }).catch(() => {
      assert.fail(`the page rendered no VIP; script errors: ${pageErrors.join("; ") || "none"}`);
    });
    for (const vip of cluster.vipAddresses) {
      const holder = await cluster.holderOf(vip);
      assert.ok(holder, `${vip} is held`);
      await page.waitForFunction(
        ([address, owner]) =>
          document.querySelector(`#vips tr[data-vip="${address}"] td.owner`)?.textContent === owner,
        [vip, holder] as const,
        { timeout: 10_000 },
      );
    }
    assert.deepEqual(pageErrors, [], "no script error on the page");
    assert.match((await page.locator("#live").textContent()) ?? "", /live/);
    // Each VIP's policy and its owner's lease; each member's version, the same everywhere.
    const version = (
      JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
        version: string;
      }
    ).version;
    for (const vip of cluster.vipAddresses) {
      const row = page.locator(`#vips tr[data-vip="${vip}"]`);
      assert.equal(await row.locator("td.policy").textContent(), "round-robin");
      assert.match((await row.locator("td.lease").textContent()) ?? "", /^\d+ ms$/);
    }
    await page.waitForFunction(
      ([ids, v]) =>
        ids.every(
          (id) =>
            document.querySelector(`#members tr[data-member="${id}"] td.version`)?.textContent ===
            v,
        ),
      [cluster.ids, version] as const,
      { timeout: 10_000 },
    );
    // An election since the page opened (seen once, under eight CPU hogs while Chromium
    // started) is a control-plane fault, not the page's: the logs say why.
    assert.equal(
      await page.locator("#coordinator").textContent(),
      viewer,
      `the coordinator changed since the page opened\n${allLogs(cluster)}`,
    );
    // The coordinator's flap damping: the rule, and a row per member with nothing counted.
    assert.match(
      (await page.locator("#damping-rule").textContent()) ?? "",
      new RegExp(
        `fails after ${lan.faultsToFail} faults within ${lan.faultWindowMs} ms and is trusted again after ${lan.riseRounds} good rounds`,
      ),
    );
    for (const id of cluster.ids) {
      assert.match(
        (await page.locator(`#flapping tr[data-flap="${id}"]`).textContent()) ?? "",
        new RegExp(`0 / ${lan.faultsToFail}\\s*up`),
      );
    }
    await shot("1-settled");
  });

  it("shows the capabilities: relay backends and a switch, storage requests in flight, traffic per node", async () => {
    const relay = page.locator('#capabilities [data-relay="web"]');
    await page.waitForFunction(
      () =>
        /active n2|active 198\.18\.\d+\.11:8081/.test(
          document.querySelector('#capabilities [data-relay="web"]')?.textContent ?? "",
        ),
      undefined,
      { timeout: 15_000 },
    );
    assert.match((await relay.textContent()) ?? "", /runs here/);
    // The primary backend dies: the relay switches, and the page shows it in the history.
    primaryBackend?.kill("SIGKILL");
    await page.waitForSelector('#capabilities [data-relay="web"] li[data-relay-event="switched"]', {
      timeout: 15_000,
    });
    assert.match((await relay.textContent()) ?? "", new RegExp(`active ${subnet}\\.12:8081`));

    // Three slow creates through the storage VIP: the page lists them unfinished, each with
    // where it runs, until every one is final.
    const calls: Call[] = ["a", "b", "c"].map((n) => ({
      id: `dash-${n}`,
      method: "POST",
      path: `/v1/volumes?request_id=dash-${n}`,
      body: { name: `vol-${n}`, sizeBytes: 1024 * 1024 },
    }));
    const acks = await clients.client<Answer[]>("submit", calls);
    assert.ok(
      acks.every((a) => a.status === 202),
      `${JSON.stringify(acks)}\n${allLogs(cluster)}`,
    );
    const storageHolder = await cluster.holderOf(storageVip);
    await page.waitForFunction(
      (holder) =>
        [
          ...document.querySelectorAll(
            '#capabilities [data-capability="storage"] tr[data-request]',
          ),
        ].some(
          (row) =>
            /running/.test(row.textContent ?? "") && row.textContent?.includes(holder ?? "?"),
        ),
      storageHolder,
      { timeout: 10_000 },
    );
    await shot("2-capabilities-busy");
    const followed = await clients.client<Followed[]>("follow", calls);
    assert.ok(
      followed.every((f) => f.record?.state.state === "succeeded"),
      JSON.stringify(followed),
    );
    await page.waitForFunction(
      () =>
        document.querySelectorAll('#capabilities [data-capability="storage"] tr[data-request]')
          .length === 0,
      undefined,
      { timeout: 10_000 },
    );

    // The traffic index table, every node Normal, each with a chart of its last minutes.
    await page.waitForFunction(
      (ids) =>
        ids.every((id) => {
          const row = document.querySelector(`#traffic-view tr[data-traffic="${id}"]`);
          // At least two 10 s buckets: a line, not a dot.
          const points = row?.querySelector("svg polyline")?.getAttribute("points") ?? "";
          return /Normal/.test(row?.textContent ?? "") && points.split(" ").length >= 2;
        }),
      cluster.ids,
      { timeout: 45_000 },
    );
    assert.deepEqual(pageErrors, [], "no script error on the page");
    await shot("2-capabilities");
    await page.setViewportSize({ width: 390, height: 844 });
    await shot("2-capabilities-phone");
    await page.setViewportSize({ width: 1280, height: 800 });
    // Dark as the system says: the page's own colours change, not only the browser's.
    await page.emulateMedia({ colorScheme: "dark" });
    const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await shot("2-capabilities-dark");
    await page.emulateMedia({ colorScheme: "light" });
    const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(dark, light, "dark and light backgrounds differ");
  });

  it("shows a failover without a reload: new owner, the events, the coordinator's phases", async () => {
    let victim: string | undefined;
    let vip: string | undefined;
    for (const address of cluster.vipAddresses) {
      const holder = await cluster.holderOf(address);
      if (holder && holder !== viewer) [victim, vip] = [holder, address];
    }
    assert.ok(victim && vip, "a VIP held by a node other than the coordinator");
    const detectedBefore = Number(
      (await page.locator('#phases tr[data-phase="detected"] td').nth(1).textContent()) || 0,
    );
    process.kill(cluster.agentPid(victim)!, "SIGKILL");
    await page.waitForFunction(
      ([address, old]) => {
        const owner = document.querySelector(`#vips tr[data-vip="${address}"] td.owner`);
        return owner && owner.textContent !== old && /^n\d$/.test(owner.textContent ?? "");
      },
      [vip, victim] as const,
      { timeout: 15_000 },
    );
    const owner = (await shownOwner(vip))?.trim();
    const holder = await waitFor(async () => {
      const h = await cluster.holderOf(vip);
      return h && h !== victim ? h : undefined;
    }, 10_000);
    assert.equal(owner, holder, `the page shows the namespaces' holder\n${allLogs(cluster)}`);
    await page.waitForSelector(`#events tr[data-type="member-failed"]`, { timeout: 10_000 });
    await page.waitForSelector(`#events tr[data-type="vip-acquired"]`, { timeout: 10_000 });
    await page.waitForFunction(
      (before) =>
        Number(document.querySelectorAll('#phases tr[data-phase="detected"] td')[1]?.textContent) >
        before,
      detectedBefore,
      { timeout: 10_000 },
    );
    // The timeline: this failover of the VIP to its new owner, in its phases, each timed by
    // the node that did it (the coordinator, which serves this page, and the new owner).
    const failover = `#timeline tr[data-timeline="${vip}"] li[data-failover][data-to="${holder}"]`;
    const expected: [string, string][] = [
      ["detected", viewer],
      ["lease-wait", viewer],
      ["probe", holder!],
      ["address-added", holder!],
      ["announced", holder!],
    ];
    await page.waitForFunction(
      ([selector, phases]) =>
        phases.every(([phase, by]) =>
          document.querySelector(`${selector} [data-phase="${phase}"][data-by="${by}"]`),
        ),
      [failover, expected] as const,
      { timeout: 10_000 },
    );
    const shown = await page.locator(`${failover} .phase`).allTextContents();
    // The new owner's own agent tells the same story: the same phases, the same durations.
    const ownerStatus = JSON.parse(
      (
        await cluster.topology.exec(
          holder!,
          "curl",
          ["-s", "-m", "3", "http://127.0.0.1:7480/v1/status"],
          5000,
        )
      ).stdout,
    ) as { failoverMarks: { by: string; phase: string; ms: number; vip?: string }[] };
    for (const [phase, by] of expected) {
      // The newest of each (the first assignment at start is in the last minute too).
      const mark = ownerStatus.failoverMarks
        .filter((m) => m.phase === phase && m.by === by && (m.vip === vip || phase === "detected"))
        .at(-1);
      assert.ok(
        mark,
        `${holder} knows ${by}'s ${phase}: ${JSON.stringify(ownerStatus.failoverMarks)}`,
      );
      assert.ok(
        shown.some((text) => text.startsWith(`${phase} ${mark.ms} ms`)),
        `the page shows ${phase} ${mark.ms} ms as ${holder} does: ${shown.join(" | ")}`,
      );
    }
    await shot("2-failover");
  });

  it("marks one direction of a cut link in the heartbeat matrix, not its mirror", async () => {
    await waitSettled(cluster);
    const [a, b] = cluster.ids.filter((id) => id !== viewer) as [string, string];
    const cell = (row: string, col: string) =>
      page.locator(`#matrix tr[data-row="${row}"] td[data-col="${col}"]`);
    // a stops hearing b; b still hears a.
    await dropPackets(cluster, a, {
      input: [`ip saddr ${cluster.topology.host(b).address} meta l4proto udp drop`],
    });
    try {
      await page.waitForFunction(
        ([row, col]) =>
          document
            .querySelector(`#matrix tr[data-row="${row}"] td[data-col="${col}"]`)
            ?.classList.contains("cell-bad"),
        [a, b] as const,
        { timeout: 10_000 },
      );
      // a counts b's heartbeats as missed; the mirror stays fresh: b hears a.
      assert.ok(Number(await cell(a, b).getAttribute("data-missed")) > 0);
      assert.match((await cell(a, b).textContent()) ?? "", /\d+ missed/);
      await page.waitForTimeout(500);
      assert.doesNotMatch((await cell(b, a).getAttribute("class")) ?? "", /cell-bad/);
      await shot("3-one-way-cut");
    } finally {
      await clearDrops(cluster, a);
    }
    await page.waitForFunction(
      ([row, col]) =>
        !document
          .querySelector(`#matrix tr[data-row="${row}"] td[data-col="${col}"]`)
          ?.classList.contains("cell-bad"),
      [a, b] as const,
      { timeout: 10_000 },
    );
  });

  it("refuses a move without the token and performs it with the token", async () => {
    await waitSettled(cluster);
    const vip = cluster.vipAddresses[0]!;
    const from = (await cluster.holderOf(vip))!;
    const to = cluster.ids.find((id) => id !== from)!;
    const row = page.locator(`#vips tr[data-vip="${vip}"]`);
    await row.locator("select").selectOption(to);
    await row.locator("button[data-move]").click();
    await page.waitForFunction(
      () => /UNAUTHORIZED/.test(document.getElementById("result")?.textContent ?? ""),
      undefined,
      { timeout: 10_000 },
    );
    await shot("4-refused");
    assert.equal(await cluster.holderOf(vip), from, "nothing moved without the token");

    const token = readFileSync(join(cluster.dir, "api.token"), "utf8").trim();
    await page.locator("#token").fill(token);
    await page.locator("#save-token").click();
    // The table re-renders every second: select and click on the fresh row.
    await row.locator("select").selectOption(to);
    await row.locator("button[data-move]").click();
    await page.waitForFunction(
      () => /: done/.test(document.getElementById("result")?.textContent ?? ""),
      undefined,
      { timeout: 10_000 },
    );
    const moved = await waitFor(
      async () => ((await cluster.holderOf(vip)) === to ? to : undefined),
      10_000,
    );
    assert.equal(moved, to, allLogs(cluster));
    await page.waitForFunction(
      ([address, owner]) =>
        document.querySelector(`#vips tr[data-vip="${address}"] td.owner`)?.textContent === owner,
      [vip, to] as const,
      { timeout: 10_000 },
    );
    await shot("5-moved");
  });

  it("stays bounded when open for long: thousands of renders and events", async () => {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Performance.enable");
    const measure = async () => {
      await cdp.send("HeapProfiler.collectGarbage");
      const { metrics } = await cdp.send("Performance.getMetrics");
      const get = (name: string) => metrics.find((m) => m.name === name)?.value ?? 0;
      return {
        heap: get("JSHeapUsedSize"),
        nodes: get("Nodes"),
        listeners: get("JSEventListeners"),
      };
    };
    // A day of a busy cluster, compressed: the page's own render and event paths, fed with
    // the agent's real status (each render a fresh object, as from the network).
    const churn = (rounds: number) =>
      page.evaluate(async (n) => {
        const w = window as unknown as {
          render: (s: unknown) => void;
          addEvent: (r: unknown) => void;
        };
        const status = await (await fetch("/v1/status")).json();
        for (let i = 0; i < n; i += 1) {
          const copy = structuredClone(status);
          copy.term = status.term + i;
          w.render(copy);
          w.addEvent({ id: i, at: Date.now(), node: status.node, event: { type: "synthetic", i } });
        }
      }, rounds);
    await churn(500);
    const base = await measure();
    await churn(5000);
    const after = await measure();
    assert.ok(after.nodes <= base.nodes * 1.2 + 200, `DOM nodes ${base.nodes} -> ${after.nodes}`);
    assert.ok(
      after.listeners <= base.listeners + 20,
      `listeners ${base.listeners} -> ${after.listeners}`,
    );
    assert.ok(after.heap <= base.heap * 1.5 + 2e6, `JS heap ${base.heap} -> ${after.heap} bytes`);
    assert.deepEqual(pageErrors, [], "no script error on the page");
  });
});

describe("dashboard in headless Chromium, heartbeats to the coordinator only", {
  skip: skipUnlessRoot(),
}, () => {
  it("shows a link between two followers as not watched, and the links to the coordinator as heard", async () => {
    const executable = await ensureDebianPackage("chromium", ["/usr/bin/chromium"]);
    assert.ok(executable, "Debian's chromium package is needed (apt-get install chromium)");
    const star = await startCluster({
      prefix: "fipds-",
      vips: [{ host: 160 }],
      extraYaml: "heartbeats: coordinator",
    });
    let browser: Browser | undefined;
    try {
      await waitSettled(star);
      const coordinator = coordinatorOf(star);
      const [follower, other] = star.ids.filter((id) => id !== coordinator) as [string, string];
      const pageErrors: string[] = [];
      let page: Page;
      ({ browser, page } = await openPage(star, follower, executable, pageErrors));
      const cell = (row: string, col: string) =>
        page.locator(`#matrix tr[data-row="${row}"] td[data-col="${col}"]`);
      // The follower's own row: it hears the coordinator, and does not listen for the other
      // follower (which sends it nothing), so that cell is "not watched", not a silent link.
      await page.waitForFunction(
        ([row, col]) =>
          document.querySelector(`#matrix tr[data-row="${row}"] td[data-col="${col}"]`)
            ?.textContent === "not watched",
        [follower, other] as const,
        { timeout: 10_000 },
      );
      assert.doesNotMatch((await cell(follower, other).getAttribute("class")) ?? "", /cell-bad/);
      assert.match((await cell(follower, coordinator).textContent()) ?? "", /^\d+/);
      assert.doesNotMatch(
        (await cell(follower, coordinator).getAttribute("class")) ?? "",
        /cell-bad/,
      );
      mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, "7-not-watched.png"), fullPage: true });
      assert.deepEqual(pageErrors, [], "no script error on the page");
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${allLogs(star)}`, { cause: error });
    } finally {
      await browser?.close().catch(() => undefined);
      await star.destroy();
    }
  });
});
