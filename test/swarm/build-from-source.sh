# Optional (RELAY_SWARM_FROM_SOURCE=1): the Dockerfile's default path, as users with a registry run it
# (`npm ci` and `tsc -b` inside the build), checked against the prebuilt image the test deploys. The build
# reaches the npm registry through npm-proxy.mjs: a CONNECT proxy on the host that opens connections to
# registry.npmjs.org:443 only, reached from node a's namespace through a Unix socket (no route out).
# Sourced by run.sh.

PROXY_SOCK=$RUN_DIR/npm-proxy.sock
PROXY_ADDR=${ADDR[a]}:3128

app_files() {   # app_files <image>: the image's /app tree, one path per line (npm's own cache file aside)
  dk a run --rm --network none --no-healthcheck --entrypoint /bin/sh "$1" \
    -c 'cd /app && find . ! -path ./node_modules/.package-lock.json | sort'
}

bins_run() {
  dk a run --rm --network none --no-healthcheck "$1" \
    sh -c 'id -u; relay --version; relay-sender --version; relay-receiver --version' | tr '\n' ' '
}

check_build_from_source() {
  node "$REPO_DIR/test/swarm/npm-proxy.mjs" serve "$PROXY_SOCK" & echo $! >"$RUN_DIR/proxy-serve.pid"
  "$NSENTER" --net="/run/netns/$(netns a)" -- node "$REPO_DIR/test/swarm/npm-proxy.mjs" forward "$PROXY_ADDR" "$PROXY_SOCK" &
  echo $! >"$RUN_DIR/proxy-forward.pid"
  log "app: docker build from source (APP_FROM=build), npm through $PROXY_ADDR"
  check "the Dockerfile builds from source (npm ci inside the build)" \
    dkt 300 a build -q \
      --build-arg "HTTPS_PROXY=http://$PROXY_ADDR" --build-arg "https_proxy=http://$PROXY_ADDR" \
      -t relayer:from-source "$REPO_DIR"
  check "that image has the same /app files as the prebuilt one" \
    eval 'diff <(app_files relayer:from-source) <(app_files "$IMAGE") >&2'
  check "its relay, relay-sender and relay-receiver run, as uid $RELAY_UID" \
    eval '[[ $(bins_run relayer:from-source) == "$(bins_run "$IMAGE")" && $(bins_run "$IMAGE") == "$RELAY_UID "* ]]'
  stop_proxy
}

stop_proxy() {
  local f
  for f in "$RUN_DIR"/proxy-*.pid; do
    [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null
    rm -f "$f"
  done
  return 0
}
