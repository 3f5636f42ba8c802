//! Scale-out: attribute one shard of the users, write a mergeable partial aggregate, and
//! merge any number of them into the result of a single run.
//!
//! `attribute --shard i/N` keeps the users whose shard
//! ([`crate::core::event_log::shard_of_bytes`]) is i and writes `partial_paths.parquet` (the
//! path table: path, conversions, nulls, value) and a `manifest.json` holding the partial's
//! metadata ([`PartialMeta`], versioned by [`PARTIAL_FORMAT`]; `docs/scale.md` documents the
//! format). Everything in a partial is a sum, so `merge` adds the partials up in shard order
//! and runs the models once on the merged path table.

mod relationship;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{load_spend, Run, RunSummary};
use crate::core::analysis::{analyze, Analysis, AnalyzeOptions};
use crate::core::bootstrap::{self, Intervals};
use crate::core::campaigns::CampaignSums;
use crate::core::event_log::{InputSummary, UNIT_SEPARATOR};
use crate::core::journeys::{JourneyStats, Journeys};
use crate::core::models::Credits;
use crate::core::paths::{merge_sorted, PathRow, PathTable};
use crate::core::replicates::{Frame, NamedSums, ReplicateSums};
use crate::core::roles::ChannelLags;
use crate::core::table::Table;
use crate::engine::{self, TableSource};
use crate::error::{Error, Result};
use crate::publish::{self, DirOutput, Output};
use crate::report::{self, RunResult, SourceTouches, TableName};
use crate::settings::{Format, Model, Settings};
pub use relationship::SegmentLevel;
pub use relationship::JOURNEY_SCHEMA;
pub(crate) use relationship::{
    finish_journey_rows, merge_campaigns, merge_journey_credit, merge_segments, merge_source_touches,
    segment_levels, JOURNEY_COLUMNS, SEGMENTS,
};

/// The version of the partial format this touchpoint writes and reads (2: the bootstrap's
/// replicate statistics, `partial_replicates.parquet`, and persons weighted by a stable key;
/// 3: a replicate statistic is one row with a list of its values in every replicate).
pub const PARTIAL_FORMAT: u32 = 3;

/// The metadata of a partial aggregate (in its `manifest.json`, under `partial`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartialMeta {
    /// Format version ([`PARTIAL_FORMAT`]); `merge` refuses versions it does not know.
    pub format_version: u32,
    /// This shard's index.
    pub shard: u32,
    /// Number of shards.
    pub shards: u32,
    /// The run's settings (all partials of one merge must agree on
    /// [`Settings::computation`]).
    pub settings: Settings,
    /// Base channels seen in this shard (report names).
    pub channels: Vec<String>,
    /// Path-table channel names (differ from `channels` with the `frequency` transform).
    pub path_channels: Vec<String>,
    /// Path-table channel → index into `channels`.
    pub report_of: Vec<u32>,
    /// Journey counts.
    pub stats: JourneyStats,
    /// Time-decay credit per path-table channel: (conversions, value).
    pub time_decay: Option<Vec<(f64, f64)>>,
    /// What this shard read (including the rows of other shards it skipped).
    pub input: InputSummary,
    /// Per report channel, the counted lags of its touches to their conversions (when the
    /// journeys were recorded).
    pub lags: Option<Vec<(String, ChannelLags)>>,
    /// The channel-group level (`[channel_groups]`): the same metadata over the group
    /// journeys, whose tables are the `partial_group_*` files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Box<PartialMeta>>,
    /// Where this level's rows lie in its path file, `[first, count]`, when levels share
    /// one file (the customer segments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<[u64; 2]>,
    /// The customer segments' levels (`[segments]`), their paths in `partial_segment_paths`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentLevel>,
    /// Touches per (source, channel), when the input has sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_touches: Option<SourceTouches>,
    /// The columns of the partition's `journey_credit` rows (a Spark chunk's: the driver
    /// finishes the rows into these, as one run has them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey_columns: Option<Vec<String>>,
    /// The fingerprint of the key a Spark partition pseudonymized persons with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym_key_fingerprint: Option<String>,
}

/// The files of one level of a partial: the channels, or the channel groups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layer {
    paths: TableName,
    replicates: Option<TableName>,
    lags: Option<TableName>,
}

impl Layer {
    /// Whether this is the channel level (not the groups' or a segment's).
    pub(crate) fn is_channels(&self) -> bool {
        matches!(self.paths, TableName::PartialPaths)
    }
}

/// The channel level of a partial.
pub(crate) const CHANNELS: Layer = Layer {
    paths: TableName::PartialPaths,
    replicates: Some(TableName::PartialReplicates),
    lags: Some(TableName::PartialLags),
};
/// The channel-group level of a partial.
pub(crate) const GROUPS: Layer = Layer {
    paths: TableName::PartialGroupPaths,
    replicates: Some(TableName::PartialGroupReplicates),
    lags: Some(TableName::PartialGroupLags),
};

impl Layer {
    fn file(dir: &Path, t: TableName) -> PathBuf {
        dir.join(format!("{}.parquet", t.as_str()))
    }

    /// This level's path table in a partial.
    pub(crate) fn paths_file(self, dir: &Path) -> PathBuf {
        Layer::file(dir, self.paths)
    }

    /// This level's replicate statistics in a partial (none for a level without intervals).
    pub(crate) fn replicates_file(self, dir: &Path) -> Option<PathBuf> {
        self.replicates.map(|t| Layer::file(dir, t))
    }

    /// The tables of one level of a shard: its path table, its lags (tens of thousands of
    /// (channel, minute) counts: a table, not the manifest) and its replicate statistics.
    fn tables(self, a: &Analysis, meta: &mut PartialMeta, replicates: Option<Vec<NamedSums>>) -> Vec<Table> {
        let named = |mut t: Table, n: TableName| {
            t.name = n.as_str();
            t
        };
        let mut t = vec![named(report::partial_paths(a, UNIT_SEPARATOR), self.paths)];
        if let (Some(l), Some(n)) = (meta.lags.take(), self.lags) {
            t.push(named(report::partial_lags(&l), n));
        }
        if let (Some(r), Some(n)) = (replicates, self.replicates) {
            t.push(named(report::partial_replicates(r), n));
        }
        t
    }
}

/// Run shard `i` of `n` and write its partial aggregate to `output.root`.
pub fn attribute_shard(settings: Settings, shard: (u32, u32)) -> Result<RunSummary> {
    let mut run = Run::new(settings, "attribute --shard", &|_| {});
    let wait = std::time::Duration::from_secs(run.settings.output.lock_timeout_seconds);
    run.set_output(Output::Dir(DirOutput::open(&run.out()?, wait)?));
    let mut result = run.compute_events(Some(shard))?;
    let mut meta = partial_meta(&run.settings, &result, shard);
    let (channel_reps, group_reps) = std::mem::take(&mut run.replicates);
    let mut tables = CHANNELS.tables(&result.analysis, &mut meta, channel_reps);
    if let (Some(g), Some(gm)) = (&result.groups, meta.groups.as_mut()) {
        tables.extend(GROUPS.tables(g, gm, group_reps));
    }
    let (segments, segment_paths) = relationship::segment_levels(&run.settings, &result, shard);
    (meta.segments, meta.source_touches) = (segments, result.source_touches.clone());
    tables.extend(segment_paths);
    if run.settings.output.journey_credit {
        tables.push(report::partial_journey_credit(&result, &run.settings)?);
    }
    if run.settings.campaigns() {
        // An empty shard has no journeys, and writes no sums but their columns.
        let draws = 1 + run.settings.models.bootstrap_replicates;
        let sums = result.campaign_sums.take().unwrap_or(CampaignSums { draws, ..Default::default() });
        tables.push(Table::new(TableName::PartialCampaigns.as_str(), sums.columns()));
    }
    // Partials are always Parquet: they are machine-to-machine.
    let Some(Output::Dir(output)) = run.output() else {
        return Err(Error::Internal("a shard's output is a plain directory".into()));
    };
    let sources: Vec<&dyn TableSource> = tables.iter().map(|t| t as &dyn TableSource).collect();
    let written = output.publish(Format::Parquet, &sources, &[], |files| {
        json!({
            "tool": "touchpoint",
            "version": env!("CARGO_PKG_VERSION"),
            "command": "attribute --shard",
            "status": "partial",
            "partial": meta,
            "outputs": files,
        })
    })?;
    Ok(run.summary("partial", &result, written))
}

/// The metadata of a partial computed from `result`.
pub(crate) fn partial_meta(settings: &Settings, result: &RunResult, shard: (u32, u32)) -> PartialMeta {
    let mut meta = layer_meta(settings, &result.analysis, &result.input, shard);
    meta.groups = result.groups.as_ref().map(|g| Box::new(layer_meta(settings, g, &result.input, shard)));
    meta
}

/// The metadata of one level (channels, channel groups or a segment) of a partial.
fn layer_meta(settings: &Settings, a: &Analysis, input: &InputSummary, shard: (u32, u32)) -> PartialMeta {
    let time_decay = a
        .credits
        .iter()
        .find(|(m, _)| *m == Model::TimeDecay)
        .map(|(_, c)| c.conversions.iter().copied().zip(c.value.iter().copied()).collect());
    PartialMeta {
        format_version: PARTIAL_FORMAT,
        shard: shard.0,
        shards: shard.1,
        settings: settings.clone(),
        channels: a.report_channels.clone(),
        path_channels: a.paths.channels.clone(),
        report_of: a.report_of.clone(),
        stats: a.stats.clone(),
        time_decay,
        input: input.clone(),
        lags: a.lags.as_ref().map(|l| a.report_channels.iter().cloned().zip(l.iter().cloned()).collect()),
        groups: None,
        rows: None,
        segments: Vec::new(),
        source_touches: None,
        journey_columns: None,
        pseudonym_key_fingerprint: None,
    }
}

pub(crate) fn read_meta(dir: &Path) -> Result<PartialMeta> {
    let mpath = dir.join(publish::MANIFEST);
    let text = std::fs::read_to_string(&mpath).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            path: mpath.clone(),
            problem: "not a partial aggregate (no manifest.json)".into(),
        },
        _ => Error::io(&mpath, e),
    })?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::bad_input(&mpath, None, format!("not JSON: {e}")))?;
    if !doc["partial"].is_object() {
        return Err(Error::bad_input(
            &mpath,
            None,
            "not a partial aggregate (its manifest has no `partial`: a report?); merge the directories of \
             `attribute --shard` runs",
        ));
    }
    let version = doc["partial"]["format_version"].as_u64();
    // Version 2 differs only in its replicate statistics, whose reader refuses them by name.
    if version != Some(PARTIAL_FORMAT as u64) && version != Some(2) {
        return Err(Error::bad_input(
            &mpath,
            None,
            format!(
                "partial format version {}: this touchpoint reads version {PARTIAL_FORMAT}; rerun the shards \
                 with this version",
                version.map_or("missing".into(), |v| v.to_string())
            ),
        ));
    }
    let mut meta: PartialMeta = serde_json::from_value(doc["partial"].clone())
        .map_err(|e| Error::bad_input(&mpath, None, format!("not a touchpoint partial aggregate: {e}")))?;
    verify_outputs(dir, &mpath, &doc)?;
    load_lags(dir, &mut meta, CHANNELS)?;
    if let Some(g) = meta.groups.as_deref_mut() {
        load_lags(dir, g, GROUPS)?;
        check_meta(&mpath, g)?;
    }
    for l in &meta.segments {
        check_meta(&mpath, &l.meta)?;
    }
    check_meta(&mpath, &meta)?;
    Ok(meta)
}

/// Every file the partial's manifest lists is there and is the file the shard wrote (its
/// SHA-256 and size): a missing, swapped, truncated or edited file is refused before any
/// table is read, never merged into a wrong answer.
fn verify_outputs(dir: &Path, mpath: &Path, doc: &serde_json::Value) -> Result<()> {
    let bad = |p: &str| Error::bad_input(mpath, None, format!("inconsistent partial manifest: {p}"));
    let outputs = doc["outputs"].as_array().ok_or_else(|| bad("no list of outputs"))?;
    for o in outputs {
        let (Some(file), Some(sha), Some(bytes)) =
            (o["file"].as_str(), o["sha256"].as_str(), o["bytes"].as_u64())
        else {
            return Err(bad("an output without its file, sha256 and bytes"));
        };
        if Path::new(file).components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(bad("an output outside the partial's directory"));
        }
        let path = dir.join(file);
        if !path.exists() {
            return Err(Error::bad_input(&path, None, "missing: the partial's manifest.json lists it"));
        }
        if publish::sha256_file(&path)? != (sha.to_owned(), bytes) {
            return Err(Error::bad_input(
                &path,
                None,
                "is not the file the shard wrote (its SHA-256 and size in manifest.json differ): rerun that shard",
            ));
        }
    }
    Ok(())
}

fn load_lags(dir: &Path, meta: &mut PartialMeta, layer: Layer) -> Result<()> {
    let Some(file) = layer.lags.map(|t| Layer::file(dir, t)) else { return Ok(()) };
    if meta.lags.is_none() && file.exists() {
        meta.lags = Some(engine::read_partial_lags(&file)?);
    }
    Ok(())
}

/// A hand-edited or corrupted manifest must fail with a message, never a panic.
fn check_meta(mpath: &Path, m: &PartialMeta) -> Result<()> {
    let bad = |p: &str| Err(Error::bad_input(mpath, None, format!("inconsistent partial manifest: {p}")));
    if m.shards == 0 || m.shard >= m.shards {
        return bad("shard index out of range");
    }
    if m.report_of.len() != m.path_channels.len()
        || m.report_of.iter().any(|&r| r as usize >= m.channels.len())
    {
        return bad("report_of does not match the channel lists");
    }
    if m.time_decay.as_ref().is_some_and(|t| t.len() != m.path_channels.len()) {
        return bad("time_decay does not match path_channels");
    }
    if m.lags.iter().flatten().any(|(name, _)| !m.channels.contains(name)) {
        return bad("lags of a channel the partial does not list");
    }
    Ok(())
}

/// Check that a set of partials is complete and consistent (before any table is read); an
/// empty set is a configuration error, for every merge that calls this.
pub(crate) fn check_set(parts: &[(PathBuf, PartialMeta)]) -> Result<()> {
    let Some((first_dir, first)) = parts.first() else {
        return Err(Error::Config("merge needs at least one partial".into()));
    };
    let n = first.shards;
    let computation = first.settings.computation();
    for (d, m) in parts {
        if m.shards != n {
            return Err(Error::bad_input(
                d,
                None,
                format!("shard of {} shards, but {} has {n}", m.shards, first_dir.display()),
            ));
        }
        if m.settings.computation() != computation {
            let key = first_difference(&m.settings.computation(), &computation, "");
            return Err(Error::bad_input(
                d,
                None,
                format!(
                    "settings differ from {}'s ({key}): rerun the shards with one set of settings",
                    first_dir.display()
                ),
            ));
        }
    }
    for w in parts.windows(2) {
        if w[0].1.shard == w[1].1.shard {
            return Err(Error::bad_input(&w[1].0, None, format!("shard {} appears twice", w[1].1.shard)));
        }
    }
    let present: Vec<u32> = parts.iter().map(|p| p.1.shard).collect();
    let missing: Vec<String> = (0..n).filter(|i| !present.contains(i)).map(|i| i.to_string()).collect();
    if !missing.is_empty() {
        return Err(Error::bad_input(
            first_dir,
            None,
            format!(
                "missing shard(s) {} of {n}: a merge of some users only would be a wrong answer",
                missing.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The dotted key of the first setting in which two settings' JSON differ.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> String {
    if let (Some(x), Some(y)) = (a.as_object(), b.as_object()) {
        for (k, v) in x {
            let w = y.get(k).unwrap_or(&serde_json::Value::Null);
            if v != w {
                let key = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                return first_difference(v, w, &key);
            }
        }
        if let Some(k) = y.keys().find(|k| !x.contains_key(*k)) {
            return if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
        }
    }
    at.to_owned()
}

/// Union of sorted name lists.
fn union(lists: impl Iterator<Item = Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> = lists.flatten().collect();
    all.sort();
    all.dedup();
    all
}

fn index_of(names: &[String], name: &str) -> u32 {
    names.binary_search_by(|c| c.as_str().cmp(name)).unwrap_or_else(|_| unreachable!("a name of the union"))
        as u32
}

/// Read one partial's path table (`file`) into merged channel ids.
fn read_part(file: &Path, m: &PartialMeta, path_channels: &[String]) -> Result<Vec<PathRow>> {
    let (paths, conv, nulls, value) = match m.rows {
        Some([first, count]) => engine::read_partial_block(file, first, count)?,
        None => engine::read_partial_paths(file)?,
    };
    let mut part: Vec<PathRow> = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        let mut ids = Vec::new();
        for name in path.split(UNIT_SEPARATOR) {
            if !m.path_channels.iter().any(|c| c == name) {
                return Err(Error::bad_input(
                    file,
                    Some("path"),
                    format!("row {i}: a channel the manifest does not list"),
                ));
            }
            ids.push(index_of(path_channels, name));
        }
        part.push(PathRow { path: ids, conversions: conv[i], nulls: nulls[i], value: value[i] });
    }
    // Ids map monotonically into the union, so a partial written sorted stays sorted; sort
    // anyway if one was not (each path appears once per partial).
    if !part.is_sorted_by(|a, b| a.path < b.path) {
        part.par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
    }
    Ok(part)
}

/// Merge partial aggregates into the result of one run over all their users.
pub fn merge(dirs: &[PathBuf]) -> Result<(RunResult, Settings)> {
    if dirs.is_empty() {
        return Err(Error::Config("merge needs at least one partial".into()));
    }
    let mut parts: Vec<(PathBuf, PartialMeta)> = Vec::new();
    for d in dirs {
        parts.push((d.clone(), read_meta(d)?));
    }
    parts.sort_by_key(|p| p.1.shard);
    check_set(&parts)?;
    let settings = parts[0].1.settings.clone();
    let (mut analysis, input) = merge_layer(&parts, CHANNELS, &settings)?;
    // The group level, when every shard has one (they ran with the same settings).
    let group_parts: Option<Vec<(PathBuf, PartialMeta)>> =
        parts.iter().map(|(d, m)| m.groups.as_ref().map(|g| (d.clone(), (**g).clone()))).collect();
    let groups = match group_parts {
        Some(g) => Some(merge_layer(&g, GROUPS, &settings)?.0),
        None => None,
    };
    analysis.warnings.extend(merge_warnings(&settings, analysis.intervals.is_some(), groups.is_some()));
    let mut plain = settings.clone();
    plain.models.bootstrap_replicates = 0;
    let segments =
        merge_segments(&parts, &settings, &analysis, |list| Ok(merge_layer(list, SEGMENTS, &plain)?.0))?;
    let result = RunResult {
        campaign: merge_campaigns(&parts, &settings, &analysis)?,
        journey_credit: merge_journey_credit(&parts, &settings, &analysis)?,
        source_touches: merge_source_touches(parts.iter().map(|p| &p.1)),
        spend: load_spend(&settings)?,
        experiments: super::load_experiments(&settings)?,
        groups,
        segments,
        ..RunResult::new(analysis, input)
    };
    Ok((result, settings))
}

/// One level (channels or channel groups) of the partials merged: the path tables merged
/// and analysed, the lags and the replicates summed and solved.
fn merge_layer(
    parts: &[(PathBuf, PartialMeta)],
    layer: Layer,
    settings: &Settings,
) -> Result<(Analysis, InputSummary)> {
    let metas: Vec<PartialMeta> = parts.iter().map(|p| p.1.clone()).collect();
    let merged = merge_metas(&metas);
    let mut tables: Vec<Vec<PathRow>> = Vec::new();
    for (d, m) in parts {
        tables.push(read_part(&layer.paths_file(d), m, &merged.path_channels)?);
    }
    let rows = merge_sorted(tables);
    let Merged { base, path_channels, report_of, stats, time_decay, input, lags } = merged;
    let frequency = path_channels != base;
    let paths = PathTable { channels: path_channels, rows };
    let journeys =
        Journeys { paths, stats, fold: frequency.then_some(report_of), recorded: None, index: None };
    let opts = AnalyzeOptions {
        base_names: &base,
        models: &settings.models,
        time_decay_credit: time_decay.as_ref(),
        // As one run: the sequences of channels, not of groups.
        sequence_effects: layer.is_channels(),
        dedupe: settings.journeys.dedupe != crate::settings::Dedupe::None,
        training: None,
        partition: false,
    };
    let mut analysis = analyze(journeys, &opts)?;
    analysis.lags = lags;
    let file = |d: &Path| layer.replicates_file(d);
    analysis.intervals = merged_intervals(&analysis, Frame::of(&analysis), settings, parts, file)?;
    Ok((analysis, input))
}

/// The intervals of a merge: every partial's named replicate statistics added up in the
/// merged analysis' frame, in shard order, and solved replicate by replicate as one run
/// solves them (`core::replicates`).
pub(crate) fn merged_intervals(
    a: &Analysis,
    frame: Frame,
    settings: &Settings,
    parts: &[(PathBuf, PartialMeta)],
    file_of: impl Fn(&Path) -> Option<PathBuf>,
) -> Result<Option<Intervals>> {
    let reps = settings.models.bootstrap_replicates;
    if reps == 0 {
        return Ok(None);
    }
    if parts.iter().any(|(d, _)| file_of(d).is_none()) {
        return Ok(None);
    }
    let sources = parts.iter().filter_map(|(d, _)| file_of(d)).map(|file| {
        if !file.exists() {
            return Err(Error::bad_input(&file, None, "missing: the partial has no replicate statistics"));
        }
        Ok((engine::read_partial_replicates(&file)?, file))
    });
    solve_replicates(a, frame, settings, sources).map(Some)
}

/// Named replicate rows from any number of sources (partials' files, a Spark job's summed
/// rows; each named by a path in errors), added up in the order given and solved replicate
/// by replicate into the analysis' intervals.
pub(crate) fn solve_replicates(
    a: &Analysis,
    mut frame: Frame,
    settings: &Settings,
    sources: impl Iterator<Item = Result<(Vec<NamedSums>, PathBuf)>>,
) -> Result<Intervals> {
    if let Some(m) = &a.markov {
        frame.linearize(&m.chain, settings.models.markov_replicates);
    }
    let names = frame.names();
    let reps = settings.models.bootstrap_replicates;
    let mut sums = vec![ReplicateSums::zeros(&frame); reps];
    for source in sources {
        let (rows, file) = source?;
        for (i, row) in rows.iter().enumerate() {
            let bad = |p: String| Error::bad_input(&file, None, format!("row {i}: {p}"));
            let Some(slot) = names.slot(row.kind, &row.model, &row.from, &row.to).map_err(bad)? else {
                continue;
            };
            if let Some(l) = row.numbers.iter().map(Vec::len).find(|&l| l != 0 && l != reps) {
                return Err(bad(format!("{l} replicates, the run has {reps}")));
            }
            let at = |x: &Vec<f64>, r: usize| x.get(r).copied().unwrap_or(0.0);
            for (r, s) in sums.iter_mut().enumerate() {
                slot.add(s, row.numbers.each_ref().map(|x| at(x, r)));
            }
        }
    }
    let solved = frame.solve_many(&sums)?;
    Ok(bootstrap::fold(a, settings.models.interval_level, solved))
}

/// What a merge leaves out that one run would write, said in its summary and manifest.
pub(crate) fn merge_warnings(settings: &Settings, intervals: bool, groups: bool) -> Vec<String> {
    let mut w = Vec::new();
    if !intervals && settings.models.bootstrap_replicates > 0 {
        w.push(
            "no intervals: the partials carry no replicate statistics (shards run with bootstrap_replicates = 0, \
             or a format-2 partial without them); rerun the shards"
                .into(),
        );
    }
    if !settings.channel_groups.is_empty() && !groups {
        w.push(
            "no channel_group_attribution: the partials have no group level (shards of another version?); \
             rerun the shards, or sum channel_attribution over each group's channels (docs/scale.md)"
                .into(),
        );
    }
    w
}

/// What the partials' metadata adds up to (everything but the path tables).
pub(crate) struct Merged {
    /// Base channels, sorted (report names).
    pub base: Vec<String>,
    /// Path-table channels, sorted.
    pub path_channels: Vec<String>,
    /// Path-table channel → index into `base`.
    pub report_of: Vec<u32>,
    /// Journey counts, summed.
    pub stats: JourneyStats,
    /// Time-decay credit per path-table channel, summed.
    pub time_decay: Option<Credits>,
    /// What was read, summed (files listed once).
    pub input: InputSummary,
    /// Lags to conversion per base channel, summed (when the partials counted them).
    pub lags: Option<Vec<ChannelLags>>,
}

/// Add up the metadata of partials (in the given order).
pub(crate) fn merge_metas(metas: &[PartialMeta]) -> Merged {
    let base = union(metas.iter().map(|m| m.channels.clone()));
    let path_channels = union(metas.iter().map(|m| m.path_channels.clone()));
    let mut report_of = vec![0u32; path_channels.len()];
    let mut stats = JourneyStats::default();
    let mut td: Option<Credits> = None;
    let mut input = InputSummary::default();
    let mut lags: Option<Vec<ChannelLags>> = None;
    for m in metas {
        for (name, l) in m.lags.iter().flatten() {
            let all = lags.get_or_insert_with(|| vec![ChannelLags::default(); base.len()]);
            all[index_of(&base, name) as usize].add(l);
        }
        for (i, name) in m.path_channels.iter().enumerate() {
            report_of[index_of(&path_channels, name) as usize] =
                index_of(&base, &m.channels[m.report_of[i] as usize]);
        }
        stats.merge(&m.stats);
        merge_input(&mut input, &m.input);
        if let Some(t) = &m.time_decay {
            let c = td.get_or_insert_with(|| Credits::zeros(path_channels.len()));
            for (i, (conv, val)) in t.iter().enumerate() {
                let j = index_of(&path_channels, &m.path_channels[i]) as usize;
                c.conversions[j] += conv;
                c.value[j] += val;
            }
        }
    }
    input.files.sort_by(|a, b| a.path.cmp(&b.path));
    input.files.dedup_by(|a, b| a.path == b.path);
    if metas.iter().any(|m| m.lags.is_some()) && lags.is_none() {
        lags = Some(vec![ChannelLags::default(); base.len()]);
    }
    Merged { base, path_channels, report_of, stats, time_decay: td, input, lags }
}

fn merge_input(into: &mut InputSummary, m: &InputSummary) {
    into.files.extend(m.files.iter().cloned());
    into.rows_read += m.rows_read;
    into.events += m.events;
    into.unmatched_channel_rule += m.unmatched_channel_rule;
    into.rows_without_consent += m.rows_without_consent;
    if let Some(st) = &m.staged {
        into.staged.get_or_insert_with(Default::default).add(st);
    }
    for (reason, k) in &m.rejected {
        *into.rejected.entry(*reason).or_insert(0) += k;
    }
}

/// A merge must not publish over one of its own partials (the partial would be replaced by
/// the report, and the next merge would find no partial there).
pub(crate) fn check_out(dirs: &[PathBuf], out: &Path) -> Result<()> {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    let o = canon(out);
    if dirs.iter().any(|d| d == out || (o.is_some() && canon(d) == o)) {
        return Err(Error::Config(format!(
            "--out {} is one of the partials being merged: write the merge to another directory",
            out.display()
        )));
    }
    Ok(())
}

/// `touchpoint merge`: merge partials and publish the tables like `attribute` would.
pub fn merge_and_publish(dirs: &[PathBuf], out: &Path) -> Result<RunSummary> {
    check_out(dirs, out)?;
    let t = std::time::Instant::now();
    let (mut result, mut settings) = merge(dirs)?;
    result.analysis.warnings.iter().for_each(|w| tracing::warn!("{w}"));
    settings.output.root = Some(out.to_path_buf());
    let mut run = Run::new(settings, "merge", &|_| {});
    run.phase("merge", |_| Ok(t.elapsed()))?;
    run.publish(&mut result)
}
