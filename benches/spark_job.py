"""The Spark job on one log, timed by phase, and compared with the CLI's tables.

usage: spark_job.py EVENTS CLI_OUT MASTER   (REPLICATES=200: with the interval columns;
the CLI's output must then have been written with the same --bootstrap; CHUNK_ROWS=0: the
job without Spark's sort, each partition held whole)
"""

import logging
import os
import sys
import time

t0 = time.time()
from pyspark.sql import SparkSession  # noqa: E402

import pyarrow.parquet as pq  # noqa: E402
import touchpoint.spark as ts  # noqa: E402

events, cli_out, master = sys.argv[1:4]
spark = (
    SparkSession.builder.master(master)
    .config("spark.driver.memory", "6g")
    .config("spark.sql.shuffle.partitions", "8")
    .config("spark.ui.enabled", "false")
    .config("spark.ui.showConsoleProgress", "false")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
t_jvm = time.time()
logging.basicConfig(level=logging.INFO, format="%(message)s")
models = {
    "run": ["first_touch", "last_touch", "linear", "markov"],
    "bootstrap_replicates": int(os.environ.get("REPLICATES", "0")),
}
# CHUNK_ROWS=0: the job without Spark's sort (each partition one chunk, held whole by the
# library); the default sorts each partition and cuts it into chunks of 1M rows.
chunk_rows = int(os.environ.get("CHUNK_ROWS", str(ts.CHUNK_ROWS))) or None
tables = ts.attribute(spark.read.parquet(events), chunk_rows=chunk_rows, models=models)
t_end = time.time()
print(f"spark: session start            {t_jvm - t0:8.2f} s")
print(f"spark: the job (chunk_rows={chunk_rows}) {t_end - t_jvm:8.2f} s")

# Spark's share: the same repartition, sort and Arrow hand-over to Python, with a
# mapInArrow that only counts rows instead of calling touchpoint.
from pyspark.sql import functions as F  # noqa: E402
import pyarrow as pa  # noqa: E402


def count(batches):
    n = sum(b.num_rows for b in batches)
    yield pa.RecordBatch.from_pylist([{"n": n}])


t = time.time()
df = spark.read.parquet(events)
n = df.repartition(8, F.col("user_id")).sortWithinPartitions("user_id", "ts").mapInArrow(count, "n long")
rows = n.agg(F.sum("n")).collect()[0][0]
print(f"spark alone: read, repartition, sort, hand {rows} rows to Python: {time.time() - t:8.2f} s")
want = pq.read_table(f"{cli_out}/channel_attribution.parquet").to_pylist()
got = tables["channel_attribution"].to_pylist()
cols = ["conversions", "conversions_low", "conversions_high"]
worst = max(
    abs(a[c] - b[c]) / max(1.0, abs(b[c])) for a, b in zip(got, want) for c in cols if a[c] is not None and b[c] is not None
)
print(f"largest relative difference of a credit or its bounds to the CLI's: {worst:.1e}")
spark.stop()
