//! `touchpoint merge` (also `--bounded-memory`, its name before it became the CLI's only
//! merge): the merge of partials in memory independent of their distinct paths (47M at 1B
//! generated events), as fast as holding them (paths compared as channel ids).
//!
//! The partials' path tables are sorted by path, so one streaming k-way pass reads each a
//! block at a time and yields every distinct path once, in order. Blocks of merged paths
//! become the distributed fit's additive statistics (`run::arrow`, `docs/scale.md`
//! § Spark), summed as they come; only the sums are kept. Memory is a block per partial
//! plus the sums, whatever the number of paths. The tables are the distributed fit's.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::{Path, PathBuf};

use super::arrow::{distributed_tables, solve_rows, statistics_of};
use super::shard::{
    check_set, merge_campaigns, merge_journey_credit, merge_segments, merge_source_touches, read_meta, Layer,
    PartialMeta, CHANNELS, GROUPS, SEGMENTS,
};
use super::{Run, RunSummary};
use crate::core::event_log::UNIT_SEPARATOR;
use crate::core::paths::{top_converting, PathRow, PathTable, SummaryRow, PATH_JOIN};
use crate::core::replicates::{Frame, Kind};
use crate::engine::spill::{SortSpill, SortedRuns};
use crate::engine::{self, arrow::StatisticsRow, TableSource};
use crate::error::{Error, Result};
use crate::report;
use crate::report::RunResult;
use crate::settings::Format;

/// Rows read from each partial at a time, and merged paths per statistics block (the CLI's;
/// tests pass small blocks to cross many block boundaries).
pub const BLOCK: u64 = 1 << 19;

/// One partial's path table, read a block at a time.
struct Cursor {
    file: PathBuf,
    rows: u64,
    read: u64,
    block: engine::write::PartialRows,
    at: usize,
    size: u64,
}

impl Cursor {
    /// A cursor over `rows` (`[first, count]`) of the file, or all of it.
    fn open(file: PathBuf, size: u64, rows: Option<[u64; 2]>) -> Result<Cursor> {
        let [read, count] = match rows {
            Some(r) => r,
            None => [0, engine::parquet_rows(&file)?],
        };
        let rows = read + count;
        let mut c = Cursor { file, rows, read, block: Default::default(), at: 0, size };
        c.fill()?;
        Ok(c)
    }

    fn fill(&mut self) -> Result<()> {
        if self.at >= self.block.0.len() && self.read < self.rows {
            let len = self.size.min(self.rows - self.read);
            self.block = engine::read_partial_block(&self.file, self.read, len)?;
            self.read += self.block.0.len() as u64;
            self.at = 0;
        }
        Ok(())
    }

    /// The next row (path, conversions, nulls, value), if any, its path as ids into the
    /// merged `channels` (sorted, like each partial's: ids compare as the partials' paths
    /// are sorted, channel by channel, so the k-way merge compares integers, not text).
    fn next(&mut self, channels: &ChannelIds) -> Result<Option<PathRow>> {
        self.fill()?;
        let b = &self.block;
        if self.at >= b.0.len() {
            return Ok(None);
        }
        let i = self.at;
        self.at += 1;
        let ids = b.0[i].split(UNIT_SEPARATOR).map(|name| {
            let id = channels.get(name).copied();
            id.ok_or_else(|| Error::bad_input(&self.file, Some("path"), "a channel no manifest lists"))
        });
        Ok(Some(PathRow {
            path: ids.collect::<Result<_>>()?,
            conversions: b.1[i],
            nulls: b.2[i],
            value: b.3[i],
        }))
    }
}

/// The merged channels' ids by name (their places in the sorted list).
type ChannelIds<'a> = rustc_hash::FxHashMap<&'a str, u32>;

/// Sums of statistics rows by key.
/// Sums by (kind's name, model, from, to): rows in the order of their names.
type Sums = BTreeMap<(&'static str, String, String, String), (Kind, (f64, f64, f64))>;

fn add_block(
    (sums, top): (&mut Sums, &mut Vec<PathRow>),
    meta: &PartialMeta,
    (channels, bases): (&[String], &[String]),
    rows: Vec<PathRow>,
    k: &[usize],
) -> Result<()> {
    top_converting(top, rows.iter(), report::TOP_PATHS);
    let pt = PathTable { channels: channels.to_vec(), rows };
    for r in statistics_of(&meta.settings, pt, k, bases)?.rows() {
        let (_, e) = sums.entry((r.kind.name(), r.model, r.from, r.to)).or_insert((r.kind, (0.0, 0.0, 0.0)));
        e.0 += r.numbers.0;
        e.1 += r.numbers.1;
        e.2 += r.numbers.2;
    }
    Ok(())
}

/// Hand a block of merged paths (in path order) to the `path_summary` sort.
fn spill_block(spill: Option<&mut SortSpill>, channels: &[String], block: &[PathRow]) -> Result<()> {
    let Some(spill) = spill else { return Ok(()) };
    for r in block {
        let names: Vec<&str> = r.path.iter().map(|&c| channels[c as usize].as_str()).collect();
        let row = SummaryRow {
            path: names.join(PATH_JOIN),
            touches: r.path.len() as u32,
            conversions: r.conversions,
            nulls: r.nulls,
            value: r.value,
        };
        spill.push(row)?;
    }
    Ok(())
}

/// Merge the partials in `dirs`, `block` rows at a time, and publish the distributed fit's
/// tables to `out`: the channel level, and the channel-group level when the shards have one.
pub fn merge_bounded_and_publish(dirs: &[PathBuf], out: &Path, block_rows: u64) -> Result<RunSummary> {
    super::shard::check_out(dirs, out)?;
    let t = std::time::Instant::now();
    let mut parts: Vec<(PathBuf, PartialMeta)> = Vec::new();
    for d in dirs {
        parts.push((d.clone(), read_meta(d)?));
    }
    parts.sort_by_key(|p| p.1.shard);
    check_set(&parts)?;
    let mut settings = parts[0].1.settings.clone();
    let mut spill = match report::TableName::planned(&settings).contains(&report::TableName::PathSummary) {
        true => Some(SortSpill::new(spill_dir(out), block_rows as usize)?),
        false => None,
    };
    let mut result = bounded_layer(&parts, CHANNELS, block_rows, spill.as_mut())?;
    let group_parts: Option<Vec<(PathBuf, PartialMeta)>> =
        parts.iter().map(|(d, m)| m.groups.as_ref().map(|g| (d.clone(), (**g).clone()))).collect();
    if let Some(g) = group_parts {
        result.groups = Some(bounded_layer(&g, GROUPS, block_rows, None)?.analysis);
    }
    let level =
        |list: &[(PathBuf, PartialMeta)]| Ok(bounded_layer(list, SEGMENTS, block_rows, None)?.analysis);
    result.segments = merge_segments(&parts, &settings, &result.analysis, level)?;
    result.journey_credit = merge_journey_credit(&parts, &settings, &result.analysis)?;
    result.campaign = merge_campaigns(&parts, &settings, &result.analysis)?;
    result.source_touches = merge_source_touches(parts.iter().map(|p| &p.1));
    let (intervals, groups) = (result.analysis.intervals.is_some(), result.groups.is_some());
    result.analysis.warnings.extend(super::shard::merge_warnings(&settings, intervals, groups));
    result.analysis.warnings.iter().for_each(|w| tracing::warn!("{w}"));
    let summary = match spill {
        Some(s) => Some(SpilledSummary { runs: s.finish()?, run_date: report::run_date(&settings) }),
        None => None,
    };
    settings.output.root = Some(out.to_path_buf());
    if report::TableName::planned(&settings).contains(&report::TableName::SpendResponse) {
        result.history = super::load_history(&settings, None)?;
    }
    let tables = distributed_tables(&result, &settings, &["path_summary"])?;
    // `path_summary` keeps its place among the tables; its rows come from the sorted spill.
    let sources: Vec<&dyn TableSource> = tables
        .iter()
        .map(|t| match (&summary, t.name) {
            (Some(s), "path_summary") => s as &dyn TableSource,
            _ => t as &dyn TableSource,
        })
        .collect();
    let mut run = Run::new(settings, "merge", &|_| {});
    run.phase("merge", |_| Ok(t.elapsed()))?;
    run.publish_tables(&result, &sources, true)
}

/// Where the sort spills: beside the output, on the disk that will hold the table.
fn spill_dir(out: &Path) -> &Path {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `path_summary` of the bounded merge: the merged paths, sorted on disk, written in batches.
struct SpilledSummary {
    runs: SortedRuns,
    run_date: Option<i32>,
}

impl TableSource for SpilledSummary {
    fn name(&self) -> &'static str {
        report::TableName::PathSummary.as_str()
    }

    fn write_to(&self, path: &Path, format: Format) -> Result<usize> {
        let run_date = self.run_date;
        self.runs.write(path, format, BLOCK as usize, &|rows| report::path_summary_rows(rows, run_date))
    }
}

/// One level (channels or channel groups) of the partials, streamed, summed and solved,
/// with the page's top paths and the intervals.
fn bounded_layer(
    parts: &[(PathBuf, PartialMeta)],
    layer: Layer,
    block_rows: u64,
    spill: Option<&mut SortSpill>,
) -> Result<RunResult> {
    let settings = &parts[0].1.settings;
    let metas: Vec<PartialMeta> = parts.iter().map(|p| p.1.clone()).collect();
    let (rows, top) = stream_statistics(parts, layer, block_rows, spill)?;
    // As one run: the sequences of channels, not of groups or segments.
    let (mut result, coalitions) = solve_rows(settings, &metas, &rows, layer.is_channels())?;
    result.analysis.top_paths = Some(top);
    let mut frame = Frame::of(&result.analysis);
    frame.coalitions = coalitions;
    let file = |d: &Path| layer.replicates_file(d);
    result.analysis.intervals =
        super::shard::merged_intervals(&result.analysis, frame, settings, parts, file)?;
    Ok(result)
}

/// The k-way merge of the partials' sorted path tables of one level, a block of merged
/// paths at a time, summed into the distributed fit's statistics; and the top paths.
fn stream_statistics(
    parts: &[(PathBuf, PartialMeta)],
    layer: Layer,
    block_rows: u64,
    mut spill: Option<&mut SortSpill>,
) -> Result<(Vec<StatisticsRow>, Vec<PathRow>)> {
    let first = &parts[0].1;
    let k = crate::core::statistics::markov_orders(&first.settings.models);
    let metas: Vec<PartialMeta> = parts.iter().map(|p| p.1.clone()).collect();
    let merged = super::shard::merge_metas(&metas);
    let channels = merged.path_channels;
    let ids: ChannelIds = channels.iter().enumerate().map(|(i, c)| (c.as_str(), i as u32)).collect();
    let bases: Vec<String> = merged.report_of.iter().map(|&b| merged.base[b as usize].clone()).collect();
    let mut cursors: Vec<Cursor> = parts
        .iter()
        .map(|p| Cursor::open(layer.paths_file(&p.0), block_rows.max(1), p.1.rows))
        .collect::<Result<_>>()?;
    // The heap orders (path, partial); each partial's head numbers wait in `heads`.
    let mut heap: BinaryHeap<Reverse<(Vec<u32>, usize)>> = BinaryHeap::new();
    let mut heads = vec![(0.0, 0.0, 0.0); cursors.len()];
    for (i, c) in cursors.iter_mut().enumerate() {
        if let Some(r) = c.next(&ids)? {
            heads[i] = (r.conversions, r.nulls, r.value);
            heap.push(Reverse((r.path, i)));
        }
    }
    let (mut sums, mut block): (Sums, Vec<PathRow>) = (BTreeMap::new(), Vec::new());
    let mut top = Vec::new();
    while let Some(Reverse((path, i))) = heap.pop() {
        let (c, n, v) = heads[i];
        if let Some(r) = cursors[i].next(&ids)? {
            heads[i] = (r.conversions, r.nulls, r.value);
            heap.push(Reverse((r.path, i)));
        }
        // The block's last row is the last path merged (a block is handed on only before
        // a new path starts).
        if let Some(r) = block.last_mut().filter(|r| r.path == path) {
            (r.conversions, r.nulls, r.value) = (r.conversions + c, r.nulls + n, r.value + v);
            continue;
        }
        if block.len() as u64 >= block_rows {
            spill_block(spill.as_deref_mut(), &channels, &block)?;
            add_block((&mut sums, &mut top), first, (&channels, &bases), std::mem::take(&mut block), &k)?;
        }
        block.push(PathRow { path, conversions: c, nulls: n, value: v });
    }
    spill_block(spill, &channels, &block)?;
    add_block((&mut sums, &mut top), first, (&channels, &bases), block, &k)?;
    let rows = sums
        .into_iter()
        .map(|((_, model, from, to), (kind, numbers))| StatisticsRow { kind, model, from, to, numbers })
        .collect();
    Ok((rows, top))
}
