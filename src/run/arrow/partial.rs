//! A Spark partition's partial (a chunk of whole users, or the staged rows of whole persons)
//! and the executors' finish of `journey_credit` (`docs/scale.md` § Spark).

use crate::core::event_log::UNIT_SEPARATOR;
use crate::core::replicates;
use crate::core::table::{Table, Values};
use crate::engine::arrow::{self as ffi, ArrowArrayStream, ArrowInput};
use crate::error::{Error, Result};
use crate::report::{self, TableName};
use crate::run::shard::partial_meta;
use crate::run::Run;
use crate::settings::{MarkovOrder, Model, Settings};

use super::{statistics_of_paths, SEP};

/// What a Spark partial is computed from.
pub enum PartialInput {
    /// A chunk of whole users, handed over as a stream of events.
    Stream(ArrowInput),
    /// The staged rows of whole persons from the distributed read ([`super::stage_file`]),
    /// with the job's choice among repeated conversion ids joined in, and the read's plan
    /// (JSON, from [`super::split_plan`]).
    StagedRows(ArrowInput, String),
}

/// One partition of whole users (a Spark chunk, or staged rows of whole persons): the partial
/// path table, its metadata as JSON (the shard format's `partial` object), and with
/// intervals on its replicates' named statistics (`partial_replicates`' columns), which
/// add up across partitions as a shard's do. With a campaign column, also its campaign
/// sums (`partial_campaigns`' columns); with `journey_credit`, its rows (unsplit
/// `markov_journey`, with the person's order key: [`finish_journey_credit`] finishes them).
pub fn partial(settings: Settings, input: PartialInput) -> Result<Partial> {
    let mut chunk = settings.clone();
    chunk.output.root = None;
    if chunk.models.bootstrap_replicates == 0 && !settings.campaigns() {
        // Without intervals a chunk needs only its path table and time decay (touch times);
        // the models run on the driver, once. With them, the replicates' sums need every
        // model's split of the chunk's paths and the chunk's chain; the campaign sums need
        // every model's touch weights. The journeys' credit needs the models it has rows of
        // (its markov_journey rows are unsplit, but name the chain's channels).
        let journeys =
            |m: &Model| settings.output.journey_credit && !matches!(m, Model::Markov | Model::ShapleyRate);
        chunk.models.run.retain(|m| *m == Model::TimeDecay || journeys(m));
        if matches!(chunk.models.markov_order, MarkovOrder::Auto { .. }) {
            // The order is chosen on the driver from the summed fold counts; nothing the
            // chunk writes then depends on its own chain's order (unsplit rows name channels).
            chunk.models.markov_order = MarkovOrder::Fixed(1);
        }
    }
    let mut run = Run::new(chunk, "partial", &|_| {});
    run.chunk = true;
    run.stream = Some(match input {
        PartialInput::Stream(events) => events,
        PartialInput::StagedRows(rows, plan) => {
            run.staged_rows = Some(super::staging::plan_of(&plan)?);
            rows
        }
    });
    let result = run.compute_events(None)?;
    let mut meta = partial_meta(&settings, &result, (0, 1));
    let (levels, segment_paths) = crate::run::shard::segment_levels(&settings, &result, (0, 1));
    let segment_paths = segment_paths.map(|t| keyed_segment_paths(t, &levels)).transpose()?;
    meta.segments = levels;
    meta.source_touches = result.source_touches.clone();
    // The key this partition pseudonymized with (the run read it once, from its environment).
    let fingerprint = run.manifest.get("pseudonym_key_fingerprint").and_then(|v| v.as_str());
    meta.pseudonym_key_fingerprint = fingerprint.map(str::to_owned);
    let journey_credit = match settings.output.journey_credit {
        true => Some(report::partial_journey_credit(&result, &run.settings)?),
        false => None,
    };
    meta.journey_columns = journey_credit.as_ref().map(|t| {
        let partition_only = ["person_order_hi", "person_order_lo", "journey"];
        t.columns.iter().map(|c| c.0.to_owned()).filter(|c| !partition_only.contains(&c.as_str())).collect()
    });
    let json = serde_json::to_string(&meta).map_err(|e| Error::Internal(format!("partial metadata: {e}")))?;
    let paths = ffi::export_table(&report::partial_paths(&result.analysis, UNIT_SEPARATOR))?;
    let export_replicates = |rows: Option<Vec<replicates::NamedSums>>| -> Result<Option<ArrowArrayStream>> {
        rows.map(|r| ffi::export_table(&report::partial_replicates(r))).transpose()
    };
    let (channel_reps, group_reps) = std::mem::take(&mut run.replicates);
    let campaigns = match result.campaign_sums {
        Some(sums) => Some(ffi::export_table(&Table::new("partial_campaigns", sums.columns()))?),
        None => None,
    };
    let group_paths = match &result.groups {
        Some(g) => Some(ffi::export_table(&report::partial_paths(g, UNIT_SEPARATOR))?),
        None => None,
    };
    // Every statistic of the chunk's paths is a sum over paths, so Spark sums the chunks'
    // (the distinct paths excepted: the job counts them on the merged paths).
    let statistics = statistics_of_paths(&settings, result.analysis.paths.clone())?;
    let group_statistics =
        result.groups.as_ref().map(|g| statistics_of_paths(&settings, g.paths.clone())).transpose()?;
    Ok(Partial {
        meta: json,
        paths,
        statistics,
        group_statistics,
        replicates: export_replicates(channel_reps)?,
        campaigns,
        group_paths,
        group_replicates: export_replicates(group_reps)?,
        segment_paths,
        journey_credit: journey_credit.as_ref().map(ffi::export_table).transpose()?,
    })
}

/// How the executors finish a distributed run's `journey_credit` rows: the columns one run
/// writes, and the merged fit's `markov_journey` split (JSON, from [`solve`]).
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct JourneyFinish {
    pub(super) columns: Vec<String>,
    pub(super) split: Option<report::MarkovSplit>,
}

/// One Spark partition of `journey_credit` rows, sorted in one run's order (by the
/// person's order key, the journey, and the row's place in its chunk), finished: `journey`
/// (each row's journey's number in the whole run, from 1) names the journey when persons
/// are omitted, `markov_journey` rows are split by the merged fit (`finish`, from
/// [`Solved::journey`]), and only the columns one run writes are kept, in its order.
pub fn finish_journey_credit(
    settings: &Settings,
    finish: &str,
    rows: ArrowInput,
) -> Result<ArrowArrayStream> {
    let finish: JourneyFinish =
        serde_json::from_str(finish).map_err(|e| Error::Internal(format!("journey_credit's finish: {e}")))?;
    let mut have =
        ffi::read_table(rows, TableName::JourneyCredit.as_str(), &crate::run::shard::JOURNEY_COLUMNS)?
            .columns;
    let mut take = |name: &str| -> Result<Values> {
        let at = have.iter().position(|c| c.0 == name);
        let at = at.ok_or_else(|| Error::Internal(format!("journey_credit rows without `{name}`")))?;
        Ok(have.swap_remove(at).1)
    };
    let Values::U64(number) = take("journey")? else {
        return Err(Error::Internal("journey_credit rows whose journey numbers are not uint64".into()));
    };
    let mut columns = Vec::with_capacity(finish.columns.len());
    for name in &finish.columns {
        let c = crate::run::shard::JOURNEY_COLUMNS.iter().find(|k| **k == name.as_str());
        let c = c.ok_or_else(|| Error::Internal(format!("`{name}` is no journey_credit column")))?;
        columns.push((*c, take(c)?));
    }
    let t = Table::new(TableName::JourneyCredit.as_str(), columns);
    let mut t = crate::run::shard::finish_journey_rows(t, &number, settings, finish.split.as_ref())?;
    if let Some(days) = report::run_date(settings) {
        let n = t.height();
        t.prepend("run_date", Values::Date(vec![days; n]));
    }
    ffi::export_table(&t)
}

/// A segment's key across chunks: the customer status flag, the segmentation and the
/// segment, joined by U+001F (a chunk's level numbers are its own).
fn segment_key(l: &crate::run::shard::SegmentLevel) -> String {
    format!("{}{SEP}{}{SEP}{}", u8::from(l.status), l.segmentation, l.segment)
}

/// A chunk's `partial_segment_paths` with each row's level number replaced by its
/// segment's key (`segment`), exported.
fn keyed_segment_paths(mut t: Table, levels: &[crate::run::shard::SegmentLevel]) -> Result<ArrowArrayStream> {
    let keys: Vec<String> = levels.iter().map(segment_key).collect();
    let Some((_, Values::U32(level))) = t.columns.first() else {
        return Err(Error::Internal("segment paths without their level".into()));
    };
    let named = Values::Str(level.iter().map(|&l| keys[l as usize].clone()).collect());
    t.columns[0] = ("segment", named);
    ffi::export_table(&t)
}

/// A Spark chunk's partial (see [`partial`]).
pub struct Partial {
    /// The shard format's `partial` object, as JSON.
    pub meta: String,
    /// The partial path table.
    pub paths: ArrowArrayStream,
    /// The path statistics of the chunk's paths ([`super::path_statistics`]' columns).
    pub statistics: ArrowArrayStream,
    /// The channel-group level's path statistics, with `[channel_groups]`.
    pub group_statistics: Option<ArrowArrayStream>,
    /// The replicates' named statistics, with intervals on.
    pub replicates: Option<ArrowArrayStream>,
    /// The campaign sums, with a campaign column.
    pub campaigns: Option<ArrowArrayStream>,
    /// The channel-group level's partial path table, with `[channel_groups]`.
    pub group_paths: Option<ArrowArrayStream>,
    /// The channel-group level's replicate statistics, with groups and intervals.
    pub group_replicates: Option<ArrowArrayStream>,
    /// Every customer segment's partial path table, rows keyed by `segment`, with
    /// `[segments]`.
    pub segment_paths: Option<ArrowArrayStream>,
    /// The partition's `journey_credit` rows (`partial_journey_credit`'s columns), with
    /// `output.journey_credit`.
    pub journey_credit: Option<ArrowArrayStream>,
}
