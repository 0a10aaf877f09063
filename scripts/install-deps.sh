#!/usr/bin/env bash
# Installs what seedwire's build, demo and tests need, and nothing that is already there.
# Debian packages need root; as another user the missing ones are listed and the system tests
# that need them are skipped (or fail, when CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(mariadb-server mariadb-client mariadb-backup btrfs-progs chromium netcat-openbsd zstd iproute2 lvm2 procps psmisc util-linux e2fsprogs openssl systemd bsdutils coreutils prometheus nftables tinyproxy conntrack socat postgresql nats-server)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Never let a package start its own service (the tests run their own MariaDB instances).
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  else
    echo "install-deps: not root; missing Debian packages: ${missing[*]} (system tests needing them will skip)" >&2
  fi
fi

# npm ci only when the lockfile changed since the last install.
stamp=node_modules/.seedwire-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
fi
