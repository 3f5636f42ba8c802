//! The event log as plain columns with dense ids: what the engine reads and the journey
//! builder consumes. No Polars, no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Channel id meaning "no channel" (a conversion row without a channel).
pub const NO_CHANNEL: u32 = u32::MAX;

/// One input file and how many rows it held.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InputFile {
    /// Path of the file.
    pub path: PathBuf,
    /// Rows in the file (before any rejection).
    pub rows: u64,
}

/// The events of all input files, column by column, with dense ids.
#[derive(Debug, Default, Clone)]
pub struct EventLog {
    /// User id, dense. Numbered in the order of the values for integer ids, and of a stable
    /// 128-bit hash (XXH3) of the value for string ids: either way independent of row order.
    pub user: Vec<u32>,
    /// Event time, µs since the Unix epoch (UTC).
    pub ts: Vec<i64>,
    /// Channel id (index into `channels`) or [`NO_CHANNEL`].
    pub channel: Vec<u32>,
    /// Whether the row is a conversion.
    pub is_conversion: Vec<bool>,
    /// Conversion value (0 for touches and conversions without a value).
    pub value: Vec<f64>,
    /// Optional tie-breaker, mapped to an order-preserving i64.
    pub tie: Option<Vec<i64>>,
    /// Channel names, sorted; a channel id is an index into this list.
    pub channels: Vec<String>,
    /// Touch type id per row (index into `touch_types`), [`NO_CHANNEL`] for null; present
    /// when a touch-type column is configured.
    pub touch_type: Option<Vec<u32>>,
    /// Touch type names, sorted.
    pub touch_types: Vec<String>,
    /// Campaign id per row (index into `campaigns`); present when a campaign column is
    /// configured. A null campaign is the campaign `(none)`.
    pub campaign: Option<Vec<u32>>,
    /// Campaign names, sorted.
    pub campaigns: Vec<String>,
    /// The user values, indexed by dense user id (for per-journey output); empty when the
    /// read scope skipped them.
    pub user_names: UserNames,
    /// Number of distinct users.
    pub n_users: usize,
    /// A key of each user (index = dense id) that does not depend on which other users were
    /// read: the integer id, or the low half of the string id's XXH3-128. The bootstrap
    /// weights persons by it, so a shard weights its persons as the whole run does.
    pub user_key: Vec<u64>,
    /// The high half of each string id's XXH3-128 (empty for integer ids): with
    /// `user_key`, the key dense ids are numbered by ([`EventLog::order_key`]).
    pub user_key_high: Vec<u64>,
    /// The files read, in the order read (sorted by path).
    pub files: Vec<InputFile>,
    /// Rows read from all files.
    pub rows_read: u64,
    /// XXH3-128 of each row's event id (0: none), when an event id column is mapped.
    pub event_key: Option<Vec<u128>>,
    /// Rows dropped (only with `on_invalid_rows = drop`), by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Rows of other shards skipped by a `--shard` run.
    pub other_shards: u64,
    /// Rows whose channel no `[channel_rules]` rule matched (given the channel `unassigned`).
    pub unmatched_channel_rule: u64,
    /// Rows dropped for want of consent (`columns.consent`).
    pub rows_without_consent: u64,
    /// What the reader noticed that is worth a warning in the summary and the manifest.
    pub warnings: Vec<String>,
    /// The source of each row (`columns.source`, or the staged sources).
    pub source: Option<Tags>,
    /// The customer segment of each row (`columns.segment`, or the customers table).
    pub segment: Option<Tags>,
    /// The conversion type of each row (null on touches).
    pub conversion_type: Option<Tags>,
    /// The conversion id of each row (null on touches).
    pub conversion_id: Option<Tags>,
    /// What staging the sources counted (`docs/sources.md`), when the input was staged.
    pub staged: Option<StagedSummary>,
}

/// A string attribute of each row as dense ids into sorted names; [`NO_CHANNEL`] is null.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tags {
    /// Id per row.
    pub ids: Vec<u32>,
    /// Names, sorted.
    pub names: Vec<String>,
}

impl Tags {
    /// The name of row `r`'s value, if not null.
    pub fn name_of(&self, r: usize) -> Option<&str> {
        self.ids.get(r).and_then(|&i| self.names.get(i as usize)).map(String::as_str)
    }
}

/// Rows read, rejected and kept of one source.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceCounts {
    /// The source name.
    pub source: String,
    /// Rows read (after the erasure list, which is as if they never were).
    pub rows_read: u64,
    /// Rows rejected as invalid (`on_invalid_rows = "drop"`).
    pub rows_rejected: u64,
    /// Rows dropped for want of consent.
    pub rows_without_consent: u64,
    /// Conversion rows dropped as repeats of an earlier conversion id.
    pub duplicate_conversions: u64,
    /// Rows kept as events.
    pub rows_kept: u64,
}

/// What staging the input counted: per source, the identity map and the erasure list.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StagedSummary {
    /// Per source, in the order of the settings (event log, `[[sources]]`, conversions).
    pub sources: Vec<SourceCounts>,
    /// Distinct ids of kept rows that the identity map mapped to one person.
    pub aliases_mapped: u64,
    /// Distinct ids of kept rows the map does not know (each its own person).
    pub aliases_unmapped: u64,
    /// Distinct ids with rows the map gives two or more persons at once (kept unmapped).
    pub aliases_conflicting: u64,
    /// Entries of the identity map.
    pub identity_entries: u64,
    /// Persons of the customers table, and kept persons it does not list.
    pub customers: u64,
    /// Kept persons without a row in the customers table (segment `(none)`).
    pub persons_without_customer_row: u64,
    /// Rows dropped by the erasure list (manifest only: the tables must not show it).
    pub rows_erased: u64,
}

impl StagedSummary {
    /// Add another shard's counts (same settings, so the same sources in the same order);
    /// the identity map's entries and the customers table are the same in every shard.
    pub fn add(&mut self, o: &StagedSummary) {
        if self.sources.is_empty() {
            self.sources = o
                .sources
                .iter()
                .map(|c| SourceCounts { source: c.source.clone(), ..Default::default() })
                .collect();
        }
        for (a, b) in self.sources.iter_mut().zip(&o.sources) {
            a.rows_read += b.rows_read;
            a.rows_rejected += b.rows_rejected;
            a.rows_without_consent += b.rows_without_consent;
            a.duplicate_conversions += b.duplicate_conversions;
            a.rows_kept += b.rows_kept;
        }
        self.aliases_mapped += o.aliases_mapped;
        self.aliases_unmapped += o.aliases_unmapped;
        self.aliases_conflicting += o.aliases_conflicting;
        self.identity_entries = o.identity_entries;
        self.customers = o.customers;
        self.persons_without_customer_row += o.persons_without_customer_row;
        self.rows_erased += o.rows_erased;
    }
}

/// The original user id values, in sorted order (index = dense user id).
#[derive(Debug, Clone, PartialEq)]
pub enum UserNames {
    /// String user ids.
    Str(Vec<String>),
    /// Integer user ids.
    Int(Vec<i64>),
}

impl Default for UserNames {
    fn default() -> Self {
        UserNames::Int(Vec::new())
    }
}

impl UserNames {
    /// Every name replaced by `f(name)` (pseudonyms), as strings.
    pub fn mapped(&self, f: impl Fn(&str) -> String + Sync) -> UserNames {
        use rayon::prelude::*;
        match self {
            UserNames::Str(v) => UserNames::Str(v.par_iter().map(|s| f(s)).collect()),
            UserNames::Int(v) => UserNames::Str(v.par_iter().map(|x| f(&x.to_string())).collect()),
        }
    }

    /// The user value of a dense id, as text.
    pub fn name(&self, id: u32) -> String {
        match self {
            UserNames::Str(v) => v.get(id as usize).cloned().unwrap_or_default(),
            UserNames::Int(v) => v.get(id as usize).map(|x| x.to_string()).unwrap_or_default(),
        }
    }
}

/// The campaign name given to touches whose campaign is null.
pub const NO_CAMPAIGN: &str = "(none)";

impl EventLog {
    /// The key dense user `u` was numbered by, the same in every shard: the merge of
    /// per-journey tables sorts shards' journeys by it into one run's order.
    pub fn order_key(&self, u: u32) -> u128 {
        let u = u as usize;
        match (&self.user_names, self.user_key_high.get(u)) {
            (_, Some(&high)) => ((high as u128) << 64) | self.user_key[u] as u128,
            (UserNames::Int(ids), None) => {
                ids.get(u).map_or(u as u128, |&k| ((k as u64) ^ (1 << 63)) as u128)
            }
            (UserNames::Str(_), None) => u as u128,
        }
    }

    /// Reserve room for `n` more events in the always-present columns.
    pub fn reserve(&mut self, n: usize) {
        self.ts.reserve(n);
        self.channel.reserve(n);
        self.is_conversion.reserve(n);
        self.value.reserve(n);
    }

    /// Rows `x` and `y` in journey order: time, touches before conversions, the
    /// tie-breaker, channel, value (`docs/models.md` § Journeys), then every tag and the
    /// event id, so rows that compare equal are equal in every column read. Names are
    /// sorted, so comparing ids compares names.
    pub fn journey_cmp(&self, x: usize, y: usize) -> std::cmp::Ordering {
        let ids = |t: Option<&Vec<u32>>| t.map(|t| (t[x], t[y]));
        let tags = [&self.source, &self.segment, &self.conversion_type, &self.conversion_id];
        let by_tag = tags.into_iter().map(|t| ids(t.as_ref().map(|t| &t.ids)));
        let by_id = [ids(self.touch_type.as_ref()), ids(self.campaign.as_ref())].into_iter().chain(by_tag);
        (self.ts[x], self.is_conversion[x])
            .cmp(&(self.ts[y], self.is_conversion[y]))
            .then_with(|| self.tie.as_ref().map_or(std::cmp::Ordering::Equal, |t| t[x].cmp(&t[y])))
            .then(self.channel[x].cmp(&self.channel[y]))
            .then(self.value[x].total_cmp(&self.value[y]))
            .then_with(|| {
                by_id
                    .flatten()
                    .map(|(a, b)| a.cmp(&b))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            // Two events of different ids are two events, whatever else they share.
            .then_with(|| self.event_key.as_ref().map_or(std::cmp::Ordering::Equal, |k| k[x].cmp(&k[y])))
    }

    /// Number of events kept.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether no event was kept.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
}

/// Rows that repeat the event id of an earlier row of the same person, sorted; rows without
/// an id (key 0) are never duplicates. "Earlier" is journey order ([`EventLog::journey_cmp`]):
/// the copy kept is the first of the person's journey, decided by its fields, so it does not
/// depend on the row order of the input, and a shard or a Spark partition of whole persons
/// keeps the copy one run over everything keeps. An id repeated for another person names
/// another event (ids of different systems can collide) and is kept.
pub fn event_id_duplicates(log: &EventLog, keys: &[u128]) -> Vec<u32> {
    use rayon::prelude::*;
    // 16 bytes a row: the id's hash cut to 64 bits (a collision needs two ids of one person
    // among ~2^32 of theirs), not the 32 a 128-bit key aligns to.
    let mut rows: Vec<(u32, u64, u32)> = keys
        .iter()
        .enumerate()
        .filter(|(_, &k)| k != 0)
        .map(|(i, &k)| (log.user[i], k as u64, i as u32))
        .collect();
    rows.par_sort_unstable_by(|a, b| {
        (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| log.journey_cmp(a.2 as usize, b.2 as usize))
    });
    let same = |w: &[(u32, u64, u32)]| (w[0].0, w[0].1) == (w[1].0, w[1].1);
    let mut dups: Vec<u32> = rows.windows(2).filter(|w| same(w)).map(|w| w[1].2).collect();
    dups.par_sort_unstable();
    dups
}

/// The channel name under which conversions without any touch are reported.
pub const UNATTRIBUTED: &str = "(unattributed)";

/// Names touchpoint gives meaning to in its outputs. A channel (or campaign) of the input
/// with one of these names, or containing [`PATH_SEPARATOR`] or [`UNIT_SEPARATOR`], would
/// break the one-row-per-key grain of a table, so it is rejected (`docs/models.md` § Input).
pub const RESERVED_NAMES: [&str; 4] = [UNATTRIBUTED, "(start)", "(null)", "(conversion)"];

/// How channels are joined in a `path` string of `path_summary`.
pub const PATH_SEPARATOR: &str = " > ";

/// How channels are joined in a partial's path column (ASCII unit separator).
pub const UNIT_SEPARATOR: char = '\u{1f}';

/// Why a name cannot be a channel, if it cannot.
pub fn reserved_name_problem(name: &str) -> Option<String> {
    if RESERVED_NAMES.contains(&name) {
        Some(format!("`{name}` is a name touchpoint reserves for its own rows; rename it in the input"))
    } else if name.contains(PATH_SEPARATOR) {
        Some(format!("`{name}` contains the path separator `{PATH_SEPARATOR}`; rename it in the input"))
    } else if name.contains(UNIT_SEPARATOR) {
        Some(format!(
            "`{}` contains the control character U+001F; rename it in the input",
            name.escape_debug()
        ))
    } else {
        None
    }
}

/// Why a row was rejected (with `on_invalid_rows = "drop"` it is counted by reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The user id is null.
    NullUser,
    /// The time is null.
    NullTime,
    /// The conversion marker is null.
    NullMarker,
    /// A touch (not a conversion) without a channel.
    NullChannel,
    /// The tie-breaker is null.
    NullTieBreaker,
}

impl RejectReason {
    /// Every reason, in the fixed order of the `data_quality` rows.
    pub const ALL: [RejectReason; 5] = [
        RejectReason::NullUser,
        RejectReason::NullTime,
        RejectReason::NullMarker,
        RejectReason::NullChannel,
        RejectReason::NullTieBreaker,
    ];

    /// The reason in words, for messages.
    pub fn text(self) -> &'static str {
        match self {
            RejectReason::NullUser => "null user id",
            RejectReason::NullTime => "null time",
            RejectReason::NullMarker => "null conversion marker",
            RejectReason::NullChannel => "null channel on a touch",
            RejectReason::NullTieBreaker => "null tie-breaker",
        }
    }

    /// The `data_quality` metric counting it.
    pub fn metric(self) -> &'static str {
        match self {
            RejectReason::NullUser => "rows_rejected_null_user_id",
            RejectReason::NullTime => "rows_rejected_null_time",
            RejectReason::NullMarker => "rows_rejected_null_conversion_marker",
            RejectReason::NullChannel => "rows_rejected_null_channel_on_a_touch",
            RejectReason::NullTieBreaker => "rows_rejected_null_tie_breaker",
        }
    }
}

/// What the input layer read, for the data-quality table and the manifest.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct InputSummary {
    /// Files read with their row counts.
    pub files: Vec<InputFile>,
    /// Rows read in total.
    pub rows_read: u64,
    /// Rows kept as events.
    pub events: u64,
    /// Rejected rows by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Rows of other shards that a `--shard` run skipped.
    #[serde(default)]
    pub other_shards: u64,
    /// Rows whose channel no `[channel_rules]` rule matched.
    #[serde(default)]
    pub unmatched_channel_rule: u64,
    /// Rows dropped for want of consent.
    #[serde(default)]
    pub rows_without_consent: u64,
    /// What staging the sources counted, when the input was staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<StagedSummary>,
}

/// The shard of a user id among `n`: Spark SQL's `pmod(xxhash64(id), n)` (XXH64, seed 42)
/// over the id's own bytes, so a warehouse can split the same way: UTF-8 bytes of a string,
/// 4 little-endian bytes of a 32-bit integer (`INT`), 8 of a 64-bit one (`BIGINT`). Fixed
/// forever: it never depends on Polars' or Rust's hashers.
pub fn shard_of_bytes(id: &[u8], n: u32) -> u32 {
    (xxhash_rust::xxh64::xxh64(id, 42) as i64).rem_euclid(n as i64) as u32
}

/// [`shard_of_bytes`] of a string id.
pub fn shard_of_str(user: &str, n: u32) -> u32 {
    shard_of_bytes(user.as_bytes(), n)
}

/// [`shard_of_bytes`] of a 64-bit integer id.
pub fn shard_of_i64(user: i64, n: u32) -> u32 {
    shard_of_bytes(&user.to_le_bytes(), n)
}

/// [`shard_of_bytes`] of a 32-bit integer id.
pub fn shard_of_i32(user: i32, n: u32) -> u32 {
    shard_of_bytes(&user.to_le_bytes(), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spark's published values: `xxhash64('ABC') = 4105715581806190027`,
    /// `xxhash64(CAST(1 AS INT)) = -6698625589789238999`,
    /// `xxhash64(CAST(1 AS BIGINT)) = -7001672635703045582`.
    #[test]
    fn shards_follow_spark_xxhash64_per_type() {
        let h = |b: &[u8]| xxhash_rust::xxh64::xxh64(b, 42) as i64;
        assert_eq!(h(b"ABC"), 4105715581806190027);
        assert_eq!(h(&1i32.to_le_bytes()), -6698625589789238999);
        assert_eq!(h(&1i64.to_le_bytes()), -7001672635703045582);
        for n in [2, 3, 7] {
            assert_eq!(shard_of_i32(1, n), (-6698625589789238999i64).rem_euclid(n as i64) as u32);
            assert_eq!(shard_of_i64(1, n), (-7001672635703045582i64).rem_euclid(n as i64) as u32);
        }
    }

    #[test]
    fn reserved_names_and_separators_are_refused() {
        for bad in ["(unattributed)", "(start)", "(null)", "(conversion)", "a > b", "a\u{1f}b"] {
            assert!(reserved_name_problem(bad).is_some(), "{bad}");
        }
        for ok in ["a>b", "email", "Ümlaut", "with space", "q\"uote"] {
            assert!(reserved_name_problem(ok).is_none(), "{ok}");
        }
    }

    /// A hand-made log: person 0 has the id 7 three times (at t 5, at t 3 on channel 2,
    /// at t 3 on channel 1) and the id 8 once; person 1 has the id 7 too. Journey order
    /// keeps t 3 on channel 1; person 1's row names another event. Any row order keeps
    /// the same copy.
    #[test]
    fn event_ids_repeat_within_a_person_and_the_first_in_journey_order_is_kept() {
        let rows =
            [(0u32, 5i64, 0u32, 7u128), (0, 3, 2, 7), (0, 3, 1, 7), (0, 9, 0, 8), (1, 1, 0, 7), (1, 2, 0, 0)];
        for perm in [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [2, 0, 4, 1, 5, 3]] {
            let picked: Vec<_> = perm.iter().map(|&i| rows[i]).collect();
            let log = EventLog {
                user: picked.iter().map(|r| r.0).collect(),
                ts: picked.iter().map(|r| r.1).collect(),
                channel: picked.iter().map(|r| r.2).collect(),
                is_conversion: vec![false; 6],
                value: vec![0.0; 6],
                ..EventLog::default()
            };
            let keys: Vec<u128> = perm.iter().map(|&i| rows[i].3).collect();
            let mut dropped: Vec<usize> =
                event_id_duplicates(&log, &keys).iter().map(|&r| perm[r as usize]).collect();
            dropped.sort_unstable();
            assert_eq!(dropped, [0, 1], "row order {perm:?}");
        }
    }
}
