"""The Spark side of tests/it/spark.rs: real PySpark in local mode computes what touchpoint
must agree with. Run by that test (it creates the venv and passes the paths):

    python parity.py IDS.parquet EVENTS.parquet COUNTS.sql OUT_DIR

- Spark's published xxhash64 values (the shard function's contract);
- pmod(xxhash64(id), n) of string, INT and BIGINT ids for several n (OUT_DIR/shards);
- the distinct users of each of 3 shards of the event log (OUT_DIR/users_by_shard.json);
- the path table built by the Spark SQL of docs/scale.md, run as written (OUT_DIR/paths).
"""

import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

SHARDS = [2, 3, 7, 16]


def main(ids_path, events_path, sql_path, out):
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("touchpoint-parity")
        .config("spark.driver.memory", "1g")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    v = spark.sql(
        "SELECT xxhash64('ABC') AS s, xxhash64(CAST(1 AS INT)) AS i, xxhash64(CAST(1 AS BIGINT)) AS l"
    ).first()
    ids = spark.read.parquet(ids_path)
    shard_cols = [
        F.expr(f"pmod(xxhash64({c}), {n})").alias(f"{c}_{n}") for n in SHARDS for c in ("s", "i", "l")
    ]
    ids.select("row", *shard_cols).orderBy("row").coalesce(1).write.mode("overwrite").parquet(f"{out}/shards")
    events = spark.read.parquet(events_path)
    by_shard = (
        events.select("user_id").distinct().groupBy(F.expr("pmod(xxhash64(user_id), 3)").alias("shard")).count()
    )
    users = {str(r["shard"]): r["count"] for r in by_shard.collect()}
    events.createOrReplaceTempView("events")
    with open(sql_path) as f:
        sql = f.read()
    spark.sql(sql).coalesce(1).write.mode("overwrite").parquet(f"{out}/paths")
    with open(f"{out}/spark.json", "w") as f:
        json.dump({"vectors": [v["s"], v["i"], v["l"]], "users_by_shard": users, "version": spark.version}, f)
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:5])
