/**
 * The dashboard: one self-contained page at `/` (no CDN, no build step, no network at run
 * time) and the Server-Sent Events stream it listens to, `GET /v1/events/stream`. Read-only
 * without the API token; actions (move a VIP, unpin it, disable or enable a node) send the
 * token the operator types in, kept in the tab's session storage only.
 *
 * What it shows, all from `GET /v1/status` of the agent that serves it: the cluster (term,
 * coordinator, quorum, profile, this node's configuration fingerprint against the
 * coordinator's), every member with the view its heartbeats report (role, term, lease left,
 * fingerprint, what it holds), every VIP with owner, since, local state and the placement's
 * explanation, the heartbeat matrix (for every pair, how long ago one last heard the other,
 * as the observer reported it: a one-way link failure shows as one stale cell), the failover
 * phases this node timed, and the events as they happen. Capabilities each get a panel: the
 * relays with their backends' states and switch history, the storage gateway with its oldest
 * unfinished requests and where each runs, and the traffic index table with every node's
 * bytes per second over five minutes (GET /v1/traffic and /v1/traffic/NODE, every 10 s).
 */
import type { FastifyInstance } from "fastify";
import type { AgentHandle } from "../agent/handle.ts";
import { sendError } from "./errors.ts";

/** At most this many pages may listen at once: each stream polls the control plane. */
const maxStreams = 16;
const streamPollMs = 250;
const keepAliveMs = 15_000;

export function registerDashboard(app: FastifyInstance, handle: AgentHandle): void {
  let streams = 0;

  app.get("/", async (_request, reply) =>
    reply
      .type("text/html; charset=utf-8")
      .header("cache-control", "no-store")
      .header(
        "content-security-policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
      )
      .send(dashboardHtml),
  );

  app.get<{ Querystring: { since?: string } }>("/v1/events/stream", async (request, reply) => {
    const fromHeader = request.headers["last-event-id"];
    const sinceText =
      (typeof fromHeader === "string" ? fromHeader : undefined) ?? request.query.since ?? "0";
    if (!/^\d+$/.test(sinceText)) {
      return sendError(
        reply,
        400,
        "BAD_REQUEST",
        "since: expected a non-negative integer event id",
      );
    }
    if (streams >= maxStreams) {
      return sendError(
        reply,
        503,
        "TOO_MANY_STREAMS",
        `at most ${maxStreams} event streams at once; close a dashboard tab or poll GET /v1/events?wait=25s`,
      );
    }
    streams += 1;
    let since = Number(sinceText);
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
    });
    raw.write("retry: 2000\n\n");
    let closed = false;
    let timer: NodeJS.Timeout | undefined;
    let lastWriteMs = Date.now();
    const close = () => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      streams -= 1;
    };
    request.raw.on("close", close);
    raw.on("close", close);
    const poll = async () => {
      if (closed) return;
      try {
        const events = await handle.events(since);
        for (const event of events) {
          raw.write(`id: ${event.id}\nevent: agent\ndata: ${JSON.stringify(event)}\n\n`);
          since = event.id;
          lastWriteMs = Date.now();
        }
        if (Date.now() - lastWriteMs >= keepAliveMs) {
          raw.write(": keep-alive\n\n");
          lastWriteMs = Date.now();
        }
      } catch {
        // The control plane is restarting: the page keeps its stream and hears it later.
      }
      if (!closed) timer = setTimeout(poll, streamPollMs);
    };
    await poll();
  });
}

export const dashboardHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>floatip</title>
<style>
:root { color-scheme: light dark; --bg: #f6f7f9; --fg: #1b1f24; --muted: #5b6570; --card: #fff;
  --line: #d8dde3; --ok: #1a7f37; --bad: #c62828; --warn: #9a6700; --accent: #0b5cad; }
@media (prefers-color-scheme: dark) { :root { --bg: #0f1317; --fg: #e6e9ec; --muted: #9aa5b1;
  --card: #171c21; --line: #2c343c; --ok: #4ac26b; --bad: #ff6b6b; --warn: #d29922; --accent: #6cb6ff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; padding: .8rem 1rem;
  border-bottom: 1px solid var(--line); background: var(--card); }
header h1 { font-size: 1.1rem; margin: 0; }
main { display: grid; gap: 1rem; padding: 1rem; grid-template-columns: repeat(auto-fit, minmax(min(100%, 560px), 1fr)); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .7rem .9rem; overflow-x: auto; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25rem .5rem .25rem 0; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
.ok { color: var(--ok); } .bad { color: var(--bad); font-weight: 600; } .warn { color: var(--warn); }
.muted { color: var(--muted); } .mono { font-family: ui-monospace, monospace; }
button, select, input { font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line);
  border-radius: 4px; padding: .15rem .45rem; }
button:focus-visible, select:focus-visible, input:focus-visible { outline: 2px solid var(--accent); outline-offset: 1px; }
#result { min-height: 1.4em; }
#events { max-height: 22rem; overflow-y: auto; }
pre { margin: .3rem 0; max-height: 16rem; overflow: auto; font-size: 12px; }
h3 { font-size: .9rem; margin: .6rem 0 .2rem; }
ul.history { margin: .2rem 0; padding-left: 1.2rem; font-size: 12px; }
.phase { white-space: nowrap; }
svg.chart { vertical-align: middle; color: var(--accent); }
.cell-bad { background: color-mix(in srgb, var(--bad) 22%, transparent); }
.cell-warn { background: color-mix(in srgb, var(--warn) 18%, transparent); }
</style>
</head>
<body>
<header>
  <h1>floatip <span id="cluster" class="muted"></span></h1>
  <span>node <b id="node">…</b></span>
  <span>term <b id="term">…</b></span>
  <span>coordinator <b id="coordinator">…</b></span>
  <span id="quorum"></span>
  <span id="config"></span>
  <span id="live" class="muted">connecting…</span>
</header>
<main>
  <section class="wide" aria-labelledby="h-vips"><h2 id="h-vips">VIPs</h2>
    <table id="vips"><thead><tr><th>VIP</th><th>owner</th><th>since</th><th>owner's lease</th><th>policy</th><th>here</th><th>why</th><th>action</th></tr></thead><tbody></tbody></table>
  </section>
  <section class="wide" aria-labelledby="h-timeline"><h2 id="h-timeline">Failover timeline</h2>
    <p class="muted">Each VIP's owners as this node saw the table change, and each failover of the last minute split into its phases, each timed by the node named (the coordinator's and the new owner's, shared in their heartbeats): every node's page shows the same.</p>
    <table id="timeline"><thead><tr><th>VIP</th><th>owners (newest last)</th><th>failovers in the last minute (newest first)</th></tr></thead><tbody></tbody></table>
  </section>
  <section aria-labelledby="h-members"><h2 id="h-members">Members</h2>
    <table id="members"><thead><tr><th>node</th><th>state</th><th>role / term</th><th>lease left</th><th>config</th><th>version</th><th>holds</th><th>action</th></tr></thead><tbody></tbody></table>
  </section>
  <section aria-labelledby="h-matrix"><h2 id="h-matrix">Heartbeat matrix</h2>
    <p class="muted">Row heard column this long ago (ms), and the heartbeats it missed in the last 10 s, as the row's node reported it.</p>
    <table id="matrix"><thead></thead><tbody></tbody></table>
  </section>
  <section aria-labelledby="h-flapping"><h2 id="h-flapping">Flapping</h2>
    <p id="damping-rule" class="muted"></p>
    <table id="flapping"><thead><tr><th>node</th><th>faults this unit</th><th>state</th><th>why</th></tr></thead><tbody></tbody></table>
  </section>
  <section aria-labelledby="h-capabilities"><h2 id="h-capabilities">Capabilities</h2>
    <div id="capabilities"></div>
  </section>
  <section aria-labelledby="h-phases"><h2 id="h-phases">Failover phases (this node)</h2>
    <table id="phases"><thead><tr><th>phase</th><th>count</th><th>mean</th><th>slowest</th></tr></thead><tbody></tbody></table>
  </section>
  <section aria-labelledby="h-actions"><h2 id="h-actions">Actions</h2>
    <label for="token">API token</label>
    <input id="token" type="password" autocomplete="off" size="28" placeholder="read-only without it">
    <button id="save-token" type="button">Use token</button>
    <p id="result" role="status" aria-live="polite"></p>
  </section>
  <section class="wide" aria-labelledby="h-events"><h2 id="h-events">Events</h2>
    <table id="events"><thead><tr><th>time</th><th>node</th><th>event</th><th>details</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
let status;
const token = () => sessionStorage.getItem("floatip-token") || "";
$("token").value = token();
$("save-token").addEventListener("click", () => {
  sessionStorage.setItem("floatip-token", $("token").value);
  say("token set for this tab");
});
function say(text, bad) { const r = $("result"); r.textContent = text; r.className = bad ? "bad" : "ok"; }
async function act(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (token()) headers.authorization = "Bearer " + token();
  try {
    const res = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    const data = await res.json().catch(() => ({}));
    if (res.ok) say(method + " " + path + ": done" + (data.forwardedTo ? " (forwarded to " + data.forwardedTo + ")" : ""));
    else say(method + " " + path + ": " + (data.error?.code || res.status) + ": " + (data.error?.message || ""), true);
  } catch (e) { say(String(e), true); }
  refresh();
}
const ms = (v) => v === undefined || v === null ? "—" : String(Math.round(v));
// Targets picked in the VIP table, kept across the re-renders of live updates.
const moveTo = new Map();
const last = new Map();
/** Replaces a table body only when it changed, keeping the keyboard focus where it was. */
function setHtml(el, html) {
  if (last.get(el) === html) return;
  last.set(el, html);
  const a = document.activeElement;
  const key = a && el.contains(a) ? a.getAttribute("data-key") : null;
  el.innerHTML = html;
  if (key) el.querySelector('[data-key="' + CSS.escape(key) + '"]')?.focus();
}
function render(s) {
  status = s;
  $("cluster").textContent = s.cluster + " · " + s.profile;
  $("node").textContent = s.node + " (" + s.role + ")";
  $("term").textContent = s.term;
  $("coordinator").textContent = s.coordinator ?? "none";
  $("quorum").innerHTML = s.quorum ? '<span class="ok">quorum</span>' : '<span class="bad">NO QUORUM</span>';
  $("config").innerHTML = s.config.matchesCoordinator
    ? '<span class="muted">config ' + esc(s.config.fingerprint) + "</span>"
    : '<span class="bad">config ' + esc(s.config.fingerprint) + " differs from the coordinator's " + esc(s.config.coordinator) + "</span>";
  const ids = s.members.map((m) => m.id);
  const peers = new Map(s.peers.map((p) => [p.id, p]));
  const leaseOf = (id) => id === s.node ? s.view.leaseLeftMs : peers.get(id)?.leaseLeftMs;
  setHtml($("vips").tBodies[0], s.vips.map((v) => {
    const target = moveTo.get(v.address) ?? v.owner;
    const options = ids.map((id) => '<option' + (id === target ? " selected" : "") + ">" + esc(id) + "</option>").join("");
    return '<tr data-vip="' + esc(v.address) + '"><td class="mono">' + esc(v.address) + '</td><td class="owner">' +
      (v.owner ? esc(v.owner) : '<span class="bad">none</span>') + (v.conflict ? ' <span class="bad">conflict</span>' : "") +
      "</td><td>" + (v.since ? esc(new Date(v.since).toLocaleTimeString()) : "—") + '</td><td class="lease">' + (v.owner ? ms(leaseOf(v.owner)) + " ms" : "—") +
      '</td><td class="policy">' + esc(v.policy ?? "") + (v.pinnedTo ? ' <b class="warn">pinned to ' + esc(v.pinnedTo) + "</b>" : "") + "</td><td>" + esc(v.local) +
      '</td><td class="muted">' + esc(v.explain) + '</td><td><label class="muted">to <select aria-label="move ' + esc(v.address) +
      ' to" data-key="to ' + esc(v.address) + '" data-target="' + esc(v.address) + '">' + options + '</select></label> <button type="button" data-key="move ' +
      esc(v.address) + '" data-move="' + esc(v.address) + '">Move</button> <button type="button" data-key="unpin ' + esc(v.address) + '" data-unpin="' +
      esc(v.address) + '">Unpin</button></td></tr>';
  }).join(""));
  setHtml($("members").tBodies[0], s.members.map((m) => {
    const p = peers.get(m.id);
    const self = m.id === s.node;
    const role = self ? s.role + " / " + s.term : p ? p.role + " / " + p.term : "—";
    const lease = self ? s.view.leaseLeftMs : p?.leaseLeftMs;
    const config = self ? s.config.fingerprint : p?.config;
    const mismatch = config && config !== (s.config.coordinator ?? s.config.fingerprint);
    const version = self ? s.version : p?.version;
    const versionOff = version && s.version && version !== s.version;
    const holds = self ? s.vips.filter((v) => v.local === "held").map((v) => v.address) : (p?.holding ?? []);
    const state = m.state === "healthy" ? '<span class="ok">healthy</span>' : '<span class="bad">' + esc(m.state) + "</span>";
    return '<tr data-member="' + esc(m.id) + '"><td>' + esc(m.id) + (self ? " (this)" : "") + "</td><td>" + state +
      (m.heard || self ? "" : ' <span class="warn">not heard</span>') + "</td><td>" + esc(role) + "</td><td>" + ms(lease) +
      '</td><td class="mono ' + (mismatch ? "bad" : "muted") + '">' + esc(config || "—") + "</td>" +
      '<td class="version ' + (versionOff ? "bad" : "muted") + '">' + esc(version || "—") + "</td>" + '<td class="mono">' +
      esc(holds.join(" ")) + '</td><td><button type="button" data-key="disable ' + esc(m.id) + '" data-disable="' + esc(m.id) +
      '">Disable</button> <button type="button" data-key="enable ' + esc(m.id) + '" data-enable="' + esc(m.id) + '">Enable</button></td></tr>';
  }).join(""));
  const views = [[s.node, s.view.heardMs, s.view.missed], ...s.peers.map((p) => [p.id, p.heardMs, p.missed])];
  // Three heartbeat intervals (the stall threshold is half of one).
  const stale = 6 * (s.loop?.stallThresholdMs ?? 25);
  setHtml($("matrix").tHead, "<tr><th>heard →</th>" + ids.map((id) => "<th>" + esc(id) + "</th>").join("") + "</tr>");
  setHtml($("matrix").tBodies[0], views.map(([row, heard, missed]) => '<tr data-row="' + esc(row) + '"><th>' + esc(row) + "</th>" + ids.map((col) => {
    if (col === row) return '<td class="muted">·</td>';
    const v = heard ? heard[col] : undefined;
    // Heartbeats to the coordinator only: a link between two followers is not watched.
    if (v === undefined && s.heartbeats === "coordinator" && row !== s.coordinator && col !== s.coordinator)
      return '<td data-col="' + esc(col) + '" class="muted" title="heartbeats: coordinator">not watched</td>';
    const miss = missed?.[col] ?? 0;
    const bad = v === undefined || v > stale;
    return '<td data-col="' + esc(col) + '" data-missed="' + miss + '" class="' + (bad ? "cell-bad" : miss > 0 ? "cell-warn" : "") + '">' + ms(v) +
      (miss > 0 ? ' <span class="muted">' + miss + " missed</span>" : "") + "</td>";
  }).join("") + "</tr>").join(""));
  const d = s.damping;
  $("damping-rule").textContent = d
    ? "A member fails after " + d.faultsToFail + " faults within " + d.windowMs + " ms and is trusted again after " + d.rise + " good rounds (the coordinator's count)."
    : "Only the coordinator counts faults: open the page of " + (s.coordinator ?? "the coordinator") + ".";
  setHtml($("flapping").tBodies[0], d ? d.members.map((m) => {
    const state = m.up ? (m.faults > 0 ? '<span class="warn">up, counting</span>' : '<span class="ok">up</span>')
      : '<span class="bad">down</span>' + (m.goodStreak > 0 ? ' <span class="warn">rising ' + m.goodStreak + "/" + d.rise + "</span>" : "");
    return '<tr data-flap="' + esc(m.id) + '"><td>' + esc(m.id) + "</td><td>" + m.faults + " / " + d.faultsToFail + "</td><td>" + state +
      '</td><td class="muted">' + esc(m.reason) + "</td></tr>";
  }).join("") : "");
  renderTimeline(s);
  const caps = Object.entries(s.capabilities ?? {});
  setHtml($("capabilities"), caps.length === 0 ? '<p class="muted">none configured on this node</p>' : caps.map(([name, value]) =>
    '<div data-capability="' + esc(name) + '"><h3>' + esc(name) + "</h3>" + (panels[name] ?? rawPanel)(value) + "</div>").join(""));
  if (s.capabilities?.traffic && Date.now() - trafficAt > 10_000) refreshTraffic();
  const phases = Object.entries(s.failover ?? {});
  setHtml($("phases").tBodies[0], phases.map(([phase, h]) => {
    // The smallest bound that holds every sample: an upper bound of the slowest one.
    const i = h.buckets.findIndex((n) => n === h.count);
    const bound = h.count === 0 ? "—" : i < 0 || i >= h.boundsMs.length ? "> " + h.boundsMs.at(-1) + " ms" : "≤ " + h.boundsMs[i] + " ms";
    return '<tr data-phase="' + esc(phase) + '"><td>' + esc(phase) + "</td><td>" + h.count + "</td><td>" +
      (h.count ? ms(h.sumMs / h.count) + " ms" : "—") + "</td><td>" + esc(bound) + "</td></tr>";
  }).join(""));
}
const when = (v) => v ? esc(new Date(v).toLocaleTimeString()) : "—";
const phaseOrder = ["detected", "elected", "lease-wait", "probe", "address-added", "announced"];
/**
 * The failovers of one VIP from the phase marks (newest first): each assignment (its lease-wait
 * on the coordinator) with the detection and election that ended within 5 s before it, and the
 * new owner's probe, address add and announcement that followed it within 10 s.
 */
function failoversOf(address, marks, nowMs) {
  const waits = marks.filter((m) => m.vip === address && m.phase === "lease-wait");
  return waits.map((w) => {
    const before = (phase) => marks.filter((m) => m.phase === phase && m.agoMs >= w.agoMs && m.agoMs - w.agoMs <= 5000).at(-1);
    const after = (phase) => marks.find((m) => m.vip === address && m.phase === phase && m.agoMs <= w.agoMs && w.agoMs - m.agoMs <= 10_000);
    const phases = [before("detected"), before("elected"), w, after("probe"), after("address-added"), after("announced")].filter(Boolean);
    const first = phases[0], last = phases.at(-1);
    const owner = after("probe")?.by;
    const chips = phases.map((m) => '<span class="phase" data-phase="' + esc(m.phase) + '" data-by="' + esc(m.by) + '">' + esc(m.phase) + " <b>" + m.ms + " ms</b>" +
      ' <span class="muted">' + esc(m.by) + (m.failed ? ", " + esc(m.failed) + " failed" : "") + "</span></span>").join(" · ");
    return '<li data-failover="' + esc(address) + '" data-to="' + esc(owner ?? "") + '">' + when(nowMs - first.agoMs - first.ms) + " → <b>" + esc(owner ?? "?") + "</b>: " + chips +
      ' · <span class="muted">total</span> <b class="total">' + Math.round(first.agoMs + first.ms - last.agoMs) + " ms</b></li>";
  }).reverse();
}
function renderTimeline(s) {
  const marks = s.failoverMarks ?? [];
  const nowMs = Date.now();
  setHtml($("timeline").tBodies[0], s.vips.map((v) => {
    const owners = (s.ownership?.[v.address] ?? []).slice(-5).map((o) => (o.owner ? esc(o.owner) : '<span class="bad">none</span>') + ' <span class="muted">' + when(o.at) + "</span>").join(" → ");
    const failovers = failoversOf(v.address, marks, nowMs).slice(0, 3).join("");
    return '<tr data-timeline="' + esc(v.address) + '"><td class="mono">' + esc(v.address) + "</td><td>" + (owners || "—") + "</td><td>" +
      (failovers ? '<ul class="history">' + failovers + "</ul>" : '<span class="muted">none</span>') + "</td></tr>";
  }).join(""));
}
const rawPanel = (value) => '<details><summary class="muted">raw</summary><pre class="mono">' + esc(JSON.stringify(value, null, 2)) + "</pre></details>";
const upDown = (state) => '<span class="' + (state === "up" ? "ok" : "bad") + '">' + esc(state) + "</span>";
const panels = {
  relays: (v) => (v.relays ?? []).map((r) => {
    const where = r.running ? "runs here" : r.placement === "vip-holder" ? "runs on the VIP holder " + esc(r.vipOwner ?? "(none)") : "not running" + (r.error ? ": " + esc(r.error) : "");
    const backends = (r.backends ?? []).map((b) => '<tr data-backend="' + esc(b.id) + '"><td class="mono">' + esc(b.id) + "</td><td>" + esc(b.role) + "</td><td>" +
      upDown(b.state) + (b.active ? ' <b class="active">active</b>' : "") + "</td><td>" + b.faultsInWindow + "</td><td>" + b.connections + "</td><td>" + when(b.since) + "</td></tr>").join("");
    const history = (r.events ?? []).slice(-8).reverse().map((e) => '<li data-relay-event="' + esc(e.type) + '">' + when(e.at) + " " +
      (e.type === "switched" ? "switched " + esc(e.from ?? "none") + " → " + esc(e.to ?? "none") + " (" + esc(e.reason) + ")" : esc(e.type) + " " + esc(e.backend)) + "</li>").join("");
    return '<div data-relay="' + esc(r.name) + '"><p><b>' + esc(r.name) + '</b> <span class="mono">' + esc(r.listen) + "</span> " + esc(r.mode) + "/" + esc(r.protocol) +
      " · " + where + " · active <b>" + esc(r.active ?? "none") + "</b>" + (r.activeSince ? " since " + when(r.activeSince) : "") + "</p>" +
      (backends ? "<table><thead><tr><th>backend</th><th>role</th><th>state</th><th>faults</th><th>conns</th><th>since</th></tr></thead><tbody>" + backends + "</tbody></table>" : "") +
      (history ? '<p class="muted">switch history (newest first)</p><ul class="history">' + history + "</ul>" : '<p class="muted">no switch yet</p>') + "</div>";
  }).join("") || '<p class="muted">no relay</p>',
  storage: (v) => {
    const rows = (v.unfinishedRequests ?? []).map((r) => '<tr data-request="' + esc(r.id) + '"><td class="mono">' + esc(r.id) + "</td><td>" + esc(r.op) + " " + esc(r.name ?? "") +
      "</td><td>" + esc(r.state) + "</td><td>" + esc(r.node ?? "—") + "</td><td>" + esc(r.attempt ?? "—") + "</td></tr>").join("");
    return '<p><span class="mono">' + esc(v.vip ?? "") + "</span> · backend " + esc(v.backend) + " · " +
      (v.serving ? '<b class="ok" data-serving="yes">serving here</b>' : '<span class="muted" data-serving="no">another node serves</span>') +
      " · " + esc(v.requests) + " requests, <b>" + esc(v.unfinished) + "</b> unfinished</p>" +
      (rows ? "<table><thead><tr><th>request</th><th>operation</th><th>state</th><th>on</th><th>attempt</th></tr></thead><tbody>" + rows + "</tbody></table>" : "");
  },
  traffic: (v) => '<p>index table v' + esc(v.tableVersion) + " · this node " + esc(v.status ?? "—") + ", backup on " + esc(v.backupTarget ?? "—") +
    " · a sample every " + esc(v.intervalMs) + ' ms</p><div id="traffic-view">' + trafficHtml + "</div>",
};
// The traffic panel: the index table and each node's bytes per second over the last five
// minutes, read from this agent's traffic store (GET /v1/traffic, /v1/traffic/NODE), every 10 s.
let trafficAt = 0;
let trafficHtml = '<p class="muted">loading…</p>';
function chart(buckets, stepMs) {
  const perBucket = new Map();
  for (const b of buckets) if (b.iface !== "lo") perBucket.set(b.tsMs, (perBucket.get(b.tsMs) ?? 0) + b.rxBytes + b.txBytes);
  const points = [...perBucket].sort((a, b) => a[0] - b[0]).map(([t, bytes]) => [t, bytes / (stepMs / 1000)]);
  if (points.length === 0) return '<span class="muted">no samples</span>';
  const max = Math.max(1, ...points.map((p) => p[1]));
  const t0 = points[0][0], t1 = Math.max(t0 + stepMs, points.at(-1)[0]);
  const xy = points.map(([t, v]) => ((t - t0) / (t1 - t0) * 200).toFixed(1) + "," + (38 - v / max * 36).toFixed(1)).join(" ");
  return '<svg class="chart" viewBox="0 0 200 40" width="200" height="40" role="img" aria-label="bytes per second, peak ' + Math.round(max) +
    '"><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="' + xy + '"/><circle r="2" fill="currentColor" cx="' + xy.split(" ").at(-1).replace(",", '" cy="') +
    '"/></svg> <span class="muted">peak ' + Math.round(max) + " B/s</span>";
}
async function refreshTraffic() {
  trafficAt = Date.now();
  try {
    const res = await fetch("/v1/traffic");
    if (!res.ok) { trafficHtml = '<p class="muted">no index table yet</p>'; return; }
    const table = await res.json();
    const stepMs = 10_000;
    const rows = await Promise.all(table.rows.map(async (row) => {
      let graph = '<span class="muted">—</span>';
      try {
        const r = await fetch("/v1/traffic/" + encodeURIComponent(row.nodeId) + "?from=now-5m&step=10s");
        if (r.ok) { const a = await r.json(); graph = chart(a.buckets ?? [], stepMs) + (a.fromBackup ? ' <span class="warn">from the backup on ' + esc(a.answeredBy) + "</span>" : ""); }
      } catch {}
      return '<tr data-traffic="' + esc(row.nodeId) + '"><td>' + esc(row.nodeId) + '</td><td class="mono">' + esc((row.nodeIps ?? []).join(" ")) + "</td><td>" +
        (row.status === "Normal" ? '<span class="ok">Normal</span>' : '<span class="bad">' + esc(row.status) + "</span>") + "</td><td>" + esc(row.backupTargetId ?? "—") + "</td><td>" + graph + "</td></tr>";
    }));
    trafficHtml = '<table><thead><tr><th>node</th><th>IPs</th><th>status</th><th>backup on</th><th>last 5 min</th></tr></thead><tbody>' + rows.join("") + "</tbody></table>";
  } catch { trafficHtml = '<p class="muted">traffic store unreachable</p>'; }
  const view = $("traffic-view");
  if (view) setHtml(view, trafficHtml);
}
document.addEventListener("change", (e) => {
  const select = e.target.closest("select[data-target]");
  if (select) moveTo.set(select.dataset.target, select.value);
});
document.addEventListener("click", (e) => {
  const b = e.target.closest("button"); if (!b) return;
  if (b.dataset.move) {
    const node = moveTo.get(b.dataset.move) ?? b.closest("tr").querySelector("select").value;
    moveTo.delete(b.dataset.move);
    act("POST", "/v1/vips/" + encodeURIComponent(b.dataset.move) + "/move", { node });
  }
  if (b.dataset.unpin) act("DELETE", "/v1/vips/" + encodeURIComponent(b.dataset.unpin) + "/pin");
  if (b.dataset.disable) act("POST", "/v1/nodes/" + encodeURIComponent(b.dataset.disable) + "/disable");
  if (b.dataset.enable) act("POST", "/v1/nodes/" + encodeURIComponent(b.dataset.enable) + "/enable");
});
let pending = false;
async function refresh() {
  if (pending) return; pending = true;
  try { const res = await fetch("/v1/status"); if (res.ok) render(await res.json()); } catch {} finally { pending = false; }
}
const maxEvents = 200;
function addEvent(record) {
  const { type, ...fields } = record.event;
  const row = document.createElement("tr");
  row.dataset.type = type;
  row.innerHTML = "<td>" + esc(new Date(record.at).toLocaleTimeString()) + "</td><td>" + esc(record.node) + "</td><td>" + esc(type) +
    '</td><td class="muted mono">' + esc(JSON.stringify(fields)) + "</td>";
  const body = $("events").tBodies[0];
  body.insertBefore(row, body.firstChild);
  while (body.rows.length > maxEvents) body.deleteRow(body.rows.length - 1);
}
const stream = new EventSource("/v1/events/stream");
stream.addEventListener("open", () => { $("live").textContent = "live"; $("live").className = "ok"; });
stream.addEventListener("error", () => { $("live").textContent = "reconnecting…"; $("live").className = "warn"; });
stream.addEventListener("agent", (e) => { addEvent(JSON.parse(e.data)); refresh(); });
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
