# Debian packages the Swarm test needs, installed only when missing (so a re-run touches nothing).
# Sourced by run.sh.

SWARM_PACKAGES=(docker.io debootstrap iptables iproute2 util-linux)   # docker.io brings containerd, runc, tini

install_packages() {
  local missing=() p
  for p in "${SWARM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "packages: all present"
    return 0
  fi
  log "packages: installing ${missing[*]}"
  timeout 300 apt-get update -qq
  # policy-rc.d 101: the package must not start a host-wide dockerd; the test runs its own engines.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1; fi
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ((created_policy)) && rm -f "$policy"
  [[ -x /usr/bin/dockerd && -x $DOCKER_BIN ]] || die "docker.io did not install /usr/bin/dockerd and $DOCKER_BIN"
}
