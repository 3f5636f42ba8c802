//! One settings schema for flags, environment and pipeline files.
//!
//! [`Settings`] is the shape of a pipeline file (`version = 1`, unknown keys rejected) and
//! the only form in which the rest of the library sees a run's settings. Every default is
//! defined once, in the `Default` impls of its section; the `attribute` flags, the
//! `TOUCHPOINT_<SECTION>__<KEY>` environment variables and `--set section.key=value` are
//! all overrides of the same dotted keys ([`resolve`]), so a flag, a variable and a file key
//! can never mean different things.

mod entry;
mod model;
mod resolve;
mod rules;
mod sources;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use entry::Entry;
pub use model::{MarkovOrder, MarkovReplicates, Model, Models, PositionWeights};
pub use resolve::{parse_set, parse_value, path_value, resolve, Layers, Resolved, SECTIONS};
pub use rules::{
    days_to_micros, ChannelRule, ChannelRules, Columns, Dedupe, InvalidRows, JourneyRules, Transform, TAGS,
};
pub use sources::{ConversionsTable, IdentityMap, Segments, Source};

use crate::error::{Error, Result};

/// Microseconds in a day: time is µs since the epoch everywhere after the engine.
pub const DAY_MICROS: i64 = 86_400_000_000;

/// Everything one run needs; the shape of a pipeline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Format version of a pipeline file; must be 1.
    #[serde(default = "version_1")]
    pub version: u32,
    /// Name of the job (for logs and the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What to read.
    #[serde(default)]
    pub input: Input,
    /// Column mapping of the event log.
    #[serde(default)]
    pub columns: Columns,
    /// Columns of an aggregated path table (`attribute --paths`).
    #[serde(default)]
    pub path_table: PathColumns,
    /// Journey rules.
    #[serde(default)]
    pub journeys: JourneyRules,
    /// Models and their parameters.
    #[serde(default)]
    pub models: Models,
    /// Reporting window.
    #[serde(default)]
    pub window: WindowSpec,
    /// Where and how to write.
    #[serde(default)]
    pub output: Output,
    /// Checks that fail a run instead of publishing obviously wrong numbers.
    #[serde(default)]
    pub guards: Guards,
    /// How credited conversions respond to spend over a scheduled run's history, and a
    /// budget shift between two groups (`docs/models.md` § Marginal return).
    #[serde(default)]
    pub spend_response: SpendResponse,
    /// Channel groups: group name → its channels (e.g. `social = ["facebook", "tiktok"]`).
    /// Adds `channel_group_attribution`; channels in no group are a group of their own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channel_groups: BTreeMap<String, Vec<String>>,
    /// Derive the channel from UTM-style columns by ordered rules (`docs/models.md`
    /// § Channel rules) instead of reading `columns.channel`.
    #[serde(default, skip_serializing_if = "ChannelRules::is_off")]
    pub channel_rules: ChannelRules,
    /// Touch sources beside the event log (`[[sources]]`, `docs/sources.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Conversions kept apart from the touches.
    #[serde(default, skip_serializing_if = "ConversionsTable::is_off")]
    pub conversions: ConversionsTable,
    /// Alias id → person id.
    #[serde(default, skip_serializing_if = "IdentityMap::is_off")]
    pub identity: IdentityMap,
    /// Credit and roles by customer segment.
    #[serde(default, skip_serializing_if = "Segments::is_default")]
    pub segments: Segments,
}

/// The `[guards]` section: a run that breaks one fails with 65 (`"kind": "guard"`) and
/// publishes nothing, leaving the previous outputs as they were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Guards {
    /// Fewer conversions than this (in the reporting window) fail the run.
    pub min_conversions: Option<f64>,
    /// A relative change of total conversions larger than this (0.5 = ±50%) against the
    /// previous publication fails the run: the previous run date's partition for windowed
    /// runs, the present content of the output directory otherwise.
    pub max_conversion_change: Option<f64>,
}

/// The `[spend_response]` section: with dated spend and a reporting window, the run reads
/// the headline credit of earlier run dates from its own published manifests and fits each
/// channel's response to spend (`spend_response`), and with `shift_from`/`shift_to` the
/// change a budget shift would bring (`budget_shift`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpendResponse {
    /// Run dates of history the fit uses, today included.
    pub days: u32,
    /// Fewer days with spend than this leave a channel without a fit (its row says so).
    pub min_days: u32,
    /// Move spend from this channel group …
    pub shift_from: Option<String>,
    /// … to this one (channels in no group are a group of their own).
    pub shift_to: Option<String>,
    /// The share of `shift_from`'s spend moved, strictly between 0 and 1.
    pub shift_share: f64,
}

impl Default for SpendResponse {
    fn default() -> Self {
        SpendResponse { days: 28, min_days: 14, shift_from: None, shift_to: None, shift_share: 0.1 }
    }
}

fn version_1() -> u32 {
    1
}

/// The `[input]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Input {
    /// Event log: a Parquet file, a directory (hive-partitioned dataset) or a glob.
    pub events: Option<String>,
    /// Instead of events: an aggregated path table (Parquet, or CSV by extension).
    pub paths: Option<PathBuf>,
    /// Hive partition key of the input (`date` in `date=2024-01-05/`): partitions outside
    /// the window and lookback are not read.
    pub partition_key: String,
    /// Optional spend (`channel`, `spend`, and optionally `date`, `campaign`, `currency`
    /// columns; Parquet or CSV): adds `spend`, `cpa` and `roas` to the credit tables.
    pub spend: Option<PathBuf>,
    /// Which dated spend a windowed run compares its conversions with.
    pub spend_period: SpendPeriod,
    /// Lift experiments to calibrate credit to (`docs/models.md` § Calibration): a CSV or
    /// Parquet file with `channel` or `group`, `incremental_conversions`, `standard_error`,
    /// `conversions`, optionally `start`, `end`, `name`. Adds `channel_calibration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiments: Option<PathBuf>,
    /// The `source` value of the event log's rows (`web`).
    pub source_name: String,
    /// Persons to forget (`docs/privacy.md`): a Parquet or CSV file whose
    /// `erasure_column` lists person ids; their rows are dropped before anything is computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasure_list: Option<String>,
    /// The erasure list's id column.
    pub erasure_column: String,
    /// What a row without consent (`columns.consent`) withdraws: the row, or every row of
    /// its person (after the identity map).
    pub consent_scope: ConsentScope,
}

/// What a row without consent withdraws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConsentScope {
    /// The row only.
    #[default]
    Row,
    /// Every row of its person.
    Person,
}

/// The spend period of a windowed run (without a window, all spend counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpendPeriod {
    /// Spend dated inside the reporting window.
    #[default]
    Window,
    /// Spend dated inside the lookback before the window's conversions: from the window's
    /// first day minus the longest lookback to its last day.
    Lookback,
}

impl Default for Input {
    fn default() -> Self {
        Input {
            events: None,
            paths: None,
            partition_key: "date".into(),
            spend: None,
            spend_period: SpendPeriod::Window,
            experiments: None,
            source_name: "events".into(),
            erasure_list: None,
            erasure_column: "person_id".into(),
            consent_scope: ConsentScope::Row,
        }
    }
}

/// Column names of an aggregated path table (ChannelAttribution's input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathColumns {
    /// Path strings such as `A > B > C`.
    pub path: String,
    /// Conversions per path.
    pub conversions: String,
    /// Non-converting journeys per path (an absent `nulls` column counts as 0).
    pub nulls: Option<String>,
    /// Total value per path (an absent `value` column counts as 0).
    pub value: Option<String>,
    /// Separator between channels in `path` (tokens are trimmed, empty ones dropped).
    pub separator: String,
}

impl Default for PathColumns {
    fn default() -> Self {
        PathColumns {
            path: "path".into(),
            conversions: "conversions".into(),
            nulls: Some("nulls".into()),
            value: Some("value".into()),
            separator: ">".into(),
        }
    }
}

/// The `[window]` section: conversions of the `days` UTC days ending on `run_date`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSpec {
    /// Days of conversions each run reports, ending on the run date (≥ 1).
    pub days: u32,
    /// The run date; `touchpoint run` defaults it to yesterday (UTC), `attribute` without
    /// it reports every conversion of the input.
    pub run_date: Option<RunDate>,
    /// IANA time zone of the day boundaries (windows, run dates, spend dates), so results
    /// reconcile with ad platforms reporting in the account's zone.
    pub timezone: String,
    /// Scheduled runs also restate the N run dates before the run date (late events), each
    /// its own atomic publication.
    pub restate_days: u32,
}

impl Default for WindowSpec {
    fn default() -> Self {
        WindowSpec { days: 1, run_date: None, timezone: "UTC".into(), restate_days: 0 }
    }
}

/// The `[output]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Output {
    /// Output directory (`attribute`), or root of the date partitions (`run`).
    pub root: Option<PathBuf>,
    /// Table format.
    pub format: Format,
    /// Also write `journey_credit` (one row per converting journey, model and channel).
    pub journey_credit: bool,
    /// How `journey_credit` names the person (`docs/privacy.md`): `omitted` (default),
    /// `pseudonymized` (a keyed hash, HMAC-SHA-256) or `raw` (the input's id, only when
    /// asked for explicitly).
    pub person_ids: PersonIds,
    /// The environment variable holding the pseudonymization key (never a file or a flag:
    /// the key must not land in shell history, pipeline files or the manifest).
    pub pseudonym_key_env: String,
    /// How long to wait for another run on the same output to finish (0: fail at once
    /// with 75, which schedulers retry).
    pub lock_timeout_seconds: u64,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            root: None,
            format: Format::Parquet,
            journey_credit: false,
            person_ids: PersonIds::Omitted,
            pseudonym_key_env: "TOUCHPOINT_PSEUDONYM_KEY".into(),
            lock_timeout_seconds: 0,
        }
    }
}

/// How an output that holds a person names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PersonIds {
    /// Left out: `user_id` is null and journeys are numbered.
    #[default]
    Omitted,
    /// HMAC-SHA-256 of the id under the key in `pseudonym_key_env` (hex, 32 characters).
    Pseudonymized,
    /// The input's id as it is: personal data in the output.
    Raw,
}

/// The candidate closest to a misspelt word (at most two edits away), for "did you mean".
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    candidates.iter().map(|c| (distance(word, c), *c)).filter(|(d, _)| *d <= 2).min().map(|(_, c)| c)
}

/// A calendar date written `YYYY-MM-DD`; a date that does not exist is a settings error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunDate(pub chrono::NaiveDate);

impl RunDate {
    /// Parse `YYYY-MM-DD`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map(RunDate)
            .map_err(|_| format!("`{s}` is not a date like 2024-01-31"))
    }
}

impl std::fmt::Display for RunDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl Serialize for RunDate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RunDate::parse(&s).map_err(serde::de::Error::custom)
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

/// The reporting window of a run: conversions on the `days` days (in `tz`) ending with
/// `run_date` (inclusive); touches are read as far back as the lookback needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The last day of the window.
    pub run_date: RunDate,
    /// Length of the window in days (≥ 1).
    pub days: u32,
    /// The time zone of its day boundaries.
    pub tz: chrono_tz::Tz,
}

impl Window {
    /// First and last date of the window.
    pub fn dates(&self) -> (chrono::NaiveDate, chrono::NaiveDate) {
        let end = self.run_date.0;
        (end - chrono::Duration::days(self.days.max(1) as i64 - 1), end)
    }

    /// The window as µs `[start, end)`: from the first day's midnight in the zone to the
    /// midnight after the last day.
    pub fn range(&self) -> (i64, i64) {
        let (a, b) = self.dates();
        (midnight(a, self.tz), midnight(b + chrono::Duration::days(1), self.tz))
    }
}

/// The first instant (µs since the epoch) of a date in a zone. A midnight skipped by a
/// daylight-saving jump starts the day at the first instant that exists.
pub fn midnight(d: chrono::NaiveDate, tz: chrono_tz::Tz) -> i64 {
    use chrono::TimeZone;
    let local = d.and_time(chrono::NaiveTime::MIN);
    let mut t = local;
    loop {
        if let Some(z) = tz.from_local_datetime(&t).earliest() {
            return z.timestamp_micros();
        }
        t += chrono::Duration::minutes(15);
        if t - local > chrono::Duration::hours(3) {
            return local.and_utc().timestamp_micros();
        }
    }
}

/// The date in a zone of a µs timestamp.
pub fn date_in(us: i64, tz: chrono_tz::Tz) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_micros(us).map(|d| d.with_timezone(&tz).date_naive()).unwrap_or_default()
}

/// Parse an IANA time zone name.
pub fn parse_tz(name: &str) -> Result<chrono_tz::Tz> {
    name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        Error::Config(format!(
            "window.timezone `{name}` is not an IANA time zone name (like UTC or Europe/Rome)"
        ))
    })
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            version: 1,
            name: None,
            input: Input::default(),
            columns: Columns::default(),
            path_table: PathColumns::default(),
            journeys: JourneyRules::default(),
            models: Models::default(),
            window: WindowSpec::default(),
            output: Output::default(),
            guards: Guards::default(),
            spend_response: SpendResponse::default(),
            channel_groups: BTreeMap::new(),
            channel_rules: ChannelRules::default(),
            sources: Vec::new(),
            conversions: ConversionsTable::default(),
            identity: IdentityMap::default(),
            segments: Segments::default(),
        }
    }
}

impl Settings {
    /// Whether a model is enabled.
    pub fn has(&self, m: Model) -> bool {
        self.models.run.contains(&m)
    }

    /// Whether the run has the campaign grain (a campaign column in the events or a source).
    pub fn campaigns(&self) -> bool {
        self.columns.campaign.is_some() || self.sources.iter().any(|s| s.campaign.is_some())
    }

    /// The reporting window, when a run date is set.
    pub fn window(&self) -> Option<Window> {
        self.window.run_date.map(|run_date| Window { run_date, days: self.window.days, tz: self.tz() })
    }

    /// The time zone of day boundaries (validated, so never a bad name here).
    pub fn tz(&self) -> chrono_tz::Tz {
        parse_tz(&self.window.timezone).unwrap_or(chrono_tz::UTC)
    }

    /// Whether the input is more than one event log read as it is: other sources, a
    /// conversions table, an identity map, a customers table or an erasure list. Then the
    /// engine stages every source into one event frame first (`docs/sources.md`).
    pub fn staged(&self) -> bool {
        !self.sources.is_empty()
            || self.conversions.path.is_some()
            || self.identity.path.is_some()
            || self.segments.customers.is_some()
            || self.input.erasure_list.is_some()
            || self.input.consent_scope == ConsentScope::Person
    }

    /// The parts of the settings that decide the numbers (not where files are read from or
    /// written to): partials of one merge must agree on them.
    pub fn computation(&self) -> serde_json::Value {
        serde_json::json!({
            "columns": self.columns,
            "journeys": self.journeys,
            "models": self.models,
            "window": self.window,
            "spend": self.input.spend,
            "sources": self.sources,
            "conversions": self.conversions,
            "identity": self.identity,
            "segments": self.segments,
        })
    }

    /// Check what no type can enforce; normalises the model list.
    pub fn validate(mut self) -> Result<Self> {
        if self.version != 1 {
            return Err(Error::Config(format!(
                "unsupported pipeline version {} (this touchpoint reads version 1)",
                self.version
            )));
        }
        self.validate_numbers()?;
        self.validate_spend_response()?;
        if !self.journeys.lookback_by_type.is_empty() && self.columns.touch_type.is_none() {
            return Err(Error::Config(
                "lookback_by_type needs a touch-type column (columns.touch_type)".into(),
            ));
        }
        if self.journeys.dedupe == Dedupe::EventId && self.columns.event_id.is_none() {
            return Err(Error::Config(
                "journeys.dedupe = \"event_id\" needs an event id column (columns.event_id)".into(),
            ));
        }
        if self.models.run.is_empty() {
            return Err(Error::Config("at least one model is required (models.run)".into()));
        }
        self.models.run.sort();
        self.models.run.dedup();
        // An empty string switches an optional column off (TOML has no null).
        let c = &mut self.columns;
        for o in [
            &mut c.value,
            &mut c.tie_breaker,
            &mut c.touch_type,
            &mut c.campaign,
            &mut c.event_id,
            &mut c.consent,
        ] {
            if o.as_deref() == Some("") {
                *o = None;
            }
        }
        for o in [&mut c.source, &mut c.segment, &mut c.conversion_id, &mut c.conversion_type] {
            if o.as_deref() == Some("") {
                *o = None;
            }
        }
        self.validate_columns()?;
        self.validate_groups()?;
        self.validate_sources()?;
        Ok(self)
    }

    fn validate_spend_response(&self) -> Result<()> {
        let r = &self.spend_response;
        if r.days < 3 || r.days > 3660 || r.min_days < 3 || r.min_days > r.days {
            return Err(Error::Config(format!(
                "spend_response.days must be between 3 and 3660 and min_days between 3 and days, got {} and {}",
                r.days, r.min_days
            )));
        }
        // All of a group's spend would leave the fitted range (a log-log line has no value at 0).
        if !(r.shift_share > 0.0 && r.shift_share < 1.0) {
            return Err(Error::Config(format!(
                "spend_response.shift_share must be in (0, 1), got {}",
                r.shift_share
            )));
        }
        match (&r.shift_from, &r.shift_to) {
            (Some(a), Some(b)) if a == b => {
                Err(Error::Config(format!("spend_response.shift_from and shift_to are both `{a}`")))
            }
            (Some(_), None) | (None, Some(_)) => {
                Err(Error::Config("spend_response.shift_from and shift_to go together".into()))
            }
            _ => Ok(()),
        }
    }

    fn validate_numbers(&self) -> Result<()> {
        let lb = self.journeys.lookback_days;
        if !(lb.is_finite() && lb >= 0.0) {
            return Err(Error::Config(format!(
                "journeys.lookback_days must be a finite number ≥ 0, got {lb}"
            )));
        }
        match self.models.markov_order {
            MarkovOrder::Fixed(k) | MarkovOrder::Auto { max: k } if k == 0 || k > 16 => {
                return Err(Error::Config(format!("models.markov_order must be between 1 and 16, got {k}")));
            }
            _ => {}
        }
        let h = self.models.time_decay_half_life_days;
        if !(h.is_finite() && h > 0.0) {
            return Err(Error::Config(format!("models.time_decay_half_life_days must be > 0, got {h}")));
        }
        let l = self.models.interval_level;
        if !(l > 0.0 && l < 1.0) {
            return Err(Error::Config(format!("models.interval_level must be between 0 and 1, got {l}")));
        }
        if let Some(t) = self.models.training_days {
            if (t as f64) < self.journeys.lookback_days.max(1.0) {
                return Err(Error::Config(format!(
                    "models.training_days ({t}) must be at least the lookback ({} days)",
                    self.journeys.lookback_days
                )));
            }
            if self.journeys.transforms.contains(&Transform::Frequency) {
                return Err(Error::Config(
                    "models.training_days cannot be combined with the frequency transform".into(),
                ));
            }
        }
        if self.models.bootstrap_replicates > 100_000 {
            return Err(Error::Config("models.bootstrap_replicates must be at most 100000".into()));
        }
        for (t, d) in &self.journeys.lookback_by_type {
            if !(d.is_finite() && *d >= 0.0) {
                return Err(Error::Config(format!(
                    "lookback for touch type `{t}` must be ≥ 0 days, got {d}"
                )));
            }
        }
        let g = &self.guards;
        if g.min_conversions.is_some_and(|x| !(x.is_finite() && x >= 0.0))
            || g.max_conversion_change.is_some_and(|x| !(x.is_finite() && x >= 0.0))
        {
            return Err(Error::Config("guards must be finite numbers ≥ 0".into()));
        }
        parse_tz(&self.window.timezone)?;
        for (t, d) in &self.journeys.lookback_by_conversion_type {
            if !(d.is_finite() && *d >= 0.0) {
                return Err(Error::Config(format!(
                    "lookback for conversion type `{t}` must be ≥ 0 days, got {d}"
                )));
            }
        }
        if self.window.days == 0 {
            return Err(Error::Config("window.days must be at least 1".into()));
        }
        Ok(())
    }

    fn validate_groups(&self) -> Result<()> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (group, channels) in &self.channel_groups {
            if group.trim().is_empty() || channels.is_empty() {
                return Err(Error::Config(format!("channel group `{group}` needs a name and channels")));
            }
            for c in channels {
                if let Some(other) = seen.insert(c, group) {
                    return Err(Error::Config(format!(
                        "channel `{c}` is in two channel groups (`{other}` and `{group}`); a channel belongs to one"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The group of a channel: its configured group, or the channel itself.
    pub fn group_of<'a>(&'a self, channel: &'a str) -> &'a str {
        self.channel_groups
            .iter()
            .find(|(_, cs)| cs.iter().any(|c| c == channel))
            .map_or(channel, |(g, _)| g.as_str())
    }

    fn validate_columns(&self) -> Result<()> {
        let c = &self.columns;
        let mut names = vec![&c.user, &c.time, &c.channel, &c.conversion];
        names.extend(c.value.iter());
        names.extend(c.tie_breaker.iter());
        names.extend(c.event_id.iter());
        names.extend(c.touch_type.iter());
        names.extend(c.campaign.iter());
        names.extend(c.consent.iter());
        names.extend(c.source.iter());
        names.extend(c.segment.iter());
        names.extend(c.conversion_id.iter());
        names.extend(c.conversion_type.iter());
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
        Ok(())
    }
}

impl Settings {
    /// What the staged input (`docs/sources.md`) needs and cannot combine with.
    fn validate_sources(&self) -> Result<()> {
        let conv_type = self.columns.conversion_type.is_some() || self.conversions.r#type.is_some();
        if !self.journeys.lookback_by_conversion_type.is_empty() && !conv_type {
            return Err(Error::Config(
                "journeys.lookback_by_conversion_type needs a conversion type (columns.conversion_type or conversions.type)".into(),
            ));
        }
        let mut names = vec![self.input.source_name.as_str()];
        if self.conversions.path.is_some() {
            names.push(&self.conversions.name);
        }
        for s in &self.sources {
            if s.channel.is_some() == s.channel_column.is_some() {
                return Err(Error::Config(format!(
                    "source `{}`: give exactly one of channel (one channel for every row) or channel_column",
                    s.name
                )));
            }
            names.push(&s.name);
        }
        for (i, n) in names.iter().enumerate() {
            if n.trim().is_empty() || names[..i].contains(n) {
                return Err(Error::Config(format!("source names must be non-empty and distinct (`{n}`)")));
            }
        }
        if self.input.consent_scope == ConsentScope::Person && self.columns.consent.is_none() {
            return Err(Error::Config(
                "input.consent_scope = \"person\" needs a consent column (columns.consent)".into(),
            ));
        }
        if self.segments.any(self.columns.segment.is_some())
            && self.journeys.transforms.contains(&Transform::Frequency)
        {
            return Err(Error::Config("segments cannot be combined with the frequency transform yet".into()));
        }
        if !self.staged() {
            return Ok(());
        }
        if self.segments.min_conversions < 0.0 || !self.segments.min_conversions.is_finite() {
            return Err(Error::Config("segments.min_conversions must be a number ≥ 0".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    /// Midnight in a zone, by hand: Rome is UTC+1 in winter and UTC+2 in summer; Santiago
    /// skips from 00:00 to 01:00 on 2024-09-08 (UTC-4 to UTC-3), so that day starts at 01:00.
    #[test]
    fn days_start_at_local_midnight_or_the_first_instant_that_exists() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let tz = |s: &str| parse_tz(s).unwrap();
        assert_eq!(midnight(d("2024-02-02"), tz("Europe/Rome")), utc("2024-02-01T23:00:00Z"));
        assert_eq!(midnight(d("2024-07-01"), tz("Europe/Rome")), utc("2024-06-30T22:00:00Z"));
        assert_eq!(midnight(d("2024-09-08"), tz("America/Santiago")), utc("2024-09-08T04:00:00Z"));
        assert_eq!(midnight(d("2024-02-02"), tz("UTC")), utc("2024-02-02T00:00:00Z"));
        assert_eq!(date_in(utc("2024-02-01T23:30:00Z"), tz("Europe/Rome")), d("2024-02-02"));
        assert!(parse_tz("Mars/Olympus").is_err());
        let w = Window { run_date: RunDate(d("2024-03-31")), days: 1, tz: tz("Europe/Rome") };
        let (a, b) = w.range();
        assert_eq!(b - a, 23 * 3_600_000_000, "the day clocks go forward has 23 hours");
    }
}
