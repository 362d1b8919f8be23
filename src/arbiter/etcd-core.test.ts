/**
 * The etcd arbiter's step machine against an in-memory model of etcd's semantics (keys with
 * create/mod revisions, leases that expire, guarded transactions, a watch that delivers the
 * whole prefix): pure logic only. The real etcd runs in test/netns/etcd-arbiter.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { profiles } from "../config/profiles.ts";
import type { Effect, EtcdKv, EtcdOp, Input, Message } from "../core/types.ts";
import { EtcdCore, type LossPolicy } from "./etcd-core.ts";

interface Kv {
  value: string;
  createRevision: number;
  modRevision: number;
  lease: string;
}

class FakeEtcd {
  revision = 1;
  readonly kvs = new Map<string, Kv>();
  readonly leases = new Map<string, number>();
  #nextLease = 100;
  up = true;

  grant(now: number, ttlMs: number): string {
    const id = String(this.#nextLease++);
    this.leases.set(id, now + ttlMs);
    return id;
  }

  keepAlive(id: string, now: number, ttlMs: number): boolean {
    if (!this.leases.has(id)) return false;
    this.leases.set(id, now + ttlMs);
    return true;
  }

  expire(now: number): void {
    for (const [id, until] of this.leases) {
      if (now < until) continue;
      this.leases.delete(id);
      for (const [key, kv] of this.kvs) {
        if (kv.lease === id) this.#delete(key);
      }
    }
  }

  #put(key: string, value: string, lease = "0"): void {
    this.revision += 1;
    const old = this.kvs.get(key);
    this.kvs.set(key, {
      value,
      createRevision: old?.createRevision ?? this.revision,
      modRevision: this.revision,
      lease,
    });
  }

  #delete(key: string): void {
    if (!this.kvs.has(key)) return;
    this.revision += 1;
    this.kvs.delete(key);
  }

  view(): EtcdKv[] {
    return [...this.kvs].map(([key, kv]) => ({ key, ...kv }));
  }

  apply(node: string, lease: string | undefined, op: EtcdOp): { ok: boolean; revision: number } {
    const create = (key: string) => this.kvs.get(key)?.createRevision ?? 0;
    const mod = (key: string) => this.kvs.get(key)?.modRevision ?? 0;
    const leased = lease !== undefined && this.leases.has(lease);
    let ok = false;
    switch (op.kind) {
      case "campaign":
        ok = leased && create("coordinator") === 0;
        if (ok) this.#put("coordinator", node, lease);
        break;
      case "register":
        ok = leased;
        if (ok) this.#put(`members/${node}`, op.value, lease);
        break;
      case "publish":
        ok = create("coordinator") === op.term && this.kvs.get("coordinator")?.value === node;
        if (ok) this.#put("table", op.value);
        break;
      case "claim":
        ok = leased && create(`owners/${op.address}`) === 0 && mod("table") === op.tableRevision;
        if (ok) this.#put(`owners/${op.address}`, node, lease);
        break;
      case "release":
        ok = create(`owners/${op.address}`) === op.claimRevision;
        if (ok) this.#delete(`owners/${op.address}`);
        break;
      case "admin":
        ok = mod("admin") === op.expectRevision;
        if (ok) this.#put("admin", op.value);
        break;
      case "resign":
        ok = create("coordinator") === op.term;
        if (ok) this.#delete("coordinator");
        break;
    }
    return { ok, revision: this.revision };
  }
}

const ttlMs = 1000;
const vips = ["198.18.0.100", "198.18.0.101", "198.18.0.102"];

interface SimNode {
  readonly id: string;
  core: EtcdCore;
  lease: string | undefined;
  /** Reaches etcd (its own link; `etcd.up` is the cluster's). */
  reachesEtcd: boolean;
  alive: boolean;
  /** VIP indexes configured on its interface. */
  readonly configured: Set<number>;
  inbox: Input[];
}

class Harness {
  now = 0;
  readonly etcd = new FakeEtcd();
  readonly nodes: SimNode[];
  readonly doubles: string[] = [];
  /**
   * Whether a probe sees another node's address. False: the probe is blind (a partition
   * between the two nodes alone), so only the leases keep a VIP from being held twice.
   */
  probeSees = true;
  /** Called before etcd applies a node's write (to interleave another write with it). */
  beforeApply: ((node: SimNode, op: EtcdOp) => void) | undefined;
  /** When set, every 10 ms step at which a VIP is held by no node is recorded. */
  unheld: string[] | undefined;
  #nextKeepAlive = 0;

  readonly #makeCore: (id: string, incarnation: number) => EtcdCore;

  constructor(count: number, onLoss: LossPolicy = "release") {
    const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
    this.#makeCore = (id, incarnation) =>
      new EtcdCore({
        id,
        config: {
          nodes: ids.map((n) => ({ id: n, weight: 1 })),
          vips: vips.map((address) => ({
            address,
            policy: "round-robin",
            failback: { mode: "never" },
          })),
          timers: profiles.lan,
        },
        ttlMs,
        onLoss,
        incarnation,
        nowMs: this.now,
      });
    this.nodes = ids.map((id) => ({
      id,
      core: this.#makeCore(id, 1),
      lease: undefined,
      reachesEtcd: true,
      alive: true,
      configured: new Set(),
      inbox: [],
    }));
  }

  #reaches(node: SimNode): boolean {
    return node.alive && node.reachesEtcd && this.etcd.up;
  }

  node(id: string): SimNode {
    return this.nodes.find((n) => n.id === id)!;
  }

  /** Runs for `ms` in 10 ms steps, checking after each that no VIP is configured twice. */
  run(ms: number): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.now += 10;
      this.etcd.expire(this.now);
      if (this.now >= this.#nextKeepAlive) {
        this.#nextKeepAlive = this.now + ttlMs / 4;
        for (const node of this.nodes) this.#keepAlive(node);
      }
      const view: Input = {
        type: "etcd-view",
        nowMs: this.now,
        revision: this.etcd.revision,
        kvs: this.etcd.view(),
      };
      for (const node of this.nodes) {
        if (!node.alive) continue;
        const inputs = [...node.inbox];
        node.inbox = [];
        if (this.#reaches(node)) inputs.push(view);
        inputs.push({ type: "tick", nowMs: this.now });
        for (const input of inputs) this.#step(node, input);
      }
      vips.forEach((address, vip) => {
        const holders = this.nodes.filter((n) => n.configured.has(vip)).map((n) => n.id);
        if (holders.length > 1) this.doubles.push(`${this.now} ms: ${address} on ${holders}`);
        if (holders.length === 0) this.unheld?.push(`${this.now} ms: ${address}`);
      });
    }
  }

  #keepAlive(node: SimNode): void {
    if (!this.#reaches(node)) return;
    if (node.lease === undefined || !this.etcd.keepAlive(node.lease, this.now, ttlMs)) {
      node.lease = this.etcd.grant(this.now, ttlMs);
    }
    node.inbox.push({
      type: "etcd-session",
      nowMs: this.now,
      leaseId: node.lease,
      validFromMs: this.now,
      ttlMs,
    });
  }

  #step(node: SimNode, input: Input): void {
    const output = node.core.step(input);
    for (const effect of output.effects) this.#perform(node, effect);
  }

  #perform(node: SimNode, effect: Effect): void {
    const later = (input: Input) => node.inbox.push(input);
    switch (effect.type) {
      case "etcd":
        if (!this.#reaches(node)) {
          later({ type: "etcd-result", nowMs: this.now, op: effect.op, ok: false, error: "down" });
          return;
        }
        this.beforeApply?.(node, effect.op);
        later({
          type: "etcd-result",
          nowMs: this.now,
          op: effect.op,
          ...this.etcd.apply(node.id, node.lease, effect.op),
        });
        return;
      case "probe-address": {
        const other = this.probeSees
          ? this.nodes.find((n) => n !== node && n.configured.has(effect.vip))
          : undefined;
        later({
          type: "probe-result",
          nowMs: this.now,
          vip: effect.vip,
          occupied: other !== undefined,
          ...(other ? { by: other.id } : {}),
        });
        return;
      }
      case "add-address":
        node.configured.add(effect.vip);
        later({ type: "address-added", nowMs: this.now, vip: effect.vip });
        return;
      case "remove-address":
        node.configured.delete(effect.vip);
        later({ type: "address-removed", nowMs: this.now, vip: effect.vip });
        return;
      case "send":
        this.#deliver(node.id, effect.to, effect.message);
        return;
      case "broadcast":
      case "persist-vote":
      case "announce":
        return;
    }
  }

  #deliver(from: string, to: string, message: Message): void {
    const target = this.node(to);
    if (!target.alive) return;
    target.inbox.push({ type: "message", nowMs: this.now, from, message });
  }

  holders(): Map<string, string[]> {
    return new Map(
      vips.map((address, vip) => [
        address,
        this.nodes.filter((n) => n.configured.has(vip)).map((n) => n.id),
      ]),
    );
  }

  /** The agent dies and its supervisor starts a new one, which revokes the old lease. */
  restart(id: string): void {
    const node = this.node(id);
    node.configured.clear();
    node.inbox = [];
    if (node.lease !== undefined) {
      this.etcd.leases.set(node.lease, this.now);
      this.etcd.expire(this.now);
    }
    node.lease = undefined;
    node.core = this.#makeCore(id, 2);
  }

  kill(id: string): void {
    const node = this.node(id);
    node.alive = false;
    node.configured.clear(); // the kernel lifetime / supervisor took its addresses
  }
}

function everyHeldOnce(h: Harness): boolean {
  return [...h.holders().values()].every((holders) => holders.length === 1);
}

describe("etcd arbiter core", () => {
  it("elects one coordinator through etcd and places every VIP on one node", () => {
    const h = new Harness(3);
    h.run(2000);
    assert.ok(everyHeldOnce(h), JSON.stringify([...h.holders()]));
    const coordinators = h.nodes.filter((n) => n.core.role === "coordinator");
    assert.equal(coordinators.length, 1);
    assert.equal(new Set(h.nodes.map((n) => n.core.coordinator)).size, 1);
    // Round-robin: three VIPs on three nodes.
    assert.equal(new Set([...h.holders().values()].map((x) => x[0])).size, 3);
    assert.deepEqual(h.doubles, []);
  });

  it("moves a dead node's VIP after its lease expires, never holding it twice", () => {
    const h = new Harness(3);
    h.run(2000);
    const owner = h.holders().get(vips[0]!)![0]!;
    h.kill(owner);
    h.run(3000);
    const after = h.holders().get(vips[0]!)!;
    assert.equal(after.length, 1);
    assert.notEqual(after[0], owner);
    assert.deepEqual(h.doubles, []);
  });

  it("moves a restarted node's VIPs elsewhere (a new incarnation is a failure)", () => {
    const h = new Harness(3);
    h.run(2000);
    const owner = h.holders().get(vips[0]!)![0]!;
    h.restart(owner);
    h.run(2000);
    const after = h.holders().get(vips[0]!)!;
    assert.equal(after.length, 1);
    assert.notEqual(after[0], owner, "not taken back by the restarted node");
    assert.deepEqual(h.doubles, []);
  });

  it("release: a holder cut off from etcd lets go before its lease can expire", () => {
    const h = new Harness(3, "release");
    h.probeSees = false;
    h.run(2000);
    const owner = h.holders().get(vips[0]!)![0]!;
    h.node(owner).reachesEtcd = false;
    h.run(400);
    assert.ok(h.node(owner).configured.size > 0, "still within the lease");
    h.run(3000);
    assert.equal(h.node(owner).configured.size, 0, "released after the lease");
    const after = h.holders().get(vips[0]!)!;
    assert.equal(after.length, 1, "another node took it");
    assert.notEqual(after[0], owner);
    assert.deepEqual(h.doubles, []);
  });

  it("failsafe: holders keep their VIPs while etcd is down and every peer acknowledges", () => {
    const h = new Harness(3, "failsafe");
    h.run(3000);
    const before = JSON.stringify([...h.holders()]);
    assert.ok(everyHeldOnce(h));
    h.etcd.up = false;
    h.run(5000);
    assert.equal(JSON.stringify([...h.holders()]), before, "nothing moved, nothing dropped");
    h.etcd.up = true;
    h.run(3000);
    assert.ok(everyHeldOnce(h), JSON.stringify([...h.holders()]));
    assert.deepEqual(h.doubles, []);
  });

  it("failsafe: after an outage past every lease, each VIP is claimed again in place, also when the table changes meanwhile", () => {
    for (const republish of [false, true]) {
      const h = new Harness(3, "failsafe");
      h.run(3000);
      const before = JSON.stringify([...h.holders()]);
      assert.ok(everyHeldOnce(h));
      h.etcd.up = false;
      h.run(4000);
      // Every session lease expired meanwhile; etcd deletes their keys.
      h.etcd.expire(h.now + 10 * ttlMs);
      let republished = 0;
      if (republish) {
        // The coordinator publishes a table (membership, incarnations) while a claim-again
        // is on its way: the table revision that claim names is no longer the table's.
        h.beforeApply = (node, op) => {
          if (op.kind !== "claim" || !node.configured.has(op.vip) || republished > 2) return;
          const table = h.etcd.kvs.get("table")!;
          h.etcd.revision += 1;
          h.etcd.kvs.set("table", { ...table, modRevision: h.etcd.revision });
          republished += 1;
        };
      }
      h.unheld = [];
      h.etcd.up = true;
      h.run(3000);
      if (republish) assert.ok(republished > 0, "a claim-again raced with a publish");
      assert.deepEqual(h.unheld, [], `republish=${republish}: never unheld`);
      assert.equal(JSON.stringify([...h.holders()]), before, "nothing moved");
      const claimed = vips.map((address) => h.etcd.kvs.get(`owners/${address}`)?.value);
      assert.deepEqual(
        claimed,
        vips.map((address) => h.holders().get(address)![0]),
        "every held VIP is claimed in etcd by its holder",
      );
      assert.deepEqual(h.doubles, []);
    }
  });

  it("failsafe: a holder cut off from etcd keeps its VIP, and no peer claims it meanwhile", () => {
    const h = new Harness(3, "failsafe");
    h.probeSees = false;
    h.run(3000);
    const owner = h.holders().get(vips[0]!)![0]!;
    h.node(owner).reachesEtcd = false;
    h.run(5000);
    assert.deepEqual(h.holders().get(vips[0]!), [owner]);
    h.node(owner).reachesEtcd = true;
    h.run(4000);
    assert.ok(everyHeldOnce(h), JSON.stringify([...h.holders()]));
    assert.deepEqual(h.doubles, []);
  });

  it("failsafe: a follower cut off from etcd keeps its VIP in the table, so nothing moves when etcd is back", () => {
    const h = new Harness(3, "failsafe");
    h.probeSees = false;
    h.run(3000);
    const coordinator = h.nodes.find((n) => n.core.role === "coordinator")!.id;
    const [vip, [owner]] = [...h.holders()].find(([, held]) => held[0] !== coordinator)! as [
      string,
      string[],
    ];
    h.node(owner!).reachesEtcd = false;
    h.run(5000); // past the owner's lease in etcd: the coordinator sees its member key gone
    h.node(owner!).reachesEtcd = true;
    const seen = new Set<string>();
    for (let i = 0; i < 80; i += 1) {
      h.run(50);
      for (const holder of h.holders().get(vip) ?? []) seen.add(holder);
    }
    assert.deepEqual([...seen], [owner], `${vip} stayed on ${owner} after etcd came back`);
    assert.deepEqual(h.holders().get(vip), [owner]);
    assert.deepEqual(h.doubles, []);
  });

  it("failsafe: without every peer's acknowledgement a holder releases like release", () => {
    const h = new Harness(3, "failsafe");
    h.run(3000);
    const holders = h.holders();
    const owner = holders.get(vips[0]!)![0]!;
    const other = h.nodes.find((n) => n.id !== owner)!.id;
    h.kill(other);
    h.etcd.up = false;
    h.run(3000);
    assert.equal(h.node(owner).configured.size, 0, "no acknowledgement from the dead peer");
    assert.deepEqual(h.doubles, []);
  });

  it("refuses a view older than one it acted on, and lets go of a VIP whose key was replaced", () => {
    const h = new Harness(3);
    h.probeSees = false;
    h.run(2000);
    const owner = h.node(h.holders().get(vips[0]!)![0]!);
    const stale = owner.core.counters.staleViews;
    owner.core.step({ type: "etcd-view", nowMs: h.now, revision: 1, kvs: [] });
    assert.equal(owner.core.counters.staleViews, stale + 1);
    assert.ok(owner.configured.has(0), "the old view changed nothing");
    // The ownership key is deleted and created again by another transaction (an operator,
    // or a later grant): the holder's claim revision is no longer the key's.
    const key = `owners/${vips[0]}`;
    const kv = h.etcd.kvs.get(key)!;
    h.etcd.kvs.set(key, { ...kv, createRevision: h.etcd.revision + 1 });
    h.etcd.revision += 1;
    h.run(100);
    assert.equal(owner.core.counters.staleGrants > 0, true);
    assert.deepEqual(h.doubles, []);
  });
});
