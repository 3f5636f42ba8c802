//! The defects a review found (issue 9), each with the test that failed before its fix:
//! publication under kills, campaign totals, types across files, overflow, reserved channel
//! names, Spark's shard of 32-bit ids, unrelated environment variables, panics on hand-made
//! partials, empty windows, and the JSON line of usage errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;
use polars::prelude::*;

fn last_json(o: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(stdout.lines().last().expect("a last line")).expect("JSON")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ts_col(name: &str, days: &[i64]) -> Column {
    Series::new(
        name.into(),
        days.iter().map(|d| 1_700_000_000_000_000 + d * 86_400_000_000).collect::<Vec<_>>(),
    )
    .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
    .unwrap()
    .into()
}

/// A small log: (user, day, channel, event, revenue).
fn small(users: Column, days: &[i64], channels: &[&str], events: &[&str], revenue: &[f64]) -> DataFrame {
    DataFrame::new_infer_height(vec![
        users,
        ts_col("ts", days),
        Column::new("channel".into(), channels),
        Column::new("event".into(), events),
        Column::new("revenue".into(), revenue),
    ])
    .unwrap()
}

/// (model, channel) → (conversions, value) of a credit table; campaign rows are summed.
fn by_channel(file: &Path) -> BTreeMap<(String, String), (f64, f64)> {
    let (cols, rows) = read_parquet(file);
    let at = |n: &str| cols.iter().position(|c| c == n).unwrap();
    let (m, ch, c, v) = (at("model"), at("channel"), at("conversions"), at("value"));
    let mut out: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for r in rows {
        let e = out.entry((r[m].str().to_owned(), r[ch].str().to_owned())).or_default();
        e.0 += r[c].num();
        e.1 += r[v].num();
    }
    out
}

#[test]
fn campaign_rows_add_up_to_their_channel_row_for_every_model_with_and_without_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let events = sample_with_campaigns(dir.path());
    for window in [false, true] {
        let out = dir.path().join(if window { "w" } else { "all" });
        let mut args = vec![
            "attribute",
            "--events",
            events.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--campaign-col",
            "campaign",
            "-q",
        ];
        if window {
            args.extend(["--run-date", "2024-02-10"]);
        }
        let o = touchpoint(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let (ch, camp) = if window {
            let p = |t: &str| out.join(t).join("run_date=2024-02-10/part-0.parquet");
            (p("channel_attribution"), p("campaign_attribution"))
        } else {
            (out.join("channel_attribution.parquet"), out.join("campaign_attribution.parquet"))
        };
        let (a, b) = (by_channel(&ch), by_channel(&camp));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "window {window}");
        for (k, (c, v)) in &a {
            let (c2, v2) = b[k];
            assert!((c - c2).abs() <= 1e-9 * c.abs().max(1.0), "{k:?} window {window}: {c} vs {c2}");
            assert!((v - v2).abs() <= 1e-9 * v.abs().max(1.0), "{k:?} window {window}: {v} vs {v2}");
        }
        assert!(a.keys().any(|k| k.0 == "markov") && a.keys().any(|k| k.0 == "last_non_direct"));
    }
}

#[test]
fn a_tie_breaker_typed_differently_across_files_is_refused_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for (i, seq) in
        [("a", Column::new("seq".into(), ["1", "2"])), ("b", Column::new("seq".into(), [1i64, 2]))]
    {
        let mut df = small(
            Column::new("user_id".into(), ["u1", "u1"]),
            &[0, 0],
            &["x", "y"],
            &["touch", "conversion"],
            &[0.0, 1.0],
        );
        df.with_column(seq).unwrap();
        write_events(&logs.join(format!("{i}.parquet")), &mut df);
    }
    let out = dir.path().join("out");
    let o = touchpoint(&[
        "attribute",
        "--events",
        logs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--tie-breaker-col",
        "seq",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("a.parquet") && e.contains("b.parquet") && e.contains("`seq`"), "{e}");
    assert!(!out.exists());
}

#[test]
fn conversion_values_that_overflow_are_refused_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    let mut df = small(
        Column::new("user_id".into(), ["u1", "u1", "u2", "u2"]),
        &[0, 1, 0, 1],
        &["x", "x", "y", "y"],
        &["touch", "conversion", "touch", "conversion"],
        &[0.0, f64::MAX, 0.0, f64::MAX],
    );
    write_events(&path, &mut df);
    let out = dir.path().join("out");
    let o = touchpoint(&["attribute", "--events", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("`revenue`"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn channel_names_that_collide_with_touchpoints_own_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (i, bad) in
        ["(unattributed)", "(start)", "(null)", "(conversion)", "a > b", "a\u{1f}b"].iter().enumerate()
    {
        let path = dir.path().join(format!("e{i}.parquet"));
        let mut df = small(
            Column::new("user_id".into(), ["u1", "u1"]),
            &[0, 1],
            &[bad, "ok"],
            &["touch", "conversion"],
            &[0.0, 1.0],
        );
        write_events(&path, &mut df);
        let out = dir.path().join(format!("out{i}"));
        let o =
            touchpoint(&["attribute", "--events", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(65), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("`channel`"), "{}", stderr(&o));
        assert!(!out.exists());
    }
}

/// Spark: `pmod(xxhash64(CAST(1 AS INT)), 5) = 1`, `pmod(xxhash64(CAST(1 AS BIGINT)), 5) = 3`
/// (from the published hashes -6698625589789238999 and -7001672635703045582).
#[test]
fn shards_of_integer_ids_follow_the_column_width_like_spark() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, users: Column| {
        let mut df = small(users, &[0, 1], &["x", "x"], &["touch", "conversion"], &[0.0, 1.0]);
        let p = dir.path().join(name);
        write_events(&p, &mut df);
        p
    };
    let int32 = write("int32.parquet", Column::new("user_id".into(), [1i32, 1]));
    let shard_of = |events: &Path, tag: &str| -> Vec<u64> {
        (0..5)
            .map(|i| {
                let out = dir.path().join(format!("{tag}-{i}"));
                let shard = format!("{i}/5");
                let o = touchpoint(&[
                    "attribute",
                    "--events",
                    events.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                    "--shard",
                    &shard,
                ]);
                let v = last_json(&o);
                assert!(o.status.success() || o.status.code() == Some(65), "{}", stderr(&o));
                v["events"].as_u64().unwrap_or(0)
            })
            .collect()
    };
    assert_eq!(shard_of(&int32, "i32"), vec![0, 2, 0, 0, 0]);
    let logs = dir.path().join("mixed");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::copy(&int32, logs.join("a.parquet")).unwrap();
    let int64 = write("int64.parquet", Column::new("user_id".into(), [1i64, 1]));
    std::fs::copy(&int64, logs.join("b.parquet")).unwrap();
    // Mixed widths: every id is hashed as a 64-bit BIGINT.
    assert_eq!(shard_of(&logs, "mixed"), vec![0, 0, 0, 4, 0]);
}

#[test]
fn a_shard_run_reports_the_rows_of_other_shards_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p");
    let o = touchpoint(&[
        "attribute",
        "--events",
        sample().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--shard",
        "0/4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = last_json(&o);
    let skipped = v["other_shard_rows"].as_u64().unwrap();
    let total = read_parquet(&sample()).1.len() as u64;
    assert!(skipped > total / 2 && skipped < total, "{skipped} of {total}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["partial"]["input"]["other_shards"].as_u64(), Some(skipped));
    assert_eq!(m["partial"]["format_version"], 3);
}

#[test]
fn unrelated_touchpoint_variables_are_not_settings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = touchpoint_env(
        &["attribute", "--events", sample().to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"],
        &[
            ("TOUCHPOINT_HOME", "/opt/touchpoint"),
            ("TOUCHPOINT_SERVICE_HOST", "10.0.0.1"),
            ("TOUCHPOINT_PORT", "tcp://10.0.0.1:80"),
            ("TOUCHPOINT_JOURNEYS__LOOKBACK_DAYS", "7"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["settings"]["journeys"]["lookback_days"], 7.0, "the environment layer applies to attribute");
}

#[test]
fn a_hand_edited_partial_manifest_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let parts: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("p{i}"))).collect();
    for (i, p) in parts.iter().enumerate() {
        let shard = format!("{i}/2");
        let o = touchpoint(&[
            "attribute",
            "--events",
            sample().to_str().unwrap(),
            "--out",
            p.to_str().unwrap(),
            "--shard",
            &shard,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mpath = parts[1].join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    let real = std::fs::canonicalize(&mpath).unwrap();
    let merge = |out: &str| {
        touchpoint(&[
            "merge",
            parts[0].to_str().unwrap(),
            parts[1].to_str().unwrap(),
            "--out",
            dir.path().join(out).to_str().unwrap(),
        ])
    };
    m["partial"]["report_of"][0] = serde_json::json!(999);
    std::fs::write(&real, serde_json::to_string(&m).unwrap()).unwrap();
    let o = merge("m1");
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    m["partial"]["format_version"] = serde_json::json!(99);
    std::fs::write(&real, serde_json::to_string(&m).unwrap()).unwrap();
    let o = merge("m2");
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("version"), "{}", stderr(&o));
}

#[test]
fn a_window_without_events_is_66_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = touchpoint(&[
        "attribute",
        "--events",
        sample().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--run-date",
        "2030-01-01",
    ]);
    assert_eq!(o.status.code(), Some(66), "{}", stderr(&o));
    assert!(stderr(&o).contains("no events between"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn usage_errors_and_impossible_dates_end_with_a_json_line() {
    let o = touchpoint(&["attribute", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(last_json(&o)["exit_code"], 2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = touchpoint(&[
        "attribute",
        "--events",
        sample().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--run-date",
        "2024-02-30",
    ]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert_eq!(last_json(&o)["status"], "error");
    assert!(stderr(&o).contains("2024-02-30"));
    let o = touchpoint(&["attribute", "--events", "x", "--out", "y", "--lookback-days", "-1"]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(stderr(&o).contains("lookback_days"), "{}", stderr(&o));
}

#[test]
fn an_output_that_is_a_file_fails_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("taken");
    std::fs::write(&out, "not a directory").unwrap();
    let o =
        touchpoint(&["attribute", "--events", "/nonexistent/events.parquet", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(78), "the output is checked before the input: {}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "not a directory");
}

/// (model, channel) → (conversions_low, conversions_high, value_low, value_high), summed
/// over campaigns (one campaign per channel: the sum is that row).
fn bounds(file: &Path) -> BTreeMap<(String, String), [f64; 4]> {
    let (cols, rows) = read_parquet(file);
    let at = |n: &str| cols.iter().position(|c| c == n).unwrap();
    let idx = [at("conversions_low"), at("conversions_high"), at("value_low"), at("value_high")];
    let (m, ch) = (at("model"), at("channel"));
    let mut out: BTreeMap<(String, String), [f64; 4]> = BTreeMap::new();
    for r in rows.iter().filter(|r| r[ch].str() != "(unattributed)") {
        let e = out.entry((r[m].str().to_owned(), r[ch].str().to_owned())).or_default();
        for (k, &i) in idx.iter().enumerate() {
            e[k] += r[i].num();
        }
    }
    out
}

/// Campaign intervals split each replicate's channel credit over its campaigns: with one
/// campaign the split is the whole, so the campaign rows' bounds are the channel rows'.
#[test]
fn campaign_intervals_are_the_channel_replicates_split_by_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let mut df = ParquetReader::new(std::fs::File::open(sample()).unwrap()).finish().unwrap();
    let n = df.height();
    df.with_column(Column::new("campaign".into(), vec!["only"; n])).unwrap();
    let events = dir.path().join("one.parquet");
    write_events(&events, &mut df);
    let out = dir.path().join("o");
    let o = touchpoint(&[
        "attribute",
        "--events",
        events.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--campaign-col",
        "campaign",
        "--bootstrap",
        "60",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (ch, camp) =
        (bounds(&out.join("channel_attribution.parquet")), bounds(&out.join("campaign_attribution.parquet")));
    assert_eq!(ch.keys().collect::<Vec<_>>(), camp.keys().collect::<Vec<_>>());
    for (k, a) in &ch {
        for (x, y) in a.iter().zip(&camp[k]) {
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                "{k:?}: channel {a:?} vs campaign {:?}",
                camp[k]
            );
        }
    }
    // With five campaigns every attributed row has an interval around its own credit's order.
    let events = sample_with_campaigns(dir.path());
    let out = dir.path().join("five");
    let o = touchpoint(&[
        "attribute",
        "--events",
        events.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--campaign-col",
        "campaign",
        "--bootstrap",
        "60",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (cols, rows) = read_parquet(&out.join("campaign_attribution.parquet"));
    let at = |n: &str| cols.iter().position(|c| c == n).unwrap();
    for r in rows.iter().filter(|r| r[at("channel")].str() != "(unattributed)") {
        let (c, lo, hi) =
            (r[at("conversions")].num(), r[at("conversions_low")].num(), r[at("conversions_high")].num());
        assert!(lo <= hi && lo <= c * 1.5 + 1.0 && hi >= c * 0.5 - 1.0, "{c} outside [{lo}, {hi}]");
    }
}
