//! Guards for nightly runs (`[guards]`): a run whose totals are obviously wrong fails with
//! 65 instead of replacing good outputs (a typo in the conversion marker gives zero
//! conversions; a half-landed input gives half of them).

use std::path::Path;

use crate::error::{Error, Result};
use crate::report::RunResult;
use crate::settings::Settings;

/// Check the guards against a computed result, before anything is written.
pub fn check(settings: &Settings, run: &RunResult) -> Result<()> {
    let g = &settings.guards;
    let conversions = run.analysis.stats.total_conversions;
    if let Some(min) = g.min_conversions {
        if conversions < min {
            return Err(Error::Guard(format!(
                "{conversions} conversions, fewer than guards.min_conversions = {min}"
            )));
        }
    }
    check_change(settings, conversions, previous_conversions(settings))
}

/// `guards.max_conversion_change`: this run's conversions against the previous
/// publication's (total conversions, where they were read), when there is one. The Spark
/// job reads the previous manifest through its store (an object store too) and asks here.
pub fn check_change(settings: &Settings, conversions: f64, previous: Option<(f64, String)>) -> Result<()> {
    let Some(max) = settings.guards.max_conversion_change else { return Ok(()) };
    let Some((previous, from)) = previous else { return Ok(()) };
    let change = if previous > 0.0 { (conversions - previous).abs() / previous } else { 0.0 };
    if change > max {
        return Err(Error::Guard(format!(
            "{conversions} conversions against {previous} in {from}: a change of {:.1}%, more than \
             guards.max_conversion_change = {:.1}%",
            100.0 * change,
            100.0 * max
        )));
    }
    Ok(())
}

/// The headline credits of the previous run date's manifest (for the page's
/// night-over-night table), when there is one.
pub fn previous_headline(settings: &Settings) -> Option<crate::report::Headline> {
    settings.window()?;
    let manifest = previous_manifest(settings)?;
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(manifest).ok()?).ok()?;
    serde_json::from_value(doc.get("headline")?.clone()).ok()
}

/// The headlines of the earlier run dates' manifests under `output.root`, newest first, up
/// to `spend_response.days − 1` dates back (missing dates are skipped).
pub fn history(settings: &Settings) -> Vec<(chrono::NaiveDate, crate::report::Headline)> {
    let (Some(w), Some(root)) = (settings.window(), settings.output.root.as_deref()) else {
        return Vec::new();
    };
    (1..settings.spend_response.days as i64)
        .filter_map(|k| {
            let date = w.run_date.0 - chrono::Duration::days(k);
            let file = root
                .join("_manifest")
                .join(format!("run_date={}", date.format("%Y-%m-%d")))
                .join("_manifest.json");
            let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).ok()?).ok()?;
            comparable(&doc, settings).then_some(())?;
            Some((date, serde_json::from_value(doc.get("headline")?.clone()).ok()?))
        })
        .collect()
}

/// Whether an earlier run date's manifest measured what this run measures: the same window
/// length, spend period and (the lookback period's length) lookback (a 7-day credit is not a
/// point on a 1-day line). A manifest without these settings (another writer) is taken as
/// it is.
pub fn comparable(doc: &serde_json::Value, settings: &Settings) -> bool {
    let s = &doc["settings"];
    let same = |theirs: &serde_json::Value, ours: serde_json::Value| theirs.is_null() || *theirs == ours;
    same(&s["window"]["days"], serde_json::json!(settings.window.days))
        && same(&s["input"]["spend_period"], serde_json::json!(settings.input.spend_period))
        && same(&s["journeys"]["lookback_days"], serde_json::json!(settings.journeys.lookback_days))
}

/// Total conversions of the previous publication: the previous run date's partition for
/// windowed runs, the output directory's present manifest otherwise.
fn previous_conversions(settings: &Settings) -> Option<(f64, String)> {
    let manifest = previous_manifest(settings)?;
    let c = read_total(&manifest)?;
    Some((c, manifest.display().to_string()))
}

/// The manifest of the previous publication: the previous run date's for windowed runs,
/// the output directory's present one otherwise.
fn previous_manifest(settings: &Settings) -> Option<std::path::PathBuf> {
    let root = settings.output.root.as_deref()?;
    Some(match settings.window() {
        Some(w) => {
            let prev = w.run_date.0.pred_opt()?;
            root.join("_manifest")
                .join(format!("run_date={}", prev.format("%Y-%m-%d")))
                .join("_manifest.json")
        }
        None => root.join("manifest.json"),
    })
}

fn read_total(manifest: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    doc["totals"]["conversions"].as_f64()
}
