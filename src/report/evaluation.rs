//! `model_evaluation` and `model_scores`: `touchpoint evaluate`'s tables, built from the
//! run's own `channel_attribution` (and `channel_calibration`) as written, so the scores are
//! of the numbers a user would read (`docs/evaluation.md`).

use std::collections::BTreeMap;

use super::calibration::model_credits;
use super::names::TableName;
use crate::core::evaluation::{score, shares, ModelRun, Score};
use crate::core::table::{Table, Values};

/// What `evaluate` knows beside the run: the world's truth and each model's credit on a
/// much larger log of the same world, scaled to this log's population.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// The world's name.
    pub world: String,
    /// Its channels, in the truth's order.
    pub channels: Vec<String>,
    /// True incremental conversions per channel.
    pub truth: Vec<f64>,
    /// Model → credited conversions per channel (truth order) on the reference log, scaled.
    pub large_sample: BTreeMap<String, Vec<f64>>,
}

/// One model's attributed and (with experiments) calibrated credit, in the truth's order.
pub struct Scored {
    /// The attributed credit and its score.
    pub attributed: (ModelRun, Score),
    /// The calibrated credit and its score.
    pub calibrated: Option<(ModelRun, Score)>,
}

/// Read the runs of each model from the written tables, in the truth's channel order.
pub fn scored(e: &Evaluation, attribution: &Table, calibration: Option<&Table>) -> Vec<Scored> {
    let in_truth_order = |channels: &[String], x: &[f64]| -> Vec<f64> {
        e.channels.iter().map(|c| channels.iter().position(|k| k == c).map_or(0.0, |i| x[i])).collect()
    };
    let bounds_of = |channels: &[String], b: &Option<Vec<(f64, f64)>>| {
        b.as_ref().map(|b| {
            e.channels
                .iter()
                .map(|c| channels.iter().position(|k| k == c).map_or((0.0, 0.0), |i| b[i]))
                .collect()
        })
    };
    let calibrated = calibration.map(calibrated_runs).unwrap_or_default();
    model_credits(attribution)
        .into_iter()
        .map(|(model, m, _)| {
            let run = ModelRun {
                model: model.clone(),
                conversions: in_truth_order(&m.channels, &m.conversions),
                bounds: bounds_of(&m.channels, &m.bounds),
                large_sample: e.large_sample.get(&model).cloned(),
            };
            let cal = calibrated.get(&model).map(|(channels, x, b)| ModelRun {
                model: model.clone(),
                conversions: in_truth_order(channels, x),
                bounds: bounds_of(channels, &Some(b.clone())),
                large_sample: None,
            });
            Scored {
                attributed: (run.clone(), score(&run, &e.truth)),
                calibrated: cal.map(|c| {
                    let s = score(&c, &e.truth);
                    (c, s)
                }),
            }
        })
        .collect()
}

type CalibratedRun = (Vec<String>, Vec<f64>, Vec<(f64, f64)>);

/// Calibrated conversions and bounds per model from `channel_calibration`.
fn calibrated_runs(t: &Table) -> BTreeMap<String, CalibratedRun> {
    let col = |n: &str| t.column(n);
    let mut out: BTreeMap<String, CalibratedRun> = BTreeMap::new();
    let (Some(Values::Str(model)), Some(Values::Str(channel)), Some(Values::F64(k))) =
        (col("model"), col("channel"), col("calibrated_conversions"))
    else {
        return out;
    };
    let (low, high) = (t.floats("calibrated_conversions_low"), t.floats("calibrated_conversions_high"));
    for i in 0..t.height() {
        let e = out.entry(model[i].clone()).or_default();
        e.0.push(channel[i].clone());
        e.1.push(k[i]);
        let (l, h) = (low[i], high[i]);
        e.2.push((l.unwrap_or(f64::NAN), h.unwrap_or(f64::NAN)));
    }
    out
}

/// `model_evaluation` (grain model, channel) and `model_scores` (grain model).
pub fn tables(e: &Evaluation, scored: &[Scored]) -> [Table; 2] {
    [evaluation_table(e, scored), scores_table(scored)]
}

fn evaluation_table(e: &Evaluation, scored: &[Scored]) -> Table {
    let true_share = shares(&e.truth);
    let mut c = EvalColumns::default();
    for s in scored {
        let (run, cal) = (&s.attributed.0, s.calibrated.as_ref().map(|c| &c.0));
        let share = shares(&run.conversions);
        let cal_share = cal.map(|c| shares(&c.conversions));
        for (i, ch) in e.channels.iter().enumerate() {
            let within = |b: Option<&Vec<(f64, f64)>>, x: f64| b.map(|b| b[i].0 <= x && x <= b[i].1);
            c.model.push(run.model.clone());
            c.channel.push(ch.clone());
            c.truth.push(e.truth[i]);
            c.true_share.push(true_share[i]);
            c.conversions.push(run.conversions[i]);
            c.low.push(run.bounds.as_ref().map(|b| b[i].0));
            c.high.push(run.bounds.as_ref().map(|b| b[i].1));
            c.share.push(share[i]);
            c.share_error.push(share[i] - true_share[i]);
            let large = run.large_sample.as_ref().map(|l| l[i]);
            c.large.push(large);
            c.covers_large.push(large.and_then(|x| within(run.bounds.as_ref(), x)));
            c.covers_truth.push(within(run.bounds.as_ref(), e.truth[i]));
            c.cal.push(cal.map(|k| k.conversions[i]));
            c.cal_low.push(cal.and_then(|k| k.bounds.as_ref()).map(|b| b[i].0));
            c.cal_high.push(cal.and_then(|k| k.bounds.as_ref()).map(|b| b[i].1));
            c.cal_share.push(cal_share.as_ref().map(|s| s[i]));
            c.cal_covers.push(cal.and_then(|k| within(k.bounds.as_ref(), e.truth[i])));
        }
    }
    c.table()
}

#[derive(Default)]
struct EvalColumns {
    model: Vec<String>,
    channel: Vec<String>,
    truth: Vec<f64>,
    true_share: Vec<f64>,
    conversions: Vec<f64>,
    low: Vec<Option<f64>>,
    high: Vec<Option<f64>>,
    share: Vec<f64>,
    share_error: Vec<f64>,
    large: Vec<Option<f64>>,
    covers_large: Vec<Option<bool>>,
    covers_truth: Vec<Option<bool>>,
    cal: Vec<Option<f64>>,
    cal_low: Vec<Option<f64>>,
    cal_high: Vec<Option<f64>>,
    cal_share: Vec<Option<f64>>,
    cal_covers: Vec<Option<bool>>,
}

impl EvalColumns {
    fn table(self) -> Table {
        use Values::{OptBool, OptF64, Str, F64};
        Table::new(
            TableName::ModelEvaluation.as_str(),
            vec![
                ("model", Str(self.model)),
                ("channel", Str(self.channel)),
                ("true_incremental_conversions", F64(self.truth)),
                ("true_share", F64(self.true_share)),
                ("conversions", F64(self.conversions)),
                ("conversions_low", OptF64(self.low)),
                ("conversions_high", OptF64(self.high)),
                ("credit_share", F64(self.share)),
                ("share_error", F64(self.share_error)),
                ("large_sample_conversions", OptF64(self.large)),
                ("covers_large_sample", OptBool(self.covers_large)),
                ("covers_truth", OptBool(self.covers_truth)),
                ("calibrated_conversions", OptF64(self.cal)),
                ("calibrated_conversions_low", OptF64(self.cal_low)),
                ("calibrated_conversions_high", OptF64(self.cal_high)),
                ("calibrated_share", OptF64(self.cal_share)),
                ("calibrated_covers_truth", OptBool(self.cal_covers)),
            ],
        )
    }
}

fn scores_table(scored: &[Scored]) -> Table {
    use Values::{OptF64, OptU32, Str, F64, U32};
    let a: Vec<&Score> = scored.iter().map(|s| &s.attributed.1).collect();
    let c: Vec<Option<&Score>> = scored.iter().map(|s| s.calibrated.as_ref().map(|c| &c.1)).collect();
    Table::new(
        TableName::ModelScores.as_str(),
        vec![
            ("model", Str(a.iter().map(|s| s.model.clone()).collect())),
            ("channels", U32(a.iter().map(|s| s.channels).collect())),
            ("tv_distance", F64(a.iter().map(|s| s.tv_distance).collect())),
            ("rank_correlation", OptF64(a.iter().map(|s| s.rank_correlation).collect())),
            ("zero_effect_share", F64(a.iter().map(|s| s.zero_effect_share).collect())),
            ("covers_large_sample", OptU32(a.iter().map(|s| s.covers_large_sample).collect())),
            ("covers_truth", OptU32(a.iter().map(|s| s.covers_truth).collect())),
            ("calibrated_tv_distance", OptF64(c.iter().map(|s| s.map(|s| s.tv_distance)).collect())),
            (
                "calibrated_rank_correlation",
                OptF64(c.iter().map(|s| s.and_then(|s| s.rank_correlation)).collect()),
            ),
            (
                "calibrated_zero_effect_share",
                OptF64(c.iter().map(|s| s.map(|s| s.zero_effect_share)).collect()),
            ),
            ("calibrated_covers_truth", OptU32(c.iter().map(|s| s.and_then(|s| s.covers_truth)).collect())),
        ],
    )
}

/// Each model's credit per channel (in `channels`' order) on a reference run, times `scale`:
/// the large-sample value of the model for a log of this run's population.
pub fn large_sample(
    channels: &[String],
    reference: &super::RunResult,
    scale: f64,
) -> BTreeMap<String, Vec<f64>> {
    let t = super::tables::channel_attribution(&reference.analysis, None);
    model_credits(&t)
        .into_iter()
        .map(|(model, m, _)| {
            let x = channels
                .iter()
                .map(|c| m.channels.iter().position(|k| k == c).map_or(0.0, |i| m.conversions[i] * scale))
                .collect();
            (model, x)
        })
        .collect()
}
