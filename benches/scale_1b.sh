#!/usr/bin/env bash
# One billion events on one 2-core machine: shards run one after the other, then merge.
#
#   benches/scale_1b.sh                      # 100 files x ~10.2M events = ~1.02B events
#   FILES=10 SHARDS=2 benches/scale_1b.sh    # ~100M events, to try it quickly
#   SKIP_MERGE=1 benches/scale_1b.sh         # the shards only (then: touchpoint merge --bounded-memory …)
#
# Generates FILES Parquet files with `touchpoint generate` (1,050,000 users each, disjoint
# user ranges via --first-user, ~10.2M events and ~70 MB per file; skipped when present),
# then runs `touchpoint attribute --shard i/SHARDS` over all of them for each i, in turn, and
# `touchpoint merge`. Each shard reads every file (one 4M-row batch at a time) and keeps only
# its users, so its memory is bounded by its share of the events, not by the input size.
# Prints wall time and peak memory per shard and for the merge, from /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-$(pwd)/bench-data/1b}
FILES=${FILES:-100}
SHARDS=${SHARDS:-10}
MODELS=${MODELS:-first_touch,last_touch,linear,markov}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/touchpoint-target}
cargo build --release -q
TP="$CARGO_TARGET_DIR/release/touchpoint"
mkdir -p "$WORK/events"

for i in $(seq 0 $((FILES - 1))); do
  f="$WORK/events/part-$(printf %03d "$i").parquet"
  [ -f "$f" ] || "$TP" generate --users 1050000 --first-user $((i * 1050000)) --seed 42 --out "$f" -q >/dev/null
done

timed() { # label, command...
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$WORK/$label.time" "$@" > "$WORK/$label.json"
  read -r wall kb < "$WORK/$label.time"
  printf '%-10s %8.1f s %8.2f GB peak\n' "$label" "$wall" "$(echo "$kb / 1048576" | bc -l)"
}

rm -rf "$WORK/partials" "$WORK/out"
start=$(date +%s.%N)
for i in $(seq 0 $((SHARDS - 1))); do
  timed "shard-$i" "$TP" attribute --events "$WORK/events" --shard "$i/$SHARDS" \
    --out "$WORK/partials/$i" --models "$MODELS" -q
done
[ -n "${SKIP_MERGE:-}" ] && exit 0
# --bounded-memory: the in-memory merge of 47M distinct paths does not fit 24 GB
# (MERGE_FLAGS= runs it anyway).
timed merge "$TP" merge "$WORK"/partials/* --out "$WORK/out" ${MERGE_FLAGS---bounded-memory} -q
end=$(date +%s.%N)
events=$(python3 -c "import json;print(json.load(open('$WORK/merge.json'))['events'])")
printf 'total      %8.1f s for %s events (%s files, %s shards)\n' \
  "$(echo "$end - $start" | bc -l)" "$events" "$FILES" "$SHARDS"
