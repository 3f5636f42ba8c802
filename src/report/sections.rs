//! The page's sections on evidence from outside the log: credit against lift experiments
//! (`channel_calibration`) and, for `touchpoint evaluate`, against a known truth. Both read
//! the tables as written.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::charts::{self, Bar};
use super::evaluation::{scored, Evaluation, Scored};
use crate::core::table::{Table, Values};
use crate::settings::Settings;

/// The sections on evidence from outside the log, added to the page's context when the run
/// has it: experiments, the response to spend, the known truth.
pub fn evidence(
    ctx: &mut Value,
    run: &super::RunResult,
    settings: &Settings,
    attribution: &Table,
) -> crate::error::Result<()> {
    let a = &run.analysis;
    let Some(h) = super::headline(a) else { return Ok(()) };
    let calibration = match settings.input.experiments.is_some() && !run.experiments.is_empty() {
        true => {
            Some(super::calibration::channel_calibration(attribution, &a.report_channels, run, settings)?)
        }
        false => None,
    };
    if let Some(t) = &calibration {
        let names: Vec<&str> = a.credits.iter().map(|(m, _)| m.name()).collect();
        ctx["calibration"] = calibration_section(t, settings, &h.model, &names, a.stats.total_conversions);
    }
    let response = match settings.window().is_some() && run.spend.is_some() {
        true => super::response::responses(attribution, &h.model, &run.history, settings),
        false => None,
    };
    if let Some(r) = response {
        let (table, shift) =
            (super::response::spend_response(&r, settings), super::response::shift(&r, settings));
        ctx["response"] = response_section(&table, &r.model, shift.as_ref(), settings);
    }
    if let Some(e) = &run.evaluation {
        ctx["evaluation"] = evaluation(e, attribution, calibration.as_ref());
    }
    Ok(())
}

/// One row of `channel_calibration`, as the page needs it.
struct CalRow {
    model: String,
    channel: String,
    experiment: Option<String>,
    lift: Option<f64>,
    lift_se: Option<f64>,
    credited: f64,
    value: (f64, Option<f64>, Option<f64>),
    spend: Option<f64>,
}

fn cal_rows(t: &Table) -> Vec<CalRow> {
    let (texts, floats): (BTreeMap<&str, _>, BTreeMap<&str, _>) = (
        ["model", "channel", "experiment"].into_iter().map(|n| (n, t.texts(n))).collect(),
        [
            "experiment_lift",
            "experiment_lift_se",
            "conversions",
            "calibrated_value",
            "calibrated_value_low",
            "calibrated_value_high",
            "spend",
        ]
        .into_iter()
        .map(|n| (n, t.floats(n)))
        .collect(),
    );
    let s = |n: &str, i: usize| texts[n][i].clone();
    let f = |n: &str, i: usize| floats[n][i];
    (0..t.height())
        .map(|i| CalRow {
            model: s("model", i).unwrap_or_default(),
            channel: s("channel", i).unwrap_or_default(),
            experiment: s("experiment", i),
            lift: f("experiment_lift", i),
            lift_se: f("experiment_lift_se", i),
            credited: f("conversions", i).unwrap_or(0.0),
            value: (
                f("calibrated_value", i).unwrap_or(0.0),
                f("calibrated_value_low", i),
                f("calibrated_value_high", i),
            ),
            spend: f("spend", i),
        })
        .collect()
}

fn fixed(x: f64) -> String {
    format!("{x:.1}")
}

/// "Attribution against the experiments": one row per experiment target, its measured
/// incremental conversions over this run (`lift · C`, with its interval), and what each
/// model credits the target's channels, with the factor between the two; and, with spend,
/// calibrated ROAS per channel group under the headline model. `total` is the run's
/// conversions.
fn calibration_section(t: &Table, settings: &Settings, headline: &str, models: &[&str], total: f64) -> Value {
    let rows = cal_rows(t);
    let z = crate::core::calibration::normal_quantile(0.5 + settings.models.interval_level / 2.0);
    let mut targets: Vec<(String, f64, f64)> =
        rows.iter().filter_map(|r| Some((r.experiment.clone()?, r.lift?, r.lift_se?))).collect();
    targets.sort_by(|a, b| a.0.cmp(&b.0));
    targets.dedup_by(|a, b| a.0 == b.0);
    let in_target = |target: &str, channel: &str| match target.split_once(':') {
        Some(("channel", c)) => c == channel,
        Some(("group", g)) => settings.group_of(channel) == g,
        _ => false,
    };
    let table: Vec<Value> = targets
        .iter()
        .map(|(target, lift, se)| {
            let incremental = lift * total;
            let cells: Vec<Value> = models
                .iter()
                .map(|m| {
                    let credited: f64 =
                        rows.iter().filter(|r| r.model == *m && in_target(target, &r.channel)).map(|r| r.credited).sum();
                    let factor = if credited > 0.0 { format!("×{:.2}", incremental / credited) } else { "–".into() };
                    json!({"model": m, "credited": fixed(credited), "factor": factor})
                })
                .collect();
            json!({
                "target": target,
                "lift": format!("{:.1}%", lift * 100.0),
                "incremental": fixed(incremental),
                "raw": incremental,
                "interval": format!("{} – {}", fixed((lift - z * se) * total), fixed((lift + z * se) * total)),
                "cells": cells,
            })
        })
        .collect();
    json!({"rows": table, "models": models, "headline": headline, "roas_chart": group_roas(&rows, settings, headline)})
}

/// Calibrated ROAS per channel group (channels in no group are their own) under `model`,
/// from channels with spend; bounds add the channels' bounds (conservative).
fn group_roas(rows: &[CalRow], settings: &Settings, model: &str) -> String {
    let mut groups: std::collections::BTreeMap<String, [f64; 4]> = Default::default();
    for r in rows.iter().filter(|r| r.model == model) {
        let Some(sp) = r.spend.filter(|s| *s > 0.0) else { continue };
        let g = groups.entry(settings.group_of(&r.channel).to_owned()).or_default();
        g[0] += sp;
        g[1] += r.value.0;
        g[2] += r.value.1.unwrap_or(r.value.0);
        g[3] += r.value.2.unwrap_or(r.value.0);
    }
    let rows: Vec<(String, f64, (f64, f64))> =
        groups.into_iter().map(|(g, [s, v, l, h])| (g, v / s, (l / s, h / s))).collect();
    if rows.is_empty() {
        return String::new();
    }
    charts::dot_intervals(&format!("calibrated ROAS by group ({model})"), &rows, |x| format!("{x:.2}"))
}

/// "Against the known truth": each model's scores, and credit shares beside the true shares.
fn evaluation(e: &Evaluation, attribution: &Table, calibration: Option<&Table>) -> Value {
    let scored: Vec<Scored> = scored(e, attribution, calibration);
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let count = |x: Option<u32>| x.map_or("–".into(), |k| format!("{k} of {}", e.channels.len()));
    let scores: Vec<Value> = scored
        .iter()
        .map(|s| {
            let a = &s.attributed.1;
            json!({
                "model": a.model,
                "tv": format!("{:.3}", a.tv_distance),
                "raw_tv": a.tv_distance,
                "rank": a.rank_correlation.map_or("–".into(), |r| format!("{r:.2}")),
                "zero": pct(a.zero_effect_share),
                "covers_large": count(a.covers_large_sample),
                "covers_truth": count(a.covers_truth),
                "calibrated_tv": s.calibrated.as_ref().map_or("–".into(), |c| format!("{:.3}", c.1.tv_distance)),
            })
        })
        .collect();
    let truth = crate::core::evaluation::shares(&e.truth);
    let shown: Vec<&Scored> = scored
        .iter()
        .filter(|s| {
            ["first_touch", "last_touch", "markov", "shapley"].contains(&s.attributed.0.model.as_str())
        })
        .collect();
    let mut series = vec!["true incremental share".to_owned()];
    series.extend(shown.iter().map(|s| s.attributed.0.model.clone()));
    let rows: Vec<(String, Vec<Bar>)> = e
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut bars = vec![Bar { value: truth[i] * 100.0, interval: None }];
            for s in &shown {
                let sh = crate::core::evaluation::shares(&s.attributed.0.conversions);
                bars.push(Bar { value: sh[i] * 100.0, interval: None });
            }
            (c.clone(), bars)
        })
        .collect();
    let chart =
        charts::grouped_bars("credit shares against the true incremental shares", &series, &rows, |x| {
            format!("{x:.1}%")
        });
    json!({"world": e.world, "scores": scores, "chart": chart, "calibrated": scored.iter().any(|s| s.calibrated.is_some())})
}

/// "What the next unit of spend brings": `spend_response` as written and the budget shift,
/// with the plain statement that both are observational.
fn response_section(
    t: &Table,
    model: &str,
    shift: Option<&super::response::Shift>,
    settings: &Settings,
) -> Value {
    let col = |n: &str| t.column(n).expect("a spend_response column");
    let floats: BTreeMap<&str, Vec<Option<f64>>> =
        super::response::RESPONSE_COLUMNS.iter().map(|&n| (n, t.floats(n))).collect();
    let num = |n: &str, i: usize| floats.get(n).and_then(|v| v[i]);
    let two = |x: Option<f64>| x.map_or("–".into(), |x| format!("{x:.2}"));
    let with = |n: &str, i: usize| {
        format!(
            "{} ({} – {})",
            two(num(n, i)),
            two(num(&format!("{n}_low"), i)),
            two(num(&format!("{n}_high"), i))
        )
    };
    let (Values::Str(channels), Values::U32(days)) = (col("channel"), col("days")) else {
        return json!(null);
    };
    let rows: Vec<Value> = (0..t.height())
        .map(|i| match num("elasticity", i) {
            None => json!({"channel": channels[i], "days": format!("{} (no fit)", days[i]), "elasticity": "–", "cpa": "–", "roas": "–", "raw": ""}),
            Some(b) => json!({
                "channel": channels[i],
                "days": days[i].to_string(),
                "elasticity": format!("{b:.2} (se {})", two(num("elasticity_se", i))),
                "cpa": with("marginal_cpa", i),
                "roas": with("marginal_roas", i),
                "raw": b,
            }),
        })
        .collect();
    let statement = shift.map(|s| match s.conversions {
        Some((d, lo, hi)) => format!(
            "Moving {:.0}% of {}'s spend ({:.2}) to {} would change {model}'s credited conversions by {:+.2} ({:+.2} to {:+.2}), if each channel's response holds.",
            s.share * 100.0, s.from, s.moved, s.to, d, lo, hi
        ),
        None if s.unfitted > 0 => format!(
            "Moving {:.0}% of {}'s spend to {}: not estimated, {} channel(s) of the two groups have no fit (too few days with spend, or spend that never varied).",
            s.share * 100.0, s.from, s.to, s.unfitted
        ),
        None => format!(
            "Moving {:.0}% of {}'s spend to {}: not estimated, one of the two groups has no spend today, or the change is out of range.",
            s.share * 100.0, s.from, s.to
        ),
    });
    json!({"model": model, "rows": rows, "shift": statement, "min_days": settings.spend_response.min_days})
}
