"""The Spark job against one machine: real PySpark (local[2]) on the sample and on a
generated log, every distributed model, Markov orders 1-3, a reporting window; counts
exactly, values to 1e-9 relative. And Spark's own hash is `shard_of`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import PSEUDONYM_KEY_ENV, SAMPLE, assert_tables_equal, cli_tables, run_cli

import touchpoint
import touchpoint.spark as ts

MODELS = ["first_touch", "last_touch", "last_non_direct", "linear", "position_based", "time_decay",
          "markov", "markov_journey", "shapley", "shapley_rate"]


def _compare(got: dict, want: dict, extra: tuple[str, ...] = ()) -> None:
    """Every table the job carries equals the CLI's; path_summary, a Spark DataFrame,
    collected here in its order."""
    carried = (*touchpoint._touchpoint.DISTRIBUTED_TABLES, "path_summary", *extra)
    got = dict(got)
    page = got.pop("report.html")
    assert page.startswith("<!doctype html>") and "channel" in page
    assert sorted(got) == sorted(t for t in want if t in carried)
    for name, table in got.items():
        if not isinstance(table, pa.Table):
            table = table.toArrow()
        assert_tables_equal(table, want[name], name, rel=1e-9)


@pytest.mark.parametrize("order", [1, 2, 3, "auto(max=3)"])
def test_sample_equals_the_cli(spark, tmp_path, order):
    """Every model, Markov orders 1-3 and the order chosen by held-out fold counts summed
    across chunks (markov_order_selection included)."""
    sections = {"models": {"run": MODELS, "markov_order": order, "bootstrap_replicates": 0}}
    want = cli_tables(SAMPLE, tmp_path / "cli", sections)
    got = ts.attribute(spark.read.parquet(str(SAMPLE)), chunk_rows=2000, **sections)
    _compare(got, want)


GROUPS = {"social": ["facebook", "instagram", "tiktok"], "search": ["paid_search", "organic_search"],
          "owned": ["email", "sms"]}
GROUP_TABLES = ("channel_group_attribution", "channel_group_roles", "group_comparison")


@pytest.mark.parametrize("order,replicates,chunk_rows", [(2, "auto", 3000), ("auto(max=3)", "auto", 3000),
                                                      ("auto(max=3)", "auto", None), (3, "linear", 3000)])
def test_intervals_equal_the_cli(spark, tmp_path, order, replicates, chunk_rows):
    """Chunks sum their replicates' statistics, Spark sums them by key, the driver solves:
    the interval columns equal the CLI's. With channel groups: the chunks' group-level
    paths and replicates are summed as a second level and solved the same way, so the
    group tables and group_comparison (paired replicates) equal the CLI's too. With "auto"
    the chunks sum every candidate order's chain and the driver solves the chosen one's.
    With markov_replicates = "linear" the driver takes each replicate's correction step
    from the summed fit, as the CLI takes it from its own. With ``chunk_rows=None`` Spark
    does not sort: each unsorted partition is one chunk."""
    models = {"run": MODELS, "markov_order": order, "bootstrap_replicates": 25, "bootstrap_seed": 3,
              "markov_replicates": replicates}
    sections = {"models": models,
                "channel_groups": GROUPS}
    want = cli_tables(SAMPLE, tmp_path / "cli", sections)
    got = ts.attribute(spark.read.parquet(str(SAMPLE)), chunk_rows=chunk_rows, **sections)
    ca = got["channel_attribution"]
    attributed = ca.filter(pc.not_equal(ca.column("channel"), "(unattributed)"))
    assert attributed.num_rows > 0 and attributed.column("value_high").null_count == 0
    ga = got["channel_group_attribution"]
    assert ga.num_rows > 0 and ga.column("value_high").null_count < ga.num_rows
    _compare(got, want, GROUP_TABLES)


def test_campaigns_equal_the_cli(spark, tmp_path):
    """A campaign column (five campaigns, every seventh touch without one): chunks write
    their campaign sums, Spark sums them, the driver solves them after the channel fit;
    campaign_attribution with its intervals equals the CLI's, for every model."""
    events = pq.read_table(SAMPLE)
    campaign = [None if i % 7 == 0 else f"c{(i * 2_654_435_761) % 5}" for i in range(events.num_rows)]
    path = tmp_path / "events.parquet"
    pq.write_table(events.append_column("campaign", pa.array(campaign, pa.string())), path)
    sections = {"columns": {"campaign": "campaign"},
                "models": {"run": MODELS, "markov_order": 2, "bootstrap_replicates": 20, "bootstrap_seed": 5}}
    want = cli_tables(path, tmp_path / "cli", sections)
    got = ts.attribute(spark.read.parquet(str(path)), chunk_rows=3000, **sections)
    ca = got["campaign_attribution"]
    assert ca.num_rows > 20 and ca.column("conversions_low").null_count < ca.num_rows
    _compare(got, want, ("campaign_attribution",))


def test_segments_equal_the_cli(spark, tmp_path):
    """A segment column and the customer status: each chunk writes its segments' path
    tables keyed by segment, Spark sums them per segment, the driver solves each (the pooled
    fit below min_conversions): segment_attribution and segment_roles equal the CLI's."""
    events = pq.read_table(SAMPLE)
    users = events.column("user_id").to_pylist()
    tier = [("loyal", "regular", "new_lead")[hash_of(u) % 3] for u in users]
    # A segment no journey ends in ("ghost": only a touch followed within a day by the same
    # person's next event): one run lists it with zero credit, and so must Spark.
    ts_ = events.column("ts").to_pylist()
    kinds = events.column("event").to_pylist()
    order = sorted(range(len(users)), key=lambda i: (users[i], ts_[i]))
    for a, b in zip(order, order[1:]):
        if users[a] == users[b] and kinds[a] != "conversion" and (ts_[b] - ts_[a]).total_seconds() < 86_400:
            tier[a] = "ghost"
            break
    path = tmp_path / "events.parquet"
    pq.write_table(events.append_column("tier", pa.array(tier, pa.string())), path)
    sections = {"columns": {"segment": "tier"}, "segments": {"customer_status": True, "min_conversions": 470},
                "models": {"run": MODELS, "markov_order": 1, "bootstrap_replicates": 0}}
    want = cli_tables(path, tmp_path / "cli", sections)
    got = ts.attribute(spark.read.parquet(str(path)), chunk_rows=3000, **sections)
    assert "ghost" in got["segment_attribution"].column("segment").to_pylist()
    fits = set(got["segment_attribution"].column("fit").to_pylist())
    assert fits == {"rules", "segment", "pooled"}, fits  # both kinds of segment fit are compared
    _compare(got, want, ("segment_attribution", "segment_roles"))


def test_the_nightly_pipeline_writes_every_table_of_the_cli(spark, tmp_path):
    """The bundled nightly pipeline (channel groups, spend, a one-day window, eight models,
    200 replicates) through the Spark job and through `touchpoint run`: every table the CLI
    writes, counts equal, values to 1e-9, intervals and group_comparison included; the page
    (report.html) is the one file the job does not write."""
    pipeline = Path(__file__).parents[2] / "pipelines" / "sample_nightly.toml"
    out = tmp_path / "cli"
    run_cli("run", str(pipeline), "--run-date", "2024-02-15", "--set", f"output.root={json.dumps(str(out))}", "-q")
    want = {f.parent.parent.name: pq.read_table(f) for f in sorted(out.glob("*/run_date=*/part-0.parquet"))}
    events = spark.read.parquet(str(SAMPLE))
    got = ts.attribute(events, pipeline=str(pipeline), window={"run_date": "2024-02-15"}, chunk_rows=4000)
    page = got.pop("report.html")
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for name, table in got.items():
        assert_tables_equal(table if isinstance(table, pa.Table) else table.toArrow(), want[name], name, rel=1e-9)
    # The page: the CLI's, but for the times and paths of its run (the numbers are the tables').
    cli_page = next(out.glob("report/run_date=*/report.html")).read_text()
    assert _page_text(page) == _page_text(cli_page)


def test_the_response_to_spend_over_published_nights_equals_the_cli(spark, tmp_path):
    """spend_response and budget_shift fit on earlier run dates: the Spark job reads them from
    the manifests it published (the window and spend period they measured included), the CLI
    from its own. Four nights each through the bundled pipeline; the fourth's tables equal."""
    pipeline = Path(__file__).parents[2] / "pipelines" / "sample_nightly.toml"
    response = {"days": 4, "min_days": 3, "shift_from": "search", "shift_to": "social"}
    cli_out, spark_out = tmp_path / "cli", tmp_path / "spark"
    events = spark.read.parquet(str(SAMPLE))
    dates = ["2024-02-12", "2024-02-13", "2024-02-14", "2024-02-15"]
    for d in dates:
        sets = [f"spend_response.{k}={json.dumps(v)}" for k, v in response.items()]
        sets += [f"output.root={json.dumps(str(cli_out))}", "models.bootstrap_replicates=0"]
        run_cli("run", str(pipeline), "--run-date", d, *[x for s in sets for x in ("--set", s)], "-q")
        got = ts.attribute(events, pipeline=str(pipeline), window={"run_date": d}, output={"root": str(spark_out)},
                           spend_response=response, models={"bootstrap_replicates": 0}, chunk_rows=4000)
        ts.write(got, str(spark_out), d)
    manifest = json.loads((spark_out / "_manifest" / f"run_date={dates[0]}" / "_manifest.json").read_text())
    assert manifest["settings"] == {"window": {"days": 1}, "input": {"spend_period": "window"},
                                    "journeys": {"lookback_days": 30.0}}
    for name in ("spend_response", "budget_shift"):
        want = pq.read_table(cli_out / name / f"run_date={dates[-1]}" / "part-0.parquet")
        assert_tables_equal(got[name], want, name, rel=1e-9)
    fitted = got["spend_response"]
    assert fitted.column("elasticity").null_count == 0 and set(fitted.column("days").to_pylist()) == {4}


def _page_text(html: str) -> list[str]:
    """The page's visible text, less what names the run (times, files)."""
    import re

    text = re.sub(r"<script.*?</script>|<style.*?</style>", "", html, flags=re.S)
    words = [w for w in re.sub(r"<[^>]+>", " ", text).split()]
    return [w for w in words if not re.search(r"\d{2}:\d{2}|/|\.parquet", w)]


def hash_of(user: str) -> int:
    """A stable small hash of a user id (a segment that is the person's own)."""
    return sum(user.encode()) * 2_654_435_761 % 1_000_003


def test_generated_log_with_a_window_equals_the_cli(spark, tmp_path, generated):
    sections = {"models": {"run": MODELS, "markov_order": 2, "bootstrap_replicates": 0},
                "window": {"run_date": "2024-01-20", "days": 7}, "journeys": {"lookback_days": 14}}
    want = cli_tables(generated, tmp_path / "cli", sections)
    got = ts.attribute(spark.read.parquet(str(generated)), chunk_rows=5000, **sections)
    _compare(got, want)
    # Chunks of whole users: a chunk size smaller than a user changes nothing.
    tiny = ts.attribute(spark.read.parquet(str(generated)), chunk_rows=1, **sections)
    # Unsorted partitions, each one chunk: the library sorts each partition's events itself.
    whole = ts.attribute(spark.read.parquet(str(generated)), chunk_rows=None, **sections)
    arrow = lambda t: t if isinstance(t, pa.Table) else t.toArrow()  # noqa: E731
    for name in got:
        if name != "report.html":
            assert_tables_equal(arrow(tiny[name]), arrow(got[name]), name, rel=1e-12)
            assert_tables_equal(arrow(whole[name]), arrow(got[name]), name, rel=1e-12)
    with pytest.raises(touchpoint.TouchpointError, match="chunk_rows is 0") as e:
        ts.attribute(spark.read.parquet(str(generated)), chunk_rows=0, **sections)
    assert (e.value.kind, e.value.exit_code) == ("bad_configuration", 78)


def test_spark_xxhash64_is_shard_of(spark):
    from pyspark.sql import functions as F
    ids = [f"user-{i}" for i in range(200)] + ["", "Ümlaut ☃"]
    ints = [i * 7919 - 500_000 for i in range(200)] + [-(2**31), 2**31 - 1]
    longs = [i * 1_000_000_007 - 2**40 for i in range(200)] + [-(2**63), 2**63 - 1]
    table = pa.table({"s": ids, "i": pa.array(ints, pa.int32()), "l": pa.array(longs, pa.int64())})
    df = spark.createDataFrame(table.to_pylist(), "s string, i int, l bigint")
    for n in (2, 3, 7, 16):
        rows = df.select(*[F.expr(f"pmod(xxhash64({c}), {n})").alias(c) for c in "sil"]).collect()
        for c in "sil":
            assert [r[c] for r in rows] == touchpoint.shard_of(table.column(c), n), (c, n)


@pytest.mark.parametrize("chunk_rows", ["1000000", "0"])
def test_spark_submit_entry_point_writes_the_date_partition(tmp_path, generated, spark, chunk_rows):
    pipeline = tmp_path / "nightly.toml"
    pipeline.write_text(
        f'version = 1\n[input]\nevents = "{generated}"\n[models]\nrun = ["linear", "markov"]\n'
        'bootstrap_replicates = 0\n[window]\ndays = 3\n'
    )
    out = tmp_path / "out"
    # As documented: spark-submit with the job's own file as the application.
    submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    # --chunk-rows 0: without Spark's sort, each partition one chunk (the same tables).
    args = [str(pipeline), "--run-date", "2024-01-15", "--out", str(out), "--partitions", "2", "--chunk-rows", chunk_rows]
    p = subprocess.run([str(submit), "--master", "local[2]", "--driver-memory", "1g", ts.__file__, *args],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["status"] == "ok"
    want = cli_tables(generated, tmp_path / "cli", {"models": {"run": ["linear", "markov"],
                      "bootstrap_replicates": 0}, "window": {"days": 3, "run_date": "2024-01-15"}})
    carried = [t for t in want if t in (*touchpoint._touchpoint.DISTRIBUTED_TABLES, "path_summary")]
    published = ts.publish.read(str(out), "2024-01-15")  # through the date's manifest
    assert published.pop("report.html").startswith("<!doctype html>")  # the page, as text
    assert set(published) == set(carried)
    # path_summary was written by the executors, in parts the manifest lists in order.
    doc = ts.publish.read_manifest(str(out), "2024-01-15")
    parts = doc["files"]["path_summary"]["parts"]
    assert parts and sum(p["rows"] for p in parts) == want["path_summary"].num_rows
    assert [p["path"] for p in parts] == sorted(p["path"] for p in parts)
    types = lambda t: [(f.name, str(f.type).replace("string_view", "string")) for f in t.schema]  # noqa: E731
    assert types(published["path_summary"]) == types(want["path_summary"])
    for name in carried:
        assert_tables_equal(published[name], want[name], name, rel=1e-9)
    bad = subprocess.run([sys.executable, "-m", "touchpoint.spark", str(pipeline), "--run-date", "2024-13-01",
                          "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode == 78, bad.stdout + bad.stderr


def test_the_crm_pipeline_from_the_command_line_publishes_every_table_of_the_cli(tmp_path, spark):
    """`touchpoint-spark pipelines/sample_crm.toml` (staged input: no DataFrame of events
    is read) publishes, manifest last, every table `touchpoint run` writes, journey_credit
    in the executors' parts; a staged source that is missing is exit 66 with the CLI's JSON
    error line, before Spark runs."""
    want = _cli_run(CRM, tmp_path / "cli", "2024-02-29")
    out = tmp_path / "out"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    job = [sys.executable, "-m", "touchpoint.spark"]
    p = subprocess.run([*job, str(CRM), "--run-date", "2024-02-29", "--out", str(out), "--partitions", "2"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["status"] == "ok"
    published = ts.publish.read(str(out), "2024-02-29")
    assert published.pop("report.html").startswith("<!doctype html>")
    assert set(published) == set(want)
    for name in want:
        assert_tables_equal(published[name], want[name], name, rel=1e-9)
    parts = ts.publish.read_manifest(str(out), "2024-02-29")["files"]["journey_credit"]["parts"]
    assert sum(p["rows"] for p in parts) == want["journey_credit"].num_rows
    bad = tmp_path / "bad.toml"
    bad.write_text(f'version = 1\n[input]\nevents = "{SAMPLE}"\n[conversions]\npath = "{tmp_path / "gone.csv"}"\n'
                   'user = "customer_ref"\ntime = "ordered_at"\nid = "order_id"\n')
    p = subprocess.run([*job, str(bad), "--run-date", "2024-02-29", "--out", str(out)],
                       capture_output=True, text=True, env=env)
    line = json.loads(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 66 and line["kind"] == "input_not_found" and "gone.csv" in line["message"], p.stdout


def test_settings_the_job_cannot_carry_are_refused_before_spark_runs(spark):
    # The training window keeps each day's journeys in one machine's output root.
    with pytest.raises(touchpoint.TouchpointError) as e:
        ts.attribute(spark.read.parquet(str(SAMPLE)), models={"training_days": 30}, window={"run_date": "2024-02-15"})
    assert e.value.exit_code == 78 and "training_days" in str(e.value)
    # Staged input is read by the library from its files: a DataFrame of events beside it
    # would be ignored, so it is refused.
    orders = Path(__file__).parents[2] / "sample-data" / "crm" / "orders.csv"
    conversions = {"path": str(orders), "user": "customer_ref", "time": "ordered_at", "id": "order_id", "value": "amount"}
    with pytest.raises(touchpoint.TouchpointError) as e:
        ts.attribute(spark.read.parquet(str(SAMPLE)), input={"events": str(SAMPLE)}, conversions=conversions)
    assert e.value.exit_code == 78 and "events=None" in str(e.value)


CRM = Path(__file__).parents[2] / "pipelines" / "sample_crm.toml"


def _cli_run(pipeline: Path, out: Path, date: str, *sets: str) -> dict[str, pa.Table]:
    flags = [x for s in sets for x in ("--set", s)]
    run_cli("run", str(pipeline), "--run-date", date, "--set", f"output.root={json.dumps(str(out))}", *flags, "-q")
    return {f.parent.parent.name: pq.read_table(f) for f in sorted(out.glob("*/run_date=*/part-0.parquet"))}


@pytest.mark.parametrize("partitions", [1, 3])
def test_the_crm_pipeline_writes_every_table_of_the_cli(spark, tmp_path, partitions):
    """pipelines/sample_crm.toml (web events, call-centre and shop sources, an orders table
    with repeated ids, an identity map, customer segments and status, a time zone,
    journey_credit with omitted persons, markov_journey) through the Spark job (each file
    read once, whole persons staged per partition), and through `touchpoint run`: every table
    equal (journey_credit in one run's order, numbered over the run, markov_journey split
    by the merged chain), the page's text equal, and journey_credit published by the
    executors as the CLI writes it."""
    want = _cli_run(CRM, tmp_path / "cli", "2024-02-29")
    got = ts.attribute(None, pipeline=str(CRM), window={"run_date": "2024-02-29"}, partitions=partitions)
    page = got.pop("report.html")
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for name, table in got.items():
        assert_tables_equal(table if isinstance(table, pa.Table) else table.toArrow(), want[name], name, rel=1e-9)
    cli_page = next((tmp_path / "cli").glob("report/run_date=*/report.html")).read_text()
    assert _page_text(page) == _page_text(cli_page)
    dq = dict(zip(want["data_quality"].column("metric").to_pylist(), want["data_quality"].column("value").to_pylist()))
    assert dq["duplicate_conversion_ids"] > 0 and dq["ids_mapped"] > 0, dq  # the rules were exercised
    files = ts.write({"journey_credit": got["journey_credit"]}, str(tmp_path / "spark"), "2024-02-29")
    # The parts in the manifest's order (the DataFrame's), each file on its own.
    published = pa.concat_tables([pq.read_table(f, partitioning=None) for f in files if "/journey_credit/" in f])
    kinds = lambda t: [(f.name, str(f.type).replace("string_view", "string")) for f in t.schema]  # noqa: E731
    assert kinds(published) == kinds(want["journey_credit"])  # Polars writes text as string_view
    assert_tables_equal(published, want["journey_credit"], "journey_credit", rel=1e-9)


def test_erasure_and_raw_person_ids_in_the_crm_pipeline_equal_the_cli(spark, tmp_path):
    """An erasure list (the person's aliases through the identity map dropped everywhere,
    the map forgetting the person) and journey_credit naming persons: equal to the CLI."""
    erasure = Path(__file__).parents[2] / "sample-data" / "crm" / "erasure_request.csv"
    sets = [f"input.erasure_list={json.dumps(str(erasure))}", 'output.person_ids="raw"']
    want = _cli_run(CRM, tmp_path / "cli", "2024-02-29", *sets)
    got = ts.attribute(None, pipeline=str(CRM), window={"run_date": "2024-02-29"}, partitions=2,
                       input={"erasure_list": str(erasure)}, output={"person_ids": "raw"})
    got.pop("report.html")
    assert sorted(got) == sorted(want)
    for name, table in got.items():
        assert_tables_equal(table if isinstance(table, pa.Table) else table.toArrow(), want[name], name, rel=1e-9)
    assert want["journey_credit"].column("user_id").null_count == 0


def test_segments_of_a_customers_table_alone_equal_the_cli(spark, tmp_path):
    """Segments from the customers table without the customer status (found by review: the
    job summed no segment's statistics, so every segment table was empty but for the
    unattributed rows)."""
    want = _cli_run(CRM, tmp_path / "cli", "2024-02-29", "segments.customer_status=false")
    got = ts.attribute(None, pipeline=str(CRM), window={"run_date": "2024-02-29"}, partitions=2,
                       segments={"customer_status": False})
    got.pop("report.html")
    for name in ("segment_attribution", "segment_roles", "channel_attribution"):
        assert_tables_equal(got[name], want[name], name, rel=1e-9)
    assert pc.sum(want["segment_attribution"].column("conversions")).as_py() > 0


def test_pseudonymized_persons_equal_the_cli_and_a_second_key_is_refused(spark, tmp_path, monkeypatch):
    """Executors pseudonymize persons with the key in their environment: the same
    pseudonyms as the CLI's under the same key, and the manifest keeps the key's
    fingerprint as the CLI's does. A driver whose key differs from the executors' refuses
    the run (78): two keys would give one person two pseudonyms."""
    output = {"person_ids": "pseudonymized", "pseudonym_key_env": PSEUDONYM_KEY_ENV}
    want = _cli_run(CRM, tmp_path / "cli", "2024-02-29", *[f"output.{k}={json.dumps(v)}" for k, v in output.items()])
    got = ts.attribute(None, pipeline=str(CRM), window={"run_date": "2024-02-29"}, partitions=2, output=output)
    assert_tables_equal(got["journey_credit"].toArrow(), want["journey_credit"], "journey_credit", rel=1e-9)
    assert want["journey_credit"].column("user_id").null_count == 0
    ts.write(got, str(tmp_path / "spark"), "2024-02-29")
    published = json.loads((tmp_path / "spark" / "_manifest" / "run_date=2024-02-29" / "_manifest.json").read_text())
    cli = json.loads(next((tmp_path / "cli").glob(".touchpoint/versions/*/_manifest/_manifest.json")).read_text())
    assert published["pseudonym_key_fingerprint"] == cli["pseudonym_key_fingerprint"]
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "the driver's other key")
    with pytest.raises(touchpoint.TouchpointError) as e:
        ts.attribute(None, pipeline=str(CRM), window={"run_date": "2024-02-29"}, partitions=2, output=output)
    assert e.value.exit_code == 78 and "differs from the driver's" in str(e.value)


def test_bad_staged_input_fails_on_the_driver_naming_the_file(spark, tmp_path):
    """A missing source file, a source without its column and an object-store URI are
    refused before Spark runs, with the CLI's exit codes and the file's name (inside an
    executor they would be a Spark failure, 70)."""
    missing = tmp_path / "no_such_orders.csv"
    with pytest.raises(touchpoint.TouchpointError) as e:
        ts.attribute(None, pipeline=str(CRM), conversions={"path": str(missing)})
    assert e.value.exit_code == 66 and "no_such_orders.csv" in str(e.value)
    orders = tmp_path / "orders.csv"
    orders.write_text("someone,ordered_at,order_id,type,amount\nc1,2024-02-01T10:00:00Z,o1,purchase,10\n")
    with pytest.raises(touchpoint.TouchpointError) as e:
        ts.attribute(None, pipeline=str(CRM), conversions={"path": str(orders)})
    assert e.value.exit_code == 65 and "orders.csv" in str(e.value) and "customer_ref" in str(e.value)
    with pytest.raises(touchpoint.TouchpointError) as e:
        ts.attribute(None, pipeline=str(CRM), identity={"path": "s3://lake/identity_map.csv"})
    assert e.value.exit_code == 78 and "s3://lake/identity_map.csv" in str(e.value)


@pytest.mark.parametrize("order", [1, "auto(max=2)"])
def test_journey_credit_of_an_event_log_equals_the_cli(spark, tmp_path, order):
    """journey_credit from a DataFrame of events (chunks of whole users, 64-row batches):
    the nightly pipeline's journeys in one run's order and numbering, markov_journey split
    by the merged chain, equal to `touchpoint run`."""
    pipeline = Path(__file__).parents[2] / "pipelines" / "sample_nightly.toml"
    models = {"run": MODELS, "bootstrap_replicates": 0, "markov_order": order}
    want = _cli_run(pipeline, tmp_path / "cli", "2024-02-15", "output.journey_credit=true",
                    *[f"models.{k}={json.dumps(v)}" for k, v in models.items()])
    got = ts.attribute(spark.read.parquet(str(SAMPLE)), pipeline=str(pipeline), window={"run_date": "2024-02-15"},
                       output={"journey_credit": True}, models=models, chunk_rows=4000)
    journeys = got["journey_credit"].toArrow()
    assert journeys.num_rows > 1000 and "markov_journey" in set(journeys.column("model").to_pylist())
    assert_tables_equal(journeys, want["journey_credit"], "journey_credit", rel=1e-9)


def test_renamed_columns_integer_ids_and_invalid_rows_equal_the_cli(spark, tmp_path):
    """Chunks that hold invalid rows count them: data_quality sums to the CLI's."""
    from conftest import read_plain

    import pyarrow.compute as pc

    t = read_plain(SAMPLE)
    t = t.set_column(0, "customer", pc.cast(pc.utf8_slice_codeunits(t.column("user_id"), 1), pa.int64()))
    mask = pa.array([i % 89 == 0 for i in range(t.num_rows)])
    t = t.set_column(1, "at", pc.if_else(mask, pa.scalar(None, t.schema.field("ts").type), t.column("ts")))
    path = tmp_path / "odd.parquet"
    pq.write_table(t, path)
    sections = {"models": {"run": MODELS, "markov_order": 2, "bootstrap_replicates": 0},
                "columns": {"user": "customer", "time": "at"}, "journeys": {"on_invalid_rows": "drop"}}
    want = cli_tables(path, tmp_path / "cli", sections)
    got = ts.attribute(spark.read.parquet(str(path)), chunk_rows=3000, **sections)
    _compare(got, want)


@pytest.mark.parametrize("chunk_rows", [3000, None])
def test_event_ids_repeated_later_or_across_persons_equal_the_cli(spark, tmp_path, chunk_rows):
    """journeys.dedupe = "event_id" on a log where every 40th row is delivered again an
    hour later on another channel (a retry: one copy kept) and every 60th row's id is also
    another person's (both kept), the rows in reverse: which copy is kept is decided by the
    person's journey order, so Spark's partitions, sorted or not, keep the CLI's copies."""
    from conftest import read_plain

    t = read_plain(SAMPLE)
    n = t.num_rows
    t = t.append_column("eid", pa.array([f"e{i}" for i in range(n)]))
    retries = t.take(list(range(0, n, 40)))
    later = pc.add(retries.column("ts"), pa.scalar(3_600_000_000, pa.duration("us")))
    retries = retries.set_column(1, "ts", later.cast(t.schema.field("ts").type))
    retries = retries.set_column(2, "channel", pa.array(["retry"] * retries.num_rows))
    shared = t.take(list(range(0, n, 60)))
    shared = shared.set_column(0, "user_id", pc.binary_join_element_wise(shared.column("user_id"), "x", ""))
    log = pa.concat_tables([t, retries.cast(t.schema), shared.cast(t.schema)])
    log = log.take(list(range(log.num_rows - 1, -1, -1)))
    path = tmp_path / "ids.parquet"
    pq.write_table(log, path)
    sections = {"models": {"run": MODELS, "bootstrap_replicates": 0},
                "columns": {"event_id": "eid"}, "journeys": {"dedupe": "event_id"}}
    want = cli_tables(path, tmp_path / "cli", sections)
    quality = dict(zip(want["data_quality"].column("metric").to_pylist(), want["data_quality"].column("value").to_pylist()))
    assert quality["duplicate_events"] == retries.num_rows
    got = ts.attribute(spark.read.parquet(str(path)), chunk_rows=chunk_rows, **sections)
    _compare(got, want)


def _crm_edge_cases(root: Path) -> Path:
    """A staged pipeline built to cross partitions: a web log in two files (a consent
    column, a tie-breaker, conversions with ids), call-centre touches (one without a time),
    an orders table whose ids repeat within and across persons (the earliest copy of one
    belongs to a person who withdrew consent, and two copies tie on everything but the
    person), an identity map with validity periods and one alias claimed by two persons at
    once; consent scope person. Written so every rule has rows on both sides of it."""
    import random

    rnd = random.Random(7)
    day = 86_400_000_000
    t0 = 1_706_745_600_000_000  # 2024-02-01
    web = root / "web"
    web.mkdir(parents=True)
    channels = ["email", "paid_search", "social", "display", "direct"]
    rows: list[dict[str, Any]] = []
    for u in range(240):
        for k in range(rnd.randint(1, 6)):
            t = t0 + rnd.randrange(0, 27 * day)
            conv = rnd.random() < 0.15
            rows.append({"cookie": f"c{u}", "ts": t, "channel": rnd.choice(channels), "event": "purchase" if conv
                         else "visit", "revenue": float(rnd.randint(5, 90)) if conv else None,
                         "order": f"w{rnd.randint(0, 30)}" if conv else None, "seq": rnd.randint(0, 3),
                         "ok": u % 37 != 5 or k > 0, "utm_source": rnd.choice(["google", "facebook", None]),
                         "utm_medium": rnd.choice(["cpc", "email", "organic", None]),
                         "utm_campaign": rnd.choice(["brand", "spring", None]),
                         # Retries of an event: the same id an hour later.
                         "eid": f"e{u}-{k // 2}"})
            if k % 2:
                rows[-1]["ts"] = rows[-2]["ts"] + 3_600_000_000
    # c9 on the days two persons' identity entries both cover it (a conflict, below).
    rows.append({**rows[-1], "cookie": "c9", "ts": t0 + 11 * day, "event": "visit", "revenue": None, "order": None,
                 "ok": True, "eid": "e9-x"})
    half = len(rows) // 2
    for i, part in enumerate((rows[:half], rows[half:])):
        t = pa.Table.from_pylist(part)
        t = t.set_column(t.schema.get_field_index("ts"), "ts", t["ts"].cast(pa.timestamp("us", tz="UTC")))
        pq.write_table(t, web / f"part-{i}.parquet")
    calls = [{"crm_id": f"p{rnd.randint(0, 80)}", "called_at": f"2024-02-{rnd.randint(1, 27):02d}T10:00:00Z"}
             for _ in range(150)] + [{"crm_id": "p3", "called_at": None}]
    pq.write_table(pa.Table.from_pylist(calls), root / "calls.parquet")
    orders = [{"ref": f"p{rnd.randint(0, 80)}", "at": f"2024-02-{rnd.randint(1, 27):02d}T12:00:00Z",
               "order_id": f"o{rnd.randint(0, 60)}", "amount": float(rnd.randint(10, 200))} for _ in range(120)]
    # The same order for two persons at the same instant and value: the person decides.
    orders += [{"ref": "p70", "at": "2024-02-10T09:00:00Z", "order_id": "tie", "amount": 50.0},
               {"ref": "p71", "at": "2024-02-10T09:00:00Z", "order_id": "tie", "amount": 50.0},
               # The earliest copy is p42's, whose web rows withdraw consent (c42 -> p42 below).
               {"ref": "p42", "at": "2024-02-02T09:00:00Z", "order_id": "late", "amount": 30.0},
               {"ref": "p6", "at": "2024-02-20T09:00:00Z", "order_id": "late", "amount": 30.0}]
    pq.write_table(pa.Table.from_pylist(orders), root / "orders.parquet")
    identity = [{"alias": f"c{u}", "person": f"p{u % 80}", "from": "2024-01-01T00:00:00Z", "to": None}
                for u in range(0, 240, 2)]
    identity += [{"alias": "c9", "person": "p1", "from": "2024-02-01T00:00:00Z", "to": "2024-02-15T00:00:00Z"},
                 {"alias": "c9", "person": "p2", "from": "2024-02-10T00:00:00Z", "to": None}]
    pq.write_table(pa.Table.from_pylist(identity), root / "identity.parquet")
    pipeline = root / "edge.toml"
    pipeline.write_text(f"""version = 1
[input]
events = "{web}"
consent_scope = "person"
[columns]
user = "cookie"
time = "ts"
channel = "channel"
conversion = "event"
conversion_value = "purchase"
value = "revenue"
conversion_id = "order"
tie_breaker = "seq"
consent = "ok"
[[sources]]
name = "calls"
path = "{root / 'calls.parquet'}"
user = "crm_id"
time = "called_at"
channel = "phone"
[conversions]
path = "{root / 'orders.parquet'}"
user = "ref"
time = "at"
id = "order_id"
value = "amount"
[identity]
path = "{root / 'identity.parquet'}"
alias = "alias"
person = "person"
valid_from = "from"
valid_to = "to"
[journeys]
on_invalid_rows = "drop"
[models]
bootstrap_replicates = 20
[window]
days = 29
[output]
journey_credit = true
person_ids = "raw"
""")
    return pipeline


#: Channels from the event log's UTM columns (one rule, the rest unassigned), and its
#: repeated event ids dropped.
_RULES_AND_IDS = [('consent = "ok"', 'consent = "ok"\nevent_id = "eid"'),
                  ('on_invalid_rows = "drop"', 'on_invalid_rows = "drop"\ndedupe = "event_id"'),
                  ('[output]', '[[channel_rules.rules]]\nchannel = "paid_search"\nsource = "^google$"\n'
                               'medium = "cpc"\n[output]')]


@pytest.mark.parametrize("partitions,edits", [(1, []), (4, []), (3, _RULES_AND_IDS)])
def test_staged_rules_across_files_and_partitions_equal_the_cli(spark, tmp_path, partitions, edits):
    """The staged read (each file once, one task a file; withdrawn persons and repeated
    conversion ids decided by Spark between the tasks; whole persons staged per partition)
    equals `touchpoint run` on every table and count, with the rules' edge cases on both
    sides of partition boundaries; and with channel rules and event ids."""
    pipeline = _crm_edge_cases(tmp_path / "in")
    for old, new in edits:
        pipeline.write_text(pipeline.read_text().replace(old, new, 1))
    want = _cli_run(pipeline, tmp_path / "cli", "2024-02-29")
    got = ts.attribute(None, pipeline=str(pipeline), window={"run_date": "2024-02-29"}, partitions=partitions)
    got.pop("report.html")
    assert sorted(got) == sorted(want)
    for name, table in got.items():
        assert_tables_equal(table if isinstance(table, pa.Table) else table.toArrow(), want[name], name, rel=1e-9)
    dq = dict(zip(want["data_quality"].column("metric").to_pylist(), want["data_quality"].column("value").to_pylist()))
    # Every rule had rows to act on.
    metrics = ["duplicate_conversion_ids", "ids_mapped", "ids_conflicting", "rows_without_consent", "rows_rejected"]
    if edits:
        metrics += ["duplicate_events", "rows_unmatched_channel_rule"]
    for metric in metrics:
        assert dq.get(metric, 0) > 0, (metric, dq)


def test_an_invalid_row_found_in_an_executor_fails_as_the_cli_does(spark, tmp_path):
    """With on_invalid_rows = "fail" the invalid row is found where its person's rows meet,
    in an executor: the job still fails with the CLI's kind, exit code and message (the file,
    the source's own column, the row), as `attribute` and as `touchpoint-spark`."""
    pipeline = _crm_edge_cases(tmp_path / "in")
    pipeline.write_text(pipeline.read_text().replace('on_invalid_rows = "drop"', 'on_invalid_rows = "fail"'))
    # A second failing row, in a later file (the orders come after the calls): one run names
    # the first in file order, and so must the job, whichever task fails first (found by
    # review: with 3 partitions the job named the orders' row).
    orders = pq.read_table(tmp_path / "in" / "orders.parquet")
    amounts = orders.column("amount").to_pylist()
    amounts[0] = -5.0
    pq.write_table(orders.set_column(orders.schema.get_field_index("amount"), "amount", pa.array(amounts)),
                   tmp_path / "in" / "orders.parquet")
    cli = run_cli("run", str(pipeline), "--run-date", "2024-02-29", "--set",
                  f"output.root={json.dumps(str(tmp_path / 'cli'))}", check=False)
    want = json.loads(cli.stdout.strip().splitlines()[-1])
    assert cli.returncode == 65 and "calls.parquet" in want["message"] and "called_at" in want["message"], want
    for partitions in (3, 7):
        with pytest.raises(touchpoint.TouchpointError) as e:
            ts.attribute(None, pipeline=str(pipeline), window={"run_date": "2024-02-29"}, partitions=partitions)
        assert (e.value.exit_code, e.value.kind, str(e.value)) == (65, "bad_input", want["message"])
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    p = subprocess.run([sys.executable, "-m", "touchpoint.spark", str(pipeline), "--run-date", "2024-02-29",
                        "--out", str(tmp_path / "out"), "--partitions", "3"], capture_output=True, text=True, env=env)
    line = json.loads(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 65 and line["kind"] == "bad_input" and line["message"] == want["message"], p.stdout
    assert not (tmp_path / "out" / "_manifest").exists()


def test_staged_input_that_keeps_nothing_fails_as_the_cli_does(spark, tmp_path):
    """Every person withdrew consent: nothing is left once staged, which one run reports
    as no events in the window (66, retried by schedulers), naming the staged sources.
    Found by review: the job summed the rows read instead and said 65, every row invalid."""
    pipeline = _crm_edge_cases(tmp_path / "in")
    for part in (tmp_path / "in" / "web").glob("*.parquet"):
        t = pq.read_table(part)
        pq.write_table(t.set_column(t.schema.get_field_index("ok"), "ok", pa.array([False] * t.num_rows)), part)
    calls = pq.read_table(tmp_path / "in" / "calls.parquet")
    pq.write_table(calls.slice(0, 0), tmp_path / "in" / "calls.parquet")
    text = pipeline.read_text()
    pipeline.write_text(text[:text.index("[conversions]")] + text[text.index("[identity]"):])
    cli = run_cli("run", str(pipeline), "--run-date", "2024-02-29", "--set",
                  f"output.root={json.dumps(str(tmp_path / 'cli'))}", check=False)
    want = json.loads(cli.stdout.strip().splitlines()[-1])
    assert cli.returncode == 66 and "the staged sources" in want["message"], want
    with pytest.raises(touchpoint.TouchpointError) as e:
        ts.attribute(None, pipeline=str(pipeline), window={"run_date": "2024-02-29"}, partitions=2)
    assert (e.value.exit_code, e.value.kind, str(e.value)) == (66, "input_not_found", want["message"])


def test_the_staged_read_reads_the_files_its_plan_listed(tmp_path):
    """The driver lists the files once; a file that lands in the directory afterwards (and
    sorts first) does not shift what the tasks read, and is not read half-checked. Found by
    review: each task listed the directory again and read its n-th file."""
    pipeline = _crm_edge_cases(tmp_path / "in")
    settings = touchpoint._resolved(str(pipeline), {"window": {"run_date": "2024-02-29"}})
    plan = touchpoint._touchpoint.split_plan(settings)
    planned = json.loads(plan)["sources"][0]
    first = pq.read_table(tmp_path / "in" / "web" / "part-0.parquet")
    pq.write_table(first.slice(0, 5), tmp_path / "in" / "web" / "a-late.parquet")
    read, rows = touchpoint._touchpoint.stage_file(settings, plan, 0)
    assert json.loads(read)["file"]["path"] == planned[0] and planned[0].endswith("part-0.parquet")
    assert touchpoint._table(rows).num_rows == json.loads(read)["file"]["rows"] > 5
