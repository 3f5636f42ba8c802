//! How events are read and cut into journeys: the column mapping and the journey rules.
//! Their meaning is defined in `docs/models.md` (§ Journeys).

use serde::{Deserialize, Serialize};

/// How the event columns are named and interpreted (`docs/models.md` § Input).
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
    /// Optional event id column (string or integer, compared as text), for
    /// `journeys.dedupe = "event_id"`.
    #[serde(default)]
    pub event_id: Option<String>,
    /// Optional consent column (boolean, or 0/1 integer): rows whose value is false or null
    /// are dropped before anything is computed and counted (`docs/privacy.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
    /// Optional source column (`web`, `app`): a dimension of `source_summary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Optional customer segment column: credit and roles split by the segment of each
    /// journey's last event (`docs/models.md` § Segments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Optional conversion id column, carried into `journey_credit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_id: Option<String>,
    /// Optional conversion type column (`purchase`, `lead`): per-type lookbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_type: Option<String>,
}

impl Columns {
    /// The optional per-row attribute columns read as tags (dense ids per row), in
    /// the order of [`TAGS`]: source, segment, conversion type, conversion id.
    pub fn tags(&self) -> [Option<&String>; 4] {
        [
            self.source.as_ref(),
            self.segment.as_ref(),
            self.conversion_type.as_ref(),
            self.conversion_id.as_ref(),
        ]
    }
}

/// The roles of [`Columns::tags`], for messages.
pub const TAGS: [&str; 4] = ["source", "segment", "conversion type", "conversion id"];

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
            event_id: None,
            consent: None,
            source: None,
            segment: None,
            conversion_id: None,
            conversion_type: None,
        }
    }
}

/// What to do with rows whose user or time is null (`docs/models.md` § Input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InvalidRows {
    /// Fail the run (the default: never silently drop data).
    #[default]
    Fail,
    /// Drop them and count them, by reason, in the data-quality table.
    Drop,
}

/// Rules that cut an event stream into journeys (`docs/models.md` § Journeys).
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
    /// Lookback per conversion type in days (`purchase = 30`, `lead = 90`): how far back a
    /// conversion of that type looks; a touch type's own lookback, where set, still wins.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub lookback_by_conversion_type: std::collections::BTreeMap<String, f64>,
    /// Exact duplicate events (equal in every mapped column): `none` counts them in
    /// `data_quality` and warns; `exact` also drops every copy but the first (in file and
    /// row order).
    #[serde(default)]
    pub dedupe: Dedupe,
    /// Path transforms, applied in order after the lookback (`docs/models.md` § Transforms).
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
            lookback_by_conversion_type: Default::default(),
            dedupe: Dedupe::None,
            transforms: Vec::new(),
        }
    }
}

/// What to do with exact duplicate events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Dedupe {
    /// Keep them (counted and warned about).
    #[default]
    None,
    /// Drop every copy but the first.
    Exact,
    /// Drop every event whose `columns.event_id` repeats one of the same person's, keeping
    /// the first copy in journey order; null ids are never duplicates.
    EventId,
}

/// Days to microseconds (the time unit of the whole pipeline).
pub fn days_to_micros(days: f64) -> i64 {
    (days * super::DAY_MICROS as f64).round() as i64
}

impl JourneyRules {
    /// The lookback window in microseconds.
    pub fn lookback_micros(&self) -> i64 {
        days_to_micros(self.lookback_days)
    }

    /// The longest lookback of any touch type, µs (how far back a window run must read).
    pub fn max_lookback_micros(&self) -> i64 {
        self.lookback_by_type
            .values()
            .chain(self.lookback_by_conversion_type.values())
            .map(|d| days_to_micros(*d))
            .fold(self.lookback_micros(), i64::max)
    }
}

/// A path transform (`docs/models.md` § Transforms, after fractribution's `path_transforms.sql`).
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

/// `[channel_rules]`: derive the channel from UTM-style columns instead of reading a channel
/// column (`docs/models.md` § Channel rules). Rules are tried in order, first match wins;
/// a rule matches when every pattern it gives matches its column (regular expressions,
/// case-insensitive, a null value matched as the empty string). Rows no rule matches get
/// the channel `unassigned` and are counted in `data_quality`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelRules {
    /// Column of the traffic source (`utm_source`).
    pub source: String,
    /// Column of the medium (`utm_medium`).
    pub medium: String,
    /// Column of the campaign (`utm_campaign`).
    pub campaign: String,
    /// A built-in rule set tried after `rules`: `"ga4"` (GA4's default channel groups).
    pub preset: Option<String>,
    /// The rules, in order.
    pub rules: Vec<ChannelRule>,
}

impl Default for ChannelRules {
    fn default() -> Self {
        ChannelRules {
            source: "utm_source".into(),
            medium: "utm_medium".into(),
            campaign: "utm_campaign".into(),
            preset: None,
            rules: Vec::new(),
        }
    }
}

impl ChannelRules {
    /// Whether the channel is derived by rules at all.
    pub fn enabled(&self) -> bool {
        self.preset.is_some() || !self.rules.is_empty()
    }

    /// Nothing configured (left out of `--show-settings` and the manifest).
    pub fn is_off(&self) -> bool {
        *self == ChannelRules::default()
    }
}

/// One rule: the channel it assigns and the patterns that must all match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    /// Channel name given to matching rows.
    pub channel: String,
    /// Pattern for the source column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Pattern for the medium column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    /// Pattern for the campaign column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
}
