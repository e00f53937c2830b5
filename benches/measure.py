#!/usr/bin/env python3
"""Measurement phase of benches/compare.sh: runs every command N times, prints the table and
writes benches/RESULTS.md. Standard library only; run it through compare.sh, which builds the
binaries, installs the peers and generates the datasets first.

Each comparison's commands run interleaved (rdbkit, peer, rdbkit, peer, ...) so that background
load hits both alike. Per run: wall time (perf_counter around fork/wait4), CPU time (user + sys of
the child and its waited-for descendants, from wait4's rusage) and peak RSS (GNU time's %M). The table
shows the median of each over the runs. Import runs also record the CPU the target redis-server
spent (from /proc/PID/stat), flush the server before each run (untimed) and check DBSIZE after.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
TIME = "/usr/bin/time"  # GNU time (Debian package `time`), for peak RSS


def log(msg):
    print(f"measure: {msg}", file=sys.stderr, flush=True)


def rel(p):
    p = Path(os.path.abspath(p))
    if str(p) == sys.executable:
        return "python3"
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(p)


class Cmd:
    """One benchmarked command line: argv plus optional stdin/stdout files and environment."""

    def __init__(self, tool, argv, stdin=None, stdout="/dev/null", env=None, before=None,
                 check=None, note=None):
        self.tool = tool
        self.note = note  # shown above the command in RESULTS.md
        self.argv = [str(a) for a in argv]
        self.stdin = stdin
        self.stdout = stdout
        self.env = env or {}
        self.before = before  # callable run (untimed) before each run
        self.check = check  # callable(result) -> error string or None, after each run
        self.runs = []

    def shell(self):
        s = " ".join(shlex.quote(rel(a) if os.path.isabs(a) and Path(a).exists() else a)
                     for a in self.argv)
        env = " ".join(f"{k}={shlex.quote(rel(v))}" for k, v in self.env.items())
        if env:
            s = f"{env} {s}"
        if self.stdin:
            s += f" < {rel(self.stdin)}"
        if self.stdout:
            s += f" > {self.stdout}"
        return s

    def run(self, server_pid=None):
        if self.before:
            self.before()
        env = dict(os.environ, **self.env)
        fin = open(self.stdin, "rb") if self.stdin else subprocess.DEVNULL
        fout = open(self.stdout, "wb") if self.stdout else subprocess.DEVNULL
        with tempfile.TemporaryFile() as ferr, tempfile.NamedTemporaryFile("r") as ftime:
            # Peak RSS comes from GNU time's %M: a process forked from this Python inherits its
            # ~30 MB high-water mark across exec, so wait4's ru_maxrss would never read lower.
            # Wall (perf_counter) and CPU (wait4: time + its child, µs resolution) are ours.
            argv = [TIME, "-f", "%M", "-o", ftime.name, *self.argv]
            cpu0 = proc_cpu(server_pid)
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, stdin=fin, stdout=fout, stderr=ferr, env=env)
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            cpu1 = proc_cpu(server_pid)
            p.returncode = os.waitstatus_to_exitcode(status)
            ferr.seek(0)
            err = ferr.read()[-2000:].decode(errors="replace")
            lines = ftime.read().split()
            rss_kb = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        for f in (fin, fout):
            if hasattr(f, "close"):
                f.close()
        r = {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "user": ru.ru_utime,
             "sys": ru.ru_stime, "rss_kb": rss_kb, "rc": p.returncode}
        if server_pid:
            r["server_cpu"] = cpu1 - cpu0
        if p.returncode != 0:
            r["error"] = f"exit {p.returncode}: {err.strip()[-500:]}"
        elif self.check:
            problem = self.check(r)
            if problem:
                r["error"] = problem
        if "error" in r:
            log(f"{self.tool}: {r['error']}")
        self.runs.append(r)
        return r

    def ok_runs(self):
        return [r for r in self.runs if "error" not in r]

    def median(self, field):
        vals = [r[field] for r in self.ok_runs() if field in r]
        return statistics.median(vals) if vals else None


def proc_cpu(pid):
    """CPU seconds of a process (or the sum over a list of them, a cluster's nodes)."""
    if not pid:
        return 0.0
    if isinstance(pid, (list, tuple)):
        return sum(proc_cpu(p) for p in pid)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


class Comparison:
    """rdbkit vs peers on one dataset and operation; ratio = peer time / rdbkit time."""

    def __init__(self, dataset, op, cmds, target=None, keys=None, size=None, server_pid=None):
        self.dataset, self.op, self.cmds = dataset, op, cmds
        self.target = target  # (kind, value): ("ratio", 5.0) or ("gbps", 3.0) or ("ratio", 0.95)
        self.keys, self.size = keys, size
        self.server_pid = server_pid

    def run(self, runs):
        for i in range(runs):
            for c in self.cmds:
                r = c.run(self.server_pid)
                log(f"{self.dataset} {self.op} {c.tool} run {i + 1}/{runs}: "
                    f"{r['wall']:.2f}s wall, {r['cpu']:.2f}s cpu, {r['rss_kb'] / 1024:.0f} MB")


# ---------------------------------------------------------------------------------------------


def info_keys(rdbkit, path):
    out = subprocess.run([rdbkit, "info", "--json", path], check=True, capture_output=True).stdout
    return json.loads(out)["keys"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_cluster_port():
    """A free port P with P + 10000 free too (a cluster node's bus port), so P <= 55535."""
    import random
    for _ in range(1000):
        p = random.randint(20000, 55535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", p))
                b.bind(("127.0.0.1", p + 10000))
                return p
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class RedisServer:
    def __init__(self, binary, cli, workdir, extra=(), name="import-server", port=free_port):
        self.cli = cli
        log_path = Path(workdir) / f"{name}.log"
        for _ in range(5):  # a free port may be taken before the server binds it: try another
            self.port = port()
            self.log = open(log_path, "wb")
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(workdir), "--dbfilename", f"{name}.rdb",
                 *extra],
                stdout=self.log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 60  # a loaded machine starts servers slowly
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self.call("PING") == "PONG":
                    return
                time.sleep(0.05)
            self.stop()
            self.log.close()
            if "Address already in use" not in log_path.read_text(errors="replace"):
                break
        raise RuntimeError(f"redis-server {name} did not start:\n{log_path.read_text(errors='replace')[-2000:]}")

    def call(self, *args):
        r = subprocess.run([self.cli, "-p", str(self.port), *map(str, args)],
                           capture_output=True, text=True)
        return r.stdout.strip()

    def flush(self):
        if self.call("FLUSHALL", "SYNC") != "OK":
            raise RuntimeError("FLUSHALL failed")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class RedisCluster:
    """Three 8.2 primaries on loopback, slots split evenly (as tests/it/common's cluster())."""

    def __init__(self, binary, cli, workdir):
        self.nodes = []
        for i in range(3):
            d = Path(workdir) / f"cluster-{i}"
            d.mkdir()
            self.nodes.append(RedisServer(binary, cli, d, ("--cluster-enabled", "yes",
                                                           "--cluster-config-file", "nodes.conf"),
                                          name=f"cluster-{i}", port=free_cluster_port))
        for i, n in enumerate(self.nodes):
            a, b = i * 5462, min((i + 1) * 5462, 16384) - 1
            if n.call("CLUSTER", "ADDSLOTSRANGE", a, b) != "OK":
                raise RuntimeError("CLUSTER ADDSLOTSRANGE failed")
        for n in self.nodes[1:]:
            self.nodes[0].call("CLUSTER", "MEET", "127.0.0.1", n.port)
        for _ in range(600):
            infos = [n.call("CLUSTER", "INFO") for n in self.nodes]
            if all("cluster_state:ok" in i and "cluster_known_nodes:3" in i for i in infos):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the benchmark cluster did not form in 30 s")
        self.port = self.nodes[0].port
        self.pids = [n.proc.pid for n in self.nodes]

    def dbsize(self):
        return sum(int(n.call("DBSIZE") or 0) for n in self.nodes)

    def flush(self):
        for n in self.nodes:
            n.flush()

    def stop(self):
        for n in self.nodes:
            n.stop()


def verify_vs_import(dataset, rdbkit, path, keys, size, srv, where, pids):
    """verify and import of the same dump into the same target, interleaved; the ratio is
    verify's speed relative to the import's (goal: at least half, i.e. ≤ 2× its wall time)."""
    url = f"redis://127.0.0.1:{srv.port}"
    imp = [rdbkit, "import", path, "--target", url, "--quiet"]
    dbsize = srv.dbsize if hasattr(srv, "dbsize") else lambda: int(srv.call("DBSIZE") or 0)

    def loaded():  # untimed: the dump imported, unless the previous run left it there
        if dbsize() != keys:
            srv.flush()
            subprocess.run(imp, check=True, stdout=subprocess.DEVNULL)

    def holds_all(r):
        return None if dbsize() == keys else f"DBSIZE {dbsize()} after import, expected {keys}"

    note_v = (f"untimed before each run: the dump imported into the target unless it holds its "
              f"{keys} keys already; exit 0 = every key equal. Target: {where}")
    note_i = f"untimed before each run: FLUSHALL SYNC on every node; after: {keys} keys. Target: {where}"
    cmds = [Cmd("rdbkit verify", [rdbkit, "verify", path, "--target", url], before=loaded,
                note=note_v),
            Cmd("rdbkit import", imp, before=srv.flush, check=holds_all, note=note_i)]
    return Comparison(dataset, f"verify vs import ({where.split(':')[0]})", cmds,
                      ("speed", 0.5), keys, size, server_pid=pids)


# ---------------------------------------------------------------------------------------------
# Report


def fmt(v, spec, none="–"):
    return none if v is None else format(v, spec)


def rate(n, secs):
    return None if n is None or not secs else n / secs


def build_table(comps):
    head = ["dataset", "operation", "tool", "wall s", "CPU s", "peak RSS MB", "keys/s", "MB/s",
            "speed vs rdbkit (wall)", "CPU vs rdbkit", "target", "server CPU s"]
    rows = []
    for comp in comps:
        base = comp.cmds[0]
        bw, bc = base.median("wall"), base.median("cpu")
        for i, c in enumerate(comp.cmds):
            w, cpu = c.median("wall"), c.median("cpu")
            rss = c.median("rss_kb")
            keys_s = rate(comp.keys, w) if comp.keys and not c.tool.startswith("wc") else None
            mb_s = rate(comp.size / 1e6, w) if comp.size else None
            ratio = cratio = None
            target = ""
            if i > 0 and w and bw:
                ratio = w / bw  # how many times faster rdbkit is than this peer
                cratio = cpu / bc if bc else None
            mark = lambda got, val: "✓" if got >= val else "✗"
            if comp.target and c is base:
                kind, val = comp.target
                if kind == "gbps" and w and cpu:
                    got, got_cpu = comp.size / 1e9 / w, comp.size / 1e9 / cpu
                    target = (f"≥ {val:g} GB/s: wall {got:.2f} {mark(got, val)}, "
                              f"per CPU-s {got_cpu:.2f} {mark(got_cpu, val)}")
            if comp.target and i == 1 and ratio is not None:
                kind, val = comp.target
                if kind == "ratio":
                    target = f"≥ {val:g}×: wall {ratio:.2f}× {mark(ratio, val)}"
                    if cratio is not None:
                        target += f", CPU {cratio:.2f}× {mark(cratio, val)}"
                elif kind == "speed":  # rdbkit's throughput relative to the peer's (wall only)
                    target = f"{base.tool} ≥ {val:g}× {c.tool} speed: {ratio:.2f}× {mark(ratio, val)}"
            failed = len(c.runs) - len(c.ok_runs())
            tool = c.tool + (f" ({failed}/{len(c.runs)} runs FAILED)" if failed else "")
            rows.append([
                comp.dataset, comp.op, tool, fmt(w, ".2f"), fmt(cpu, ".2f"),
                fmt(rss / 1024 if rss is not None else None, ".0f"),
                fmt(keys_s, ",.0f"), fmt(mb_s, ",.0f"),
                "1.00× (base)" if (i == 0 and len(comp.cmds) > 1) else (fmt(ratio, ".2f") + "×" if ratio else "–"),
                fmt(cratio, ".2f") + "×" if cratio else "–",
                target,
                fmt(c.median("server_cpu"), ".2f"),
            ])
    return head, rows


def markdown(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def text_table(head, rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def machine_info():
    return "\n".join([
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- nproc: {sh('nproc')}",
        f"- kernel: {platform.release()}",
        f"- memory: {sh('free -h | sed -n 2p')}",
        "- lscpu:",
        "",
        "```",
        sh("lscpu | head -n 15"),
        "```",
    ])


def write_results(path, args, comps, head, rows, files, load_before, load_after, elapsed):
    cmds = []
    for comp in comps:
        for c in comp.cmds:
            note = f"\n# ({c.note})" if c.note else ""
            cmds.append(f"# {comp.dataset} {comp.op} — {c.tool}{note}\n{c.shell()}")
    file_lines = [f"| {name} | {rel(p)} | {os.path.getsize(p) / 1e6:,.1f} MB | {keys if keys is not None else '–'} |"
                  for name, p, keys in files]
    text = f"""# rdbkit vs peers: results

Generated by `benches/compare.sh --scale {args.scale:g} --runs {args.runs}` (median of {args.runs} runs per
command, page cache warm; each comparison's commands interleaved). Ratios: peer wall time /
rdbkit wall time, so > 1 means rdbkit is faster (for import: redis-cli --pipe time / rdbkit time,
i.e. rdbkit's speed relative to `redis-cli --pipe`). Peak RSS includes the pages of the
memory-mapped input that were touched (rdbkit maps the file). "server CPU s": CPU the target
redis-server spent during an import run. Targets are checked on wall time and on CPU time (user +
sys): on a loaded machine the CPU figures are the steadier ones.

rdbkit: `{rel(args.rdbkit)}` ({args.rdbkit_version}); peers: rdb-rs = crates.io `rdb` 0.4.0
(`rdb -f nil|json|protocol`), rdbtools = PyPI `rdbtools` 0.1.15 + `python-lzf` (RDB ≤ 9 only, so it
reads a smaller D1 written by Redis 6.2); import target: Redis 8.2.3, `redis-cli` 7.0.15.

Load average before / after (the machine is shared): {load_before} / {load_after}; measured at
niceness {os.nice(0)} ({sh("cat /proc/self/autogroup") or "no autogroup"}). Measurement
phase took {elapsed / 60:.1f} min.

## Results

{markdown(head, rows)}

## Datasets

| name | file | size | keys |
|---|---|---|---|
{chr(10).join(file_lines)}

Generated by `benches/gen_dataset.py` (seeded; see its docstring), cached under
`target/bench-data/`.

## Machine

{machine_info()}

## Exact commands

```sh
{chr(10).join(cmds)}
```
"""
    Path(path).write_text(text)


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rdbkit", required=True)
    ap.add_argument("--rdbkit-version", default="")
    ap.add_argument("--rdb-rs", help="rdb-rs binary (absent: not measured)")
    ap.add_argument("--rdbtools", help="pip --target dir with rdbtools (absent: not measured)")
    ap.add_argument("--d1", required=True)
    ap.add_argument("--d2")
    ap.add_argument("--d1-rdb9", help="small D1 written by Redis 6.2 for rdbtools")
    ap.add_argument("--restore-d1", help="RESTORE stream of D1")
    ap.add_argument("--restore-d2", help="RESTORE stream of D2")
    ap.add_argument("--server", required=True, help="redis-server 8.2 for the import target")
    ap.add_argument("--cli", required=True, help="redis-cli")
    ap.add_argument("--results", default=str(REPO / "benches" / "RESULTS.md"))
    ap.add_argument("--skip", action="append", default=[],
                    help="skip operations: scan, info, jsonl, resp, rdbtools, import, verify")
    a = ap.parse_args()
    a.rdbkit = str(Path(a.rdbkit).resolve())

    comps = []
    files = []
    datasets = [("D1", a.d1, a.restore_d1)]
    if a.d2:
        datasets.append(("D2", a.d2, a.restore_d2))
    workdir = tempfile.mkdtemp(prefix="rdbkit-measure-")
    server = None
    cluster = None
    load_before = sh("cut -d' ' -f1-3 /proc/loadavg")
    t_start = time.time()
    try:
        for name, path, restore in datasets:
            path = str(Path(path).resolve())
            keys = info_keys(a.rdbkit, path)
            size = os.path.getsize(path)
            files.append((name, path, keys))
            C = lambda op, cmds, target=None, **kw: comps.append(
                Comparison(name, op, cmds, target, keys, size, **kw))
            if "scan" not in a.skip:
                C("memory scan (wc -l)", [Cmd("wc -l", ["wc", "-l", path])])
            rs = a.rdb_rs
            if "info" not in a.skip:
                C("full decode (info / -f nil)",
                  [Cmd("rdbkit info", [a.rdbkit, "info", path])]
                  + ([Cmd("rdb-rs -f nil", [rs, "-f", "nil", path])] if rs else []),
                  ("ratio", 5.0) if name == "D1" else ("gbps", 3.0))
            if "jsonl" not in a.skip:
                C("JSON export",
                  [Cmd("rdbkit export jsonl", [a.rdbkit, "export", "--format", "jsonl", path])]
                  + ([Cmd("rdb-rs -f json", [rs, "-f", "json", path])] if rs else []),
                  ("ratio", 4.0))
            if "resp" not in a.skip:
                C("RESP export",
                  [Cmd("rdbkit export resp", [a.rdbkit, "export", "--format", "resp", path])]
                  + ([Cmd("rdb-rs -f protocol", [rs, "-f", "protocol", path])] if rs else []),
                  ("ratio", 20.0))
            if "import" not in a.skip:
                if server is None:
                    server = RedisServer(a.server, a.cli, workdir)
                srv = server

                def dbsize_is(n=keys, srv=srv):
                    return lambda r: None if srv.call("DBSIZE") == str(n) else \
                        f"DBSIZE {srv.call('DBSIZE')} after import, expected {n}"

                note = (f"untimed before each run: redis-cli -p {srv.port} FLUSHALL SYNC; after: "
                        f"DBSIZE must be {keys}. Target: {rel(a.server)} --port {srv.port} "
                        "--bind 127.0.0.1 --save '' --appendonly no")
                cmds = [Cmd("rdbkit import",
                            [a.rdbkit, "import", path, "--target",
                             f"redis://127.0.0.1:{srv.port}", "--quiet"],
                            before=srv.flush, check=dbsize_is(), note=note)]
                if restore:
                    cmds.append(Cmd("redis-cli --pipe (RESTORE stream)",
                                    [a.cli, "-p", str(srv.port), "--pipe"],
                                    stdin=str(Path(restore).resolve()),
                                    before=srv.flush, check=dbsize_is(), note=note))
                C("import into empty 8.2", cmds, ("speed", 0.95), server_pid=srv.proc.pid)
            if "verify" not in a.skip and name == "D1":
                if server is None:
                    server = RedisServer(a.server, a.cli, workdir)
                comps.append(verify_vs_import(
                    name, a.rdbkit, path, keys, size, server,
                    "8.2: one redis-server --save '' --appendonly no", server.proc.pid))
                if cluster is None:
                    cluster = RedisCluster(a.server, a.cli, workdir)
                comps.append(verify_vs_import(
                    name, a.rdbkit, path, keys, size, cluster,
                    "cluster: three 8.2 primaries (--cluster-enabled yes), slots split evenly; "
                    "server CPU summed over the three", cluster.pids))
        if a.d1_rdb9 and "rdbtools" not in a.skip:
            path = str(Path(a.d1_rdb9).resolve())
            keys = info_keys(a.rdbkit, path)
            size = os.path.getsize(path)
            files.append(("D1-small (RDB 9)", path, keys))
            cmds = [Cmd("rdbkit export jsonl", [a.rdbkit, "export", "--format", "jsonl", path])]
            if a.rdbtools:
                cmds.append(Cmd("rdbtools --command json",
                                [sys.executable, Path(a.rdbtools) / "bin" / "rdb",
                                 "--command", "json", path],
                                env={"PYTHONPATH": str(Path(a.rdbtools).resolve())}))
            if a.rdb_rs:
                cmds.append(Cmd("rdb-rs -f json", [a.rdb_rs, "-f", "json", path]))
            comps.append(Comparison("D1-small (RDB 9)", "JSON export", cmds, None, keys, size))

        # warm the page cache, then measure
        for _, p, _ in files:
            with open(p, "rb") as f:
                while f.read(1 << 24):
                    pass
        for restore in (a.restore_d1, a.restore_d2):
            if restore and os.path.exists(restore):
                with open(restore, "rb") as f:
                    while f.read(1 << 24):
                        pass
        for comp in comps:
            comp.run(a.runs)
    finally:
        if server:
            server.stop()
        if cluster:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.time() - t_start
    load_after = sh("cut -d' ' -f1-3 /proc/loadavg")
    raw = [{"dataset": comp.dataset, "op": comp.op, "keys": comp.keys, "bytes": comp.size,
            "tool": c.tool, "command": c.shell(), "runs": c.runs}
           for comp in comps for c in comp.cmds]
    raw_path = Path(a.results).resolve().with_suffix(".json")
    if raw_path.parent == REPO / "benches":
        raw_path = REPO / "target" / "bench-data" / f"results-s{a.scale:g}.json"
    raw_path.write_text(json.dumps(raw, indent=1))
    log(f"raw runs: {rel(raw_path)}")
    head, rows = build_table(comps)
    print(text_table(head, rows))
    write_results(a.results, a, comps, head, rows, files, load_before, load_after, elapsed)
    log(f"wrote {rel(a.results)}")
    failed = sum(len(c.runs) - len(c.ok_runs()) for comp in comps for c in comp.cmds)
    if failed:
        log(f"{failed} runs failed (see above)")
        sys.exit(1)


if __name__ == "__main__":
    main()
