//! End to end through the binary: sample data, determinism, formats and bad input.

use std::path::Path;

use crate::common::*;
use polars::prelude::*;

const TABLES: [&str; 8] = [
    "channel_attribution",
    "channel_roles",
    "journey_timing",
    "markov_removal_effects",
    "markov_transitions",
    "shapley_ordered",
    "path_summary",
    "data_quality",
];

fn run_ok(events: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["attribute", "--events", events.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = touchpoint(&args);
    assert!(o.status.success(), "touchpoint failed: {}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last = stdout.lines().last().expect("a JSON summary line");
    let v: serde_json::Value = serde_json::from_str(last).expect("summary is JSON");
    assert!(v["status"].as_str().unwrap().starts_with("ok"));
}

#[test]
fn sample_run_writes_standard_parquet_whose_credits_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run_ok(&sample(), &out, &[]);
    for t in TABLES {
        assert!(out.join(format!("{t}.parquet")).is_file(), "{t} missing");
    }
    let q = quality(&out);
    let conversions = q["conversions"];
    let value = q["conversion_value"];
    assert!(conversions > 100.0, "the sample has conversions");
    assert!(q["unattributed_conversions"] > 0.0, "the sample exercises unattributed conversions");
    assert!(q["expired_touches"] > 0.0);
    assert_eq!(q["rows_read"], q["events"]);

    let (cols, rows) = read_parquet(&out.join("channel_attribution.parquet"));
    assert_eq!(
        cols,
        [
            "model",
            "channel",
            "conversions",
            "value",
            "conversion_share",
            "value_share",
            "conversions_low",
            "conversions_high",
            "value_low",
            "value_high"
        ]
    );
    for model in [
        "first_touch",
        "last_touch",
        "last_non_direct",
        "linear",
        "position_based",
        "time_decay",
        "markov",
        "shapley",
    ] {
        let r: Vec<_> = rows.iter().filter(|r| r[0].str() == model).collect();
        assert!(r.len() >= 10, "{model}: one row per channel");
        let c: f64 = r.iter().map(|r| r[2].num()).sum();
        let v: f64 = r.iter().map(|r| r[3].num()).sum();
        let s: f64 = r.iter().map(|r| r[4].num()).sum();
        assert!((c - conversions).abs() <= 1e-9 * conversions, "{model}: {c} vs {conversions}");
        assert!((v - value).abs() <= 1e-9 * value, "{model}: {v} vs {value}");
        assert!((s - 1.0).abs() <= 1e-9, "{model}: shares sum to {s}");
        assert!(r.iter().any(|r| r[1].str() == "(unattributed)"));
    }

    let (cols, rows) = read_parquet(&out.join("markov_removal_effects.parquet"));
    assert_eq!(cols, ["channel", "removal_effect", "value_removal_effect", "order"]);
    for r in &rows {
        let re = r[1].num();
        assert!((0.0..=1.0).contains(&re));
        assert_eq!(r[3].num(), 1.0);
    }
    let (cols, rows) = read_parquet(&out.join("markov_transitions.parquet"));
    assert_eq!(cols, ["from_state", "to_state", "count", "probability"]);
    // Rows of each from_state sum to probability 1.
    let mut sums = std::collections::BTreeMap::<String, f64>::new();
    for r in &rows {
        *sums.entry(r[0].str().to_owned()).or_default() += r[3].num();
    }
    assert!(sums.contains_key("(start)"));
    for (s, p) in sums {
        assert!((p - 1.0).abs() < 1e-12, "{s}: {p}");
    }
    let (cols, rows) = read_parquet(&out.join("path_summary.parquet"));
    assert_eq!(cols, ["path", "touches", "conversions", "nulls", "value"]);
    let c: f64 = rows.iter().map(|r| r[2].num()).sum();
    assert!((c + q["unattributed_conversions"] - conversions).abs() < 1e-9);
    // Channel roles add up: stage credit to the attributed conversions, first and only
    // touches (one per converting journey) likewise, drop-offs to the non-converting journeys.
    let (cols, rows) = read_parquet(&out.join("channel_roles.parquet"));
    let col =
        |n: &str| -> f64 { rows.iter().map(|r| r[cols.iter().position(|c| c == n).unwrap()].num()).sum() };
    let attributed = conversions - q["unattributed_conversions"];
    assert!((col("early_credit") + col("mid_credit") + col("late_credit") - attributed).abs() < 1e-9);
    assert!((col("first_touch_conversions") + col("only_touch_conversions") - attributed).abs() < 1e-9);
    assert!((col("dropoff_journeys") - q["non_converting_journeys"]).abs() < 1e-9);
    // Timing: both histograms count the attributed converting journeys.
    let (cols, rows) = read_parquet(&out.join("journey_timing.parquet"));
    assert_eq!(cols, ["measure", "bucket", "lower", "upper", "converting_journeys", "share"]);
    for m in ["days_to_conversion", "touches_to_conversion"] {
        let n: f64 = rows.iter().filter(|r| r[0].str() == m).map(|r| r[4].num()).sum();
        assert!((n - attributed).abs() < 1e-9, "{m}: {n} vs {attributed}");
    }
    // P(conversion) from (start) equals the observed rate (the Markov invariant).
    assert!((q["markov_p_conversion"] - q["markov_observed_conversion_rate"]).abs() < 1e-12);

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "ok");
    assert_eq!(manifest["outputs"].as_array().unwrap().len(), TABLES.len() + 1, "the tables and report.html");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<h1>Channel attribution</h1>")
            && html.contains("paid_search")
            && html.contains("(unattributed)")
    );
    let (sha, _) = touchpoint::publish::sha256_file(&out.join("channel_attribution.parquet")).unwrap();
    assert_eq!(manifest["outputs"][0]["sha256"], sha);
}

#[test]
fn reruns_and_shuffled_input_give_byte_identical_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    run_ok(&sample(), &a, &[]);
    run_ok(&sample(), &b, &[]);
    // Shuffle the rows and split them over two files in a directory.
    let mut df = ParquetReader::new(std::fs::File::open(sample()).unwrap()).finish().unwrap();
    let n = df.height() as u32;
    let perm: Vec<u32> = (0..n).map(|i| (i as u64 * 2_654_435_761 % n as u64) as u32).collect();
    let mut sorted = perm.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), n as usize, "the permutation is a bijection");
    let shuffled = df.take(&IdxCa::from_vec("idx".into(), perm)).unwrap();
    let half = shuffled.height() as i64 / 2;
    let shards = dir.path().join("shards");
    std::fs::create_dir_all(shards.join("part=1")).unwrap();
    write_events(&shards.join("part=0.parquet"), &mut shuffled.slice(0, half as usize));
    write_events(&shards.join("part=1/x.parquet"), &mut shuffled.slice(half, shuffled.height()));
    df.rechunk_mut();
    run_ok(&shards, &c, &["-q"]);
    let digest = |d: &Path| {
        let mut f = files(d);
        f.remove("manifest.json");
        f.into_iter().map(|(k, v)| (k, touchpoint::publish::sha256_bytes(&v))).collect::<Vec<_>>()
    };
    assert_eq!(digest(&a), digest(&b), "a rerun is byte-identical");
    // data_quality counts input files (1 vs 2); every other table must be identical.
    let (da, dc) = (digest(&a), digest(&c));
    for ((fa, ha), (fc, hc)) in da.iter().zip(&dc) {
        assert_eq!(fa, fc);
        // data_quality and the report count the input files (1 vs 2).
        if fa != "data_quality.parquet" && fa != "report.html" {
            assert_eq!(ha, hc, "{fa}: row order and file split do not matter");
        }
    }
    let (qa, qc) = (quality(&a), quality(&c));
    for (k, v) in &qa {
        if k != "input_files" {
            assert_eq!(v, &qc[k], "{k}");
        }
    }
    assert_eq!(qc["input_files"], 2.0);
}

/// Rows tied on (user, time, flag, channel, value) that differ only in a tag: two
/// conversions of u1 at day 2, one `gold` and `long`, one `silver` and `short` (a lookback
/// of 1 or 30 days), and two touches of u2 at day 0 on one channel in campaigns `alpha` and
/// `beta`. Forward and reversed, the file gives the same bytes in every table: ties are
/// ordered by every column read, not by the row order (it did before: the attributed
/// conversion's segment and the first touch's campaign followed the file).
#[test]
fn rows_tied_but_for_a_tag_give_the_same_tables_in_any_row_order() {
    let dir = tempfile::tempdir().unwrap();
    let df = DataFrame::new_infer_height(vec![
        Column::new("user_id".into(), ["u1", "u1", "u1", "u2", "u2", "u2"]),
        ts(&[0, 2, 2, 0, 0, 1]),
        Column::new("channel".into(), [Some("search"), None, None, Some("email"), Some("email"), None]),
        Column::new("event".into(), ["touch", "conversion", "conversion", "touch", "touch", "conversion"]),
        Column::new("revenue".into(), [0.0, 10.0, 10.0, 0.0, 0.0, 5.0]),
        Column::new("tier".into(), ["gold", "gold", "silver", "gold", "gold", "gold"]),
        Column::new("camp".into(), ["alpha", "alpha", "alpha", "alpha", "beta", "alpha"]),
        Column::new("ctype".into(), [None, Some("long"), Some("short"), None, None, Some("long")]),
    ])
    .unwrap();
    let n = df.height() as u32;
    let flags = [
        "--segment-col",
        "tier",
        "--campaign-col",
        "camp",
        "--conversion-type-col",
        "ctype",
        "--lookback-by-conversion-type",
        "short=1,long=30",
        "--bootstrap",
        "0",
        "-q",
    ];
    let mut outs = Vec::new();
    for (name, order) in [("forward", (0..n).collect::<Vec<_>>()), ("reversed", (0..n).rev().collect())] {
        let mut rows = df.take(&IdxCa::from_vec("idx".into(), order)).unwrap();
        let file = dir.path().join(format!("{name}.parquet"));
        write_events(&file, &mut rows);
        let out = dir.path().join(name);
        run_ok(&file, &out, &flags);
        let mut f = files(&out);
        f.remove("manifest.json");
        f.remove("report.html");
        outs.push(f);
    }
    assert!(
        outs[0].contains_key("segment_attribution.parquet")
            && outs[0].contains_key("campaign_attribution.parquet")
    );
    for (name, bytes) in &outs[0] {
        assert!(*bytes == outs[1][name], "{name} depends on the row order of tied rows");
    }
}

#[test]
fn csv_format_and_model_selection() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("csv");
    run_ok(&sample(), &out, &["--format", "csv", "--models", "linear,first_touch", "--markov-order", "2"]);
    let text = std::fs::read_to_string(out.join("channel_attribution.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "model,channel,conversions,value,conversion_share,value_share,\
         conversions_low,conversions_high,value_low,value_high"
    );
    assert!(text.contains("\nfirst_touch,"));
    assert!(text.contains("\nlinear,"));
    assert!(!text.contains("markov"));
    // Canonical model order regardless of flag order.
    assert!(text.find("first_touch").unwrap() < text.find("linear").unwrap());
    assert!(!out.join("markov_transitions.csv").exists());
}

struct Bad {
    name: &'static str,
    code: i32,
    column: Option<&'static str>,
}

fn expect_failure(events: &Path, out: &Path, bad: &Bad, extra: &[&str]) {
    let mut args = vec!["attribute", "--events", events.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = touchpoint(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(bad.code), "{}: stderr {stderr}", bad.name);
    let fname = events.file_name().unwrap().to_string_lossy();
    assert!(stderr.contains(&*fname), "{}: message names the file: {stderr}", bad.name);
    if let Some(c) = bad.column {
        assert!(stderr.contains(&format!("`{c}`")), "{}: message names the column: {stderr}", bad.name);
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["exit_code"], bad.code);
}

fn events_df(user: Vec<Option<&str>>, revenue: Vec<Option<f64>>) -> DataFrame {
    let n = user.len();
    let ts = Series::new(
        "ts".into(),
        (0..n as i64).map(|i| 1_700_000_000_000_000 + i * 1_000_000).collect::<Vec<_>>(),
    )
    .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
    .unwrap();
    DataFrame::new_infer_height(vec![
        Column::new("user_id".into(), user),
        ts.into(),
        Column::new("channel".into(), vec!["a"; n]),
        Column::new(
            "event".into(),
            (0..n).map(|i| if i % 2 == 1 { "conversion" } else { "touch" }).collect::<Vec<_>>(),
        ),
        Column::new("revenue".into(), revenue),
    ])
    .unwrap()
}

#[test]
fn bad_input_fails_with_its_exit_code_names_file_and_column_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A previous good run whose outputs must survive every failure below.
    let kept = d.join("kept");
    run_ok(&sample(), &kept, &["-q"]);
    let before = files(&kept);

    let good = events_df(vec![Some("u1"), Some("u1")], vec![None, Some(3.0)]);
    let mut missing = good.clone().drop("channel").unwrap();
    write_events(&d.join("missing_column.parquet"), &mut missing);
    let mut wrong = good.clone();
    wrong.replace("channel", Column::new("channel".into(), [1.5f64, 2.5])).unwrap();
    write_events(&d.join("wrong_type.parquet"), &mut wrong);
    let mut full = events_df(vec![Some("u1"); 200], vec![Some(1.0); 200]);
    write_events(&d.join("full.parquet"), &mut full);
    let bytes = std::fs::read(d.join("full.parquet")).unwrap();
    std::fs::write(d.join("truncated.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(d.join("not_parquet.parquet"), "user_id,ts\nu1,2024-01-01\n").unwrap();
    std::fs::write(d.join("empty.parquet"), "").unwrap();
    let mut null_user = events_df(vec![Some("u1"), None], vec![None, Some(1.0)]);
    write_events(&d.join("null_user.parquet"), &mut null_user);
    let mut negative = events_df(vec![Some("u1"), Some("u1")], vec![None, Some(-2.0)]);
    write_events(&d.join("negative_value.parquet"), &mut negative);
    let mut nan = events_df(vec![Some("u1"), Some("u1")], vec![None, Some(f64::NAN)]);
    write_events(&d.join("nan_value.parquet"), &mut nan);

    let cases = [
        Bad { name: "missing_column.parquet", code: 65, column: Some("channel") },
        Bad { name: "wrong_type.parquet", code: 65, column: Some("channel") },
        Bad { name: "truncated.parquet", code: 65, column: None },
        Bad { name: "not_parquet.parquet", code: 65, column: None },
        Bad { name: "empty.parquet", code: 65, column: None },
        Bad { name: "null_user.parquet", code: 65, column: Some("user_id") },
        Bad { name: "negative_value.parquet", code: 65, column: Some("revenue") },
        Bad { name: "nan_value.parquet", code: 65, column: Some("revenue") },
        Bad { name: "does_not_exist.parquet", code: 66, column: None },
    ];
    for bad in &cases {
        let out = d.join(format!("out_{}", bad.name));
        expect_failure(&d.join(bad.name), &out, bad, &[]);
        assert!(!out.exists(), "{}: nothing written", bad.name);
        expect_failure(&d.join(bad.name), &kept, bad, &[]);
        assert_eq!(files(&kept), before, "{}: previous outputs intact", bad.name);
        let leftovers: Vec<_> = std::fs::read_dir(&kept)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".touchpoint-staging"))
            .collect();
        assert!(leftovers.is_empty(), "{}: no staging left behind", bad.name);
    }

    // Dropping invalid rows instead counts them.
    let out = d.join("dropped");
    run_ok(&d.join("null_user.parquet"), &out, &["--on-invalid-rows", "drop"]);
    assert_eq!(quality(&out)["rows_rejected_null_user_id"], 1.0);
}

#[test]
fn usage_and_configuration_errors_have_their_codes() {
    let o = touchpoint(&["attribute", "--events", "x"]);
    assert_eq!(o.status.code(), Some(2), "missing --out is a usage error");
    let s = sample();
    let o = touchpoint(&[
        "attribute",
        "--events",
        s.to_str().unwrap(),
        "--out",
        "/nonexistent-dir-xyz/o",
        "--models",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown model `nope`"));
    let o = touchpoint(&[
        "attribute",
        "--events",
        s.to_str().unwrap(),
        "--out",
        "/nonexistent-dir-xyz/o",
        "--markov-order",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(78));
}

#[test]
fn generator_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    for p in [&a, &b] {
        let o = touchpoint(&["generate", "--users", "300", "--seed", "9", "--out", p.to_str().unwrap()]);
        assert!(o.status.success());
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn aggregated_path_input_reproduces_the_oracles() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("paths.csv");
    // Fixture B (`common::fixture_b`) plus an empty path (unattributed) and a
    // fractional row, with ChannelAttribution-style spacing.
    std::fs::write(
        &csv,
        "path,conversions,nulls,value\n\
         A > B > A > C,2,1,20\n\
         A,1,3,5\n\
         B>B > C,1,2,30\n\
         C,0,4,0\n\
         D > A,0,2,0\n\
         B > A > A,1,0,12\n\
         ,1,0,7\n",
    )
    .unwrap();
    let out = dir.path().join("o");
    let o = touchpoint(&[
        "attribute",
        "--paths",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out.join("channel_attribution.csv")).unwrap();
    let value_of = |model: &str, ch: &str| -> (f64, f64) {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{model},{ch},")))
            .unwrap_or_else(|| panic!("{model} {ch}"));
        let f: Vec<&str> = line.split(',').collect();
        (f[2].parse().unwrap(), f[3].parse().unwrap())
    };
    let re = [23.0 / 35.0, 233.0 / 650.0, 3.0 / 5.0, 46.0 / 395.0];
    let s: f64 = re.iter().sum();
    for (i, ch) in ["A", "B", "C", "D"].iter().enumerate() {
        assert!((value_of("markov", ch).0 - re[i] / s * 5.0).abs() < 1e-9, "{ch}");
    }
    assert_eq!(value_of("linear", "A").1, 23.0);
    assert_eq!(value_of("first_touch", "(unattributed)"), (1.0, 7.0));
    assert!(!text.contains("time_decay"), "no timestamps, no time decay by default");
    // Asking for time decay explicitly is a configuration error.
    let o = touchpoint(&[
        "attribute",
        "--paths",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--models",
        "time_decay",
    ]);
    assert_eq!(o.status.code(), Some(78));
    // Bad path tables are bad input.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "path,conversions\nA,-1\n").unwrap();
    let o = touchpoint(&["attribute", "--paths", bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`conversions`"));
}

fn campaign_events(path: &Path) {
    let day = 86_400_000_000i64;
    // (user, day, channel, event, revenue, campaign, touch type)
    type Row<'a> = (&'a str, i64, Option<&'a str>, &'a str, Option<f64>, Option<&'a str>, &'a str);
    let rows: Vec<Row> = vec![
        ("u1", 1, Some("search"), "touch", None, Some("brand"), "click"),
        ("u1", 2, Some("social"), "touch", None, Some("spring"), "impression"),
        ("u1", 3, None, "conversion", Some(10.0), None, "click"),
        ("u2", 1, Some("search"), "touch", None, Some("generic"), "click"),
        ("u2", 5, Some("search"), "touch", None, Some("brand"), "click"),
        ("u2", 6, None, "conversion", Some(30.0), None, "click"),
        ("u3", 1, Some("social"), "touch", None, None, "impression"),
    ];
    let ts =
        Series::new("ts".into(), rows.iter().map(|r| 1_700_000_000_000_000 + r.1 * day).collect::<Vec<_>>())
            .cast(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))
            .unwrap();
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("user_id".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        ts.into(),
        Column::new("channel".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        Column::new("event".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
        Column::new("revenue".into(), rows.iter().map(|r| r.4).collect::<Vec<_>>()),
        Column::new("campaign".into(), rows.iter().map(|r| r.5).collect::<Vec<_>>()),
        Column::new("kind".into(), rows.iter().map(|r| r.6).collect::<Vec<_>>()),
    ])
    .unwrap();
    write_events(path, &mut df);
}

#[test]
fn campaign_grain_touch_types_and_journey_credit() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.parquet");
    campaign_events(&events);
    let out = dir.path().join("o");
    run_ok(
        &events,
        &out,
        &[
            "--campaign-col",
            "campaign",
            "--journey-credit",
            "--set",
            "output.person_ids=\"raw\"",
            "--touch-type-col",
            "kind",
            "--lookback-by-type",
            "impression=0.5",
        ],
    );
    // Campaign grain: first touch of u1 is search/brand, of u2 search/generic.
    let (cols, rows) = read_parquet(&out.join("campaign_attribution.parquet"));
    assert_eq!(
        cols,
        [
            "model",
            "channel",
            "campaign",
            "conversions",
            "value",
            "conversion_share",
            "value_share",
            "conversions_low",
            "conversions_high",
            "value_low",
            "value_high"
        ]
    );
    let get = |model: &str, ch: &str, camp: &str| {
        rows.iter()
            .find(|r| r[0].str() == model && r[1].str() == ch && r[2] == Cell::Str(camp.into()))
            .map(|r| (r[3].num(), r[4].num()))
            .unwrap_or_else(|| panic!("{model} {ch} {camp}"))
    };
    assert_eq!(get("first_touch", "search", "brand"), (1.0, 10.0));
    assert_eq!(get("first_touch", "search", "generic"), (1.0, 30.0));
    assert_eq!(get("last_touch", "search", "brand"), (2.0, 40.0));
    // The impression (1 day before the conversion, lookback 0.5 days) has expired.
    assert_eq!(get("linear", "social", "spring"), (0.0, 0.0));
    assert_eq!(get("linear", "social", "(none)").0, 0.0);
    // Per-journey credit: one row per (journey, model, channel); credits add up per model.
    let (cols, rows) = read_parquet(&out.join("journey_credit.parquet"));
    assert_eq!(cols, ["journey_id", "user_id", "conversion_ts", "model", "channel", "credit", "value"]);
    let linear: Vec<_> = rows.iter().filter(|r| r[3].str() == "linear").collect();
    assert_eq!(linear.len(), 2, "u1: search; u2: search (twice, one row)");
    assert_eq!(linear[0][0].str(), "u1#1");
    assert_eq!(linear[1][0].str(), "u2#1");
    assert_eq!((linear[1][5].num(), linear[1][6].num()), (1.0, 30.0));
    let q = quality(&out);
    // u1's impression is 1 day old at the conversion (lookback 0.5 d); u3's lone impression
    // is measured from its own time, so it stays.
    assert_eq!(q["expired_touches"], 1.0);
    assert_eq!(q["non_converting_journeys"], 1.0);
}

/// Also with the replicates' Markov correction step (`markov_replicates = "linear"`): its
/// products run in fixed tiles summed in order.
#[test]
fn the_thread_count_does_not_change_a_byte() {
    let dir = tempfile::tempdir().unwrap();
    let run = |threads: &str, out: &Path, replicates: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_touchpoint"))
            .args(["attribute", "--events", sample().to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"])
            .args(["--markov-order", "3", "--journey-credit"])
            .args(["--set", &format!("models.markov_replicates=\"{replicates}\"")])
            .env("RAYON_NUM_THREADS", threads)
            .env("POLARS_MAX_THREADS", threads)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let strip = |d: &Path| {
        let mut f = files(d);
        f.remove("manifest.json");
        f
    };
    for replicates in ["auto", "linear"] {
        let (one, four) =
            (dir.path().join(format!("one-{replicates}")), dir.path().join(format!("four-{replicates}")));
        run("1", &one, replicates);
        run("4", &four, replicates);
        let (a, b) = (strip(&one), strip(&four));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (k, v) in &a {
            assert!(v == &b[k], "{k} differs between 1 and 4 threads ({replicates})");
        }
    }
}

#[test]
fn spend_adds_cpa_and_roas_per_model() {
    let dir = tempfile::tempdir().unwrap();
    let spend = dir.path().join("spend.csv");
    std::fs::write(
        &spend,
        "channel,spend\npaid_search,3000\nfacebook,1200.5\npaid_search,1000\nnot_in_data,10\n",
    )
    .unwrap();
    let out = dir.path().join("o");
    run_ok(&sample(), &out, &["--spend", spend.to_str().unwrap()]);
    let (cols, rows) = read_parquet(&out.join("channel_attribution.parquet"));
    assert_eq!(&cols[6..9], ["spend", "cpa", "roas"]);
    assert_eq!(&cols[13..], ["cpa_low", "cpa_high", "roas_low", "roas_high"]);
    let mut checked = 0;
    for r in &rows {
        match r[1].str() {
            "paid_search" | "facebook" => {
                let s = if r[1].str() == "paid_search" { 4000.0 } else { 1200.5 };
                assert_eq!(r[6].num(), s, "spend rows of one channel are summed");
                assert!((r[7].num() - s / r[2].num()).abs() < 1e-9, "cpa = spend / credited conversions");
                assert!((r[8].num() - r[3].num() / s).abs() < 1e-12, "roas = credited value / spend");
                checked += 1;
            }
            // Spend without events is listed, not dropped: no credit, no CPA, ROAS 0.
            "not_in_data" => assert_eq!(
                (r[2].num(), &r[6], &r[7], &r[8]),
                (0.0, &Cell::Num(10.0), &Cell::Null, &Cell::Num(0.0))
            ),
            _ => assert_eq!((&r[6], &r[7], &r[8]), (&Cell::Null, &Cell::Null, &Cell::Null)),
        }
    }
    assert_eq!(checked, 18, "two channels × the nine default models");
    assert!(std::fs::read_to_string(out.join("report.html")).unwrap().contains("Cost per acquisition"));
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "channel,spend\nfacebook,-5\n").unwrap();
    let o = touchpoint(&[
        "attribute",
        "--events",
        sample().to_str().unwrap(),
        "--out",
        dir.path().join("x").to_str().unwrap(),
        "--spend",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`spend`"));
}

#[test]
fn integer_user_ids_over_several_files_give_the_same_credits_as_strings() {
    // The sample with each "u0001234" replaced by a wide-ranging integer (negative ones
    // too), rows interleaved over two files so every user spans both.
    let dir = tempfile::tempdir().unwrap();
    let df = ParquetReader::new(std::fs::File::open(sample()).unwrap()).finish().unwrap();
    let names: Vec<String> =
        df.column("user_id").unwrap().str().unwrap().iter().map(|u| u.unwrap().to_owned()).collect();
    let to_int = |u: &str| -> i64 { u[1..].parse::<i64>().unwrap() * 1_000_003 - 5_000_000_000 };
    let ints: Vec<i64> = names.iter().map(|u| to_int(u)).collect();
    let mut int_df = df.clone();
    int_df.with_column(Column::new("user_id".into(), ints)).unwrap();
    let parts = dir.path().join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    let even = BooleanChunked::from_iter_values("m".into(), (0..int_df.height()).map(|i| i % 2 == 0));
    write_events(&parts.join("a.parquet"), &mut int_df.filter(&even).unwrap());
    write_events(&parts.join("b.parquet"), &mut int_df.filter(&!&even).unwrap());
    let (s, i) = (dir.path().join("s"), dir.path().join("i"));
    let raw = ["--journey-credit", "-q", "--set", "output.person_ids=\"raw\""];
    run_ok(&sample(), &s, &raw);
    run_ok(&parts, &i, &raw);
    // User ids are keys: their type does not matter (values are float sums in user order,
    // so equal to rounding).
    for t in ["channel_attribution", "markov_removal_effects", "markov_transitions", "path_summary"] {
        let f = format!("{t}.parquet");
        let ((cs, rs), (ci, ri)) = (read_parquet(&s.join(&f)), read_parquet(&i.join(&f)));
        assert_eq!((&cs, rs.len()), (&ci, ri.len()), "{t}");
        // Intervals resample users by their rank, which differs between string and integer
        // ids ("u10" < "u2" but 2 < 10): compare the point estimates.
        let point = |r: &Vec<Cell>| -> Vec<Cell> {
            r.iter()
                .zip(&cs)
                .filter(|(_, c)| !c.ends_with("_low") && !c.ends_with("_high"))
                .map(|(x, _)| x.clone())
                .collect()
        };
        let (rs, ri): (Vec<_>, Vec<_>) = (rs.iter().map(point).collect(), ri.iter().map(point).collect());
        for (a, b) in rs.iter().flatten().zip(ri.iter().flatten()) {
            match (a, b) {
                (Cell::Num(x), Cell::Num(y)) => {
                    assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{t}: {x} vs {y}")
                }
                _ => assert!(a == b, "{t}: {a:?} vs {b:?}"),
            }
        }
    }
    // Journey credit names the users by their own values.
    let rows = |d: &Path, map: &dyn Fn(&str) -> String| {
        let (_, rows) = read_parquet(&d.join("journey_credit.parquet"));
        let mut v: Vec<String> = rows
            .iter()
            .map(|r| {
                format!("{} {:?} {} {} {:.9}", map(r[1].str()), r[2], r[3].str(), r[4].str(), r[5].num())
            })
            .collect();
        v.sort();
        v
    };
    let from_string = rows(&s, &|u| to_int(u).to_string());
    assert!(!from_string.is_empty());
    assert_eq!(from_string, rows(&i, &|u| u.to_owned()));
}

#[test]
fn the_help_and_the_architecture_list_every_exit_status() {
    use touchpoint::ExitStatus as S;
    // The match is exhaustive: a new status does not compile until it is listed here.
    let user_caused = |s: S| match s {
        S::DataError | S::NoInput | S::IoError | S::TempFail | S::Config => true,
        S::Ok | S::Usage | S::Software => false,
    };
    let all = [S::Ok, S::Usage, S::DataError, S::NoInput, S::Software, S::IoError, S::TempFail, S::Config];
    let o = touchpoint(&["--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for s in all {
        let line = format!("\n  {:<3} ", s.code());
        assert!(help.contains(&line), "--help does not list exit status {}:\n{help}", s.code());
    }
    assert!(help.contains("75  another run holds the output's lock"), "{help}");
    // ARCHITECTURE.md's error line lists the user-caused statuses, in order.
    let arch =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).unwrap();
    let codes: Vec<String> = all.iter().filter(|s| user_caused(**s)).map(|s| s.code().to_string()).collect();
    let listed = format!("({}; 70 = bug)", codes.join("/"));
    assert!(arch.contains(&listed), "ARCHITECTURE.md's error line should read {listed}");
}
