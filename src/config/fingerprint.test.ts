import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { configFingerprint } from "./fingerprint.ts";
import { profiles } from "./profiles.ts";
import type { ClusterConfig } from "./types.ts";
import { canonicalVipOrder } from "./vip-order.ts";

type Part = Pick<ClusterConfig, "cluster" | "nodes" | "vips" | "timers">;

const base: Part = {
  cluster: "prod",
  nodes: [
    { id: "n1", address: "198.18.0.1", port: 7946, interface: "eth0", weight: 1 },
    { id: "n2", address: "198.18.0.2", port: 7946, interface: "eth0", weight: 1 },
  ],
  vips: [
    {
      address: "198.18.0.100",
      prefixLength: 24,
      policy: "round-robin",
      failback: { mode: "never" },
    },
    { address: "198.18.0.101", prefixLength: 24, policy: "hash", failback: { mode: "never" } },
  ],
  timers: profiles.lan,
};

describe("configuration fingerprint", () => {
  it("changes with heartbeats: coordinator and stays the same with the default all", () => {
    const fingerprint = configFingerprint(base);
    assert.equal(configFingerprint({ ...base, heartbeats: "all" }), fingerprint);
    assert.notEqual(configFingerprint({ ...base, heartbeats: "coordinator" }), fingerprint);
  });

  it("is 16 hex digits, the same for the same cluster-wide part", () => {
    const fingerprint = configFingerprint(base);
    assert.match(fingerprint, /^[0-9a-f]{16}$/);
    assert.equal(configFingerprint(structuredClone(base)), fingerprint);
  });

  it("ignores what may differ per node: interfaces", () => {
    const other = {
      ...base,
      nodes: base.nodes.map((n) => ({ ...n, interface: "bond0" })),
      vips: base.vips.map((v) => ({ ...v, interface: "bond0" })),
    };
    assert.equal(configFingerprint(other), configFingerprint(base));
  });

  it("is the same whatever the order of vips: (VIPs are identified by address)", () => {
    assert.equal(
      configFingerprint({ ...base, vips: [...base.vips].reverse() }),
      configFingerprint(base),
    );
  });

  it("changes with a VIP's address or prefix, a VIP's policy, a node's weight, the timers or the cluster name", () => {
    const variants: Part[] = [
      { ...base, vips: [{ ...base.vips[0]!, address: "198.18.0.102" }, base.vips[1]!] },
      { ...base, vips: [{ ...base.vips[0]!, prefixLength: 25 }, base.vips[1]!] },
      { ...base, vips: [{ ...base.vips[0]!, policy: "weighted" }, base.vips[1]!] },
      { ...base, nodes: [{ ...base.nodes[0]!, weight: 5 }, base.nodes[1]!] },
      { ...base, timers: profiles.wan },
      { ...base, cluster: "staging" },
      { ...base, vips: base.vips.slice(0, 1) },
    ];
    const seen = new Set([configFingerprint(base)]);
    for (const variant of variants) seen.add(configFingerprint(variant));
    assert.equal(seen.size, variants.length + 1, "every variant has its own fingerprint");
  });
});

describe("cluster-wide VIP order", () => {
  it("sorts by address numerically, IPv4 before anything else, and leaves the input alone", () => {
    const input = [
      { address: "198.18.0.100" },
      { address: "2001:db8::1" },
      { address: "198.18.0.20" },
      { address: "198.19.0.1" },
      { address: "198.18.0.3" },
    ];
    const before = input.map((v) => v.address);
    assert.deepEqual(
      canonicalVipOrder(input).map((v) => v.address),
      ["198.18.0.3", "198.18.0.20", "198.18.0.100", "198.19.0.1", "2001:db8::1"],
    );
    assert.deepEqual(
      input.map((v) => v.address),
      before,
    );
  });
});
