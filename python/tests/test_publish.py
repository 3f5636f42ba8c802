"""Publication of the Spark job, manifest last, to an S3-compatible server (moto on
127.0.0.1) and to a local directory: the tables read back through the manifest equal the
CLI's, the manifest's sizes and SHA-256 are those of the files, a rerun replaces the date,
and a failing run (a guard, a held lock) leaves the previous publication as it was and
prints the CLI's JSON error line with its exit code."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import assert_tables_equal, cli_tables, run_cli

import touchpoint
import touchpoint.spark as ts
from touchpoint import publish

DATE, NEXT = "2024-01-15", "2024-01-16"
MODELS = {"run": ["linear", "markov"], "bootstrap_replicates": 0}


def _pipeline(tmp_path: Path, events: Path, name: str = "nightly.toml", guards: str = "") -> Path:
    path = tmp_path / name
    path.write_text(f'version = 1\n[input]\nevents = "{events}"\n[models]\nrun = ["linear", "markov"]\n'
                    f"bootstrap_replicates = 0\n[window]\ndays = 3\n{guards}")
    return path


def _job(capsys, pipeline: Path, out: str, run_date: str) -> tuple[int, dict]:
    """The job as `touchpoint-spark` runs it; its exit code and its last stdout line."""
    code = ts.main([str(pipeline), "--run-date", run_date, "--out", out, "--partitions", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(lines[-1])


def _files(out: str) -> set[str]:
    """Every object under `out` (the store's listing, which readers never use)."""
    fs, base = publish.filesystem(out)
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return {i.path for i in infos if i.type == pafs.FileType.File}


def _raw(out: str, run_date: str) -> bytes:
    fs, base = publish.filesystem(out)
    with fs.open_input_stream(publish.manifest_path(base, run_date)) as f:
        return f.read()


def _check_manifest(out: str, run_date: str, tables: set[str]) -> dict:
    """The manifest lists exactly the tables with true sizes and SHA-256, and the totals."""
    doc = _check_manifest_files(out, run_date, tables)
    assert doc["totals"]["conversions"] > 0
    return doc


def test_s3_publication_manifest_rerun_and_failures(spark, s3, tmp_path, generated, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a path-joining writer would leave `s3:/bucket/…`
    out = "s3://bucket/attribution"
    pipeline = _pipeline(tmp_path, generated)
    want = cli_tables(generated, tmp_path / "cli", {"models": MODELS, "window": {"days": 3, "run_date": DATE}})
    carried = {t for t in want if t in (*touchpoint._touchpoint.DISTRIBUTED_TABLES, "path_summary")}
    carried.add("report.html")  # the page, rendered on the driver
    want["report.html"] = None

    code, line = _job(capsys, pipeline, out, DATE)
    assert code == 0 and line["status"] == "ok", line
    first = _check_manifest(out, DATE, carried)
    assert sorted(line["outputs"]) == sorted(f"{out}/{f}" for f in publish.files_of(first))
    for name, table in publish.read(out, DATE).items():
        if name == "report.html":
            assert table.startswith("<!doctype html>")
        else:
            assert_tables_equal(table, want[name], name, rel=1e-9)

    # A rerun of the date: the manifest names the new run's files; the old run's are gone.
    code, line = _job(capsys, pipeline, out, DATE)
    assert code == 0, line
    second = _check_manifest(out, DATE, carried)
    assert second["run_id"] != first["run_id"]
    old = {f"bucket/attribution/{f}" for f in publish.files_of(first)}
    new = {f"bucket/attribution/{f}" for f in publish.files_of(second)}
    assert not old & _files(out) and new <= _files(out)
    for name, table in publish.read(out, DATE).items():
        if name == "report.html":
            assert table.startswith("<!doctype html>")
        else:
            assert_tables_equal(table, want[name], name, rel=1e-9)

    # A guard that fires after Spark has run (the library's min_conversions): 65, nothing
    # of the failed run left, the date's manifest and files as they were.
    before, listing = _raw(out, DATE), _files(out)
    strict = _pipeline(tmp_path, generated, "strict.toml", "[guards]\nmin_conversions = 1e12\n")
    code, line = _job(capsys, strict, out, DATE)
    assert (code, line["status"], line["kind"], line["exit_code"]) == (65, "error", "guard", 65), line
    assert _raw(out, DATE) == before and _files(out) == listing

    # The next date against this one (guards.max_conversion_change, checked on the store
    # the library cannot read): 65, and nothing published for that date.
    jumpy = _pipeline(tmp_path, generated, "jumpy.toml", "[guards]\nmax_conversion_change = 1e-9\n")
    code, line = _job(capsys, jumpy, out, NEXT)
    assert (code, line["kind"]) == (65, "guard"), line
    assert "max_conversion_change" in line["message"] and publish.read_manifest(out, NEXT) is None
    assert _files(out) == listing
    assert not (tmp_path / "s3:").exists()

    # The next date published: its page shows tonight against the previous night, from the
    # headline the first date's manifest keeps on the store (Markov's credit per channel).
    head = publish.read_manifest(out, DATE)["headline"]
    markov = [r for r in want["channel_attribution"].to_pylist() if r["model"] == "markov"]
    assert head["model"] == "markov"
    assert head["conversions"] == {r["channel"]: r["conversions"] for r in markov if r["channel"] != "(unattributed)"}
    code, line = _job(capsys, pipeline, out, NEXT)
    assert code == 0, line
    page = publish.read(out, NEXT)["report.html"]
    assert "Tonight against the previous night" in page


def test_local_publication_guard_and_lock(spark, tmp_path, generated, capsys):
    """On a local directory: the same layout, the library's own guard against the previous
    date's manifest (output.root is passed to it), and the lock (75, before Spark runs)."""
    out = str(tmp_path / "out")
    code, line = _job(capsys, _pipeline(tmp_path, generated), out, DATE)
    assert code == 0, line
    doc = _check_manifest(out, DATE, set(publish.read(out, DATE)))
    assert Path(out, "_manifest", f"run_date={DATE}", "_manifest.json").is_file()

    jumpy = _pipeline(tmp_path, generated, "jumpy.toml", "[guards]\nmax_conversion_change = 1e-9\n")
    code, line = _job(capsys, jumpy, out, NEXT)
    assert (code, line["kind"]) == (65, "guard"), line
    assert f"run_date={DATE}" in line["message"] and publish.read_manifest(out, NEXT) is None
    assert not Path(out, "_runs", f"run_date={NEXT}").exists() or not any(Path(out, "_runs", f"run_date={NEXT}").iterdir())

    with publish.lock(out):
        code, line = _job(capsys, _pipeline(tmp_path, generated), out, DATE)
    assert (code, line["kind"], line["exit_code"]) == (75, "locked", 75), line
    assert str(Path(out, ".touchpoint", "lock")) in line["message"], line
    # The lock is the library's, the one the CLI's `run` takes on a root: a CLI run to a
    # root the job holds (not yet published to) fails the same way.
    fresh = str(tmp_path / "fresh")
    with publish.lock(fresh):
        cli = run_cli("run", str(_pipeline(tmp_path, generated)), "--run-date", DATE,
                      "--set", f'output.root="{fresh}"', check=False)
    assert cli.returncode == 75 and json.loads(cli.stdout.strip().splitlines()[-1])["kind"] == "locked", cli
    assert publish.read_manifest(out, DATE) == doc

    # Undated runs: the change guard reads the undated run's manifest (`_manifest/latest`)
    # with the library's rule; another log's conversions change by more than the bound.
    plain = str(tmp_path / "plain")
    assert ts.main([str(_pipeline(tmp_path, generated)), "--out", plain, "--partitions", "2"]) == 0
    first = publish.read_manifest(plain, None)
    capsys.readouterr()
    events = pq.read_table(str(generated))
    half = tmp_path / "half.parquet"
    pq.write_table(events.slice(0, events.num_rows // 2), half)
    assert ts.main([str(jumpy), "--events", str(half), "--out", plain, "--partitions", "2"]) == 65
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["kind"] == "guard" and "_manifest/latest" in line["message"], line
    assert publish.read_manifest(plain, None) == first


def test_errors_are_the_cli_json_line(tmp_path, capsys):
    """No traceback, no exit 1: a bad flag is `usage` (2), a bad URI `bad_configuration`
    (78), a missing pipeline file the library's `input_not_found` (66); none starts Spark."""
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('version = 1\n[input]\nevents = "/nowhere.parquet"\n')
    for argv, kind, code in [
        ([str(pipeline), "--bogus"], "usage", 2),
        ([str(pipeline), "--chunk-rows", "-5"], "usage", 2),
        ([str(pipeline), "--chunk-rows", "many"], "usage", 2),
        ([str(pipeline), "--out", "nosuchscheme://x/y"], "bad_configuration", 78),
        ([str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")], "input_not_found", 66),
    ]:
        assert ts.main(argv) == code, argv
        line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert (line["status"], line["kind"], line["exit_code"]) == ("error", kind, code), line


def test_the_cli_and_the_spark_job_refuse_each_others_root(tmp_path):
    """The CLI's date partitions and the job's manifest-last layout share the manifests'
    paths, so each refuses the other's root (78) instead of taking its files for its own,
    and the first writer's publication stays as it was."""
    import pyarrow as pa

    spark_root, cli_root = str(tmp_path / "spark"), str(tmp_path / "cli")
    ts.write({"a": pa.table({"x": [1.0]})}, spark_root, "2024-02-16")
    before = _files(spark_root)
    nightly = str(Path(__file__).parents[2] / "pipelines" / "sample_nightly.toml")
    cli = run_cli("run", nightly, "--run-date", "2024-02-16", "--set", f'output.root="{spark_root}"', check=False)
    line = json.loads(cli.stdout.strip().splitlines()[-1])
    assert (cli.returncode, line["kind"]) == (78, "bad_configuration") and "_runs" in line["message"], cli
    assert _files(spark_root) == before and publish.read(spark_root, "2024-02-16")["a"].num_rows == 1

    run_cli("run", nightly, "--run-date", "2024-02-16", "--set", f'output.root="{cli_root}"')
    with pytest.raises(touchpoint.TouchpointError) as e:
        ts.write({"a": pa.table({"x": [1.0]})}, cli_root, "2024-02-16")
    assert (e.value.kind, e.value.exit_code) == ("bad_configuration", 78) and ".touchpoint/dates" in str(e.value)
    assert not Path(cli_root, "_runs").exists()


def test_missing_events_are_input_not_found(spark, tmp_path, capsys):
    """Spark's PATH_NOT_FOUND is the CLI's `input_not_found` (66: retry later), and the
    failed run leaves no manifest and no run files."""
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(f'version = 1\n[input]\nevents = "{tmp_path / "nowhere"}"\n')
    out = str(tmp_path / "out")
    code, line = _job(capsys, pipeline, out, DATE)
    assert (code, line["kind"]) == (66, "input_not_found"), line
    assert publish.read_manifest(out, DATE) is None and not Path(out, "_runs").exists()


def test_write_lists_what_it_published_and_cleans_up_a_failed_upload(s3):
    """`write` (the library call) returns the files its manifest names; an upload that fails
    (no such bucket) is the CLI's `io_error` (74) and leaves nothing behind."""
    import pyarrow as pa

    tables = {"a": pa.table({"x": [1.0, 2.0]}), "b": pa.table({"y": ["p", "q"]})}
    out = "s3://bucket/direct"
    written = ts.write(tables, out, "2024-03-01")
    doc = _check_manifest_files(out, "2024-03-01", {"a", "b"})
    assert sorted(written) == sorted(f"{out}/{f['path']}" for f in doc["files"].values())
    assert publish.read(out, "2024-03-01")["b"].equals(tables["b"])
    with pytest.raises(touchpoint.TouchpointError) as e:
        ts.write(tables, "s3://no-such-bucket/x", "2024-03-01")
    assert (e.value.kind, e.value.exit_code) == ("io_error", 74)
    assert publish.read(out, "2024-03-01")["a"].equals(tables["a"])


def _check_manifest_files(out: str, run_date: str, tables: set[str]) -> dict:
    """The manifest of the date lists exactly `tables`, each file with its true size and
    SHA-256."""
    doc = publish.read_manifest(out, run_date)
    assert doc is not None and doc["run_date"] == run_date and set(doc["files"]) == tables
    fs, base = publish.filesystem(out)
    for name, table in doc["files"].items():
        for f in table.get("parts", [table]):  # a table written in parts: each part
            with fs.open_input_stream(f"{base}/{f['path']}") as s:
                data = s.read()
            assert len(data) == f["bytes"] and hashlib.sha256(data).hexdigest() == f["sha256"], name
    return doc


def test_a_commit_deletes_the_previous_run_and_old_leftovers_not_a_run_still_writing(s3):
    """No lock on an object store: a second job of the same date may be writing while the
    first commits. The commit deletes the run the previous manifest named and leftovers of
    killed jobs older than a day, never a younger run, whose manifest must find its files."""
    import pyarrow as pa

    out, day = "s3://bucket/overlap", "2024-03-02"
    tables = {"a": pa.table({"x": [1.0]})}
    first = ts.write(tables, out, day)
    fs, base = publish.filesystem(out)
    runs = f"{base}/_runs/run_date={day}"
    young = "29991231T000000000000Z-aaaaaaaaaaaa"  # a run that started after ours
    old = "20000101T000000000000Z-bbbbbbbbbbbb"  # a killed job's, long ago
    for r in (young, old):
        with fs.open_output_stream(f"{runs}/{r}/a.parquet") as f:
            f.write(b"partial")
    second = ts.write(tables, out, day)
    left = _files(out)
    assert not any(p.endswith(first[0].split("/")[-2] + "/a.parquet") for p in left), left
    assert f"{runs}/{young}/a.parquet" in left
    assert f"{runs}/{old}/a.parquet" not in left
    assert all(f.removeprefix("s3://") in left for f in second)


def test_spark_submit_publishes_the_nightly_pipeline_to_s3(spark, s3, tmp_path, monkeypatch):
    """As the README shows: `spark-submit` of the job with `--out s3://…` (the standard AWS
    variables point at the server on 127.0.0.1) publishes `pipelines/sample_nightly.toml`
    (groups, spend, 200 replicates) on the store: every table `touchpoint run` writes, values
    to 1e-9, intervals included, the page, and the manifest listing them."""
    monkeypatch.chdir(tmp_path)  # where a path-joining writer would leave `s3:/bucket/…`
    pipeline = Path(__file__).parents[2] / "pipelines" / "sample_nightly.toml"
    date, cli = "2024-02-15", tmp_path / "cli"
    run_cli("run", str(pipeline), "--run-date", date, "--set", f"output.root={json.dumps(str(cli))}", "-q")
    want = {f.parent.parent.name: pq.read_table(f) for f in sorted(cli.glob("*/run_date=*/part-0.parquet"))}
    out = "s3://bucket/nightly"
    submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    args = [str(pipeline), "--run-date", date, "--out", out, "--partitions", "2"]
    p = subprocess.run([str(submit), "--master", "local[2]", "--driver-memory", "1g", ts.__file__, *args],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    line = json.loads(p.stdout.strip().splitlines()[-1])
    assert line["status"] == "ok" and line["manifest"] == f"{out}/_manifest/run_date={date}/_manifest.json", line
    published = publish.read(out, date)
    assert published.pop("report.html").startswith("<!doctype html>")
    assert sorted(published) == sorted(want)
    for name, table in published.items():
        assert_tables_equal(table, want[name], name, rel=1e-9)
    assert published["channel_attribution"].column("conversions_low").null_count < published["channel_attribution"].num_rows
    assert not (tmp_path / "s3:").exists()


def test_a_disk_that_fills_up_fails_with_74_and_leaves_the_previous_date(spark, tmp_path, generated, capsys):
    """The Spark job on a small file system (a tmpfs; needs root, as CI runs): the first
    date fits, a second, bigger run of the same date does not. It fails with the CLI's 74
    (`io_error`) and its JSON line, the first date's manifest and files are as they were,
    and nothing of the failed run is left taking space."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=140k", "tmpfs", str(mnt)], check=True)
    try:
        out = str(mnt / "out")
        small = tmp_path / "small.toml"
        small.write_text(f'version = 1\n[input]\nevents = "{generated}"\n[models]\nrun = ["linear"]\n'
                         "bootstrap_replicates = 0\n[window]\ndays = 1\n")
        code, line = _job(capsys, small, out, DATE)
        assert code == 0, line
        before = {p: p.read_bytes() for p in Path(out).rglob("*") if p.is_file()}
        big = _pipeline(tmp_path, generated, "big.toml")  # linear and markov, three days
        code, line = _job(capsys, big, out, DATE)
        assert (code, line["kind"], line["exit_code"]) == (74, "io_error", 74), line
        after = {p: p.read_bytes() for p in Path(out).rglob("*") if p.is_file()}
        assert after == before, sorted(set(after) ^ set(before))
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
