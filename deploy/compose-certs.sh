#!/usr/bin/env bash
# Creates the certificates of deploy/compose.yaml's three nodes with `colony certs`:
#
#   deploy/compose-certs.sh DIR      # DIR/ca.crt, DIR/ca.key, DIR/n1..n3/{ca.crt,node.crt,node.key}
#
# Each node's certificate names its fixed IP (COLONY_NET_PREFIX.11..13), its host name
# (n1..n3), and 127.0.0.1/localhost (the published port and the health probe). The CA key
# stays in DIR/ca.key: keep it somewhere safe, not on the nodes. Files the nodes read are
# made readable by the image's user (uid 10001): chown when run as root, else the keys are
# made group-readable for gid 10001 (run with sudo for that).
#
# Environment: COLONY_BIN (colony on PATH, else target/release/colony), COLONY_NET_PREFIX
# (172.29.53), LIFETIME_DAYS (1830). Existing files are kept: remove DIR to start over.
set -euo pipefail
dir=${1:?usage: compose-certs.sh DIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${COLONY_BIN:-$(command -v colony || echo "$repo/target/release/colony")}
prefix=${COLONY_NET_PREFIX:-172.29.53}
days=${LIFETIME_DAYS:-1830}
[[ -x $bin ]] || { echo "compose-certs: $bin is not executable (set COLONY_BIN)" >&2; exit 1; }
mkdir -p "$dir"
if [[ ! -e $dir/ca.crt ]]; then
  "$bin" certs create-ca --certs-dir "$dir" --ca-key "$dir/ca.key" --lifetime-days 3650
fi
for i in 1 2 3; do
  node="$dir/n$i"
  mkdir -p "$node"
  cp "$dir/ca.crt" "$node/ca.crt"
  if [[ ! -e $node/node.crt ]]; then
    "$bin" certs create-node "$prefix.1$i" "n$i" 127.0.0.1 localhost \
      --certs-dir "$node" --ca-key "$dir/ca.key" --lifetime-days "$days"
  fi
  if [[ $(id -u) == 0 ]]; then
    chown -R 10001:10001 "$node"
  else
    chmod 0640 "$node/node.key"
    echo "compose-certs: $node/node.key is yours, mode 0640: the nodes (uid 10001) read it only if its group is 10001 (sudo chgrp -R 10001 $node)" >&2
  fi
done
echo "compose-certs: certificates in $dir (CA key: $dir/ca.key)"
