#!/usr/bin/env bash
# The merge of N shards: `touchpoint merge` (it streams the partials a block at a time).
# Prints each shard's cost and the merge's wall time and peak memory, median of REPS runs.
#
#   benches/merge.sh                      # 1,050,000 users ≈ 10M events, 4 shards
#   USERS=105000 SHARDS=3 REPS=3 benches/merge.sh
#
# Machine-dependent: to compare two builds, run it with BIN=<other binary> right after.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/touchpoint-target}
WORK=${WORK:-$(pwd)/bench-data}
USERS=${USERS:-1050000}
SHARDS=${SHARDS:-4}
REPS=${REPS:-5}
MODELS=${MODELS:-first_touch,last_touch,linear,markov}
mkdir -p "$WORK"
cargo build --release -q
BIN=${BIN:-$CARGO_TARGET_DIR/release/touchpoint}
LOG=$WORK/events_${USERS}.parquet
[ -f "$LOG" ] || "$BIN" generate --users "$USERS" --seed 42 --out "$LOG" >/dev/null
parts=()
for ((i = 0; i < SHARDS; i++)); do
  d=$WORK/merge_shard_$i
  rm -rf "$d"
  /usr/bin/time -f "%e %M" -o "$WORK/shard.time" "$BIN" attribute --events "$LOG" --shard "$i/$SHARDS" \
    --out "$d" --models "$MODELS" -q >/dev/null 2>&1
  read -r wall kb < "$WORK/shard.time"
  printf 'shard %d/%d                 %8.2f s %6.2f GB\n' "$i" "$SHARDS" "$wall" "$(echo "$kb / 1048576" | bc -l)"
  parts+=("$d")
done
times=()
for ((r = 0; r < REPS; r++)); do
  rm -rf "$WORK/merged"
  /usr/bin/time -f "%e %M" -o "$WORK/merge.time" "$BIN" merge "${parts[@]}" --out "$WORK/merged" -q >/dev/null 2>&1
  read -r wall kb < "$WORK/merge.time"
  times+=("$wall $kb")
done
printf '%s\n' "${times[@]}" | sort -n | awk -v n="$REPS" '
  { w[NR] = $1; m[NR] = $2 }
  END { printf "merge of the shards (median of %d)  %8.2f s %6.2f GB  (runs %.2f-%.2f s)\n", n, w[int((n + 1) / 2)], m[int((n + 1) / 2)] / 1048576, w[1], w[n] }'
