"""touchpoint on Apache Spark: the same numbers as one machine, from a Spark DataFrame.

The job (``docs/scale.md`` § Spark):

1. repartition the events by user and sort each partition by user and time, so every
   user's events are contiguous;
2. ``mapInArrow``: each partition is cut into chunks of whole users (the last user of a
   chunk is carried into the next), and each chunk becomes a partial path table with its
   metadata, computed by the Rust library exactly as ``--shard`` computes one. With
   ``chunk_rows=None`` (``--chunk-rows 0``) Spark does not sort: each partition is one
   chunk, which the library holds whole and sorts itself (its rules never depend on the
   row order: even the copy of a repeated event id it keeps is decided by the fields);
   Each chunk also computes the path statistics of its paths (credit per rule model and
   channel, Markov edge counts of order k, totals): all of them sums over paths, added
   up within the partition as its chunks come;
3. a Spark ``groupBy(path)`` sums the partial path tables (never collected), which gives
   the distinct paths, the one statistic that is not a sum over chunks;
4. a second ``groupBy`` sums the partitions' statistics;
5. the driver collects those small tables and the partials' metadata and solves.

Beside the channel level, the chunks write what the settings ask for, each summed by its
own ``groupBy``: the replicates' statistics (intervals), the channel-group level, each
customer segment's paths, the campaign sums, the journeys' credit rows. ``path_summary``
and ``journey_credit`` stay in Spark and are written by the executors; the page is rendered
on the driver. Staged input (sources, a conversions table, an identity map, customers,
erasure) replaces steps 1-2 by a read of each row once: one task per file reads and flags
its rows with the library (the identity map and the erasure list, small, held by every
task), Spark finds the persons who withdrew consent and, of each repeated conversion id,
the rows that lose to its first, and partitions of whole persons stage and cut their rows
(``docs/scale.md`` § Spark: Staged input).

Only DataFrame APIs are used (no RDDs), so the job can run over Spark Connect.

Run it with ``spark-submit``, this file being the application (or ``touchpoint-spark``)::

    spark-submit "$(python -c 'import touchpoint.spark as s; print(s.__file__)')" \
        pipelines/nightly.toml --run-date 2024-02-29 --out s3://.../attribution

It publishes manifest last (:mod:`touchpoint.publish`): the files of a run under a fresh
prefix, then the manifest that names them, the commit point on a store without renames.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import touchpoint
from touchpoint import _touchpoint, publish

log = logging.getLogger("touchpoint.spark")

#: Rows handed to the Rust library at a time inside a partition (whole users only).
CHUNK_ROWS = 1_000_000

# The statistics' columns and Spark SQL types come from the library (defined once, in Rust).
_TYPES = {"string": pa.string(), "double": pa.float64(), "long": pa.int64(), "array<double>": pa.list_(pa.float64())}
_STATS = list(_touchpoint.STATISTICS_SCHEMA)
_REPS = list(_touchpoint.REPLICATES_SCHEMA)
_KEYS = [n for n, t in _STATS if t == "string"]
_NUMBERS = [n for n, t in _STATS if t == "double"]
_REPLICATE_KEYS = [n for n, t in _REPS if t == "string"]
# A statistic's values in every replicate (lists), under their own names in the union schema.
_REPLICATE_NUMBERS = [n for n, t in _REPS if t != "string"]
_REPLICATE_LISTS = [f"replicate_{n}" for n in _REPLICATE_NUMBERS]
_CAMPAIGNS = list(_touchpoint.CAMPAIGNS_SCHEMA)
_CAMPAIGN_KEYS = [n for n, t in _CAMPAIGNS if t != "double"]
_CAMPAIGN_NUMBERS = [n for n, t in _CAMPAIGNS if t == "double"]
_STAT = _CAMPAIGN_KEYS[1]


def _ddl(columns: list[tuple[str, str]]) -> str:
    return ", ".join(f"`{n}` {t}" for n, t in columns)


def _arrow_schema(columns: list[tuple[str, str]]) -> pa.Schema:
    return pa.schema([(n, _TYPES[t]) for n, t in columns])


# One output of the chunks: path rows (path set), one metadata row per chunk (meta set),
# the replicates' named statistics (replicate set) and the campaign sums (stat set), told
# apart by which column is not null. The sets share the number columns.
_PARTIAL_COLUMNS = [("path", "string")] + [(n, "double") for n in _NUMBERS] + [("meta", "string")]
_PARTIAL_COLUMNS += [(n, "string") for n in _REPLICATE_KEYS]
_PARTIAL_COLUMNS += [(u, t) for u, (n, t) in zip(_REPLICATE_LISTS, [c for c in _REPS if c[1] != "string"])]
_PARTIAL_COLUMNS += [(n, t) for n, t in _CAMPAIGNS if t != "double"]
# The channel-group level's path and replicate rows say so here (null: the channel level).
_PARTIAL_COLUMNS += [("level", "string")]
# A customer segment's path rows carry its key (status, segmentation, segment; U+001F).
_PARTIAL_COLUMNS += [("segment", "string")]
# A journey's journey_credit rows (with journey_credit), as a struct: its columns are the
# library's (JOURNEY_SCHEMA), and `row` keeps a journey's rows in their chunk's order.
_JOURNEY = [*_touchpoint.JOURNEY_SCHEMA, ("row", "long")]
_JOURNEY_KEYS = ["person_order_hi", "person_order_lo", "journey"]
_JOURNEY_DDL = "struct<" + ", ".join(f"`{n}`: {t}" for n, t in _JOURNEY) + ">"
_TYPES[_JOURNEY_DDL] = pa.struct([(n, _TYPES[t]) for n, t in _JOURNEY])
_PARTIAL_COLUMNS += [("jc", _JOURNEY_DDL)]
_PARTIAL_SCHEMA = _ddl(_PARTIAL_COLUMNS)
_PARTIAL_ARROW = _arrow_schema(_PARTIAL_COLUMNS)
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


def _batch(n: int, columns: dict[str, pa.Array]) -> pa.RecordBatch:
    """A batch of the chunks' union schema: the given columns, nulls elsewhere."""
    arrays = [columns[f.name].cast(f.type) if f.name in columns else pa.nulls(n, f.type) for f in _PARTIAL_ARROW]
    return pa.RecordBatch.from_arrays(arrays, schema=_PARTIAL_ARROW)


def _columns(t: pa.Table, names: list[str]) -> dict[str, pa.Array]:
    return {c: t.column(c).combine_chunks() for c in names}


#: How a library error crosses from an executor to the driver: Spark hands on only the text
#: of a worker's exception, so the error's kind, exit code and message travel in it as JSON.
_CARRIED = "touchpoint-error:"


def _carrying(f: Any) -> Any:
    """An executor's function over batches whose library errors reach the driver with
    their kind and exit code (:func:`_from_executor`), not as an internal error."""
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            yield from f(batches)
        except touchpoint.TouchpointError as e:
            carried = {"kind": getattr(e, "kind", "internal_error"), "exit_code": getattr(e, "exit_code", 70),
                       "message": str(e)}
            raise RuntimeError(_CARRIED + json.dumps(carried)) from None

    return run


def _from_executor(e: BaseException) -> BaseException:
    """The library's error an executor raised (:func:`_carrying`), as the driver raises
    it; any other failure as it is."""
    text = str(e)
    at = text.find(_CARRIED)
    if at < 0:
        return e
    try:
        carried, _ = json.JSONDecoder().raw_decode(text[at + len(_CARRIED):])
    except ValueError:
        return e
    return publish.error(carried["kind"], carried["exit_code"], carried["message"])


def _partials(settings: str, user: str, chunk_rows: int | None):
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        stats: list[pa.Table] = []
        if chunk_rows is None:
            yield from _whole_partition(batches, settings, stats)
        else:
            for chunk in _chunks(batches, user, chunk_rows):
                yield from _partial_rows(*_touchpoint.partial(chunk.__arrow_c_stream__(), settings), settings, stats)
        yield from _summed_statistics(stats)

    return run


def _whole_partition(batches: Iterator[pa.RecordBatch], settings: str, stats: list[pa.Table],
                     partial: Any = None) -> Iterator[pa.RecordBatch]:
    """An unsorted partition as one chunk: its batches streamed into the library, which
    holds the partition's events in its own columns (25-40 bytes an event) and sorts them
    (``partial``: the library's function for the rows, events by default)."""
    batches = iter(batches)
    first = next((b for b in batches if b.num_rows), None)
    if first is None:
        return
    reader = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))
    yield from _partial_rows(*(partial or _touchpoint.partial)(reader.__arrow_c_stream__(), settings), settings, stats)


#: Arrow types of the Spark SQL types of the staged rows' columns.
_SQL_ARROW = {"string": pa.string(), "bigint": pa.int64(), "int": pa.int32(), "double": pa.float64(),
              "boolean": pa.bool_()}


def _read_files(settings: str, plan: str, schema: pa.Schema):
    """Step 1 of the staged read (``docs/scale.md`` § Spark: Staged input): each file (a row
    of ``spark.range``) read and flagged by the library, then one row of what it counted
    (``__read``, JSON)."""
    rows_schema = pa.schema([f for f in schema if f.name != "__read"])

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index in batch.column(0).to_pylist():
                read, rows = _touchpoint.stage_file(settings, plan, index)
                table = touchpoint._table(rows).select(rows_schema.names).cast(rows_schema)
                table = table.append_column("__read", pa.nulls(table.num_rows, pa.string()))
                yield from table.to_batches()
                yield pa.RecordBatch.from_arrays(
                    [pa.array([read]) if f.name == "__read" else pa.nulls(1, f.type) for f in schema], schema=schema)

    return run


def _staged_partials(settings: str, plan: str):
    """Step 3 of the staged read: a partition of whole persons' staged rows as one chunk."""
    def partial(rows: Any, settings: str) -> Any:
        return _touchpoint.staged_rows_partial(rows, settings, plan)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        stats: list[pa.Table] = []
        yield from _whole_partition(batches, settings, stats, partial)
        yield from _summed_statistics(stats)

    return run


def _staged_parts(spark: Any, settings: str, n: int) -> tuple[Any, Any, Any]:
    """The partials of staged input, each row read once: one task per file reads and flags
    its rows (identity map, erasure), Spark finds the persons who withdrew consent and the
    repeated conversion ids' losers (all but the least key the library gave each candidate),
    and each partition of whole persons stages and cuts their rows. Returns the partials,
    the function that completes their metadata with the counts of the read, and the one
    that frees the read's cache."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    plan = _touchpoint.split_plan(settings)
    columns = [*json.loads(plan)["columns"], ("__read", "string")]
    schema = pa.schema([(c, _SQL_ARROW[t]) for c, t in columns])
    files = sum(len(f) for f in json.loads(plan)["sources"])
    read = spark.range(0, files, 1, max(files, 1)).mapInArrow(
        _carrying(_read_files(settings, plan, schema)), ", ".join(f"`{c}` {t}" for c, t in columns))
    read = read.persist(StorageLevel.MEMORY_AND_DISK)
    rows = read.where(F.col("__read").isNull()).drop("__read")
    withdrawn = None
    if json.loads(settings)["input"]["consent_scope"] == "person":
        withdrawn = rows.where(F.col("__withdraws")).select("__mapped").distinct()
    losers = None
    if "conversion_id" in schema.names:  # else no source has conversion ids
        candidates = rows.where(F.col("__candidate"))
        if withdrawn is not None:
            candidates = candidates.join(withdrawn, "__mapped", "left_anti")
        key = F.struct("time", "__source", "__mapped", "__value_key", "__file", "__row")
        first = candidates.groupBy("conversion_id").agg(F.min(key).alias("__first"))
        losers = (candidates.join(first, "conversion_id").where(key != F.col("__first"))
                  .select("__mapped", "__file", "__row"))
        # Each loser goes to its person's partition as a marker row (`__dup`), so no join
        # moves the rows: the library drops the rows the markers name.
        rows = rows.unionByName(losers.withColumn("__dup", F.lit(True)), allowMissingColumns=True)
    plan = _first_failure(rows, withdrawn, plan)
    parts = rows.repartition(n, "__mapped").mapInArrow(_carrying(_staged_partials(settings, plan)), _PARTIAL_SCHEMA)

    def complete(metas: list[str]) -> list[str]:
        reads = [json.loads(r[0]) for r in read.where(F.col("__read").isNotNull()).select("__read").collect()]
        mapped = any(r["identity_entries"] for r in reads)
        return _completed(metas, reads, _alias_counts(read, losers, withdrawn) if mapped else {})

    return parts, complete, read.unpersist


def _alias_counts(read: Any, losers: Any, withdrawn: Any) -> dict[str, int]:
    """The distinct ids of the kept rows by identity status (an id's greatest status), over
    every partition: an alias's rows can belong to persons of several partitions."""
    from pyspark.sql import functions as F

    kept = read.where(F.col("__read").isNull() & F.col("__keepable"))
    kept = kept.select("person", "__status", "__mapped", "__file", "__row")
    if losers is not None:
        kept = kept.join(losers.drop("__mapped"), ["__file", "__row"], "left_anti")
    if withdrawn is not None:
        kept = kept.join(withdrawn, "__mapped", "left_anti")
    by_status = kept.groupBy("person").agg(F.max("__status").alias("status")).groupBy("status").count()
    counts = {r["status"]: r["count"] for r in by_status.collect()}
    return {f"aliases_{name}": counts.get(code, 0) for code, name in enumerate(("unmapped", "mapped", "conflicting"))}


def _first_failure(rows: Any, withdrawn: Any, plan: str) -> str:
    """The plan with the first row (file, row) whose error fails the run, as one run reads
    them in order: the partitions raise that row's error only, so the message does not
    depend on which task fails first."""
    from pyspark.sql import functions as F

    failing = rows.where(F.col("__fails"))
    if withdrawn is not None:
        failing = failing.join(withdrawn, "__mapped", "left_anti")
    first = failing.agg(F.min(F.struct("__file", "__row")).alias("at")).collect()[0]["at"]
    if first is None:
        return plan
    return json.dumps({**json.loads(plan), "fail_at": [first["__file"], first["__row"]]})


def _completed(metas: list[str], reads: list[dict[str, Any]], aliases: dict[str, int]) -> list[str]:
    """The partials' metadata with the counts only the read has: every file's rows (each
    partial lists every file), the erased rows and the distinct ids by identity status
    (carried by the first partial, the others' are zero), the identity map's entries."""
    files = [r["file"] for r in reads]
    done = []
    for k, meta in enumerate(metas):
        m = json.loads(meta)
        m["input"]["files"] = files
        staged = m["input"]["staged"]
        staged["identity_entries"] = reads[0]["identity_entries"] if reads else 0
        if k == 0:
            staged["rows_erased"] = sum(r["erased"] for r in reads)
            staged.update(aliases)
        done.append(json.dumps(m))
    return done


#: A statistic row's key in a partition: its level, its segment and the statistic's own.
_STATISTIC_KEYS = ["level", "segment", *_KEYS]


def _summed_statistics(stats: list[pa.Table]) -> Iterator[pa.RecordBatch]:
    """The partition's statistics (:func:`_add_statistics`) as rows of the statistics set:
    one row per key and partition, however many chunks the partition held."""
    if not stats:
        return
    summed = stats[0]
    columns = {k: summed.column(k).combine_chunks() for k in _STATISTIC_KEYS + _NUMBERS}
    yield _batch(summed.num_rows, columns)


def _add_statistics(stats: list[pa.Table], chunk: pa.Table) -> None:
    """Add a chunk's statistics to the partition's running sum (``stats``: empty, or one
    table keyed by :data:`_STATISTIC_KEYS`), so a worker holds one sum, not every chunk's
    rows: each key summed in chunk order, on one thread (the same bits every time). A
    partition of one chunk (``--chunk-rows 0``, a staged shard) is not grouped at all."""
    if chunk.num_rows == 0:
        return
    if not stats:
        stats.append(chunk)
        return
    both = pa.concat_tables([stats[0], chunk])
    summed = both.group_by(_STATISTIC_KEYS, use_threads=False).aggregate([(n, "sum") for n in _NUMBERS])
    # By name: pyarrow's versions differ in where they put the keys.
    sums = [f"{n}_sum" for n in _NUMBERS]
    stats[0] = summed.select([*_STATISTIC_KEYS, *sums]).rename_columns([*_STATISTIC_KEYS, *_NUMBERS])


def _partial_rows(meta: str, streams: list[tuple[str, Any]], settings: str,
                  stats: list[pa.Table]) -> Iterator[pa.RecordBatch]:
    """A partial's rows in the union schema; the statistics of its paths (each level's and
    segment's), which add up across chunks (all but the distinct paths, which the job
    counts on the merged paths), go to ``stats``, summed once per partition."""
    named = {name: touchpoint._table(c) for name, c in streams}
    yield _batch(1, {"meta": pa.array([meta]), **{c: pa.array([0.0]) for c in _NUMBERS}})
    for level, prefix in ((None, ""), ("group", "group_")):
        if (paths := named.get(f"{prefix}paths")) is not None:
            yield _tagged(paths.num_rows, _columns(paths, ["path", *_NUMBERS]), level)
            _add_statistics(stats, _statistic_rows(named[f"{prefix}statistics"], level, None))
        if (reps := named.get(f"{prefix}replicates")) is not None:
            columns = _columns(reps, _REPLICATE_KEYS)
            columns.update(zip(_REPLICATE_LISTS, _columns(reps, _REPLICATE_NUMBERS).values()))
            yield _tagged(reps.num_rows, columns, level)
    if (campaigns := named.get("campaigns")) is not None:
        yield _batch(campaigns.num_rows, _columns(campaigns, [*_CAMPAIGN_NUMBERS, *_CAMPAIGN_KEYS]))
    if (segments := named.get("segment_paths")) is not None:
        yield _batch(segments.num_rows, _columns(segments, ["segment", "path", *_NUMBERS]))
        for key in sorted(set(segments.column("segment").to_pylist())):
            paths = segments.filter(pc.equal(segments.column("segment"), key)).select(["path", *_NUMBERS])
            summed = touchpoint._table(_touchpoint.path_statistics(paths.__arrow_c_stream__(), settings))
            _add_statistics(stats, _statistic_rows(summed, None, key))
    if (journeys := named.get("journey_credit")) is not None and journeys.num_rows:
        yield _batch(journeys.num_rows, {"jc": _journey_struct(journeys)})


#: The person's order key is unsigned; flipping its top bit keeps its order in Spark's longs.
_TOP_BIT = pa.scalar(1 << 63, pa.uint64())


def _journey_struct(t: pa.Table) -> pa.StructArray:
    """A chunk's journey_credit rows as the ``jc`` struct: Spark types, nulls for the
    columns the settings do not give, each row's place in the chunk."""
    arrays = []
    for name, kind in _JOURNEY:
        if name == "row":
            arrays.append(pa.array(np.arange(t.num_rows, dtype=np.int64)))
        elif name not in t.column_names:
            arrays.append(pa.nulls(t.num_rows, _TYPES[kind]))
        elif name in ("person_order_hi", "person_order_lo"):
            flipped = pc.bit_wise_xor(t.column(name).combine_chunks(), _TOP_BIT)
            arrays.append(flipped.cast(pa.int64(), safe=False))
        else:
            arrays.append(t.column(name).combine_chunks().cast(_TYPES[kind]))
    return pa.StructArray.from_arrays(arrays, fields=list(_TYPES[_JOURNEY_DDL]))


def _journey_numbers(t: pa.Table) -> pa.Array:
    """1, 2, … over the journeys of rows sorted by journey (a new number at each new key)."""
    if t.num_rows == 0:
        return pa.array([], pa.uint64())
    keys = [t.column(k).combine_chunks() for k in _JOURNEY_KEYS]
    new = pc.not_equal(keys[0][1:], keys[0][:-1])
    for k in keys[1:]:
        new = pc.or_(new, pc.not_equal(k[1:], k[:-1]))
    starts = pa.concat_arrays([pa.array([True]), new]).cast(pa.uint64())
    return pc.cumulative_sum(starts)


def _count_journeys(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    from pyspark import TaskContext

    got = list(batches)
    n = 0
    if got:
        numbers = _journey_numbers(pa.Table.from_batches(got))
        n = numbers[-1].as_py() if len(numbers) else 0
    yield pa.RecordBatch.from_pylist([{"partition": TaskContext.get().partitionId(), "journeys": n}])


def _finish_journeys(settings: str, finish: str, offsets: dict[int, int], schema: pa.Schema):
    """Each sorted partition of journey_credit rows finished by the library: journeys
    numbered over the whole run (the partition's offset), markov_journey split by the
    merged fit, one run's columns."""
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        got = list(batches)
        t = pa.Table.from_batches(got) if got else None
        if t is None or t.num_rows == 0:
            return
        # Every partition was counted (the same persisted partitions): a missing one is a bug.
        offset = pa.scalar(offsets[TaskContext.get().partitionId()], pa.uint64())
        number = pc.add(_journey_numbers(t), offset)
        rows = t.drop_columns([*_JOURNEY_KEYS, "row"]).append_column("journey", number)
        at = rows.column_names.index("conversion_ts")
        rows = rows.set_column(at, "conversion_ts", rows.column(at).cast(pa.timestamp("us", tz="UTC")))
        out = touchpoint._table(_touchpoint.finish_journey_credit(rows.__arrow_c_stream__(), settings, finish))
        yield from out.cast(schema).to_batches()

    return run


def _journey_credit(rows: Any, settings: str, finish: str) -> Any:
    """``journey_credit`` as a Spark DataFrame in one run's order, finished by the executors
    (never collected): ``rows`` range-partitioned by journey and sorted (persisted, like
    ``path_summary``'s sums: ``spark.catalog.clearCache()`` frees them in a long-lived
    session), each partition's journeys counted (one row per partition to the driver), then
    finished."""
    spec = json.loads(finish)
    # An instant is a Spark timestamp (Arrow's in the session's time zone: the same instant).
    kinds = {**dict(_touchpoint.JOURNEY_SCHEMA), "conversion_ts": "timestamp", "run_date": "date"}
    zone = rows.sparkSession.conf.get("spark.sql.session.timeZone")
    types = {**_TYPES, "timestamp": pa.timestamp("us", tz=zone), "date": pa.date32()}
    columns = [(c, kinds[c]) for c in spec["columns"]]
    if json.loads(settings)["window"].get("run_date"):
        columns.insert(0, ("run_date", "date"))
    schema = pa.schema([(c, types[k]) for c, k in columns])
    counts = rows.mapInArrow(_count_journeys, "`partition` long, `journeys` long").collect()
    offsets, total = {}, 0
    for r in sorted(counts, key=lambda r: r["partition"]):
        offsets[r["partition"]] = total
        total += r["journeys"]
    return rows.mapInArrow(_carrying(_finish_journeys(settings, finish, offsets, schema)), _ddl(columns))


def _tagged(n: int, columns: dict[str, pa.Array], level: str | None) -> pa.RecordBatch:
    """Rows of a level: the channel level's (``level`` null) or the group level's."""
    if level is not None:
        columns["level"] = pa.array([level] * n, pa.string())
    return _batch(n, columns)


def _statistic_rows(stats: pa.Table, level: str | None, segment: str | None) -> pa.Table:
    """A chunk's path statistics at one level (or of one segment), keyed by level and
    segment (:data:`_STATISTIC_KEYS`)."""
    n = stats.num_rows
    keyed = stats.select([*_KEYS, *_NUMBERS]).cast(_STATISTICS_ARROW)
    keyed = keyed.add_column(0, "segment", pa.array([segment] * n, pa.string()))
    return keyed.add_column(0, "level", pa.array([level] * n, pa.string()))


def _sums(columns: list[str]) -> list[Any]:
    from pyspark.sql import functions as F

    return [F.sum(c).alias(c) for c in columns]


def _sorted(t: pa.Table, keys: list[str]) -> Any:
    """The rows in a fixed order, as a stream (None when there are none): the driver's sums
    then do not depend on Spark's order."""
    return t.sort_by([(c, "ascending") for c in keys]).__arrow_c_stream__() if t.num_rows else None


#: The element-wise sum of a column's collected lists (null when every list was null: a number
#: the statistic does not use, zero in every replicate).
_LIST_SUM = ("CASE WHEN size(`{0}`) = 0 THEN NULL ELSE aggregate(slice(`{0}`, 2, size(`{0}`)), `{0}`[0], "
             "(acc, x) -> zip_with(acc, x, (a, b) -> a + b)) END")


def _statistics_of(summed: pa.Table, distinct: Mapping[tuple[Any, Any], int], level: str | None,
                   segment: str | None) -> Any:
    """One level's (or segment's) summed statistics as a sorted stream, its distinct paths
    those of the merged paths (the chunks' counts add a path once per chunk)."""
    pick = pc.is_null(summed.column("level")) if level is None else pc.equal(summed.column("level"), level)
    pick = pc.and_(pick, pc.is_null(summed.column("segment")) if segment is None
                   else pc.equal(summed.column("segment"), segment))
    rows = summed.filter(pick).drop_columns(["level", "segment"]).cast(_STATISTICS_ARROW)
    is_distinct = pc.equal(rows.column("kind"), _touchpoint.DISTINCT_PATHS)
    exact = pa.array([float(distinct.get((level, segment), 0))] * rows.num_rows, pa.float64())
    rows = rows.set_column(rows.schema.get_field_index("conversions"), "conversions",
                           pc.if_else(is_distinct, exact, rows.column("conversions")))
    return rows.sort_by([(c, "ascending") for c in _KEYS]).__arrow_c_stream__()


def _replicates(parts: Any, rows: Any) -> Any:
    """A level's replicates' statistics, summed element by element, collected and sorted
    (``rows`` picks the level's rows)."""
    from pyspark.sql import functions as F

    lists = [F.collect_list(u).alias(n) for u, n in zip(_REPLICATE_LISTS, _REPLICATE_NUMBERS)]
    collected_lists = parts.where(F.col(_REPLICATE_LISTS[0]).isNotNull() & rows).groupBy(*_REPLICATE_KEYS).agg(*lists)
    replicates = collected_lists.select(*_REPLICATE_KEYS, *[F.expr(_LIST_SUM.format(n)).alias(n) for n in _REPLICATE_NUMBERS])
    return _sorted(_arrow(replicates), _REPLICATE_KEYS)


def _arrow(df: Any) -> pa.Table:
    """A small Spark DataFrame on the driver as Arrow (``toArrow`` from Spark 4)."""
    if hasattr(df, "toArrow"):
        return df.toArrow()
    from pyspark.sql.pandas.types import to_arrow_schema

    # With the DataFrame's schema: an empty result keeps its columns.
    return pa.Table.from_pylist([r.asDict() for r in df.collect()], schema=to_arrow_schema(df.schema))


def attribute(
    events: Any,
    *,
    pipeline: str | None = None,
    partitions: int | None = None,
    chunk_rows: int | None = CHUNK_ROWS,
    **sections: Mapping[str, Any],
) -> dict[str, Any]:
    """Attribute a Spark DataFrame of events, equal to the CLI: the tables of
    :data:`touchpoint._touchpoint.DISTRIBUTED_TABLES` and, as the settings ask, the
    channel-group, segment and campaign tables (``pyarrow.Table``s, small); the page
    (``report.html``, a :class:`touchpoint.publish.Page`); and ``path_summary``, one row per
    distinct path: a sorted Spark DataFrame over the cached summed paths, which :func:`write`
    publishes from the executors (in a long-lived session, ``spark.catalog.clearCache()``
    frees the cache when it is no longer needed).

    ``partitions`` defaults to ``spark.sql.shuffle.partitions``; each partition is sorted by
    user and time and read in chunks of about ``chunk_rows`` rows of whole users. With
    ``chunk_rows=None`` Spark does not sort: each partition is one chunk, streamed into the
    library, which holds it whole (faster; size the partitions to the workers). When the settings stage their input
    (``[[sources]]``, ``[conversions]``, ``[identity]``, customers, erasure), ``events`` is
    None: the library reads each file once, in a task of its own, and ``partitions`` of
    whole persons stage and cut their rows. With ``output.journey_credit``,
    ``journey_credit`` is a sorted DataFrame too, written by the executors.
    """
    if chunk_rows is not None and chunk_rows < 1:
        raise publish.error("bad_configuration", 78, f"bad configuration: chunk_rows is {chunk_rows}: give a "
                            "positive number of rows, or None for whole partitions")
    settings = touchpoint._resolved(pipeline, sections)
    _touchpoint.check_distributed(settings)
    sj = json.loads(settings)
    parts, n, complete, release = _partials_of(events, settings, partitions, chunk_rows)
    parts = parts.cache()
    try:
        metas, merged, stats, summed = _sum(parts, settings)
        metas = complete(metas)
        journeys = _journey_rows(parts, n) if sj["output"]["journey_credit"] else None
    except Exception as e:
        if (carried := _from_executor(e)) is not e:
            raise carried from None
        raise
    finally:
        parts.unpersist()
        if release is not None:
            release()
    t = time.time()
    summed["previous_headline"] = _previous_headline(sj)
    summed["history"] = _history(sj)
    streams, (page, headline, finish) = _touchpoint.solve(stats, sorted(metas), settings, summed)
    tables: dict[str, Any] = {name: touchpoint._table(c) for name, c in streams}
    if page is not None:
        measured = {"window": {"days": sj["window"]["days"]}, "input": {"spend_period": sj["input"]["spend_period"]},
                    "journeys": {"lookback_days": sj["journeys"]["lookback_days"]}}
        tables["report.html"] = publish.Page(page, json.loads(headline) if headline else None, measured,
                                             _touchpoint.pseudonym_fingerprint(settings))
    log.info("solved on the driver: %.2f s", time.time() - t)
    tables["path_summary"] = _path_summary(merged, sj["window"].get("run_date"))
    if journeys is not None and finish is not None:
        tables["journey_credit"] = _journey_credit(journeys, settings, finish)
    return tables


def _partials_of(events: Any, settings: str, partitions: int | None,
                 chunk_rows: int | None) -> tuple[Any, int, Any, Any]:
    """The partials' rows (union schema), the number of partitions, the function that
    completes the partials' metadata and the one that frees what it cached: the events repartitioned by user and cut into chunks
    of whole users; or, when the settings stage their input, the staged read
    (:func:`_staged_parts`)."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    sj = json.loads(settings)
    staged = _touchpoint.staged(settings)
    if events is None and not staged:
        raise publish.error("bad_configuration", 78, "bad configuration: no events: give a Spark DataFrame of "
                            "events, or settings that stage their input ([[sources]], [conversions], ...)")
    if staged:
        if events is not None:
            raise publish.error("bad_configuration", 78, "bad configuration: the settings stage their input "
                                "([[sources]], [conversions], [identity], customers, erasure), which the job "
                                "reads from their files: pass events=None")
        spark = SparkSession.builder.getOrCreate()
        n = partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
        parts, complete, release = _staged_parts(spark, settings, n)
        return parts, n, complete, release
    user, when = sj["columns"]["user"], sj["columns"]["time"]
    spark = events.sparkSession
    n = partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    # Only the columns the library reads cross the shuffle and the hand-over to Python (a
    # column the settings name but the DataFrame lacks is left to the library to name).
    read = [c for c in _touchpoint.event_columns(settings) if c in events.columns]
    keyed = events.select(*[F.col(f"`{c}`") for c in read]).repartition(n, F.col(user))
    # Whole partitions need no order: the library sorts them, and none of its rules
    # depends on the order rows arrive in (docs/models.md § Journeys).
    if chunk_rows is not None:
        keyed = keyed.sortWithinPartitions(F.col(user), F.col(when))
    parts = keyed.mapInArrow(_carrying(_partials(settings, user, chunk_rows)), _PARTIAL_SCHEMA)
    return parts, n, lambda metas: metas, None


def _journey_rows(parts: Any, n: int) -> Any:
    """The chunks' journey_credit rows, range-partitioned by journey and sorted in one run's
    order, persisted (and materialized while ``parts`` is still cached)."""
    from pyspark.sql import functions as F

    rows = parts.where(F.col("jc").isNotNull()).select("jc.*")
    ordered = rows.repartitionByRange(n, *_JOURNEY_KEYS).sortWithinPartitions(*_JOURNEY_KEYS, "row").persist()
    ordered.count()
    return ordered


def _sum(parts: Any, settings: str) -> tuple[list[str], Any, Any, dict[str, Any]]:
    """What the driver solves, summed by Spark from the chunks' partials: the chunks'
    metadata, the summed paths (cached, for path_summary), the channel level's statistics,
    and the rest (replicates, campaigns, the group level, segments, the page's top paths)."""
    from pyspark.sql import functions as F

    t = time.time()
    metas = [r["meta"] for r in parts.where(F.col("meta").isNotNull()).select("meta").collect()]
    log.info("partials (repartition, sort, mapInArrow): %.2f s, %d chunks", time.time() - t, len(metas))
    t = time.time()
    sj = json.loads(settings)
    # Every level's and segment's paths summed in one shuffle, cached: the distinct paths
    # are counted on it, and path_summary (written by the executors when it is published)
    # and the page's top paths read the channel level's.
    levels = ["level", "segment"]
    every = parts.where(F.col("path").isNotNull()).groupBy(*levels, "path").agg(*_sums(_NUMBERS)).persist()
    distinct = {(r["level"], r["segment"]): r["count"] for r in every.groupBy(*levels).count().collect()}
    channel = F.col("level").isNull() & F.col("segment").isNull()
    merged = every.where(channel).select("path", *_NUMBERS)
    if any(lv is not None or seg is not None for lv, seg in distinct):
        # Only the channel level's paths stay cached for path_summary.
        merged = merged.persist()
        merged.count()
        every.unpersist()
    statistic = F.col("kind").isNotNull() & F.col(_REPLICATE_LISTS[0]).isNull()
    summed_stats = _arrow(parts.where(statistic).groupBy(*levels, *_KEYS).agg(*_sums(_NUMBERS)))
    stats = _statistics_of(summed_stats, distinct, None, None)
    # Each sum below is a Spark job (~0.3 s in local mode): only those the settings need.
    intervals = sj["models"]["bootstrap_replicates"] > 0
    summed: dict[str, Any] = {"replicates": _replicates(parts, channel) if intervals else None}
    if _touchpoint.campaigns(settings):
        campaigns = parts.where(F.col(_STAT).isNotNull()).groupBy(*_CAMPAIGN_KEYS).agg(*_sums(_CAMPAIGN_NUMBERS))
        summed["campaigns"] = _sorted(_arrow(campaigns), _CAMPAIGN_KEYS)
    if sj.get("channel_groups"):
        group = F.col("level") == "group"
        reps = _replicates(parts, group) if intervals else None
        summed["groups"] = (_statistics_of(summed_stats, distinct, "group", None), reps)
    if _touchpoint.segmented(settings):
        keys = sorted(k for lv, k in distinct if lv is None and k is not None)
        summed["segments"] = [(k, _statistics_of(summed_stats, distinct, None, k)) for k in keys]
    # The page's paths: the converting paths with the most conversions, ties by path.
    top = merged.where(F.col("conversions") > 0).orderBy(F.col("conversions").desc(), F.col("path").asc())
    summed["top_paths"] = _arrow(top.limit(_touchpoint.TOP_PATHS).select("path", *_NUMBERS)).__arrow_c_stream__()
    log.info("paths summed, statistics summed and collected: %.2f s", time.time() - t)
    return metas, merged, stats, summed


def _previous_headline(s: Mapping[str, Any]) -> str | None:
    """The previous run date's headline from its publication manifest under
    ``output.root`` (any store pyarrow reaches), for the page's change column."""
    import datetime as dt

    root, run_date = s.get("output", {}).get("root"), s.get("window", {}).get("run_date")
    if not root or not run_date:
        return None
    previous = (dt.date.fromisoformat(run_date) - dt.timedelta(days=1)).isoformat()
    try:
        doc = publish.read_manifest(root, previous)
    except (OSError, pa.ArrowException, touchpoint.TouchpointError):
        return None
    return json.dumps(doc["headline"]) if doc and doc.get("headline") else None


def _history(s: Mapping[str, Any]) -> str | None:
    """The earlier run dates' headlines (``spend_response.days`` − 1 back) from their
    publication manifests under ``output.root``, as JSON ``[[date, headline], …]``: the
    history ``spend_response`` fits on, read from any store pyarrow reaches."""
    import datetime as dt

    root, run_date = s.get("output", {}).get("root"), s.get("window", {}).get("run_date")
    if not root or not run_date or not s.get("input", {}).get("spend"):
        return None
    days = int(s.get("spend_response", {}).get("days", 28))
    every = max(int(s.get("window", {}).get("days", 1)), 1)  # overlapping windows are not points
    found = []
    for k in range(every, days, every):
        date = (dt.date.fromisoformat(run_date) - dt.timedelta(days=k)).isoformat()
        try:
            doc = publish.read_manifest(root, date, any_writer=True)
        except (OSError, pa.ArrowException, ValueError):
            continue
        # Only dates that measured what this run measures (window length, spend period).
        theirs, ours = (doc or {}).get("settings") or {}, s
        same = all(
            theirs.get(sec, {}).get(key, ours.get(sec, {}).get(key)) == ours.get(sec, {}).get(key)
            for sec, key in (("window", "days"), ("input", "spend_period"), ("journeys", "lookback_days"))
        )
        if doc and doc.get("headline") and same:
            found.append([date, doc["headline"]])
    return json.dumps(found)


#: The separator of a path's channels in the partial path tables (U+001F).
_UNIT = "\u001f"


def _path_summary(merged: Any, run_date: str | None) -> Any:
    """``path_summary`` as a Spark DataFrame, sorted as the CLI sorts it: conversions and
    nulls descending, then the path in channel order (U+001F sorts below every character
    of a name, so the joined text sorts as the channel sequence). Never collected: the
    executors write it in parts (:class:`Parts`)."""
    from pyspark.sql import functions as F

    ordered = merged.orderBy(F.col("conversions").desc(), F.col("nulls").desc(), F.col("path").asc())
    columns = [
        F.regexp_replace("path", _UNIT, " > ").alias("path"),
        F.size(F.split("path", _UNIT)).alias("touches"),
        F.col("conversions"),
        F.col("nulls"),
        F.col("value"),
    ]
    if run_date:
        columns.insert(0, F.lit(run_date).cast("date").alias("run_date"))
    return ordered.select(*columns)


#: ``path_summary``'s and ``journey_credit``'s Arrow types, as the CLI writes them.
_PART_TYPES = {"run_date": pa.date32(), "path": pa.string(), "touches": pa.uint32(),
               "conversions": pa.float64(), "nulls": pa.float64(), "value": pa.float64(),
               **{n: _TYPES[t] for n, t in _touchpoint.JOURNEY_SCHEMA},
               "conversion_ts": pa.timestamp("us", tz="UTC")}


#: The standard variables of the store's configuration (pyarrow's S3 reads them).
_STORE_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                    "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION")


class Parts:
    """A Spark DataFrame published in parts: each partition is written by its executor as
    ``<rel>/part-<partition>.parquet`` (:func:`touchpoint.publish.write_part`); the driver
    only receives the parts' entries for the manifest, which lists them in the DataFrame's
    (partition) order.

    Executors reach the store with their own configuration (the cluster's role or
    variables). In local mode they are this machine's processes, started before the
    driver's variables may have been set, so the driver's store variables go with the task
    (they never leave the machine)."""

    def __init__(self, df: Any) -> None:
        self.df = df
        # `spark.master` through the conf: Spark Connect has no SparkContext.
        local = str(df.sparkSession.conf.get("spark.master", "")).startswith("local")
        self.env = {k: os.environ[k] for k in _STORE_VARIABLES if local and k in os.environ}

    def write_parts(self, out: str, rel: str) -> list[dict[str, Any]]:
        # A local directory as the driver sees it: executors may run elsewhere.
        out = out if "://" in out else os.path.abspath(out)
        names = self.df.columns
        schema = pa.schema([(n, _PART_TYPES[n]) for n in names])
        env = self.env

        def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            from pyspark import TaskContext

            for k, v in env.items():
                os.environ.setdefault(k, v)
            got = list(batches)
            table = pa.Table.from_batches(got) if got else None
            if table is None or table.num_rows == 0:
                return
            part = _touchpoint.part_path(rel, TaskContext.get().partitionId())
            entry = publish.write_part(out, part, table.cast(schema))
            yield pa.RecordBatch.from_pylist([{"entry": json.dumps(entry)}])

        # The library orders the parts by partition number (the DataFrame's order).
        entries = [json.loads(r["entry"]) for r in self.df.mapInArrow(write, "entry string").collect()]
        if not entries:  # no rows at all: one empty part, so the table exists with its columns
            entries = [publish.write_part(out, _touchpoint.part_path(rel, 0), schema.empty_table())]
        return entries


def _publishable(tables: Mapping[str, Any]) -> dict[str, Any]:
    """The tables as :func:`touchpoint.publish.publish` takes them: Spark DataFrames in parts."""
    return {k: (Parts(v) if hasattr(v, "mapInArrow") else v) for k, v in tables.items()}


def write(tables: Mapping[str, Any], out: str, run_date: str | None = None) -> list[str]:
    """Publish the tables to ``out`` (a directory or a URI such as ``s3://bucket/prefix``),
    manifest last (:mod:`touchpoint.publish`): ``<out>/_runs/<key>/<run-id>/<table>.parquet``,
    then ``<out>/_manifest/<key>/_manifest.json``, where ``<key>`` is ``run_date=<date>``
    or ``latest``. Returns the files the manifest lists, as URIs or paths under ``out``."""
    with publish.lock(out):
        manifest = publish.publish(_publishable(tables), out, run_date, _totals(tables))
    return _listed(out, manifest)


def _totals(tables: Mapping[str, pa.Table]) -> dict[str, float]:
    """The run's totals for its manifest, from ``data_quality`` (what the next date's
    ``guards.max_conversion_change`` compares with, as in the CLI's manifest)."""
    dq = tables.get("data_quality")
    if dq is None:
        return {}
    metrics = dict(zip(dq.column("metric").to_pylist(), dq.column("value").to_pylist()))
    # A total that is not a finite number is no total to compare with (and not JSON).
    totals = {k: float(metrics[k]) for k in ("conversions", "conversion_value") if metrics.get(k) is not None}
    return {k: v for k, v in totals.items() if math.isfinite(v)}


def _listed(out: str, manifest: Mapping[str, Any]) -> list[str]:
    base = out.rstrip("/")
    return [f"{base}/{f}" for f in publish.files_of(manifest)]


class _Usage(Exception):
    """A command-line error: the CLI's ``usage`` (2), as a JSON line like every error."""


def _rows(text: str) -> int:
    """``--chunk-rows``: refused as a usage error before Spark starts or the lock is taken."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of rows") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is negative: give rows per chunk, or 0 for whole partitions")
    return n


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print and exit 2 on its own
        self.print_usage(sys.stderr)
        raise _Usage(message)


def _failure(e: BaseException) -> tuple[str, int, str]:
    """``(kind, exit code, message)`` of a failure, with the CLI's kinds and codes
    (``src/error.rs``): the library's errors carry theirs (from an executor too); the rest
    are classified."""
    e = _from_executor(e)
    if isinstance(e, touchpoint.TouchpointError):
        return getattr(e, "kind", "bad_configuration"), getattr(e, "exit_code", 78), str(e)
    if isinstance(e, _Usage):
        return "usage", 2, f"usage: {e}"
    if type(e).__name__ == "AnalysisException" and "PATH_NOT_FOUND" in str(e):
        return "input_not_found", 66, f"input not found: {e}"
    if isinstance(e, (OSError, pa.ArrowException)):
        return "io_error", 74, f"I/O error: {e}"
    return "internal_error", 70, f"internal error: {type(e).__name__}: {e}"


def _run(a: argparse.Namespace) -> dict[str, Any]:
    """The job: settings, the lock, Spark, the guards the library cannot check, publication."""
    sections: dict[str, dict[str, Any]] = {}
    if a.run_date:
        sections["window"] = {"run_date": a.run_date}
    if a.events:
        sections["input"] = {"events": a.events}
    if a.out:
        # output.root: the library's guards compare with the previous date's manifest there.
        sections["output"] = {"root": a.out}
    s = touchpoint.settings(a.pipeline, **sections)
    out = s["output"].get("root")
    if not s["input"].get("events") or not out:
        raise publish.error("bad_configuration", 78, "bad configuration: the Spark job needs input.events "
                            "and an output (--out or output.root)")
    publish.filesystem(out)  # a bad URI fails here, before Spark starts
    _touchpoint.check_distributed(json.dumps(s))  # and so do staged inputs' files and the settings
    run_date = s["window"].get("run_date")
    with publish.lock(out, s["output"].get("lock_timeout_seconds", 0)):
        # Local workers run this Python (the one touchpoint is installed in) unless the
        # cluster says otherwise (spark.pyspark.python, PYSPARK_PYTHON).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("touchpoint").getOrCreate()
        staged = _touchpoint.staged(json.dumps(s))
        events = None if staged else spark.read.parquet(s["input"]["events"])
        chunk_rows = None if a.chunk_rows == 0 else a.chunk_rows
        tables = attribute(events, pipeline=a.pipeline, partitions=a.partitions, chunk_rows=chunk_rows, **sections)
        totals = _totals(tables)
        if "conversions" in totals:
            # The previous publication's manifest, read through the store (local or not),
            # against the library's rule; the undated run's is `_manifest/latest`.
            publish.check_conversion_change(json.dumps(s), out, run_date, totals["conversions"])
        manifest = publish.publish(_publishable(tables), out, run_date, totals)
    return {"status": "ok", "run_id": manifest["run_id"],
            "manifest": publish.manifest_path(out.rstrip("/"), run_date), "outputs": _listed(out, manifest)}


def main(argv: list[str] | None = None) -> int:
    """``touchpoint-spark PIPELINE [--run-date D] [--out DIR|URI]``: one JSON line on stdout,
    the CLI's exit codes and error kinds, never a traceback."""
    p = _Parser(prog="touchpoint-spark", description="touchpoint's Spark job")
    p.add_argument("pipeline", help="pipeline file (input.events is read with spark.read.parquet; with staged "
                   "input, [[sources]] etc., the library reads each file once, one task a file)")
    p.add_argument("--run-date", help="the run date of a scheduled run (window.run_date)")
    p.add_argument("--events", help="override input.events")
    p.add_argument("--out", help="override output.root: a directory or a URI (s3://bucket/prefix)")
    p.add_argument("--partitions", type=int, help="partitions of the events, or of the staged input's persons "
                   "(default: spark.sql.shuffle.partitions)")
    p.add_argument("--chunk-rows", type=_rows, default=CHUNK_ROWS,
                   help=f"rows of whole users per chunk of a sorted partition (default {CHUNK_ROWS}); 0: Spark "
                   "does not sort, each partition is one chunk held whole by its worker (faster)")
    try:
        summary = _run(p.parse_args(argv))
    except Exception as e:  # every failure becomes the CLI's JSON error line
        kind, code, message = _failure(e)
        log.error("%s", message, exc_info=code == 70)
        print(json.dumps({"status": "error", "kind": kind, "exit_code": code, "message": message}))
        return code
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
