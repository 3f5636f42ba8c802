from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

__version__: str

#: The pipeline file's sections; each is a keyword argument taking a mapping of its keys.
SECTIONS: tuple[str, ...]

class TouchpointError(Exception):
    """A run failed. The message is the CLI's; it names the file or "the events", the
    column and the problem, never a user id."""

    #: The CLI's exit status: 65 bad data, 66 missing input, 74 I/O, 78 bad settings, 70 bug.
    exit_code: int
    #: The CLI's error kind (`Error::kind` in src/error.rs): "bad_input", "input_not_found",
    #: "bad_configuration", "usage", "io_error", "locked", "guard", "internal_error".
    kind: str

# An Arrow table or stream: anything with ``__arrow_c_stream__`` (pyarrow.Table,
# pyarrow.RecordBatchReader, polars.DataFrame, ...), a pyarrow.RecordBatch or a pandas DataFrame.
ArrowLike = Any
Section = Mapping[str, Any]

def settings(
    pipeline: str | None = None,
    *,
    input: Section | None = None,
    columns: Section | None = None,
    path_table: Section | None = None,
    journeys: Section | None = None,
    models: Section | None = None,
    window: Section | None = None,
    output: Section | None = None,
    guards: Section | None = None,
    channel_groups: Section | None = None,
    channel_rules: Section | None = None,
    conversions: Section | None = None,
    identity: Section | None = None,
    segments: Section | None = None,
) -> dict[str, Any]:
    """The resolved settings (defaults < pipeline file < keyword sections)."""

def attribute(
    events: ArrowLike,
    *,
    pipeline: str | None = None,
    input: Section | None = None,
    columns: Section | None = None,
    journeys: Section | None = None,
    models: Section | None = None,
    window: Section | None = None,
    output: Section | None = None,
    guards: Section | None = None,
    channel_groups: Section | None = None,
    channel_rules: Section | None = None,
) -> dict[str, pa.Table]:
    """Every table ``touchpoint attribute`` writes, by name (docs/schema.md)."""

def partial(
    events: ArrowLike, *, pipeline: str | None = None, **sections: Section
) -> tuple[str, pa.Table, pa.Table | None, pa.Table | None]:
    """A group of whole users → (metadata JSON, partial path table: path, conversions, nulls,
    value, and with intervals on the replicates' statistics: kind, model, from, to, and
    conversions, nulls, value as lists with a value per replicate, and with a campaign column the campaign sums: draw, stat, set,
    path_channel, channel, campaign, conversions, value)."""

def sum_replicates(tables: Iterable[pa.Table]) -> pa.Table:
    """Replicate statistics of disjoint partials summed by (kind, model, from, to), their
    lists added element by element."""

def path_statistics(paths: ArrowLike, *, pipeline: str | None = None, **sections: Section) -> pa.Table:
    """Distinct summed paths → additive statistics (kind, model, from, to, conversions, nulls, value)."""

def solve(
    statistics: ArrowLike,
    metas: list[str],
    *,
    replicates: ArrowLike | None = None,
    campaigns: ArrowLike | None = None,
    pipeline: str | None = None,
    **sections: Section,
) -> dict[str, pa.Table]:
    """Summed statistics + every partial's metadata (+ the summed replicate statistics, +
    the summed campaign sums) → the distributed tables (with their interval columns, and
    ``campaign_attribution``)."""

def shard_of(user_ids: ArrowLike | list[Any], n: int) -> list[int | None]:
    """``pmod(xxhash64(id), n)`` per id: string, int32 and int64 ids (their Arrow type picks the bytes)."""
