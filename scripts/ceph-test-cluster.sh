#!/usr/bin/env bash
# A throw-away single-node Ceph cluster for the rbd backend's tests:
#   scripts/ceph-test-cluster.sh start DIR   -> one mon + one memstore OSD on 127.0.0.1, pool "rbd"
#   scripts/ceph-test-cluster.sh stop DIR    -> kills the daemons it started and removes DIR
# Options of start (for clients in other network namespaces, e.g. the end-to-end tests):
#   --bind ADDRESS   mon and OSD listen on ADDRESS instead of 127.0.0.1
#   --netns NAME     the daemons and the set-up commands run inside network namespace NAME
#                    (which must hold ADDRESS); every client command must then reach ADDRESS
# Clients use `--conf DIR/ceph.conf` (printed on success). No auth (auth ... = none), replica
# size 1, no mgr: without a mgr `ceph -s` hangs on its data lines, so readiness is checked with
# `rbd pool init`, which only returns once a placement group is active. Every command runs under
# `timeout`. Installs ceph-mon, ceph-osd and ceph-common from Debian when missing (exit 3 when
# that is impossible, so callers can tell "no Ceph here" from a broken cluster).
set -Eeuo pipefail

usage="usage: $0 start DIR [--bind ADDRESS] [--netns NAME] | stop DIR"
cmd=${1:-}
dir=${2:-}
if [[ -z $cmd || -z $dir ]]; then
  echo "$usage" >&2
  exit 2
fi
shift 2
bind=127.0.0.1
netns=
while [[ $# -gt 0 ]]; do
  case $1 in
  --bind)
    bind=${2:?--bind needs an IPv4 address}
    shift 2
    ;;
  --netns)
    netns=${2:?--netns needs a namespace name}
    shift 2
    ;;
  *)
    echo "unknown option $1; $usage" >&2
    exit 2
    ;;
  esac
done
if [[ ! $bind =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "--bind $bind: an IPv4 address is required" >&2
  exit 2
fi
# Prefix of every daemon and client command: where the daemons live (the namespace, when given).
in_ns=()
if [[ -n $netns ]]; then in_ns=(ip netns exec "$netns"); fi

stop() {
  if [[ -f $dir/pids ]]; then
    while read -r pid; do
      [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null || true
    done <"$dir/pids"
    # Bounded wait until they are gone, so callers may delete the namespace right after.
    local _ alive
    for _ in $(seq 50); do
      alive=0
      while read -r pid; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then alive=1; fi
      done <"$dir/pids"
      if [[ $alive -eq 0 ]]; then break; fi
      sleep 0.1
    done
  fi
  rm -rf "$dir"
}

install_ceph() {
  if command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null && command -v rbd >/dev/null; then
    return 0
  fi
  echo "installing ceph-mon ceph-osd ceph-common" >&2
  if ! DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y ceph-mon ceph-osd ceph-common >&2; then
    timeout 300 apt-get update >&2 || true
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y ceph-mon ceph-osd ceph-common >&2 || exit 3
  fi
}

start() {
  install_ceph
  if [[ -e $dir ]]; then
    echo "$dir exists; stop it first" >&2
    exit 2
  fi
  if [[ -n $netns ]] && ! ip netns exec "$netns" true 2>/dev/null; then
    echo "network namespace $netns does not exist" >&2
    exit 2
  fi
  mkdir -p "$dir"/{run,log,mon,osd}
  dir=$(cd "$dir" && pwd)
  # Below the kernel's ephemeral range (32768 and up), so no outgoing connection holds it,
  # and not in use by a listener where the mon will run (another test's cluster, anything).
  local port=${CEPH_TEST_MON_PORT:-}
  if [[ -z $port ]]; then
    local _try
    for _try in $(seq 20); do
      port=$((20000 + RANDOM % 12000))
      if [[ -z $(timeout 5 "${in_ns[@]}" ss -Htan "sport = :$port" 2>/dev/null) ]]; then break; fi
    done
  fi
  local fsid network=$bind/32
  if [[ $bind == 127.0.0.1 ]]; then network=127.0.0.0/8; fi
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v1:$bind:$port
mon initial members = a
public network = $network
public addr = $bind
cluster addr = $bind
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
keyring = $dir/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 2147483648
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
mon data = $dir/mon/\$cluster-\$id
osd data = $dir/osd/\$cluster-\$id
mon cluster log file = $dir/log/cluster.log
osd crush update on start = false
osd class update on start = false
osd max object name len = 256
osd max object namespace len = 64
[client]
rbd default features = 1
EOF
  local conf=$dir/ceph.conf
  timeout 20 ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  timeout 20 monmaptool --create --addv a "[v1:$bind:$port]" --fsid "$fsid" "$dir/monmap" >/dev/null
  timeout 30 ceph-mon --mkfs -i a --monmap "$dir/monmap" -c "$conf" --keyring "$dir/keyring"
  # `ip netns exec` execs the daemon, so $! is the daemon's own PID.
  "${in_ns[@]}" ceph-mon -f -i a -c "$conf" >>"$dir/log/mon-stdout.log" 2>&1 &
  echo $! >>"$dir/pids"
  local osd_uuid osd_id
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  osd_id=$(timeout 30 "${in_ns[@]}" ceph -c "$conf" osd new "$osd_uuid")
  mkdir -p "$dir/osd/ceph-$osd_id"
  timeout 60 "${in_ns[@]}" ceph-osd -c "$conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >>"$dir/log/osd-mkfs.log" 2>&1
  "${in_ns[@]}" ceph-osd -f -c "$conf" -i "$osd_id" >>"$dir/log/osd-stdout.log" 2>&1 &
  echo $! >>"$dir/pids"
  # The OSD does not place itself (that start-up command is refused without a mgr-era fsid).
  timeout 30 "${in_ns[@]}" ceph -c "$conf" osd crush add "osd.$osd_id" 1.0 root=default >/dev/null 2>&1
  timeout 30 "${in_ns[@]}" ceph -c "$conf" osd pool create rbd 8 8 >/dev/null 2>&1
  timeout 30 "${in_ns[@]}" ceph -c "$conf" osd pool set rbd size 1 --yes-i-really-mean-it >/dev/null 2>&1 || true
  # Readiness: returns only once the pool's placement groups are active.
  timeout 60 "${in_ns[@]}" rbd -c "$conf" pool init rbd
  echo "$conf"
}

case $cmd in
start)
  # On any failure (errtrace: also inside start) the half-started cluster is removed.
  trap 'status=$?; [[ $status -eq 3 ]] || stop; exit "$status"' ERR
  start
  ;;
stop) stop ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
