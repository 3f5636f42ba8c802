//! `spend_response` and `budget_shift` over twenty nightly runs of the bundled pipeline,
//! recomputed here from the published `channel_attribution` partitions and the spend file
//! with a least-squares fit written independently of the library.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::*;

/// (slope, its standard error) of y on x by least squares.
fn ols(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let b = x.iter().zip(y).map(|(a, c)| (a - mx) * (c - my)).sum::<f64>() / sxx;
    let a = my - b * mx;
    let rss: f64 = x.iter().zip(y).map(|(u, v)| (v - a - b * u).powi(2)).sum();
    (b, (rss / (n - 2.0) / sxx).sqrt())
}

fn rows(path: &Path) -> Vec<BTreeMap<String, Cell>> {
    let (names, rows) = read_parquet(path);
    rows.into_iter().map(|r| names.iter().cloned().zip(r).collect()).collect()
}

#[test]
fn the_response_to_spend_equals_a_fit_of_the_published_history() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nightly");
    let first = chrono::NaiveDate::from_ymd_opt(2024, 1, 27).unwrap();
    let dates: Vec<String> = (0..20).map(|k| (first + chrono::Duration::days(k)).to_string()).collect();
    for d in &dates {
        let o = touchpoint(&[
            "run",
            "pipelines/sample_nightly.toml",
            "--run-date",
            d,
            "-q",
            "--set",
            &format!("output.root={}", root.display()),
            "--set",
            "models.bootstrap_replicates=0",
            "--set",
            "spend_response.shift_from=\"search\"",
            "--set",
            "spend_response.shift_to=\"social\"",
        ]);
        assert!(o.status.success(), "{d}: {}", String::from_utf8_lossy(&o.stdout));
    }
    let part = |t: &str, d: &str| root.join(t).join(format!("run_date={d}")).join("part-0.parquet");
    // The first night has no history: every channel is listed without a fit.
    for r in rows(&part("spend_response", &dates[0])) {
        assert_eq!(r["days"].num(), 1.0, "only tonight has spend");
        assert_eq!(r["elasticity"], Cell::Null);
    }
    // Markov credit per (date, channel) from the tables; spend per (date, channel) from the file.
    let mut credit: BTreeMap<(String, String), f64> = BTreeMap::new();
    for d in &dates {
        for r in rows(&part("channel_attribution", d)) {
            if r["model"].str() == "markov" {
                credit.insert((d.clone(), r["channel"].str().to_owned()), r["conversions"].num());
            }
        }
    }
    let mut spend: BTreeMap<(String, String), f64> = BTreeMap::new();
    for line in std::fs::read_to_string("sample-data/spend.csv").unwrap().lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        *spend.entry((f[0].to_owned(), f[1].to_owned())).or_default() += f[2].parse::<f64>().unwrap();
    }
    let last = dates.last().unwrap();
    let fitted = rows(&part("spend_response", last));
    assert!(fitted.len() >= 8, "{fitted:?}");
    // Student's t at 90% with 20 − 2 degrees of freedom (R: qt(0.95, 18)).
    let t18 = 1.7340636066175354;
    let mut by_channel = BTreeMap::new();
    for r in &fitted {
        let c = r["channel"].str().to_owned();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for d in &dates {
            let s = spend.get(&(d.clone(), c.clone())).copied().unwrap_or(0.0);
            if s > 0.0 {
                x.push(s.ln());
                y.push((credit.get(&(d.clone(), c.clone())).copied().unwrap_or(0.0) + 0.5).ln());
            }
        }
        let (b, se) = ols(&x, &y);
        assert_eq!(r["days"].num(), x.len() as f64, "{c}");
        assert!((r["elasticity"].num() - b).abs() < 1e-9, "{c}: {} vs {b}", r["elasticity"].num());
        assert!((r["elasticity_se"].num() - se).abs() < 1e-9, "{c}");
        let (s, y0) = (spend[&(last.clone(), c.clone())], credit[&(last.clone(), c.clone())]);
        assert_eq!(r["days"].num(), 20.0, "{c}");
        let slope = b * (y0 + 0.5) / s;
        assert!((r["marginal_conversions_per_spend"].num() - slope).abs() < 1e-12, "{c}");
        if slope > 0.0 {
            assert!((r["marginal_cpa"].num() - 1.0 / slope).abs() < 1e-9 / slope, "{c}");
        }
        let high = (b + t18 * se) * (y0 + 0.5) / s;
        if high > 0.0 {
            assert!((r["marginal_cpa_low"].num() - 1.0 / high).abs() < 1e-7 / high, "{c}");
        }
        by_channel.insert(c, (s, y0, b, se));
    }
    // Moving 10% of search's spend to social, channel by channel: y ((s'/s)^β − 1).
    let group = |c: &str| match c {
        "facebook" | "instagram" | "tiktok" => "social",
        "paid_search" | "organic_search" => "search",
        _ => "",
    };
    let total = |g: &str| by_channel.iter().filter(|(c, _)| group(c) == g).map(|(_, v)| v.0).sum::<f64>();
    let (from, to) = (total("search"), total("social"));
    let (mut change, mut var) = (0.0, 0.0);
    for (c, (s, y0, b, se)) in &by_channel {
        let s2 = match group(c) {
            "search" => s * 0.9,
            "social" => s + 0.1 * from * s / to,
            _ => continue,
        };
        let at = |beta: f64| (y0 + 0.5) * ((s2 / s).powf(beta) - 1.0);
        change += at(*b);
        var += ((at(b + t18 * se) - at(b - t18 * se)) / 2.0).powi(2);
    }
    let shift = &rows(&part("budget_shift", last))[0];
    assert_eq!((shift["from_group"].str(), shift["to_group"].str()), ("search", "social"));
    assert!((shift["spend_moved"].num() - 0.1 * from).abs() < 1e-9);
    assert!(
        (shift["conversions_change"].num() - change).abs() < 1e-9,
        "{} vs {change}",
        shift["conversions_change"].num()
    );
    assert!((shift["conversions_change_high"].num() - (change + var.sqrt())).abs() < 1e-6);
    let page = std::fs::read_to_string(root.join(format!("report/run_date={last}/report.html"))).unwrap();
    assert!(
        page.contains("id=\"response\"")
            && page.contains("<b>This is observational</b>")
            && page.contains("id=\"shift\"")
    );

    // A two-day window the next night: the one-day nights are not points of its line.
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "pipelines/sample_nightly.toml", "--run-date", "2024-02-16", "-q"];
        let root_set = format!("output.root={}", root.display());
        args.extend(["--set", &root_set, "--set", "models.bootstrap_replicates=0"]);
        args.extend(extra);
        touchpoint(&args)
    };
    let o = run(&["--set", "window.days=2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    for r in rows(&part("spend_response", "2024-02-16")) {
        assert_eq!((r["days"].num(), &r["elasticity"]), (1.0, &Cell::Null), "{r:?}");
    }
    // A shift of all of a group's spend, or to a group that does not exist: exit 78.
    for bad in ["spend_response.shift_share=1", "spend_response.shift_to=\"serach\""] {
        let from =
            ["--set", "spend_response.shift_from=\"search\"", "--set", "spend_response.shift_to=\"social\""];
        let o = run(&[&from[..], &["--set", bad]].concat());
        assert_eq!(o.status.code(), Some(78), "{bad}: {}", String::from_utf8_lossy(&o.stdout));
    }
}
