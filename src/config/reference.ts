/**
 * One sentence or two per config key, for floatip.yaml(5) (src/cli/manual.ts). The keys are
 * the loader's own (`configSchema` in load.ts); test/unit/manual.test.ts fails when a key
 * is accepted but not described here, or described but no longer accepted.
 */
export const sectionIntro: Readonly<Record<string, string>> = {
  "": "The top level of the file.",
  timers:
    "Overrides of single fields of the profile. Every combination is checked against the safety rules (a heartbeat shorter than the suspicion time, a lease longer than the election timeout, and so on); a broken rule is an error naming the field.",
  "nodes[]": "Every node of the cluster, the same list on every node.",
  "vips[]":
    "The virtual IPs. A VIP is identified by its address, never by its position in the list.",
  "checks[]":
    "The node's own health checks: a node that fails one (fall times within the window) releases its VIPs and takes none until it passed rise times in a row.",
  api: "The agent's local HTTP API (JSON; OpenAPI at /v1/openapi.json; Prometheus at /metrics).",
  notify: "A command run on role changes and VIP events, one call at a time, under a timeout.",
  realtime:
    "Scheduling of the control plane's thread, so that a busy machine cannot delay a heartbeat.",
  arbiter:
    "Who decides which node holds what. Absent (or kind: embedded): the nodes elect a coordinator among themselves over UDP heartbeats. kind: etcd: an existing etcd (v3 API) elects the coordinator, and each VIP's holder holds it under an etcd lease, fenced by the revision of its ownership key (README, Arbiter).",
  "arbiter.tls":
    "TLS to etcd: the CA that signed etcd's certificates, and a client certificate when etcd asks for one (--client-cert-auth).",
  "arbiter.auth":
    "etcd's user/password authentication; the user needs read-write access to PREFIX/CLUSTER/.",
  tickle:
    "TCP tickle ACKs (as CTDB sends them): clients of a VIP that moved learn at once that their connections are gone, instead of when their retransmissions give up.",
};

export const keyReference: Readonly<Record<string, string>> = {
  cluster: "Name of the cluster: [a-z0-9][a-z0-9_-]*. Required. Carried in every datagram.",
  key_file:
    "Path of the cluster key: 32 or more random bytes, mode 0600 or 0400 (refused when group or others may read it). Required. Authenticates every control datagram.",
  profile:
    "Named timer profile: fast (one machine or one switch), lan (the default: fails over well under a second) or wan (sites apart).",
  timers: "Overrides of single timer fields (see TIMERS).",
  nodes: "The nodes (see NODES). At least one; use three or more for quorum protection.",
  vips: "The virtual IPs (see VIPS).",
  checks: "The node's own health checks (see CHECKS).",
  api: "The local API (see API).",
  notify: "The notify hook (see NOTIFY).",
  realtime: "Realtime scheduling of the control plane (see REALTIME).",
  tickle: "TCP tickle ACKs after a takeover (see TICKLE).",
  heartbeats:
    "Who followers send heartbeats to (embedded election): all (default; every node hears every other, and a cut link between two followers shows in the heartbeat matrix) or coordinator (followers send to the coordinator only and count the nodes it reports hearing; datagrams per cluster grow with the node count instead of its square; links between followers are not watched). The coordinator sends to every node either way; a follower that misses its coordinator's heartbeat sends to every node until it hears one. Same value on every node (part of the fingerprint).",
  receive:
    "How the control plane reads its heartbeat socket (embedded election): as-they-come (default; every datagram wakes the agent) or on-tick (the agent reads what queued at each wake-up of its control loop, at least once per heartbeat interval: a peer's datagram wakes nothing, about half the idle CPU on a virtual machine, and every message waits up to one heartbeat interval, so failover is up to an interval slower per hop). on-tick needs a lease grant window of four heartbeat intervals and a lease of four intervals and six margins: with lan's 100 ms heartbeats, timers.election_timeout_ms 419 or more (215 with 50 ms heartbeats); the config check names the value. Local to the node: the others need not agree.",
  arbiter: "The embedded election (default) or an etcd cluster (see ARBITER).",
  "arbiter.kind": "embedded (default) or etcd.",
  "arbiter.endpoints":
    "etcd client URLs, http://HOST:PORT or https://HOST:PORT, one per etcd member (all of one scheme). Required with kind: etcd.",
  "arbiter.prefix": "Key prefix: floatip keeps its keys under PREFIX/CLUSTER/ (default /floatip).",
  "arbiter.ttl":
    "TTL of each node's etcd session lease, whole seconds (default 2s; etcd raises it to its own minimum, 1.5 election timeouts). A node that cannot renew it lets go of its VIPs before it can expire; a dead node's VIPs move after it.",
  "arbiter.on_loss":
    "release (default): a holder that cannot renew its lease lets go of its VIPs. failsafe: it keeps them while every other configured node acknowledges over the cluster channel that it will claim none of them (Patroni's failsafe_mode); with one node unreachable it releases as with release.",
  "arbiter.timeout": "Deadline of every etcd request (default 1s); shorter than ttl.",
  "arbiter.tls": "TLS to etcd (see ARBITER TLS); required with https:// endpoints.",
  "arbiter.auth": "User and password for etcd (see ARBITER AUTHENTICATION).",
  "arbiter.tls.ca": "PEM file of the CA that signed etcd's server certificates. Required.",
  "arbiter.tls.cert": "PEM file of this node's client certificate (with key).",
  "arbiter.tls.key": "PEM file of the client certificate's private key (with cert).",
  "arbiter.auth.user": "The etcd user. Required.",
  "arbiter.auth.password_file":
    "File holding the user's password (one line; keep it mode 0600). Required.",
  state_dir:
    "Directory of the node's state (votes, incarnation, journals): default /var/lib/floatip.",
  address_lifetime:
    "Kernel valid_lft of every VIP, whole seconds (default 3s), renewed only under a valid lease: a control plane that stops keeps no VIP past it.",
  relays:
    "TCP/HTTP relays to a primary and standbys by monitored service state (validated by the relay module).",
  storage:
    "The storage gateway for Ceph RBD volumes on a VIP (validated by the storage module; needs clients).",
  traffic:
    "Network-traffic statistics with a backup copy on another node (validated by the traffic module).",

  "timers.heartbeat_interval_ms": "Time between heartbeats to every peer.",
  "timers.election_timeout_ms":
    "Time without a coordinator before a node asks for votes (randomised up to 1.5 times).",
  "timers.lease_ms": "How long a grant lets a holder keep its VIPs without a new one.",
  "timers.suspect_after_ms": "Silence after which a peer counts one fault.",
  "timers.faults_to_fail": "Faults within fault_window_ms that make a peer failed.",
  "timers.fault_window_ms": "The window in which faults are counted (flap damping).",
  "timers.rise_rounds": "Good rounds in a row before a failed peer is trusted again.",
  "timers.clock_drift_ratio": "Assumed worst clock-rate difference between nodes (e.g. 0.01).",
  "timers.lease_margin_ms": "Extra wait on top of a lease before a VIP is handed to another node.",
  "timers.probe_timeout_ms": "How long the occupancy probe of a VIP waits for an answer.",
  "timers.probe_retry_ms": "Delay before a VIP found occupied is probed again.",
  "timers.garp_repeat": "Gratuitous ARP frames sent on taking a VIP.",
  "timers.garp_interval_ms": "Time between those frames.",
  "timers.garp_refresh_ms": "Period of re-announcement of held VIPs (0: off).",

  "nodes[].id": "Node id, unique, as given to floatip agent --node.",
  "nodes[].address": "The node's heartbeat address (IP, or IP:PORT).",
  "nodes[].port": "UDP port of the heartbeats (default 7946).",
  "nodes[].interface": "Interface that carries the node's VIPs.",
  "nodes[].weight": "Weight for the weighted policy (default 1).",

  "vips[].address": "The VIP with its prefix length, e.g. 198.18.0.100/24.",
  "vips[].interface": "Interface for this VIP on every node (default: each node's own).",
  "vips[].policy":
    "Placement: round-robin (default), weighted, or hash (rendezvous: only a failed node's VIPs move).",
  "vips[].preferred": "Node that holds the VIP whenever it is healthy.",
  "vips[].failback": 'Back to the preferred node: immediate, never or "after 30s".',

  "checks[].name": "Name of the check, in logs and status.",
  "checks[].kind": "link, tcp, http, exec or rbd.",
  "checks[].interval": "Time between runs (default 1s).",
  "checks[].timeout": "Deadline of one run (default half the interval).",
  "checks[].fall": "Failures within the window that make the node unhealthy (default 3).",
  "checks[].within": "The window of those failures (default 10 intervals).",
  "checks[].rise": "Successes in a row that make it healthy again (default 2).",
  "checks[].interface": "link: the interface that must be up.",
  "checks[].host": "tcp: host to connect to.",
  "checks[].port": "tcp: port to connect to.",
  "checks[].url": "http: URL to GET.",
  "checks[].expect_status": "http: the status that counts as healthy (default 200).",
  "checks[].command": "exec: the command and its arguments, as a list; exit 0 is healthy.",
  "checks[].pool": "rbd: the Ceph pool to list.",
  "checks[].client_id": "rbd: the Ceph client id.",
  "checks[].ceph_conf": "rbd: path of ceph.conf.",

  "api.listen": "Address of the local API (default 127.0.0.1:7480).",
  "api.token_file":
    "File with the bearer token that mutating calls need (mode 0600); without it they are refused.",

  "notify.command": "The command, run as COMMAND EVENT ARGUMENT with FLOATIP_* variables.",
  "notify.timeout": "Deadline of one call (default 5s).",
  "notify.style":
    "floatip (default) or keepalived (MASTER/BACKUP/FAULT/STOP per VIP, keepalived's argument order).",

  "realtime.policy": "rr (default), fifo or off.",
  "realtime.priority": "Realtime priority 1-99 (default 10).",
  "realtime.lock_memory": "Lock the agent's code in memory (default true).",
  "realtime.required": "Refuse to start without realtime scheduling (default false).",
  "tickle.enabled":
    "List the established connections on held VIPs, share them with the peers, and after taking a VIP over send each listed client an ACK that resets its connection (default true; needs CAP_NET_RAW).",
  "tickle.scan_interval":
    "How often the holder lists its connections (default 1s, at least 100ms): a connection opened since the last scan before a crash is not tickled.",
};
