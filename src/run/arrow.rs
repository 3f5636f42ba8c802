//! Runs for other runtimes (the Python package, the Spark job): the CLI's runs with Arrow
//! streams where the CLI has files, so a notebook and a cluster get the CLI's numbers,
//! checks and messages.
//!
//! The distributed fit (`docs/scale.md` § Spark) is three steps, each a sum:
//! [`partial`] per group of whole users (a path table and its metadata, like a shard),
//! [`path_statistics`] per group of distinct merged paths (credit per rule model and
//! channel, Markov edge counts, totals: all additive), and [`solve`] on the driver over the
//! summed statistics.

use std::path::Path;

use crate::core::analysis::{analyze, Analysis, AnalyzeOptions};
use crate::core::chain_counts::{self, EdgeCount, End, EndValue};
use crate::core::event_log::UNIT_SEPARATOR;
use crate::core::journeys::{JourneyStats, Journeys};
use crate::core::markov::{self, Chain};
use crate::core::models::Credits;
use crate::core::paths::{PathRow, PathTable};
use crate::core::table::{Table, Values};
use crate::engine;
use crate::engine::arrow::{self as ffi, ArrowArrayStream, ArrowInput};
use crate::error::{Error, Result};
use crate::report::{self, RunResult};
use crate::settings::{resolve, Layers};
use crate::settings::{MarkovOrder, Model, Settings};

use super::shard::{check_partial, merge_metas, partial_meta, Merged, PartialMeta};
use super::{guards, load_spend, Run};

/// Tables by name, each an Arrow stream.
pub type NamedStreams = Vec<(String, ArrowArrayStream)>;

/// The models the distributed fit carries: sums over paths, time decay (carried in the
/// partials' metadata) and Markov of a fixed order (summed edge counts).
pub const DISTRIBUTED: [Model; 8] = [
    Model::FirstTouch,
    Model::LastTouch,
    Model::LastNonDirect,
    Model::Linear,
    Model::PositionBased,
    Model::TimeDecay,
    Model::Markov,
    Model::Shapley,
];

/// The tables the distributed fit writes (the others need every path or every journey on
/// one machine; `docs/scale.md` lists them).
pub const DISTRIBUTED_TABLES: [&str; 5] =
    ["channel_attribution", "journey_timing", "markov_removal_effects", "markov_transitions", "data_quality"];

/// Settings from an optional pipeline file and overrides given as `section.key` values
/// (the Python package's keyword arguments); each override is blamed by `blame(key)`.
pub fn settings(file: Option<&Path>, overrides: Vec<(String, toml::Value)>) -> Result<Settings> {
    let flags = overrides.into_iter().map(|(k, v)| (k.clone(), v, format!("setting {k}"))).collect();
    let layers = Layers { file, env: &[], flags };
    Ok(resolve(&layers)?.settings)
}

/// `attribute` over events handed over as a stream: every table the CLI would write.
pub fn attribute(mut settings: Settings, events: ArrowInput) -> Result<NamedStreams> {
    settings.output.root = None;
    let mut run = Run::new(settings, "attribute", &|_| {});
    run.stream = Some(events);
    let result = run.compute_events(None)?;
    guards::check(&run.settings, &result)?;
    export(&report::tables(&result, &run.settings)?)
}

fn export(tables: &[Table]) -> Result<NamedStreams> {
    tables.iter().map(|t| Ok((t.name.to_owned(), ffi::export_table(t)?))).collect()
}

/// One group of whole users (a Spark partition's chunk): the partial path table, and its
/// metadata as JSON (the shard format's `partial` object).
pub fn partial(settings: Settings, events: ArrowInput) -> Result<(String, ArrowArrayStream)> {
    check_partial(&settings)?;
    distributed_models(&settings)?;
    // A chunk needs only its path table and time decay (touch times); the models run on
    // the driver, once.
    let mut chunk = settings.clone();
    chunk.output.root = None;
    chunk.models.bootstrap_replicates = 0;
    chunk.models.run.retain(|m| *m == Model::TimeDecay);
    let mut run = Run::new(chunk, "partial", &|_| {});
    run.stream = Some(events);
    run.chunk = true;
    let result = run.compute_events(None)?;
    let meta = partial_meta(&settings, &result, (0, 1));
    let json = serde_json::to_string(&meta).map_err(|e| Error::Internal(format!("partial metadata: {e}")))?;
    Ok((json, ffi::export_table(&report::partial_paths(&result.analysis, UNIT_SEPARATOR))?))
}

/// Refuse settings the distributed fit cannot carry, naming what to change.
pub fn distributed_models(s: &Settings) -> Result<usize> {
    if let Some(m) = s.models.run.iter().find(|m| !DISTRIBUTED.contains(m)) {
        return Err(Error::Config(format!(
            "model {} needs every path at once: the Spark job and merge --bounded-memory run {} (docs/scale.md)",
            m.name(),
            DISTRIBUTED.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
        )));
    }
    match s.models.markov_order {
        MarkovOrder::Fixed(k) => Ok(k),
        MarkovOrder::Auto { .. } => Err(Error::Config(
            "markov_order = \"auto\" scores orders on held-out paths: give the Spark job or merge --bounded-memory a fixed order"
                .into(),
        )),
    }
}

/// Additive statistics of a group of distinct paths (`path`, `conversions`, `nulls`,
/// `value`, paths joined by the unit separator): credit per rule model and path channel,
/// Markov edges and end values, and the totals. Columns: `kind`, `model`, `from`, `to`,
/// `conversions`, `nulls`, `value`.
pub fn path_statistics(settings: &Settings, paths: ArrowInput) -> Result<ArrowArrayStream> {
    let k = distributed_models(settings)?;
    let pt = read_paths(paths)?;
    ffi::export_table(&statistics_of(settings, pt, k)?.table())
}

/// The additive statistics of one group of distinct paths (see [`path_statistics`]).
pub(crate) fn statistics_of(settings: &Settings, pt: PathTable, k: usize) -> Result<Statistics> {
    let mut st = Statistics::default();
    st.push("total", "", "", "", (pt.total_conversions(), pt.total_nulls(), pt.total_value()));
    st.push("distinct_paths", "", "", "", (pt.rows.len() as f64, 0.0, 0.0));
    let mut by_length: std::collections::BTreeMap<usize, f64> = Default::default();
    for r in &pt.rows {
        *by_length.entry(r.path.len()).or_default() += r.conversions;
    }
    for (len, conversions) in by_length {
        st.push("length", "", &len.to_string(), "", (conversions, 0.0, 0.0));
    }
    let mut models = settings.models.clone();
    models.run.retain(|m| !matches!(m, Model::Markov | Model::TimeDecay));
    let journeys =
        Journeys { paths: pt, stats: JourneyStats::default(), fold: None, recorded: None, index: None };
    let names = journeys.paths.channels.clone();
    let opts = AnalyzeOptions {
        base_names: &names,
        models: &models,
        time_decay_credit: None,
        sequence_effects: false,
        dedupe: true,
        training: None,
    };
    let a = analyze(journeys, &opts)?;
    for (m, c) in &a.credits {
        for (i, ch) in names.iter().enumerate() {
            st.push("credit", m.name(), ch, "", (c.conversions[i], 0.0, c.value[i]));
        }
    }
    if settings.models.run.contains(&Model::Markov) {
        markov_statistics(&mut st, &a.paths, k);
    }
    Ok(st)
}

/// The Markov chain's edge counts and end values, states named by their channels.
fn markov_statistics(st: &mut Statistics, pt: &PathTable, k: usize) {
    let sep = UNIT_SEPARATOR.to_string();
    let name = |t: &[u32]| t.iter().map(|&c| pt.channels[c as usize].as_str()).collect::<Vec<_>>().join(&sep);
    for e in chain_counts::edge_counts(&Chain::fit(pt, k)) {
        let (kind, to) = match &e.to {
            End::State(s) => ("edge", name(s)),
            End::Conversion => ("edge_conversion", String::new()),
            End::Null => ("edge_null", String::new()),
        };
        st.push(kind, "", &name(&e.from), &to, (e.count, 0.0, 0.0));
    }
    for e in chain_counts::end_values(pt, k) {
        st.push("end", "", &name(&e.state), "", (e.conversions, 0.0, e.value));
    }
}

/// Rows of the statistics table, column by column.
#[derive(Default)]
pub(crate) struct Statistics {
    kind: Vec<String>,
    model: Vec<String>,
    from: Vec<String>,
    to: Vec<String>,
    numbers: [Vec<f64>; 3],
}

impl Statistics {
    fn push(&mut self, kind: &str, model: &str, from: &str, to: &str, n: (f64, f64, f64)) {
        self.kind.push(kind.into());
        self.model.push(model.into());
        self.from.push(from.into());
        self.to.push(to.into());
        self.numbers[0].push(n.0);
        self.numbers[1].push(n.1);
        self.numbers[2].push(n.2);
    }

    /// The rows, keyed for summing.
    pub(crate) fn rows(self) -> impl Iterator<Item = ffi::StatisticsRow> {
        let [c, n, v] = self.numbers;
        let keys = self.kind.into_iter().zip(self.model).zip(self.from).zip(self.to);
        keys.zip(c.into_iter().zip(n).zip(v)).map(|((((kind, model), from), to), ((c, n), v))| {
            ffi::StatisticsRow { kind, model, from, to, numbers: (c, n, v) }
        })
    }

    fn table(self) -> Table {
        let [c, n, v] = self.numbers;
        Table::new(
            "path_statistics",
            vec![
                ("kind", Values::Str(self.kind)),
                ("model", Values::Str(self.model)),
                ("from", Values::Str(self.from)),
                ("to", Values::Str(self.to)),
                ("conversions", Values::F64(c)),
                ("nulls", Values::F64(n)),
                ("value", Values::F64(v)),
            ],
        )
    }
}

/// A path table from a stream of (path, conversions, nulls, value) rows.
fn read_paths(paths: ArrowInput) -> Result<PathTable> {
    let (path, conversions, nulls, value) = ffi::read_path_rows(paths, "the paths")?;
    let mut names: Vec<&str> = path.iter().flat_map(|s| s.split(UNIT_SEPARATOR)).collect();
    names.sort_unstable();
    names.dedup();
    let channels: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let id = |s: &str| names.binary_search(&s).map_or(0, |i| i as u32);
    let rows = path.iter().enumerate().filter(|(_, s)| !s.is_empty()).map(|(i, s)| PathRow {
        path: s.split(UNIT_SEPARATOR).map(id).collect(),
        conversions: conversions[i],
        nulls: nulls[i],
        value: value[i],
    });
    Ok(PathTable::from_rows(channels, rows))
}

/// The summed statistics, in the merged channel space.
#[derive(Default)]
struct Sums {
    credits: Vec<(Model, Credits)>,
    edges: Vec<EdgeCount>,
    ends: Vec<EndValue>,
    /// (conversions, value, nulls) of the modelled journeys.
    totals: (f64, f64, f64),
    distinct: f64,
    /// One row per path length with the converting journeys of that length.
    lengths: Vec<PathRow>,
}

fn sums(rows: &[ffi::StatisticsRow], channels: &[String]) -> Result<Sums> {
    let bad = |what: &str| Error::Config(format!("path statistics: {what}"));
    let tuple = |s: &str| -> Result<Vec<u32>> {
        match s.is_empty() {
            true => Ok(Vec::new()),
            false => s
                .split(UNIT_SEPARATOR)
                .map(|c| channels.binary_search_by(|x| x.as_str().cmp(c)).map(|i| i as u32))
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| bad("a channel no partial saw")),
        }
    };
    let mut s = Sums::default();
    for r in rows {
        let (c, n, v) = r.numbers;
        match r.kind.as_str() {
            "total" => s.totals = (s.totals.0 + c, s.totals.1 + v, s.totals.2 + n),
            "distinct_paths" => s.distinct += c,
            "length" => {
                let len: usize = r.from.parse().map_err(|_| bad("a length row without a length"))?;
                s.lengths.push(PathRow { path: vec![0; len], conversions: c, nulls: 0.0, value: 0.0 });
            }
            "credit" => {
                let m = Model::parse(&r.model)?;
                let at = s.credits.iter().position(|(x, _)| *x == m).unwrap_or_else(|| {
                    s.credits.push((m, Credits::zeros(channels.len())));
                    s.credits.len() - 1
                });
                let i =
                    *tuple(&r.from)?.first().ok_or_else(|| bad("a credit row without a channel"))? as usize;
                s.credits[at].1.conversions[i] += c;
                s.credits[at].1.value[i] += v;
            }
            "end" => s.ends.push(EndValue { state: tuple(&r.from)?, value: v, conversions: c }),
            kind => {
                let to = match kind {
                    "edge" => End::State(tuple(&r.to)?),
                    "edge_conversion" => End::Conversion,
                    "edge_null" => End::Null,
                    other => return Err(bad(&format!("unknown kind `{other}`"))),
                };
                s.edges.push(EdgeCount { from: tuple(&r.from)?, to, count: c });
            }
        }
    }
    Ok(s)
}

/// The driver's step: the summed statistics and every partial's metadata become the
/// tables of [`DISTRIBUTED_TABLES`].
pub fn solve(settings: Settings, metas: &[String], statistics: ArrowInput) -> Result<NamedStreams> {
    let metas: Vec<PartialMeta> = metas
        .iter()
        .map(|m| serde_json::from_str(m).map_err(|e| Error::Config(format!("not a partial's metadata: {e}"))))
        .collect::<Result<_>>()?;
    let rows = ffi::read_statistics(statistics, "the path statistics")?;
    export(&solve_rows(&settings, &metas, &rows)?.1)
}

/// [`solve`] over statistics rows already summed: the result and its tables.
pub(crate) fn solve_rows(
    settings: &Settings,
    metas: &[PartialMeta],
    rows: &[ffi::StatisticsRow],
) -> Result<(RunResult, Vec<Table>)> {
    let k = distributed_models(settings)?;
    let Merged { base, path_channels, report_of, mut stats, time_decay, input } = merge_metas(metas);
    // Chunks may keep nothing; the whole may not, with the reader's own messages.
    let kept =
        engine::Kept { rows_read: input.rows_read, events: input.events, other_shards: input.other_shards };
    engine::check_kept("the events", &super::scope_of(settings).0, &kept)?;
    let s = sums(rows, &path_channels)?;
    let n = path_channels.len();
    let markov = match settings.models.run.contains(&Model::Markov) {
        true => Some(markov::removal(chain_counts::from_edge_counts(k, n, &s.edges, &s.ends), s.totals)?),
        false => None,
    };
    let credit_of = |m: Model| match m {
        Model::TimeDecay => time_decay.clone(),
        Model::Markov => {
            markov.as_ref().map(|r| Credits { conversions: r.conversions.clone(), value: r.value.clone() })
        }
        _ => s.credits.iter().find(|(x, _)| *x == m).map(|(_, c)| c.clone()),
    };
    let credits =
        settings.models.run.iter().map(|&m| (m, credit_of(m).unwrap_or_else(|| Credits::zeros(n)))).collect();
    stats.distinct_paths = Some(s.distinct as u64);
    let analysis = Analysis {
        // The distinct paths stay in Spark: one row per path length stands in for them, which
        // is all `journey_timing` reads (the other tables read the statistics).
        paths: PathTable { channels: path_channels, rows: s.lengths },
        stats,
        report_channels: base,
        report_of,
        credits,
        markov,
        order_scores: None,
        sequences: Vec::new(),
        shapley_ordered: None,
        recorded: None,
        index: None,
        intervals: None,
        training: None,
        warnings: Vec::new(),
    };
    let result = RunResult {
        analysis,
        campaign: None,
        users: Default::default(),
        input,
        spend: load_spend(settings)?,
        groups: None,
        segments: Vec::new(),
        journey_conversions: Default::default(),
        source_touches: None,
    };
    guards::check(settings, &result)?;
    let mut tables = report::tables(&result, settings)?;
    tables.retain(|t| DISTRIBUTED_TABLES.contains(&t.name));
    Ok((result, tables))
}

/// The shard of each id of a one-column stream (string, 32- or 64-bit integer ids), as
/// `--shard` computes it.
pub fn shard_of(ids: ArrowInput, n: u32) -> Result<Vec<Option<u32>>> {
    if n == 0 {
        return Err(Error::Config("the number of shards must be at least 1".into()));
    }
    ffi::shard_column(ids, n)
}
