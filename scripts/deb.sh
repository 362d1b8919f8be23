#!/usr/bin/env bash
# Builds the Debian package of floatip: bash scripts/deb.sh [OUTDIR]  (default: dist-deb/)
#
# Run after scripts/setup.sh (it provides the Node 24 that is shipped inside the package, since
# Debian 12's Node is too old, and the built native addon and supervisor). No network beyond
# the npm registry (the production dependencies, from the lock file).
#
# Layout:
#   /usr/bin/floatip                          launcher: the shipped Node runs the compiled CLI
#   /usr/lib/floatip/                         dist/, bin/, native/build/Release/, node_modules/
#   /usr/lib/floatip/node/bin/node            Node.js 24
#   /etc/floatip/cluster.yaml                 conffile: the commented example
#   /lib/systemd/system/floatip@.service      the hardened Type=notify unit
#   /usr/share/man/man8/floatip.8.gz, man5/floatip.yaml.5.gz
#   /usr/share/bash-completion/completions/floatip, /usr/share/zsh/vendor-completions/_floatip
#   /var/lib/floatip                          state (0700)
# postinst reloads systemd and starts nothing: an agent runs only once an operator enabled
# floatip@NODE for a configured node.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/dist-deb}"
node_bin="$root/.tools/node24/node_modules/node/bin/node"
[ -x "$node_bin" ] || node_bin="$(command -v node)"
major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 22 ]; then
  echo "deb.sh: needs the Node 24 that scripts/setup.sh fetches (found $("$node_bin" --version))" >&2
  exit 1
fi
for built in native/build/Release/floatip_arp.node native/build/Release/floatip-supervisor; do
  [ -f "$root/$built" ] || { echo "deb.sh: $built is missing: run bash scripts/setup.sh" >&2; exit 1; }
done
export PATH="$(dirname "$node_bin"):$PATH"

version="$("$node_bin" -p "require('$root/package.json').version")"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
lib="$stage/usr/lib/floatip"
mkdir -p "$lib/native/build/Release" "$lib/node/bin" "$stage/usr/bin" "$stage/etc/floatip" \
  "$stage/lib/systemd/system" "$stage/usr/share/man/man8" "$stage/usr/share/man/man5" \
  "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" \
  "$stage/usr/share/doc/floatip" "$stage/var/lib/floatip" "$stage/DEBIAN"

(cd "$root" && timeout 300 "$node_bin" src/lab/build.ts >/dev/null)
cp -r "$root/dist" "$root/bin" "$root/package.json" "$root/package-lock.json" "$lib/"
cp "$root/native/build/Release/floatip_arp.node" "$root/native/build/Release/floatip-supervisor" \
  "$lib/native/build/Release/"
# Production dependencies only, exactly as locked, without running any package's scripts.
(cd "$lib" && timeout 600 npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
cp "$node_bin" "$lib/node/bin/node"
rm -f "$lib/package-lock.json"

cat >"$stage/usr/bin/floatip" <<'EOF'
#!/bin/sh
# floatip from the Debian package: the Node.js it ships runs the compiled CLI.
FLOATIP_NODEJS=/usr/lib/floatip/node/bin/node exec /usr/lib/floatip/bin/floatip "$@"
EOF
chmod 755 "$stage/usr/bin/floatip"

cp "$root/examples/cluster.yaml" "$stage/etc/floatip/cluster.yaml"
cp "$root/examples/floatip@.service" "$stage/lib/systemd/system/floatip@.service"
(cd "$root" && "$node_bin" scripts/man.ts "$stage/tmp-man" >/dev/null)
gzip -9n -c "$stage/tmp-man/floatip.8" >"$stage/usr/share/man/man8/floatip.8.gz"
gzip -9n -c "$stage/tmp-man/floatip.yaml.5" >"$stage/usr/share/man/man5/floatip.yaml.5.gz"
rm -r "$stage/tmp-man"
"$node_bin" "$root/src/cli/main.ts" completion bash >"$stage/usr/share/bash-completion/completions/floatip"
"$node_bin" "$root/src/cli/main.ts" completion zsh >"$stage/usr/share/zsh/vendor-completions/_floatip"
cp "$root/README.md" "$stage/usr/share/doc/floatip/README.md"
chmod 700 "$stage/var/lib/floatip"

installed_kb="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat >"$stage/DEBIAN/control" <<EOF
Package: floatip
Version: $version
Architecture: $arch
Maintainer: floatip maintainers <floatip@localhost>
Installed-Size: $installed_kb
Depends: iproute2, nftables, conntrack, libc6
Recommends: ceph-common
Section: net
Priority: optional
Description: high-availability virtual IPs, relays, storage gateway and traffic backup
 One agent per node elects a coordinator, places the cluster's virtual IPs on
 healthy nodes under leases (no two holders), announces them with gratuitous
 ARP, and runs relays, a Ceph RBD storage gateway and traffic backup.
EOF
echo "/etc/floatip/cluster.yaml" >"$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
# Nothing is started or enabled: configure /etc/floatip/cluster.yaml, then
# systemctl enable --now floatip@NODE.
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
EOF
cat >"$stage/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
# The node's state goes with a purge; the config stays until then (a conffile).
if [ "$1" = purge ]; then rm -rf /var/lib/floatip; fi
exit 0
EOF
chmod 755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/floatip_${version}_${arch}.deb"
timeout 600 dpkg-deb --root-owner-group -Zgzip -z6 --build "$stage" "$deb" >/dev/null
echo "$deb"
