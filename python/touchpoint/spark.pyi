from collections.abc import Mapping
from typing import Any

import pyarrow as pa

CHUNK_ROWS: int

def attribute(
    events: Any,
    *,
    pipeline: str | None = None,
    partitions: int | None = None,
    chunk_rows: int = ...,
    **sections: Mapping[str, Any],
) -> dict[str, pa.Table]:
    """A Spark DataFrame of events → the distributed tables, equal to the CLI's."""

def write(tables: Mapping[str, pa.Table], out: str, run_date: str | None = None) -> list[str]:
    """Publish the tables to a directory or a URI (``s3://…``), manifest last
    (:mod:`touchpoint.publish`); the files the manifest lists."""

def main(argv: list[str] | None = None) -> int:
    """``touchpoint-spark PIPELINE [--run-date D] [--out DIR]``."""
