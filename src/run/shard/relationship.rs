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

/// The columns a `partial_journey_credit` file may have.
const JOURNEY_COLUMNS: [&str; 14] = [
    "journey_id",
    "user_id",
    "conversion_ts",
    "conversion_id",
    "conversion_type",
    "segment",
    "customer_status",
    "model",
    "channel",
    "credit",
    "value",
    "person_order_hi",
    "person_order_lo",
    "journey",
];

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
    let mut columns: Vec<(&'static str, Values)> = t
        .columns
        .iter()
        .filter(|c| !matches!(c.0, "person_order_hi" | "person_order_lo" | "journey"))
        .map(|(n, v)| (*n, v.take(&order)))
        .collect();
    if settings.output.person_ids == crate::settings::PersonIds::Omitted {
        let ids = renumbered(&order, &shard_of_row, &journey);
        columns[0] = ("journey_id", Values::Str(ids));
    }
    let journeys: Vec<(u32, u64)> = order.iter().map(|&r| (shard_of_row[r], journey[r])).collect();
    let t = Table::new(TableName::JourneyCredit.as_str(), columns);
    Ok(Some(crate::report::finish_markov_journey(t, &journeys, merged, settings)?))
}

/// `j1`, `j2`, … over the rows in their merged order, a new number at each new journey.
fn renumbered(order: &[usize], shard: &[u32], journey: &[u64]) -> Vec<String> {
    let (mut last, mut k) = (None, 0u64);
    order
        .iter()
        .map(|&r| {
            let key = (shard[r], journey[r]);
            if last != Some(key) {
                (last, k) = (Some(key), k + 1);
            }
            format!("j{k}")
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
    let draws = 1 + crate::run::partition_replicates(settings) as usize;
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
pub(crate) fn merge_source_touches(parts: &[(PathBuf, PartialMeta)]) -> Option<SourceTouches> {
    let mut by: BTreeMap<(String, String), [u64; 4]> = BTreeMap::new();
    let mut any = false;
    for st in parts.iter().filter_map(|p| p.1.source_touches.as_ref()) {
        any = true;
        for (i, k) in st.keys.iter().enumerate() {
            let e = by.entry(k.clone()).or_default();
            let add = [st.touches[i], st.converting_touches[i], st.first_touches[i], st.last_touches[i]];
            e.iter_mut().zip(add).for_each(|(a, b)| *a += b);
        }
    }
    any.then(|| SourceTouches::from_sorted(by))
}
