#!/usr/bin/env bash
# A chosen part of the default suite run by Node for each ARM under qemu (arm64: Node from npm; armv7:
# Debian trixie's Node for armhf), in the tree installed for it: the protocol's unit tests (validation,
# parser, path guard, sparse writes, hashing) and the in-process transfer e2e tests (real sockets on
# 127.0.0.1, real files; nothing there spawns a child Node).
set -euo pipefail
CACHE=${RELAY_ARM_CACHE:-/var/cache/relayer-arm}
# shellcheck disable=SC1091
source "$CACHE/env"
specs=(test/dist/unit/{validate,parser,path-guard,sparse-write,echo,running-hash,file-hasher,units}.test.js test/dist/e2e/transfer.test.js)
under() {   # under <node bin folder> <app>
  echo "default-suite subset under $("$1/node" -p '`Node ${process.version} on ${process.arch}`')"
  (cd "$2" && "$1/node" node_modules/mocha/bin/mocha.js --no-config --timeout 300000 --slow 60000 "${specs[@]}")
}
under "$RELAY_ARM_NODE_BIN" "$RELAY_ARM_APP"
under "$RELAY_ARMV7_NODE_BIN" "$RELAY_ARMV7_APP"
