#!/usr/bin/env bash
# Side-by-side benchmark of touchpoint and the peers on the same generated event logs.
#
#   benches/compare_peers.sh                 # 1M events
#   SIZES="105000 1050000" benches/compare_peers.sh   # users per size: ~1M and ~10M events
#   PEER_PHASES="paths,ca_markov_o1" benches/compare_peers.sh
#
# Needs python3 (the machine's) and the shared bench tools (../shared/bench: gen_events.py,
# peers.py). Creates a virtualenv under $WORK/.venv from PyPI (numpy, pandas, polars, pyarrow,
# matplotlib, ChannelAttribution, marketing-attribution-models), generates the logs once, runs
# touchpoint (release build) and every peer phase in its own process, and prints a table of
# wall time, peak memory and ratios, plus the agreement checks: first/last/linear equal to
# ChannelAttribution's heuristics, Markov within ChannelAttribution's simulation noise
# (research/algorithms.md §6.10: |Δcredit| ≤ 1% of total conversions).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BENCH=${BENCH:-$ROOT/../shared/bench}
WORK=${WORK:-$ROOT/bench-data}
SIZES=${SIZES:-105000}
PEER_PHASES=${PEER_PHASES:-paths,ca_heuristic,ca_markov_o1,ca_markov_o3,mam}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/touchpoint-target}
mkdir -p "$WORK"

if [ ! -x "$WORK/.venv/bin/python" ]; then
  python3 -m venv "$WORK/.venv"
  "$WORK/.venv/bin/pip" install -q numpy pandas polars pyarrow matplotlib ChannelAttribution marketing-attribution-models
fi
PY="$WORK/.venv/bin/python"
cargo build --release -q
TP="$CARGO_TARGET_DIR/release/touchpoint"

for users in $SIZES; do
  ev="$WORK/ev_u${users}.parquet"
  [ -f "$ev" ] || "$PY" "$BENCH/gen_events.py" --users "$users" --channels 12 --days 60 --seed 42 --out "$ev" >&2
  # gen_events.py: a conversion row carries the channel of the touch it follows but is not a
  # touch itself, hence --conversion-is-touch false (the peers' journey rule).
  /usr/bin/time -f '{"wall_s": %e, "peak_rss_kb": %M}' -o "$WORK/tp_u${users}.time.json" \
    "$TP" attribute --events "$ev" --out "$WORK/tp_u${users}" --conversion-is-touch false \
      --models first_touch,last_touch,linear,markov -q > "$WORK/tp_u${users}.summary.json"
  "$PY" "$BENCH/peers.py" "$ev" --phases "$PEER_PHASES" >&2 || true
done
"$PY" "$ROOT/benches/compare_peers.py" "$WORK" $SIZES
