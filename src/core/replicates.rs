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
//! run and by every merge. Partitions name their sums once per statistic, with its value in
//! every replicate ([`NamedSums`], channel names joined by the unit separator); a merge
//! finds each named statistic in the merged frame once ([`FrameNames::slot`]) and adds its
//! replicates' values: sums of disjoint partitions are the sums of their union, so a
//! merge's intervals equal one run's up to the order of floating-point additions.
//!
//! With `markov_order = "auto"` the order is chosen only where the partitions meet, so a
//! partition sums the chain of every candidate order, its rows tagged with the order
//! (`model`), and the merge keeps the chosen order's.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::core::analysis::Analysis;
use crate::core::event_log::UNIT_SEPARATOR;
use crate::core::markov::{self, Chain, Target, Transition};
use crate::core::models::Credits;
use crate::core::paths::{PathRow, PathTable};
use crate::error::{Error, Result};
use crate::settings::{MarkovReplicates, Model};

/// The columns that key a statistics row: its [`Kind`], the model of a credit row, and
/// `from`/`to` (a channel, a state, a length or a coalition, names joined by U+001F).
pub const KEYS: [&str; 4] = ["kind", "model", "from", "to"];
/// The three sums of a statistics row (and of a path row).
pub const NUMBERS: [&str; 3] = ["conversions", "nulls", "value"];

/// The statistics table with its Spark SQL types: the one definition the Rust tables, the
/// readers and the Spark job use (the Python extension exports it as `STATISTICS_SCHEMA`).
pub fn statistics_schema() -> Vec<(&'static str, &'static str)> {
    let keys = KEYS.iter().map(|k| (*k, "string"));
    keys.chain(NUMBERS.iter().map(|n| (*n, "double"))).collect()
}

/// The replicate statistics table (`partial_replicates`): a statistics row whose numbers
/// are lists, one value per replicate (exported as `REPLICATES_SCHEMA`).
pub fn replicates_schema() -> Vec<(&'static str, &'static str)> {
    let keys = KEYS.iter().map(|k| (*k, "string"));
    keys.chain(NUMBERS.iter().map(|n| (*n, "array<double>"))).collect()
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

/// One named statistic of a partition in every replicate (a row of `partial_replicates`).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedSums {
    /// What it sums.
    pub kind: Kind,
    /// The model of a credit row; with `markov_order = "auto"` the order of a chain's row;
    /// else empty.
    pub model: String,
    /// Channel, source state or coalition: channel names joined by the unit separator.
    pub from: String,
    /// The target state of an edge, else empty.
    pub to: String,
    /// (conversions, nulls, value), each with one value per replicate; a number the kind
    /// does not use is an empty list (zero in every replicate).
    pub numbers: [Vec<f64>; 3],
}

/// A named statistic without its values, and which of (conversions, nulls, value) it uses
/// ([`Frame::keys`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// What it sums.
    pub kind: Kind,
    /// As [`NamedSums::model`].
    pub model: String,
    /// As [`NamedSums::from`].
    pub from: String,
    /// As [`NamedSums::to`].
    pub to: String,
    /// The numbers it has.
    pub used: [bool; 3],
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
    /// The full fit's chain (Markov or `markov_journey` runs). A partition with
    /// `markov_order = "auto"` sums every candidate order's chain (rows tagged with the
    /// order); everywhere else there is at most one.
    pub chains: Vec<ChainFrame>,
    /// Distinct channel sets of the paths, sorted (`markov_journey` or `shapley_rate` runs).
    pub coalitions: Vec<Vec<u32>>,
    /// The full chain's solutions a replicate takes one correction step from, instead of
    /// refitting ([`Frame::linearize`]).
    pub linear: Option<std::sync::Arc<markov::Linear>>,
}

/// Whether a model's replicate credit is a sum over persons (else it is solved from sums).
pub fn summed(m: Model) -> bool {
    !matches!(m, Model::Markov | Model::MarkovJourney | Model::ShapleyRate)
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
    /// Per chain of the frame: weighted journeys per edge.
    pub edges: Vec<Vec<f64>>,
    /// Per chain of the frame, per state: (value, conversions) of the converting journeys
    /// ending there.
    pub ends: Vec<Vec<(f64, f64)>>,
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
        ReplicateSums {
            credits,
            edges: f.chains.iter().map(|c| vec![0.0; c.edges.len()]).collect(),
            ends: f.chains.iter().map(|c| vec![(0.0, 0.0); c.states.len()]).collect(),
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
            chains: a.markov.iter().filter(|_| fitted).map(|m| ChainFrame::of(&m.chain)).collect(),
            coalitions,
            linear: None,
        }
    }

    /// Solve replicates' Markov removals by one correction step from `chain` (the full fit
    /// the frame's chain is of) where `how` says so: always with `linear`, with `auto` where
    /// a refit is costly ([`linearized`]). A partition's frame is never linearized: it does
    /// not solve.
    pub fn linearize(&mut self, chain: &Chain, how: MarkovReplicates) {
        if linearized(how, chain) && self.chains.len() == 1 && chain.states.len() > 1 {
            let t = std::time::Instant::now();
            let linear = markov::Linear::of(chain);
            tracing::debug!(
                ms = t.elapsed().as_millis() as u64,
                states = chain.states.len(),
                "linearized the chain"
            );
            if linear.unconverged > 0 {
                tracing::warn!(
                    solves = linear.unconverged,
                    "Markov replicates: Gauss–Seidel solves stopped at the sweep limit"
                );
            }
            self.linear = Some(std::sync::Arc::new(linear));
        }
    }

    /// Every model's credits (path-table channel ids, the frame's model order) in the
    /// replicate whose sums are `s`.
    pub fn solve(&self, s: &ReplicateSums) -> Result<Vec<Credits>> {
        let mut out = self.solve_many(std::slice::from_ref(s))?;
        Ok(out.pop().expect("one replicate"))
    }

    /// [`Frame::solve`] of several replicates: with a linearized chain their correction
    /// steps are one matrix product ([`Frame::solve_filled`]).
    pub fn solve_many(&self, ss: &[ReplicateSums]) -> Result<Vec<Vec<Credits>>> {
        if let Some(linear) = self.linear.as_ref().filter(|_| self.runs_markov()) {
            let mut out = Vec::with_capacity(ss.len());
            for ss in ss.chunks(self.group(ss.len())) {
                let mut q = vec![0.0; linear.entries() * ss.len()];
                q.par_chunks_mut(linear.entries().max(1)).zip(ss).try_for_each(|(q, s)| self.fill(s, q))?;
                out.extend(self.solve_filled(ss, &q)?);
            }
            return Ok(out);
        }
        let fits: Vec<Option<markov::Credited>> = match self.runs_markov() {
            false => vec![None; ss.len()],
            true => ss.par_iter().map(|s| self.refit(s).map(Some)).collect::<Result<_>>()?,
        };
        Ok(ss.par_iter().zip(fits).map(|(s, fit)| self.assemble(s, fit.as_ref())).collect())
    }

    /// How many replicates a linearized chain's product takes at once
    /// ([`markov::Linear::group`]), counting what a replicate's sums hold besides its chain
    /// (a credit per model and channel, three numbers per coalition).
    pub fn group(&self, replicates: usize) -> usize {
        let held = 8 * (2 * self.models.len() * self.channels.len() + 3 * self.coalitions.len());
        let block = crate::core::bootstrap::BLOCK;
        self.linear.as_ref().map_or(block, |l| l.group(replicates, block, held))
    }

    fn runs_markov(&self) -> bool {
        self.models.iter().any(|m| matches!(m, Model::Markov | Model::MarkovJourney))
    }

    /// A replicate's column of the linearized chain's correction product
    /// ([`markov::Linear::fill`]); its chain sums are not read again.
    pub fn fill(&self, s: &ReplicateSums, q: &mut [f64]) -> Result<()> {
        let linear =
            self.linear.as_ref().ok_or_else(|| Error::Internal("fill without a linearized chain".into()))?;
        let (_, edges, ends) = one_chain(&self.chains, s)?;
        linear.fill(&markov::Counts { edges, ends }, q);
        Ok(())
    }

    /// [`Frame::solve`] of replicates whose columns [`Frame::fill`] wrote into `q`, in order
    /// (their chain sums may be gone).
    pub fn solve_filled(&self, ss: &[ReplicateSums], q: &[f64]) -> Result<Vec<Vec<Credits>>> {
        let linear =
            self.linear.as_ref().ok_or_else(|| Error::Internal("solve without a linearized chain".into()))?;
        let kept = linear.kept(q);
        Ok(ss
            .par_iter()
            .zip(kept)
            .map(|(s, (full, channels))| {
                let [conv, nulls, value] = s.totals;
                let fit = markov::Credited::of_kept(full, &channels, (conv, value, nulls));
                self.assemble(s, Some(&fit))
            })
            .collect())
    }

    fn assemble(&self, s: &ReplicateSums, fit: Option<&markov::Credited>) -> Vec<Credits> {
        let n = self.channels.len();
        let fit = || fit.expect("a Markov model's replicate is fitted");
        let mut out = Vec::with_capacity(self.models.len());
        for (i, &m) in self.models.iter().enumerate() {
            out.push(match m {
                Model::Markov => {
                    Credits { conversions: fit().conversions.clone(), value: fit().value.clone() }
                }
                Model::MarkovJourney => {
                    let re: Vec<f64> = fit().removal_effects.iter().map(|x| x.unwrap_or(0.0)).collect();
                    self.split_coalitions(s, &re)
                }
                Model::ShapleyRate => crate::core::shapley::shapley_rate(&self.coalition_table(s)).0,
                _ if s.credits[i].conversions.len() == n => s.credits[i].clone(),
                _ => Credits::zeros(n),
            });
        }
        out
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
    fn refit(&self, s: &ReplicateSums) -> Result<markov::Credited> {
        let (c, edges, ends) = one_chain(&self.chains, s)?;
        let mut out_total = vec![0.0; c.states.len()];
        for (e, &(from, _)) in c.edges.iter().enumerate() {
            out_total[from as usize] += edges[e];
        }
        let transitions = c
            .edges
            .iter()
            .zip(edges)
            .map(|(&(from, to), &count)| {
                let t = out_total[from as usize];
                Transition { from, to, count, probability: if t > 0.0 { count / t } else { 0.0 } }
            })
            .collect();
        let lsv = ends.iter().map(|&(v, conv)| if conv > 0.0 { v / conv } else { 0.0 }).collect();
        let chain = Chain::from_parts(c.order, c.states.clone(), transitions, lsv, self.channels.len());
        let [conv, nulls, value] = s.totals;
        let r = markov::removal(chain, (conv, value, nulls))?;
        Ok(markov::Credited {
            observed_rate: r.observed_rate,
            removal_effects: r.removal_effects,
            value_removal_effects: r.value_removal_effects,
            conversions: r.conversions,
            value: r.value,
        })
    }

    fn split_coalitions(&self, s: &ReplicateSums, re: &[f64]) -> Credits {
        split_by_removal(&self.coalitions, &s.coalitions, re, self.channels.len())
    }

    fn coalition_table(&self, s: &ReplicateSums) -> PathTable {
        coalition_table(&self.channels, &self.coalitions, &s.coalitions)
    }

    /// The frame's statistics in the one order [`Frame::values`] lists their values in: the
    /// totals, each summed model's credit per channel, each chain's edges and end states,
    /// each coalition.
    pub fn keys(&self) -> Vec<Key> {
        let name = |t: &[u32]| {
            t.iter()
                .map(|&c| self.channels[c as usize].as_str())
                .collect::<Vec<_>>()
                .join(&UNIT_SEPARATOR.to_string())
        };
        let key = |kind, model: &str, from, to, used| Key { kind, model: model.into(), from, to, used };
        let mut out = vec![key(Kind::Total, "", String::new(), String::new(), [true; 3])];
        for m in self.models.iter().filter(|&&m| summed(m)) {
            for ch in &self.channels {
                out.push(key(Kind::Credit, m.name(), ch.clone(), String::new(), [true, false, true]));
            }
        }
        for chain in &self.chains {
            let tag = if self.chains.len() > 1 { chain.order.to_string() } else { String::new() };
            for &(from, to) in &chain.edges {
                let (kind, to) = match to {
                    Target::State(t) => (Kind::Edge, name(&chain.states[t as usize])),
                    Target::Conversion => (Kind::EdgeConversion, String::new()),
                    Target::Null => (Kind::EdgeNull, String::new()),
                };
                out.push(key(kind, &tag, name(&chain.states[from as usize]), to, [true, false, false]));
            }
            for state in &chain.states {
                out.push(key(Kind::End, &tag, name(state), String::new(), [true, false, true]));
            }
        }
        for set in &self.coalitions {
            out.push(key(Kind::Coalition, "", name(set), String::new(), [true; 3]));
        }
        out
    }

    /// A replicate's values of the used numbers of [`Frame::keys`], in that order, appended
    /// to `out`.
    pub fn values(&self, s: &ReplicateSums, out: &mut Vec<f64>) {
        out.extend(s.totals);
        for (m, c) in self.models.iter().zip(&s.credits) {
            if summed(*m) {
                for (&conv, &value) in c.conversions.iter().zip(&c.value) {
                    out.extend([conv, value]);
                }
            }
        }
        for (edges, ends) in s.edges.iter().zip(&s.ends) {
            out.extend(edges);
            for &(value, conv) in ends {
                out.extend([conv, value]);
            }
        }
        for c in &s.coalitions {
            out.extend(c);
        }
    }

    /// An index of the frame's names, for [`FrameNames::slot`].
    pub fn names(&self) -> FrameNames<'_> {
        let states = self.chains.first().map_or_else(FxHashMap::default, |c| {
            c.states.iter().enumerate().map(|(i, s)| (s.as_slice(), i as u32)).collect()
        });
        FrameNames { frame: self, states }
    }
}

/// Whether replicates of `chain` take a correction step from the full fit
/// ([`Frame::linearize`]) rather than a refit. `auto` refits where a refit is cheap: up to
/// [`markov::DIRECT_MAX_STATES`] states (one dense LU), or while a Gauss–Seidel refit reads
/// at most [`REFIT_MAX_WORK`] lane-transitions per sweep (⌈(channels + 1) / 8⌉ passes ×
/// transitions; the passes of AVX-512 lanes, a processor without them solves fewer than 64
/// removals one by one and pays more). A function of the chain alone, so one run and every
/// merge decide alike. Above, a refit costs what the full fit costs, and there are enough
/// journeys that the step's second-order error is small.
pub fn linearized(how: MarkovReplicates, chain: &Chain) -> bool {
    match how {
        MarkovReplicates::Refit => false,
        MarkovReplicates::Linear => true,
        MarkovReplicates::Auto => {
            let passes = (chain.n_channels + 1).div_ceil(markov::LANES);
            chain.states.len() > markov::DIRECT_MAX_STATES
                && passes * chain.transitions.len() > REFIT_MAX_WORK
        }
    }
}

/// See [`linearized`]: 40k lane-transitions per sweep are ~5 ms of refit per replicate on
/// this project's machine, ~1 s for 200 replicates on two cores (the 12-channel 10M log at
/// order 3: 2 passes × 26k transitions, 1.5 s of refits against 0.5 s of steps; 300
/// channels at order 2: 38 × 752k, 3.3 s a replicate). Below it a log is small enough
/// that its rarely walked states make the step's error largest, and a refit is cheap.
pub const REFIT_MAX_WORK: usize = 40_000;

/// A chain of a frame, a replicate's weighted journeys per edge and (value, conversions)
/// per end state on it.
type OneChain<'a> = (&'a ChainFrame, &'a [f64], &'a [(f64, f64)]);

/// The frame's one chain and a replicate's sums on it.
fn one_chain<'a>(chains: &'a [ChainFrame], s: &'a ReplicateSums) -> Result<OneChain<'a>> {
    match (chains, &s.edges[..], &s.ends[..]) {
        ([c], [edges], [ends]) => Ok((c, edges, ends)),
        _ => Err(Error::Internal("a Markov replicate without exactly one chain".into())),
    }
}

/// Where a named statistic adds up in a [`ReplicateSums`] ([`FrameNames::slot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The totals.
    Total,
    /// A summed model's credit (position among the frame's models, channel).
    Credit(usize, u32),
    /// An edge of the chain.
    Edge(usize),
    /// The converting journeys ending in a state.
    End(usize),
    /// A coalition.
    Coalition(usize),
}

impl Slot {
    /// Add (conversions, nulls, value) into the slot of `s`.
    pub fn add(self, s: &mut ReplicateSums, [a, b, c]: [f64; 3]) {
        match self {
            Slot::Total => (0..3).for_each(|i| s.totals[i] += [a, b, c][i]),
            Slot::Credit(m, ch) => s.credits[m].add(ch, 1.0, a, c),
            Slot::Edge(e) => s.edges[0][e] += a,
            Slot::End(st) => {
                let e = &mut s.ends[0][st];
                (e.0, e.1) = (e.0 + c, e.1 + a);
            }
            Slot::Coalition(at) => {
                let x = &mut s.coalitions[at];
                (x[0], x[1], x[2]) = (x[0] + a, x[1] + b, x[2] + c);
            }
        }
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

    /// Where a named statistic adds up in the frame's sums; None for a chain row of another
    /// order than the frame's (a partition with `markov_order = "auto"` sums every candidate
    /// order). An error names what the frame does not have (a partial of another run, or a
    /// corrupted one).
    pub fn slot(
        &self,
        kind: Kind,
        model: &str,
        from: &str,
        to: &str,
    ) -> std::result::Result<Option<Slot>, String> {
        let f = self.frame;
        let chain = || -> std::result::Result<Option<&ChainFrame>, String> {
            let c = f.chains.first().ok_or("a chain's row, but no Markov model runs")?;
            Ok((model.is_empty() || model == c.order.to_string()).then_some(c))
        };
        let edge = |to: Target| -> std::result::Result<Option<Slot>, String> {
            let Some(c) = chain()? else { return Ok(None) };
            let from = self.state(from).ok_or("an edge from a state the merged chain does not have")?;
            let e =
                c.edges.binary_search(&(from, to)).map_err(|_| "an edge the merged chain does not have")?;
            Ok(Some(Slot::Edge(e)))
        };
        Ok(Some(match kind {
            Kind::Total => Slot::Total,
            Kind::Credit => {
                let m = Model::parse(model).map_err(|e| e.to_string())?;
                let at =
                    f.models.iter().position(|&x| x == m).ok_or("credit of a model this run does not run")?;
                if !summed(m) {
                    return Err("credit of a solved model".into());
                }
                let ch = self.tuple(from).filter(|t| t.len() == 1).ok_or("credit of an unknown channel")?[0];
                Slot::Credit(at, ch)
            }
            Kind::Edge => {
                if chain()?.is_none() {
                    return Ok(None);
                }
                let t = self.state(to).ok_or("an edge to a state the merged chain does not have")?;
                return edge(Target::State(t));
            }
            Kind::EdgeConversion => return edge(Target::Conversion),
            Kind::EdgeNull => return edge(Target::Null),
            Kind::End => {
                if chain()?.is_none() {
                    return Ok(None);
                }
                Slot::End(self.state(from).ok_or("an end in a state the merged chain does not have")? as usize)
            }
            Kind::DistinctPaths | Kind::Length | Kind::Role | Kind::Ordered | Kind::Fold => {
                return Err(format!("a `{}` row among replicate statistics", kind.name()))
            }
            Kind::Coalition => {
                let set = self.tuple(from).ok_or("a coalition of an unknown channel")?;
                Slot::Coalition(
                    f.coalitions
                        .binary_search(&set)
                        .map_err(|_| "a coalition the merged paths do not have")?,
                )
            }
        }))
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
