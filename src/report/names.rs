//! The one registry of output tables: their names, in publication order.

use crate::settings::{MarkovOrder, Model, Settings};

/// Every table touchpoint writes. The order of the variants is the order of publication
/// and of the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TableName {
    /// Grain (model, channel).
    ChannelAttribution,
    /// Grain (model, channel group).
    ChannelGroupAttribution,
    /// Grain (model, group_a, group_b).
    GroupComparison,
    /// Grain (model, channel, campaign).
    CampaignAttribution,
    /// Grain (model, channel), with `input.experiments`.
    ChannelCalibration,
    /// Grain channel, with a window and spend: the response of credit to spend.
    SpendResponse,
    /// One row, with `spend_response.shift_from`/`shift_to`.
    BudgetShift,
    /// Grain (channel).
    ChannelRoles,
    /// Grain (group).
    ChannelGroupRoles,
    /// Grain (segmentation, segment, model, channel).
    SegmentAttribution,
    /// Grain (segmentation, segment, channel).
    SegmentRoles,
    /// Grain (measure, bucket).
    JourneyTiming,
    /// Grain (channel).
    MarkovRemovalEffects,
    /// Grain (from_state, to_state).
    MarkovTransitions,
    /// Grain (sequence).
    MarkovSequenceEffects,
    /// Grain (order).
    MarkovOrderSelection,
    /// Grain (channel, position).
    ShapleyOrdered,
    /// Grain (path).
    PathSummary,
    /// Grain (metric).
    DataQuality,
    /// Grain (source).
    SourceQuality,
    /// Grain (source, channel).
    SourceChannelTouches,
    /// Grain (journey, model, channel).
    JourneyCredit,
    /// Grain (model, channel): `touchpoint evaluate`'s credit against the known truth.
    ModelEvaluation,
    /// Grain (model): `touchpoint evaluate`'s scores.
    ModelScores,
    /// The partial path table of a shard run.
    PartialPaths,
    /// The bootstrap replicates' additive statistics of a shard run.
    PartialReplicates,
    /// The counted lags to conversion of a shard run.
    PartialLags,
    /// The group-level partial path table of a shard run (`[channel_groups]`).
    PartialGroupPaths,
    /// The group-level replicate statistics of a shard run.
    PartialGroupReplicates,
    /// The group-level counted lags of a shard run.
    PartialGroupLags,
    /// The customer segments' partial path tables of a shard run, one level after another.
    PartialSegmentPaths,
    /// The per-journey credit of a shard run, with each journey's person order key.
    PartialJourneyCredit,
    /// The campaign sums of a shard run (`core::campaigns`).
    PartialCampaigns,
}

impl TableName {
    /// Every table, in publication order.
    pub const ALL: [TableName; 33] = [
        TableName::ChannelAttribution,
        TableName::ChannelGroupAttribution,
        TableName::GroupComparison,
        TableName::CampaignAttribution,
        TableName::ChannelCalibration,
        TableName::SpendResponse,
        TableName::BudgetShift,
        TableName::ChannelRoles,
        TableName::ChannelGroupRoles,
        TableName::SegmentAttribution,
        TableName::SegmentRoles,
        TableName::JourneyTiming,
        TableName::MarkovRemovalEffects,
        TableName::MarkovTransitions,
        TableName::MarkovSequenceEffects,
        TableName::MarkovOrderSelection,
        TableName::ShapleyOrdered,
        TableName::PathSummary,
        TableName::DataQuality,
        TableName::SourceQuality,
        TableName::SourceChannelTouches,
        TableName::JourneyCredit,
        TableName::ModelEvaluation,
        TableName::ModelScores,
        TableName::PartialPaths,
        TableName::PartialReplicates,
        TableName::PartialLags,
        TableName::PartialGroupPaths,
        TableName::PartialGroupReplicates,
        TableName::PartialGroupLags,
        TableName::PartialSegmentPaths,
        TableName::PartialJourneyCredit,
        TableName::PartialCampaigns,
    ];

    /// Whether it is a file of a shard's partial (machine to machine, documented with the
    /// partial format in docs/scale.md), not a table of the report.
    pub fn is_partial(self) -> bool {
        self.as_str().starts_with("partial_")
    }

    /// The name of the table, also its file stem.
    pub fn as_str(self) -> &'static str {
        match self {
            TableName::ChannelAttribution => "channel_attribution",
            TableName::ChannelGroupAttribution => "channel_group_attribution",
            TableName::GroupComparison => "group_comparison",
            TableName::CampaignAttribution => "campaign_attribution",
            TableName::ChannelCalibration => "channel_calibration",
            TableName::SpendResponse => "spend_response",
            TableName::BudgetShift => "budget_shift",
            TableName::ChannelRoles => "channel_roles",
            TableName::JourneyTiming => "journey_timing",
            TableName::ChannelGroupRoles => "channel_group_roles",
            TableName::SegmentAttribution => "segment_attribution",
            TableName::SegmentRoles => "segment_roles",
            TableName::SourceQuality => "source_quality",
            TableName::SourceChannelTouches => "source_channel_touches",
            TableName::MarkovRemovalEffects => "markov_removal_effects",
            TableName::MarkovTransitions => "markov_transitions",
            TableName::MarkovSequenceEffects => "markov_sequence_effects",
            TableName::MarkovOrderSelection => "markov_order_selection",
            TableName::ShapleyOrdered => "shapley_ordered",
            TableName::PathSummary => "path_summary",
            TableName::DataQuality => "data_quality",
            TableName::JourneyCredit => "journey_credit",
            TableName::ModelEvaluation => "model_evaluation",
            TableName::ModelScores => "model_scores",
            TableName::PartialPaths => "partial_paths",
            TableName::PartialReplicates => "partial_replicates",
            TableName::PartialLags => "partial_lags",
            TableName::PartialGroupPaths => "partial_group_paths",
            TableName::PartialGroupReplicates => "partial_group_replicates",
            TableName::PartialGroupLags => "partial_group_lags",
            TableName::PartialSegmentPaths => "partial_segment_paths",
            TableName::PartialJourneyCredit => "partial_journey_credit",
            TableName::PartialCampaigns => "partial_campaigns",
        }
    }

    /// The tables a run with these settings writes, in order (for `--dry-run`; the
    /// sequence effects table appears only when the order used is ≥ 2).
    pub fn planned(settings: &Settings) -> Vec<TableName> {
        let m = &settings.models;
        let mut t = vec![TableName::ChannelAttribution];
        if !settings.channel_groups.is_empty() {
            t.push(TableName::ChannelGroupAttribution);
            if settings.input.spend.is_some() && m.bootstrap_replicates > 0 {
                t.push(TableName::GroupComparison);
            }
        }
        if settings.campaigns() {
            t.push(TableName::CampaignAttribution);
        }
        if settings.input.experiments.is_some() {
            t.push(TableName::ChannelCalibration);
        }
        if settings.window().is_some() && settings.input.spend.is_some() {
            t.push(TableName::SpendResponse);
            if settings.spend_response.shift_from.is_some() {
                t.push(TableName::BudgetShift);
            }
        }
        t.push(TableName::ChannelRoles);
        if !settings.channel_groups.is_empty() {
            t.push(TableName::ChannelGroupRoles);
        }
        if settings.segments.any(settings.columns.segment.is_some()) {
            t.extend([TableName::SegmentAttribution, TableName::SegmentRoles]);
        }
        t.push(TableName::JourneyTiming);
        // `markov_journey` splits by the chain's removal effects: the chain's tables too.
        if settings.has(Model::Markov) || settings.has(Model::MarkovJourney) {
            t.extend([TableName::MarkovRemovalEffects, TableName::MarkovTransitions]);
            let seq = match m.markov_order {
                MarkovOrder::Fixed(k) => k >= 2,
                MarkovOrder::Auto { .. } => true,
            };
            if seq && m.markov_max_sequences > 0 {
                t.push(TableName::MarkovSequenceEffects);
            }
            if matches!(m.markov_order, MarkovOrder::Auto { .. }) {
                t.push(TableName::MarkovOrderSelection);
            }
        }
        if settings.has(Model::Shapley) {
            t.push(TableName::ShapleyOrdered);
        }
        t.extend([TableName::PathSummary, TableName::DataQuality]);
        if settings.staged() {
            t.push(TableName::SourceQuality);
        }
        if settings.staged() || settings.columns.source.is_some() {
            t.push(TableName::SourceChannelTouches);
        }
        if settings.output.journey_credit {
            t.push(TableName::JourneyCredit);
        }
        t
    }
}
