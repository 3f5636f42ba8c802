#!/usr/bin/env bash
# Spark (local mode) building the path table with the SQL of docs/scale.md, against
# touchpoint on the same generated log (journeys cut the same way: conversions are not
# touches, 30-day lookback), then touchpoint solving Spark's table with --paths.
#
#   benches/spark_paths.sh            # 1,050,000 users ≈ 10M events
#   USERS=105000 benches/spark_paths.sh
#
# Needs the venv the Spark tests create (~/.cache/touchpoint-spark-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/touchpoint-target}
WORK=${WORK:-$(pwd)/bench-data}
USERS=${USERS:-1050000}
PY=${PY:-$HOME/.cache/touchpoint-spark-venv/bin/python}
mkdir -p "$WORK"
cargo build --release -q
BIN=$CARGO_TARGET_DIR/release/touchpoint
LOG=$WORK/events_${USERS}.parquet
[ -f "$LOG" ] || "$BIN" generate --users "$USERS" --seed 42 --out "$LOG" >/dev/null
MODELS="first_touch,last_touch,linear,markov"
s=$(date +%s.%N)
"$BIN" attribute --events "$LOG" --out "$WORK/tp_events" --conversion-is-touch false --lookback-days 30 \
  --models "$MODELS" --bootstrap 0 -q >/dev/null 2>&1
e=$(date +%s.%N)
printf "touchpoint on the events          %8.2f s\n" "$(echo "$e - $s" | bc)"
s=$(date +%s.%N)
"$PY" benches/spark_paths.py "$LOG" "$WORK/spark_paths" "${MASTER:-local[2]}"
e=$(date +%s.%N)
printf "spark, whole process              %8.2f s\n" "$(echo "$e - $s" | bc)"
PART=$(ls "$WORK"/spark_paths/part-*.parquet | head -1)
s=$(date +%s.%N)
"$BIN" attribute --paths "$PART" --out "$WORK/tp_paths" --models "$MODELS" --bootstrap 0 -q >/dev/null 2>&1
e=$(date +%s.%N)
printf "touchpoint --paths on Spark's table %6.2f s\n" "$(echo "$e - $s" | bc)"
