//! A Markov chain's counts named by channel tuples, so that counts from disjoint path
//! tables add up: the distributed fit (Spark) counts edges partition by partition, sums
//! them by name, and the driver builds the one chain those sums define
//! ([`from_edge_counts`]), the same chain [`Chain::fit`] builds from the whole table.

use rustc_hash::FxHashMap;

use crate::core::markov::{for_each_state, merge_edges, Chain, EdgePart, Target, CONV, NULL};
use crate::core::paths::PathTable;

/// Where an edge goes, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum End {
    /// A transient state: its channel tuple.
    State(Vec<u32>),
    /// The conversion state.
    Conversion,
    /// The null state.
    Null,
}

/// One edge: from a state (the empty tuple is `(start)`), to an end, with its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeCount {
    /// The source state's channel tuple.
    pub from: Vec<u32>,
    /// The target.
    pub to: End,
    /// Journeys along the edge.
    pub count: f64,
}

/// Value and conversions of the converting journeys that end in one state (what the
/// chain's mean value per conversion of that state is made of).
#[derive(Debug, Clone, PartialEq)]
pub struct EndValue {
    /// The last state's channel tuple.
    pub state: Vec<u32>,
    /// Conversion value.
    pub value: f64,
    /// Conversions.
    pub conversions: f64,
}

/// The edges of a fitted chain, by name.
pub fn edge_counts(chain: &Chain) -> Vec<EdgeCount> {
    let state = |s: u32| chain.states[s as usize].clone();
    chain
        .transitions
        .iter()
        .map(|t| EdgeCount {
            from: state(t.from),
            to: match t.to {
                Target::State(s) => End::State(state(s)),
                Target::Conversion => End::Conversion,
                Target::Null => End::Null,
            },
            count: t.count,
        })
        .collect()
}

/// The value and conversions of each last state of the converting paths of a table.
pub fn end_values(pt: &PathTable, k: usize) -> Vec<EndValue> {
    let mut ends: FxHashMap<&[u32], (f64, f64)> = FxHashMap::default();
    for r in pt.rows.iter().filter(|r| r.conversions > 0.0) {
        let mut last: &[u32] = &[];
        for_each_state(&r.path, k, |st| last = st);
        let e = ends.entry(last).or_insert((0.0, 0.0));
        e.0 += r.value;
        e.1 += r.conversions;
    }
    let mut out: Vec<EndValue> = ends
        .into_iter()
        .map(|(s, (value, conversions))| EndValue { state: s.to_vec(), value, conversions })
        .collect();
    out.sort_by(|a, b| a.state.cmp(&b.state));
    out
}

/// The chain of order `k` that these summed counts define: states numbered in sorted tuple
/// order after `(start)`, as [`Chain::fit`] numbers them.
pub fn from_edge_counts(k: usize, n_channels: usize, edges: &[EdgeCount], ends: &[EndValue]) -> Chain {
    let mut tuples: Vec<&[u32]> = edges
        .iter()
        .flat_map(|e| {
            let to = match &e.to {
                End::State(s) => Some(s.as_slice()),
                _ => None,
            };
            std::iter::once(e.from.as_slice()).chain(to)
        })
        .filter(|t| !t.is_empty())
        .collect();
    tuples.sort_unstable();
    tuples.dedup();
    let id = |t: &[u32]| -> u32 {
        match t.is_empty() {
            true => 0,
            false => tuples.binary_search(&t).map_or(0, |i| i as u32 + 1),
        }
    };
    let mut part = EdgePart::default();
    for e in edges {
        let to = match &e.to {
            End::State(s) => id(s),
            End::Conversion => CONV,
            End::Null => NULL,
        };
        *part.counts.entry(((id(&e.from) as u64) << 32) | to as u64).or_insert(0.0) += e.count;
    }
    for e in ends {
        let v = part.ends.entry(id(&e.state)).or_insert((0.0, 0.0));
        v.0 += e.value;
        v.1 += e.conversions;
    }
    let mut states: Vec<Vec<u32>> = Vec::with_capacity(tuples.len() + 1);
    states.push(Vec::new());
    states.extend(tuples.iter().map(|t| t.to_vec()));
    let (transitions, last_state_value) = merge_edges(vec![part], states.len());
    Chain::from_parts(k, states, transitions, last_state_value, n_channels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::paths::PathRow;

    fn row(path: &[u32], conversions: f64, nulls: f64, value: f64) -> PathRow {
        PathRow { path: path.to_vec(), conversions, nulls, value }
    }

    /// Counting two halves of a table apart and adding the counts by name gives the chain
    /// fitted to the whole table, at orders 1 to 3.
    #[test]
    fn halves_add_up_to_the_whole_fit() {
        let rows = vec![
            row(&[0], 2.0, 1.0, 20.0),
            row(&[0, 1], 1.0, 2.0, 5.0),
            row(&[0, 1, 2, 1], 0.0, 3.0, 0.0),
            row(&[1, 2], 3.0, 0.0, 33.0),
            row(&[2, 0, 0, 1], 1.0, 1.0, 7.0),
            row(&[2], 0.0, 4.0, 0.0),
        ];
        let channels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let whole = PathTable::from_rows(channels.clone(), rows.clone());
        let left = PathTable::from_rows(channels.clone(), rows[..3].to_vec());
        let right = PathTable::from_rows(channels.clone(), rows[3..].to_vec());
        for k in 1..=3 {
            let fit = Chain::fit(&whole, k);
            let mut edges = edge_counts(&Chain::fit(&left, k));
            edges.extend(edge_counts(&Chain::fit(&right, k)));
            let mut ends = end_values(&left, k);
            ends.extend(end_values(&right, k));
            let summed = from_edge_counts(k, 3, &edges, &ends);
            assert_eq!(summed.states, fit.states, "order {k}");
            assert_eq!(summed.transitions, fit.transitions, "order {k}");
            assert_eq!(summed.last_state_value, fit.last_state_value, "order {k}");
        }
    }
}
