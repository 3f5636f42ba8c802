"""The Python package as a skeptical user meets it: odd tables, odd objects, threads. Each
case gets a clear error or the CLI's answer, never a crash."""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE, assert_tables_equal, cli_tables, read_plain

import touchpoint

FAST = {"models": {"run": ["first_touch", "linear", "markov"], "bootstrap_replicates": 0}}


def test_an_empty_table_is_a_clear_error():
    empty = read_plain(SAMPLE).slice(0, 0)
    with pytest.raises(touchpoint.TouchpointError) as e:
        touchpoint.attribute(empty, **FAST)
    assert e.value.exit_code == 65 and "no rows" in str(e.value)


def test_nulls_and_integer_ids_match_the_cli_on_the_same_file(tmp_path):
    t = read_plain(SAMPLE)
    users = pc.cast(pc.utf8_slice_codeunits(t.column("user_id"), 1), pa.int64())  # "u123" → 123
    t = t.set_column(0, "user_id", users)
    mask = pa.array([i % 97 == 0 for i in range(t.num_rows)])
    t = t.set_column(1, "ts", pc.if_else(mask, pa.scalar(None, t.schema.field("ts").type), t.column("ts")))
    path = tmp_path / "odd.parquet"
    pq.write_table(t, path)
    sections = {**FAST, "journeys": {"on_invalid_rows": "drop"}}
    want = cli_tables(path, tmp_path / "cli", sections)
    got = touchpoint.attribute(t, **sections)
    for name, table in want.items():
        assert_tables_equal(got[name], table, name)
    dq = dict(zip(got["data_quality"].column("metric").to_pylist(), got["data_quality"].column("value").to_pylist()))
    assert any(k.startswith("rows_rejected") and v > 0 for k, v in dq.items()), dq


def test_dictionary_and_large_string_columns_give_the_plain_answer():
    t = read_plain(SAMPLE)
    want = touchpoint.attribute(t, **FAST)
    odd = t.set_column(2, "channel", pc.dictionary_encode(t.column("channel")))
    odd = odd.set_column(0, "user_id", pc.cast(odd.column("user_id"), pa.large_string()))
    got = touchpoint.attribute(odd, **FAST)
    for name in want:
        assert_tables_equal(got[name], want[name], name)


def test_objects_that_are_not_tables_are_type_errors():
    with pytest.raises(TypeError):
        touchpoint.attribute({"user_id": [1]}, **FAST)
    with pytest.raises(TypeError):
        touchpoint._touchpoint.attribute(object(), "{}")
    reader = read_plain(SAMPLE).to_reader()
    touchpoint.attribute(reader, **FAST)
    with pytest.raises(Exception):  # a consumed stream is not read twice
        touchpoint.attribute(reader, **FAST)


def test_errors_name_columns_never_user_ids():
    t = read_plain(SAMPLE)
    bad = t.set_column(1, "ts", pa.array(["not a time"] * t.num_rows))
    with pytest.raises(touchpoint.TouchpointError) as e:
        touchpoint.attribute(bad, **FAST)
    assert "ts" in str(e.value)
    ids = set(t.column("user_id").to_pylist())
    assert not any(word.strip("`,.:()") in ids for word in str(e.value).split())


def test_threads_run_at_once_and_agree():
    t = read_plain(SAMPLE)
    results = [None] * 4

    def work(i):
        results[i] = touchpoint.attribute(t, **FAST)["channel_attribution"]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for r in results[1:]:
        assert r.equals(results[0])
