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
    """Write tables in the CLI's layout (hive partitions by run date for scheduled runs)."""

def main(argv: list[str] | None = None) -> int:
    """``touchpoint-spark PIPELINE [--run-date D] [--out DIR]``."""
