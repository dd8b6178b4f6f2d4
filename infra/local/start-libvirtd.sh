#!/usr/bin/env bash
# Starts libvirtd (Debian's libvirt-daemon) in this sandbox if it is not running, so the
# test driver is served to several processes at once as test+unix:///default, with real
# lifecycle events. Needs root. Idempotent.
set -euo pipefail

socket=/run/libvirt/libvirt-sock
if [ -S "$socket" ] && virsh -q -c test+unix:///default version >/dev/null 2>&1; then exit 0; fi

mkdir -p /run/libvirt /var/log/libvirt
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
id libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -G kvm -s /usr/sbin/nologin libvirt-qemu

echo "libvirtd: starting"
libvirtd --daemon
for _ in $(seq 1 40); do
  virsh -q -c test+unix:///default version >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "libvirtd: test+unix:///default did not answer in 20 s" >&2
exit 1
