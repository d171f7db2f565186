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
