//! Exact removal-effect Markov attribution of any order (SPEC §3, research/algorithms.md §3).
//!
//! - **States** of order k are the sliding windows of k channels of a path (a path shorter
//!   than k is one state; no start padding), consecutive identical states collapsed, plus
//!   `(start)` and the absorbing `(conversion)` and `(null)`.
//! - **Transitions** are the maximum-likelihood row-normalised counts: every path row adds
//!   `conversions + nulls` along its states, `conversions` into `(conversion)` and `nulls`
//!   into `(null)`.
//! - **Removal effects** are exact: for each channel c, the states containing c become null
//!   and `(I − Q_{−c}) x = r_{−c}` is solved with a sparse LU (faer); `RE_c = 1 − x[start] /
//!   P(conversion)`. No simulation and no matrix inverse, so the numbers are the same on
//!   every run, machine and thread count.
//! - **Value** uses the last-state value model: a conversion ending in state s is worth the
//!   mean value per conversion of the paths whose last state is s.

use faer::prelude::*;
use faer::sparse::{SparseColMat, Triplet};
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::paths::PathTable;

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
#[derive(Debug, Clone)]
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
    pub fn fit(pt: &PathTable, k: usize) -> Chain {
        assert!(k >= 1, "order must be at least 1");
        // Collect the distinct states, then number them in sorted order (deterministic).
        let mut seen: FxHashMap<&[u32], u32> = FxHashMap::default();
        for r in &pt.rows {
            if r.conversions + r.nulls <= 0.0 {
                continue;
            }
            for s in path_states(&r.path, k) {
                let n = seen.len() as u32;
                seen.entry(s).or_insert(n);
            }
        }
        let mut tuples: Vec<&[u32]> = seen.keys().copied().collect();
        tuples.sort_unstable();
        let index: FxHashMap<&[u32], u32> =
            tuples.iter().enumerate().map(|(i, t)| (*t, i as u32 + 1)).collect();
        let mut states: Vec<Vec<u32>> = Vec::with_capacity(tuples.len() + 1);
        states.push(Vec::new());
        states.extend(tuples.iter().map(|t| t.to_vec()));

        // Accumulate edge counts in path-table order (fixed), keyed by (from, to).
        let mut counts: FxHashMap<(u32, Target), f64> = FxHashMap::default();
        let mut last_val = vec![0.0; states.len()];
        let mut last_conv = vec![0.0; states.len()];
        for r in &pt.rows {
            let w = r.conversions + r.nulls;
            if w <= 0.0 {
                continue;
            }
            let mut prev = 0u32;
            for s in path_states(&r.path, k) {
                let id = index[s];
                *counts.entry((prev, Target::State(id))).or_insert(0.0) += w;
                prev = id;
            }
            if r.conversions > 0.0 {
                *counts.entry((prev, Target::Conversion)).or_insert(0.0) += r.conversions;
                last_val[prev as usize] += r.value;
                last_conv[prev as usize] += r.conversions;
            }
            if r.nulls > 0.0 {
                *counts.entry((prev, Target::Null)).or_insert(0.0) += r.nulls;
            }
        }
        let mut edges: Vec<((u32, Target), f64)> = counts.into_iter().collect();
        edges.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut out_total = vec![0.0; states.len()];
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
        Chain { order: k, states, transitions, last_state_value, n_channels: pt.channels.len() }
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

    /// Absorption into `(conversion)` from `(start)` with the states containing `removed`
    /// redirected to `(null)`: returns (probability, expected value).
    pub fn solve(&self, removed: Option<u32>) -> Result<(f64, f64)> {
        let n_all = self.states.len();
        // Compact indices of the kept transient states.
        let mut map = vec![u32::MAX; n_all];
        let mut n = 0usize;
        for (i, s) in self.states.iter().enumerate() {
            if removed.is_none_or(|c| !s.contains(&c)) {
                map[i] = n as u32;
                n += 1;
            }
        }
        let mut diag = vec![1.0f64; n];
        let mut trips: Vec<Triplet<usize, usize, f64>> = Vec::new();
        let mut rhs = Mat::<f64>::zeros(n, 2);
        for t in &self.transitions {
            let a = map[t.from as usize];
            if a == u32::MAX {
                continue;
            }
            let a = a as usize;
            match t.to {
                Target::State(b) => {
                    let b = map[b as usize];
                    if b == u32::MAX {
                        continue; // redirected to (null)
                    }
                    if b as usize == a {
                        diag[a] -= t.probability;
                    } else {
                        trips.push(Triplet::new(a, b as usize, -t.probability));
                    }
                }
                Target::Conversion => {
                    rhs[(a, 0)] += t.probability;
                    rhs[(a, 1)] += t.probability * self.last_state_value[t.from as usize];
                }
                Target::Null => {}
            }
        }
        for (i, d) in diag.into_iter().enumerate() {
            trips.push(Triplet::new(i, i, d));
        }
        let a = SparseColMat::<usize, f64>::try_new_from_triplets(n, n, &trips)
            .map_err(|e| Error::Internal(format!("building I − Q: {e:?}")))?;
        let lu = a.sp_lu().map_err(|e| Error::Internal(format!("sparse LU of I − Q: {e:?}")))?;
        let x = lu.solve(&rhs);
        Ok((x[(0, 0)], x[(0, 1)]))
    }
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
}

/// Fit the chain of order k and compute exact removal effects and credits.
pub fn attribute(pt: &PathTable, k: usize) -> Result<MarkovResult> {
    let chain = Chain::fit(pt, k);
    let nc = pt.channels.len();
    let total_conv = pt.total_conversions();
    let total_value = pt.total_value();
    let total_w = total_conv + pt.total_nulls();
    let observed_rate = if total_w > 0.0 { total_conv / total_w } else { 0.0 };
    let (p, v) = if chain.states.len() > 1 { chain.solve(None)? } else { (0.0, 0.0) };

    let mut re = vec![None; nc];
    let mut vre = vec![None; nc];
    if p > 0.0 {
        for c in 0..nc {
            let (pc, vc) = chain.solve(Some(c as u32))?;
            re[c] = Some((1.0 - pc / p).clamp(0.0, 1.0));
            if total_value > 0.0 && v > 0.0 {
                vre[c] = Some((1.0 - vc / v).clamp(0.0, 1.0));
            }
        }
    }
    let normalise = |res: &[Option<f64>], total: f64| -> Vec<f64> {
        let sum: f64 = res.iter().map(|r| r.unwrap_or(0.0)).sum();
        res.iter().map(|r| if sum > 0.0 { r.unwrap_or(0.0) / sum * total } else { 0.0 }).collect()
    };
    let conversions = normalise(&re, total_conv);
    let value = normalise(&vre, total_value);
    Ok(MarkovResult {
        chain,
        p_conversion: p,
        expected_value: v,
        observed_rate,
        removal_effects: re,
        value_removal_effects: vre,
        conversions,
        value,
    })
}
