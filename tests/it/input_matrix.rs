//! One set of input rules, whichever way the rows arrive (`docs/sources.md`): every case of
//! the robustness matrix that applies to both paths runs read directly and staged (the same
//! event log with an erasure list naming nobody, which stages it), and must give the same
//! outcome: the same exit status and message naming the file and the column, or the same
//! tables. Each case also checks its totals against numbers counted by hand from its rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use polars::prelude::*;

use crate::common::*;

/// A run's outcome: its exit code and, for a failure, its message without the temporary
/// directory; for a success, its tables (bytes) and `data_quality`.
#[derive(Debug, PartialEq)]
enum Outcome {
    Failed(Option<i32>, String),
    Tables(BTreeMap<String, Vec<u8>>, BTreeMap<String, f64>),
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        Case { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write one event file of `cols` (a directory of such files is one event log).
    fn file(&self, name: &str, cols: Vec<Column>) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut df = DataFrame::new_infer_height(cols).unwrap();
        write_events(&p, &mut df);
        p
    }

    /// `attribute` over `events`, read directly and staged, with the same flags.
    fn both(&self, events: &Path, flags: &[&str]) -> [Outcome; 2] {
        let erase = self.path("erase.csv");
        std::fs::write(&erase, "person_id\nnobody\n").unwrap();
        let erase = format!("input.erasure_list=\"{}\"", erase.display());
        let staged = [flags, &["--set", erase.as_str()][..]].concat();
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        [("direct", flags), ("staged", &staged[..])].map(|(name, flags)| {
            let out = self.path(&format!("{name}-{n}"));
            let mut args =
                vec!["attribute", "--events", events.to_str().unwrap(), "--out", out.to_str().unwrap()];
            args.extend_from_slice(flags);
            self.outcome(&touchpoint(&args), &out)
        })
    }

    fn outcome(&self, o: &Output, out: &Path) -> Outcome {
        if !o.status.success() {
            let stdout = String::from_utf8_lossy(&o.stdout);
            let json: serde_json::Value =
                serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_default();
            let message = json["message"].as_str().unwrap_or_default();
            return Outcome::Failed(
                o.status.code(),
                message.replace(&self.dir.path().display().to_string(), ""),
            );
        }
        Outcome::Tables(common_tables(out), quality(out))
    }
}

/// The tables both paths write (staging adds `source_quality` and `source_channel_touches`),
/// `data_quality` compared apart.
fn common_tables(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let staged_only = ["source_quality.parquet", "source_channel_touches.parquet", "data_quality.parquet"];
    let t: BTreeMap<String, Vec<u8>> = files(out)
        .into_iter()
        .filter(|(n, _)| n.ends_with(".parquet") && !staged_only.contains(&n.as_str()))
        .collect();
    assert!(t.contains_key("channel_attribution.parquet"), "{:?}", t.keys());
    t
}

/// The same outcome both ways; `data_quality` compared on the metrics direct input has.
fn same(outcomes: &[Outcome; 2], case: &str) {
    match outcomes {
        [Outcome::Failed(..), _] | [_, Outcome::Failed(..)] => assert_eq!(outcomes[0], outcomes[1], "{case}"),
        [Outcome::Tables(a, qa), Outcome::Tables(b, qb)] => {
            for (name, bytes) in a {
                let (x, y) = (rows(bytes), rows(&b[name]));
                let diff: Vec<_> = x.iter().zip(&y).filter(|(x, y)| x != y).collect();
                assert!(
                    b.get(name) == Some(bytes),
                    "{case}: {name} differs ({} rows, {} staged): {diff:?}",
                    x.len(),
                    y.len()
                );
            }
            for (metric, v) in qa {
                assert_eq!(qb.get(metric), Some(v), "{case}: data_quality {metric}");
            }
        }
    }
}

/// The rows of a Parquet file's bytes (for messages).
fn rows(bytes: &[u8]) -> Vec<Vec<Cell>> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.parquet");
    std::fs::write(&p, bytes).unwrap();
    read_parquet(&p).1
}

fn failed(o: &Outcome) -> (Option<i32>, &str) {
    match o {
        Outcome::Failed(code, m) => (*code, m.as_str()),
        Outcome::Tables(..) => panic!("the run succeeded"),
    }
}

fn quality_of(o: &Outcome) -> &BTreeMap<String, f64> {
    match o {
        Outcome::Tables(_, q) => q,
        Outcome::Failed(code, m) => panic!("failed ({code:?}): {m}"),
    }
}

/// Credit of `channel` under `model` in the `channel_attribution` table of a run.
fn credit(o: &Outcome, model: &str, channel: &str) -> f64 {
    let Outcome::Tables(t, _) = o else { panic!("the run failed") };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.parquet");
    std::fs::write(&p, &t["channel_attribution.parquet"]).unwrap();
    let (_, rows) = read_parquet(&p);
    rows.iter().filter(|r| r[0].str() == model && r[1].str() == channel).map(|r| r[3].num()).sum()
}

fn strs(name: &str, v: &[Option<&str>]) -> Column {
    Column::new(name.into(), v.to_vec())
}

/// Microsecond timestamps `T0 + d` days (None: a null time), in the given unit.
fn times(days: &[Option<i64>], unit: TimeUnit) -> Column {
    let per_us = |x: i64| match unit {
        TimeUnit::Nanoseconds => x * 1000,
        TimeUnit::Microseconds => x,
        TimeUnit::Milliseconds => x / 1000,
    };
    let v: Vec<Option<i64>> = days.iter().map(|d| d.map(|d| per_us(T0 + d * DAY))).collect();
    Column::new("ts".into(), v).cast(&DataType::Datetime(unit, None)).unwrap()
}

/// Five rows: u1 touches `a` (day 0) and converts (day 1, 10.0); a row of `bad` (row 2);
/// u2 touches `b` (day 0) and converts (day 2, 5.0). `bad` nulls the user or the time of row 2.
fn five_rows(c: &Case, bad: &str) -> PathBuf {
    let user = [Some("u1"), Some("u1"), (bad != "user").then_some("u3"), Some("u2"), Some("u2")];
    let day = [Some(0), Some(1), (bad != "time").then_some(1), Some(0), Some(2)];
    c.file(
        &format!("{bad}/events.parquet"),
        vec![
            strs("user_id", &user),
            times(&day, TimeUnit::Microseconds),
            strs("channel", &[Some("a"), None, Some("c"), Some("b"), None]),
            strs(
                "event",
                &[Some("touch"), Some("conversion"), Some("touch"), Some("touch"), Some("conversion")],
            ),
            Column::new("revenue".into(), [0.0, 10.0, 0.0, 0.0, 5.0]),
        ],
    )
}

#[test]
fn null_users_and_null_times_fail_naming_the_file_and_column_or_are_dropped_alike() {
    let c = Case::new();
    for (bad, column) in [("user", "user_id"), ("time", "ts")] {
        let events = five_rows(&c, bad);
        let fail = c.both(&events, &[]);
        same(&fail, bad);
        let (code, message) = failed(&fail[0]);
        assert_eq!(code, Some(65), "{message}");
        assert!(message.contains("events.parquet") && message.contains(&format!("`{column}`")), "{message}");
        assert!(message.contains("at row 2"), "{message}");
        let drop = c.both(&events, &["--on-invalid-rows", "drop"]);
        same(&drop, bad);
        // By hand: 5 rows, the bad one dropped; 2 conversions worth 15; a last touch 10, b 5.
        let q = quality_of(&drop[1]);
        assert_eq!(
            (q["rows_read"], q["events"], q["conversions"], q["conversion_value"]),
            (5.0, 4.0, 2.0, 15.0)
        );
        assert_eq!((credit(&drop[1], "last_touch", "a"), credit(&drop[1], "last_touch", "b")), (10.0, 5.0));
    }
}

#[test]
fn an_integer_marker_of_2_fails_alike_and_0_1_reads_alike() {
    let c = Case::new();
    let events = |name: &str, flags: [i32; 4]| {
        c.file(
            name,
            vec![
                strs("user_id", &[Some("u1"), Some("u1"), Some("u2"), Some("u2")]),
                times(&[Some(0), Some(1), Some(0), Some(1)], TimeUnit::Microseconds),
                strs("channel", &[Some("a"), Some("a"), Some("b"), Some("b")]),
                Column::new("converted".into(), flags),
                Column::new("revenue".into(), [0.0, 10.0, 0.0, 0.0]),
            ],
        )
    };
    let marker = ["--conversion-col", "converted"];
    let bad = c.both(&events("bad.parquet", [0, 2, 0, 0]), &marker);
    same(&bad, "marker 2");
    let (code, message) = failed(&bad[0]);
    assert_eq!(code, Some(65));
    assert!(message.contains("bad.parquet") && message.contains("`converted`"), "{message}");
    assert!(message.contains("must be 0 or 1, found 2 at row 1"), "{message}");
    let good = c.both(&events("good.parquet", [0, 1, 0, 0]), &marker);
    same(&good, "marker 0/1");
    // u1 converts once (10.0) after touching a; u2 never converts.
    assert_eq!(quality_of(&good[1])["conversions"], 1.0);
    assert_eq!(credit(&good[1], "last_touch", "a"), 10.0);
}

/// Two files of one log: user ids Int32 in one and Int64 in the other, times in ms in one
/// and ns in the other, an extra column of a type touchpoint never reads (a list), and a
/// revenue column of Arrow type null where the file has no conversion worth anything.
#[test]
fn mixed_id_widths_time_units_extra_and_null_typed_columns_read_alike() {
    let c = Case::new();
    c.file(
        "log/a.parquet",
        vec![
            Column::new("user_id".into(), [1i32, 2]),
            times(&[Some(0), Some(0)], TimeUnit::Milliseconds),
            strs("channel", &[Some("a"), Some("b")]),
            strs("event", &[Some("touch"), Some("touch")]),
            Column::full_null("revenue".into(), 2, &DataType::Null),
            Series::new("extra".into(), &[Series::new("".into(), [1i64, 2]), Series::new("".into(), [3i64])])
                .into(),
        ],
    );
    c.file(
        "log/b.parquet",
        vec![
            Column::new("user_id".into(), [1i64, 2, 3_000_000_000]),
            times(&[Some(1), Some(2), Some(3)], TimeUnit::Nanoseconds),
            strs("channel", &[None, None, Some("c")]),
            strs("event", &[Some("conversion"), Some("conversion"), Some("touch")]),
            Column::new("revenue".into(), [10.0, 5.0, 0.0]),
            Column::new("extra".into(), ["x", "y", "z"]),
        ],
    );
    // Without intervals: staging compares ids as text (`docs/sources.md`), so a person's
    // bootstrap key is the hash of the id's text where a file read directly keys an integer
    // id by its value; both are valid resamplings, not the same one.
    let runs = c.both(&c.path("log"), &["--bootstrap", "0"]);
    same(&runs, "mixed");
    // By hand: users 1 and 2 each touch on day 0 and convert later (10.0 and 5.0): the ids
    // of both widths are one user each; user 3 (beyond 32 bits) touches c and never converts.
    let q = quality_of(&runs[1]);
    assert_eq!((q["rows_read"], q["events"], q["conversions"], q["conversion_value"]), (5.0, 5.0, 2.0, 15.0));
    assert_eq!((credit(&runs[1], "first_touch", "a"), credit(&runs[1], "first_touch", "b")), (10.0, 5.0));
    assert_eq!(credit(&runs[1], "first_touch", "c"), 0.0);
}

/// u1 touches b and a at the same instant, then converts (10.0). By channel name a comes
/// first; the tie-breaker `seq` puts b first. A null `seq` is an invalid row.
#[test]
fn a_tie_breaker_orders_ties_alike_and_its_nulls_are_invalid_rows_alike() {
    let c = Case::new();
    let events = |name: &str, seq: [Option<i64>; 4]| {
        c.file(
            name,
            vec![
                strs("user_id", &[Some("u1"), Some("u1"), Some("u1"), Some("u2")]),
                times(&[Some(0), Some(0), Some(1), Some(0)], TimeUnit::Microseconds),
                strs("channel", &[Some("a"), Some("b"), None, Some("c")]),
                strs("event", &[Some("touch"), Some("touch"), Some("conversion"), Some("touch")]),
                Column::new("revenue".into(), [0.0, 0.0, 10.0, 0.0]),
                Column::new("seq".into(), seq),
            ],
        )
    };
    let tie = ["--tie-breaker-col", "seq"];
    let runs = c.both(&events("ties.parquet", [Some(2), Some(1), Some(3), Some(1)]), &tie);
    same(&runs, "ties");
    assert_eq!((credit(&runs[1], "first_touch", "b"), credit(&runs[1], "last_touch", "a")), (10.0, 10.0));
    let nulls = events("nulls.parquet", [Some(2), Some(1), Some(3), None]);
    let fail = c.both(&nulls, &tie);
    same(&fail, "null tie-breaker");
    let (code, message) = failed(&fail[0]);
    assert_eq!(code, Some(65));
    assert!(
        message.contains("nulls.parquet") && message.contains("`seq`") && message.contains("row 3"),
        "{message}"
    );
    let drop = c.both(&nulls, &[&tie[..], &["--on-invalid-rows", "drop"]].concat());
    same(&drop, "null tie-breaker dropped");
    let q = quality_of(&drop[1]);
    assert_eq!((q["events"], q["rows_rejected_null_tie_breaker"]), (3.0, 1.0));
}

/// u1: a (e1), b (e2), b again under e2 (a duplicate), then the conversion (e3, 10.0).
/// Deduplicated by event id the journey is a > b: linear gives each 5.0 (else a 10/3).
#[test]
fn duplicates_by_event_id_are_dropped_alike() {
    let c = Case::new();
    let events = c.file(
        "dups.parquet",
        vec![
            strs("user_id", &[Some("u1"); 4]),
            times(&[Some(0), Some(1), Some(2), Some(3)], TimeUnit::Microseconds),
            strs("channel", &[Some("a"), Some("b"), Some("b"), None]),
            strs("event", &[Some("touch"), Some("touch"), Some("touch"), Some("conversion")]),
            Column::new("revenue".into(), [0.0, 0.0, 0.0, 10.0]),
            Column::new("eid".into(), [1i64, 2, 2, 3]),
        ],
    );
    let runs = c.both(&events, &["--event-id-col", "eid", "--dedupe", "event_id"]);
    same(&runs, "event ids");
    assert_eq!((credit(&runs[1], "linear", "a"), credit(&runs[1], "linear", "b")), (5.0, 5.0));
}

/// `[channel_rules]`: google → search, anything else unassigned; conversions carry no UTM
/// values. u1: google (day 0), elsewhere (day 1), converts (day 2, 10.0); a row without a
/// user (dropped) whose source no rule matches is not counted as unmatched.
fn utm_log(c: &Case) -> PathBuf {
    c.file(
        "utm.parquet",
        vec![
            strs("user_id", &[Some("u1"), Some("u1"), Some("u1"), None]),
            times(&[Some(0), Some(1), Some(2), Some(0)], TimeUnit::Microseconds),
            strs("utm_source", &[Some("google"), Some("elsewhere"), None, Some("elsewhere")]),
            strs("event", &[Some("touch"), Some("touch"), Some("conversion"), Some("touch")]),
            Column::new("revenue".into(), [0.0, 0.0, 10.0, 0.0]),
        ],
    )
}

const RULES: &str = "channel_rules.rules=[{channel=\"search\", source=\"^google$\"}]";

#[test]
fn channel_rules_derive_the_channel_alike() {
    let c = Case::new();
    let runs = c.both(&utm_log(&c), &["--set", RULES, "--on-invalid-rows", "drop"]);
    same(&runs, "channel rules");
    let q = quality_of(&runs[1]);
    assert_eq!((q["events"], q["rows_unmatched_channel_rule"]), (3.0, 1.0));
    assert_eq!(
        (credit(&runs[1], "first_touch", "search"), credit(&runs[1], "last_touch", "unassigned")),
        (10.0, 10.0)
    );
}

/// Staged with a `[[sources]]` table of calls: the call names its channel (phone), which
/// the rules do not replace; the event log's rows are ruled as before. u1's call on day 1
/// at the instant of the `elsewhere` touch comes first among them (a source's rows have no
/// tie-breaker: the lowest), so with the tie-breaker the last touch is the web's.
#[test]
fn a_source_keeps_its_channel_next_to_ruled_and_tie_broken_event_log_rows() {
    let c = Case::new();
    let events = utm_log(&c);
    let mut df = ParquetReader::new(std::fs::File::open(&events).unwrap()).finish().unwrap();
    df.with_column(Column::new("seq".into(), [1i64, 2, 3, 4])).unwrap();
    write_events(&events, &mut df);
    let calls = c.path("calls.csv");
    let at = |d: i64| chrono::DateTime::from_timestamp_micros(T0 + d * DAY).unwrap().to_rfc3339();
    std::fs::write(&calls, format!("crm_id,called_at\nu1,{}\n", at(1))).unwrap();
    let source = format!("calls={},user=crm_id,time=called_at,channel=phone", calls.display());
    let out = c.path("out");
    let o = touchpoint(&[
        "attribute",
        "--events",
        events.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--source",
        &source,
        "--set",
        RULES,
        "--tie-breaker-col",
        "seq",
        "--on-invalid-rows",
        "drop",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // By hand: u1's journey search > phone > unassigned, converting (10.0).
    let q = quality(&out);
    assert_eq!((q["events"], q["rows_unmatched_channel_rule"]), (4.0, 1.0));
    let (_, rows) = read_parquet(&out.join("channel_attribution.parquet"));
    let by = |m: &str, ch: &str| {
        rows.iter().filter(|r| r[0].str() == m && r[1].str() == ch).map(|r| r[3].num()).sum::<f64>()
    };
    assert_eq!((by("first_touch", "search"), by("last_touch", "unassigned")), (10.0, 10.0));
    assert!((by("linear", "phone") - 10.0 / 3.0).abs() < 1e-9, "{}", by("linear", "phone"));
}
