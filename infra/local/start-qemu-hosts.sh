#!/usr/bin/env bash
# Two (or more) QEMU compute hosts on one machine, for the hypervisor test lane and the QEMU
# demo: one libvirtd per host, each in a mount namespace of its own so its /run/libvirt,
# /var/lib/libvirt, /etc/libvirt, /var/cache/libvirt and /var/log/libvirt are private (the
# machine's shared libvirtd, test+unix:///default, never sees them), with its own virtlogd,
# its own socket directory and its own host UUID. Guests run under TCG (type='qemu'), so
# nothing needs /dev/kvm. Needs root.
#
#   start-qemu-hosts.sh up <dir> <host>...    start one libvirtd per host under <dir>/<host>;
#                                             prints "<host> <uri>" per host
#   start-qemu-hosts.sh restart <dir> <host>  restart one host's libvirtd (its guests keep running)
#   start-qemu-hosts.sh stop <dir> <host>     stop one host's libvirtd and leave it down (guests keep running)
#   start-qemu-hosts.sh start <dir> <host>    start a stopped host's libvirtd again
#   start-qemu-hosts.sh down <dir>            destroy every guest, stop every daemon, remove <dir>
#
# The URI of a host: qemu+unix:///system?socket=<dir>/<host>/libvirt-sock
set -euo pipefail
export LC_ALL=C

usage() {
  echo "usage: $0 up <dir> <host>... | restart|stop|start <dir> <host> | down <dir>" >&2
  exit 2
}

# QEMU's capabilities, probed once and reused: a probe costs each daemon ~8 s of CPU at start.
# libvirt checks a cached probe against the QEMU binary and re-probes when it is stale.
caps_cache=${VIRTSYNC_QEMU_CAPS_CACHE:-/var/tmp/virtsync-qemu-caps}

uri_of() { echo "qemu+unix:///system?socket=$1/libvirt-sock"; }

# Everything a host's daemons need, written fresh: the machine's /etc/libvirt is not used.
write_config() {
  local root=$1
  mkdir -p "$root"/{run,lib,etc,cache,log}
  cat >"$root/etc/libvirtd.conf" <<EOF
unix_sock_dir = "$root"
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
host_uuid = "$(cat /proc/sys/kernel/random/uuid)"
log_outputs = "3:file:$root/libvirtd.log"
EOF
  # root, so libvirt need not re-probe QEMU's capabilities on each define (it cannot open
  # /dev/kvm as libvirt-qemu); no cgroups and no security driver: both daemons share the machine's.
  cat >"$root/etc/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
cgroup_controllers = [ ]
EOF
  : >"$root/etc/virtlogd.conf"
  if compgen -G "$caps_cache/*.xml" >/dev/null; then
    mkdir -p "$root/cache/qemu/capabilities"
    cp "$caps_cache"/*.xml "$root/cache/qemu/capabilities/"
  fi
}

save_caps() {
  local root=$1
  compgen -G "$caps_cache/*.xml" >/dev/null && return 0
  # A daemon probes on its first QEMU call, not at start.
  virsh -q -c "$(uri_of "$root")" domcapabilities --virttype qemu >/dev/null
  mkdir -p "$caps_cache"
  cp "$root"/cache/qemu/capabilities/*.xml "$caps_cache/"
}

start_host() {
  local root=$1
  write_config "$root"
  # The daemons outlive this shell and keep the namespace alive; their guests live in it too.
  unshare -m --propagation private bash -euc '
    root=$1
    for target in /run/libvirt /var/lib/libvirt /etc/libvirt /var/cache/libvirt /var/log/libvirt; do
      mkdir -p "$target"
    done
    mount --bind "$root/run" /run/libvirt
    mount --bind "$root/lib" /var/lib/libvirt
    mount --bind "$root/etc" /etc/libvirt
    mount --bind "$root/cache" /var/cache/libvirt
    mount --bind "$root/log" /var/log/libvirt
    virtlogd --daemon --config /etc/libvirt/virtlogd.conf --pid-file "$root/virtlogd.pid"
    libvirtd --daemon --config /etc/libvirt/libvirtd.conf --pid-file "$root/libvirtd.pid"
  ' _ "$root"
}

wait_answering() {
  local root=$1
  for _ in $(seq 1 120); do
    virsh -q -c "$(uri_of "$root")" version >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  echo "qemu host $root: libvirtd did not answer in 30 s (log: $root/libvirtd.log)" >&2
  return 1
}

pid_of() { [ -s "$1" ] && cat "$1" || true; }

wait_gone() {
  for _ in $(seq 1 40); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.25
  done
  kill -9 "$1" 2>/dev/null || true
}

# SIGTERM, as an init system's stop would; the guests and the host's virtlogd keep running.
stop_libvirtd() {
  local root=$1 pid
  pid=$(pid_of "$root/libvirtd.pid")
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then wait_gone "$pid"; fi
}

# Started inside the namespace its virtlogd keeps.
start_libvirtd() {
  local root=$1 logd
  logd=$(pid_of "$root/virtlogd.pid")
  [ -n "$logd" ] || { echo "qemu host $root: no virtlogd, not started by this script" >&2; return 1; }
  nsenter -t "$logd" -m libvirtd --daemon --config /etc/libvirt/libvirtd.conf --pid-file "$root/libvirtd.pid"
  wait_answering "$root"
}

stop_host() {
  local root=$1 uri
  uri=$(uri_of "$root")
  if [ -S "$root/libvirt-sock" ]; then
    for domain in $(virsh -q -c "$uri" list --all --name 2>/dev/null); do
      virsh -q -c "$uri" destroy "$domain" >/dev/null 2>&1 || true
      virsh -q -c "$uri" undefine --managed-save "$domain" >/dev/null 2>&1 || true
    done
  fi
  local pids=()
  for file in "$root/libvirtd.pid" "$root/virtlogd.pid"; do
    local pid
    pid=$(pid_of "$file")
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then pids+=("$pid"); fi
  done
  for pid in "${pids[@]}"; do wait_gone "$pid"; done
  # A guest whose daemon died first would linger: libvirt left its QEMU's pid file behind.
  for file in "$root"/run/qemu/*.pid; do
    [ -e "$file" ] || continue
    local pid
    pid=$(pid_of "$file")
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
}

command=${1:-}
dir=${2:-}
[ -n "$command" ] && [ -n "$dir" ] || usage
case "$command" in
  up)
    shift 2
    [ $# -gt 0 ] || usage
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    # The first host fills the capabilities cache (if empty) for the others.
    start_host "$dir/$1"
    wait_answering "$dir/$1"
    save_caps "$dir/$1"
    for host in "${@:2}"; do start_host "$dir/$host"; done
    for host in "${@:2}"; do wait_answering "$dir/$host"; done
    for host in "$@"; do echo "$host $(uri_of "$dir/$host")"; done
    ;;
  restart | stop | start)
    [ $# -eq 3 ] || usage
    root="$(cd "$dir" && pwd)/$3"
    if [ "$command" != start ]; then stop_libvirtd "$root"; fi
    if [ "$command" != stop ]; then start_libvirtd "$root"; fi
    ;;
  down)
    [ -d "$dir" ] || exit 0
    dir=$(cd "$dir" && pwd)
    for root in "$dir"/*/; do
      if [ -f "${root}etc/libvirtd.conf" ]; then stop_host "${root%/}" & fi
    done
    wait
    rm -rf "$dir"
    ;;
  *) usage ;;
esac
