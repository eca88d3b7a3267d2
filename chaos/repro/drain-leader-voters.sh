#!/usr/bin/env bash
# Reproduces finding 1 of chaos/README.md by hand: after a graceful restart (SIGTERM) of
# the Raft leader of a 3-node cluster, the cluster keeps 2 voters (the restarted node stays
# a learner) and, when the restart is quick, every node reports the learner as leader.
# Usage: chaos/repro/drain-leader-voters.sh [path/to/colony]   (ports 23101-23403)
set -u
B=${1:-target/release/colony}
B=$(realpath "$B")
DIR=$(mktemp -d)
cd "$DIR"
export COLONY_ADMIN_TOKEN=$(openssl rand -hex 32) COLONY_CLUSTER_SECRET=$(openssl rand -hex 32)
start() {
    i=$1
    shift
    "$B" node --data-dir d"$i" --http 127.0.0.1:2310"$i" --gossip 127.0.0.1:2320"$i" \
        --raft 127.0.0.1:2330"$i" --cluster 127.0.0.1:2340"$i" --log-format json "$@" 2>>n"$i".log &
    echo $! >pid"$i"
}
cleanup() {
    for i in 1 2 3; do kill -9 "$(cat pid$i)" 2>/dev/null; done
    rm -rf "$DIR"
}
trap cleanup EXIT
view() {
    for i in 1 2 3; do
        curl -s -H "Authorization: Bearer $COLONY_ADMIN_TOKEN" 127.0.0.1:2310$i/v1/cluster |
            python3 -c "import sys,json; v=json.load(sys.stdin); r=v['raft']; print('node',v['node_id'],'leader',r['leader'],'voters',r['voters'],'learners',r['learners'])"
    done
}
start 1
sleep 1.5
start 2 --seed 127.0.0.1:23201
start 3 --seed 127.0.0.1:23201
sleep 5
view
L=$(curl -s -H "Authorization: Bearer $COLONY_ADMIN_TOKEN" 127.0.0.1:23101/v1/cluster |
    python3 -c "import sys,json; v=json.load(sys.stdin); l=v['raft']['leader']; print([m['http_addr'] for m in v['members'] if str(m['id'])==str(l)][0][-1])")
echo "leader is node $L: SIGTERM, then start it again in place"
kill -TERM "$(cat pid$L)"
while kill -0 "$(cat pid$L)" 2>/dev/null; do sleep 0.1; done
start "$L" --seed 127.0.0.1:2320$((L % 3 + 1))
sleep 3
view
echo "30 s later:"
sleep 30
view
