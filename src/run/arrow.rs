//! Runs for other runtimes (the Python package, the Spark job): the CLI's runs with Arrow
//! streams where the CLI has files, so a notebook and a cluster get the CLI's numbers,
//! checks and messages.
//!
//! The distributed fit (`docs/scale.md` § Spark) is three steps, each a sum:
//! [`partial`] per group of whole users (a path table and its metadata, like a shard),
//! [`path_statistics`] per group of distinct merged paths (credit per rule model and
//! channel, Markov edge counts, totals: all additive), and [`solve`] on the driver over the
//! summed statistics.

use std::collections::BTreeMap;
use std::path::Path;

use crate::core::analysis::{self, Analysis};
use crate::core::chain_counts::{self, EdgeCount, End, EndValue};
use crate::core::event_log::UNIT_SEPARATOR;
use crate::core::markov::Chain;
use crate::core::models::Credits;
use crate::core::paths::{PathRow, PathTable};
use crate::core::replicates::{self, Kind};
use crate::core::roles::Roles;
use crate::core::statistics::{self, ChainSum, Plan, SolveOptions, Sums};
use crate::core::table::{Table, Values};
use crate::engine;
use crate::engine::arrow::{self as ffi, ArrowArrayStream, ArrowInput};
use crate::error::{Error, Result};
use crate::report::{self, RunResult};
use crate::settings::{resolve, Layers};
use crate::settings::{MarkovOrder, Model, Settings};

use super::shard::{merge_metas, Merged, PartialMeta};

mod partial;
mod staging;
/// The change guard for a driver that read the previous manifest itself (an object store).
pub use super::guards::check_change as check_conversion_change;
use super::{guards, load_spend, Run};
use partial::JourneyFinish;
pub use partial::{finish_journey_credit, partial, Partial, PartialInput};
pub use staging::{event_columns, split_plan, stage_file};

/// Tables by name, each an Arrow stream.
pub type NamedStreams = Vec<(String, ArrowArrayStream)>;

/// The tables the distributed fit writes (`path_summary` is one row per distinct path, and
/// the distributed fit keeps only sums; `docs/scale.md` says why the others are left out).
pub const DISTRIBUTED_TABLES: [&str; 12] = [
    "channel_attribution",
    "channel_calibration",
    "spend_response",
    "budget_shift",
    "channel_roles",
    "journey_timing",
    "markov_removal_effects",
    "markov_transitions",
    "markov_sequence_effects",
    "markov_order_selection",
    "shapley_ordered",
    "data_quality",
];

/// The channel-group tables, written by a distributed fit that has the group level (the
/// bounded merge of shards, the Spark job).
pub const GROUP_TABLES: [&str; 3] = ["channel_group_attribution", "channel_group_roles", "group_comparison"];

/// Check, on the driver before Spark runs, what the Spark job cannot carry (a training
/// window), and what would otherwise fail inside an executor, where the
/// error loses its file and exit status: staged input's files and columns (as `validate`
/// checks them; paths every executor reads with the library, so no object-store URI), and
/// the pseudonymization key.
pub fn check_spark(settings: &Settings) -> Result<()> {
    super::person_key(settings)?;
    settings.refuse_for(crate::settings::Entry::Spark)?;
    if settings.staged() {
        engine::sources::check(settings, &super::scope_of(settings).0)?;
    }
    Ok(())
}

/// The fingerprint of the pseudonymization key (the manifest's
/// `pseudonym_key_fingerprint`), when `journey_credit` names persons by pseudonym.
pub fn pseudonym_fingerprint(settings: &Settings) -> Result<Option<String>> {
    Ok(super::person_key(settings)?.map(|k| k.fingerprint()))
}

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

/// The summed statistics a driver solves (see [`solve`]).
pub struct Summed {
    /// The path statistics, summed.
    pub statistics: ArrowInput,
    /// The replicates' named statistics, summed (with intervals on).
    pub replicates: Option<ArrowInput>,
    /// The campaign sums, summed (with a campaign column).
    pub campaigns: Option<ArrowInput>,
    /// The channel-group level's path statistics and replicate statistics, summed (with
    /// `[channel_groups]`).
    pub groups: Option<(ArrowInput, Option<ArrowInput>)>,
    /// Every customer segment's path statistics, summed, by segment key (with `[segments]`).
    pub segments: Vec<(String, ArrowInput)>,
    /// The converting paths with the most conversions (at least [`report::TOP_PATHS`] of
    /// them, or all), summed: what the page lists.
    pub top_paths: Option<ArrowInput>,
    /// The previous run date's headline (its manifest's `headline`, JSON), for the page,
    /// when the caller read it from a store the library cannot (an object store).
    pub previous_headline: Option<String>,
    /// The earlier run dates' headlines for `spend_response`, JSON `[[date, headline], …]`,
    /// when the caller read them from such a store.
    pub history: Option<String>,
}

/// What the driver's solve gives: the tables, and with the top paths the page and the
/// headline the publication's manifest keeps for the next date's page.
pub struct Solved {
    /// The tables, by name.
    pub tables: NamedStreams,
    /// `report.html`.
    pub page: Option<String>,
    /// The manifest's `headline`, JSON.
    pub headline: Option<String>,
    /// With `journey_credit`: how the executors finish its rows (JSON, for
    /// [`finish_journey_credit`]).
    pub journey: Option<String>,
}

/// Additive statistics of a group of distinct paths (`path`, `conversions`, `nulls`,
/// `value`, paths joined by the unit separator): credit per rule model and path channel,
/// Markov edges and end values, and the totals. Columns: `kind`, `model`, `from`, `to`,
/// `conversions`, `nulls`, `value`.
pub fn path_statistics(settings: &Settings, paths: ArrowInput) -> Result<ArrowArrayStream> {
    statistics_of_paths(settings, read_paths(paths)?)
}

/// [`path_statistics`] of a path table (a Spark chunk's own paths: no text to parse).
pub(crate) fn statistics_of_paths(settings: &Settings, pt: PathTable) -> Result<ArrowArrayStream> {
    let orders = statistics::markov_orders(&settings.models);
    // The report channel of each path channel: only `frequency` renames them, by a suffix.
    let frequency = settings.journeys.transforms.contains(&crate::settings::Transform::Frequency);
    let bases: Vec<String> = pt
        .channels
        .iter()
        .map(|c| if frequency { crate::core::transforms::frequency_base(c).to_owned() } else { c.clone() })
        .collect();
    ffi::export_table(&statistics_of(settings, pt, &orders, &bases)?.table())
}

/// The additive statistics of one group of distinct paths (see [`path_statistics`]) with
/// the Markov chain of each of `orders`; `bases[i]` is the report channel of path channel
/// i (they differ with `frequency`, and `last_non_direct` asks the report channel whether
/// it is direct).
pub(crate) fn statistics_of(
    settings: &Settings,
    pt: PathTable,
    orders: &[usize],
    bases: &[String],
) -> Result<Statistics> {
    let mut base = bases.to_vec();
    base.sort();
    base.dedup();
    let report_of: Vec<u32> = bases.iter().map(|b| base.binary_search(b).map_or(0, |i| i as u32)).collect();
    let plan = Plan {
        models: &settings.models,
        orders,
        report_of: &report_of,
        report_channels: &base,
        fitted_only: false,
    };
    let s = Sums::of(&pt, &plan);
    let names = &pt.channels;
    let name = |t: &[u32]| t.iter().map(|&c| names[c as usize].as_str()).collect::<Vec<_>>().join(SEP);
    let mut st = Statistics::default();
    let (conversions, value, nulls) = s.totals;
    st.push(Kind::Total, "", "", "", (conversions, nulls, value));
    st.push(Kind::DistinctPaths, "", "", "", (s.distinct, 0.0, 0.0));
    for r in &s.lengths {
        st.push(Kind::Length, "", &r.path.len().to_string(), "", (r.conversions, r.nulls, r.value));
    }
    for (i, r) in s.roles.iter().enumerate() {
        for (role, x) in Roles::NAMES.iter().zip(r.values()).filter(|(_, x)| *x != 0.0) {
            st.push(Kind::Role, role, &names[i], "", (x, 0.0, 0.0));
        }
    }
    for (set, &[c, n, v]) in &s.coalitions {
        st.push(Kind::Coalition, "", &name(set), "", (c, n, v));
    }
    for (m, c) in &s.credits {
        for (i, ch) in names.iter().enumerate() {
            st.push(Kind::Credit, m.name(), ch, "", (c.conversions[i], 0.0, c.value[i]));
        }
    }
    for (&(channel, position), &(c, v)) in &s.ordered {
        st.push(Kind::Ordered, "", &names[channel as usize], &position.to_string(), (c, 0.0, v));
    }
    let auto = matches!(settings.models.markov_order, MarkovOrder::Auto { .. });
    for (&k, chain) in &s.chains {
        // With "auto" each candidate order's rows are tagged with it (`model`).
        if let ChainSum::Fitted(chain) = chain {
            markov_statistics(&mut st, (&pt, chain), k, if auto { k.to_string() } else { String::new() });
        }
    }
    for ((k, fold, last), (c, n)) in &s.folds {
        st.push(Kind::Fold, &k.to_string(), &name(last), &fold.to_string(), (*c, *n, 0.0));
    }
    Ok(st)
}

pub(crate) const SEP: &str = "\u{1f}";

/// The Markov chain's edge counts and end values, states named by their channels.
fn markov_statistics(st: &mut Statistics, (pt, chain): (&PathTable, &Chain), k: usize, tag: String) {
    let name = |t: &[u32]| t.iter().map(|&c| pt.channels[c as usize].as_str()).collect::<Vec<_>>().join(SEP);
    for e in chain_counts::edge_counts(chain) {
        let (kind, to) = match &e.to {
            End::State(s) => (Kind::Edge, name(s)),
            End::Conversion => (Kind::EdgeConversion, String::new()),
            End::Null => (Kind::EdgeNull, String::new()),
        };
        st.push(kind, &tag, &name(&e.from), &to, (e.count, 0.0, 0.0));
    }
    for e in chain_counts::end_values(pt, k) {
        st.push(Kind::End, &tag, &name(&e.state), "", (e.conversions, 0.0, e.value));
    }
}

/// Rows of the statistics table, column by column.
#[derive(Default)]
pub(crate) struct Statistics {
    kind: Vec<Kind>,
    model: Vec<String>,
    from: Vec<String>,
    to: Vec<String>,
    numbers: [Vec<f64>; 3],
}

impl Statistics {
    fn push(&mut self, kind: Kind, model: &str, from: &str, to: &str, n: (f64, f64, f64)) {
        self.kind.push(kind);
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
        use crate::core::replicates::{KEYS, NUMBERS};
        let kind = Values::Str(self.kind.iter().map(|k| k.name().to_owned()).collect());
        let keys = [kind, Values::Str(self.model), Values::Str(self.from), Values::Str(self.to)];
        let numbers = self.numbers.map(Values::F64);
        Table::new(
            "path_statistics",
            KEYS.into_iter().zip(keys).chain(NUMBERS.into_iter().zip(numbers)).collect(),
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

fn sums(rows: &[ffi::StatisticsRow], channels: &[String], fixed: usize) -> Result<Sums> {
    let bad = |what: &str| Error::Config(format!("path statistics: {what}"));
    let tuple = |s: &str| channel_ids(s, channels).ok_or_else(|| bad("a channel no partial saw"));
    let channel = |s: &str| -> Result<usize> {
        Ok(*tuple(s)?.first().ok_or_else(|| bad("a channel row without a channel"))? as usize)
    };
    let mut s = Sums { roles: vec![Roles::default(); channels.len()], ..Default::default() };
    let mut chains: BTreeMap<usize, (Vec<EdgeCount>, Vec<EndValue>)> = BTreeMap::new();
    // An edge or end row's order: its tag with "auto", else the fixed order.
    let order = |m: &str| -> Result<usize> {
        match m {
            "" => Ok(fixed),
            m => m.parse().map_err(|_| bad("an order that is not a number")),
        }
    };
    for r in rows {
        let (c, n, v) = r.numbers;
        let kind = r.kind;
        match kind {
            Kind::Total => s.totals = (s.totals.0 + c, s.totals.1 + v, s.totals.2 + n),
            Kind::DistinctPaths => s.distinct += c,
            Kind::Length => {
                let len: usize = r.from.parse().map_err(|_| bad("a length row without a length"))?;
                s.lengths.push(PathRow { path: vec![0; len], conversions: c, nulls: n, value: v });
            }
            Kind::Credit => {
                let m = Model::parse(&r.model)?;
                let at = s.credits.iter().position(|(x, _)| *x == m).unwrap_or_else(|| {
                    s.credits.push((m, Credits::zeros(channels.len())));
                    s.credits.len() - 1
                });
                s.credits[at].1.add(channel(&r.from)? as u32, 1.0, c, v);
            }
            Kind::End => chains.entry(order(&r.model)?).or_default().1.push(EndValue {
                state: tuple(&r.from)?,
                value: v,
                conversions: c,
            }),
            Kind::Edge | Kind::EdgeConversion | Kind::EdgeNull => {
                let to = match kind {
                    Kind::Edge => End::State(tuple(&r.to)?),
                    Kind::EdgeConversion => End::Conversion,
                    _ => End::Null,
                };
                chains.entry(order(&r.model)?).or_default().0.push(EdgeCount {
                    from: tuple(&r.from)?,
                    to,
                    count: c,
                });
            }
            Kind::Role => {
                let i =
                    Roles::NAMES.iter().position(|x| *x == r.model).ok_or_else(|| bad("an unknown role"))?;
                let ch = channel(&r.from)?;
                *s.roles[ch].value_mut(i).expect("a known role") += c;
            }
            Kind::Coalition => {
                let x = s.coalitions.entry(tuple(&r.from)?).or_default();
                (x[0], x[1], x[2]) = (x[0] + c, x[1] + n, x[2] + v);
            }
            Kind::Fold => {
                let fold: usize =
                    r.to.parse().ok().filter(|&f| f < 2).ok_or_else(|| bad("a fold that is not 0 or 1"))?;
                let x = s.folds.entry((order(&r.model)?, fold, tuple(&r.from)?)).or_default();
                (x.0, x.1) = (x.0 + c, x.1 + n);
            }
            Kind::Ordered => {
                let pos: u32 = r.to.parse().map_err(|_| bad("an ordered row without a position"))?;
                let x = s.ordered.entry((channel(&r.from)? as u32, pos)).or_default();
                (x.0, x.1) = (x.0 + c, x.1 + v);
            }
        }
    }
    s.chains = chains.into_iter().map(|(k, (edges, ends))| (k, ChainSum::Counted { edges, ends })).collect();
    Ok(s)
}

/// The driver's step: the summed statistics and every partial's metadata become the
/// tables of [`DISTRIBUTED_TABLES`].
/// With the top paths, the page (`report.html`) too.
pub fn solve(settings: Settings, metas: &[String], summed: Summed) -> Result<Solved> {
    let Summed { statistics, replicates, campaigns, groups, segments, top_paths, previous_headline, history } =
        summed;
    let metas: Vec<PartialMeta> = metas
        .iter()
        .map(|m| serde_json::from_str(m).map_err(|e| Error::Config(format!("not a partial's metadata: {e}"))))
        .collect::<Result<_>>()?;
    check_keys(&settings, &metas)?;
    let mut result = solve_level(&settings, &metas, (statistics, replicates), "")?;
    if let Some(input) = campaigns.filter(|_| settings.campaigns()) {
        let draws = 1 + settings.models.bootstrap_replicates;
        let sums = ffi::read_campaign_sums(input, "the campaign sums", draws)?;
        result.campaign = Some(crate::core::campaigns::solve(&sums, &result.analysis, &settings.models)?);
    }
    if let Some(level) = groups.filter(|_| !settings.channel_groups.is_empty()) {
        let bad = || Error::Config("the group statistics without the partials' group level".into());
        let group_metas: Vec<PartialMeta> =
            metas.iter().map(|m| m.groups.as_deref().cloned().ok_or_else(bad)).collect::<Result<_>>()?;
        result.groups = Some(solve_level(&settings, &group_metas, level, "group ")?.analysis);
    }
    result.segments = solve_segments(&settings, &metas, segments, &result.analysis)?;
    // What the merges warn of, the Spark job too (e.g. a level without its group level).
    let (intervals, groups) = (result.analysis.intervals.is_some(), result.groups.is_some());
    result.analysis.warnings.extend(super::shard::merge_warnings(&settings, intervals, groups));
    result.source_touches = super::shard::merge_source_touches(metas.iter());
    if report::TableName::planned(&settings).contains(&report::TableName::SpendResponse) {
        let bad = |e: String| Error::Config(format!("the history of headlines: {e}"));
        let read = history.map(|json| -> Result<Vec<(chrono::NaiveDate, report::Headline)>> {
            let days: Vec<(String, report::Headline)> =
                serde_json::from_str(&json).map_err(|e| bad(e.to_string()))?;
            days.into_iter()
                .map(|(d, h)| Ok((d.parse::<chrono::NaiveDate>().map_err(|e| bad(format!("{d}: {e}")))?, h)))
                .collect()
        });
        result.history = super::load_history(&settings, read.transpose()?)?;
    }
    // journey_credit is finished by the executors (`finish_journey_credit`), never here.
    let driver = Settings {
        output: crate::settings::Output { journey_credit: false, ..settings.output.clone() },
        ..settings.clone()
    };
    let tables = export(&distributed_tables(&result, &driver, &[])?)?;
    let page = match top_paths {
        Some(input) => {
            result.analysis.top_paths = Some(read_top_paths(input, &result.analysis.paths.channels)?);
            let previous = match previous_headline {
                Some(json) => serde_json::from_str(&json).ok(),
                None => guards::previous_headline(&settings),
            };
            Some(report::html(&result, &settings, previous.as_ref())?)
        }
        None => None,
    };
    let headline = report::headline(&result.analysis).and_then(|h| serde_json::to_string(&h).ok());
    let journey = match metas.iter().find_map(|m| m.journey_columns.clone()) {
        Some(columns) if settings.output.journey_credit => {
            let finish =
                JourneyFinish { columns, split: report::MarkovSplit::of(&result.analysis, &settings) };
            Some(
                serde_json::to_string(&finish)
                    .map_err(|e| Error::Internal(format!("journey_credit: {e}")))?,
            )
        }
        _ => None,
    };
    Ok(Solved { tables, page, headline, journey })
}

/// Every partition named persons under the driver's pseudonymization key (executors
/// read it from their own environment: one with another key would mix two pseudonyms).
fn check_keys(settings: &Settings, metas: &[PartialMeta]) -> Result<()> {
    let want = pseudonym_fingerprint(settings)?;
    if metas.iter().any(|m| m.pseudonym_key_fingerprint != want) {
        return Err(Error::Config(format!(
            "the executors' pseudonymization key ({}) differs from the driver's: give every executor the same \
             key (e.g. spark.executorEnv.{})",
            settings.output.pseudonym_key_env, settings.output.pseudonym_key_env
        )));
    }
    Ok(())
}

/// The page's converting paths with the most conversions, from summed (path, conversions,
/// nulls, value) rows, in the page's order.
fn read_top_paths(input: ArrowInput, channels: &[String]) -> Result<Vec<PathRow>> {
    let label = "the top paths";
    let (path, conversions, nulls, value) = ffi::read_path_rows(input, label)?;
    let mut rows = Vec::with_capacity(path.len());
    for (i, p) in path.iter().enumerate() {
        let ids = channel_ids(p, channels)
            .ok_or_else(|| Error::Config(format!("{label}: a channel no partial saw")))?;
        rows.push(PathRow { path: ids, conversions: conversions[i], nulls: nulls[i], value: value[i] });
    }
    let mut top = Vec::new();
    crate::core::paths::top_converting(&mut top, rows.iter(), report::TOP_PATHS);
    Ok(top)
}

/// A path's channels (names joined by U+001F; empty: none) as ids into the sorted
/// `channels` (None when one is not there).
fn channel_ids(path: &str, channels: &[String]) -> Option<Vec<u32>> {
    if path.is_empty() {
        return Some(Vec::new());
    }
    let id = |c: &str| channels.binary_search_by(|x| x.as_str().cmp(c)).ok().map(|i| i as u32);
    path.split(UNIT_SEPARATOR).map(id).collect()
}

/// The customer segments of a distributed fit, in one run's order: each segment's summed
/// statistics solved with the level metadata of the chunks that had it, and finished as
/// one run finishes it (the pooled fit below `min_conversions`). No intervals: one run has
/// none per segment.
fn solve_segments(
    settings: &Settings,
    metas: &[PartialMeta],
    segments: Vec<(String, ArrowInput)>,
    pooled: &Analysis,
) -> Result<Vec<crate::core::analysis::SegmentAnalysis>> {
    let mut plain = settings.clone();
    plain.models.bootstrap_replicates = 0;
    let mut inputs: BTreeMap<(bool, String), ArrowInput> = BTreeMap::new();
    for (key, input) in segments {
        let mut parts = key.splitn(3, UNIT_SEPARATOR);
        let (Some(status), Some(_), Some(segment)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Config(format!("segment statistics: a key of no segment: {key:?}")));
        };
        inputs.insert((status == "1", segment.to_owned()), input);
    }
    // Every segment a chunk had, as the merges list them: one without paths (no returning
    // customer yet, a segment seen only outside the window) has no statistics, and is
    // still a segment of one run, with zero credit.
    let mut by: BTreeMap<(bool, String), (String, Vec<PartialMeta>)> = BTreeMap::new();
    for l in metas.iter().flat_map(|m| &m.segments) {
        let e =
            by.entry((l.status, l.segment.clone())).or_insert_with(|| (l.segmentation.clone(), Vec::new()));
        e.1.push(l.meta.clone());
    }
    let mut out = Vec::with_capacity(by.len());
    for (key, (segmentation, levels)) in by {
        let rows = match inputs.remove(&key) {
            Some(input) => ffi::read_statistics(input, "the segment path statistics")?,
            None => Vec::new(),
        };
        let (result, _) = solve_rows(&plain, &levels, &rows, false)?;
        out.push(super::segments::finish_segment((segmentation, key.1), result.analysis, pooled, settings));
    }
    Ok(out)
}

/// One level (channels, or channel groups) of a distributed fit: its summed statistics
/// solved, and its summed replicate statistics into its intervals.
fn solve_level(
    settings: &Settings,
    metas: &[PartialMeta],
    (statistics, replicates): (ArrowInput, Option<ArrowInput>),
    level: &str,
) -> Result<RunResult> {
    let rows = ffi::read_statistics(statistics, &format!("the {level}path statistics"))?;
    // As one run: the sequences of channels, not of groups.
    let (mut result, coalitions) = solve_rows(settings, metas, &rows, level.is_empty())?;
    if let Some(input) = replicates.filter(|_| settings.models.bootstrap_replicates > 0) {
        let label = format!("the {level}replicate statistics");
        let named = ffi::read_replicate_rows(input, &label)?;
        let mut frame = replicates::Frame::of(&result.analysis);
        frame.coalitions = coalitions;
        let source = std::iter::once(Ok((named, std::path::PathBuf::from(label))));
        result.analysis.intervals =
            Some(super::shard::solve_replicates(&result.analysis, frame, settings, source)?);
    }
    Ok(result)
}

/// The tables of a distributed fit's result, after its guards.
pub(crate) fn distributed_tables(
    result: &RunResult,
    settings: &Settings,
    spilled: &[&str],
) -> Result<Vec<Table>> {
    guards::check(settings, result)?;
    let mut tables = report::tables(result, settings)?;
    let groups = result.groups.is_some();
    // The tables of what the fit carried: the customer relationship (the merges), segments
    // and campaigns (the merges and Spark).
    let relationship = |name: &str| match name {
        "segment_attribution" | "segment_roles" => !result.segments.is_empty(),
        "source_quality" => result.input.staged.is_some(),
        "source_channel_touches" => result.source_touches.is_some(),
        "journey_credit" => result.journey_credit.is_some(),
        "campaign_attribution" => result.campaign.is_some(),
        _ => false,
    };
    tables.retain(|t| {
        DISTRIBUTED_TABLES.contains(&t.name)
            || spilled.contains(&t.name)
            || (groups && GROUP_TABLES.contains(&t.name))
            || relationship(t.name)
    });
    Ok(tables)
}

/// [`solve`] over statistics rows already summed: the result, before its tables, and the
/// coalitions the statistics hold (what replicates are solved on; the paths are not here).
pub(crate) fn solve_rows(
    settings: &Settings,
    metas: &[PartialMeta],
    rows: &[ffi::StatisticsRow],
    sequence_effects: bool,
) -> Result<(RunResult, Vec<Vec<u32>>)> {
    let Merged { base, path_channels, report_of, mut stats, time_decay, input, lags } = merge_metas(metas);
    // Chunks may keep nothing; the whole may not, with the reader's own messages. Staged
    // input is checked as one run checks it: the rows staging kept, read as a frame.
    let (label, rows_read) = match settings.staged() {
        true => {
            ("the staged sources", input.staged.iter().flat_map(|st| &st.sources).map(|c| c.rows_kept).sum())
        }
        false => ("the events", input.rows_read),
    };
    let kept = engine::Kept { rows_read, events: input.events, other_shards: input.other_shards };
    engine::check_kept(label, &super::scope_of(settings).0, &kept)?;
    let m = &settings.models;
    let orders = statistics::markov_orders(&settings.models);
    let mut s = sums(rows, &path_channels, orders[0])?;
    match statistics::runs_markov(&m.run) {
        // A sum without paths is still a chain (an empty one), as one run's.
        true => orders.iter().for_each(|&k| {
            s.chains.entry(k).or_insert(ChainSum::Counted { edges: Vec::new(), ends: Vec::new() });
        }),
        false => s.chains.clear(),
    }
    let opts = SolveOptions {
        models: m,
        channels: &path_channels,
        time_decay: time_decay.as_ref(),
        sequence_effects,
        partition: false,
        // The replicates' step, if any, solves the removals again (`Frame::linearize`).
        replicated: false,
    };
    let mut fit = statistics::solve(&mut s, None, &opts)?;
    let dedupe = settings.journeys.dedupe != crate::settings::Dedupe::None;
    fit.warnings.splice(0..0, analysis::input_warnings(&stats, s.totals.2, m, dedupe));
    stats.distinct_paths = Some(s.distinct as u64);
    // The distinct paths stay where they were summed: one row per path length stands in for
    // them, which is all `journey_timing` reads (the other tables read the sums).
    let paths = PathTable { channels: path_channels, rows: std::mem::take(&mut s.lengths) };
    let mut analysis = Analysis::new(paths, stats, (base, report_of), fit, std::mem::take(&mut s.roles));
    analysis.lags = lags;
    let result = RunResult {
        spend: load_spend(settings)?,
        experiments: super::load_experiments(settings)?,
        ..RunResult::new(analysis, input)
    };
    Ok((result, s.coalitions.into_keys().collect()))
}

/// The shard of each id of a one-column stream (string, 32- or 64-bit integer ids), as
/// `--shard` computes it.
pub fn shard_of(ids: ArrowInput, n: u32) -> Result<Vec<Option<u32>>> {
    if n == 0 {
        return Err(Error::Config("the number of shards must be at least 1".into()));
    }
    ffi::shard_column(ids, n)
}
