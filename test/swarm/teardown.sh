# Teardown: everything the test made, in reverse order, each step bounded in time and tolerant of a
# half-built state (it runs from the EXIT trap, whatever failed). Sourced by run.sh.

# Processes whose mount namespace is the engine's: dockerd, its containerd, the shims and containers.
processes_of_node() {
  local n=$1 pid ns p
  pid=$(cat "$(node_dir "$n")/init.pid" 2>/dev/null) || return 0
  ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null) || return 0
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/ns/mnt" 2>/dev/null) == "$ns" ]] && echo "${p#/proc/}"
  done
  return 0
}

# The host's iptables lines (both backends) an engine would add if it ran in the host's namespace.
# install.sh checked that iptables-save runs, so the check this feeds can fail.
docker_iptables() {
  local legacy
  legacy=$(system_binary iptables-legacy-save) || legacy=
  { "$IPTABLES_SAVE"; [[ -z $legacy ]] || "$legacy"; } 2>/dev/null | grep -E 'DOCKER|docker|10\.23[123]\.' || true
}

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

stop_engine() {
  local n=$1 pid pids
  pid=$(cat "$(node_dir "$n")/init.pid" 2>/dev/null) || return 0
  pid_gone "$pid" && return 0
  pids=$(processes_of_node "$n")
  # A clean stop first: dockerd stops its containers and containerd...
  kill -TERM "$pid" 2>/dev/null || true
  wait_until 30 "dockerd $pid ($n) to exit" pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
  # ...then whatever is left of that node (by PID, all of them started by this test through its engine).
  local p
  for p in $pids $(processes_of_node "$n"); do kill -KILL "$p" 2>/dev/null || true; done
  for p in $pids; do wait_until 10 "process $p of node $n to exit" pid_gone "$p" || true; done
}

nothing_left() {   # nothing_left <mount namespace ids of the nodes...>
  local left=() p ns
  for p in /proc/[0-9]*; do
    ns=$(readlink "$p/ns/mnt" 2>/dev/null) || continue
    for n in "$@"; do [[ -n $n && $ns == "$n" ]] && left+=("process ${p#/proc/}"); done
  done
  ip netns list | grep -q '^rlys[ab]\b' && left+=("namespaces")
  compgen -G '/sys/fs/cgroup/*/rlys-*' >/dev/null && left+=("cgroups")
  [[ -e $RUN_DIR ]] && left+=("$RUN_DIR")
  ((${#left[@]} == 0)) || { log "left: ${left[*]}"; return 1; }
}

teardown() {
  local rc=$? n
  set +e
  trap - EXIT INT TERM ERR
  log "teardown"
  stop_proxy
  # Containers first, at once (a test container need not get its 10 s stop grace), then the swarm.
  for n in "${NODES[@]}"; do
    if engine_up "$n"; then
      if [[ $n == a ]]; then dkt 30 a stack rm "$STACK" >/dev/null 2>&1; fi
      local ids
      ids=$(dkt 10 "$n" ps -aq 2>/dev/null)
      # shellcheck disable=SC2086 # one id per word
      [[ -n $ids ]] && dkt 30 "$n" rm -f $ids >/dev/null 2>&1
      dkt 30 "$n" swarm leave --force >/dev/null 2>&1
    fi
  done
  log "teardown: stack, containers and swarm gone"
  local node_ns=() pid
  for n in "${NODES[@]}"; do
    pid=$(cat "$(node_dir "$n")/init.pid" 2>/dev/null) && node_ns+=("$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)")
  done
  for n in "${NODES[@]}"; do stop_engine "$n"; done
  log "teardown: engines stopped"
  # Deleting a namespace removes its veth end (and so the pair), its bridges and vxlans, and every
  # iptables chain and rule the engine made in it: none of them were ever in the host's tables.
  for n in "${NODES[@]}"; do ip netns del "$(netns "$n")" 2>/dev/null; done
  # Cgroups the engines made under their --cgroup-parent (empty once the containers are gone).
  local d
  for d in /sys/fs/cgroup/*/rlys-* /sys/fs/cgroup/unified/rlys-*; do
    [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  # Mounts are all inside the nodes' private mount namespaces, gone with their last process; check anyway.
  local m
  for m in $(findmnt -rn -o TARGET | grep "^$RUN_DIR" | sort -r); do umount -l "$m"; done
  rm -rf "$RUN_DIR"
  log "teardown: namespaces, cgroups and $RUN_DIR removed"
  if ((${#node_ns[@]} > 0)); then
    check "nothing of the test left (processes, namespaces, cgroups, $RUN_DIR)" nothing_left "${node_ns[@]}"
  fi
  # The host's own firewall tables are as they were: the engines' chains lived in their namespaces only.
  if [[ -n ${iptables_before+set} ]]; then
    check "no Docker chain or rule left in the host's iptables" test "$(docker_iptables)" == "$iptables_before"
  fi
  report "$rc"
}
