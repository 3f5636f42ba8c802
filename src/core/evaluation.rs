//! Scores of a model's credit against a known causal truth (`touchpoint evaluate`,
//! `docs/evaluation.md`).
//!
//! Shares are over the channels: a model's credit share of a channel is its credited
//! conversions over all credited conversions of channels (not `(unattributed)`); the true
//! share is the channel's incremental conversions over the sum of every channel's. Scores:
//! - total-variation distance `½ Σ |share − true share|` (0: the same split; 1: disjoint);
//! - Spearman's rank correlation of credit and incremental conversions (ties get mean ranks);
//! - the credit share of channels with no effect at all;
//! - coverage: how many channels' bootstrap intervals contain the model's own large-sample
//!   credit (the same model on a much larger log of the same world, scaled to this log's
//!   population) and how many contain the true incremental conversions.

/// One model's credit on the evaluated log, per channel of the truth (in its order).
#[derive(Debug, Clone)]
pub struct ModelRun {
    /// The model.
    pub model: String,
    /// Credited conversions.
    pub conversions: Vec<f64>,
    /// Bootstrap bounds, when intervals ran.
    pub bounds: Option<Vec<(f64, f64)>>,
    /// The model's credit on the large reference log, scaled to this log's population.
    pub large_sample: Option<Vec<f64>>,
}

/// The score of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The model.
    pub model: String,
    /// Total-variation distance between credit shares and true shares.
    pub tv_distance: f64,
    /// Spearman's rank correlation between credit and true incremental conversions.
    pub rank_correlation: Option<f64>,
    /// Credit share of the channels whose true effect is 0.
    pub zero_effect_share: f64,
    /// Channels whose interval contains the large-sample credit / the truth (None without
    /// intervals or reference).
    pub covers_large_sample: Option<u32>,
    /// See `covers_large_sample`.
    pub covers_truth: Option<u32>,
    /// Channels scored.
    pub channels: u32,
}

/// Shares of a vector (all 0 when it sums to 0).
pub fn shares(x: &[f64]) -> Vec<f64> {
    let total: f64 = x.iter().sum();
    x.iter().map(|v| if total != 0.0 { v / total } else { 0.0 }).collect()
}

/// `½ Σ |a − b|`.
pub fn tv_distance(a: &[f64], b: &[f64]) -> f64 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>()
}

/// Ranks from 1, ties sharing their mean rank.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(a.cmp(&b)));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        idx[i..=j].iter().for_each(|&k| r[k] = mean);
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation (None when either side is constant).
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// Score one model against the true incremental conversions per channel.
pub fn score(run: &ModelRun, truth: &[f64]) -> Score {
    let (s, t) = (shares(&run.conversions), shares(truth));
    let covered = |target: &[f64]| {
        run.bounds
            .as_ref()
            .map(|b| b.iter().zip(target).filter(|((l, h), x)| l <= x && *x <= h).count() as u32)
    };
    Score {
        model: run.model.clone(),
        tv_distance: tv_distance(&s, &t),
        rank_correlation: spearman(&run.conversions, truth),
        zero_effect_share: s.iter().zip(truth).filter(|(_, &x)| x == 0.0).fold(0.0, |a, (v, _)| a + v),
        covers_large_sample: run.large_sample.as_deref().and_then(covered),
        covers_truth: covered(truth),
        channels: truth.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_by_hand() {
        // Truth 60 / 30 / 10 / 0; credit 20 / 20 / 20 / 40.
        let truth = [60.0, 30.0, 10.0, 0.0];
        let run = ModelRun {
            model: "m".into(),
            conversions: vec![20.0, 20.0, 20.0, 40.0],
            bounds: Some(vec![(10.0, 30.0), (15.0, 35.0), (5.0, 15.0), (35.0, 45.0)]),
            large_sample: Some(vec![25.0, 18.0, 21.0, 38.0]),
        };
        let s = score(&run, &truth);
        // ½ (|0.2 − 0.6| + |0.2 − 0.3| + |0.2 − 0.1| + |0.4 − 0|) = 0.5.
        assert!((s.tv_distance - 0.5).abs() < 1e-12);
        assert!((s.zero_effect_share - 0.4).abs() < 1e-12);
        // Ranks of the credit 2, 2, 2, 4 against 4, 3, 2, 1: ρ = −0.7746 (= −√0.6).
        assert!((s.rank_correlation.unwrap() + 0.6f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.covers_large_sample, Some(3)); // 21 is outside (5, 15)
        assert_eq!(s.covers_truth, Some(2)); // 30 in (15, 35), 10 in (5, 15)
    }

    #[test]
    fn constant_credit_has_no_rank_correlation() {
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]).unwrap() - 1.0).abs() < 1e-12);
    }
}
