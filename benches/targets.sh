#!/usr/bin/env bash
# Issue 23's table of targets, measured side by side in one invocation: touchpoint, a Polars
# scan of the same file and (optionally) the Python peers and the Spark job.
#
#   benches/targets.sh                      # the single-machine rows (~25 min on 2 cores)
#   PEERS=1 SPARK=1 benches/targets.sh      # + Python Polars & ChannelAttribution, + Spark
#   SCALE_1B=1 benches/targets.sh           # + 1B events end to end (benches/scale_1b.sh, ~20 min)
#   USERS10=20000 USERS300=5000 USERS50=50000 REPS=1 benches/targets.sh   # a quick try of the script
#   REPS=5 TIMEOUT=1800 benches/targets.sh   # TIMEOUT: seconds per run (default 600)
#
# Whole-process wall time (median of REPS runs; one run for the 300-channel orders 2–3 and
# 50M rows) and peak RSS from /usr/bin/time; a run
# that passes TIMEOUT seconds is stopped and shown as "> TIMEOUT s". Logs come from
# `touchpoint generate` (kept in $WORK): 1,050,000 users (~10.2M events, 12 channels),
# 300,000 users with 300 channels (~2.9M events) and 5,250,000 users (~51M events); the
# peers row uses ../shared/bench/gen_events.py's log, as benches/compare_peers.sh does.
# Models everywhere: first touch, last touch, linear, Markov (the issue's measurements).
# Machine-dependent: compare the ratios, which are taken within one invocation.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/touchpoint-target}
WORK=${WORK:-$ROOT/bench-data}
REPS=${REPS:-3}
TIMEOUT=${TIMEOUT:-600}
SPARK_PY=${SPARK_PY:-$HOME/.cache/touchpoint-spark-venv/bin/python}
BENCH=${BENCH:-$ROOT/../shared/bench}
MODELS=first_touch,last_touch,linear,markov
mkdir -p "$WORK"
cargo build --release -q
TP=$CARGO_TARGET_DIR/release/touchpoint
log() { # users channels seed → path of a generated log (generated once)
  local f="$WORK/events_$1_$2ch.parquet"
  [ -f "$f" ] || "$TP" generate --users "$1" --channels "$2" --seed "$3" --out "$f" -q >/dev/null
  echo "$f"
}
need() { [ -f "$1" ] || { echo "could not generate $1" >&2; exit 1; }; }
EV10=$(log "${USERS10:-1050000}" 12 42)
need "$EV10"
CH300=$(log "${USERS300:-300000}" 300 5)
need "$CH300"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# tp LABEL REPS ARGS… → "median_wall max_rss_gb" of `touchpoint ARGS --out … -q`
# (">TIMEOUT NA" when a run is stopped, "FAIL NA" when it fails: see $WORK/t_LABEL.err)
tp() {
  local label=$1 reps=$2 walls=() rss=0 rc
  shift 2
  for _ in $(seq "$reps"); do
    rm -rf "$WORK/t_$label"
    rc=0
    timeout "$TIMEOUT" /usr/bin/time -f "%e %M" -o "$WORK/t_$label.time" \
      "$TP" "$@" --out "$WORK/t_$label" -q >/dev/null 2>"$WORK/t_$label.err" || rc=$?
    case $rc in
      0) ;;
      124) echo ">$TIMEOUT NA"; return ;;
      *) echo "FAIL NA"; return ;;
    esac
    read -r wall kb < "$WORK/t_$label.time"
    walls+=("$wall")
    rss=$(echo "if ($kb > $rss) $kb else $rss" | bc)
  done
  echo "$(printf '%s\n' "${walls[@]}" | median) $(printf "%.2f" "$(echo "$rss / 1048576" | bc -l)")"
}
# ratio A B: A / B; ">N" when A timed out (then A / B is at least N / B), NA when unknown.
ratio() {
  case "$1 $2" in
    *NA* | *FAIL* | *" >"* | *" ") echo NA ;;
    ">"*) echo ">$(echo "scale=1; ${1#>} / $2" | bc)" ;;
    *) echo "scale=2; $1 / $2" | bc ;;
  esac
}
# met X LIMIT: whether X ≤ LIMIT (metge: ≥); a timed-out ">N" is above any limit.
met() { case "$1" in NA | FAIL) echo "not run" ;; ">"*) echo no ;; *) [ "$(echo "$1 <= $2" | bc)" = 1 ] && echo yes || echo no ;; esac; }
metge() { case "$1" in NA | FAIL | ">"*) echo "not run" ;; *) [ "$(echo "$1 >= $2" | bc)" = 1 ] && echo yes || echo no ;; esac; }
row() { printf '| %s | %s | %s | %s |\n' "$@"; }

echo "| work | target | measured | met? |"
echo "| --- | --- | --- | --- |"

# 10M events, order 1: defaults (200 replicates) against --bootstrap 0, and the Polars scan.
read -r b0 b0gb <<< "$(tp b0 "$REPS" attribute --events "$EV10" --models $MODELS --bootstrap 0)"
read -r b200 b200gb <<< "$(tp b200 "$REPS" attribute --events "$EV10" --models $MODELS)"
r=$(ratio "$b200" "$b0")
row "10M, defaults (intervals on)" "≤ 1.5× \`--bootstrap 0\`" "$b200 s / $b200gb GB against $b0 s: ${r}×" "$(met "$r" 1.5)"
scan=NA
if "$SPARK_PY" -c "import polars" 2>/dev/null; then
  scans=()
  for _ in $(seq "$REPS"); do
    scans+=("$("$SPARK_PY" -c "
import time, polars as pl
t = time.perf_counter()
pl.scan_parquet('$EV10').select('user_id', 'ts', 'channel', 'event', 'revenue').collect()
print(f'{time.perf_counter() - t:.3f}')")")
  done
  scan=$(printf '%s\n' "${scans[@]}" | median)
fi
r=$(ratio "$b0" "$scan")
row "10M, \`--bootstrap 0\`" "≤ 2.3× a Polars scan of the five columns" "$b0 s against a scan of $scan s: ${r}×" "$(met "$r" 2.3)"

# Against Python Polars journeys + ChannelAttribution (the peers' log; a venv of its own, so
# compare_peers.sh, which installs more into $WORK/.venv, never finds a partial one there).
PY="$WORK/.venv-targets/bin/python"
if [ -n "${PEERS:-}" ] && [ ! -x "$PY" ]; then
  python3 -m venv "$WORK/.venv-targets" &&
    "$WORK/.venv-targets/bin/pip" install -q numpy pandas polars pyarrow ChannelAttribution >&2 ||
    rm -rf "$WORK/.venv-targets"
fi
if [ -n "${PEERS:-}" ] && [ -x "$PY" ] && [ -f "$BENCH/peers.py" ]; then
  GEN="$WORK/ev_u1050000.parquet"
  [ -f "$GEN" ] || "$PY" "$BENCH/gen_events.py" --users 1050000 --channels 12 --days 60 --seed 42 --out "$GEN" >&2
  read -r p0 _ <<< "$(tp peers0 "$REPS" attribute --events "$GEN" --conversion-is-touch false --models $MODELS --bootstrap 0)"
  read -r p200 _ <<< "$(tp peers200 "$REPS" attribute --events "$GEN" --conversion-is-touch false --models $MODELS)"
  py=$("$PY" "$BENCH/peers.py" "$GEN" --phases paths,ca_heuristic,ca_markov_o1 2>/dev/null |
    python3 -c "import json,sys; print(round(sum(json.loads(l).get('proc_wall_s') or 0 for l in sys.stdin if l.startswith('{')), 2))")
  r0=$(ratio "$py" "$p0")
  r200=$(ratio "$py" "$p200")
  row "against Python Polars + ChannelAttribution, 10M" "≥ 10× with intervals, ≥ 20× without" \
    "Python $py s; touchpoint $p200 s with (${r200}×), $p0 s without (${r0}×)" "$(metge "$r200" 10) / $(metge "$r0" 20)"
else
  row "against Python Polars + ChannelAttribution, 10M" "≥ 10× / ≥ 20×" "not run (PEERS=1; needs PyPI)" "not run"
fi

# Orders 2 and 3 on the 10M log, with and without the intervals.
for k in 2 3; do
  read -r w0 _ <<< "$(tp "o${k}b0" "$REPS" attribute --events "$EV10" --models $MODELS --markov-order $k --bootstrap 0)"
  read -r w200 gb <<< "$(tp "o${k}b200" "$REPS" attribute --events "$EV10" --models $MODELS --markov-order $k)"
  r=$(ratio "$w200" "$w0")
  row "10M, order $k with intervals" "≤ 2× without" "$w200 s / $gb GB against $w0 s: ${r}×" "$(met "$r" 2)"
done

# 300 channels: orders 1 and 2 with and without intervals, order 3 without.
read -r c10 _ <<< "$(tp c1b0 "$REPS" attribute --events "$CH300" --models $MODELS --bootstrap 0)"
read -r c1 _ <<< "$(tp c1b200 "$REPS" attribute --events "$CH300" --models $MODELS)"
r=$(ratio "$c1" "$c10")
row "300 channels, order 1" "defaults ≤ 2× \`--bootstrap 0\`" "$c1 s against $c10 s: ${r}×" "$(met "$r" 2)"
read -r c20 _ <<< "$(tp c2b0 1 attribute --events "$CH300" --models $MODELS --markov-order 2 --bootstrap 0)"
row "300 channels, order 2, \`--bootstrap 0\`" "≤ 10 s" "$c20 s" "$(met "$c20" 10)"
read -r c2 _ <<< "$(tp c2b200 1 attribute --events "$CH300" --models $MODELS --markov-order 2)"
r=$(ratio "$c2" "$c20")
row "300 channels, order 2" "defaults ≤ 2× \`--bootstrap 0\`" "$c2 s against $c20 s: ${r}×" "$(met "$r" 2)"
read -r c30 _ <<< "$(tp c3b0 1 attribute --events "$CH300" --models $MODELS --markov-order 3 --bootstrap 0)"
row "300 channels, order 3, \`--bootstrap 0\`" "≤ 30 s" "$c30 s" "$(met "$c30" 30)"

# 50M events with the defaults: peak memory.
EV50=$(log "${USERS50:-5250000}" 12 42)
need "$EV50"
read -r w50 gb50 <<< "$(tp m50 1 attribute --events "$EV50" --models $MODELS)"
row "50M, defaults" "≤ 3 GB peak" "$gb50 GB, $w50 s" "$(met "${gb50/NA/$w50}" 3)"

# 1B events end to end (shards one after another, then the merge).
if [ -n "${SCALE_1B:-}" ]; then
  s=$(date +%s.%N)
  benches/scale_1b.sh > "$WORK/scale_1b.txt"
  mins=$(echo "scale=1; ($(date +%s.%N) - $s) / 60" | bc)
  peak=$(awk '/GB peak/ {if ($4 > m) m = $4} END {print m}' "$WORK/scale_1b.txt")
  row "1B end to end" "≤ 12 min, ≤ 8 GB" "$mins min (with generating any missing files), $peak GB peak" \
    "$(met "$mins" 12) / $(met "$peak" 8)"
else
  row "1B end to end" "≤ 12 min, ≤ 8 GB" "not run (SCALE_1B=1)" "not run"
fi

# The Spark job against the CLI on the 10M log.
if [ -n "${SPARK:-}" ]; then
  rm -rf "$WORK/cli_job"
  "$TP" attribute --events "$EV10" --out "$WORK/cli_job" --models $MODELS --bootstrap 0 -q >/dev/null
  # Each mode in its own session: the default (Spark sorts each partition, 1M-row chunks),
  # then CHUNK_ROWS=0 (no Spark sort, each partition one chunk).
  for mode in default 0; do
    job=$(CHUNK_ROWS=$([ "$mode" = 0 ] && echo 0 || echo 1000000) PYSPARK_PYTHON="$SPARK_PY" "$SPARK_PY" \
      benches/spark_job.py "$EV10" "$WORK/cli_job" "local[2]" | awk '/spark: the job/ {print $(NF-1)}')
    r=$(ratio "$job" "$b0")
    what=$([ "$mode" = 0 ] && echo "\`--chunk-rows 0\`" || echo "default chunks")
    row "Spark job, 10M, \`local[2]\`, $what" "≤ 6× the CLI" "$job s against the CLI's $b0 s: ${r}×" "$(met "$r" 6)"
  done
else
  row "Spark job, 10M, \`local[2]\`" "≤ 6× the CLI" "not run (SPARK=1)" "not run"
fi
