//! Rule-based models over the path table (SPEC §3): each gives every touch of a converting
//! path a weight, the weights of a path sum to 1, and a channel's credit is the sum of its
//! touches' weights times the path's conversions (and times its value for value credit).
//!
//! Plain Rust over [`PathTable`]: no Polars here. Sums run over the sorted path table in
//! order, so credits are bit-reproducible.

use crate::paths::PathTable;

/// Credit per channel id: conversions and value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Credits {
    /// Conversion credit per channel id.
    pub conversions: Vec<f64>,
    /// Value credit per channel id.
    pub value: Vec<f64>,
}

impl Credits {
    fn zeros(n: usize) -> Self {
        Credits { conversions: vec![0.0; n], value: vec![0.0; n] }
    }

    fn add(&mut self, channel: u32, weight: f64, conversions: f64, value: f64) {
        self.conversions[channel as usize] += weight * conversions;
        self.value[channel as usize] += weight * value;
    }
}

/// All credit to the first touch.
pub fn first_touch(pt: &PathTable) -> Credits {
    let mut c = Credits::zeros(pt.channels.len());
    for r in pt.rows.iter().filter(|r| r.conversions > 0.0) {
        c.add(r.path[0], 1.0, r.conversions, r.value);
    }
    c
}

/// All credit to the last touch.
pub fn last_touch(pt: &PathTable) -> Credits {
    let mut c = Credits::zeros(pt.channels.len());
    for r in pt.rows.iter().filter(|r| r.conversions > 0.0) {
        c.add(*r.path.last().expect("paths are non-empty"), 1.0, r.conversions, r.value);
    }
    c
}

/// 1/L to every touch; a channel touched m times gets m/L.
pub fn linear(pt: &PathTable) -> Credits {
    let mut c = Credits::zeros(pt.channels.len());
    for r in pt.rows.iter().filter(|r| r.conversions > 0.0) {
        let w = 1.0 / r.path.len() as f64;
        for &ch in &r.path {
            c.add(ch, w, r.conversions, r.value);
        }
    }
    c
}
