//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

/// Path of the bundled sample event log.
pub fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data/events.parquet")
}

/// Run the release binary with arguments.
pub fn touchpoint(args: &[&str]) -> Output {
    touchpoint_env::<&str>(args, &[])
}

/// Run the release binary with arguments and extra environment variables.
pub fn touchpoint_env<V: AsRef<std::ffi::OsStr>>(args: &[&str], env: &[(&str, V)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_touchpoint"));
    c.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run touchpoint")
}

/// A cell read back by the arrow-rs `parquet` crate (an independent reader).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Str(String),
    Num(f64),
    Null,
}

impl Cell {
    pub fn num(&self) -> f64 {
        match self {
            Cell::Num(x) => *x,
            other => panic!("not a number: {other:?}"),
        }
    }
    pub fn str(&self) -> &str {
        match self {
            Cell::Str(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }
}

/// Read a Parquet file into (column names, rows) with the `parquet` crate.
pub fn read_parquet(path: &Path) -> (Vec<String>, Vec<Vec<Cell>>) {
    let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    let names: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let mut rows = Vec::new();
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        rows.push(
            row.get_column_iter()
                .map(|(_, f)| match f {
                    Field::Null => Cell::Null,
                    Field::Str(s) => Cell::Str(s.clone()),
                    Field::Double(x) => Cell::Num(*x),
                    Field::Float(x) => Cell::Num(*x as f64),
                    Field::Int(x) => Cell::Num(*x as f64),
                    Field::Long(x) => Cell::Num(*x as f64),
                    Field::UInt(x) => Cell::Num(*x as f64),
                    Field::ULong(x) => Cell::Num(*x as f64),
                    Field::TimestampMicros(x) => Cell::Num(*x as f64),
                    Field::Bool(b) => Cell::Num(*b as u8 as f64),
                    Field::Date(d) => Cell::Num(*d as f64),
                    other => panic!("unexpected field {other:?}"),
                })
                .collect(),
        );
    }
    (names, rows)
}

/// `data_quality` as a map metric → value.
pub fn quality(dir: &Path) -> BTreeMap<String, f64> {
    let (_, rows) = read_parquet(&dir.join("data_quality.parquet"));
    rows.into_iter().map(|r| (r[0].str().to_owned(), r[1].num())).collect()
}

/// Every file of a directory (non-recursive) with its bytes, hidden files excluded.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// Write a small event log with polars (the library's own dependency).
/// A day and an instant (2023-11-14) in µs, for hand-made event logs.
pub const DAY: i64 = touchpoint::settings::DAY_MICROS;
pub const T0: i64 = 1_700_000_000_000_000;

/// A `ts` column (µs timestamps) of instants `T0 + d` days.
pub fn ts(days: &[i64]) -> polars::prelude::Column {
    use polars::prelude::*;
    Series::new("ts".into(), days.iter().map(|d| T0 + d * DAY).collect::<Vec<_>>())
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .unwrap()
        .into()
}

pub fn write_events(path: &Path, df: &mut polars::prelude::DataFrame) {
    use polars::prelude::*;
    let f = File::create(path).unwrap();
    ParquetWriter::new(f).finish(df).unwrap();
}

/// The sample log with a campaign column (`campaign`): five campaigns by row, every
/// seventh null; written to `dir/events.parquet`.
pub fn sample_with_campaigns(dir: &Path) -> PathBuf {
    use polars::prelude::*;
    let mut df = ParquetReader::new(File::open(sample()).unwrap()).finish().unwrap();
    let n = df.height();
    let camp: Vec<Option<String>> =
        (0..n).map(|i| (i % 7 != 0).then(|| format!("c{}", (i * 2_654_435_761usize) % 5))).collect();
    df.with_column(Column::new("campaign".into(), camp)).unwrap();
    let path = dir.join("events.parquet");
    write_events(&path, &mut df);
    path
}

/// A path table from ChannelAttribution-style rows (path, conversions, nulls, value).
pub fn table(rows: &[(&str, f64, f64, f64)]) -> touchpoint::core::paths::PathTable {
    touchpoint::core::paths::PathTable::from_string_paths(">", rows.iter().copied())
}

/// Fixture B, with hand-derived exact answers in `oracles.rs`: repeats, single touches, a channel seen only
/// in non-converting paths, value.
pub fn fixture_b() -> touchpoint::core::paths::PathTable {
    table(&[
        ("A > B > A > C", 2.0, 1.0, 20.0),
        ("A", 1.0, 3.0, 5.0),
        ("B > B > C", 1.0, 2.0, 30.0),
        ("C", 0.0, 4.0, 0.0),
        ("D > A", 0.0, 2.0, 0.0),
        ("B > A > A", 1.0, 0.0, 12.0),
    ])
}

/// Run the enabled models of `s` on journeys built over `names`.
pub fn analyze_journeys(
    j: touchpoint::core::journeys::Journeys,
    names: &[String],
    s: &touchpoint::settings::Settings,
) -> touchpoint::core::analysis::Analysis {
    let opts = touchpoint::core::analysis::AnalyzeOptions {
        base_names: names,
        models: &s.models,
        time_decay_credit: None,
        sequence_effects: true,
        dedupe: false,
        training: None,
        partition: false,
    };
    touchpoint::core::analysis::analyze(j, &opts).unwrap()
}

/// Load a whole event log with the columns and invalid-row rule of `s`.
pub fn load_log(path: &str, s: &touchpoint::settings::Settings) -> touchpoint::core::event_log::EventLog {
    let scope = touchpoint::engine::ReadScope::default();
    let opts = touchpoint::engine::LoadOptions {
        columns: &s.columns,
        on_invalid: s.journeys.on_invalid_rows,
        scope: &scope,
        channel_rules: None,
        own_channel: false,
    };
    touchpoint::engine::load_events(path, &opts).unwrap()
}

/// Journeys of a log under `rules` (nothing recorded).
pub fn journeys_of(
    log: &touchpoint::core::event_log::EventLog,
    rules: &touchpoint::settings::JourneyRules,
) -> touchpoint::core::journeys::Journeys {
    journeys_with(log, &touchpoint::core::journeys::JourneyOptions::resolve(rules, log, false))
}

/// Journeys of a log under resolved options.
pub fn journeys_with(
    log: &touchpoint::core::event_log::EventLog,
    opts: &touchpoint::core::journeys::JourneyOptions,
) -> touchpoint::core::journeys::Journeys {
    touchpoint::core::journeys::build(log, &touchpoint::core::journeys::sort_events(log), opts)
}

/// Install a Debian package (the test set-up of tests that need one; needs root, as on
/// CI), refreshing the package lists once if the first attempt fails.
pub fn apt_install(package: &str) -> bool {
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    apt(&["install", "-y", "--no-install-recommends", package])
        || (apt(&["update"]) && apt(&["install", "-y", "--no-install-recommends", package]))
}
