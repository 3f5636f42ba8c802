//! `docs/schema.md` against the files: every output table touchpoint writes is documented,
//! with exactly its columns, in order, and their types, read back with arrow-rs' `parquet`
//! (an independent reader). A run that writes every optional table is used: campaigns,
//! spend, journey credit, Markov order 2 with sequences, `auto` order selection.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;
use parquet::basic::{ConvertedType, LogicalType, Type as Physical};
use parquet::file::reader::{FileReader, SerializedFileReader};
use polars::prelude::*;

/// (column, type) of a Parquet file, types in the words of `docs/schema.md`.
fn columns(path: &Path) -> Vec<(String, String)> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    schema
        .columns()
        .iter()
        .map(|c| {
            let t = match (c.physical_type(), c.logical_type_ref(), c.converted_type()) {
                (Physical::BYTE_ARRAY, _, _) => "string",
                (Physical::DOUBLE, _, _) => "float64",
                (Physical::BOOLEAN, _, _) => "bool",
                (_, Some(LogicalType::Date), _) | (_, _, ConvertedType::DATE) => "date",
                (_, Some(LogicalType::Timestamp { .. }), _) => "timestamp (µs, UTC)",
                (Physical::INT32, Some(LogicalType::Integer { is_signed: false, .. }), _) => "uint32",
                (Physical::INT64, Some(LogicalType::Integer { is_signed: false, .. }), _) => "uint64",
                (p, l, cv) => panic!("{}: unexpected type {p:?} {l:?} {cv:?}", c.name()),
            };
            (c.name().to_owned(), t.to_owned())
        })
        .collect()
}

/// The tables of `docs/schema.md`: `## name` headings followed by `| column | type | … |`.
fn documented() -> BTreeMap<String, Vec<(String, String)>> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema.md")).unwrap();
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## `") {
            current = Some(h.trim_end_matches('`').to_owned());
            out.insert(current.clone().unwrap(), Vec::new());
        } else if let (Some(t), Some(row)) = (&current, line.strip_prefix("| `")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let name = cells[0].trim_end_matches('`').to_owned();
            out.get_mut(t).unwrap().push((name, cells[1].to_owned()));
        }
    }
    out
}

/// The written tables of a run that produces every optional one.
fn written() -> BTreeMap<String, Vec<(String, String)>> {
    let dir = tempfile::tempdir().unwrap();
    let mut df = ParquetReader::new(std::fs::File::open(sample()).unwrap()).finish().unwrap();
    let n = df.height();
    df.with_column(Column::new("campaign".into(), (0..n).map(|i| format!("c{}", i % 3)).collect::<Vec<_>>()))
        .unwrap();
    let events = dir.path().join("events.parquet");
    write_events(&events, &mut df);
    let spend = dir.path().join("spend.csv");
    std::fs::write(&spend, "channel,campaign,spend\nemail,c0,100\npaid_search,c1,2500\n").unwrap();
    let experiments = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data/experiments.csv");
    let mut out = BTreeMap::new();
    for (name, extra) in [
        ("o2", vec!["--markov-order", "2"]),
        ("auto", vec!["--markov-order", "auto", "--run-date", "2024-02-10"]),
    ] {
        let o = dir.path().join(name);
        let mut args = vec![
            "attribute",
            "--events",
            events.to_str().unwrap(),
            "--out",
            o.to_str().unwrap(),
            "--campaign-col",
            "campaign",
            "--journey-credit",
            "--spend",
            spend.to_str().unwrap(),
            "--channel-group",
            "social=facebook,instagram,tiktok",
            "--experiments",
            experiments.to_str().unwrap(),
            "-q",
        ];
        args.extend(extra);
        // A budget shift between two groups (`budget_shift`), through the environment.
        let r = touchpoint_env(
            &args,
            &[
                ("TOUCHPOINT_SPEND_RESPONSE__SHIFT_FROM", "social"),
                ("TOUCHPOINT_SPEND_RESPONSE__SHIFT_TO", "email"),
            ],
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        for e in std::fs::read_dir(&o).unwrap().flatten() {
            let p = e.path();
            let file = if p.is_dir() { p.join("run_date=2024-02-10/part-0.parquet") } else { p.clone() };
            if file.is_file() && file.extension().is_some_and(|x| x == "parquet") {
                let table = e.file_name().to_string_lossy().trim_end_matches(".parquet").to_owned();
                let mut cols = columns(&file);
                if cols.first().is_some_and(|c| c.0 == "run_date") {
                    cols.remove(0); // documented once, for every table of a windowed run
                }
                out.insert(table, cols);
            }
        }
    }
    relationship_tables(dir.path(), &mut out);
    evaluation_tables(dir.path(), &mut out);
    out
}

/// `touchpoint evaluate`'s own tables, from a small world.
fn evaluation_tables(dir: &Path, out: &mut BTreeMap<String, Vec<(String, String)>>) {
    let o = dir.join("eval");
    let r = touchpoint(&[
        "evaluate",
        "--world",
        "independent",
        "--users",
        "2000",
        "--reference-users",
        "2000",
        "--models",
        "markov",
        "--calibrate",
        "email",
        "--set",
        "models.bootstrap_replicates=10",
        "--out",
        o.to_str().unwrap(),
        "-q",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stdout));
    for t in ["model_evaluation", "model_scores"] {
        out.insert(t.to_owned(), columns(&o.join(format!("{t}.parquet"))));
    }
}

/// The tables of the whole customer relationship (sources, segments), and `journey_credit`
/// with the conversion id and type, from the bundled CRM pipeline.
fn relationship_tables(dir: &Path, out: &mut BTreeMap<String, Vec<(String, String)>>) {
    let o = dir.join("crm");
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/sample_crm.toml");
    let root = format!("output.root=\"{}\"", o.display());
    let r = touchpoint(&[
        "run",
        pipeline.to_str().unwrap(),
        "--run-date",
        "2024-02-29",
        "--set",
        &root,
        "--set",
        "models.bootstrap_replicates=0",
        "-q",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stdout));
    for t in
        ["segment_attribution", "segment_roles", "source_quality", "source_channel_touches", "journey_credit"]
    {
        let mut cols = columns(&o.join(t).join("run_date=2024-02-29/part-0.parquet"));
        cols.remove(0);
        out.insert(t.to_owned(), cols);
    }
}

#[test]
fn every_output_table_is_documented_with_its_columns_and_types() {
    let (doc, files) = (documented(), written());
    if std::env::var_os("TOUCHPOINT_PRINT_SCHEMA").is_some() {
        for (t, cols) in &files {
            eprintln!("## `{t}`");
            for (c, ty) in cols {
                eprintln!("| `{c}` | {ty} |");
            }
        }
    }
    for (table, cols) in &files {
        let d = doc.get(table).unwrap_or_else(|| panic!("`{table}` is not in docs/schema.md"));
        assert_eq!(d, cols, "docs/schema.md § {table} differs from the file");
    }
    for t in touchpoint::report::TableName::ALL {
        // The partial format is documented in docs/scale.md.
        if !t.is_partial() {
            assert!(files.contains_key(t.as_str()), "the schema test did not produce {}", t.as_str());
        }
    }
}
