//! A large chain's replicates by one correction step from the full fit (`docs/models.md`
//! § Uncertainty, "Markov replicates of a large chain").
//!
//! Why: a replicate reweights the journeys, which moves every transition probability of
//! the chain a little. Refitting it exactly costs what the full fit costs, one Gauss–Seidel
//! solve per channel (hundreds of channels at order 2: 3 s a replicate, 11 minutes for 200).
//!
//! How: for each removal c (and the full chain, column 0) the full fit's solution `y_c`
//! of `(I − Q_c) y = b_c` and the first row `g_c` of its fundamental matrix `(I − Q_c)⁻¹`
//! (the expected visits to each state from `(start)`) are solved once, the latter on the
//! transposed rows. A replicate's system `(I − Q*_c) y* = b*_c` has the residual
//! `r = b* + Q* y_c − y_c` at the full fit's solution, and
//!
//! ```text
//! y*_c[start] = y_c[start] + g_c · r + O(‖Q* − Q‖²)
//! ```
//!
//! (`y* − y = (I − Q*)⁻¹ r` and `(I − Q*)⁻¹ = (I − Q)⁻¹ + O(‖Q* − Q‖)`): one warm-started
//! Newton step of the replicate's solve, exact to first order in the reweighting. Its cost
//! is one pass over the edges per replicate for every removal at once, instead of one solve
//! per removal. A removed state has `y_c = g_c = 0`, so its residual is never read.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

use super::removal::{solve_lanes, Lane, Rows, Slot, EXACT, LANES};
use super::Chain;

/// The full fit's solutions and fundamental rows of every removal, in sweep order.
pub struct Linear {
    rows: Rows,
    /// Columns: 0 the full chain, 1 + c channel c removed.
    cols: usize,
    /// Per block of [`LANES`] columns, per state (sweep order): each column's conversion
    /// probability and value from the state (the lanes' own layout: a state's block is two
    /// cache lines).
    y: Vec<Vec<Lane>>,
    /// Per block of columns, per state (sweep order): expected visits from `(start)`.
    g: Vec<Vec<[f64; LANES]>>,
    /// Per transition of the chain: its source state (chain numbering) and the full fit's
    /// probability.
    from: Vec<u32>,
    point: Vec<f64>,
    /// Per state (chain numbering): the full fit's value per conversion.
    last_state_value: Vec<f64>,
    /// The terms of the corrections, state by state (sweep order).
    entries: Vec<Entry>,
    /// Per edge of the rows, per state, and per converting state: its entry (the value
    /// half of a conversion is the next one; `u32::MAX` where a state has no conversion).
    edge: Vec<u32>,
    stay: Vec<u32>,
    convert: Vec<u32>,
    /// Solves that stopped at the sweep limit.
    pub unconverged: usize,
}

impl std::fmt::Debug for Linear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Linear({} states, {} columns)", self.rows.b.len(), self.cols)
    }
}

/// A replicate's (P(conversion), expected value) from `(start)` of the full chain, and of
/// each channel's removal.
pub type Kept = ((f64, f64), Vec<(f64, f64)>);

/// One replicate's counts on the full fit's transitions (the chain's order) and, per state
/// (chain numbering), the (value, conversions) of the converting journeys ending there.
pub struct Counts<'a> {
    /// Weighted journeys per transition.
    pub edges: &'a [f64],
    /// Per state: (value, conversions).
    pub ends: &'a [(f64, f64)],
}

impl Linear {
    /// Solve every removal's `y_c` and `g_c` on the full chain (one lane pass per
    /// [`LANES`] columns for each, blocks in parallel; each block's arithmetic is fixed).
    pub fn of(chain: &Chain) -> Linear {
        let rows = Rows::of(chain);
        let cols = chain.n_channels + 1;
        let gone: Vec<Vec<u8>> = (0..cols)
            .step_by(LANES)
            .map(|first| {
                rows.order
                    .iter()
                    .map(|&o| {
                        let st = &chain.states[o as usize];
                        let removed =
                            |l: usize| o != 0 && first + l > 0 && st.contains(&((first + l - 1) as u32));
                        (0..LANES.min(cols - first)).filter(|&l| removed(l)).fold(0u8, |m, l| m | 1 << l)
                    })
                    .collect()
            })
            .collect();
        let transposed = rows.transposed();
        let visits = transposed.full();
        let kept = chain.take_solutions().map(|s| s.blocks).filter(|b| b.len() == gone.len());
        let full = kept.is_none().then(|| rows.full());
        let solved: Vec<_> = gone
            .par_iter()
            .enumerate()
            .map(|(b, gone)| {
                let lanes = LANES.min(cols - b * LANES);
                let back: Vec<u8> = gone.iter().rev().copied().collect();
                let forward = full.as_deref().map(|f| solve_lanes(&rows, gone, lanes, EXACT, Some(f)));
                let (t, converged) = solve_lanes(&transposed, &back, lanes, VISITS, Some(&visits));
                let stuck = converged[..lanes].iter().chain(forward.iter().flat_map(|f| &f.1[..lanes]));
                let stuck = stuck.filter(|&&c| !c).count();
                (forward.map(|f| f.0), t.iter().rev().map(|x| x[0]).collect::<Vec<_>>(), stuck)
            })
            .collect();
        let unconverged = solved.iter().map(|b| b.2).sum();
        let (forward, g): (Vec<_>, Vec<_>) = solved.into_iter().map(|(f, g, _)| (f, g)).unzip();
        let y = match kept {
            Some(y) => y,
            None => forward.into_iter().map(|f| f.expect("solved without kept solutions")).collect(),
        };
        let from = chain.transitions.iter().map(|t| t.from).collect();
        let point = chain.transitions.iter().map(|t| t.probability).collect();
        let mut linear = Linear {
            rows,
            cols,
            y,
            g,
            from,
            point,
            last_state_value: chain.last_state_value.clone(),
            unconverged,
            entries: Vec::new(),
            edge: Vec::new(),
            stay: Vec::new(),
            convert: Vec::new(),
        };
        linear.number_entries();
        linear
    }

    /// Each state's self term, its conversion edge (both halves) if it has one, then its
    /// edges.
    fn number_entries(&mut self) {
        let n = self.rows.b.len();
        let mut converts = vec![false; n];
        for s in &self.rows.slots {
            if let Slot::Conversion(i) = *s {
                converts[i as usize] = true;
            }
        }
        let (mut stay, mut convert, mut edge) =
            (vec![0; n], vec![u32::MAX; n], vec![0; self.rows.cols.len()]);
        let mut entries = Vec::with_capacity(n + self.rows.cols.len());
        for i in 0..n {
            stay[i] = entries.len() as u32;
            entries.push(Entry::Stay(i as u32));
            if converts[i] {
                convert[i] = entries.len() as u32;
                entries.extend([Entry::ConvertP(i as u32), Entry::ConvertV(i as u32)]);
            }
            let row = self.rows.row_ptr[i]..self.rows.row_ptr[i + 1];
            for (slot, &to) in edge[row.clone()].iter_mut().zip(&self.rows.cols[row]) {
                *slot = entries.len() as u32;
                entries.push(Entry::Edge { from: i as u32, to });
            }
        }
        (self.entries, self.edge, self.stay, self.convert) = (entries, edge, stay, convert);
    }

    /// Per replicate: the full chain's (P(conversion), expected value) from `(start)` and,
    /// per channel, the same with the channel removed.
    ///
    /// Every column's correction `g_c · r` is a sum over the chain's entries (each edge, each
    /// state's self term `(q_ii − 1) y_i`, each conversion edge's `b_i`) of the replicate's
    /// probability on the entry times a product of the full fit's numbers: with `Qᵀ` the
    /// entries × replicates matrix of the former and `W` the columns × entries matrix of the
    /// latter, the corrections of all replicates are one matrix product `W Qᵀ`, done in
    /// fixed tiles of entries (faer, sequential per tile; tiles summed in order, so the bits
    /// do not depend on the threads).
    ///
    /// `q` holds the replicates' columns of `Qᵀ` one after another ([`Linear::fill`], each
    /// [`Linear::entries`] long).
    pub fn kept(&self, q: &[f64]) -> Vec<Kept> {
        let (cols, e) = (self.cols, self.entries.len());
        let m = q.len() / e.max(1);
        let q = MatRef::from_column_major_slice(q, e, m);
        let chunks: Vec<Mat<f64>> = (0..self.entries.len())
            .step_by(CHUNK)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|first| {
                let mut d = Mat::<f64>::zeros(2 * cols, m);
                let mut w = Mat::<f64>::zeros(2 * cols, TILE);
                let last = (first + CHUNK).min(self.entries.len());
                for lo in (first..last).step_by(TILE) {
                    let hi = (lo + TILE).min(last);
                    for (t, e) in (lo..hi).enumerate() {
                        self.weights(
                            self.entries[e],
                            w.col_mut(t).try_as_col_major_mut().expect("contiguous").as_slice_mut(),
                        );
                    }
                    let (w, q) = (w.as_ref().subcols(0, hi - lo), q.as_ref().subrows(lo, hi - lo));
                    matmul(d.as_mut(), Accum::Add, w, q, 1.0, Par::Seq);
                }
                d
            })
            .collect();
        let mut d = Mat::<f64>::zeros(2 * cols, m);
        for c in &chunks {
            d += c;
        }
        let s = self.rows.start;
        (0..m)
            .map(|r| {
                let at = |c: usize| {
                    let y = &self.y[c / LANES][s];
                    (y[0][c % LANES] + d[(c, r)], y[1][c % LANES] + d[(cols + c, r)])
                };
                (at(0), (1..cols).map(at).collect())
            })
            .collect()
    }

    /// An entry's column of `W`: per removal, conversion probability then value.
    fn weights(&self, e: Entry, w: &mut [f64]) {
        let (wp, wv) = w.split_at_mut(self.cols);
        for (b, (g, y)) in self.g.iter().zip(&self.y).enumerate() {
            let lanes = LANES.min(self.cols - b * LANES);
            let (wp, wv) = (&mut wp[b * LANES..b * LANES + lanes], &mut wv[b * LANES..b * LANES + lanes]);
            match e {
                Entry::Edge { from, to } => products(&g[from as usize], &y[to as usize], wp, wv),
                Entry::Stay(i) => products(&g[i as usize], &y[i as usize], wp, wv),
                Entry::ConvertP(i) => {
                    wp.copy_from_slice(&g[i as usize][..lanes]);
                    wv.fill(0.0);
                }
                Entry::ConvertV(i) => {
                    wp.fill(0.0);
                    wv.copy_from_slice(&g[i as usize][..lanes]);
                }
            }
        }
    }

    /// How many replicates to solve in one product: the most (a multiple of `block`, at
    /// least one block) whose columns of `Qᵀ`, with the `held` bytes each replicate's other
    /// sums keep until its group is solved, fit in `Q_BYTES` (512 MB); all of them if they fit. A
    /// function of the frame and the count only, so a single run and a merge take the same
    /// products.
    pub fn group(&self, replicates: usize, block: usize, held: usize) -> usize {
        let column = self.entries.len().max(1) * std::mem::size_of::<f64>() + held;
        let fit = (Q_BYTES / column / block).max(1) * block;
        fit.min(replicates.div_ceil(block).max(1) * block)
    }

    /// The length of a replicate's column of `Qᵀ`.
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    /// A replicate's column of `Qᵀ` (zeros on entry): its row-normalised probability on
    /// every entry.
    ///
    /// A state no weighted journey leaves is one no weighted journey enters either (every
    /// journey that enters a state leaves it), so in the replicate nothing reaches it and
    /// its row does not change the exact answer. It keeps the full fit's row, which leaves
    /// the step's residual there 0. Emptying it, as a refit does, would charge the step a
    /// first-order `−g_s y_s` that the exact answer does not have: a row dropping to zero is
    /// no small change (a state one person walks loses its row in 37% of replicates).
    pub fn fill(&self, r: &Counts, q: &mut [f64]) {
        let mut out_total = vec![0.0; r.ends.len()];
        for (&from, &count) in self.from.iter().zip(r.edges) {
            out_total[from as usize] += count;
        }
        for &e in &self.stay {
            q[e as usize] = -1.0;
        }
        let rows = self.rows.slots.iter().zip(&self.from).zip(&self.point);
        for (((&slot, &from), &point), &count) in rows.zip(r.edges) {
            let t = out_total[from as usize];
            let p = if t > 0.0 { count / t } else { point };
            match slot {
                Slot::Edge(k) => q[self.edge[k as usize] as usize] = p,
                Slot::Diag(i) => q[self.stay[i as usize] as usize] += p,
                Slot::Conversion(i) => {
                    let (value, conv) = r.ends[from as usize];
                    let lsv = match (t > 0.0, conv > 0.0) {
                        (false, _) => self.last_state_value[from as usize],
                        (true, true) => value / conv,
                        (true, false) => 0.0,
                    };
                    let e = self.convert[i as usize] as usize;
                    q[e] += p;
                    q[e + 1] += p * lsv;
                }
                Slot::Null => {}
            }
        }
    }
}

/// `w_p = g ∘ y_p`, `w_v = g ∘ y_v` over a block's lanes.
fn products(g: &[f64; LANES], y: &Lane, wp: &mut [f64], wv: &mut [f64]) {
    for l in 0..wp.len() {
        wp[l] = g[l] * y[0][l];
        wv[l] = g[l] * y[1][l];
    }
}

/// A term of the corrections: what the replicate's probability on it multiplies.
#[derive(Debug, Clone, Copy)]
enum Entry {
    /// The edge from state `from` to `to`: `g_from ∘ y_to`.
    Edge { from: u32, to: u32 },
    /// A state's own `(q_ii − 1) y_i`: `g_i ∘ y_i`.
    Stay(u32),
    /// A state's conversion edge, in P(conversion): `g_i`.
    ConvertP(u32),
    /// The same in value (the probability times the last-state value): `g_i`.
    ConvertV(u32),
}

/// The stopping test of the visit solves: `g` only multiplies the residuals, which are of
/// the order of the reweighting, so a relative 1e-11 is far below the correction's own
/// second-order error and saves a third of the sweeps.
const VISITS: f64 = 1e-11;

/// The most memory the replicates of a group take at once (each product computes
/// `W` again, so fewer, larger groups are faster).
const Q_BYTES: usize = 512 << 20;

/// Entries per tile of the product (the tile of `W` stays in cache).
const TILE: usize = 256;
/// Entries per parallel chunk (a fixed split, so the sums do not depend on the threads).
const CHUNK: usize = 64 * TILE;
