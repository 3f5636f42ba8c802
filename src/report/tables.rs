//! The output tables: stable snake_case columns, one grain each, rows in a fixed order
//! (`docs/models.md` § Tables). No credit is computed here beyond folding and the
//! per-journey split of the weights defined in [`crate::core::models`].

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::names::TableName;
use crate::core::analysis::{Analysis, CampaignCredits};
use crate::core::bootstrap::Intervals;
use crate::core::event_log::{InputSummary, RejectReason, UNATTRIBUTED};
use crate::core::markov::{MarkovResult, OrderScore};
use crate::core::models::Credits;
use crate::core::paths::{descending, SummaryRow};
use crate::core::roles::Roles;
use crate::core::table::{Table, Values};
use crate::settings::Model;

fn share(x: f64, total: f64) -> Option<f64> {
    (total > 0.0).then(|| x / total)
}

/// The rows shared by the credit tables: one per (model, key), plus `(unattributed)` per
/// model when there are such conversions (`key` None).
pub(super) struct CreditRows {
    pub(super) model: Vec<&'static str>,
    pub(super) key: Vec<Option<usize>>,
    pub(super) conversions: Vec<f64>,
    pub(super) value: Vec<f64>,
}

/// Credit rows of `credits` (per model, in key space), with the analysis' totals.
pub(super) fn credit_rows(a: &Analysis, credits: &[(Model, Credits)]) -> CreditRows {
    let mut r = CreditRows { model: Vec::new(), key: Vec::new(), conversions: Vec::new(), value: Vec::new() };
    for (m, c) in credits {
        for i in 0..c.conversions.len() {
            r.model.push(m.name());
            r.key.push(Some(i));
            r.conversions.push(c.conversions[i]);
            r.value.push(c.value[i]);
        }
        if a.stats.unattributed_conversions > 0.0 {
            r.model.push(m.name());
            r.key.push(None);
            r.conversions.push(a.stats.unattributed_conversions);
            r.value.push(a.stats.unattributed_value);
        }
    }
    r
}

impl CreditRows {
    /// The columns after the key columns: credits and shares of the analysis' totals.
    fn measures(self, a: &Analysis) -> Vec<(&'static str, Values)> {
        let (tc, tv) = (a.stats.total_conversions, a.stats.total_value);
        let cs = self.conversions.iter().map(|&c| share(c, tc)).collect();
        let vs = self.value.iter().map(|&v| share(v, tv)).collect();
        vec![
            ("conversions", Values::F64(self.conversions)),
            ("value", Values::F64(self.value)),
            ("conversion_share", Values::OptF64(cs)),
            ("value_share", Values::OptF64(vs)),
        ]
    }
}

/// `channel_attribution`: grain (model, channel).
pub fn channel_attribution(a: &Analysis, spend: Option<&BTreeMap<String, f64>>) -> Table {
    credit_table(TableName::ChannelAttribution, "channel", a, spend)
}

/// `channel_group_attribution`: grain (model, group), from the group-level analysis.
pub fn channel_group_attribution(a: &Analysis, spend: Option<&BTreeMap<String, f64>>) -> Table {
    credit_table(TableName::ChannelGroupAttribution, "group", a, spend)
}

/// Credit per (model, key) with shares, and with spend its CPA and ROAS.
fn credit_table(
    name: TableName,
    key: &'static str,
    a: &Analysis,
    spend: Option<&BTreeMap<String, f64>>,
) -> Table {
    // Channels with spend but no events are listed (with no credit) after the others, not
    // dropped: money spent on a channel that brought nothing is the point of the table.
    let mut names: Vec<&str> = a.report_channels.iter().map(String::as_str).collect();
    let spend_only: Vec<&str> = spend
        .map_or_else(Vec::new, |sp| sp.keys().map(String::as_str).filter(|c| !names.contains(c)).collect());
    names.extend(&spend_only);
    let credits: Vec<(Model, Credits)> = a
        .credits
        .iter()
        .map(|(m, c)| {
            let mut f = a.folded(c);
            f.conversions.resize(names.len(), 0.0);
            f.value.resize(names.len(), 0.0);
            (*m, f)
        })
        .collect();
    let rows = credit_rows(a, &credits);
    let channel: Vec<String> =
        rows.key.iter().map(|k| k.map_or(UNATTRIBUTED, |i| names[i]).to_owned()).collect();
    let extra = spend.map(|sp| spend_columns(&channel, sp, &rows)).unwrap_or_default();
    let bounds = interval_rows((a, a.intervals.as_ref()), &rows, names.len());
    let interval_extra = bounds.columns(spend.map(|sp| (sp, channel.as_slice())));
    let mut all = vec![
        ("model", Values::Str(rows.model.iter().map(|m| m.to_string()).collect())),
        (key, Values::Str(channel.clone())),
    ];
    all.extend(rows.measures(a));
    all.extend(extra);
    all.extend(interval_extra);
    Table::new(name.as_str(), all)
}

/// Bootstrap bounds of each credit row (None: no intervals, or the `(unattributed)` row,
/// which no channel model credits).
struct IntervalRows {
    conversions: Vec<Option<(f64, f64)>>,
    value: Vec<Option<(f64, f64)>>,
}

fn interval_rows((a, iv): (&Analysis, Option<&Intervals>), rows: &CreditRows, n_keys: usize) -> IntervalRows {
    let mut bounds: Vec<(&str, Credits, Credits)> = Vec::new();
    if let Some(iv) = iv {
        for (m, _) in &a.credits {
            if let Some((mut lo, mut hi)) = iv.bounds(*m) {
                for c in [&mut lo, &mut hi] {
                    c.conversions.resize(n_keys, 0.0);
                    c.value.resize(n_keys, 0.0);
                }
                bounds.push((m.name(), lo, hi));
            }
        }
    }
    let at = |i: usize, f: fn(&Credits) -> &Vec<f64>| {
        let b = bounds.iter().find(|b| b.0 == rows.model[i])?;
        rows.key[i].map(|k| (f(&b.1)[k], f(&b.2)[k]))
    };
    IntervalRows {
        conversions: (0..rows.model.len()).map(|i| at(i, |c| &c.conversions)).collect(),
        value: (0..rows.model.len()).map(|i| at(i, |c| &c.value)).collect(),
    }
}

impl IntervalRows {
    /// `conversions_low` … `roas_high`: CPA's bounds come from the conversion bounds
    /// (spend is a fixed amount, not resampled), ROAS's from the value bounds.
    fn columns<K: Ord>(self, spend: Option<(&BTreeMap<K, f64>, &[K])>) -> Vec<(&'static str, Values)> {
        let lo = |v: &[Option<(f64, f64)>]| Values::OptF64(v.iter().map(|b| b.map(|b| b.0)).collect());
        let hi = |v: &[Option<(f64, f64)>]| Values::OptF64(v.iter().map(|b| b.map(|b| b.1)).collect());
        let mut out = vec![
            ("conversions_low", lo(&self.conversions)),
            ("conversions_high", hi(&self.conversions)),
            ("value_low", lo(&self.value)),
            ("value_high", hi(&self.value)),
        ];
        if let Some((sp, keys)) = spend {
            let s: Vec<Option<f64>> = keys.iter().map(|k| sp.get(k).copied()).collect();
            let ratio = |num: Option<f64>, den: Option<f64>| match (num, den) {
                (Some(n), Some(d)) if d > 0.0 => Some(n / d),
                _ => None,
            };
            let col = |f: &dyn Fn(usize) -> Option<f64>| Values::OptF64((0..keys.len()).map(f).collect());
            let (c, v) = (&self.conversions, &self.value);
            out.push(("cpa_low", col(&|i| ratio(s[i], c[i].map(|b| b.1)))));
            out.push(("cpa_high", col(&|i| ratio(s[i], c[i].map(|b| b.0)))));
            out.push(("roas_low", col(&|i| ratio(v[i].map(|b| b.0), s[i]))));
            out.push(("roas_high", col(&|i| ratio(v[i].map(|b| b.1), s[i]))));
        }
        out
    }
}

/// `spend`, `cpa` and `roas` of credit rows. Spend is the same under every model; CPA and
/// ROAS follow each model's credit; `(unattributed)` and keys without spend get nulls.
fn spend_columns<K: Ord>(
    keys: &[K],
    sp: &BTreeMap<K, f64>,
    rows: &CreditRows,
) -> Vec<(&'static str, Values)> {
    let s: Vec<Option<f64>> = keys.iter().map(|c| sp.get(c).copied()).collect();
    let cpa =
        s.iter().zip(&rows.conversions).map(|(s, c)| s.and_then(|s| (*c > 0.0).then(|| s / c))).collect();
    let roas = s.iter().zip(&rows.value).map(|(s, v)| s.and_then(|s| (s > 0.0).then(|| v / s))).collect();
    vec![("spend", Values::OptF64(s)), ("cpa", Values::OptF64(cpa)), ("roas", Values::OptF64(roas))]
}

/// `campaign_attribution`: grain (model, channel, campaign). `credits` are per unit,
/// `units[i]` is unit i's (channel, campaign).
pub fn campaign_attribution(
    a: &Analysis,
    c: &CampaignCredits,
    spend: Option<&BTreeMap<(String, String), f64>>,
) -> Table {
    let (credits, units) = (&c.credits, &c.units);
    let rows = credit_rows(a, credits);
    let bounds = interval_rows((a, c.intervals.as_ref()), &rows, units.len());
    let channel =
        rows.key.iter().map(|k| k.map_or(UNATTRIBUTED, |i| units[i].0.as_str()).to_owned()).collect();
    let campaign = rows.key.iter().map(|k| k.map(|i| units[i].1.clone())).collect();
    let mut all = vec![
        ("model", Values::Str(rows.model.iter().map(|m| m.to_string()).collect())),
        ("channel", Values::Str(channel)),
        ("campaign", Values::OptStr(campaign)),
    ];
    let keys: Vec<(String, String)> = rows
        .key
        .iter()
        .map(|k| k.map_or_else(|| (UNATTRIBUTED.to_owned(), String::new()), |i| units[i].clone()))
        .collect();
    let spend = spend.filter(|sp| !sp.is_empty());
    let extra = spend.map(|sp| spend_columns(&keys, sp, &rows)).unwrap_or_default();
    let interval_extra = bounds.columns(spend.map(|sp| (sp, keys.as_slice())));
    all.extend(rows.measures(a));
    all.extend(extra);
    all.extend(interval_extra);
    Table::new(TableName::CampaignAttribution.as_str(), all)
}

/// `channel_roles`: grain (channel): which channels open, assist, close and lose journeys.
pub fn channel_roles(a: &Analysis) -> Table {
    roles_table(TableName::ChannelRoles, "channel", a)
}

/// `channel_group_roles`: the same on the group-level journeys, grain (group).
pub fn channel_group_roles(a: &Analysis) -> Table {
    roles_table(TableName::ChannelGroupRoles, "group", a)
}

fn roles_table(name: TableName, key: &'static str, a: &Analysis) -> Table {
    let n = a.report_channels.len();
    let r = a.folded_roles();
    let nulls = a.paths.total_nulls();
    let lags: Option<Vec<Option<[f64; 4]>>> =
        a.lags.as_ref().map(|l| l.iter().map(|x| x.quantiles()).collect());
    let lag =
        |k: usize| Values::OptF64((0..n).map(|c| lags.as_ref().and_then(|l| l[c]).map(|q| q[k])).collect());
    let col = |f: fn(&Roles) -> f64| Values::F64(r.iter().map(f).collect());
    Table::new(
        name.as_str(),
        vec![
            (key, Values::Str(a.report_channels.clone())),
            ("journeys", col(|x| x.journeys)),
            ("converting_journeys", col(|x| x.converting_journeys)),
            ("first_touch_conversions", col(|x| x.first)),
            ("assist_conversions", col(|x| x.assist)),
            ("last_touch_conversions", col(|x| x.last)),
            ("only_touch_conversions", col(|x| x.only)),
            (
                "assisted_to_last_ratio",
                Values::OptF64(r.iter().map(|x| (x.last > 0.0).then(|| x.assist / x.last)).collect()),
            ),
            ("value", col(|x| x.value)),
            ("early_credit", col(|x| x.early)),
            ("mid_credit", col(|x| x.mid)),
            ("late_credit", col(|x| x.late)),
            ("dropoff_journeys", col(|x| x.dropoffs)),
            ("dropoff_share", Values::OptF64(r.iter().map(|x| share(x.dropoffs, nulls)).collect())),
            ("days_to_conversion_p50", lag(0)),
            ("days_to_conversion_p90", lag(1)),
            ("touches_to_conversion_p50", lag(2)),
            ("touches_to_conversion_p90", lag(3)),
        ],
    )
}

/// `markov_removal_effects`: grain (channel).
pub fn markov_removal_effects(a: &Analysis, r: &MarkovResult) -> Table {
    let n = a.paths.channels.len();
    Table::new(
        TableName::MarkovRemovalEffects.as_str(),
        vec![
            ("channel", Values::Str(a.paths.channels.clone())),
            ("removal_effect", Values::OptF64(r.removal_effects.clone())),
            ("value_removal_effect", Values::OptF64(r.value_removal_effects.clone())),
            ("order", Values::U32(vec![r.chain.order as u32; n])),
        ],
    )
}

/// `markov_sequence_effects`: grain (sequence), most visited first.
pub fn markov_sequence_effects(a: &Analysis, r: &MarkovResult) -> Table {
    let s = &a.sequences;
    Table::new(
        TableName::MarkovSequenceEffects.as_str(),
        vec![
            ("sequence", Values::Str(s.iter().map(|e| a.paths.path_name(&e.sequence)).collect())),
            ("length", Values::U32(s.iter().map(|e| e.sequence.len() as u32).collect())),
            ("visits", Values::F64(s.iter().map(|e| e.visits).collect())),
            ("removal_effect", Values::OptF64(s.iter().map(|e| e.removal_effect).collect())),
            ("value_removal_effect", Values::OptF64(s.iter().map(|e| e.value_removal_effect).collect())),
            ("order", Values::U32(vec![r.chain.order as u32; s.len()])),
        ],
    )
}

/// `markov_order_selection`: grain (order).
pub fn markov_order_selection(scores: &[OrderScore]) -> Table {
    Table::new(
        TableName::MarkovOrderSelection.as_str(),
        vec![
            ("order", Values::U32(scores.iter().map(|s| s.order as u32).collect())),
            ("auc", Values::F64(scores.iter().map(|s| s.auc).collect())),
            ("penalized_auc", Values::F64(scores.iter().map(|s| s.penalized_auc).collect())),
            ("states", Values::U64(scores.iter().map(|s| s.states as u64).collect())),
            ("selected", Values::Bool(scores.iter().map(|s| s.selected).collect())),
        ],
    )
}

/// `markov_transitions`: grain (from_state, to_state), sorted by state names.
pub fn markov_transitions(a: &Analysis, r: &MarkovResult) -> Table {
    let mut rows: Vec<(String, String, f64, f64)> = r
        .chain
        .transitions
        .iter()
        .map(|t| {
            (
                r.chain.state_name(&a.paths, t.from),
                r.chain.target_name(&a.paths, t.to),
                t.count,
                t.probability,
            )
        })
        .collect();
    rows.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    Table::new(
        TableName::MarkovTransitions.as_str(),
        vec![
            ("from_state", Values::Str(rows.iter().map(|r| r.0.clone()).collect())),
            ("to_state", Values::Str(rows.iter().map(|r| r.1.clone()).collect())),
            ("count", Values::F64(rows.iter().map(|r| r.2).collect())),
            ("probability", Values::F64(rows.iter().map(|r| r.3).collect())),
        ],
    )
}

/// `shapley_ordered`: grain (channel, position). Several `frequency` names fold into one
/// channel: their rows are summed, in table order.
pub fn shapley_ordered(a: &Analysis) -> Table {
    let mut by: BTreeMap<(&str, u32), (f64, f64)> = BTreeMap::new();
    for r in a.shapley_ordered.as_deref().unwrap_or_default() {
        let ch = a.report_channels[a.report_of[r.channel as usize] as usize].as_str();
        let e = by.entry((ch, r.position)).or_default();
        e.0 += r.conversions;
        e.1 += r.value;
    }
    Table::new(
        TableName::ShapleyOrdered.as_str(),
        vec![
            ("channel", Values::Str(by.keys().map(|k| k.0.to_owned()).collect())),
            ("position", Values::U32(by.keys().map(|k| k.1).collect())),
            ("conversions", Values::F64(by.values().map(|v| v.0).collect())),
            ("value", Values::F64(by.values().map(|v| v.1).collect())),
        ],
    )
}

/// `path_summary`: grain (path), sorted by conversions desc, nulls desc, then path (in
/// channel order, channels being numbered in name order).
pub fn path_summary(a: &Analysis) -> Table {
    let rows = &a.paths.rows;
    // The table is sorted by path already: sorting compact (count, index) keys keeps path
    // order among equal counts without touching the paths themselves.
    let desc = descending;
    let mut keys: Vec<(u64, u64, usize)> =
        rows.iter().enumerate().map(|(i, r)| (desc(r.conversions), desc(r.nulls), i)).collect();
    keys.par_sort_unstable();
    let idx: Vec<usize> = keys.into_iter().map(|k| k.2).collect();
    let names: Vec<String> = idx.par_iter().map(|&i| a.paths.path_name(&rows[i].path)).collect();
    Table::new(
        TableName::PathSummary.as_str(),
        vec![
            ("path", Values::Str(names)),
            ("touches", Values::U32(idx.iter().map(|&i| rows[i].path.len() as u32).collect())),
            ("conversions", Values::F64(idx.iter().map(|&i| rows[i].conversions).collect())),
            ("nulls", Values::F64(idx.iter().map(|&i| rows[i].nulls).collect())),
            ("value", Values::F64(idx.iter().map(|&i| rows[i].value).collect())),
        ],
    )
}

/// `path_summary` from rows already in its order (a batch of the bounded merge's sort),
/// with `run_date` first when the run has one.
pub fn path_summary_rows(rows: Vec<SummaryRow>, run_date: Option<i32>) -> Table {
    let n = rows.len();
    let (touches, conversions, nulls, value): (Vec<u32>, Vec<f64>, Vec<f64>, Vec<f64>) =
        rows.iter().map(|r| (r.touches, r.conversions, r.nulls, r.value)).collect();
    let names = rows.into_iter().map(|r| r.path).collect();
    let mut t = Table::new(
        TableName::PathSummary.as_str(),
        vec![
            ("path", Values::Str(names)),
            ("touches", Values::U32(touches)),
            ("conversions", Values::F64(conversions)),
            ("nulls", Values::F64(nulls)),
            ("value", Values::F64(value)),
        ],
    );
    if let Some(days) = run_date {
        t.prepend("run_date", Values::Date(vec![days; n]));
    }
    t
}

/// `data_quality`: grain (metric), a fixed list of metrics.
pub fn data_quality(a: &Analysis, input: &InputSummary) -> Table {
    let s = &a.stats;
    let mut m: Vec<(String, f64)> =
        vec![("input_files".into(), input.files.len() as f64), ("rows_read".into(), input.rows_read as f64)];
    let mut rejected = 0u64;
    for r in RejectReason::ALL {
        let n = input.rejected.get(&r).copied().unwrap_or(0);
        rejected += n;
        m.push((r.metric().into(), n as f64));
    }
    m.extend([
        ("rows_rejected".into(), rejected as f64),
        ("rows_unmatched_channel_rule".into(), input.unmatched_channel_rule as f64),
        ("rows_without_consent".into(), input.rows_without_consent as f64),
        ("events".into(), input.events as f64),
        ("duplicate_events".into(), s.duplicate_events as f64),
        ("users".into(), s.users as f64),
        ("channels".into(), a.report_channels.len() as f64),
        ("journeys".into(), s.journeys as f64),
        ("converting_journeys".into(), s.converting_journeys as f64),
        ("non_converting_journeys".into(), s.non_converting_journeys as f64),
        ("conversions".into(), s.total_conversions),
        ("conversion_value".into(), s.total_value),
        ("unattributed_conversions".into(), s.unattributed_conversions),
        ("unattributed_value".into(), s.unattributed_value),
        ("touches".into(), s.touches as f64),
        ("expired_touches".into(), s.expired_touches as f64),
        ("distinct_paths".into(), s.distinct_paths.unwrap_or(a.paths.rows.len() as u64) as f64),
    ]);
    if let Some(st) = &input.staged {
        let dups: u64 = st.sources.iter().map(|c| c.duplicate_conversions).sum();
        m.extend([
            ("duplicate_conversion_ids".into(), dups as f64),
            ("identity_map_entries".into(), st.identity_entries as f64),
            ("ids_mapped".into(), st.aliases_mapped as f64),
            ("ids_unmapped".into(), st.aliases_unmapped as f64),
            ("ids_conflicting".into(), st.aliases_conflicting as f64),
            ("persons_without_customer_row".into(), st.persons_without_customer_row as f64),
        ]);
    }
    if let Some(t) = &a.training {
        m.extend([
            ("training_days_stored".into(), t.days_stored as f64),
            ("training_days_computed".into(), t.days_computed as f64),
            ("training_journeys".into(), t.journeys),
            ("training_conversions".into(), t.conversions),
            ("training_open_journeys".into(), t.open_journeys as f64),
        ]);
    }
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        m.push((format!("path_length_{name}"), s.path_length_quantile(q).map(|x| x as f64).unwrap_or(0.0)));
    }
    // Very long journeys are usually bots or shared devices (`docs/models.md` § Journeys).
    m.push(("journeys_over_1000_touches".into(), s.path_lengths.iter().skip(1001).sum::<u64>() as f64));
    if let Some(r) = &a.markov {
        m.push(("markov_order".into(), r.chain.order as f64));
        m.push(("markov_states".into(), r.chain.states.len() as f64 - 1.0));
        m.push(("markov_p_conversion".into(), r.p_conversion));
        m.push(("markov_observed_conversion_rate".into(), r.observed_rate));
    }
    Table::new(
        TableName::DataQuality.as_str(),
        vec![
            ("metric", Values::Str(m.iter().map(|x| x.0.clone()).collect())),
            ("value", Values::F64(m.iter().map(|x| x.1).collect())),
        ],
    )
}
