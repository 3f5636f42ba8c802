//! Which models run and their parameters (`[models]`). Definitions: `docs/models.md`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An attribution model (`docs/models.md` § Models).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum Model {
    /// All credit to the first touch.
    FirstTouch,
    /// All credit to the last touch.
    LastTouch,
    /// All credit to the last touch that is not direct.
    LastNonDirect,
    /// 1/L to every touch.
    Linear,
    /// U-shaped (first, middle, last) weights.
    PositionBased,
    /// Exponential decay with the time before the conversion.
    TimeDecay,
    /// Exact removal-effect Markov attribution.
    Markov,
    /// Each converting journey split among its channels by their Markov removal effects.
    MarkovJourney,
    /// Zhao's simplified Shapley value: each conversion split equally among the distinct
    /// channels of its path.
    Shapley,
    /// The Shapley value of channel sets' conversion rates, scaled to the totals.
    ShapleyRate,
}

impl Model {
    /// Every model, in the canonical output order.
    pub const ALL: [Model; 10] = [
        Model::FirstTouch,
        Model::LastTouch,
        Model::LastNonDirect,
        Model::Linear,
        Model::PositionBased,
        Model::TimeDecay,
        Model::Markov,
        Model::MarkovJourney,
        Model::Shapley,
        Model::ShapleyRate,
    ];

    /// The snake_case name used in flags and in the `model` column.
    pub fn name(self) -> &'static str {
        match self {
            Model::FirstTouch => "first_touch",
            Model::LastTouch => "last_touch",
            Model::LastNonDirect => "last_non_direct",
            Model::Linear => "linear",
            Model::PositionBased => "position_based",
            Model::TimeDecay => "time_decay",
            Model::Markov => "markov",
            Model::MarkovJourney => "markov_journey",
            Model::Shapley => "shapley",
            Model::ShapleyRate => "shapley_rate",
        }
    }

    /// Parse a model name as written in flags and pipeline files.
    pub fn parse(s: &str) -> Result<Model> {
        Model::ALL.into_iter().find(|m| m.name() == s.trim()).ok_or_else(|| {
            let names = Model::ALL.map(Model::name);
            let hint = super::did_you_mean(s.trim(), &names)
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            Error::Config(format!("unknown model `{}` ({hint}known: {})", s.trim(), names.join(", ")))
        })
    }
}

impl TryFrom<String> for Model {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Model::parse(&s).map_err(|e| match e {
            Error::Config(m) => m,
            other => other.to_string(),
        })
    }
}

/// How a bootstrap replicate's Markov removal effects are computed (`docs/models.md`
/// § Uncertainty, "Markov replicates of a large chain").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkovReplicates {
    /// `refit` up to the chain size whose removals come from one dense factorisation
    /// (600 states), `linear` above, where a refit costs a full Gauss–Seidel fit.
    #[default]
    Auto,
    /// Refit every replicate's chain and solve every removal again (exact).
    Refit,
    /// One correction step from the full fit's solutions (exact to first order in the
    /// reweighting, one pass over the edges per replicate).
    Linear,
}

/// The Markov order: fixed, or chosen from the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkovOrder {
    /// A fixed order k ≥ 1.
    Fixed(usize),
    /// Chosen by penalised out-of-sample AUC among 1..=max (ChannelAttribution's
    /// `choose_order` criterion).
    Auto {
        /// Highest order tried.
        max: usize,
    },
}

impl std::fmt::Display for MarkovOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MarkovOrder::Fixed(k) => write!(f, "{k}"),
            MarkovOrder::Auto { max } => write!(f, "auto(max={max})"),
        }
    }
}

impl MarkovOrder {
    /// Parse `3`, `auto` or `auto(max=5)`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if s == "auto" {
            return Ok(MarkovOrder::Auto { max: 4 });
        }
        if let Some(rest) = s.strip_prefix("auto(max=").and_then(|r| r.strip_suffix(')')) {
            return rest
                .trim()
                .parse()
                .map(|max| MarkovOrder::Auto { max })
                .map_err(|_| format!("bad markov order `{s}`"));
        }
        s.parse()
            .map(MarkovOrder::Fixed)
            .map_err(|_| format!("markov order `{s}`: expected an integer ≥ 1, `auto` or `auto(max=N)`"))
    }
}

impl Serialize for MarkovOrder {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            MarkovOrder::Fixed(k) => s.serialize_u64(*k as u64),
            MarkovOrder::Auto { .. } => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for MarkovOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(MarkovOrder::Fixed(n as usize)),
            Raw::S(s) => MarkovOrder::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// The `[models]` section: which models run and their parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Models {
    /// Models to run; normalised to canonical order without duplicates by validation.
    pub run: Vec<Model>,
    /// Markov order: an integer k ≥ 1, `"auto"` or `"auto(max=N)"`.
    pub markov_order: MarkovOrder,
    /// For order ≥ 2: removal effects of at most this many channel sequences (the most
    /// visited ones).
    pub markov_max_sequences: usize,
    /// Channels that `last_non_direct` skips.
    pub direct_channels: Vec<String>,
    /// Weights of `position_based`: `u_shaped`, `j_shaped`, `inverse_j` or `"f,m,l"`.
    pub position_weights: PositionWeights,
    /// Half-life of `time_decay`, in days.
    pub time_decay_half_life_days: f64,
    /// Bootstrap replicates behind the `_low`/`_high` interval columns (0: no intervals).
    pub bootstrap_replicates: usize,
    /// Central level of the intervals (0.9: the 5th to the 95th percentile).
    pub interval_level: f64,
    /// Seed of the bootstrap's user weights (same seed and input, same intervals).
    pub bootstrap_seed: u64,
    /// How replicates solve Markov's removals: `"auto"`, `"refit"` or `"linear"`.
    pub markov_replicates: MarkovReplicates,
    /// Fit Markov and `shapley_rate` on the journeys closed in this many days ending with
    /// the run date (scheduled runs; at least the lookback), instead of the window's alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_days: Option<u32>,
}

impl Default for Models {
    fn default() -> Self {
        Models {
            // shapley_rate is opt-in: on sparse channel sets its values swing widely (a set
            // seen in a handful of journeys has a rate of 0 or 1) and can be negative.
            run: Model::ALL.into_iter().filter(|m| *m != Model::ShapleyRate).collect(),
            markov_order: MarkovOrder::Fixed(1),
            markov_max_sequences: 100,
            direct_channels: vec!["direct".into(), "Direct".into(), "(direct)".into()],
            position_weights: PositionWeights::default(),
            time_decay_half_life_days: 7.0,
            bootstrap_replicates: 200,
            interval_level: 0.9,
            bootstrap_seed: 1,
            markov_replicates: MarkovReplicates::Auto,
            training_days: None,
        }
    }
}

/// Position weights (first, middle, last), summing to 1. Written as a preset name or
/// `"f,m,l"` in flags and files.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PositionWeights {
    /// Share of the first touch.
    pub first: f64,
    /// Share spread over the middle touches.
    pub middle: f64,
    /// Share of the last touch.
    pub last: f64,
}

const PRESETS: [(&str, PositionWeights); 3] = [
    ("u_shaped", PositionWeights { first: 0.4, middle: 0.2, last: 0.4 }),
    ("j_shaped", PositionWeights { first: 0.2, middle: 0.2, last: 0.6 }),
    ("inverse_j", PositionWeights { first: 0.6, middle: 0.2, last: 0.2 }),
];

impl Default for PositionWeights {
    fn default() -> Self {
        PRESETS[0].1
    }
}

impl std::fmt::Display for PositionWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match PRESETS.iter().find(|(_, w)| w == self) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "{},{},{}", self.first, self.middle, self.last),
        }
    }
}

impl From<PositionWeights> for String {
    fn from(w: PositionWeights) -> String {
        w.to_string()
    }
}

impl TryFrom<String> for PositionWeights {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        PositionWeights::parse(&s)
    }
}

impl PositionWeights {
    /// Parse `u_shaped`, `j_shaped`, `inverse_j` or `first,middle,last` (summing to 1).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if let Some((_, w)) = PRESETS.iter().find(|(n, _)| *n == s.trim()) {
            return Ok(*w);
        }
        let parts: Vec<f64> = s
            .split([',', '/'])
            .map(|p| p.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                format!(
                    "position weights `{s}`: expected u_shaped, j_shaped, inverse_j or three numbers \
                     like 0.3,0.4,0.3"
                )
            })?;
        let [first, middle, last] = parts[..] else {
            return Err(format!("position weights `{s}`: expected three numbers"));
        };
        let sum = first + middle + last;
        if [first, middle, last].iter().any(|x| !x.is_finite() || *x < 0.0) || (sum - 1.0).abs() > 1e-9 {
            return Err(format!("position weights must be ≥ 0 and sum to 1, got {sum}"));
        }
        Ok(PositionWeights { first, middle, last })
    }
}
