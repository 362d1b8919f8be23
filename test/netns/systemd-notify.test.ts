/**
 * The agent under systemd's notification protocol, against a real NOTIFY_SOCKET listener (a
 * unix datagram socket, as systemd provides): READY=1 with a STATUS line once it has a
 * coordinator and a quorum, WATCHDOG=1 every half WATCHDOG_USEC from the control plane's own
 * loop (pings stop while that loop is stopped, which is what makes systemd restart a stalled
 * agent), and STOPPING=1 on SIGTERM.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { allLogs, type LiveCluster, startCluster, waitSettled } from "../../src/lab/cluster.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const listenerScript = `
import json, os, socket, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o777)
s.settimeout(0.2)
end = time.time() + seconds
print(json.dumps({"t": time.time() * 1000, "m": "LISTENING"}), flush=True)
while time.time() < end:
    try:
        data = s.recv(4096)
    except socket.timeout:
        continue
    print(json.dumps({"t": time.time() * 1000, "m": data.decode()}), flush=True)
`;

interface Notice {
  t: number;
  m: string;
}

describe("systemd notification", { skip: skipUnlessRoot() }, () => {
  const work = mkdtempSync(join(tmpdir(), "fipsd-"));
  const socketPath = join(work, "notify.sock");
  let listener: ChildProcess | undefined;
  let cluster: LiveCluster | undefined;
  const notices: Notice[] = [];
  after(async () => {
    await cluster?.destroy();
    if (listener?.exitCode === null) listener.kill("SIGTERM");
    rmSync(work, { recursive: true, force: true });
  });

  const waitFor = async (what: string, test: () => boolean, ms: number) => {
    const deadline = Date.now() + ms;
    while (!test()) {
      assert.ok(Date.now() < deadline, `${what}: ${JSON.stringify(notices.slice(-10))}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  it("READY with a status, WATCHDOG from the control plane's loop, STOPPING on SIGTERM", async () => {
    listener = spawn("python3", ["-c", listenerScript, socketPath, "120"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let rest = "";
    listener.stdout?.on("data", (chunk: Buffer) => {
      rest += chunk.toString();
      const lines = rest.split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) if (line.trim()) notices.push(JSON.parse(line) as Notice);
    });
    await waitFor("the listener is up", () => notices.some((n) => n.m === "LISTENING"), 10_000);

    cluster = await startCluster({
      prefix: "fipsd-",
      nodes: 1,
      vips: [{ host: 100 }],
      agentEnv: () => ({ NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: "400000" }),
    });
    const c = cluster;
    await waitSettled(c);
    await waitFor("READY=1", () => notices.some((n) => n.m.includes("READY=1")), 10_000);
    const ready = notices.find((n) => n.m.includes("READY=1"))!;
    assert.match(
      ready.m,
      /STATUS=coordinator, term \d+, coordinator n1, quorum, holding \d of 1 VIPs/,
    );
    await waitFor(
      "holding 1 of 1 in a status line",
      () => notices.some((n) => /holding 1 of 1 VIPs/.test(n.m)),
      10_000,
    );

    // Pings every ~200 ms; none while the control plane is stopped for a second.
    const pings = () => notices.filter((n) => n.m === "WATCHDOG=1").map((n) => n.t);
    const before = pings().length;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.ok(pings().length - before >= 3, `pings in a second: ${pings().length - before}`);
    const agent = c.agentPid("n1")!;
    process.kill(agent, "SIGSTOP");
    const stoppedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    process.kill(agent, "SIGCONT");
    await new Promise((resolve) => setTimeout(resolve, 600));
    const during = pings().filter((t) => t > stoppedAt + 100 && t < stoppedAt + 950);
    assert.deepEqual(during, [], "no ping while the control plane was stopped");
    assert.ok(
      pings().some((t) => t > stoppedAt + 1000),
      "pings again after SIGCONT",
    );

    c.signal("n1", "SIGTERM");
    await waitFor("STOPPING=1", () => notices.some((n) => n.m.includes("STOPPING=1")), 10_000);
    assert.ok(
      notices.every((n) => !n.m.includes("ERRNO")),
      allLogs(c),
    );
  });
});
