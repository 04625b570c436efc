#!/usr/bin/env bash
# Two host settings rootful podman needs on machines like CI's (cgroup v2 without a hugetlb v1 mount, and
# a ulimit default that the kernel refuses). Idempotent; run as root. See README "Podman".
set -eu
if [ -d /sys/fs/cgroup ] && ! mountpoint -q /sys/fs/cgroup/hugetlb 2>/dev/null; then
  mkdir -p /sys/fs/cgroup/hugetlb 2>/dev/null || true
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb 2>/dev/null || true
fi
conf=/etc/containers/containers.conf
mkdir -p /etc/containers
if ! grep -q '^default_ulimits *= *\[\]' "$conf" 2>/dev/null; then
  if grep -q '^\[containers\]' "$conf" 2>/dev/null; then
    sed -i '/^\[containers\]/a default_ulimits = []' "$conf"
  else
    printf '[containers]\ndefault_ulimits = []\n' >> "$conf"
  fi
fi
podman info --format '{{.Host.OCIRuntime.Name}}' >/dev/null
