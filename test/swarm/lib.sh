# Shared names, paths and helpers of the Swarm test. Sourced by the other scripts, never run.
# Everything the test creates is named rlys* (namespaces, interfaces, cgroups) or lives under $RUN_DIR,
# so teardown can find it all, and nothing here collides with another test's rlyf* namespaces.

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE_DIR=${RELAY_SWARM_CACHE:-/var/cache/relayer-swarm}   # debootstrap cache: survives runs
RUN_DIR=${RELAY_SWARM_RUN:-/var/tmp/rlys-swarm}             # everything of one run: removed at teardown
NODES=(a b)
declare -A ADDR=([a]=10.231.0.1 [b]=10.231.0.2)              # only inside the namespaces we create
PREFIX_LEN=24
STACK=relayer
IMAGE=relayer:latest
RELAY_UID=1000                                               # the receiver's and the sender's user (Jenkins')
RELAY_GID=1000
WORKSPACE=/srv/jenkins/workspace                             # the Jenkins workspace path, as seen on node a
# The tools the test runs, each found the way the system finds it (resolve_tools in install.sh, after the
# packages are in): DOCKERD, DOCKER_BIN, DEBOOTSTRAP, NSENTER, IPTABLES_SAVE. Never fixed paths: Debian puts
# dockerd in /usr/sbin, another distribution elsewhere, and a PATH may hold a different docker first.
DOCKERD= DOCKER_BIN= DEBOOTSTRAP= NSENTER= IPTABLES_SAVE=

T0=${T0:-$(date +%s)}
log() { printf '[swarm %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

node_dir() { echo "$RUN_DIR/$1"; }
netns() { echo "rlys$1"; }                     # network namespace of node $1
host_name() { echo "rlys-$1"; }                # its UTS host name = its Swarm node name
engine_pid() { cat "$(node_dir "$1")/dockerd.pid" 2>/dev/null; }

# The docker client of node $1's engine: `dkt <seconds> <node> args...`, or `dk <node> args...` (300 s,
# enough for a build). A hung engine ends a step, never the test's bound.
dkt() {
  local t=$1 n=$2; shift 2
  DOCKER_BUILDKIT=1 timeout "$t" "$DOCKER_BIN" -H "unix://$(node_dir "$n")/docker.sock" "$@"
}
dk() { dkt 300 "$@"; }

# Run a command in node $1's namespaces (network, mount, UTS), i.e. "on that node's host".
on_node() {
  local n=$1; shift
  timeout 60 "$NSENTER" --target "$(engine_pid "$n")" --net --mount --uts -- "$@"
}

# wait_until <seconds> <what> <command...>: poll every 0.5 s until the command succeeds or the deadline
# passes (then return 1). Every wait in this test goes through here, so the test is bounded in time.
wait_until() {
  local limit=$1 what=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  while (( $(date +%s) < end )); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "timed out after ${limit}s waiting for: $what"
  return 1
}

# check <name> <command...>: one named check of the closing tally.
PASSED=0
FAILED=0
FAILED_NAMES=()
check() {
  local name=$1; shift
  if "$@"; then
    PASSED=$((PASSED + 1)); log "PASS $name"
  else
    FAILED=$((FAILED + 1)); FAILED_NAMES+=("$name"); log "FAIL $name"
  fi
}
