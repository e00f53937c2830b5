#!/usr/bin/env bash
# The main job on a bundled dump, end to end on a fresh machine: install the servers, start an empty
# Redis 8.2 (with FalkorDB, whose values the dump holds) on a loopback port, import
# testdata/redis82_all_types_v12.rdb, verify it key by key, compare DEBUG DIGEST with 8.2 loading
# the dump itself, and stop the servers. The servers take free loopback ports (never a server that
# was already there: each is checked to be the process this script started).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
echo "installing the servers (scripts/install-servers.sh; quick once done)…"
scripts/install-servers.sh >/dev/null
echo "building rdbkit (cargo build --release; the first build takes a few minutes)…"
cargo build --release
DUMP=${1:-testdata/redis82_all_types_v12.rdb}
SERVER=.servers/redis-8.2/redis-server
MODULE=.servers/redis-8.2/falkordb.so
CLI=.servers/bin/redis-cli
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() { # name [dbfilename]; sets port_<name>
  local port pid
  for _ in $(seq 20); do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    "$SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
      --dbfilename "${2:-none.rdb}" --enable-debug-command yes --loadmodule "$PWD/$MODULE" \
      --logfile "$work/$1.log" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
      # ready, and really ours: another server on the port would answer with its own pid
      if "$CLI" -p "$port" info server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$pid"; then
        printf -v "port_$1" %s "$port"
        return
      fi
      kill -0 "$pid" 2>/dev/null || break   # it exited (port taken meanwhile): try another
      sleep 0.1
    done
  done
  echo "could not start the $1 server (see $work/$1.log)" >&2; exit 1
}
cp "$DUMP" "$work/reference.rdb"
start target                    # the import target, empty
start reference reference.rdb   # the reference: 8.2 loading the dump itself
echo "servers: target on port $port_target, reference on port $port_reference"
target=redis://127.0.0.1:$port_target
./target/release/rdbkit import "$DUMP" --target "$target"
./target/release/rdbkit verify "$DUMP" --target "$target"
want=$("$CLI" -p "$port_reference" debug digest); got=$("$CLI" -p "$port_target" debug digest)
echo "DEBUG DIGEST after import: $got"
echo "DEBUG DIGEST of 8.2 loading the dump: $want"
[ "$got" = "$want" ] && echo "equal: nothing lost" || { echo "DIGESTS DIFFER" >&2; exit 1; }
