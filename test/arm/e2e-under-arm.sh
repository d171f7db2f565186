#!/usr/bin/env bash
# A chosen part of the default suite run by Node for arm64 under qemu, in the tree installed for arm64:
# the protocol's unit tests (validation, parser, path guard, sparse writes, hashing) and the in-process
# transfer e2e tests (real sockets on 127.0.0.1, real files; nothing there spawns a child Node).
set -euo pipefail
CACHE=${RELAY_ARM_CACHE:-/var/cache/relayer-arm}
# shellcheck disable=SC1091
source "$CACHE/env"
cd "$RELAY_ARM_APP"
echo "default-suite subset under $("$RELAY_ARM_NODE_BIN/node" -p '`Node ${process.version} on ${process.arch}`')"
specs=(test/dist/unit/{validate,parser,path-guard,sparse-write,echo,running-hash,file-hasher,units}.test.js test/dist/e2e/transfer.test.js)
exec "$RELAY_ARM_NODE_BIN/node" node_modules/mocha/bin/mocha.js --no-config --timeout 300000 --slow 60000 "${specs[@]}"
