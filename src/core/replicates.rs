//! The bootstrap's additive statistics: what one replicate of one partition of whole
//! persons contributes, and the one solve that turns their sum into credits
//! (`docs/scale.md` § Intervals past one machine).
//!
//! A replicate weights every person by a Poisson(1) draw that depends only on (seed,
//! replicate, person) ([`crate::core::bootstrap`]), so a partition can weight its own
//! persons without knowing the others. What a replicate's credits are made of is then a
//! sum over persons:
//! - rule models and time decay: credit per channel (linear in the journeys' weights);
//! - Markov: weighted journeys along each edge of the chain, the value and conversions of
//!   the converting journeys ending in each state, and the totals;
//! - `markov_journey` and `shapley_rate`: weighted conversions, nulls and value per
//!   coalition (distinct set of channels of a path): both depend on a path only through
//!   its coalition.
//!
//! [`ReplicateSums`] holds those sums in the index space of a [`Frame`] (the full fit's
//! channels, chain and coalitions); [`Frame::solve`] is the one solve, used by a single
//! run and by every merge. Partitions name their sums ([`Frame::rows`], channel names
//! joined by the unit separator), a merge adds named rows into the merged frame
//! ([`Frame::add_row`]): sums of disjoint partitions are the sums of their union, so a
//! merge's intervals equal one run's up to the order of floating-point additions.

use rustc_hash::FxHashMap;

use crate::core::analysis::Analysis;
use crate::core::event_log::UNIT_SEPARATOR;
use crate::core::markov::{self, Chain, Target, Transition};
use crate::core::models::Credits;
use crate::core::paths::{PathRow, PathTable};
use crate::error::{Error, Result};
use crate::settings::Model;

/// The version of the named replicate statistics (the `partial_replicates` table).
pub const REPLICATES_FORMAT: u32 = 1;

/// The columns that key a statistics row: its [`Kind`], the model of a credit row, and
/// `from`/`to` (a channel, a state, a length or a coalition, names joined by U+001F).
pub const KEYS: [&str; 4] = ["kind", "model", "from", "to"];
/// The three sums of a statistics row (and of a path row).
pub const NUMBERS: [&str; 3] = ["conversions", "nulls", "value"];
/// The column that numbers a replicate's row.
pub const REPLICATE: &str = "replicate";

/// The statistics table with its Spark SQL types: the one definition the Rust tables, the
/// readers and the Spark job use (the Python extension exports it as `STATISTICS_SCHEMA`).
pub fn statistics_schema() -> Vec<(&'static str, &'static str)> {
    let keys = KEYS.iter().map(|k| (*k, "string"));
    keys.chain(NUMBERS.iter().map(|n| (*n, "double"))).collect()
}

/// The replicate statistics table (`partial_replicates`): the replicate, then a statistics
/// row (exported as `REPLICATES_SCHEMA`).
pub fn replicates_schema() -> Vec<(&'static str, &'static str)> {
    std::iter::once((REPLICATE, "long")).chain(statistics_schema()).collect()
}

/// What a statistics row is a sum of. One name per kind, here only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// (conversions, nulls, value) of the modelled journeys.
    Total,
    /// Credit of a summed model to a channel (`from`), (conversions, 0, value).
    Credit,
    /// Journeys along an edge between two transient states (`from` → `to`).
    Edge,
    /// Journeys from a state (`from`) into `(conversion)`.
    EdgeConversion,
    /// Journeys from a state (`from`) into `(null)`.
    EdgeNull,
    /// (conversions, 0, value) of the converting journeys ending in a state (`from`).
    End,
    /// (conversions, nulls, value) of the journeys whose channel set is `from`.
    Coalition,
    /// Distinct paths (point statistics only).
    DistinctPaths,
    /// (conversions, nulls, 0) of the journeys with `from` touches (point statistics only).
    Length,
    /// A channel's (`from`) role sum named by `model` (`core::roles::Roles::NAMES`).
    Role,
    /// Shapley credit (conversions, 0, value) of a channel (`from`) at a position (`to`).
    Ordered,
    /// With `markov_order = "auto"`: (conversions, nulls, 0) of the journeys of fold `to`
    /// whose last state of order `model` is `from` (point statistics only: what the order's
    /// held-out score is computed from, `core::markov::choose_order_from`).
    Fold,
}

impl Kind {
    const ALL: [Kind; 12] = [
        Kind::Total,
        Kind::Credit,
        Kind::Edge,
        Kind::EdgeConversion,
        Kind::EdgeNull,
        Kind::End,
        Kind::Coalition,
        Kind::DistinctPaths,
        Kind::Length,
        Kind::Role,
        Kind::Ordered,
        Kind::Fold,
    ];

    /// The kind's name in statistics tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Total => "total",
            Kind::Credit => "credit",
            Kind::Edge => "edge",
            Kind::EdgeConversion => "edge_conversion",
            Kind::EdgeNull => "edge_null",
            Kind::End => "end",
            Kind::Coalition => "coalition",
            Kind::DistinctPaths => "distinct_paths",
            Kind::Length => "length",
            Kind::Role => "role",
            Kind::Ordered => "ordered",
            Kind::Fold => "fold",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// One named statistic of one replicate (a row of `partial_replicates`).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedRow {
    /// Replicate number.
    pub replicate: u32,
    /// What it sums.
    pub kind: Kind,
    /// The model of a credit row, else empty.
    pub model: String,
    /// Channel, source state or coalition: channel names joined by the unit separator.
    pub from: String,
    /// The target state of an edge, else empty.
    pub to: String,
    /// (conversions, nulls, value).
    pub numbers: [f64; 3],
}

/// The chain every replicate is refitted on: the full fit's states and edges.
#[derive(Debug, Clone)]
pub struct ChainFrame {
    /// Markov order.
    pub order: usize,
    /// Channel tuples of the states (0 is `(start)`).
    pub states: Vec<Vec<u32>>,
    /// (from, to) of every transition, sorted.
    pub edges: Vec<(u32, Target)>,
}

impl ChainFrame {
    /// The states and edges of a fitted chain.
    pub fn of(chain: &Chain) -> Self {
        let edges = chain.transitions.iter().map(|t| (t.from, t.to)).collect();
        ChainFrame { order: chain.order, states: chain.states.clone(), edges }
    }
}

/// What replicates are solved on; the same for every replicate.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The analysis' models, in its order.
    pub models: Vec<Model>,
    /// Path-table channel names, sorted.
    pub channels: Vec<String>,
    /// The full fit's chain (Markov or `markov_journey` runs).
    pub chain: Option<ChainFrame>,
    /// Distinct channel sets of the paths, sorted (`markov_journey` or `shapley_rate` runs).
    pub coalitions: Vec<Vec<u32>>,
}

/// Whether a model's replicate credit is a sum over persons (else it is solved from sums).
pub fn summed(m: Model) -> bool {
    !matches!(m, Model::Markov | Model::MarkovJourney | Model::ShapleyRate)
}

/// Whether partitions sum replicate statistics for these settings. With
/// `markov_order = "auto"` the order is chosen only where the partitions meet (from their
/// summed fold counts), and a replicate's Markov sums are the edge counts of one chain; every
/// candidate order's chain per replicate costs too much (`docs/scale.md`), so a merge leaves
/// the intervals out (and says so).
pub fn mergeable(m: &crate::settings::Models) -> bool {
    let markov = m.run.iter().any(|x| matches!(x, Model::Markov | Model::MarkovJourney));
    !(markov && matches!(m.markov_order, crate::settings::MarkovOrder::Auto { .. }))
}

/// Whether a model set needs the coalition sums.
pub fn needs_coalitions(models: &[Model]) -> bool {
    models.iter().any(|m| matches!(m, Model::MarkovJourney | Model::ShapleyRate))
}

/// One replicate's sums over one partition, in a [`Frame`]'s index space.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicateSums {
    /// Per model of the frame: its credit (empty for the solved models).
    pub credits: Vec<Credits>,
    /// Weighted journeys per edge of the frame's chain.
    pub edges: Vec<f64>,
    /// Per state: (value, conversions) of the converting journeys ending there.
    pub ends: Vec<(f64, f64)>,
    /// Per coalition: (conversions, nulls, value).
    pub coalitions: Vec<[f64; 3]>,
    /// (conversions, nulls, value).
    pub totals: [f64; 3],
}

impl ReplicateSums {
    /// Zero sums in a frame.
    pub fn zeros(f: &Frame) -> Self {
        let n = f.channels.len();
        let credits = f.models.iter().map(|&m| Credits::zeros(if summed(m) { n } else { 0 })).collect();
        let (edges, states) = f.chain.as_ref().map_or((0, 0), |c| (c.edges.len(), c.states.len()));
        ReplicateSums {
            credits,
            edges: vec![0.0; edges],
            ends: vec![(0.0, 0.0); states],
            coalitions: vec![[0.0; 3]; f.coalitions.len()],
            totals: [0.0; 3],
        }
    }
}

impl Frame {
    /// The frame of an analysis: its models, channels, full chain and coalitions. With a
    /// training window the fitted models are the training period's and not refitted per
    /// replicate, so there is no chain and no coalitions to sum.
    pub fn of(a: &Analysis) -> Frame {
        let models: Vec<Model> = a.credits.iter().map(|(m, _)| *m).collect();
        let fitted = a.training.is_none();
        let coalitions = match needs_coalitions(&models) && fitted {
            true => coalitions(&a.paths).1,
            false => Vec::new(),
        };
        Frame {
            models,
            channels: a.paths.channels.clone(),
            chain: a.markov.as_ref().filter(|_| fitted).map(|m| ChainFrame::of(&m.chain)),
            coalitions,
        }
    }

    /// Every model's credits (path-table channel ids, the frame's model order) in the
    /// replicate whose sums are `s`.
    pub fn solve(&self, s: &ReplicateSums) -> Result<Vec<Credits>> {
        let n = self.channels.len();
        let mut fit = None;
        let mut out = Vec::with_capacity(self.models.len());
        for (i, &m) in self.models.iter().enumerate() {
            if matches!(m, Model::Markov | Model::MarkovJourney) && fit.is_none() {
                fit = Some(self.refit(s)?);
            }
            out.push(match m {
                Model::Markov => {
                    let f = fit.as_ref().expect("fitted above");
                    Credits { conversions: f.conversions.clone(), value: f.value.clone() }
                }
                Model::MarkovJourney => {
                    let f = fit.as_ref().expect("fitted above");
                    let re: Vec<f64> = f.removal_effects.iter().map(|x| x.unwrap_or(0.0)).collect();
                    self.split_coalitions(s, &re)
                }
                Model::ShapleyRate => crate::core::shapley::shapley_rate(&self.coalition_table(s)).0,
                _ if s.credits[i].conversions.len() == n => s.credits[i].clone(),
                _ => Credits::zeros(n),
            });
        }
        Ok(out)
    }

    /// The summed models' credits of a replicate; the solved ones zero (a training window
    /// applies its fixed fit to them instead).
    pub fn solve_summed(&self, s: &ReplicateSums) -> Vec<Credits> {
        let n = self.channels.len();
        s.credits
            .iter()
            .map(|c| if c.conversions.len() == n { c.clone() } else { Credits::zeros(n) })
            .collect()
    }

    /// The chain refitted with a replicate's counts (the full fit's states and edges; an
    /// edge no weighted journey walks has probability 0), and its removal effects.
    fn refit(&self, s: &ReplicateSums) -> Result<markov::MarkovResult> {
        let c = self
            .chain
            .as_ref()
            .ok_or_else(|| Error::Internal("a Markov replicate without a chain".into()))?;
        let mut out_total = vec![0.0; c.states.len()];
        for (e, &(from, _)) in c.edges.iter().enumerate() {
            out_total[from as usize] += s.edges[e];
        }
        let transitions = c
            .edges
            .iter()
            .zip(&s.edges)
            .map(|(&(from, to), &count)| {
                let t = out_total[from as usize];
                Transition { from, to, count, probability: if t > 0.0 { count / t } else { 0.0 } }
            })
            .collect();
        let lsv = s.ends.iter().map(|&(v, conv)| if conv > 0.0 { v / conv } else { 0.0 }).collect();
        let chain = Chain::from_parts(c.order, c.states.clone(), transitions, lsv, self.channels.len());
        let [conv, nulls, value] = s.totals;
        markov::removal(chain, (conv, value, nulls))
    }

    fn split_coalitions(&self, s: &ReplicateSums, re: &[f64]) -> Credits {
        split_by_removal(&self.coalitions, &s.coalitions, re, self.channels.len())
    }

    fn coalition_table(&self, s: &ReplicateSums) -> PathTable {
        coalition_table(&self.channels, &self.coalitions, &s.coalitions)
    }

    /// The replicate's sums as named rows, appended to `out`.
    pub fn rows(&self, replicate: u32, s: &ReplicateSums, out: &mut Vec<NamedRow>) {
        let name = |t: &[u32]| {
            t.iter()
                .map(|&c| self.channels[c as usize].as_str())
                .collect::<Vec<_>>()
                .join(&UNIT_SEPARATOR.to_string())
        };
        let mut push = |kind: Kind, model: &str, from: String, to: String, numbers: [f64; 3]| {
            out.push(NamedRow { replicate, kind, model: model.into(), from, to, numbers })
        };
        push(Kind::Total, "", String::new(), String::new(), s.totals);
        for (&m, c) in self.models.iter().zip(&s.credits) {
            for (ch, (&conv, &value)) in c.conversions.iter().zip(&c.value).enumerate() {
                push(Kind::Credit, m.name(), self.channels[ch].clone(), String::new(), [conv, 0.0, value]);
            }
        }
        if let Some(chain) = &self.chain {
            for (&(from, to), &count) in chain.edges.iter().zip(&s.edges) {
                let from = name(&chain.states[from as usize]);
                let (kind, to) = match to {
                    Target::State(t) => (Kind::Edge, name(&chain.states[t as usize])),
                    Target::Conversion => (Kind::EdgeConversion, String::new()),
                    Target::Null => (Kind::EdgeNull, String::new()),
                };
                push(kind, "", from, to, [count, 0.0, 0.0]);
            }
            for (state, &(value, conv)) in chain.states.iter().zip(&s.ends) {
                if conv != 0.0 || value != 0.0 {
                    push(Kind::End, "", name(state), String::new(), [conv, 0.0, value]);
                }
            }
        }
        for (set, &numbers) in self.coalitions.iter().zip(&s.coalitions) {
            push(Kind::Coalition, "", name(set), String::new(), numbers);
        }
    }

    /// An index of the frame's names, for [`Frame::add_row`].
    pub fn names(&self) -> FrameNames<'_> {
        let states = self.chain.as_ref().map_or_else(FxHashMap::default, |c| {
            c.states.iter().enumerate().map(|(i, s)| (s.as_slice(), i as u32)).collect()
        });
        FrameNames { frame: self, states }
    }
}

/// The frame's states by channel tuple (the other names are found by binary search).
#[derive(Debug)]
pub struct FrameNames<'a> {
    frame: &'a Frame,
    states: FxHashMap<&'a [u32], u32>,
}

impl FrameNames<'_> {
    fn tuple(&self, s: &str) -> Option<Vec<u32>> {
        if s.is_empty() {
            return Some(Vec::new());
        }
        let ch = &self.frame.channels;
        s.split(UNIT_SEPARATOR)
            .map(|c| ch.binary_search_by(|x| x.as_str().cmp(c)).ok().map(|i| i as u32))
            .collect()
    }

    fn state(&self, s: &str) -> Option<u32> {
        self.states.get(self.tuple(s)?.as_slice()).copied()
    }

    /// Add a named row into a replicate's sums. An error names what the frame does not
    /// have (a partial of another run, or a corrupted one).
    pub fn add_row(&self, s: &mut ReplicateSums, r: &NamedRow) -> std::result::Result<(), String> {
        let f = self.frame;
        let [a, b, c] = r.numbers;
        let edge = |to: Target| -> std::result::Result<usize, String> {
            let chain = f.chain.as_ref().ok_or("an edge, but no Markov model runs")?;
            let from = self.state(&r.from).ok_or("an edge from a state the merged chain does not have")?;
            chain
                .edges
                .binary_search(&(from, to))
                .map_err(|_| "an edge the merged chain does not have".into())
        };
        match r.kind {
            Kind::Total => (0..3).for_each(|i| s.totals[i] += r.numbers[i]),
            Kind::Credit => {
                let m = Model::parse(&r.model).map_err(|e| e.to_string())?;
                let at =
                    f.models.iter().position(|&x| x == m).ok_or("credit of a model this run does not run")?;
                let ch =
                    self.tuple(&r.from).filter(|t| t.len() == 1).ok_or("credit of an unknown channel")?[0];
                let credit = s
                    .credits
                    .get_mut(at)
                    .filter(|c| !c.conversions.is_empty())
                    .ok_or("credit of a solved model")?;
                credit.add(ch, 1.0, a, c);
            }
            Kind::Edge => {
                let to = self.state(&r.to).ok_or("an edge to a state the merged chain does not have")?;
                s.edges[edge(Target::State(to))?] += a;
            }
            Kind::EdgeConversion => s.edges[edge(Target::Conversion)?] += a,
            Kind::EdgeNull => s.edges[edge(Target::Null)?] += a,
            Kind::End => {
                let st = self.state(&r.from).ok_or("an end in a state the merged chain does not have")?;
                let e = &mut s.ends[st as usize];
                (e.0, e.1) = (e.0 + c, e.1 + a);
            }
            Kind::DistinctPaths | Kind::Length | Kind::Role | Kind::Ordered | Kind::Fold => {
                return Err(format!("a `{}` row among replicate statistics", r.kind.name()))
            }
            Kind::Coalition => {
                let set = self.tuple(&r.from).ok_or("a coalition of an unknown channel")?;
                let at = f
                    .coalitions
                    .binary_search(&set)
                    .map_err(|_| "a coalition the merged paths do not have")?;
                let x = &mut s.coalitions[at];
                (x[0], x[1], x[2]) = (x[0] + a, x[1] + b, x[2] + c);
            }
        }
        Ok(())
    }
}

/// `markov_journey` from coalition sums: each converting coalition's channels in
/// proportion to the removal effects (equal shares where they are all 0). A path's credit
/// depends only on its coalition, so this is the model's credit over the paths.
pub fn split_by_removal(sets: &[Vec<u32>], sums: &[[f64; 3]], re: &[f64], n: usize) -> Credits {
    let mut c = Credits::zeros(n);
    let effect = |ch: u32| re.get(ch as usize).copied().unwrap_or(0.0).max(0.0);
    for (set, &[conv, _, value]) in sets.iter().zip(sums) {
        if conv == 0.0 || set.is_empty() {
            continue;
        }
        let total: f64 = set.iter().map(|&ch| effect(ch)).sum();
        for &ch in set {
            let share = if total > 0.0 { effect(ch) / total } else { 1.0 / set.len() as f64 };
            c.add(ch, share, conv, value);
        }
    }
    c
}

/// The coalitions as a path table (one row per channel set), what `shapley_rate` reads: it
/// depends on a path only through its channel set.
pub fn coalition_table(channels: &[String], sets: &[Vec<u32>], sums: &[[f64; 3]]) -> PathTable {
    let rows = sets
        .iter()
        .zip(sums)
        .filter(|(set, _)| !set.is_empty())
        .map(|(set, &[conversions, nulls, value])| PathRow { path: set.clone(), conversions, nulls, value })
        .collect();
    PathTable { channels: channels.to_vec(), rows }
}

/// The distinct channel set of every path row, and the sorted list of those sets.
pub fn coalitions(pt: &PathTable) -> (Vec<u32>, Vec<Vec<u32>>) {
    let sets: Vec<Vec<u32>> = pt
        .rows
        .iter()
        .map(|r| {
            let mut s = r.path.clone();
            s.sort_unstable();
            s.dedup();
            s
        })
        .collect();
    let mut distinct = sets.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let of = sets.iter().map(|s| distinct.binary_search(s).expect("its own set") as u32).collect();
    (of, distinct)
}
