/**
 * The mutation suite: proof that the simulator's checkers can fail. Each mutation is a named
 * one-line change (two for a rule guarded twice) to a safety or liveness rule of `src/core/`
 * or of the agent's control loop (`src/agent/control-loop.ts`, which the simulator runs in
 * its runtime mode). For each, the suite copies
 * `src/` to a temporary directory, applies the change there (the find string must occur
 * exactly once; the real tree is never touched), and runs every property check and then
 * swarm seeds against the copy (`src/sim/hunt.ts` of the copy) until an invariant fires.
 * It fails unless the unmutated copy passes the same checks and every mutation is caught
 * by an invariant or a property. A scenario-trace diff does not count: the scripts are
 * not run.
 *
 *   npm run mutants                 every mutation, up to 400 swarm seeds each
 *   npm run mutants -- --quick      every mutation, up to 60 seeds (the CI subset)
 *   npm run mutants -- --only NAME  one mutation (repeatable)
 *   npm run mutants -- --jobs N     parallel children (default 2)
 */
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { HuntResult } from "../src/sim/hunt.ts";

interface Mutation {
  readonly name: string;
  readonly rule: string;
  readonly file: string;
  readonly find: string;
  readonly replace: string;
  /** Further changes to the same file, for a rule guarded in two places at once. */
  readonly also?: readonly { readonly find: string; readonly replace: string }[];
}

const node = "src/core/node.ts";
const timing = "src/core/timing.ts";
const loop = "src/agent/control-loop.ts";

const edits = (m: Mutation) => [{ find: m.find, replace: m.replace }, ...(m.also ?? [])];

const mutations: readonly Mutation[] = [
  {
    name: "handover-without-wait",
    rule: "hand a VIP over without waiting for a release or the lease",
    file: node,
    find: "(node, i) => i === to || this.#releasedBy(vip, i, node.id, now),",
    replace: "() => true,",
  },
  {
    name: "stale-release",
    rule: "trust a release report from before the release was published",
    file: node,
    find: "if (compareVersions(peer.tableVersion, state.releasedAt[vip]!) >= 0) return true;",
    replace: "return true;",
  },
  {
    name: "no-inherited-wait",
    rule: "a new coordinator skips the wait for leases granted before its election",
    file: node,
    find: "const inherited = previous?.index === nodeIndex ? previous.anchorMs : state.electedAtMs;",
    replace: "const inherited = Number.NEGATIVE_INFINITY;",
  },
  {
    name: "lease-from-receipt",
    rule: "anchor a follower's lease at the grant's receipt instead of its own send",
    file: node,
    find: "this.#leaseExpiryMs = Math.max(this.#leaseExpiryMs, sentAt + this.#config.timers.leaseMs);",
    replace:
      "this.#leaseExpiryMs = Math.max(this.#leaseExpiryMs, now + this.#config.timers.leaseMs);",
  },
  {
    name: "no-drift-factor",
    rule: "drop the drift factor and margin from the coordinator's lease wait",
    file: timing,
    find: "return Math.ceil((timers.leaseMs * (1 + rho)) / (1 - rho)) + timers.leaseMarginMs;",
    replace: "return timers.leaseMs;",
  },
  {
    name: "hold-after-expiry",
    rule: "keep VIPs after the lease expired",
    file: node,
    find: "now < this.#leaseExpiryMs - releaseGuardMs(this.#config.timers) &&",
    replace: "true &&",
  },
  {
    name: "no-check-quorum",
    rule: "a coordinator that hears no majority does not step down",
    file: node,
    find: "if (!this.#checkQuorum(now)) {",
    replace: "if (false) {",
  },
  {
    name: "vote-despite-coordinator",
    rule: "vote although a coordinator was heard within the election timeout",
    file: node,
    find: "now - this.#lastCoordinatorContactMs >= t.electionTimeoutMs &&",
    replace: "true &&",
  },
  {
    name: "grant-outside-window",
    rule: "grant leases however long ago a majority acknowledged a round",
    file: node,
    find: "acknowledgedAt !== undefined && now < acknowledgedAt + grantWindowMs(this.#config.timers)",
    replace: "acknowledgedAt !== undefined",
  },
  {
    name: "refuse-the-refuser",
    rule: "a node in a pre-vote refuses one that refused its own: the first election splits",
    file: node,
    find: "granted = fromIndex < this.#index || this.#preVoteRefusedBy.has(from);",
    replace: "granted = fromIndex < this.#index;",
  },
  {
    name: "double-vote",
    rule: "vote for a second candidate in the same term",
    file: node,
    find: "(this.#votedFor === undefined || this.#votedFor === from) &&",
    replace: "true &&",
  },
  {
    name: "vote-right-after-boot",
    rule: "a restarted node votes at once, though it forgot what it acknowledged",
    file: node,
    find: "now - this.#bootMs >= grantWindowMs(t) + leaseSafeWaitMs(t) &&",
    replace: "true &&",
  },
  {
    name: "restart-unseen-by-successor",
    rule: "a new coordinator takes a member's incarnation from what it hears now, so a restart during its election goes unnoticed",
    file: node,
    find: "this.#grantedIncarnation.get(node.id) ?? this.#peers.get(node.id)?.incarnation,",
    replace: "this.#peers.get(node.id)?.incarnation,",
  },
  {
    name: "short-restart-abstention",
    rule: "a restarted node abstains one election timeout only, not until leases it backed end",
    file: node,
    find: "now - this.#bootMs >= grantWindowMs(t) + leaseSafeWaitMs(t) &&",
    replace: "now - this.#bootMs >= t.electionTimeoutMs &&",
  },
  {
    name: "no-release-guard",
    rule: "release VIPs at the very end of the lease instead of two margins early",
    file: timing,
    find: "return 2 * timers.leaseMarginMs;",
    replace: "return 0;",
  },
  {
    name: "coordinator-lease-unacknowledged",
    rule: "a coordinator's own lease runs from its latest heartbeat, acknowledged or not",
    file: node,
    find: "acknowledgedAt + this.#config.timers.leaseMs,",
    replace: "now + this.#config.timers.leaseMs,",
  },
  {
    name: "stale-round-ack",
    rule: "keep the round number of the previous coordinator when the term changes",
    file: node,
    find: "this.#roundSeen = 0; // rounds are per coordinator: an older one's must not ack the new one's",
    replace: "// (round number kept across terms)",
  },
  {
    name: "no-ack-lag-check",
    rule: "treat a member whose acknowledgements lag as healthy",
    file: node,
    find: "} else if (now - peer.lastTimelyAckMs > t.suspectAfterMs + t.heartbeatIntervalMs) {",
    replace: "} else if (false) {",
  },
  {
    name: "speak-before-release-after-stall",
    rule: "after a stall that outlived the lease, send before the VIPs are removed",
    file: node,
    find: "if (leaseExpired) {",
    replace: "if (false) {",
  },
  {
    name: "star-no-relay",
    rule: "heartbeats coordinator: a follower counts only the nodes it hears itself",
    file: node,
    find: "this.#heard(coordinator, now) && (this.#peers.get(coordinator)?.hears.includes(id) ?? false)",
    replace: "false",
  },
  {
    name: "no-stall-shift",
    rule: "count a node's own stall as its peers' silence",
    file: node,
    find: "peer.lastHeardMs = Math.min(now, peer.lastHeardMs + stalledMs);",
    replace: "void 0;",
  },
  {
    name: "no-stall-grace",
    rule: "check-quorum gives the majority no time after the coordinator's own stall",
    file: node,
    find: "if (now - this.#stallEndedMs < this.#config.timers.electionTimeoutMs) return true;",
    replace: "void 0;",
  },
  // The agent's control loop, hunted through the simulator's runtime mode.
  {
    name: "vote-not-persisted",
    rule: "the control loop sends a vote without writing it to the state file first",
    file: loop,
    find: "this.#p.persistVote(effect.state);",
    replace: "void 0;",
  },
  {
    name: "inputs-before-stall",
    rule: "the control loop hands datagrams read after a pause to the core before the stall",
    file: loop,
    find: 'if (input.type !== "tick" && input.type !== "stall") this.#catchStall(input.nowMs);',
    replace: "void 0;",
  },
  {
    name: "send-after-stall",
    rule: "the control loop sends the rest of a step's datagrams after the process was stopped between two of them",
    file: loop,
    find: "if (nowMs - this.#sendClockMs >= this.#monitor.stallThresholdMs) {",
    replace: "if (false) {",
  },
  {
    name: "renew-unchecked",
    rule: "renew a VIP's kernel lifetime without checking that it is still there and leased (a renewal re-creates a missing address)",
    file: loop,
    find: "if (listed === undefined) {",
    replace: "if (false) {",
    also: [
      { find: "if (listed.dadFailed) {", replace: "if (listed?.dadFailed) {" },
      { find: "if (listed.tentative) {", replace: "if (listed?.tentative) {" },
      {
        find: "if (this.#stopped || !this.core.leaseValid(this.#p.now())) return;",
        replace: "if (this.#stopped) return;",
      },
    ],
  },
];

const root = resolve(import.meta.dirname, "..");

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string", multiple: true },
      jobs: { type: "string", default: "2" },
      child: { type: "string" },
      seeds: { type: "string" },
      all: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.child !== undefined) return child(values.child, Number(values.seeds), values.all);

  const seeds = values.quick ? 60 : 400;
  const timeoutMs = (values.quick ? 5 : 20) * 60_000;
  const selected = values.only ? mutations.filter((m) => values.only!.includes(m.name)) : mutations;
  if (values.only && selected.length !== values.only.length) {
    process.stderr.write(
      `unknown mutation in --only; known: ${mutations.map((m) => m.name).join(", ")}\n`,
    );
    return 2;
  }
  for (const mutation of selected) {
    const text = readFileSync(join(root, mutation.file), "utf8");
    for (const edit of edits(mutation)) {
      const count = text.split(edit.find).length - 1;
      if (count !== 1) {
        process.stderr.write(
          `${mutation.name}: "${edit.find}" occurs ${count} times in ${mutation.file}, not once\n`,
        );
        return 2;
      }
    }
  }

  const work = mkdtempSync(join(tmpdir(), "floatip-mutants-"));
  const started = Date.now();
  try {
    const jobs: { label: string; mutation: Mutation | undefined }[] = [
      { label: "(none: the unmutated tree)", mutation: undefined },
      ...selected.map((m) => ({ label: m.name, mutation: m })),
    ];
    process.stdout.write(
      `mutation suite: ${selected.length} mutations, up to ${seeds} swarm seeds each, ${values.jobs} at a time\n`,
    );
    const results = await runAll(
      jobs.map((job, i) => async () => {
        const dir = join(work, String(i));
        prepareCopy(dir, job.mutation);
        const t0 = Date.now();
        const result = await runChild(dir, seeds, job.mutation === undefined, timeoutMs);
        const seconds = ((Date.now() - t0) / 1000).toFixed(0);
        process.stdout.write(`  ${job.label}: ${summary(result)} (${seconds} s)\n`);
        return result;
      }),
      Number(values.jobs),
    );
    return report(jobs, results, seeds, started);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** A copy of `src/` (as an ES module package), with the mutation applied if any. */
function prepareCopy(dir: string, mutation: Mutation | undefined): void {
  mkdirSync(dir, { recursive: true });
  cpSync(join(root, "src"), join(dir, "src"), { recursive: true });
  writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
  if (!mutation) return;
  const path = join(dir, mutation.file);
  const text = readFileSync(path, "utf8");
  let mutated = text;
  for (const edit of edits(mutation)) mutated = mutated.replace(edit.find, edit.replace);
  writeFileSync(path, mutated);
}

type ChildOutcome = HuntResult | { readonly error: string };

function runChild(
  dir: string,
  seeds: number,
  all: boolean,
  timeoutMs: number,
): Promise<ChildOutcome> {
  const args = [import.meta.filename, "--child", dir, "--seeds", String(seeds)];
  if (all) args.push("--all");
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        try {
          done(JSON.parse(out) as HuntResult);
          return;
        } catch {
          // fall through: report what the child said
        }
      }
      const why = signal ? `killed by ${signal} (timeout)` : `exit ${code}`;
      done({ error: `${why}: ${err.trim().split("\n").slice(-3).join(" | ")}` });
    });
  });
}

async function child(dir: string, seeds: number, all: boolean): Promise<number> {
  const { hunt } = (await import(pathToFileURL(join(dir, "src/sim/hunt.ts")).href)) as {
    hunt: typeof import("../src/sim/hunt.ts").hunt;
  };
  const result = hunt({ seeds, firstSeed: 1, stopAtFirst: !all });
  process.stdout.write(JSON.stringify(result));
  return 0;
}

async function runAll<T>(tasks: (() => Promise<T>)[], parallel: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const index = next;
      next += 1;
      results[index] = await tasks[index]!();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return results;
}

function caught(result: ChildOutcome): boolean {
  return !("error" in result) && (result.properties.length > 0 || result.swarm !== undefined);
}

function summary(result: ChildOutcome): string {
  if ("error" in result) return `error: ${result.error}`;
  const parts: string[] = [];
  if (result.swarm) {
    parts.push(`${result.swarm.kind} at seed ${result.swarm.seed} (${result.swarm.setting})`);
  }
  for (const p of result.properties) parts.push(`property ${p.name}`);
  if (result.exceptions.length > 0) parts.push(`${result.exceptions.length} exceptions`);
  return parts.length > 0 ? parts.join("; ") : `nothing in ${result.seedsRun} seeds`;
}

function report(
  jobs: readonly { label: string; mutation: Mutation | undefined }[],
  results: readonly ChildOutcome[],
  seeds: number,
  started: number,
): number {
  const rows: string[][] = [["mutation", "rule broken", "caught by", "swarm seeds needed"]];
  let failures = 0;
  let caughtCount = 0;
  jobs.forEach((job, i) => {
    const result = results[i]!;
    if (!job.mutation) {
      const clean =
        !("error" in result) &&
        !caught(result) &&
        result.exceptions.length === 0 &&
        result.seedsRun === seeds;
      if (!clean) {
        failures += 1;
        process.stdout.write(`\nBASELINE NOT CLEAN: ${summary(result)}\n`);
        if (!("error" in result)) {
          for (const p of result.properties) process.stdout.write(`  ${p.name}: ${p.failure}\n`);
          if (result.swarm) process.stdout.write(`  ${result.swarm.detail}\n`);
          for (const e of result.exceptions) process.stdout.write(`  ${e}\n`);
        }
      }
      return;
    }
    const by: string[] = [];
    let needed = "-";
    if (!("error" in result)) {
      if (result.swarm) {
        by.push(`${result.swarm.kind} (${result.swarm.setting})`);
        needed = String(result.swarm.seedsRun);
      } else {
        needed = `none in ${result.seedsRun}`;
      }
      for (const p of result.properties) by.push(`property ${p.name}`);
    }
    if (caught(result)) caughtCount += 1;
    else {
      failures += 1;
      by.push(`NOT CAUGHT${"error" in result ? ` (${result.error})` : ""}`);
    }
    rows.push([job.mutation.name, job.mutation.rule, by.join("; "), needed]);
  });
  process.stdout.write(`\n${table(rows)}\n`);
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  process.stdout.write(
    failures === 0
      ? `mutants: ${rows.length - 1} of ${rows.length - 1} caught, baseline clean, ${minutes} min\n`
      : `mutants: FAILED (${failures} problems; ${caughtCount} of ${rows.length - 1} caught), ${minutes} min\n`,
  );
  return failures === 0 ? 0 : 1;
}

function table(rows: readonly string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: readonly string[]) =>
    `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(" | ")} |`;
  const rule = `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`;
  return [line(rows[0]!), rule, ...rows.slice(1).map(line)].join("\n");
}

process.exitCode = await main();
