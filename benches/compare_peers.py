#!/usr/bin/env python3
"""Print the comparison table of benches/compare_peers.sh and check the agreement."""
import json
import sys

import polars as pl

work, sizes = sys.argv[1], sys.argv[2:]
failed = False
for users in sizes:
    stem = f"{work}/ev_u{users}"
    peers = json.load(open(f"{stem}.peers.json"))
    tp_time = json.load(open(f"{work}/tp_u{users}.time.json"))
    tp_wall, tp_mb = tp_time["wall_s"], tp_time["peak_rss_kb"] / 1024
    rows = (peers.get("data_stats") or {}).get("rows")
    print(f"\n## {rows or '?'} events ({users} users)\n")
    print("| pipeline | wall s | peak MB | touchpoint faster by |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| touchpoint: read → journeys → first/last/linear/Markov o1 → tables | {tp_wall:.2f} | {tp_mb:,.0f} | – |")
    ph = peers.get("phases", {})

    def line(name, keys):
        recs = [ph.get(k) for k in keys]
        if any(r is None or r.get("status") != "ok" for r in recs):
            st = ", ".join(f"{k}: {(r or {}).get('status', 'not run')}" for k, r in zip(keys, recs))
            print(f"| {name} | – | – | ({st}) |")
            return
        wall = sum(r["proc_wall_s"] for r in recs)
        mb = max(r["peak_rss_mb"] for r in recs)
        print(f"| {name} | {wall:.2f} | {mb:,.0f} | {wall / tp_wall:.1f}× |")

    line("Python Polars journeys + ChannelAttribution heuristics + Markov o1", ["paths", "ca_heuristic", "ca_markov_o1"])
    line("Python Polars journeys + ChannelAttribution Markov o3", ["paths", "ca_markov_o3"])
    line("DP6 marketing-attribution-models, six models end to end", ["mam"])

    ca = pl.read_parquet(f"{work}/tp_u{users}/channel_attribution.parquet")
    res = peers.get("results", {})
    total = ca.filter(pl.col("model") == "first_touch")["conversions"].sum()

    def ours(model):
        d = ca.filter(pl.col("model") == model)
        return dict(zip(d["channel"], d["conversions"]))

    checks = []
    heur = res.get("ca_heuristic", {})
    for model, col in (("first_touch", "first_touch_conversions"), ("last_touch", "last_touch_conversions"),
                       ("linear", "linear_touch_conversions")):
        if col in heur:
            o = ours(model)
            diff = max(abs(o.get(ch, 0.0) - v) for ch, v in heur[col].items())
            checks.append((f"{model} vs ChannelAttribution heuristics", diff, 1e-6))
    mk = res.get("ca_markov_o1", {})
    if "total_conversions" in mk:
        o = ours("markov")
        diff = max(abs(o.get(ch, 0.0) - v) for ch, v in mk["total_conversions"].items())
        checks.append(("markov o1 vs ChannelAttribution (simulated)", diff, 0.01 * total))
    print("\n| check | max abs difference | bound | result |\n| --- | ---: | ---: | --- |")
    for name, diff, bound in checks:
        ok = diff <= bound
        failed |= not ok
        print(f"| {name} | {diff:.6g} | {bound:.6g} | {'ok' if ok else 'FAIL'} |")
sys.exit(1 if failed else 0)
