#!/usr/bin/env bash
# Staged input through the Spark job (docs/scale.md § Spark: Staged input) against the
# CLI: a generated log in FILES Parquet files and an identity map joining every two users
# into one person, so every row goes through the staging rules. Prints the CLI's wall time,
# one CLI shard of PARTITIONS (what each partition of the job did before it read each file
# once: it staged every file and kept its persons), the job's, and whether the credits agree.
#
#   benches/spark_staged.sh                        # 210,000 users ≈ 2M events, 8 files
#   USERS=1050000 FILES=16 PARTITIONS=8 benches/spark_staged.sh
#
# Needs the venv and wheel of `cargo xtask python` (~/.cache/touchpoint-spark-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/touchpoint-target}
WORK=${WORK:-$(pwd)/bench-data}
USERS=${USERS:-210000}
FILES=${FILES:-8}
PARTITIONS=${PARTITIONS:-8}
PY=${PY:-$HOME/.cache/touchpoint-spark-venv/bin/python}
mkdir -p "$WORK"
cargo build --release -q
BIN=$CARGO_TARGET_DIR/release/touchpoint
LOG=$WORK/events_${USERS}.parquet
[ -f "$LOG" ] || "$BIN" generate --users "$USERS" --seed 42 --out "$LOG" >/dev/null
DIR=$WORK/staged_${USERS}_${FILES}
MAP=$WORK/identity_${USERS}.csv
"$PY" - "$LOG" "$DIR" "$FILES" "$MAP" "$USERS" <<'PY'
import os, sys
import pyarrow.parquet as pq
log, out, files, ids, users = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
if not os.path.isdir(out):
    t = pq.read_table(log)
    os.makedirs(out)
    step = -(-t.num_rows // files)
    for i in range(files):
        pq.write_table(t.slice(i * step, step), f"{out}/part-{i:03d}.parquet")
if not os.path.exists(ids):
    with open(ids, "w") as f:
        f.write("alias_id,person_id\n")
        for i in range(users):
            f.write(f"u{i:07d},P{i // 2:07d}\n")
PY
ARGS=(--events "$DIR" --identity-map "$MAP" --models first_touch,last_touch,linear,markov --bootstrap 0 -q)
rm -rf "$WORK/cli_staged" "$WORK/cli_shard"
/usr/bin/time -f "%e %M" -o "$WORK/cli_staged.time" "$BIN" attribute "${ARGS[@]}" --out "$WORK/cli_staged" >/dev/null 2>&1
read -r wall kb < "$WORK/cli_staged.time"
printf 'touchpoint CLI, staged               %8.2f s %6.2f GB peak\n' "$wall" "$(echo "$kb / 1048576" | bc -l)"
/usr/bin/time -f "%e %M" -o "$WORK/cli_shard.time" "$BIN" attribute "${ARGS[@]}" --shard "0/$PARTITIONS" \
  --out "$WORK/cli_shard" >/dev/null 2>&1
read -r wall kb < "$WORK/cli_shard.time"
printf 'one CLI shard of %-3s (stages all)    %8.2f s %6.2f GB peak\n' "$PARTITIONS" "$wall" "$(echo "$kb / 1048576" | bc -l)"
PYSPARK_PYTHON="$PY" "$PY" - "$DIR" "$MAP" "$WORK/cli_staged" "${MASTER:-local[2]}" "$PARTITIONS" <<'PY'
import logging, sys, time
t0 = time.time()
logging.basicConfig(level=logging.INFO, format="%(message)s")
from pyspark.sql import SparkSession
import pyarrow.parquet as pq
import touchpoint.spark as ts
events, ids, cli, master, partitions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
spark = (SparkSession.builder.master(master).config("spark.driver.memory", "6g")
         .config("spark.sql.shuffle.partitions", str(partitions)).config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
t = time.time()
got = ts.attribute(None, input={"events": events}, identity={"path": ids}, partitions=partitions,
                   models={"run": ["first_touch", "last_touch", "linear", "markov"], "bootstrap_replicates": 0})
print(f"spark job, staged (session {t - t0:.1f} s)  {time.time() - t:8.2f} s")
want = pq.read_table(f"{cli}/channel_attribution.parquet").to_pylist()
rows = got["channel_attribution"].to_pylist()
worst = max(abs(a["conversions"] - b["conversions"]) / max(1.0, abs(b["conversions"])) for a, b in zip(rows, want))
print(f"largest relative difference of a credit to the CLI's: {worst:.1e}")
spark.stop()
PY
