#!/usr/bin/env bash
# PID 1 of a test node's view of the world, started by engines.sh inside the node's network namespace and
# fresh mount and UTS namespaces: makes the node's host look like a real host, then becomes its dockerd.
#   node-init.sh <node name> <node dir> <dockerd>   (dockerd's path, as install.sh found it)
set -euo pipefail
name=$1 dir=$2 dockerd=$3

hostname "$name"

# /sys must show this network namespace's devices (libnetwork reads /sys/class/net), but a fresh sysfs
# has no cgroup tree under it (that is what `ip netns exec` gets wrong): keep the tree, remount, put it back.
mkdir -p "$dir/cgroup-keep"
mount --rbind /sys/fs/cgroup "$dir/cgroup-keep"
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount --move "$dir/cgroup-keep" /sys/fs/cgroup

# The node's own /run (on real hosts a tmpfs, fresh at boot) and /srv: the stack's bind-mount sources
# live there, and the test reads them from the host side in $dir.
mount --bind "$dir/run" /run
mount --bind "$dir/srv" /srv

exec "$dockerd" \
  --data-root "$dir/data" \
  --exec-root "$dir/exec" \
  --pidfile "$dir/dockerd.pid" \
  -H "unix://$dir/docker.sock" \
  --cgroup-parent "$name" \
  --config-file "$dir/daemon.json" \
  --log-level warn
