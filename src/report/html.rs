//! `report.html`: the page for media buyers, rendered from a template
//! (`report.html.j2`, auto-escaped) with inline SVG charts (`charts.rs`). Self-contained:
//! no external assets, no network; deterministic like every other output.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::charts::{self, Bar};
use super::{comparisons, group_spend, timing, Headline, RunResult};
use crate::core::analysis::Analysis;
use crate::core::event_log::UNATTRIBUTED;
use crate::core::markov::Target;
use crate::core::models::Credits;
use crate::core::table::Table;
use crate::settings::{Model, Settings};

const TEMPLATE: &str = include_str!("report.html.j2");

fn num(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// The one number format of a table column: whole numbers when every value is whole, else
/// one decimal when the column reaches 100, two below; so `31.00` never sits beside `140`.
fn column_format(values: &[f64]) -> impl Fn(f64) -> String {
    let whole = values.iter().all(|v| v.fract() == 0.0);
    let big = values.iter().any(|v| v.abs() >= 100.0);
    let decimals = if whole {
        0
    } else if big {
        1
    } else {
        2
    };
    move |x: f64| format!("{x:.decimals$}")
}

fn ratio(x: f64) -> String {
    format!("{x:.2}")
}

/// The models drawn in the credit chart: the classic contrast (first vs last touch, the
/// even split, the data-driven Markov), those of them that ran.
const CHART_MODELS: [Model; 4] = [Model::FirstTouch, Model::LastTouch, Model::Linear, Model::Markov];

/// The page's sections a run may not have (null in the context when it has not).
const OPTIONAL_SECTIONS: [&str; 13] = [
    "night",
    "comparisons",
    "roas_chart",
    "calibration",
    "response",
    "evaluation",
    "spend_rows",
    "markov_order",
    "removal_chart",
    "transitions",
    "transition_graph",
    "segments",
    "sources",
];

/// Render `report.html`; `previous` is the previous run date's headline (scheduled runs).
pub fn html(
    run: &RunResult,
    settings: &Settings,
    previous: Option<&Headline>,
) -> crate::error::Result<String> {
    let a = &run.analysis;
    let folded: Vec<(Model, Credits)> = a.credits.iter().map(|(m, c)| (*m, a.folded(c))).collect();
    let bounds: Vec<Option<(Credits, Credits)>> =
        folded.iter().map(|(m, _)| a.intervals.as_ref().and_then(|iv| iv.bounds(*m))).collect();
    // Shares, CPA and ROAS as `channel_attribution` has them: the page reads the table.
    let attribution = super::tables::channel_attribution(a, run.spend.as_ref().map(|s| &s.channel));
    let credited = Credited::of(&attribution);
    let mut ctx = json!({
        "scope": scope(run, settings),
        "kpis": kpis(a),
        "level": format!("{:.0}%", settings.models.interval_level * 100.0),
        "has_intervals": a.intervals.is_some(),
        "models": folded.iter().map(|(m, _)| m.name()).collect::<Vec<_>>(),
        "credit_rows": credit_rows(a, &folded, &credited),
        "top_paths": top_paths(a),
        "quality": quality(run),
        "warnings": a.warnings,
    });
    // The optional sections, null until a run has them: every name the template uses is
    // defined, so a misspelt one fails the render (`UndefinedBehavior::Strict`).
    for optional in OPTIONAL_SECTIONS {
        ctx[optional] = Value::Null;
    }
    let (roles_chart, roles_table) = roles(a);
    ctx["roles"] = roles_table;
    ctx["roles_chart"] = json!(roles_chart);
    let (chart_models, credit_chart) = credit_chart(a, &folded, &bounds);
    ctx["chart_models"] = json!(chart_models);
    ctx["credit_chart"] = json!(credit_chart);
    let hist = timing::histograms(a);
    ctx["days_chart"] = json!(charts::histogram("days to conversion", &hist[0].1));
    ctx["touches_chart"] = json!(charts::histogram("touches to conversion", &hist[1].1));
    if let Some(sp) = &run.spend {
        ctx["spend_rows"] = spend_rows(a, &folded, &sp.channel, &credited);
    }
    if let (Some(g), Some(sp)) = (&run.groups, group_spend(run, settings)) {
        let cs: Vec<_> =
            comparisons(g, &sp).into_iter().filter(|c| c.model == Model::Markov.name()).collect();
        ctx["comparisons"] = cs
            .iter()
            .map(|c| json!({"a": c.a, "b": c.b, "verdict": c.verdict, "statement": c.statement(), "prob": format!("{:.0}%", c.prob_a_higher * 100.0)}))
            .collect();
        ctx["roas_chart"] = json!(roas_chart(&super::tables::channel_group_attribution(g, Some(&sp))));
    }
    super::sections::evidence(&mut ctx, run, settings, &attribution)?;
    if let Some(r) = &a.markov {
        ctx["markov_order"] = json!(r.chain.order);
        let rows: Vec<(String, Vec<Bar>)> = a
            .paths
            .channels
            .iter()
            .zip(&r.removal_effects)
            .map(|(c, re)| (c.clone(), vec![Bar { value: re.unwrap_or(0.0), interval: None }]))
            .collect();
        ctx["removal_chart"] =
            json!(charts::grouped_bars("removal effects", &["removal effect".into()], &rows, ratio));
        ctx["transitions"] = transitions(a);
        ctx["transition_graph"] = json!(transition_graph(a));
    }
    if !run.segments.is_empty() {
        ctx["segments"] = segment_sections(run);
    }
    if let Some(st) = &run.source_touches {
        ctx["sources"] = source_rows(st);
    }
    if let (Some(p), Some(now)) = (previous, super::headline(a)) {
        ctx["night"] = night_over_night(p, &now);
    }
    // A name the template uses and the context lacks is a bug here, not an empty cell or a
    // silently hidden section on the page: any use of it, `if` included, fails the render.
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("report.html", TEMPLATE)
        .and_then(|()| env.get_template("report.html"))
        .and_then(|t| t.render(ctx))
        .map_err(|e| crate::error::Error::Internal(format!("rendering report.html: {e:#}")))
}

/// Tonight against the previous run date, per channel, under the headline model.
fn night_over_night(prev: &Headline, now: &Headline) -> Value {
    let mut names: Vec<&String> = now.conversions.keys().chain(prev.conversions.keys()).collect();
    names.sort();
    names.dedup();
    let get = |h: &Headline, c: &String| h.conversions.get(c).copied().unwrap_or(0.0);
    let f = column_format(&names.iter().flat_map(|c| [get(prev, c), get(now, c)]).collect::<Vec<_>>());
    let rows: Vec<Value> = names
        .iter()
        .map(|c| {
            let (a, b) = (get(prev, c), get(now, c));
            let pct = if a > 0.0 { format!("{:+.0}%", (b - a) / a * 100.0) } else { "–".into() };
            json!({"channel": c, "before": f(a), "now": f(b), "change": format!("{:+.1}", b - a), "pct": pct})
        })
        .collect();
    json!({"model": now.model, "same_model": prev.model == now.model, "rows": rows})
}

fn scope(run: &RunResult, settings: &Settings) -> String {
    let window = match settings.window() {
        Some(w) => format!("conversions of the {} day(s) ending {}", w.days, w.run_date),
        None => "all conversions of the input".into(),
    };
    format!(
        "{window} · lookback {} days · {} input file(s), {} events, {} users",
        settings.journeys.lookback_days,
        run.input.files.len(),
        run.input.events,
        run.analysis.stats.users
    )
}

fn kpis(a: &Analysis) -> Value {
    let s = &a.stats;
    let rate = if s.journeys > 0 { s.converting_journeys as f64 / s.journeys as f64 } else { 0.0 };
    json!([
        {"key": "conversions", "label": "conversions", "value": column_format(&[s.total_conversions])(s.total_conversions), "raw": s.total_conversions},
        {"key": "value", "label": "conversion value", "value": num(s.total_value), "raw": s.total_value},
        {"key": "journeys", "label": "journeys", "value": s.journeys.to_string(), "raw": s.journeys},
        {"key": "rate", "label": "conversion rate", "value": format!("{:.2}%", rate * 100.0), "raw": rate},
        {"key": "unattributed", "label": "unattributed conversions", "value": column_format(&[s.unattributed_conversions])(s.unattributed_conversions), "raw": s.unattributed_conversions},
    ])
}

/// Grouped bars of the chart models, channels by Markov (else the first model's) credit.
fn credit_chart(
    a: &Analysis,
    folded: &[(Model, Credits)],
    bounds: &[Option<(Credits, Credits)>],
) -> (Vec<&'static str>, String) {
    let picked: Vec<usize> =
        CHART_MODELS.iter().filter_map(|m| folded.iter().position(|(x, _)| x == m)).collect();
    let picked = if picked.is_empty() { vec![0] } else { picked };
    let key = *picked.last().expect("one model");
    let mut order: Vec<usize> = (0..a.report_channels.len()).collect();
    order.sort_by(|&x, &y| {
        folded[key].1.conversions[y].total_cmp(&folded[key].1.conversions[x]).then(x.cmp(&y))
    });
    let rows: Vec<(String, Vec<Bar>)> = order
        .iter()
        .map(|&c| {
            let bars = picked
                .iter()
                .map(|&m| Bar {
                    value: folded[m].1.conversions[c],
                    interval: bounds[m].as_ref().map(|(lo, hi)| (lo.conversions[c], hi.conversions[c])),
                })
                .collect();
            (a.report_channels[c].clone(), bars)
        })
        .collect();
    let series: Vec<String> = picked.iter().map(|&m| folded[m].0.name().to_owned()).collect();
    let names = picked.iter().map(|&m| folded[m].0.name()).collect();
    (names, charts::grouped_bars("conversions credited by channel and model", &series, &rows, num))
}

/// `channel_attribution`'s share, CPA and ROAS per (model, channel), as written.
struct Credited(BTreeMap<(String, String), [Option<f64>; 3]>);

impl Credited {
    fn of(t: &Table) -> Credited {
        let text =
            |n: &str| -> Vec<String> { t.texts(n).into_iter().map(Option::unwrap_or_default).collect() };
        let opt = |n: &str| t.floats(n);
        let (model, channel) = (text("model"), text("channel"));
        let (share, cpa, roas) = (opt("conversion_share"), opt("cpa"), opt("roas"));
        let rows =
            (0..t.height()).map(|i| ((model[i].clone(), channel[i].clone()), [share[i], cpa[i], roas[i]]));
        Credited(rows.collect())
    }

    fn get(&self, m: Model, channel: &str) -> [Option<f64>; 3] {
        self.0.get(&(m.name().to_owned(), channel.to_owned())).copied().unwrap_or([None; 3])
    }
}

fn credit_rows(a: &Analysis, folded: &[(Model, Credits)], credited: &Credited) -> Value {
    let mut rows: Vec<Value> = Vec::new();
    let n = a.report_channels.len();
    let value =
        |cr: &Credits, c: usize| if c < n { cr.conversions[c] } else { a.stats.unattributed_conversions };
    let formats: Vec<_> = folded
        .iter()
        .map(|(_, cr)| column_format(&(0..=n).map(|c| value(cr, c)).collect::<Vec<_>>()))
        .collect();
    for c in 0..=n {
        if c == n && a.stats.unattributed_conversions == 0.0 {
            break;
        }
        let name = if c < n { a.report_channels[c].as_str() } else { UNATTRIBUTED };
        let cells: Vec<Value> = folded
            .iter()
            .zip(&formats)
            .map(|((m, cr), f)| {
                let v = value(cr, c);
                let share = credited.get(*m, name)[0].unwrap_or(0.0) * 100.0;
                json!({"model": m.name(), "raw": v, "text": format!("{} ({share:.1}%)", f(v))})
            })
            .collect();
        rows.push(json!({"channel": name, "cells": cells}));
    }
    json!(rows)
}

fn spend_rows(
    a: &Analysis,
    folded: &[(Model, Credits)],
    sp: &BTreeMap<String, f64>,
    credited: &Credited,
) -> Value {
    let dash = || "–".to_owned();
    let channels: Vec<&String> = a.report_channels.iter().filter(|c| sp.contains_key(*c)).collect();
    let spend_fmt = column_format(&channels.iter().map(|c| sp[*c]).collect::<Vec<_>>());
    let cpa_fmts: Vec<_> = folded
        .iter()
        .map(|(m, _)| {
            column_format(&channels.iter().filter_map(|c| credited.get(*m, c)[1]).collect::<Vec<_>>())
        })
        .collect();
    let rows: Vec<Value> = channels
        .iter()
        .map(|ch| {
            let cells: Vec<String> = folded
                .iter()
                .zip(&cpa_fmts)
                .map(|((m, _), f)| {
                    let [_, cpa, roas] = credited.get(*m, ch);
                    format!("{} · {}", cpa.map_or_else(dash, f), roas.map_or_else(dash, ratio))
                })
                .collect();
            json!({"channel": ch, "spend": spend_fmt(sp[*ch]), "cells": cells})
        })
        .collect();
    json!(rows)
}

/// ROAS with intervals per group under Markov.
/// ROAS by group under Markov with its interval, as `channel_group_attribution` has them
/// (`roas`, `roas_low`, `roas_high`): the page reads the table. A group without spend has no
/// ROAS and no dot.
fn roas_chart(t: &Table) -> String {
    let (model, group) = (t.texts("model"), t.texts("group"));
    let (roas, low, high) = (t.floats("roas"), t.floats("roas_low"), t.floats("roas_high"));
    let markov = Some(Model::Markov.name());
    let rows: Vec<(String, f64, (f64, f64))> = (0..t.height())
        .filter(|&i| model[i].as_deref() == markov)
        .filter_map(|i| {
            let r = roas[i]?;
            Some((group[i].clone()?, r, (low[i].unwrap_or(r), high[i].unwrap_or(r))))
        })
        .collect();
    if !model.iter().any(|m| m.as_deref() == markov) {
        return String::new();
    }
    charts::dot_intervals("ROAS by group (Markov)", &rows, ratio)
}

fn roles(a: &Analysis) -> (String, Value) {
    let r = a.folded_roles();
    let nulls = a.paths.total_nulls();
    let parts: Vec<String> =
        ["only touch", "first", "assist", "last"].iter().map(|s| s.to_string()).collect();
    let rows: Vec<(String, Vec<f64>)> = a
        .report_channels
        .iter()
        .zip(&r)
        .map(|(c, x)| (c.clone(), vec![x.only, x.first, x.assist, x.last]))
        .collect();
    let fmt = |f: fn(&crate::core::roles::Roles) -> f64| column_format(&r.iter().map(f).collect::<Vec<_>>());
    let (fj, ff, fa, fl, fo) =
        (fmt(|x| x.journeys), fmt(|x| x.first), fmt(|x| x.assist), fmt(|x| x.last), fmt(|x| x.only));
    let table = a
        .report_channels
        .iter()
        .zip(&r)
        .map(|(c, x)| {
            json!({
                "channel": c, "journeys": fj(x.journeys), "first": ff(x.first), "assist": fa(x.assist),
                "last": fl(x.last), "only": fo(x.only),
                "ratio": if x.last > 0.0 { ratio(x.assist / x.last) } else { "–".into() },
                "dropoff": if nulls > 0.0 { format!("{:.1}%", x.dropoffs / nulls * 100.0) } else { "–".into() },
            })
        })
        .collect();
    (charts::stacked_bars("converting journeys by the channel's role", &parts, &rows), table)
}

/// How many paths the page lists.
pub const TOP_PATHS: usize = 15;

fn top_paths(a: &Analysis) -> Value {
    let rows = a.top_paths.clone().unwrap_or_else(|| {
        let mut top = Vec::new();
        crate::core::paths::top_converting(&mut top, a.paths.rows.iter(), TOP_PATHS);
        top
    });
    let fmt =
        |f: fn(&crate::core::paths::PathRow) -> f64| column_format(&rows.iter().map(f).collect::<Vec<_>>());
    let (fc, fn_, fv) = (fmt(|r| r.conversions), fmt(|r| r.nulls), fmt(|r| r.value));
    rows.iter()
        .map(|r| {
            json!({
                "path": a.paths.path_name(&r.path), "conversions": fc(r.conversions), "nulls": fn_(r.nulls),
                "rate": format!("{:.1}%", r.conversions / (r.conversions + r.nulls) * 100.0), "value": fv(r.value),
            })
        })
        .collect()
}

/// The 15 transitions most journeys walk, strongest first (ties by state order).
fn strongest(r: &crate::core::markov::MarkovResult) -> Vec<&crate::core::markov::Transition> {
    let mut ts: Vec<&crate::core::markov::Transition> = r.chain.transitions.iter().collect();
    ts.sort_by(|x, y| y.count.total_cmp(&x.count).then((x.from, x.to).cmp(&(y.from, y.to))));
    ts.truncate(15);
    ts
}

/// The 15 transitions most journeys walk (between states, into conversion or null).
fn transitions(a: &Analysis) -> Value {
    let Some(r) = &a.markov else { return json!([]) };
    let pt = &a.paths;
    let fc = column_format(&strongest(r).iter().map(|t| t.count).collect::<Vec<_>>());
    strongest(r)
        .iter()
        .map(|t| {
            let to = match t.to {
                Target::State(s) => r.chain.state_name(pt, s),
                other => r.chain.target_name(pt, other),
            };
            json!({"from": r.chain.state_name(pt, t.from), "to": to, "count": fc(t.count), "p": format!("{:.3}", t.probability)})
        })
        .collect()
}

/// The graph of the same 15 transitions.
fn transition_graph(a: &Analysis) -> String {
    let Some(r) = &a.markov else { return String::new() };
    let edges: Vec<(String, String, f64)> = strongest(r)
        .iter()
        .map(|t| (r.chain.state_name(&a.paths, t.from), r.chain.target_name(&a.paths, t.to), t.count))
        .collect();
    charts::transition_graph("strongest transitions", &edges)
}

fn quality(run: &RunResult) -> Vec<(String, String)> {
    let (a, input) = (&run.analysis, &run.input);
    let s = &a.stats;
    let rejected: u64 = input.rejected.values().sum();
    vec![
        ("rows read".into(), input.rows_read.to_string()),
        ("rows rejected".into(), rejected.to_string()),
        ("events".into(), input.events.to_string()),
        // Exact copies, or with `dedupe = "event_id"` repeated event ids.
        ("duplicate events".into(), s.duplicate_events.to_string()),
        ("users".into(), s.users.to_string()),
        ("journeys".into(), s.journeys.to_string()),
        ("touches outside the lookback".into(), s.expired_touches.to_string()),
        (
            "unattributed conversions".into(),
            column_format(&[s.unattributed_conversions])(s.unattributed_conversions),
        ),
        ("distinct paths".into(), s.distinct_paths.unwrap_or(a.paths.rows.len() as u64).to_string()),
    ]
}

/// The model the segment sections show: Markov when it ran, else the first model.
fn segment_model(run: &RunResult) -> Option<Model> {
    let ms: Vec<Model> = run.analysis.credits.iter().map(|(m, _)| *m).collect();
    ms.iter().copied().find(|m| *m == Model::Markov).or(ms.first().copied())
}

/// The channels the segment sections name one by one: the pooled fit's largest (the rest
/// are `other`), so the bars keep a readable legend whatever the number of channels.
const SEGMENT_CHANNELS: usize = 6;

/// One section per segmentation: each segment's conversions under the headline model,
/// split over the largest channels, `other` and `(unattributed)`, as shares of the
/// segment's conversions (a stacked bar each, summing to 100%) and as a table.
fn segment_sections(run: &RunResult) -> Value {
    let Some(model) = segment_model(run) else { return json!([]) };
    let a = &run.analysis;
    let channels = &a.report_channels;
    let pooled = a.credits.iter().find(|(m, _)| *m == model).map(|(_, c)| a.folded(c));
    let mut top: Vec<usize> = (0..channels.len()).collect();
    let weight = |c: usize| pooled.as_ref().map_or(0.0, |p| p.conversions[c]);
    top.sort_by(|&x, &y| weight(y).total_cmp(&weight(x)).then(x.cmp(&y)));
    top.truncate(SEGMENT_CHANNELS);
    let mut parts: Vec<String> = top.iter().map(|&c| channels[c].clone()).collect();
    parts.extend(["other".to_owned(), crate::core::event_log::UNATTRIBUTED.to_owned()]);
    let mut names: Vec<&str> = run.segments.iter().map(|s| s.segmentation.as_str()).collect();
    names.dedup();
    let sections: Vec<Value> = names
        .iter()
        .map(|name| {
            let mut bars = Vec::new();
            let segs: Vec<&crate::core::analysis::SegmentAnalysis> =
                run.segments.iter().filter(|s| s.segmentation == *name).collect();
            let values: Vec<Vec<f64>> = segs.iter().map(|s| segment_parts(s, model, &top)).collect();
            let totals: Vec<f64> = segs.iter().map(|s| s.analysis.stats.total_conversions).collect();
            let total_fmt = column_format(&totals);
            let part_fmts: Vec<_> = (0..parts.len())
                .map(|k| column_format(&values.iter().map(|v| v[k]).collect::<Vec<_>>()))
                .collect();
            let rows: Vec<Value> = segs
                .iter()
                .zip(values.iter().zip(&totals))
                .map(|(s, (values, &total))| {
                    bars.push((s.segment.clone(), values.iter().map(|x| x / total.max(1e-300)).collect()));
                    let cells: Vec<Value> = parts
                        .iter()
                        .zip(values)
                        .zip(&part_fmts)
                        .map(|((p, x), f)| json!({"channel": p, "raw": x, "text": f(*x)}))
                        .collect();
                    let fit = if s.pooled { "pooled" } else { "segment" };
                    json!({"segment": s.segment, "conversions": total_fmt(total), "cells": cells, "fit": fit})
                })
                .collect();
            let chart = charts::stacked_bars(&format!("{} credit by {name}", model.name()), &parts, &bars);
            json!({"name": name, "model": model.name(), "channels": parts, "rows": rows, "chart": chart})
        })
        .collect();
    json!(sections)
}

/// A segment's credit under `model` on the `top` channels, then the other channels
/// together, then its unattributed conversions.
fn segment_parts(s: &crate::core::analysis::SegmentAnalysis, model: Model, top: &[usize]) -> Vec<f64> {
    let a = &s.analysis;
    let credit = a.credits.iter().find(|(m, _)| *m == model).map(|(_, c)| a.folded(c));
    let of = |c: usize| credit.as_ref().map_or(0.0, |cr| cr.conversions[c]);
    let mut v: Vec<f64> = top.iter().map(|&c| of(c)).collect();
    v.push((0..a.report_channels.len()).filter(|c| !top.contains(c)).map(of).sum());
    v.push(a.stats.unattributed_conversions);
    v
}

/// Touches per source and channel, for the page.
fn source_rows(st: &super::SourceTouches) -> Value {
    st.keys
        .iter()
        .enumerate()
        .map(|(i, (s, c))| {
            json!({
                "source": s, "channel": c, "touches": st.touches[i], "converting": st.converting_touches[i],
                "first": st.first_touches[i], "last": st.last_touches[i],
            })
        })
        .collect()
}
