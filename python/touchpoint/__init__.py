"""touchpoint: multi-touch attribution over Arrow tables, in notebooks and on Spark.

The numbers, checks and messages are the CLI's: this package is a thin layer over the same
Rust library. Settings are the pipeline file's sections (``docs/pipelines.md``), given as
keyword arguments of the same names::

    tables = touchpoint.attribute(
        events,                                  # pyarrow Table, Polars DataFrame, any Arrow stream
        columns={"user": "customer_id"},
        models={"run": ["first_touch", "last_touch", "linear", "markov"], "markov_order": 2},
        journeys={"lookback_days": 30},
    )
    tables["channel_attribution"]              # a pyarrow.Table

Errors raise :class:`TouchpointError` with the CLI's message, ``exit_code`` and ``kind``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from . import _touchpoint
from ._touchpoint import TouchpointError, __version__

__all__ = [
    "TouchpointError",
    "__version__",
    "attribute",
    "partial",
    "path_statistics",
    "settings",
    "shard_of",
    "solve",
    "sum_replicates",
    "SECTIONS",
]

#: The pipeline file's sections, each a keyword argument taking a mapping of its keys (the
#: library's own list, the one the environment variables are checked against).
SECTIONS = tuple(_touchpoint.SECTIONS)


class _Capsule:
    """An object exposing one Arrow stream capsule through the PyCapsule interface."""

    def __init__(self, capsule: Any) -> None:
        self._capsule = capsule

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._capsule


def _table(capsule: Any) -> pa.Table:
    return pa.RecordBatchReader.from_stream(_Capsule(capsule)).read_all()


def _stream(data: Any) -> Any:
    """The Arrow C stream capsule of a table-like object (no copy for Arrow producers)."""
    if hasattr(data, "__arrow_c_stream__"):
        return data.__arrow_c_stream__()
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data]).__arrow_c_stream__()
    if type(data).__module__.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False).__arrow_c_stream__()
    raise TypeError(
        f"expected an Arrow table or stream (pyarrow.Table, polars.DataFrame, ...), got {type(data).__name__}"
    )


def _overrides(sections: Mapping[str, Any]) -> str:
    out: dict[str, Any] = {}
    for section, values in sections.items():
        if values is None:
            continue
        if section not in SECTIONS:
            raise TypeError(f"unknown settings section {section!r}; the sections are {', '.join(SECTIONS)}")
        if not isinstance(values, Mapping):
            raise TypeError(f"{section}= takes a mapping of the [{section}] section's keys")
        for key, value in values.items():
            out[f"{section}.{key}"] = value
    return json.dumps(out)


def settings(pipeline: str | None = None, **sections: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved settings (defaults < pipeline file < keyword sections), as a dict."""
    return json.loads(_touchpoint.resolve_settings(_overrides(sections), pipeline))


def _resolved(pipeline: str | None, sections: Mapping[str, Any]) -> str:
    return _touchpoint.resolve_settings(_overrides(sections), None if pipeline is None else str(pipeline))


def attribute(events: Any, *, pipeline: str | None = None, **sections: Mapping[str, Any]) -> dict[str, pa.Table]:
    """Attribute conversions to channels: every table ``touchpoint attribute`` writes."""
    s = _resolved(pipeline, sections)
    return {name: _table(c) for name, c in _touchpoint.attribute(_stream(events), s)}


def partial(
    events: Any, *, pipeline: str | None = None, **sections: Mapping[str, Any]
) -> tuple[str, pa.Table, pa.Table | None, pa.Table | None]:
    """The partial path table of a group of whole users, its metadata (JSON), with
    intervals on (``bootstrap_replicates > 0``) its replicates' statistics, and with a
    campaign column its campaign sums.

    Partials of disjoint groups of users add up: sum their path tables by ``path`` and
    pass the sums to :func:`path_statistics`, the metadata to :func:`solve`; sum their
    replicate statistics with :func:`sum_replicates` and pass them to :func:`solve` as
    ``replicates``; sum their campaign sums by ``draw, stat, set,
    path_channel, channel, campaign`` and pass them as ``campaigns``.
    """
    settings = _resolved(pipeline, sections)
    if json.loads(settings)["output"]["journey_credit"]:
        from touchpoint.publish import error

        raise error("bad_configuration", 78, "bad configuration: journey_credit is per journey, not a sum: "
                    "touchpoint.partial does not carry it (touchpoint.spark and --shard + merge do)")
    meta, streams = _touchpoint.partial(_stream(events), settings)
    named = {name: _table(c) for name, c in streams}
    return meta, named["paths"], named.get("replicates"), named.get("campaigns")


def sum_replicates(tables: Any) -> pa.Table:
    """Partials' replicate statistics summed by statistic (``kind, model, from, to``): each
    number is a list with a value per replicate, added element by element (a null list is
    zero in every replicate), as the Spark job sums them."""
    keys = [n for n, t in _touchpoint.REPLICATES_SCHEMA if t == "string"]
    numbers = [n for n, t in _touchpoint.REPLICATES_SCHEMA if t != "string"]
    sums: dict[tuple[str, ...], list[list[float] | None]] = {}
    for table in tables:
        columns = [table.column(c).to_pylist() for c in (*keys, *numbers)]
        for row in zip(*columns):
            into = sums.setdefault(tuple(row[: len(keys)]), [None] * len(numbers))
            for i, values in enumerate(row[len(keys):]):
                if values is not None and into[i] is not None and len(values) != len(into[i]):
                    raise TouchpointError(f"replicate statistics of {row[: len(keys)]}: {len(values)} replicates "
                                          f"in one table, {len(into[i])} in another (partials of other settings?)")
                if values is not None:
                    into[i] = values if into[i] is None else [a + b for a, b in zip(into[i], values)]
    ordered = sorted(sums.items())
    out = {k: pa.array([key[i] for key, _ in ordered], pa.string()) for i, k in enumerate(keys)}
    for i, n in enumerate(numbers):
        out[n] = pa.array([v[i] for _, v in ordered], pa.list_(pa.float64()))
    return pa.table(out)


def path_statistics(paths: Any, *, pipeline: str | None = None, **sections: Mapping[str, Any]) -> pa.Table:
    """Additive statistics (credit per rule model, Markov edges, totals) of distinct paths."""
    return _table(_touchpoint.path_statistics(_stream(paths), _resolved(pipeline, sections)))


def solve(
    statistics: Any,
    metas: list[str],
    *,
    replicates: Any = None,
    campaigns: Any = None,
    pipeline: str | None = None,
    **sections: Mapping[str, Any],
) -> dict[str, pa.Table]:
    """The tables of summed path statistics and the partials' metadata; with the summed
    replicate statistics, their interval columns too; with the summed campaign sums,
    ``campaign_attribution``."""
    s = _resolved(pipeline, sections)
    reps = _stream(replicates) if replicates is not None else None
    camps = _stream(campaigns) if campaigns is not None else None
    summed = {"replicates": reps, "campaigns": camps}
    tables, _ = _touchpoint.solve(_stream(statistics), list(metas), s, summed)
    return {name: _table(c) for name, c in tables}


def shard_of(user_ids: Any, n: int) -> list[int | None]:
    """The shard of each user id among ``n``, as ``--shard`` and Spark's
    ``pmod(xxhash64(id), n)`` compute it: string, int32 and int64 ids (their Arrow type
    decides the bytes hashed)."""
    ids = user_ids if isinstance(user_ids, (pa.Array, pa.ChunkedArray)) else pa.array(user_ids)
    return _touchpoint.shard_of(pa.table({"id": ids}).__arrow_c_stream__(), n)
