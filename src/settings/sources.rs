//! The whole customer relationship as input (`docs/sources.md`): touch sources beside the
//! event log, a conversions table, an identity map, CRM segments and an erasure list.

use serde::{Deserialize, Serialize};

/// One `[[sources]]` entry: touches from another system (a CRM export of call-centre calls,
/// shop visits), with its own files, id column and column names. Every row is a touch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The `source` value of its rows in the outputs (`call_centre`).
    pub name: String,
    /// A Parquet or CSV file (by extension), a directory of Parquet files, or a glob.
    pub path: String,
    /// Its id column (string or integer; one type across the source's files).
    #[serde(default = "user_id")]
    pub user: String,
    /// Its time column (timestamp, date or ISO-8601 string; naive times are UTC).
    #[serde(default = "ts")]
    pub time: String,
    /// Its channel column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_column: Option<String>,
    /// One channel for every row of the source (`phone`), instead of a column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Optional campaign column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
}

fn user_id() -> String {
    "user_id".into()
}
fn ts() -> String {
    "ts".into()
}

/// The `[conversions]` section: conversions kept apart from the touches (orders from the
/// shop system). Every row is a conversion; duplicate ids count once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConversionsTable {
    /// A Parquet or CSV file, a directory of Parquet files, or a glob (none: off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The `source` value of its rows.
    pub name: String,
    /// Its id column of the person (or an alias the identity map knows).
    pub user: String,
    /// Its time column.
    pub time: String,
    /// The conversion id column (an order number): rows repeating an id are dropped.
    pub id: String,
    /// Optional conversion type column (`purchase`, `lead`): per-type lookbacks and a
    /// column of `journey_credit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Optional value column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Default for ConversionsTable {
    fn default() -> Self {
        ConversionsTable {
            path: None,
            name: "conversions".into(),
            user: "user_id".into(),
            time: "ts".into(),
            id: "conversion_id".into(),
            r#type: None,
            value: Some("value".into()),
        }
    }
}

/// The `[identity]` section: alias id → person id, so one person's cookie, app id, CRM id
/// and loyalty card are one journey. Applied before journeys are built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityMap {
    /// A Parquet or CSV file (none: every id is its own person).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The alias column (compared with the sources' ids as text).
    pub alias: String,
    /// The person column.
    pub person: String,
    /// Optional first instant of the mapping (inclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// Optional end of the mapping (exclusive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

impl ConversionsTable {
    /// No conversions table.
    pub fn is_off(&self) -> bool {
        *self == ConversionsTable::default()
    }
}

impl IdentityMap {
    /// No identity map.
    pub fn is_off(&self) -> bool {
        *self == IdentityMap::default()
    }
}

impl Default for IdentityMap {
    fn default() -> Self {
        IdentityMap {
            path: None,
            alias: "alias_id".into(),
            person: "person_id".into(),
            valid_from: None,
            valid_to: None,
        }
    }
}

/// The `[segments]` section: credit and roles split by customer segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Segments {
    /// A CRM customers table (Parquet or CSV) giving each person a segment; without it the
    /// segment is the event log's `columns.segment`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customers: Option<String>,
    /// The customers table's person column.
    pub person: String,
    /// The customers table's segment column.
    pub segment: String,
    /// Also split by the built-in customer status: `new` until the person's first
    /// conversion seen in the data read, `returning` after it.
    pub customer_status: bool,
    /// Markov and Shapley are fitted per segment only with at least this many conversions;
    /// smaller segments take the pooled fit (named in the `fit` column).
    pub min_conversions: f64,
}

impl Default for Segments {
    fn default() -> Self {
        Segments {
            customers: None,
            person: "person_id".into(),
            segment: "segment".into(),
            customer_status: false,
            min_conversions: 30.0,
        }
    }
}

impl Segments {
    /// The defaults (nothing to write in a manifest).
    pub fn is_default(&self) -> bool {
        *self == Segments::default()
    }

    /// Whether any segmentation is configured (with the event log's segment column).
    pub fn any(&self, segment_column: bool) -> bool {
        self.customer_status || segment_column || self.customers.is_some()
    }
}
