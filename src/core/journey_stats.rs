//! Counts about the journeys of a run, merged over chunks and shards: what the
//! data-quality table reports.

/// Counts about the journeys, for the data-quality table.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JourneyStats {
    /// Distinct users with at least one kept event.
    pub users: u64,
    /// Journeys: converting (incl. unattributed) plus non-converting with at least one touch.
    pub journeys: u64,
    /// Converting journeys (every conversion closes one), including unattributed ones.
    pub converting_journeys: u64,
    /// Non-converting journeys with at least one touch.
    pub non_converting_journeys: u64,
    /// Conversions with no touch left after the lookback (reported as `(unattributed)`).
    pub unattributed_conversions: f64,
    /// Value of those conversions.
    pub unattributed_value: f64,
    /// All conversions, attributed or not.
    pub total_conversions: f64,
    /// Value of all conversions.
    pub total_value: f64,
    /// Touches dropped because they were older than the lookback.
    pub expired_touches: u64,
    /// Touches kept in journeys.
    pub touches: u64,
    /// `path_lengths[n]` = number of non-empty journeys with n touches.
    pub path_lengths: Vec<u64>,
    /// Exact duplicate events among those read (removed when `journeys.dedupe = "exact"`).
    #[serde(default)]
    pub duplicate_events: u64,
    /// `lag_days[d]` = converting journeys whose first counted touch was d whole days
    /// before the conversion (the last entry, [`MAX_LAG_DAYS`], holds every longer lag).
    #[serde(default)]
    pub lag_days: Vec<u64>,
    /// Closing mode only: non-converting journeys still open at the end of the range (their
    /// lookback has not passed), left out of the fit.
    #[serde(default)]
    pub open_journeys: u64,
    /// Distinct paths, when the path table is not on this machine (the distributed fit
    /// counts them where they are); `None`: the path table's rows are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct_paths: Option<u64>,
}

/// The longest time to conversion counted on its own day (longer lags share this entry).
pub const MAX_LAG_DAYS: usize = 365;

impl JourneyStats {
    /// Add another chunk's (or shard's) counts.
    pub fn merge(&mut self, o: &JourneyStats) {
        self.users += o.users;
        self.journeys += o.journeys;
        self.converting_journeys += o.converting_journeys;
        self.non_converting_journeys += o.non_converting_journeys;
        self.unattributed_conversions += o.unattributed_conversions;
        self.unattributed_value += o.unattributed_value;
        self.total_conversions += o.total_conversions;
        self.total_value += o.total_value;
        self.expired_touches += o.expired_touches;
        self.touches += o.touches;
        self.duplicate_events += o.duplicate_events;
        self.open_journeys += o.open_journeys;
        if self.lag_days.len() < o.lag_days.len() {
            self.lag_days.resize(o.lag_days.len(), 0);
        }
        for (a, b) in self.lag_days.iter_mut().zip(&o.lag_days) {
            *a += b;
        }
        if self.path_lengths.len() < o.path_lengths.len() {
            self.path_lengths.resize(o.path_lengths.len(), 0);
        }
        for (a, b) in self.path_lengths.iter_mut().zip(&o.path_lengths) {
            *a += b;
        }
    }

    /// The q-quantile (0..=1) of the path length over non-empty journeys (nearest rank).
    pub fn path_length_quantile(&self, q: f64) -> Option<u64> {
        let n: u64 = self.path_lengths.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut acc = 0;
        for (len, &c) in self.path_lengths.iter().enumerate() {
            acc += c;
            if acc >= rank {
                return Some(len as u64);
            }
        }
        None
    }
}
