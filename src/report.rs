//! Report layer: turn analyses into tidy tables with stable columns and a fixed row order
//! (SPEC §4). No computation of credit happens here beyond folding and per-journey splits of
//! the weights defined in [`crate::models`].

use polars::prelude::*;
use rayon::prelude::*;

use crate::config::{Model, Settings};
use crate::error::{Error, Result};
use crate::markov::MarkovResult;
use crate::models::{time_decay_weights, Credits};
use crate::output::{self, OutputTable};
use crate::pipeline::{Analysis, InputSummary, RunResult, UNATTRIBUTED};

fn share(x: f64, total: f64) -> Option<f64> {
    (total > 0.0).then(|| x / total)
}

/// Credits folded into the report channels (base channels of `frequency` names).
pub fn folded(a: &Analysis, c: &Credits) -> Credits {
    let mut f = Credits::zeros(a.report_channels.len());
    for (i, &b) in a.report_of.iter().enumerate() {
        f.conversions[b as usize] += c.conversions[i];
        f.value[b as usize] += c.value[i];
    }
    f
}

/// The rows shared by the credit tables: one per (model, report channel), plus
/// `(unattributed)` per model when there are such conversions (`key` None).
struct CreditRows {
    model: Vec<&'static str>,
    key: Vec<Option<usize>>,
    conversions: Vec<f64>,
    value: Vec<f64>,
    conversion_share: Vec<Option<f64>>,
    value_share: Vec<Option<f64>>,
}

fn credit_rows(a: &Analysis) -> CreditRows {
    let mut r = CreditRows {
        model: Vec::new(),
        key: Vec::new(),
        conversions: Vec::new(),
        value: Vec::new(),
        conversion_share: Vec::new(),
        value_share: Vec::new(),
    };
    let (tc, tv) = (a.stats.total_conversions, a.stats.total_value);
    let mut push = |m: Model, key: Option<usize>, c: f64, v: f64| {
        r.model.push(m.name());
        r.key.push(key);
        r.conversions.push(c);
        r.value.push(v);
        r.conversion_share.push(share(c, tc));
        r.value_share.push(share(v, tv));
    };
    for (m, c) in &a.credits {
        let f = folded(a, c);
        for i in 0..a.report_channels.len() {
            push(*m, Some(i), f.conversions[i], f.value[i]);
        }
        if a.stats.unattributed_conversions > 0.0 {
            push(*m, None, a.stats.unattributed_conversions, a.stats.unattributed_value);
        }
    }
    r
}

impl CreditRows {
    /// The columns after the key columns: credits and shares.
    fn measures(self) -> Vec<Column> {
        vec![
            Column::new("conversions".into(), self.conversions),
            Column::new("value".into(), self.value),
            Column::new("conversion_share".into(), self.conversion_share),
            Column::new("value_share".into(), self.value_share),
        ]
    }
}

/// `channel_attribution`: grain (model, channel).
pub fn channel_attribution(
    a: &Analysis,
    spend: Option<&std::collections::BTreeMap<String, f64>>,
) -> Result<DataFrame> {
    let rows = credit_rows(a);
    let channel: Vec<&str> =
        rows.key.iter().map(|k| k.map_or(UNATTRIBUTED, |i| a.report_channels[i].as_str())).collect();
    let mut extra = Vec::new();
    if let Some(sp) = spend {
        // Spend is per channel, the same under every model; CPA and ROAS follow each
        // model's credit. `(unattributed)` and channels without spend get nulls.
        let s: Vec<Option<f64>> = channel.iter().map(|c| sp.get(*c).copied()).collect();
        let cpa: Vec<Option<f64>> =
            s.iter().zip(&rows.conversions).map(|(s, c)| s.and_then(|s| (*c > 0.0).then(|| s / c))).collect();
        let roas: Vec<Option<f64>> =
            s.iter().zip(&rows.value).map(|(s, v)| s.and_then(|s| (s > 0.0).then(|| v / s))).collect();
        extra.push(Column::new("spend".into(), s));
        extra.push(Column::new("cpa".into(), cpa));
        extra.push(Column::new("roas".into(), roas));
    }
    let mut all =
        vec![Column::new("model".into(), rows.model.clone()), Column::new("channel".into(), channel)];
    all.extend(rows.measures());
    all.extend(extra);
    output::frame(all)
}

/// `campaign_attribution`: grain (model, channel, campaign); `pairs[i]` is report
/// channel i's (channel, campaign).
pub fn campaign_attribution(a: &Analysis, pairs: &[(String, String)]) -> Result<DataFrame> {
    let rows = credit_rows(a);
    let channel: Vec<&str> =
        rows.key.iter().map(|k| k.map_or(UNATTRIBUTED, |i| pairs[i].0.as_str())).collect();
    let campaign: Vec<Option<&str>> = rows.key.iter().map(|k| k.map(|i| pairs[i].1.as_str())).collect();
    let mut all = vec![
        Column::new("model".into(), rows.model.clone()),
        Column::new("channel".into(), channel),
        Column::new("campaign".into(), campaign),
    ];
    all.extend(rows.measures());
    output::frame(all)
}

/// `markov_removal_effects`: grain (channel).
pub fn markov_removal_effects(a: &Analysis, r: &MarkovResult) -> Result<DataFrame> {
    let n = a.paths.channels.len();
    output::frame(vec![
        Column::new("channel".into(), a.paths.channels.clone()),
        Column::new("removal_effect".into(), r.removal_effects.clone()),
        Column::new("value_removal_effect".into(), r.value_removal_effects.clone()),
        Column::new("order".into(), vec![r.chain.order as u32; n]),
    ])
}

/// `markov_sequence_effects`: grain (sequence), most visited first.
pub fn markov_sequence_effects(a: &Analysis, r: &MarkovResult) -> Result<DataFrame> {
    let s = &a.sequences;
    output::frame(vec![
        Column::new("sequence".into(), s.iter().map(|e| a.paths.path_name(&e.sequence)).collect::<Vec<_>>()),
        Column::new("length".into(), s.iter().map(|e| e.sequence.len() as u32).collect::<Vec<_>>()),
        Column::new("visits".into(), s.iter().map(|e| e.visits).collect::<Vec<_>>()),
        Column::new("removal_effect".into(), s.iter().map(|e| e.removal_effect).collect::<Vec<_>>()),
        Column::new(
            "value_removal_effect".into(),
            s.iter().map(|e| e.value_removal_effect).collect::<Vec<_>>(),
        ),
        Column::new("order".into(), vec![r.chain.order as u32; s.len()]),
    ])
}

/// `markov_order_selection`: grain (order).
pub fn markov_order_selection(scores: &[crate::markov::OrderScore]) -> Result<DataFrame> {
    output::frame(vec![
        Column::new("order".into(), scores.iter().map(|s| s.order as u32).collect::<Vec<_>>()),
        Column::new("auc".into(), scores.iter().map(|s| s.auc).collect::<Vec<_>>()),
        Column::new("penalized_auc".into(), scores.iter().map(|s| s.penalized_auc).collect::<Vec<_>>()),
        Column::new("states".into(), scores.iter().map(|s| s.states as u64).collect::<Vec<_>>()),
        Column::new("selected".into(), scores.iter().map(|s| s.selected).collect::<Vec<_>>()),
    ])
}

/// `markov_transitions`: grain (from_state, to_state), sorted by state names.
pub fn markov_transitions(a: &Analysis, r: &MarkovResult) -> Result<DataFrame> {
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
    output::frame(vec![
        Column::new("from_state".into(), rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>()),
        Column::new("to_state".into(), rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>()),
        Column::new("count".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        Column::new("probability".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
    ])
}

/// `shapley_ordered`: grain (channel, position).
pub fn shapley_ordered(a: &Analysis) -> Result<DataFrame> {
    let rows = a.shapley_ordered.as_deref().unwrap_or_default();
    output::frame(vec![
        Column::new(
            "channel".into(),
            rows.iter()
                .map(|r| a.report_channels[a.report_of[r.channel as usize] as usize].as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new("position".into(), rows.iter().map(|r| r.position).collect::<Vec<_>>()),
        Column::new("conversions".into(), rows.iter().map(|r| r.conversions).collect::<Vec<_>>()),
        Column::new("value".into(), rows.iter().map(|r| r.value).collect::<Vec<_>>()),
    ])
    .and_then(|df| {
        // Several frequency names fold into one channel: aggregate, keep (channel, position) order.
        df.lazy()
            .group_by_stable([col("channel"), col("position")])
            .agg([col("conversions").sum(), col("value").sum()])
            .sort(["channel", "position"], Default::default())
            .collect()
            .map_err(|e| Error::Internal(format!("shapley_ordered: {e}")))
    })
}

/// `path_summary`: grain (path), sorted by conversions desc, nulls desc, then path (in
/// channel order, channels being numbered in name order).
pub fn path_summary(a: &Analysis) -> Result<DataFrame> {
    let rows = &a.paths.rows;
    // The table is sorted by path already: sorting compact (count, index) keys keeps path
    // order among equal counts without touching the paths themselves.
    let desc = |x: f64| !x.to_bits() ^ if x.is_sign_negative() { 0 } else { 1 << 63 };
    let mut keys: Vec<(u64, u64, usize)> =
        rows.iter().enumerate().map(|(i, r)| (desc(r.conversions), desc(r.nulls), i)).collect();
    keys.par_sort_unstable();
    let idx: Vec<usize> = keys.into_iter().map(|k| k.2).collect();
    let names: Vec<String> = idx.par_iter().map(|&i| a.paths.path_name(&rows[i].path)).collect();
    output::frame(vec![
        Column::new("path".into(), names),
        Column::new("touches".into(), idx.iter().map(|&i| rows[i].path.len() as u32).collect::<Vec<_>>()),
        Column::new("conversions".into(), idx.iter().map(|&i| rows[i].conversions).collect::<Vec<_>>()),
        Column::new("nulls".into(), idx.iter().map(|&i| rows[i].nulls).collect::<Vec<_>>()),
        Column::new("value".into(), idx.iter().map(|&i| rows[i].value).collect::<Vec<_>>()),
    ])
}

/// Every reason a row can be rejected for, in a fixed order (stable rows in `data_quality`).
pub const REJECT_REASONS: [&str; 5] =
    ["null user id", "null time", "null conversion marker", "null channel on a touch", "null tie-breaker"];

/// `data_quality`: grain (metric), a fixed list of metrics.
pub fn data_quality(a: &Analysis, input: &InputSummary) -> Result<DataFrame> {
    let s = &a.stats;
    let mut m: Vec<(String, f64)> =
        vec![("input_files".into(), input.files.len() as f64), ("rows_read".into(), input.rows_read as f64)];
    let mut rejected = 0u64;
    for r in REJECT_REASONS {
        let n = input.rejected.iter().find(|(k, _)| k == r).map(|(_, v)| *v).unwrap_or(0);
        rejected += n;
        m.push((format!("rows_rejected_{}", r.replace(['-', ' '], "_")), n as f64));
    }
    m.extend([
        ("rows_rejected".into(), rejected as f64),
        ("events".into(), input.events as f64),
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
        ("distinct_paths".into(), a.paths.rows.len() as f64),
    ]);
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        m.push((format!("path_length_{name}"), s.path_length_quantile(q).map(|x| x as f64).unwrap_or(0.0)));
    }
    if let Some(r) = &a.markov {
        m.push(("markov_order".into(), r.chain.order as f64));
        m.push(("markov_states".into(), r.chain.states.len() as f64 - 1.0));
        m.push(("markov_p_conversion".into(), r.p_conversion));
        m.push(("markov_observed_conversion_rate".into(), r.observed_rate));
    }
    output::frame(vec![
        Column::new("metric".into(), m.iter().map(|x| x.0.as_str()).collect::<Vec<_>>()),
        Column::new("value".into(), m.iter().map(|x| x.1).collect::<Vec<_>>()),
    ])
}

/// `journey_credit`: grain (journey, model, channel); rule-based models and time decay
/// (Markov credit is global, not per journey, and is not split here).
pub fn journey_credit(run: &RunResult, settings: &Settings) -> Result<DataFrame> {
    let a = &run.analysis;
    let rec = a.recorded.as_ref().ok_or_else(|| Error::Config("journey_credit needs event input".into()))?;
    let models: Vec<(Model, Option<crate::models::RuleModel>)> = settings
        .models
        .iter()
        .filter(|m| **m != Model::Markov)
        .map(|&m| (m, a.rule_model(m, settings)))
        .collect();
    let h = settings.params.time_decay_half_life_days * 86_400_000_000.0;
    let (mut jid, mut uid, mut cts, mut model, mut channel, mut credit, mut value) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::<&str>::new(), Vec::<&str>::new(), Vec::new(), Vec::new());
    let mut w = Vec::new();
    let mut per: Vec<(u32, f64)> = Vec::new();
    for i in 0..rec.len() {
        let r = rec.range(i);
        let user = run.users.name(rec.user[i]);
        let journey = format!("{user}#{}", rec.seq[i]);
        for (m, rule) in &models {
            match rule {
                Some(rule) => rule.weights(&rec.channel[r.clone()], &mut w),
                None => time_decay_weights(&rec.ts[r.clone()], rec.conversion_ts[i], h, &mut w),
            }
            per.clear();
            for (&c, &wi) in rec.channel[r.clone()].iter().zip(&w) {
                let b = a.report_of[c as usize];
                match per.iter_mut().find(|p| p.0 == b) {
                    Some(p) => p.1 += wi,
                    None => per.push((b, wi)),
                }
            }
            per.sort_by_key(|p| p.0);
            for &(b, wi) in &per {
                jid.push(journey.clone());
                uid.push(user.clone());
                cts.push(rec.conversion_ts[i]);
                model.push(m.name());
                channel.push(a.report_channels[b as usize].as_str());
                credit.push(wi);
                value.push(wi * rec.value[i]);
            }
        }
    }
    let ts = Series::new("conversion_ts".into(), cts)
        .cast(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))
        .map_err(|e| Error::Internal(e.to_string()))?;
    output::frame(vec![
        Column::new("journey_id".into(), jid),
        Column::new("user_id".into(), uid),
        ts.into(),
        Column::new("model".into(), model),
        Column::new("channel".into(), channel),
        Column::new("credit".into(), credit),
        Column::new("value".into(), value),
    ])
}

/// The tables a run with these settings writes, in order (for `--dry-run`; the sequence
/// effects table appears only when the order used is ≥ 2).
pub fn table_names(settings: &Settings) -> Vec<&'static str> {
    let mut t = vec!["channel_attribution"];
    if settings.columns.campaign.is_some() {
        t.push("campaign_attribution");
    }
    if settings.has(Model::Markov) {
        t.extend(["markov_removal_effects", "markov_transitions"]);
        let seq = match settings.params.markov_order {
            crate::config::MarkovOrder::Fixed(k) => k >= 2,
            crate::config::MarkovOrder::Auto { .. } => true,
        };
        if seq && settings.params.markov_max_sequences > 0 {
            t.push("markov_sequence_effects");
        }
        if matches!(settings.params.markov_order, crate::config::MarkovOrder::Auto { .. }) {
            t.push("markov_order_selection");
        }
    }
    if settings.has(Model::Shapley) {
        t.push("shapley_ordered");
    }
    t.extend(["path_summary", "data_quality"]);
    if settings.journey_credit {
        t.push("journey_credit");
    }
    t
}

/// Every output table of a run, in a fixed order.
pub fn tables(run: &RunResult, settings: &Settings) -> Result<Vec<OutputTable>> {
    let a = &run.analysis;
    let mut t =
        vec![OutputTable { name: "channel_attribution", df: channel_attribution(a, run.spend.as_ref())? }];
    if let Some((ca, pairs)) = &run.campaign {
        t.push(OutputTable { name: "campaign_attribution", df: campaign_attribution(ca, pairs)? });
    }
    if let Some(r) = &a.markov {
        t.push(OutputTable { name: "markov_removal_effects", df: markov_removal_effects(a, r)? });
        t.push(OutputTable { name: "markov_transitions", df: markov_transitions(a, r)? });
        if r.chain.order >= 2 && settings.params.markov_max_sequences > 0 {
            t.push(OutputTable { name: "markov_sequence_effects", df: markov_sequence_effects(a, r)? });
        }
    }
    if let Some(s) = &a.order_scores {
        t.push(OutputTable { name: "markov_order_selection", df: markov_order_selection(s)? });
    }
    if a.shapley_ordered.is_some() {
        t.push(OutputTable { name: "shapley_ordered", df: shapley_ordered(a)? });
    }
    t.push(OutputTable { name: "path_summary", df: path_summary(a)? });
    t.push(OutputTable { name: "data_quality", df: data_quality(a, &run.input)? });
    if settings.journey_credit {
        t.push(OutputTable { name: "journey_credit", df: journey_credit(run, settings)? });
    }
    if let Some(w) = &settings.window {
        // Scheduled runs: `run_date` as the first column of every table, so a dataset of
        // many partitions stays self-describing when the files are copied elsewhere.
        let days =
            (w.date()? - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32;
        for table in &mut t {
            let col = Series::new("run_date".into(), vec![days; table.df.height()])
                .cast(&DataType::Date)
                .map_err(|e| Error::Internal(e.to_string()))?;
            table.df.insert_column(0, Column::from(col)).map_err(|e| Error::Internal(e.to_string()))?;
        }
    }
    Ok(t)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn num(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// `report.html`: the channel × model comparison as a page a media buyer would rather look
/// at than read — one self-contained file (no scripts, no external assets), deterministic
/// like every other output.
pub fn html(run: &RunResult, settings: &Settings) -> String {
    let a = &run.analysis;
    let s = &a.stats;
    let mut h = String::new();
    h.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>touchpoint attribution report</title>\n<style>\n");
    h.push_str("body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2430;padding:0 1rem}\nh1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem}\n.kpis{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}.kpi{background:#f3f5f8;border-radius:8px;padding:.6rem .9rem;min-width:9rem}.kpi b{display:block;font-size:1.3rem}\ntable{border-collapse:collapse;width:100%}th,td{padding:.35rem .5rem;border-bottom:1px solid #e3e7ee;text-align:right;vertical-align:middle}th:first-child,td:first-child{text-align:left}\n.bar{display:inline-block;height:.55rem;background:#3b73d9;border-radius:3px;margin-right:.4rem;vertical-align:middle}.muted{color:#6b7480}.note{color:#6b7480;font-size:12px;margin-top:.5rem}\n");
    h.push_str("</style></head><body>\n<h1>Channel attribution</h1>\n");
    let window = match &settings.window {
        Some(w) => format!("conversions of the {} day(s) ending {}", w.days, esc(&w.run_date)),
        None => "all conversions of the input".into(),
    };
    h.push_str(&format!(
        "<p class=\"muted\">{window} · lookback {} days · {} input file(s), {} events, {} users</p>\n",
        settings.journeys.lookback_days,
        run.input.files.len(),
        run.input.events,
        s.users
    ));
    h.push_str("<div class=\"kpis\">");
    for (label, v) in [
        ("conversions", num(s.total_conversions)),
        ("conversion value", num(s.total_value)),
        ("journeys", s.journeys.to_string()),
        (
            "conversion rate",
            if s.journeys > 0 {
                format!("{:.2}%", 100.0 * s.converting_journeys as f64 / s.journeys as f64)
            } else {
                "–".into()
            },
        ),
        ("unattributed conversions", num(s.unattributed_conversions)),
    ] {
        h.push_str(&format!("<div class=\"kpi\"><span class=\"muted\">{label}</span><b>{v}</b></div>"));
    }
    h.push_str("</div>\n");
    let mut channels: Vec<String> = a.report_channels.clone();
    if s.unattributed_conversions > 0.0 {
        channels.push(UNATTRIBUTED.into());
    }
    let folded_all: Vec<(Model, Credits)> = a.credits.iter().map(|(m, c)| (*m, folded(a, c))).collect();
    for (title, total, pick) in [
        ("Conversions credited, by model", s.total_conversions, 0usize),
        ("Value credited, by model", s.total_value, 1usize),
    ] {
        h.push_str(&format!("<h2>{title}</h2>\n<table><tr><th>channel</th>"));
        for (m, _) in &folded_all {
            h.push_str(&format!("<th>{}</th>", m.name()));
        }
        h.push_str("</tr>\n");
        for (ci, ch) in channels.iter().enumerate() {
            h.push_str(&format!("<tr><td>{}</td>", esc(ch)));
            for (_, c) in &folded_all {
                let v = if ci < a.report_channels.len() {
                    if pick == 0 {
                        c.conversions[ci]
                    } else {
                        c.value[ci]
                    }
                } else if pick == 0 {
                    s.unattributed_conversions
                } else {
                    s.unattributed_value
                };
                let share = if total > 0.0 { v / total } else { 0.0 };
                h.push_str(&format!(
                    "<td><span class=\"bar\" style=\"width:{:.1}px\"></span>{} <span class=\"muted\">{:.1}%</span></td>",
                    (share * 60.0).max(0.0),
                    num(v),
                    100.0 * share
                ));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    if let Some(sp) = &run.spend {
        h.push_str("<h2>Cost per acquisition (CPA) and return on ad spend (ROAS), by model</h2>\n<table><tr><th>channel</th><th>spend</th>");
        for (m, _) in &folded_all {
            h.push_str(&format!("<th>{}<br><span class=\"muted\">CPA · ROAS</span></th>", m.name()));
        }
        h.push_str("</tr>\n");
        for (ci, ch) in a.report_channels.iter().enumerate() {
            let Some(&spend) = sp.get(ch) else { continue };
            h.push_str(&format!("<tr><td>{}</td><td>{}</td>", esc(ch), num(spend)));
            for (_, c) in &folded_all {
                let cpa = if c.conversions[ci] > 0.0 { num(spend / c.conversions[ci]) } else { "–".into() };
                let roas = if spend > 0.0 { format!("{:.2}", c.value[ci] / spend) } else { "–".into() };
                h.push_str(&format!("<td>{cpa} · {roas}</td>"));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n<p class=\"note\">CPA = spend / credited conversions; ROAS = credited value / spend. The spread across models is how much the answer depends on the attribution rule.</p>\n");
    }
    if let Some(r) = &a.markov {
        h.push_str(&format!(
            "<h2>Markov removal effects (order {})</h2>\n<p class=\"note\">The share of conversions lost if the channel disappeared: exact, from the absorbing chain (P(conversion) {:.4} = the observed rate).</p>\n<table><tr><th>channel</th><th>removal effect</th><th>value removal effect</th></tr>\n",
            r.chain.order, r.p_conversion
        ));
        for (i, ch) in a.paths.channels.iter().enumerate() {
            let cell = |x: Option<f64>| match x {
                Some(x) => format!("<span class=\"bar\" style=\"width:{:.1}px\"></span>{:.3}", x * 80.0, x),
                None => "–".into(),
            };
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(ch),
                cell(r.removal_effects[i]),
                cell(r.value_removal_effects[i])
            ));
        }
        h.push_str("</table>\n");
    }
    h.push_str("<p class=\"note\">first_touch / last_touch: all credit to one touch · last_non_direct: the last touch that is not direct · linear: equal credit per touch · position_based: U-shaped · time_decay: halves every half-life before the conversion · markov: removal effects normalised to the conversions · shapley: each conversion split equally among the distinct channels of its path. Every model's column sums to the totals above; <code>(unattributed)</code> holds conversions no touch within the lookback can explain. The same numbers, exactly, are in <code>channel_attribution</code>.</p>\n");
    for w in &a.warnings {
        h.push_str(&format!("<p class=\"note\">⚠ {}</p>\n", esc(w)));
    }
    h.push_str("</body></html>\n");
    h
}
