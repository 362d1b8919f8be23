/**
 * Scenario scripts in the raft "datadriven" style: each block is one or more commands, a
 * line `----`, and the expected output (the simulator's trace while the commands ran, then
 * what `status` printed). The diff of a script is the behaviour change; regenerate with
 * FLOATIP_REWRITE=1.
 *
 * Commands:
 *   cluster nodes=n1:100,n2:50,n3:10 vips=198.18.0.100:round-robin:n1:immediate,... [seed=1] [profile=lan]
 *           [timers=lan50]      `lan` with the 50 ms timers the scripts were written for (lan50Timers)
 *           [runtime=yes]       drive the agent's own control loop (the simulator's runtime mode)
 *   run MS                      advance virtual time
 *   crash N | restart N         power loss / boot (new incarnation)
 *   kill-agent N MS             SIGKILL the agent; its supervisor removes addresses after MS
 *   shutdown N                  SIGTERM: hand over and leave
 *   partition A B | C D         symmetric partition between groups;  block A B: one way A -> B
 *   heal                        remove every partition
 *   health N up|down            node's own health checks
 *   move VIP N via M | unpin VIP via M | drain N via M | undrain N via M   administrative commands
 *   foreign VIP on|off          a host outside the cluster configures the VIP
 *   pause N MS | resume N       SIGSTOP N's agent for MS of real time (SIGCONT then), or now
 *   clock N +MS | clock N -MS   step N's wall clock
 *   delay A B MIN MAX | delay A B off   one-way delay A -> B (A or B may be *)
 *   hold A B | release A B      hold datagrams A -> B as they arrive / deliver them and stop
 *   deliver A B [TYPE] | drop A B [TYPE]   the oldest held datagram A -> B (of that type)
 *   held                        the held datagrams
 *   status                      roles, terms and holders
 */
import { lan50Timers, profiles } from "../config/profiles.ts";
import type { Failback, PlacementPolicy, ProfileName } from "../config/types.ts";
import type { PlacementVip } from "../core/placement/types.ts";
import { Simulator } from "./simulator.ts";

export interface ScenarioBlock {
  readonly commands: readonly string[];
  readonly expected: string;
  readonly line: number;
}

export function parseScenario(text: string): ScenarioBlock[] {
  const blocks: ScenarioBlock[] = [];
  const lines = text.split("\n");
  let i = 0;
  while (i < lines.length) {
    while (i < lines.length && (lines[i]!.trim() === "" || lines[i]!.startsWith("#"))) i += 1;
    if (i >= lines.length) break;
    const start = i + 1;
    const commands: string[] = [];
    while (i < lines.length && lines[i] !== "----") {
      if (lines[i]!.trim() !== "" && !lines[i]!.startsWith("#")) commands.push(lines[i]!.trim());
      i += 1;
    }
    i += 1; // ----
    const expected: string[] = [];
    while (i < lines.length && lines[i]!.trim() !== "") {
      expected.push(lines[i]!);
      i += 1;
    }
    blocks.push({ commands, expected: expected.join("\n"), line: start });
  }
  return blocks;
}

export function formatScenario(
  blocks: readonly ScenarioBlock[],
  outputs: readonly string[],
): string {
  return `${blocks.map((b, i) => `${b.commands.join("\n")}\n----\n${outputs[i] ?? ""}`).join("\n\n")}\n`;
}

/** Trace lines worth keeping in a script: decisions and address changes, not chatter. */
function interesting(line: string): boolean {
  return !/ (sees coordinator|may hold VIPs again|drops a message)/.test(line);
}

export class ScenarioRunner {
  #sim: Simulator | undefined;
  #traceSeen = 0;

  execute(commands: readonly string[]): string {
    const out: string[] = [];
    for (const command of commands) {
      const extra = this.#command(command);
      const sim = this.#sim;
      if (sim) {
        out.push(...sim.trace.slice(this.#traceSeen).filter(interesting));
        this.#traceSeen = sim.trace.length;
      }
      if (extra) out.push(extra);
    }
    const violations = this.#sim?.violations ?? [];
    for (const v of violations) out.push(`VIOLATION ${v.kind}: ${v.detail}`);
    return out.join("\n");
  }

  get violations() {
    return this.#sim?.violations ?? [];
  }

  #command(command: string): string | undefined {
    const [verb, ...args] = command.split(/\s+/);
    if (verb === "cluster") {
      this.#sim = createCluster(args);
      this.#sim.bootAll();
      this.#traceSeen = 0;
      return undefined;
    }
    const sim = this.#sim;
    if (!sim) throw new Error(`'${command}': the first command must be 'cluster'`);
    const vipIndex = (address: string) => {
      const index = sim.options.vips.findIndex((v) => v.address === address);
      if (index < 0) throw new Error(`'${command}': no VIP ${address}`);
      return index;
    };
    switch (verb) {
      case "run":
        sim.runUntil(sim.nowMs + Number(args[0]));
        return undefined;
      case "crash":
        sim.crash(args[0]!);
        return undefined;
      case "restart":
        sim.boot(args[0]!);
        return undefined;
      case "kill-agent":
        sim.killAgent(args[0]!, Number(args[1] ?? 0));
        return undefined;
      case "shutdown":
        sim.shutdown(args[0]!);
        return undefined;
      case "partition": {
        const groups = args
          .join(" ")
          .split("|")
          .map((g) => g.trim().split(/\s+/));
        sim.partition(groups);
        return undefined;
      }
      case "block":
        sim.block(args[0]!, args[1]!);
        sim.log(`block ${args[0]} -> ${args[1]}`);
        return undefined;
      case "heal":
        sim.heal();
        return undefined;
      case "health":
        sim.setHealth(args[0]!, args[1] === "up");
        return undefined;
      case "move":
        sim.admin(args[3]!, { type: "move", vip: args[0]!, node: args[1]! });
        return undefined;
      case "unpin":
        sim.admin(args[2]!, { type: "unpin", vip: args[0]! });
        return undefined;
      case "drain":
      case "undrain":
        sim.admin(args[2]!, { type: verb, node: args[0]! });
        return undefined;
      case "foreign":
        sim.setForeign(vipIndex(args[0]!), args[1] === "on");
        return undefined;
      case "pause":
        sim.pause(args[0]!, number(args[1]));
        return undefined;
      case "resume":
        sim.log(`${args[0]} resumed`);
        sim.resume(args[0]!);
        return undefined;
      case "clock":
        sim.jumpWallClock(args[0]!, number(args[1]));
        return undefined;
      case "delay": {
        const node = (x: string | undefined) => (x === "*" ? undefined : x);
        const range: readonly [number, number] | undefined =
          args[2] === "off" ? undefined : [number(args[2]), number(args[3] ?? args[2])];
        sim.setDelay(range, node(args[0]), node(args[1]));
        return undefined;
      }
      case "hold":
        sim.hold(args[0]!, args[1]!);
        return undefined;
      case "release":
        sim.release(args[0]!, args[1]!);
        return undefined;
      case "deliver":
      case "drop": {
        const done =
          verb === "deliver"
            ? sim.deliverHeld(args[0]!, args[1]!, args[2])
            : sim.dropHeld(args[0]!, args[1]!, args[2]);
        if (!done) throw new Error(`'${command}': nothing held from ${args[0]} to ${args[1]}`);
        return undefined;
      }
      case "held": {
        const held = sim.heldMessages();
        return held.length === 0 ? "held: none" : held.map((h) => `held: ${h}`).join("\n");
      }
      case "status":
        return status(sim);
      default:
        throw new Error(`unknown scenario command '${command}'`);
    }
  }
}

/** A number argument; a scenario with a typo fails instead of running with NaN. */
function number(text: string | undefined): number {
  const value = Number(text);
  if (text === undefined || text === "" || !Number.isFinite(value)) {
    throw new Error(`expected a number, got ${JSON.stringify(text)}`);
  }
  return value;
}

function createCluster(args: readonly string[]): Simulator {
  const options = new Map(args.map((a) => a.split("=", 2) as [string, string]));
  const nodes = (options.get("nodes") ?? "n1:1,n2:1,n3:1").split(",").map((spec) => {
    const [id, weight] = spec.split(":");
    return { id: id!, weight: Number(weight ?? 1) };
  });
  const vips: PlacementVip[] = (options.get("vips") ?? "198.18.0.100:round-robin")
    .split(",")
    .map((spec) => {
      const [address, policy, preferred, failback] = spec.split(":");
      let fb: Failback = { mode: preferred ? "immediate" : "never" };
      if (failback === "never" || failback === "immediate") fb = { mode: failback };
      else if (failback?.startsWith("after"))
        fb = { mode: "after", afterMs: Number(failback.slice(5)) };
      return {
        address: address!,
        policy: (policy ?? "round-robin") as PlacementPolicy,
        ...(preferred ? { preferred } : {}),
        failback: fb,
      };
    });
  const profile = (options.get("profile") ?? "lan") as ProfileName;
  const timerSet = options.get("timers");
  if (timerSet !== undefined && timerSet !== "lan50")
    throw new Error(`unknown timer set ${JSON.stringify(timerSet)}: only timers=lan50`);
  if (timerSet !== undefined && options.has("profile"))
    throw new Error("timers=lan50 and profile= do not go together: timers=lan50 is lan's");
  return new Simulator({
    seed: Number(options.get("seed") ?? 1),
    nodes,
    vips,
    timers: timerSet === "lan50" ? lan50Timers : profiles[profile],
    delayMs: [1, 2],
    actionMs: [1, 2],
    drift: false,
    trace: true,
    // runtime=yes: through the agent's control loop (address lifetimes of 3 s, renewed).
    ...(options.get("runtime") === "yes" ? { runtime: true, addressLifetimeMs: 3000 } : {}),
  });
}

function status(sim: Simulator): string {
  const lines: string[] = [];
  for (const node of sim.nodes) {
    const core = node.core;
    lines.push(core ? `${node.id}: ${core.role} term ${core.term}` : `${node.id}: down`);
  }
  sim.options.vips.forEach((vip, i) => {
    lines.push(`${vip.address}: ${sim.holders(i).join(" ") || "unheld"}`);
  });
  return lines.join("\n");
}
