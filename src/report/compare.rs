//! `group_comparison`: the media buyer's question — is one group's return on spend really
//! higher than another's, or is the difference noise? — answered per model from the
//! bootstrap replicates (`docs/models.md` § Uncertainty).

use std::collections::BTreeMap;

use super::names::TableName;
use crate::core::analysis::Analysis;
use crate::core::bootstrap::quantile;
use crate::core::table::{Table, Values};

/// One compared pair under one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Model name.
    pub model: &'static str,
    /// The first group (in name order).
    pub a: String,
    /// The second group.
    pub b: String,
    /// ROAS of the first group, with its interval: (low, point, high).
    pub roas_a: (f64, f64, f64),
    /// ROAS of the second group: (low, point, high).
    pub roas_b: (f64, f64, f64),
    /// Share of replicates in which a's ROAS is above b's (ties count half).
    pub prob_a_higher: f64,
    /// `above`, `below` or `overlaps`: how a's interval lies against b's.
    pub verdict: &'static str,
}

impl Comparison {
    /// The plain statement of the report, e.g. "social's ROAS interval (0.61–0.80) lies
    /// above search's (0.40–0.52)".
    pub fn statement(&self) -> String {
        let iv = |r: (f64, f64, f64)| format!("{:.2}–{:.2}", r.0, r.2);
        let (a, b) = (&self.a, &self.b);
        match self.verdict {
            "above" => {
                format!("{a}'s ROAS interval ({}) lies above {b}'s ({})", iv(self.roas_a), iv(self.roas_b))
            }
            "below" => {
                format!("{a}'s ROAS interval ({}) lies below {b}'s ({})", iv(self.roas_a), iv(self.roas_b))
            }
            _ => format!(
                "{a}'s ROAS interval ({}) overlaps {b}'s ({}): not a clear difference",
                iv(self.roas_a),
                iv(self.roas_b)
            ),
        }
    }
}

/// Every pair of groups with spend, under every model with replicates.
pub fn comparisons(g: &Analysis, spend: &BTreeMap<String, f64>) -> Vec<Comparison> {
    let Some(iv) = &g.intervals else { return Vec::new() };
    let q = (1.0 - iv.level) / 2.0;
    let keyed: Vec<(usize, f64)> = g
        .report_channels
        .iter()
        .enumerate()
        .filter_map(|(i, name)| spend.get(name).filter(|s| **s > 0.0).map(|s| (i, *s)))
        .collect();
    let mut out = Vec::new();
    for ((m, credits), (_, draws)) in g.credits.iter().zip(&iv.draws) {
        let point = g.folded(credits);
        let roas = |i: usize, s: f64| -> (Vec<f64>, (f64, f64, f64)) {
            let r: Vec<f64> = draws.iter().map(|d| d.value[i] / s).collect();
            let b = (quantile(&r, q), point.value[i] / s, quantile(&r, 1.0 - q));
            (r, b)
        };
        for (x, &(i, si)) in keyed.iter().enumerate() {
            for &(j, sj) in &keyed[x + 1..] {
                let ((ra, ba), (rb, bb)) = (roas(i, si), roas(j, sj));
                let wins: f64 = ra
                    .iter()
                    .zip(&rb)
                    .map(|(a, b)| {
                        if a > b {
                            1.0
                        } else if a == b {
                            0.5
                        } else {
                            0.0
                        }
                    })
                    .sum();
                let verdict = if ba.0 > bb.2 {
                    "above"
                } else if ba.2 < bb.0 {
                    "below"
                } else {
                    "overlaps"
                };
                out.push(Comparison {
                    model: m.name(),
                    a: g.report_channels[i].clone(),
                    b: g.report_channels[j].clone(),
                    roas_a: ba,
                    roas_b: bb,
                    prob_a_higher: wins / ra.len().max(1) as f64,
                    verdict,
                });
            }
        }
    }
    out
}

/// `group_comparison`: grain (model, group_a, group_b).
pub fn group_comparison(c: &[Comparison]) -> Table {
    let f = |g: fn(&Comparison) -> f64| Values::F64(c.iter().map(g).collect());
    Table::new(
        TableName::GroupComparison.as_str(),
        vec![
            ("model", Values::Str(c.iter().map(|x| x.model.to_owned()).collect())),
            ("group_a", Values::Str(c.iter().map(|x| x.a.clone()).collect())),
            ("group_b", Values::Str(c.iter().map(|x| x.b.clone()).collect())),
            ("roas_a", f(|x| x.roas_a.1)),
            ("roas_a_low", f(|x| x.roas_a.0)),
            ("roas_a_high", f(|x| x.roas_a.2)),
            ("roas_b", f(|x| x.roas_b.1)),
            ("roas_b_low", f(|x| x.roas_b.0)),
            ("roas_b_high", f(|x| x.roas_b.2)),
            ("prob_a_higher", f(|x| x.prob_a_higher)),
            ("verdict", Values::Str(c.iter().map(|x| x.verdict.to_owned()).collect())),
            ("statement", Values::Str(c.iter().map(Comparison::statement).collect())),
        ],
    )
}
