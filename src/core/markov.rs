//! Exact removal-effect Markov attribution of any order (`docs/models.md` § Markov).
//!
//! - **States** of order k are the sliding windows of k channels of a path (a path shorter
//!   than k is one state; no start padding), consecutive identical states collapsed, plus
//!   `(start)` and the absorbing `(conversion)` and `(null)`.
//! - **Transitions** are the maximum-likelihood row-normalised counts: every path row adds
//!   `conversions + nulls` along its states, `conversions` into `(conversion)` and `nulls`
//!   into `(null)`.
//! - **Removal effects** are exact: for each channel c, the states containing c become null
//!   and `RE_c` is the fraction of P(conversion) from `(start)` that this loses. Up to
//!   [`DIRECT_MAX_STATES`] states every channel's loss comes from one dense LU of `I − Q`
//!   (`removal` module: a Schur-complement identity and one small solve per channel); above,
//!   from one Gauss–Seidel solve per channel, several channels per pass. No simulation and
//!   sequential factorisations, so the numbers are the same on every run, machine and thread
//!   count.
//! - **Value** uses the last-state value model: a conversion ending in state s is worth the
//!   mean value per conversion of the paths whose last state is s.

use faer::prelude::*;
use faer::sparse::linalg::solvers::{Lu, SymbolicLu};
use faer::sparse::{SparseColMat, SparseColMatRef, Triplet};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::core::paths::{PathRow, PathTable};
use crate::error::{Error, Result};

mod linear;
#[cfg(test)]
mod linear_tests;
mod removal;
#[cfg(test)]
mod removal_tests;

pub use linear::{Counts, Kept, Linear};
pub use removal::{Fundamental, LANES};

/// Target of a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A transient state (index into [`Chain::states`]; 0 is `(start)`).
    State(u32),
    /// The absorbing conversion state.
    Conversion,
    /// The absorbing null (no conversion) state.
    Null,
}

/// One transition of the fitted chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Source transient state index.
    pub from: u32,
    /// Target.
    pub to: Target,
    /// Summed weight (journeys) along this edge.
    pub count: f64,
    /// Row-normalised probability.
    pub probability: f64,
}

/// A fitted absorbing Markov chain of order k over a path table.
#[derive(Debug)]
pub struct Chain {
    /// Markov order.
    pub order: usize,
    /// Transient states: index 0 is `(start)` (empty tuple), then channel tuples sorted.
    pub states: Vec<Vec<u32>>,
    /// Transitions sorted by (from, to).
    pub transitions: Vec<Transition>,
    /// Mean value per conversion of paths ending in each state (0 where none converted).
    pub last_state_value: Vec<f64>,
    /// Number of channels of the path table.
    pub n_channels: usize,
    /// The factorisation structure, built on the first solve.
    solver: std::sync::OnceLock<Solver>,
    /// What the removal solves share, built on the first (`removal::Shared`).
    fundamental: std::sync::OnceLock<removal::Shared>,
    /// Gauss–Seidel solves that stopped at the sweep limit before converging.
    unconverged: std::sync::atomic::AtomicUsize,
    /// Whether the removal solves keep every state's solution ([`Chain::keep_solutions`]).
    keep: std::sync::atomic::AtomicBool,
    /// The kept solutions, until [`Linear::of`] takes them.
    solutions: std::sync::Mutex<Option<removal::Solutions>>,
}

impl Clone for Chain {
    fn clone(&self) -> Self {
        Chain {
            order: self.order,
            states: self.states.clone(),
            transitions: self.transitions.clone(),
            last_state_value: self.last_state_value.clone(),
            n_channels: self.n_channels,
            solver: std::sync::OnceLock::new(),
            fundamental: std::sync::OnceLock::new(),
            unconverged: std::sync::atomic::AtomicUsize::new(0),
            keep: false.into(),
            solutions: std::sync::Mutex::new(None),
        }
    }
}

/// [`path_states`] without collecting them.
pub(crate) fn for_each_state<'a>(path: &'a [u32], k: usize, mut f: impl FnMut(&'a [u32])) {
    if path.len() <= k {
        f(path);
        return;
    }
    let mut last: Option<&[u32]> = None;
    for w in path.windows(k) {
        if last != Some(w) {
            f(w);
            last = Some(w);
        }
    }
}

/// States of one path at order k: sliding windows, consecutive duplicates collapsed.
pub fn path_states(path: &[u32], k: usize) -> Vec<&[u32]> {
    let mut out: Vec<&[u32]> = Vec::new();
    if path.len() <= k {
        out.push(path);
        return out;
    }
    for w in path.windows(k) {
        if out.last() != Some(&w) {
            out.push(w);
        }
    }
    out
}

impl Chain {
    /// Fit the chain of order `k` to a path table.
    ///
    /// Two parallel passes over fixed chunks of path-table rows (the chunking depends only
    /// on the table): the distinct windows of each chunk, merged and numbered in sorted tuple
    /// order; then each chunk's edge counts, added up in chunk order (deterministic).
    pub fn fit(pt: &PathTable, k: usize) -> Chain {
        assert!(k >= 1, "order must be at least 1");
        const ROWS: usize = 1 << 15;
        let chunks: Vec<&[PathRow]> = pt.rows.chunks(ROWS).collect();
        // Windows of up to 4 channels (of < 65,535) are hashed as one packed u64; longer
        // ones as slices.
        let packed = k <= 4 && pt.channels.len() < u16::MAX as usize;
        let tuples = distinct_states(&chunks, k, packed);
        let mut states: Vec<Vec<u32>> = Vec::with_capacity(tuples.len() + 1);
        states.push(Vec::new());
        states.extend(tuples.iter().map(|t| t.to_vec()));
        let index = StateIndex::new(&tuples, packed);
        let parts: Vec<EdgePart> = chunks.par_iter().map(|rows| count_edges(rows, k, &index)).collect();
        let (transitions, last_state_value) = merge_edges(parts, states.len());
        Chain::from_parts(k, states, transitions, last_state_value, pt.channels.len())
    }

    /// A chain from its parts (the bootstrap reweights a fitted chain's edges).
    pub fn from_parts(
        order: usize,
        states: Vec<Vec<u32>>,
        transitions: Vec<Transition>,
        last_state_value: Vec<f64>,
        n_channels: usize,
    ) -> Chain {
        Chain {
            order,
            states,
            transitions,
            last_state_value,
            n_channels,
            solver: std::sync::OnceLock::new(),
            fundamental: std::sync::OnceLock::new(),
            unconverged: std::sync::atomic::AtomicUsize::new(0),
            keep: false.into(),
            solutions: std::sync::Mutex::new(None),
        }
    }

    /// Keep every state's solution of the removal solves for the replicates' correction
    /// steps ([`Linear::of`] takes them instead of solving them again). Only the
    /// Gauss–Seidel lanes have them; other solves keep nothing.
    pub fn keep_solutions(&self) {
        self.keep.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Name of a transient state: `(start)` or channel names joined by ` > `.
    pub fn state_name(&self, pt: &PathTable, s: u32) -> String {
        if s == 0 {
            "(start)".into()
        } else {
            pt.path_name(&self.states[s as usize])
        }
    }

    /// Name of a transition target.
    pub fn target_name(&self, pt: &PathTable, t: Target) -> String {
        match t {
            Target::State(s) => self.state_name(pt, s),
            Target::Conversion => "(conversion)".into(),
            Target::Null => "(null)".into(),
        }
    }

    /// Absorption into `(conversion)` from `(start)` with the states containing channel
    /// `removed` redirected to `(null)`: returns (probability, expected value).
    pub fn solve(&self, removed: Option<u32>) -> Result<(f64, f64)> {
        self.solve_without(|s| removed.is_some_and(|c| s.contains(&c)))
    }

    /// Absorption into `(conversion)` from `(start)` with every state for which
    /// `removed(tuple)` holds redirected to `(null)`: returns (probability, expected value).
    ///
    /// `I − Q` over all transient states is built and analysed (fill-reducing ordering,
    /// elimination tree) once; a removal keeps that sparsity pattern and only changes values:
    /// a removed state's row and column become those of the identity, which makes it absorb
    /// into `(null)`. Each removal is then one numeric sparse LU with partial pivoting and one
    /// solve. The attribution takes every channel's effect from one factorisation instead
    /// (`removal` module); this re-solve is the reference it is tested against.
    pub fn solve_without(&self, removed: impl Fn(&[u32]) -> bool) -> Result<(f64, f64)> {
        let n = self.states.len();
        let gone: Vec<bool> = self.states.iter().enumerate().map(|(i, st)| i != 0 && removed(st)).collect();
        if n > DIRECT_MAX_STATES {
            return Ok(self.gauss_seidel(&gone));
        }
        let s = self.solver()?;
        let sym = s.a.symbolic();
        let (col_ptr, row_idx) = (sym.col_ptr(), sym.row_idx());
        let mut vals = s.a.val().to_vec();
        for j in 0..n {
            for idx in col_ptr[j]..col_ptr[j + 1] {
                let i = row_idx[idx];
                if gone[i] || gone[j] {
                    vals[idx] = if i == j { 1.0 } else { 0.0 };
                }
            }
        }
        let mat = SparseColMatRef::new(sym, &vals);
        let lu = Lu::try_new_with_symbolic(s.symbolic.clone(), mat)
            .map_err(|e| Error::Internal(format!("sparse LU of I − Q: {e:?}")))?;
        let mut rhs = s.rhs.clone();
        for (i, g) in gone.iter().enumerate() {
            if *g {
                rhs[(i, 0)] = 0.0;
                rhs[(i, 1)] = 0.0;
            }
        }
        lu.solve_in_place(&mut rhs);
        Ok((rhs[(0, 0)], rhs[(0, 1)]))
    }

    /// Gauss–Seidel sweeps of `x = Q x + r` over the kept states until no value changes by
    /// more than 1e-15 relative (or nothing changes at all): the fixed point of the linear
    /// system to machine precision. `I − Q` is a nonsingular M-matrix (every state reaches
    /// absorption), so the sweeps converge monotonically from 0.
    fn gauss_seidel(&self, gone: &[bool]) -> (f64, f64) {
        let (x, converged) = self.swept_one(gone);
        if !converged {
            self.unconverged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        x
    }

    fn solver(&self) -> Result<&Solver> {
        if let Some(s) = self.solver.get() {
            return Ok(s);
        }
        let n = self.states.len();
        let mut diag = vec![1.0f64; n];
        let mut trips: Vec<Triplet<usize, usize, f64>> = Vec::new();
        let mut rhs = Mat::<f64>::zeros(n, 2);
        for t in &self.transitions {
            let a = t.from as usize;
            match t.to {
                Target::State(b) if b as usize == a => diag[a] -= t.probability,
                Target::State(b) => trips.push(Triplet::new(a, b as usize, -t.probability)),
                Target::Conversion => {
                    rhs[(a, 0)] += t.probability;
                    rhs[(a, 1)] += t.probability * self.last_state_value[a];
                }
                Target::Null => {}
            }
        }
        for (i, d) in diag.into_iter().enumerate() {
            trips.push(Triplet::new(i, i, d));
        }
        let a = SparseColMat::<usize, f64>::try_new_from_triplets(n, n, &trips)
            .map_err(|e| Error::Internal(format!("building I − Q: {e:?}")))?;
        let symbolic = SymbolicLu::try_new(a.symbolic())
            .map_err(|e| Error::Internal(format!("analysing I − Q: {e:?}")))?;
        let _ = self.solver.set(Solver { a, symbolic, rhs });
        Ok(self.solver.get().expect("just set"))
    }
}

/// Paths that carry any journey.
fn live(r: &PathRow) -> bool {
    r.conversions + r.nulls > 0.0
}

/// A window of up to 4 channel ids packed into one u64 (`id + 1` per channel).
fn pack(w: &[u32]) -> u64 {
    w.iter().fold(0u64, |acc, &c| (acc << 16) | (c as u64 + 1))
}

/// The distinct states of the live paths, in sorted tuple order: each chunk's, merged.
fn distinct_states<'a>(chunks: &[&'a [PathRow]], k: usize, packed: bool) -> Vec<&'a [u32]> {
    let distinct: Vec<Vec<&[u32]>> = chunks
        .par_iter()
        .map(|rows| {
            let mut by_packed: FxHashMap<u64, &[u32]> = FxHashMap::default();
            let mut by_slice: FxHashMap<&[u32], ()> = FxHashMap::default();
            for r in rows.iter().filter(|r| live(r)) {
                for_each_state(&r.path, k, |w| {
                    if packed {
                        by_packed.entry(pack(w)).or_insert(w);
                    } else {
                        by_slice.entry(w).or_insert(());
                    }
                });
            }
            if packed {
                by_packed.into_values().collect()
            } else {
                by_slice.into_keys().collect()
            }
        })
        .collect();
    let mut tuples: Vec<&[u32]> = distinct.into_iter().flatten().collect();
    tuples.par_sort_unstable();
    tuples.dedup();
    tuples
}

/// State id of a window: 1 + its rank among the sorted tuples (0 is `(start)`).
struct StateIndex<'a> {
    packed: bool,
    by_packed: FxHashMap<u64, u32>,
    by_slice: FxHashMap<&'a [u32], u32>,
}

impl<'a> StateIndex<'a> {
    fn new(tuples: &[&'a [u32]], packed: bool) -> Self {
        let mut x = StateIndex { packed, by_packed: FxHashMap::default(), by_slice: FxHashMap::default() };
        if packed {
            x.by_packed = tuples.iter().zip(1u32..).map(|(w, i)| (pack(w), i)).collect();
        } else {
            x.by_slice = tuples.iter().zip(1u32..).map(|(w, i)| (*w, i)).collect();
        }
        x
    }

    fn id(&self, w: &[u32]) -> u32 {
        if self.packed {
            self.by_packed[&pack(w)]
        } else {
            self.by_slice[w]
        }
    }
}

/// Edge targets beyond the transient states.
pub(crate) const CONV: u32 = u32::MAX - 1;
pub(crate) const NULL: u32 = u32::MAX;

/// One chunk's edge counts keyed by (from, to), and the value and conversions of the
/// journeys ending in each state.
#[derive(Default)]
pub(crate) struct EdgePart {
    pub(crate) counts: FxHashMap<u64, f64>,
    pub(crate) ends: FxHashMap<u32, (f64, f64)>,
}

fn count_edges(rows: &[PathRow], k: usize, index: &StateIndex) -> EdgePart {
    let mut p = EdgePart::default();
    let mut add =
        |from: u32, to: u32, w: f64| *p.counts.entry(((from as u64) << 32) | to as u64).or_insert(0.0) += w;
    let mut last_end = Vec::new();
    for r in rows.iter().filter(|r| live(r)) {
        let w = r.conversions + r.nulls;
        let mut prev = 0u32;
        for_each_state(&r.path, k, |st| {
            let id = index.id(st);
            add(prev, id, w);
            prev = id;
        });
        if r.conversions > 0.0 {
            add(prev, CONV, r.conversions);
            last_end.push((prev, r.value, r.conversions));
        }
        if r.nulls > 0.0 {
            add(prev, NULL, r.nulls);
        }
    }
    for (s, v, c) in last_end {
        let e = p.ends.entry(s).or_insert((0.0, 0.0));
        e.0 += v;
        e.1 += c;
    }
    p
}

/// Sum the chunks' counts in chunk order and key order (so every sum runs in the same order
/// in every run), normalise the rows, and the mean value per conversion of each last state.
pub(crate) fn merge_edges(parts: Vec<EdgePart>, n_states: usize) -> (Vec<Transition>, Vec<f64>) {
    let mut counts: FxHashMap<u64, f64> = FxHashMap::default();
    let mut last_val = vec![0.0; n_states];
    let mut last_conv = vec![0.0; n_states];
    for p in parts {
        let mut c: Vec<(u64, f64)> = p.counts.into_iter().collect();
        c.sort_unstable_by_key(|e| e.0);
        for (key, x) in c {
            *counts.entry(key).or_insert(0.0) += x;
        }
        let mut e: Vec<(u32, (f64, f64))> = p.ends.into_iter().collect();
        e.sort_unstable_by_key(|e| e.0);
        for (st, (v, c)) in e {
            last_val[st as usize] += v;
            last_conv[st as usize] += c;
        }
    }
    let mut edges: Vec<((u32, Target), f64)> = counts
        .into_iter()
        .map(|(key, c)| {
            let to = match key as u32 {
                CONV => Target::Conversion,
                NULL => Target::Null,
                s => Target::State(s),
            };
            (((key >> 32) as u32, to), c)
        })
        .collect();
    edges.sort_unstable_by_key(|e| e.0);
    let mut out_total = vec![0.0; n_states];
    for ((from, _), c) in &edges {
        out_total[*from as usize] += c;
    }
    let transitions = edges
        .into_iter()
        .map(|((from, to), count)| Transition {
            from,
            to,
            count,
            probability: count / out_total[from as usize],
        })
        .collect();
    let last_state_value =
        last_val.iter().zip(&last_conv).map(|(v, c)| if *c > 0.0 { v / c } else { 0.0 }).collect();
    (transitions, last_state_value)
}

/// Sweeps after which a Gauss–Seidel solve gives up (and the fit reports it).
pub(crate) const GAUSS_SEIDEL_MAX_SWEEPS: usize = 1_000_000;

/// Above this many states the removal solves use Gauss–Seidel (see
/// [`Chain::solve_without`]): the dense inverse of the one-factorisation method needs n²
/// numbers, and the state graph of journeys is dense enough that a sparse LU fills in to
/// nearly dense, O(n³) per channel.
pub const DIRECT_MAX_STATES: usize = 600;

/// `I − Q` over all transient states, its symbolic LU analysis and the right-hand sides
/// (conversion probability, expected value), shared by every removal.
#[derive(Debug)]
pub struct Solver {
    a: SparseColMat<usize, f64>,
    symbolic: SymbolicLu<usize>,
    rhs: Mat<f64>,
}

/// Removal effects and credits of one Markov fit.
#[derive(Debug, Clone)]
pub struct MarkovResult {
    /// The fitted chain.
    pub chain: Chain,
    /// P(conversion) from `(start)`.
    pub p_conversion: f64,
    /// Expected converted value from `(start)`.
    pub expected_value: f64,
    /// Observed conversion rate of the modelled journeys: Σ conversions / Σ (conversions + nulls).
    pub observed_rate: f64,
    /// Removal effect per channel id (None when there are no conversions).
    pub removal_effects: Vec<Option<f64>>,
    /// Value removal effect per channel id (None when the total value is 0).
    pub value_removal_effects: Vec<Option<f64>>,
    /// Conversion credit per channel id.
    pub conversions: Vec<f64>,
    /// Value credit per channel id.
    pub value: Vec<f64>,
    /// Set when an iterative solve stopped before machine precision.
    pub warning: Option<String>,
}

/// Fit the chain of order k and compute exact removal effects and credits.
pub fn attribute(pt: &PathTable, k: usize) -> Result<MarkovResult> {
    let totals = (pt.total_conversions(), pt.total_value(), pt.total_nulls());
    removal(Chain::fit(pt, k), totals)
}

/// Removal effects and credits of a fitted chain; `totals` are the (conversions, value,
/// nulls) of the journeys it was fitted to.
pub fn removal(chain: Chain, totals: (f64, f64, f64)) -> Result<MarkovResult> {
    let k = chain.order;
    let ((p, v), fractions) = chain.start_and_removal_fractions()?;
    let credited = Credited::of(chain.n_channels, &fractions, v, totals);
    let unconverged = chain.unconverged.load(std::sync::atomic::Ordering::Relaxed);
    let warning = (unconverged > 0).then(|| {
        format!(
            "Markov order {k}: {unconverged} Gauss–Seidel solve(s) stopped after {GAUSS_SEIDEL_MAX_SWEEPS} \
             sweeps before reaching machine precision; removal effects may be inexact"
        )
    });
    Ok(MarkovResult {
        warning,
        chain,
        p_conversion: p,
        expected_value: v,
        observed_rate: credited.observed_rate,
        removal_effects: credited.removal_effects,
        value_removal_effects: credited.value_removal_effects,
        conversions: credited.conversions,
        value: credited.value,
    })
}

/// Removal effects and the credits they split the totals into.
#[derive(Debug, Clone)]
pub struct Credited {
    /// As [`MarkovResult::observed_rate`].
    pub observed_rate: f64,
    /// As [`MarkovResult::removal_effects`].
    pub removal_effects: Vec<Option<f64>>,
    /// As [`MarkovResult::value_removal_effects`].
    pub value_removal_effects: Vec<Option<f64>>,
    /// As [`MarkovResult::conversions`].
    pub conversions: Vec<f64>,
    /// As [`MarkovResult::value`].
    pub value: Vec<f64>,
}

impl Credited {
    /// From each channel's lost fractions (none when nothing converts), the chain's
    /// expected value `v` and the (conversions, value, nulls) it was fitted to: each removal
    /// effect clamped to [0, 1], the totals split in proportion to them.
    pub fn of(n_channels: usize, fractions: &[(f64, f64)], v: f64, totals: (f64, f64, f64)) -> Credited {
        let (total_conv, total_value, total_nulls) = totals;
        let total_w = total_conv + total_nulls;
        let mut re = vec![None; n_channels];
        let mut vre = vec![None; n_channels];
        for (c, &(rc, vc)) in fractions.iter().enumerate() {
            re[c] = Some(rc.clamp(0.0, 1.0));
            if total_value > 0.0 && v > 0.0 {
                vre[c] = Some(vc.clamp(0.0, 1.0));
            }
        }
        let normalise = |res: &[Option<f64>], total: f64| -> Vec<f64> {
            let sum: f64 = res.iter().map(|r| r.unwrap_or(0.0)).sum();
            res.iter().map(|r| if sum > 0.0 { r.unwrap_or(0.0) / sum * total } else { 0.0 }).collect()
        };
        Credited {
            observed_rate: if total_w > 0.0 { total_conv / total_w } else { 0.0 },
            conversions: normalise(&re, total_conv),
            value: normalise(&vre, total_value),
            removal_effects: re,
            value_removal_effects: vre,
        }
    }

    /// From the kept (P(conversion), expected value) of the full chain and of each channel's
    /// removal ([`Linear::kept`]).
    pub fn of_kept(full: (f64, f64), kept: &[(f64, f64)], totals: (f64, f64, f64)) -> Credited {
        let (p, v) = full;
        let fractions: Vec<(f64, f64)> = match p > 0.0 {
            true => kept.iter().map(|&k| removal::kept_to_fractions(k, p, v)).collect(),
            false => Vec::new(),
        };
        Credited::of(kept.len(), &fractions, v, totals)
    }
}

/// A partition's fitted chain without its removal solves (a shard, a Spark chunk): nothing
/// the partition writes reads them, and the merge solves the summed chain once. Its
/// removal effects are None and its credits 0; `p_conversion` is the observed rate.
pub fn unsolved(chain: Chain, totals: (f64, f64, f64)) -> MarkovResult {
    let (conv, _, nulls) = totals;
    let observed_rate = if conv + nulls > 0.0 { conv / (conv + nulls) } else { 0.0 };
    let nc = chain.n_channels;
    MarkovResult {
        chain,
        p_conversion: observed_rate,
        expected_value: 0.0,
        observed_rate,
        removal_effects: vec![None; nc],
        value_removal_effects: vec![None; nc],
        conversions: vec![0.0; nc],
        value: vec![0.0; nc],
        warning: None,
    }
}

/// Removal effect of a channel sequence (order ≥ 2): every state that contains the
/// sequence as consecutive channels is redirected to `(null)`.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceEffect {
    /// The channel ids of the sequence, in order.
    pub sequence: Vec<u32>,
    /// Journeys (weighted) that passed through a state containing it.
    pub visits: f64,
    /// Removal effect on conversions.
    pub removal_effect: Option<f64>,
    /// Removal effect on value.
    pub value_removal_effect: Option<f64>,
}

fn contains_seq(state: &[u32], seq: &[u32]) -> bool {
    state.windows(seq.len()).any(|w| w == seq)
}

/// Removal effects of the `max` most visited channel sequences of length 2..=k (k ≥ 2).
pub fn sequence_effects(r: &MarkovResult, max: usize) -> Result<Vec<SequenceEffect>> {
    let chain = &r.chain;
    if chain.order < 2 || max == 0 {
        return Ok(Vec::new());
    }
    // Inflow per state (journeys entering it), from the transitions.
    let mut inflow = vec![0.0; chain.states.len()];
    for t in &chain.transitions {
        if let Target::State(b) = t.to {
            inflow[b as usize] += t.count;
        }
    }
    let mut visits: std::collections::BTreeMap<Vec<u32>, f64> = Default::default();
    for (i, s) in chain.states.iter().enumerate().skip(1) {
        let mut seen: Vec<&[u32]> = Vec::new();
        for len in 2..=s.len() {
            for w in s.windows(len) {
                if !seen.contains(&w) {
                    seen.push(w);
                    *visits.entry(w.to_vec()).or_insert(0.0) += inflow[i];
                }
            }
        }
    }
    let mut ranked: Vec<(Vec<u32>, f64)> = visits.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(max);
    let (p, value) = (r.p_conversion, r.expected_value);
    let lost = if p > 0.0 {
        chain.fractions_without(ranked.len(), |i, s| contains_seq(s, &ranked[i].0), p, value)?
    } else {
        Vec::new()
    };
    let effect = |i: usize| lost.get(i).map(|&(rs, vs)| (rs.clamp(0.0, 1.0), vs.clamp(0.0, 1.0)));
    Ok(ranked
        .into_iter()
        .enumerate()
        .map(|(i, (sequence, visits))| SequenceEffect {
            sequence,
            visits,
            removal_effect: effect(i).map(|e| e.0),
            value_removal_effect: effect(i).filter(|_| value > 0.0).map(|e| e.1),
        })
        .collect())
}

/// The fit score of one Markov order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OrderScore {
    /// The order.
    pub order: usize,
    /// Out-of-sample ROC AUC of P(conversion | last state) over the journeys.
    pub auc: f64,
    /// ChannelAttribution's penalised AUC: 1 − (1 − AUC)(N − 1)/(N − p − 1),
    /// p = C(channels + order − 1, order).
    pub penalized_auc: f64,
    /// Transient states of the chain fitted on all data.
    pub states: usize,
    /// Whether this order was chosen.
    pub selected: bool,
}

/// Exact weighted ROC AUC of scores for (positive weight, negative weight) items.
fn weighted_auc(items: &mut [(f64, f64, f64)]) -> f64 {
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (tp, tn): (f64, f64) = items.iter().fold((0.0, 0.0), |a, x| (a.0 + x.1, a.1 + x.2));
    if tp == 0.0 || tn == 0.0 {
        return 0.5;
    }
    // Walk groups of equal scores from low to high: each positive beats the negatives below.
    let mut neg_below = 0.0;
    let mut acc = 0.0;
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        let (mut p, mut n) = (0.0, 0.0);
        while j < items.len() && items[j].0 == items[i].0 {
            p += items[j].1;
            n += items[j].2;
            j += 1;
        }
        acc += p * (neg_below + 0.5 * n);
        neg_below += n;
        i = j;
    }
    acc / (tp * tn)
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// The held-out fold of a path (0 or 1): FNV-1a over its channels' names, each followed by
/// U+001F. Stable across versions and platforms, and the same for a path wherever it is
/// counted, however a partition numbers its channels.
pub fn fold_of(path: &[u32], channels: &[String]) -> usize {
    let mut h: u64 = 0xcbf29ce484222325;
    for &c in path {
        for b in channels[c as usize].bytes().chain([0x1f]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    (h >> 32) as usize & 1
}

/// (conversions, nulls) of the paths by (order, fold, last state of that order), for every
/// order 1..=max: additive over any partition of the paths, which is all the order's choice
/// needs ([`choose_order_from`]).
pub type FoldCounts<K> = std::collections::BTreeMap<(usize, usize, K), (f64, f64)>;

/// The [`FoldCounts`] of a path table, last states as channel ids.
pub fn fold_counts(pt: &PathTable, max: usize) -> FoldCounts<Vec<u32>> {
    let mut out = FoldCounts::new();
    for r in &pt.rows {
        let fold = fold_of(&r.path, &pt.channels);
        for k in 1..=max.max(1) {
            let last = path_states(&r.path, k).last().expect("non-empty path").to_vec();
            let e = out.entry((k, fold, last)).or_insert((0.0, 0.0));
            (e.0, e.1) = (e.0 + r.conversions, e.1 + r.nulls);
        }
    }
    out
}

/// Choose the Markov order among 1..=max by penalised out-of-sample AUC.
///
/// Each path is scored by P(conversion | its last state), estimated on the other half of
/// the paths (two folds by [`fold_of`], so the choice is deterministic); a last state
/// unseen in training scores the training conversion rate. The AUC is weighted by
/// conversions (positives) and nulls (negatives) and penalised for the number of
/// parameters as in ChannelAttribution's `choose_order`. Ties go to the lower order.
pub fn choose_order(pt: &PathTable, max: usize) -> (usize, Vec<OrderScore>) {
    let states: Vec<usize> = (1..=max.max(1)).map(|k| Chain::fit(pt, k).states.len() - 1).collect();
    choose_order_from(&fold_counts(pt, max), pt.channels.len(), &states)
}

/// [`choose_order`] from summed [`FoldCounts`] (a merge's, or one path table's): the
/// paths of one fold ending in one state all share a score, so their sums stand for them.
/// `states[k - 1]` is the transient states of the order-k chain.
pub fn choose_order_from<K: Ord>(
    counts: &FoldCounts<K>,
    channels: usize,
    states: &[usize],
) -> (usize, Vec<OrderScore>) {
    let n_total: f64 = counts.iter().filter(|((k, _, _), _)| *k == 1).map(|(_, (c, n))| c + n).sum();
    let mut scores = Vec::new();
    for (i, &states) in states.iter().enumerate() {
        let k = i + 1;
        let mut items: Vec<(f64, f64, f64)> = Vec::new();
        for test_fold in 0..2 {
            let of = |fold: usize| counts.iter().filter(move |((o, f, _), _)| *o == k && *f == fold);
            let by_state: std::collections::BTreeMap<&K, (f64, f64)> =
                of(1 - test_fold).map(|((_, _, s), &x)| (s, x)).collect();
            let (tc, tn) = by_state.values().fold((0.0, 0.0), |a, x| (a.0 + x.0, a.1 + x.1));
            let base = if tc + tn > 0.0 { tc / (tc + tn) } else { 0.0 };
            for ((_, _, last), &(c, n)) in of(test_fold) {
                let score = match by_state.get(last) {
                    Some((tc, tn)) if tc + tn > 0.0 => tc / (tc + tn),
                    _ => base,
                };
                items.push((score, c, n));
            }
        }
        let auc = weighted_auc(&mut items);
        let p = binomial(channels + k - 1, k);
        let denom = n_total - p - 1.0;
        let penalized_auc =
            if denom > 0.0 { 1.0 - (1.0 - auc) * (n_total - 1.0) / denom } else { f64::NEG_INFINITY };
        scores.push(OrderScore { order: k, auc, penalized_auc, states, selected: false });
    }
    let best = scores.iter().enumerate().fold(0usize, |b, (i, s)| {
        if s.penalized_auc > scores[b].penalized_auc + 1e-12 {
            i
        } else {
            b
        }
    });
    scores[best].selected = true;
    (scores[best].order, scores)
}
