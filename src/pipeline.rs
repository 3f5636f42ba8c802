//! One attribution run, end to end: input → journeys → models → tables → publication.
//!
//! This is the library's entry point for the CLI. It owns the phase timings, the warnings
//! and the manifest; each phase's rules live in its own module, and the tables are built
//! in [`crate::report`].

use std::path::Path;
use std::time::Instant;

use serde_json::json;

use crate::config::{MarkovOrder, Model, Settings};
use crate::error::{Error, Result};
use crate::input::{self, EventLog, InputFile, NO_CHANNEL};
use crate::journeys::{self, JourneyOptions, JourneyStats, Journeys, Recorded};
use crate::markov::{self, MarkovResult, OrderScore, SequenceEffect};
use crate::models::{self, Credits, OrderedShare, RuleModel};
use crate::output::{self, OutputTable, WrittenFile};
use crate::paths::PathTable;
use crate::report;

/// The channel name under which conversions without any touch are reported.
pub const UNATTRIBUTED: &str = "(unattributed)";

/// Everything the models computed over one channel space, before it becomes tables.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The path table the models ran on.
    pub paths: PathTable,
    /// Journey counts.
    pub stats: JourneyStats,
    /// Names under which credit is reported (the base channels: `frequency` names such as
    /// `email(2)` are folded back to `email`).
    pub report_channels: Vec<String>,
    /// Path-table channel id → index into `report_channels`.
    pub report_of: Vec<u32>,
    /// Credits of each enabled model (path-table channel ids), in canonical model order.
    pub credits: Vec<(Model, Credits)>,
    /// The Markov fit, when the Markov model is enabled.
    pub markov: Option<MarkovResult>,
    /// Scores of the orders tried by `markov_order = auto`.
    pub order_scores: Option<Vec<OrderScore>>,
    /// Removal effects of channel sequences (order ≥ 2).
    pub sequences: Vec<SequenceEffect>,
    /// Ordered Shapley breakdown, when Shapley is enabled.
    pub shapley_ordered: Option<Vec<OrderedShare>>,
    /// Converting journeys one by one (event input only).
    pub recorded: Option<Recorded>,
    /// Warnings for the log and the manifest.
    pub warnings: Vec<String>,
}

impl Analysis {
    /// The rule-based model of `m` in this analysis' channel space (None for Markov and
    /// time decay, which are not per-path rules).
    pub fn rule_model(&self, m: Model, settings: &Settings) -> Option<RuleModel> {
        Some(match m {
            Model::FirstTouch => RuleModel::FirstTouch,
            Model::LastTouch => RuleModel::LastTouch,
            Model::LastNonDirect => RuleModel::LastNonDirect(
                self.report_of
                    .iter()
                    .map(|&b| settings.params.direct_channels.contains(&self.report_channels[b as usize]))
                    .collect(),
            ),
            Model::Linear => RuleModel::Linear,
            Model::PositionBased => RuleModel::PositionBased(settings.params.position_weights),
            Model::Shapley => RuleModel::Shapley,
            Model::TimeDecay | Model::Markov => return None,
        })
    }
}

/// Run the enabled models on a journey result built over the channel space `base_names`.
pub fn analyze(journeys: Journeys, base_names: &[String], settings: &Settings) -> Result<Analysis> {
    analyze_with(journeys, base_names, settings, None)
}

/// [`analyze`] with time-decay credit already computed (merged shards carry it, since it
/// needs touch times that a path table does not have).
pub fn analyze_with(
    journeys: Journeys,
    base_names: &[String],
    settings: &Settings,
    time_decay_credit: Option<Credits>,
) -> Result<Analysis> {
    let Journeys { paths, stats, fold, recorded } = journeys;
    let (report_channels, report_of) = match fold {
        Some(f) => (base_names.to_vec(), f),
        None => (paths.channels.clone(), (0..paths.channels.len() as u32).collect()),
    };
    let mut a = Analysis {
        paths,
        stats,
        report_channels,
        report_of,
        credits: Vec::new(),
        markov: None,
        order_scores: None,
        sequences: Vec::new(),
        shapley_ordered: None,
        recorded,
        warnings: Vec::new(),
    };
    if a.stats.total_conversions == 0.0 {
        a.warnings
            .push("the input has no conversions: every credit is 0 and removal effects are null".into());
    } else if a.paths.total_nulls() == 0.0 && settings.has(Model::Markov) {
        a.warnings.push(
            "no non-converting journeys: the Markov chain has no (null) state, so removal effects only \
             measure how often a channel appears on converting paths"
                .into(),
        );
    }
    for &m in &settings.models {
        let c = match m {
            Model::TimeDecay if time_decay_credit.is_some() => time_decay_credit.clone().expect("checked"),
            Model::TimeDecay => {
                let rec = a.recorded.as_ref().ok_or_else(|| {
                    Error::Config(
                        "time_decay needs event timestamps; it cannot run on an aggregated path table".into(),
                    )
                })?;
                time_decay(rec, a.paths.channels.len(), settings.params.time_decay_half_life_days)
            }
            Model::Markov => {
                let k = match settings.params.markov_order {
                    MarkovOrder::Fixed(k) => k,
                    MarkovOrder::Auto { max } => {
                        let (k, scores) = markov::choose_order(&a.paths, max);
                        tracing::info!(order = k, "chose the Markov order by penalised out-of-sample AUC");
                        a.order_scores = Some(scores);
                        k
                    }
                };
                let r = markov::attribute(&a.paths, k)?;
                let gap = (r.p_conversion - r.observed_rate).abs();
                if gap > 1e-9 * r.observed_rate.max(1.0) {
                    a.warnings.push(format!(
                        "Markov invariant off by {gap:e}: P(conversion) {} vs observed rate {}",
                        r.p_conversion, r.observed_rate
                    ));
                }
                a.sequences = markov::sequence_effects(&r, settings.params.markov_max_sequences)?;
                let c = Credits { conversions: r.conversions.clone(), value: r.value.clone() };
                a.markov = Some(r);
                c
            }
            other => {
                if other == Model::Shapley {
                    a.shapley_ordered = Some(models::shapley_ordered(&a.paths));
                }
                a.rule_model(other, settings).expect("a rule model").credits(&a.paths)
            }
        };
        a.credits.push((m, c));
    }
    Ok(a)
}

/// Time-decay credit over recorded journeys (Δ from the conversion to each touch).
pub fn time_decay(rec: &Recorded, n_channels: usize, half_life_days: f64) -> Credits {
    let h = half_life_days * 86_400_000_000.0;
    let mut c = Credits::zeros(n_channels);
    let mut w = Vec::new();
    for i in 0..rec.len() {
        let r = rec.range(i);
        models::time_decay_weights(&rec.ts[r.clone()], rec.conversion_ts[i], h, &mut w);
        for (&ch, &wi) in rec.channel[r].iter().zip(&w) {
            c.add(ch, wi, 1.0, rec.value[i]);
        }
    }
    c
}

/// What the input layer read, for the data-quality table and the manifest.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
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

/// Row codes and (channel, campaign) names of the campaign units.
pub type CampaignUnits = (Vec<u32>, Vec<(String, String)>);

impl RunSummary {
    /// The summary of a published run.
    pub fn of(
        status: &'static str,
        out: &str,
        run: &RunResult,
        outputs: Vec<WrittenFile>,
        t0: Instant,
    ) -> Self {
        let a = &run.analysis;
        RunSummary {
            status,
            out: out.to_owned(),
            events: run.input.events,
            journeys: a.stats.journeys,
            conversions: a.stats.total_conversions,
            value: a.stats.total_value,
            outputs,
            warnings: a.warnings.clone(),
            elapsed_ms: t0.elapsed().as_millis(),
        }
    }
}

/// The (channel, campaign) units of a log: a code per row and the unit pairs, in sorted
/// (channel, campaign) order.
pub fn campaign_units(log: &EventLog) -> Option<CampaignUnits> {
    let camp = log.campaign.as_ref()?;
    let key = |i: usize| ((log.channel[i] as u64) << 32) | camp[i] as u64;
    let mut keys: Vec<u64> = (0..log.len()).filter(|&i| log.channel[i] != NO_CHANNEL).map(key).collect();
    keys.sort_unstable();
    keys.dedup();
    let codes = (0..log.len())
        .map(|i| {
            if log.channel[i] == NO_CHANNEL {
                NO_CHANNEL
            } else {
                keys.binary_search(&key(i)).expect("present") as u32
            }
        })
        .collect();
    let pairs = keys
        .iter()
        .map(|k| {
            (log.channels[(k >> 32) as usize].clone(), log.campaigns[(k & 0xffff_ffff) as usize].clone())
        })
        .collect();
    Some((codes, pairs))
}

/// The results of one run, ready to become tables.
#[derive(Debug)]
pub struct RunResult {
    /// Channel-level analysis.
    pub analysis: Analysis,
    /// (channel, campaign)-level analysis and the unit pairs, when a campaign column is set.
    pub campaign: Option<(Analysis, Vec<(String, String)>)>,
    /// User names (for per-journey output).
    pub users: input::UserNames,
    /// What was read.
    pub input: InputSummary,
    /// Spend per channel, when a spend file is configured.
    pub spend: Option<std::collections::BTreeMap<String, f64>>,
}

/// Load the configured spend file (before any event is read, so a bad one fails fast).
pub fn load_spend(settings: &Settings) -> Result<Option<std::collections::BTreeMap<String, f64>>> {
    settings.spend.as_ref().map(|p| input::load_spend(Path::new(p))).transpose()
}

/// The read scope and the reporting range of a run's window (none: read and report all).
pub fn scope_of(settings: &Settings) -> Result<(input::ReadScope, Option<(i64, i64)>)> {
    let Some(w) = &settings.window else { return Ok((input::ReadScope::default(), None)) };
    let (start, end) = w.range()?;
    let scope = input::ReadScope {
        range: Some((start - settings.journeys.max_lookback_micros(), end)),
        partition_key: settings.partition_key.clone(),
        required_dates: Some(w.dates()?),
        shard: None,
        skip_user_names: false,
        batch_rows: None,
    };
    Ok((scope, Some((start, end))))
}

/// Read events and run journeys and models (no output written).
pub fn compute(
    events: &str,
    settings: &Settings,
    timings: &mut Vec<(&'static str, u128)>,
) -> Result<RunResult> {
    compute_with(events, settings, timings, &|_| {})
}

/// [`compute`], reporting each phase as it starts (for progress display).
pub fn compute_with(
    events: &str,
    settings: &Settings,
    timings: &mut Vec<(&'static str, u128)>,
    phase: &dyn Fn(&'static str),
) -> Result<RunResult> {
    compute_scoped(events, settings, timings, phase, None)
}

/// [`compute_with`] over one shard of the users (`(i, n)`).
pub fn compute_scoped(
    events: &str,
    settings: &Settings,
    timings: &mut Vec<(&'static str, u128)>,
    phase: &dyn Fn(&'static str),
    shard: Option<(u32, u32)>,
) -> Result<RunResult> {
    phase("read");
    let t = Instant::now();
    let spend = load_spend(settings)?;
    let (mut scope, report) = scope_of(settings)?;
    scope.shard = shard;
    scope.skip_user_names = !settings.journey_credit;
    let mut log =
        input::load_events_scoped(events, &settings.columns, settings.journeys.on_invalid_rows, &scope)?;
    timings.push(("read", t.elapsed().as_millis()));
    tracing::info!(
        files = log.files.len(),
        rows = log.rows_read,
        events = log.len(),
        users = log.n_users,
        "read input"
    );

    phase("journeys");
    let t = Instant::now();
    let record = settings.journey_credit || settings.has(Model::TimeDecay);
    let mut opts = JourneyOptions::resolve(&settings.journeys, &log, &log.channels, record);
    opts.report = report;
    let t_sort = Instant::now();
    let order = journeys::sort_events(&log);
    tracing::debug!(ms = t_sort.elapsed().as_millis(), "sorted events");
    let journeys = journeys::build_ordered(&log, &order, &log.channel, &log.channels, &opts);
    let campaign_journeys = match campaign_units(&log) {
        Some((codes, pairs)) => {
            let names: Vec<String> = pairs.iter().map(|(c, k)| format!("{c} / {k}")).collect();
            let opts =
                JourneyOptions::resolve(&settings.journeys, &log, &names, settings.has(Model::TimeDecay));
            Some((journeys::build_ordered(&log, &order, &codes, &names, &opts), names, pairs))
        }
        None => None,
    };
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
    let users = std::mem::take(&mut log.user_names);
    let channels = log.channels.clone();
    drop(order);
    drop(log);

    phase("models");
    let t = Instant::now();
    let analysis = analyze(journeys, &channels, settings)?;
    let campaign = match campaign_journeys {
        Some((j, names, pairs)) => {
            let mut s = settings.clone();
            s.params.markov_max_sequences = 0;
            Some((analyze(j, &names, &s)?, pairs))
        }
        None => None,
    };
    timings.push(("models", t.elapsed().as_millis()));
    for w in &analysis.warnings {
        tracing::warn!("{w}");
    }
    Ok(RunResult { analysis, campaign, users, input, spend })
}

/// Publish the tables of a run to `out` (date partitions when the settings have a window,
/// else a plain directory with `report.html`) and return the run summary.
pub fn publish(
    run: &RunResult,
    out: &Path,
    settings: &Settings,
    command: &str,
    timings: Vec<(&'static str, u128)>,
    t0: Instant,
) -> Result<RunSummary> {
    if let Some(w) = &settings.window {
        // A windowed run writes the same date partitions as a scheduled one.
        return publish_with(
            run,
            settings,
            command,
            timings,
            t0,
            &out.display().to_string(),
            |tabs, mut doc| {
                output::publish_partitioned(out, &w.run_date, settings.format, tabs, |files| {
                    doc["outputs"] = json!(files);
                    doc
                })
            },
        );
    }
    let html = report::html(run, settings).into_bytes();
    publish_with(run, settings, command, timings, t0, &out.display().to_string(), |tabs, mut doc| {
        output::publish_with_documents(out, settings.format, tabs, &[("report.html", html)], |files| {
            doc["outputs"] = json!(files);
            doc
        })
    })
}

/// Build the tables and the manifest document of a run and hand them to `publisher`
/// (a plain directory or date partitions), then summarise.
pub fn publish_with(
    run: &RunResult,
    settings: &Settings,
    command: &str,
    mut timings: Vec<(&'static str, u128)>,
    t0: Instant,
    out: &str,
    publisher: impl FnOnce(&mut [OutputTable], serde_json::Value) -> Result<Vec<WrittenFile>>,
) -> Result<RunSummary> {
    let t = Instant::now();
    let mut tabs = report::tables(run, settings)?;
    tracing::debug!(ms = t.elapsed().as_millis(), "built tables");
    let a = &run.analysis;
    let status = if a.stats.total_conversions > 0.0 { "ok" } else { "ok_no_conversions" };
    let doc = json!({
        "tool": "touchpoint",
        "version": env!("CARGO_PKG_VERSION"),
        "command": command,
        "status": status,
        "settings": settings,
        "ordering": "user, time, touches before conversions, tie-breaker, channel name, value",
        "inputs": run.input.files,
        "rows_read": run.input.rows_read,
        "events": run.input.events,
        "markov_order_used": a.markov.as_ref().map(|m| m.chain.order),
        "outputs": [],
        "warnings": a.warnings,
        "timings_ms": timings.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    });
    let written = publisher(&mut tabs, doc)?;
    timings.push(("write", t.elapsed().as_millis()));
    tracing::info!(out, files = written.len(), "published outputs");
    Ok(RunSummary::of(status, out, run, written, t0))
}

/// Run the `attribute` job: read `events`, attribute, and publish the tables to `out`.
pub fn attribute(events: &str, out: &Path, settings: &Settings) -> Result<RunSummary> {
    attribute_with(events, out, settings, &|_| {})
}

/// [`attribute`], reporting phases as they start.
pub fn attribute_with(
    events: &str,
    out: &Path,
    settings: &Settings,
    phase: &dyn Fn(&'static str),
) -> Result<RunSummary> {
    let t0 = Instant::now();
    let mut timings = Vec::new();
    let run = compute_with(events, settings, &mut timings, phase)?;
    phase("write");
    publish(&run, out, settings, "attribute", timings, t0)
}

/// Column names of an aggregated path table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PathColumns {
    /// Path strings such as `A > B > C`.
    pub path: String,
    /// Conversions per path.
    pub conversions: String,
    /// Non-converting journeys per path (optional column).
    pub nulls: Option<String>,
    /// Total value per path (optional column).
    pub value: Option<String>,
    /// Separator between channels in `path`.
    pub separator: String,
}

/// Run the `attribute --paths` job on an aggregated path table (ChannelAttribution's input).
pub fn attribute_paths(
    file: &Path,
    cols: &PathColumns,
    out: &Path,
    settings: &Settings,
) -> Result<RunSummary> {
    let t0 = Instant::now();
    let mut timings = Vec::new();
    let t = Instant::now();
    let (rows, n_rows) = input::load_paths(file, cols)?;
    timings.push(("read", t.elapsed().as_millis()));
    let mut stats = JourneyStats::default();
    let mut kept = Vec::new();
    for (p, c, n, v) in &rows {
        let empty = p.split(cols.separator.as_str()).all(|t| t.trim().is_empty());
        stats.total_conversions += c;
        stats.total_value += v;
        if empty {
            stats.unattributed_conversions += c;
            stats.unattributed_value += v;
        } else {
            kept.push((p.as_str(), *c, *n, *v));
        }
        stats.converting_journeys += c.round() as u64;
        stats.journeys += (c + n).round() as u64;
        stats.non_converting_journeys += n.round() as u64;
    }
    let paths = PathTable::from_string_paths(&cols.separator, kept);
    for r in &paths.rows {
        let len = r.path.len();
        if stats.path_lengths.len() <= len {
            stats.path_lengths.resize(len + 1, 0);
        }
        stats.path_lengths[len] += (r.conversions + r.nulls).round() as u64;
        stats.touches += ((r.conversions + r.nulls) * len as f64).round() as u64;
    }
    let channels = paths.channels.clone();
    let t = Instant::now();
    let analysis = analyze(Journeys { paths, stats, fold: None, recorded: None }, &channels, settings)?;
    timings.push(("models", t.elapsed().as_millis()));
    let run = RunResult {
        spend: load_spend(settings)?,
        analysis,
        campaign: None,
        users: input::UserNames::default(),
        input: InputSummary {
            files: vec![InputFile { path: file.to_path_buf(), rows: n_rows }],
            rows_read: n_rows,
            events: 0,
            rejected: Vec::new(),
        },
    };
    publish(&run, out, settings, "attribute --paths", timings, t0)
}
