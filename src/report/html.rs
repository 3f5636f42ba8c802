//! `report.html`: the channel × model comparison as one self-contained page.

use std::collections::BTreeMap;

use super::RunResult;
use crate::core::analysis::Analysis;
use crate::core::event_log::UNATTRIBUTED;
use crate::core::markov::MarkovResult;
use crate::core::models::Credits;
use crate::settings::{Model, Settings};

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
    let mut h = String::new();
    h.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>touchpoint attribution report</title>\n<style>\n");
    h.push_str("body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2430;padding:0 1rem}\nh1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem}\n.kpis{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}.kpi{background:#f3f5f8;border-radius:8px;padding:.6rem .9rem;min-width:9rem}.kpi b{display:block;font-size:1.3rem}\ntable{border-collapse:collapse;width:100%}th,td{padding:.35rem .5rem;border-bottom:1px solid #e3e7ee;text-align:right;vertical-align:middle}th:first-child,td:first-child{text-align:left}\n.bar{display:inline-block;height:.55rem;background:#3b73d9;border-radius:3px;margin-right:.4rem;vertical-align:middle}.muted{color:#6b7480}.note{color:#6b7480;font-size:12px;margin-top:.5rem}\n");
    h.push_str("</style></head><body>\n<h1>Channel attribution</h1>\n");
    summary(run, settings, &mut h);
    let folded_all: Vec<(Model, Credits)> = a.credits.iter().map(|(m, c)| (*m, a.folded(c))).collect();
    credit_tables(a, &folded_all, &mut h);
    if let Some(sp) = &run.spend {
        spend_table(a, &folded_all, &sp.channel, &mut h);
    }
    if let Some(r) = &a.markov {
        markov_table(a, r, &mut h);
    }
    h.push_str("<p class=\"note\">first_touch / last_touch: all credit to one touch · last_non_direct: the last touch that is not direct · linear: equal credit per touch · position_based: U-shaped · time_decay: halves every half-life before the conversion · markov: removal effects normalised to the conversions · markov_journey: each journey split by its channels' removal effects · shapley: each conversion split equally among the distinct channels of its path. Every model's column sums to the totals above; <code>(unattributed)</code> holds conversions no touch within the lookback can explain. The same numbers, exactly, are in <code>channel_attribution</code>.</p>\n");
    for w in &a.warnings {
        h.push_str(&format!("<p class=\"note\">⚠ {}</p>\n", esc(w)));
    }
    h.push_str("</body></html>\n");
    h
}

/// The run's scope and its key figures.
fn summary(run: &RunResult, settings: &Settings, h: &mut String) {
    let s = &run.analysis.stats;
    let window = match settings.window() {
        Some(w) => format!("conversions of the {} day(s) ending {}", w.days, w.run_date),
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
}

/// Conversions and value credited, channel × model, with shares and bars.
fn credit_tables(a: &Analysis, folded_all: &[(Model, Credits)], h: &mut String) {
    let s = &a.stats;
    let mut channels: Vec<String> = a.report_channels.clone();
    if s.unattributed_conversions > 0.0 {
        channels.push(UNATTRIBUTED.into());
    }
    for (title, total, pick) in [
        ("Conversions credited, by model", s.total_conversions, 0usize),
        ("Value credited, by model", s.total_value, 1usize),
    ] {
        h.push_str(&format!("<h2>{title}</h2>\n<table><tr><th>channel</th>"));
        for (m, _) in folded_all {
            h.push_str(&format!("<th>{}</th>", m.name()));
        }
        h.push_str("</tr>\n");
        for (ci, ch) in channels.iter().enumerate() {
            h.push_str(&format!("<tr><td>{}</td>", esc(ch)));
            for (_, c) in folded_all {
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
}

/// CPA and ROAS per channel and model.
fn spend_table(a: &Analysis, folded_all: &[(Model, Credits)], sp: &BTreeMap<String, f64>, h: &mut String) {
    h.push_str("<h2>Cost per acquisition (CPA) and return on ad spend (ROAS), by model</h2>\n<table><tr><th>channel</th><th>spend</th>");
    for (m, _) in folded_all {
        h.push_str(&format!("<th>{}<br><span class=\"muted\">CPA · ROAS</span></th>", m.name()));
    }
    h.push_str("</tr>\n");
    for (ci, ch) in a.report_channels.iter().enumerate() {
        let Some(&spend) = sp.get(ch) else { continue };
        h.push_str(&format!("<tr><td>{}</td><td>{}</td>", esc(ch), num(spend)));
        for (_, c) in folded_all {
            let cpa = if c.conversions[ci] > 0.0 { num(spend / c.conversions[ci]) } else { "–".into() };
            let roas = if spend > 0.0 { format!("{:.2}", c.value[ci] / spend) } else { "–".into() };
            h.push_str(&format!("<td>{cpa} · {roas}</td>"));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n<p class=\"note\">CPA = spend / credited conversions; ROAS = credited value / spend. The spread across models is how much the answer depends on the attribution rule.</p>\n");
}

/// Removal effects of the Markov fit.
fn markov_table(a: &Analysis, r: &MarkovResult, h: &mut String) {
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
