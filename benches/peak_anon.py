#!/usr/bin/env python3
"""Peak memory of a command, sampled from /proc every 5 ms: anonymous memory (RssAnon: heap,
buffers; what the issue's memory bound is about for mapped inputs) and total RSS (VmRSS: also the
pages of a memory-mapped dump that were touched, which the kernel can drop at will).

Usage: benches/peak_anon.py CMD [ARGS...]      e.g.
  benches/peak_anon.py target/release/rdbkit import target/bench-data/d2-s1.rdb --target redis://127.0.0.1:6379 -q
Sampling can miss a peak shorter than 5 ms; the figures are a lower bound.
"""
import subprocess
import sys
import time

proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
anon = rss = 0
while proc.poll() is None:
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = max(anon, int(line.split()[1]))
                elif line.startswith("VmRSS:"):
                    rss = max(rss, int(line.split()[1]))
    except (FileNotFoundError, ProcessLookupError):
        break
    time.sleep(0.005)
print(f"peak RssAnon {anon / 1024:.1f} MiB, peak VmRSS {rss / 1024:.1f} MiB, exit {proc.returncode}")
sys.exit(proc.returncode)
