//! `spend_response` and `budget_shift` (`docs/models.md` § Marginal return): today's
//! headline credit and spend from `channel_attribution` as written, the earlier run dates
//! from the run's history (`RunResult::history`).

use super::calibration::model_credits;
use super::names::TableName;
use crate::core::response::{change, fit, marginal, Fit};
use crate::core::table::{Table, Values};
use crate::settings::Settings;

/// Each channel with spend today: its fit over the history and today's level.
pub struct Response {
    /// The headline model.
    pub model: String,
    /// (channel, today's spend, today's credited conversions, value per conversion, fit).
    pub rows: Vec<(String, f64, f64, f64, Option<Fit>)>,
    /// Days with spend of each row's channel, today included.
    pub days: Vec<u32>,
}

/// The fits of the headline model's channels with spend today.
pub fn responses(
    attribution: &Table,
    headline: &str,
    history: &[crate::core::response::Day],
    settings: &Settings,
) -> Option<Response> {
    let (model, m, spend) = model_credits(attribution).into_iter().find(|(m, _, _)| m == headline)?;
    // Value per conversion: the channel's own, else the run's (a channel without credit today).
    let average = if m.total.0 > 0.0 { m.total.1 / m.total.0 } else { 0.0 };
    let mut counted = Vec::new();
    let rows = m
        .channels
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let s = spend[i].filter(|s| *s > 0.0)?;
            let y = m.conversions[i];
            let v = if y > 0.0 { m.value[i] / y } else { average };
            let mut days: Vec<(f64, f64)> = history
                .iter()
                .map(|d| {
                    (d.spend.get(c).copied().unwrap_or(0.0), d.conversions.get(c).copied().unwrap_or(0.0))
                })
                .collect();
            days.push((s, y));
            counted.push(days.iter().filter(|d| d.0 > 0.0).count() as u32);
            Some((c.clone(), s, y, v, fit(&days, settings.spend_response.min_days)))
        })
        .collect();
    Some(Response { model, rows, days: counted })
}

/// The numeric columns of `spend_response`, in order.
pub const RESPONSE_COLUMNS: [&str; 11] = [
    "spend",
    "conversions",
    "elasticity",
    "elasticity_se",
    "marginal_conversions_per_spend",
    "marginal_cpa",
    "marginal_cpa_low",
    "marginal_cpa_high",
    "marginal_roas",
    "marginal_roas_low",
    "marginal_roas_high",
];

/// One channel's values of [`RESPONSE_COLUMNS`]. A CPA exists where the slope is positive;
/// its low bound comes from β's high bound.
fn response_row(s: f64, y: f64, v: f64, f: Option<&Fit>, level: f64) -> [Option<f64>; 11] {
    let b = f.map(|f| f.elasticity);
    let (lo, hi) = match f.map(|f| f.bounds(level)) {
        Some((lo, hi)) => (Some(lo), Some(hi)),
        None => (None, None),
    };
    let per = |b: Option<f64>| b.map(|b| marginal(b, y, s));
    let cpa = |b: Option<f64>| per(b).filter(|m| *m > 0.0).map(|m| 1.0 / m);
    let roas = |b: Option<f64>| per(b).map(|m| m * v);
    [Some(s), Some(y), b, f.map(|f| f.se), per(b), cpa(b), cpa(hi), cpa(lo), roas(b), roas(lo), roas(hi)]
}

/// `spend_response`: grain channel (the headline model's channels with spend today).
pub fn spend_response(r: &Response, settings: &Settings) -> Table {
    let level = settings.models.interval_level;
    let rows: Vec<[Option<f64>; 11]> =
        r.rows.iter().map(|(_, s, y, v, f)| response_row(*s, *y, *v, f.as_ref(), level)).collect();
    let n = r.rows.len();
    let mut columns = vec![
        ("model", Values::Str(vec![r.model.clone(); n])),
        ("channel", Values::Str(r.rows.iter().map(|x| x.0.clone()).collect())),
        ("days", Values::U32(r.days.clone())),
    ];
    for (k, name) in RESPONSE_COLUMNS.iter().enumerate() {
        columns.push((*name, Values::OptF64(rows.iter().map(|row| row[k]).collect())));
    }
    Table::new(TableName::SpendResponse.as_str(), columns)
}

/// What moving `shift_share` of one group's spend to another would change, if each
/// channel's fitted response holds: (spend moved, Δ conversions with bounds, Δ value with
/// bounds, channels with spend in the two groups that have no fit).
pub struct Shift {
    /// The group spend leaves.
    pub from: String,
    /// The group it reaches.
    pub to: String,
    /// The share of `from`'s spend moved.
    pub share: f64,
    /// Spend moved.
    pub moved: f64,
    /// Δ conversions (point, low, high); None when a channel of either group has no fit.
    pub conversions: Option<(f64, f64, f64)>,
    /// Δ value (point, low, high).
    pub value: Option<(f64, f64, f64)>,
    /// Channels with spend in either group without a fit.
    pub unfitted: u32,
}

/// The budget shift of the settings, if configured: spend leaves the `from` group's channels
/// in proportion to their spend and reaches the `to` group's the same way; each channel
/// changes by `(y + ½) ((s'/s)^β − 1)`; bounds from each channel's β at its t bounds,
/// added in quadrature across channels (independent fits).
pub fn shift(r: &Response, settings: &Settings) -> Option<Shift> {
    let sr = &settings.spend_response;
    let (from, to) = (sr.shift_from.clone()?, sr.shift_to.clone()?);
    let level = settings.models.interval_level;
    let group = |c: &str| settings.group_of(c).to_owned();
    let total = |g: &str| r.rows.iter().filter(|x| group(&x.0) == g).fold(0.0, |a, x| a + x.1);
    let (s_from, s_to) = (total(&from), total(&to));
    let moved = sr.shift_share * s_from;
    let mut unfitted = 0;
    let (mut dy, mut dv, mut var_y, mut var_v) = (0.0, 0.0, 0.0, 0.0);
    for (c, s, y, v, f) in &r.rows {
        let s2 = match group(c) {
            g if g == from => s * (1.0 - sr.shift_share),
            g if g == to && s_to > 0.0 => s + moved * s / s_to,
            _ => continue,
        };
        let Some(f) = f else {
            unfitted += 1;
            continue;
        };
        let d = change(*y, *s, s2, f.elasticity);
        let (lo, hi) = f.bounds(level);
        let (a, b) = (change(*y, *s, s2, lo), change(*y, *s, s2, hi));
        let half = (a - b).abs() / 2.0;
        dy += d;
        dv += d * v;
        var_y += half * half;
        var_v += (half * v).powi(2);
    }
    let bounds = |x: f64, var: f64| (x, x - var.sqrt(), x + var.sqrt());
    let finite = [dy, dv, var_y, var_v].iter().all(|x| x.is_finite());
    let fitted = unfitted == 0 && s_from > 0.0 && s_to > 0.0 && finite;
    Some(Shift {
        from,
        to,
        share: sr.shift_share,
        moved,
        conversions: fitted.then(|| bounds(dy, var_y)),
        value: fitted.then(|| bounds(dv, var_v)),
        unfitted,
    })
}

/// The shift's groups must be groups of the run: a `[channel_groups]` group, or a channel of
/// the log in no group (a group of its own); a typo would otherwise give an empty answer.
pub fn check_shift(settings: &Settings, channels: &[String]) -> crate::error::Result<()> {
    let sr = &settings.spend_response;
    for g in [&sr.shift_from, &sr.shift_to].into_iter().flatten() {
        let own = channels.iter().any(|c| c == g && settings.group_of(c) == c);
        if !settings.channel_groups.contains_key(g) && !own {
            return Err(crate::error::Error::Config(format!(
                "spend_response: `{g}` is neither a [channel_groups] group nor a channel of the log in no group"
            )));
        }
    }
    Ok(())
}

/// `budget_shift`: one row.
pub fn budget_shift(r: &Response, s: &Shift) -> Table {
    let o = |x: Option<f64>| Values::OptF64(vec![x]);
    let (c, v) = (s.conversions, s.value);
    Table::new(
        TableName::BudgetShift.as_str(),
        vec![
            ("model", Values::Str(vec![r.model.clone()])),
            ("from_group", Values::Str(vec![s.from.clone()])),
            ("to_group", Values::Str(vec![s.to.clone()])),
            ("share", Values::F64(vec![s.share])),
            ("spend_moved", Values::F64(vec![s.moved])),
            ("conversions_change", o(c.map(|x| x.0))),
            ("conversions_change_low", o(c.map(|x| x.1))),
            ("conversions_change_high", o(c.map(|x| x.2))),
            ("value_change", o(v.map(|x| x.0))),
            ("value_change_low", o(v.map(|x| x.1))),
            ("value_change_high", o(v.map(|x| x.2))),
            ("channels_without_fit", Values::U32(vec![s.unfitted])),
        ],
    )
}
