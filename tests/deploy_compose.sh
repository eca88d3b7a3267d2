#!/usr/bin/env bash
# End-to-end check of deploy/: builds the FROM-scratch image from the static binary, starts
# the 3-node cluster of deploy/compose.yaml, checks it, does a rolling restart of the Raft
# leader's container, and tears everything down (always).
#
#   tests/deploy_compose.sh
#
# Skips (exit 0) when Docker or Compose is not available. Exit 1 on any failure.
# Environment (see deploy/build-image.sh): SKIP_CARGO=1 reuses the static binary already
# built, COLONY_BIN=PATH uses that binary, CARGO_TARGET_DIR as there; COLONY_TEST_KEEP=1
# keeps the cluster and image after the run (for debugging).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
started=$(date +%s)
log() { printf '[deploy_compose %3ss] %s\n' "$(( $(date +%s) - started ))" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

if ! docker info >/dev/null 2>&1; then
  echo "deploy_compose: SKIP: docker info failed (no Docker daemon reachable)"
  exit 0
fi
if docker compose version >/dev/null 2>&1; then
  compose_bin=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose_bin=(docker-compose)
else
  echo "deploy_compose: SKIP: neither 'docker compose' nor 'docker-compose' is installed"
  exit 0
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || fail "$tool is required"
done

suffix="$$$RANDOM"
project="colonytest${suffix}"
image="colony:deploytest-${suffix}"

# A /24 that no docker network and no host route uses.
pick_prefix() {
  local used
  used=$( { docker network inspect $(docker network ls -q) \
              -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null || true; \
            ip -4 route 2>/dev/null | awk '{print $1}' || true; } | tr ' ' '\n')
  for _ in $(seq 1 50); do
    local p="10.$(( 200 + RANDOM % 50 )).$(( RANDOM % 250 ))"
    if ! grep -q "^${p}\." <<<"$used"; then echo "$p"; return; fi
  done
  fail "no free /24 found for the compose network"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export COLONY_IMAGE="$image"
export COLONY_NET_PREFIX=$(pick_prefix)
export COLONY_HTTP_BIND=127.0.0.1
export COLONY_HTTP_PORT_1=$(free_port) COLONY_HTTP_PORT_2=$(free_port) COLONY_HTTP_PORT_3=$(free_port)
export COLONY_CLUSTER_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
export COLONY_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
AUTH="Authorization: Bearer $COLONY_ADMIN_TOKEN"
# TLS on every listener: a CA and one certificate per node (deploy/compose-certs.sh).
certs=$(mktemp -d /tmp/colony-compose-certs.XXXXXX)
export COLONY_CERTS="$certs"
CACERT="$certs/ca.crt"
declare -A PORT=([n1]=$COLONY_HTTP_PORT_1 [n2]=$COLONY_HTTP_PORT_2 [n3]=$COLONY_HTTP_PORT_3)

compose() { "${compose_bin[@]}" -p "$project" -f "$repo/deploy/compose.yaml" "$@"; }

ok=0
cleanup() {
  local rc=$?
  if [[ $ok != 1 ]]; then
    log "logs of the failed run (last 40 lines per node):"
    compose logs --no-color --tail=40 >&2 2>&1 || true
  fi
  if [[ "${COLONY_TEST_KEEP:-0}" == 1 ]]; then
    log "COLONY_TEST_KEEP=1: leaving project $project and image $image"
  else
    compose down -v --remove-orphans -t 60 >/dev/null 2>&1 || true
    docker image rm -f "$image" >/dev/null 2>&1 || true
    rm -rf "$certs"
  fi
  log "done (exit $rc)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers
url() { echo "https://127.0.0.1:${PORT[$1]}$2"; }
# status NODE PATH -> HTTP status code (000 when unreachable)
status() { curl -s --cacert "$CACERT" -o /dev/null -w '%{http_code}' --max-time 3 "$(url "$1" "$2")" || true; }
cluster_json() { curl -sf --cacert "$CACERT" --max-time 3 -H "$AUTH" "$(url "$1" /v1/cluster)"; }
# cluster_check NODE: "ok <node_id> <leader>" when NODE sees 3 active members and a leader
cluster_check() {
  cluster_json "$1" 2>/dev/null | python3 -c '
import json, sys
try:
    c = json.load(sys.stdin)
except Exception:
    print("bad-json"); sys.exit()
members = c.get("members", [])
active = [m for m in members if m.get("state") == "active"]
leader = (c.get("raft") or {}).get("leader")
me = str(c.get("node_id"))
mine = [m for m in members if str(m.get("id")) == me]
if len(active) == 3 and leader is not None and mine and mine[0].get("state") == "active":
    print("ok", me, leader)
else:
    print("not-yet", me, leader, [(m.get("id"), m.get("state")) for m in members])
' || echo "unreachable"
}
wait_until() { # wait_until SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@"; do
    (( $(date +%s) < deadline )) || fail "timed out after ${limit}s waiting for: $what"
    sleep 1
  done
}
all_ready() { for n in n1 n2 n3; do [[ $(status "$n" /readyz) == 200 ]] || return 1; done; }
all_see_cluster() { for n in n1 n2 n3; do [[ $(cluster_check "$n") == ok* ]] || return 1; done; }
node_ready_and_active() { [[ $(status "$1" /readyz) == 200 && $(cluster_check "$1") == ok* ]]; }
health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$(compose ps -q "$1")"; }
all_healthy() { for n in n1 n2 n3; do [[ $(health_of "$n") == healthy ]] || return 1; done; }
# read_tier NODE NAME -> succeeds when NODE knows tier NAME (linearizable read)
read_tier() { curl -sf --cacert "$CACERT" --max-time 5 -H "$AUTH" "$(url "$1" "/v1/tiers/$2?consistent=true")" >/dev/null; }
write_tier() { # write_tier NODE NAME
  local code
  code=$(curl -s --cacert "$CACERT" -o /tmp/deploy_compose_write.$$ -w '%{http_code}' --max-time 10 -H "$AUTH" \
    -H 'content-type: application/json' "$(url "$1" /v1/tiers)" \
    -d "{\"name\":\"$2\",\"limits\":[{\"limit\":7,\"window_secs\":60}],\"concurrency\":2}")
  local body; body=$(cat /tmp/deploy_compose_write.$$ 2>/dev/null); rm -f /tmp/deploy_compose_write.$$
  [[ $code == 200 || $code == 201 ]] || fail "write of tier $2 through $1 answered $code: $body"
}

# ---------------------------------------------------------------- build
log "building image $image (static binary, FROM scratch)"
"$repo/deploy/build-image.sh" "$image" >&2
bin_in_image=$(docker image inspect -f '{{.Config.Entrypoint}} {{.Config.User}}' "$image")
log "image: entrypoint/user $bin_in_image, network prefix $COLONY_NET_PREFIX.0/24, ports ${PORT[n1]} ${PORT[n2]} ${PORT[n3]}"
docker run --rm --entrypoint /colony "$image" --version >&2 || fail "the image's colony does not run"
# The image's own binary makes them when COLONY_BIN is not given (it is static).
image_bin() { local c; c=$(docker create "$image"); docker cp "$c:/colony" "$certs/colony" >/dev/null; docker rm "$c" >/dev/null; echo "$certs/colony"; }
COLONY_BIN="${COLONY_BIN:-$(image_bin)}" "$repo/deploy/compose-certs.sh" "$certs" >&2 \
  || fail "creating the nodes' certificates"

# ---------------------------------------------------------------- start
log "compose up (project $project)"
compose up -d >&2 || fail "compose up failed"
wait_until 120 "all three nodes /readyz 200" all_ready
log "all three nodes ready"
wait_until 30 "every node sees 3 active members and a leader" all_see_cluster
tls_state=$(cluster_json n1 | python3 -c 'import json,sys; l=json.load(sys.stdin)["listeners"]; print(l["http"], "/", l["raft"], "/", l["cluster"])')
[[ $tls_state == "tls / mutual tls / mutual tls" ]] || fail "listeners are not all TLS: $tls_state"
log "listeners: $tls_state"
plain=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:${PORT[n1]}/readyz" || true)
[[ $plain != 200 ]] || fail "plain HTTP was answered on the HTTPS port"
for n in n1 n2 n3; do log "$n: $(cluster_check "$n")"; done
wait_until 30 "docker reports all three containers healthy (colony-probe)" all_healthy
log "docker health: all healthy"

# ---------------------------------------------------------------- replicated write
write_tier n2 deploytest-a
wait_until 10 "tier written through n2 readable through n3" read_tier n3 deploytest-a
log "write through n2 read through n3: ok"

# ---------------------------------------------------------------- rolling restart
leader=$(cluster_check n1 | awk '{print $3}')
victim=""
for n in n1 n2 n3; do
  [[ $(cluster_check "$n" | awk '{print $2}') == "$leader" ]] && victim=$n
done
[[ -n $victim ]] || fail "could not map the leader $leader to a service"
others=(); for n in n1 n2 n3; do [[ $n != "$victim" ]] && others+=("$n"); done
victim_id=$leader
log "rolling restart of $victim (node $victim_id, the Raft leader): stop (SIGTERM drain)"
t0=$(date +%s)
compose stop -t 60 "$victim" >&2
t1=$(date +%s)
cid=$(compose ps -q "$victim")
code=$(docker inspect -f '{{.State.ExitCode}}' "$cid")
[[ $code == 0 ]] || fail "$victim exited $code after SIGTERM (expected 0 after the drain)"
log "$victim drained and exited 0 in $(( t1 - t0 ))s"
# The other two keep serving: a new leader, writes succeed.
wait_until 15 "${others[0]} ready while $victim is down" bash -c "[[ \$(curl -s --cacert $CACERT -o /dev/null -w '%{http_code}' --max-time 3 $(url "${others[0]}" /readyz)) == 200 ]]"
write_tier "${others[0]}" deploytest-b
wait_until 10 "tier written while $victim is down readable through ${others[1]}" read_tier "${others[1]}" deploytest-b
log "cluster of two kept accepting writes"
compose start "$victim" >&2
wait_until 90 "$victim ready and active again" node_ready_and_active "$victim"
wait_until 30 "every node sees 3 active members and a leader after the restart" all_see_cluster
again=$(cluster_check "$victim" | awk '{print $2}')
[[ $again == "$victim_id" ]] || fail "$victim came back as node $again, expected $victim_id (same data dir)"
wait_until 10 "$victim has the write made while it was down" read_tier "$victim" deploytest-b
read_tier "$victim" deploytest-a || fail "$victim lost tier deploytest-a"
wait_until 30 "$victim healthy again in docker" bash -c "[[ \$(docker inspect -f '{{.State.Health.Status}}' $cid) == healthy ]]"
log "$victim is back (node $again), ready, active, healthy and up to date"
for n in n1 n2 n3; do log "$n: $(cluster_check "$n")"; done

ok=1
log "PASS"
