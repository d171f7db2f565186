#!/usr/bin/env bash
# npm run test:swarm: the real deployment, as its users do it, on a real two-node Docker Swarm made of two
# network namespaces on this machine (Debian bookworm, root; apt and npm reachable, no container registry).
#   1. Debian packages (docker.io, debootstrap, iptables, ...), only those missing     install.sh
#   2. a base image without a registry: debootstrap + docker import + the host's node  base-image.sh
#   3. the app installed and compiled on the host, then the project's Dockerfile      stage-app.sh
#      (RELAY_SWARM_FROM_SOURCE=1: also the Dockerfile's npm-ci-inside path, compared) build-from-source.sh
#   4. two nodes: namespaces, veth pair, a dockerd in each                            engines.sh, node-init.sh
#   5. swarm, image on both nodes, secret, label, host folders, stack deploy, health   deploy.sh
#   6. relay send --to all as a Jenkins-like user; kill a receiver, send meanwhile     checks.sh
#      releases: examples/www-stack.yml on top, a web service on both nodes follows     checks.sh
#      www/current through two releases and a rollback, without restarting
#   7. teardown of all of it, even on failure (EXIT trap), every wait bounded          teardown.sh
# Prints one PASS/FAIL line per check, the time taken, and "swarm: N passed, M failed".
set -Eeuo pipefail
T0=$(date +%s)
here=$(cd "$(dirname "$0")" && pwd)
for part in lib install base-image stage-app build-from-source engines deploy checks teardown; do
  # shellcheck source=/dev/null
  source "$here/$part.sh"
done

report() {
  local rc=$1
  ((rc != 0 && FAILED == 0)) && { FAILED=1; FAILED_NAMES+=("aborted (exit $rc): see the log above"); }
  local name
  for name in "${FAILED_NAMES[@]}"; do log "failed: $name"; done
  log "took $(( $(date +%s) - T0 ))s"
  echo "swarm: $PASSED passed, $FAILED failed"
  ((FAILED == 0)) || exit 1
  exit 0
}

[[ $EUID -eq 0 ]] || die "must run as root (namespaces, dockerd, apt)"
for n in "${NODES[@]}"; do
  ip netns list | grep -qw "$(netns "$n")" && die "namespace $(netns "$n") exists: another run is going on, or remove it (ip netns del)"
done
[[ ! -e $RUN_DIR ]] || die "$RUN_DIR exists: another run is going on, or remove it"
trap teardown EXIT
trap 'log "command failed (line $LINENO): $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

install_packages
cache_rootfs
stage_app
iptables_before=$(docker_iptables)
start_engines
swarm_up
images_up
check_image_defaults
if [[ ${RELAY_SWARM_FROM_SOURCE:-0} == 1 ]]; then check_build_from_source; fi
prepare_nodes
deploy_stack
check "both receivers and the sender healthy" wait_healthy
((FAILED == 0)) || exit 1   # nothing below can pass without a healthy stack
start_jenkins
check_send_all
check_socket_access
check_metrics
check_stack_receiver_flags
check_receiver_restart "${RELAY_SWARM_RECEIVERS:-discover}" late
if [[ ${RELAY_SWARM_RECEIVERS:-discover} == discover ]]; then check_explicit_list; fi
check_www_releases
