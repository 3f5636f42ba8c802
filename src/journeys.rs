//! Journey layer: order each user's events, cut them into journeys and aggregate the
//! journeys into a [`PathTable`] (SPEC §2).
//!
//! Rules this module owns:
//! - **Order.** By (user, time, touches before conversions, tie-breaker, channel name,
//!   value). Rows still tied are identical in every field that matters, so the output never
//!   depends on input row order. The sort runs on packed `u128` keys (user, time, conversion
//!   flag, row) — integers only, never strings — and the rare groups of equal
//!   (user, time, flag) are then ordered by the remaining keys.
//! - **Cut.** Each conversion closes a journey made of the touches since the user's previous
//!   conversion, within the inclusive lookback; the touches after the last conversion form one
//!   non-converting journey, with the lookback measured back from its last touch.
//! - **Determinism under parallelism.** Users are split into chunks at boundaries that depend
//!   only on the data (never on the thread count); chunk results are merged in chunk order.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::config::JourneyRules;
use crate::input::{EventLog, NO_CHANNEL};
use crate::paths::{PathRow, PathTable};

/// Counts about the journeys, for the data-quality table.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct JourneyStats {
    /// Distinct users with at least one kept event.
    pub users: u64,
    /// Journeys: converting (incl. unattributed) plus non-converting with at least one touch.
    pub journeys: u64,
    /// Converting journeys (every conversion closes one), including unattributed ones.
    pub converting_journeys: u64,
    /// Non-converting journeys with at least one touch.
    pub non_converting_journeys: u64,
    /// Conversions with no touch left after the lookback (reported as `(unattributed)`).
    pub unattributed_conversions: f64,
    /// Value of those conversions.
    pub unattributed_value: f64,
    /// All conversions, attributed or not.
    pub total_conversions: f64,
    /// Value of all conversions.
    pub total_value: f64,
    /// Touches dropped because they were older than the lookback.
    pub expired_touches: u64,
    /// Touches kept in journeys.
    pub touches: u64,
    /// `path_lengths[n]` = number of non-empty journeys with n touches.
    pub path_lengths: Vec<u64>,
}

impl JourneyStats {
    fn merge(&mut self, o: &JourneyStats) {
        self.users += o.users;
        self.journeys += o.journeys;
        self.converting_journeys += o.converting_journeys;
        self.non_converting_journeys += o.non_converting_journeys;
        self.unattributed_conversions += o.unattributed_conversions;
        self.unattributed_value += o.unattributed_value;
        self.total_conversions += o.total_conversions;
        self.total_value += o.total_value;
        self.expired_touches += o.expired_touches;
        self.touches += o.touches;
        if self.path_lengths.len() < o.path_lengths.len() {
            self.path_lengths.resize(o.path_lengths.len(), 0);
        }
        for (a, b) in self.path_lengths.iter_mut().zip(&o.path_lengths) {
            *a += b;
        }
    }

    /// The q-quantile (0..=1) of the path length over non-empty journeys (nearest rank).
    pub fn path_length_quantile(&self, q: f64) -> Option<u64> {
        let n: u64 = self.path_lengths.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut acc = 0;
        for (len, &c) in self.path_lengths.iter().enumerate() {
            acc += c;
            if acc >= rank {
                return Some(len as u64);
            }
        }
        None
    }
}

/// The result of the journey layer.
#[derive(Debug, Clone, Default)]
pub struct Journeys {
    /// Distinct non-empty paths with conversions, nulls and value.
    pub paths: PathTable,
    /// Journey counts for the data-quality report.
    pub stats: JourneyStats,
}

/// One touch of a journey: channel id and time (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    /// Channel id.
    pub channel: u32,
    /// Time, µs since the epoch.
    pub ts: i64,
}

#[derive(Default)]
struct Agg {
    conversions: f64,
    nulls: f64,
    value: f64,
}

/// Per-chunk accumulator of journeys.
#[derive(Default)]
struct Collector {
    paths: FxHashMap<Box<[u32]>, Agg>,
    stats: JourneyStats,
    scratch: Vec<u32>,
}

impl Collector {
    fn path_agg(&mut self, touches: &[Touch]) -> &mut Agg {
        self.scratch.clear();
        self.scratch.extend(touches.iter().map(|t| t.channel));
        let len = touches.len();
        if self.stats.path_lengths.len() <= len {
            self.stats.path_lengths.resize(len + 1, 0);
        }
        self.stats.path_lengths[len] += 1;
        self.stats.touches += len as u64;
        if !self.paths.contains_key(self.scratch.as_slice()) {
            self.paths.insert(self.scratch.clone().into_boxed_slice(), Agg::default());
        }
        self.paths.get_mut(self.scratch.as_slice()).expect("inserted above")
    }

    fn converting(&mut self, touches: &[Touch], value: f64) {
        self.stats.journeys += 1;
        self.stats.converting_journeys += 1;
        self.stats.total_conversions += 1.0;
        self.stats.total_value += value;
        if touches.is_empty() {
            self.stats.unattributed_conversions += 1.0;
            self.stats.unattributed_value += value;
        } else {
            let a = self.path_agg(touches);
            a.conversions += 1.0;
            a.value += value;
        }
    }

    fn non_converting(&mut self, touches: &[Touch]) {
        if touches.is_empty() {
            return;
        }
        self.stats.journeys += 1;
        self.stats.non_converting_journeys += 1;
        self.path_agg(touches).nulls += 1.0;
    }
}

/// Rows per chunk (approximately; chunks end at user boundaries).
const CHUNK_ROWS: usize = 1 << 16;

/// Sort the events into journey order: by user, time, touches before conversions, then the
/// tie-breaker, channel name and value. Returns row indices.
pub fn sort_events(log: &EventLog) -> Vec<u32> {
    let n = log.len();
    assert!(n < u32::MAX as usize, "more than 4G events in one run: use --shard");
    let min_ts = log.ts.iter().copied().min().unwrap_or(0);
    let mut keys: Vec<u128> = (0..n)
        .into_par_iter()
        .map(|i| {
            let rel = (log.ts[i].wrapping_sub(min_ts)) as u64 as u128; // < 2^63 for any real span
            ((log.user[i] as u128) << 96) | (rel << 33) | ((log.is_conversion[i] as u128) << 32) | i as u128
        })
        .collect();
    keys.par_sort_unstable();
    let mut order: Vec<u32> = keys.iter().map(|k| *k as u32).collect();
    // Resolve the rare ties on (user, time, flag) by the remaining keys.
    let mut i = 0;
    while i < n {
        let head = keys[i] >> 32;
        let mut j = i + 1;
        while j < n && keys[j] >> 32 == head {
            j += 1;
        }
        if j - i > 1 {
            order[i..j].sort_by(|&a, &b| {
                let (a, b) = (a as usize, b as usize);
                let ta = log.tie.as_ref().map(|t| t[a]);
                let tb = log.tie.as_ref().map(|t| t[b]);
                ta.cmp(&tb)
                    .then(log.channel[a].cmp(&log.channel[b]))
                    .then(log.value[a].total_cmp(&log.value[b]))
            });
        }
        i = j;
    }
    order
}

/// Cut the events into journeys and aggregate them into a path table.
pub fn build(log: &EventLog, rules: &JourneyRules) -> Journeys {
    let order = sort_events(log);
    // Chunk boundaries at user changes, every ~CHUNK_ROWS rows: data-dependent only.
    let mut bounds = vec![0usize];
    let mut next = CHUNK_ROWS;
    while next < order.len() {
        let u = log.user[order[next - 1] as usize];
        let mut k = next;
        while k < order.len() && log.user[order[k] as usize] == u {
            k += 1;
        }
        if k >= order.len() {
            break;
        }
        bounds.push(k);
        next = k + CHUNK_ROWS;
    }
    bounds.push(order.len());
    let lookback = rules.lookback_micros();
    let collectors: Vec<Collector> = bounds
        .par_windows(2)
        .map(|w| walk(log, &order[w[0]..w[1]], lookback, rules.conversion_is_touch))
        .collect();

    let mut stats = JourneyStats::default();
    let mut merged: FxHashMap<Box<[u32]>, Agg> = FxHashMap::default();
    for c in collectors {
        stats.merge(&c.stats);
        for (k, a) in c.paths {
            let m = merged.entry(k).or_default();
            m.conversions += a.conversions;
            m.nulls += a.nulls;
            m.value += a.value;
        }
    }
    let mut rows: Vec<PathRow> = merged
        .into_iter()
        .map(|(k, a)| PathRow {
            path: k.into_vec(),
            conversions: a.conversions,
            nulls: a.nulls,
            value: a.value,
        })
        .collect();
    rows.par_sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Journeys { paths: PathTable { channels: log.channels.clone(), rows }, stats }
}

/// Walk a run of sorted rows that holds whole users.
fn walk(log: &EventLog, rows: &[u32], lookback: i64, conversion_is_touch: bool) -> Collector {
    let mut c = Collector::default();
    let mut pending: Vec<Touch> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let user = log.user[rows[i] as usize];
        c.stats.users += 1;
        pending.clear();
        while i < rows.len() && log.user[rows[i] as usize] == user {
            let r = rows[i] as usize;
            let ts = log.ts[r];
            let ch = log.channel[r];
            if log.is_conversion[r] {
                if conversion_is_touch && ch != NO_CHANNEL {
                    pending.push(Touch { channel: ch, ts });
                }
                let cutoff = ts.saturating_sub(lookback);
                let start = pending.partition_point(|t| t.ts < cutoff);
                c.stats.expired_touches += start as u64;
                c.converting(&pending[start..], log.value[r]);
                pending.clear();
            } else {
                debug_assert!(ch != NO_CHANNEL, "the input layer rejects touches without a channel");
                pending.push(Touch { channel: ch, ts });
            }
            i += 1;
        }
        if let Some(last) = pending.last() {
            let cutoff = last.ts.saturating_sub(lookback);
            let start = pending.partition_point(|t| t.ts < cutoff);
            c.stats.expired_touches += start as u64;
            c.non_converting(&pending[start..]);
        }
    }
    c
}
