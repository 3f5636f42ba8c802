//! Unit tests of the journey layer's private parts (sorting, path order).

use super::*;

#[test]
#[should_panic(expected = "differ in length")]
fn sorting_a_log_with_columns_of_different_lengths_panics() {
    let log = EventLog {
        user: vec![0, 0, 1],
        ts: vec![1, 2, 3],
        channel: vec![0],
        is_conversion: vec![false, true, false],
        value: vec![0.0; 3],
        ..EventLog::default()
    };
    let _ = sort_events(&log);
}

#[test]
fn path_order_is_the_order_of_the_slices_then_the_chunk() {
    // Short and long paths (beyond the packed prefix), duplicates across chunks, and
    // a large id so that few channels fit in the prefix.
    let mut x = 7u64;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    for max in [3u64, 12, 70_000] {
        let mut entries: Vec<(Box<[u32]>, usize, Agg)> = Vec::new();
        for chunk in 0..40 {
            for _ in 0..50 {
                let len = 1 + next(25) as usize;
                let path: Vec<u32> = (0..len).map(|_| next(max.min(4)) as u32).collect();
                let mut path = path;
                if next(10) == 0 {
                    path[0] = max as u32 - 1;
                }
                entries.push((path.into_boxed_slice(), chunk, Agg::default()));
            }
        }
        let mut want: Vec<usize> = (0..entries.len()).collect();
        want.sort_by(|&a, &b| entries[a].0.cmp(&entries[b].0).then(a.cmp(&b)));
        assert_eq!(path_order(&entries), want, "max id {max}");
    }
}

/// The chunk-at-a-time build (`sort_and_build`) against the full order's (`sort_events` +
/// `build`): the same paths, statistics, recorded touches, index and duplicates, on a log
/// of many chunks with exact duplicates, ties on time and conversions sharing a time.
#[test]
fn sorting_and_walking_chunk_by_chunk_builds_what_the_full_order_builds() {
    let mut x = 11u64;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let n = 60_000;
    let mut log = EventLog {
        channels: (0..6).map(|c| format!("c{c}")).collect(),
        n_users: 9_000,
        ..EventLog::default()
    };
    for _ in 0..n {
        log.user.push(next(9_000) as u32);
        log.ts.push(next(400) as i64 * 3_600_000_000);
        log.channel.push(next(6) as u32);
        let conv = next(8) == 0;
        log.is_conversion.push(conv);
        log.value.push(if conv { next(100) as f64 } else { 0.0 });
    }
    for i in (0..n).step_by(97) {
        // Exact copies of earlier rows, later in the file.
        log.user.push(log.user[i]);
        log.ts.push(log.ts[i]);
        log.channel.push(log.channel[i]);
        log.is_conversion.push(log.is_conversion[i]);
        log.value.push(log.value[i]);
    }
    let mut opts = JourneyOptions::resolve(&JourneyRules::default(), &log, true);
    opts.index = true;
    let order = sort_events(&log);
    assert!(!order.duplicates.is_empty() && order.bounds.len() > 2, "duplicates and several chunks");
    let by_event_id: Vec<u32> = (0..n as u32).step_by(31).collect();
    for (dedupe, ev) in [(true, None), (false, None), (true, Some(by_event_id.clone()))] {
        opts.dedupe = dedupe;
        let mut full = order.clone();
        if let Some(ev) = &ev {
            full.duplicates = ev.clone();
        }
        let want = build(&log, &full, &opts);
        let (got, duplicates) = sort_and_build(&log, &opts, ev);
        assert_eq!(duplicates, full.duplicates);
        assert_eq!(got.paths, want.paths, "dedupe {dedupe}");
        assert_eq!(got.stats, want.stats);
        assert_eq!(got.recorded, want.recorded);
        assert_eq!(got.index, want.index);
    }
}
