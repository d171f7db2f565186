# What a user relies on, checked on the deployed stack: a Jenkins-like user's `relay send --to all`
# lands byte-identical and owned by the agents' user on both nodes; a killed receiver is seen as down,
# comes back through Swarm, and a send started meanwhile completes. Sourced by run.sh.

SOCKET=/run/relay/relay-sender.sock
JOB_DIR=$WORKSPACE/job                       # path on node a (and in the sender and Jenkins containers)
host_job_dir() { echo "$(node_dir a)$JOB_DIR"; }
inbox() { echo "$(node_dir "$1")/srv/relay-inbox"; }   # node $1's /srv/relay-inbox, seen from the host

# A Jenkins-like container on node a: uid 1000, the socket's folder and the workspace mounted (the
# workspace read-only here, as it is in the sender), `relay` on its PATH. Kept running for the whole test,
# so a step is a `docker exec` (no container start between a kill and the send that must follow it).
JENKINS=rlys-jenkins
start_jenkins() {
  install -d -o "$RELAY_UID" -g "$RELAY_GID" "$(host_job_dir)" "$(host_job_dir)/site/img"
  dk a run -d --name "$JENKINS" --network none --no-healthcheck --entrypoint sleep \
    --user "$RELAY_UID:$RELAY_GID" -v /run/relay:/run/relay -v "$WORKSPACE:$WORKSPACE:ro" -w "$JOB_DIR" \
    -e RELAY_SOCKET=$SOCKET "$IMAGE" infinity >/dev/null
}
jenkins_relay() {
  dkt 180 a exec "$JENKINS" relay "$@"
}

# relay_as <uid:gid> <extra docker run args...> -- <relay args...>: another local user of node a.
relay_as() {
  local user=$1; shift
  local extra=()
  while [[ $1 != -- ]]; do extra+=("$1"); shift; done; shift
  dkt 60 a run --rm --network none --no-healthcheck \
    --user "$user" "${extra[@]}" -v /run/relay:/run/relay -e RELAY_SOCKET=$SOCKET "$IMAGE" relay "$@"
}

# The socket is the only door: mode 0660, so its group lets a user in and nobody else gets through.
check_socket_access() {
  check "a user with the socket's group (1001, --group-add $RELAY_GID) may use it" \
    relay_as "1001:1001" --group-add "$RELAY_GID" -- status
  local rc=0
  relay_as "1001:1001" -- status >&2 || rc=$?
  check "a user outside it (1001:1001) is refused with exit 3" test "$rc" -eq 3
  # Finding 2 of the first deployment: a socket folder left to root made the sender crash-loop with a stack
  # trace. It must stop with one line that names the folder.
  on_node a install -d -o 0 -g 0 -m 0755 /run/relay-root-owned
  local err
  err=$(dkt 60 a run --rm --network none --no-healthcheck -v /run/relay-root-owned:/run/relay \
          -e RELAY_TOKEN=socket-folder-check-token -e RELAY_SOCKET=$SOCKET \
          -e "RELAY_RECEIVERS=x=http://127.0.0.1:9" -e RELAY_LOG_LEVEL=error "$IMAGE" relay-sender 2>&1 >/dev/null) && rc=0 || rc=$?
  printf '%s\n' "$err" >&2
  check "a sender whose socket folder is root's exits non-zero with one line naming the folder" \
    eval '((rc != 0)) && [[ $(grep -c . <<<"$err") == 1 && $err == *"/run/relay"* ]]'
}

# The sender agent's `relay status --json`, as the Jenkins user asks it. It exits 1 while a receiver is not
# connected (the JSON is printed all the same); anything else is a failure.
status_json() { dkt 20 a exec "$JENKINS" relay status --json || [[ $? == 1 ]]; }
# receiver_state <name> [<status json>]: connected | stale | disconnected | absent (not a known receiver)
receiver_state() {
  local s=${2:-$(status_json)}
  node -e 'const s=JSON.parse(process.argv[1]); const r=s.receivers.find(x=>x.name===process.argv[2]); console.log(r?r.state:"absent")' "$s" "$1"
}

make_file() {   # make_file <name> <MiB>: random bytes in the job's workspace, owned by the Jenkins user
  head -c "$(( $2 * 1024 * 1024 ))" /dev/urandom >"$(host_job_dir)/$1"
  chown "$RELAY_UID:$RELAY_GID" "$(host_job_dir)/$1"
}
sha() { sha256sum <"$1" | cut -d' ' -f1; }

# same_on_all <source> <relative path>: the copy on every node has the source's sha256 and the agents' owner.
same_on_all() {
  local src=$1 rel=$2 want n f
  want=$(sha "$src")
  for n in "${NODES[@]}"; do
    f="$(inbox "$n")/$rel"
    [[ -f $f ]] || { log "missing on rlys-$n: $f"; return 1; }
    [[ $(sha "$f") == "$want" ]] || { log "sha256 differs on rlys-$n: $f"; return 1; }
    [[ $(stat -c %u:%g "$f") == "$RELAY_UID:$RELAY_GID" ]] || { log "owner $(stat -c %u:%g "$f") on rlys-$n: $f"; return 1; }
  done
  log "sha256 $want, owner $RELAY_UID:$RELAY_GID on both nodes: $rel"
}

same_tree_on_all() {   # same_tree_on_all <source dir> <relative dir>
  local f
  for f in $(cd "$1" && find . -type f | sort); do same_on_all "$1/$f" "$2/${f#./}" || return 1; done
}

check_send_all() {
  check "the sender knows rlys-a and rlys-b by node name, both connected" wait_until 60 "both receivers connected" both_connected
  make_file app.bin 24
  make_file site/index.html 1; make_file site/img/logo.png 2
  local out
  check "relay send app.bin --to all (uid $RELAY_UID, through the socket) exits 0" \
    eval 'out=$(jenkins_relay send app.bin --to all --as builds/app.bin --timeout 60s 2>&1); rc=$?; printf "%s\n" "$out" >&2; ((rc == 0))'
  check "app.bin byte-identical on both nodes, owned by $RELAY_UID:$RELAY_GID" same_on_all "$(host_job_dir)/app.bin" builds/app.bin
  check "each confirmation names the node and its host path (rlys-a:/srv/relay-inbox/builds/app.bin)" \
    eval '[[ $out == *"rlys-a:/srv/relay-inbox/builds/app.bin"* && $out == *"rlys-b:/srv/relay-inbox/builds/app.bin"* ]]'
  check "relay send app.bin --to $(host_name b) (one node) exits 0, lands there only" \
    eval 'jenkins_relay send app.bin --to "$(host_name b)" --as builds/only-b.bin --quiet --timeout 60s >&2 \
          && [[ $(sha "$(inbox b)/builds/only-b.bin") == $(sha "$(host_job_dir)/app.bin") && ! -e $(inbox a)/builds/only-b.bin ]]'
  check "relay send site --to all (a directory) exits 0" \
    eval 'out=$(jenkins_relay send site --to all --as www/site --quiet --timeout 60s 2>&1); rc=$?; printf "%s\n" "$out" >&2; ((rc == 0))'
  check "site/ tree byte-identical on both nodes" same_tree_on_all "$(host_job_dir)/site" www/site
}

both_connected() {
  local s
  s=$(status_json) || return 1
  [[ $(receiver_state "$(host_name a)" "$s") == connected && $(receiver_state "$(host_name b)" "$s") == connected ]]
}

not_connected() { [[ $(receiver_state "$(host_name b)") =~ ^(stale|disconnected)$ ]]; }
is_connected() { [[ $(receiver_state "$(host_name b)") == connected ]]; }
# A transfer to rlys-b is in flight while rlys-b is not connected: the send really started meanwhile.
send_waits_for_b() {
  local s
  s=$(status_json) || return 1
  [[ $(receiver_state "$(host_name b)" "$s") != connected ]] || return 1
  node -e 'const s=JSON.parse(process.argv[1]); process.exit(s.transfers.some(t=>t.receiver===process.argv[2])?0:1)' "$s" "$(host_name b)"
}

# check_receiver_restart <label> <file>: kill rlys-b's receiver, start a send at once, see it through.
check_receiver_restart() {
  local label=$1 file=$2.bin old new send_pid send_log=$RUN_DIR/send-$2.log seen
  old=$(task_container b receiver)
  [[ -n $old ]] || { check "($label) receiver container on rlys-b found" false; return; }
  make_file "$file" 32
  log "($label) killing the receiver's container on rlys-b ($old)"
  dk b kill "$old" >/dev/null
  # Swarm restarts it after its restart delay (5 s): the send starts now, the checks follow.
  (trap - ERR; jenkins_relay send "$file" --to all --as "builds/$file" --timeout 120s >"$send_log" 2>&1) &
  send_pid=$!
  check "($label) sender marks rlys-b stale or disconnected" wait_until 30 "rlys-b not connected" not_connected
  seen=$(receiver_state "$(host_name b)"); log "($label) rlys-b is $seen"
  check "($label) a send started while rlys-b is down waits for it" \
    wait_until 30 "transfer to rlys-b in flight while it is down" send_waits_for_b
  check "($label) Swarm restarts the receiver on rlys-b (a new container, healthy)" \
    wait_until 90 "new healthy receiver on rlys-b" eval 'new=$(task_container b receiver); [[ -n $new && $new != "$old" ]] && healthy_task b receiver'
  check "($label) sender reconnects to rlys-b" wait_until 60 "rlys-b connected again" is_connected
  local rc=0
  wait "$send_pid" || rc=$?
  cat "$send_log" >&2
  check "($label) that send completes (exit 0)" test "$rc" -eq 0
  check "($label) $file byte-identical on both nodes" same_on_all "$(host_job_dir)/$file" "builds/$file"
}

# The documented alternative to discovery, deployed over the running stack as a user would.
listed() {
  local s
  s=$(status_json) || return 1
  node -e 'const s=JSON.parse(process.argv[1]); const want={[process.argv[2]]:process.argv[3],[process.argv[4]]:process.argv[5]};
    process.exit(s.receivers.length===2 && s.receivers.every(r=>want[r.name]===r.url && r.state==="connected")?0:1)' \
    "$s" "$(host_name a)" "http://${ADDR[a]}:7420" "$(host_name b)" "http://${ADDR[b]}:7420"
}
check_explicit_list() {
  RELAY_SWARM_RECEIVERS=list deploy_stack
  check "(list) redeployed with RELAY_DISCOVER= RELAY_RECEIVERS=…: both receivers by address, connected" \
    wait_until 90 "the sender uses the explicit list" listed
  check_receiver_restart list late-list
}

# The image as `docker run` gives it, no options but a token: a receiver, as uid 1000, writing to its own
# /data, healthy by the image's own HEALTHCHECK.
plain_healthy() { [[ $(dk b inspect -f '{{.State.Health.Status}}' rlys-plain) == healthy ]]; }
check_image_defaults() {
  dk b run -d --name rlys-plain --network none -e RELAY_TOKEN=plain-image-check-token "$IMAGE" >/dev/null
  check "the image run as it is: healthy by its own HEALTHCHECK" wait_until 40 "rlys-plain healthy" plain_healthy
  check "...as uid:gid $RELAY_UID:$RELAY_GID, with its partials in /data" \
    eval '[[ $(dk b exec rlys-plain sh -c "id -u; id -g; stat -c %u /data/.relay-partial" | tr "\n" " ") == "$RELAY_UID $RELAY_GID $RELAY_UID " ]]'
  check "...its Node started with --initial-old-space-size=56 (relay-receiver's own exec line)" has_heap_flag b rlys-plain
  dk b rm -f rlys-plain >/dev/null
}

# has_heap_flag <node> <container>: the container's first process is Node with the receiver's heap flag.
has_heap_flag() {
  local cmd
  cmd=$(dk "$1" exec "$2" sh -c 'tr "\0" " " </proc/1/cmdline')
  log "$2 runs: $cmd"
  [[ $cmd == "node --initial-old-space-size=56 "*relay-receiver* ]]
}
check_stack_receiver_flags() {
  local n c
  for n in "${NODES[@]}"; do
    c=$(task_container "$n" receiver)
    check "the stack's receiver on rlys-$n runs Node with --initial-old-space-size=56" has_heap_flag "$n" "${c:-none}"
  done
}

# metric <prometheus text> <series, e.g. name{label="v"}>: its value (empty when absent).
metric() { awk -v k="$2" '$1 == k { print $2 }' <<<"$1"; }
at_least() { [[ -n $1 ]] && awk -v v="$1" -v m="$2" 'BEGIN { exit !(v + 0 >= m + 0) }'; }
fetch_text() { printf "fetch('%s').then(r=>r.text()).then(t=>process.stdout.write(t),()=>process.exit(1))" "$1"; }

# After check_send_all: 24 MiB (app.bin) went to each receiver at least.
check_metrics() {
  local sm ra rb min=$((24 * 1024 * 1024))
  sm=$(dk a exec "$(task_container a sender)" node -e "$(fetch_text http://127.0.0.1:7421/metrics)")
  ra=$(on_node a node -e "$(fetch_text "http://${ADDR[a]}:7420/metrics")")
  rb=$(on_node a node -e "$(fetch_text "http://${ADDR[b]}:7420/metrics")")
  check "sender /metrics (--http 127.0.0.1:7421): bytes sent to rlys-a and rlys-b" \
    eval 'at_least "$(metric "$sm" "relay_sender_bytes_sent_total{receiver=\"rlys-a\"}")" $min && at_least "$(metric "$sm" "relay_sender_bytes_sent_total{receiver=\"rlys-b\"}")" $min'
  check "receivers /metrics (port 7420 on each node): bytes received" \
    eval 'at_least "$(metric "$ra" relay_receiver_bytes_received_total)" $min && at_least "$(metric "$rb" relay_receiver_bytes_received_total)" $min'
  check "no token and no file name in any /metrics" \
    eval '! grep -qF -e "$TOKEN" -e app.bin -e index.html <<<"$sm$ra$rb"'
}

# Releases (relay send --release), as examples/www-stack.yml deploys them for a user: that file on top of
# swarm-stack.yml adds an action folder to the receivers and a `web` service on both nodes that mounts the
# release's parent folder (<inbox>/www) and serves its current/. Two releases and a rollback: each node's
# web answers the release just switched to, from the same container (never restarted), and the `--then`
# action ran on both nodes after each switch.
WWW_STACK=$REPO_DIR/examples/www-stack.yml
WEB_PORT=8080
ACTIONS_DIR=/srv/relay-actions                # on every node (its /srv is the node's own)
web_get() {   # web_get <node> [<path>]: the body node $1's web service answers, asked from rlys-a's host
  on_node a node -e "$(fetch_text "http://${ADDR[$1]}:$WEB_PORT/${2:-}")"
}
web_serves() { [[ $(web_get "$1" "${3:-}") == "$2" ]]; }
web_serves_all() { local n; for n in "${NODES[@]}"; do web_serves "$n" "$@" || return 1; done; }
# web_container <node>: the id and start time of node $1's web container (empty when there is none)
web_container() {
  local c
  c=$(task_container "$1" web)
  [[ -n $c ]] && dk "$1" inspect -f '{{.Id}} {{.State.StartedAt}} {{.RestartCount}}' "$c"
}
# The receivers of the redeploy: new containers, healthy, with the action folder.
receiver_has_actions() {
  local c
  c=$(dk "$1" ps -q --filter "label=com.docker.swarm.service.name=${STACK}_receiver" --filter health=healthy | head -1)
  [[ -n $c ]] && dk "$1" inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$c" | grep -qx 'RELAY_ACTION_DIR=/actions'
}
www_ready() {
  local n
  for n in "${NODES[@]}"; do receiver_has_actions "$n" && healthy_task "$n" web || return 1; done
  both_connected
}
# current_is <node> <id>: www/current on node $1 is the symlink with the relative target .releases/<id>.
current_is() { [[ $(readlink "$(inbox "$1")/www/current") == ".releases/$2" ]]; }
# switched_id <json lines>: the release id every target switched to (one id, or nothing).
switched_id() {
  node -e 'const ids=new Set(process.argv[1].split("\n").flatMap(l=>{try{const e=JSON.parse(l);return e.type==="release"&&e.phase==="switched"?[e.id]:[]}catch{return[]}}));
    if(ids.size===1)console.log([...ids][0])' "$1"
}
# The action ran on both nodes after the switch to <id>: its last line in <inbox>/deployed.log.
action_ran() {
  local n
  for n in "${NODES[@]}"; do
    [[ $(tail -1 "$(inbox "$n")/deployed.log" 2>/dev/null) == "$1 $(host_name "$n")" ]] || { log "deployed.log on rlys-$n: $(tail -2 "$(inbox "$n")/deployed.log" 2>&1)"; return 1; }
  done
}

make_site() {   # make_site <dir> <version>: a small site in the job's workspace
  local d
  d="$(host_job_dir)/$1"
  rm -rf "$d"; mkdir -p "$d/css" "$d/img"
  printf 'www release %s\n' "$2" >"$d/index.html"
  printf 'body { color: #%s; }\n' "$2$2$2" >"$d/css/site.css"
  head -c $((512 * 1024)) /dev/urandom >"$d/img/photo.bin"
  chown -R "$RELAY_UID:$RELAY_GID" "$d"
}

# send_release <site dir> <log>: relay send <dir> --to all --release www --then deployed, JSON lines kept.
send_release() {
  local rc=0
  jenkins_relay send "$1" --to all --release www --then deployed --timeout 60s --json >"$2" 2>&1 || rc=$?
  grep -v '"type":"\(start\|progress\|received\)"' "$2" >&2
  return "$rc"
}

check_www_releases() {
  local n web_before=() web_after=() v1 v2 out=$RUN_DIR/www-send.log
  for n in "${NODES[@]}"; do
    # The bind-mount sources of the overlay file: the release's folder (the receiver's user's), the actions.
    on_node "$n" install -d -o "$RELAY_UID" -g "$RELAY_GID" -m 0750 /srv/relay-inbox/www
    on_node "$n" install -d -m 0755 "$ACTIONS_DIR"
    cat >"$(node_dir "$n")$ACTIONS_DIR/deployed" <<'ACTION'
#!/bin/sh
# After a switch: one line per release, in the receiver's folder.
printf '%s %s\n' "$RELAY_RELEASE_ID" "$RELAY_NODE" >>/data/deployed.log
ACTION
    chmod 0755 "$(node_dir "$n")$ACTIONS_DIR/deployed"
  done
  RELAY_SWARM_RECEIVERS=list STACK_EXTRA=$WWW_STACK RELAY_ACTIONS=$ACTIONS_DIR WEB_PORT=$WEB_PORT deploy_stack
  local failed_before=$FAILED
  check "(www) examples/www-stack.yml on top: receivers with --action-dir, web healthy on both nodes, sender connected" \
    wait_until 120 "receivers with actions, web on both nodes" www_ready
  ((FAILED == failed_before)) || { dk a service ps --no-trunc "${STACK}_web" "${STACK}_receiver" >&2; return 0; }

  make_site www-v1 1
  make_site www-v2 2
  check "(www) relay send www-v1 --to all --release www --then deployed exits 0" send_release www-v1 "$out"
  v1=$(switched_id "$(cat "$out")")
  log "(www) v1 is release ${v1:-none}"
  check "(www) www/current on both nodes -> .releases/$v1 (relative), byte-identical to www-v1" \
    eval 'current_is a "$v1" && current_is b "$v1" && same_tree_on_all "$(host_job_dir)/www-v1" www/current'
  check "(www) web on both nodes serves v1 (GET / and /css/site.css)" \
    eval 'web_serves_all "www release 1" && web_serves_all "body { color: #111; }" css/site.css'
  check "(www) the deployed action ran on both nodes after the switch to v1" action_ran "$v1"
  for n in "${NODES[@]}"; do web_before+=("$(web_container "$n")"); done
  # What examples/www-stack.yml avoids: a container that bind-mounts current itself. Docker resolves the
  # symlink when the container starts (moby#13382, #17837), so it keeps seeing v1 after the switch to v2.
  dk a run -d --name rlys-web-pinned --network none --no-healthcheck --user "$RELAY_UID:$RELAY_GID" --entrypoint sleep \
    -v /srv/relay-inbox/www/current:/srv/www/current:ro "$IMAGE" infinity >/dev/null

  check "(www) relay send www-v2 --to all --release www --then deployed exits 0" send_release www-v2 "$out"
  v2=$(switched_id "$(cat "$out")")
  log "(www) v2 is release ${v2:-none}"
  check "(www) www/current on both nodes -> .releases/$v2, byte-identical to www-v2" \
    eval '[[ -n $v2 && $v2 != "$v1" ]] && current_is a "$v2" && current_is b "$v2" && same_tree_on_all "$(host_job_dir)/www-v2" www/current'
  check "(www) web on both nodes serves v2 at once" \
    eval 'web_serves_all "www release 2" && web_serves_all "body { color: #222; }" css/site.css'
  for n in "${NODES[@]}"; do web_after+=("$(web_container "$n")"); done
  log "(www) web containers before: ${web_before[*]}; after: ${web_after[*]}"
  check "(www) ...by the same web containers, not restarted (same id, start time, restart count)" \
    eval '[[ -n ${web_before[0]} && -n ${web_before[1]} && ${web_before[*]} == "${web_after[*]}" ]]'
  check "(www) the deployed action ran on both nodes after the switch to v2" action_ran "$v2"
  local pinned
  pinned=$(dkt 20 a exec rlys-web-pinned cat /srv/www/current/index.html 2>&1) || true
  check "(www) why web mounts the parent: a container that mounted www/current itself still sees v1 ($pinned)" \
    test "$pinned" == "www release 1"
  dk a rm -f rlys-web-pinned >/dev/null
  local listed
  listed=$(jenkins_relay releases www --to all --json 2>&1) || true
  printf '%s\n' "$listed" >&2
  check "(www) relay releases www --to all: both nodes hold v1 and v2, v2 current" \
    node -e 'const j=JSON.parse(process.argv[1]); process.exit(j.nodes.length===2 && j.nodes.every(n=>n.ok && n.current===process.argv[3]
      && n.releases.map(r=>r.id).join()===[process.argv[2],process.argv[3]].join())?0:1)' "$listed" "$v1" "$v2"
  check "(www) relay rollback www --to all exits 0" eval 'jenkins_relay rollback www --to all >&2'
  check "(www) after the rollback: current -> v1 on both nodes, web serves v1 from the same containers" \
    eval 'current_is a "$v1" && current_is b "$v1" && web_serves_all "www release 1" \
          && [[ "$(web_container a) $(web_container b)" == "${web_before[*]}" ]]'
}
