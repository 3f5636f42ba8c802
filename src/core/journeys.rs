//! Journey layer: order each user's events, cut them into journeys and aggregate the
//! journeys into a [`PathTable`] (`docs/models.md` § Journeys).
//!
//! Rules this module owns:
//! - **Order.** By (user, time, touches before conversions, tie-breaker, channel name,
//!   value, then touch type, campaign, source, segment, conversion type and id, event id). Rows
//!   still tied are identical in every column read, so the output never depends on input
//!   row order. The sort runs on packed `u128` keys (user, time, conversion
//!   flag, row) — integers only, never strings — and the rare groups of equal
//!   (user, time, flag) are then ordered by the remaining keys.
//! - **Cut.** Each conversion closes a journey made of the touches since the user's previous
//!   conversion, within the inclusive lookback; the touches after the last conversion form one
//!   non-converting journey, with the lookback measured back from its last touch.
//! - **Determinism under parallelism.** Users are split into chunks at boundaries that depend
//!   only on the data (never on the thread count); chunk results are merged in chunk order.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::core::event_log::{EventLog, NO_CHANNEL};
pub use crate::core::journey_stats::{JourneyStats, MAX_LAG_DAYS};
use crate::core::paths::{PathRow, PathTable};
pub use crate::core::recorded::{JourneyIndex, Recorded};
pub use crate::core::transforms::{apply_transforms, frequency_cap, frequency_name, ResolvedTransform};
use crate::settings::DAY_MICROS;
use crate::settings::{days_to_micros, Dedupe, JourneyRules, Transform};
pub use streamed::sort_and_build;

mod streamed;

/// The result of the journey layer.
#[derive(Debug, Clone, Default)]
pub struct Journeys {
    /// Distinct non-empty paths with conversions, nulls and value.
    pub paths: PathTable,
    /// Journey counts for the data-quality report.
    pub stats: JourneyStats,
    /// With the `frequency` transform: path-table channel id → the id of the channel it
    /// was derived from (in the unit space the journeys were built over).
    pub fold: Option<Vec<u32>>,
    /// The converting, non-empty journeys one by one, when requested.
    pub recorded: Option<Recorded>,
    /// Every modelled journey by user and path row, when requested (the bootstrap).
    pub index: Option<JourneyIndex>,
}

/// Everything the journey pass needs, resolved against one channel space.
#[derive(Debug, Clone)]
pub struct JourneyOptions {
    /// Default lookback, µs.
    pub lookback: i64,
    /// Lookback per touch-type id, µs (`None`: the type has no lookback of its own).
    pub lookback_by_type: Vec<Option<i64>>,
    /// Lookback per conversion-type id, µs: how far back a conversion of the type looks
    /// (types without an entry use `lookback`).
    pub lookback_by_conversion_type: Vec<i64>,
    /// Count only the journeys of one segment (they still cut the stream).
    pub segment: Option<SegmentFilter>,
    /// Conversion rows with a channel are touches.
    pub conversion_is_touch: bool,
    /// Transforms in order.
    pub transforms: Vec<ResolvedTransform>,
    /// Record converting journeys one by one (time decay, per-journey credit).
    pub record: bool,
    /// Skip exact duplicate events (`journeys.dedupe = "exact"`).
    pub dedupe: bool,
    /// Index every modelled journey by user and path row ([`JourneyIndex`]).
    pub index: bool,
    /// Closing mode (the training fit, `docs/models.md` § Training window), with this
    /// lookback in µs: touches followed by no event within the lookback close as a
    /// non-converting journey at `last touch + lookback`, and a journey counts when it
    /// closes inside `report` (converting: at its conversion). Journeys still open at the
    /// end of `report` are counted in `open_journeys`, never as non-conversions.
    pub closing: Option<i64>,
    /// Reporting window `[start, end)` µs: only journeys ending inside it are counted
    /// (earlier conversions still cut the stream).
    pub report: Option<(i64, i64)>,
}

impl JourneyOptions {
    /// Resolve journey rules against a log and a channel space (`names`).
    pub fn resolve(rules: &JourneyRules, log: &EventLog, record: bool) -> Self {
        let names = &log.channels;
        let mask =
            |chs: &[String]| -> Vec<bool> { names.iter().map(|n| chs.iter().any(|c| c == n)).collect() };
        let transforms = rules
            .transforms
            .iter()
            .filter_map(|t| match t {
                Transform::Exposure => Some(ResolvedTransform::Exposure),
                Transform::First => Some(ResolvedTransform::First),
                Transform::Unique => None,
                Transform::Frequency => Some(ResolvedTransform::Frequency),
                Transform::TrimLongPath(n) => Some(ResolvedTransform::Trim(*n)),
                Transform::RemoveIfNotAll(c) => Some(ResolvedTransform::RemoveIfNotAll(mask(c))),
                Transform::RemoveIfLastAndNotAll(c) => {
                    Some(ResolvedTransform::RemoveIfLastAndNotAll(mask(c)))
                }
            })
            .collect();
        let lookback = rules.lookback_micros();
        let lookback_by_type = log
            .touch_types
            .iter()
            .map(|t| rules.lookback_by_type.get(t).map(|d| days_to_micros(*d)))
            .collect();
        let by_conversion = |names: &[String]| -> Vec<i64> {
            let of = |t: &String| rules.lookback_by_conversion_type.get(t).map(|d| days_to_micros(*d));
            names.iter().map(|t| of(t).unwrap_or(lookback)).collect()
        };
        JourneyOptions {
            lookback,
            lookback_by_type,
            lookback_by_conversion_type: log
                .conversion_type
                .as_ref()
                .map_or_else(Vec::new, |t| by_conversion(&t.names)),
            segment: None,
            conversion_is_touch: rules.conversion_is_touch,
            transforms,
            record,
            dedupe: rules.dedupe != Dedupe::None,
            index: false,
            closing: None,
            report: None,
        }
    }
}

/// Which journeys a segment's pass counts (`docs/models.md` § Segments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentFilter {
    /// Journeys whose last event has this id of the log's segment column.
    Column(u32),
    /// Journeys of persons with (`true`: returning) or without (`false`: new) a conversion
    /// before the journey's end, among the events read.
    Returning(bool),
}

/// One touch of a journey: channel id, event row and time (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    /// Channel id.
    pub channel: u32,
    /// Row of the touch in the event log.
    pub row: u32,
    /// Time, µs since the epoch.
    pub ts: i64,
}

#[derive(Default)]
struct Agg {
    /// Insertion number of the path in its chunk (the chunk's journey index refers to it).
    id: u32,
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
    recorded: Recorded,
    /// Journeys as (user, chunk path id, value if converted), when indexing.
    index: Option<Vec<(u32, u32, Option<f64>)>>,
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
            let id = self.paths.len() as u32;
            self.paths.insert(self.scratch.clone().into_boxed_slice(), Agg { id, ..Agg::default() });
        }
        self.paths.get_mut(self.scratch.as_slice()).expect("inserted above")
    }

    fn converting(&mut self, user: u32, touches: &[Touch], value: f64, ts: i64) {
        if let Some(first) = touches.first() {
            let days = (ts.saturating_sub(first.ts) / DAY_MICROS).clamp(0, MAX_LAG_DAYS as i64) as usize;
            if self.stats.lag_days.len() <= days {
                self.stats.lag_days.resize(days + 1, 0);
            }
            self.stats.lag_days[days] += 1;
        }
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
            let id = a.id;
            if let Some(ix) = &mut self.index {
                ix.push((user, id, Some(value)));
            }
        }
    }

    fn non_converting(&mut self, user: u32, touches: &[Touch]) {
        if touches.is_empty() {
            return;
        }
        self.stats.journeys += 1;
        self.stats.non_converting_journeys += 1;
        let a = self.path_agg(touches);
        a.nulls += 1.0;
        let id = a.id;
        if let Some(ix) = &mut self.index {
            ix.push((user, id, None));
        }
    }
}

/// The most chunks of users (see [`chunk_shift`]): also the number of streams the sort
/// scatters into at once, kept small enough for the caches and the TLB.
pub const MAX_CHUNKS: usize = 1024;

/// Chunks hold `1 << shift` consecutive user ids: at least 4096 users (~40k events), and
/// at most [`MAX_CHUNKS`] chunks. Depends only on the number of users, never on threads.
pub fn chunk_shift(n_users: usize) -> u32 {
    let mut shift = 12;
    while (n_users >> shift) >= MAX_CHUNKS {
        shift += 1;
    }
    shift
}

/// The events in journey order: grouped by user (in user-id order), and within a user by
/// time, touches before conversions, then the tie-breaker, channel name and value.
#[derive(Debug, Clone, PartialEq)]
pub struct EventOrder {
    /// Packed keys in journey order: `(time − min_time) << 33 | is_conversion << 32 | row`.
    /// The walk decodes time and flag from the key, so only the channel and value need a
    /// look-up by row.
    pub keys: Vec<u128>,
    /// The user of each key (read in order by the walk, instead of by row at random).
    pub users: Vec<u32>,
    /// The smallest time, µs (keys hold times relative to it).
    pub min_ts: i64,
    /// Chunks of whole users (see [`chunk_shift`]): `keys[bounds[i]..bounds[i + 1]]`.
    /// The boundaries depend only on the data, never on the thread count.
    pub bounds: Vec<usize>,
    /// Rows that repeat an earlier row in every mapped column (exact duplicates), sorted:
    /// each but the first of its copies, the first being the earliest in file and row order.
    pub duplicates: Vec<u32>,
}

impl EventOrder {
    /// Row indices in journey order.
    pub fn rows(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.iter().map(|k| *k as u32)
    }
}

/// Rows of a tied run (sorted by [`EventLog::journey_cmp`], stable) that repeat the row
/// before them in every column read: sorted by every column, copies are neighbours.
fn find_duplicates(log: &EventLog, run: &[u128], out: &mut Vec<u32>) {
    for w in run.windows(2) {
        let (y, x) = (w[0] as u32 as usize, w[1] as u32 as usize);
        if log.journey_cmp(y, x).is_eq() {
            out.push(x as u32);
        }
    }
}

/// Sort the events into journey order (see [`EventOrder`]).
///
/// An MSD radix sort in two passes, each cache-friendly: the packed keys are first scattered
/// by chunk of users (at most [`MAX_CHUNKS`] streams, rows in order within a chunk), then
/// each chunk — small enough for the CPU cache — is counting-sorted by user, chunks in
/// parallel, and each user's few keys are sorted in place. Rows still tied after every key
/// are identical in every field that matters.
pub fn sort_events(log: &EventLog) -> EventOrder {
    let n = log.len();
    // The scatter writes through raw slots sized from these columns.
    assert!(
        log.user.len() == n && log.is_conversion.len() == n && log.channel.len() == n,
        "sort_events: the event log's columns differ in length"
    );
    assert!(n < u32::MAX as usize, "more than 4G events in one run: the input layer refuses them");
    let n_users = log.user.par_iter().copied().max().map_or(0, |m| m as usize + 1);
    let shift = chunk_shift(n_users);
    let min_ts = log.ts.par_iter().copied().min().unwrap_or(0);
    let n_chunks = (n_users >> shift) + 1;
    let (mut keys, mut users, mut bounds) = scatter_by_chunk(log, (shift, n_chunks), min_ts);
    // 2. Within each chunk: counting sort by user, then each user's keys by time.
    let mut slices: Vec<(usize, &mut [u128], &mut [u32])> = Vec::with_capacity(n_chunks);
    let (mut rest, mut rest_users): (&mut [u128], &mut [u32]) = (&mut keys, &mut users);
    for k in 0..n_chunks {
        let len = bounds[k + 1] - bounds[k];
        let (head, tail) = rest.split_at_mut(len);
        let (head_users, tail_users) = rest_users.split_at_mut(len);
        slices.push((k, head, head_users));
        rest = tail;
        rest_users = tail_users;
    }
    let dups: Vec<Vec<u32>> = slices
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new()),
            |scratch: &mut (Vec<u128>, Vec<u32>), (k, chunk, users)| {
                sort_chunk(log, ((k << shift) as u32, shift), chunk, users, scratch)
            },
        )
        .collect();
    let mut duplicates: Vec<u32> = dups.into_iter().flatten().collect();
    duplicates.sort_unstable();
    bounds.dedup();
    EventOrder { keys, users, min_ts, bounds, duplicates }
}

/// A row's key in journey order ([`EventOrder::keys`]).
fn packed_key(log: &EventLog, i: usize, min_ts: i64) -> u128 {
    let rel = log.ts[i].wrapping_sub(min_ts) as u64 as u128; // < 2^63 for any real span
    (rel << 33) | ((log.is_conversion[i] as u128) << 32) | i as u128
}

/// Where each chunk of `2^shift` users starts, and where each piece of rows writes its
/// rows of each chunk ([`crate::core::intern::scatter_plan`]).
fn chunk_plan(log: &EventLog, shift: u32, n_chunks: usize) -> (Vec<usize>, Vec<Vec<usize>>) {
    use crate::core::intern::{scatter_plan, PIECE};
    let counts: Vec<Vec<u32>> = log
        .user
        .par_chunks(PIECE)
        .map(|us| {
            let mut c = vec![0u32; n_chunks];
            for &u in us {
                c[(u >> shift) as usize] += 1;
            }
            c
        })
        .collect();
    scatter_plan(&counts, n_chunks)
}

/// Pass 1: the packed keys (and their users) scattered by chunk of `2^shift` users, rows in
/// order within a chunk; returns the keys, users and chunk boundaries.
fn scatter_by_chunk(
    log: &EventLog,
    (shift, n_chunks): (u32, usize),
    min_ts: i64,
) -> (Vec<u128>, Vec<u32>, Vec<usize>) {
    use crate::core::intern::{SharedSlots, PIECE};
    let n = log.len();
    let key = |i: usize| packed_key(log, i, min_ts);
    let (bounds, cursors) = chunk_plan(log, shift, n_chunks);
    // The users travel with the keys, so the second pass reads them in order.
    let mut keys: Vec<u128> = Vec::with_capacity(n);
    let mut users: Vec<u32> = Vec::with_capacity(n);
    let (out, out_users) = (SharedSlots(keys.as_mut_ptr()), SharedSlots(users.as_mut_ptr()));
    log.user.par_chunks(PIECE).zip(cursors.into_par_iter()).enumerate().for_each(|(p, (us, mut cur))| {
        for (j, &u) in us.iter().enumerate() {
            let slot = &mut cur[(u >> shift) as usize];
            // SAFETY: the (piece, chunk) cursors cover disjoint slots below n (the counts
            // came from these same users, whose column has length n: asserted by the caller).
            unsafe {
                out.write(*slot, key(p * PIECE + j));
                out_users.write(*slot, u);
            }
            *slot += 1;
        }
    });
    // SAFETY: all n slots were written above.
    unsafe {
        keys.set_len(n);
        users.set_len(n);
    }
    (keys, users, bounds)
}

/// Pass 2 on one chunk (users `base..base + 2^shift`): a counting sort by user, then each
/// user's keys by time and flag, ties by [`EventLog::journey_cmp`]; returns the chunk's exact
/// duplicates.
fn sort_chunk(
    log: &EventLog,
    (base, shift): (u32, u32),
    chunk: &mut [u128],
    users: &mut [u32],
    (tmp, starts): &mut (Vec<u128>, Vec<u32>),
) -> Vec<u32> {
    let mut dups = Vec::new();
    tmp.clear();
    tmp.extend_from_slice(chunk);
    starts.clear();
    starts.resize((1 << shift) + 1, 0);
    for &u in users.iter() {
        starts[(u - base) as usize + 1] += 1;
    }
    for u in 0..1 << shift {
        starts[u + 1] += starts[u];
    }
    let mut pos = starts.clone();
    for (&x, &u) in tmp.iter().zip(users.iter()) {
        let p = &mut pos[(u - base) as usize];
        chunk[*p as usize] = x;
        *p += 1;
    }
    for u in 0..1 << shift {
        users[starts[u] as usize..starts[u + 1] as usize].fill(base + u as u32);
        let group = &mut chunk[starts[u] as usize..starts[u + 1] as usize];
        if group.len() < 2 {
            continue;
        }
        group.sort_unstable();
        // Resolve the rare ties on (time, flag) by the remaining keys.
        let mut a = 0;
        while a < group.len() {
            let mut b = a + 1;
            while b < group.len() && group[b] >> 32 == group[a] >> 32 {
                b += 1;
            }
            if b - a > 1 {
                group[a..b].sort_by(|&x, &y| log.journey_cmp(x as u32 as usize, y as u32 as usize));
                find_duplicates(log, &group[a..b], &mut dups);
            }
            a = b;
        }
    }
    dups
}

/// Cut the events, sorted by [`sort_events`], into journeys over the log's channels.
pub fn build(log: &EventLog, order: &EventOrder, opts: &JourneyOptions) -> Journeys {
    merge(log, walk(log, order, opts), opts)
}

/// The chunks' journeys, walked but not yet merged: [`build`] in two steps, so a caller
/// can free the order's keys (16 bytes an event) before the merge.
pub struct Walked {
    collectors: Vec<Collector>,
    duplicate_events: u64,
}

/// Walk every chunk of users of the sorted events into its own paths ([`build`]'s first
/// step).
pub fn walk(log: &EventLog, order: &EventOrder, opts: &JourneyOptions) -> Walked {
    let (codes, n_codes) = (&log.channel, log.channels.len() as u32);
    let t = std::time::Instant::now();
    let collectors: Vec<Collector> = order
        .bounds
        .par_windows(2)
        .map(|w| {
            let skip: &[u32] = if opts.dedupe { &order.duplicates } else { &[] };
            let rows = Rows {
                keys: &order.keys[w[0]..w[1]],
                users: &order.users[w[0]..w[1]],
                min_ts: order.min_ts,
                skip,
            };
            walk_chunk(log, codes, n_codes, &rows, opts)
        })
        .collect();
    tracing::debug!(ms = t.elapsed().as_millis(), chunks = order.bounds.len() - 1, "walked journeys");
    Walked { collectors, duplicate_events: order.duplicates.len() as u64 }
}

/// Sum the chunks' paths into the path table ([`build`]'s second step).
pub fn merge(log: &EventLog, walked: Walked, opts: &JourneyOptions) -> Journeys {
    let Walked { collectors, duplicate_events } = walked;
    let names = &log.channels;
    let n_codes = names.len() as u32;
    let t = std::time::Instant::now();
    let mut stats = JourneyStats { duplicate_events, ..JourneyStats::default() };
    let mut recorded = Recorded::default();
    // Merge the chunks' paths: sort every (path, chunk) entry, then sum equal paths in chunk
    // order (fixed), which also leaves the rows sorted by path.
    let mut entries: Vec<(Box<[u32]>, usize, Agg)> =
        Vec::with_capacity(collectors.iter().map(|c| c.paths.len()).sum());
    let mut chunk_index = Vec::new();
    let mut chunk_paths = Vec::new();
    for (ci, c) in collectors.into_iter().enumerate() {
        stats.merge(&c.stats);
        chunk_paths.push(c.paths.len());
        entries.extend(c.paths.into_iter().map(|(k, a)| (k, ci, a)));
        recorded.append(c.recorded);
        chunk_index.push(c.index.unwrap_or_default());
    }
    let order = path_order(&entries);
    let mut rows: Vec<PathRow> = Vec::new();
    // Chunk path id → row, per chunk (for the journey index).
    let mut row_of: Vec<Vec<u32>> =
        chunk_paths.iter().map(|&n| vec![0; if opts.index { n } else { 0 }]).collect();
    for i in order {
        let (k, ci, a) = &mut entries[i];
        if opts.index {
            let same = rows.last().is_some_and(|l| *l.path == **k);
            row_of[*ci][a.id as usize] = (rows.len() - usize::from(same)) as u32;
        }
        match rows.last_mut() {
            Some(last) if *last.path == **k => {
                last.conversions += a.conversions;
                last.nulls += a.nulls;
                last.value += a.value;
            }
            _ => rows.push(PathRow {
                path: std::mem::take(k).into_vec(),
                conversions: a.conversions,
                nulls: a.nulls,
                value: a.value,
            }),
        }
    }
    let frequency = opts.transforms.contains(&ResolvedTransform::Frequency);
    let (channels, fold) = if frequency {
        // Derived ids are count·C + channel: name them `channel(count)` and renumber them in
        // sorted name order, like every other id space.
        let mut used: Vec<u32> = rows.iter().flat_map(|r| r.path.iter().copied()).collect();
        used.sort_unstable();
        used.dedup();
        let mut named: Vec<(String, u32)> = used
            .iter()
            .map(|&d| (frequency_name(&names[(d % n_codes) as usize], d / n_codes, n_codes), d))
            .collect();
        named.sort();
        let remap: FxHashMap<u32, u32> = named.iter().enumerate().map(|(i, (_, d))| (*d, i as u32)).collect();
        for r in &mut rows {
            r.path.iter_mut().for_each(|c| *c = remap[c]);
        }
        recorded.channel.iter_mut().for_each(|c| *c = remap[c]);
        let fold = named.iter().map(|(_, d)| d % n_codes).collect();
        (named.into_iter().map(|(n, _)| n).collect(), Some(fold))
    } else {
        (names.to_vec(), None)
    };
    if frequency {
        // Renamed ids change the order: sort a permutation, so the index can follow it.
        let mut perm: Vec<u32> = (0..rows.len() as u32).collect();
        perm.par_sort_unstable_by(|&a, &b| rows[a as usize].path.cmp(&rows[b as usize].path));
        let mut new_of = vec![0u32; rows.len()];
        for (new, &old) in perm.iter().enumerate() {
            new_of[old as usize] = new as u32;
        }
        row_of.iter_mut().flatten().for_each(|r| *r = new_of[*r as usize]);
        let mut old: Vec<Option<PathRow>> = rows.into_iter().map(Some).collect();
        rows = perm.iter().map(|&o| old[o as usize].take().expect("a permutation")).collect();
    }
    let index = opts.index.then(|| journey_index(chunk_index, &row_of, log));
    tracing::debug!(ms = t.elapsed().as_millis(), "merged paths");
    Journeys {
        paths: PathTable { channels, rows },
        stats,
        fold,
        recorded: opts.record.then_some(recorded),
        index,
    }
}

/// The chunks' journeys in chunk (= user) order, with their path ids mapped to rows.
fn journey_index(
    chunks: Vec<Vec<(u32, u32, Option<f64>)>>,
    row_of: &[Vec<u32>],
    log: &EventLog,
) -> JourneyIndex {
    let person = (0..log.n_users as u32).map(|u| crate::core::bootstrap::person_key(log, u)).collect();
    let mut ix = JourneyIndex { person, ..Default::default() };
    for (ci, c) in chunks.into_iter().enumerate() {
        for (user, id, value) in c {
            ix.user.push(user);
            ix.path.push(row_of[ci][id as usize]);
            ix.value.push(value);
        }
    }
    ix
}

/// The order of (path, chunk) entries by path, then chunk (entries are in chunk order).
///
/// Sorting the boxed paths directly chases a pointer per comparison; instead each path's
/// first channels are packed into a 64-bit prefix (`id + 1` per channel, 0 past the end,
/// which orders exactly like the slices) and plain integers are sorted. Only runs of equal
/// prefixes holding longer paths are then compared in full.
fn path_order(entries: &[(Box<[u32]>, usize, Agg)]) -> Vec<usize> {
    let max_code = entries.par_iter().map(|e| e.0.iter().copied().max().unwrap_or(0)).max().unwrap_or(0);
    let bits = 64 - (max_code as u64 + 1).leading_zeros();
    let per = (64 / bits) as usize;
    let prefix = |p: &[u32]| -> u64 {
        (0..per).fold(0u64, |x, i| (x << bits) | p.get(i).map_or(0, |&c| c as u64 + 1))
    };
    let mut keys: Vec<u128> =
        entries.par_iter().enumerate().map(|(i, e)| (prefix(&e.0) as u128) << 64 | i as u128).collect();
    keys.par_sort_unstable();
    let idx = |k: u128| k as u64 as usize;
    let mut a = 0;
    while a < keys.len() {
        let mut z = a + 1;
        while z < keys.len() && keys[z] >> 64 == keys[a] >> 64 {
            z += 1;
        }
        let run = &mut keys[a..z];
        if run.len() > 1 && run.iter().any(|&k| entries[idx(k)].0.len() > per) {
            run.sort_unstable_by(|&x, &y| {
                entries[idx(x)].0.cmp(&entries[idx(y)].0).then(idx(x).cmp(&idx(y)))
            });
        }
        a = z;
    }
    keys.into_iter().map(idx).collect()
}

/// A pending touch: channel, time and its touch type's own lookback, if it has one.
#[derive(Clone, Copy)]
struct Pending {
    touch: Touch,
    lookback: Option<i64>,
}

/// Keep the pending touches within their lookback of `reference` (a touch type's own
/// lookback wins over `default`, the conversion's); returns how many expired.
fn within(pending: &[Pending], reference: i64, default: i64, out: &mut Vec<Touch>) -> u64 {
    out.clear();
    out.extend(
        pending
            .iter()
            .filter(|p| reference.saturating_sub(p.touch.ts) <= p.lookback.unwrap_or(default))
            .map(|p| p.touch),
    );
    (pending.len() - out.len()) as u64
}

/// Whether a journey ending at row `last` (with or without an earlier conversion of its
/// person) is one the pass counts.
fn counted(log: &EventLog, opts: &JourneyOptions, last: usize, returning: bool) -> bool {
    match opts.segment {
        None => true,
        Some(SegmentFilter::Returning(r)) => r == returning,
        Some(SegmentFilter::Column(s)) => log.segment.as_ref().is_some_and(|t| t.ids[last] == s),
    }
}

/// A run of sorted rows holding whole users, and the duplicate rows to skip.
struct Rows<'a> {
    keys: &'a [u128],
    users: &'a [u32],
    min_ts: i64,
    skip: &'a [u32],
}

/// Walk a run of sorted rows that holds whole users.
fn walk_chunk(log: &EventLog, codes: &[u32], n_codes: u32, rows: &Rows, opts: &JourneyOptions) -> Collector {
    let Rows { keys, users, min_ts, skip } = *rows;
    let mut c = Collector { index: opts.index.then(Vec::new), ..Collector::default() };
    let mut pending: Vec<Pending> = Vec::new();
    let mut kept: Vec<Touch> = Vec::new();
    let lookback_of = |r: usize| -> Option<i64> {
        match &log.touch_type {
            Some(tt) if tt[r] != NO_CHANNEL => opts.lookback_by_type[tt[r] as usize],
            _ => None,
        }
    };
    let conversion_lookback = |r: usize| -> i64 {
        match &log.conversion_type {
            Some(t) if t.ids[r] != NO_CHANNEL => opts.lookback_by_conversion_type[t.ids[r] as usize],
            _ => opts.lookback,
        }
    };
    let mut i = 0;
    while i < keys.len() {
        let user = users[i];
        c.stats.users += 1;
        pending.clear();
        let (mut seq, mut last_conv, mut returning) = (0u32, i64::MIN, false);
        let reported = |ts: i64| opts.report.is_none_or(|(a, b)| ts >= a && ts < b);
        while i < keys.len() && users[i] == user {
            let k = keys[i];
            let r = k as u32 as usize;
            if !skip.is_empty() && skip.binary_search(&(r as u32)).is_ok() {
                i += 1;
                continue;
            }
            let ts = ((k >> 33) as i64).wrapping_add(min_ts);
            let ch = codes[r];
            if opts.closing.is_some_and(|l| pending.last().is_some_and(|p| ts - p.touch.ts > l)) {
                if pending.last().is_some_and(|p| counted(log, opts, p.touch.row as usize, returning)) {
                    close_lapsed(&mut c, user, &pending, n_codes, opts, &mut kept);
                }
                pending.clear();
            }
            if (k >> 32) & 1 == 1 {
                if opts.conversion_is_touch && ch != NO_CHANNEL {
                    pending.push(Pending {
                        touch: Touch { channel: ch, row: r as u32, ts },
                        lookback: lookback_of(r),
                    });
                }
                seq = if ts == last_conv { seq + 1 } else { 1 };
                last_conv = ts;
                if reported(ts) && counted(log, opts, r, returning) {
                    c.stats.expired_touches += within(&pending, ts, conversion_lookback(r), &mut kept);
                    apply_transforms(&mut kept, &opts.transforms, n_codes);
                    c.converting(user, &kept, log.value[r], ts);
                    if opts.record && !kept.is_empty() {
                        c.recorded.push((user, seq, r as u32), ts, log.value[r], &kept);
                    }
                }
                returning = true;
                pending.clear();
            } else {
                debug_assert!(ch != NO_CHANNEL, "the input layer rejects touches without a channel");
                pending.push(Pending {
                    touch: Touch { channel: ch, row: r as u32, ts },
                    lookback: lookback_of(r),
                });
            }
            i += 1;
        }
        let last_counted =
            pending.last().is_some_and(|p| counted(log, opts, p.touch.row as usize, returning));
        match (opts.closing, pending.last()) {
            _ if !last_counted => {}
            (Some(l), Some(last)) => {
                let end = opts.report.map_or(i64::MAX, |r| r.1);
                if last.touch.ts.saturating_add(l) < end {
                    close_lapsed(&mut c, user, &pending, n_codes, opts, &mut kept);
                } else if last.touch.ts < end {
                    c.stats.open_journeys += 1;
                }
            }
            (None, Some(last)) if reported(last.touch.ts) => {
                c.stats.expired_touches += within(&pending, last.touch.ts, opts.lookback, &mut kept);
                apply_transforms(&mut kept, &opts.transforms, n_codes);
                c.non_converting(user, &kept);
            }
            _ => {}
        }
    }
    c
}

/// Closing mode: pending touches with no event within the lookback `l` after the last one
/// form a non-converting journey closed at `last + l`, counted when that is in the range.
fn close_lapsed(
    c: &mut Collector,
    user: u32,
    pending: &[Pending],
    n_codes: u32,
    opts: &JourneyOptions,
    kept: &mut Vec<Touch>,
) {
    let (Some(last), Some(l)) = (pending.last(), opts.closing) else { return };
    let closed = last.touch.ts.saturating_add(l);
    if opts.report.is_none_or(|(a, b)| closed >= a && closed < b) {
        c.stats.expired_touches += within(pending, last.touch.ts, l, kept);
        apply_transforms(kept, &opts.transforms, n_codes);
        c.non_converting(user, kept);
    }
}

#[cfg(test)]
#[path = "journeys_tests.rs"]
mod tests;
