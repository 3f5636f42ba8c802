//! The report layer: a run's results as tables (one [`TableName`] registry, fixed columns
//! and row order) and as `report.html`, the page for media buyers. Plain Rust: the engine
//! encodes the tables.

mod calibration;
mod charts;
mod compare;
mod evaluation;
mod html;
mod journey;
mod names;
mod relationship;
mod response;
mod sections;
mod tables;
mod timing;

use std::collections::BTreeMap;

pub use compare::{comparisons, Comparison};
pub use evaluation::{large_sample, Evaluation};
pub use html::{html, TOP_PATHS};
pub(crate) use journey::finish_markov_journey;
pub use journey::partial_journey_credit;
pub use journey::MarkovSplit;
pub use names::TableName;
pub use tables::path_summary_rows;

use crate::core::analysis::{Analysis, CampaignCredits};
use crate::core::event_log::{InputSummary, UserNames};
use crate::core::spend::SpendTotals;
use crate::core::table::{Table, Values};
use crate::error::Result;
use crate::settings::Settings;

/// The results of one run, ready to become tables.
#[derive(Debug)]
pub struct RunResult {
    /// Channel-level analysis.
    pub analysis: Analysis,
    /// Campaign-level credits, when a campaign column is set.
    pub campaign: Option<CampaignCredits>,
    /// A partition's campaign sums, which its merge solves (`core::campaigns`).
    pub campaign_sums: Option<crate::core::campaigns::CampaignSums>,
    /// User names (for per-journey output).
    pub users: UserNames,
    /// What was read.
    pub input: InputSummary,
    /// Spend over the run's period, when a spend file is configured.
    pub spend: Option<SpendTotals>,
    /// The group-level analysis, when channel groups are configured.
    pub groups: Option<Analysis>,
    /// Per customer segment, when segments are configured.
    pub segments: Vec<crate::core::analysis::SegmentAnalysis>,
    /// The conversion id and type of each recorded journey, when the input has them.
    pub journey_conversions: JourneyConversions,
    /// Touches per (source, channel), when the input has sources.
    pub source_touches: Option<SourceTouches>,
    /// The order key of each dense user ([`crate::core::event_log::EventLog::order_key`]),
    /// kept when a shard writes per-journey credit.
    pub user_order: Vec<u128>,
    /// `journey_credit` already built (a merge concatenates the shards' rows).
    pub journey_credit: Option<Table>,
    /// Lift experiments to calibrate to (`input.experiments`), read by every entry point.
    pub experiments: Vec<crate::core::calibration::Experiment>,
    /// The known truth of a generated world (`touchpoint evaluate` only).
    pub evaluation: Option<Evaluation>,
    /// Earlier run dates' headline credit and spend (`spend_response`), read by the run layer
    /// from the published manifests.
    pub history: Vec<crate::core::response::Day>,
}

impl RunResult {
    /// The result of a run that has only its channel analysis and input (a path table, a
    /// merge, the distributed fit); the callers set what else they have.
    pub fn new(analysis: Analysis, input: InputSummary) -> RunResult {
        RunResult {
            analysis,
            input,
            campaign: None,
            campaign_sums: None,
            users: UserNames::default(),
            spend: None,
            groups: None,
            segments: Vec::new(),
            journey_conversions: JourneyConversions::default(),
            source_touches: None,
            user_order: Vec::new(),
            journey_credit: None,
            experiments: Vec::new(),
            evaluation: None,
            history: Vec::new(),
        }
    }
}

impl SourceTouches {
    /// The table's columns from (source, channel) → [touches, converting, first, last],
    /// in key order.
    pub fn from_sorted(rows: impl IntoIterator<Item = ((String, String), [u64; 4])>) -> SourceTouches {
        let mut out = SourceTouches::default();
        for (k, v) in rows {
            out.keys.push(k);
            out.touches.push(v[0]);
            out.converting_touches.push(v[1]);
            out.first_touches.push(v[2]);
            out.last_touches.push(v[3]);
        }
        out
    }
}

/// The conversion id and type of each recorded journey (`journey_credit`).
#[derive(Debug, Clone, Default)]
pub struct JourneyConversions {
    /// Conversion id per recorded journey, when the input has ids.
    pub id: Option<Vec<Option<String>>>,
    /// Conversion type per recorded journey, when the input has types.
    pub r#type: Option<Vec<Option<String>>>,
    /// Segment per recorded journey (of its conversion), when segments are configured.
    pub segment: Option<Vec<Option<String>>>,
    /// `new` or `returning` per recorded journey, with `segments.customer_status`.
    pub status: Option<Vec<&'static str>>,
}

/// What each source's touches did, per (source, channel), sorted.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SourceTouches {
    /// (source, channel) keys.
    pub keys: Vec<(String, String)>,
    /// Touches kept as events.
    pub touches: Vec<u64>,
    /// Touches counted in converting journeys.
    pub converting_touches: Vec<u64>,
    /// Converting journeys the touch opened.
    pub first_touches: Vec<u64>,
    /// Converting journeys the touch closed.
    pub last_touches: Vec<u64>,
}

/// Every output table of a run, in [`TableName`] order: the tables
/// [`TableName::planned`] names for the settings (what `--dry-run` prints), each built from
/// the result, less those the result turned out not to have (a Markov order chosen as 1 has
/// no sequence effects; a merge without a group level has no group tables).
pub fn tables(run: &RunResult, settings: &Settings) -> Result<Vec<Table>> {
    let mut t = Vec::new();
    for name in TableName::planned(settings) {
        t.extend(table(name, run, settings)?);
    }
    if let Some(e) = &run.evaluation {
        let find = |n: TableName| t.iter().find(|x| x.name == n.as_str());
        let attribution = find(TableName::ChannelAttribution).expect("planned for every run");
        let scored = evaluation::scored(e, attribution, find(TableName::ChannelCalibration));
        t.extend(evaluation::tables(e, &scored));
    }
    if let Some(days) = run_date(settings) {
        for table in &mut t {
            let n = table.height();
            table.prepend("run_date", Values::Date(vec![days; n]));
        }
    }
    Ok(t)
}

/// Windowed runs have `run_date` (days since 1970-01-01) as the first column of every
/// table, so a dataset of many partitions stays self-describing when files are copied.
pub fn run_date(settings: &Settings) -> Option<i32> {
    let w = settings.window()?;
    Some((w.run_date.0 - chrono::NaiveDate::default()).num_days() as i32)
}

/// One table of a result, if the result has it.
fn table(name: TableName, run: &RunResult, settings: &Settings) -> Result<Option<Table>> {
    use TableName as N;
    let a = &run.analysis;
    let spend = || run.spend.as_ref();
    Ok(match name {
        N::ChannelAttribution => Some(tables::channel_attribution(a, spend().map(|s| &s.channel))),
        N::ChannelGroupAttribution => run
            .groups
            .as_ref()
            .map(|g| tables::channel_group_attribution(g, group_spend(run, settings).as_ref())),
        N::GroupComparison => match (&run.groups, group_spend(run, settings)) {
            (Some(g), Some(sp)) if g.intervals.is_some() => {
                Some(compare::group_comparison(&comparisons(g, &sp)))
            }
            _ => None,
        },
        N::CampaignAttribution => {
            run.campaign.as_ref().map(|c| tables::campaign_attribution(a, c, spend().map(|s| &s.campaign)))
        }
        N::ChannelCalibration => {
            let attribution = tables::channel_attribution(a, spend().map(|s| &s.channel));
            Some(calibration::channel_calibration(&attribution, &a.report_channels, run, settings)?)
        }
        N::SpendResponse | N::BudgetShift => {
            let attribution = tables::channel_attribution(a, spend().map(|s| &s.channel));
            let Some(h) = headline(a) else { return Ok(None) };
            response::check_shift(settings, &a.report_channels)?;
            let Some(r) = response::responses(&attribution, &h.model, &run.history, settings) else {
                return Ok(None);
            };
            match name {
                N::SpendResponse => Some(response::spend_response(&r, settings)),
                _ => response::shift(&r, settings).map(|s| response::budget_shift(&r, &s)),
            }
        }
        N::ChannelRoles => Some(tables::channel_roles(a)),
        N::ChannelGroupRoles => run.groups.as_ref().map(tables::channel_group_roles),
        N::SegmentAttribution => Some(relationship::segment_attribution(&run.segments)),
        N::SegmentRoles => Some(relationship::segment_roles(&run.segments)),
        N::JourneyTiming => Some(timing::journey_timing(a)),
        N::MarkovRemovalEffects => a.markov.as_ref().map(|r| tables::markov_removal_effects(a, r)),
        N::MarkovTransitions => a.markov.as_ref().map(|r| tables::markov_transitions(a, r)),
        N::MarkovSequenceEffects => {
            a.markov.as_ref().filter(|r| r.chain.order >= 2).map(|r| tables::markov_sequence_effects(a, r))
        }
        N::MarkovOrderSelection => a.order_scores.as_ref().map(|s| tables::markov_order_selection(s)),
        N::ShapleyOrdered => a.shapley_ordered.as_ref().map(|_| tables::shapley_ordered(a)),
        N::PathSummary => Some(tables::path_summary(a)),
        N::DataQuality => Some(tables::data_quality(a, &run.input)),
        N::SourceQuality => run.input.staged.as_ref().map(relationship::source_quality),
        N::SourceChannelTouches => run.source_touches.as_ref().map(relationship::source_channel_touches),
        N::JourneyCredit => Some(journey::journey_credit(run, settings)?),
        _ => None,
    })
}

/// One model's conversions per channel, kept in each manifest so the next night's page can
/// show the change (`headline` in the manifest).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Headline {
    /// The model (Markov when it ran, else the first model).
    pub model: String,
    /// Credited conversions per channel.
    pub conversions: BTreeMap<String, f64>,
}

/// The headline numbers of a result.
pub fn headline(a: &Analysis) -> Option<Headline> {
    let (m, c) =
        a.credits.iter().find(|(m, _)| *m == crate::settings::Model::Markov).or(a.credits.first())?;
    let f = a.folded(c);
    Some(Headline {
        model: m.name().to_owned(),
        conversions: a.report_channels.iter().cloned().zip(f.conversions).collect(),
    })
}

/// Spend per channel group: the sum of its channels' (None without spend or groups).
pub fn group_spend(run: &RunResult, settings: &Settings) -> Option<BTreeMap<String, f64>> {
    run.groups.as_ref()?;
    let sp = run.spend.as_ref()?;
    let mut by_group = BTreeMap::new();
    for (c, x) in &sp.channel {
        *by_group.entry(settings.group_of(c).to_owned()).or_insert(0.0) += x;
    }
    Some(by_group)
}

/// The partial path table of a shard run: paths joined by the unit separator.
pub fn partial_paths(a: &Analysis, separator: char) -> Table {
    partial_paths_of(&a.paths, separator)
}

/// The path tables of a shard's customer segments, one after another (`level` = the
/// segment's place in the partial's list), each sorted by path.
pub fn partial_segment_paths(segments: &[crate::core::analysis::SegmentAnalysis], separator: char) -> Table {
    let mut level = Vec::new();
    let mut cols: Vec<Values> = Vec::new();
    for (i, sa) in segments.iter().enumerate() {
        let t = partial_paths_of(&sa.analysis.paths, separator);
        level.extend(std::iter::repeat_n(i as u32, t.height()));
        match cols.is_empty() {
            true => cols = t.columns.into_iter().map(|c| c.1).collect(),
            false => cols.iter_mut().zip(t.columns).for_each(|(a, (_, b))| a.append(b)),
        }
    }
    let names = ["path", "conversions", "nulls", "value"];
    if cols.is_empty() {
        cols = vec![Values::Str(vec![]), Values::F64(vec![]), Values::F64(vec![]), Values::F64(vec![])];
    }
    let mut columns = vec![("level", Values::U32(level))];
    columns.extend(names.into_iter().zip(cols));
    Table::new(TableName::PartialSegmentPaths.as_str(), columns)
}

/// The named replicate statistics of a shard run ([`crate::core::replicates`]), one row per
/// statistic with its value in every replicate.
pub fn partial_replicates(rows: Vec<crate::core::replicates::NamedSums>) -> Table {
    use crate::core::replicates::{KEYS, NUMBERS};
    let n = rows.len();
    let (mut kind, mut model, mut from, mut to) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let mut numbers = [Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n)];
    for r in rows {
        kind.push(r.kind.name().to_owned());
        model.push(r.model);
        from.push(r.from);
        to.push(r.to);
        for (col, x) in numbers.iter_mut().zip(r.numbers) {
            col.push(x);
        }
    }
    let keys = [kind, model, from, to].map(Values::Str);
    let mut columns: Vec<(&str, Values)> = KEYS.into_iter().zip(keys).collect();
    columns.extend(NUMBERS.into_iter().zip(numbers.map(Values::F64Lists)));
    Table::new(TableName::PartialReplicates.as_str(), columns)
}

/// The counted lags to conversion of a shard run, one row per (channel, measure, value):
/// `measure` is `minutes` or `touches` (`core::roles::ChannelLags`).
pub fn partial_lags(lags: &[(String, crate::core::roles::ChannelLags)]) -> Table {
    let (mut channel, mut measure, mut value, mut count) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (name, l) in lags {
        for (m, counts) in [("minutes", &l.minutes), ("touches", &l.touches)] {
            for &(v, n) in counts {
                channel.push(name.clone());
                measure.push(m.to_owned());
                value.push(v.max(0) as u64);
                count.push(n);
            }
        }
    }
    Table::new(
        TableName::PartialLags.as_str(),
        vec![
            ("channel", Values::Str(channel)),
            ("measure", Values::Str(measure)),
            ("value", Values::U64(value)),
            ("count", Values::U64(count)),
        ],
    )
}

/// A path table in the partial format (shards, stored training days).
pub fn partial_paths_of(pt: &crate::core::paths::PathTable, separator: char) -> Table {
    let sep = separator.to_string();
    let rows = &pt.rows;
    let paths = rows
        .iter()
        .map(|r| r.path.iter().map(|&c| pt.channels[c as usize].as_str()).collect::<Vec<_>>().join(&sep))
        .collect();
    Table::new(
        TableName::PartialPaths.as_str(),
        vec![
            ("path", Values::Str(paths)),
            ("conversions", Values::F64(rows.iter().map(|r| r.conversions).collect())),
            ("nulls", Values::F64(rows.iter().map(|r| r.nulls).collect())),
            ("value", Values::F64(rows.iter().map(|r| r.value).collect())),
        ],
    )
}
