#!/usr/bin/env bash
# The cost of staging (docs/sources.md): the same generated log read as it is, staged (an
# erasure list naming nobody: every row goes through the staging pass), and staged with an
# identity map that joins every two users into one person.
#
#   benches/sources.sh                   # 1,050,000 users ≈ 10M events
#   USERS=105000 REPS=3 benches/sources.sh
#
# Prints wall seconds (median of REPS runs, whole process) and the peak resident memory.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/touchpoint-target}
WORK=${WORK:-$(pwd)/bench-data}
USERS=${USERS:-1050000}
REPS=${REPS:-3}
mkdir -p "$WORK"
cargo build --release -q
BIN=$CARGO_TARGET_DIR/release/touchpoint
LOG=$WORK/events_${USERS}.parquet
[ -f "$LOG" ] || "$BIN" generate --users "$USERS" --seed 42 --out "$LOG" >/dev/null
printf 'person_id\nnobody\n' > "$WORK/erase_nobody.csv"
MAP=$WORK/identity_${USERS}.csv
[ -f "$MAP" ] || python3 -c "
import sys
n = int(sys.argv[1])
with open(sys.argv[2], 'w') as f:
    f.write('alias_id,person_id\n')
    for i in range(n):
        f.write(f'u{i:07d},P{i // 2:07d}\n')
" "$USERS" "$MAP"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # name, extra args…
  local name=$1; shift
  local walls=() rss=()
  for _ in $(seq "$REPS"); do
    out=$(mktemp -d)/o
    s=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" attribute --events "$LOG" --out "$out" \
      --models first_touch,last_touch,linear,markov --bootstrap 0 -q "$@" >/dev/null
    e=$(date +%s.%N)
    walls+=("$(echo "$e - $s" | bc)")
    rss+=("$(cat "$WORK/rss")")
    rm -rf "$(dirname "$out")"
  done
  printf "%-14s %8.2f s %8d MB\n" "$name" "$(printf '%s\n' "${walls[@]}" | median)" \
    "$(( $(printf '%s\n' "${rss[@]}" | median) / 1024 ))"
}
run plain
run staged --erasure-list "$WORK/erase_nobody.csv"
run identity_map --identity-map "$MAP"
