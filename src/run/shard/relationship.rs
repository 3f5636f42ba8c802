//! The customer relationship through shards (`docs/scale.md` § Partial format): customer
//! segments are further levels of the partial, one path table each; per-journey credit is
//! written by each shard and put back into one run's order by the merge; the per-source
//! counts add up.
//!
//! Staging needs nothing here: every shard stages the whole input (identity map, erasure,
//! repeated conversion ids decided over all rows) and keeps its own persons, so its counts
//! are its persons' share of one run's (`engine/sources_pass.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{layer_meta, Layer, PartialMeta};
use crate::core::analysis::{Analysis, CampaignCredits, SegmentAnalysis};
use crate::core::campaigns::{self, CampaignSums};
use crate::core::event_log::UNIT_SEPARATOR;
use crate::core::table::{Table, Values};
use crate::engine;
use crate::error::{Error, Result};
use crate::report::{self, RunResult, SourceTouches, TableName};
use crate::run::segments::finish_segment;
use crate::settings::Settings;

/// The customer segments' level: every segment's path table in one file, each segment's
/// rows at [`PartialMeta::rows`]. Segments have no intervals and no lags to conversion
/// (one run computes neither per segment), so they name no such files.
pub(crate) const SEGMENTS: Layer =
    Layer { paths: TableName::PartialSegmentPaths, replicates: None, lags: None };

/// One customer segment of a partial.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentLevel {
    /// The segmentation: the segment column's name, or `customer_status`.
    pub segmentation: String,
    /// The segment.
    pub segment: String,
    /// The built-in customer status (`new`/`returning`), which one run lists after the
    /// segment column's segments.
    pub status: bool,
    /// The segment's journeys, as a level of the partial.
    pub meta: PartialMeta,
}

/// A shard's segment levels and the table of their paths.
pub(crate) fn segment_levels(
    settings: &Settings,
    result: &RunResult,
    shard: (u32, u32),
) -> (Vec<SegmentLevel>, Option<Table>) {
    if result.segments.is_empty() {
        return (Vec::new(), None);
    }
    let mut s = settings.clone();
    s.models.bootstrap_replicates = 0;
    let n = result.segments.len();
    let (mut levels, mut at) = (Vec::with_capacity(n), 0u64);
    for (i, sa) in result.segments.iter().enumerate() {
        let mut meta = layer_meta(&s, &sa.analysis, &result.input, shard);
        let rows = sa.analysis.paths.rows.len() as u64;
        (meta.rows, meta.lags, at) = (Some([at, rows]), None, at + rows);
        let status = settings.segments.customer_status && i + 2 >= n;
        let (segmentation, segment) = (sa.segmentation.clone(), sa.segment.clone());
        levels.push(SegmentLevel { segmentation, segment, status, meta });
    }
    (levels, Some(report::partial_segment_paths(&result.segments, UNIT_SEPARATOR)))
}

/// The segments of a merge, in one run's order (the segment column's segments by name, then
/// the customer status): each segment's levels merged by `merge_level` (one level, as
/// the channels are merged) and finished as one run finishes it.
pub(crate) fn merge_segments(
    parts: &[(PathBuf, PartialMeta)],
    settings: &Settings,
    pooled: &Analysis,
    merge_level: impl Fn(&[(PathBuf, PartialMeta)]) -> Result<Analysis>,
) -> Result<Vec<SegmentAnalysis>> {
    type Key = (bool, String);
    let mut by: BTreeMap<Key, (String, Vec<(PathBuf, PartialMeta)>)> = BTreeMap::new();
    for (d, m) in parts {
        for l in &m.segments {
            let e = by
                .entry((l.status, l.segment.clone()))
                .or_insert_with(|| (l.segmentation.clone(), Vec::new()));
            e.1.push((d.clone(), l.meta.clone()));
        }
    }
    by.into_iter()
        .map(|((_, segment), (segmentation, list))| {
            Ok(finish_segment((segmentation, segment), merge_level(&list)?, pooled, settings))
        })
        .collect()
}

/// The columns a partition's `journey_credit` rows may have (`partial_journey_credit`),
/// with their Spark SQL types (the Spark job's `mapInArrow` schema is built from these:
/// Spark has no unsigned integers and the job keeps instants as µs).
pub const JOURNEY_SCHEMA: [(&str, &str); 14] = [
    ("journey_id", "string"),
    ("user_id", "string"),
    ("conversion_ts", "long"),
    ("conversion_id", "string"),
    ("conversion_type", "string"),
    ("segment", "string"),
    ("customer_status", "string"),
    ("model", "string"),
    ("channel", "string"),
    ("credit", "double"),
    ("value", "double"),
    ("person_order_hi", "long"),
    ("person_order_lo", "long"),
    ("journey", "long"),
];

/// The names of [`JOURNEY_SCHEMA`].
pub(crate) const JOURNEY_COLUMNS: [&str; 14] = {
    let mut out = [""; 14];
    let mut i = 0;
    while i < 14 {
        out[i] = JOURNEY_SCHEMA[i].0;
        i += 1;
    }
    out
};

/// `journey_credit` of a merge: every shard's rows, in one run's order (by the person's
/// order key; a person's journeys are all in one shard, already in order), journeys
/// numbered again over the whole run when persons are omitted.
pub(crate) fn merge_journey_credit(
    parts: &[(PathBuf, PartialMeta)],
    settings: &Settings,
    merged: &Analysis,
) -> Result<Option<Table>> {
    if !settings.output.journey_credit {
        return Ok(None);
    }
    let name = TableName::PartialJourneyCredit.as_str();
    let mut all: Option<Table> = None;
    let mut shard_of_row: Vec<u32> = Vec::new();
    for (i, (d, _)) in parts.iter().enumerate() {
        let file = d.join(format!("{name}.parquet"));
        let t = engine::read_table(&file, name, &JOURNEY_COLUMNS)?;
        shard_of_row.extend(std::iter::repeat_n(i as u32, t.height()));
        match all.as_mut() {
            None => all = Some(t),
            Some(a) => append(a, t, &file)?,
        }
    }
    let Some(t) = all else { return Ok(None) };
    let u64s = |c: &str| match t.columns.iter().find(|x| x.0 == c) {
        Some((_, Values::U64(v))) => Ok(v.clone()),
        Some((_, Values::U32(v))) => Ok(v.iter().map(|&x| x as u64).collect()),
        _ => Err(Error::bad_input(parts[0].0.join(format!("{name}.parquet")), Some(c), "missing")),
    };
    let (hi, lo, journey) = (u64s("person_order_hi")?, u64s("person_order_lo")?, u64s("journey")?);
    let mut order: Vec<usize> = (0..t.height()).collect();
    order.sort_by_key(|&r| (hi[r], lo[r]));
    let columns: Vec<(&'static str, Values)> = t
        .columns
        .iter()
        .filter(|c| !matches!(c.0, "person_order_hi" | "person_order_lo" | "journey"))
        .map(|(n, v)| (*n, v.take(&order)))
        .collect();
    let number = numbered(order.iter().map(|&r| (shard_of_row[r], journey[r])));
    let t = Table::new(TableName::JourneyCredit.as_str(), columns);
    let split = report::MarkovSplit::of(merged, settings);
    Ok(Some(finish_journey_rows(t, &number, settings, split.as_ref())?))
}

/// Partitions' `journey_credit` rows in one run's order, finished as one run writes them:
/// `number[r]` is row r's journey's number in the whole run (from 1), its `journey_id`
/// when persons are omitted; `markov_journey` rows split by the merged fit's `split`.
pub(crate) fn finish_journey_rows(
    mut t: Table,
    number: &[u64],
    settings: &Settings,
    split: Option<&report::MarkovSplit>,
) -> Result<Table> {
    if settings.output.person_ids == crate::settings::PersonIds::Omitted {
        let ids = Values::Str(number.iter().map(|k| format!("j{k}")).collect());
        match t.columns.iter_mut().find(|c| c.0 == "journey_id") {
            Some(c) => c.1 = ids,
            None => return Err(Error::Internal("journey_credit rows without journey_id".into())),
        }
    }
    crate::report::finish_markov_journey(t, number, split)
}

/// 1, 2, … over journeys given in order, a new number at each new journey.
fn numbered(keys: impl Iterator<Item = (u32, u64)>) -> Vec<u64> {
    let (mut last, mut k) = (None, 0u64);
    keys.map(|key| {
        if last != Some(key) {
            (last, k) = (Some(key), k + 1);
        }
        k
    })
    .collect()
}

/// Append one shard's rows to the rows so far (the shards ran with the same settings, so
/// their columns are the same).
fn append(all: &mut Table, t: Table, file: &Path) -> Result<()> {
    let names = |t: &Table| t.columns.iter().map(|c| c.0).collect::<Vec<_>>();
    if names(all) != names(&t) {
        return Err(Error::bad_input(file, None, "its columns differ from the first partial's"));
    }
    for ((_, a), (_, b)) in all.columns.iter_mut().zip(t.columns) {
        a.append(b);
    }
    Ok(())
}

/// The campaign credits of a merge: every partial's campaign sums added up in shard order
/// and solved with the merged analysis, as one run solves its own (`core::campaigns`).
pub(crate) fn merge_campaigns(
    parts: &[(PathBuf, PartialMeta)],
    settings: &Settings,
    merged: &Analysis,
) -> Result<Option<CampaignCredits>> {
    if !settings.campaigns() {
        return Ok(None);
    }
    let draws = 1 + settings.models.bootstrap_replicates;
    let name = TableName::PartialCampaigns.as_str();
    let mut sums = CampaignSums { draws, ..Default::default() };
    for (d, _) in parts {
        let file = d.join(format!("{name}.parquet"));
        if !file.exists() {
            return Err(Error::bad_input(&file, None, "missing: the partial has no campaign sums"));
        }
        let t = engine::read_table(&file, name, &campaigns::COLUMNS)?;
        let part = CampaignSums::from_table(&t, draws).map_err(|p| Error::bad_input(&file, None, p))?;
        sums.add(part)?;
    }
    campaigns::solve(&sums, merged, &settings.models).map(Some)
}

/// Touches per (source, channel), added up over the partials.
pub(crate) fn merge_source_touches<'a>(
    metas: impl Iterator<Item = &'a PartialMeta>,
) -> Option<SourceTouches> {
    let mut by: BTreeMap<(String, String), [u64; 4]> = BTreeMap::new();
    let mut any = false;
    for st in metas.filter_map(|m| m.source_touches.as_ref()) {
        any = true;
        for (i, k) in st.keys.iter().enumerate() {
            let e = by.entry(k.clone()).or_default();
            let add = [st.touches[i], st.converting_touches[i], st.first_touches[i], st.last_touches[i]];
            e.iter_mut().zip(add).for_each(|(a, b)| *a += b);
        }
    }
    any.then(|| SourceTouches::from_sorted(by))
}
