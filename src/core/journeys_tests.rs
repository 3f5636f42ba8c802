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
