/**
 * IPv6 in the native addon, with real frames between network namespaces: `announce` sends an
 * unsolicited Neighbour Advertisement per IPv6 VIP (RFC 4861 §7.2.6), `probe` runs duplicate
 * address detection (RFC 4862 §5.4) with Neighbour Solicitations from ::. The addon runs in a
 * child `node` inside a host's namespace, as an agent would.
 *
 * Topology (built here, not with src/lab/topology.ts): hosts a, b and client each get a
 * macvlan in bridge mode, all on one veth end in a fourth namespace. Macvlan rather than the
 * lab's bridge and veth pairs because a macvlan filters multicast by its interface's
 * multicast list, like a NIC: a prober that did not join the solicited-node group of the
 * address it probes misses a concurrent prober's solicitation here (a veth delivers every
 * multicast frame, and would hide that mistake).
 *
 * Addresses: 2001:db8:231::/64 and 198.18.231.0/24, only inside these namespaces.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { run } from "../../src/adapters/exec.ts";
import { skipUnlessRoot } from "../../src/lab/topology.ts";

const arpModuleUrl = new URL("../../src/adapters/linux/arp.ts", import.meta.url).href;
const prefix = "fipnd-";
const lanNs = `${prefix}lan`;
const hostNames = ["a", "b", "client"] as const;
type HostName = (typeof hostNames)[number];
const namespaces = [lanNs, ...hostNames.map((name) => `${prefix}${name}`)];
const net6 = "2001:db8:231";
const net4 = "198.18.231";
const hostSuffix: Record<HostName, string> = { a: "a", b: "b", client: "c" };
const hostOctet: Record<HostName, number> = { a: 10, b: 11, client: 12 };
const commandTimeoutMs = 5000;

const ns = (host: HostName) => `${prefix}${host}`;
const vip6 = (suffix: string) => `${net6}::${suffix}`;

/** Runs `file args` in `host`'s namespace under a timeout. */
function inNs(host: HostName | "lan", file: string, args: readonly string[], timeoutMs = 5000) {
  return run(file, args, { netns: host === "lan" ? lanNs : ns(host), timeoutMs });
}

const ip = (args: readonly string[]) => run("ip", args, { timeoutMs: commandTimeoutMs });

/** 16 bytes of an IPv6 address given as text (no zone, no prefix). */
function ipv6Bytes(text: string): Buffer {
  const [head = "", tail] = text.split("::");
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  assert.equal(all.length, 8, `not an IPv6 address: ${text}`);
  const bytes = Buffer.alloc(16);
  for (const [index, group] of all.entries()) {
    bytes.writeUInt16BE(Number.parseInt(group, 16), index * 2);
  }
  return bytes;
}

const macText = (bytes: Buffer) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":");

/** The ICMPv6 checksum of `message` (checksum field included) is right when this is 0. */
function icmpv6ChecksumResidue(source: Buffer, destination: Buffer, message: Buffer): number {
  let sum = 0;
  const add = (buffer: Buffer) => {
    for (let i = 0; i + 1 < buffer.length; i += 2) sum += buffer.readUInt16BE(i);
    if (buffer.length % 2 === 1) sum += buffer[buffer.length - 1]! << 8;
  };
  add(source);
  add(destination);
  sum += (message.length >>> 16) + (message.length & 0xffff) + 58;
  add(message);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The frames of a classic pcap file (tcpdump -w), Ethernet link type. */
function pcapFrames(file: Buffer): Buffer[] {
  if (file.length < 24) return [];
  const little = [0xa1b2c3d4, 0xa1b23c4d].includes(file.readUInt32LE(0));
  const u32 = (at: number) => (little ? file.readUInt32LE(at) : file.readUInt32BE(at));
  const frames: Buffer[] = [];
  for (let at = 24; at + 16 <= file.length; ) {
    const length = u32(at + 8);
    frames.push(file.subarray(at + 16, at + 16 + length));
    at += 16 + length;
  }
  return frames;
}

/** A tcpdump BPF clause matching an ICMPv6 ND message whose target is `address`. */
function targetIs(address: string): string {
  const bytes = ipv6Bytes(address);
  return [0, 4, 8, 12]
    .map((at) => `ip6[${48 + at}:4] = 0x${bytes.readUInt32BE(at).toString(16)}`)
    .join(" and ");
}

describe("IPv6 neighbour discovery in the native addon", { skip: skipUnlessRoot() }, () => {
  const macs = new Map<HostName, string>();
  const captures = new Set<ChildProcess>();

  /** Runs `body` (an async function body using `arp`) in a node process inside `host`. */
  async function addon(host: HostName, body: string, timeoutMs = 15000): Promise<unknown> {
    const code = [
      `import * as arp from ${JSON.stringify(arpModuleUrl)};`,
      `const result = await (async () => { ${body} })();`,
      "process.stdout.write(JSON.stringify(result));",
    ].join("\n");
    const output = await inNs(
      host,
      process.execPath,
      ["--input-type=module", "-e", code],
      timeoutMs,
    );
    return JSON.parse(output.stdout);
  }

  async function neighbour(host: HostName, address: string) {
    const result = await inNs(host, "ip", ["-json", "neigh", "show", "to", address, "dev", "eth0"]);
    const entries = JSON.parse(result.stdout.trim() || "[]") as Array<Record<string, unknown>>;
    const entry = entries.find((e) => e.dst === address);
    if (!entry) return undefined;
    const state = Array.isArray(entry.state) ? entry.state.join(",") : String(entry.state);
    return { mac: typeof entry.lladdr === "string" ? entry.lladdr : undefined, state };
  }

  async function eventually(check: () => Promise<boolean>, limitMs: number): Promise<boolean> {
    for (let waited = 0; waited < limitMs; waited += 100) {
      if (await check()) return true;
      await sleep(100);
    }
    return check();
  }

  /**
   * Starts tcpdump in `host` (not promiscuous: the interface's own multicast filter stays in
   * force) for `count` frames matching `filter`; resolves once it listens. `frames` resolves
   * with what it captured when it has `count` frames, or at `limitMs` (a timeout kills it).
   */
  async function capture(host: HostName, filter: string, count: number, limitMs = 10000) {
    const child = spawn(
      "timeout",
      [
        "-s",
        "KILL",
        String(limitMs / 1000),
        "ip",
        "netns",
        "exec",
        ns(host),
        "tcpdump",
        "-p",
        "-i",
        "eth0",
        "-U",
        "-w",
        "-",
        "-c",
        String(count),
        filter,
      ],
      { stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    captures.add(child);
    const chunks: Buffer[] = [];
    let stderr = "";
    child.stdout!.on("data", (chunk: Buffer) => chunks.push(chunk));
    const frames = new Promise<Buffer[]>((resolve) =>
      child.once("close", () => {
        captures.delete(child);
        resolve(pcapFrames(Buffer.concat(chunks)));
      }),
    );
    await new Promise<void>((resolve, reject) => {
      child.stderr!.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes("listening on")) resolve();
      });
      child.once("close", () => reject(new Error(`tcpdump ended before listening: ${stderr}`)));
    });
    return { frames };
  }

  async function deleteNamespaces(): Promise<void> {
    const listed = await ip(["-json", "netns", "list"]);
    const existing = (JSON.parse(listed.stdout.trim() || "[]") as Array<{ name: string }>).map(
      (entry) => entry.name,
    );
    for (const name of namespaces.filter((n) => existing.includes(n)).reverse()) {
      await ip(["netns", "del", name]);
    }
  }

  // Last resort when the runner exits without after() (the namespaces would outlive it).
  const cleanupOnExit = () => {
    for (const name of [...namespaces].reverse()) {
      try {
        execFileSync("ip", ["netns", "del", name], { timeout: commandTimeoutMs, stdio: "ignore" });
      } catch {
        // Gone already.
      }
    }
  };

  before(async () => {
    process.once("exit", cleanupOnExit);
    await deleteNamespaces(); // leftovers of a run that was killed
    for (const name of namespaces) {
      await ip(["netns", "add", name]);
      await ip(["-n", name, "link", "set", "lo", "up"]);
    }
    await ip(["-n", lanNs, "link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    await ip(["-n", lanNs, "link", "set", "v0", "up"]);
    await ip(["-n", lanNs, "link", "set", "v1", "up"]);
    for (const host of hostNames) {
      const port = `mv-${host}`;
      await inNs(host, "sysctl", ["-q", "-w", "net.ipv6.conf.all.disable_ipv6=0"]);
      await inNs(host, "sysctl", ["-q", "-w", "net.ipv6.conf.default.disable_ipv6=0"]);
      await ip([
        "-n",
        lanNs,
        "link",
        "add",
        "link",
        "v0",
        "name",
        port,
        "type",
        "macvlan",
        "mode",
        "bridge",
      ]);
      await ip(["-n", lanNs, "link", "set", port, "netns", ns(host), "name", "eth0"]);
      await ip(["-n", ns(host), "link", "set", "eth0", "up"]);
      await ip(["-n", ns(host), "address", "add", `${net4}.${hostOctet[host]}/24`, "dev", "eth0"]);
      await ip([
        "-n",
        ns(host),
        "address",
        "add",
        `${vip6(hostSuffix[host])}/64`,
        "dev",
        "eth0",
        "nodad",
      ]);
      const [link] = JSON.parse(
        (await ip(["-n", ns(host), "-json", "link", "show", "eth0"])).stdout,
      );
      macs.set(host, String(link.address));
    }
  });

  after(async () => {
    process.removeListener("exit", cleanupOnExit);
    for (const child of captures) {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await deleteNamespaces();
  });

  const mac = (host: HostName) => macs.get(host)!;

  /** Removes `vip` from `host` if it holds it. */
  async function dropAddress(host: HostName, vip: string): Promise<void> {
    await run("ip", ["address", "del", `${vip}/64`, "dev", "eth0"], {
      netns: ns(host),
      timeoutMs: commandTimeoutMs,
      okExitCodes: [0, 2],
    });
  }

  it("rejects IPv6 addresses that cannot be VIPs, with ARP_INVALID_ARGUMENT", async () => {
    const bad = ["fe80::1", "FEBF::1", "ff02::1", "ff05::1:3", "::", "::1", `${net6}::1/64`];
    const codes = await addon(
      "b",
      `const out = [];
       for (const ip of ${JSON.stringify(bad)}) {
         try { arp.announce("eth0", ["${vip6("50")}", ip]); out.push("sent"); } catch (e) { out.push(e.code); }
         try { await arp.probeOccupied("eth0", ip, 50); out.push("probed"); } catch (e) { out.push(e.code); }
         try { await arp.probeOccupiedMany("eth0", [ip], 50); out.push("probed"); } catch (e) { out.push(e.code); }
       }
       return out;`,
    );
    assert.deepEqual(codes, Array(bad.length * 3).fill("ARP_INVALID_ARGUMENT"));
  });

  it("a) probe: an address another namespace holds is occupied (its MAC); a free one is not", async () => {
    const held = vip6("101");
    const free = vip6("102");
    await inNs("a", "ip", ["address", "add", `${held}/64`, "dev", "eth0", "nodad"]);
    try {
      // Capture b's solicitation where a receives it (a joined the group for its address).
      const solicitations = await capture(
        "a",
        `ether src ${mac("b")} and icmp6 and ip6[40] = 135 and ${targetIs(held)}`,
        1,
      );
      const result = await addon(
        "b",
        `return [await arp.probeOccupied("eth0", "${held}", 500),
                 await arp.probeOccupied("eth0", "${free}", 300)];`,
      );
      assert.deepEqual(result, [{ occupied: true, mac: mac("a") }, { occupied: false }]);

      const [frame] = await solicitations.frames;
      assert.ok(frame, "a received b's solicitation");
      const group = Buffer.from([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0]);
      ipv6Bytes(held).copy(group, 13, 13);
      assert.equal(frame.length, 78, "14 Ethernet + 40 IPv6 + 24 NS, no option");
      assert.equal(macText(frame.subarray(0, 6)), `33:33:${macText(group.subarray(12, 16))}`);
      assert.equal(macText(frame.subarray(6, 12)), mac("b"));
      assert.equal(frame.readUInt16BE(12), 0x86dd);
      assert.equal(frame[14]! >> 4, 6);
      assert.equal(frame.readUInt16BE(18), 24, "payload length");
      assert.equal(frame[20], 58, "next header ICMPv6");
      assert.equal(frame[21], 255, "hop limit");
      assert.deepEqual(frame.subarray(22, 38), Buffer.alloc(16), "source ::");
      assert.deepEqual(frame.subarray(38, 54), group, "solicited-node destination");
      assert.equal(frame[54], 135);
      assert.equal(frame[55], 0);
      assert.equal(icmpv6ChecksumResidue(frame.subarray(22, 38), group, frame.subarray(54)), 0);
      assert.deepEqual(frame.subarray(58, 62), Buffer.alloc(4), "reserved");
      assert.deepEqual(frame.subarray(62, 78), ipv6Bytes(held), "target");

      // One call, both families, results in the order given and with the text given.
      const many = await addon(
        "b",
        `return arp.probeOccupiedMany("eth0", ["${net4}.10", "${free}", "${net4}.99", "2001:DB8:231:0::101"], 500);`,
      );
      assert.deepEqual(many, [
        { ip: `${net4}.10`, occupied: true, mac: mac("a") },
        { ip: free, occupied: false },
        { ip: `${net4}.99`, occupied: false },
        { ip: "2001:DB8:231:0::101", occupied: true, mac: mac("a") },
      ]);
    } finally {
      await dropAddress("a", held);
    }
  });

  it("b) two namespaces probing the same free address at once: at least one sees the other", async (t) => {
    const contested = vip6("103");
    // Both children wait for the same wall-clock instant, then probe for 1.5 s: each opens
    // its socket (joining the address's solicited-node group), sends a solicitation, and sends
    // again halfway through unless it has seen a claim by then. Both report the address
    // occupied when both sockets were open before either sent (each hears the other's first
    // solicitation), which RFC 4862 §5.4.3 wants: neither takes a contested address. More
    // often one prober's first solicitation leaves before the other's socket is open; the
    // later one's solicitation is then heard by the earlier one, which stops probing, so only
    // it reports occupied and the other may take the address: still one holder. Never may
    // both miss each other.
    const startAt = Date.now() + 2500;
    const body = `await new Promise((r) => setTimeout(r, Math.max(0, ${startAt} - Date.now())));
                  return arp.probeOccupied("eth0", "${contested}", 1500);`;
    const [fromA, fromB] = (await Promise.all([addon("a", body), addon("b", body)])) as Array<{
      occupied: boolean;
      mac?: string;
    }>;
    const detail = `a saw ${JSON.stringify(fromA)}, b saw ${JSON.stringify(fromB)}`;
    t.diagnostic(detail);
    assert.ok(fromA!.occupied || fromB!.occupied, detail);
    if (fromA!.occupied) assert.equal(fromA!.mac, mac("b"), detail);
    if (fromB!.occupied) assert.equal(fromB!.mac, mac("a"), detail);
  });

  it("b) a prober of more than 64 addresses (all-multicast, not one group each) hears a later prober", async (t) => {
    const contested = vip6("3:40");
    const many = Array.from({ length: 100 }, (_, i) => vip6(`3:${i.toString(16)}`));
    assert.ok(many.includes(contested));
    // a probes for 3 s (second round at 1.5 s); b starts 0.6 s in, for 0.5 s: a hears b's
    // solicitation only through its own membership, and b is done before a's second round.
    const startAt = Date.now() + 2500;
    const wait = (ms: number) =>
      `await new Promise((r) => setTimeout(r, Math.max(0, ${startAt + ms} - Date.now())));`;
    const [fromA, fromB] = (await Promise.all([
      addon("a", `${wait(0)} return arp.probeOccupiedMany("eth0", ${JSON.stringify(many)}, 3000);`),
      addon("b", `${wait(600)} return arp.probeOccupied("eth0", "${contested}", 500);`),
    ])) as [Array<{ ip: string; occupied: boolean; mac?: string }>, { occupied: boolean }];
    const seenByA = fromA.filter((result) => result.occupied);
    t.diagnostic(`a saw ${JSON.stringify(seenByA)}, b saw ${JSON.stringify(fromB)}`);
    assert.deepEqual(seenByA, [{ ip: contested, occupied: true, mac: mac("b") }]);
  });

  it("joins the probed address's solicited-node group while it probes, and leaves it after", async () => {
    const vip = vip6("108");
    const group = "33:33:ff:00:01:08";
    const groups = async () => (await inNs("a", "ip", ["maddress", "show", "dev", "eth0"])).stdout;
    assert.ok(!(await groups()).includes(group));
    const probing = addon("a", `return arp.probeOccupied("eth0", "${vip}", 3000);`);
    const during = await eventually(async () => (await groups()).includes(group), 2500);
    assert.deepEqual(await probing, { occupied: false });
    assert.ok(during, `${group} was never in a's multicast list during the probe`);
    assert.ok(!(await groups()).includes(group), `${group} still joined after the probe`);
  });

  /** Moves `vip` from a to b, checks the client still has a's MAC, has b announce it. */
  async function moveAndAnnounce(vip: string): Promise<void> {
    await inNs("a", "ip", ["address", "del", `${vip}/64`, "dev", "eth0"]);
    await inNs("b", "ip", ["address", "add", `${vip}/64`, "dev", "eth0", "nodad"]);
    assert.equal((await neighbour("client", vip))?.mac, mac("a"), "unchanged before announcing");
    assert.equal(await addon("b", `return arp.announce("eth0", ["${vip}"]);`), 1);
    const moved = await eventually(
      async () => (await neighbour("client", vip))?.mac === mac("b"),
      2000,
    );
    assert.ok(moved, `client maps ${vip} to ${JSON.stringify(await neighbour("client", vip))}`);
  }

  it("c) announce moves a client's STALE neighbour entry to the new holder", async () => {
    const vip = vip6("104");
    await inNs("a", "ip", ["address", "add", `${vip}/64`, "dev", "eth0", "nodad"]);
    try {
      await inNs("client", "ip", [
        "-6",
        "neigh",
        "replace",
        vip,
        "lladdr",
        mac("a"),
        "dev",
        "eth0",
        "nud",
        "stale",
      ]);
      assert.equal((await neighbour("client", vip))?.state, "STALE");
      await moveAndAnnounce(vip);
    } finally {
      await dropAddress("a", vip);
      await dropAddress("b", vip);
    }
  });

  it("c) announce moves a client's REACHABLE neighbour entry to the new holder", async () => {
    const vip = vip6("105");
    await inNs("a", "ip", ["address", "add", `${vip}/64`, "dev", "eth0", "nodad"]);
    try {
      // A TCP connection attempt makes the client resolve the VIP: NS, a's solicited NA.
      await inNs(
        "client",
        process.execPath,
        [
          "-e",
          `const s = require("node:net").connect(9, "${vip}");
           s.on("connect", () => process.exit(0)); s.on("error", () => process.exit(0));
           setTimeout(() => process.exit(0), 1500);`,
        ],
        5000,
      );
      assert.deepEqual(await neighbour("client", vip), { mac: mac("a"), state: "REACHABLE" });
      await moveAndAnnounce(vip);
    } finally {
      await dropAddress("a", vip);
      await dropAddress("b", vip);
    }
  });

  it("d) the NA's layout, and its Router flag following the interface's forwarding", async () => {
    const vip = vip6("106");
    const flags: number[] = [];
    try {
      for (const forwarding of [0, 1]) {
        await inNs("b", "sysctl", ["-q", "-w", `net.ipv6.conf.eth0.forwarding=${forwarding}`]);
        const seen = await capture(
          "client",
          `ether src ${mac("b")} and icmp6 and ip6[40] = 136 and ${targetIs(vip)}`,
          1,
        );
        assert.equal(
          await addon("b", `return arp.announce("eth0", ["${vip}"], { forms: "reply" });`),
          1,
        );
        const [frame] = await seen.frames;
        assert.ok(frame, "the client received the advertisement");
        const allNodes = ipv6Bytes("ff02::1");
        assert.equal(frame.length, 86, "14 Ethernet + 40 IPv6 + 24 NA + 8 option");
        assert.equal(macText(frame.subarray(0, 6)), "33:33:00:00:00:01");
        assert.equal(macText(frame.subarray(6, 12)), mac("b"));
        assert.equal(frame.readUInt16BE(12), 0x86dd);
        assert.equal(frame.readUInt32BE(14), 0x60000000, "version 6, class 0, flow 0");
        assert.equal(frame.readUInt16BE(18), 32, "payload length");
        assert.equal(frame[20], 58, "next header ICMPv6");
        assert.equal(frame[21], 255, "hop limit");
        assert.deepEqual(frame.subarray(22, 38), ipv6Bytes(vip), "source = the VIP");
        assert.deepEqual(frame.subarray(38, 54), allNodes, "destination ff02::1");
        assert.equal(frame[54], 136);
        assert.equal(frame[55], 0);
        assert.equal(icmpv6ChecksumResidue(ipv6Bytes(vip), allNodes, frame.subarray(54)), 0);
        assert.deepEqual(frame.subarray(59, 62), Buffer.alloc(3), "reserved");
        assert.deepEqual(frame.subarray(62, 78), ipv6Bytes(vip), "target");
        assert.deepEqual([frame[78], frame[79]], [2, 1], "Target Link-Layer Address, 8 bytes");
        assert.equal(macText(frame.subarray(80, 86)), mac("b"));
        flags.push(frame[58]!);
      }
    } finally {
      await inNs("b", "sysctl", ["-q", "-w", "net.ipv6.conf.eth0.forwarding=0"]);
    }
    // R 0x80, S 0x40, O 0x20: Override always, never Solicited, Router with forwarding only.
    assert.deepEqual(flags, [0x20, 0xa0]);
  });

  it("e) one announce call with an IPv4 and an IPv6 VIP sends ARP and NA frames", async () => {
    const v4 = `${net4}.150`;
    const v6 = vip6("107");
    await inNs("client", "ip", [
      "neigh",
      "replace",
      v4,
      "lladdr",
      mac("a"),
      "dev",
      "eth0",
      "nud",
      "stale",
    ]);
    await inNs("client", "ip", [
      "-6",
      "neigh",
      "replace",
      v6,
      "lladdr",
      mac("a"),
      "dev",
      "eth0",
      "nud",
      "stale",
    ]);
    const seen = await capture(
      "client",
      `ether src ${mac("b")} and (arp or (icmp6 and ip6[40] = 136 and ${targetIs(v6)}))`,
      3,
    );
    // forms applies to ARP only: "both" = request + reply for the IPv4 VIP, one NA for IPv6.
    const counts = await addon(
      "b",
      `const ips = ["${v4}", "${v6}"];
       return [arp.announce("eth0", ips), arp.announce("eth0", ips, { forms: "request" }),
               arp.announce("eth0", ips, { forms: "reply" })];`,
    );
    assert.deepEqual(counts, [3, 2, 2]);
    const frames = await seen.frames;
    assert.deepEqual(
      frames.map((frame) => frame.readUInt16BE(12)),
      [0x0806, 0x0806, 0x86dd],
      "the first call: ARP request, ARP reply, NA",
    );
    for (const vip of [v4, v6]) {
      assert.ok(
        await eventually(async () => (await neighbour("client", vip))?.mac === mac("b"), 2000),
        `client maps ${vip} to ${JSON.stringify(await neighbour("client", vip))}`,
      );
    }
  });

  it("announces 1,000 IPv6 VIPs (and 1,000 IPv4 besides) in one call, one frame each", async (t) => {
    const timing = (await addon(
      "b",
      `const v6 = Array.from({ length: 1000 }, (_, i) => "${net6}::2:" + i.toString(16));
       const v4 = Array.from({ length: 1000 }, (_, i) => "198.18." + (232 + (i >> 8)) + "." + (i & 255));
       arp.announce("eth0", v6.slice(0, 10));
       let t = performance.now();
       const six = arp.announce("eth0", v6);
       const sixMs = performance.now() - t;
       t = performance.now();
       const mixed = arp.announce("eth0", [...v4, ...v6]);
       return { six, sixMs, mixed, mixedMs: performance.now() - t };`,
    )) as { six: number; sixMs: number; mixed: number; mixedMs: number };
    t.diagnostic(
      `1,000 NAs: ${timing.sixMs.toFixed(2)} ms; 1,000 IPv4 (2 frames each) + 1,000 IPv6: ${timing.mixedMs.toFixed(2)} ms`,
    );
    assert.equal(timing.six, 1000);
    assert.equal(timing.mixed, 3000);
    // The time is a figure, not a pass mark (speed goals live in the benchmarks).
  });
});
