//! `journey_credit`: each converting journey's credit per model and channel, and a shard's
//! partial form of it (`partial_journey_credit`), which the merge finishes.
//!
//! `markov_journey` splits a journey by the chain's removal effects, and a shard's chain is
//! not the merged one; so a shard writes that model's rows unsplit (one per distinct path
//! channel, credit 1, value the journey's) and the merge splits them with the merged chain
//! ([`finish_markov_journey`]), through the same function a single run uses.

use super::names::TableName;
use super::RunResult;
use crate::core::analysis::Analysis;
use crate::core::models::{add_share, markov_journey_split, time_decay_weights, RuleModel};
use crate::core::table::{Table, Values};
use crate::error::{Error, Result};
use crate::settings::{Model, PersonIds, Settings, DAY_MICROS};

/// How a journey's `markov_journey` rows are written.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum MarkovRows {
    /// Split by this run's removal effects (a single run, or a merge's own solve).
    Split,
    /// Left for the merge: one row per distinct path channel (a shard).
    Unsplit,
}

/// `journey_credit`: grain (journey, model, channel); rule-based models, `markov_journey`
/// and time decay (Markov credit is global, not per journey, and is not split here).
pub fn journey_credit(run: &RunResult, settings: &Settings) -> Result<Table> {
    match &run.journey_credit {
        Some(t) => Ok(t.clone()),
        None => Ok(journey_rows(run, settings, MarkovRows::Split)?.0),
    }
}

/// The columns of `journey_credit`, a row at a time.
#[derive(Default)]
struct Rows {
    of_row: Vec<u32>,
    jid: Vec<String>,
    uid: Vec<Option<String>>,
    cts: Vec<i64>,
    model: Vec<String>,
    channel: Vec<String>,
    credit: Vec<f64>,
    value: Vec<f64>,
    conv_id: Vec<Option<String>>,
    conv_type: Vec<Option<String>>,
    segment: Vec<Option<String>>,
    status: Vec<String>,
}

/// The `journey_credit` rows of a run's recorded journeys, and the journey of each row.
pub(crate) fn journey_rows(
    run: &RunResult,
    settings: &Settings,
    mode: MarkovRows,
) -> Result<(Table, Vec<u32>)> {
    let a = &run.analysis;
    let rec = a.recorded.as_ref().ok_or_else(|| Error::Config("journey_credit needs event input".into()))?;
    let models: Vec<(Model, Option<RuleModel>)> = settings
        .models
        .run
        .iter()
        .map(|&m| (m, a.rule_model(m, &settings.models)))
        .filter(|(m, rule)| rule.is_some() || *m == Model::TimeDecay)
        .collect();
    let h = settings.models.time_decay_half_life_days * DAY_MICROS as f64;
    let jc = &run.journey_conversions;
    let mut rows = Rows::default();
    let mut per: Vec<(u32, f64)> = Vec::new();
    // Omitted persons: journeys are numbered in their canonical order (user, time, seq).
    let omitted = settings.output.person_ids == PersonIds::Omitted;
    for i in 0..rec.len() {
        let r = rec.range(i);
        let user = (!omitted).then(|| run.users.name(rec.user[i]));
        let journey = match &user {
            Some(u) => format!("{u}#{}", rec.seq[i]),
            None => format!("j{}", i + 1),
        };
        for (m, rule) in &models {
            let names = match (rule, mode) {
                (Some(RuleModel::MarkovJourney(_)), MarkovRows::Unsplit) => {
                    per = distinct(&rec.channel[r.clone()]).into_iter().map(|c| (c, 1.0)).collect();
                    &a.paths.channels
                }
                _ => {
                    shares(
                        a,
                        (rule.as_ref(), h),
                        (&rec.ts[r.clone()], &rec.channel[r.clone()]),
                        rec.conversion_ts[i],
                        &mut per,
                    );
                    &a.report_channels
                }
            };
            for &(b, wi) in &per {
                rows.of_row.push(i as u32);
                rows.jid.push(journey.clone());
                rows.uid.push(user.clone());
                rows.cts.push(rec.conversion_ts[i]);
                rows.model.push(m.name().to_owned());
                rows.channel.push(names[b as usize].clone());
                rows.credit.push(wi);
                rows.value.push(wi * rec.value[i]);
                rows.conv_id.push(jc.id.as_ref().and_then(|v| v[i].clone()));
                rows.conv_type.push(jc.r#type.as_ref().and_then(|v| v[i].clone()));
                rows.segment.push(jc.segment.as_ref().and_then(|v| v[i].clone()));
                rows.status.push(jc.status.as_ref().map_or("", |v| v[i]).to_owned());
            }
        }
    }
    let of_row = std::mem::take(&mut rows.of_row);
    Ok((table(rows, run), of_row))
}

/// The distinct channels of a journey, sorted.
fn distinct(channels: &[u32]) -> Vec<u32> {
    let mut d = channels.to_vec();
    d.sort_unstable();
    d.dedup();
    d
}

/// One journey's credit per reporting channel under one model (`rule`, or time decay with
/// half-life `h` µs when `rule` is None), sorted by reporting channel.
fn shares(
    a: &Analysis,
    (rule, h): (Option<&RuleModel>, f64),
    (ts, channels): (&[i64], &[u32]),
    conversion_ts: i64,
    per: &mut Vec<(u32, f64)>,
) {
    if let Some(RuleModel::MarkovJourney(re)) = rule {
        return markov_journey_split(&distinct(channels), re, &a.report_of, per);
    }
    let mut w = Vec::new();
    match rule {
        Some(rule) => rule.weights(channels, &mut w),
        None => time_decay_weights(ts, conversion_ts, h, &mut w),
    }
    per.clear();
    for (&c, &wi) in channels.iter().zip(&w) {
        add_share(per, a.report_of[c as usize], wi);
    }
    per.sort_by_key(|p| p.0);
}

/// The table of the rows, with the conversion's id, type, segment and status columns when
/// the run has them.
fn table(rows: Rows, run: &RunResult) -> Table {
    let jc = &run.journey_conversions;
    let mut columns = vec![
        ("journey_id", Values::Str(rows.jid)),
        ("user_id", Values::OptStr(rows.uid)),
        ("conversion_ts", Values::TimestampUs(rows.cts)),
    ];
    if jc.id.is_some() {
        columns.push(("conversion_id", Values::OptStr(rows.conv_id)));
    }
    if jc.r#type.is_some() {
        columns.push(("conversion_type", Values::OptStr(rows.conv_type)));
    }
    if jc.segment.is_some() {
        columns.push(("segment", Values::OptStr(rows.segment)));
    }
    if jc.status.is_some() {
        columns.push(("customer_status", Values::Str(rows.status)));
    }
    columns.extend([
        ("model", Values::Str(rows.model)),
        ("channel", Values::Str(rows.channel)),
        ("credit", Values::F64(rows.credit)),
        ("value", Values::F64(rows.value)),
    ]);
    Table::new(TableName::JourneyCredit.as_str(), columns)
}

/// A shard's `journey_credit` rows with what the merge needs to put every shard's rows in
/// one run's order: the person's order key (`person_order_hi`, `person_order_lo`) and the
/// journey's number in the shard; `markov_journey` rows unsplit.
pub fn partial_journey_credit(run: &RunResult, settings: &Settings) -> Result<Table> {
    let (mut t, of_row) = journey_rows(run, settings, MarkovRows::Unsplit)?;
    let rec = run.analysis.recorded.as_ref();
    let order =
        |j: u32| rec.map_or(0, |r| run.user_order.get(r.user[j as usize] as usize).copied().unwrap_or(0));
    t.columns
        .push(("person_order_hi", Values::U64(of_row.iter().map(|&j| (order(j) >> 64) as u64).collect())));
    t.columns.push(("person_order_lo", Values::U64(of_row.iter().map(|&j| order(j) as u64).collect())));
    t.columns.push(("journey", Values::U32(of_row)));
    t.name = TableName::PartialJourneyCredit.as_str();
    Ok(t)
}

/// What splits a journey's unsplit `markov_journey` rows: the merged fit's path channels
/// (sorted), their removal effects and each one's reporting channel. It crosses to Spark's
/// executors as JSON, the removal effects as their bits so they arrive exactly.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MarkovSplit {
    channels: Vec<String>,
    removal_effects: Vec<u64>,
    report_of: Vec<u32>,
    report_channels: Vec<String>,
}

impl MarkovSplit {
    /// The split of fit `a`, when it runs `markov_journey`.
    pub fn of(a: &Analysis, settings: &Settings) -> Option<Self> {
        let Some(RuleModel::MarkovJourney(re)) = a.rule_model(Model::MarkovJourney, &settings.models) else {
            return None;
        };
        Some(Self {
            channels: a.paths.channels.clone(),
            removal_effects: re.iter().map(|x| x.to_bits()).collect(),
            report_of: a.report_of.clone(),
            report_channels: a.report_channels.clone(),
        })
    }
}

/// Split the unsplit `markov_journey` rows of merged partitions' `journey_credit` (in one
/// run's order; `journey` tells rows of different journeys apart) with the merged fit's
/// `split`: each run of a journey's `markov_journey` rows becomes one row per reporting
/// channel, its other columns the first row's. Other rows are kept as they are.
pub(crate) fn finish_markov_journey(t: Table, journey: &[u64], split: Option<&MarkovSplit>) -> Result<Table> {
    let Some(split) = split else { return Ok(t) };
    let re: Vec<f64> = split.removal_effects.iter().map(|&b| f64::from_bits(b)).collect();
    let column = |n: &str| t.columns.iter().position(|c| c.0 == n);
    let (Some(m), Some(c), Some(k), Some(v)) =
        (column("model"), column("channel"), column("credit"), column("value"))
    else {
        return Err(Error::Internal("journey_credit without its model columns".into()));
    };
    let (Values::Str(model), Values::Str(channel), Values::F64(credit), Values::F64(value)) =
        (&t.columns[m].1, &t.columns[c].1, &t.columns[k].1, &t.columns[v].1)
    else {
        return Err(Error::Internal("journey_credit columns of unexpected types".into()));
    };
    let name = Model::MarkovJourney.name();
    let (mut take, mut out) = (Vec::new(), (Vec::new(), Vec::new(), Vec::new()));
    let (mut r, mut per) = (0, Vec::new());
    while r < t.height() {
        let end = match model[r] == name {
            true => {
                (r..t.height()).find(|&x| model[x] != name || journey[x] != journey[r]).unwrap_or(t.height())
            }
            false => r + 1,
        };
        per.clear();
        if model[r] == name {
            let mut ids = Vec::with_capacity(end - r);
            for name in &channel[r..end] {
                let id = split.channels.binary_search(name);
                ids.push(
                    id.map_err(|_| Error::Internal("a journey_credit channel no partial lists".into()))?
                        as u32,
                );
            }
            ids.sort_unstable();
            markov_journey_split(&ids, &re, &split.report_of, &mut per);
        }
        let rows: Vec<(String, f64, f64)> = match per.is_empty() {
            true => vec![(channel[r].clone(), credit[r], value[r])],
            false => per
                .iter()
                .map(|&(b, s)| (split.report_channels[b as usize].clone(), s, s * value[r]))
                .collect(),
        };
        for (ch, cr, va) in rows {
            take.push(r);
            out.0.push(ch);
            out.1.push(cr);
            out.2.push(va);
        }
        r = end;
    }
    let mut columns: Vec<(&'static str, Values)> =
        t.columns.iter().map(|(n, x)| (*n, x.take(&take))).collect();
    columns[c].1 = Values::Str(out.0);
    columns[k].1 = Values::F64(out.1);
    columns[v].1 = Values::F64(out.2);
    Ok(Table::new(t.name, columns))
}
