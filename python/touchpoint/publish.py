"""Publishing tables to a directory or an object store, manifest last.

An object store (S3 and its kin) has no atomic rename and no directory to swap, so the
CLI's publication (one ``rename(2)`` of a symlink, ``docs/scheduling.md`` § Publication)
cannot be copied there. What a single PUT does give is an object that is either entirely
old or entirely new. So the **manifest is the commit point**:

1. every table of a run is written under a fresh run prefix that nothing points at yet,
   ``<out>/_runs/<key>/<run-id>/<table>.parquet`` (``<key>`` is ``run_date=D``, or
   ``latest`` for a run without a date);
2. then the manifest, ``<out>/_manifest/<key>/_manifest.json``, is written in one PUT (on a
   local disk: written beside it, synced, renamed) listing every file with its size and
   SHA-256: a reader that reads the manifest first sees the previous complete run or the
   new complete run, never a mix;
3. only then are the run the previous manifest named and runs a killed job left over a day
   earlier deleted (never a younger run: another job of the date may still be writing it).

The rules are the library's (``touchpoint::publish::manifest_last``, through
:class:`touchpoint._touchpoint.Publication`): the layout, the run id, the manifest's
format and entries, which runs are stale, and on a local disk the lock the CLI's ``run``
takes. This module only moves the bytes through pyarrow's filesystems, in that order.

A failure before step 2 deletes the new run prefix and leaves the previous manifest and its
files as they were. Names starting with ``_`` are skipped by hive-partition readers, so a
reader never lists a run's files by accident: it reads the manifest, then the files it
lists (:func:`read`). ``docs/scale.md`` § Spark says what a reader can rely on.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import _touchpoint
from ._touchpoint import TouchpointError

#: The manifest's format: readers check it before trusting the rest (the library's).
FORMAT = _touchpoint.PUBLICATION_FORMAT


def error(kind: str, exit_code: int, message: str) -> TouchpointError:
    """A :class:`TouchpointError` with the CLI's ``kind`` and exit code (``src/error.rs``),
    for failures the Rust library does not see (the store, the lock)."""
    e = TouchpointError(message)
    e.kind, e.exit_code = kind, exit_code
    return e


def filesystem(out: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``out`` and the path inside it. A URI (``s3://bucket/prefix``)
    goes to pyarrow's filesystem for its scheme, which reads the standard AWS variables
    (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_REGION``); a plain path is a local directory (never a directory named ``s3:``)."""
    if "://" not in out:
        return pafs.LocalFileSystem(), os.path.abspath(out)
    try:
        fs, path = pafs.FileSystem.from_uri(out)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as e:
        raise error("bad_configuration", 78, f"bad configuration: output {out}: {e}") from e
    return fs, path.rstrip("/")


def is_local(fs: pafs.FileSystem) -> bool:
    """Whether the store is this machine's disk (where renames are atomic and locks exist)."""
    return isinstance(fs, pafs.LocalFileSystem)


def manifest_path(base: str, run_date: str | None) -> str:
    """Where the manifest of a run date lives: the CLI's ``_manifest/run_date=D/_manifest.json``
    (so the library's guards find the previous date's totals on a local disk)."""
    return f"{base}/{_touchpoint.manifest_paths(run_date)[0]}"


@contextlib.contextmanager
def lock(out: str, wait_seconds: int = 0) -> Iterator[None]:
    """Exclusive publication to ``out`` on a local disk: the library's lock of the output
    root (``<out>/.touchpoint/lock``, the one the CLI's ``run`` takes, so the two exclude
    each other), waiting up to ``wait_seconds`` (``output.lock_timeout_seconds``); then the
    CLI's ``locked`` (75). The kernel releases it if the process dies (no stale locks). On
    an object store there is no lock: pyarrow offers no conditional PUT, so the last
    manifest written wins."""
    fs, base = filesystem(out)
    if not is_local(fs):
        yield
        return
    held = _touchpoint.lock_root(base, wait_seconds)
    try:
        yield
    finally:
        held.release()


def _parquet(table: pa.Table) -> bytes:
    """The file's bytes, in memory: the tables are the driver's small ones, and hashing the
    bytes that are uploaded is what makes the manifest's SHA-256 mean something."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _put(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """One object; on a local disk synced before it is visible under its name."""
    if not is_local(fs):
        with fs.open_output_stream(path) as o:
            o.write(data)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(out: str, run_date: str | None = None, any_writer: bool = False) -> dict[str, Any] | None:
    """The current manifest of a run date (or of the undated run), or None when none is
    published. ``any_writer``: also the CLI's, which shares the path but not the format
    (what a run's history needs: its headline and settings)."""
    fs, base = filesystem(out)
    return _manifest_at(fs, manifest_path(base, run_date), out, any_writer)


def _manifest_at(fs: pafs.FileSystem, path: str, out: str, any_writer: bool) -> dict[str, Any] | None:
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        text = f.read().decode()
    if any_writer:
        return json.loads(text)
    where = f"{out.split('://')[0]}://{path}" if "://" in out else path
    _touchpoint.check_manifest(text, where)
    return json.loads(text)


def read(out: str, run_date: str | None = None) -> dict[str, Any]:
    """The tables of the current publication (and the page, ``report.html``, as text): the
    manifest first, then the files it lists (never a listing of the store, which could mix
    runs)."""
    doc = read_manifest(out, run_date)
    if doc is None:
        rel = _touchpoint.manifest_paths(run_date)[0]
        raise error("input_not_found", 66, f"input not found: {out}: no manifest at {rel}")
    fs, base = filesystem(out)

    def table(f: Mapping[str, Any]) -> Any:
        if f["path"].endswith(".html"):  # the page
            with fs.open_input_stream(f"{base}/{f['path']}") as s:
                return s.read().decode()
        if "parts" in f:  # written by executors, one file per part, in order
            parts = [pq.read_table(f"{base}/{p['path']}", filesystem=fs) for p in f["parts"]]
            return pa.concat_tables(parts) if parts else pq.read_table(f"{base}/{f['path']}", filesystem=fs)
        return pq.read_table(f"{base}/{f['path']}", filesystem=fs)

    return {name: table(f) for name, f in doc["files"].items()}


def files_of(manifest: Mapping[str, Any]) -> list[str]:
    """The files a manifest lists, relative to the output: a table written in parts lists
    each part."""
    return _touchpoint.manifest_files(json.dumps(manifest))


def write_part(out: str, rel: str, table: pa.Table) -> dict[str, Any]:
    """Write one part of a table written in parts (by an executor): its manifest entry
    (the library's, with the size and SHA-256 of the bytes uploaded)."""
    fs, base = filesystem(out)
    data = _parquet(table)
    _put(fs, f"{base}/{rel}", data)
    return json.loads(_touchpoint.publication_entry(rel, data, table.num_rows))


class Page(str):
    """``report.html``'s text, with the headline its run's manifest keeps (the model and its
    conversions per channel: the next date's page shows the change against it), and what the
    headline measured (``settings``: the window length and spend period, so a later date's
    ``spend_response`` only fits on comparable dates, as it does with the CLI's manifests),
    and the fingerprint of the key persons were pseudonymized with (the manifest's
    ``pseudonym_key_fingerprint``, as in the CLI's)."""

    def __new__(cls, html: str, headline: Mapping[str, Any] | None = None,
                settings: Mapping[str, Any] | None = None, key_fingerprint: str | None = None) -> Page:
        page = super().__new__(cls, html)
        page.headline = dict(headline) if headline else None
        page.settings = dict(settings) if settings else None
        page.key_fingerprint = key_fingerprint
        return page


def publish(
    tables: Mapping[str, Any],
    out: str,
    run_date: str | None = None,
    totals: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Publish the tables of one run (the caller holds :func:`lock`); the manifest written.

    A table is a ``pyarrow.Table`` (one Parquet file), a page (``str``: the HTML of
    ``report.html``, written under its own name) or an object whose ``write_parts(out, rel)``
    writes it in parts under the directory ``rel`` (a table too big for the driver, written
    by Spark's executors) and returns their entries (:func:`write_part`).
    ``totals`` (``{"conversions": …}``) go into the manifest, where the next date's
    ``guards.max_conversion_change`` reads them, as it reads the CLI's.
    """
    fs, base = filesystem(out)
    run = _touchpoint.Publication(run_date)
    previous = read_manifest(out, run_date)
    try:
        files = {}
        for name, table in sorted(tables.items()):
            if hasattr(table, "write_parts"):
                rel = run.file(name, "parts")
                parts = [json.dumps(p) for p in table.write_parts(out, rel)]
                files[name] = _touchpoint.publication_parts(rel, parts)
                continue
            is_page = isinstance(table, str)
            data = table.encode() if is_page else _parquet(table)
            rel = run.file(name, "document" if is_page else "table")
            _put(fs, f"{base}/{rel}", data)
            files[name] = _touchpoint.publication_entry(rel, data)
        text = run.commit(files, json.dumps(_extra(tables, totals)))
        _put(fs, f"{base}/{run.manifest}", text.encode())
    except BaseException as e:
        _delete(fs, f"{base}/{run.run}")
        if isinstance(e, (OSError, pa.ArrowException)):
            raise error("io_error", 74, f"I/O error: {out}: {e}") from e
        raise
    _delete_stale_runs(fs, base, run, previous and previous.get("run_id"))
    return json.loads(text)


def _extra(tables: Mapping[str, Any], totals: Mapping[str, float] | None) -> dict[str, Any]:
    """What the manifest keeps besides the files: the totals and the page's data."""
    extra: dict[str, Any] = {"totals": dict(totals or {})}
    page = next((t for t in tables.values() if isinstance(t, Page)), None)
    if page is not None and page.headline:
        extra["headline"] = page.headline
        if page.settings:
            extra["settings"] = page.settings
    if page is not None and page.key_fingerprint:
        extra["pseudonym_key_fingerprint"] = page.key_fingerprint
    return extra


def _delete(fs: pafs.FileSystem, path: str) -> None:
    """Remove a run prefix, best effort: a leftover is only garbage under ``_runs/``, which
    the next run of the date removes."""
    with contextlib.suppress(OSError, pa.ArrowException):
        fs.delete_dir(path)


def _delete_stale_runs(fs: pafs.FileSystem, base: str, run: Any, previous: str | None) -> None:
    """After the commit: the runs the library's rule names stale (the run the previous
    manifest named, and what a killed job left over a day before this one; never a younger
    run, which may be another job of the date still writing)."""
    runs = f"{base}/{run.runs}"
    try:
        infos = fs.get_file_info(pafs.FileSelector(runs, allow_not_found=True))
    except (OSError, pa.ArrowException):
        return
    listed = [i.base_name for i in infos if i.type == pafs.FileType.Directory]
    for name in run.stale(listed, previous):
        _delete(fs, f"{runs}/{name}")


def previous_conversions(out: str, run_date: str | None) -> tuple[float, str] | None:
    """Total conversions of the previous publication and where they were read, when there is
    one with totals (``guards.max_conversion_change``): the previous run date's manifest, or
    the undated run's present one (the library says which)."""
    fs, base = filesystem(out)
    rel = _touchpoint.manifest_paths(run_date)[1]
    doc = _manifest_at(fs, f"{base}/{rel}", out, any_writer=True)
    if doc is None or "conversions" not in doc.get("totals", {}):
        return None
    return float(doc["totals"]["conversions"]), f"{out.rstrip('/')}/{rel}"


def check_conversion_change(settings: str, out: str, run_date: str | None, conversions: float) -> None:
    """``guards.max_conversion_change`` against the previous publication's manifest on any
    store (the library reads local paths only, so the driver reads it and the library
    decides: the CLI's rule, message and kind)."""
    _touchpoint.check_conversion_change(settings, conversions, previous_conversions(out, run_date))
