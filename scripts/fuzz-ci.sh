#!/usr/bin/env bash
# Bounded fuzzing for CI: installs cargo-fuzz if needed, builds every target in fuzz/, seeds them
# (scripts/fuzz-seeds.sh), runs each for FUZZ_SECONDS (default 20) with FUZZ_JOBS (default 2)
# targets at a time, and fails if any target finds a crash, panic, timeout or out-of-memory input.
# Findings land in fuzz/artifacts/<target>/; reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
#
# Usage: scripts/fuzz-ci.sh [TARGET...]      (default: all targets, `cargo fuzz list`)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
secs=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-2}
# cargo fuzz passes -Z flags (sanitizer, coverage) to rustc; stable rustc takes them with this.
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

start=$SECONDS
cargo fuzz build
echo "fuzz-ci: targets built in $((SECONDS - start)) s"
scripts/fuzz-seeds.sh

if (($# > 0)); then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
if ((${#targets[@]} == 0)); then
    echo "fuzz-ci: no fuzz targets (cargo fuzz list printed none)" >&2
    exit 1
fi
host=$(rustc -vV | sed -n 's/^host: //p')
bin=$repo/fuzz/target/$host/release
logs=$repo/fuzz/logs
mkdir -p "$logs"

run_one() {
    local t=$1
    mkdir -p "fuzz/artifacts/$t" "fuzz/corpus/$t"
    if "$bin/$t" "fuzz/corpus/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$logs/$t.log" 2>&1; then
        local runs cov
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log")
        cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$logs/$t.log" | tail -1)
        # a target that exits 0 without running inputs (wrong binary, no corpus read) is a failure
        if [[ ! $runs =~ ^[0-9]+$ ]] || ((runs == 0)); then
            printf 'fuzz-ci: %-15s FAILED: ran no inputs (log: fuzz/logs/%s.log)\n' "$t" "$t"
            return 1
        fi
        printf 'fuzz-ci: %-15s ok   %9s runs  %s\n' "$t" "$runs" "$cov"
    else
        printf 'fuzz-ci: %-15s FAILED (log: fuzz/logs/%s.log)\n' "$t" "$t"
        return 1
    fi
}
export -f run_one
export bin secs logs

start=$SECONDS
status=0
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {} || status=$?
echo "fuzz-ci: ran ${#targets[@]} targets for ${secs} s each in $((SECONDS - start)) s"
if ((status != 0)); then
    for t in "${targets[@]}"; do
        if ls "fuzz/artifacts/$t/"* >/dev/null 2>&1; then
            echo "=== $t: $(ls "fuzz/artifacts/$t/")"
            grep -v '^#\|^INFO\|^ *[0-9]*: \| at /' "$logs/$t.log" | tail -40
        fi
    done
    exit 1
fi
