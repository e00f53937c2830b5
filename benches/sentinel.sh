#!/usr/bin/env bash
# Import through Sentinel vs a direct import into the same primary (its replica attached).
#
# Usage: benches/sentinel.sh [--scale F] [--runs N]      (default: scale 1 = D1, 2M keys; 3 runs)
#        SENTINEL_ARGS="--rewrite-batches 0" benches/sentinel.sh …   (extra options of the Sentinel
#        import; this one turns off the kept batches and their WAITs)
#
# Starts, from .servers/redis-8.2 on free loopback ports in a scratch directory: a primary, one
# replica, three sentinels (down-after-milliseconds 2000, failover-timeout 10000). Then, N times
# each, alternating: FLUSHALL (and wait for the replica to be empty too), then
#   rdbkit import D1 --target redis://primary                       (direct)
#   rdbkit import D1 --sentinel s1,s2,s3 --master-name mymaster     (through Sentinel)
# and prints the wall times, their medians and the ratio direct / sentinel (>= 0.95 is the goal:
# the Sentinel import keeps acknowledged batches until a WAIT confirms them on the replica).
# The dataset is benches/gen_dataset.py's d1 at the given scale (target/bench-data/d1-sSCALE.rdb,
# made once). rdbkit: target/release/rdbkit (cargo build --release first).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scale=1 runs=3
while [[ $# -gt 0 ]]; do
    case $1 in
        --scale) scale=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        *) echo "sentinel.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
bin=${RDBKIT_BIN:-target/release/rdbkit}
servers=${RDBKIT_SERVERS:-.servers}
server=$servers/redis-8.2/redis-server
cli=$servers/bin/redis-cli
[[ -x $bin && -x $server && -x $cli ]] || { echo "sentinel.sh: need $bin, $server, $cli" >&2; exit 2; }
mkdir -p target/bench-data
d1=target/bench-data/d1-s$scale.rdb
[[ -f $d1 ]] || python3 benches/gen_dataset.py d1 "$d1" --scale "$scale"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # name port args...
    local name=$1 port=$2; shift 2
    mkdir -p "$work/$name"
    "$server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/$name" "$@" \
        >"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do "$cli" -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
    echo "sentinel.sh: $name did not start" >&2; exit 1
}
pp=$(free_port); rp=$(free_port)
start primary "$pp"
start replica "$rp" --replicaof 127.0.0.1 "$pp"
sentinels=()
for i in 1 2 3; do
    sp=$(free_port)
    printf 'port %s\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 %s 2\nsentinel down-after-milliseconds mymaster 2000\nsentinel failover-timeout mymaster 10000\n' \
        "$sp" "$pp" >"$work/s$i.conf"
    mkdir -p "$work/s$i"
    "$server" "$work/s$i.conf" --sentinel --dir "$work/s$i" >"$work/s$i.log" 2>&1 &
    pids+=($!)
    sentinels+=("127.0.0.1:$sp")
done
sleep 3
csv=$(IFS=,; echo "${sentinels[*]}")

flush() {
    "$cli" -p "$pp" flushall >/dev/null
    for _ in $(seq 100); do
        [[ $("$cli" -p "$rp" dbsize) == 0 ]] && return
        sleep 0.1
    done
}
timed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
# the replica has applied everything the primary had written when the import ended: the
# replica's own processed offset (`slave_repl_offset`, read from the replica) reaches the
# primary's `master_repl_offset` read at that moment. (The primary's view of its replica, the
# offset in `slave0:`, comes from the replica's REPLCONF ACK, sent once a second: it can be a
# second late, and the sentinels' hello messages keep moving the primary's offset.)
caught_up() {
    local m s
    m=$("$cli" -p "$pp" info replication | tr -d '\r' | sed -n 's/^master_repl_offset://p')
    for _ in $(seq 20000); do
        s=$("$cli" -p "$rp" info replication | tr -d '\r' | sed -n 's/^slave_repl_offset://p')
        [[ -n $s && $s -ge $m ]] && return
        sleep 0.002
    done
}
direct=() through=() replicated=()
run_direct() {
    flush
    local t0 t1 t2
    t0=$(date +%s.%N)
    "$bin" import "$d1" --target "redis://127.0.0.1:$pp" --quiet >/dev/null
    t1=$(date +%s.%N)
    caught_up
    t2=$(date +%s.%N)
    direct+=("$(echo "$t1 - $t0" | bc)")
    replicated+=("$(echo "$t2 - $t0" | bc)")
}
run_sentinel() {
    flush
    through+=("$(timed "$bin" import "$d1" --sentinel "$csv" --master-name mymaster --quiet ${SENTINEL_ARGS:-})")
}
for r in $(seq "$runs"); do
    # alternate which goes first, so that a trend in the machine's load hits both alike
    if ((r % 2)); then run_direct; run_sentinel; else run_sentinel; run_direct; fi
    echo "run $r: direct ${direct[-1]} s (the replica has applied it all: ${replicated[-1]} s), through Sentinel ${through[-1]} s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
md=$(median "${direct[@]}"); mt=$(median "${through[@]}")
mr=$(median "${replicated[@]}")
echo "median: direct $md s, through Sentinel $mt s, ratio direct/sentinel $(echo "scale=3; $md / $mt" | bc)"
# the Sentinel import ends when a WAIT confirms the last batch on the replica; a direct import
# ends at the primary's last acknowledgement, its replica still catching up
echo "median: direct until the replica has it $mr s, ratio $(echo "scale=3; $mr / $mt" | bc)"
echo "keys: $("$cli" -p "$pp" dbsize) on the primary, $("$cli" -p "$rp" dbsize) on the replica"
