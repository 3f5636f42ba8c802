//! One attribution run, end to end: input → journeys → models → tables → publication.
//!
//! This is the library's entry point for the CLI. It owns the phase timings, the warnings
//! and the manifest; each phase's rules live in its own module.

use std::path::Path;
use std::time::Instant;

use polars::prelude::{Column, DataFrame};
use serde_json::json;

use crate::config::{Model, Settings};
use crate::error::Result;
use crate::input::{self, InputFile};
use crate::journeys::{self, JourneyStats, Journeys};
use crate::markov::{self, MarkovResult};
use crate::models::{self, Credits};
use crate::output::{self, OutputTable, WrittenFile};
use crate::paths::PathTable;

/// The channel name under which conversions without any touch are reported.
pub const UNATTRIBUTED: &str = "(unattributed)";

/// Everything the models computed, before it becomes tables.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The path table the models ran on.
    pub paths: PathTable,
    /// Journey counts.
    pub stats: JourneyStats,
    /// Credits of each enabled model, in canonical model order.
    pub credits: Vec<(Model, Credits)>,
    /// The Markov fit, when the Markov model is enabled.
    pub markov: Option<MarkovResult>,
    /// Warnings for the log and the manifest.
    pub warnings: Vec<String>,
}

/// Run the enabled models on a journey result.
pub fn analyze(journeys: Journeys, settings: &Settings) -> Result<Analysis> {
    let Journeys { paths, stats } = journeys;
    let mut credits = Vec::new();
    let mut markov = None;
    let mut warnings = Vec::new();
    if stats.total_conversions == 0.0 {
        warnings.push("the input has no conversions: every credit is 0 and removal effects are null".into());
    } else if paths.total_nulls() == 0.0 && settings.has(Model::Markov) {
        warnings.push(
            "no non-converting journeys: the Markov chain has no (null) state, so removal effects only \
             measure how often a channel appears on converting paths"
                .into(),
        );
    }
    for &m in &settings.models {
        let c = match m {
            Model::FirstTouch => models::first_touch(&paths),
            Model::LastTouch => models::last_touch(&paths),
            Model::Linear => models::linear(&paths),
            Model::Markov => {
                let r = markov::attribute(&paths, settings.markov_order)?;
                let c = Credits { conversions: r.conversions.clone(), value: r.value.clone() };
                let gap = (r.p_conversion - r.observed_rate).abs();
                if gap > 1e-9 * r.observed_rate.max(1.0) {
                    warnings.push(format!(
                        "Markov invariant off by {gap:e}: P(conversion) {} vs observed rate {}",
                        r.p_conversion, r.observed_rate
                    ));
                }
                markov = Some(r);
                c
            }
        };
        credits.push((m, c));
    }
    Ok(Analysis { paths, stats, credits, markov, warnings })
}

fn share(x: f64, total: f64) -> Option<f64> {
    (total > 0.0).then(|| x / total)
}

/// `channel_attribution`: grain (model, channel).
pub fn channel_attribution(a: &Analysis) -> Result<DataFrame> {
    let (mut model, mut channel, mut conv, mut value, mut cs, mut vs) =
        (Vec::<&str>::new(), Vec::<String>::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let tc = a.stats.total_conversions;
    let tv = a.stats.total_value;
    for (m, c) in &a.credits {
        for (i, name) in a.paths.channels.iter().enumerate() {
            model.push(m.name());
            channel.push(name.clone());
            conv.push(c.conversions[i]);
            value.push(c.value[i]);
            cs.push(share(c.conversions[i], tc));
            vs.push(share(c.value[i], tv));
        }
        if a.stats.unattributed_conversions > 0.0 {
            model.push(m.name());
            channel.push(UNATTRIBUTED.into());
            conv.push(a.stats.unattributed_conversions);
            value.push(a.stats.unattributed_value);
            cs.push(share(a.stats.unattributed_conversions, tc));
            vs.push(share(a.stats.unattributed_value, tv));
        }
    }
    output::frame(vec![
        Column::new("model".into(), model),
        Column::new("channel".into(), channel),
        Column::new("conversions".into(), conv),
        Column::new("value".into(), value),
        Column::new("conversion_share".into(), cs),
        Column::new("value_share".into(), vs),
    ])
}

/// `markov_removal_effects`: grain (channel).
pub fn markov_removal_effects(a: &Analysis, r: &MarkovResult) -> Result<DataFrame> {
    let n = a.paths.channels.len();
    output::frame(vec![
        Column::new("channel".into(), a.paths.channels.clone()),
        Column::new("removal_effect".into(), r.removal_effects.clone()),
        Column::new("value_removal_effect".into(), r.value_removal_effects.clone()),
        Column::new("order".into(), vec![r.chain.order as u32; n]),
    ])
}

/// `markov_transitions`: grain (from_state, to_state), sorted by state names.
pub fn markov_transitions(a: &Analysis, r: &MarkovResult) -> Result<DataFrame> {
    let mut rows: Vec<(String, String, f64, f64)> = r
        .chain
        .transitions
        .iter()
        .map(|t| {
            (
                r.chain.state_name(&a.paths, t.from),
                r.chain.target_name(&a.paths, t.to),
                t.count,
                t.probability,
            )
        })
        .collect();
    rows.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    output::frame(vec![
        Column::new("from_state".into(), rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>()),
        Column::new("to_state".into(), rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>()),
        Column::new("count".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        Column::new("probability".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
    ])
}

/// `path_summary`: grain (path), sorted by conversions desc, then path.
pub fn path_summary(a: &Analysis) -> Result<DataFrame> {
    let mut idx: Vec<usize> = (0..a.paths.rows.len()).collect();
    let names: Vec<String> = a.paths.rows.iter().map(|r| a.paths.path_name(&r.path)).collect();
    idx.sort_by(|&x, &y| {
        let (rx, ry) = (&a.paths.rows[x], &a.paths.rows[y]);
        ry.conversions
            .total_cmp(&rx.conversions)
            .then(ry.nulls.total_cmp(&rx.nulls))
            .then(names[x].cmp(&names[y]))
    });
    output::frame(vec![
        Column::new("path".into(), idx.iter().map(|&i| names[i].as_str()).collect::<Vec<_>>()),
        Column::new(
            "touches".into(),
            idx.iter().map(|&i| a.paths.rows[i].path.len() as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "conversions".into(),
            idx.iter().map(|&i| a.paths.rows[i].conversions).collect::<Vec<_>>(),
        ),
        Column::new("nulls".into(), idx.iter().map(|&i| a.paths.rows[i].nulls).collect::<Vec<_>>()),
        Column::new("value".into(), idx.iter().map(|&i| a.paths.rows[i].value).collect::<Vec<_>>()),
    ])
}

/// Every reason a row can be rejected for, in a fixed order (stable rows in `data_quality`).
pub const REJECT_REASONS: [&str; 5] =
    ["null user id", "null time", "null conversion marker", "null channel on a touch", "null tie-breaker"];

/// `data_quality`: grain (metric), a fixed list of metrics.
pub fn data_quality(a: &Analysis, input: &InputSummary) -> Result<DataFrame> {
    let s = &a.stats;
    let mut m: Vec<(String, f64)> =
        vec![("input_files".into(), input.files.len() as f64), ("rows_read".into(), input.rows_read as f64)];
    let mut rejected = 0u64;
    for r in REJECT_REASONS {
        let n = input.rejected.iter().find(|(k, _)| k == r).map(|(_, v)| *v).unwrap_or(0);
        rejected += n;
        m.push((format!("rows_rejected_{}", r.replace(['-', ' '], "_")), n as f64));
    }
    m.extend([
        ("rows_rejected".into(), rejected as f64),
        ("events".into(), input.events as f64),
        ("users".into(), s.users as f64),
        ("channels".into(), a.paths.channels.len() as f64),
        ("journeys".into(), s.journeys as f64),
        ("converting_journeys".into(), s.converting_journeys as f64),
        ("non_converting_journeys".into(), s.non_converting_journeys as f64),
        ("conversions".into(), s.total_conversions),
        ("conversion_value".into(), s.total_value),
        ("unattributed_conversions".into(), s.unattributed_conversions),
        ("unattributed_value".into(), s.unattributed_value),
        ("touches".into(), s.touches as f64),
        ("expired_touches".into(), s.expired_touches as f64),
        ("distinct_paths".into(), a.paths.rows.len() as f64),
    ]);
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        m.push((format!("path_length_{name}"), s.path_length_quantile(q).map(|x| x as f64).unwrap_or(0.0)));
    }
    if let Some(r) = &a.markov {
        m.push(("markov_states".into(), r.chain.states.len() as f64 - 1.0));
        m.push(("markov_p_conversion".into(), r.p_conversion));
        m.push(("markov_observed_conversion_rate".into(), r.observed_rate));
    }
    output::frame(vec![
        Column::new("metric".into(), m.iter().map(|x| x.0.as_str()).collect::<Vec<_>>()),
        Column::new("value".into(), m.iter().map(|x| x.1).collect::<Vec<_>>()),
    ])
}

/// What the input layer read, for the data-quality table and the manifest.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct InputSummary {
    /// Files read with their row counts.
    pub files: Vec<InputFile>,
    /// Rows read in total.
    pub rows_read: u64,
    /// Rows kept as events.
    pub events: u64,
    /// Rejected rows by reason.
    pub rejected: Vec<(String, u64)>,
}

/// Build every output table of an analysis.
pub fn tables(a: &Analysis, input: &InputSummary) -> Result<Vec<OutputTable>> {
    let mut t = vec![OutputTable { name: "channel_attribution", df: channel_attribution(a)? }];
    if let Some(r) = &a.markov {
        t.push(OutputTable { name: "markov_removal_effects", df: markov_removal_effects(a, r)? });
        t.push(OutputTable { name: "markov_transitions", df: markov_transitions(a, r)? });
    }
    t.push(OutputTable { name: "path_summary", df: path_summary(a)? });
    t.push(OutputTable { name: "data_quality", df: data_quality(a, input)? });
    Ok(t)
}

/// The outcome of a successful run, for the CLI's JSON summary line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    /// `ok` or `ok_no_conversions`.
    pub status: &'static str,
    /// Output directory.
    pub out: String,
    /// Events kept.
    pub events: u64,
    /// Journeys built.
    pub journeys: u64,
    /// Conversions (all, including unattributed).
    pub conversions: f64,
    /// Conversion value.
    pub value: f64,
    /// Files written.
    pub outputs: Vec<WrittenFile>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Wall time, milliseconds.
    pub elapsed_ms: u128,
}

/// Run the `attribute` job: read `events`, attribute, and publish the tables to `out`.
pub fn attribute(events: &str, out: &Path, settings: &Settings) -> Result<RunSummary> {
    let t0 = Instant::now();
    let mut timings: Vec<(&str, u128)> = Vec::new();

    let t = Instant::now();
    let log = input::load_events(events, &settings.columns, settings.journeys.on_invalid_rows)?;
    timings.push(("read", t.elapsed().as_millis()));
    tracing::info!(
        files = log.files.len(),
        rows = log.rows_read,
        events = log.len(),
        users = log.n_users,
        "read input"
    );

    let t = Instant::now();
    let journeys = journeys::build(&log, &settings.journeys);
    timings.push(("journeys", t.elapsed().as_millis()));
    tracing::info!(
        journeys = journeys.stats.journeys,
        converting = journeys.stats.converting_journeys,
        paths = journeys.paths.rows.len(),
        "built journeys"
    );
    let input = InputSummary {
        files: log.files.clone(),
        rows_read: log.rows_read,
        events: log.len() as u64,
        rejected: log.rejected.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    };
    drop(log);

    let t = Instant::now();
    let analysis = analyze(journeys, settings)?;
    timings.push(("models", t.elapsed().as_millis()));
    for w in &analysis.warnings {
        tracing::warn!("{w}");
    }

    let t = Instant::now();
    let mut tabs = tables(&analysis, &input)?;
    let status = if analysis.stats.total_conversions > 0.0 { "ok" } else { "ok_no_conversions" };
    let timings_snapshot = timings.clone();
    let written = output::publish(out, settings.format, &mut tabs, |files| {
        json!({
            "tool": "touchpoint",
            "version": env!("CARGO_PKG_VERSION"),
            "command": "attribute",
            "status": status,
            "settings": settings,
            "ordering": "user, time, touches before conversions, tie-breaker, channel name, value",
            "inputs": input.files,
            "rows_read": input.rows_read,
            "events": input.events,
            "outputs": files,
            "warnings": analysis.warnings,
            "timings_ms": timings_snapshot.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })
    })?;
    timings.push(("write", t.elapsed().as_millis()));
    tracing::info!(dir = %out.display(), files = written.len(), "published outputs");

    Ok(RunSummary {
        status,
        out: out.display().to_string(),
        events: input.events,
        journeys: analysis.stats.journeys,
        conversions: analysis.stats.total_conversions,
        value: analysis.stats.total_value,
        outputs: written,
        warnings: analysis.warnings.clone(),
        elapsed_ms: t0.elapsed().as_millis(),
    })
}
