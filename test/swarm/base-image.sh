# The base image, made without any container registry: a minimal Debian from debootstrap (cached as a
# tarball under $CACHE_DIR, so only the first run downloads it) plus the host's own Node 20 binary, tagged
# node:20-bookworm-slim so that the project's Dockerfile builds on it unchanged. Sourced by run.sh.

DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${RELAY_SWARM_MIRROR:-http://deb.debian.org/debian}
ROOTFS_TAR=$CACHE_DIR/$DEBIAN_SUITE-minbase.tar
BASE_TAG=node:20-bookworm-slim

# debootstrap once; later runs reuse the tarball.
cache_rootfs() {
  if [[ -s $ROOTFS_TAR ]]; then
    log "base: cached $ROOTFS_TAR"
    return 0
  fi
  log "base: debootstrap --variant=minbase $DEBIAN_SUITE (first run only; cached in $CACHE_DIR)"
  mkdir -p "$CACHE_DIR"
  local root=$CACHE_DIR/rootfs.tmp
  rm -rf "$root"
  timeout 900 "$DEBOOTSTRAP" --variant=minbase "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 \
    || die "debootstrap failed: see $CACHE_DIR/debootstrap.log"
  # What an image does not need: package lists and caches, docs, man pages.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
  tar --numeric-owner -C "$root" -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$root"
}

# import_base <node>: the Debian tarball as an image, then the host's node and npm on top of it, where
# the official node image has them (/usr/local/bin/node, /usr/local/lib/node_modules/npm).
import_base() {
  local n=$1 node_bin npm_dir
  node_bin=$(command -v node) || die "no node binary on this host"
  [[ $("$node_bin" --version) == v20.* ]] || die "$node_bin is $("$node_bin" --version), want Node 20"
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")") || die "no npm on this host"
  log "base: docker import + $node_bin ($("$node_bin" --version)) + npm as $BASE_TAG on node $n"
  dk "$n" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' \
    "$ROOTFS_TAR" relayer-swarm/debian:$DEBIAN_SUITE >/dev/null
  local ctx=$RUN_DIR/base-context
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp "$(readlink -f "$node_bin")" "$ctx/node"
  cp -a "$npm_dir" "$ctx/npm"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM relayer-swarm/debian:$DEBIAN_SUITE
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
DOCKERFILE
  # A host whose TLS goes through an intercepting proxy trusts its CA through NODE_EXTRA_CA_CERTS; the
  # base image trusts what the host trusts (only npm inside a build, RELAY_SWARM_FROM_SOURCE=1, uses it).
  if [[ -n ${NODE_EXTRA_CA_CERTS:-} && -r $NODE_EXTRA_CA_CERTS ]]; then
    cp "$NODE_EXTRA_CA_CERTS" "$ctx/extra-ca.crt"
    printf 'COPY extra-ca.crt /usr/local/share/relayer-swarm/extra-ca.crt\nENV NODE_EXTRA_CA_CERTS=/usr/local/share/relayer-swarm/extra-ca.crt\n' >>"$ctx/Dockerfile"
  fi
  dk "$n" build -q -t "$BASE_TAG" "$ctx" >/dev/null
  rm -rf "$ctx"
  # The binary is the host's: check that its shared libraries are in the image.
  dk "$n" run --rm --network none "$BASE_TAG" node -e 'process.exit(process.versions.node.startsWith("20.") ? 0 : 1)' \
    || die "the host's node does not run in the base image"
}
