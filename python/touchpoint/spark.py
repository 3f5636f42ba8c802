"""touchpoint on Apache Spark: the same numbers as one machine, from a Spark DataFrame.

The job (``docs/scale.md`` § Spark):

1. repartition the events by user and sort each partition by user and time, so every
   user's events are contiguous;
2. ``mapInArrow``: each partition is cut into chunks of whole users (the last user of a
   chunk is carried into the next), and each chunk becomes a partial path table with its
   metadata, computed by the Rust library exactly as ``--shard`` computes one;
3. a Spark ``groupBy(path)`` sums the partial path tables (never collected);
4. ``mapInArrow`` again: each group of distinct paths becomes additive statistics (credit
   per rule model and channel, Markov edge counts of order k, totals), summed by a second
   ``groupBy``;
5. the driver collects those small tables and the partials' metadata and solves.

Only DataFrame APIs are used (no RDDs), so the job can run over Spark Connect.

Run it with ``spark-submit``, this file being the application (or ``touchpoint-spark``)::

    spark-submit "$(python -c 'import touchpoint.spark as s; print(s.__file__)')" \
        pipelines/nightly.toml --run-date 2024-02-29 --out s3://.../attribution
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

import touchpoint
from touchpoint import _touchpoint

log = logging.getLogger("touchpoint.spark")

#: Rows handed to the Rust library at a time inside a partition (whole users only).
CHUNK_ROWS = 1_000_000

# The statistics' columns and Spark SQL types come from the library (defined once, in Rust).
_TYPES = {"string": pa.string(), "double": pa.float64(), "long": pa.int64()}
_STATS = list(_touchpoint.STATISTICS_SCHEMA)
_REPS = list(_touchpoint.REPLICATES_SCHEMA)
_KEYS = [n for n, t in _STATS if t == "string"]
_NUMBERS = [n for n, t in _STATS if t == "double"]
_REPLICATE_KEYS = [n for n, t in _REPS if t != "double"]
_REPLICATE = _REPLICATE_KEYS[0]


def _ddl(columns: list[tuple[str, str]]) -> str:
    return ", ".join(f"`{n}` {t}" for n, t in columns)


def _arrow_schema(columns: list[tuple[str, str]]) -> pa.Schema:
    return pa.schema([(n, _TYPES[t]) for n, t in columns])


# One output of the chunks: path rows (path set), one metadata row per chunk (meta set) and
# the replicates' named statistics (replicate set), told apart by which column is not null.
_PARTIAL_COLUMNS = [("path", "string")] + [(n, "double") for n in _NUMBERS] + [("meta", "string")]
_PARTIAL_COLUMNS += [(n, t) for n, t in _REPS if t != "double"]
_PARTIAL_SCHEMA = _ddl(_PARTIAL_COLUMNS)
_PARTIAL_ARROW = _arrow_schema(_PARTIAL_COLUMNS)
_STATISTICS_SCHEMA = _ddl(_STATS)
_STATISTICS_ARROW = _arrow_schema(_STATS)


def _chunks(batches: Iterator[pa.RecordBatch], user: str, chunk_rows: int) -> Iterator[pa.Table]:
    """Tables of whole users from user-sorted batches: a chunk ends where the last user
    of its batches starts, and that user's rows go on into the next chunk."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        rows += batch.num_rows
        if rows < chunk_rows:
            continue
        table = pa.Table.from_batches(pending)
        users = table.column(user)
        cut = pc.index(users, users[-1]).as_py()
        if cut > 0:
            yield table.slice(0, cut)
            rest = table.slice(cut)
            pending, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield pa.Table.from_batches(pending)


def _partials(settings: str, user: str, chunk_rows: int):
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for chunk in _chunks(batches, user, chunk_rows):
            meta, capsule, reps = _touchpoint.partial(chunk.__arrow_c_stream__(), settings)
            paths = touchpoint._table(capsule)
            n = paths.num_rows
            yield pa.RecordBatch.from_arrays(
                [
                    paths.column("path").cast(pa.string()).combine_chunks(),
                    *[paths.column(c).combine_chunks() for c in _NUMBERS],
                    pa.nulls(n, pa.string()),
                ]
                + [pa.nulls(n, f.type) for f in _PARTIAL_ARROW][5:],
                schema=_PARTIAL_ARROW,
            )
            yield pa.RecordBatch.from_pylist(
                [{"path": None, **{c: 0.0 for c in _NUMBERS}, "meta": meta}], schema=_PARTIAL_ARROW
            )
            if reps is not None:
                r = touchpoint._table(reps)
                m = r.num_rows
                yield pa.RecordBatch.from_arrays(
                    [pa.nulls(m, pa.string())]
                    + [r.column(c).combine_chunks() for c in _NUMBERS]
                    + [pa.nulls(m, pa.string())]
                    + [r.column(c).cast(_PARTIAL_ARROW.field(c).type).combine_chunks() for c in _REPLICATE_KEYS],
                    schema=_PARTIAL_ARROW,
                )

    return run


def _statistics(settings: str):
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        table = pa.Table.from_batches(list(batches))
        if table.num_rows == 0:
            return
        stats = touchpoint._table(_touchpoint.path_statistics(table.__arrow_c_stream__(), settings))
        yield from stats.cast(_STATISTICS_ARROW).to_batches()

    return run


def _arrow(df: Any) -> pa.Table:
    """A small Spark DataFrame on the driver as Arrow (``toArrow`` from Spark 4)."""
    if hasattr(df, "toArrow"):
        return df.toArrow()
    return pa.Table.from_pylist([r.asDict() for r in df.collect()])


def attribute(
    events: Any,
    *,
    pipeline: str | None = None,
    partitions: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    **sections: Mapping[str, Any],
) -> dict[str, pa.Table]:
    """Attribute a Spark DataFrame of events; the tables of
    :data:`touchpoint._touchpoint.DISTRIBUTED_TABLES`, equal to the CLI's.

    ``partitions`` defaults to ``spark.sql.shuffle.partitions``; each partition is read in
    chunks of about ``chunk_rows`` rows of whole users.
    """
    from pyspark.sql import functions as F

    settings = touchpoint._resolved(pipeline, sections)
    _touchpoint.check_distributed(settings)
    columns = json.loads(settings)["columns"]
    user, when = columns["user"], columns["time"]
    spark = events.sparkSession
    n = partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    keyed = events.repartition(n, F.col(user)).sortWithinPartitions(F.col(user), F.col(when))
    parts = keyed.mapInArrow(_partials(settings, user, chunk_rows), _PARTIAL_SCHEMA).cache()
    t = time.time()
    try:
        metas = [r["meta"] for r in parts.where(F.col("meta").isNotNull()).select("meta").collect()]
        log.info("partials (repartition, sort, mapInArrow): %.2f s, %d chunks", time.time() - t, len(metas))
        t = time.time()
        sums = [F.sum(c).alias(c) for c in _NUMBERS]
        replicates = parts.where(F.col(_REPLICATE).isNotNull()).groupBy(*_REPLICATE_KEYS).agg(*sums)
        summed_replicates = _arrow(replicates)
        merged = (
            parts.where(F.col("meta").isNull() & F.col(_REPLICATE).isNull())
            .groupBy("path")
            .agg(*sums)
        )
        stats = (
            merged.mapInArrow(_statistics(settings), _STATISTICS_SCHEMA)
            .groupBy(*_KEYS)
            .agg(*sums)
        )
        collected = _arrow(stats).cast(_STATISTICS_ARROW)
        log.info("paths summed, statistics summed and collected: %.2f s, %d rows", time.time() - t, collected.num_rows)
    finally:
        parts.unpersist()
    t = time.time()
    # A fixed order of the collected rows: the driver's sums do not depend on Spark's.
    collected = collected.sort_by([(c, "ascending") for c in _KEYS])
    metas.sort()
    reps = None
    if summed_replicates.num_rows:
        reps = summed_replicates.sort_by([(c, "ascending") for c in _REPLICATE_KEYS]).__arrow_c_stream__()
    tables = {
        name: touchpoint._table(c)
        for name, c in _touchpoint.solve(collected.__arrow_c_stream__(), metas, settings, reps)
    }
    log.info("solved on the driver: %.2f s", time.time() - t)
    return tables


def write(tables: Mapping[str, pa.Table], out: str, run_date: str | None = None) -> list[str]:
    """Write the tables as Parquet in the CLI's layout: ``out/<table>.parquet``, or for a
    scheduled run ``out/<table>/run_date=<date>/part-0.parquet`` (hive partitions). Each
    file is written beside its final name and renamed into place, so a reader never sees
    half a file; a rerun of a date replaces that date's files."""
    import os

    import pyarrow.parquet as pq

    written = []
    for name, table in sorted(tables.items()):
        final = Path(out) / name / f"run_date={run_date}" / "part-0.parquet" if run_date else Path(out) / f"{name}.parquet"
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, final)
        written.append(str(final))
    return written


def main(argv: list[str] | None = None) -> int:
    """``touchpoint-spark PIPELINE [--run-date D] --out DIR``: one JSON line, the CLI's exit codes."""
    p = argparse.ArgumentParser(prog="touchpoint-spark", description="touchpoint's Spark job")
    p.add_argument("pipeline", help="pipeline file (input.events is read with spark.read.parquet)")
    p.add_argument("--run-date", help="the run date of a scheduled run (window.run_date)")
    p.add_argument("--events", help="override input.events")
    p.add_argument("--out", help="override output.root")
    p.add_argument("--partitions", type=int, help="partitions of the events (default: spark.sql.shuffle.partitions)")
    a = p.parse_args(argv)
    from pyspark.sql import SparkSession

    sections: dict[str, dict[str, Any]] = {}
    if a.run_date:
        sections["window"] = {"run_date": a.run_date}
    if a.events:
        sections["input"] = {"events": a.events}
    try:
        s = touchpoint.settings(a.pipeline, **sections)
        out = a.out or s["output"].get("root")
        if not s["input"].get("events") or not out:
            raise touchpoint.TouchpointError("the Spark job needs input.events and an output (--out or output.root)")
        # Local workers run this Python (the one touchpoint is installed in) unless the
        # cluster says otherwise (spark.pyspark.python, PYSPARK_PYTHON).
        import os

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        spark = SparkSession.builder.appName("touchpoint").getOrCreate()
        events = spark.read.parquet(s["input"]["events"])
        tables = attribute(events, pipeline=a.pipeline, partitions=a.partitions, **sections)
        files = write(tables, out, a.run_date if s["window"].get("run_date") else None)
    except touchpoint.TouchpointError as e:
        # Errors raised here carry no kind: they are settings problems, in the library's
        # words (`Error::kind` in src/error.rs: 78 is "bad_configuration").
        code = getattr(e, "exit_code", 78)
        kind = getattr(e, "kind", "bad_configuration")
        print(json.dumps({"status": "error", "kind": kind, "exit_code": code, "message": str(e)}))
        return code
    print(json.dumps({"status": "ok", "outputs": files}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
