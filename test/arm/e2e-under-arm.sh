#!/usr/bin/env bash
# A chosen part of the default suite run by Node for each ARM under qemu (arm64: Node from npm; armv7:
# Debian trixie's Node for armhf), in the tree installed for it: the protocol's unit tests (validation,
# parser, path guard, sparse writes, hashing) and the in-process transfer e2e tests (real sockets on
# 127.0.0.1, real files; nothing there spawns a child Node). Both ARMs at once (each mostly one emulated
# thread), each one's output printed when it ends.
set -euo pipefail
CACHE=${RELAY_ARM_CACHE:-/var/cache/relayer-arm}
# shellcheck disable=SC1091
source "$CACHE/env"
specs=(test/dist/unit/{validate,parser,path-guard,sparse-write,echo,running-hash,file-hasher,units}.test.js test/dist/e2e/transfer.test.js)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
under() {   # under <name> <node bin folder> <app>: in the background, output to $out/<name>
  {
    echo "default-suite subset under $("$2/node" -p '`Node ${process.version} on ${process.arch}`')"
    cd "$3" && exec timeout 600 "$2/node" node_modules/mocha/bin/mocha.js --no-config --timeout 300000 --slow 60000 "${specs[@]}"
  } >"$out/$1" 2>&1 &
}
under arm64 "$RELAY_ARM_NODE_BIN" "$RELAY_ARM_APP"; arm64=$!
under armv7 "$RELAY_ARMV7_NODE_BIN" "$RELAY_ARMV7_APP"; armv7=$!
rc=0
wait "$arm64" || rc=$?; cat "$out/arm64"
wait "$armv7" || rc=$?; cat "$out/armv7"
exit "$rc"
