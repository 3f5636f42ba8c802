//! Messages that send users the right way: each says what is wrong and what to do, in
//! touchpoint's words (not a dependency's advice).

use crate::common::*;
use polars::prelude::*;

fn string_times(path: &std::path::Path, times: &[&str]) {
    let n = times.len();
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("user_id".into(), vec!["u1"; n]),
        Column::new("ts".into(), times),
        Column::new("channel".into(), vec!["a"; n]),
        Column::new(
            "event".into(),
            (0..n).map(|i| if i + 1 == n { "conversion" } else { "touch" }).collect::<Vec<_>>(),
        ),
        Column::new("revenue".into(), vec![1.0; n]),
    ])
    .unwrap();
    write_events(path, &mut df);
}

#[test]
fn unparseable_times_name_the_column_and_give_no_foreign_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("times.parquet");
    string_times(&path, &["2024-01-01T00:00:00", "yesterday at noon", "2024-01-02T00:00:00"]);
    let out = dir.path().join("out");
    let o = touchpoint(&["attribute", "--events", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(65), "{e}");
    assert!(e.contains("`ts`"), "{e}");
    assert!(!e.contains("strict"), "no advice about options touchpoint does not have: {e}");
    assert!(e.contains("yesterday at noon"), "the offending value: {e}");
}

#[test]
fn a_misspelt_model_gets_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = touchpoint(&[
        "attribute",
        "--events",
        sample().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--models",
        "lienar",
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(78), "{e}");
    assert!(e.contains("did you mean `linear`"), "{e}");
}

#[test]
fn doctor_reports_what_a_run_would_drop_duplicate_or_leave_unattributed_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.parquet");
    let day = 86_400_000_000i64;
    let ts: Column =
        Series::new("ts".into(), [0, 0, day, 60 * day, 61 * day].map(|d| 1_700_000_000_000_000 + d))
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .unwrap()
            .into();
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("user_id".into(), [Some("u1"), Some("u1"), Some("u1"), None, Some("u2")]),
        ts,
        Column::new("channel".into(), [Some("a"), Some("a"), Some("b"), Some("c"), None]),
        Column::new("event".into(), ["touch", "touch", "conversion", "touch", "conversion"]),
        Column::new("revenue".into(), [0.0, 0.0, 5.0, 0.0, 7.0]),
    ])
    .unwrap();
    write_events(&path, &mut df);
    let o = touchpoint(&["doctor", "--events", path.to_str().unwrap(), "-q"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_str(&out[..out.rfind("\n{").unwrap()]).unwrap();
    assert_eq!(report["rows_rejected_by_reason"]["rows_rejected_null_user_id"], 1);
    assert_eq!(report["duplicate_events"], 1);
    assert_eq!(report["unattributed_conversions"], 1.0);
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f.as_str().unwrap().contains("the run would fail on them")),
        "{findings:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "doctor writes nothing");
}
