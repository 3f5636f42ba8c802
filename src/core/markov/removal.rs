//! Every channel's removal loss from the full chain (`docs/models.md` § Markov, "Removal
//! effects from one factorisation").
//!
//! Write `A = I − Q` over the transient states (index 0 is `(start)`), `b` the one-step
//! absorption into `(conversion)` (and its value), `x = A⁻¹ b` the full chain's conversion
//! probability (expected value) from every state and `G = A⁻¹` its fundamental matrix
//! (`G[i, j]` = expected visits to j from i). Removing a set R of states (those that contain
//! a channel) replaces their rows and columns of `A` by the identity and their `b` by 0; the
//! solution `y` of that system is 0 on R and `A_KK y_K = b_K` on the kept states K.
//!
//! **Identity.** Let `w = G[R, R]⁻¹ x_R` and `z = x − G[:, R] w`. Then `z_R = 0`, and
//! `A z = b − A G[:, R] w = b − I[:, R] w`, whose rows in K are `b_K`; as `z_R = 0` they read
//! `A_KK z_K = b_K`, so `z = y` and
//!
//! ```text
//! y[start] = x[start] − G[start, R] · G[R, R]⁻¹ · x_R = x[start] − h · x_R,
//! ```
//!
//! with `h = G[start, R] G[R, R]⁻¹` the probability that the first removed state a journey
//! enters is r (the visits to r' split by the first removed state: `G[start, r'] =
//! Σ_r h_r G[r, r']`). `G[R, R]` is invertible: its inverse is the Schur complement
//! `A_RR − A_RK A_KK⁻¹ A_KR` of the nonsingular M-matrix `A`. The loss `h · x_R` is
//! `x[start] · RE`, so the removal effect needs no `1 − y/x` cancellation.
//!
//! **Cost.** One dense LU of `A` and its inverse (O(n³) once, instead of one O(n³)
//! factorisation per channel), then per channel one |R|×|R| dense solve. At order 1 R is
//! one state (h is a division). At order k a state holds at most k channels, so
//! Σ_c |R_c| ≤ k·n; a channel present in most states makes its |R| close to n and its solve
//! O(n³) again, no worse than the per-channel LU it replaces.
//!
//! Above [`super::DIRECT_MAX_STATES`] states the dense inverse is out of reach (n² numbers)
//! and so is a sparse LU (journey graphs fill in), so each channel keeps its own
//! Gauss–Seidel solve; from [`lanes_from`] channels on, [`solve_lanes`] runs [`LANES`]
//! channels per pass over the transition rows, reading the matrix once for all of them with
//! the same arithmetic per channel as a lone solve.

use faer::linalg::solvers::DenseSolveCore;
use faer::prelude::*;
use faer::Mat;
use rayon::prelude::*;

use super::{Chain, Target, GAUSS_SEIDEL_MAX_SWEEPS};
use crate::error::{Error, Result};

mod order;

/// `x` (conversion probability and value from every state) and `G = (I − Q)⁻¹`.
#[derive(Debug)]
pub struct Fundamental {
    x: Mat<f64>,
    g: Mat<f64>,
}

impl Fundamental {
    /// One dense LU of `I − Q` (partial pivoting, sequential, so the same bits on every run
    /// and thread count): its solve of `b` and its inverse.
    pub fn of(chain: &Chain) -> Result<Fundamental> {
        let n = chain.states.len();
        let mut a = Mat::<f64>::identity(n, n);
        let mut b = Mat::<f64>::zeros(n, 2);
        for t in &chain.transitions {
            let i = t.from as usize;
            match t.to {
                Target::State(j) => a[(i, j as usize)] -= t.probability,
                Target::Conversion => {
                    b[(i, 0)] += t.probability;
                    b[(i, 1)] += t.probability * chain.last_state_value[i];
                }
                Target::Null => {}
            }
        }
        let lu = a.partial_piv_lu();
        let x = lu.solve(&b);
        let g = lu.inverse();
        if !(x.norm_max().is_finite() && g.norm_max().is_finite()) {
            return Err(Error::Internal("dense LU of I − Q: singular".into()));
        }
        Ok(Fundamental { x, g })
    }

    /// Conversion probability and expected value from `(start)`.
    pub fn start(&self) -> (f64, f64) {
        (self.x[(0, 0)], self.x[(0, 1)])
    }

    /// Conversion probability and value lost from `(start)` when the states `r` (indices,
    /// none of them 0) absorb into `(null)`: `h · x_R` with `h G[R, R] = G[start, R]`.
    pub fn loss(&self, r: &[usize]) -> (f64, f64) {
        let m = r.len();
        if m == 0 {
            return (0.0, 0.0);
        }
        // Solve G[R, R]ᵀ hᵀ = G[start, R]ᵀ.
        let gt = Mat::<f64>::from_fn(m, m, |i, j| self.g[(r[j], r[i])]);
        let rhs = Mat::<f64>::from_fn(m, 1, |i, _| self.g[(0, r[i])]);
        let h = if m == 1 {
            Mat::from_fn(1, 1, |_, _| rhs[(0, 0)] / gt[(0, 0)])
        } else {
            gt.partial_piv_lu().solve(&rhs)
        };
        let (mut p, mut v) = (0.0, 0.0);
        for (i, &s) in r.iter().enumerate() {
            p += h[(i, 0)] * self.x[(s, 0)];
            v += h[(i, 0)] * self.x[(s, 1)];
        }
        (p, v)
    }
}

/// What every removal solve of one chain shares, built once (the channels' effects and the
/// sequence effects both take theirs from it).
pub enum Shared {
    /// Up to [`super::DIRECT_MAX_STATES`] states: the dense fundamental.
    Dense(Fundamental),
    /// Above: the sweeps' rows and the full chain's solution, where every removal starts.
    Swept { rows: Rows, full: Vec<(f64, f64)> },
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shared::Dense(d) => d.fmt(f),
            Shared::Swept { full, .. } => write!(f, "Swept({} states)", full.len()),
        }
    }
}

/// (conversion probability, expected value), or the fractions of them lost.
pub type PairPv = (f64, f64);

/// Channels solved together by one Gauss–Seidel pass (bits of a `u8` mask).
pub const LANES: usize = 8;

/// Removals from which the lanes pay. A lane pass does all 8 lanes' arithmetic: in scalar
/// or 128-bit code that cost more than lone solves below 64 channels (12 at order 4: 28%
/// slower in `benches/markov.rs`); in 512-bit registers a pass costs about what one lone
/// solve does, so two removals already pay (order 3, 12 channels, 200 replicates: the
/// bootstrap phase 2.3 s → 1.6 s, 1.4 s with the full chain as a lane). Either way the
/// bits are the same, only the time differs.
pub fn lanes_from() -> usize {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        return 2;
    }
    64
}

/// The transition rows of `x = Q x + r` for Gauss–Seidel, every edge kept: a removed
/// target's lane stays 0, and adding `q · 0` leaves a sum's bits unchanged, so a lane
/// computes exactly what a solve that drops those edges computes.
///
/// The states are renumbered in the order the sweeps visit them ([`order::sweep_order`]), so that
/// a state mostly reads successors already updated in the same sweep. `order[new]` is a
/// state's index in the chain.
pub struct Rows {
    pub(super) row_ptr: Vec<usize>,
    pub(super) cols: Vec<u32>,
    pub(super) probs: Vec<f64>,
    pub(super) b: Vec<(f64, f64)>,
    pub(super) diag: Vec<f64>,
    pub(super) order: Vec<u32>,
    pub(super) start: usize,
    /// Where each of the chain's transitions lives in these rows.
    pub(super) slots: Vec<Slot>,
    /// The strongly connected components, as ranges of states in sweep order: each reads
    /// only itself and the ranges before it, so each is swept to convergence in turn.
    pub(super) blocks: Vec<(u32, u32)>,
}

/// A transition's place in [`Rows`] (states in sweep order).
#[derive(Debug, Clone, Copy)]
pub(super) enum Slot {
    /// An edge between two states: its position in `cols`/`probs`.
    Edge(u32),
    /// A state's edge to itself.
    Diag(u32),
    /// A state's edge into `(conversion)`.
    Conversion(u32),
    /// An edge into `(null)`.
    Null,
}

impl Rows {
    /// The rows of a chain, in sweep order.
    pub fn of(chain: &Chain) -> Rows {
        let n = chain.states.len();
        let (mut row_ptr, mut b, mut diag) = (vec![0usize; n + 1], vec![(0.0, 0.0); n], vec![0.0; n]);
        let mut edges: Vec<(u32, f64)> = Vec::new();
        // Per transition: Edge(index into `edges`) or the slot it keeps (state numbers old).
        let mut slots = Vec::with_capacity(chain.transitions.len());
        for t in &chain.transitions {
            let a = t.from as usize;
            slots.push(match t.to {
                Target::State(j) if j as usize == a => {
                    diag[a] += t.probability;
                    Slot::Diag(a as u32)
                }
                Target::State(j) => {
                    edges.push((j, t.probability));
                    Slot::Edge(edges.len() as u32 - 1)
                }
                Target::Null => Slot::Null,
                Target::Conversion => {
                    b[a].0 += t.probability;
                    b[a].1 += t.probability * chain.last_state_value[a];
                    Slot::Conversion(a as u32)
                }
            });
            row_ptr[a + 1] = edges.len();
        }
        for i in 0..n {
            row_ptr[i + 1] = row_ptr[i + 1].max(row_ptr[i]);
        }
        let (order, blocks) = order::sweep_order(&row_ptr, &edges);
        let mut new_of = vec![0u32; n];
        for (new, &old) in order.iter().enumerate() {
            new_of[old as usize] = new as u32;
        }
        let mut rows = Rows {
            row_ptr: vec![0; n + 1],
            cols: Vec::with_capacity(edges.len()),
            probs: Vec::with_capacity(edges.len()),
            b: order.iter().map(|&o| b[o as usize]).collect(),
            diag: order.iter().map(|&o| diag[o as usize]).collect(),
            start: new_of.first().map_or(0, |&s| s as usize),
            order,
            slots: Vec::new(),
            blocks,
        };
        let mut new_pos = vec![0u32; edges.len()];
        for (new, &old) in rows.order.iter().enumerate() {
            for k in row_ptr[old as usize]..row_ptr[old as usize + 1] {
                new_pos[k] = rows.cols.len() as u32;
                rows.cols.push(new_of[edges[k].0 as usize]);
                rows.probs.push(edges[k].1);
            }
            rows.row_ptr[new + 1] = rows.cols.len();
        }
        rows.slots = slots
            .into_iter()
            .map(|s| match s {
                Slot::Edge(k) => Slot::Edge(new_pos[k as usize]),
                Slot::Diag(a) => Slot::Diag(new_of[a as usize]),
                Slot::Conversion(a) => Slot::Conversion(new_of[a as usize]),
                Slot::Null => Slot::Null,
            })
            .collect();
        rows
    }

    /// The rows of the transposed system `g = Qᵀ g + e_start` (`g[i]`: the expected visits to
    /// state i from `(start)`, the fundamental matrix's first row), for the same sweeps: the
    /// states in the reverse of [`Rows`]' order, as visits flow from `(start)` forwards.
    /// Index i here is index `n − 1 − i` of `self`; only the solve's arithmetic is kept
    /// (`slots` and `order` are empty).
    pub(super) fn transposed(&self) -> Rows {
        let n = self.b.len();
        let mut counts = vec![0usize; n + 1];
        for &j in &self.cols {
            counts[n - j as usize] += 1;
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let (mut cols, mut probs) = (vec![0u32; self.cols.len()], vec![0.0; self.probs.len()]);
        let mut next = counts.clone();
        for i in 0..n {
            for k in self.row_ptr[i]..self.row_ptr[i + 1] {
                let to = n - 1 - self.cols[k] as usize;
                cols[next[to]] = (n - 1 - i) as u32;
                probs[next[to]] = self.probs[k];
                next[to] += 1;
            }
        }
        let mut b = vec![(0.0, 0.0); n];
        b[n - 1 - self.start] = (1.0, 0.0);
        Rows {
            row_ptr: counts,
            cols,
            probs,
            b,
            diag: self.diag.iter().rev().copied().collect(),
            order: Vec::new(),
            start: n - 1 - self.start,
            slots: Vec::new(),
            // The same components; an edge now leads to components after its own.
            blocks: self.blocks.iter().rev().map(|&(lo, hi)| (n as u32 - hi, n as u32 - lo)).collect(),
        }
    }

    /// Edges to a state the sweep visits later (or to itself): the cycles the walk
    /// closes, which alone make a sweep read a value from the sweep before.
    #[cfg(test)]
    pub fn back_edges(&self) -> usize {
        (0..self.b.len())
            .map(|i| {
                self.cols[self.row_ptr[i]..self.row_ptr[i + 1]].iter().filter(|&&j| j as usize >= i).count()
            })
            .sum()
    }

    /// A vector by chain state, in sweep order.
    pub fn permute<T: Copy>(&self, by_state: &[T]) -> Vec<T> {
        self.order.iter().map(|&o| by_state[o as usize]).collect()
    }
}

/// One Gauss–Seidel solve (one removal, `gone` in sweep order) of any chain's rows: the
/// arithmetic of a lane of [`sweep`], in scalar code. A removal starts from the full
/// chain's solution ([`Rows::full`]; the full chain itself from zero). Returns
/// `(x[start], converged)`. (A chain's own lone solves go through [`Chain::swept_one`].)
pub(super) fn sweep_one(rows: &Rows, gone: &[bool]) -> ((f64, f64), bool) {
    let full = gone.iter().any(|&g| g).then(|| rows.full());
    let (x, converged) = solve_one(rows, gone, full.as_deref());
    (x[rows.start], converged)
}

impl Rows {
    /// The full chain's solution at every state (sweep order), from zero: where the
    /// removals' solves start. A channel's removal changes most values by a fraction of a
    /// percent, so the sweeps start a few of the fifteen digits they converge over closer
    /// to the removal's solution (~20% fewer sweeps at order 3 on the 300-channel log), and
    /// stop on the same test.
    pub(super) fn full(&self) -> Vec<(f64, f64)> {
        solve_one(self, &vec![false; self.b.len()], None).0
    }
}

/// [`sweep_one`]'s sweeps from `from` (0 where gone), or from zero: every state's values.
fn solve_one(rows: &Rows, gone: &[bool], from: Option<&[(f64, f64)]>) -> (Vec<(f64, f64)>, bool) {
    let n = rows.b.len();
    let mut x = match from {
        Some(f) => f.iter().zip(gone).map(|(&v, &g)| if g { (0.0, 0.0) } else { v }).collect(),
        None => vec![(0.0f64, 0.0f64); n],
    };
    let mut converged = true;
    for &(lo, hi) in &rows.blocks {
        let states = lo as usize..hi as usize;
        let mut done = false;
        for _sweep in 0..GAUSS_SEIDEL_MAX_SWEEPS {
            let (mut delta, mut scale) = (0.0f64, 0.0f64);
            for i in states.clone().filter(|&i| !gone[i]) {
                let (mut p, mut v) = rows.b[i];
                for k in rows.row_ptr[i]..rows.row_ptr[i + 1] {
                    let (q, xj) = (rows.probs[k], x[rows.cols[k] as usize]);
                    p += q * xj.0;
                    v += q * xj.1;
                }
                let d = 1.0 - rows.diag[i];
                let new = (p / d, v / d);
                delta = delta.max((new.0 - x[i].0).abs()).max((new.1 - x[i].1).abs());
                scale = scale.max(new.0.abs()).max(new.1.abs());
                x[i] = new;
            }
            // A state on its own reads only final values: one computation is exact.
            if hi - lo == 1 || delta <= EXACT * scale {
                done = scale.is_finite();
                break;
            }
        }
        converged &= done;
    }
    (x, converged)
}

/// A solve's `(start)` values and whether it converged.
type Solved = ((f64, f64), bool);

/// Where a lane solve starts: the full chain's solution ([`Rows::full`]) for every lane
/// that removes something (0 on its removed states), or zero.
pub(super) type Warm<'a> = Option<&'a [(f64, f64)]>;

/// The lanes' starting values: [`Warm`] in the lanes that remove a state, zero elsewhere
/// (the full chain's own lane starts from zero, as its lone solve does).
fn start_lanes(gone: &[u8], all: u8, from: Warm) -> Vec<Lane> {
    let Some(f) = from else {
        return vec![[[0.0; LANES]; 2]; gone.len()];
    };
    let warm = gone.iter().fold(0u8, |m, &g| m | g) & all;
    f.iter()
        .zip(gone)
        .map(|(&(p, v), &g)| {
            let on = |l: usize| (warm & !g) >> l & 1 == 1;
            [
                std::array::from_fn(|l| if on(l) { p } else { 0.0 }),
                std::array::from_fn(|l| if on(l) { v } else { 0.0 }),
            ]
        })
        .collect()
}

/// One lane's running solution: conversion probabilities then values.
pub(super) type Lane = [[f64; LANES]; 2];

/// The stopping test of the removal solves: no value changes by more than this, relative.
pub(super) const EXACT: f64 = 1e-15;

/// Gauss–Seidel for up to [`LANES`] removals at once; `gone[i]` has bit l set when state i
/// (in sweep order, [`Rows::permute`]) is removed in lane l. Each lane stops on its own
/// test (no value changes by more than `tol` relative; [`EXACT`] gives the bits of a lone
/// solve of that removal). Returns every state's solution (sweep order) and whether each
/// lane converged. Compiled for the widest vector instructions the processor has (the same source: vector code does not fuse multiplies into adds unless
/// asked to, so the same bits).
pub(super) fn solve_lanes(
    rows: &Rows,
    gone: &[u8],
    lanes: usize,
    tol: f64,
    from: Warm,
) -> (Vec<Lane>, [bool; LANES]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has the feature `sweep_avx512` is compiled for.
            return unsafe { sweep_avx512(rows, gone, lanes, tol, from) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: as above, for AVX2.
            return unsafe { sweep_avx2(rows, gone, lanes, tol, from) };
        }
    }
    sweep(rows, gone, lanes, tol, from)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sweep_avx512(
    rows: &Rows,
    gone: &[u8],
    lanes: usize,
    tol: f64,
    from: Warm,
) -> (Vec<Lane>, [bool; LANES]) {
    sweep(rows, gone, lanes, tol, from)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sweep_avx2(
    rows: &Rows,
    gone: &[u8],
    lanes: usize,
    tol: f64,
    from: Warm,
) -> (Vec<Lane>, [bool; LANES]) {
    sweep(rows, gone, lanes, tol, from)
}

/// The sweeps of [`solve_lanes`], component by component ([`Rows::blocks`]), each swept
/// until every lane's test holds on it. Every lane's arithmetic is done for every state and
/// kept only where the lane is live (a select, not a branch), so a pass is straight-line
/// vector code; a dead lane's values, change and scale are left as they were.
#[inline(always)]
pub(super) fn sweep(
    rows: &Rows,
    gone: &[u8],
    lanes: usize,
    tol: f64,
    from: Warm,
) -> (Vec<Lane>, [bool; LANES]) {
    let all: u8 = if lanes >= LANES { u8::MAX } else { (1u8 << lanes) - 1 };
    let mut x = start_lanes(gone, all, from);
    let mut stuck: u8 = 0;
    for &(lo, hi) in &rows.blocks {
        let mut active = all;
        for _sweep in 0..GAUSS_SEIDEL_MAX_SWEEPS {
            if active == 0 {
                break;
            }
            let mut delta = [0.0f64; LANES];
            let mut scale = [0.0f64; LANES];
            for i in lo as usize..hi as usize {
                let live = active & !gone[i];
                if live == 0 {
                    continue;
                }
                let mut acc: Lane = [[rows.b[i].0; LANES], [rows.b[i].1; LANES]];
                for k in rows.row_ptr[i]..rows.row_ptr[i + 1] {
                    let (q, xj) = (rows.probs[k], &x[rows.cols[k] as usize]);
                    for l in 0..LANES {
                        acc[0][l] += q * xj[0][l];
                        acc[1][l] += q * xj[1][l];
                    }
                }
                let d = 1.0 - rows.diag[i];
                let xi = &mut x[i];
                for l in 0..LANES {
                    let on = live >> l & 1 == 1;
                    let new = (acc[0][l] / d, acc[1][l] / d);
                    let change = (new.0 - xi[0][l]).abs().max((new.1 - xi[1][l]).abs());
                    delta[l] = if on { delta[l].max(change) } else { delta[l] };
                    scale[l] = if on { scale[l].max(new.0.abs()).max(new.1.abs()) } else { scale[l] };
                    xi[0][l] = if on { new.0 } else { xi[0][l] };
                    xi[1][l] = if on { new.1 } else { xi[1][l] };
                }
            }
            if hi - lo == 1 {
                // A state on its own reads only final values: one computation is exact
                // (a lane left active here is one whose value is not finite).
                active &= !(0..LANES).filter(|&l| scale[l].is_finite()).fold(0u8, |m, l| m | 1 << l);
                break;
            }
            let was = active;
            for l in (0..LANES).filter(|l| was >> l & 1 == 1) {
                if delta[l] <= tol * scale[l] {
                    active &= !(1u8 << l);
                }
            }
        }
        stuck |= active;
    }
    (x, std::array::from_fn(|l| l < lanes && stuck >> l & 1 == 0))
}

impl Chain {
    /// Whether removals use the dense fundamental (else Gauss–Seidel).
    fn direct(&self) -> bool {
        self.states.len() <= super::DIRECT_MAX_STATES
    }

    /// What the chain's removal solves share, built on the first of them.
    fn shared(&self) -> Result<&Shared> {
        if let Some(s) = self.fundamental.get() {
            return Ok(s);
        }
        let shared = match self.direct() {
            true => Shared::Dense(Fundamental::of(self)?),
            false => {
                let rows = Rows::of(self);
                let full = rows.full();
                Shared::Swept { rows, full }
            }
        };
        let _ = self.fundamental.set(shared);
        Ok(self.fundamental.get().expect("just set"))
    }

    fn fundamental(&self) -> Result<&Fundamental> {
        match self.shared()? {
            Shared::Dense(f) => Ok(f),
            Shared::Swept { .. } => Err(Error::Internal("a dense fundamental above its size".into())),
        }
    }

    /// One lone Gauss–Seidel solve of this chain (`gone` by chain state), on the rows and
    /// from the full solution its removal effects share: `(x[start], converged)`.
    /// (A chain small enough for the dense fundamental shares no rows: its own are built.)
    pub(super) fn swept_one(&self, gone: &[bool]) -> ((f64, f64), bool) {
        if self.direct() {
            let rows = Rows::of(self);
            return sweep_one(&rows, &rows.permute(gone));
        }
        let (rows, full) = self.swept();
        let gone = rows.permute(gone);
        let from = gone.iter().any(|&g| g).then_some(full);
        let (x, converged) = solve_one(rows, &gone, from);
        (x[rows.start], converged)
    }

    /// The sweeps' rows and the full chain's solution (a chain above the dense size).
    fn swept(&self) -> (&Rows, &[(f64, f64)]) {
        match self.shared() {
            Ok(Shared::Swept { rows, full }) => (rows, full),
            _ => unreachable!("only a chain above the dense size sweeps, and building its rows cannot fail"),
        }
    }

    /// P(conversion) and expected value from `(start)` of the full chain, from the same
    /// solve the removal effects are taken from.
    pub fn start(&self) -> Result<(f64, f64)> {
        match self.states.len() {
            0 | 1 => Ok((0.0, 0.0)),
            _ if self.direct() => Ok(self.fundamental()?.start()),
            _ => self.solve(None),
        }
    }

    /// Per channel id, the fractions of P(conversion) `p` and of the expected value `v` from
    /// `(start)` lost when the channel's states absorb into `(null)` (unclamped; the value
    /// fraction is 0 when `v` is not positive).
    pub fn removal_fractions(&self, p: f64, v: f64) -> Result<Vec<(f64, f64)>> {
        self.fractions_without(self.n_channels, |c, st| st.contains(&(c as u32)), p, v)
    }

    /// [`Chain::removal_fractions`] of `count` removals, removal i taking the states whose
    /// tuple `removed(i, tuple)` selects (`(start)` is never removed).
    pub fn fractions_without(
        &self,
        count: usize,
        removed: impl Fn(usize, &[u32]) -> bool + Sync,
        p: f64,
        v: f64,
    ) -> Result<Vec<(f64, f64)>> {
        if !self.direct() {
            return Ok(self.lane_fractions(count, removed, p, v));
        }
        let f = self.fundamental()?;
        let n = self.states.len();
        Ok((0..count)
            .into_par_iter()
            .map(|i| {
                let r: Vec<usize> = (1..n).filter(|&s| removed(i, &self.states[s])).collect();
                fractions(f.loss(&r), p, v)
            })
            .collect())
    }

    /// One Gauss–Seidel solve per removal, [`LANES`] removals per pass from [`lanes_from`]
    /// removals on, blocks in parallel (each block's arithmetic is fixed, so the result does
    /// not depend on the threads); fewer removals are solved one by one, with the same bits.
    fn lane_fractions(
        &self,
        count: usize,
        removed: impl Fn(usize, &[u32]) -> bool + Sync,
        p: f64,
        v: f64,
    ) -> Vec<(f64, f64)> {
        self.lane_solves(count, removed, false)
            .into_iter()
            .map(|kept| kept_to_fractions(kept, p, v))
            .collect()
    }

    /// P(conversion) and expected value from `(start)`, and every channel's lost fractions
    /// ([`Chain::removal_fractions`]; none when nothing converts). With Gauss–Seidel the full
    /// chain rides as one more lane of the channels' passes (the bits of its lone solve).
    pub fn start_and_removal_fractions(&self) -> Result<(PairPv, Vec<PairPv>)> {
        if self.direct() || self.states.len() < 2 || self.n_channels + 1 < lanes_from() {
            let (p, v) = self.start()?;
            let fractions = if p > 0.0 { self.removal_fractions(p, v)? } else { Vec::new() };
            return Ok(((p, v), fractions));
        }
        let kept = self.lane_solves(self.n_channels + 1, |i, st| i > 0 && st.contains(&(i as u32 - 1)), true);
        let (p, v) = kept[0];
        let fractions = match p > 0.0 {
            true => kept[1..].iter().map(|&k| kept_to_fractions(k, p, v)).collect(),
            false => Vec::new(),
        };
        Ok(((p, v), fractions))
    }

    /// `(start)`'s conversion probability and value with each removal's states gone; with
    /// `capture` and [`Chain::keep_solutions`], every state's, kept for [`super::Linear`].
    fn lane_solves(
        &self,
        count: usize,
        removed: impl Fn(usize, &[u32]) -> bool + Sync,
        capture: bool,
    ) -> Vec<(f64, f64)> {
        let (rows, full) = self.swept();
        if count < lanes_from() {
            let n = self.states.len();
            let solved: Vec<((f64, f64), bool)> = (0..count)
                .into_par_iter()
                .map(|i| {
                    // As a lane: a removal that removes nothing starts from zero.
                    let gone: Vec<bool> = (0..n).map(|s| s != 0 && removed(i, &self.states[s])).collect();
                    self.swept_one(&gone)
                })
                .collect();
            let stuck = solved.iter().filter(|l| !l.1).count();
            self.unconverged.fetch_add(stuck, std::sync::atomic::Ordering::Relaxed);
            return solved.into_iter().map(|(kept, _)| kept).collect();
        }
        let keep = capture && self.keep.load(std::sync::atomic::Ordering::Relaxed);
        let ids: Vec<usize> = (0..count).collect();
        // Each block's starting values; its every state's only when kept (hundreds of
        // blocks of a large chain would not fit otherwise).
        let solved: Vec<(Vec<Solved>, Option<Vec<Lane>>)> = ids
            .par_chunks(LANES)
            .map(|block| {
                let gone: Vec<u8> = std::iter::once(0)
                    .chain(self.states[1..].iter().map(|st| {
                        block
                            .iter()
                            .enumerate()
                            .filter(|(_, &i)| removed(i, st))
                            .fold(0u8, |m, (l, _)| m | 1 << l)
                    }))
                    .collect();
                let (x, converged) = solve_lanes(rows, &rows.permute(&gone), block.len(), EXACT, Some(full));
                let s = rows.start;
                let starts = (0..block.len()).map(|l| ((x[s][0][l], x[s][1][l]), converged[l])).collect();
                (starts, keep.then_some(x))
            })
            .collect();
        let stuck = solved.iter().flat_map(|b| &b.0).filter(|l| !l.1).count();
        self.unconverged.fetch_add(stuck, std::sync::atomic::Ordering::Relaxed);
        let mut kept = Vec::with_capacity(count);
        let mut blocks = Vec::new();
        for (starts, x) in solved {
            kept.extend(starts.into_iter().map(|(k, _)| k));
            blocks.extend(x);
        }
        if keep {
            *self.solutions.lock().unwrap_or_else(|e| e.into_inner()) = Some(Solutions { blocks });
        }
        kept
    }

    /// The solutions [`Chain::keep_solutions`] kept, if any (taken: the chain no longer
    /// holds them).
    pub(super) fn take_solutions(&self) -> Option<Solutions> {
        self.solutions.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Every state's solution (sweep order) of the full chain (column 0) and of each
/// channel's removal (column 1 + c): per block of [`LANES`] columns, as the lanes left it.
pub(super) struct Solutions {
    pub(super) blocks: Vec<Vec<Lane>>,
}

impl std::fmt::Debug for Solutions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Solutions({} blocks)", self.blocks.len())
    }
}

/// Lost fractions from the losses.
fn fractions((lp, lv): (f64, f64), p: f64, v: f64) -> (f64, f64) {
    (lp / p, if v > 0.0 { lv / v } else { 0.0 })
}

/// Lost fractions from what is kept (the per-channel solves' form, `1 − kept / full`).
pub(super) fn kept_to_fractions((pc, vc): (f64, f64), p: f64, v: f64) -> (f64, f64) {
    (1.0 - pc / p, if v > 0.0 { 1.0 - vc / v } else { 0.0 })
}
