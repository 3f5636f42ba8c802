//! The path table: one row per distinct channel sequence (`docs/models.md` § Path table).
//!
//! Every model consumes this table and nothing else (time decay excepted, which needs touch
//! times and is computed per journey). Rows are merged by path and sorted by path, so every
//! sum over the table runs in one fixed order and results are bit-reproducible.

use rustc_hash::FxHashMap;

/// One distinct path and what happened on it.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRow {
    /// Channel ids, in touch order (indices into [`PathTable::channels`]).
    pub path: Vec<u32>,
    /// Journeys with this path that converted (a real number: aggregated inputs may carry
    /// fractional weights, which are kept exactly).
    pub conversions: f64,
    /// Journeys with this path that did not convert.
    pub nulls: f64,
    /// Total conversion value of the converting journeys of this path.
    pub value: f64,
}

/// Distinct paths with their counts; never contains an empty path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathTable {
    /// Channel names, sorted; a channel id is an index into this list.
    pub channels: Vec<String>,
    /// Rows, sorted by path, one per distinct path.
    pub rows: Vec<PathRow>,
}

impl PathTable {
    /// Build a table from rows that may repeat paths: merges them (summing in the given
    /// order) and sorts by path. Empty paths are not allowed here (they are unattributed
    /// conversions, handled by the journey layer).
    pub fn from_rows(channels: Vec<String>, rows: impl IntoIterator<Item = PathRow>) -> Self {
        let mut index: FxHashMap<Vec<u32>, usize> = FxHashMap::default();
        let mut merged: Vec<PathRow> = Vec::new();
        for r in rows {
            debug_assert!(!r.path.is_empty(), "empty paths are unattributed, not modelled");
            match index.get(&r.path) {
                Some(&i) => {
                    let m = &mut merged[i];
                    m.conversions += r.conversions;
                    m.nulls += r.nulls;
                    m.value += r.value;
                }
                None => {
                    index.insert(r.path.clone(), merged.len());
                    merged.push(r);
                }
            }
        }
        merged.sort_by(|a, b| a.path.cmp(&b.path));
        PathTable { channels, rows: merged }
    }

    /// Build a table from string paths such as `"A > B > C"` (the ChannelAttribution
    /// convention): tokens are trimmed, empty tokens dropped, rows with no token left are
    /// skipped. Channel ids are assigned in sorted name order.
    pub fn from_string_paths<'a>(
        sep: &str,
        rows: impl IntoIterator<Item = (&'a str, f64, f64, f64)>,
    ) -> Self {
        let rows: Vec<(Vec<&str>, f64, f64, f64)> = rows
            .into_iter()
            .map(|(p, c, n, v)| {
                let toks: Vec<&str> = p.split(sep).map(str::trim).filter(|t| !t.is_empty()).collect();
                (toks, c, n, v)
            })
            .filter(|r| !r.0.is_empty())
            .collect();
        let mut names: Vec<String> = rows.iter().flat_map(|r| r.0.iter().map(|s| s.to_string())).collect();
        names.sort();
        names.dedup();
        let id = |s: &str| names.binary_search_by(|n| n.as_str().cmp(s)).expect("interned") as u32;
        let parsed: Vec<PathRow> = rows
            .iter()
            .map(|(toks, c, n, v)| PathRow {
                path: toks.iter().map(|t| id(t)).collect(),
                conversions: *c,
                nulls: *n,
                value: *v,
            })
            .collect();
        PathTable::from_rows(names, parsed)
    }

    /// Total conversions of the modelled (non-empty) journeys.
    pub fn total_conversions(&self) -> f64 {
        self.rows.iter().map(|r| r.conversions).sum()
    }

    /// Total value of the modelled journeys.
    pub fn total_value(&self) -> f64 {
        self.rows.iter().map(|r| r.value).sum()
    }

    /// Total non-converting journeys.
    pub fn total_nulls(&self) -> f64 {
        self.rows.iter().map(|r| r.nulls).sum()
    }

    /// A path rendered with ` > ` between channel names.
    pub fn path_name(&self, path: &[u32]) -> String {
        let mut s = String::new();
        for (i, &c) in path.iter().enumerate() {
            if i > 0 {
                s.push_str(PATH_JOIN);
            }
            s.push_str(&self.channels[c as usize]);
        }
        s
    }
}

/// Merge path tables sorted by path, each with unique paths: equal paths are summed in
/// table order (shard order, as in a single pass). One output allocation: growing the
/// merged table partial by partial would allocate (and keep) a new, larger table each time.
pub fn merge_sorted(parts: Vec<Vec<PathRow>>) -> Vec<PathRow> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut out: Vec<PathRow> = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    let mut iters: Vec<std::vec::IntoIter<PathRow>> = parts.into_iter().map(|p| p.into_iter()).collect();
    // Heap of (path, table index); the head row of each table is held in `heads`.
    let mut heads: Vec<Option<PathRow>> = iters.iter_mut().map(|it| it.next()).collect();
    let mut heap: BinaryHeap<Reverse<(Vec<u32>, usize)>> = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_ref().map(|r| Reverse((r.path.clone(), i))))
        .collect();
    while let Some(Reverse((_, i))) = heap.pop() {
        let row = heads[i].take().expect("a head for every heap entry");
        heads[i] = iters[i].next();
        if let Some(r) = &heads[i] {
            heap.push(Reverse((r.path.clone(), i)));
        }
        match out.last_mut() {
            Some(last) if last.path == row.path => {
                last.conversions += row.conversions;
                last.nulls += row.nulls;
                last.value += row.value;
            }
            _ => out.push(row),
        }
    }
    out
}

/// The `n` converting paths with the most conversions (ties by path), most first: what the
/// page lists. `top` may hold an earlier block's answer, so blocks can be folded in one by
/// one (the bounded merge never holds every path).
pub fn top_converting<'a>(top: &mut Vec<PathRow>, rows: impl Iterator<Item = &'a PathRow>, n: usize) {
    top.extend(rows.filter(|r| r.conversions > 0.0).cloned());
    top.sort_by(|x, y| y.conversions.total_cmp(&x.conversions).then(x.path.cmp(&y.path)));
    top.truncate(n);
}

/// How channels are joined in a path's name (`path_summary`, the page).
pub const PATH_JOIN: &str = " > ";

/// One row of `path_summary`, for writers that build the table a batch at a time (the
/// bounded merge's external sort).
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// The path's name (`a > b > c`).
    pub path: String,
    /// Its length.
    pub touches: u32,
    /// Converting journeys.
    pub conversions: f64,
    /// Journeys that did not convert.
    pub nulls: f64,
    /// Conversion value.
    pub value: f64,
}

/// A key that sorts non-negative counts in descending order as unsigned integers:
/// `path_summary` sorts by (conversions, nulls) descending, then path order, and both the
/// in-memory sort and the bounded merge's external sort use these keys, so they agree row
/// for row.
pub fn descending(x: f64) -> u64 {
    !x.to_bits() ^ if x.is_sign_negative() { 0 } else { 1 << 63 }
}
