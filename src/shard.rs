//! Scale-out: attribute one shard of the users, write mergeable partial aggregates, and
//! merge any number of them into the result of a single run.
//!
//! `attribute --shard i/N` keeps the users whose [`crate::input::shard_of_str`] is i and
//! writes `partial_paths.parquet` (the path table: path, conversions, nulls, value) and a
//! `manifest.json` holding the shard, the settings, the journey counts and the time-decay
//! credit (the one model that needs touch times). Everything in a partial is a sum, so
//! `merge` adds the partials up in shard order and runs the models once on the merged path
//! table. Counts merge exactly; conversion values are float sums, equal to a single run's
//! within rounding (1e-12 relative).

use std::path::{Path, PathBuf};
use std::time::Instant;

use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{Model, Settings};
use crate::error::{Error, Result};
use crate::input::UserNames;
use crate::journeys::{JourneyStats, Journeys};
use crate::models::Credits;
use crate::output::{self, OutputTable};
use crate::paths::{PathRow, PathTable};
use crate::pipeline::{self, InputSummary, RunResult, RunSummary};

/// Separator of channel names in a partial's `path` column (ASCII unit separator).
pub const SEP: char = '\u{1f}';

/// The metadata of a partial aggregate (in its `manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartialMeta {
    /// This shard's index.
    pub shard: u32,
    /// Number of shards.
    pub shards: u32,
    /// The run's settings (all partials of one merge must agree).
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
    /// What this shard read.
    pub input: InputSummary,
}

/// Check that a settings combination can be sharded.
pub fn check_shardable(settings: &Settings) -> Result<()> {
    if settings.journey_credit {
        return Err(Error::Config("--journey-credit is per journey: run it without --shard".into()));
    }
    if settings.columns.campaign.is_some() {
        return Err(Error::Config("the campaign grain is not supported with --shard yet".into()));
    }
    Ok(())
}

/// Run shard `i` of `n` and write its partial aggregate to `out`.
pub fn attribute_shard(
    events: &str,
    out: &Path,
    settings: &Settings,
    shard: (u32, u32),
) -> Result<RunSummary> {
    check_shardable(settings)?;
    let t0 = Instant::now();
    let mut timings = Vec::new();
    let run = pipeline::compute_scoped(events, settings, &mut timings, &|_| {}, Some(shard))?;
    let a = &run.analysis;
    let time_decay = a
        .credits
        .iter()
        .find(|(m, _)| *m == Model::TimeDecay)
        .map(|(_, c)| c.conversions.iter().copied().zip(c.value.iter().copied()).collect());
    let meta = PartialMeta {
        shard: shard.0,
        shards: shard.1,
        settings: settings.clone(),
        channels: a.report_channels.clone(),
        path_channels: a.paths.channels.clone(),
        report_of: a.report_of.clone(),
        stats: a.stats.clone(),
        time_decay,
        input: run.input.clone(),
    };
    let sep = SEP.to_string();
    let paths: Vec<String> = a
        .paths
        .rows
        .iter()
        .map(|r| r.path.iter().map(|&c| a.paths.channels[c as usize].as_str()).collect::<Vec<_>>().join(&sep))
        .collect();
    let rows = &a.paths.rows;
    let df = output::frame(vec![
        Column::new("path".into(), paths),
        Column::new("conversions".into(), rows.iter().map(|r| r.conversions).collect::<Vec<_>>()),
        Column::new("nulls".into(), rows.iter().map(|r| r.nulls).collect::<Vec<_>>()),
        Column::new("value".into(), rows.iter().map(|r| r.value).collect::<Vec<_>>()),
    ])?;
    let mut tables = vec![OutputTable { name: "partial_paths", df }];
    // Partials are always Parquet: they are machine-to-machine.
    let written = output::publish(out, crate::config::Format::Parquet, &mut tables, |files| {
        json!({
            "tool": "touchpoint",
            "version": env!("CARGO_PKG_VERSION"),
            "command": "attribute --shard",
            "status": "partial",
            "partial": meta,
            "outputs": files,
        })
    })?;
    Ok(RunSummary::of("partial", &out.display().to_string(), &run, written, t0))
}

fn read_meta(dir: &Path) -> Result<PartialMeta> {
    let mpath = dir.join(output::MANIFEST);
    let text = std::fs::read_to_string(&mpath).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            path: mpath.clone(),
            problem: "not a partial aggregate (no manifest.json)".into(),
        },
        _ => Error::io(&mpath, e),
    })?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::bad_input(&mpath, None, format!("not JSON: {e}")))?;
    serde_json::from_value(doc["partial"].clone())
        .map_err(|e| Error::bad_input(&mpath, None, format!("not a touchpoint partial aggregate: {e}")))
}

fn read_paths(dir: &Path) -> Result<DataFrame> {
    let ppath = dir.join("partial_paths.parquet");
    let file = std::fs::File::open(&ppath).map_err(|e| Error::io(&ppath, e))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| Error::bad_input(&ppath, None, format!("cannot read the partial path table: {e}")))?;
    Ok(df)
}

/// Merge path tables sorted by path, each with unique paths: equal paths are summed in
/// table order (shard order, as in a single pass). One output allocation: growing the
/// merged table partial by partial would allocate (and keep) a new, larger table each time.
fn merge_sorted(parts: Vec<Vec<PathRow>>) -> Vec<PathRow> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut out: Vec<PathRow> = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    let mut iters: Vec<std::vec::IntoIter<PathRow>> = parts.into_iter().map(|p| p.into_iter()).collect();
    // Heap of (path, table index); the head row of each table is held in `heads`.
    let mut heads: Vec<Option<PathRow>> = iters.iter_mut().map(|it| it.next()).collect();
    let mut heap: BinaryHeap<Reverse<(Vec<u32>, usize)>> = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_ref().map(|r| Reverse((r.path.clone(), i))))
        .collect();
    while let Some(Reverse((_, i))) = heap.pop() {
        let row = heads[i].take().expect("a head for every heap entry");
        heads[i] = iters[i].next();
        if let Some(r) = &heads[i] {
            heap.push(Reverse((r.path.clone(), i)));
        }
        match out.last_mut() {
            Some(last) if last.path == row.path => {
                last.conversions += row.conversions;
                last.nulls += row.nulls;
                last.value += row.value;
            }
            _ => out.push(row),
        }
    }
    out
}

/// Merge partial aggregates into the result of one run over all their users.
pub fn merge(dirs: &[PathBuf]) -> Result<(RunResult, Settings)> {
    if dirs.is_empty() {
        return Err(Error::Config("merge needs at least one partial".into()));
    }
    // Manifests first: a bad set fails before any path table is read. The path tables are
    // then read one at a time (their Parquet frames dropped as soon as converted) and
    // merged in one k-way pass of the sorted tables.
    let mut parts: Vec<(PathBuf, PartialMeta)> = Vec::new();
    for d in dirs {
        parts.push((d.clone(), read_meta(d)?));
    }
    parts.sort_by_key(|p| p.1.shard);
    let (first_dir, first) = &parts[0];
    let n = first.shards;
    let settings_json = serde_json::to_value(&first.settings).map_err(|e| Error::Internal(e.to_string()))?;
    for (d, m) in &parts {
        if m.shards != n {
            return Err(Error::bad_input(
                d,
                None,
                format!("shard of {} shards, but {} has {n}", m.shards, first_dir.display()),
            ));
        }
        if serde_json::to_value(&m.settings).map_err(|e| Error::Internal(e.to_string()))? != settings_json {
            return Err(Error::bad_input(d, None, format!("settings differ from {}'s", first_dir.display())));
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
    let settings = first.settings.clone();
    // The merged channel spaces: union of names, sorted.
    let mut base: Vec<String> = parts.iter().flat_map(|p| p.1.channels.iter().cloned()).collect();
    base.sort();
    base.dedup();
    let mut path_channels: Vec<String> =
        parts.iter().flat_map(|p| p.1.path_channels.iter().cloned()).collect();
    path_channels.sort();
    path_channels.dedup();
    let pid =
        |name: &str| path_channels.binary_search_by(|c| c.as_str().cmp(name)).expect("in the union") as u32;
    let mut report_of = vec![0u32; path_channels.len()];
    let mut stats = JourneyStats::default();
    let mut tables: Vec<Vec<PathRow>> = Vec::new();
    let mut td: Option<Credits> = None;
    let mut input = InputSummary::default();
    for (d, m) in &parts {
        let df = read_paths(d)?;
        for (i, name) in m.path_channels.iter().enumerate() {
            let b = &m.channels[m.report_of[i] as usize];
            report_of[pid(name) as usize] = base.binary_search(b).expect("in the union") as u32;
        }
        stats.merge(&m.stats);
        input.files.extend(m.input.files.iter().cloned());
        input.rows_read += m.input.rows_read;
        input.events += m.input.events;
        for (reason, k) in &m.input.rejected {
            match input.rejected.iter_mut().find(|(r, _)| r == reason) {
                Some(e) => e.1 += k,
                None => input.rejected.push((reason.clone(), *k)),
            }
        }
        if let Some(t) = &m.time_decay {
            let c = td.get_or_insert_with(|| Credits::zeros(path_channels.len()));
            for (i, (conv, val)) in t.iter().enumerate() {
                let j = pid(&m.path_channels[i]) as usize;
                c.conversions[j] += conv;
                c.value[j] += val;
            }
        }
        let err = |e: PolarsError| Error::bad_input(d, None, format!("bad partial path table: {e}"));
        let p = df.column("path").map_err(err)?.str().map_err(err)?;
        let num = |name: &str| -> Result<Vec<f64>> {
            Ok(df.column(name).map_err(err)?.f64().map_err(err)?.into_no_null_iter().collect())
        };
        let (conv, nulls, value) = (num("conversions")?, num("nulls")?, num("value")?);
        let mut part: Vec<PathRow> = Vec::with_capacity(df.height());
        for (i, path) in p.iter().enumerate() {
            let path = path.unwrap_or_default();
            part.push(PathRow {
                path: path.split(SEP).map(pid).collect(),
                conversions: conv[i],
                nulls: nulls[i],
                value: value[i],
            });
        }
        drop(df);
        // A partial is written sorted by path and ids map monotonically into the union;
        // sort anyway if a partial was not (each path appears once per partial).
        if !part.is_sorted_by(|a, b| a.path < b.path) {
            part.par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
        }
        tables.push(part);
    }
    let rows = merge_sorted(tables);
    input.files.sort_by(|a, b| a.path.cmp(&b.path));
    input.files.dedup_by(|a, b| a.path == b.path);
    let frequency = path_channels != base;
    let paths = PathTable { channels: path_channels, rows };
    let journeys = Journeys { paths, stats, fold: frequency.then_some(report_of), recorded: None };
    let analysis = pipeline::analyze_with(journeys, &base, &settings, td)?;
    let spend = pipeline::load_spend(&settings)?;
    Ok((RunResult { analysis, campaign: None, users: UserNames::default(), input, spend }, settings))
}

/// `touchpoint merge`: merge partials and publish the tables like `attribute` would.
pub fn merge_and_publish(dirs: &[PathBuf], out: &Path) -> Result<RunSummary> {
    let t0 = Instant::now();
    let t = Instant::now();
    let (run, settings) = merge(dirs)?;
    let timings = vec![("merge", t.elapsed().as_millis())];
    pipeline::publish(&run, out, &settings, "merge", timings, t0)
}
