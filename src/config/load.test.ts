import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { stringify } from "yaml";
import { ConfigError, type ConfigProblem } from "./errors.ts";
import { loadConfig, parseConfig, parseDuration, suggest } from "./load.ts";
import { profiles } from "./profiles.ts";

const examplePath = resolve(import.meta.dirname, "../../examples/cluster.yaml");

/** A small valid config as data; tests change one thing and render it to YAML. */
function base(): Record<string, unknown> {
  return {
    cluster: "demo",
    key_file: "/etc/floatip/cluster.key",
    nodes: [
      { id: "n1", address: "198.18.0.11", interface: "eth0" },
      { id: "n2", address: "198.18.0.12", interface: "eth0" },
      { id: "n3", address: "198.18.0.13", interface: "eth0" },
    ],
    vips: [{ address: "198.18.0.100/24" }],
  };
}

function parse(data: Record<string, unknown>, options = {}) {
  return parseConfig(stringify(data), "test.yaml", options);
}

/** Parses text that must be invalid and returns its problems. */
function problemsOfText(text: string, options = {}): readonly ConfigProblem[] {
  try {
    parseConfig(text, "test.yaml", options);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.code, "CONFIG_INVALID");
    return error.problems;
  }
  assert.fail("expected a ConfigError");
}

function problemsOf(data: Record<string, unknown>, options = {}) {
  return problemsOfText(stringify(data), options);
}

function paths(problems: readonly ConfigProblem[]): string[] {
  return problems.map((p) => p.path);
}

/** Test data edited freely (deep paths, wrong types) before it is rendered to YAML. */
// biome-ignore lint/suspicious/noExplicitAny: the point is to write values of any shape
type Loose = Record<string, any>;

/** `base()` with `change` applied to a deep copy. */
function variant(change: (c: Loose) => void): Record<string, unknown> {
  const copy = structuredClone(base());
  change(copy);
  return copy;
}

describe("loadConfig on examples/cluster.yaml", () => {
  const config = loadConfig(examplePath, { nodeId: "n2" });

  it("reads cluster, key file, profile and merged timers", () => {
    assert.equal(config.file, examplePath);
    assert.equal(config.cluster, "demo");
    assert.equal(config.keyFile, "/etc/floatip/cluster.key");
    assert.equal(config.profile, "lan");
    assert.deepEqual(config.timers, { ...profiles.lan, leaseMs: 500 });
  });

  it("reads nodes with the default port", () => {
    assert.deepEqual(config.nodes, [
      { id: "n1", address: "198.18.0.11", port: 7946, interface: "eth0", weight: 100 },
      { id: "n2", address: "198.18.0.12", port: 7946, interface: "eth0", weight: 50 },
      { id: "n3", address: "198.18.0.13", port: 7946, interface: "eth0", weight: 10 },
    ]);
  });

  it("reads VIPs with policy, preferred and failback defaults", () => {
    assert.deepEqual(config.vips, [
      {
        address: "198.18.0.100",
        prefixLength: 24,
        policy: "round-robin",
        preferred: "n1",
        failback: { mode: "immediate" },
      },
      {
        address: "198.18.0.101",
        prefixLength: 24,
        interface: "eth1",
        policy: "hash",
        failback: { mode: "never" },
      },
    ]);
  });

  it("reads every check kind with its defaults", () => {
    const common = { intervalMs: 1000, timeoutMs: 500, fall: 3, fallWindowMs: 10000, rise: 2 };
    assert.deepEqual(config.checks, [
      { name: "uplink", ...common, kind: "link", interface: "eth0" },
      { name: "web", ...common, kind: "tcp", host: "127.0.0.1", port: 80 },
      {
        name: "api",
        ...common,
        kind: "http",
        url: "http://127.0.0.1:8080/health",
        expectStatus: 200,
      },
      { name: "script", ...common, kind: "exec", command: ["/usr/local/bin/check", "--quick"] },
      { name: "ceph", ...common, kind: "rbd", pool: "rbd", clientId: "admin" },
    ]);
  });

  it("reads api, notify, state dir and address lifetime", () => {
    assert.deepEqual(config.api, {
      host: "127.0.0.1",
      port: 7480,
      tokenFile: "/etc/floatip/api.token",
    });
    assert.deepEqual(config.notify, {
      command: "/usr/local/bin/floatip-notify",
      timeoutMs: 5000,
      style: "floatip",
    });
    assert.equal(config.stateDir, "/var/lib/floatip");
    assert.equal(config.addressLifetimeSec, 3);
    assert.equal(config.relays, undefined);
  });

  it("is deeply frozen", () => {
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.nodes));
    assert.ok(Object.isFrozen(config.nodes[0]));
    assert.ok(Object.isFrozen(config.vips[0]!.failback));
    assert.ok(Object.isFrozen(config.timers));
    const check = config.checks[3];
    assert.ok(check?.kind === "exec" && Object.isFrozen(check.command));
    assert.throws(() => {
      (config.nodes[0] as { weight: number }).weight = 1;
    }, TypeError);
    assert.throws(() => (config.nodes as unknown[]).push({}), TypeError);
  });
});

describe("defaults", () => {
  it("fills every optional field", () => {
    const config = parse(base());
    assert.equal(config.profile, "lan");
    assert.deepEqual(config.timers, profiles.lan);
    assert.equal(config.nodes[0]!.port, 7946);
    assert.equal(config.nodes[0]!.weight, 1);
    assert.deepEqual(config.vips[0], {
      address: "198.18.0.100",
      prefixLength: 24,
      policy: "round-robin",
      failback: { mode: "never" },
    });
    assert.deepEqual(config.checks, []);
    assert.deepEqual(config.api, { host: "127.0.0.1", port: 7480 });
    assert.equal(config.notify, undefined);
    assert.equal(config.stateDir, "/var/lib/floatip");
    assert.equal(config.addressLifetimeSec, 3);
    assert.deepEqual(config.realtime, {
      policy: "rr",
      priority: 10,
      lockMemory: true,
      required: false,
    });
  });

  it("defaults failback to immediate when a preferred node is set", () => {
    const config = parse(variant((c) => (c.vips[0].preferred = "n2")));
    assert.deepEqual(config.vips[0]!.failback, { mode: "immediate" });
  });

  it("accepts one- and two-node clusters", () => {
    assert.equal(parse(variant((c) => c.nodes.splice(1))).nodes.length, 1);
    assert.equal(parse(variant((c) => c.nodes.splice(2))).nodes.length, 2);
  });

  it("accepts no VIPs at all", () => {
    assert.deepEqual(parse(variant((c) => delete c.vips)).vips, []);
  });

  it("treats an empty optional section as absent", () => {
    const config = parse(variant((c) => Object.assign(c, { vips: null, timers: null, api: null })));
    assert.deepEqual(config.vips, []);
    assert.deepEqual(config.timers, profiles.lan);
    assert.deepEqual(config.api, { host: "127.0.0.1", port: 7480 });
    assert.deepEqual(paths(problemsOf(variant((c) => (c.nodes = null)))), ["nodes"]);
  });

  it("reads IPv6 VIPs and node addresses in their canonical form", () => {
    const config = parse(
      variant((c) => {
        c.nodes[0].address = "[2001:DB8:0:0::11]:7000";
        c.nodes[1].address = "2001:db8::12";
        c.nodes[2].address = "fe80::13%eth0";
        c.vips.push({ address: "2001:0db8::100/64" }, { address: "fd00::1:0:0:100/48" });
      }),
    );
    assert.deepEqual(
      config.nodes.map((n) => [n.address, n.port]),
      [
        ["2001:db8::11", 7000],
        ["2001:db8::12", 7946],
        ["fe80::13%eth0", 7946],
      ],
    );
    assert.deepEqual(
      config.vips.slice(-2).map((v) => [v.address, v.prefixLength]),
      [
        ["2001:db8::100", 64],
        ["fd00::1:0:0:100", 48],
      ],
    );
  });

  it("takes the port from address IP:PORT", () => {
    const config = parse(variant((c) => (c.nodes[0].address = "198.18.0.11:7000")));
    assert.equal(config.nodes[0]!.address, "198.18.0.11");
    assert.equal(config.nodes[0]!.port, 7000);
  });

  it("resolves relative paths against the config file's directory", () => {
    const data = variant((c) => {
      c.key_file = "cluster.key";
      c.state_dir = "state";
      c.api = { token_file: "../api.token" };
    });
    const config = parseConfig(stringify(data), "/etc/floatip/cluster.yaml");
    assert.equal(config.keyFile, "/etc/floatip/cluster.key");
    assert.equal(config.stateDir, "/etc/floatip/state");
    assert.equal(config.api.tokenFile, "/etc/api.token");
  });

  it("passes relays, storage and traffic through untouched, but frozen", () => {
    const relays = [{ name: "web", listen: "198.18.0.100:80", anything: { deep: [1, 2] } }];
    const config = parse(
      variant((c) => {
        c.relays = relays;
        c.storage = { backend: "file" };
      }),
    );
    assert.deepEqual(config.relays, relays);
    assert.deepEqual(config.storage, { backend: "file" });
    assert.equal(config.traffic, undefined);
    assert.ok(Object.isFrozen((config.relays as { anything: object }[])[0]!.anything));
  });

  it("supports YAML anchors and merge keys, with x- keys as their home", () => {
    const text = [
      "x-node: &node { interface: eth0, weight: 5 }",
      "cluster: demo",
      "key_file: /k",
      "nodes:",
      "  - { <<: *node, id: n1, address: 198.18.0.11 }",
      "  - { <<: *node, id: n2, address: 198.18.0.12, weight: 7 }",
    ].join("\n");
    const config = parseConfig(text, "test.yaml");
    assert.deepEqual(
      config.nodes.map((n) => [n.id, n.interface, n.weight]),
      [
        ["n1", "eth0", 5],
        ["n2", "eth0", 7],
      ],
    );
  });
});

describe("durations", () => {
  it("reads a config value in whole milliseconds, with a unit (the parser: duration.test.ts)", () => {
    assert.equal(parseDuration("1.5s"), 1500);
    assert.equal(parseDuration("2"), undefined);
    assert.equal(parseDuration("0.5ms"), undefined);
  });

  it("accepts numbers as ms and duration strings under *_ms keys", () => {
    const config = parse(variant((c) => (c.timers = { lease_ms: "1s", suspect_after_ms: 200 })));
    assert.equal(config.timers.leaseMs, 1000);
    assert.equal(config.timers.suspectAfterMs, 200);
  });

  it("reads check durations and failback after a delay", () => {
    const config = parse(
      variant((c) => {
        c.vips[0].failback = "after 30s";
        c.vips.push({ address: "198.18.0.101/24", failback: "after 500ms" });
        c.checks = [
          {
            name: "t",
            kind: "tcp",
            host: "h",
            port: 1,
            interval: "2s",
            timeout: "1s",
            within: "1m",
          },
        ];
        c.notify = { command: "/bin/true", timeout: "2m", style: "keepalived" };
      }),
    );
    assert.deepEqual(config.vips[0]!.failback, { mode: "after", afterMs: 30000 });
    assert.deepEqual(config.vips[1]!.failback, { mode: "after", afterMs: 500 });
    const check = config.checks[0]!;
    assert.deepEqual([check.intervalMs, check.timeoutMs, check.fallWindowMs], [2000, 1000, 60000]);
    assert.equal(config.notify?.timeoutMs, 120000);
    assert.equal(config.notify?.style, "keepalived");
  });

  it("rejects a bare number where the unit is not in the key name", () => {
    const problems = problemsOf(
      variant((c) => (c.checks = [{ name: "l", kind: "link", interface: "eth0", interval: 5 }])),
    );
    assert.deepEqual(paths(problems), ["checks[0].interval"]);
    assert.match(problems[0]!.fix, /5ms|5s/);
  });
});

describe("timer overrides", () => {
  it("overrides single fields of the chosen profile", () => {
    const config = parse(
      variant((c) => {
        c.profile = "wan";
        c.timers = { garp_repeat: 5, clock_drift_ratio: 0.02 };
      }),
    );
    assert.deepEqual(config.timers, { ...profiles.wan, garpRepeat: 5, clockDriftRatio: 0.02 });
  });

  it("reports a broken cross-field rule at the timer key", () => {
    // lease_ms must exceed the lan profile's election timeout (200 ms); with 25 ms heartbeats
    // the renewal rule (3 intervals + 3 margins, 105 ms) is met.
    const problems = problemsOf(
      variant((c) => (c.timers = { lease_ms: 150, heartbeat_interval_ms: 25 })),
    );
    assert.deepEqual(paths(problems), ["timers.lease_ms"]);
    assert.match(problems[0]!.message, /election/);
    // lan's own heartbeats: 320 ms exceeds the election timeout but lapses between renewals.
    const short = problemsOf(variant((c) => (c.timers = { lease_ms: 320 })));
    assert.deepEqual(paths(short), ["timers.lease_ms"]);
    assert.match(short[0]!.message, /\(330 ms\), got 320/);
  });

  it("names the field to change even when another field was overridden", () => {
    // A 300 ms heartbeat against lan's 250 ms suspicion and 200 ms election timeout, and its
    // 460 ms lease (renewals every 300 ms need 930).
    const problems = problemsOf(variant((c) => (c.timers = { heartbeat_interval_ms: 300 })));
    assert.deepEqual(paths(problems), [
      "timers.suspect_after_ms",
      "timers.election_timeout_ms",
      "timers.lease_ms",
    ]);
  });
});

describe("validation rules, one problem at the right path", () => {
  const cases: [string, (c: Loose) => void, string][] = [
    ["unknown top-level key", (c) => (c.vip = []), "vip"],
    ["unknown nested key", (c) => (c.nodes[1].wieght = 3), "nodes[1].wieght"],
    ["missing cluster", (c) => delete c.cluster, "cluster"],
    ["bad cluster name", (c) => (c.cluster = "My Cluster"), "cluster"],
    ["missing key_file", (c) => delete c.key_file, "key_file"],
    ["key_file not a string", (c) => (c.key_file = 5), "key_file"],
    ["unknown profile", (c) => (c.profile = "lna"), "profile"],
    ["unknown timer", (c) => (c.timers = { lease: 5 }), "timers.lease"],
    ["timer wrong type", (c) => (c.timers = { garp_repeat: "x" }), "timers.garp_repeat"],
    ["timers not a mapping", (c) => (c.timers = [1]), "timers"],
    ["no nodes key", (c) => delete c.nodes, "nodes"],
    ["empty nodes", (c) => (c.nodes = []), "nodes"],
    ["nodes not a list", (c) => (c.nodes = { n1: {} }), "nodes"],
    ["node not a mapping", (c) => (c.nodes[2] = "n3"), "nodes[2]"],
    ["bad node id", (c) => (c.nodes[1].id = "-n2"), "nodes[1].id"],
    ["upper-case node id", (c) => (c.nodes[1].id = "N2"), "nodes[1].id"],
    ["numeric node id", (c) => (c.nodes[1].id = 2), "nodes[1].id"],
    ["duplicate node id", (c) => (c.nodes[2].id = "n1"), "nodes[2].id"],
    ["duplicate node address", (c) => (c.nodes[2].address = "198.18.0.11"), "nodes[2].address"],
    ["bad node address", (c) => (c.nodes[0].address = "198.18.0.300"), "nodes[0].address"],
    ["hostname as address", (c) => (c.nodes[0].address = "node1"), "nodes[0].address"],
    ["port out of range", (c) => (c.nodes[0].port = 70000), "nodes[0].port"],
    ["port zero", (c) => (c.nodes[0].port = 0), "nodes[0].port"],
    [
      "port in address out of range",
      (c) => (c.nodes[0].address = "198.18.0.11:0"),
      "nodes[0].address",
    ],
    [
      "port given twice, differently",
      (c) => Object.assign(c.nodes[0], { address: "198.18.0.11:7000", port: 7001 }),
      "nodes[0].port",
    ],
    ["quoted port", (c) => (c.nodes[0].port = "7000"), "nodes[0].port"],
    ["missing interface", (c) => delete c.nodes[0].interface, "nodes[0].interface"],
    [
      "bad interface name",
      (c) => (c.nodes[0].interface = "a-very-long-ifname0"),
      "nodes[0].interface",
    ],
    ["weight zero", (c) => (c.nodes[0].weight = 0), "nodes[0].weight"],
    ["VIP without prefix", (c) => (c.vips[0].address = "198.18.0.100"), "vips[0].address"],
    ["VIP prefix 0", (c) => (c.vips[0].address = "198.18.0.100/0"), "vips[0].address"],
    ["VIP prefix 33", (c) => (c.vips[0].address = "198.18.0.100/33"), "vips[0].address"],
    ["VIP IPv6 link-local", (c) => (c.vips[0].address = "fe80::5/64"), "vips[0].address"],
    ["VIP IPv6 multicast", (c) => (c.vips[0].address = "ff02::5/64"), "vips[0].address"],
    ["VIP IPv6 prefix 129", (c) => (c.vips[0].address = "2001:db8::1/129"), "vips[0].address"],
    ["VIP IPv6 subnet anycast", (c) => (c.vips[0].address = "2001:db8::/64"), "vips[0].address"],
    ["VIP IPv4-mapped", (c) => (c.vips[0].address = "::ffff:198.18.0.9/96"), "vips[0].address"],
    [
      "duplicate IPv6 VIP in another spelling",
      (c) => c.vips.push({ address: "2001:DB8:0::7/64" }, { address: "2001:db8::0:7/64" }),
      "vips[2].address",
    ],
    ["link-local node without zone", (c) => (c.nodes[0].address = "fe80::11"), "nodes[0].address"],
    [
      "zone on a global node address",
      (c) => (c.nodes[0].address = "2001:db8::11%eth0"),
      "nodes[0].address",
    ],
    ["nodes of two families", (c) => (c.nodes[1].address = "2001:db8::12"), "nodes[1].address"],
    ["VIP network address", (c) => (c.vips[0].address = "198.18.0.0/24"), "vips[0].address"],
    ["VIP is a node address", (c) => (c.vips[0].address = "198.18.0.12/24"), "vips[0].address"],
    ["duplicate VIP", (c) => c.vips.push({ address: "198.18.0.100/16" }), "vips[1].address"],
    ["unknown policy", (c) => (c.vips[0].policy = "random"), "vips[0].policy"],
    ["preferred not a node", (c) => (c.vips[0].preferred = "n9"), "vips[0].preferred"],
    ["bad failback", (c) => (c.vips[0].failback = "later"), "vips[0].failback"],
    ["bad VIP interface", (c) => (c.vips[0].interface = "eth 0"), "vips[0].interface"],
    ["vips not a list", (c) => (c.vips = "198.18.0.100/24"), "vips"],
    ["check kind unknown", (c) => (c.checks = [{ name: "x", kind: "smtp" }]), "checks[0].kind"],
    ["check kind missing", (c) => (c.checks = [{ name: "x" }]), "checks[0].kind"],
    [
      "check name missing",
      (c) => (c.checks = [{ kind: "link", interface: "e" }]),
      "checks[0].name",
    ],
    [
      "link without interface",
      (c) => (c.checks = [{ name: "l", kind: "link" }]),
      "checks[0].interface",
    ],
    [
      "tcp without port",
      (c) => (c.checks = [{ name: "t", kind: "tcp", host: "h" }]),
      "checks[0].port",
    ],
    [
      "tcp without host",
      (c) => (c.checks = [{ name: "t", kind: "tcp", port: 80 }]),
      "checks[0].host",
    ],
    ["http without url", (c) => (c.checks = [{ name: "h", kind: "http" }]), "checks[0].url"],
    [
      "http bad url",
      (c) => (c.checks = [{ name: "h", kind: "http", url: "ftp://x" }]),
      "checks[0].url",
    ],
    [
      "http bad status",
      (c) => (c.checks = [{ name: "h", kind: "http", url: "http://x/", expect_status: 99 }]),
      "checks[0].expect_status",
    ],
    [
      "exec without command",
      (c) => (c.checks = [{ name: "e", kind: "exec" }]),
      "checks[0].command",
    ],
    [
      "exec empty command",
      (c) => (c.checks = [{ name: "e", kind: "exec", command: [] }]),
      "checks[0].command",
    ],
    ["rbd without pool", (c) => (c.checks = [{ name: "r", kind: "rbd" }]), "checks[0].pool"],
    [
      "key of another check kind",
      (c) => (c.checks = [{ name: "l", kind: "link", interface: "e", port: 80 }]),
      "checks[0].port",
    ],
    [
      "timeout longer than interval",
      (c) => (c.checks = [{ name: "l", kind: "link", interface: "e", timeout: "2s" }]),
      "checks[0].timeout",
    ],
    [
      "window too short for fall",
      (c) => (c.checks = [{ name: "l", kind: "link", interface: "e", fall: 5, within: "3s" }]),
      "checks[0].within",
    ],
    [
      "duplicate check name",
      (c) =>
        (c.checks = [
          { name: "l", kind: "link", interface: "e" },
          { name: "l", kind: "link", interface: "f" },
        ]),
      "checks[1].name",
    ],
    ["api listen without port", (c) => (c.api = { listen: "127.0.0.1" }), "api.listen"],
    ["api unknown key", (c) => (c.api = { port: 80 }), "api.port"],
    ["notify without command", (c) => (c.notify = { timeout: "1s" }), "notify.command"],
    [
      "notify style unknown",
      (c) => (c.notify = { command: "/bin/true", style: "vrrp" }),
      "notify.style",
    ],
    ["realtime unknown policy", (c) => (c.realtime = { policy: "rt" }), "realtime.policy"],
    ["realtime priority too high", (c) => (c.realtime = { priority: 100 }), "realtime.priority"],
    [
      "realtime lock_memory not a boolean",
      (c) => (c.realtime = { lock_memory: "yes" }),
      "realtime.lock_memory",
    ],
    [
      "realtime required while off",
      (c) => (c.realtime = { policy: "off", required: true }),
      "realtime.required",
    ],
    [
      "address lifetime not whole seconds",
      (c) => (c.address_lifetime = "1500ms"),
      "address_lifetime",
    ],
    [
      "address lifetime within the lease",
      (c) => Object.assign(c, { profile: "wan", address_lifetime: "2s" }),
      "address_lifetime",
    ],
  ];
  for (const [name, change, path] of cases) {
    it(name, () => {
      const problems = problemsOf(variant(change));
      assert.deepEqual(paths(problems), [path], JSON.stringify(problems, null, 1));
      const p = problems[0]!;
      assert.equal(p.file, "test.yaml");
      assert.ok(p.message.length > 0 && p.fix.length > 0);
    });
  }

  it("rejects a --node that is not configured, and accepts one that is", () => {
    const problems = problemsOf(base(), { nodeId: "n9" });
    assert.deepEqual(paths(problems), ["nodes"]);
    assert.match(problems[0]!.fix, /n1, n2, n3/);
    assert.equal(parse(base(), { nodeId: "n3" }).nodes.length, 3);
  });
});

describe("reporting", () => {
  it("reports several problems together, in one error, each formatted with file and fix", () => {
    const data = variant((c) => {
      c.profile = "huge";
      c.nodes[2].address = "198.18.0.12";
      c.vips[0].preferred = "n9";
      c.vips.push({ address: "198.18.0.101" });
      c.checks = [{ name: "w", kind: "tcp", host: "127.0.0.1" }];
    });
    let error: unknown;
    try {
      parseConfig(stringify(data), "/etc/floatip/cluster.yaml");
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof ConfigError);
    assert.equal(error.code, "CONFIG_INVALID");
    assert.deepEqual(
      new Set(paths(error.problems)),
      new Set([
        "profile",
        "nodes[2].address",
        "vips[0].preferred",
        "vips[1].address",
        "checks[0].port",
      ]),
    );
    const lines = error.message.split("\n");
    assert.ok(
      lines.some((l) =>
        /^\/etc\/floatip\/cluster\.yaml:\d+:\d+: vips\[0\]\.preferred: node "n9" is not defined — fix: use one of n1, n2, n3$/.test(
          l,
        ),
      ),
      error.message,
    );
    assert.equal(lines.filter((l) => l.startsWith("/etc/floatip/cluster.yaml:")).length, 5);
  });

  it("suggests the key a near miss meant", () => {
    const problems = problemsOfText(
      "cluster: demo\nkeyfile: /k\nkey_file: /k\nnodes: [{ id: n1, address: 198.18.0.11, interface: eth0, wieght: 2 }]\nvips: [{ address: 198.18.0.100/24, polciy: hash }]\n",
    );
    const fixes = Object.fromEntries(problems.map((p) => [p.path, p.fix]));
    assert.deepEqual(fixes, {
      keyfile: 'did you mean "key_file"?',
      "nodes[0].wieght": 'did you mean "weight"?',
      "vips[0].polciy": 'did you mean "policy"?',
    });
  });

  it("lists the allowed keys when nothing is close", () => {
    const problems = problemsOf(variant((c) => (c.nodes[0].colour = "red")));
    assert.match(problems[0]!.fix, /allowed keys here: id, address, port, interface, weight/);
  });

  it("gives the line of each problem", () => {
    const text =
      "cluster: demo\nkey_file: /k\nnodes:\n  - id: n1\n    address: 198.18.0.11\n    interface: eth0\n    weight: -1\n";
    const [problem] = problemsOfText(text);
    assert.equal(problem?.path, "nodes[0].weight");
    assert.equal(problem?.line, 7);
  });

  it("reports YAML syntax errors with line and column", () => {
    const problems = problemsOfText("cluster: demo\nnodes: [\n  { id: n1\nvips: x\n");
    assert.ok(problems.length >= 1);
    assert.equal(problems[0]!.path, "");
    assert.equal(typeof problems[0]!.line, "number");
    assert.match(problems[0]!.message, /YAML syntax error at line \d+, column \d+/);
  });

  it("reports duplicate keys as YAML errors", () => {
    const problems = problemsOfText("cluster: a\ncluster: b\n");
    assert.equal(problems[0]!.line, 2);
  });

  it("rejects an empty file and a file that is not a mapping", () => {
    assert.match(problemsOfText("")[0]!.message, /empty/);
    assert.deepEqual(paths(problemsOfText("- a\n- b\n")), [""]);
  });
});

describe("loadConfig from disk", () => {
  const dir = mkdtempSync(join(tmpdir(), "floatip-config-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reports a missing file as CONFIG_UNREADABLE", () => {
    const path = join(dir, "missing.yaml");
    assert.throws(
      () => loadConfig(path),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.code === "CONFIG_UNREADABLE" &&
        error.problems[0]?.file === path &&
        /ENOENT/.test(error.message),
    );
  });

  it("names the file as given in problems and loads a valid one", () => {
    const path = join(dir, "cluster.yaml");
    writeFileSync(path, stringify(variant((c) => (c.key_file = "cluster.key"))));
    const config = loadConfig(path);
    assert.equal(config.file, path);
    assert.equal(config.keyFile, join(dir, "cluster.key"));
    writeFileSync(path, stringify(variant((c) => (c.profile = "lna"))));
    assert.throws(
      () => loadConfig(path),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.problems.length === 1 &&
        error.problems[0]!.file === path &&
        error.problems[0]!.fix === 'did you mean "lan"?',
    );
  });
});

describe("suggest", () => {
  it("matches case, separators, typos, transpositions and unique prefixes", () => {
    const keys = ["key_file", "state_dir", "heartbeat_interval_ms", "lease_ms", "nodes"];
    assert.equal(suggest("keyFile", keys), "key_file");
    assert.equal(suggest("state-dir", keys), "state_dir");
    assert.equal(suggest("lease_sm", keys), "lease_ms");
    assert.equal(suggest("heartbeat", keys), "heartbeat_interval_ms");
    assert.equal(suggest("node", keys), "nodes");
    assert.equal(suggest("colour", keys), undefined);
  });
});

describe("arbiter", () => {
  const endpoints = ["http://198.18.0.21:2379", "http://198.18.0.22:2379"];

  it("is absent by default and with kind: embedded", () => {
    assert.equal(parse(base()).arbiter, undefined);
    assert.equal(parse(variant((c) => (c.arbiter = { kind: "embedded" }))).arbiter, undefined);
  });

  it("reads an etcd arbiter with its defaults, TLS and authentication", () => {
    const config = parse(variant((c) => (c.arbiter = { kind: "etcd", endpoints })));
    assert.deepEqual(config.arbiter, {
      kind: "etcd",
      endpoints,
      prefix: "/floatip",
      ttlSec: 2,
      onLoss: "release",
      requestTimeoutMs: 1000,
    });
    const secure = parse(
      variant(
        (c) =>
          (c.arbiter = {
            kind: "etcd",
            endpoints: ["https://198.18.0.21:2379"],
            ttl: "3s",
            on_loss: "failsafe",
            tls: { ca: "/etc/floatip/ca.pem", cert: "client.pem", key: "client-key.pem" },
            auth: { user: "floatip", password_file: "etcd.password" },
          }),
      ),
    );
    assert.equal(secure.arbiter?.ttlSec, 3);
    assert.equal(secure.arbiter?.onLoss, "failsafe");
    assert.equal(secure.arbiter?.tls?.ca, "/etc/floatip/ca.pem");
    assert.equal(secure.arbiter?.tls?.cert, resolve("client.pem"));
    assert.equal(secure.arbiter?.auth?.passwordFile, resolve("etcd.password"));
  });

  it("names the key and the fix for every mistake", () => {
    const cases: [Loose, string, RegExp][] = [
      [{ kind: "etcd" }, "arbiter.endpoints", /required/],
      [{ kind: "etcd", endpoints: ["198.18.0.21:2379"] }, "arbiter.endpoints[0]", /client URL/],
      [{ kind: "etcd", endpoints, ttl: "1500ms" }, "arbiter.ttl", /whole seconds/],
      [{ kind: "etcd", endpoints, ttl: "1s", timeout: "2s" }, "arbiter.timeout", /shorter/],
      [{ kind: "etcd", endpoints: ["https://198.18.0.21:2379"] }, "arbiter.tls", /required/],
      [{ kind: "etcd", endpoints, tls: { ca: "ca.pem" } }, "arbiter.endpoints", /http:\/\//],
      [
        { kind: "etcd", endpoints: ["https://198.18.0.21:2379"], tls: { ca: "a", cert: "c" } },
        "arbiter.tls",
        /only one of cert and key/,
      ],
      [{ kind: "etcd", endpoints, on_loss: "keep" }, "arbiter.on_loss", /release, failsafe/],
      [{ kind: "etcd", endpoints, auth: { user: "u" } }, "arbiter.auth.password_file", /required/],
      [{ kind: "embedded", endpoints }, "arbiter.endpoints", /kind: etcd only/],
      [{ kind: "consul" }, "arbiter.kind", /embedded, etcd/],
    ];
    for (const [arbiter, path, message] of cases) {
      const problems = problemsOf(variant((c) => (c.arbiter = arbiter)));
      const problem = problems.find((p) => p.path === path);
      assert.ok(problem, `${JSON.stringify(arbiter)}: ${JSON.stringify(problems)}`);
      assert.match(problem.message, message);
      assert.ok(problem.fix.length > 0);
    }
  });
});

describe("heartbeats", () => {
  it("defaults to all and reads coordinator", () => {
    assert.equal(parse(base()).heartbeats, "all");
    assert.equal(parse(variant((c) => (c.heartbeats = "coordinator"))).heartbeats, "coordinator");
  });

  it("names the key and the fix for a wrong value, and refuses it beside an etcd arbiter", () => {
    const typo = problemsOf(variant((c) => (c.heartbeats = "coordinators")));
    const problem = typo.find((p) => p.path === "heartbeats");
    assert.ok(problem, JSON.stringify(typo));
    assert.match(problem.message, /all, coordinator/);
    assert.match(problem.fix, /did you mean "coordinator"/);
    const etcd = problemsOf(
      variant((c) => {
        c.heartbeats = "coordinator";
        c.arbiter = { kind: "etcd", endpoints: ["http://198.18.0.21:2379"] };
      }),
    );
    const both = etcd.find((p) => p.path === "heartbeats");
    assert.ok(both, JSON.stringify(etcd));
    assert.match(both.message, /embedded election only/);
  });
});

describe("receive", () => {
  it("defaults to as-they-come and reads on-tick with timers whose grant window is four intervals", () => {
    assert.equal(parse(base()).receive, "as-they-come");
    const config = parse(
      variant((c) => {
        c.receive = "on-tick";
        c.profile = "lan";
        c.timers = { election_timeout_ms: 419, lease_ms: 460 };
      }),
    );
    assert.equal(config.receive, "on-tick");
    assert.equal(
      parse(variant((c) => Object.assign(c, { receive: "on-tick", profile: "fast", timers: null })))
        .receive,
      "on-tick",
    );
  });

  it("refuses on-tick with lan's own election timeout, naming the key and the timeout that works", () => {
    const problems = problemsOf(
      variant((c) => Object.assign(c, { receive: "on-tick", profile: "lan", timers: null })),
    );
    const problem = problems.find((p) => p.path === "receive");
    assert.ok(problem, JSON.stringify(problems));
    assert.match(problem.message, /grant window of at least 4 heartbeat intervals \(400 ms\)/);
    assert.match(problem.fix, /timers\.election_timeout_ms to at least 419/);
    // The number in the fix is the smallest that passes: one less is refused.
    const below = problemsOf(
      variant((c) =>
        Object.assign(c, {
          receive: "on-tick",
          profile: "lan",
          timers: { election_timeout_ms: 418, lease_ms: 460 },
        }),
      ),
    );
    assert.ok(
      below.some((p) => p.path === "receive"),
      JSON.stringify(below),
    );
  });

  it("refuses on-tick with a lease shorter than four intervals and six margins", () => {
    // lan's heartbeats on the tick: 460 ms. The simulator dropped VIPs of a healthy 7-node
    // cluster at 430 ms and was clean at 450 (src/core/timing.ts, renewableLeaseMinMs).
    const onTick = (lease: number) =>
      variant((c) =>
        Object.assign(c, {
          receive: "on-tick",
          profile: "lan",
          timers: { election_timeout_ms: 419, lease_ms: lease },
        }),
      );
    const short = problemsOf(onTick(459));
    assert.deepEqual(
      short.map((p) => p.path),
      ["timers.lease_ms"],
    );
    assert.match(short[0]!.message, /on-tick needs a lease .*\(460 ms\), got 459/);
    assert.match(short[0]!.fix, /lease_ms to at least 460, or remove receive/);
    assert.equal(parse(onTick(460)).timers.leaseMs, 460);
    // The same lease reading as datagrams come is fine (330 ms there).
    const plain = variant((c) => (c.timers = { election_timeout_ms: 419, lease_ms: 459 }));
    assert.equal(parse(plain).timers.leaseMs, 459);
  });

  it("names the key for a wrong value, and refuses on-tick beside an etcd arbiter", () => {
    const typo = problemsOf(variant((c) => (c.receive = "on_tick")));
    const problem = typo.find((p) => p.path === "receive");
    assert.ok(problem, JSON.stringify(typo));
    assert.match(problem.message, /as-they-come, on-tick/);
    const etcd = problemsOf(
      variant((c) => {
        Object.assign(c, { receive: "on-tick", profile: "fast", timers: null });
        c.arbiter = { kind: "etcd", endpoints: ["http://198.18.0.21:2379"] };
      }),
    );
    const both = etcd.find((p) => p.path === "receive");
    assert.ok(both, JSON.stringify(etcd));
    assert.match(both.message, /embedded election only/);
  });
});
