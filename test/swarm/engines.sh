# The two test nodes: for each, a network namespace joined to the other by a veth pair, and a dockerd in
# it with its own mount and UTS namespaces, data root, exec root, socket, pidfile and cgroup parent.
# Nothing is routed out of the namespaces. Sourced by run.sh.

# One veth pair: rlysa0 (10.231.0.1) in rlysa <-> rlysb0 (10.231.0.2) in rlysb.
make_namespaces() {
  local n
  for n in "${NODES[@]}"; do
    ip netns add "$(netns "$n")"
    ip -n "$(netns "$n")" link set lo up
  done
  ip link add rlysa0 netns rlysa type veth peer name rlysb0 netns rlysb
  for n in "${NODES[@]}"; do
    ip -n "$(netns "$n")" addr add "${ADDR[$n]}/$PREFIX_LEN" dev "rlys${n}0"
    ip -n "$(netns "$n")" link set "rlys${n}0" up
  done
  log "nodes: namespaces rlysa, rlysb; veth ${ADDR[a]} <-> ${ADDR[b]}"
}

start_engine() {
  local n=$1 dir
  dir=$(node_dir "$n")
  mkdir -p "$dir"/{data,exec,run,srv}
  # Own config file, so a host /etc/docker/daemon.json does not leak in; address pools kept away from
  # common LAN ranges (they exist only inside this node's namespaces anyway).
  printf '{"bip": "10.232.%s.1/24", "default-address-pools": [{"base": "10.233.0.0/16", "size": 24}]}\n' \
    "$([[ $n == a ]] && echo 1 || echo 2)" >"$dir/daemon.json"
  "$NSENTER" --net="/run/netns/$(netns "$n")" -- \
    unshare --mount --uts --propagation private -- \
    "$REPO_DIR/test/swarm/node-init.sh" "$(host_name "$n")" "$dir" "$DOCKERD" >"$dir/dockerd.log" 2>&1 &
  echo $! >"$dir/init.pid"   # node-init execs dockerd: this is the engine's PID
}

engine_up() { dk "$1" version >/dev/null 2>&1; }

start_engines() {
  make_namespaces
  local n
  for n in "${NODES[@]}"; do start_engine "$n"; done
  for n in "${NODES[@]}"; do
    wait_until 60 "dockerd of node $n" engine_up "$n" || { tail -20 "$(node_dir "$n")/dockerd.log" >&2; die "engine $n did not start"; }
  done
  log "nodes: engines up (pids $(engine_pid a), $(engine_pid b))"
}
