//! `report.html` in a real browser: Debian's Chromium, headless (installed by this test when
//! missing). The page must render without console messages or script errors, its charts
//! must exist, and the numbers in its DOM must equal the tables'.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium, installed from Debian's packages when missing (the test set-up of the README's
/// test command; needs root, as on CI).
fn chromium() -> &'static str {
    // One installation at a time: the tests of this file run in parallel, dpkg takes a lock.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if !Path::new(CHROMIUM).exists() {
        assert!(
            apt_install("chromium") && Path::new(CHROMIUM).exists(),
            "could not install Debian's chromium for the browser test"
        );
    }
    CHROMIUM
}

/// Load a page headless: (the DOM after scripts ran, the console lines it logged).
fn load(page: &Path, extra: &[&str]) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (String::from_utf8_lossy(&o.stdout).into_owned(), console)
}

fn attr_values<'a>(dom: &'a str, attr: &str) -> Vec<&'a str> {
    let key = format!("{attr}=\"");
    dom.match_indices(&key)
        .map(|(i, _)| {
            let rest = &dom[i + key.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

fn sample_report(dir: &Path) -> PathBuf {
    let out = dir.join("o");
    let spend = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-data/spend.csv");
    let o = touchpoint(&[
        "attribute",
        "--events",
        sample().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--spend",
        spend.to_str().unwrap(),
        "--channel-group",
        "social=facebook,instagram,tiktok",
        "--channel-group",
        "search=paid_search,organic_search",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn the_report_renders_without_console_errors_and_its_numbers_equal_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let out = sample_report(dir.path());
    let (dom, console) = load(&out.join("report.html"), &["--dump-dom"]);
    assert!(console.is_empty(), "console output: {console:#?}");
    assert!(dom.contains("data-ready=\"1\""), "the page's script did not run");
    for chart in ["grouped-bars", "dot-intervals", "stacked-bars", "histogram", "transition-graph"] {
        assert!(dom.contains(&format!("class=\"chart {chart}\"")), "no {chart} chart");
    }
    assert!(dom.matches("class=\"whisker\"").count() > 20, "interval whiskers are drawn");

    // Every credit cell equals channel_attribution.
    let (names, rows) = read_parquet(&out.join("channel_attribution.parquet"));
    let col = |n: &str| names.iter().position(|x| x == n).unwrap();
    let models = attr_values(&dom, "data-model");
    let channels = attr_values(&dom, "data-channel");
    let values = attr_values(&dom, "data-conversions");
    assert_eq!(models.len(), rows.len(), "one cell per (model, channel) row");
    for r in &rows {
        let (m, ch, c) = (r[col("model")].str(), r[col("channel")].str(), r[col("conversions")].num());
        let i = (0..models.len())
            .find(|&i| models[i] == m && channels[i] == ch)
            .unwrap_or_else(|| panic!("{m} {ch}"));
        let shown: f64 = values[i].parse().unwrap();
        assert!((shown - c).abs() <= 1e-9 * c.abs().max(1.0), "{m} {ch}: page {shown} vs table {c}");
    }
    // The conversions KPI equals data_quality; the statements are group_comparison's.
    let kpi = dom.split("data-kpi=\"conversions\" data-value=\"").nth(1).unwrap();
    let kpi: f64 = kpi[..kpi.find('"').unwrap()].parse().unwrap();
    assert_eq!(kpi, quality(&out)["conversions"]);
    let (names, rows) = read_parquet(&out.join("group_comparison.parquet"));
    let col = |n: &str| names.iter().position(|x| x == n).unwrap();
    let markov: Vec<_> = rows.iter().filter(|r| r[col("model")].str() == "markov").collect();
    assert_eq!(attr_values(&dom, "data-verdict").len(), markov.len());
    for r in markov {
        let statement = r[col("statement")].str();
        assert!(dom.contains(statement), "missing statement: {statement}");
    }
}

#[test]
fn the_browser_check_sees_a_console_error_and_a_script_error() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    std::fs::write(&page, "<html><body><script>console.error('boom'); notDefined();</script></body></html>")
        .unwrap();
    let (_, console) = load(&page, &["--dump-dom"]);
    assert!(console.iter().any(|l| l.contains("boom")), "{console:?}");
    assert!(console.iter().any(|l| l.contains("Uncaught ReferenceError")), "{console:?}");
}

#[test]
fn a_scheduled_run_publishes_its_page_with_the_change_since_the_previous_night() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nightly");
    for d in ["2024-02-14", "2024-02-15"] {
        let o = touchpoint(&[
            "run",
            "pipelines/sample_nightly.toml",
            "--run-date",
            d,
            "-q",
            "--set",
            &format!("output.root={}", root.display()),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let first = std::fs::read_to_string(root.join("report/run_date=2024-02-14/report.html")).unwrap();
    assert!(!first.contains("id=\"night\""), "the first night has nothing to compare with");
    let (dom, console) = load(&root.join("report/run_date=2024-02-15/report.html"), &["--dump-dom"]);
    assert!(console.is_empty(), "{console:#?}");
    let night = dom.split("<table id=\"night\">").nth(1).expect("a night-over-night table");
    let night = &night[..night.find("</table>").unwrap()];
    // One row per channel; the previous night's column is 02-14's Markov credit.
    let f = root.join("channel_attribution/run_date=2024-02-14/part-0.parquet");
    let (names, rows) = read_parquet(&f);
    let col = |n: &str| names.iter().position(|x| x == n).unwrap();
    let markov: Vec<_> = rows
        .iter()
        .filter(|r| r[col("model")].str() == "markov" && r[col("channel")].str() != "(unattributed)")
        .collect();
    assert_eq!(night.matches("<tr><td>").count(), markov.len());
    for r in markov {
        let (ch, c) = (r[col("channel")].str(), r[col("conversions")].num());
        let cell = format!(
            "<tr><td>{ch}</td><td>{}</td>",
            if c.abs() >= 100.0 { format!("{c:.0}") } else { format!("{c:.2}") }
        );
        assert!(night.contains(&cell), "{cell} not in {night}");
    }
}

#[test]
fn the_crm_page_shows_credit_by_segment_equal_to_segment_attribution() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("crm");
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/sample_crm.toml");
    let root = format!("output.root=\"{}\"", out.display());
    let o = touchpoint(&[
        "run",
        pipeline.to_str().unwrap(),
        "--run-date",
        "2024-02-29",
        "--set",
        &root,
        "--set",
        "models.bootstrap_replicates=20",
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let page = out.join("report/run_date=2024-02-29/report.html");
    let (dom, console) = load(&page, &["--dump-dom"]);
    assert!(console.is_empty(), "console output: {console:#?}");
    assert!(dom.contains("data-ready=\"1\"") && dom.contains("id=\"sources\""));
    let (segs, chans, vals) = (
        attr_values(&dom, "data-segment"),
        attr_values(&dom, "data-seg-channel"),
        attr_values(&dom, "data-seg-conversions"),
    );
    let (_, rows) = read_parquet(&out.join("segment_attribution/run_date=2024-02-29/part-0.parquet"));
    // The page names the largest channels, then `other`, then `(unattributed)`: each cell
    // equals the table's row, or the sum of the channels it does not name.
    let named: Vec<&str> = chans.iter().copied().filter(|c| *c != "other").collect();
    assert!(chans.contains(&"other") && chans.contains(&"(unattributed)"));
    for i in 0..segs.len() {
        let want: f64 = rows
            .iter()
            .filter(|r| r[3].str() == "markov" && r[2].str() == segs[i])
            .filter(
                |r| if chans[i] == "other" { !named.contains(&r[4].str()) } else { r[4].str() == chans[i] },
            )
            .map(|r| r[5].num())
            .sum();
        let shown: f64 = vals[i].parse().unwrap();
        let (seg, ch) = (segs[i], chans[i]);
        assert!(
            (shown - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{seg} {ch}: page {shown} vs table {want}"
        );
    }
    assert_eq!(segs.len(), 6 * 8, "six segments (four CRM segments, new, returning) × eight parts");
}
