//! The Shapley value of channel sets' conversion rates (`docs/models.md` § Models,
//! `shapley_rate`): the worth of a set S of channels is the conversion rate of the journeys
//! whose set of channels is exactly S (0 where no journey has that set, and for the empty
//! set). Exact for any number of channels: only the sets that occur have a worth, so
//! φ_i = Σ_T v(T) · (w(|T| − 1) if i ∈ T, else −w(|T|)), with w(s) = s!(n − s − 1)!/n!,
//! a sum over the distinct sets of the path table — no enumeration of 2^n subsets.

use std::collections::BTreeMap;

use crate::core::models::Credits;
use crate::core::paths::PathTable;

/// w(s) = s!(n − s − 1)!/n! = 1 / (n · C(n − 1, s)), for s = 0..n.
fn weights(n: usize) -> Vec<f64> {
    let mut c = 1.0f64; // C(n − 1, s)
    (0..n)
        .map(|s| {
            if s > 0 {
                c *= (n - s) as f64 / s as f64;
            }
            1.0 / (n as f64 * c)
        })
        .collect()
}

/// Shapley values of the conversion rate (and of the value per journey) over the channels
/// of the path table, scaled to add up to its conversions (and value). Returns the credits
/// and whether they could be scaled (a non-positive sum of values cannot).
pub fn shapley_rate(pt: &PathTable) -> (Credits, bool) {
    let n = pt.channels.len();
    let mut sets: BTreeMap<Vec<u32>, (f64, f64, f64)> = BTreeMap::new();
    for r in &pt.rows {
        let mut s = r.path.clone();
        s.sort_unstable();
        s.dedup();
        let e = sets.entry(s).or_default();
        e.0 += r.conversions;
        e.1 += r.conversions + r.nulls;
        e.2 += r.value;
    }
    let w = weights(n.max(1));
    let mut phi = Credits::zeros(n);
    let mut member = vec![false; n];
    for (set, (conv, journeys, value)) in &sets {
        if *journeys <= 0.0 {
            continue;
        }
        let (rate, value_rate) = (conv / journeys, value / journeys);
        set.iter().for_each(|&c| member[c as usize] = true);
        for (i, m) in member.iter().enumerate() {
            let k = if *m {
                w[set.len() - 1]
            } else if set.len() < n {
                -w[set.len()]
            } else {
                0.0
            };
            phi.conversions[i] += k * rate;
            phi.value[i] += k * value_rate;
        }
        set.iter().for_each(|&c| member[c as usize] = false);
    }
    // The values add up to v(all channels) (efficiency), which is 0 when no journey has
    // every channel: a sum that small is rounding noise, and scaling by it would give any
    // sign and any size. It counts as zero.
    let scale = |v: &mut Vec<f64>, total: f64| -> bool {
        let sum: f64 = v.iter().sum();
        let size: f64 = v.iter().map(|x| x.abs()).sum();
        if sum > 1e-9 * size {
            v.iter_mut().for_each(|x| *x *= total / sum);
            true
        } else {
            v.iter_mut().for_each(|x| *x = 0.0);
            total == 0.0
        }
    };
    let ok_c = scale(&mut phi.conversions, pt.total_conversions());
    let ok_v = scale(&mut phi.value, pt.total_value());
    (phi, ok_c && ok_v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::paths::PathRow;

    /// {A}: 10 journeys, 2 conversions; {B}: 10 journeys, 1; {A, B}: 5 journeys, 3.
    /// v(A) = 0.2, v(B) = 0.1, v(AB) = 0.6. φ_A = ½·0.2 + ½·(0.6 − 0.1) = 0.35,
    /// φ_B = ½·0.1 + ½·(0.6 − 0.2) = 0.25; Σ = v(AB) = 0.6 (efficiency). Scaled to the 6
    /// conversions: A = 3.5, B = 2.5.
    #[test]
    fn two_channels_by_hand() {
        let row =
            |path: Vec<u32>, c: f64, n: f64| PathRow { path, conversions: c, nulls: n, value: 10.0 * c };
        let pt = PathTable {
            channels: vec!["A".into(), "B".into()],
            rows: vec![
                row(vec![0], 2.0, 8.0),
                row(vec![1], 1.0, 9.0),
                row(vec![0, 1], 2.0, 1.0),
                row(vec![1, 0], 1.0, 1.0),
            ],
        };
        let (c, ok) = shapley_rate(&pt);
        assert!(ok);
        assert!((c.conversions[0] - 3.5).abs() < 1e-12 && (c.conversions[1] - 2.5).abs() < 1e-12, "{c:?}");
        assert!((c.value[0] - 35.0).abs() < 1e-9 && (c.value[1] - 25.0).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn weights_sum_to_one_over_orders() {
        // For a player, Σ_s C(n − 1, s) · w(s) = 1.
        for n in [1usize, 2, 5, 20, 60] {
            let w = weights(n);
            let mut c = 1.0;
            let mut total = 0.0;
            for (s, ws) in w.iter().enumerate() {
                if s > 0 {
                    c *= (n - s) as f64 / s as f64;
                }
                total += c * ws;
            }
            assert!((total - 1.0).abs() < 1e-9, "n = {n}: {total}");
        }
    }
}
