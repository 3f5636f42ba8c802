//! Resolved settings of one run: column mapping, journey rules, models and outputs.
//!
//! The CLI flags (and, later, pipeline files) resolve into one [`Settings`] value; the rest of
//! the library only ever sees this type, so every rule has exactly one source of truth and the
//! manifest can record exactly what was run.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the event columns are named and interpreted (SPEC §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// User id column: string or integer.
    pub user: String,
    /// Event time column: timestamp of any unit (naive = UTC), date, or ISO-8601 string.
    pub time: String,
    /// Channel column: string or categorical.
    pub channel: String,
    /// Conversion marker column: a string compared to `conversion_value`, or boolean / 0-1.
    pub conversion: String,
    /// For a string marker column, the value that marks a conversion.
    pub conversion_value: String,
    /// Optional conversion value (revenue) column; absent means every conversion is worth 0.
    pub value: Option<String>,
    /// Optional tie-breaker column (e.g. an event sequence number) for events at equal time.
    pub tie_breaker: Option<String>,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            user: "user_id".into(),
            time: "ts".into(),
            channel: "channel".into(),
            conversion: "event".into(),
            conversion_value: "conversion".into(),
            value: Some("revenue".into()),
            tie_breaker: None,
        }
    }
}

/// What to do with rows whose user or time is null (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InvalidRows {
    /// Fail the run (the default: never silently drop data).
    #[default]
    Fail,
    /// Drop them and count them, by reason, in the data-quality table.
    Drop,
}

/// Rules that cut an event stream into journeys (SPEC §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JourneyRules {
    /// Touches older than this before the conversion (or before a non-converting journey's
    /// last touch) are dropped. Inclusive: exactly `lookback_days` old is still in.
    pub lookback_days: f64,
    /// A conversion row carrying a channel is also the journey's last touch.
    pub conversion_is_touch: bool,
    /// Null user / null time / null channel on a touch: fail or drop.
    pub on_invalid_rows: InvalidRows,
}

impl Default for JourneyRules {
    fn default() -> Self {
        JourneyRules { lookback_days: 30.0, conversion_is_touch: true, on_invalid_rows: InvalidRows::Fail }
    }
}

impl JourneyRules {
    /// The lookback window in microseconds (the time unit of the whole pipeline).
    pub fn lookback_micros(&self) -> i64 {
        (self.lookback_days * 86_400_000_000.0).round() as i64
    }
}

/// An attribution model (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// All credit to the first touch.
    FirstTouch,
    /// All credit to the last touch.
    LastTouch,
    /// 1/L to every touch.
    Linear,
    /// Exact removal-effect Markov attribution.
    Markov,
}

impl Model {
    /// Every model, in the canonical output order.
    pub const ALL: [Model; 4] = [Model::FirstTouch, Model::LastTouch, Model::Linear, Model::Markov];

    /// The snake_case name used in flags and in the `model` column.
    pub fn name(self) -> &'static str {
        match self {
            Model::FirstTouch => "first_touch",
            Model::LastTouch => "last_touch",
            Model::Linear => "linear",
            Model::Markov => "markov",
        }
    }

    /// Parse a model name as written in flags and pipeline files.
    pub fn parse(s: &str) -> Result<Model> {
        Model::ALL.into_iter().find(|m| m.name() == s.trim()).ok_or_else(|| {
            Error::Config(format!(
                "unknown model `{}` (known: {})",
                s.trim(),
                Model::ALL.map(Model::name).join(", ")
            ))
        })
    }
}

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Apache Parquet (zstd), the default.
    #[default]
    Parquet,
    /// RFC 4180 CSV with a header row.
    Csv,
}

impl Format {
    /// File extension of this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
        }
    }
}

/// Everything one attribution run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Column mapping.
    pub columns: Columns,
    /// Journey rules.
    pub journeys: JourneyRules,
    /// Models to run, deduplicated, in canonical order.
    pub models: Vec<Model>,
    /// Markov chain order k ≥ 1.
    pub markov_order: usize,
    /// Output format.
    pub format: Format,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            columns: Columns::default(),
            journeys: JourneyRules::default(),
            models: Model::ALL.to_vec(),
            markov_order: 1,
            format: Format::Parquet,
        }
    }
}

impl Settings {
    /// Check the settings that no type can enforce; normalises the model list.
    pub fn validate(mut self) -> Result<Self> {
        if !(self.journeys.lookback_days.is_finite() && self.journeys.lookback_days >= 0.0) {
            return Err(Error::Config(format!(
                "lookback_days must be a finite number ≥ 0, got {}",
                self.journeys.lookback_days
            )));
        }
        if self.markov_order == 0 || self.markov_order > 16 {
            return Err(Error::Config(format!(
                "markov_order must be between 1 and 16, got {}",
                self.markov_order
            )));
        }
        if self.models.is_empty() {
            return Err(Error::Config("at least one model is required".into()));
        }
        self.models.sort();
        self.models.dedup();
        let c = &self.columns;
        let mut names = vec![&c.user, &c.time, &c.channel, &c.conversion];
        names.extend(c.value.iter());
        names.extend(c.tie_breaker.iter());
        for (i, a) in names.iter().enumerate() {
            if a.is_empty() {
                return Err(Error::Config("column names must not be empty".into()));
            }
            if names[..i].contains(a) {
                return Err(Error::Config(format!(
                    "column `{a}` is mapped to two roles; each role needs its own column"
                )));
            }
        }
        Ok(self)
    }

    /// Whether a model is enabled.
    pub fn has(&self, m: Model) -> bool {
        self.models.contains(&m)
    }
}
