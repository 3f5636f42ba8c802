//! The run's journeys: the events sorted and walked into paths, all at once or, when the
//! segments walk them again, through the kept order.

use std::time::Instant;

use crate::core::event_log::{event_id_duplicates, EventLog};
use crate::core::journeys::{self, JourneyOptions, Journeys};
use crate::settings::{Dedupe, Model, Settings};

/// Sort the events and build the channel journeys; with a campaign column, also the
/// campaign of every recorded touch; the duplicate rows (they serve the group level); and,
/// with `keep_order`, the sorted order (the segments' walks). Without it, each chunk of
/// users is sorted and walked at once (`journeys::sort_and_build`): the order of every
/// event, 20 bytes each, is never held.
pub(super) fn build_journeys(
    log: &EventLog,
    s: &Settings,
    (index, keep_order): (bool, bool),
) -> (Journeys, Option<Vec<u32>>, Vec<u32>, Option<journeys::EventOrder>) {
    let campaign = log.campaign.as_ref();
    // Recorded journeys also give channel_roles its days and touches to conversion (null
    // without them: recording costs ~5% of a 10M-event run that needs it for nothing else).
    let record =
        s.output.journey_credit || s.has(Model::TimeDecay) || campaign.is_some() || log.source.is_some();
    let mut opts = JourneyOptions::resolve(&s.journeys, log, record);
    opts.report = s.window().map(|w| w.range());
    opts.index = index;
    let (j, duplicates, order) = if keep_order {
        let t = Instant::now();
        let order = event_order(log, s);
        tracing::debug!(ms = t.elapsed().as_millis(), "sorted events");
        (journeys::build(log, &order, &opts), order.duplicates.clone(), Some(order))
    } else {
        let by_event_id = match (s.journeys.dedupe, &log.event_key) {
            (Dedupe::EventId, Some(keys)) => Some(event_id_duplicates(log, keys)),
            _ => None,
        };
        let (j, duplicates) = journeys::sort_and_build(log, &opts, by_event_id);
        (j, duplicates, None)
    };
    tracing::info!(
        journeys = j.stats.journeys,
        converting = j.stats.converting_journeys,
        paths = j.paths.rows.len(),
        "built journeys"
    );
    let touch_campaign = campaign.map(|c| {
        j.recorded.as_ref().map_or_else(Vec::new, |r| r.row.iter().map(|&row| c[row as usize]).collect())
    });
    (j, touch_campaign, duplicates, order)
}

/// The events in journey order, with the duplicates that `journeys.dedupe` skips.
pub(super) fn event_order(log: &EventLog, s: &Settings) -> journeys::EventOrder {
    let mut order = journeys::sort_events(log);
    if let (Dedupe::EventId, Some(keys)) = (s.journeys.dedupe, &log.event_key) {
        order.duplicates = event_id_duplicates(log, keys);
    }
    order
}
