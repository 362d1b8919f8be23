/**
 * `floatip demo [--script] [--duration SECONDS] [--prefix NAME]`: a live three-node cluster in
 * network namespaces on this machine (src/lab/cluster.ts): real agents with their supervisors,
 * three VIPs (round-robin with preferred n1 and immediate failback, hash, weighted), a tiny
 * HTTP service per node that answers its name, and a client namespace that asks the VIPs.
 *
 * In a terminal it is interactive: keys kill agents, cut links and hand VIPs over, and an
 * event line tells who took over and how long the client went without an answer. Without a
 * terminal (or with --script) it runs a short scripted tour by itself and exits 0 when the
 * takeover and the failback were both seen by the client. Everything it creates is torn down
 * on every way out: normal end, `q`, Ctrl-C, SIGINT/SIGTERM/SIGHUP and errors.
 */
import { rmSync } from "node:fs";
import { parseArgs } from "node:util";
import { type ApiForward, forwardApi } from "../../lab/api-forward.ts";
import { type LiveCluster, startCluster } from "../../lab/cluster.ts";

export const usage = "usage: floatip demo [--script] [--duration SECONDS] [--prefix NAME]\n";
const rootMessage =
  "floatip demo creates network namespaces and needs root: sudo bash scripts/demo.sh\n";
const vipHosts = [100, 101, 102] as const;
const vipLabels = ["round-robin, preferred n1, failback immediate", "hash", "weighted"];
/** How long the cluster may take to place every VIP at start (agents boot, elect, probe). */
const startupMsMax = 30_000;
/** How long one takeover or failback may take before the demo calls it missing. */
const moveMsMax = 20_000;
/** Client polling period while an action is being watched. */
const watchEveryMs = 100;
const askTimeoutMs = 250;
const eventsShown = 8;
/** The dashboard's URL on this machine, once the demo has forwarded n1's API. */
let dashboardUrl: string | undefined;

interface DemoOptions {
  readonly script: boolean;
  readonly durationMs: number;
  readonly prefix: string;
}

/** One look at the cluster: who holds each VIP, who answers the client, who coordinates. */
interface Snapshot {
  readonly holders: ReadonlyMap<string, string>;
  readonly answers: ReadonlyMap<string, string | undefined>;
  readonly coordinator: string;
}

/** The outcome of watching one VIP after an action, as the client saw it. */
interface Move {
  readonly answer: string;
  /** From the action to the first answer that satisfied the watch. */
  readonly afterMs: number;
  /** From the last answer of the previous owner (or the action) to that first answer. */
  readonly gapMs: number;
  readonly failedRequests: number;
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseOptions(args);
  if (parsed === "help") {
    process.stdout.write(usage);
    return 0;
  }
  if (typeof parsed === "string") {
    process.stderr.write(`floatip demo: ${parsed}\n${usage}`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write(rootMessage);
    return 2;
  }
  const interactive = !parsed.script && process.stdin.isTTY === true;
  return runDemo(parsed, interactive);
}

function parseOptions(args: string[]): DemoOptions | string {
  let values: { script?: boolean; duration?: string; prefix?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        script: { type: "boolean", default: false },
        duration: { type: "string" },
        prefix: { type: "string", default: "fipdemo-" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    return (error as Error).message;
  }
  if (values.help) return "help";
  const interactive = !values.script && process.stdin.isTTY === true;
  const seconds =
    values.duration === undefined ? (interactive ? 120 : 30) : Number(values.duration);
  if (!Number.isFinite(seconds) || seconds < 5 || seconds > 3600) {
    return `--duration ${values.duration}: give the number of seconds, from 5 to 3600`;
  }
  const prefix = values.prefix ?? "fipdemo-";
  if (!/^[a-z0-9_-]{1,12}$/.test(prefix)) {
    return `--prefix ${prefix}: up to 12 lower-case letters, digits, '-' or '_'`;
  }
  return { script: values.script === true, durationMs: seconds * 1000, prefix };
}

async function runDemo(options: DemoOptions, interactive: boolean): Promise<number> {
  const deadline = Date.now() + options.durationMs;
  let cluster: LiveCluster | undefined;
  let dashboard: ApiForward | undefined;
  let restoreTerminal = () => {};
  // A signal ends the process at once: the lab's exit hook kills every process it started and
  // deletes every namespace synchronously, so only the terminal and the temporary directory
  // are left to this handler.
  const onSignal = (signal: NodeJS.Signals) => {
    restoreTerminal();
    process.stdout.write(`\nfloatip demo: ${signal}: tearing the cluster down\n`);
    if (cluster) rmSync(cluster.dir, { recursive: true, force: true });
    process.exit(signal === "SIGINT" ? 130 : signal === "SIGHUP" ? 129 : 143);
  };
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  for (const signal of signals) process.on(signal, onSignal);
  try {
    say(`floatip demo: starting 3 agents in namespaces ${options.prefix}n1..n3 (and a client)`);
    cluster = await startCluster({
      prefix: options.prefix,
      vips: [
        { host: vipHosts[0], policy: "round-robin", preferred: "n1", failback: "immediate" },
        { host: vipHosts[1], policy: "hash" },
        { host: vipHosts[2], policy: "weighted" },
      ],
    });
    say(`config: ${cluster.configPath}`);
    const ready = await waitUntilPlaced(cluster, Math.min(startupMsMax, deadline - Date.now()));
    if (!ready) {
      say("floatip demo: the cluster did not place every VIP in time; last agent log lines:");
      for (const id of cluster.ids) say(indent(cluster.logs(id).split("\n").slice(-5).join("\n")));
      return 1;
    }
    say(`every VIP is placed after ${seconds(ready)}`);
    try {
      // n3's agent: the scripted tour kills n1 (the first VIP's preferred owner), and a page
      // served by a dead agent shows nothing until its supervisor has restarted it.
      dashboard = await forwardApi(cluster.topology, "n3", cluster.dir);
      dashboardUrl = dashboard.url;
      const port = new URL(dashboard.url).port;
      say(
        `dashboard: ${dashboard.url} (n3's agent; from another machine: ssh -L ${port}:127.0.0.1:${port} THIS-HOST)`,
      );
    } catch (error) {
      say(`floatip demo: no dashboard URL: ${(error as Error).message}`);
    }
    if (interactive) {
      const session = new InteractiveSession(cluster, deadline);
      restoreTerminal = () => session.restoreTerminal();
      return await session.run();
    }
    return await scriptedTour(cluster, deadline);
  } finally {
    restoreTerminal();
    for (const signal of signals) process.off(signal, onSignal);
    await dashboard?.close();
    if (cluster) {
      say("floatip demo: tearing the cluster down");
      try {
        await cluster.destroy();
      } catch (error) {
        process.stderr.write(`floatip demo: cleanup: ${(error as Error).message}\n`);
      }
    }
  }
}

/** Waits until every VIP has a holder; returns the time it took, or undefined. */
async function waitUntilPlaced(
  cluster: LiveCluster,
  timeoutMs: number,
): Promise<number | undefined> {
  const startedAt = Date.now();
  for (let attempt = 0; attempt < 1000 && Date.now() - startedAt < timeoutMs; attempt += 1) {
    const snapshot = await look(cluster);
    if (cluster.vipAddresses.every((vip) => snapshot.holders.has(vip)))
      return Date.now() - startedAt;
    await sleep(250);
  }
  return undefined;
}

async function look(cluster: LiveCluster): Promise<Snapshot> {
  const holders = new Map<string, string>();
  const held = await Promise.all(cluster.ids.map((id) => cluster.heldVips(id).catch(() => [])));
  cluster.ids.forEach((id, i) => {
    for (const vip of held[i] ?? []) {
      const other = holders.get(vip);
      holders.set(vip, other ? `${other}+${id} (CONFLICT)` : id);
    }
  });
  const answers = await Promise.all(cluster.vipAddresses.map((vip) => cluster.ask(vip, 400)));
  return {
    holders,
    answers: new Map(cluster.vipAddresses.map((vip, i) => [vip, answers[i]])),
    coordinator: await coordinatorText(cluster),
  };
}

/**
 * Term and coordinator from the first agent that answers GET /v1/status (what `floatip status
 * --json` shows). The request is made with curl inside the node's namespace because the API
 * listens on that namespace's loopback and curl is far lighter than a CLI process per second.
 */
async function coordinatorText(cluster: LiveCluster): Promise<string> {
  for (const id of cluster.ids) {
    if (cluster.agentPid(id) === undefined) continue;
    try {
      const result = await cluster.topology.exec(
        id,
        "curl",
        ["-s", "-m", "0.5", "http://127.0.0.1:7480/v1/status"],
        2000,
      );
      const status = JSON.parse(result.stdout) as { term?: number; coordinator?: string | null };
      const coordinator = status.coordinator ?? "none (election running)";
      return `term ${status.term ?? "?"}, coordinator ${coordinator} (as ${id} sees it)`;
    } catch {
      // This agent is down or restarting: ask the next one.
    }
  }
  return "unknown (no agent API answers; holders below come from ip addr)";
}

function renderScreen(
  cluster: LiveCluster,
  snapshot: Snapshot,
  header: string[],
  footer: string[],
): string {
  const rows = [["VIP", "POLICY", "HOLDER (ip addr)", "CLIENT GETS"]];
  cluster.vipAddresses.forEach((vip, i) => {
    const answer = snapshot.answers.get(vip);
    rows.push([vip, vipLabels[i] ?? "", snapshot.holders.get(vip) ?? "-", answer ?? "no answer"]);
  });
  const nodes = [["NODE", "AGENT PID", "HOLDS"]];
  for (const id of cluster.ids) {
    const pid = cluster.agentPid(id);
    const holds = cluster.vipAddresses.filter((vip) => snapshot.holders.get(vip)?.includes(id));
    nodes.push([
      id,
      pid === undefined ? "down" : String(pid),
      holds.map(shortVip).join(" ") || "-",
    ]);
  }
  return [
    ...header,
    `cluster: ${snapshot.coordinator}`,
    "",
    ...table(rows),
    "",
    ...table(nodes),
    ...footer,
  ].join("\n");
}

/**
 * Polls `vip` from the client every 100 ms until `wanted(answer)` holds or `timeoutMs`
 * passes. Answers that do not satisfy the watch (the old owner still serving) move the start
 * of the gap forward, so the gap is what the client really went without.
 */
async function watch(
  cluster: LiveCluster,
  vip: string,
  wanted: (answer: string, failedRequests: number) => boolean,
  startedAt: number,
  timeoutMs: number,
  stop?: AbortSignal,
): Promise<Move | undefined> {
  let lastOtherAt = startedAt;
  let failedRequests = 0;
  for (let attempt = 0; attempt < 2000 && Date.now() - startedAt < timeoutMs; attempt += 1) {
    if (stop?.aborted) return undefined;
    const answer = await cluster.ask(vip, askTimeoutMs);
    const now = Date.now();
    if (answer !== undefined && wanted(answer, failedRequests)) {
      return { answer, afterMs: now - startedAt, gapMs: now - lastOtherAt, failedRequests };
    }
    if (answer === undefined) failedRequests += 1;
    else lastOtherAt = now;
    await sleep(watchEveryMs);
  }
  return undefined;
}

function moveText(vip: string, from: string, move: Move, after: string): string {
  const what =
    move.answer === from
      ? `${vip} came back on ${from} (its restarted agent took it again before another node did)`
      : `${vip} moved from ${from} to ${move.answer}`;
  return (
    `${what} ${seconds(move.afterMs)} after ${after}; ` +
    `the client went ${seconds(move.gapMs)} without an answer (${move.failedRequests} failed request${move.failedRequests === 1 ? "" : "s"})`
  );
}

/** Waits until the supervisor of `id` runs an agent other than `oldPid`. */
async function waitForRestart(
  cluster: LiveCluster,
  id: string,
  oldPid: number,
  timeoutMs: number,
  stop?: AbortSignal,
) {
  const startedAt = Date.now();
  for (let attempt = 0; attempt < 1000 && Date.now() - startedAt < timeoutMs; attempt += 1) {
    if (stop?.aborted) return undefined;
    const pid = cluster.agentPid(id);
    if (pid !== undefined && pid !== oldPid) return { pid, afterMs: Date.now() - startedAt };
    await sleep(50);
  }
  return undefined;
}

async function scriptedTour(cluster: LiveCluster, deadline: number): Promise<number> {
  const left = () => Math.max(0, deadline - Date.now());
  const screen = async (title: string) => {
    say(`\n==== ${title}`);
    say(renderScreen(cluster, await look(cluster), [], []));
  };
  const vip = cluster.vipAddresses[0]!;
  await screen("status (scripted tour; run it in a terminal for the interactive keys)");
  const owner = await cluster.holderOf(vip);
  const pid = owner === undefined ? undefined : cluster.agentPid(owner);
  if (owner === undefined || pid === undefined) {
    say(`floatip demo: ${vip} has no owner with a running agent; cannot run the tour`);
    return 1;
  }

  // The whole node dies, supervisor first so that nothing restarts the agent or removes its
  // VIPs: the kernel drops them when their lifetime runs out, and the other agents take over.
  const supervisorPid = cluster.agents.get(owner)?.pid;
  say(
    `\n==== step 1: SIGKILL ${owner}, owner of ${vip}: its supervisor, then its agent (pid ${pid})`,
  );
  const killedAt = Date.now();
  if (supervisorPid !== undefined) process.kill(supervisorPid, "SIGKILL");
  process.kill(pid, "SIGKILL");
  const takeover = await watch(
    cluster,
    vip,
    (a) => a !== owner,
    killedAt,
    Math.min(moveMsMax, left()),
  );
  if (!takeover) {
    say(`floatip demo: no other node answered for ${vip} within ${seconds(Date.now() - killedAt)}`);
    return 1;
  }
  say(`takeover: ${moveText(vip, owner, takeover, "the kill")}`);
  if (takeover.afterMs - takeover.gapMs > 500) {
    say(
      `  (nobody was left on ${owner} to remove the VIP: its service kept answering until the ` +
        "kernel dropped the address when its lifetime, 3 s here, ran out)",
    );
  }
  await screen("status after the takeover");

  say(`\n==== step 2: restart ${owner} (supervisor and agent)`);
  cluster.startAgent(owner);
  const restart = await waitForRestart(cluster, owner, pid, Math.min(10_000, left()));
  if (!restart) {
    say(`floatip demo: ${owner}'s agent did not start in time`);
    return 1;
  }
  const restartedAt = Date.now();
  say(`restart: ${owner}'s agent runs again as pid ${restart.pid}`);
  if (owner === "n1") {
    const failback = await watch(
      cluster,
      vip,
      (a) => a === owner,
      restartedAt,
      Math.min(moveMsMax, left()),
    );
    if (!failback) {
      say(
        `floatip demo: ${vip} did not fail back to ${owner} within ${seconds(Date.now() - restartedAt)}`,
      );
      return 1;
    }
    say(`failback: ${moveText(vip, takeover.answer, failback, `${owner}'s restart`)}`);
  } else {
    say(`${owner} is not the preferred node of ${vip}, so no failback is expected`);
  }
  await screen("status at the end of the tour");
  say("\nfloatip demo: tour complete");
  return 0;
}

/**
 * The interactive screen: redraws every second, reads single keys in raw mode and runs one
 * action at a time, each followed by a bounded watch of the VIPs it should move.
 */
class InteractiveSession {
  private readonly cluster: LiveCluster;
  private readonly deadline: number;
  private readonly events: string[] = [];
  private readonly linksDown = new Set<string>();
  private awaitingLinkNode = false;
  private busy = false;
  private quit: number | undefined;
  private snapshot: Snapshot | undefined;
  private rawMode = false;
  /** Aborted on quit, so that running watches end instead of polling a torn-down cluster. */
  private readonly stop = new AbortController();
  private readonly onKey = (chunk: Buffer) => {
    for (const key of chunk.toString()) this.key(key);
  };

  constructor(cluster: LiveCluster, deadline: number) {
    this.cluster = cluster;
    this.deadline = deadline;
  }

  async run(): Promise<number> {
    const stdin = process.stdin;
    stdin.setRawMode(true);
    this.rawMode = true;
    stdin.resume();
    stdin.on("data", this.onKey);
    let lastPlain = "";
    for (let tick = 0; tick < 86_400 && this.quit === undefined; tick += 1) {
      if (Date.now() >= this.deadline) {
        this.event("demo time is up (--duration); quitting");
        this.quit = 0;
        break;
      }
      this.snapshot = await look(this.cluster);
      const screen = this.render();
      if (process.stdout.isTTY) process.stdout.write(`\x1b[H\x1b[2J${screen}\n`);
      else if (screen !== lastPlain) say(`\n${screen}`);
      lastPlain = screen;
      await sleep(1000);
    }
    this.stop.abort();
    return this.quit ?? 0;
  }

  restoreTerminal(): void {
    process.stdin.off("data", this.onKey);
    if (this.rawMode) process.stdin.setRawMode(false);
    this.rawMode = false;
    process.stdin.pause();
  }

  private render(): string {
    const remaining = Math.max(0, Math.round((this.deadline - Date.now()) / 1000));
    const header = [`floatip demo: live cluster (ends in ${remaining} s; q quits)`];
    if (dashboardUrl) header.push(`dashboard: ${dashboardUrl}`);
    const downs = [...this.linksDown].join(" ");
    const footer = [
      "",
      `links down: ${downs || "none"}`,
      "keys: 1/2/3 SIGKILL that node's agent (its supervisor removes the VIPs and restarts it)",
      "      l then 1/2/3 toggle that node's link down/up    t SIGTERM the owner of the first VIP",
      "      q quit",
      this.awaitingLinkNode ? "link of which node? press 1, 2 or 3" : "",
      "events:",
      ...this.events.slice(-eventsShown).map((e) => `  ${e}`),
    ];
    return renderScreen(this.cluster, this.snapshot!, header, footer);
  }

  private event(text: string): void {
    const time = new Date().toISOString().slice(11, 19);
    this.events.push(`${time} ${text}`);
    if (!process.stdout.isTTY) say(`event: ${text}`);
  }

  private key(key: string): void {
    if (key === "q" || key === "\x03") {
      this.quit = key === "q" ? 0 : 130;
      return;
    }
    const node = /^[1-3]$/.test(key) ? `n${key}` : undefined;
    if (this.awaitingLinkNode) {
      this.awaitingLinkNode = false;
      if (node) this.start(() => this.toggleLink(node));
      return;
    }
    if (key === "l") this.awaitingLinkNode = true;
    else if (node) this.start(() => this.kill(node, "SIGKILL"));
    else if (key === "t") this.start(() => this.terminateFirstOwner());
  }

  private start(action: () => Promise<void>): void {
    if (this.busy) {
      this.event("still watching the last action; try again in a moment");
      return;
    }
    this.busy = true;
    action()
      .catch((error: unknown) => this.event(`action failed: ${(error as Error).message}`))
      .finally(() => {
        this.busy = false;
      });
  }

  private heldBy(id: string): string[] {
    const holders = this.snapshot?.holders ?? new Map<string, string>();
    return this.cluster.vipAddresses.filter((vip) => holders.get(vip) === id);
  }

  private async kill(id: string, signal: "SIGKILL" | "SIGTERM"): Promise<void> {
    const pid = this.cluster.agentPid(id);
    if (pid === undefined) {
      this.event(`${id}'s agent is not running (the supervisor is restarting it or gave up)`);
      return;
    }
    const held = this.heldBy(id);
    const at = Date.now();
    process.kill(pid, signal);
    this.event(
      `${signal} ${id}'s agent (pid ${pid}); it held ${held.map(shortVip).join(" ") || "no VIP"}`,
    );
    const moves = await this.watchAway(id, held, at, `the ${signal}`);
    const restart = await waitForRestart(this.cluster, id, pid, 10_000, this.stop.signal);
    if (this.stop.signal.aborted) return;
    this.event(
      restart
        ? `the supervisor restarted ${id}'s agent as pid ${restart.pid}`
        : `${id}'s agent did not come back within 10 s`,
    );
    const first = this.cluster.vipAddresses[0]!;
    const takenBy = moves.get(first)?.answer;
    if (id === "n1" && takenBy && takenBy !== "n1")
      await this.watchFailback(Date.now(), "n1's restart", takenBy);
  }

  private async terminateFirstOwner(): Promise<void> {
    const owner = this.snapshot?.holders.get(this.cluster.vipAddresses[0]!);
    if (owner === undefined || owner.includes("+")) {
      this.event("the first VIP has no single owner right now");
      return;
    }
    await this.kill(owner, "SIGTERM");
  }

  private async toggleLink(id: string): Promise<void> {
    const down = !this.linksDown.has(id);
    const held = this.heldBy(id);
    const at = Date.now();
    await this.cluster.topology.setLink(id, down ? "down" : "up");
    if (down) this.linksDown.add(id);
    else this.linksDown.delete(id);
    this.event(`link of ${id} ${down ? "down" : "up"}`);
    if (down) await this.watchAway(id, held, at, `${id}'s link went down`);
    else if (id === "n1") {
      const before = this.snapshot?.answers.get(this.cluster.vipAddresses[0]!);
      if (before !== "n1") await this.watchFailback(at, "n1's link came back", before ?? "nobody");
    }
  }

  /** Watches `id`'s VIPs until another node answers for each; returns the moves seen. */
  private async watchAway(
    id: string,
    vips: string[],
    at: number,
    what: string,
  ): Promise<Map<string, Move>> {
    const seen = new Map<string, Move>();
    // After a gap, an answer from `id` itself also ends the watch: a restarted agent may
    // take its VIP back before the others moved it.
    const moves = vips.map((vip) =>
      watch(
        this.cluster,
        vip,
        (a, failed) => a !== id || failed > 0,
        at,
        moveMsMax,
        this.stop.signal,
      ),
    );
    for (const [i, move] of (await Promise.all(moves)).entries()) {
      if (this.stop.signal.aborted) return seen;
      const vip = vips[i]!;
      if (move) seen.set(vip, move);
      this.event(move ? moveText(vip, id, move, what) : `${vip}: no other node answered in 20 s`);
    }
    return seen;
  }

  /** Watches the first VIP (preferred n1, immediate failback) until n1 answers for it again. */
  private async watchFailback(at: number, what: string, before: string): Promise<void> {
    const vip = this.cluster.vipAddresses[0]!;
    const move = await watch(this.cluster, vip, (a) => a === "n1", at, moveMsMax, this.stop.signal);
    if (this.stop.signal.aborted) return;
    this.event(move ? moveText(vip, before, move, what) : `${vip} did not fail back to n1 in 20 s`);
  }
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) =>
    Math.max(...rows.map((r) => (r[column] ?? "").length)),
  );
  return rows.map((r) =>
    r
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join("  ")
      .trimEnd(),
  );
}

function shortVip(vip: string): string {
  return `.${vip.split(".").at(-1)}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((line) => `    ${line}`)
    .join("\n");
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
