//! [`super::build`] without holding the sorted order of every event: each chunk of users
//! is sorted and walked at once.
//!
//! Why: the order is 20 bytes an event (a 16-byte key and the user), 1 GB at 50M events,
//! held through the walk on top of the event log. Here only the rows are scattered by
//! chunk (4 bytes an event); a chunk's keys are built, sorted and walked in a buffer of
//! the chunk's size. The chunks, their sorts and their walks are the ones of
//! `sort_events` + `build`, so the journeys are the same to the bit.

use rayon::prelude::*;

use super::{
    chunk_plan, chunk_shift, merge, packed_key, sort_chunk, walk_chunk, Collector, JourneyOptions, Journeys,
    Rows, Walked,
};
use crate::core::event_log::EventLog;
use crate::core::intern::{SharedSlots, PIECE};

/// The journeys of the log and the duplicate rows (skipped when `opts.dedupe`): the
/// caller's `given` rows when it has them (the event-id duplicates of `journeys.dedupe =
/// "event_id"`, or the channel level's duplicates for the group level), sorted; otherwise
/// the exact duplicates the sort finds.
pub fn sort_and_build(
    log: &EventLog,
    opts: &JourneyOptions,
    given: Option<Vec<u32>>,
) -> (Journeys, Vec<u32>) {
    let t = std::time::Instant::now();
    let n_users = log.user.par_iter().copied().max().map_or(0, |m| m as usize + 1);
    let shift = chunk_shift(n_users);
    let min_ts = log.ts.par_iter().copied().min().unwrap_or(0);
    let (rows, bounds) = rows_by_chunk(log, shift, (n_users >> shift) + 1);
    let chunks: Vec<(usize, &[u32])> = bounds
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1] > w[0])
        .map(|(k, w)| (k, &rows[w[0]..w[1]]))
        .collect();
    let (codes, n_codes) = (&log.channel, log.channels.len() as u32);
    let walked: Vec<(Collector, Vec<u32>)> = chunks
        .into_par_iter()
        .map_init(Scratch::default, |s, (k, rows)| {
            s.keys.clear();
            s.keys.extend(rows.iter().map(|&r| packed_key(log, r as usize, min_ts)));
            s.users.clear();
            s.users.extend(rows.iter().map(|&r| log.user[r as usize]));
            let mut dups =
                sort_chunk(log, ((k << shift) as u32, shift), &mut s.keys, &mut s.users, &mut s.sort);
            dups.sort_unstable();
            let skip: &[u32] = match (&given, opts.dedupe) {
                (_, false) => &[],
                (Some(ev), true) => ev,
                (None, true) => &dups,
            };
            let chunk = Rows { keys: &s.keys, users: &s.users, min_ts, skip };
            (walk_chunk(log, codes, n_codes, &chunk, opts), dups)
        })
        .collect();
    drop(rows);
    let mut collectors = Vec::with_capacity(walked.len());
    let mut duplicates = Vec::new();
    for (c, d) in walked {
        collectors.push(c);
        duplicates.extend(d);
    }
    duplicates.sort_unstable();
    let duplicates = given.unwrap_or(duplicates);
    tracing::debug!(ms = t.elapsed().as_millis(), chunks = collectors.len(), "sorted and walked journeys");
    let walked = Walked { collectors, duplicate_events: duplicates.len() as u64 };
    (merge(log, walked, opts), duplicates)
}

/// A thread's buffers for one chunk at a time.
#[derive(Default)]
struct Scratch {
    keys: Vec<u128>,
    users: Vec<u32>,
    sort: (Vec<u128>, Vec<u32>),
}

/// The rows scattered by chunk of `2^shift` users, in row order within a chunk, and the
/// chunks' boundaries.
fn rows_by_chunk(log: &EventLog, shift: u32, n_chunks: usize) -> (Vec<u32>, Vec<usize>) {
    let n = log.len();
    // As `sort_events`: the packed keys hold the row in 32 bits, and read these columns.
    assert!(
        log.user.len() == n && log.is_conversion.len() == n && log.channel.len() == n,
        "sort_and_build: the event log's columns differ in length"
    );
    assert!(n < u32::MAX as usize, "more than 4G events in one run: the input layer refuses them");
    let (bounds, cursors) = chunk_plan(log, shift, n_chunks);
    let mut rows: Vec<u32> = Vec::with_capacity(n);
    let out = SharedSlots(rows.as_mut_ptr());
    log.user.par_chunks(PIECE).zip(cursors.into_par_iter()).enumerate().for_each(|(p, (us, mut cur))| {
        for (j, &u) in us.iter().enumerate() {
            let slot = &mut cur[(u >> shift) as usize];
            // SAFETY: the (piece, chunk) cursors cover disjoint slots below n (the counts
            // came from these same users, whose column has length n: asserted above).
            unsafe { out.write(*slot, (p * PIECE + j) as u32) };
            *slot += 1;
        }
    });
    // SAFETY: all n slots were written above.
    unsafe { rows.set_len(n) };
    (rows, bounds)
}
