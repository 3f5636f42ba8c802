//! Spend by date, channel and campaign, over the run's period: CPA and ROAS on hand-made
//! numbers, the period rule, channels with spend but no events, one currency per file.

use crate::common::*;
use polars::prelude::*;

/// Two conversions on 2024-02-10 (search: value 30; social: value 10), one on 2024-02-09
/// (search, value 50), each after a touch of its channel the day before.
fn events(dir: &std::path::Path) -> std::path::PathBuf {
    let day = 86_400_000_000i64;
    let feb9 = 19_762 * day;
    let rows = [
        ("u1", feb9 - day, "search", "brand", "touch", 0.0),
        ("u1", feb9 + 3_600_000_000, "search", "brand", "conversion", 50.0),
        ("u2", feb9 + day - 3_600_000_000, "search", "generic", "touch", 0.0),
        ("u2", feb9 + day + 3_600_000_000, "search", "generic", "conversion", 30.0),
        ("u3", feb9, "social", "spring", "touch", 0.0),
        ("u3", feb9 + day + 7_200_000_000, "social", "spring", "conversion", 10.0),
    ];
    let ts: Column = Series::new("ts".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>())
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .unwrap()
        .into();
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("user_id".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        ts,
        Column::new("channel".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        Column::new("campaign".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
        Column::new("event".into(), rows.iter().map(|r| r.4).collect::<Vec<_>>()),
        Column::new("revenue".into(), rows.iter().map(|r| r.5).collect::<Vec<_>>()),
    ])
    .unwrap();
    let p = dir.join("e.parquet");
    write_events(&p, &mut df);
    p
}

fn credit(file: &std::path::Path, model: &str, key: &str) -> (f64, Option<f64>, Option<f64>, Option<f64>) {
    let (cols, rows) = read_parquet(file);
    let at = |n: &str| cols.iter().position(|c| c == n).unwrap();
    let opt = |c: &Cell| match c {
        Cell::Num(x) => Some(*x),
        _ => None,
    };
    let key_col = if cols.contains(&"campaign".to_owned()) { at("campaign") } else { at("channel") };
    let r = rows
        .iter()
        .find(|r| r[at("model")].str() == model && r[key_col] == Cell::Str(key.into()))
        .unwrap_or_else(|| panic!("{model} {key}"));
    (r[at("conversions")].num(), opt(&r[at("spend")]), opt(&r[at("cpa")]), opt(&r[at("roas")]))
}

#[test]
fn dated_spend_follows_the_period_rule_and_lists_channels_without_events() {
    let dir = tempfile::tempdir().unwrap();
    let ev = events(dir.path());
    let spend = dir.path().join("spend.csv");
    std::fs::write(
        &spend,
        "date,channel,campaign,spend,currency\n\
         2024-02-08,search,brand,1000,EUR\n\
         2024-02-09,search,brand,100,EUR\n\
         2024-02-10,search,generic,60,EUR\n\
         2024-02-10,social,spring,40,EUR\n\
         2024-02-10,video,launch,25,EUR\n",
    )
    .unwrap();
    let run = |period: &str, out: &str| {
        let out = dir.path().join(out);
        let o = touchpoint(&[
            "attribute",
            "--events",
            ev.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--campaign-col",
            "campaign",
            "--spend",
            spend.to_str().unwrap(),
            "--run-date",
            "2024-02-10",
            "--spend-period",
            period,
            "--lookback-days",
            "1",
            "--models",
            "last_touch",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    // Window rule: spend of 2024-02-10 only. search: 1 conversion (u2), spend 60, value 30.
    let w = run("window", "w");
    let ch = |o: &std::path::Path| o.join("channel_attribution/run_date=2024-02-10/part-0.parquet");
    assert_eq!(credit(&ch(&w), "last_touch", "search"), (1.0, Some(60.0), Some(60.0), Some(0.5)));
    assert_eq!(credit(&ch(&w), "last_touch", "social"), (1.0, Some(40.0), Some(40.0), Some(0.25)));
    // video spent 25 and brought nothing: listed with no credit, no CPA, ROAS 0.
    assert_eq!(credit(&ch(&w), "last_touch", "video"), (0.0, Some(25.0), None, Some(0.0)));
    // Campaign grain: generic's spend 60 for its conversion.
    let camp = w.join("campaign_attribution/run_date=2024-02-10/part-0.parquet");
    assert_eq!(credit(&camp, "last_touch", "generic"), (1.0, Some(60.0), Some(60.0), Some(0.5)));
    // Timing by hand: u2 converts 2 hours after its touch (0 days); u3's touch is 26 hours old,
    // beyond the 1-day lookback, so its first counted touch is the conversion row itself (a
    // touch, with a channel): 0 days too.
    let (_, rows) = read_parquet(&w.join("journey_timing/run_date=2024-02-10/part-0.parquet"));
    let days = |b: &str| {
        rows.iter().find(|r| r[1].str() == "days_to_conversion" && r[2].str() == b).unwrap()[5].num()
    };
    assert_eq!((days("0"), days("1"), days("2")), (2.0, 0.0, 0.0));
    // Lookback rule (1 day): 2024-02-09 and 2024-02-10, so search's spend is 160.
    let l = run("lookback", "l");
    assert_eq!(credit(&ch(&l), "last_touch", "search").1, Some(160.0));
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(l.join("_manifest/run_date=2024-02-10/_manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["spend_currency"], "EUR");
}

#[test]
fn spend_in_two_currencies_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ev = events(dir.path());
    let spend = dir.path().join("spend.csv");
    std::fs::write(&spend, "channel,spend,currency\nsearch,10,EUR\nsocial,5,USD\n").unwrap();
    let out = dir.path().join("out");
    let o = touchpoint(&[
        "attribute",
        "--events",
        ev.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--spend",
        spend.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(65), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`currency`"));
}
