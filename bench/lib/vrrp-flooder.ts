/**
 * The VRRP flooder for the keepalived contenders (keepalived listens to IP protocol 112 on
 * 224.0.0.18, not to a UDP port): a small Python program (Node has no raw sockets) run inside
 * the client namespace. It sends well-formed VRRP advertisements, version 2 or 3 as the
 * contender uses, for each configured virtual router id with that router's VIP, TTL 255, a
 * valid checksum, and priority 1 (below every node's): each daemon must receive, check and
 * discard every one (a master answers a lower-priority advert by sending its own). There is
 * no authentication to fail in VRRPv3 (or in keepalived's default VRRPv2 setup), so "valid
 * but losing" is the closest match to floatip's datagrams with a bad MAC.
 * Up to `pps` packets per second in all, paced every millisecond (no catching up); stops by
 * itself at `seconds`, on SIGTERM or when standard input closes; prints
 * `{"sent": N, "errors": N, "seconds": S}`.
 */
export const vrrpFlooderProgram = String.raw`
import json, select, signal, socket, struct, sys, time

opts = json.loads(sys.argv[1])
src = opts["source"]
version = opts["version"]
routers = opts["routers"]  # [[vrid, "vip"], ...]
pps = opts["pps"]
seconds = opts["seconds"]

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF

def packet(vrid, vip):
    addr = socket.inet_aton(vip)
    if version == 2:
        body = struct.pack("!BBBBBBH", 0x21, vrid, 1, 1, 0, 1, 0) + addr + b"\0" * 8
        c = checksum(body)
    else:
        body = struct.pack("!BBBBHH", 0x31, vrid, 1, 1, 1, 0) + addr
        pseudo = socket.inet_aton(src) + socket.inet_aton("224.0.0.18") + struct.pack("!BBH", 0, 112, len(body))
        c = checksum(pseudo + body)
    return body[:6] + struct.pack("!H", c) + body[8:]

packets = [packet(v, a) for v, a in routers]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
s.bind((src, 0))
sent = 0
errors = 0
start = time.monotonic()
end = start + seconds
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
# Token bucket capped at 5 ms worth: no catching up in long bursts on a busy machine.
burst = max(20, pps // 200)
credit = 0.0
last = start
attempts = 0
while not stop:
    now = time.monotonic()
    if now >= end:
        break
    credit = min(burst, credit + (now - last) * pps)
    last = now
    while credit >= 1:
        try:
            s.sendto(packets[attempts % len(packets)], ("224.0.0.18", 0))
            sent += 1
        except OSError:
            errors += 1
        attempts += 1
        credit -= 1
    r, _, _ = select.select([sys.stdin], [], [], 0.001)
    if r and not sys.stdin.buffer.read1(4096):
        break
print(json.dumps({"sent": sent, "errors": errors, "seconds": time.monotonic() - start}), flush=True)
`;
