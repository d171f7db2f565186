#!/usr/bin/env bash
# The project's Dockerfile built for linux/arm64 and run, on an x64 host, without a container registry:
#   1. what it needs, installed or fetched when missing: the Swarm test's packages (test/swarm/install.sh:
#      docker.io, debootstrap, ...) and the arm cache (test/arm/prepare.sh: qemu-user-static, the arm64
#      sysroot, Node for arm64)
#   2. binfmt_misc: qemu-aarch64 registered for this run only (binfmt_misc mounted if it was not), removed
#      afterwards, with whatever else is registered there left alone
#   3. an arm64 Debian bookworm minbase (debootstrap --arch=arm64, its second stage run under qemu through
#      binfmt), cached as a tarball in $RELAY_ARM_CACHE, as the first layer of a linux/arm64 image, plus Node
#      for arm64 and npm where the official image has them, tagged node:20-bookworm-slim: the Swarm test's
#      amd64 base (test/swarm/base-image.sh), made for arm64
#   4. a private dockerd (test/swarm/engines.sh's, in its own network namespace `rlyarm` with nothing routed
#      out, its own mount and UTS namespaces, data root, exec root, socket and cgroup parent)
#   5. the app staged as test/swarm/stage-app.sh stages it, installed for arm64 (npm_config_cpu=arm64), then
#      `docker build --platform linux/arm64 --build-arg APP_FROM=prebuilt` of the unchanged Dockerfile
#   6. a receiver container from that image, configured as swarm-stack.yml configures it (token file,
#      /data bind-mounted), healthy by the image's HEALTHCHECK; uname -m and Node's arch inside; a file sent
#      to it by `relay send --direct` (the staged tree's, run by this host's x64 Node) arrives byte-identical
#   7. cleanup of all of it, also on failure (EXIT trap); the host's iptables checked unchanged
# As root. When the arm cache is not there yet, the tree must be built first (tsc -b): prepare.sh copies
# its dist. Knobs: RELAY_ARM_CACHE (default /var/cache/relayer-arm), RELAY_ARM_IMAGE_RUN (this run's
# folder, default /var/tmp/rlyarm-image), RELAY_SWARM_MIRROR (the Debian mirror for debootstrap).
# Prints the time of each step and "arm image: PASS" or a FATAL line.
set -Eeuo pipefail
T0=$(date +%s)
ARM_CACHE=${RELAY_ARM_CACHE:-/var/cache/relayer-arm}
export RELAY_SWARM_RUN=${RELAY_ARM_IMAGE_RUN:-/var/tmp/rlyarm-image}   # lib.sh's RUN_DIR: this run's files
swarm=$(cd "$(dirname "$0")/../swarm" && pwd)
for part in lib install stage-app engines teardown; do
  # shellcheck source=/dev/null
  source "$swarm/$part.sh"
done
log() { printf '[arm image %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }

# The Swarm test's engine functions with this script's own names: rlyarm for the namespace, host name and
# cgroup parent, so that nothing here is taken for the Swarm test's rlys* (its teardown removes those).
NODE=arm
netns() { echo rlyarm; }
host_name() { echo rlyarm; }

NODE_VERSION=$(node -p 'process.versions.node')
NODE_ARM=$ARM_CACHE/node-arm64-$NODE_VERSION
SUITE=bookworm
MIRROR=${RELAY_SWARM_MIRROR:-http://deb.debian.org/debian}
ROOTFS_TAR=$ARM_CACHE/$SUITE-arm64-minbase.tar
BASE_TAG=node:20-bookworm-slim
APP_IMAGE=relayer:arm64
RECEIVER=rlyarm-receiver
TOKEN=arm-image-check-token-0123456789abcdef
LOGS=$ARM_CACHE/image-logs          # kept after the run, for a failure's post-mortem
BINFMT=/proc/sys/fs/binfmt_misc
BINFMT_NAME=relayer-aarch64         # the only entry this script registers or removes
# qemu's own aarch64 ELF magic and mask (scripts/qemu-binfmt-conf.sh; Debian's /usr/lib/binfmt.d/qemu-aarch64.conf)
AARCH64_MAGIC='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
AARCH64_MASK='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'

# Step timings, printed at the end.
STEPS=()
STEP_T=$(date +%s)
step_done() { local now; now=$(date +%s); STEPS+=("$(printf '%4ss  %s' "$((now - STEP_T))" "$1")"); STEP_T=$now; }

mounted_binfmt=0 registered_binfmt=0 engine_started=0
cleanup() {
  local rc=$? p d m
  set +e
  trap - EXIT INT TERM ERR
  if ((rc != 0)); then
    [[ -f $(node_dir "$NODE")/dockerd.log ]] && { log "dockerd's last lines:"; tail -15 "$(node_dir "$NODE")/dockerd.log" >&2; }
    if ((engine_started)) && engine_up "$NODE" && [[ -n $(dkt 10 "$NODE" ps -aq -f "name=$RECEIVER") ]]; then
      log "the receiver container's logs:"; dkt 10 "$NODE" logs --tail 20 "$RECEIVER" >&2 2>&1
    fi
  fi
  log "cleanup"
  if ((engine_started)); then
    if engine_up "$NODE"; then
      p=$(dkt 10 "$NODE" ps -aq)
      # shellcheck disable=SC2086 # one id per word
      [[ -n $p ]] && dkt 30 "$NODE" rm -f $p >/dev/null 2>&1
    fi
    stop_engine "$NODE"
  fi
  ip netns del "$(netns)" 2>/dev/null
  for d in /sys/fs/cgroup/*/rlyarm /sys/fs/cgroup/rlyarm /sys/fs/cgroup/unified/rlyarm; do
    [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  for m in $(findmnt -rn -o TARGET | grep "^$RUN_DIR" | sort -r); do umount -l "$m"; done
  rm -rf "$RUN_DIR"
  if ((registered_binfmt)) && [[ -e $BINFMT/$BINFMT_NAME ]]; then
    echo -1 >"$BINFMT/$BINFMT_NAME" && log "binfmt: $BINFMT_NAME removed"
  fi
  if ((mounted_binfmt)); then umount "$BINFMT" && log "binfmt: binfmt_misc unmounted (it was not mounted before)"; fi
  local left=()
  ip netns list | grep -qw rlyarm && left+=("namespace rlyarm")
  compgen -G '/sys/fs/cgroup/*/rlyarm' >/dev/null && left+=("cgroups rlyarm")
  [[ -e $RUN_DIR ]] && left+=("$RUN_DIR")
  [[ -e $BINFMT/$BINFMT_NAME ]] && left+=("binfmt entry $BINFMT_NAME")
  [[ -n ${iptables_before+set} && $(docker_iptables) != "$iptables_before" ]] && left+=("Docker lines in the host's iptables")
  if ((${#left[@]} > 0)); then log "FATAL: left behind: ${left[*]}"; ((rc != 0)) || rc=1; fi
  local s
  for s in "${STEPS[@]}"; do log "  $s"; done
  log "took $(( $(date +%s) - T0 ))s"
  if ((rc == 0)); then echo "arm image: PASS"; else echo "arm image: FAIL (exit $rc)"; fi
  exit "$rc"
}

[[ $EUID -eq 0 ]] || die "must run as root (apt, binfmt_misc, namespaces, dockerd)"
mkdir -p "$ARM_CACHE" "$LOGS"
exec 9>"$ARM_CACHE/image.lock"
flock -n 9 || die "another test/arm/image.sh holds $ARM_CACHE/image.lock"
ip netns list | grep -qw rlyarm && die "namespace rlyarm exists: a run was killed, or remove it (ip netns del rlyarm)"
[[ ! -e $RUN_DIR ]] || die "$RUN_DIR exists: a run was killed; remove it"
trap cleanup EXIT
trap 'log "command failed (line $LINENO): $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

# 1. Packages and the arm cache.
install_packages
QEMU=$(command -v qemu-aarch64-static || true)
if [[ -z $QEMU || ! -x $NODE_ARM || ! -e $ARM_CACHE/sysroot-arm64/.done ]]; then
  log "arm cache incomplete: test/arm/prepare.sh"
  timeout 900 bash "$REPO_DIR/test/arm/prepare.sh" >&2 || die "test/arm/prepare.sh failed"
  QEMU=$(command -v qemu-aarch64-static) || die "no qemu-aarch64-static after prepare.sh"
fi
[[ -x $NODE_ARM ]] || die "no Node for arm64 at $NODE_ARM after prepare.sh"
QEMU=$(readlink -f "$QEMU")
step_done "packages and arm cache"

# 2. binfmt for aarch64, this run only. F: the kernel opens qemu now, so it runs inside containers and
# chroots that do not have it; P: argv[0] preserved; O: qemu gets the binary as an open file.
if [[ ! -e $BINFMT/status ]]; then
  mount -t binfmt_misc binfmt_misc "$BINFMT" || die "cannot mount binfmt_misc on $BINFMT"
  mounted_binfmt=1
fi
[[ $(cat "$BINFMT/status") == enabled ]] || die "binfmt_misc is disabled ($BINFMT/status): enabling it would change the host for everyone"
# A leftover of a killed run (the lock says no other run is going on) is this script's own: replaced.
[[ -e $BINFMT/$BINFMT_NAME ]] && echo -1 >"$BINFMT/$BINFMT_NAME"
printf ':%s:M::%s:%s:%s:OPF' "$BINFMT_NAME" "$AARCH64_MAGIC" "$AARCH64_MASK" "$QEMU" >"$BINFMT/register" \
  || die "registering $BINFMT_NAME in $BINFMT/register failed"
registered_binfmt=1
log "binfmt: $BINFMT_NAME -> $QEMU registered (flags OPF)$( ((mounted_binfmt)) && echo ', binfmt_misc mounted for this run')"
# The arm64 Node, run directly: the kernel hands it to qemu (its libraries from the sysroot).
[[ $(QEMU_LD_PREFIX=$ARM_CACHE/sysroot-arm64 timeout 60 "$NODE_ARM" -p process.arch) == arm64 ]] \
  || die "an arm64 binary does not run through binfmt"
step_done "binfmt registered"

# 3. The arm64 base's root file system: debootstrap once, cached.
if [[ -s $ROOTFS_TAR ]]; then
  log "base: cached $ROOTFS_TAR"
else
  log "base: debootstrap --arch=arm64 --variant=minbase $SUITE (first run only; cached as $ROOTFS_TAR)"
  root=$ARM_CACHE/rootfs-arm64.tmp
  rm -rf "$root"
  # Without --foreign: debootstrap chroots into the arm64 tree for its second stage, which binfmt runs.
  timeout 900 "$DEBOOTSTRAP" --arch=arm64 --variant=minbase "$SUITE" "$root" "$MIRROR" >"$LOGS/debootstrap.log" 2>&1 \
    || { rm -rf "$root"; die "debootstrap --arch=arm64 failed: see $LOGS/debootstrap.log"; }
  # e_machine of its /bin/true: 0xb7, aarch64.
  [[ $(od -An -tx1 -j18 -N2 "$root/usr/bin/true" | tr -d ' ') == b700 ]] || die "debootstrap made no arm64 tree"
  # What an image does not need, as base-image.sh drops it.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
  tar --numeric-owner -C "$root" -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$root"
fi
step_done "arm64 rootfs ($(du -h "$ROOTFS_TAR" | cut -f1))"

# 4. The private engine.
iptables_before=$(docker_iptables)
mkdir -p "$RUN_DIR"
ip netns add "$(netns)"
ip -n "$(netns)" link set lo up
start_engine "$NODE"
engine_started=1
wait_until 60 "dockerd in rlyarm" engine_up "$NODE" || die "the private dockerd did not start"
log "engine: dockerd $(engine_pid "$NODE") in namespace rlyarm, socket $(node_dir "$NODE")/docker.sock"
step_done "dockerd started"

# 5a. The base image for linux/arm64: base-image.sh's tarball and Node layer, built FROM scratch instead of
# docker-imported (docker import of Debian's 20.10 engine labels every image with the engine's own
# architecture, amd64; a --platform linux/arm64 build FROM scratch labels it arm64).
image_arch() { dk "$NODE" image inspect -f '{{.Os}}/{{.Architecture}}' "$1"; }
ctx=$RUN_DIR/base-context
mkdir -p "$ctx"
ln "$ROOTFS_TAR" "$ctx/rootfs.tar" 2>/dev/null || cp "$ROOTFS_TAR" "$ctx/rootfs.tar"
cp "$NODE_ARM" "$ctx/node"
cp -a "$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")" "$ctx/npm"   # npm is JavaScript: the host's
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
CMD ["node"]
DOCKERFILE
dk "$NODE" build --platform linux/arm64 -t "$BASE_TAG" "$ctx" >"$LOGS/base-build.log" 2>&1 \
  || { tail -20 "$LOGS/base-build.log" >&2; die "building the arm64 base failed (its RUN runs under qemu)"; }
[[ $(image_arch "$BASE_TAG") == linux/arm64 ]] || die "$BASE_TAG is $(image_arch "$BASE_TAG"), not linux/arm64"
got=$(dkt 120 "$NODE" run --rm --platform linux/arm64 --network none "$BASE_TAG" sh -c 'uname -m; node -p "process.arch + \" \" + process.version"; npm --version' | tr '\n' ' ') \
  || die "Node for arm64 does not run in the base image"
log "base: $BASE_TAG linux/arm64 runs: $got"
[[ $got == "aarch64 arm64 v$NODE_VERSION "* ]] || die "the base image runs $got, want aarch64 arm64 v$NODE_VERSION"
step_done "base image node:20-bookworm-slim linux/arm64"

# 5b. The app, staged for arm64 (stage-app.sh's steps; npm's --cpu/--os through its environment).
npm_config_cpu=arm64 npm_config_os=linux stage_app
ls "$STAGE_DIR"/node_modules/@msgpackr-extract/ | grep -qx msgpackr-extract-linux-arm64 \
  || die "the staged tree has no @msgpackr-extract/msgpackr-extract-linux-arm64: $(ls "$STAGE_DIR"/node_modules/@msgpackr-extract/ | tr '\n' ' ')"
! ls "$STAGE_DIR"/node_modules/@msgpackr-extract/ | grep -q x64 || die "the staged tree has an x64 prebuild"
step_done "app staged for arm64"
log "app: docker build --platform linux/arm64 --build-arg APP_FROM=prebuilt (BuildKit)"
dk "$NODE" build --platform linux/arm64 --build-arg APP_FROM=prebuilt -f "$REPO_DIR/Dockerfile" -t "$APP_IMAGE" "$STAGE_DIR" >"$LOGS/app-build.log" 2>&1 \
  || { tail -20 "$LOGS/app-build.log" >&2; die "docker build of the Dockerfile for linux/arm64 failed"; }
[[ $(image_arch "$APP_IMAGE") == linux/arm64 ]] || die "$APP_IMAGE is $(image_arch "$APP_IMAGE"), not linux/arm64"
log "app: $APP_IMAGE linux/arm64, $(dk "$NODE" image inspect -f '{{.Size}}' "$APP_IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
step_done "docker build linux/arm64"

# 6. A receiver as the stack runs one: the token as a file readable by uid 1000 only, /data a host folder.
dir=$RUN_DIR/receiver
install -d -o "$RELAY_UID" -g "$RELAY_GID" -m 0750 "$dir/inbox"
printf '%s' "$TOKEN" >"$dir/token" && chown "$RELAY_UID:$RELAY_GID" "$dir/token" && chmod 0400 "$dir/token"
# --network host: the engine's namespace rlyarm, where this host's relay reaches it on 127.0.0.1:7420.
dk "$NODE" run -d --platform linux/arm64 --name "$RECEIVER" --network host \
  -e RELAY_TOKEN_FILE=/run/secrets/relay_token -e RELAY_NODE=pi -e RELAY_DISPLAY_DIR=/srv/relay-inbox \
  -v "$dir/token:/run/secrets/relay_token:ro" -v "$dir/inbox:/data" "$APP_IMAGE" >/dev/null
healthy() { [[ $(dk "$NODE" inspect -f '{{.State.Health.Status}}' "$RECEIVER") == healthy ]]; }
wait_until 120 "$RECEIVER healthy" healthy || die "the arm64 receiver did not become healthy in 120 s ($(dk "$NODE" inspect -f '{{.State.Status}} {{.State.Health.Status}}' "$RECEIVER"))"
log "receiver: healthy by the image's HEALTHCHECK after $(( $(date +%s) - STEP_T ))s"
step_done "receiver container healthy"
inside=$(dk "$NODE" exec "$RECEIVER" sh -c 'uname -m; node -p process.arch; id -u; cd /app && node -p "require(\"msgpackr\").isNativeAccelerationEnabled"; tr "\0" " " </proc/1/cmdline' | tr '\n' '|')
log "receiver: inside: uname -m|node arch|uid|msgpackr native|pid 1 = $inside"
IFS='|' read -r machine arch uid native cmd <<<"$inside"
[[ $machine == aarch64 ]] || die "uname -m inside is $machine, want aarch64"
[[ $arch == arm64 ]] || die "node inside reports $arch, want arm64"
[[ $uid == "$RELAY_UID" ]] || die "the receiver runs as uid $uid, want $RELAY_UID"
[[ $native == true ]] || die "msgpackr-extract did not load natively inside (its linux-arm64 prebuild)"
# Under binfmt's P flag pid 1's argv starts with qemu and the binary's path; on a Pi it is the rest.
[[ $cmd == *"node --initial-old-space-size=56 "*relay-receiver* ]] || die "pid 1 is not relay-receiver's Node: $cmd"
# This host's x64 Node running the staged tree's relay (the image's own code), in the engine's namespace,
# straight to the container's receiver.
src=$RUN_DIR/src
mkdir -p "$src"
head -c $((16 * 1024 * 1024)) /dev/urandom >"$src/arm-image.bin"
RELAY_TOKEN=$TOKEN timeout 180 "$NSENTER" --net="/run/netns/$(netns)" -- \
  node "$STAGE_DIR/agent-sender/bin/relay.js" send "$src/arm-image.bin" --direct --to http://127.0.0.1:7420 --as builds/arm-image.bin --timeout 120s >&2 \
  || die "relay send --direct from x64 to the arm64 container failed"
want=$(sha256sum <"$src/arm-image.bin" | cut -d' ' -f1)
[[ $(sha256sum <"$dir/inbox/builds/arm-image.bin" | cut -d' ' -f1) == "$want" ]] || die "the file in the container's /data differs from the one sent"
[[ $(stat -c %u:%g "$dir/inbox/builds/arm-image.bin") == "$RELAY_UID:$RELAY_GID" ]] || die "the received file is not owned by $RELAY_UID:$RELAY_GID"
log "receiver: 16 MiB from relay on this host's x64 Node arrived byte-identical (sha256 $want), owned by $RELAY_UID:$RELAY_GID"
step_done "x64 relay send -> arm64 container"
