#!/usr/bin/env bash
# The Spark job (touchpoint.spark, PySpark local mode) against the CLI on the same
# generated log and settings: wall time of each, where Spark's time goes, and whether the
# credits agree.
#
#   benches/spark_job.sh                 # 1,050,000 users ≈ 10M events, local[2]
#   USERS=105000 MASTER='local[2]' benches/spark_job.sh
#
# Needs the venv and wheel of `cargo xtask python` (~/.cache/touchpoint-spark-venv).
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
rm -rf "$WORK/cli_job"
/usr/bin/time -f "%e %M" -o "$WORK/cli_job.time" "$BIN" attribute --events "$LOG" --out "$WORK/cli_job" \
  --models first_touch,last_touch,linear,markov --bootstrap 0 -q >/dev/null 2>&1
read -r wall kb < "$WORK/cli_job.time"
printf 'touchpoint CLI                     %8.2f s %6.2f GB peak\n' "$wall" "$(echo "$kb / 1048576" | bc -l)"
PYSPARK_PYTHON="$PY" "$PY" benches/spark_job.py "$LOG" "$WORK/cli_job" "${MASTER:-local[2]}"
