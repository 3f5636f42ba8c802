#!/usr/bin/env bash
# The cost of the bootstrap intervals: the same run with `--bootstrap 0` and with 200
# replicates, at Markov order 1, 2, 3 and `auto`, on a generated log (default ~10M events).
#
#   benches/bootstrap.sh                   # 1,050,000 users ≈ 10M events
#   USERS=105000 REPS=3 benches/bootstrap.sh
#
# Prints wall seconds (median of REPS runs, whole process) and the bootstrap phase's own
# milliseconds from the manifest. Machine-dependent: compare the ratios, not the seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/touchpoint-target}
WORK=${WORK:-$(pwd)/bench-data}
USERS=${USERS:-1050000}
REPS=${REPS:-3}
ORDERS=${ORDERS:-"1 2 3 auto"}
mkdir -p "$WORK"
cargo build --release -q
BIN=$CARGO_TARGET_DIR/release/touchpoint
LOG=$WORK/events_${USERS}.parquet
[ -f "$LOG" ] || "$BIN" generate --users "$USERS" --seed 42 --out "$LOG" >/dev/null
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf "%-6s %-10s %10s %14s\n" order bootstrap "wall s" "phase ms"
for order in $ORDERS; do
  for b in 0 200; do
    walls=()
    for _ in $(seq "$REPS"); do
      out=$(mktemp -d)/o
      s=$(date +%s.%N)
      "$BIN" attribute --events "$LOG" --out "$out" --markov-order "$order" --bootstrap "$b" -q >/dev/null
      e=$(date +%s.%N)
      walls+=("$(echo "$e - $s" | bc)")
      phase=$(python3 -c "import json,sys; print(json.load(open('$out/manifest.json'))['timings_ms'].get('bootstrap', 0))")
      rm -rf "$(dirname "$out")"
    done
    printf "%-6s %-10s %10.2f %14s\n" "$order" "$b" "$(printf '%s\n' "${walls[@]}" | median)" "$phase"
  done
done
