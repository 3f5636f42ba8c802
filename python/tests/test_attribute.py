"""`touchpoint.attribute` and the distributed pieces, against the CLI (an independent run of
the same settings through files): the same tables, the same errors."""

from __future__ import annotations

import json

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE, assert_tables_equal, cli_tables, read_plain, run_cli

import touchpoint

ALL = {"models": {"run": ["first_touch", "last_touch", "last_non_direct", "linear", "position_based",
                          "time_decay", "markov", "shapley"], "markov_order": 2}}


def test_every_table_equals_the_cli(tmp_path):
    """Default settings (bootstrap intervals included): every table byte-for-byte the CLI's."""
    want = cli_tables(SAMPLE, tmp_path / "cli", {})
    got = touchpoint.attribute(pq.read_table(SAMPLE))
    assert sorted(got) == sorted(want)
    for name, table in want.items():
        assert_tables_equal(got[name], table, name)


def test_windowed_run_equals_the_cli(tmp_path, generated):
    sections = {"window": {"run_date": "2024-01-20", "days": 7}, "journeys": {"lookback_days": 14},
                **ALL, "models": {**ALL["models"], "bootstrap_replicates": 20}}
    want = cli_tables(generated, tmp_path / "cli", sections)
    got = touchpoint.attribute(pq.read_table(generated), **sections)
    assert sorted(got) == sorted(want)
    for name, table in want.items():
        assert_tables_equal(got[name], table, name)
    assert set(got["channel_attribution"].column("run_date").to_pylist()) == {
        __import__("datetime").date(2024, 1, 20)
    }


def test_polars_pandas_and_batches_give_the_same_tables():
    table = pq.read_table(SAMPLE)
    want = touchpoint.attribute(table, **ALL)
    for other in (pl.from_arrow(table), table.to_pandas(), pa.RecordBatchReader.from_batches(
            table.schema, table.to_batches(max_chunksize=1000))):
        got = touchpoint.attribute(other, **ALL)
        for name in want:
            assert_tables_equal(got[name], want[name], name)


def test_errors_carry_the_cli_message_and_exit_code(tmp_path):
    table = pq.read_table(SAMPLE)
    with pytest.raises(touchpoint.TouchpointError) as e:
        touchpoint.attribute(table, columns={"user": "customer"})
    cli = run_cli("attribute", "--events", str(SAMPLE), "--out", str(tmp_path), "--user-col", "customer",
                  check=False)
    assert e.value.exit_code == 65 == cli.returncode
    assert e.value.kind == "bad_input"
    assert "column `customer`: missing column" in str(e.value)
    assert "customer" in json.loads(cli.stdout.strip().splitlines()[-1])["message"]
    with pytest.raises(touchpoint.TouchpointError) as e:
        touchpoint.attribute(table, models={"markov_order": 0})
    assert e.value.exit_code == 78 and "markov_order" in str(e.value)
    with pytest.raises(touchpoint.TouchpointError) as e:
        touchpoint.attribute(table, journeys={"lookback_dayz": 3})
    assert e.value.exit_code == 78 and "lookback_days" in str(e.value)  # did you mean
    with pytest.raises(TypeError):
        touchpoint.attribute(table, model={"run": ["linear"]})
    bad = table.set_column(table.schema.get_field_index("revenue"), "revenue",
                           pc.cast(table.column("revenue"), pa.string()))
    with pytest.raises(touchpoint.TouchpointError) as e:
        touchpoint.attribute(bad)
    assert e.value.exit_code == 65 and "revenue" in str(e.value)


def _group_sum(table: pa.Table, keys: list[str]) -> pa.Table:
    """What Spark's groupBy(keys).sum() does, in pyarrow."""
    cols = ["conversions", "nulls", "value"]
    summed = table.group_by(keys).aggregate([(c, "sum") for c in cols])
    return summed.select(keys + [f"{c}_sum" for c in cols]).rename_columns(keys + cols)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_partials_of_disjoint_users_solve_to_the_whole_run(generated, order):
    """The distributed fit without Spark: users split in three by shard_of, partial path
    tables summed by path, statistics of two halves of the distinct paths summed, solved."""
    sections = {**ALL, "models": {**ALL["models"], "markov_order": order, "bootstrap_replicates": 12}}
    events = read_plain(generated)
    shard = pa.array(touchpoint.shard_of(events.column("user_id"), 3))
    metas, paths, reps = [], [], []
    for k in range(3):
        meta, p, r, _ = touchpoint.partial(events.filter(pc.equal(shard, k)), **sections)
        metas.append(meta)
        paths.append(p)
        reps.append(r)
    merged = _group_sum(pa.concat_tables(paths), ["path"]).sort_by("path")
    half = merged.num_rows // 2
    stats = pa.concat_tables([touchpoint.path_statistics(merged.slice(0, half), **sections),
                              touchpoint.path_statistics(merged.slice(half), **sections)])
    stats = _group_sum(stats, ["kind", "model", "from", "to"])
    # The replicates' statistics add up like the paths: persons weigh the same in any group.
    summed = touchpoint.sum_replicates(reps)
    # Partials of other replicate counts do not add up: refused, not cut to the shorter list.
    i = reps[0].schema.get_field_index("conversions")
    short = [x[:1] if x else x for x in reps[0].column(i).to_pylist()]
    bad = reps[0].set_column(i, "conversions", pa.array(short, pa.list_(pa.float64())))
    with pytest.raises(touchpoint.TouchpointError, match="replicates"):
        touchpoint.sum_replicates([reps[1], bad])
    got = touchpoint.solve(stats, metas, replicates=summed, **sections)
    want = touchpoint.attribute(events, **sections)
    ca = got["channel_attribution"]
    attributed = ca.filter(pc.not_equal(ca.column("channel"), "(unattributed)"))
    assert attributed.num_rows > 0 and attributed.column("conversions_low").null_count == 0
    # Every table the CLI writes that the distributed fit carries (sequence effects only at
    # order >= 2, shapley_ordered only with shapley: as the CLI).
    assert sorted(got) == sorted(t for t in want if t in touchpoint._touchpoint.DISTRIBUTED_TABLES)
    for name, table in got.items():
        assert_tables_equal(table, want[name], name, rel=1e-9)


def test_shard_of_splits_users_as_the_cli_does(tmp_path, generated):
    """`--shard k/3` runs read exactly the users `shard_of` puts in shard k."""
    events = read_plain(generated)
    users = pc.unique(events.column("user_id"))
    shard = touchpoint.shard_of(users, 3)
    for k in range(3):
        out = tmp_path / f"s{k}"
        summary = json.loads(run_cli("attribute", "--events", str(generated), "--shard", f"{k}/3",
                                     "--out", str(out), "-q").stdout.strip().splitlines()[-1])
        mine = {u for u, s in zip(users.to_pylist(), shard) if s == k}
        rows = events.filter(pc.is_in(events.column("user_id"), pa.array(sorted(mine))))
        assert summary["events"] == rows.num_rows
    assert touchpoint.shard_of(pa.array([None, "a"]), 2)[0] is None
    with pytest.raises(touchpoint.TouchpointError):
        touchpoint.shard_of(pa.array([1.5]), 2)
