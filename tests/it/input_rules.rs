//! Input rules that must not depend on how a file is read: columns of Arrow type `null`
//! (what pandas and pyarrow write for a column of None) and the integer conversion marker,
//! read directly and staged (`docs/sources.md`). Each run is compared with the same data
//! written the ordinary way, or with the other path, and with totals counted by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use polars::prelude::*;

use crate::common::*;

fn write(path: &Path, cols: Vec<Column>) {
    let mut df = DataFrame::new_infer_height(cols).unwrap();
    write_events(path, &mut df);
}

/// A column of `n` nulls: of Arrow type null (`null_typed`), as pandas/pyarrow write a column
/// of None, or of the type `dtype` a column holding values would have.
fn nulls(name: &str, n: usize, dtype: &DataType, null_typed: bool) -> Column {
    let dtype = if null_typed { DataType::Null } else { dtype.clone() };
    Column::full_null(name.into(), n, &dtype)
}

/// What the arrow-rs `parquet` reader (an independent one) says of a column: pyarrow's
/// representation of type null is an INT32 column with the UNKNOWN (null) logical type, all
/// values null, and the Arrow schema stored in the file's metadata.
fn assert_pyarrow_null_column(path: &Path, name: &str) {
    use parquet::basic::{LogicalType, Type as Physical};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let meta = reader.metadata().file_metadata();
    let col = meta.schema_descr().columns().iter().find(|c| c.name() == name).cloned().unwrap();
    assert_eq!(col.physical_type(), Physical::INT32, "{name}");
    assert_eq!(col.logical_type_ref(), Some(&LogicalType::Unknown), "{name}");
    let kv = meta.key_value_metadata().expect("key-value metadata");
    assert!(kv.iter().any(|k| k.key == "ARROW:schema"), "the Arrow schema is stored");
    let (names, rows) = read_parquet(path);
    let i = names.iter().position(|n| n == name).unwrap();
    assert!(rows.iter().all(|r| r[i] == Cell::Null), "{name}: every value null");
}

/// Two files of one event log: `a.parquet` with every column holding values, and
/// `b.parquet` (an hour whose optional columns pandas wrote as None) whose revenue,
/// campaign, touch type, event id and segment are all null — of Arrow type null when
/// `null_typed`, else float and string columns of nulls.
///
/// By hand: conversions u1 (10.0, last touch b), u3 (5.5, last touch a) and u4 (null
/// revenue: 0, last touch b), 3 conversions worth 15.5; 9 rows.
fn two_files(dir: &Path, null_typed: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    write(
        &dir.join("a.parquet"),
        vec![
            Column::new("user_id".into(), ["u1", "u1", "u1", "u2", "u3", "u3"]),
            ts(&[0, 1, 2, 0, 1, 3]),
            Column::new("channel".into(), ["a", "b", "b", "c", "a", "a"]),
            Column::new("event".into(), ["touch", "touch", "conversion", "touch", "touch", "conversion"]),
            Column::new("revenue".into(), [0.0, 0.0, 10.0, 0.0, 0.0, 5.5]),
            Column::new("campaign".into(), ["x", "y", "y", "x", "x", "z"]),
            Column::new("kind".into(), ["click", "view", "click", "view", "click", "click"]),
            Column::new("event_id".into(), ["e1", "e2", "e3", "e4", "e5", "e6"]),
            Column::new("segment".into(), ["new", "new", "new", "old", "old", "old"]),
        ],
    );
    let b = dir.join("b.parquet");
    write(
        &b,
        vec![
            Column::new("user_id".into(), ["u2", "u4", "u4"]),
            ts(&[1, 0, 2]),
            Column::new("channel".into(), ["a", "b", "b"]),
            Column::new("event".into(), ["touch", "touch", "conversion"]),
            nulls("revenue", 3, &DataType::Float64, null_typed),
            nulls("campaign", 3, &DataType::String, null_typed),
            nulls("kind", 3, &DataType::String, null_typed),
            nulls("event_id", 3, &DataType::String, null_typed),
            nulls("segment", 3, &DataType::String, null_typed),
        ],
    );
    if null_typed {
        for c in ["revenue", "campaign", "kind", "event_id", "segment"] {
            assert_pyarrow_null_column(&b, c);
        }
    }
    dir.to_path_buf()
}

fn attribute(events: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["attribute", "--events", events.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    touchpoint(&args)
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn last_json(o: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_default()
}

/// The Parquet tables of an output, by name (bytes).
fn tables(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let t: BTreeMap<String, Vec<u8>> =
        files(out).into_iter().filter(|(n, _)| n.ends_with(".parquet")).collect();
    assert!(t.contains_key("channel_attribution.parquet"), "{:?}", t.keys());
    t
}

/// An erasure list naming nobody: the same log, staged (`docs/sources.md`).
fn erasure_list(dir: &Path) -> String {
    let p = dir.join("erase.csv");
    std::fs::write(&p, "person_id\nnobody\n").unwrap();
    format!("input.erasure_list=\"{}\"", p.display())
}

#[test]
fn columns_of_arrow_type_null_read_as_nulls_directly_and_staged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (typed, null) = (two_files(&d.join("typed"), false), two_files(&d.join("null"), true));
    let optional = [
        "--campaign-col",
        "campaign",
        "--touch-type-col",
        "kind",
        "--event-id-col",
        "event_id",
        "--set",
        "columns.segment=\"segment\"",
    ];
    let erase = erasure_list(d);
    let staged = [&optional[..4], &optional[6..], &["--set", erase.as_str()]].concat();
    for (name, extra) in [("direct", &optional[..]), ("staged", &staged[..])] {
        let (a, b) = (d.join(format!("{name}-typed")), d.join(format!("{name}-null")));
        ok(&attribute(&typed, &a, extra));
        let o = attribute(&null, &b, extra);
        ok(&o);
        // Every table equals, byte for byte, the one of the same data with typed nulls.
        assert_eq!(tables(&a), tables(&b), "{name}");
        // And the totals are the hand-counted ones: the null revenue is worth 0.
        let q = quality(&b);
        assert_eq!((q["rows_read"], q["events"]), (9.0, 9.0), "{name}");
        assert_eq!(q["conversions"], 3.0, "{name}");
        assert_eq!(q["conversion_value"], 15.5, "{name}");
        let (_, rows) = read_parquet(&b.join("channel_attribution.parquet"));
        let lt: Vec<&Vec<Cell>> = rows.iter().filter(|r| r[0].str() == "last_touch").collect();
        let by = |ch: &str| lt.iter().find(|r| r[1].str() == ch).map_or(0.0, |r| r[3].num());
        assert_eq!((by("a"), by("b"), by("c")), (5.5, 10.0, 0.0), "{name}: last touch value");
    }
}

#[test]
fn a_tie_breaker_of_arrow_type_null_is_a_null_tie_breaker_on_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut outcomes = Vec::new();
    for null_typed in [false, true] {
        let sub = d.join(format!("n{null_typed}"));
        let events = two_files(&sub, false);
        // b.parquet again, with a tie-breaker column of nulls; a.parquet with values.
        let mut a =
            ParquetReader::new(std::fs::File::open(events.join("a.parquet")).unwrap()).finish().unwrap();
        a.with_column(Column::new("seq".into(), [1i64, 2, 3, 4, 5, 6])).unwrap();
        write_events(&events.join("a.parquet"), &mut a);
        let mut b =
            ParquetReader::new(std::fs::File::open(events.join("b.parquet")).unwrap()).finish().unwrap();
        b.with_column(nulls("seq", 3, &DataType::Int64, null_typed)).unwrap();
        write_events(&events.join("b.parquet"), &mut b);
        let fail = attribute(&events, &sub.join("fail"), &["--tie-breaker-col", "seq"]);
        let drop = sub.join("drop");
        ok(&attribute(&events, &drop, &["--tie-breaker-col", "seq", "--on-invalid-rows", "drop"]));
        let json = last_json(&fail);
        let message = json["message"].as_str().unwrap_or_default().replace(&sub.display().to_string(), "");
        outcomes.push((fail.status.code(), message, tables(&drop)));
    }
    // The same failure (65, naming b.parquet's row 0 and the column) and the same tables
    // once the invalid rows are dropped.
    assert_eq!(outcomes[0], outcomes[1]);
    let (code, message, _) = &outcomes[1];
    assert_eq!(*code, Some(65));
    assert!(
        message.contains("b.parquet") && message.contains("`seq`") && message.contains("row 0"),
        "{message}"
    );
    let q = quality(&d.join("ntrue/drop"));
    assert_eq!((q["rows_read"], q["events"], q["conversions"]), (9.0, 6.0, 2.0));
}

#[test]
fn a_user_id_time_or_marker_of_arrow_type_null_names_the_file_and_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let erase = erasure_list(d);
    for column in ["user_id", "ts", "event"] {
        let events = two_files(&d.join(column), false);
        let b = events.join("b.parquet");
        let mut df = ParquetReader::new(std::fs::File::open(&b).unwrap()).finish().unwrap();
        df.with_column(nulls(column, 3, &DataType::String, true)).unwrap();
        write_events(&b, &mut df);
        for extra in [&[][..], &["--set", erase.as_str()][..]] {
            let o = attribute(&events, &d.join(format!("{column}-out")), extra);
            let json = last_json(&o);
            let message = json["message"].as_str().unwrap_or_default();
            assert_eq!(o.status.code(), Some(65), "{column} {extra:?}: {message}");
            assert_eq!(json["kind"], "bad_input");
            assert!(message.contains(&b.display().to_string()), "names the file: {message}");
            assert!(message.contains(&format!("`{column}`")), "names the column: {message}");
            assert!(message.contains("type null") && message.contains("may not be null"), "{message}");
        }
    }
}

/// One file with an integer conversion flag holding a 2: read directly, and staged with a
/// `[[sources]]` table of calls, the same error (65, the file, the column and the row).
#[test]
fn an_integer_marker_other_than_0_or_1_is_refused_directly_and_staged_alike() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let calls = d.join("calls.csv");
    std::fs::write(&calls, "crm_id,called_at\nu1,2023-11-15T00:00:00Z\n").unwrap();
    let source = format!("call_centre={},user=crm_id,time=called_at,channel=phone", calls.display());
    let erase = erasure_list(d);
    let events = |name: &str, flags: [i64; 4]| -> PathBuf {
        let p = d.join(name);
        write(
            &p,
            vec![
                Column::new("user_id".into(), ["u1", "u1", "u1", "u2"]),
                ts(&[0, 1, 2, 0]),
                Column::new("channel".into(), ["a", "b", "b", "c"]),
                Column::new("converted".into(), flags),
                Column::new("revenue".into(), [0.0, 0.0, 10.0, 0.0]),
            ],
        );
        p
    };
    let marker = ["--conversion-col", "converted"];
    let bad = events("flags.parquet", [0, 0, 2, 0]);
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("direct", vec![]),
        ("staged with a source", vec!["--source", source.as_str()]),
        ("staged with an erasure list", vec!["--set", erase.as_str()]),
    ];
    let mut messages = Vec::new();
    for (name, extra) in &runs {
        let mut args = marker.to_vec();
        args.extend(extra);
        let o = attribute(&bad, &d.join("out"), &args);
        let json = last_json(&o);
        assert_eq!(o.status.code(), Some(65), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            (json["kind"].as_str(), json["exit_code"].as_i64()),
            (Some("bad_input"), Some(65)),
            "{name}"
        );
        let message = json["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains(&bad.display().to_string())
                && message.contains("`converted`")
                && message.contains("must be 0 or 1, found 2 at row 2"),
            "{name}: {message}"
        );
        messages.push(message);
    }
    assert!(messages.iter().all(|m| *m == messages[0]), "{messages:#?}");
    assert!(!d.join("out/channel_attribution.parquet").exists(), "nothing published");
    // With 0/1 both paths read the conversion: the same tables.
    let good = events("good.parquet", [0, 0, 1, 0]);
    let (a, b) = (d.join("direct"), d.join("staged"));
    ok(&attribute(&good, &a, &marker));
    ok(&attribute(&good, &b, &[&marker[..], &["--set", erase.as_str()]].concat()));
    assert_eq!(quality(&b)["conversions"], 1.0);
    assert_eq!(quality(&b)["conversion_value"], 10.0);
    let t = "channel_attribution.parquet";
    assert_eq!(tables(&a)[t], tables(&b)[t]);
}
