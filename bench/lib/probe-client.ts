/**
 * Runs inside the client namespace: sends one HTTP GET to `http://VIP:PORT/` every
 * `intervalMs` (a fresh connection each time, so a dead owner cannot hide behind a kept-alive
 * socket), each with a `timeoutMs` deadline, and prints one JSON line per request as it ends:
 * `{"sentAt": ms, "doneAt": ms, "who": "n2" | null}`. Times are `performance.timeOrigin +
 * performance.now()`, comparable with the same expression in the benchmark process.
 * Stops when stdin closes, after `maxCount` requests or after `maxMs`, whichever comes first.
 *
 * Usage: node probe-client.ts VIP PORT intervalMs timeoutMs maxCount maxMs
 */
import { request } from "node:http";

const [vip, port, intervalMs, timeoutMs, maxCount, maxMs] = process.argv.slice(2);
if (!vip || !port || !intervalMs || !timeoutMs || !maxCount || !maxMs) {
  console.error("usage: probe-client.ts VIP PORT intervalMs timeoutMs maxCount maxMs");
  process.exit(2);
}
const now = () => performance.timeOrigin + performance.now();
const startedAt = now();
let sent = 0;
let pending = 0;
let stopping = false;

function probe(): void {
  const sentAt = now();
  let done = false;
  pending += 1;
  const finish = (who: string | null) => {
    if (done) return;
    done = true;
    clearTimeout(deadline);
    pending -= 1;
    process.stdout.write(`${JSON.stringify({ sentAt, doneAt: now(), who })}\n`);
    if (stopping && pending === 0) process.exit(0);
  };
  const req = request({ host: vip, port: Number(port), path: "/", agent: false }, (res) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      body += chunk;
    });
    res.on("end", () => finish(body.trim() || null));
    res.on("error", () => finish(null));
  });
  // A hard deadline from the send: a socket timeout would not cover the connect phase, and a
  // SYN retransmitted a second later must not count as an answer to this probe.
  const deadline = setTimeout(() => {
    finish(null);
    req.destroy();
  }, Number(timeoutMs));
  req.on("error", () => finish(null));
  req.end();
}

const stop = () => {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  if (pending === 0) process.exit(0);
  // Requests in flight end by their own timeout; this is only a backstop.
  setTimeout(() => process.exit(0), Number(timeoutMs) + 500).unref();
};
const timer = setInterval(() => {
  if (sent >= Number(maxCount) || now() - startedAt >= Number(maxMs)) return stop();
  sent += 1;
  probe();
}, Number(intervalMs));
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
