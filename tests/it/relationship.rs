//! The whole customer relationship (`docs/sources.md`): several sources, a conversions
//! table, the identity map, conversion-type lookbacks, segments, the time zone, erasure and
//! restatement. Each answer comes from an independent source: a log merged by hand, a
//! journey cut by hand, or an invariant (segments sum to the totals).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::common::*;

fn write_csv(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn ok(o: &std::process::Output) {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn us(day: i64, h: i64) -> i64 {
    // 2024-01-01T00:00Z + day days + h hours
    1_704_067_200_000_000 + day * 86_400_000_000 + h * 3_600_000_000
}

fn ts_series(name: &str, v: Vec<i64>) -> Column {
    Column::new(name.into(), v).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).unwrap()
}

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Web touches under cookies, calls under CRM ids, orders (one exported twice) apart.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let mut web = DataFrame::new_infer_height(vec![
            Column::new("user_id".into(), ["ck1", "ck1", "ck2", "ck3", "ck3", "ck2"]),
            ts_series("ts", vec![us(1, 0), us(2, 0), us(1, 5), us(3, 0), us(4, 0), us(6, 0)]),
            Column::new("channel".into(), ["email", "search", "social", "search", "search", "email"]),
            Column::new("event".into(), ["touch", "touch", "touch", "touch", "conversion", "touch"]),
            Column::new("revenue".into(), [0.0, 0.0, 0.0, 0.0, 40.0, 0.0]),
        ])
        .unwrap();
        write_events(&p.join("web.parquet"), &mut web);
        let calls = [(100, us(2, 6)), (200, us(6, 1)), (300, us(5, 0))];
        let mut text = String::from("crm_id,called_at\n");
        for (id, t) in calls {
            text.push_str(&format!("{id},{}\n", iso(t)));
        }
        write_csv(&p.join("calls.csv"), &text);
        let orders = [
            ("O1", "100", us(3, 0), "purchase", 50.0),
            ("O1", "100", us(3, 1), "purchase", 50.0),
            ("O2", "200", us(7, 0), "lead", 0.0),
            ("O3", "300", us(5, 2), "purchase", 25.0),
        ];
        let mut text = String::from("order_id,customer_ref,ordered_at,type,amount\n");
        for (id, who, t, kind, v) in orders {
            text.push_str(&format!("{id},{who},{},{kind},{v}\n", iso(t)));
        }
        write_csv(&p.join("orders.csv"), &text);
        write_csv(&p.join("identity.csv"), "alias_id,person_id\nck1,100\nck2,200\n");
        Fixture { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn staged_args(&self) -> Vec<String> {
        [
            "--events",
            &self.path("web.parquet"),
            "--source",
            &format!("call_centre={},user=crm_id,time=called_at,channel=phone", self.path("calls.csv")),
            "--conversions",
            &self.path("orders.csv"),
            "--identity-map",
            &self.path("identity.csv"),
            "--set",
            "conversions.user=\"customer_ref\"",
            "--set",
            "conversions.time=\"ordered_at\"",
            "--set",
            "conversions.id=\"order_id\"",
            "--set",
            "conversions.type=\"type\"",
            "--set",
            "conversions.value=\"amount\"",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// `attribute` over the staged sources into `out`, with more flags.
    fn attribute(&self, out: &Path, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["attribute".to_owned(), "--out".into(), out.to_string_lossy().into_owned()];
        args.extend(self.staged_args());
        args.extend(extra.iter().map(|x| x.to_string()));
        touchpoint(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The same events merged by hand: persons instead of aliases, calls as `phone`
    /// touches, the orders once each as conversions without a channel.
    fn merged(&self) -> PathBuf {
        let rows: Vec<(&str, i64, Option<&str>, &str, f64)> = vec![
            ("100", us(1, 0), Some("email"), "touch", 0.0),
            ("100", us(2, 0), Some("search"), "touch", 0.0),
            ("200", us(1, 5), Some("social"), "touch", 0.0),
            ("ck3", us(3, 0), Some("search"), "touch", 0.0),
            ("ck3", us(4, 0), Some("search"), "conversion", 40.0),
            ("200", us(6, 0), Some("email"), "touch", 0.0),
            ("100", us(2, 6), Some("phone"), "touch", 0.0),
            ("200", us(6, 1), Some("phone"), "touch", 0.0),
            ("300", us(5, 0), Some("phone"), "touch", 0.0),
            ("100", us(3, 0), None, "conversion", 50.0),
            ("200", us(7, 0), None, "conversion", 0.0),
            ("300", us(5, 2), None, "conversion", 25.0),
        ];
        let mut df = DataFrame::new_infer_height(vec![
            Column::new("user_id".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ts_series("ts", rows.iter().map(|r| r.1).collect()),
            Column::new("channel".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            Column::new("event".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
            Column::new("revenue".into(), rows.iter().map(|r| r.4).collect::<Vec<_>>()),
        ])
        .unwrap();
        let path = self.dir.path().join("merged.parquet");
        write_events(&path, &mut df);
        path
    }
}

// time_decay records the journeys, as a run with sources always does (channel_roles then
// has its days and touches to conversion).
const MODELS: [&str; 4] =
    ["--models", "first_touch,last_touch,linear,time_decay,markov,shapley", "--bootstrap", "0"];

#[test]
fn two_sources_and_a_conversions_table_equal_one_log_merged_by_hand() {
    let f = Fixture::new();
    let (a, b) = (f.dir.path().join("a"), f.dir.path().join("b"));
    ok(&f.attribute(&a, &MODELS));
    ok(&attribute_events(&f.merged(), &b, &MODELS));
    for t in ["channel_attribution", "channel_roles", "path_summary", "journey_timing", "markov_transitions"]
    {
        let file = format!("{t}.parquet");
        assert_eq!(read_parquet(&a.join(&file)), read_parquet(&b.join(&file)), "{t} differs");
    }
    let q = quality(&a);
    assert_eq!(q["conversions"], 4.0, "O1 counts once");
    assert_eq!(q["duplicate_conversion_ids"], 1.0);
    assert_eq!(q["ids_mapped"], 2.0, "ck1 and ck2");
    assert_eq!(q["ids_unmapped"], 4.0, "ck3 and the CRM ids 100, 200, 300");
    assert_eq!(q["ids_conflicting"], 0.0);
    assert_eq!(q["rows_read"], 6.0 + 3.0 + 4.0);
    let (cols, rows) = read_parquet(&a.join("source_quality.parquet"));
    assert_eq!(
        cols,
        [
            "source",
            "rows_read",
            "rows_rejected",
            "rows_without_consent",
            "duplicate_conversions",
            "rows_kept"
        ]
    );
    let got: Vec<(String, f64, f64, f64)> =
        rows.iter().map(|r| (r[0].str().to_owned(), r[1].num(), r[4].num(), r[5].num())).collect();
    assert_eq!(
        got,
        [
            ("events".into(), 6.0, 0.0, 6.0),
            ("call_centre".into(), 3.0, 0.0, 3.0),
            ("conversions".into(), 4.0, 1.0, 3.0)
        ]
    );
    // Touches per source add up to the log's touches.
    let (_, rows) = read_parquet(&a.join("source_channel_touches.parquet"));
    let phone: f64 = rows.iter().filter(|r| r[0].str() == "call_centre").map(|r| r[2].num()).sum();
    let all: f64 = rows.iter().map(|r| r[2].num()).sum();
    assert_eq!((phone, all), (3.0, 9.0));
}

#[test]
fn journey_credit_carries_the_conversion_id_and_type() {
    let f = Fixture::new();
    let out = f.dir.path().join("jc");
    ok(&f.attribute(&out, &["--journey-credit", "--models", "last_touch", "--bootstrap", "0"]));
    let (cols, rows) = read_parquet(&out.join("journey_credit.parquet"));
    let at = |n: &str| cols.iter().position(|c| c == n).unwrap();
    let got: BTreeSet<(String, String, String)> = rows
        .iter()
        .filter(|r| r[at("credit")].num() > 0.0)
        .map(|r| {
            (
                r[at("conversion_id")].clone(),
                r[at("conversion_type")].clone(),
                r[at("channel")].str().to_owned(),
            )
        })
        .map(|(i, t, c)| (format!("{i:?}"), format!("{t:?}"), c))
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        ("Str(\"O1\")", "Str(\"purchase\")", "phone"),
        ("Str(\"O2\")", "Str(\"lead\")", "phone"),
        ("Str(\"O3\")", "Str(\"purchase\")", "phone"),
        ("Null", "Null", "search"),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    .into();
    assert_eq!(got, want);
}

#[test]
fn an_alias_of_two_persons_at_once_stays_its_own_person_and_is_counted() {
    let f = Fixture::new();
    // ck2 belongs to 200, and also to 100 from day 6: its day-6 touch is a conflict.
    write_csv(
        &f.dir.path().join("identity.csv"),
        &format!("alias_id,person_id,valid_from\nck1,100,\nck2,200,\nck2,100,{}\n", iso(us(6, 0))),
    );
    let out = f.dir.path().join("c");
    let raw = ["--set", "output.person_ids=\"raw\"", "--set", "identity.valid_from=\"valid_from\""];
    ok(&f.attribute(
        &out,
        &[&["--journey-credit", "--models", "linear", "--bootstrap", "0"][..], &raw].concat(),
    ));
    let q = quality(&out);
    assert_eq!((q["ids_mapped"], q["ids_conflicting"]), (1.0, 1.0), "ck1 mapped; ck2 conflicting");
    // Person 200's lead (day 7) has only the call of day 6: the conflicting email touch
    // stayed under ck2, and ck2's day-1 touch (mapped) is 6 days old, within the lookback.
    let (cols, rows) = read_parquet(&out.join("journey_credit.parquet"));
    let (u, c, k) = (
        cols.iter().position(|x| x == "user_id").unwrap(),
        cols.iter().position(|x| x == "channel").unwrap(),
        cols.iter().position(|x| x == "conversion_id").unwrap(),
    );
    let lead: BTreeSet<(String, String)> = rows
        .iter()
        .filter(|r| r[k] == Cell::Str("O2".into()))
        .map(|r| (r[u].str().to_owned(), r[c].str().to_owned()))
        .collect();
    assert_eq!(
        lead,
        [("200".to_owned(), "phone".to_owned()), ("200".to_owned(), "social".to_owned())].into()
    );
}

#[test]
fn conversion_types_have_their_own_lookbacks() {
    // One person: email d0, search d50, a lead d60; video d62, display d95, a purchase d100.
    let dir = tempfile::tempdir().unwrap();
    let ev = [
        (0, "email", "touch", None),
        (50, "search", "touch", None),
        (60, "search", "conversion", Some("lead")),
        (62, "video", "touch", None),
        (95, "display", "touch", None),
        (100, "display", "conversion", Some("purchase")),
    ];
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("user_id".into(), vec!["p"; ev.len()]),
        ts_series("ts", ev.iter().map(|e| us(e.0, 0)).collect()),
        Column::new("channel".into(), ev.iter().map(|e| e.1).collect::<Vec<_>>()),
        Column::new("event".into(), ev.iter().map(|e| e.2).collect::<Vec<_>>()),
        Column::new("kind".into(), ev.iter().map(|e| e.3).collect::<Vec<_>>()),
        Column::new("revenue".into(), vec![1.0; ev.len()]),
    ])
    .unwrap();
    let events = dir.path().join("e.parquet");
    write_events(&events, &mut df);
    let out = dir.path().join("o");
    ok(&touchpoint(&[
        "attribute",
        "--events",
        events.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--conversion-type-col",
        "kind",
        "--lookback-days",
        "5",
        "--lookback-by-conversion-type",
        "lead=90,purchase=30",
        "--models",
        "linear",
        "--bootstrap",
        "0",
    ]));
    let (_, rows) = read_parquet(&out.join("path_summary.parquet"));
    let paths: BTreeSet<String> = rows.iter().map(|r| r[0].str().to_owned()).collect();
    // The lead reaches back 90 days (email, search and its own touch); the purchase 30
    // (video, 38 days old, expired).
    assert_eq!(paths, ["email > search > search".to_owned(), "display > display".to_owned()].into());
    assert_eq!(quality(&out)["expired_touches"], 1.0);
}

#[test]
fn a_time_zone_moves_a_late_evening_conversion_into_the_next_day() {
    let dir = tempfile::tempdir().unwrap();
    // 2024-02-01 23:30 UTC is 2024-02-02 00:30 in Rome (UTC+1 in winter).
    let t = us(31, 23) + 30 * 60_000_000;
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("user_id".into(), ["a", "a"]),
        ts_series("ts", vec![t - 3_600_000_000, t]),
        Column::new("channel".into(), ["email", "email"]),
        Column::new("event".into(), ["touch", "conversion"]),
        Column::new("revenue".into(), [0.0, 10.0]),
    ])
    .unwrap();
    let events = dir.path().join("e.parquet");
    write_events(&events, &mut df);
    let conversions = |date: &str, tz: &str| -> f64 {
        let out = dir.path().join(format!("{date}-{}", tz.replace('/', "_")));
        ok(&touchpoint(&[
            "attribute",
            "--events",
            events.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--run-date",
            date,
            "--timezone",
            tz,
            "--models",
            "last_touch",
            "--bootstrap",
            "0",
        ]));
        let part = out.join("data_quality").join(format!("run_date={date}")).join("part-0.parquet");
        let (_, rows) = read_parquet(&part);
        rows.iter().find(|r| r[1].str() == "conversions").unwrap()[2].num()
    };
    assert_eq!(conversions("2024-02-01", "UTC"), 1.0);
    assert_eq!(conversions("2024-02-02", "UTC"), 0.0);
    assert_eq!(conversions("2024-02-01", "Europe/Rome"), 0.0);
    assert_eq!(conversions("2024-02-02", "Europe/Rome"), 1.0);
    let bad = touchpoint(&["attribute", "--events", "x.parquet", "--out", "o", "--timezone", "Mars/Olympus"]);
    assert_eq!(bad.status.code(), Some(78));
}

fn crm_pipeline() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/sample_crm.toml")
}

fn run_crm(out: &Path, extra: &[&str]) -> std::process::Output {
    let pipeline = crm_pipeline();
    let mut args = vec!["run", pipeline.to_str().unwrap(), "--run-date", "2024-02-29"];
    let root = format!("output.root=\"{}\"", out.display());
    args.extend(["--set", &root, "--set", "models.bootstrap_replicates=0"]);
    args.extend(extra);
    let o = touchpoint(&args);
    ok(&o);
    o
}

fn partition(out: &Path, table: &str) -> PathBuf {
    out.join(table).join("run_date=2024-02-29").join("part-0.parquet")
}

#[test]
fn segments_sum_to_the_totals_and_name_the_pooled_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("crm");
    run_crm(&out, &[]);
    let (_, q) = read_parquet(&partition(&out, "data_quality"));
    let metric = |m: &str| q.iter().find(|r| r[1].str() == m).unwrap()[2].num();
    let (conv, value) = (metric("conversions"), metric("conversion_value"));
    let (cols, rows) = read_parquet(&partition(&out, "segment_attribution"));
    assert_eq!(
        cols,
        ["run_date", "segmentation", "segment", "model", "channel", "conversions", "value", "fit"]
    );
    let mut sums: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    let mut fits: BTreeMap<(String, String, String), String> = BTreeMap::new();
    let mut seg_conv: BTreeMap<(String, String), f64> = BTreeMap::new();
    for r in &rows {
        let e = sums.entry((r[1].str().into(), r[3].str().into())).or_default();
        e.0 += r[5].num();
        e.1 += r[6].num();
        fits.insert((r[1].str().into(), r[2].str().into(), r[3].str().into()), r[7].str().into());
        if r[3].str() == "last_touch" {
            *seg_conv.entry((r[1].str().into(), r[2].str().into())).or_default() += r[5].num();
        }
    }
    assert_eq!(sums.len(), 2 * 8, "two segmentations × eight models");
    for ((seg, model), (c, v)) in &sums {
        assert!((c - conv).abs() < 1e-6 && (v - value).abs() < 1e-6 * value, "{seg}/{model}: {c} {v}");
    }
    // Below segments.min_conversions (150) the fitted models take the pooled fit, named.
    let mut pooled = 0;
    for ((seg, name), n) in &seg_conv {
        let want = if *n < 150.0 { "pooled" } else { "segment" };
        pooled += usize::from(want == "pooled");
        assert_eq!(fits[&(seg.clone(), name.clone(), "markov".into())], want, "{seg}/{name}: {n}");
        assert_eq!(fits[&(seg.clone(), name.clone(), "shapley".into())], want);
        assert_eq!(fits[&(seg.clone(), name.clone(), "linear".into())], "rules");
    }
    assert!(pooled >= 1, "the sample has a segment below the threshold");
    totals_agree_across_tables(&out, metric("converting_journeys") - metric("unattributed_conversions"));
    journey_credit_agrees_with_segments(&out, &rows);
}

/// `journey_credit`'s segment and customer status per journey, summed for a rule-based
/// model, give `segment_attribution`'s rows (journey by journey against the pooled split).
fn journey_credit_agrees_with_segments(out: &Path, seg_rows: &[Vec<Cell>]) {
    let (cols, rows) = read_parquet(&partition(out, "journey_credit"));
    let at = |n: &str| cols.iter().position(|c| c == n).unwrap();
    for (segmentation, column) in [("segment", "segment"), ("customer_status", "customer_status")] {
        let mut got: BTreeMap<(String, String), f64> = BTreeMap::new();
        for r in rows.iter().filter(|r| r[at("model")].str() == "last_touch") {
            *got.entry((r[at(column)].str().to_owned(), r[at("channel")].str().to_owned())).or_default() +=
                r[at("credit")].num();
        }
        for r in seg_rows.iter().filter(|r| r[1].str() == segmentation && r[3].str() == "last_touch") {
            if r[4].str() == "(unattributed)" {
                continue;
            }
            let g = got.get(&(r[2].str().to_owned(), r[4].str().to_owned())).copied().unwrap_or(0.0);
            assert!(
                (g - r[5].num()).abs() < 1e-9,
                "{segmentation} {} {}: {g} vs {}",
                r[2].str(),
                r[4].str(),
                r[5].num()
            );
        }
    }
}

/// The same totals seen from every table that carries them: segments partition the
/// journeys, and the sources' touches add up to the path table's.
fn totals_agree_across_tables(out: &Path, attributed: f64) {
    let (_, roles) = read_parquet(&partition(out, "channel_roles"));
    let (_, seg) = read_parquet(&partition(out, "segment_roles"));
    for segmentation in ["segment", "customer_status"] {
        for r in &roles {
            let ch = r[1].str();
            let rows = seg.iter().filter(|x| x[1].str() == segmentation && x[3].str() == ch);
            let (j, c) = rows.fold((0.0, 0.0), |(j, c), x| (j + x[4].num(), c + x[5].num()));
            assert_eq!((j, c), (r[2].num(), r[3].num()), "{segmentation} {ch}: journeys, converting");
        }
    }
    let (_, src) = read_parquet(&partition(out, "source_channel_touches"));
    let sum = |k: usize| src.iter().map(|r| r[k].num()).sum::<f64>();
    assert_eq!((sum(5), sum(6)), (attributed, attributed), "each attributed journey opens and closes once");
    let (_, paths) = read_parquet(&partition(out, "path_summary"));
    let touches: f64 = paths.iter().map(|r| r[2].num() * r[3].num()).sum();
    assert_eq!(sum(4), touches, "touches of converting journeys");
}

/// Every id of the CRM export and the web log that a run could leak.
fn raw_ids() -> BTreeSet<String> {
    let crm = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data/crm");
    let mut ids = BTreeSet::new();
    for (file, cols) in [
        ("identity_map.csv", 2),
        ("calls.csv", 1),
        ("store_visits.csv", 1),
        ("orders.csv", 2),
        ("customers.csv", 1),
    ] {
        let text = std::fs::read_to_string(crm.join(file)).unwrap();
        for line in text.lines().skip(1) {
            for (i, v) in line.split(',').enumerate() {
                if i < cols && (file != "orders.csv" || i == 1) && !v.is_empty() {
                    ids.insert(v.to_owned());
                }
            }
        }
    }
    ids.extend((0..10_000).map(|i| format!("u{i:07}")));
    ids
}

/// Tokens of a text (ids are made of letters, digits and `-`).
fn tokens(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).map(str::to_owned).collect()
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            all_files(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

#[test]
fn no_raw_id_appears_in_any_output_log_or_error() {
    let ids = raw_ids();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("crm");
    let key = [("TOUCHPOINT_PSEUDONYM_KEY", "k-for-the-test")];
    let pipeline = crm_pipeline();
    let args = ["run", pipeline.to_str().unwrap(), "--run-date", "2024-02-29", "-v"];
    let root = format!("output.root=\"{}\"", out.display());
    let mut argv = args.to_vec();
    argv.extend([
        "--set",
        &root,
        "--set",
        "output.person_ids=\"pseudonymized\"",
        "--set",
        "models.bootstrap_replicates=20",
    ]);
    let o = touchpoint_env(&argv, &key);
    ok(&o);
    let mut texts = vec![
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    ];
    // An error about a row: on_invalid_rows = fail names the file and the row, not the id.
    let mut failing = argv.clone();
    failing.extend(["--set", "journeys.on_invalid_rows=\"fail\""]);
    let bad = touchpoint_env(&failing, &key);
    assert_eq!(bad.status.code(), Some(65));
    let msg = String::from_utf8_lossy(&bad.stdout).into_owned();
    assert!(msg.contains("calls.csv") && msg.contains("called_at") && msg.contains("row 17"), "{msg}");
    texts.push(msg);
    texts.push(String::from_utf8_lossy(&bad.stderr).into_owned());
    let mut files = Vec::new();
    all_files(&out, &mut files);
    let mut cells = 0;
    for f in &files {
        if f.extension().is_some_and(|e| e == "parquet") {
            let (_, rows) = read_parquet(f);
            for c in rows.iter().flatten() {
                if let Cell::Str(s) = c {
                    cells += 1;
                    assert!(!ids.contains(s), "a raw id in {}", f.display());
                }
            }
        } else {
            texts.push(String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned());
        }
    }
    assert!(cells > 1000, "the tables were read ({cells} text cells)");
    for t in &texts {
        let leaked: Vec<&String> = tokens(t).iter().filter_map(|w| ids.get(w)).collect();
        assert!(leaked.is_empty(), "raw ids leaked: {leaked:?}");
    }
}

/// The sample CRM export without one person, rebuilt by hand: every row of their ids
/// (CRM id, cookie) removed from every file, as if they had never been a customer.
fn without_person(dir: &Path, person: &str, cookie: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crm = dir.join("crm");
    std::fs::create_dir_all(&crm).unwrap();
    for f in ["calls.csv", "store_visits.csv", "orders.csv", "customers.csv", "identity_map.csv"] {
        let text = std::fs::read_to_string(root.join("sample-data/crm").join(f)).unwrap();
        let kept: Vec<&str> =
            text.lines().filter(|l| !l.split(',').any(|v| v == person || v == cookie)).collect();
        std::fs::write(crm.join(f), kept.join("\n") + "\n").unwrap();
    }
    let mut web = LazyFrame::scan_parquet(PlRefPath::new(sample().to_str().unwrap()), Default::default())
        .unwrap()
        .filter(col("user_id").neq(lit(cookie)))
        .collect()
        .unwrap();
    write_events(&dir.join("events.parquet"), &mut web);
    let toml = std::fs::read_to_string(crm_pipeline()).unwrap().replace("../sample-data/", "");
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, toml).unwrap();
    p
}

#[test]
fn a_rerun_after_an_erasure_equals_a_run_on_data_that_never_held_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let (erased, never) = (dir.path().join("erased"), dir.path().join("never"));
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data/crm/erasure_request.csv");
    // C00042 is web user u0000127 (cookie of person i is u{3i+1}).
    run_crm(&erased, &["--set", &format!("input.erasure_list=\"{}\"", list.display())]);
    let pipeline = without_person(dir.path(), "C00042", "u0000127");
    let root = format!("output.root=\"{}\"", never.display());
    ok(&touchpoint(&[
        "run",
        pipeline.to_str().unwrap(),
        "--run-date",
        "2024-02-29",
        "--set",
        &root,
        "--set",
        "models.bootstrap_replicates=0",
    ]));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    all_files(&erased, &mut a);
    all_files(&never, &mut b);
    let tables = |v: &[PathBuf], root: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        v.iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet") && !p.starts_with(".touchpoint"))
            .map(|p| (p.clone(), std::fs::read(root.join(&p)).unwrap()))
            .collect()
    };
    let (ta, tb) = (tables(&a, &erased), tables(&b, &never));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    assert!(ta.len() >= 10);
    for (k, v) in &ta {
        assert!(*v == tb[k], "{} differs after the erasure", k.display());
    }
    // And the erasure did remove something: without the list the person's rows count.
    let full = dir.path().join("full");
    run_crm(&full, &[]);
    assert_ne!(
        std::fs::read(partition(&full, "source_quality")).unwrap(),
        ta[&PathBuf::from("source_quality/run_date=2024-02-29/part-0.parquet")]
    );
}

#[test]
fn restated_dates_are_published_each_as_a_standalone_run_would() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("restate"), dir.path().join("single"));
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/sample_nightly.toml");
    let p = pipeline.to_str().unwrap();
    let set = |root: &Path| format!("output.root=\"{}\"", root.display());
    let (ra, rb) = (set(&a), set(&b));
    let common = ["--set", "models.bootstrap_replicates=0"];
    let mut argv = vec!["run", p, "--run-date", "2024-02-15", "--set", &ra, "--set", "window.restate_days=2"];
    argv.extend(common);
    ok(&touchpoint(&argv));
    let manifest = std::fs::read_to_string(a.join("_manifest/run_date=2024-02-15/_manifest.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(doc["restated"], serde_json::json!(["2024-02-13", "2024-02-14"]));
    for d in ["2024-02-13", "2024-02-14"] {
        let mut argv = vec!["run", p, "--run-date", d, "--set", &rb];
        argv.extend(common);
        ok(&touchpoint(&argv));
        for t in ["channel_attribution", "data_quality", "path_summary"] {
            let part = |root: &Path| root.join(t).join(format!("run_date={d}")).join("part-0.parquet");
            assert_eq!(std::fs::read(part(&a)).unwrap(), std::fs::read(part(&b)).unwrap(), "{t} {d}");
        }
    }
}

#[test]
fn row_order_of_every_source_does_not_change_a_byte() {
    let f = Fixture::new();
    let run = |out: &Path| ok(&f.attribute(out, &[&MODELS[..], &["--journey-credit"]].concat()));
    let (a, b) = (f.dir.path().join("a"), f.dir.path().join("b"));
    run(&a);
    for file in ["calls.csv", "orders.csv", "identity.csv"] {
        let p = f.dir.path().join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[1..].reverse();
        write_csv(&p, &(lines.join("\n") + "\n"));
    }
    run(&b);
    let (fa, fb) = (files(&a), files(&b));
    for (name, bytes) in &fa {
        if name != "manifest.json" {
            assert!(*bytes == fb[name], "{name} depends on the row order");
        }
    }
}

#[test]
fn bad_source_files_name_the_file_and_column_and_never_read_text_as_zero() {
    let f = Fixture::new();
    let p = f.dir.path();
    write_csv(
        &p.join("orders.csv"),
        "order_id,customer_ref,ordered_at,type,amount\nO1,100,2024-01-02T00:00:00Z,purchase,abc\n",
    );
    let o = f.attribute(&p.join("o"), &[]);
    assert_eq!(o.status.code(), Some(65));
    let msg = String::from_utf8_lossy(&o.stdout);
    assert!(msg.contains("orders.csv") && msg.contains("`amount`"), "{msg}");
    // One source, two files, two id types.
    std::fs::create_dir_all(p.join("calls")).unwrap();
    write_csv(&p.join("calls/a.csv"), "crm_id,called_at\n100,2024-01-02T00:00:00Z\n");
    write_csv(&p.join("calls/b.csv"), "crm_id,called_at\nx7,2024-01-02T00:00:00Z\n");
    let calls =
        format!("call_centre={},user=crm_id,time=called_at,channel=phone", p.join("calls/*.csv").display());
    let o =
        touchpoint(&["attribute", "--events", &f.path("web.parquet"), "--out", "unused", "--source", &calls]);
    assert_eq!(o.status.code(), Some(65));
    let msg = String::from_utf8_lossy(&o.stdout);
    assert!(msg.contains("b.csv") && msg.contains("id type differs"), "{msg}");
    assert!(!p.join("o").exists() && !Path::new("unused").exists(), "nothing written");
}

#[test]
fn consent_withdrawn_by_a_person_drops_every_row_of_theirs() {
    // ck1 (person 100) has one row without consent: with consent_scope = "person" all of
    // person 100's rows go, including the calls and orders under the CRM id.
    let f = Fixture::new();
    let p = f.dir.path();
    let mut web = ParquetReader::new(std::fs::File::open(p.join("web.parquet")).unwrap()).finish().unwrap();
    web.with_column(Column::new("ok".into(), [true, false, true, true, true, true])).unwrap();
    write_events(&p.join("web.parquet"), &mut web);
    let out = p.join("person");
    let consent = ["--consent-col", "ok", "--set", "input.consent_scope=\"person\""];
    ok(&f.attribute(&out, &[&MODELS[..], &consent].concat()));
    // By hand: the merged log without person 100.
    let merged = f.merged();
    let mut df = ParquetReader::new(std::fs::File::open(&merged).unwrap()).finish().unwrap();
    df = df.lazy().filter(col("user_id").neq(lit("100"))).collect().unwrap();
    write_events(&merged, &mut df);
    let hand = p.join("hand");
    ok(&attribute_events(&merged, &hand, &MODELS));
    for t in ["channel_attribution", "path_summary"] {
        let file = format!("{t}.parquet");
        assert_eq!(read_parquet(&out.join(&file)), read_parquet(&hand.join(&file)), "{t}");
    }
    // ck1's 2 web rows, the call and the two order rows of person 100.
    assert_eq!(quality(&out)["rows_without_consent"], 5.0);
}

#[test]
fn rule_based_credit_by_an_event_log_segment_adds_up_to_the_channel_table() {
    // A segment column in the event log itself (no staging): each user's tier.
    let dir = tempfile::tempdir().unwrap();
    let mut df = ParquetReader::new(std::fs::File::open(sample()).unwrap()).finish().unwrap();
    let users = df.column("user_id").unwrap().str().unwrap().clone();
    let digit = |u: &str| u.chars().last().and_then(|c| c.to_digit(10)).unwrap_or(0) as usize;
    let tier: Vec<&str> = users.iter().map(|u| ["gold", "silver", "bronze"][digit(u.unwrap()) % 3]).collect();
    df.with_column(Column::new("tier".into(), tier)).unwrap();
    let events = dir.path().join("e.parquet");
    write_events(&events, &mut df);
    let out = dir.path().join("o");
    ok(&touchpoint(&[
        "attribute",
        "--events",
        events.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--segment-col",
        "tier",
        "--customer-status",
        "--models",
        "first_touch,last_touch,linear,position_based,markov",
        "--bootstrap",
        "0",
    ]));
    let (_, pooled) = read_parquet(&out.join("channel_attribution.parquet"));
    let want: BTreeMap<(String, String), f64> =
        pooled.iter().map(|r| ((r[0].str().to_owned(), r[1].str().to_owned()), r[2].num())).collect();
    let (_, seg) = read_parquet(&out.join("segment_attribution.parquet"));
    for segmentation in ["tier", "customer_status"] {
        let mut got: BTreeMap<(String, String), f64> = BTreeMap::new();
        for r in seg.iter().filter(|r| r[0].str() == segmentation) {
            *got.entry((r[2].str().to_owned(), r[3].str().to_owned())).or_default() += r[4].num();
        }
        for ((model, channel), x) in &want {
            let g = got.get(&(model.clone(), channel.clone())).copied().unwrap_or(0.0);
            if model != "markov" {
                assert!((g - x).abs() < 1e-9, "{segmentation} {model} {channel}: {g} vs {x}");
            }
        }
        let total = |m: &str| -> f64 { got.iter().filter(|(k, _)| k.0 == m).map(|(_, v)| v).sum() };
        assert!((total("markov") - total("linear")).abs() < 1e-6, "Markov sums to the totals too");
    }
}

#[test]
fn an_erasure_invalidates_the_training_store_that_held_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let (root, never) = (dir.path().join("root"), dir.path().join("never"));
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data/crm/erasure_request.csv");
    let training = ["--set", "models.training_days=35"];
    // A first night stores training days that hold C00042; the night after the erasure
    // request must not use them.
    run_crm(&root, &training);
    let stores = |r: &Path| -> Vec<String> {
        std::fs::read_dir(r.join("_training"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect()
    };
    let before = stores(&root);
    let erasure = format!("input.erasure_list=\"{}\"", list.display());
    let mut extra = training.to_vec();
    extra.extend(["--set", &erasure]);
    run_crm(&root, &extra);
    let after = stores(&root);
    assert_eq!((before.len(), after.len()), (1, 1));
    assert_ne!(before, after, "a new store, the old one deleted");
    let pipeline = without_person(dir.path(), "C00042", "u0000127");
    let r = format!("output.root=\"{}\"", never.display());
    ok(&touchpoint(&[
        "run",
        pipeline.to_str().unwrap(),
        "--run-date",
        "2024-02-29",
        "--set",
        &r,
        "--set",
        "models.bootstrap_replicates=0",
        "--set",
        "models.training_days=35",
    ]));
    for t in ["channel_attribution", "markov_removal_effects", "data_quality", "segment_attribution"] {
        let part = |x: &Path| std::fs::read(x.join(t).join("run_date=2024-02-29/part-0.parquet")).unwrap();
        assert!(part(&root) == part(&never), "{t} differs from a run on data that never held the person");
    }
}

#[test]
fn source_columns_named_like_touchpoints_own_do_not_collide() {
    let f = Fixture::new();
    let p = f.dir.path();
    // The calls with extra columns named like the staged frame's, and the id and time in
    // columns called `time` and `person`.
    let text = std::fs::read_to_string(p.join("calls.csv")).unwrap();
    let mut out = String::from("time,person,__row,__file,is_conversion,source,channel\n");
    for line in text.lines().skip(1) {
        let (id, t) = line.split_once(',').unwrap();
        out.push_str(&format!("{id},{t},x,y,z,w,v\n"));
    }
    write_csv(&p.join("calls.csv"), &out);
    let odd = format!("call_centre={},user=time,time=person,channel=phone", p.join("calls.csv").display());
    let mut args = f.staged_args();
    args[3] = odd;
    let (a, b) = (p.join("a"), p.join("b"));
    let mut argv = vec!["attribute".to_owned(), "--out".into(), a.to_string_lossy().into_owned()];
    argv.extend(args);
    argv.extend(MODELS.map(str::to_owned));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    ok(&touchpoint(&argv));
    ok(&attribute_events(&f.merged(), &b, &MODELS));
    let file = "channel_attribution.parquet";
    assert_eq!(read_parquet(&a.join(file)), read_parquet(&b.join(file)));
}

#[test]
fn validate_checks_every_source_and_counts_its_rows_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let pipeline = crm_pipeline();
    let root = format!("output.root=\"{}\"", out.display());
    let args = ["validate", pipeline.to_str().unwrap(), "--run-date", "2024-02-29", "--set", &root];
    let o = touchpoint(&args);
    ok(&o);
    let doc: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().last().unwrap()).unwrap();
    let rows: Vec<u64> =
        doc["inputs"].as_array().unwrap().iter().map(|f| f["rows"].as_u64().unwrap()).collect();
    let crm = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data/crm");
    let lines = |f: &str| std::fs::read_to_string(crm.join(f)).unwrap().lines().count() as u64 - 1;
    assert_eq!(rows[1..], [lines("calls.csv"), lines("store_visits.csv"), lines("orders.csv")]);
    assert!(rows[0] > 90_000, "the web log's rows from its footer");
    assert!(!out.exists(), "validate writes nothing");
}

/// `attribute` over one event log into `out`, with more flags.
fn attribute_events(events: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut argv = vec!["attribute", "--events", events.to_str().unwrap(), "--out", out.to_str().unwrap()];
    argv.extend(extra);
    touchpoint(&argv)
}

/// The rules that span persons, through shards: an order id exported for two persons (the
/// earliest kept, whichever shard holds it), an alias of two persons at once, erasure and
/// raw ids in `journey_credit` (`markov_journey` rows split by the merged chain). `--shard` +
/// `merge` writes one run's tables, in every split of the persons (one that puts the two
/// persons of the repeated order apart included); `merge --bounded-memory` the same numbers
/// in every table it writes, `journey_credit` among them.
#[test]
fn rules_across_persons_give_one_runs_tables_through_shards() {
    use touchpoint::core::event_log::shard_of_str;
    let f = Fixture::new();
    let orders = "order_id,customer_ref,ordered_at,type,amount\n".to_owned()
        + &format!("O1,100,{},purchase,50\nO1,100,{},purchase,50\n", iso(us(3, 0)), iso(us(3, 1)))
        + &format!("O2,200,{},lead,0\nO3,300,{},purchase,25\n", iso(us(7, 0)), iso(us(5, 2)))
        + &format!("O3,100,{},purchase,25\n", iso(us(5, 1)));
    write_csv(&f.dir.path().join("orders.csv"), &orders);
    write_csv(
        &f.dir.path().join("identity.csv"),
        &format!("alias_id,person_id,valid_from\nck1,100,\nck2,200,\nck2,100,{}\n", iso(us(6, 0))),
    );
    write_csv(&f.dir.path().join("erase.csv"), "person_id\nck3\n");
    let extra = [
        "--set",
        "identity.valid_from=\"valid_from\"",
        "--set",
        "output.person_ids=\"raw\"",
        "--journey-credit",
        "--set",
        &format!("input.erasure_list=\"{}\"", f.path("erase.csv")),
        "--models",
        "first_touch,last_touch,linear,time_decay,markov,markov_journey,shapley",
        "--bootstrap",
        "20",
    ];
    let one = f.dir.path().join("one");
    ok(&f.attribute(&one, &extra));
    let want = crate::shard::tables_of(&one);
    assert!(want.contains_key("source_quality") && want.contains_key("journey_credit"), "{want:?}");
    let q = quality(&one);
    assert_eq!(q["duplicate_conversion_ids"], 2.0, "O1 once more, and person 300's later O3");
    // Splits where every shard has a person (an empty shard is refused: exit 65) and one
    // that puts persons 100 and 300 apart.
    let persons = ["100", "200", "300", "ck2"];
    let splits: Vec<u32> =
        (2..=6).filter(|&n| (0..n).all(|i| persons.iter().any(|p| shard_of_str(p, n) == i))).collect();
    assert!(splits.iter().any(|&n| shard_of_str("100", n) != shard_of_str("300", n)), "{splits:?}");
    for n in splits {
        let parts: Vec<PathBuf> = (0..n).map(|i| f.dir.path().join(format!("s{n}-{i}"))).collect();
        for (i, p) in parts.iter().enumerate() {
            ok(&f.attribute(p, &[&extra[..], &["--shard", &format!("{i}/{n}")]].concat()));
        }
        let merged = f.dir.path().join(format!("m{n}"));
        let mut args = vec!["merge".to_owned(), "--out".into(), merged.display().to_string()];
        args.extend(parts.iter().map(|p| p.display().to_string()));
        ok(&touchpoint(&args.iter().map(String::as_str).collect::<Vec<_>>()));
        let got = crate::shard::tables_of(&merged);
        assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>(), "{n} shards");
        for (t, file) in &want {
            crate::shard::compare_tables(t, file, &got[t], &format!("{n} shards"));
        }
        let bounded = f.dir.path().join(format!("b{n}"));
        args[2] = bounded.display().to_string();
        args.push("--bounded-memory".into());
        ok(&touchpoint(&args.iter().map(String::as_str).collect::<Vec<_>>()));
        let got = crate::shard::tables_of(&bounded);
        assert!(got.contains_key("journey_credit"), "{n} shards, bounded: {got:?}");
        for (t, file) in &got {
            crate::shard::compare_tables(t, &want[t], file, &format!("{n} shards, bounded"));
        }
    }
}
