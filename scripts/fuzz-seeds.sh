#!/usr/bin/env bash
# Builds the seed corpora of the fuzz targets (fuzz/corpus/<target>/, git-ignored) from the dumps in
# testdata/ and, when present, ../shared/corpus/: whole dumps for the file-level targets, and the
# values, DUMP payloads and nested blobs (ziplists, listpacks, intsets, zipmaps, stream nodes, LZF
# strings, module opcode streams) cut out of them by examples/fuzz_seeds.rs for the others. Seeds
# are named by content, so reruns only add what is new. See fuzz/README.md.
#
# Usage: scripts/fuzz-seeds.sh [EXTRA_DUMP_OR_DIR...]
#   FUZZ_SEED_MAX_FILE  largest whole dump copied (bytes, default 262144)
#   FUZZ_SEED_MAX_BLOB  largest cut-out seed (bytes, default 65536)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
corpus=$repo/fuzz/corpus
max_file=${FUZZ_SEED_MAX_FILE:-262144}
max_blob=${FUZZ_SEED_MAX_BLOB:-65536}

sources=("$repo/testdata")
[[ -d $repo/../shared/corpus ]] && sources+=("$(cd "$repo/../shared/corpus" && pwd)")
sources+=("$@")

# Every regular file that starts with an RDB magic (.rdb dumps, RDB-preamble AOFs, …).
dumps=()
while IFS= read -r -d '' f; do
    magic=$(head -c 6 "$f" | tr -d '\0')
    if [[ $magic == REDIS* || $magic == VALKEY ]]; then
        dumps+=("$f")
    fi
done < <(find "${sources[@]}" -type f -print0 | sort -z)
echo "fuzz-seeds: ${#dumps[@]} dumps under ${sources[*]}"

file_targets=(decode_file stream_decoder roundtrip parallel)
for t in "${file_targets[@]}"; do mkdir -p "$corpus/$t"; done
copied=0
for f in "${dumps[@]}"; do
    size=$(stat -c %s "$f")
    ((size <= max_file)) || continue
    name=$(sha1sum "$f" | cut -c1-16)
    for t in "${file_targets[@]}"; do
        [[ -e $corpus/$t/$name ]] || cp "$f" "$corpus/$t/$name"
    done
    copied=$((copied + 1))
done
echo "fuzz-seeds: $copied whole dumps (<= $max_file bytes) for ${file_targets[*]}"

# The reply reader: replies the importer meets (OK, errors, redirections, integers, bulk strings,
# arrays, nulls), one per seed and all of them in a row.
mkdir -p "$corpus/reply"
replies=('+OK\r\n' '-BUSYKEY Target key name already exists.\r\n' '-MOVED 3999 127.0.0.1:6381\r\n'
    '-ASK 3999 127.0.0.1:6381\r\n' ':1\r\n' '$5\r\nhello\r\n' '$-1\r\n' '*2\r\n:1\r\n:0\r\n'
    '+PONG\r\n' '%1\r\n+a\r\n:1\r\n' '_\r\n')
all=
for i in "${!replies[@]}"; do
    printf '%b' "${replies[$i]}" >"$corpus/reply/seed$i"
    all+=${replies[$i]}
done
printf '%b' "$all" >"$corpus/reply/all"

# The command reader: a replication stream's commands (SELECT, SET with PXAT, MULTI/EXEC, PING,
# REPLCONF GETACK, a binary argument), one per seed and all of them in a row.
mkdir -p "$corpus/commands"
commands=('*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n'
    '*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$4\r\nPXAT\r\n$13\r\n1796472786953\r\n'
    '*1\r\n$5\r\nMULTI\r\n' '*2\r\n$4\r\nINCR\r\n$1\r\na\r\n' '*1\r\n$4\r\nEXEC\r\n'
    '*1\r\n$4\r\nPING\r\n' '*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n'
    '*3\r\n$4\r\nHSET\r\n$3\r\n\x00\xff\r\r\n$0\r\n\r\n')
all=
for i in "${!commands[@]}"; do
    printf '%b' "${commands[$i]}" >"$corpus/commands/seed$i"
    all+=${commands[$i]}
done
printf '%b' "$all" >"$corpus/commands/all"

# AOF input: a single file of commands with annotations and a MULTI block (mode byte 0), the
# same cut at --until 1 (mode 2, then 0x06: until 1), and a directory (mode 1): a manifest, NUL,
# a base of commands, NUL, an incremental file.
mkdir -p "$corpus/aof"
aof='#TS:1\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\n*1\r\n$4\r\nEXEC\r\n#TS:2\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n'
printf '\x00%b' "$aof" >"$corpus/aof/single"
printf '\x06%b' "$aof" >"$corpus/aof/until"
printf '\x01file b seq 1 type b\nfile i seq 1 type i\nfile h seq 1 type h\n\x00%b\x00%b' "$aof" "$aof" >"$corpus/aof/dir"

# Release, like `cargo test --release` in CI, so the example binary is already built there.
(cd "$repo" && cargo run --quiet --release --example fuzz_seeds -- \
    "$corpus" --max-len "$max_blob" "${dumps[@]}")
for d in "$corpus"/*/; do
    printf 'fuzz-seeds: %-15s %5d seeds\n' "$(basename "$d")" "$(find "$d" -type f | wc -l)"
done
