//! Journeys kept one by one beside the path table: the converting journeys with their
//! touches (time decay, campaigns, per-journey credit) and the index of every modelled
//! journey by user and path row (the bootstrap resamples users through it).

use crate::core::journeys::Touch;

/// Converting non-empty journeys, in (user, conversion number) order, with their touches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    /// Dense user id.
    pub user: Vec<u32>,
    /// 1 + the number of earlier conversions of the user at the same instant (almost always
    /// 1), so `(user, conversion_ts, seq)` identifies a journey in every run.
    pub seq: Vec<u32>,
    /// Conversion time, µs.
    pub conversion_ts: Vec<i64>,
    /// Row of the conversion in the event log (its id, type and segment).
    pub conversion_row: Vec<u32>,
    /// Conversion value.
    pub value: Vec<f64>,
    /// `touches[offsets[i]..offsets[i + 1]]` are journey i's touches.
    pub offsets: Vec<u32>,
    /// Channel ids (path-table ids) of the touches.
    pub channel: Vec<u32>,
    /// Times of the touches, µs.
    pub ts: Vec<i64>,
    /// Rows of the touches in the event log (for per-touch attributes such as campaign).
    pub row: Vec<u32>,
}

impl Recorded {
    /// Number of journeys.
    pub fn len(&self) -> usize {
        self.user.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }

    /// Touch range of journey i.
    pub fn range(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i] as usize..self.offsets[i + 1] as usize
    }

    pub(crate) fn push(&mut self, (user, seq, row): (u32, u32, u32), ts: i64, value: f64, touches: &[Touch]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.user.push(user);
        self.seq.push(seq);
        self.conversion_ts.push(ts);
        self.conversion_row.push(row);
        self.value.push(value);
        self.channel.extend(touches.iter().map(|t| t.channel));
        self.ts.extend(touches.iter().map(|t| t.ts));
        self.row.extend(touches.iter().map(|t| t.row));
        self.offsets.push(self.channel.len() as u32);
    }

    pub(crate) fn append(&mut self, o: Recorded) {
        if o.is_empty() {
            return;
        }
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let base = *self.offsets.last().expect("non-empty");
        self.user.extend(o.user);
        self.seq.extend(o.seq);
        self.conversion_ts.extend(o.conversion_ts);
        self.conversion_row.extend(o.conversion_row);
        self.value.extend(o.value);
        self.offsets.extend(o.offsets[1..].iter().map(|x| x + base));
        self.channel.extend(o.channel);
        self.ts.extend(o.ts);
        self.row.extend(o.row);
    }
}

/// Every modelled journey (non-empty path) by user and path-table row, in user order: what
/// the bootstrap needs to reweight the path table by user without rebuilding journeys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JourneyIndex {
    /// Dense user id.
    pub user: Vec<u32>,
    /// Row of the journey's path in the path table.
    pub path: Vec<u32>,
    /// Conversion value; `None` for a non-converting journey.
    pub value: Vec<Option<f64>>,
    /// The stable key of every dense user id ([`crate::core::event_log::EventLog::user_key`]),
    /// mixed once: what the bootstrap's weights are drawn from.
    pub person: Vec<u64>,
}

impl JourneyIndex {
    /// Number of journeys.
    pub fn len(&self) -> usize {
        self.user.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }
}
