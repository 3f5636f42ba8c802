//! Running the enabled models over one journey result: the step between journeys and
//! tables. Plain Rust; the definitions are in `docs/models.md` § Models.

use crate::core::bootstrap::Intervals;
use crate::core::journeys::{JourneyIndex, JourneyStats, Journeys, Recorded};
use crate::core::markov::{MarkovResult, OrderScore, SequenceEffect};
use crate::core::models::{self, Credits, OrderedShare, RuleModel};
use crate::core::paths::PathTable;
use crate::core::statistics::{self, Fit, Plan, SolveOptions, Sums};
use crate::error::{Error, Result};
use crate::settings::DAY_MICROS;
use crate::settings::{Model, Models};

/// Everything the models computed over one channel space, before it becomes tables.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The path table the models ran on.
    pub paths: PathTable,
    /// Journey counts.
    pub stats: JourneyStats,
    /// Names under which credit is reported (the base channels: `frequency` names such as
    /// `email(2)` are folded back to `email`).
    pub report_channels: Vec<String>,
    /// Path-table channel id → index into `report_channels`.
    pub report_of: Vec<u32>,
    /// Credits of each enabled model (path-table channel ids), in canonical model order.
    pub credits: Vec<(Model, Credits)>,
    /// The Markov fit, when the Markov model is enabled.
    pub markov: Option<MarkovResult>,
    /// Scores of the orders tried by `markov_order = auto`.
    pub order_scores: Option<Vec<OrderScore>>,
    /// Removal effects of channel sequences (order ≥ 2).
    pub sequences: Vec<SequenceEffect>,
    /// Ordered Shapley breakdown, when Shapley is enabled.
    pub shapley_ordered: Option<Vec<OrderedShare>>,
    /// Converting journeys one by one (event input only).
    pub recorded: Option<Recorded>,
    /// Every modelled journey by user and path row (event input, when intervals are on).
    pub index: Option<JourneyIndex>,
    /// Bootstrap replicates of the credits (set by the run after the models).
    pub intervals: Option<Intervals>,
    /// What the training fit used, when `training_days` is set (set by the run).
    pub training: Option<TrainingSummary>,
    /// Warnings for the log and the manifest.
    pub warnings: Vec<String>,
    /// Channel roles summed elsewhere (a distributed fit, whose paths are not in memory);
    /// None: counted on `paths`.
    pub roles: Option<Vec<crate::core::roles::Roles>>,
    /// Per report channel, the lags of its touches to their conversions (from the recorded
    /// journeys, or summed over partitions); None when journeys were not recorded.
    pub lags: Option<Vec<crate::core::roles::ChannelLags>>,
    /// The converting paths with the most conversions, when `paths` does not hold them (a
    /// distributed fit keeps them while it streams the paths).
    pub top_paths: Option<Vec<crate::core::paths::PathRow>>,
}

/// The models fitted on the journeys as a whole (per segment, or the pooled fit for a
/// small segment); the others are rules applied journey by journey.
pub const FITTED: [Model; 4] = [Model::Markov, Model::MarkovJourney, Model::Shapley, Model::ShapleyRate];

/// The models of one customer segment (`docs/models.md` § Segments).
#[derive(Debug, Clone)]
pub struct SegmentAnalysis {
    /// The segmentation: the segment column's name, or `customer_status`.
    pub segmentation: String,
    /// The segment.
    pub segment: String,
    /// Its models.
    pub analysis: Analysis,
    /// Markov and Shapley took the pooled fit (too few conversions).
    pub pooled: bool,
}

impl Analysis {
    /// Credits folded into the report channels (base channels of `frequency` names).
    pub fn folded(&self, c: &Credits) -> Credits {
        let mut f = Credits::zeros(self.report_channels.len());
        for (i, &b) in self.report_of.iter().enumerate() {
            f.conversions[b as usize] += c.conversions[i];
            f.value[b as usize] += c.value[i];
        }
        f
    }

    /// Channel roles folded into the report channels (`frequency` names counted with
    /// their base channel).
    pub fn folded_roles(&self) -> Vec<crate::core::roles::Roles> {
        let mut r = vec![crate::core::roles::Roles::default(); self.report_channels.len()];
        let counted = self.roles.clone().unwrap_or_else(|| crate::core::roles::channel_roles(&self.paths));
        for (i, x) in counted.into_iter().enumerate() {
            r[self.report_of[i] as usize].add(&x);
        }
        r
    }

    /// The rule-based model of `m` in this analysis' channel space (None for Markov and
    /// time decay, which are not per-path rules).
    pub fn rule_model(&self, m: Model, params: &Models) -> Option<RuleModel> {
        let re: Option<Vec<f64>> =
            self.markov.as_ref().map(|r| r.removal_effects.iter().map(|r| r.unwrap_or(0.0)).collect());
        statistics::rule_model(m, params, (&self.report_of, &self.report_channels), re.as_deref())
    }
}

/// What the training fit used, for `data_quality`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingSummary {
    /// Days merged from the store.
    pub days_stored: u64,
    /// Days computed in this run (the run date, and days missing from the store).
    pub days_computed: u64,
    /// Closed journeys of the period.
    pub journeys: f64,
    /// Their conversions.
    pub conversions: f64,
    /// Journeys still open at the end of the period (not counted as non-conversions).
    pub open_journeys: u64,
}

/// What [`analyze`] needs besides the journeys.
#[derive(Debug, Clone, Copy)]
pub struct AnalyzeOptions<'a> {
    /// The channel space the journeys were built over (report names).
    pub base_names: &'a [String],
    /// Models and parameters.
    pub models: &'a Models,
    /// Time-decay credit computed elsewhere (merged shards carry it, since it needs touch
    /// times that a path table does not have).
    pub time_decay_credit: Option<&'a Credits>,
    /// Compute the removal effects of channel sequences (order ≥ 2).
    pub sequence_effects: bool,
    /// Duplicates were dropped (no warning about them).
    pub dedupe: bool,
    /// Journeys closed in the training period, in the same channel space: Markov and
    /// `shapley_rate` are fitted on them and applied to these journeys (`docs/models.md`
    /// § Training window).
    pub training: Option<&'a PathTable>,
    /// The journeys are a partition's (a shard, a Spark chunk): the Markov chain is fitted
    /// and not solved, the merge solves the partitions' sum.
    pub partition: bool,
}

/// Run the enabled models on a journey result: the journeys' statistics ([`Sums::of`],
/// one partition) solved by the solve every merge uses ([`statistics::solve`]).
pub fn analyze(journeys: Journeys, opts: &AnalyzeOptions) -> Result<Analysis> {
    let Journeys { paths, stats, fold, recorded, index } = journeys;
    let (report_channels, report_of) = match fold {
        Some(f) => (opts.base_names.to_vec(), f),
        None => (paths.channels.clone(), (0..paths.channels.len() as u32).collect()),
    };
    let orders = statistics::markov_orders(opts.models);
    let plan = Plan {
        models: opts.models,
        orders: &orders,
        report_of: &report_of,
        report_channels: &report_channels,
        fitted_only: false,
    };
    // With a training window Markov is fitted on the training journeys only.
    let window = Plan { orders: if opts.training.is_some() { &[] } else { &orders }, ..plan };
    let mut sums = Sums::of(&paths, &window);
    let mut training = opts.training.map(|t| Sums::of(t, &Plan { fitted_only: true, ..plan }));
    let time_decay = time_decay_credit(opts, recorded.as_ref(), paths.channels.len())?;
    let solve = SolveOptions {
        models: opts.models,
        channels: &paths.channels,
        time_decay: time_decay.as_ref(),
        sequence_effects: opts.sequence_effects,
        partition: opts.partition,
        replicated: index.is_some() && !opts.partition,
    };
    let mut fit = statistics::solve(&mut sums, training.as_mut(), &solve)?;
    if opts.training.is_some() {
        fitted_onto_window(&paths, &mut fit);
    }
    let dedupe = opts.dedupe;
    fit.warnings.splice(0..0, input_warnings(&stats, paths.total_nulls(), opts.models, dedupe));
    let lags = recorded.as_ref().map(|rec| {
        crate::core::roles::lag_counts(rec, |c| report_of[c as usize] as usize, report_channels.len())
    });
    let mut a = Analysis::new(paths, stats, (report_channels, report_of), fit, sums.roles);
    (a.recorded, a.index, a.lags) = (recorded, index, lags);
    Ok(a)
}

impl Analysis {
    /// An analysis from its paths (a merge's: one row per path length) and its fit; one
    /// run then adds its recorded journeys, its index and its lags.
    pub fn new(
        paths: PathTable,
        stats: JourneyStats,
        (report_channels, report_of): (Vec<String>, Vec<u32>),
        fit: Fit,
        roles: Vec<crate::core::roles::Roles>,
    ) -> Analysis {
        Analysis {
            paths,
            stats,
            report_channels,
            report_of,
            credits: fit.credits,
            markov: fit.markov,
            order_scores: fit.order_scores,
            sequences: fit.sequences,
            shapley_ordered: fit.shapley_ordered,
            recorded: None,
            index: None,
            intervals: None,
            training: None,
            warnings: fit.warnings,
            roles: Some(roles),
            lags: None,
            top_paths: None,
        }
    }
}

/// Time-decay credit: given (merged shards carry it), or from the recorded journeys' touch
/// times; None when the model does not run.
fn time_decay_credit(
    opts: &AnalyzeOptions,
    recorded: Option<&Recorded>,
    n: usize,
) -> Result<Option<Credits>> {
    if !opts.models.run.contains(&Model::TimeDecay) {
        return Ok(None);
    }
    if let Some(c) = opts.time_decay_credit {
        return Ok(Some(c.clone()));
    }
    let rec = recorded.ok_or_else(|| {
        Error::Config("time_decay needs event timestamps; it cannot run on an aggregated path table".into())
    })?;
    Ok(Some(time_decay(rec, n, opts.models.time_decay_half_life_days)))
}

/// Markov and `shapley_rate` fitted on the training window's journeys, their weights
/// applied to this window's conversions (`docs/models.md` § Training window).
fn fitted_onto_window(window: &PathTable, fit: &mut Fit) {
    let re = |x: &[Option<f64>]| x.iter().map(|r| r.unwrap_or(0.0)).collect::<Vec<_>>();
    let markov = fit.markov.as_mut().map(|r| {
        let c = onto_window(window, &re(&r.removal_effects), &re(&r.value_removal_effects));
        (r.conversions, r.value) = (c.conversions.clone(), c.value.clone());
        c
    });
    for (m, c) in fit.credits.iter_mut() {
        match m {
            Model::Markov => *c = markov.clone().unwrap_or_else(|| c.clone()),
            Model::ShapleyRate => *c = onto_window(window, &c.conversions, &c.value),
            _ => {}
        }
    }
}

/// The warning of a `shapley_rate` whose values cannot be scaled.
pub const SHAPLEY_RATE_UNSCALED: &str =
    "shapley_rate: the Shapley values of the conversion rates do not add up to a positive total; its credits are 0";

/// What a Markov fit warns of: its invariant (P(conversion) from `(start)` is the observed
/// rate) off, or the solver's own warning.
pub fn markov_warnings(r: &MarkovResult) -> Vec<String> {
    let mut w = Vec::new();
    let gap = (r.p_conversion - r.observed_rate).abs();
    if gap > 1e-9 * r.observed_rate.max(1.0) {
        w.push(format!(
            "Markov invariant off by {gap:e}: P(conversion) {} vs observed rate {}",
            r.p_conversion, r.observed_rate
        ));
    }
    w.extend(r.warning.clone());
    w
}

/// What the journeys themselves warn of (duplicates, no conversions, no nulls), wherever
/// the models run: one run, a merge, a distributed fit.
pub fn input_warnings(stats: &JourneyStats, total_nulls: f64, models: &Models, dedupe: bool) -> Vec<String> {
    let mut w = Vec::new();
    if stats.duplicate_events > 0 && !dedupe {
        w.push(format!(
            "{} exact duplicate event(s) (equal in every mapped column) are counted as separate events; \
             set journeys.dedupe = \"exact\" to keep only the first copy",
            stats.duplicate_events
        ));
    }
    if stats.total_conversions == 0.0 {
        w.push("the input has no conversions: every credit is 0 and removal effects are null".into());
    } else if total_nulls == 0.0 && models.run.contains(&Model::Markov) {
        w.push(
            "no non-converting journeys: the Markov chain has no (null) state, so removal effects only \
             measure how often a channel appears on converting paths"
                .into(),
        );
    }
    w
}

/// A fitted model's weights per channel applied to the window: the window's conversions and
/// value split in proportion to the weights of the channels on its converting paths
/// (channels seen only in training get none of the window's credit).
pub fn onto_window(window: &PathTable, conv_weight: &[f64], value_weight: &[f64]) -> Credits {
    let mut present = vec![false; window.channels.len()];
    for r in window.rows.iter().filter(|r| r.conversions > 0.0) {
        r.path.iter().for_each(|&c| present[c as usize] = true);
    }
    let split = |w: &[f64], total: f64| -> Vec<f64> {
        let w: Vec<f64> = (0..present.len())
            .map(|c| if present[c] { w.get(c).copied().unwrap_or(0.0).max(0.0) } else { 0.0 })
            .collect();
        let sum: f64 = w.iter().sum();
        w.iter().map(|x| if sum > 0.0 { x / sum * total } else { 0.0 }).collect()
    };
    Credits {
        conversions: split(conv_weight, window.total_conversions()),
        value: split(value_weight, window.total_value()),
    }
}

/// Time-decay credit over recorded journeys (Δ from the conversion to each touch).
pub fn time_decay(rec: &Recorded, n_channels: usize, half_life_days: f64) -> Credits {
    let h = half_life_days * DAY_MICROS as f64;
    let mut c = Credits::zeros(n_channels);
    let mut w = Vec::new();
    for i in 0..rec.len() {
        let r = rec.range(i);
        models::time_decay_weights(&rec.ts[r.clone()], rec.conversion_ts[i], h, &mut w);
        for (&ch, &wi) in rec.channel[r].iter().zip(&w) {
            c.add(ch, wi, 1.0, rec.value[i]);
        }
    }
    c
}

/// Credit at the (channel, campaign) grain, in the channel analysis' own journeys, so that
/// a channel's campaign rows add up to its channel row under every model
/// (`docs/models.md` § Campaigns).
#[derive(Debug, Clone)]
pub struct CampaignCredits {
    /// The (channel, campaign) units, sorted by channel then campaign name.
    pub units: Vec<(String, String)>,
    /// Credits per unit, one entry per model of the channel analysis.
    pub credits: Vec<(Model, Credits)>,
    /// The report channel of every unit.
    pub channel_of_unit: Vec<usize>,
    /// Bootstrap replicates per unit (set by the run after the channel intervals).
    pub intervals: Option<Intervals>,
}
