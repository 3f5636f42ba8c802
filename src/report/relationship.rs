//! The tables of the whole customer relationship (`docs/sources.md`): credit and roles by
//! customer segment, and what each source brought.

use crate::core::analysis::{SegmentAnalysis, FITTED};
use crate::core::event_log::{StagedSummary, UNATTRIBUTED};
use crate::core::table::{Table, Values};
use crate::report::{SourceTouches, TableName};

/// `segment_attribution`: grain (segmentation, segment, model, channel). Within one
/// segmentation and model, the rows sum to the run's conversions and value; `fit` says
/// whether the segment's own fit or the pooled one gave a fitted model's credit.
pub fn segment_attribution(segments: &[SegmentAnalysis]) -> Table {
    let mut c = Cols::default();
    for sa in segments {
        let a = &sa.analysis;
        for (m, credits) in &a.credits {
            let f = a.folded(credits);
            let fit = match (FITTED.contains(m), sa.pooled) {
                (false, _) => "rules",
                (true, false) => "segment",
                (true, true) => "pooled",
            };
            let mut rows: Vec<(&str, f64, f64)> = a
                .report_channels
                .iter()
                .enumerate()
                .map(|(i, ch)| (ch.as_str(), f.conversions[i], f.value[i]))
                .collect();
            if a.stats.unattributed_conversions > 0.0 {
                rows.push((UNATTRIBUTED, a.stats.unattributed_conversions, a.stats.unattributed_value));
            }
            for (ch, conv, value) in rows {
                c.key(sa, ch);
                c.model.push(m.name().to_owned());
                c.conversions.push(conv);
                c.value.push(value);
                c.fit.push(fit.to_owned());
            }
        }
    }
    Table::new(
        TableName::SegmentAttribution.as_str(),
        vec![
            ("segmentation", Values::Str(c.segmentation)),
            ("segment", Values::Str(c.segment)),
            ("model", Values::Str(c.model)),
            ("channel", Values::Str(c.channel)),
            ("conversions", Values::F64(c.conversions)),
            ("value", Values::F64(c.value)),
            ("fit", Values::Str(c.fit)),
        ],
    )
}

/// `segment_roles`: grain (segmentation, segment, channel): how each channel opens,
/// assists and closes the segment's journeys, and where they drop off.
pub fn segment_roles(segments: &[SegmentAnalysis]) -> Table {
    let mut c = Cols::default();
    let mut v: [Vec<f64>; 6] = Default::default();
    for sa in segments {
        let a = &sa.analysis;
        for (i, r) in a.folded_roles().iter().enumerate() {
            c.key(sa, &a.report_channels[i]);
            for (k, x) in [r.journeys, r.converting_journeys, r.first, r.assist, r.last, r.dropoffs]
                .into_iter()
                .enumerate()
            {
                v[k].push(x);
            }
        }
    }
    let [journeys, converting, first, assist, last, dropoffs] = v;
    Table::new(
        TableName::SegmentRoles.as_str(),
        vec![
            ("segmentation", Values::Str(c.segmentation)),
            ("segment", Values::Str(c.segment)),
            ("channel", Values::Str(c.channel)),
            ("journeys", Values::F64(journeys)),
            ("converting_journeys", Values::F64(converting)),
            ("first_touch_conversions", Values::F64(first)),
            ("assist_conversions", Values::F64(assist)),
            ("last_touch_conversions", Values::F64(last)),
            ("dropoff_journeys", Values::F64(dropoffs)),
        ],
    )
}

#[derive(Default)]
struct Cols {
    segmentation: Vec<String>,
    segment: Vec<String>,
    channel: Vec<String>,
    model: Vec<String>,
    conversions: Vec<f64>,
    value: Vec<f64>,
    fit: Vec<String>,
}

impl Cols {
    fn key(&mut self, sa: &SegmentAnalysis, channel: &str) {
        self.segmentation.push(sa.segmentation.clone());
        self.segment.push(sa.segment.clone());
        self.channel.push(channel.to_owned());
    }
}

/// `source_quality`: grain (source): rows read, rejected, without consent, repeated
/// conversion ids and kept, per source (rows of erased persons are as if never read).
pub fn source_quality(s: &StagedSummary) -> Table {
    let col =
        |f: fn(&crate::core::event_log::SourceCounts) -> u64| Values::U64(s.sources.iter().map(f).collect());
    Table::new(
        TableName::SourceQuality.as_str(),
        vec![
            ("source", Values::Str(s.sources.iter().map(|c| c.source.clone()).collect())),
            ("rows_read", col(|c| c.rows_read)),
            ("rows_rejected", col(|c| c.rows_rejected)),
            ("rows_without_consent", col(|c| c.rows_without_consent)),
            ("duplicate_conversions", col(|c| c.duplicate_conversions)),
            ("rows_kept", col(|c| c.rows_kept)),
        ],
    )
}

/// `source_channel_touches`: grain (source, channel).
pub fn source_channel_touches(s: &SourceTouches) -> Table {
    Table::new(
        TableName::SourceChannelTouches.as_str(),
        vec![
            ("source", Values::Str(s.keys.iter().map(|k| k.0.clone()).collect())),
            ("channel", Values::Str(s.keys.iter().map(|k| k.1.clone()).collect())),
            ("touches", Values::U64(s.touches.clone())),
            ("converting_journey_touches", Values::U64(s.converting_touches.clone())),
            ("first_touches", Values::U64(s.first_touches.clone())),
            ("last_touches", Values::U64(s.last_touches.clone())),
        ],
    )
}
