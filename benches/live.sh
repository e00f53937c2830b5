#!/usr/bin/env bash
# Live source (issue 14): snapshot streamed into the target vs `redis-cli --rdb` then an import of
# the file; `--follow` under redis-benchmark; the cutover window.
#
# Usage: benches/live.sh [--scale F] [--runs N] [--follow-seconds S]
#                        (default: scale 1 = D1, 2M keys; 3 runs; 60 s of follow)
#
# Starts two Redis 8.2 servers (.servers/redis-8.2) on free loopback ports: the source, loaded with
# benches/gen_dataset.py's d1 at the given scale, with repl-diskless-sync-delay 0 (the default
# 5 s wait for more replicas delays redis-cli --rdb and rdbkit alike), and the target.
# 1. N times each, alternating, the target flushed before each:
#      two steps: redis-cli -p SRC --rdb FILE, then rdbkit import FILE --target TGT
#      streamed:  rdbkit import redis://SRC --target TGT
#    prints the wall times, medians and streamed / two-step (goal: <= 0.7).
# 2. rdbkit import redis://SRC --target TGT --follow while redis-benchmark -P 16 writes to the
#    source for S seconds (SET, INCR, LPUSH, HSET, ZADD on 100k random keys); samples, every
#    second, how far rdbkit's acknowledged offset is behind the source's; after the writer ends,
#    the time until rdbkit has applied everything; the commands the source executed
#    (INFO commandstats) vs the commands rdbkit applied.
# 3. The cutover: with the writer running, SIGTERM with --pause-source-writes 10s; the time from the
#    signal to rdbkit's exit (the target then final), and rdbkit's own figure.
# rdbkit: target/release/rdbkit (cargo build --release first), or $RDBKIT_BIN.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scale=1 runs=3 secs=60
while [[ $# -gt 0 ]]; do
    case $1 in
        --scale) scale=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --follow-seconds) secs=$2; shift 2 ;;
        *) echo "live.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
bin=${RDBKIT_BIN:-target/release/rdbkit}
servers=${RDBKIT_SERVERS:-.servers}
server=$servers/redis-8.2/redis-server
cli=$servers/bin/redis-cli
bench=$(command -v redis-benchmark || true)
[[ -x $bin && -x $server && -x $cli && -n $bench ]] || {
    echo "live.sh: need $bin, $server, $cli and redis-benchmark (apt-get install redis-tools)" >&2
    exit 2
}
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
    for _ in $(seq 600); do
        [[ $("$cli" -p "$port" ping 2>/dev/null) == PONG ]] && return
        sleep 0.1
    done
    echo "live.sh: $name did not start" >&2; exit 1
}
sp=$(free_port); tp=$(free_port)
mkdir -p "$work/source"; cp "$d1" "$work/source/dump.rdb"
start source "$sp" --enable-debug-command yes --dbfilename dump.rdb --repl-diskless-sync-delay 0 --repl-backlog-size 256mb
start target "$tp" --enable-debug-command yes
echo "source: $("$cli" -p "$sp" dbsize) keys"
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

two=() streamed=()
for r in $(seq "$runs"); do
    "$cli" -p "$tp" flushall >/dev/null
    t0=$(now)
    "$cli" -p "$sp" --rdb "$work/fetched.rdb" >/dev/null 2>&1
    "$bin" import "$work/fetched.rdb" --target "redis://127.0.0.1:$tp" --quiet >/dev/null
    two+=("$(since "$t0")")
    "$cli" -p "$tp" flushall >/dev/null
    t0=$(now)
    "$bin" import "redis://127.0.0.1:$sp" --target "redis://127.0.0.1:$tp" --quiet >/dev/null 2>&1
    streamed+=("$(since "$t0")")
    echo "run $r: redis-cli --rdb + import ${two[-1]} s, streamed ${streamed[-1]} s ($("$cli" -p "$tp" dbsize) keys)"
done
m2=$(median "${two[@]}"); ms=$(median "${streamed[@]}")
echo "median: two steps $m2 s, streamed $ms s, ratio streamed/two-step $(echo "scale=3; $ms / $m2" | bc)"

# --- follow under redis-benchmark
calls() { # commands the source executed so far (all commands but INFO/PING/REPLCONF/PSYNC…)
    "$cli" -p "$sp" info commandstats | tr -d '\r' |
        awk -F'[:=,]' '/^cmdstat_(set|incr|lpush|hset|zadd):/ {s+=$3} END {print s+0}'
}
behind() { # bytes the source's offset is ahead of the offset rdbkit acknowledged
    local info m s
    info=$("$cli" -p "$sp" info replication | tr -d '\r')
    m=$(sed -n 's/^master_repl_offset://p' <<<"$info")
    s=$(sed -n 's/^slave0:.*offset=\([0-9]*\).*/\1/p' <<<"$info")
    echo $(( m - ${s:-0} ))
}
writer() { # seconds
    timeout "$1" "$bench" -p "$sp" -P 16 -r 100000 -n 100000000 -t set,incr,lpush,hset,zadd -q \
        >/dev/null 2>&1 || true
}
"$cli" -p "$tp" flushall >/dev/null
"$cli" -p "$sp" config resetstat >/dev/null
log=$work/follow.log
"$bin" import "redis://127.0.0.1:$sp" --target "redis://127.0.0.1:$tp" --follow >"$log" 2>&1 &
fpid=$!
for _ in $(seq 600); do grep -q "^following" "$log" && break; sleep 0.1; done
base=$(calls)
writer "$secs" &
wpid=$!
max=0 samples=() lat=()
for i in $(seq "$secs"); do
    sleep 0.5
    b=$(behind); samples+=("$b"); (( b > max )) && max=$b
    # the lag in time: a write on the source, seen on the target
    t0=$(now)
    "$cli" -p "$sp" set bench:probe "$i" >/dev/null
    for _ in $(seq 5000); do
        [[ $("$cli" -p "$tp" get bench:probe) == "$i" ]] && break
        sleep 0.002
    done
    lat+=("$(since "$t0")")
done
wait "$wpid"
t0=$(now)
for _ in $(seq 6000); do [[ $(behind) -le 0 ]] && break; sleep 0.01; done
catch=$(since "$t0")
generated=$(( $(calls) - base ))
kill -TERM "$fpid"; wait "$fpid" || true
applied=$(sed -n 's/^followed: \([0-9]*\) commands applied.*/\1/p' "$log")
echo "follow: $generated commands generated in ${secs} s, $applied applied, ratio $(echo "scale=4; $applied / $generated" | bc)"
echo "follow: lag (a write on the source seen on the target), sampled each second: median $(median "${lat[@]}") s, max $(printf '%s\n' "${lat[@]}" | sort -g | tail -1) s"
echo "follow: bytes behind the source (its view, from rdbkit's ACKs): median $(median "${samples[@]}"), max $max; after the writer stopped, caught up in $catch s"

# --- cutover
"$cli" -p "$tp" flushall >/dev/null
"$bin" import "redis://127.0.0.1:$sp" --target "redis://127.0.0.1:$tp" --follow \
    --pause-source-writes 10s >"$log" 2>&1 &
fpid=$!
for _ in $(seq 600); do grep -q "^following" "$log" && break; sleep 0.1; done
writer 30 &
wpid=$!
sleep 10
t0=$(now)
kill -TERM "$fpid"; wait "$fpid" || true
window=$(since "$t0")
kill "$wpid" 2>/dev/null || true; wait "$wpid" 2>/dev/null || true
# still paused for writes: the two must be equal now
echo "digests: source $("$cli" -p "$sp" debug digest), target $("$cli" -p "$tp" debug digest)"
"$cli" -p "$sp" client unpause >/dev/null
echo "cutover: SIGTERM to exit $window s; rdbkit: $(grep '^cutover' "$log" || echo 'no cutover line')"
