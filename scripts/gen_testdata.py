#!/usr/bin/env python3
"""Write the RDB dumps in testdata/ with real Redis servers, then check that each one loads.

Usage: scripts/gen_testdata.py [--servers DIR] [--out DIR] [--only NAME ...]

For every dump in DUMPS: start the producing server on a free loopback port in a temporary
directory, fill it with seeded data, record DEBUG DIGEST and INFO keyspace, SAVE, copy dump.rdb to
OUT/NAME, and stop the server by pid. Then load the copy into a fresh server of every version that
can read it and check that the digest and keyspace come back unchanged. The results go to
OUT/MANIFEST.tsv (one row per dump). Standard library only: it speaks RESP itself.

Data is deterministic (random.Random seeded with the dump name; stream IDs are explicit; TTLs are
fixed dates in 2100). Only LRU/LFU counters, stream consumer times and AUX fields (ctime, used-mem)
differ between runs, and DEBUG DIGEST covers none of them, so the recorded digests are stable.
"""

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RDB_VERSION = {"6.2": 9, "7.0": 10, "8.2": 12}
# Fixed far-future expiry times (2100-01-01 UTC), so the dumps never go stale and the bytes of a
# key's TTL do not depend on when they were generated.
EXPIRE_AT_MS = 4_102_444_800_000
FIELD_EXPIRE_AT_MS = EXPIRE_AT_MS + 86_400_000


class RespError(Exception):
    pass


class Client:
    """Minimal RESP2 client: call(*args) returns str/bytes/int/list/None, raises RespError."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.rd = self.sock.makefile("rb")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.rd.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rd.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RespError(f"unexpected reply line {line!r}")

    def info(self, section):
        text = self.call("INFO", section).decode()
        return dict(l.split(":", 1) for l in text.splitlines() if ":" in l and not l.startswith("#"))

    def close(self):
        self.sock.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One redis-server process in its own directory; stop() kills it by pid."""

    def __init__(self, servers, version, workdir, extra_args=(), dbfilename="dump.rdb", falkordb=False):
        binary = servers / f"redis-{version}" / "redis-server"
        args = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(workdir), "--dbfilename", dbfilename]
        if version != "6.2":  # 6.2 has DEBUG enabled and rejects this option
            args += ["--enable-debug-command", "yes"]
        if falkordb:
            args += ["--loadmodule", str(servers / "redis-8.2" / "falkordb.so")]
        args += list(extra_args)
        self.log = workdir / "server.log"
        for _attempt in range(5):  # the port may be taken between free_port() and bind()
            self.port = free_port()
            with open(self.log, "wb") as log:
                self.proc = subprocess.Popen([str(binary), "--port", str(self.port)] + args,
                                             stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
            if self._wait_ready(20):
                return
            self.stop()
        raise RuntimeError(f"redis-{version} did not start:\n{self.log.read_text(errors='replace')}")

    def _wait_ready(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                c = Client(self.port)
                try:
                    if c.call("PING") == "PONG" and c.info("persistence").get("loading") == "0":
                        self.client = c
                        return True
                finally:
                    if getattr(self, "client", None) is not c:
                        c.close()
            except (OSError, RespError):
                pass
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def state(self):
        """(DEBUG DIGEST, {db: (keys, expires)}) of the whole dataset."""
        digest = self.client.call("DEBUG", "DIGEST")  # a status reply: str
        keyspace = {}
        for k, v in self.client.info("keyspace").items():
            fields = dict(f.split("=") for f in v.split(","))
            keyspace[int(k[2:])] = (int(fields["keys"]), int(fields["expires"]))
        return digest, keyspace


# ---------------------------------------------------------------------------------------------
# Data. Each fill function gets a client on db 0, the producing version and a seeded RNG.


def fill_strings(c, rng):
    c.call("SET", "str:short", "hello world")
    for k, v in [("int8", "-7"), ("int", "12345"), ("int16", "-30000"), ("int32", "2147483647"),
                 ("int64", "9223372036854775807"), ("leading-zero", "007"), ("float", "3.14")]:
        c.call("SET", f"str:{k}", v)  # -7..2147483647 are INT-encoded; the rest stay text
    c.call("SET", "str:empty", "")
    c.call("SET", "str:utf8", "héllo wörld ✓")
    c.call("SET", "str:lzf", "abcdefgh" * 64)  # > 20 bytes and compressible: LZF
    c.call("SET", "str:lzf-big", ("0123456789" * 2000).encode())  # 32-bit lengths inside LZF
    c.call("SET", "str:random", rng.randbytes(200))  # incompressible: stored raw
    c.call("SET", b"bin:\xff\xfe\x00key", b"\x00\x01\xfe\xff\x80 binary \xc3\x28")


def fill_lists(c, rng):
    c.call("RPUSH", "list:small", "a", "b", "1", "-2", "300", "70000", "5000000000", "")
    # Every ziplist/listpack integer width, positive and negative.
    ints = [0, 1, 12, 13, 127, -128, 4095, -4096, 32767, -32768, 8388607, -8388608,
            2147483647, -2147483648, 9223372036854775807, -9223372036854775808]
    c.call("RPUSH", "list:ints", *ints)
    # String lengths at the 6-bit / 12-/14-bit / 32-bit length boundaries; spills into 2 nodes.
    c.call("RPUSH", "list:strlens", *["x" * n for n in (63, 64, 4095, 4096)])
    c.call("RPUSH", "list:big", *[rng.choice([f"item-{i}", str(rng.randint(-10**6, 10**6))])
                                  for i in range(3000)])
    # Elements > 8 KiB: PLAIN quicklist nodes on 7.0+ (on 6.2: a ziplist node each).
    c.call("RPUSH", "list:plain", "head", rng.randbytes(10000), "mid", b"z" * 20000, "tail")
    # Interior nodes LZF-compressed (list-compress-depth 1), including one PLAIN node.
    c.call("CONFIG", "SET", "list-compress-depth", "1")
    items = [f"item-{i:05d}-padding-padding-padding" for i in range(2000)]
    items.insert(1000, "compressible-plain-" * 700)
    c.call("RPUSH", "list:compressed", *items)
    c.call("CONFIG", "SET", "list-compress-depth", "0")


def fill_sets(c, rng):
    c.call("SADD", "set:intset16", 1, 2, 3, -5, 100)
    c.call("SADD", "set:intset32", 1, 70000, -70000)
    c.call("SADD", "set:intset64", 1, 5000000000, -5000000000)
    c.call("SADD", "set:small-str", "a", "b", "c", "")  # listpack on 8.2, hashtable before
    c.call("SADD", "set:mixed", 1, 2, "x")
    c.call("SADD", "set:big-str", *[f"member-{rng.getrandbits(40):x}" for _ in range(700)])
    c.call("SADD", "set:big-int", *rng.sample(range(-10**9, 10**9), 600))  # > 512: hashtable
    c.call("SADD", "set:one", "only")


def fill_zsets(c, rng):
    c.call("ZADD", "zset:small", 1, "a", 2.5, "b", -3.25, "c", "inf", "d", "-inf", "e", 0, "f",
           1e300, "g", 123456789, "h", -1, "i", 4.2, "42", 0.1, "tenth")
    pairs = []
    for i in range(300):  # > 128 entries: skiplist
        pairs += [round(rng.uniform(-1000, 1000), 3), f"m{i}"]
    c.call("ZADD", "zset:big", *pairs)
    c.call("ZADD", "zset:longmember", 1.5, "L" * 100)  # member > 64 bytes: skiplist
    c.call("ZADD", "zset:one", 7, "only")


def fill_hashes(c, version, rng):
    c.call("HSET", "hash:small", "f1", "v1", "n", "12345", "neg", "-7", "empty", "", "big", "9" * 19)
    c.call("HSET", "hash:one", "field", "value")
    fields = []
    for i in range(700):  # > 512 fields: hashtable
        fields += [f"field-{i}", rng.choice([str(i), f"value-{rng.getrandbits(32):x}"])]
    c.call("HSET", "hash:big", *fields)
    c.call("HSET", "hash:longval", "k", "V" * 100)  # value > 64 bytes: hashtable
    if version == "8.2":
        at = FIELD_EXPIRE_AT_MS
        # listpack with field TTLs (type 25): 2 of 4 fields expire
        c.call("HSET", "hash:ttl-small", "a", "1", "b", "2", "c", "3", "d", "4")
        c.call("HPEXPIREAT", "hash:ttl-small", at, "FIELDS", 2, "a", "c")
        # hashtable with field TTLs (type 24): 50 of 700 fields expire
        c.call("HSET", "hash:ttl-big", *fields)
        c.call("HPEXPIREAT", "hash:ttl-big", at + 1000, "FIELDS", 50, *[f"field-{i}" for i in range(0, 700, 14)])


def fill_streams(c):
    base = 1_700_000_000_000
    for i in range(250):  # > 100 entries per node: 3 listpack nodes
        if i % 25 == 7:
            fv = ["event", f"e{i}", "extra", "x" * (i % 7)]  # different fields than the master entry
        else:
            fv = ["sensor", str(i % 5), "temp", f"{20 + i % 10}.{i % 3}"]
        c.call("XADD", "stream:main", f"{base + i // 2}-{i % 2}", *fv)  # two IDs per ms
    for i in range(10, 40, 3):
        c.call("XDEL", "stream:main", f"{base + i // 2}-{i % 2}")
    c.call("XGROUP", "CREATE", "stream:main", "g1", "0")
    c.call("XGROUP", "CREATE", "stream:main", "g2", "$")
    c.call("XGROUP", "CREATE", "stream:main", "g3", f"{base + 50}-0")
    alice = c.call("XREADGROUP", "GROUP", "g1", "alice", "COUNT", 10, "STREAMS", "stream:main", ">")
    c.call("XREADGROUP", "GROUP", "g1", "bob", "COUNT", 5, "STREAMS", "stream:main", ">")
    ids = [e[0] for e in alice[0][1]]
    c.call("XACK", "stream:main", "g1", *ids[:3])
    c.call("XCLAIM", "stream:main", "g1", "carol", 0, *ids[3:5])
    c.call("XGROUP", "CREATECONSUMER", "stream:main", "g1", "dave")  # consumer with no PEL
    c.call("XREADGROUP", "GROUP", "g3", "erin", "COUNT", 2, "STREAMS", "stream:main", ">")
    # Trimmed stream: first entry past the start, max-deleted-id set (RDB 10+ metadata).
    for i in range(1, 121):
        c.call("XADD", "stream:trimmed", "MAXLEN", 50, f"{i}-0", "n", i)
    # Empty streams: emptied by XDEL, and made by XGROUP CREATE ... MKSTREAM.
    c.call("XADD", "stream:empty-xdel", "5-1", "f", "v")
    c.call("XDEL", "stream:empty-xdel", "5-1")
    c.call("XGROUP", "CREATE", "stream:empty-mkstream", "grp", "$", "MKSTREAM")


def fill_ttls(c):
    at = EXPIRE_AT_MS
    c.call("SET", "ttl:str", "expires")
    c.call("RPUSH", "ttl:list", "a", "b")
    c.call("HSET", "ttl:hash", "f", "v")
    c.call("SADD", "ttl:set", "m")
    c.call("ZADD", "ttl:zset", 1, "m")
    c.call("XADD", "ttl:stream", "1-1", "f", "v")
    for k in ("ttl:str", "ttl:list", "ttl:hash", "ttl:set", "ttl:zset", "ttl:stream"):
        c.call("PEXPIREAT", k, at)


def fill_other_dbs(c, dbs=(1, 3)):
    at = EXPIRE_AT_MS
    for db in dbs:
        c.call("SELECT", db)
        c.call("SET", f"db{db}:str", f"in db {db}")
        c.call("RPUSH", f"db{db}:list", "x", "y", db)
        c.call("HSET", f"db{db}:hash", "db", db)
        c.call("SET", f"db{db}:ttl", "t", "PXAT", at)
    c.call("SELECT", 0)


FUNCTIONS = [
    "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)",
    "#!lua name=lib2\n"
    "local function get(keys, args) return redis.call('GET', keys[1]) end\n"
    "redis.register_function{function_name='lib2_get', callback=get, flags={'no-writes'}}\n"
    "redis.register_function('lib2_ping', function() return 'pong' end)",
]


def fill_all_types(c, version, rng):
    fill_strings(c, rng)
    fill_lists(c, rng)
    fill_sets(c, rng)
    fill_zsets(c, rng)
    fill_hashes(c, version, rng)
    fill_streams(c)
    fill_ttls(c)
    fill_other_dbs(c)
    if version != "6.2":
        for code in FUNCTIONS:
            c.call("FUNCTION", "LOAD", code)
    if version == "8.2":
        c.call("GRAPH.QUERY", "graph:small", "CREATE (:P {name:'a'})-[:K]->(:P {name:'b'})")
        c.call("GRAPH.QUERY", "graph:chain",
               "UNWIND range(1, 50) AS i CREATE (:N {i: i, s: 'node-' + toString(i)})")
        c.call("GRAPH.QUERY", "graph:chain",
               "MATCH (a:N), (b:N) WHERE b.i = a.i + 1 CREATE (a)-[:NEXT {w: a.i * 0.5}]->(b)")
        for i in range(20):  # vector sets (built-in module in 8.x): default Q8 and NOQUANT
            vec = [f"{rng.uniform(-1, 1):.4f}" for _ in range(4)]
            c.call("VADD", "vset:q8", "VALUES", 4, *vec, f"e{i}")
            c.call("VADD", "vset:noquant", "VALUES", 4, *vec, f"e{i}", "NOQUANT")
        c.call("VSETATTR", "vset:q8", "e0", '{"color":"red"}')


def fill_no_compression(c, version, rng):
    c.call("SET", "str:lzf", "abcdefgh" * 64)  # would be LZF with rdbcompression yes
    c.call("SET", "str:int", "12345")
    c.call("HSET", "hash:small", "a", "1", "b", "x" * 40)
    c.call("CONFIG", "SET", "list-compress-depth", "1")
    c.call("RPUSH", "list:compressed", *[f"item-{i:05d}-padding-padding-padding" for i in range(1000)])
    c.call("CONFIG", "SET", "list-compress-depth", "0")
    c.call("SADD", "set:big-str", *[f"member-{i:04d}-" + "m" * 30 for i in range(200)])


def fill_no_checksum(c, version, rng):
    c.call("SET", "str:short", "hello")
    c.call("SET", "str:lzf", "abcdefgh" * 8)
    c.call("RPUSH", "list:small", "a", "b", "3")
    c.call("HSET", "hash:small", "f", "v")


def fill_multi_db(c, version, rng):
    c.call("SET", "db0:str", "in db 0")
    fill_other_dbs(c, dbs=(1, 2, 7, 15))


def fill_cluster(c, version, rng):
    c.call("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    deadline = time.time() + 20
    while "cluster_state:ok" not in c.call("CLUSTER", "INFO").decode():
        if time.time() > deadline:
            raise RuntimeError("cluster_state never became ok")
        time.sleep(0.1)
    for k in ("{user1}:name", "{user1}:age", "foo", "bar", "hello"):  # 4 distinct slots
        c.call("SET", k, k.upper())
    c.call("HSET", "{user1}:profile", "city", "Paris")
    c.call("PEXPIREAT", "hello", EXPIRE_AT_MS)


# name, producing version, extra server args, fill function, needs FalkorDB to load
DUMPS = [
    ("redis62_all_types_v9.rdb", "6.2", ["--maxmemory-policy", "allkeys-lru"], fill_all_types, False),
    ("redis70_all_types_v10.rdb", "7.0", ["--maxmemory-policy", "allkeys-lfu"], fill_all_types, False),
    ("redis82_all_types_v12.rdb", "8.2", [], fill_all_types, True),
    ("redis82_no_compression_v12.rdb", "8.2", ["--rdbcompression", "no"], fill_no_compression, False),
    ("redis82_no_checksum_v12.rdb", "8.2", ["--rdbchecksum", "no"], fill_no_checksum, False),
    ("redis82_multiple_dbs_v12.rdb", "8.2", [], fill_multi_db, False),
    ("redis82_cluster_slot_info_v12.rdb", "8.2",
     ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"], fill_cluster, False),
]


def fmt_keyspace(ks):
    return ",".join(f"db{db}={k}/{e}" for db, (k, e) in sorted(ks.items())) or "empty"


def generate(servers, out, name, version, extra, fill, falkordb):
    with tempfile.TemporaryDirectory(prefix="rdbkit-gen-") as tmp:
        srv = Server(servers, version, Path(tmp), extra, falkordb=falkordb)
        try:
            fill(srv.client, version, random.Random(f"rdbkit:{name}"))
            digest, keyspace = srv.state()
            srv.client.call("SAVE")
        finally:
            srv.stop()
        shutil.copyfile(Path(tmp) / "dump.rdb", out / name)
    return digest, keyspace


def load_check(servers, path, version, falkordb):
    """Load path into a fresh server of version; return its (digest, keyspace)."""
    with tempfile.TemporaryDirectory(prefix="rdbkit-load-") as tmp:
        shutil.copyfile(path, Path(tmp) / "load.rdb")
        srv = Server(servers, version, Path(tmp), dbfilename="load.rdb",
                     falkordb=falkordb and version == "8.2")
        try:
            digest, keyspace = srv.state()
        finally:
            srv.stop()
        return digest, keyspace


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", type=Path, default=Path(os.environ.get("RDBKIT_SERVERS", REPO / ".servers")))
    ap.add_argument("--out", type=Path, default=REPO / "testdata")
    ap.add_argument("--only", nargs="*", help="generate only these dump names (MANIFEST is rewritten with them)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    rows = []
    failed = False
    for name, version, extra, fill, falkordb in DUMPS:
        if args.only and name not in args.only:
            continue
        digest, keyspace = generate(args.servers, args.out, name, version, extra, fill, falkordb)
        loads = {}
        for loader in RDB_VERSION:
            if RDB_VERSION[loader] < RDB_VERSION[version]:
                loads[loader] = "-"  # too old to read this RDB version
                continue
            d, ks = load_check(args.servers, args.out / name, loader, falkordb)
            # 8.2 digests zset scores in a different text form than 6.2/7.0 (e.g. 0.1 vs
            # 0.10000000000000001), so across versions only the keyspace must match.
            ok = ks == keyspace and (d == digest or loader != version)
            loads[loader] = d if ok else f"MISMATCH:{d}:{fmt_keyspace(ks)}"
            failed |= not ok
        size = (args.out / name).stat().st_size
        print(f"{name}: {size} bytes, {fmt_keyspace(keyspace)}, digest {digest}, "
              f"loads: {', '.join(f'{v}={d[:12]}' for v, d in loads.items())}", file=sys.stderr)
        rows.append([name, version, str(RDB_VERSION[version]), str(size), " ".join(extra) or "-",
                     fmt_keyspace(keyspace), digest] + [loads[v] for v in RDB_VERSION])

    header = ["file", "producer", "rdb_version", "bytes", "server_args", "keyspace(db=keys/expires)",
              "digest"] + [f"digest_loaded_in_{v}" for v in RDB_VERSION]
    with open(args.out / "MANIFEST.tsv", "w") as f:
        for r in [header] + rows:
            f.write("\t".join(r) + "\n")
    if failed:
        sys.exit("some dumps did not load back with the same digest/keyspace (see MANIFEST.tsv)")


if __name__ == "__main__":
    main()
