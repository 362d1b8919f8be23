/**
 * The native system-call wrappers against a real kernel: rtnetlink address listing and lifetime
 * renewal (netlink.ts), realtime scheduling, RLIMIT_RTTIME and memory locking (realtime.ts:
 * lockMappedFiles, and the mlockall hazard of lockMemory).
 * Every call runs in a child `node` (native-sys-child.ts) inside a test namespace, the way the
 * agent runs, so that realtime and locked memory stay in that short-lived process and the
 * netlink socket sees only the namespace's interfaces.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { NetlinkAddress } from "../../src/adapters/linux/netlink.ts";
import type { LockMappedFilesResult, Scheduling } from "../../src/adapters/linux/realtime.ts";
import { createTopology, skipUnlessRoot, type Topology } from "../../src/lab/topology.ts";
import type { ChildError, LockedMappings } from "./native-sys-child.ts";

const childScript = fileURLToPath(new URL("./native-sys-child.ts", import.meta.url));
const foreverSec = 4294967295;

type Outcome<T> = { ok: T; error?: undefined } | { ok?: undefined; error: ChildError };

interface IpAddress {
  family: "inet" | "inet6";
  local: string;
  prefixlen: number;
  valid_life_time: number;
  preferred_life_time: number;
}

describe("native system calls in a network namespace", { skip: skipUnlessRoot() }, () => {
  let topology: Topology;
  let netns: string;
  let vip: (lastOctet: number) => string;

  /** Runs one operation of native-sys-child.ts inside the namespace; returns its JSON. */
  async function child<T>(op: string, args: unknown[] = []): Promise<T> {
    const { stdout } = await topology.exec(
      "a",
      process.execPath,
      [childScript, op, JSON.stringify(args)],
      15000,
    );
    return JSON.parse(stdout) as T;
  }

  /**
   * Like `child`, for operations that may die: returns how the process ended. `nodeFlags` go
   * before the script (e.g. --expose-gc).
   */
  async function childOutcome(
    op: string,
    args: unknown[] = [],
    nodeFlags: string[] = [],
    wrapper: string[] = [],
  ): Promise<{ signal: string | null; code: number | null; stdout: string; stderr: string }> {
    // No core file from the expected crash; `exec` keeps the node process the one that dies.
    const argv = ["netns", "exec", netns, "sh", "-c", 'ulimit -c 0; exec "$0" "$@"'];
    try {
      const { stdout } = await promisify(execFile)(
        "ip",
        [
          ...argv,
          ...wrapper,
          process.execPath,
          ...nodeFlags,
          childScript,
          op,
          JSON.stringify(args),
        ],
        { timeout: 15000 },
      );
      return { signal: null, code: 0, stdout, stderr: "" };
    } catch (error) {
      const failure = error as {
        signal?: string | null;
        code?: number | null;
        stdout?: string;
        stderr?: string;
      };
      return {
        signal: failure.signal ?? null,
        code: typeof failure.code === "number" ? failure.code : null,
        stdout: failure.stdout ?? "",
        stderr: failure.stderr ?? "",
      };
    }
  }

  async function ipAddresses(): Promise<IpAddress[]> {
    const { stdout } = await topology.exec("a", "ip", ["-json", "address", "show", "dev", "eth0"]);
    const [link] = JSON.parse(stdout) as Array<{ addr_info?: IpAddress[] }>;
    return (link?.addr_info ?? []).filter((a) => a.family === "inet" || a.family === "inet6");
  }

  /** Adds an address to eth0 with a 5 s lifetime (`extra`: more `ip address add` words). */
  async function addFor5s(cidr: string, ...extra: string[]): Promise<void> {
    await ip(
      "address",
      "add",
      cidr,
      "dev",
      "eth0",
      "valid_lft",
      "5",
      "preferred_lft",
      "5",
      ...extra,
    );
  }

  async function ip(...args: string[]): Promise<void> {
    await topology.exec("a", "ip", args);
  }

  function ok<T>(outcome: Outcome<T>): T {
    assert.equal(outcome.error, undefined, `unexpected error ${JSON.stringify(outcome.error)}`);
    return outcome.ok as T;
  }

  function key(entry: { ip: string; prefixLength: number; family: number }): string {
    return `${entry.ip}/${entry.prefixLength} v${entry.family}`;
  }

  function fromIp(entry: IpAddress): { ip: string; prefixLength: number; family: 4 | 6 } {
    return {
      ip: entry.local,
      prefixLength: entry.prefixlen,
      family: entry.family === "inet" ? 4 : 6,
    };
  }

  /** Lifetimes agree when both are forever or differ by the seconds between the two reads. */
  function sameLifetime(netlink: number | "forever", ipSeconds: number): boolean {
    if (netlink === "forever" || ipSeconds === foreverSec) {
      return netlink === "forever" && ipSeconds === foreverSec;
    }
    return Math.abs(netlink - ipSeconds) <= 2;
  }

  before(async () => {
    topology = await createTopology({ prefix: "fipns-sys-", hosts: ["a"] });
    netns = topology.host("a").netns;
    vip = (lastOctet) => `${topology.subnet}.${lastOctet}`;
    // The IPv6 link-local address appears once the veth is up; wait for it so both families
    // are there to compare.
    for (let i = 0; i < 50; i++) {
      if ((await ipAddresses()).some((a) => a.family === "inet6")) break;
      await sleep(100);
    }
  });

  after(async () => {
    await topology?.destroy();
  });

  describe("netlink addresses", () => {
    it("lists the same addresses as ip -json address show, IPv4 and IPv6", async () => {
      await ip("address", "add", `${vip(50)}/24`, "dev", "eth0");
      await ip(
        "address",
        "add",
        `${vip(51)}/32`,
        "dev",
        "eth0",
        "valid_lft",
        "100",
        "preferred_lft",
        "40",
      );
      try {
        const before = await ipAddresses();
        const listed = ok(await child<Outcome<NetlinkAddress[]>>("list", ["eth0"]));
        const afterwards = await ipAddresses();
        assert.deepEqual(
          listed.map(key).sort(),
          before.map((entry) => key(fromIp(entry))).sort(),
          "netlink and ip list different addresses",
        );
        assert.deepEqual(
          afterwards.map((entry) => key(fromIp(entry))).sort(),
          before.map((entry) => key(fromIp(entry))).sort(),
        );
        assert.ok(
          listed.some((entry) => entry.family === 4 && entry.ip === topology.host("a").address),
        );
        assert.ok(listed.some((entry) => entry.family === 6 && entry.ip.startsWith("fe80:")));
        for (const entry of listed) {
          const seen = before.find((candidate) => key(fromIp(candidate)) === key(entry))!;
          assert.ok(
            sameLifetime(entry.validLftSec, seen.valid_life_time),
            `${key(entry)}: valid ${entry.validLftSec} vs ip ${seen.valid_life_time}`,
          );
          assert.ok(
            sameLifetime(entry.preferredLftSec, seen.preferred_life_time),
            `${key(entry)}: preferred ${entry.preferredLftSec} vs ip ${seen.preferred_life_time}`,
          );
        }
        const timed = listed.find((entry) => entry.ip === vip(51));
        assert.ok(typeof timed?.validLftSec === "number" && timed.validLftSec <= 100);
        assert.ok(typeof timed?.preferredLftSec === "number" && timed.preferredLftSec <= 40);
        assert.equal(listed.find((entry) => entry.ip === vip(50))?.validLftSec, "forever");
      } finally {
        await ip("address", "del", `${vip(50)}/24`, "dev", "eth0");
        await ip("address", "del", `${vip(51)}/32`, "dev", "eth0");
      }
    });

    it("renews a VIP's lifetime like ip address change", async () => {
      const address = vip(60);
      await addFor5s(`${address}/24`);
      try {
        ok(await child<Outcome<null>>("renew", ["eth0", address, 24, 30]));
        const renewed = (await ipAddresses()).find((entry) => entry.local === address);
        assert.ok(renewed, `${address} vanished after the renewal`);
        // Above the old 5 s, and not "forever" (what a renewal without IFA_CACHEINFO sets).
        for (const seconds of [renewed.valid_life_time, renewed.preferred_life_time]) {
          assert.ok(seconds > 5 && seconds <= 30, `lifetime after renewal: ${seconds}`);
        }
        assert.equal(
          (await ipAddresses()).filter((entry) => entry.local === address).length,
          1,
          "the renewal must change the address, not add a second one",
        );
        const listed = ok(await child<Outcome<NetlinkAddress[]>>("list", ["eth0"]));
        const seen = listed.find((entry) => entry.ip === address);
        assert.ok(typeof seen?.validLftSec === "number" && seen.validLftSec > 5);
      } finally {
        await ip("address", "del", `${address}/24`, "dev", "eth0");
      }
    });

    it("renews many addresses of both families over one socket, each with its outcome", async () => {
      const v4 = [vip(63), vip(64)];
      const v6 = "fd00:5f:2::63";
      for (const address of v4) {
        await addFor5s(`${address}/24`);
      }
      await addFor5s(`${v6}/64`, "nodad");
      try {
        const outcomes = ok(
          await child<Outcome<(string | null)[]>>("renewMany", [
            "eth0",
            [...v4, v6],
            [24, 24, 64],
            40,
          ]),
        );
        assert.deepEqual(outcomes, [null, null, null]);
        const after = await ipAddresses();
        for (const address of [...v4, v6]) {
          const entry = after.find((e) => e.local === address);
          assert.ok(entry && entry.valid_life_time > 30 && entry.valid_life_time <= 40, address);
        }
        // The IPv6 one keeps nodad: a change resets the flags it does not carry.
        const shown = await topology.exec("a", "ip", ["-6", "address", "show", "dev", "eth0"]);
        assert.match(shown.stdout, new RegExp(`${v6}/64 .*nodad`));
        // One bad entry refuses the whole call before anything changes.
        const refused = await child<Outcome<unknown>>("renewMany", [
          "eth0",
          [v4[0], "198.18.300.1"],
          [24, 24],
          50,
        ]);
        assert.equal(refused.error?.code, "NETLINK_INVALID");
        const unchanged = (await ipAddresses()).find((e) => e.local === v4[0]);
        assert.ok(unchanged && unchanged.valid_life_time <= 40);
      } finally {
        for (const address of v4)
          await ip("address", "del", `${address}/24`, "dev", "eth0").catch(() => undefined);
        await ip("address", "del", `${v6}/64`, "dev", "eth0").catch(() => undefined);
      }
    });

    it("renews an IPv6 address too (the interface's own link-local one)", async () => {
      const linkLocal = (await ipAddresses()).find((entry) => entry.family === "inet6");
      assert.ok(linkLocal, "no IPv6 link-local address on eth0");
      assert.equal(linkLocal.valid_life_time, foreverSec);
      ok(await child<Outcome<null>>("renew", ["eth0", linkLocal.local, linkLocal.prefixlen, 600]));
      const renewed = (await ipAddresses()).find((entry) => entry.local === linkLocal.local);
      assert.ok(renewed && renewed.valid_life_time > 500 && renewed.valid_life_time <= 600);
    });

    it("lets the kernel re-create a missing address (why callers list first)", async () => {
      const address = vip(61);
      assert.ok(!(await ipAddresses()).some((entry) => entry.local === address));
      try {
        // No NLM_F_CREATE, yet the kernel adds the address: documented in netlink.ts.
        ok(await child<Outcome<null>>("renew", ["eth0", address, 24, 30]));
        const created = (await ipAddresses()).find((entry) => entry.local === address);
        assert.ok(created && created.valid_life_time <= 30);
      } finally {
        await ip("address", "del", `${address}/24`, "dev", "eth0").catch(() => undefined);
      }
    });

    it("fails with NETLINK_NO_INTERFACE for a missing interface", async () => {
      const listed = await child<Outcome<unknown>>("list", ["fipns-none0"]);
      assert.equal(listed.error?.code, "NETLINK_NO_INTERFACE");
      assert.equal(listed.error?.name, "NetlinkError");
      assert.equal(listed.error?.errno, "ENODEV");
      const renewed = await child<Outcome<unknown>>("renew", ["fipns-none0", vip(62), 24, 30]);
      assert.equal(renewed.error?.code, "NETLINK_NO_INTERFACE");
    });

    it("rejects bad arguments with stable codes", async () => {
      const results = await child<Record<string, Outcome<unknown>>>("invalid");
      assert.deepEqual(
        Object.fromEntries(Object.entries(results).map(([name, r]) => [name, r.error?.code])),
        {
          prefix: "NETLINK_INVALID",
          lifetime: "NETLINK_INVALID",
          ip: "NETLINK_INVALID",
          ifname: "NETLINK_INVALID",
          policy: "REALTIME_INVALID",
          priority: "REALTIME_INVALID",
          limits: "REALTIME_INVALID",
        },
      );
    });
  });

  describe("realtime", () => {
    it("makes only the calling thread realtime; a thread created later is SCHED_OTHER", async () => {
      const result = await child<{
        before: Scheduling;
        set: Outcome<null>;
        after: Scheduling;
        worker: Scheduling;
        realtimeThreads: Array<{ tid: number; policy: number; priority: number }>;
      }>("realtime", ["rr", 10]);
      ok(result.set);
      assert.equal(result.before.policy, "other");
      assert.deepEqual(
        { policy: result.after.policy, priority: result.after.priority },
        { policy: "rr", priority: 10 },
      );
      assert.notEqual(result.worker.tid, result.after.tid);
      assert.deepEqual(
        { policy: result.worker.policy, priority: result.worker.priority },
        { policy: "other", priority: 0 },
        "a worker thread created after setRealtime inherited the realtime policy",
      );
      assert.equal(result.after.resetOnFork, true);
      // Threads that existed before (V8 platform, libuv pool) never were realtime either.
      assert.deepEqual(result.realtimeThreads, [
        { tid: result.after.tid, policy: 2, priority: 10 },
      ]);
    });

    it("caps realtime CPU time with RLIMIT_RTTIME", async () => {
      const result = await child<{
        set: Outcome<null>;
        limits: string;
        raise: Outcome<null>;
        canRaise: boolean;
      }>("cpuLimit", [200000, 400000]);
      ok(result.set);
      assert.equal(result.limits, "Max realtime timeout 200000 400000 us");
      // Raising the hard limit again needs CAP_SYS_RESOURCE, which a sandbox may withhold.
      if (result.canRaise) ok(result.raise);
      else assert.equal(result.raise.error?.code, "REALTIME_PERMISSION");
    });

    it("stops a runaway realtime loop with SIGXCPU instead of letting it hold the core", async () => {
      const outcome = await childOutcome("runaway", [50000, 100000, 5000]);
      assert.ok(
        outcome.signal === "SIGXCPU" || outcome.signal === "SIGKILL",
        `runaway loop ended with ${JSON.stringify(outcome)}`,
      );
    });

    it("locks memory on fault, without faulting in the whole address space", async () => {
      const result = await child<{
        locked: Outcome<{ onFault: boolean }>;
        rssBeforeKb: number;
        rssAfterKb: number;
        lockedKb: number;
        allocatedKb: number;
        rssAfterAllocKb: number;
      }>("lock");
      assert.deepEqual(ok(result.locked), { onFault: true });
      assert.ok(result.lockedKb > 0, "VmLck is 0 after mlockall");
      // Without MCL_ONFAULT, mlockall faults in every reserved heap page: hundreds of MB.
      assert.ok(
        result.rssAfterKb - result.rssBeforeKb < 64 * 1024,
        `RSS grew from ${result.rssBeforeKb} kB to ${result.rssAfterKb} kB`,
      );
      assert.ok(result.rssAfterAllocKb >= result.rssAfterKb + result.allocatedKb / 2);
    });

    it("locks the mapped files only, and Node survives a Worker, heavy GC and a natural exit", async () => {
      const outcome = await childOutcome("lockFiles", [1000], ["--expose-gc"]);
      // mlockall here aborts with SIGTRAP (V8's madvise on locked pages): see the next test.
      assert.deepEqual(
        { signal: outcome.signal, code: outcome.code },
        { signal: null, code: 0 },
        `the child died after lockMappedFiles: ${outcome.stderr.slice(-2000)}`,
      );
      const result = JSON.parse(outcome.stdout) as {
        locked: Outcome<LockMappedFilesResult>;
        rssBefore: { rssKb: number; anonKb: number };
        rssAfter: { rssKb: number; anonKb: number };
        lockedKb: number;
        mappings: LockedMappings;
        mainRounds: number;
        workerRounds: number;
        lockedAfterChurnKb: number;
        gcExposed: boolean;
      };
      const locked = ok(result.locked);
      assert.equal(locked.failed, 0, `mappings failed to lock: ${JSON.stringify(locked)}`);
      assert.ok(locked.regions > 0 && locked.bytes > 0, JSON.stringify(locked));
      assert.ok(result.lockedKb > 0, "VmLck is 0 after lockMappedFiles");
      // VmLck counts whole locked mappings, exactly what `bytes` adds up.
      const lockedBytes = result.lockedKb * 1024;
      assert.ok(
        Math.abs(lockedBytes - locked.bytes) <= Math.max(1 << 20, locked.bytes * 0.02),
        `VmLck ${result.lockedKb} kB vs ${locked.bytes} bytes returned`,
      );
      // File mappings only: no heap, stack or other anonymous mapping is locked.
      assert.deepEqual(result.mappings.anonymous, [], "anonymous mappings were locked");
      assert.ok(result.mappings.nodeCodeLocked, "the node binary's code is not locked");
      assert.ok(result.mappings.addonCodeLocked, "the native addon's code is not locked");
      assert.ok(
        result.mappings.files.some((path) => /\/libc[.-]/.test(path)),
        `libc is not locked: ${result.mappings.files.join(", ")}`,
      );
      assert.deepEqual(result.mappings.unlockedFiles, [], "readable file mappings left unlocked");
      // Data is locked on fault: RSS grows by the code paged in, not by the whole ~110 MB, and
      // no anonymous copies are made.
      assert.ok(
        (result.rssAfter.rssKb - result.rssBefore.rssKb) * 1024 < locked.bytes / 2,
        `RSS grew from ${result.rssBefore.rssKb} kB to ${result.rssAfter.rssKb} kB`,
      );
      assert.ok(
        result.rssAfter.anonKb - result.rssBefore.anonKb < 8 * 1024,
        `anonymous RSS grew from ${result.rssBefore.anonKb} kB to ${result.rssAfter.anonKb} kB`,
      );
      // The churn really ran, on both threads, with full collections.
      assert.ok(result.gcExposed, "global.gc missing: --expose-gc did not reach the child");
      assert.ok(result.mainRounds > 0 && result.workerRounds > 0, JSON.stringify(result));
      assert.ok(result.lockedAfterChurnKb > 0);
    });

    it("maps RLIMIT_MEMLOCK without CAP_IPC_LOCK to REALTIME_PERMISSION, partial locks, REALTIME_NO_MEMORY", async (t) => {
      const tools = await Promise.all(
        ["prlimit", "setpriv"].map((tool) =>
          promisify(execFile)(tool, ["--version"]).then(
            () => true,
            () => false,
          ),
        ),
      );
      if (tools.includes(false)) {
        t.skip("prlimit or setpriv (util-linux) is missing");
        return;
      }
      /** lockFiles as a process without CAP_IPC_LOCK whose RLIMIT_MEMLOCK is `bytes`. */
      const limited = async (bytes: number) => {
        const outcome = await childOutcome(
          "lockFiles",
          [0],
          [],
          [
            "prlimit",
            `--memlock=${bytes}:${bytes}`,
            "setpriv",
            "--bounding-set=-ipc_lock",
            "--inh-caps=-ipc_lock",
          ],
        );
        assert.equal(outcome.code, 0, `child failed: ${outcome.stderr.slice(-2000)}`);
        return JSON.parse(outcome.stdout) as {
          locked: Outcome<LockMappedFilesResult>;
          lockedKb: number;
          mappings: LockedMappings;
        };
      };
      // RLIMIT_MEMLOCK 0: mlock is not allowed at all.
      const none = await limited(0);
      assert.deepEqual(
        { code: none.locked.error?.code, errno: none.locked.error?.errno },
        { code: "REALTIME_PERMISSION", errno: "EPERM" },
      );
      assert.equal(none.lockedKb, 0);
      // 1 MiB: what fits is locked, the rest is counted as failed, no error.
      const some = await limited(1 << 20);
      const partial = ok(some.locked);
      assert.ok(partial.regions > 0 && partial.failed > 0, JSON.stringify(partial));
      assert.ok(partial.bytes <= 1 << 20, JSON.stringify(partial));
      assert.equal(some.lockedKb * 1024, partial.bytes);
      assert.deepEqual(some.mappings.anonymous, []);
      // Less than a page: every mapping fails with ENOMEM.
      const tiny = await limited(1);
      assert.deepEqual(
        { code: tiny.locked.error?.code, errno: tiny.locked.error?.errno },
        { code: "REALTIME_NO_MEMORY", errno: "ENOMEM" },
      );
      assert.equal(tiny.lockedKb, 0);
    });

    it("known hazard: a Worker started after lockMemory aborts Node (V8 madvise on locked pages)", async () => {
      // Documented in realtime.ts. If this starts passing through, V8 learned to live with
      // mlockall and the warning there can go.
      const outcome = await childOutcome("lockThenWorker");
      assert.equal(
        outcome.signal,
        "SIGTRAP",
        `expected V8's CHECK abort, got ${JSON.stringify(outcome)}`,
      );
    });
  });
});
