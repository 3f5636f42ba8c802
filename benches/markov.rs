//! Micro-benchmarks of the user numbering, the event sort, the journey builder, the path
//! table aggregation and the exact Markov solver.
//!
//! Run: `cargo bench --bench markov` (release profile; results go to stdout).
//! Inputs are generated in memory by `touchpoint::engine::generate` (deterministic).

use std::sync::OnceLock;

use touchpoint::core::event_log::EventLog;
use touchpoint::core::journeys;
use touchpoint::core::markov;
use touchpoint::core::paths::PathTable;
use touchpoint::engine::generate::{generate, GenOptions};
use touchpoint::engine::{load_events, LoadOptions, ReadScope};
use touchpoint::settings::{JourneyRules, Settings};

fn main() {
    divan::main();
}

fn event_log() -> &'static EventLog {
    static LOG: OnceLock<EventLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.parquet");
        let mut df =
            generate(&GenOptions { users: 100_000, seed: 42, days: 60, first_user: 0, channels: 12 })
                .unwrap();
        touchpoint::engine::write_frame(&mut df, &path, touchpoint::settings::Format::Parquet).unwrap();
        let s = Settings::default();
        let scope = ReadScope::default();
        let opts = LoadOptions {
            columns: &s.columns,
            on_invalid: s.journeys.on_invalid_rows,
            scope: &scope,
            channel_rules: None,
            own_channel: false,
        };
        load_events(path.to_str().unwrap(), &opts).unwrap()
    })
}

fn build(log: &EventLog) -> journeys::Journeys {
    let opts = journeys::JourneyOptions::resolve(&JourneyRules::default(), log, false);
    journeys::build(log, &journeys::sort_events(log), &opts)
}

fn path_table() -> &'static PathTable {
    static PT: OnceLock<PathTable> = OnceLock::new();
    PT.get_or_init(|| build(event_log()).paths)
}

/// Journeys + path table from ~1M sorted-in-memory events.
#[divan::bench(sample_count = 10)]
fn journey_builder(b: divan::Bencher) {
    let log = event_log();
    b.bench(|| build(log));
}

/// Fit + exact removal effects of every channel, by order.
#[divan::bench(args = [1, 2, 3, 4], sample_count = 10)]
fn markov_exact(b: divan::Bencher, order: usize) {
    let pt = path_table();
    b.bench(|| markov::attribute(pt, order).unwrap());
}

/// A synthetic path table over `channels` channels: 20k paths of 1–8 touches.
fn synthetic(channels: u32) -> PathTable {
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let rows = (0..20_000).map(|_| {
        let len = 1 + (next() % 8) as usize;
        let path = (0..len).map(|_| (next() % channels as u64) as u32).collect();
        let conv = (next() % 10 == 0) as u8 as f64;
        touchpoint::core::paths::PathRow { path, conversions: conv, nulls: 1.0 - conv, value: conv * 50.0 }
    });
    PathTable::from_rows((0..channels).map(|c| format!("c{c:03}")).collect(), rows)
}

/// Exact order-1 removal effects as the number of channels grows (one dense LU for all of them).
#[divan::bench(args = [10, 50, 200, 500], sample_count = 5)]
fn markov_channels(b: divan::Bencher, channels: u32) {
    let pt = synthetic(channels);
    b.bench(|| markov::attribute(&pt, 1).unwrap());
}

/// The path-table aggregation alone (merging repeated paths).
#[divan::bench(sample_count = 10)]
fn path_table_aggregation(b: divan::Bencher) {
    let pt = path_table();
    let rows: Vec<_> = pt.rows.iter().flat_map(|r| [r.clone(), r.clone()]).collect();
    b.bench(|| PathTable::from_rows(pt.channels.clone(), rows.iter().cloned()));
}

/// The event sort alone (MSD by chunk of users, then user, then time), ~1M events.
#[divan::bench(sample_count = 10)]
fn sort_events(b: divan::Bencher) {
    let log = event_log();
    b.bench(|| journeys::sort_events(log));
}

/// Dense user ids from 128-bit keys (the input layer's user numbering): 10M rows, 1M users.
#[divan::bench(sample_count = 5)]
fn user_numbering_10m(b: divan::Bencher) {
    use touchpoint::core::intern::{bucket_count, dense_ids, hash_bucket};
    let keys: Vec<u128> = (0..10_000_000u64)
        .map(|i| xxhash_rust::xxh3::xxh3_128(&(i.wrapping_mul(2_654_435_761) % 1_000_000).to_le_bytes()))
        .collect();
    let nb = bucket_count(keys.len());
    b.bench(|| {
        dense_ids(keys.len(), nb, hash_bucket(nb), |at, len, out| {
            out.extend(keys[at..at + len].iter().map(|&k| Some(k)))
        })
    });
}
