#!/usr/bin/env bash
# Regenerate the RDB dumps in testdata/ with real Redis 6.2, 7.0 and 8.2 servers and check that
# each dump loads back with the same DEBUG DIGEST and keyspace (results in testdata/MANIFEST.tsv).
#
# Usage: scripts/gen-testdata.sh [--only NAME...]      (servers: $RDBKIT_SERVERS or .servers/)
# Extra arguments go to scripts/gen_testdata.py (see --help there).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
servers=${RDBKIT_SERVERS:-$repo/.servers}

"$repo/scripts/install-servers.sh" "$servers"
exec python3 "$repo/scripts/gen_testdata.py" --servers "$servers" --out "$repo/testdata" "$@"
