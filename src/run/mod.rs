//! A run, end to end: read → journeys → models → tables → publication. [`Run`] holds the
//! settings and records the phases; the commands (`attribute`, `run`, `merge`, shards) are
//! thin uses of it.

pub mod arrow;
pub mod doctor;
pub mod evaluate;
mod groups;
mod guards;
pub mod job;
pub mod merge_bounded;
mod relationship;
mod segments;
pub mod shard;
mod training;
mod walk;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use crate::core::analysis::{self, Analysis, AnalyzeOptions};
use crate::core::bootstrap::{self, BootstrapOptions};
use crate::core::campaigns::{self, CampaignSums, SumsInput};
use crate::core::event_log::{EventLog, InputFile, InputSummary, UserNames};
use crate::core::journeys::{JourneyStats, Journeys};
use crate::core::paths::PathTable;
use crate::core::privacy::PseudonymKey;
use crate::core::replicates::NamedSums;
use crate::core::spend::{self, SpendTotals};
use crate::engine::{self, LoadOptions, ReadScope, TableSource};
use crate::error::{Error, Result};
use crate::publish::{DatedOutput, DirOutput, Output, WrittenFile};
use crate::report::{self, RunResult};
use crate::settings::DAY_MICROS;
use crate::settings::{Entry, PersonIds, Settings, SpendPeriod};
use training::Training;
use walk::{build_journeys, event_order};

/// The outcome of a successful run, for the CLI's JSON summary line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    /// `ok`, `ok_no_conversions` or `partial`.
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
    /// Rows of other shards that a `--shard` run skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_shard_rows: Option<u64>,
    /// Files written.
    pub outputs: Vec<WrittenFile>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Wall time, milliseconds.
    pub elapsed_ms: u128,
}

/// A partition's replicate statistics, of the channels and of the channel groups.
pub(crate) type PartitionReplicates = (Option<Vec<NamedSums>>, Option<Vec<NamedSums>>);

/// One run: its settings, the command it serves and the phases it went through.
pub struct Run<'a> {
    /// The settings of the run.
    pub settings: Settings,
    /// The command, for the manifest (`attribute`, `run`, `merge`, …).
    pub command: &'static str,
    /// Extra manifest fields (the pipeline file, its overrides, …).
    pub manifest: serde_json::Map<String, serde_json::Value>,
    timings: Vec<(&'static str, u128)>,
    t0: Instant,
    progress: &'a dyn Fn(&'static str),
    output: Option<Output>,
    /// Events handed over as an Arrow stream instead of `input.events` (`run::arrow`).
    stream: Option<engine::arrow::ArrowInput>,
    /// One chunk of a distributed run: reading nothing is not an error here.
    pub(crate) chunk: bool,
    /// The stream holds the distributed read's staged rows of whole persons, not events
    /// (`engine::sources::stage_rows`), read by this plan.
    pub(crate) staged_rows: Option<engine::sources::SplitPlan>,
    /// A shard's bootstrap statistics, named, of the channels and of the channel groups (set
    /// by [`Run::compute_events`] for a shard).
    pub(crate) replicates: PartitionReplicates,
}

impl<'a> Run<'a> {
    /// A run of `command` with these settings; `progress` is told each phase as it starts.
    pub fn new(settings: Settings, command: &'static str, progress: &'a dyn Fn(&'static str)) -> Self {
        Run {
            settings,
            command,
            manifest: Default::default(),
            timings: Vec::new(),
            t0: Instant::now(),
            progress,
            output: None,
            stream: None,
            chunk: false,
            staged_rows: None,
            replicates: (None, None),
        }
    }

    /// Use an output opened by the caller (shards write a plain partial directory even for
    /// windowed runs).
    pub fn set_output(&mut self, output: Output) {
        self.output = Some(output);
    }

    /// The opened output, if any.
    pub fn output(&self) -> Option<&Output> {
        self.output.as_ref()
    }

    /// Check, lock and clean up the output before any data is read: a bad `--out` or a
    /// second run on the same output fails at once.
    pub fn open_output(&mut self) -> Result<()> {
        if self.output.is_none() {
            let out = self.out()?;
            let wait = std::time::Duration::from_secs(self.settings.output.lock_timeout_seconds);
            self.output = Some(match self.settings.window() {
                Some(_) => Output::Dated(DatedOutput::open(&out, wait)?),
                None => Output::Dir(DirOutput::open(&out, wait)?),
            });
        }
        Ok(())
    }

    /// Run one phase, recording its wall time.
    pub fn phase<T>(&mut self, name: &'static str, f: impl FnOnce(&Settings) -> Result<T>) -> Result<T> {
        (self.progress)(name);
        let t = Instant::now();
        let out = f(&self.settings)?;
        self.timings.push((name, t.elapsed().as_millis()));
        tracing::debug!(phase = name, ms = t.elapsed().as_millis(), peak_mb = peak_rss_mb(), "phase done");
        Ok(out)
    }

    /// The output directory (or root of the date partitions).
    pub fn out(&self) -> Result<PathBuf> {
        self.settings.output.root.clone().ok_or_else(|| {
            Error::Config("no output directory (--out, or output.root in the pipeline file)".into())
        })
    }

    /// Read the events and run journeys and models, over one shard of the users if given.
    pub fn compute_events(&mut self, shard: Option<(u32, u32)>) -> Result<RunResult> {
        if self.settings.output.root.is_some() {
            self.open_output()?;
        }
        let stream = self.stream.take();
        let events = match (&stream, &self.settings.input.events) {
            (Some(_), _) => String::new(),
            (None, Some(e)) => e.clone(),
            (None, None) => {
                return Err(Error::Config(
                    "no event log (--events, or input.events in the pipeline file)".into(),
                ))
            }
        };
        let entry = match (shard, &stream) {
            // Whole persons of the staged input: a shard of it, by other means.
            _ if self.staged_rows.is_some() => Entry::Shard,
            (Some(_), _) => Entry::Shard,
            (None, Some(_)) => Entry::Stream,
            (None, None) => Entry::Events,
        };
        self.settings.refuse_for(entry)?;
        let (spend, experiments) = (load_spend(&self.settings)?, load_experiments(&self.settings)?);
        let training = match &self.settings.output.root {
            Some(root) if self.settings.models.training_days.is_some() => Training::of(&self.settings, root)?,
            _ => None,
        };
        let missing = training.as_ref().map(Training::missing).unwrap_or_default();
        let mut log = self.read_log(shard, (stream, &events), &missing)?;
        let fit = match &training {
            Some(t) => Some(self.phase("training", |s| training::prepare(t, &mut log, s))?),
            None => None,
        };
        // A shard's or a Spark chunk's journeys: their statistics are summed and solved by the merge.
        let partition = shard.is_some() || self.chunk;
        // Intervals need every journey by person (a shard's become its replicate statistics).
        let index = self.settings.models.bootstrap_replicates > 0;
        // The sorted order is kept for the segments' walks only (20 bytes an event).
        let segmenting = self.settings.segments.any(self.settings.columns.segment.is_some());
        let (journeys, touch_campaign, duplicates, order) =
            self.phase("journeys", |s| Ok(build_journeys(&log, s, (index, segmenting))))?;
        let groups =
            match self.settings.channel_groups.is_empty() {
                true => None,
                false => Some(self.phase("groups", |s| {
                    groups::analyze_groups(&mut log, s, &duplicates, (index, partition))
                })?),
            };
        let log_units = campaign_units(&log);
        let input = input_summary(&log);
        let users = self.users(&log)?;
        let read_warnings = log.warnings.clone();
        let (channels, campaigns) = (log.channels.clone(), log.campaigns.clone());
        let seg_journeys = match order {
            Some(order) => self.phase("segments", |s| {
                Ok(segments::segment_journeys(&log, s, &order, &segmentation_name(s)))
            })?,
            None => Vec::new(),
        };
        let rec = journeys.recorded.as_ref();
        let status = self.settings.segments.customer_status;
        let journey_conversions = relationship::journey_conversions(&log, rec, status);
        let user_order = match partition && self.settings.output.journey_credit {
            true => (0..log.n_users as u32).map(|u| log.order_key(u)).collect(),
            false => Vec::new(),
        };
        let source_touches =
            relationship::source_touches(&log, rec, self.settings.journeys.conversion_is_touch);
        drop(log);
        let (mut analysis, campaign_sums) = self.phase("models", |s| {
            let mut a = analysis::analyze(
                journeys,
                &analyze_options(s, (&channels, fit.as_ref().map(|f| &f.0)), partition),
            )?;
            a.training = fit.as_ref().map(|f| f.1.clone());
            let c = campaign_sums(&a, touch_campaign.as_deref(), (&log_units[..], &campaigns[..]), s)?;
            Ok((a, c))
        })?;
        let mut groups = groups;
        self.replicates = self.bootstrap(&mut analysis, groups.as_mut(), partition)?;
        // One run solves its campaign sums as a merge solves the partitions' (a partition
        // hands them on).
        let (campaign, campaign_sums) = match campaign_sums {
            Some(sums) if !partition => {
                (Some(campaigns::solve(&sums, &analysis, &self.settings.models)?), None)
            }
            sums => (None, sums),
        };
        let segments = self.phase("segment models", |s| {
            segments::analyze_segments(seg_journeys, &analysis, s, (&channels, partition))
        })?;
        analysis.warnings.splice(0..0, read_warnings);
        for w in &analysis.warnings {
            tracing::warn!("{w}");
        }
        Ok(RunResult {
            campaign,
            campaign_sums,
            users,
            spend,
            groups,
            segments,
            journey_conversions,
            source_touches,
            experiments,
            user_order,
            ..RunResult::new(analysis, input)
        })
    }

    /// The event log of this run: its files (or the stream it was handed), over the
    /// window (widened to the training days still to compute) and one shard if given.
    fn read_log(
        &mut self,
        shard: Option<(u32, u32)>,
        (stream, events): (Option<crate::engine::arrow::ArrowInput>, &str),
        missing: &[chrono::NaiveDate],
    ) -> Result<EventLog> {
        let (chunk, staged_rows) = (self.chunk, self.staged_rows.take());
        let log = self.phase("read", |s| {
            let (mut scope, _) = scope_of(s);
            if let (Some(start), Some((a, b))) = (Training::read_start(missing, s), scope.range) {
                scope.range = Some((a.min(start), b));
            }
            scope.shard = shard;
            scope.allow_empty = chunk;
            scope.skip_user_names = !s.output.journey_credit || s.output.person_ids == PersonIds::Omitted;
            match stream {
                Some(st) if staged_rows.is_some() => {
                    let rows = engine::arrow::import_stream(st, "the staged rows")?;
                    let plan = staged_rows.as_ref().expect("matched");
                    read_staged(s, engine::sources::stage_rows(s, &scope, plan, rows)?, &scope)
                }
                Some(st) => read_stream(s, st, &scope),
                None => read_events(s, events, &scope),
            }
        })?;
        tracing::info!(
            files = log.files.len(),
            rows = log.rows_read,
            events = log.len(),
            users = log.n_users,
            "read input"
        );
        Ok(log)
    }

    /// The persons' names as `journey_credit` shows them: pseudonyms under the key, or as read.
    fn users(&mut self, log: &EventLog) -> Result<UserNames> {
        Ok(match self.person_key()? {
            Some(key) => {
                self.manifest.insert("pseudonym_key_fingerprint".into(), json!(key.fingerprint()));
                log.user_names.mapped(|id| key.pseudonym(id))
            }
            None => log.user_names.clone(),
        })
    }

    /// The intervals of one run (channels and groups); a partition's (a shard's, a Spark
    /// chunk's) replicate statistics instead, which the merge solves with every other
    /// partition's.
    fn bootstrap(
        &mut self,
        analysis: &mut Analysis,
        groups: Option<&mut Analysis>,
        partition: bool,
    ) -> Result<PartitionReplicates> {
        self.phase("bootstrap", |s| {
            let opts = BootstrapOptions {
                replicates: s.models.bootstrap_replicates,
                level: s.models.interval_level,
                seed: s.models.bootstrap_seed,
                kernel: Default::default(),
            };
            if partition {
                let main = bootstrap::named_sums(analysis, &s.models, &opts)?;
                let group = match groups {
                    Some(g) => bootstrap::named_sums(g, &s.models, &opts)?,
                    None => None,
                };
                return Ok((main, group));
            }
            analysis.intervals = bootstrap::intervals(analysis, &s.models, &opts)?;
            if let Some(g) = groups {
                g.intervals = bootstrap::intervals(g, &s.models, &opts)?;
            }
            Ok((None, None))
        })
    }

    /// The pseudonymization key, when `journey_credit` names persons by pseudonym.
    fn person_key(&self) -> Result<Option<PseudonymKey>> {
        person_key(&self.settings)
    }

    /// Read an aggregated path table (ChannelAttribution's input) and run the models.
    pub fn compute_paths(&mut self, file: &Path) -> Result<RunResult> {
        if self.settings.output.root.is_some() {
            self.open_output()?;
        }
        let cols = self.settings.path_table.clone();
        let (rows, n_rows) = self.phase("read", |_| engine::load_paths(file, &cols))?;
        let journeys = journeys_of_path_rows(&rows, &cols.separator);
        let analysis = self.phase("models", |s| {
            let channels = journeys.paths.channels.clone();
            let opts = AnalyzeOptions {
                base_names: &channels,
                models: &s.models,
                time_decay_credit: None,
                sequence_effects: true,
                dedupe: s.journeys.dedupe != crate::settings::Dedupe::None,
                training: None,
                partition: false,
            };
            analysis::analyze(journeys, &opts)
        })?;
        let input = InputSummary {
            files: vec![InputFile { path: file.to_path_buf(), rows: n_rows }],
            rows_read: n_rows,
            ..Default::default()
        };
        Ok(RunResult {
            spend: load_spend(&self.settings)?,
            experiments: load_experiments(&self.settings)?,
            ..RunResult::new(analysis, input)
        })
    }

    /// Publish the tables of a result (date partitions when the settings have a window, else
    /// a plain directory with `report.html`) and summarise.
    pub fn publish(mut self, run: &mut RunResult) -> Result<RunSummary> {
        (self.progress)("write");
        self.open_output()?;
        guards::check(&self.settings, run)?;
        if report::TableName::planned(&self.settings).contains(&report::TableName::SpendResponse) {
            run.history = load_history(&self.settings, None)?;
        }
        let tables = report::tables(run, &self.settings)?;
        let sources: Vec<&dyn TableSource> = tables.iter().map(|t| t as &dyn TableSource).collect();
        self.publish_tables(run, &sources, true)
    }

    /// Publish these tables of a result (and `report.html` when `page`), with its manifest.
    pub fn publish_tables(
        mut self,
        run: &RunResult,
        tables: &[&dyn TableSource],
        page: bool,
    ) -> Result<RunSummary> {
        self.open_output()?;
        let out = self.out()?;
        let t = Instant::now();
        let a = &run.analysis;
        let status = if a.stats.total_conversions > 0.0 { "ok" } else { "ok_no_conversions" };
        let mut doc = self.manifest_doc(run, status);
        let format = self.settings.output.format;
        let with_outputs = |files: &[WrittenFile]| {
            doc["outputs"] = json!(files);
            doc
        };
        let written = match (&self.output, self.settings.window()) {
            (Some(Output::Dated(o)), Some(w)) => {
                let previous = guards::previous_headline(&self.settings);
                let html = match page {
                    true => Some((
                        "report.html",
                        report::html(run, &self.settings, previous.as_ref())?.into_bytes(),
                    )),
                    false => None,
                };
                o.publish(&w.run_date.to_string(), format, (tables, html.as_slice()), with_outputs)?
            }
            (Some(Output::Dir(o)), None) => {
                let html = match page {
                    true => Some(("report.html", report::html(run, &self.settings, None)?.into_bytes())),
                    false => None,
                };
                o.publish(format, tables, html.as_slice(), with_outputs)?
            }
            _ => return Err(Error::Internal("the output does not match the window setting".into())),
        };
        self.timings.push(("write", t.elapsed().as_millis()));
        tracing::info!(out = %out.display(), files = written.len(), "published outputs");
        Ok(self.summary(status, run, written))
    }

    /// The manifest document, before the list of outputs is known.
    fn manifest_doc(&self, run: &RunResult, status: &str) -> serde_json::Value {
        let a = &run.analysis;
        let mut doc = json!({
            "tool": "touchpoint",
            "version": env!("CARGO_PKG_VERSION"),
            "command": self.command,
            "status": status,
            "settings": self.settings,
            "ordering": "user, time, touches before conversions, tie-breaker, channel name, value",
            "inputs": run.input.files,
            "rows_read": run.input.rows_read,
            "events": run.input.events,
            "markov_order_used": a.markov.as_ref().map(|m| m.chain.order),
            "totals": {"conversions": a.stats.total_conversions, "value": a.stats.total_value},
            "spend_currency": run.spend.as_ref().and_then(|s| s.currency.clone()),
            "headline": report::headline(a),
            "sources": run.input.staged,
            "outputs": [],
            "warnings": a.warnings,
            "timings_ms": self.timings.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        });
        for (k, v) in &self.manifest {
            doc[k] = v.clone();
        }
        doc
    }

    /// The summary of a published run.
    pub fn summary(&self, status: &'static str, run: &RunResult, outputs: Vec<WrittenFile>) -> RunSummary {
        let a = &run.analysis;
        RunSummary {
            status,
            out: self.settings.output.root.as_deref().unwrap_or(Path::new("")).display().to_string(),
            events: run.input.events,
            journeys: a.stats.journeys,
            conversions: a.stats.total_conversions,
            value: a.stats.total_value,
            other_shard_rows: (run.input.other_shards > 0).then_some(run.input.other_shards),
            outputs,
            warnings: a.warnings.clone(),
            elapsed_ms: self.t0.elapsed().as_millis(),
        }
    }
}

/// The campaign sums of the run's recorded journeys (`core::campaigns`), with a campaign
/// column, with the replicates' (a partition's are added up where the partitions meet).
fn campaign_sums(
    a: &analysis::Analysis,
    touch_campaign: Option<&[u32]>,
    (log_units, campaigns): (&[u64], &[String]),
    s: &Settings,
) -> Result<Option<CampaignSums>> {
    let (Some(tc), Some(rec)) = (touch_campaign, a.recorded.as_ref()) else { return Ok(None) };
    let input = SumsInput {
        rec,
        touch_campaign: tc,
        campaigns,
        log_units,
        replicates: s.models.bootstrap_replicates as u32,
        seed: s.models.bootstrap_seed,
    };
    campaigns::partition_sums(a, &input, &s.models).map(Some)
}

/// The (channel, campaign) pairs of the log's touches, packed and sorted (empty without a
/// campaign column).
fn campaign_units(log: &crate::core::event_log::EventLog) -> Vec<u64> {
    let Some(camp) = &log.campaign else { return Vec::new() };
    let mut keys: Vec<u64> = log
        .channel
        .iter()
        .zip(camp)
        .filter(|(c, _)| **c != crate::core::event_log::NO_CHANNEL)
        .map(|(&c, &k)| ((c as u64) << 32) | k as u64)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Journey counts and the path table of an aggregated path table's rows.
fn journeys_of_path_rows(rows: &[engine::PathTableRow], separator: &str) -> Journeys {
    let mut stats = JourneyStats::default();
    let mut kept = Vec::new();
    for (p, c, n, v) in rows {
        let empty = p.split(separator).all(|t| t.trim().is_empty());
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
    let paths = PathTable::from_string_paths(separator, kept);
    for r in &paths.rows {
        let len = r.path.len();
        if stats.path_lengths.len() <= len {
            stats.path_lengths.resize(len + 1, 0);
        }
        stats.path_lengths[len] += (r.conversions + r.nulls).round() as u64;
        stats.touches += ((r.conversions + r.nulls) * len as f64).round() as u64;
    }
    Journeys { paths, stats, fold: None, recorded: None, index: None }
}

/// The name of the segment column's segmentation: the event log's column, or the
/// customers table's.
fn segmentation_name(s: &Settings) -> String {
    match (&s.segments.customers, &s.columns.segment) {
        (Some(_), _) => s.segments.segment.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => "segment".into(),
    }
}

/// Read the event log, or stage every source into one frame and read that
/// (`docs/sources.md`); staged reads report the sources' files and counts.
fn read_events(s: &Settings, events: &str, scope: &ReadScope) -> Result<crate::core::event_log::EventLog> {
    let opts = LoadOptions {
        columns: &s.columns,
        on_invalid: s.journeys.on_invalid_rows,
        scope,
        channel_rules: Some(&s.channel_rules),
        own_channel: false,
    };
    if !s.staged() {
        return engine::load_events(events, &opts);
    }
    read_staged(s, engine::sources::stage(s, scope)?, scope)
}

/// Read the staged frame as an event file, with the counts of staging.
fn read_staged(
    s: &Settings,
    staged: engine::sources::Staged,
    scope: &ReadScope,
) -> Result<crate::core::event_log::EventLog> {
    let mut opts = LoadOptions {
        columns: &s.columns,
        on_invalid: s.journeys.on_invalid_rows,
        scope,
        channel_rules: Some(&s.channel_rules),
        own_channel: false,
    };
    // A shard no person hashes to: an empty partial, as for a file (`engine::check_kept`).
    let empty_shard = ReadScope { allow_empty: true, ..scope.clone() };
    if staged.frame.height() == 0 && staged.other_shards > 0 && scope.shard.is_some() {
        opts.scope = &empty_shard;
    }
    opts.columns = &staged.columns;
    (opts.channel_rules, opts.own_channel) = (staged.channel_rules.as_ref(), true);
    let mut log = engine::load_frame(staged.frame, "the staged sources", &opts)?;
    let sum = &staged.summary;
    log.files = staged.files;
    log.rows_read = sum.sources.iter().map(|c| c.rows_read).sum();
    log.rows_without_consent = sum.sources.iter().map(|c| c.rows_without_consent).sum();
    log.rejected = staged.rejected;
    log.other_shards = staged.other_shards;
    log.staged = Some(staged.summary);
    if !log.is_conversion.iter().any(|&c| c) && !staged.marker_values.is_empty() {
        let (column, value) = (&s.columns.conversion, &s.columns.conversion_value);
        log.warnings.push(engine::read::marker_typo(column, value, &staged.marker_values));
    }
    Ok(log)
}

/// Read events handed over as an Arrow stream (the Python package): the file reader's
/// rules, with "the events" in messages where a file name would be.
fn read_stream(
    s: &Settings,
    stream: engine::arrow::ArrowInput,
    scope: &ReadScope,
) -> Result<crate::core::event_log::EventLog> {
    let opts = LoadOptions {
        columns: &s.columns,
        on_invalid: s.journeys.on_invalid_rows,
        scope,
        channel_rules: Some(&s.channel_rules),
        own_channel: false,
    };
    engine::arrow::load_stream(stream, "the events", &opts)
}

/// The process' peak resident memory so far, in MB (Linux `VmHWM`; None elsewhere): logged
/// at each phase's end (`-v`), so the phase where the peak is reached shows.
fn peak_rss_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
}

/// Load the configured spend file (before any event is read, so a bad one fails fast) and sum
/// it over the run's spend period (`docs/models.md` § Spend).
pub fn load_spend(settings: &Settings) -> Result<Option<SpendTotals>> {
    let Some(p) = &settings.input.spend else { return Ok(None) };
    let (rows, currency) = engine::load_spend(p)?;
    let period = settings.window().map(|w| spend_period(settings, &w));
    Ok(Some(spend::totals(&rows, period, currency)))
}

/// The days of spend a window compares its conversions with (`input.spend_period`).
fn spend_period(settings: &Settings, w: &crate::settings::Window) -> (chrono::NaiveDate, chrono::NaiveDate) {
    let (first, last) = w.dates();
    match settings.input.spend_period {
        SpendPeriod::Window => (first, last),
        SpendPeriod::Lookback => {
            let days = (settings.journeys.max_lookback_micros() as f64 / DAY_MICROS as f64).ceil() as i64;
            (first - chrono::Duration::days(days), last)
        }
    }
}

/// The history `spend_response` fits on: the earlier run dates of the window (up to
/// `spend_response.days − 1` back) whose manifest has the headline model's credit, each with
/// the spend of its own spend period. `headlines` are the manifests' (date, headline) when
/// the caller read them from a store (Spark); otherwise they are read under `output.root`.
pub fn load_history(
    settings: &Settings,
    headlines: Option<Vec<(chrono::NaiveDate, report::Headline)>>,
) -> Result<Vec<crate::core::response::Day>> {
    let (Some(w), Some(p)) = (settings.window(), &settings.input.spend) else { return Ok(Vec::new()) };
    let headlines = headlines.unwrap_or_else(|| guards::history(settings));
    let (rows, currency) = engine::load_spend(p)?;
    let model = headline_model(settings);
    let mut days = Vec::new();
    // Windows of several days overlap from one run date to the next: only every
    // `window.days`-th date back is an independent point of the line.
    let apart = |d: chrono::NaiveDate| (w.run_date.0 - d).num_days() % w.days.max(1) as i64 == 0;
    for (date, h) in headlines.into_iter().filter(|(d, h)| h.model == model && apart(*d)) {
        let day = crate::settings::Window { run_date: crate::settings::RunDate(date), ..w };
        let spend = spend::totals(&rows, Some(spend_period(settings, &day)), currency.clone()).channel;
        days.push(crate::core::response::Day { conversions: h.conversions, spend });
    }
    Ok(days)
}

/// The model of the manifest's headline: Markov when it runs, else the first model.
fn headline_model(settings: &Settings) -> String {
    let m = &settings.models.run;
    let markov = crate::settings::Model::Markov;
    m.iter().find(|x| **x == markov).or(m.first()).map_or(String::new(), |x| x.name().to_owned())
}

/// Load the configured lift experiments (`docs/models.md` § Calibration), before any event
/// is read, so a bad file fails fast.
pub fn load_experiments(settings: &Settings) -> Result<Vec<crate::core::calibration::Experiment>> {
    settings.input.experiments.as_deref().map_or(Ok(Vec::new()), engine::load_experiments)
}

/// The read scope and the reporting range of a run's window (none: read and report all).
pub fn scope_of(settings: &Settings) -> (ReadScope, Option<(i64, i64)>) {
    let Some(w) = settings.window() else { return (ReadScope::default(), None) };
    let (start, end) = w.range();
    let scope = ReadScope {
        range: Some((start - settings.journeys.max_lookback_micros(), end)),
        partition_key: Some(settings.input.partition_key.clone()),
        required_dates: Some(w.dates()),
        shard: None,
        skip_user_names: false,
        batch_rows: None,
        allow_empty: false,
    };
    (scope, Some((start, end)))
}

/// `touchpoint attribute`: read the events (or a path table), attribute, publish.
pub fn attribute(
    settings: Settings,
    shard: Option<(u32, u32)>,
    progress: &dyn Fn(&'static str),
) -> Result<RunSummary> {
    if let Some(s) = shard {
        return shard::attribute_shard(settings, s);
    }
    let paths = settings.input.paths.clone();
    let mut run = Run::new(settings, "attribute", progress);
    let mut result = match paths {
        Some(p) => {
            run.settings.refuse_for(Entry::Paths)?;
            run.command = "attribute --paths";
            run.compute_paths(&p)?
        }
        None => run.compute_events(None)?,
    };
    run.publish(&mut result)
}

/// The pseudonymization key, when `journey_credit` names persons by pseudonym: read from
/// the environment variable the settings name, never from a file or a flag.
pub(crate) fn person_key(settings: &Settings) -> Result<Option<PseudonymKey>> {
    let o = &settings.output;
    if !o.journey_credit || o.person_ids != PersonIds::Pseudonymized {
        return Ok(None);
    }
    match std::env::var(&o.pseudonym_key_env) {
        Ok(k) if !k.is_empty() => Ok(Some(PseudonymKey::new(k.as_bytes()))),
        _ => Err(Error::Config(format!(
            "output.person_ids = \"pseudonymized\" needs a key in the environment variable {} \
             (output.pseudonym_key_env); or set output.person_ids to \"omitted\"",
            o.pseudonym_key_env
        ))),
    }
}

/// The models' options of one run over the events.
fn analyze_options<'a>(
    s: &'a Settings,
    (channels, training): (&'a [String], Option<&'a PathTable>),
    partition: bool,
) -> AnalyzeOptions<'a> {
    AnalyzeOptions {
        base_names: channels,
        models: &s.models,
        time_decay_credit: None,
        sequence_effects: true,
        dedupe: s.journeys.dedupe != crate::settings::Dedupe::None,
        training,
        partition,
    }
}

/// What a run read, for `data_quality` and the manifest.
fn input_summary(log: &EventLog) -> InputSummary {
    InputSummary {
        files: log.files.clone(),
        rows_read: log.rows_read,
        events: log.len() as u64,
        rejected: log.rejected.clone(),
        other_shards: log.other_shards,
        unmatched_channel_rule: log.unmatched_channel_rule,
        rows_without_consent: log.rows_without_consent,
        staged: log.staged.clone(),
    }
}
