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
