//! Scheduled runs: pipeline files, windows, date partitions, reruns, crashes, exit codes
//! and the settings precedence (file < environment < flag).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;
use polars::prelude::*;

fn pipeline(dir: &Path, events: &Path, extra: &str) -> PathBuf {
    let p = dir.join("nightly.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"test\"\n\n[input]\nevents = \"{}\"\n\n[output]\nroot = \"out\"\n{extra}",
            events.display()
        ),
    )
    .unwrap();
    p
}

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    touchpoint_env(args, env)
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
}

/// (model, channel) → (conversions, value) of a channel_attribution file.
fn credits(file: &Path) -> BTreeMap<(String, String), (f64, f64)> {
    let (cols, rows) = read_parquet(file);
    let m = cols.iter().position(|c| c == "model").unwrap();
    rows.iter()
        .map(|r| ((r[m].str().to_owned(), r[m + 1].str().to_owned()), (r[m + 2].num(), r[m + 3].num())))
        .collect()
}

#[test]
fn consecutive_run_dates_add_up_to_one_run_over_the_same_windows_and_reruns_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sample(), "");
    let root = dir.path().join("out");
    for d in ["2024-02-10", "2024-02-11", "2024-02-12"] {
        ok(&run(&["run", p.to_str().unwrap(), "--run-date", d, "-q"], &[]));
    }
    let single = dir.path().join("single");
    ok(&run(
        &[
            "attribute",
            "--events",
            sample().to_str().unwrap(),
            "--out",
            single.to_str().unwrap(),
            "--run-date",
            "2024-02-12",
            "--window-days",
            "3",
            "-q",
        ],
        &[],
    ));
    let mut sum: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for d in ["2024-02-10", "2024-02-11", "2024-02-12"] {
        let part = root.join(format!("channel_attribution/run_date={d}/part-0.parquet"));
        let (cols, rows) = read_parquet(&part);
        assert_eq!(cols[0], "run_date");
        assert!(!rows.is_empty());
        for (k, v) in credits(&part) {
            let e = sum.entry(k).or_default();
            e.0 += v.0;
            e.1 += v.1;
        }
        assert!(root.join(format!("_manifest/run_date={d}/_manifest.json")).is_file());
    }
    let one = credits(&single.join("channel_attribution/run_date=2024-02-12/part-0.parquet"));
    // Per-journey models are additive over disjoint windows: every channel matches.
    for model in
        ["first_touch", "last_touch", "last_non_direct", "linear", "position_based", "time_decay", "shapley"]
    {
        for ((m, ch), (c, v)) in one.iter().filter(|(k, _)| k.0 == model) {
            let (sc, sv) = sum.get(&(m.clone(), ch.clone())).copied().unwrap_or_default();
            assert!((c - sc).abs() < 1e-9 && (v - sv).abs() < 1e-6, "{m}/{ch}: {c} vs {sc}, {v} vs {sv}");
        }
    }
    // Markov is fitted per window, but its totals still add up.
    let total = |m: &BTreeMap<(String, String), (f64, f64)>| -> f64 {
        m.iter().filter(|(k, _)| k.0 == "markov").map(|(_, v)| v.0).sum()
    };
    assert!((total(&one) - total(&sum)).abs() < 1e-9);
    assert!(total(&one) > 10.0);

    // A rerun of a date replaces its partition with byte-identical files.
    let snapshot = |d: &str| -> BTreeMap<String, Vec<u8>> {
        let mut m = BTreeMap::new();
        for t in ["channel_attribution", "markov_removal_effects", "path_summary", "data_quality"] {
            m.insert(
                t.to_owned(),
                std::fs::read(root.join(format!("{t}/run_date={d}/part-0.parquet"))).unwrap(),
            );
        }
        m
    };
    let before = snapshot("2024-02-11");
    ok(&run(&["run", p.to_str().unwrap(), "--run-date", "2024-02-11", "-q"], &[]));
    assert_eq!(before, snapshot("2024-02-11"));
    assert!(std::fs::read_dir(&root).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".touchpoint-staging")));
}

fn partitioned(dir: &Path, first: &str, last: &str) -> PathBuf {
    let root = dir.join("events");
    let df = ParquetReader::new(std::fs::File::open(sample()).unwrap()).finish().unwrap();
    let ts = df.column("ts").unwrap().as_materialized_series().to_physical_repr().into_owned();
    let days: Vec<i64> =
        ts.i64().unwrap().into_no_null_iter().map(|t| t.div_euclid(86_400_000_000)).collect();
    let (a, b) = (parse_day(first), parse_day(last));
    for day in a..=b {
        let mask = BooleanChunked::from_iter_values("m".into(), days.iter().map(|d| *d == day));
        let mut part = df.filter(&mask).unwrap();
        let date = chrono::DateTime::from_timestamp(day * 86_400, 0).unwrap().date_naive();
        let d = root.join(format!("date={date}"));
        std::fs::create_dir_all(&d).unwrap();
        write_events(&d.join("part-0.parquet"), &mut part);
    }
    root
}

fn parse_day(s: &str) -> i64 {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .unwrap()
        .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days()
}

#[test]
fn only_the_partitions_a_window_needs_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let events = partitioned(dir.path(), "2024-01-20", "2024-02-20");
    // A corrupt file in a partition the window does not need: never opened.
    std::fs::write(events.join("date=2024-01-20/part-0.parquet"), "not parquet").unwrap();
    let p = pipeline(dir.path(), &events, "\n[journeys]\nlookback_days = 7\n");
    let o = run(&["run", p.to_str().unwrap(), "--run-date", "2024-02-15", "-q"], &[]);
    ok(&o);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out/_manifest/run_date=2024-02-15/_manifest.json")).unwrap(),
    )
    .unwrap();
    let read: Vec<String> = manifest["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(read.len(), 8, "2024-02-08 ..= 2024-02-15: {read:?}");
    assert!(read.iter().all(|f| f.as_str() >= "" && !f.contains("2024-02-07") && !f.contains("2024-02-16")));
    // The same window computed from the unpartitioned file gives the same tables.
    let single = dir.path().join("single");
    ok(&run(
        &[
            "attribute",
            "--events",
            sample().to_str().unwrap(),
            "--out",
            single.to_str().unwrap(),
            "--run-date",
            "2024-02-15",
            "--lookback-days",
            "7",
            "-q",
        ],
        &[],
    ));
    for t in ["channel_attribution", "path_summary", "markov_transitions"] {
        let f = format!("{t}/run_date=2024-02-15/part-0.parquet");
        assert_eq!(
            std::fs::read(dir.path().join("out").join(&f)).unwrap(),
            std::fs::read(single.join(&f)).unwrap(),
            "{t}"
        );
    }
    // validate reads footers only, and a window whose partition is corrupt fails it.
    let o = run(&["validate", p.to_str().unwrap(), "--run-date", "2024-02-15", "-q"], &[]);
    ok(&o);
    let o = run(&["validate", p.to_str().unwrap(), "--run-date", "2024-01-22", "-q"], &[]);
    assert_eq!(o.status.code(), Some(65), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("date=2024-01-20"));
    // A window whose own partition has not landed: 66, nothing written.
    let o = run(&["run", p.to_str().unwrap(), "--run-date", "2024-02-21", "-q"], &[]);
    assert_eq!(o.status.code(), Some(66), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing input partition date=2024-02-21"));
    assert!(!dir.path().join("out/channel_attribution/run_date=2024-02-21").exists());
    // --dry-run writes nothing.
    let o = run(&["run", p.to_str().unwrap(), "--run-date", "2024-02-14", "--dry-run", "-q"], &[]);
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("channel_attribution/run_date=2024-02-14/part-0.parquet")
    );
    assert!(!dir.path().join("out/channel_attribution/run_date=2024-02-14").exists());
}

#[test]
fn bad_pipelines_have_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &sample(), "\n[journeys]\nlookbak_days = 7\n");
    let o = run(&["run", p.to_str().unwrap(), "--run-date", "2024-02-15"], &[]);
    assert_eq!(o.status.code(), Some(78));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("lookbak_days"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let p = pipeline(dir.path(), &sample(), "");
    let o = run(&["run", p.to_str().unwrap(), "--run-date", "2024-02-30"], &[]);
    assert_eq!(o.status.code(), Some(78), "a date that does not exist is bad configuration");
    let o = run(&["run", p.to_str().unwrap()], &[("TOUCHPOINT_WINDOW__RUN_DATE", "yesterday")]);
    assert_eq!(o.status.code(), Some(78), "a bad date from the environment is bad configuration");
    let o = run(&["run", p.to_str().unwrap(), "--run-date", "2024-02-15", "--set", "models.nope=1"], &[]);
    assert_eq!(o.status.code(), Some(78));
    let o = run(&["run", dir.path().join("missing.toml").to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(66));
    std::fs::write(
        dir.path().join("v2.toml"),
        "version = 2\n[input]\nevents = \"x\"\n[output]\nroot = \"o\"\n",
    )
    .unwrap();
    let o = run(&["validate", dir.path().join("v2.toml").to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(78));
}

#[test]
fn settings_precedence_is_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        Path::new("events.parquet"),
        "\n[journeys]\nlookback_days = 30\n\n[models]\nmarkov_order = 1\nrun = [\"linear\", \"markov\"]\n\n[window]\ndays = 7\n",
    );
    let o = run(
        &[
            "run",
            p.to_str().unwrap(),
            "--run-date",
            "2024-02-15",
            "--set",
            "journeys.lookback_days=7",
            "--show-settings",
        ],
        &[
            ("TOUCHPOINT_JOURNEYS__LOOKBACK_DAYS", "14"),
            ("TOUCHPOINT_MODELS__MARKOV_ORDER", "\"auto\""),
            ("TOUCHPOINT_OUTPUT__FORMAT", "csv"),
        ],
    );
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout).replace(&dir.path().display().to_string(), "[DIR]");
    insta::assert_snapshot!(text);
}
