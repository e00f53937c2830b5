#!/usr/bin/env bash
# rdbkit vs its peers on generated datasets; writes benches/RESULTS.md.
#
# Usage: benches/compare.sh [--scale F] [--runs N] [--skip OP]... [--no-d2] [--results FILE]
#   --scale F   dataset size factor (default 1: D1 = 2M keys / ~290 MB, D2 = ~1.26 GB);
#               0.1 for a quick pass
#   --runs N    runs per command (default 3); the table shows medians
#   --skip OP   leave out an operation: scan, info, jsonl, resp, rdbtools, import, verify
#               (repeatable); verify runs on D1 only: rdbkit verify against rdbkit import of the
#               same dump, into one 8.2 and into a 3-primary 8.2 cluster
#   --no-d2     D1 only
#   --nice N    run the measurement phase (and the import target server) at niceness N, e.g. -10
#               as root, to damp the noise from other load on a shared machine; with the kernel's
#               autogroup scheduling on, the session's autogroup gets the same niceness (plain nice
#               only ranks processes within one session)
#
# Steps:
#  1. servers: scripts/install-servers.sh if .servers/redis-8.2 or 6.2 is missing
#  2. rdbkit: `cargo build --release` in its own target dir (BENCH_TARGET_DIR, default
#     target/bench-build, so concurrent builds in target/ do not swap the binary mid-run), copied
#     to target/bench-peers/rdbkit; or RDBKIT_BIN=/path/to/rdbkit to measure a given binary
#  3. peers, each in a scratch root under target/bench-peers/ (installed once):
#       cargo install rdb --version 0.4.0 --locked --root target/bench-peers/rdb-rs
#       pip install --target target/bench-peers/py rdbtools python-lzf
#     a peer that fails to install is reported and left out
#  4. datasets under target/bench-data/ (generated once per scale, see benches/gen_dataset.py):
#       d1-s$SCALE.rdb, d2-s$SCALE.rdb (Redis 8.2, RDB 12); d1-redis62-s$(SCALE*0.05).rdb (Redis 6.2,
#       RDB 9, for rdbtools, which refuses RDB > 9); *.restore.resp (RESTORE streams for the
#       redis-cli --pipe import baseline)
#  5. benches/measure.py: the runs, the table, benches/RESULTS.md
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

scale=1 runs=3 d2=1 results=benches/RESULTS.md nice=0
skip=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --scale) scale=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --skip) skip+=(--skip "$2"); shift 2 ;;
        --no-d2) d2=0; shift ;;
        --nice) nice=$2; shift 2 ;;
        --results) results=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
scale=$(python3 -c "import sys; s=float(sys.argv[1]); assert 0 < s <= 10; print(f'{s:g}')" "$scale") ||
    { echo "compare.sh: --scale must be a number in (0, 10]" >&2; exit 2; }
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --runs must be a positive integer" >&2; exit 2; }
small=$(python3 -c "import sys; print(f'{float(sys.argv[1]) * 0.05:g}')" "$scale")

log() { echo "compare.sh: $*" >&2; }
data=target/bench-data
peers=target/bench-peers
mkdir -p "$data" "$peers"

# --- 1. servers --------------------------------------------------------------------------------
if [[ ! -x .servers/redis-8.2/redis-server || ! -x .servers/redis-6.2/redis-server || ! -x .servers/bin/redis-cli ]]; then
    log "installing servers"
    scripts/install-servers.sh
fi
server=$repo/.servers/redis-8.2/redis-server
cli=$repo/.servers/bin/redis-cli

if [[ ! -x /usr/bin/time ]]; then  # GNU time: measure.py reads peak RSS from it
    log "apt-get install time"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time; } >/dev/null ||
        { log "GNU time (/usr/bin/time) is needed: apt-get install time"; exit 1; }
fi

# --- 2. rdbkit -----------------------------------------------------------------------------------
if [[ -n ${RDBKIT_BIN:-} ]]; then
    rdbkit=$(realpath "$RDBKIT_BIN")
    rdbkit_version="given binary, sha256 $(sha256sum "$rdbkit" | cut -c1-12)"
else
    log "building rdbkit (cargo build --release, target dir ${BENCH_TARGET_DIR:-target/bench-build})"
    CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-target/bench-build} cargo build --release --quiet --bin rdbkit
    mkdir -p "$peers/rdbkit"
    cp "${BENCH_TARGET_DIR:-target/bench-build}/release/rdbkit" "$peers/rdbkit/rdbkit.tmp"
    mv "$peers/rdbkit/rdbkit.tmp" "$peers/rdbkit/rdbkit"
    rdbkit=$repo/$peers/rdbkit/rdbkit
    rdbkit_version="git $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' + uncommitted changes in src/'), sha256 $(sha256sum "$rdbkit" | cut -c1-12)"
fi

# --- 3. peers ------------------------------------------------------------------------------------
rdb_rs=$repo/$peers/rdb-rs/bin/rdb
if [[ ! -x $rdb_rs ]]; then
    log "cargo install rdb 0.4.0 (rdb-rs)"
    cargo install rdb --version 0.4.0 --locked --root "$peers/rdb-rs" >"$peers/rdb-rs.log" 2>&1 ||
        log "rdb-rs did not install (see $peers/rdb-rs.log); left out"
fi
peer_args=()
[[ -x $rdb_rs ]] && peer_args+=(--rdb-rs "$rdb_rs")
if [[ ! -f $peers/py/rdbtools/parser.py ]] || ! compgen -G "$peers/py/lzf*.so" >/dev/null; then
    log "pip install rdbtools python-lzf"
    python3 -m pip install --quiet --disable-pip-version-check --target "$peers/py" rdbtools python-lzf \
        >"$peers/py.log" 2>&1 || log "rdbtools did not install (see $peers/py.log); left out"
fi
[[ -f $peers/py/rdbtools/parser.py ]] && peer_args+=(--rdbtools "$repo/$peers/py")

# --- 4. datasets ---------------------------------------------------------------------------------
gen() { # kind out [args]
    local kind=$1 out=$2; shift 2
    if [[ ! -s $out ]]; then
        log "generating $out"
        python3 benches/gen_dataset.py "$kind" "$out" "$@"
    fi
}
d1=$data/d1-s$scale.rdb
d2f=$data/d2-s$scale.rdb
d1_9=$data/d1-redis62-s$small.rdb
gen d1 "$d1" --scale "$scale"
[[ $d2 = 1 ]] && gen d2 "$d2f" --scale "$scale"
gen d1 "$d1_9" --scale "$small" --redis 6.2
restore() { # rdb -> rdb.restore.resp
    local out=${1%.rdb}.restore.resp
    if [[ ! -s $out ]]; then
        log "building the RESTORE stream $out"
        python3 benches/gen_dataset.py restore-stream "$1" "$out"
    fi
}
data_args=(--d1 "$d1" --d1-rdb9 "$d1_9")
if [[ " ${skip[*]} " != *" import "* ]]; then
    restore "$d1"
    data_args+=(--restore-d1 "${d1%.rdb}.restore.resp")
fi
if [[ $d2 = 1 ]]; then
    data_args+=(--d2 "$d2f")
    if [[ " ${skip[*]} " != *" import "* ]]; then
        restore "$d2f"
        data_args+=(--restore-d2 "${d2f%.rdb}.restore.resp")
    fi
fi

# --- 5. measure ----------------------------------------------------------------------------------
restore_autogroup=
if [[ $nice != 0 && -w /proc/self/autogroup ]]; then
    restore_autogroup=$(sed -n 's/.* nice //p' /proc/self/autogroup)
    echo "$nice" >/proc/self/autogroup 2>/dev/null || log "could not set the autogroup's niceness"
fi
trap '[[ -n $restore_autogroup ]] && echo "$restore_autogroup" >/proc/self/autogroup 2>/dev/null' EXIT
log "measuring ($runs runs per command)"
nice -n "$nice" python3 benches/measure.py --scale "$scale" --runs "$runs" \
    --rdbkit "$rdbkit" --rdbkit-version "$rdbkit_version" "${peer_args[@]}" \
    "${data_args[@]}" --server "$server" --cli "$cli" --results "$results" "${skip[@]}"
