#!/usr/bin/env bash
# Run by `npm run bench` before the bench: the scp and rsync rows need sshd, ssh, scp and rsync on this
# host (the bench starts a throwaway sshd on 127.0.0.1). When any is missing and this is root with apt-get,
# installs openssh-server, openssh-client and rsync; otherwise says which rows will be missing. Never fails:
# the bench runs without those rows (it prints "not installed" and the JSON has null for them).
set -uo pipefail
say() { printf 'bench prepare: %s\n' "$*"; }
# sshd is in /usr/sbin, which a non-root PATH may leave out (the bench looks there too).
have() { PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin command -v "$1" >/dev/null 2>&1; }
missing() { local t out=(); for t in sshd ssh scp rsync; do have "$t" || out+=("$t"); done; echo "${out[*]}"; }

need=$(missing)
[[ -z $need ]] && exit 0
if [[ $EUID != 0 ]]; then
  say "missing: ${need} (not root, so not installing openssh-server openssh-client rsync): the scp/rsync rows will be left out"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "missing: ${need} (no apt-get here to install them): the scp/rsync rows will be left out"
  exit 0
fi
say "missing: ${need}; installing openssh-server openssh-client rsync"
log=$(mktemp /tmp/relay-bench-apt.XXXXXX)
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssh-server openssh-client rsync >>"$log" 2>&1; }
# A fresh machine may have no package lists yet: update once, then try again.
if install || { apt-get update -q >>"$log" 2>&1 && install; }; then
  rm -f "$log"
else
  say "apt-get failed (see $log)"
fi
need=$(missing)
if [[ -n $need ]]; then say "still missing: ${need}; the scp/rsync rows will be left out"; else say "installed"; fi
exit 0
