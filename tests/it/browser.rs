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
    assert_readable(&out.join("report.html"));
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

/// The page laid out in an iframe `width` px wide, measured by a script in the parent: how
/// far it overflows sideways outside its scroll boxes, the smallest text of the charts (HTML
/// labels by their font size, SVG text by its drawn height), and tables outside a scroll box.
fn layout(page: &Path, width: u32) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("at.html");
    let script = r#"
var f = document.getElementById('f');
function measure() {
  var d = f.contentDocument, w = f.contentWindow, vw = d.documentElement.clientWidth;
  var html = [], svg = [];
  d.querySelectorAll('figure.chart .label, figure.chart .value, figure.chart .legend span, td, th').forEach(function (e) {
    if (e.textContent.trim()) html.push(parseFloat(w.getComputedStyle(e).fontSize)); });
  d.querySelectorAll('svg.chart text').forEach(function (e) { svg.push(e.getBoundingClientRect().height); });
  var outside = Array.prototype.filter.call(d.querySelectorAll('body *'), function (e) {
    return !e.closest('.scroll') && e.getBoundingClientRect().right > vw + 0.5; });
  var loose = Array.prototype.filter.call(d.querySelectorAll('table'), function (t) {
    return !t.parentElement.classList.contains('scroll'); });
  document.getElementById('out').textContent = JSON.stringify({
    viewport: vw, scroll_width: d.documentElement.scrollWidth, overflowing: outside.length,
    min_html_font: Math.min.apply(null, html), min_svg_text: Math.min.apply(null, svg),
    labels: html.length, svg_texts: svg.length, loose_tables: loose.length,
    figures: d.querySelectorAll('figure.chart').length });
}
if (f.contentDocument && f.contentDocument.readyState === 'complete' && f.contentDocument.body.childElementCount) measure();
else f.addEventListener('load', measure);
"#;
    std::fs::write(
        &wrapper,
        format!(
            "<html><body style=\"margin:0\"><iframe id=\"f\" src=\"file://{}\" style=\"width:{width}px;height:2000px;border:0\"></iframe><pre id=\"out\"></pre><script>{script}</script></body></html>",
            page.display()
        ),
    )
    .unwrap();
    let (dom, console) =
        load(&wrapper, &["--dump-dom", "--allow-file-access-from-files", "--virtual-time-budget=10000"]);
    assert!(console.is_empty(), "console output: {console:#?}");
    let out = dom.split("<pre id=\"out\">").nth(1).expect("the measurement ran");
    serde_json::from_str(&out[..out.find("</pre>").unwrap()]).unwrap()
}

/// At a phone's 390 px and a desktop's 1440 px: nothing runs off the page's right edge
/// (tables and the two fixed-size charts scroll in their own box), every chart label keeps
/// its size (12 px HTML text, SVG text drawn at least 9 px high: never a scaled-down picture).
fn assert_readable(page: &Path) {
    for width in [390, 1440] {
        let m = layout(page, width);
        assert_eq!(m["scroll_width"], m["viewport"], "{width} px: the page scrolls sideways: {m}");
        assert_eq!(m["overflowing"], 0, "{width} px: {m}");
        assert_eq!(m["loose_tables"], 0, "{width} px: {m}");
        assert!(m["figures"].as_u64().unwrap() >= 3 && m["labels"].as_u64().unwrap() > 50, "{width} px: {m}");
        assert!(m["min_html_font"].as_f64().unwrap() >= 12.0, "{width} px: {m}");
        assert!(m["min_svg_text"].as_f64().unwrap() >= 9.0, "{width} px: {m}");
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
    // The experiments of the sample pipeline, beside the models, equal channel_calibration:
    // each target's incremental conversions are its lift × the night's conversions.
    let page = root.join("report/run_date=2024-02-15/report.html");
    let f = root.join("channel_calibration/run_date=2024-02-15/part-0.parquet");
    let (names, rows) = read_parquet(&f);
    let col = |n: &str| names.iter().position(|x| x == n).unwrap();
    let conversions = {
        let q = root.join("data_quality/run_date=2024-02-15/part-0.parquet");
        let (_, rows) = read_parquet(&q);
        rows.iter().find(|r| r[1].str() == "conversions").unwrap()[2].num()
    };
    let (targets, shown) = (attr_values(&dom, "data-experiment"), attr_values(&dom, "data-incremental"));
    assert_eq!(targets, ["channel:facebook", "channel:paid_search", "group:social"]);
    for (t, v) in targets.iter().zip(shown) {
        let r = rows.iter().find(|r| r[col("experiment")] == Cell::Str(t.to_string())).unwrap();
        let want = r[col("experiment_lift")].num() * conversions;
        let v: f64 = v.parse().unwrap();
        assert!((v - want).abs() < 1e-9 * want.abs().max(1.0), "{t}: page {v} vs table {want}");
    }
    assert!(dom.contains("Calibrated return on ad spend by channel group"));
    assert_readable(&page);
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
