//! Segments (`docs/models.md` § Segments): the models run again on the journeys of each
//! customer segment. A journey takes the segment of its last event; the built-in customer
//! status is `new` until the person's first conversion among the events read, `returning`
//! after it. Rule-based models always split by segment; Markov and Shapley are fitted per
//! segment only when it has enough conversions, else the pooled fit's shares are scaled to
//! the segment's totals, and the `fit` column says so.

use crate::core::analysis::{self, Analysis, AnalyzeOptions, SegmentAnalysis, FITTED};
use crate::core::event_log::EventLog;
use crate::core::journeys::{self, EventOrder, JourneyOptions, Journeys, SegmentFilter};
use crate::error::Result;
use crate::settings::{Dedupe, Model, Settings};

/// The journeys of one segment.
pub struct SegmentJourneys {
    /// The segmentation: the segment column's name, or `customer_status`.
    pub segmentation: String,
    /// The segment.
    pub segment: String,
    journeys: Journeys,
}

/// Build every segment's journeys: one walk per segment over the run's sorted events.
pub fn segment_journeys(
    log: &EventLog,
    s: &Settings,
    order: &EventOrder,
    segmentation: &str,
) -> Vec<SegmentJourneys> {
    let mut filters: Vec<(String, String, SegmentFilter)> = Vec::new();
    if let Some(t) = &log.segment {
        for (i, name) in t.names.iter().enumerate() {
            filters.push((segmentation.to_owned(), name.clone(), SegmentFilter::Column(i as u32)));
        }
    }
    if s.segments.customer_status {
        for (name, r) in [("new", false), ("returning", true)] {
            filters.push(("customer_status".into(), name.into(), SegmentFilter::Returning(r)));
        }
    }
    if filters.is_empty() {
        return Vec::new();
    }
    filters
        .into_iter()
        .map(|(segmentation, segment, f)| {
            let mut opts = JourneyOptions::resolve(&s.journeys, log, s.has(Model::TimeDecay));
            opts.report = s.window().map(|w| w.range());
            opts.segment = Some(f);
            SegmentJourneys { segmentation, segment, journeys: journeys::build(log, order, &opts) }
        })
        .collect()
}

/// Run the models on each segment; small segments take the pooled fit for [`FITTED`].
/// `partition`: a shard's or a Spark chunk's segments (chains fitted, solved by the merge).
pub fn analyze_segments(
    list: Vec<SegmentJourneys>,
    pooled: &Analysis,
    s: &Settings,
    (channels, partition): (&[String], bool),
) -> Result<Vec<SegmentAnalysis>> {
    let mut models = s.models.clone();
    models.bootstrap_replicates = 0;
    list.into_iter()
        .map(|sj| {
            let opts = AnalyzeOptions {
                base_names: channels,
                models: &models,
                time_decay_credit: None,
                sequence_effects: false,
                dedupe: s.journeys.dedupe != Dedupe::None,
                training: None,
                partition,
            };
            let a = analysis::analyze(sj.journeys, &opts)?;
            Ok(finish_segment((sj.segmentation, sj.segment), a, pooled, s))
        })
        .collect()
}

/// A segment's analysis as the tables show it: below `segments.min_conversions`, the
/// fitted models take the pooled fit (one run and a merge of shards decide alike, on the
/// segment's whole conversions).
pub fn finish_segment(
    (segmentation, segment): (String, String),
    mut a: Analysis,
    pooled: &Analysis,
    s: &Settings,
) -> SegmentAnalysis {
    let pooled_fit = a.stats.total_conversions < s.segments.min_conversions;
    if pooled_fit {
        take_pooled_fit(&mut a, pooled);
    }
    SegmentAnalysis { segmentation, segment, analysis: a, pooled: pooled_fit }
}

/// Replace the fitted models' credits by the pooled fit's, scaled to the segment's
/// attributed conversions and value (so the segment still sums to its own totals).
fn take_pooled_fit(a: &mut Analysis, pooled: &Analysis) {
    let (conv, value) = (a.paths.total_conversions(), a.paths.total_value());
    for (m, credits) in a.credits.iter_mut() {
        if !FITTED.contains(m) {
            continue;
        }
        let Some((_, p)) = pooled.credits.iter().find(|(pm, _)| pm == m) else { continue };
        let (pc, pv): (f64, f64) = (p.conversions.iter().sum(), p.value.iter().sum());
        let scale = |x: f64, total: f64, own: f64| if total > 0.0 { x / total * own } else { 0.0 };
        credits.conversions = p.conversions.iter().map(|&x| scale(x, pc, conv)).collect();
        credits.value = p.value.iter().map(|&x| scale(x, pv, value)).collect();
    }
}
