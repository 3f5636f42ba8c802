//! `channel_calibration`: each model's credit calibrated to lift experiments, built from
//! `channel_attribution` as written, so every entry point (one run, shards, Spark) gives the
//! same rows from the same table (`docs/models.md` § Calibration).

use super::names::TableName;
use crate::core::calibration::{self, Calibrated, Experiment, ModelCredit, Target};
use crate::core::table::{Table, Values};
use crate::error::{Error, Result};
use crate::settings::Settings;

/// One model's credit per channel read back from `channel_attribution` (model order kept),
/// with the run's totals (the `(unattributed)` row included).
pub(super) fn model_credits(t: &Table) -> Vec<(String, ModelCredit, Vec<Option<f64>>)> {
    let text = |n: &str| -> Vec<String> { t.texts(n).into_iter().map(Option::unwrap_or_default).collect() };
    let num = |n: &str| t.floats(n);
    let (model, channel) = (text("model"), text("channel"));
    let (conv, value, spend) = (num("conversions"), num("value"), num("spend"));
    let (lo, hi) = (num("conversions_low"), num("conversions_high"));
    let mut out: Vec<(String, ModelCredit, Vec<Option<f64>>)> = Vec::new();
    for i in 0..t.height() {
        if out.last().is_none_or(|o| o.0 != model[i]) {
            out.push((
                model[i].clone(),
                ModelCredit { bounds: Some(Vec::new()), ..Default::default() },
                Vec::new(),
            ));
        }
        let (_, m, sp) = out.last_mut().expect("pushed above");
        let (c, v) = (conv[i].unwrap_or(0.0), value[i].unwrap_or(0.0));
        m.total.0 += c;
        m.total.1 += v;
        if channel[i] == crate::core::event_log::UNATTRIBUTED {
            continue;
        }
        m.channels.push(channel[i].clone());
        m.conversions.push(c);
        m.value.push(v);
        sp.push(spend[i]);
        match (lo[i], hi[i], &mut m.bounds) {
            (Some(l), Some(h), Some(b)) => b.push((l, h)),
            _ => m.bounds = None,
        }
    }
    out
}

/// Every experiment's target must be in the run: a channel of the log, or a configured
/// group with at least one channel in it (a typo would otherwise calibrate nothing).
pub(super) fn check_targets(
    experiments: &[Experiment],
    channels: &[String],
    settings: &Settings,
) -> Result<()> {
    for e in experiments {
        let known = match &e.target {
            Target::Channel(c) => channels.contains(c),
            Target::Group(g) => {
                settings.channel_groups.contains_key(g) && channels.iter().any(|c| settings.group_of(c) == g)
            }
        };
        if !known {
            let what = match &e.target {
                Target::Channel(c) => format!("channel `{c}` of an experiment is not in the log's channels"),
                Target::Group(g) => format!(
                    "group `{g}` of an experiment is not a [channel_groups] group with a channel in the log"
                ),
            };
            let file = settings
                .input
                .experiments
                .as_deref()
                .map_or("input.experiments".into(), |p| p.display().to_string());
            return Err(Error::Config(format!("{file}: {what}")));
        }
    }
    Ok(())
}

/// `channel_calibration`: grain (model, channel), models in `channel_attribution`'s order.
pub fn channel_calibration(
    attribution: &Table,
    channels: &[String],
    run: &super::RunResult,
    settings: &Settings,
) -> Result<Table> {
    check_targets(&run.experiments, channels, settings)?;
    let lifts = calibration::pooled(&run.experiments);
    let group_of = |c: &str| settings.group_of(c).to_owned();
    let mut cols = Columns::default();
    for (model, credit, spend) in model_credits(attribution) {
        let out = calibration::calibrate(&credit, &lifts, &group_of, settings.models.interval_level);
        for (i, c) in out.iter().enumerate() {
            cols.push(&model, &credit, i, c, spend[i]);
        }
    }
    Ok(cols.table())
}

#[derive(Default)]
struct Columns {
    model: Vec<String>,
    channel: Vec<String>,
    experiment: Vec<Option<String>>,
    experiments: Vec<u32>,
    credited: [Vec<Option<f64>>; 3],
    lift: [Vec<Option<f64>>; 2],
    factor: [Vec<Option<f64>>; 3],
    calibrated: [Vec<Option<f64>>; 3],
    value: [Vec<Option<f64>>; 3],
    spend: Vec<Option<f64>>,
    cpa: [Vec<Option<f64>>; 3],
    roas: [Vec<Option<f64>>; 3],
}

/// `x / y` for a positive divisor (a ratio to zero or a negative count is not shown).
fn div(x: Option<f64>, y: Option<f64>) -> Option<f64> {
    match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => Some(x / y),
        _ => None,
    }
}

impl Columns {
    fn push(&mut self, model: &str, m: &ModelCredit, i: usize, c: &Calibrated, spend: Option<f64>) {
        self.model.push(model.to_owned());
        self.channel.push(m.channels[i].clone());
        self.experiment.push(c.target.clone());
        self.experiments.push(c.lift.map_or(0, |l| l.experiments));
        let own = m.bounds.as_ref().map(|b| b[i]);
        let triple = |x: f64, b: Option<(f64, f64)>| [Some(x), b.map(|b| b.0), b.map(|b| b.1)];
        for (col, v) in self.credited.iter_mut().zip(triple(m.conversions[i], own)) {
            col.push(v);
        }
        self.lift[0].push(c.lift.map(|l| l.lift));
        self.lift[1].push(c.lift.map(|l| l.se));
        let f = c.factor.map_or([None; 3], |(k, l, h)| [Some(k), Some(l), Some(h)]);
        let conv = triple(c.conversions.0, c.conversions.1);
        let value = triple(c.value.0, c.value.1);
        // CPA falls as conversions rise: its low bound comes from the high conversions. Only
        // a calibrated channel has an incremental CPA; the others' is the model's own.
        let spend_if = spend.filter(|_| c.target.is_some());
        let cpa = [div(spend_if, conv[0]), div(spend_if, conv[2]), div(spend_if, conv[1])];
        let roas = match spend_if {
            Some(_) => [div(value[0], spend), div(value[1], spend), div(value[2], spend)],
            None => [None; 3],
        };
        for (dst, src) in [
            (&mut self.factor, f),
            (&mut self.calibrated, conv),
            (&mut self.value, value),
            (&mut self.cpa, cpa),
            (&mut self.roas, roas),
        ] {
            dst.iter_mut().zip(src).for_each(|(d, s)| d.push(s));
        }
        self.spend.push(spend);
    }

    fn table(self) -> Table {
        let o = Values::OptF64;
        let [c0, c1, c2] = self.credited;
        let [l0, l1] = self.lift;
        let [f0, f1, f2] = self.factor;
        let [k0, k1, k2] = self.calibrated;
        let [v0, v1, v2] = self.value;
        let [p0, p1, p2] = self.cpa;
        let [r0, r1, r2] = self.roas;
        let plain = |v: Vec<Option<f64>>| Values::F64(v.into_iter().map(|x| x.unwrap_or(0.0)).collect());
        Table::new(
            TableName::ChannelCalibration.as_str(),
            vec![
                ("model", Values::Str(self.model)),
                ("channel", Values::Str(self.channel)),
                ("experiment", Values::OptStr(self.experiment)),
                ("experiments", Values::U32(self.experiments)),
                ("conversions", plain(c0)),
                ("conversions_low", o(c1)),
                ("conversions_high", o(c2)),
                ("experiment_lift", o(l0)),
                ("experiment_lift_se", o(l1)),
                ("incremental_factor", o(f0)),
                ("incremental_factor_low", o(f1)),
                ("incremental_factor_high", o(f2)),
                ("calibrated_conversions", plain(k0)),
                ("calibrated_conversions_low", o(k1)),
                ("calibrated_conversions_high", o(k2)),
                ("calibrated_value", plain(v0)),
                ("calibrated_value_low", o(v1)),
                ("calibrated_value_high", o(v2)),
                ("spend", o(self.spend)),
                ("incremental_cpa", o(p0)),
                ("incremental_cpa_low", o(p1)),
                ("incremental_cpa_high", o(p2)),
                ("incremental_roas", o(r0)),
                ("incremental_roas_low", o(r1)),
                ("incremental_roas_high", o(r2)),
            ],
        )
    }
}
