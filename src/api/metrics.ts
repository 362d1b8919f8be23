/**
 * Prometheus text exposition (format 0.0.4) of one agent's status, served at `GET /metrics`.
 * Built from `AgentStatus` alone, so it shows exactly what `floatip status` shows. Counters
 * end in `_total`; every series of a family is present even when 0 (one line per role, per
 * member state), so alerts never see a series vanish.
 */
import type { AgentStatus } from "../agent/handle.ts";
import { lagBucketsMs } from "../agent/loop-monitor.ts";
import { WIRE_VERSION } from "../cluster/codec.ts";
import { floatipVersion } from "../version.ts";

const roles = ["follower", "candidate", "coordinator"] as const;
const memberStates = ["healthy", "failed", "drained", "unknown"] as const;

/** Escapes a label value as the exposition format requires (backslash, quote, newline). */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(pairs: Record<string, string>): string {
  const inner = Object.entries(pairs)
    .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
    .join(",");
  return inner === "" ? "" : `{${inner}}`;
}

class Exposition {
  readonly #lines: string[] = [];

  family(name: string, type: "gauge" | "counter" | "histogram", help: string): void {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, value: number, pairs: Record<string, string> = {}): void {
    this.#lines.push(`${name}${labels(pairs)} ${Number.isFinite(value) ? value : "NaN"}`);
  }

  /** A family of one sample, left out when the value is unknown. */
  single(
    name: string,
    type: "gauge" | "counter",
    help: string,
    value: number | undefined,
    pairs: Record<string, string>,
  ): void {
    if (value === undefined) return;
    this.family(name, type, help);
    this.sample(name, value, pairs);
  }

  text(): string {
    return `${this.#lines.join("\n")}\n`;
  }
}

const flag = (b: boolean): number => (b ? 1 : 0);

export function renderMetrics(status: AgentStatus): string {
  const out = new Exposition();
  const node = { cluster: status.cluster, node: status.node };

  out.family("floatip_role", "gauge", "1 for the role this node has now, 0 for the others.");
  for (const role of roles)
    out.sample("floatip_role", flag(status.role === role), { ...node, role });
  out.family("floatip_term", "gauge", "Current election term seen by this node.");
  out.sample("floatip_term", status.term, node);
  out.family("floatip_healthy", "gauge", "1 when the node's own health checks pass.");
  out.sample("floatip_healthy", flag(status.healthy), node);
  out.family("floatip_quorum", "gauge", "1 when this node hears a majority of the nodes.");
  out.sample("floatip_quorum", flag(status.quorum), node);
  out.family(
    "floatip_lease_valid",
    "gauge",
    "1 while this node's lease from the coordinator is valid.",
  );
  out.sample("floatip_lease_valid", flag(status.leaseValid), node);
  if (status.config !== undefined) {
    out.family(
      "floatip_config_matches_coordinator",
      "gauge",
      "1 when this node's cluster-wide configuration has the coordinator's fingerprint (else it holds no VIPs).",
    );
    out.sample("floatip_config_matches_coordinator", flag(status.config.matchesCoordinator), {
      ...node,
      fingerprint: status.config.fingerprint,
    });
  }

  out.family(
    "floatip_peer_last_heard_seconds",
    "gauge",
    "Seconds since this node last heard each peer's heartbeat (NaN: never, in this run).",
  );
  for (const peer of status.peers) {
    out.sample(
      "floatip_peer_last_heard_seconds",
      peer.heardAgoMs === undefined ? Number.NaN : peer.heardAgoMs / 1000,
      { ...node, peer: peer.id },
    );
  }
  out.family(
    "floatip_lease_remaining_seconds",
    "gauge",
    "Seconds left on this node's lease (0: none).",
  );
  out.sample("floatip_lease_remaining_seconds", status.view.leaseLeftMs / 1000, node);

  out.family("floatip_vip_held", "gauge", "1 when this node has the VIP configured and announced.");
  for (const vip of status.vips)
    out.sample("floatip_vip_held", flag(vip.local === "held"), { ...node, vip: vip.address });
  out.family(
    "floatip_vip_conflict",
    "gauge",
    "1 when the VIP was found occupied by a host outside the cluster.",
  );
  for (const vip of status.vips)
    out.sample("floatip_vip_conflict", flag(vip.conflict), { ...node, vip: vip.address });

  out.family(
    "floatip_members",
    "gauge",
    "Configured nodes per member state in the coordinator's table.",
  );
  for (const state of memberStates) {
    const count = status.members.filter((m) => m.state === state).length;
    out.sample("floatip_members", count, { ...node, state });
  }

  if (status.counters) {
    const c = status.counters;
    const counters: [string, number, string][] = [
      ["floatip_elections_total", c.elections, "Coordinators this node saw elected."],
      ["floatip_vip_acquired_total", c.vipsAcquired, "VIPs this node added and announced."],
      ["floatip_vip_released_total", c.vipsReleased, "VIPs this node removed."],
      [
        "floatip_member_failures_total",
        c.memberFailures,
        "Members this node, as coordinator, declared failed (each one starts a failover).",
      ],
    ];
    for (const [name, value, help] of counters) {
      out.family(name, "counter", help);
      out.sample(name, value, node);
    }
  }
  if (status.hooks !== undefined) {
    out.family(
      "floatip_notify_hook_calls_total",
      "counter",
      "Notify hook calls by outcome: run, coalesced (a newer call about the same thing replaced it while it waited), dropped (queue full), failed.",
    );
    for (const outcome of ["run", "coalesced", "dropped", "failed"] as const) {
      out.sample("floatip_notify_hook_calls_total", status.hooks[outcome], { ...node, outcome });
    }
  }
  out.family(
    "floatip_build_info",
    "gauge",
    "Always 1: the floatip version, wire format and Node.js version of this agent.",
  );
  out.sample("floatip_build_info", 1, {
    ...node,
    version: floatipVersion,
    wire: String(WIRE_VERSION),
    nodejs: process.version,
  });

  out.family("floatip_transport_sent_total", "counter", "Heartbeat and control datagrams sent.");
  out.sample("floatip_transport_sent_total", status.transport.sent, node);
  out.family("floatip_transport_received_total", "counter", "Datagrams received and accepted.");
  out.sample("floatip_transport_received_total", status.transport.received, node);
  out.single(
    "floatip_transport_send_errors_total",
    "counter",
    "Datagrams that could not be sent (the system call failed, or the send buffer was full with receive: on-tick).",
    status.transport.sendErrors,
    node,
  );
  out.family("floatip_transport_dropped_total", "counter", "Datagrams dropped, by reason.");
  for (const [reason, count] of Object.entries(status.transport.dropped)) {
    out.sample("floatip_transport_dropped_total", count, { ...node, reason });
  }
  out.single(
    "floatip_transport_kernel_drops_total",
    "counter",
    "Datagrams the kernel dropped for the heartbeat socket before the agent read them (receive buffer full).",
    status.transport.kernelDrops,
    node,
  );

  if (status.arbiter !== undefined) renderArbiter(out, node, status.arbiter);
  if (status.loop) {
    const loop = status.loop;
    out.family(
      "floatip_loop_lag_seconds",
      "histogram",
      "How late the control plane's wake timer ran (its event-loop lag).",
    );
    lagBucketsMs.forEach((bound, i) => {
      out.sample("floatip_loop_lag_seconds_bucket", loop.buckets[i] ?? 0, {
        ...node,
        le: String(bound / 1000),
      });
    });
    out.sample("floatip_loop_lag_seconds_bucket", loop.count, { ...node, le: "+Inf" });
    out.sample("floatip_loop_lag_seconds_sum", loop.sumMs / 1000, node);
    out.sample("floatip_loop_lag_seconds_count", loop.count, node);
    out.family(
      "floatip_stalls_total",
      "counter",
      "Wakes of the control plane later than the stall threshold (process pauses).",
    );
    out.sample("floatip_stalls_total", loop.stalls, node);
    out.family(
      "floatip_datagrams_withheld_total",
      "counter",
      "Datagrams composed before a stall and not sent after it (the rest of a step's sends).",
    );
    out.sample("floatip_datagrams_withheld_total", loop.datagramsWithheld, node);
  }

  if (status.failover) {
    out.family(
      "floatip_failover_phase_seconds",
      "histogram",
      "How long each failover phase took on this node: detected, elected, lease-wait (as coordinator); probe, address-added, announced (as a VIP's new owner, every acquisition).",
    );
    for (const [phase, histogram] of Object.entries(status.failover)) {
      histogram.boundsMs.forEach((bound, i) => {
        out.sample("floatip_failover_phase_seconds_bucket", histogram.buckets[i] ?? 0, {
          ...node,
          phase,
          le: String(bound / 1000),
        });
      });
      out.sample("floatip_failover_phase_seconds_bucket", histogram.count, {
        ...node,
        phase,
        le: "+Inf",
      });
      out.sample("floatip_failover_phase_seconds_sum", histogram.sumMs / 1000, { ...node, phase });
      out.sample("floatip_failover_phase_seconds_count", histogram.count, { ...node, phase });
    }
  }

  out.family("floatip_health_check_up", "gauge", "Damped verdict of each health check (1 = up).");
  for (const check of status.health.checks) {
    out.sample("floatip_health_check_up", flag(check.up), {
      ...node,
      check: check.name,
      kind: check.kind,
    });
  }
  out.family(
    "floatip_health_check_faults",
    "gauge",
    "Faults counted in the current window of each check.",
  );
  for (const check of status.health.checks) {
    out.sample("floatip_health_check_faults", check.faultsInWindow, {
      ...node,
      check: check.name,
      kind: check.kind,
    });
  }
  return out.text();
}

/** `arbiter: etcd`: the connection and the arbiter's counters (`status --json` → `arbiter`). */
const arbiterCounters: readonly [key: string, name: string, help: string][] = [
  ["leasesGranted", "leases_granted", "etcd session leases this node was granted."],
  ["leasesLost", "leases_lost", "Session leases etcd reported expired on a keep-alive."],
  ["keepAlivesConfirmed", "keepalives_confirmed", "Lease keep-alives etcd confirmed."],
  ["keepAlivesFailed", "keepalives_failed", "Lease keep-alives that got no answer in time."],
  ["writes", "writes", "Guarded writes (transactions) etcd answered, applied or refused."],
  ["writesRefused", "writes_refused", "Guarded writes etcd refused (a compare failed)."],
  ["writesFailed", "writes_failed", "Writes that got no answer (etcd unreachable, timeout)."],
  ["resyncs", "resyncs", "Full reads of the cluster's keys after a watch failed."],
  ["staleViews", "stale_views", "Views older than one already acted on, refused."],
  ["claimsRefused", "claims_refused", "VIP claims etcd refused."],
  [
    "staleGrants",
    "stale_grants",
    "VIPs let go because a newer view showed their key gone or re-created.",
  ],
  ["failsafeAcks", "failsafe_acks", "Failsafe requests of peers this node acknowledged."],
];

function renderArbiter(
  out: Exposition,
  node: Record<string, string>,
  arbiter: Readonly<Record<string, unknown>>,
): void {
  const kind = typeof arbiter.kind === "string" ? arbiter.kind : "unknown";
  const pairs = { ...node, arbiter: kind };
  if (typeof arbiter.connected === "boolean") {
    out.family("floatip_arbiter_connected", "gauge", "1 while the arbiter (etcd) answers.");
    out.sample("floatip_arbiter_connected", flag(arbiter.connected), pairs);
  }
  if (typeof arbiter.revision === "number") {
    out.family("floatip_arbiter_revision", "gauge", "Newest etcd revision this node has seen.");
    out.sample("floatip_arbiter_revision", arbiter.revision, pairs);
  }
  for (const [key, name, help] of arbiterCounters) {
    const value = arbiter[key];
    if (typeof value !== "number") continue;
    out.family(`floatip_arbiter_${name}_total`, "counter", help);
    out.sample(`floatip_arbiter_${name}_total`, value, pairs);
  }
}
