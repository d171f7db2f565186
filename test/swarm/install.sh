# Debian packages the Swarm test needs, installed only when missing (so a re-run touches nothing), and the
# tools it runs, found after that on every run (a machine that already had the packages is checked the same
# way as a new one). Sourced by run.sh.

SWARM_PACKAGES=(docker.io debootstrap iptables iproute2 util-linux)   # docker.io brings containerd, runc, tini

# Where root's tools live on Debian, whatever PATH this shell was given (a non-login or sudo PATH may lack
# the sbin folders, where Debian puts dockerd, iptables-save and ip).
SBIN_PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

install_packages() {
  local missing=() p
  for p in "${SWARM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "packages: all present"
  else
    command -v apt-get >/dev/null || die "packages missing (${missing[*]}) and no apt-get here: install them by hand, or run on Debian/Ubuntu"
    log "packages: installing ${missing[*]}"
    timeout 300 apt-get update -qq || die "apt-get update failed (no route to the Debian mirror?)"
    # policy-rc.d 101: the package must not start a host-wide dockerd; the test runs its own engines.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1; fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    ((created_policy)) && rm -f "$policy"
    ((rc == 0)) || die "apt-get install ${missing[*]} failed (exit $rc)"
  fi
  resolve_tools
}

# package_binary <package> <name>: the executable <name> that <package> installed in a bin or sbin folder,
# from its file list (docker.io also installs /etc/init.d/docker, which is not the client).
package_binary() {
  local f
  while IFS= read -r f; do
    [[ ${f##*/} == "$2" && ${f%/*} == */@(bin|sbin) && -f $f && -x $f ]] && { echo "$f"; return 0; }
  done < <(dpkg-query -L "$1" 2>/dev/null)
  return 1
}

# system_binary <name>: <name> as the system finds it (PATH, plus the sbin folders).
system_binary() { PATH=$SBIN_PATH command -v "$1"; }

resolve_tools() {
  # The engine and the client from one package: Debian's client matches Debian's engine and builds with
  # BuildKit without a buildx plugin, while a docker found first on PATH (/usr/local/bin/docker on some
  # images) may be a newer client-only binary that does neither.
  DOCKERD=$(package_binary docker.io dockerd) || die "docker.io is installed but its file list has no dockerd"
  DOCKER_BIN=$(package_binary docker.io docker) || die "docker.io is installed but its file list has no docker client"
  DEBOOTSTRAP=$(system_binary debootstrap) || die "debootstrap not found (package debootstrap)"
  NSENTER=$(system_binary nsenter) || die "nsenter not found (package util-linux)"
  IPTABLES_SAVE=$(system_binary iptables-save) || die "iptables-save not found (package iptables): the check that no engine touched the host's firewall could not run"
  "$IPTABLES_SAVE" >/dev/null 2>&1 || die "$IPTABLES_SAVE does not run here: the check that no engine touched the host's firewall could not run"
  local t
  for t in ip unshare containerd runc; do system_binary "$t" >/dev/null || die "$t not found on PATH or in the sbin folders"; done
  # dockerd finds containerd, runc and docker-init by PATH: give it the sbin folders too.
  export PATH=$SBIN_PATH
  log "tools: dockerd=$DOCKERD docker=$DOCKER_BIN ($("$DOCKER_BIN" --version 2>&1 || true)) debootstrap=$DEBOOTSTRAP"
}
