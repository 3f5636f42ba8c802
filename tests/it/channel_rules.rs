//! `[channel_rules]`: channels derived from UTM columns by ordered rules, end to end.

use polars::prelude::*;

use crate::common::*;

#[test]
fn utm_rules_derive_the_channel_first_match_wins_and_unmatched_rows_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("utm.parquet");
    let h = 3_600_000_000i64;
    // u1: google/cpc (brand campaign) then facebook/social, converts: brand > organic_social.
    // u2: an unknown source/medium, converts: unassigned. u3: no UTM at all, converts: direct.
    // Conversion rows carry no UTM values: they are not touches.
    type Row<'a> = (&'a str, i64, Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str);
    let rows: [Row; 8] = [
        ("u1", 1, Some("google"), Some("cpc"), Some("brand-2024"), "touch"),
        ("u1", 2, Some("facebook"), Some("social"), None, "touch"),
        ("u1", 3, None, None, None, "conversion"),
        ("u2", 1, Some("somewhere"), Some("weird"), None, "touch"),
        ("u2", 2, None, None, None, "conversion"),
        ("u3", 1, None, None, None, "touch"),
        ("u3", 2, None, None, None, "conversion"),
        ("u4", 1, Some("Google"), Some("CPC"), Some("generic"), "touch"),
    ];
    let mut df = df!(
        "user_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "ts" => rows.iter().map(|r| 1_704_067_200_000_000 + r.1 * h).collect::<Vec<_>>(),
        "utm_source" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        "utm_medium" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        "utm_campaign" => rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        "event" => rows.iter().map(|r| r.5).collect::<Vec<_>>(),
    )
    .unwrap();
    df.with_column(df.column("ts").unwrap().cast(&DataType::Datetime(TimeUnit::Microseconds, None)).unwrap())
        .unwrap();
    write_events(&events, &mut df);
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "version = 1\n[input]\nevents = \"{}\"\n[columns]\nvalue = \"\"\n[output]\nroot = \"{}\"\n\
             [channel_rules]\npreset = \"ga4\"\n\
             [[channel_rules.rules]]\nchannel = \"brand\"\ncampaign = \"^brand\"\n",
            events.display(),
            dir.path().join("out").display()
        ),
    )
    .unwrap();
    let o = touchpoint(&[
        "run",
        pipeline.to_str().unwrap(),
        "-q",
        "--set",
        "window.days=3650",
        "--run-date",
        "2024-01-02",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = dir.path().join("out/channel_attribution/run_date=2024-01-02/part-0.parquet");
    let (names, rows) = read_parquet(&f);
    let col = |n: &str| names.iter().position(|x| x == n).unwrap();
    let credit = |model: &str, ch: &str| {
        rows.iter()
            .find(|r| r[col("model")].str() == model && r[col("channel")].str() == ch)
            .map(|r| r[col("conversions")].num())
    };
    assert_eq!(credit("first_touch", "brand"), Some(1.0), "the own rule wins over the preset's paid_search");
    assert_eq!(credit("last_touch", "organic_social"), Some(1.0));
    assert_eq!(credit("last_touch", "unassigned"), Some(1.0));
    assert_eq!(credit("last_touch", "direct"), Some(1.0), "a touch without UTM values is direct (GA4)");
    assert_eq!(
        credit("last_touch", "paid_search"),
        Some(0.0),
        "u4's case-insensitive paid_search never converts"
    );
    let (_, q) = read_parquet(&dir.path().join("out/data_quality/run_date=2024-01-02/part-0.parquet"));
    let metric = |m: &str| q.iter().find(|r| r[1].str() == m).unwrap()[2].num();
    assert_eq!(metric("rows_unmatched_channel_rule"), 1.0);
    assert_eq!(metric("conversions"), 3.0);
}

#[test]
fn a_missing_utm_column_and_a_bad_pattern_are_clear_errors() {
    let o = touchpoint(&[
        "attribute",
        "--events",
        sample().to_str().unwrap(),
        "--out",
        "/nonexistent/x",
        "-q",
        "--set",
        "channel_rules.preset=\"ga4\"",
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("utm_source") && err.contains("events.parquet"), "{err}");
    let o = touchpoint(&[
        "attribute",
        "--events",
        sample().to_str().unwrap(),
        "--out",
        "/nonexistent/x",
        "-q",
        "--set",
        "channel_rules.rules=[{channel = \"x\", source = \"(\"}]",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(78), "{err}");
    assert!(err.contains("channel rule 1 (`x`): bad pattern `(`"), "{err}");
}
