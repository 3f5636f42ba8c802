//! Micro-benchmarks of the journey builder and the exact Markov solver.
//!
//! Run: `cargo bench --bench markov` (release profile; results go to stdout).
//! Inputs are generated in memory by `touchpoint::generate` (deterministic).

use std::sync::OnceLock;

use touchpoint::config::{JourneyRules, Settings};
use touchpoint::generate::{generate, GenOptions};
use touchpoint::input::{load_events, EventLog};
use touchpoint::journeys;
use touchpoint::markov;
use touchpoint::paths::PathTable;

fn main() {
    divan::main();
}

fn event_log() -> &'static EventLog {
    static LOG: OnceLock<EventLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.parquet");
        let mut df = generate(&GenOptions { users: 100_000, seed: 42, days: 60 }).unwrap();
        touchpoint::output::write_table(&mut df, &path, touchpoint::config::Format::Parquet).unwrap();
        let s = Settings::default();
        load_events(path.to_str().unwrap(), &s.columns, s.journeys.on_invalid_rows).unwrap()
    })
}

fn path_table() -> &'static PathTable {
    static PT: OnceLock<PathTable> = OnceLock::new();
    PT.get_or_init(|| journeys::build(event_log(), &JourneyRules::default()).paths)
}

/// Journeys + path table from ~1M sorted-in-memory events.
#[divan::bench(sample_count = 10)]
fn journey_builder(b: divan::Bencher) {
    let log = event_log();
    b.bench(|| journeys::build(log, &JourneyRules::default()));
}

/// Fit + exact removal effects of every channel, by order.
#[divan::bench(args = [1, 2, 3, 4], sample_count = 10)]
fn markov_exact(b: divan::Bencher, order: usize) {
    let pt = path_table();
    b.bench(|| markov::attribute(pt, order).unwrap());
}
