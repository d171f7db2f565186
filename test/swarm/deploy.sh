# The deployment, step by step as docs/deploy.md tells a user (same order): swarm, image on
# every node, secret, node label, host folders and their owners, stack deploy, wait for health.
# Sourced by run.sh.

swarm_up() {
  dk a swarm init --advertise-addr "${ADDR[a]}" --listen-addr "${ADDR[a]}:2377" >/dev/null
  dk b swarm join --token "$(dk a swarm join-token -q worker)" \
    --advertise-addr "${ADDR[b]}" --listen-addr "${ADDR[b]}:2377" "${ADDR[a]}:2377" >/dev/null
  wait_until 60 "both nodes Ready" two_nodes_ready || die "swarm did not form"
  log "swarm: rlys-a (manager) + rlys-b (worker) Ready"
}
two_nodes_ready() { [[ $(dk a node ls --format '{{.Status}}' | grep -c '^Ready$') == 2 ]]; }

# The image is built on node a and copied to node b with `docker save | docker load` (no registry).
images_up() {
  import_base a
  build_app_image a
  dk a save "$IMAGE" | dk b load >/dev/null
  local n
  for n in "${NODES[@]}"; do
    dk "$n" image inspect "$IMAGE" >/dev/null || die "no $IMAGE on node $n"
  done
  log "image: $IMAGE built on rlys-a, loaded on rlys-b (docker save | docker load)"
}

# Secret, label, and the bind-mount sources with their owners, made on each node's own host.
prepare_nodes() {
  TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
  printf '%s' "$TOKEN" | dk a secret create relay_token - >/dev/null
  dk a node update --label-add relay.sender=true "$(host_name a)" >/dev/null
  local n
  for n in "${NODES[@]}"; do
    on_node "$n" install -d -o "$RELAY_UID" -g "$RELAY_GID" -m 0750 /srv/relay-inbox
  done
  on_node a install -d -o "$RELAY_UID" -g "$RELAY_GID" -m 0770 /run/relay
  on_node a install -d -o "$RELAY_UID" -g "$RELAY_GID" -m 0755 /srv/jenkins "$WORKSPACE"
  log "nodes: secret relay_token, label relay.sender=true on rlys-a, /srv/relay-inbox on both, /run/relay + $WORKSPACE on rlys-a"
}

# The repository's swarm-stack.yml as it is; only the values a user sets, in the environment: receivers
# discovered through tasks.receiver on the stack's overlay network (RELAY_SWARM_RECEIVERS=discover, the
# stack's default), or the documented alternative, an explicit list of the nodes' addresses (=list).
deploy_stack() {
  local mode=${RELAY_SWARM_RECEIVERS:-discover} set=()
  case $mode in
    discover) ;;
    list) set=(RELAY_DISCOVER= "RELAY_RECEIVERS=$(host_name a)=http://${ADDR[a]}:7420,$(host_name b)=http://${ADDR[b]}:7420") ;;
    *) die "RELAY_SWARM_RECEIVERS: discover or list, not $mode" ;;
  esac
  # STACK_EXTRA: more stack files deployed on top of swarm-stack.yml, as a user does (-c … -c …).
  local files=(-c "$REPO_DIR/swarm-stack.yml") f
  for f in ${STACK_EXTRA:-}; do files+=(-c "$f"); done
  env -u RELAY_DISCOVER -u RELAY_RECEIVERS "${set[@]}" \
    RELAY_WORKSPACE="$WORKSPACE" RELAY_UID="$RELAY_UID" RELAY_GID="$RELAY_GID" \
    timeout 60 "$DOCKER_BIN" -H "unix://$(node_dir a)/docker.sock" stack deploy --resolve-image never \
      "${files[@]}" "$STACK" >/dev/null
  log "stack: deployed $STACK (receivers: $mode${STACK_EXTRA:+; with ${STACK_EXTRA##*/}})"
}

# healthy_task <node> <service>: the node runs a container of that service and its healthcheck passes.
healthy_task() {
  [[ -n $(dk "$1" ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$2" --filter health=healthy) ]]
}
task_container() { dk "$1" ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$2" | head -1; }

wait_healthy() {
  local n ok=0
  for n in "${NODES[@]}"; do
    wait_until 120 "healthy receiver on rlys-$n" healthy_task "$n" receiver || ok=1
  done
  wait_until 120 "healthy sender on rlys-a" healthy_task a sender || ok=1
  if ((ok != 0)); then
    dk a service ps --no-trunc "${STACK}_receiver" "${STACK}_sender" >&2 || true
    return 1
  fi
  log "stack: both receivers and the sender healthy"
}
