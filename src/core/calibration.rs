//! Calibration of credit to lift experiments (`docs/models.md` § Calibration).
//!
//! An experiment (a randomized holdout or geo test of a channel or a channel group) measures
//! how many conversions the channel caused, `I ± se`, among `N` conversions of the tested
//! population: its *lift* is `f = I / N`, the share of conversions that would not have
//! happened without it. Several experiments of one target are pooled by inverse variance.
//!
//! The calibrated credit of a target over the run is `f · C` (C: the run's conversions),
//! shared among the target's channels in proportion to the model's credit; the *incremental
//! factor* is calibrated over credited conversions. Assumptions: the experiment's population
//! and period behave like the run's (the lift is a share of conversions, so the periods need
//! not coincide), and within a group the model's split between channels is right. The
//! interval adds the experiment's variance to, for a group's channels, the model's own
//! (bootstrap) variance of the channel's credit, as independent normals.

use std::collections::BTreeMap;

/// What an experiment tested.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// One channel.
    Channel(String),
    /// A channel group (`[channel_groups]`).
    Group(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Channel(c) => write!(f, "channel:{c}"),
            Target::Group(g) => write!(f, "group:{g}"),
        }
    }
}

/// One experiment, as read from `input.experiments`.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// The channel or group tested.
    pub target: Target,
    /// Its measured incremental conversions.
    pub incremental: f64,
    /// Standard error of `incremental`.
    pub standard_error: f64,
    /// All conversions of the tested population over the test (the lift's denominator).
    pub conversions: f64,
}

/// The pooled lift of one target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lift {
    /// Incremental conversions per conversion.
    pub lift: f64,
    /// Its standard error.
    pub se: f64,
    /// Experiments pooled.
    pub experiments: u32,
}

/// Inverse-variance pooling of each target's experiments.
pub fn pooled(experiments: &[Experiment]) -> BTreeMap<Target, Lift> {
    let mut sums: BTreeMap<Target, (f64, f64, u32)> = BTreeMap::new();
    for e in experiments {
        let (f, se) = (e.incremental / e.conversions, e.standard_error / e.conversions);
        let w = 1.0 / (se * se);
        let s = sums.entry(e.target.clone()).or_insert((0.0, 0.0, 0));
        s.0 += w * f;
        s.1 += w;
        s.2 += 1;
    }
    sums.into_iter()
        .map(|(t, (wf, w, n))| (t, Lift { lift: wf / w, se: w.sqrt().recip(), experiments: n }))
        .collect()
}

/// One model's credit per channel, as `channel_attribution` has it.
#[derive(Debug, Clone, Default)]
pub struct ModelCredit {
    /// The channels (no `(unattributed)`).
    pub channels: Vec<String>,
    /// Credited conversions.
    pub conversions: Vec<f64>,
    /// Credited value.
    pub value: Vec<f64>,
    /// Bootstrap bounds of `conversions`, when intervals ran.
    pub bounds: Option<Vec<(f64, f64)>>,
    /// All conversions of the run (attributed or not) and their value.
    pub total: (f64, f64),
}

/// The calibrated credit of one (model, channel).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calibrated {
    /// The experiment target it was calibrated by, if any.
    pub target: Option<String>,
    /// The target's pooled lift.
    pub lift: Option<Lift>,
    /// Calibrated conversions over credited conversions, with its bounds.
    pub factor: Option<(f64, f64, f64)>,
    /// Calibrated conversions and bounds (the model's own when uncalibrated).
    pub conversions: (f64, Option<(f64, f64)>),
    /// Calibrated value and bounds.
    pub value: (f64, Option<(f64, f64)>),
}

/// Channel `i`'s part of group `g`'s experiment, and its variance: the group caused
/// `lift · C`; channels of the group with their own experiment keep theirs, and the rest is
/// shared by the model's credit among the group's other channels (equally when they have
/// none). The variance of the rest adds the group's and those channels' experiments'.
fn group_share(
    m: &ModelCredit,
    lifts: &BTreeMap<Target, Lift>,
    targets: &[Option<Target>],
    g: &str,
    i: usize,
    group_of: &dyn Fn(&str) -> String,
) -> (f64, f64) {
    let group = lifts[&Target::Group(g.to_owned())];
    let c = m.total.0;
    let (mut rest, mut var) = (group.lift * c, (group.se * c).powi(2));
    let mut members = Vec::new();
    for j in (0..m.channels.len()).filter(|&j| group_of(&m.channels[j]) == g) {
        match &targets[j] {
            Some(Target::Channel(_)) => {
                let own = lifts[&Target::Channel(m.channels[j].clone())];
                rest -= own.lift * c;
                var += (own.se * c).powi(2);
            }
            _ => members.push(j),
        }
    }
    let credited: f64 = members.iter().map(|&j| m.conversions[j]).sum();
    let share = if credited > 0.0 { m.conversions[i] / credited } else { 1.0 / members.len() as f64 };
    (rest * share, var * share * share)
}

/// The standard normal quantile (Newton's method on `erfc`, to machine precision).
pub fn normal_quantile(p: f64) -> f64 {
    let mut z = 0.0f64;
    for _ in 0..60 {
        let cdf = 0.5 * libm::erfc(-z / std::f64::consts::SQRT_2);
        let pdf = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let step = (cdf - p) / pdf;
        z -= step;
        if step.abs() < 1e-15 {
            break;
        }
    }
    z
}

/// Calibrate one model's credit: a channel with its own experiment gets `lift · C`; the other
/// channels of a group with an experiment share by credit what the group's `lift · C` leaves
/// after its channels with their own experiments; the others keep the model's credit and
/// interval. `level` is the interval's level.
pub fn calibrate(
    m: &ModelCredit,
    lifts: &BTreeMap<Target, Lift>,
    group_of: &dyn Fn(&str) -> String,
    level: f64,
) -> Vec<Calibrated> {
    let z = normal_quantile(0.5 + level / 2.0);
    let target_of = |c: &str| {
        let own = Target::Channel(c.to_owned());
        let group = Target::Group(group_of(c));
        [own, group].into_iter().find(|t| lifts.contains_key(t))
    };
    let targets: Vec<Option<Target>> = m.channels.iter().map(|c| target_of(c)).collect();
    let value_per = |i: usize| match m.conversions[i] > 0.0 {
        true => m.value[i] / m.conversions[i],
        false if m.total.0 > 0.0 => m.total.1 / m.total.0,
        false => 0.0,
    };
    (0..m.channels.len())
        .map(|i| {
            let a = m.conversions[i];
            let Some(t) = &targets[i] else {
                let b = m.bounds.as_ref().map(|b| b[i]);
                return Calibrated {
                    conversions: (a, b),
                    value: (m.value[i], b.map(|(l, h)| (l * value_per(i), h * value_per(i)))),
                    ..Default::default()
                };
            };
            let lift = lifts[t];
            let (cal, experiment_var) = match t {
                Target::Channel(_) => (lift.lift * m.total.0, (lift.se * m.total.0).powi(2)),
                Target::Group(g) => group_share(m, lifts, &targets, g, i, group_of),
            };
            // Within a group, the split follows the model's credit, with its own uncertainty.
            let split_var = match (t, &m.bounds, a > 0.0) {
                (Target::Group(_), Some(b), true) => (cal * (b[i].1 - b[i].0) / (2.0 * z) / a).powi(2),
                _ => 0.0,
            };
            let half = z * (experiment_var + split_var).sqrt();
            let bounds = (cal - half, cal + half);
            let v = value_per(i);
            Calibrated {
                target: Some(t.to_string()),
                lift: Some(lift),
                factor: (a > 0.0).then(|| (cal / a, bounds.0 / a, bounds.1 / a)),
                conversions: (cal, Some(bounds)),
                value: (cal * v, Some((bounds.0 * v, bounds.1 * v))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group's experiment over a channel with its own: the others share what is left.
    #[test]
    fn a_group_leaves_its_own_tested_channel_out_of_the_split() {
        let exps = [
            Experiment {
                target: Target::Group("social".into()),
                incremental: 25.0,
                standard_error: 5.0,
                conversions: 100.0,
            },
            Experiment {
                target: Target::Channel("fb".into()),
                incremental: 10.0,
                standard_error: 3.0,
                conversions: 100.0,
            },
        ];
        let m = ModelCredit {
            channels: vec!["fb".into(), "ig".into(), "tt".into(), "tv".into()],
            conversions: vec![30.0, 20.0, 10.0, 40.0],
            value: vec![0.0; 4],
            bounds: None,
            total: (100.0, 0.0),
        };
        let group = |c: &str| if c == "tv" { "tv".to_owned() } else { "social".to_owned() };
        let out = calibrate(&m, &pooled(&exps), &group, 0.9);
        // social caused 25, fb 10 of them: ig and tt share 15 as 20 : 10.
        assert!((out[0].conversions.0 - 10.0).abs() < 1e-12);
        assert!((out[1].conversions.0 - 10.0).abs() < 1e-12);
        assert!((out[2].conversions.0 - 5.0).abs() < 1e-12);
        let total: f64 = out[..3].iter().map(|c| c.conversions.0).sum();
        assert!((total - 25.0).abs() < 1e-12, "the group adds up to its experiment");
        // ig's variance: (5² + 3²) × (2/3)².
        let (lo, hi) = out[1].conversions.1.unwrap();
        let z = normal_quantile(0.95);
        assert!(((hi - lo) / 2.0 - z * (34.0f64).sqrt() * 2.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn quantiles_of_the_normal() {
        assert!((normal_quantile(0.95) - 1.6448536269514722).abs() < 1e-12);
        assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-12);
        assert!(normal_quantile(0.5).abs() < 1e-15);
    }

    /// A hand-computed example (docs/models.md § Calibration, the worked example).
    #[test]
    fn worked_example() {
        let exps = [
            Experiment {
                target: Target::Channel("facebook".into()),
                incremental: 120.0,
                standard_error: 40.0,
                conversions: 1000.0,
            },
            Experiment {
                target: Target::Channel("facebook".into()),
                incremental: 300.0,
                standard_error: 60.0,
                conversions: 2000.0,
            },
            Experiment {
                target: Target::Group("search".into()),
                incremental: 50.0,
                standard_error: 25.0,
                conversions: 500.0,
            },
        ];
        let lifts = pooled(&exps);
        // facebook: f = 0.12 (se 0.04) and 0.15 (se 0.03); weights 625 and 1111.1…
        let fb = lifts[&Target::Channel("facebook".into())];
        let (w1, w2) = (1.0 / 0.04f64.powi(2), 1.0 / 0.03f64.powi(2));
        assert!((fb.lift - (w1 * 0.12 + w2 * 0.15) / (w1 + w2)).abs() < 1e-15);
        assert!((fb.lift - 0.1392).abs() < 1e-12);
        assert!((fb.se - 0.024).abs() < 1e-12);
        let m = ModelCredit {
            channels: vec!["brand".into(), "facebook".into(), "generic".into(), "tv".into()],
            conversions: vec![300.0, 100.0, 100.0, 500.0],
            value: vec![15_000.0, 5_000.0, 5_000.0, 25_000.0],
            bounds: Some(vec![(270.0, 330.0), (80.0, 120.0), (90.0, 110.0), (450.0, 550.0)]),
            total: (1_000.0, 50_000.0),
        };
        let group = |c: &str| if c == "brand" || c == "generic" { "search".to_owned() } else { c.to_owned() };
        let out = calibrate(&m, &lifts, &group, 0.9);
        let z = normal_quantile(0.95);
        // facebook: 0.1392 × 1000 = 139.2 conversions, ± z · 24.
        assert!((out[1].conversions.0 - 139.2).abs() < 1e-9);
        let (lo, hi) = out[1].conversions.1.unwrap();
        assert!((hi - lo - 2.0 * z * 24.0).abs() < 1e-9);
        assert!((out[1].factor.unwrap().0 - 1.392).abs() < 1e-12);
        assert!((out[1].value.0 - 139.2 * 50.0).abs() < 1e-9);
        // search: lift 0.1 → 100 conversions, split 300 : 100 between brand and generic.
        assert!((out[0].conversions.0 - 75.0).abs() < 1e-12);
        assert!((out[2].conversions.0 - 25.0).abs() < 1e-12);
        // brand's interval: experiment se 0.05 × 1000 × 0.75 = 37.5; its own credit's
        // relative se (330 − 270) / (2z) / 300, applied to 75.
        let own = 75.0 * (60.0 / (2.0 * z) / 300.0);
        let (lo, hi) = out[0].conversions.1.unwrap();
        assert!(((hi - lo) / 2.0 - z * (37.5f64.powi(2) + own * own).sqrt()).abs() < 1e-9);
        // tv: no experiment, left as it is.
        assert_eq!(out[3].target, None);
        assert_eq!(out[3].conversions, (500.0, Some((450.0, 550.0))));
    }
}
