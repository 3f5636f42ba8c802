//! Resolved settings of one run: column mapping, journey rules, models and outputs.
//!
//! The CLI flags (and, later, pipeline files) resolve into one [`Settings`] value; the rest of
//! the library only ever sees this type, so every rule has exactly one source of truth and the
//! manifest can record exactly what was run.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the event columns are named and interpreted (SPEC §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
    /// Optional touch-type column (e.g. `click` / `impression`) for per-type lookbacks.
    #[serde(default)]
    pub touch_type: Option<String>,
    /// Optional campaign column: a second attribution dimension.
    #[serde(default)]
    pub campaign: Option<String>,
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
            touch_type: None,
            campaign: None,
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
#[serde(deny_unknown_fields, default)]
pub struct JourneyRules {
    /// Touches older than this before the conversion (or before a non-converting journey's
    /// last touch) are dropped. Inclusive: exactly `lookback_days` old is still in.
    pub lookback_days: f64,
    /// A conversion row carrying a channel is also the journey's last touch.
    pub conversion_is_touch: bool,
    /// Null user / null time / null channel on a touch: fail or drop.
    pub on_invalid_rows: InvalidRows,
    /// Lookback per touch type in days (touch types not listed use `lookback_days`), e.g.
    /// clicks 30, impressions 1 — the view-through windows of ad platforms.
    #[serde(default)]
    pub lookback_by_type: std::collections::BTreeMap<String, f64>,
    /// Path transforms, applied in order after the lookback (SPEC §2.6).
    #[serde(default)]
    pub transforms: Vec<Transform>,
}

impl Default for JourneyRules {
    fn default() -> Self {
        JourneyRules {
            lookback_days: 30.0,
            conversion_is_touch: true,
            on_invalid_rows: InvalidRows::Fail,
            lookback_by_type: Default::default(),
            transforms: Vec::new(),
        }
    }
}

/// Days to microseconds (the time unit of the whole pipeline).
pub fn days_to_micros(days: f64) -> i64 {
    (days * 86_400_000_000.0).round() as i64
}

impl JourneyRules {
    /// The lookback window in microseconds.
    pub fn lookback_micros(&self) -> i64 {
        days_to_micros(self.lookback_days)
    }

    /// The longest lookback of any touch type, µs (how far back a window run must read).
    pub fn max_lookback_micros(&self) -> i64 {
        self.lookback_by_type.values().map(|d| days_to_micros(*d)).fold(self.lookback_micros(), i64::max)
    }
}

/// A path transform (SPEC §2.6, after fractribution's `path_transforms.sql`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Transform {
    /// Collapse consecutive repeats of a channel (keeps the first touch of each run).
    Exposure,
    /// Keep the first occurrence of each channel.
    First,
    /// Identity.
    Unique,
    /// First occurrence of each channel, named `channel(n)` with its count n; credit is
    /// folded back to `channel` in `channel_attribution`.
    Frequency,
    /// Keep the last n touches.
    TrimLongPath(usize),
    /// Drop every touch of these channels unless the path consists only of them.
    RemoveIfNotAll(Vec<String>),
    /// Drop the trailing run of these channels unless the path consists only of them.
    RemoveIfLastAndNotAll(Vec<String>),
}

impl std::fmt::Display for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transform::Exposure => write!(f, "exposure"),
            Transform::First => write!(f, "first"),
            Transform::Unique => write!(f, "unique"),
            Transform::Frequency => write!(f, "frequency"),
            Transform::TrimLongPath(n) => write!(f, "trim_long_path({n})"),
            Transform::RemoveIfNotAll(c) => write!(f, "remove_if_not_all({})", c.join("|")),
            Transform::RemoveIfLastAndNotAll(c) => write!(f, "remove_if_last_and_not_all({})", c.join("|")),
        }
    }
}

impl From<Transform> for String {
    fn from(t: Transform) -> String {
        t.to_string()
    }
}

impl TryFrom<String> for Transform {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Transform::parse(&s)
    }
}

impl Transform {
    /// Parse `exposure`, `trim_long_path(5)`, `remove_if_not_all(direct|email)` (channel
    /// lists are separated by `|`).
    pub fn parse(s: &str) -> std::result::Result<Transform, String> {
        let s = s.trim();
        let (name, arg) = match s.find('(') {
            Some(i) if s.ends_with(')') => (&s[..i], Some(&s[i + 1..s.len() - 1])),
            Some(_) => return Err(format!("transform `{s}`: missing `)`")),
            None => (s, None),
        };
        let channels = |a: Option<&str>| -> std::result::Result<Vec<String>, String> {
            let list: Vec<String> =
                a.unwrap_or("").split('|').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect();
            if list.is_empty() {
                Err(format!("transform `{s}` needs channels, e.g. {name}(direct|email)"))
            } else {
                Ok(list)
            }
        };
        match (name.trim(), arg) {
            ("exposure", None) => Ok(Transform::Exposure),
            ("first", None) => Ok(Transform::First),
            ("unique", None) => Ok(Transform::Unique),
            ("frequency", None) => Ok(Transform::Frequency),
            ("trim_long_path", Some(a)) => match a.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Transform::TrimLongPath(n)),
                _ => Err(format!("transform `{s}`: n must be an integer ≥ 1")),
            },
            ("remove_if_not_all", a) => Ok(Transform::RemoveIfNotAll(channels(a)?)),
            ("remove_if_last_and_not_all", a) => Ok(Transform::RemoveIfLastAndNotAll(channels(a)?)),
            _ => Err(format!(
                "unknown transform `{s}` (known: exposure, first, unique, frequency, trim_long_path(n), \
                 remove_if_not_all(a|b), remove_if_last_and_not_all(a|b))"
            )),
        }
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
    /// Zhao's simplified Shapley value.
    Shapley,
}

impl Model {
    /// Every model, in the canonical output order.
    pub const ALL: [Model; 8] = [
        Model::FirstTouch,
        Model::LastTouch,
        Model::LastNonDirect,
        Model::Linear,
        Model::PositionBased,
        Model::TimeDecay,
        Model::Markov,
        Model::Shapley,
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
            Model::Shapley => "shapley",
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

/// Parameters of the individual models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelParams {
    /// Channels counted as direct by `last_non_direct`.
    pub direct_channels: Vec<String>,
    /// Weights of `position_based`.
    pub position_weights: crate::models::PositionWeights,
    /// Half-life of `time_decay`, in days.
    pub time_decay_half_life_days: f64,
    /// Markov order.
    pub markov_order: MarkovOrder,
    /// For order ≥ 2: removal effects of at most this many channel sequences (the most
    /// visited ones).
    pub markov_max_sequences: usize,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            direct_channels: vec!["direct".into(), "Direct".into(), "(direct)".into()],
            position_weights: Default::default(),
            time_decay_half_life_days: 7.0,
            markov_order: MarkovOrder::Fixed(1),
            markov_max_sequences: 100,
        }
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
    /// Model parameters.
    pub params: ModelParams,
    /// Output format.
    pub format: Format,
    /// Also write the per-journey credit table (`journey_credit`).
    pub journey_credit: bool,
    /// Reporting window of a scheduled run (None: all conversions).
    #[serde(default)]
    pub window: Option<Window>,
    /// Hive partition key of the input (`date` in `date=2024-01-05/`), used to skip the
    /// partitions a window does not need.
    #[serde(default)]
    pub partition_key: Option<String>,
    /// Optional spend per channel (a Parquet or CSV file with `channel` and `spend`
    /// columns, in the currency of the values): adds `spend`, `cpa` and `roas` to
    /// `channel_attribution`.
    #[serde(default)]
    pub spend: Option<String>,
}

/// The reporting window of a scheduled run: conversions on the `days` UTC days ending with
/// `run_date` (inclusive); touches are read as far back as the lookback needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// The run date, `YYYY-MM-DD`.
    pub run_date: String,
    /// Length of the window in days (≥ 1).
    pub days: u32,
}

impl Window {
    /// The run date as a date.
    pub fn date(&self) -> Result<chrono::NaiveDate> {
        chrono::NaiveDate::parse_from_str(&self.run_date, "%Y-%m-%d")
            .map_err(|_| Error::Config(format!("run date `{}` is not a date like 2024-01-31", self.run_date)))
    }

    /// First and last date of the window.
    pub fn dates(&self) -> Result<(chrono::NaiveDate, chrono::NaiveDate)> {
        let end = self.date()?;
        let start = end - chrono::Duration::days(self.days.max(1) as i64 - 1);
        Ok((start, end))
    }

    /// The window as µs `[start, end)`.
    pub fn range(&self) -> Result<(i64, i64)> {
        let (a, b) = self.dates()?;
        let us =
            |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros();
        Ok((us(a), us(b + chrono::Duration::days(1))))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            columns: Columns::default(),
            journeys: JourneyRules::default(),
            models: Model::ALL.to_vec(),
            params: ModelParams::default(),
            format: Format::Parquet,
            journey_credit: false,
            window: None,
            partition_key: None,
            spend: None,
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
        match self.params.markov_order {
            MarkovOrder::Fixed(k) | MarkovOrder::Auto { max: k } if k == 0 || k > 16 => {
                return Err(Error::Config(format!("markov_order must be between 1 and 16, got {k}")));
            }
            _ => {}
        }
        let h = self.params.time_decay_half_life_days;
        if !(h.is_finite() && h > 0.0) {
            return Err(Error::Config(format!("time_decay_half_life_days must be > 0, got {h}")));
        }
        for (t, d) in &self.journeys.lookback_by_type {
            if !(d.is_finite() && *d >= 0.0) {
                return Err(Error::Config(format!(
                    "lookback for touch type `{t}` must be ≥ 0 days, got {d}"
                )));
            }
        }
        if let Some(w) = &self.window {
            w.date()?;
            if w.days == 0 {
                return Err(Error::Config("window days must be at least 1".into()));
            }
        }
        if !self.journeys.lookback_by_type.is_empty() && self.columns.touch_type.is_none() {
            return Err(Error::Config("lookback_by_type needs a touch-type column (touch_type_col)".into()));
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
        names.extend(c.touch_type.iter());
        names.extend(c.campaign.iter());
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
