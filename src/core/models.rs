//! Rule-based models (`docs/models.md` § Models): each gives every touch of a converting path a weight, the
//! weights of a path sum to 1, and a channel's credit is the sum of its touches' weights
//! times the path's conversions (and times its value for value credit).
//!
//! Plain Rust over channel-id paths: no Polars here. Sums run over the sorted path table in
//! order, so credits are bit-reproducible. The same weight functions serve the path table
//! and the per-journey credit table, so the two always agree.

use crate::core::paths::PathTable;
pub use crate::settings::PositionWeights;

/// Credit per channel id: conversions and value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Credits {
    /// Conversion credit per channel id.
    pub conversions: Vec<f64>,
    /// Value credit per channel id.
    pub value: Vec<f64>,
}

impl Credits {
    /// Zero credit for `n` channels.
    pub fn zeros(n: usize) -> Self {
        Credits { conversions: vec![0.0; n], value: vec![0.0; n] }
    }

    /// Add `weight × conversions` and `weight × value` to a channel.
    pub fn add(&mut self, channel: u32, weight: f64, conversions: f64, value: f64) {
        self.conversions[channel as usize] += weight * conversions;
        self.value[channel as usize] += weight * value;
    }

    /// Add another credit vector (same channel space), element by element.
    pub fn merge(&mut self, o: &Credits) {
        for (a, b) in self.conversions.iter_mut().zip(&o.conversions) {
            *a += b;
        }
        for (a, b) in self.value.iter_mut().zip(&o.value) {
            *a += b;
        }
    }
}

/// A model whose weights depend only on the path (and, for time decay, touch times).
#[derive(Debug, Clone, PartialEq)]
pub enum RuleModel {
    /// 1 to the first touch.
    FirstTouch,
    /// 1 to the last touch.
    LastTouch,
    /// 1 to the last touch whose channel is not direct (`direct[channel]`); all-direct: last.
    LastNonDirect(Vec<bool>),
    /// 1/L to every touch.
    Linear,
    /// U-shaped.
    PositionBased(PositionWeights),
    /// Zhao's simplified Shapley: 1/|distinct channels| to each distinct channel.
    Shapley,
    /// Each distinct channel of the path in proportion to its Markov removal effect
    /// (indexed by channel id); equal shares when they are all 0.
    MarkovJourney(Vec<f64>),
}

impl RuleModel {
    /// Per-touch weights of a non-empty path into `out` (cleared first); they sum to 1.
    /// For Shapley the weight of a channel is spread evenly over its touches.
    pub fn weights(&self, path: &[u32], out: &mut Vec<f64>) {
        let l = path.len();
        out.clear();
        out.resize(l, 0.0);
        match self {
            RuleModel::FirstTouch => out[0] = 1.0,
            RuleModel::LastTouch => out[l - 1] = 1.0,
            RuleModel::LastNonDirect(direct) => {
                let j = path
                    .iter()
                    .rposition(|&c| !direct.get(c as usize).copied().unwrap_or(false))
                    .unwrap_or(l - 1);
                out[j] = 1.0;
            }
            RuleModel::Linear => out.iter_mut().for_each(|w| *w = 1.0 / l as f64),
            RuleModel::PositionBased(p) => match l {
                1 => out[0] = 1.0,
                2 => {
                    out[0] = p.first + p.middle / 2.0;
                    out[1] = p.last + p.middle / 2.0;
                }
                _ => {
                    out[0] = p.first;
                    out[l - 1] = p.last;
                    let m = p.middle / (l - 2) as f64;
                    out[1..l - 1].iter_mut().for_each(|w| *w = m);
                }
            },
            RuleModel::Shapley => split_distinct(path, |_| 1.0, out),
            RuleModel::MarkovJourney(re) => {
                let w = |c: u32| re.get(c as usize).copied().unwrap_or(0.0).max(0.0);
                let mut distinct: Vec<u32> = path.to_vec();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.iter().map(|&c| w(c)).sum::<f64>() > 0.0 {
                    split_distinct(path, w, out);
                } else {
                    split_distinct(path, |_| 1.0, out);
                }
            }
        }
    }

    /// Credits of this model over a path table.
    pub fn credits(&self, pt: &PathTable) -> Credits {
        let mut c = Credits::zeros(pt.channels.len());
        let mut w = Vec::new();
        for r in pt.rows.iter().filter(|r| r.conversions > 0.0) {
            self.weights(&r.path, &mut w);
            for (&ch, &wi) in r.path.iter().zip(&w) {
                c.add(ch, wi, r.conversions, r.value);
            }
        }
        c
    }
}

/// Split 1 among the distinct channels of a path in proportion to `weight(channel)` (whose
/// sum over them must be > 0), each channel's share spread evenly over its touches. Counts
/// come from a sorted copy: O(L log L), so a bot's million-touch path stays cheap.
fn split_distinct(path: &[u32], weight: impl Fn(u32) -> f64, out: &mut [f64]) {
    let mut sorted: Vec<u32> = path.to_vec();
    sorted.sort_unstable();
    let mut total = 0.0;
    for (i, &c) in sorted.iter().enumerate() {
        if i == 0 || sorted[i - 1] != c {
            total += weight(c);
        }
    }
    for (i, c) in path.iter().enumerate() {
        let m = sorted.partition_point(|x| x <= c) - sorted.partition_point(|x| x < c);
        out[i] = weight(*c) / total / m as f64;
    }
}

/// All credit to the first touch.
pub fn first_touch(pt: &PathTable) -> Credits {
    RuleModel::FirstTouch.credits(pt)
}

/// All credit to the last touch.
pub fn last_touch(pt: &PathTable) -> Credits {
    RuleModel::LastTouch.credits(pt)
}

/// 1/L to every touch; a channel touched m times gets m/L.
pub fn linear(pt: &PathTable) -> Credits {
    RuleModel::Linear.credits(pt)
}

/// Last non-direct touch; `direct` holds channel names.
pub fn last_non_direct(pt: &PathTable, direct: &[String]) -> Credits {
    RuleModel::LastNonDirect(direct_mask(pt, direct)).credits(pt)
}

/// `mask[channel id]` = whether the channel is in the direct set.
pub fn direct_mask(pt: &PathTable, direct: &[String]) -> Vec<bool> {
    pt.channels.iter().map(|c| direct.iter().any(|d| d == c)).collect()
}

/// Position-based (U-shaped) credit.
pub fn position_based(pt: &PathTable, w: PositionWeights) -> Credits {
    RuleModel::PositionBased(w).credits(pt)
}

/// Zhao et al.'s simplified Shapley value: each conversion split equally among the distinct
/// channels of its path (exact for its characteristic function, at any number of channels).
pub fn shapley(pt: &PathTable) -> Credits {
    RuleModel::Shapley.credits(pt)
}

/// One row of the ordered Shapley breakdown.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedShare {
    /// Channel id.
    pub channel: u32,
    /// Touch position, 1-based.
    pub position: u32,
    /// Conversion credit at that position.
    pub conversions: f64,
    /// Value credit at that position.
    pub value: f64,
}

/// Ordered Shapley (Zhao et al.): the simplified Shapley credit broken down by touch
/// position; a channel occurring m times in a path with |T| distinct channels gets
/// 1/(m·|T|) at each of its positions. Sums over positions equal [`shapley`].
pub fn shapley_ordered(pt: &PathTable) -> Vec<OrderedShare> {
    ordered_shares(ordered_sums(pt))
}

/// Shapley credit of a path table's converting paths summed by (channel, position):
/// (conversions, value), additive over partitions.
pub fn ordered_sums(pt: &PathTable) -> std::collections::BTreeMap<(u32, u32), (f64, f64)> {
    let mut acc: std::collections::BTreeMap<(u32, u32), (f64, f64)> = Default::default();
    let mut w = Vec::new();
    for r in pt.rows.iter().filter(|r| r.conversions > 0.0) {
        RuleModel::Shapley.weights(&r.path, &mut w);
        for (i, (&c, &wi)) in r.path.iter().zip(&w).enumerate() {
            let e = acc.entry((c, i as u32 + 1)).or_insert((0.0, 0.0));
            e.0 += wi * r.conversions;
            e.1 += wi * r.value;
        }
    }
    acc
}

/// Shapley credit summed by (channel, position) as [`OrderedShare`]s, in key order (also
/// how a distributed fit turns its summed `ordered` statistics into the table's rows).
pub fn ordered_shares(acc: std::collections::BTreeMap<(u32, u32), (f64, f64)>) -> Vec<OrderedShare> {
    acc.into_iter()
        .map(|((channel, position), (conversions, value))| OrderedShare {
            channel,
            position,
            conversions,
            value,
        })
        .collect()
}

/// Time-decay weights of one journey: `2^(−Δ/H)` normalised, Δ = conversion time − touch
/// time. Δ is shifted by the smallest Δ before exponentiation, which leaves the normalised
/// weights unchanged but keeps them finite for touches years before the conversion.
pub fn time_decay_weights(touch_ts: &[i64], conversion_ts: i64, half_life_us: f64, out: &mut Vec<f64>) {
    out.clear();
    let min_delta = touch_ts.iter().map(|t| conversion_ts - t).min().unwrap_or(0);
    out.extend(touch_ts.iter().map(|t| (-((conversion_ts - t - min_delta) as f64) / half_life_us).exp2()));
    let s: f64 = out.iter().sum();
    out.iter_mut().for_each(|w| *w /= s);
}

/// `markov_journey`'s split of one journey among its reporting channels, from the journey's
/// distinct path channels (sorted) alone: each in proportion to its removal effect in `re`
/// (equal shares when they are all 0), summed per reporting channel (`report_of`), sorted by
/// it. The split needs only the distinct channels, so a shard can leave it to the merge,
/// which alone knows the merged chain's removal effects; both go through this function.
pub fn markov_journey_split(distinct: &[u32], re: &[f64], report_of: &[u32], out: &mut Vec<(u32, f64)>) {
    out.clear();
    let w = |c: u32| re.get(c as usize).copied().unwrap_or(0.0).max(0.0);
    let total: f64 = distinct.iter().map(|&c| w(c)).sum();
    for &c in distinct {
        let share = match total > 0.0 {
            true => w(c) / total,
            false => 1.0 / distinct.len() as f64,
        };
        add_share(out, report_of.get(c as usize).copied().unwrap_or(c), share);
    }
    out.sort_by_key(|p| p.0);
}

/// Add `w` to channel `b`'s entry of a journey's few (channel, share) pairs.
pub fn add_share(per: &mut Vec<(u32, f64)>, b: u32, w: f64) {
    match per.iter_mut().find(|p| p.0 == b) {
        Some(p) => p.1 += w,
        None => per.push((b, w)),
    }
}
