"""Times the Spark SQL of docs/scale.md (the path table of an event log) in local mode.

    python benches/spark_paths.py EVENTS.parquet OUT_DIR [local[2]]

Prints JSON: seconds to start Spark, to run the SQL and write the path table, and rows.
Run by benches/spark_paths.sh, which also times touchpoint on the same log.
"""

import json
import re
import sys
import time
from pathlib import Path

t0 = time.time()
from pyspark.sql import SparkSession  # noqa: E402

events, out = sys.argv[1], sys.argv[2]
master = sys.argv[3] if len(sys.argv) > 3 else "local[2]"
doc = (Path(__file__).parent.parent / "docs/scale.md").read_text()
sql = next(b.split("```")[0] for b in doc.split("```sql")[1:] if "WITH numbered" in b)
spark = (
    SparkSession.builder.master(master)
    .config("spark.driver.memory", "6g")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.shuffle.partitions", "8")
    .config("spark.sql.session.timeZone", "UTC")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
t1 = time.time()
spark.read.parquet(events).createOrReplaceTempView("events")
spark.sql(sql).coalesce(1).write.mode("overwrite").parquet(out)
t2 = time.time()
rows = spark.read.parquet(out).count()
print(json.dumps({"master": master, "start_s": round(t1 - t0, 2), "sql_s": round(t2 - t1, 2), "paths": rows}))
spark.stop()
