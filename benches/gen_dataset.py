#!/usr/bin/env python3
"""Seeded benchmark datasets, written by a real redis-server.

Usage:
  benches/gen_dataset.py d1 OUT.rdb [--scale F] [--redis 8.2|7.0|6.2] [--seed N]
  benches/gen_dataset.py d2 OUT.rdb [--scale F] [--seed N]
  benches/gen_dataset.py restore-stream IN.rdb OUT.resp

d1  2,000,000 x F small mixed keys: 70% strings of 10-100 bytes, 30% hashes / lists / sets / zsets
    (7.5% each) of 5-20 elements, 20% of all keys with a TTL in 2100. About 290 MB as RDB 12 at
    scale 1.
d2  big values: 1,000 x F strings of 1 MiB, 50 x F lists and 50 x F hashes of 100,000 elements
    (counts rounded, at least 1 each). About 1.26 GB as RDB 12 at scale 1.

For d1/d2: start the chosen server (default 8.2) from .servers/ on a free loopback port in a
temporary directory (--save '' --appendonly no), fill it over one pipelined connection, check
DBSIZE, run SAVE, copy dump.rdb to OUT.rdb, and stop the server by pid.

restore-stream: load IN.rdb into a fresh 8.2, SCAN every key, DUMP + PEXPIRETIME each (pipelined)
and write `RESTORE key ttl payload [ABSTTL]` commands as RESP to OUT.resp, for `redis-cli --pipe`.

Standard library only: it speaks RESP itself. Data is deterministic for a given seed and scale
(random.Random; TTLs are fixed dates in 2100); only the dump's AUX fields (ctime, used-mem) and the
hash table order vary between runs.
"""

import argparse
import os
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVERS = Path(os.environ.get("RDBKIT_SERVERS", REPO / ".servers"))
EXPIRE_AT_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
YEAR_MS = 365 * 86_400_000
ALNUM = (string.ascii_letters + string.digits).encode()


def log(msg):
    print(f"gen_dataset: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# RESP


def encode(args):
    """One RESP command (args: bytes, str or int)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RespError(Exception):
    pass


class Client:
    """Minimal blocking RESP2 client: call(*args) returns str/bytes/int/list/None."""

    def __init__(self, port, timeout=600):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.rd = self.sock.makefile("rb", buffering=1 << 20)

    def call(self, *args):
        self.sock.sendall(encode(args))
        return self.read()

    def read(self):
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
            return self.rd.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RespError(f"unexpected reply line {line!r}")

    def close(self):
        self.sock.close()


class Pipeline:
    """Fire-and-count pipelining for commands whose replies are one line (+OK, :n, -ERR).

    send() buffers; a reader thread drains the socket concurrently (so neither side blocks on a
    full buffer) and counts reply lines and error lines. finish() waits for every reply.
    """

    FLUSH_AT = 1 << 20

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.buf = []
        self.buffered = 0
        self.sent = 0
        self.replies = 0
        self.errors = 0
        self.first_error = None
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        tail = b"\n"
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                with self.cond:
                    self.cond.notify_all()
                break
            data = tail + chunk
            errs = data.count(b"\n-")
            if errs and self.first_error is None:
                i = data.index(b"\n-")
                self.first_error = data[i + 1 : data.find(b"\r", i)].decode(errors="replace")
            with self.cond:
                self.errors += errs
                self.replies += chunk.count(b"\n")
                self.cond.notify_all()
            tail = chunk[-1:]

    def send(self, *args):
        b = encode(args)
        self.buf.append(b)
        self.buffered += len(b)
        self.sent += 1
        if self.buffered >= self.FLUSH_AT:
            self.flush()

    def flush(self):
        if self.buf:
            self.sock.sendall(b"".join(self.buf))
            self.buf, self.buffered = [], 0

    def finish(self):
        self.flush()
        with self.cond:
            while self.replies < self.sent:
                if not self.reader.is_alive():
                    raise ConnectionError("server closed the connection")
                self.cond.wait(1)
        self.sock.shutdown(socket.SHUT_RDWR)
        self.reader.join()
        self.sock.close()
        if self.errors:
            raise RespError(f"{self.errors} commands failed, first: {self.first_error}")


# ---------------------------------------------------------------------------------------------
# Server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One redis-server in its own directory; stop() kills it by pid."""

    def __init__(self, version, workdir, dbfilename="dump.rdb", extra=()):
        binary = SERVERS / f"redis-{version}" / "redis-server"
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"gen_dataset: {binary} missing (run scripts/install-servers.sh)")
        args = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(workdir), "--dbfilename", dbfilename, *extra]
        self.log = Path(workdir) / "server.log"
        for _attempt in range(5):  # the port may be taken between free_port() and bind()
            self.port = free_port()
            with open(self.log, "wb") as f:
                self.proc = subprocess.Popen([str(binary), "--port", str(self.port), *args],
                                             stdout=f, stderr=subprocess.STDOUT, cwd=workdir)
            if self._wait_ready(600):
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
                    if c.call("PING") == "PONG" and b"loading:0" in c.call("INFO", "persistence"):
                        self.client = c
                        return True
                except RespError:  # -LOADING
                    pass
                c.close()
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ---------------------------------------------------------------------------------------------
# Data


class Text:
    """Fast seeded alphanumeric text: slices of a 1 MiB seeded pool at random offsets."""

    def __init__(self, rng, size=1 << 20):
        self.rng = rng
        self.pool = bytes(rng.choices(ALNUM, k=size))

    def __call__(self, lo, hi):
        n = self.rng.randint(lo, hi)
        o = self.rng.randrange(len(self.pool) - n)
        return self.pool[o : o + n]


def expire_at(rng):
    return EXPIRE_AT_MS + rng.randrange(YEAR_MS)


def fill_d1(port, scale, rng):
    """2,000,000 x scale keys; returns the key count."""
    n = max(1, round(2_000_000 * scale))
    text = Text(rng)
    p = Pipeline(port)
    r = rng.random
    ri = rng.randint
    t0 = time.time()
    for i in range(n):
        ttl = r() < 0.2
        u = r()
        if u < 0.70:
            key = b"str:%08d" % i
            if ttl:
                p.send(b"SET", key, text(10, 100), b"PXAT", expire_at(rng))
            else:
                p.send(b"SET", key, text(10, 100))
            continue
        m = ri(5, 20)
        if u < 0.775:
            key = b"hash:%08d" % i
            args = [b"HSET", key]
            for j in range(m):
                args.append(b"f%d:%s" % (j, text(3, 12)))
                args.append(str(ri(0, 10**6)) if r() < 0.3 else text(8, 28))
        elif u < 0.85:
            key = b"list:%08d" % i
            args = [b"RPUSH", key] + [text(8, 36) for _ in range(m)]
        elif u < 0.925:
            key = b"set:%08d" % i
            if r() < 0.4:  # integer members: intset
                args = [b"SADD", key] + [ri(0, 10**9) for _ in range(m)]
            else:
                args = [b"SADD", key] + [text(8, 28) for _ in range(m)]
        else:
            key = b"zset:%08d" % i
            args = [b"ZADD", key]
            for _ in range(m):
                args.append(ri(0, 10**6) if r() < 0.5 else "%.2f" % (r() * 10**5))
                args.append(text(8, 28))
        p.send(*args)
        if ttl:
            p.send(b"PEXPIREAT", key, expire_at(rng))
        if i and i % 200_000 == 0:
            log(f"d1: {i}/{n} keys ({i / (time.time() - t0):.0f} keys/s)")
    p.finish()
    return n


def fill_d2(port, scale, rng):
    """1,000 x 1 MiB strings, 50 lists and 50 hashes of 100,000 elements (x scale)."""
    n_str = max(1, round(1000 * scale))
    n_list = max(1, round(50 * scale))
    n_hash = max(1, round(50 * scale))
    text = Text(rng)
    p = Pipeline(port)
    # printable 1 MiB values (base64 alphabet, incompressible for LZF): every tool emits them as is
    import base64
    for i in range(n_str):
        v = base64.b64encode(rng.randbytes(3 << 18))  # 786432 bytes -> 1 MiB of text
        assert len(v) == 1 << 20
        p.send(b"SET", b"blob:%06d" % i, v)
    for i in range(n_list):
        key = b"biglist:%04d" % i
        for _ in range(100):
            p.send(b"RPUSH", key, *[text(10, 28) for _ in range(1000)])
        log(f"d2: list {i + 1}/{n_list}")
    for i in range(n_hash):
        key = b"bighash:%04d" % i
        for c in range(100):
            args = [b"HSET", key]
            for j in range(c * 1000, c * 1000 + 1000):
                args.append(b"f:%06d" % j)
                args.append(text(5, 16))
            p.send(*args)
        log(f"d2: hash {i + 1}/{n_hash}")
    p.finish()
    return n_str + n_list + n_hash


def generate(kind, out, scale, version, seed):
    rng = random.Random(f"rdbkit-bench-{kind}-{seed}")
    fill = {"d1": fill_d1, "d2": fill_d2}[kind]
    with tempfile.TemporaryDirectory(prefix=f"rdbkit-gen-{kind}-") as tmp:
        srv = Server(version, tmp)
        try:
            t0 = time.time()
            n = fill(srv.port, scale, rng)
            size = srv.client.call("DBSIZE")
            if size != n:
                raise RuntimeError(f"DBSIZE {size}, expected {n}")
            log(f"{kind}: {n} keys written in {time.time() - t0:.1f}s; SAVE")
            srv.client.call("SAVE")
        finally:
            srv.stop()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_name(out.name + ".tmp")
        shutil.copyfile(Path(tmp) / "dump.rdb", tmp_out)
        os.replace(tmp_out, out)
    log(f"{kind}: wrote {out} ({out.stat().st_size / 1e6:.1f} MB, redis {version})")


def restore_stream(src, out):
    """Load src into 8.2 and write RESTORE commands for every key (DUMP payloads, absolute TTLs)."""
    with tempfile.TemporaryDirectory(prefix="rdbkit-restore-") as tmp:
        shutil.copyfile(src, Path(tmp) / "load.rdb")
        srv = Server("8.2", tmp, dbfilename="load.rdb")
        tmp_out = out.with_name(out.name + ".tmp")
        n = 0
        try:
            c = srv.client
            ver = c.call("INFO", "server")
            if b"redis_version:8." not in ver:
                raise RuntimeError("restore-stream needs Redis 8.x")
            with open(tmp_out, "wb", buffering=1 << 22) as f:
                cursor = b"0"
                while True:
                    cursor, keys = c.call("SCAN", cursor, "COUNT", 1000)
                    if keys:
                        req = b"".join(encode((b"DUMP", k)) + encode((b"PEXPIRETIME", k))
                                       for k in keys)
                        c.sock.sendall(req)
                        for k in keys:
                            payload, at = c.read(), c.read()
                            if payload is None:
                                continue
                            if at > 0:
                                f.write(encode((b"RESTORE", k, at, payload, b"ABSTTL")))
                            else:
                                f.write(encode((b"RESTORE", k, 0, payload)))
                            n += 1
                    if cursor == b"0":
                        break
            if n != c.call("DBSIZE"):
                raise RuntimeError("key count changed during SCAN")
        finally:
            srv.stop()
        os.replace(tmp_out, out)
    log(f"restore-stream: {n} RESTORE commands -> {out} ({out.stat().st_size / 1e6:.1f} MB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=["d1", "d2", "restore-stream"])
    ap.add_argument("input", type=Path, help="OUT.rdb (d1, d2) or IN.rdb (restore-stream)")
    ap.add_argument("output", type=Path, nargs="?", help="OUT.resp (restore-stream)")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--redis", default="8.2", choices=["8.2", "7.0", "6.2"],
                    help="producing server (d1/d2); 6.2 writes RDB 9")
    ap.add_argument("--seed", default="1")
    a = ap.parse_args()
    if a.kind == "restore-stream":
        if a.output is None:
            ap.error("restore-stream needs IN.rdb OUT.resp")
        restore_stream(a.input, a.output)
    else:
        if a.output is not None:
            ap.error("d1/d2 take one OUT.rdb")
        if not 0 < a.scale <= 10:
            ap.error("--scale must be in (0, 10]")
        generate(a.kind, a.input, a.scale, a.redis, a.seed)


if __name__ == "__main__":
    main()
