from collections.abc import Mapping
from typing import Any

import pyarrow as pa

CHUNK_ROWS: int

def attribute(
    events: Any,
    *,
    pipeline: str | None = None,
    partitions: int | None = None,
    chunk_rows: int | None = ...,
    **sections: Mapping[str, Any],
) -> dict[str, Any]:
    """A Spark DataFrame of events (None when the settings stage their input: sources, a
    conversions table, an identity map, customers, erasure) → every table the CLI writes:
    the small ones as ``pyarrow.Table``s, ``path_summary`` and ``journey_credit`` as sorted
    Spark DataFrames written by the executors, and the page."""

class Parts:
    """A Spark DataFrame published in parts, each written by its executor."""
    def __init__(self, df: Any) -> None: ...
    def write_parts(self, out: str, rel: str) -> list[dict[str, Any]]: ...

def write(tables: Mapping[str, Any], out: str, run_date: str | None = None) -> list[str]:
    """Publish the tables to a directory or a URI (``s3://…``), manifest last
    (:mod:`touchpoint.publish`); the files the manifest lists."""

def main(argv: list[str] | None = None) -> int:
    """``touchpoint-spark PIPELINE [--run-date D] [--out DIR]``."""
