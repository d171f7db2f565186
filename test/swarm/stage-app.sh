# The app, installed and compiled on the host (builds inside containers cannot count on reaching the npm
# registry): a staging copy of the sources goes through the same steps as the Dockerfile's build stage, and
# the result is the build context of `--build-arg APP_FROM=prebuilt`. Sourced by run.sh.

STAGE_DIR=$RUN_DIR/stage

stage_app() {
  log "app: npm ci, tsc -b, npm prune --omit=dev in $STAGE_DIR"
  rm -rf "$STAGE_DIR"; mkdir -p "$STAGE_DIR"
  # The files the Dockerfile's build stage copies, and nothing else.
  (cd "$REPO_DIR" && tar -c --exclude=node_modules --exclude=dist --exclude='*.tsbuildinfo' \
      package.json package-lock.json tsconfig.json tsconfig.base.json \
      common agent-receiver agent-sender test/package.json) | tar -x -C "$STAGE_DIR"
  (
    cd "$STAGE_DIR"
    timeout 300 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
    npx tsc -b common agent-receiver agent-sender
    npm prune --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
    rm -rf common/src agent-receiver/src agent-sender/src ./*/tsconfig*.json ./tsconfig*.json ./*/*.tsbuildinfo
  ) || die "staging the app failed"
  [[ -x $STAGE_DIR/node_modules/.bin/relay && -x $STAGE_DIR/node_modules/.bin/relay-receiver ]] \
    || die "staged app has no relay binaries"
}

# build_app_image <node>: the project's Dockerfile, unchanged, on the staged tree (no network needed).
build_app_image() {
  local n=$1
  log "app: docker build (APP_FROM=prebuilt, BuildKit) on node $n"
  dk "$n" build -q --build-arg APP_FROM=prebuilt -f "$REPO_DIR/Dockerfile" -t "$IMAGE" "$STAGE_DIR" >/dev/null
}
