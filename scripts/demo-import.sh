#!/usr/bin/env bash
# The main job on a bundled dump, end to end on a fresh machine: install the servers, start an empty
# Redis 8.2 (with FalkorDB, whose values the dump holds) on a loopback port, import
# testdata/redis82_all_types_v12.rdb, verify it key by key, compare DEBUG DIGEST with 8.2 loading
# the dump itself, and stop the servers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-servers.sh >/dev/null
cargo build --release --quiet
DUMP=${1:-testdata/redis82_all_types_v12.rdb}
SERVER=.servers/redis-8.2/redis-server
MODULE=.servers/redis-8.2/falkordb.so
CLI=.servers/bin/redis-cli
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start() { # port [dbfilename]
  "$SERVER" --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --dbfilename "${2:-none.rdb}" \
    --enable-debug-command yes --loadmodule "$PWD/$MODULE" --logfile "$work/$1.log" &
  pids+=($!)
  for _ in $(seq 100); do "$CLI" -p "$1" ping 2>/dev/null | grep -q PONG && return; sleep 0.1; done
  echo "server on port $1 did not start" >&2; exit 1
}
cp "$DUMP" "$work/reference.rdb"
start 16479                 # the import target, empty
start 16480 reference.rdb   # the reference: 8.2 loading the dump itself
target=redis://127.0.0.1:16479
./target/release/rdbkit import "$DUMP" --target "$target"
./target/release/rdbkit verify "$DUMP" --target "$target"
want=$("$CLI" -p 16480 debug digest); got=$("$CLI" -p 16479 debug digest)
echo "DEBUG DIGEST after import: $got"
echo "DEBUG DIGEST of 8.2 loading the dump: $want"
[ "$got" = "$want" ] && echo "equal: nothing lost" || { echo "DIGESTS DIFFER" >&2; exit 1; }
