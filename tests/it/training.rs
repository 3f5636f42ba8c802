//! The training window: the closing rule on a hand-made case, nightly runs that reuse stored
//! days equal one fit on the whole period, and a rerun drops the days it makes stale.

use std::path::Path;

use polars::prelude::*;
use touchpoint::core::journeys::JourneyOptions;
use touchpoint::core::markov;
use touchpoint::settings::Settings;

use crate::common::*;

const DAY: i64 = 86_400_000_000;

/// Journeys closing inside `[from_day, to_day)` (days since the epoch) in closing mode.
fn closed(
    log: &touchpoint::core::event_log::EventLog,
    s: &Settings,
    from_day: i64,
    to_day: i64,
) -> (f64, f64, u64) {
    let mut o = JourneyOptions::resolve(&s.journeys, log, false);
    o.closing = Some(s.journeys.lookback_micros());
    o.report = Some((from_day * DAY, to_day * DAY));
    let j = journeys_with(log, &o);
    (j.paths.total_conversions(), j.paths.total_nulls(), j.stats.open_journeys)
}

#[test]
fn a_journey_closes_at_its_conversion_or_a_lookback_after_its_last_touch() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("e.parquet");
    // Lookback 30 days. a: one touch on day 0, nothing after: closes on day 30.
    // b: touches on days 0 and 40: the first lapses (closes day 30), the second closes day 70.
    // c: touch day 1, conversion day 5: closes day 5. d: touch day 95: open at day 100.
    let rows = [("a", 0, "t"), ("b", 0, "t"), ("b", 40, "t"), ("c", 1, "t"), ("c", 5, "c"), ("d", 95, "t")];
    let mut df = df!(
        "user_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "ts" => rows.iter().map(|r| r.1 as i64 * DAY + 3_600_000_000).collect::<Vec<_>>(),
        "channel" => rows.iter().map(|r| if r.2 == "t" { Some("x") } else { None }).collect::<Vec<_>>(),
        "event" => rows.iter().map(|r| if r.2 == "t" { "touch" } else { "conversion" }).collect::<Vec<_>>(),
    )
    .unwrap();
    df.with_column(df.column("ts").unwrap().cast(&DataType::Datetime(TimeUnit::Microseconds, None)).unwrap())
        .unwrap();
    write_events(&f, &mut df);
    let mut s = Settings::default();
    s.journeys.lookback_days = 30.0;
    s.columns.value = None;
    let log = load_log(f.to_str().unwrap(), &s);
    // (Open journeys are counted for the run date, where the data ends with the range.)
    let counts = |a, b| {
        let c = closed(&log, &s, a, b);
        (c.0, c.1)
    };
    assert_eq!(counts(5, 6), (1.0, 0.0), "c converts on day 5");
    assert_eq!(counts(30, 31), (0.0, 2.0), "a and b's first touch lapse on day 30");
    assert_eq!(counts(70, 71), (0.0, 1.0), "b's second touch lapses on day 70");
    assert_eq!(counts(31, 70), (0.0, 0.0));
    assert_eq!(closed(&log, &s, 0, 100), (1.0, 3.0, 1), "d is still open at day 100");
    // Data ending on day 50: b's second journey is open, never a non-conversion.
    assert_eq!(closed(&log, &s, 0, 50), (1.0, 2.0, 1));
}

fn run_night(root: &Path, date: &str) {
    let o = touchpoint(&[
        "run",
        "pipelines/sample_nightly.toml",
        "--run-date",
        date,
        "-q",
        "--set",
        &format!("output.root={}", root.display()),
        "--set",
        "models.training_days=40",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn markov_credit(root: &Path, date: &str) -> Vec<(String, f64)> {
    let f = root.join(format!("channel_attribution/run_date={date}/part-0.parquet"));
    let (names, rows) = read_parquet(&f);
    let col = |n: &str| names.iter().position(|x| x == n).unwrap();
    rows.iter()
        .filter(|r| r[col("model")].str() == "markov")
        .map(|r| (r[col("channel")].str().to_owned(), r[col("conversions")].num()))
        .collect()
}

#[test]
fn nightly_runs_on_stored_days_equal_one_fit_on_the_whole_period() {
    let dir = tempfile::tempdir().unwrap();
    let (nightly, fresh) = (dir.path().join("nightly"), dir.path().join("fresh"));
    for d in ["2024-02-10", "2024-02-11", "2024-02-12"] {
        run_night(&nightly, d);
    }
    run_night(&fresh, "2024-02-12");
    let (_, rows) = read_parquet(&nightly.join("data_quality/run_date=2024-02-12/part-0.parquet"));
    let q: std::collections::BTreeMap<String, f64> =
        rows.into_iter().map(|r| (r[1].str().to_owned(), r[2].num())).collect();
    assert_eq!((q["training_days_stored"], q["training_days_computed"]), (39.0, 1.0));
    assert!(q["training_open_journeys"] > 0.0, "the sample has journeys still open on the run date");
    let (a, b) = (markov_credit(&nightly, "2024-02-12"), markov_credit(&fresh, "2024-02-12"));
    assert_eq!(a, b, "stored days merged = every day computed at once");

    // The same fit from the library: one closing-mode pass over the whole period.
    let s = Settings::default(); // the pipeline's columns and journey rules
    let log = load_log(sample().to_str().unwrap(), &s);
    let last = chrono::NaiveDate::from_ymd_opt(2024, 2, 12).unwrap();
    let end_day = (last - chrono::NaiveDate::default()).num_days() + 1;
    let mut o = JourneyOptions::resolve(&s.journeys, &log, false);
    o.closing = Some(s.journeys.lookback_micros());
    o.report = Some(((end_day - 40) * DAY, end_day * DAY));
    let whole = journeys_with(&log, &o).paths;
    let r = markov::attribute(&whole, 1).unwrap();
    // Window credit ∝ removal effect over the channels on the window's converting paths.
    let window: Vec<&(String, f64)> = a.iter().filter(|x| x.1 > 0.0).collect();
    let total: f64 = window.iter().map(|x| x.1).sum();
    let re_sum: f64 = window
        .iter()
        .map(|(c, _)| r.removal_effects[whole.channels.iter().position(|n| n == c).unwrap()].unwrap())
        .sum();
    for (c, credit) in window {
        let re = r.removal_effects[whole.channels.iter().position(|n| n == c).unwrap()].unwrap();
        let want = re / re_sum * total;
        assert!((credit - want).abs() <= 1e-9 * want.max(1.0), "{c}: {credit} vs {want}");
    }
}

#[test]
fn rerunning_a_date_drops_the_stored_days_it_makes_stale() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    for d in ["2024-02-10", "2024-02-11", "2024-02-12"] {
        run_night(&root, d);
    }
    let store = std::fs::read_dir(root.join("_training")).unwrap().next().unwrap().unwrap().path();
    assert!(store.join("closed_date=2024-02-12.parquet").exists());
    run_night(&root, "2024-02-10");
    assert!(store.join("closed_date=2024-02-10.parquet").exists());
    assert!(
        !store.join("closed_date=2024-02-11.parquet").exists(),
        "a restated day's successors are recomputed"
    );
    assert!(!store.join("closed_date=2024-02-12.parquet").exists());
    run_night(&root, "2024-02-12");
    assert_eq!(markov_credit(&root, "2024-02-12"), {
        let fresh = dir.path().join("fresh");
        run_night(&fresh, "2024-02-12");
        markov_credit(&fresh, "2024-02-12")
    });
}

#[test]
fn a_training_window_needs_a_run_date_and_at_least_the_lookback() {
    let dir = tempfile::tempdir().unwrap();
    let (out, events) = (dir.path().join("o"), sample());
    let run = |extra: &[&str]| {
        let mut args =
            vec!["attribute", "--events", events.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"];
        args.extend_from_slice(extra);
        touchpoint(&args)
    };
    let o = run(&["--set", "models.training_days=60"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs a scheduled run with a run date"));
    let o = run(&["--set", "models.training_days=10", "--run-date", "2024-02-10"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least the lookback (30 days)"));
    assert!(!out.exists(), "nothing written");
}

/// With a training window the Markov fit is fixed (the training period's removal effects)
/// and a replicate only reweights the window's conversions, so every channel's replicate
/// credit is the same share of the replicate's conversions: each channel's bounds are its
/// credit times one common ratio (where the channel is on converting paths in every
/// replicate, as each of the sample's channels is over a week).
#[test]
fn intervals_with_a_training_window_scale_the_fixed_fit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    let o = touchpoint(&[
        "run",
        "pipelines/sample_nightly.toml",
        "--run-date",
        "2024-02-12",
        "-q",
        "--set",
        &format!("output.root={}", root.display()),
        "--set",
        "models.training_days=40",
        "--set",
        "window.days=7",
        "--set",
        "models.bootstrap_replicates=60",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (names, rows) = read_parquet(&root.join("channel_attribution/run_date=2024-02-12/part-0.parquet"));
    let col = |n: &str| names.iter().position(|x| x == n).unwrap();
    let markov: Vec<_> = rows
        .iter()
        .filter(|r| r[col("model")].str() == "markov" && r[col("channel")].str() != "(unattributed)")
        .map(|r| {
            (r[col("conversions")].num(), r[col("conversions_low")].num(), r[col("conversions_high")].num())
        })
        .collect();
    assert!(markov.len() >= 5, "the sample's channels: {}", markov.len());
    let (lo, hi) = (markov[0].1 / markov[0].0, markov[0].2 / markov[0].0);
    assert!(lo < 1.0 && hi > 1.0, "the bounds bracket the credit: {lo} {hi}");
    for &(c, l, h) in &markov {
        assert!((l / c - lo).abs() <= 1e-9 && (h / c - hi).abs() <= 1e-9, "{c}: {l}/{h} vs ratios {lo}/{hi}");
    }
}
