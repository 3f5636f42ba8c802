from typing import Any

__version__: str
DISTRIBUTED_MODELS: list[str]
DISTRIBUTED_TABLES: list[str]
SECTIONS: list[str]
TOP_PATHS: int
STATISTICS_SCHEMA: list[tuple[str, str]]
REPLICATES_SCHEMA: list[tuple[str, str]]
CAMPAIGNS_SCHEMA: list[tuple[str, str]]

class TouchpointError(Exception):
    exit_code: int
    kind: str

def attribute(events: Any, settings: str) -> list[tuple[str, Any]]: ...
def partial(events: Any, settings: str) -> tuple[str, list[tuple[str, Any]]]: ...
def path_statistics(paths: Any, settings: str) -> Any: ...
def solve(
    statistics: Any, metas: list[str], settings: str, summed: dict[str, Any] | None = None
) -> tuple[list[tuple[str, Any]], str | None, str | None]: ...
def resolve_settings(overrides: str, pipeline: str | None = None) -> str: ...
def check_distributed(settings: str) -> None: ...
def shard_of(ids: Any, n: int) -> list[int | None]: ...
