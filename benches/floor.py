"""The floor of the performance issue: what Polars alone needs to scan an event log and
sort it by (user, time) — the first step of every journey pipeline.

    bench-data/.venv/bin/python benches/floor.py ev_10m.parquet

(the venv benches/compare_peers.sh creates has polars).
"""
import sys
import time

import polars as pl

f = sys.argv[1]
t = time.perf_counter()
df = pl.scan_parquet(f).select("user_id", "ts", "channel", "event").collect()
t1 = time.perf_counter()
s = df.sort(["user_id", "ts"], multithreaded=True)
t2 = time.perf_counter()
print(f"scan {t1 - t:.2f}s  sort(user_id, ts) {t2 - t1:.2f}s  total {t2 - t:.2f}s  rows {df.height}")
