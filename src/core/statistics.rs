//! The additive statistics of one partition of whole persons, and the one solve that turns
//! their sum into the fitted models (`docs/scale.md` § The statistics algebra).
//!
//! A partition (the whole input on one machine, a shard, a Spark partition, a block of the
//! bounded merge) yields [`Sums`] from its path table ([`Sums::of`]). Sums of partitions
//! add: a merge adds the named rows of every partition into one `Sums` (`run::arrow`
//! parses them). [`solve`] turns a `Sums` into every model's credit, the Markov fit, the
//! order chosen by `markov_order = "auto"`, the sequence effects and Shapley's positions.
//! One run is the case of one partition and calls the same `solve` as every merge and the
//! Spark driver, so "merge == one run" holds by construction, up to the order in which
//! floating-point numbers are added.

use std::collections::BTreeMap;

use crate::core::chain_counts::{self, EdgeCount, EndValue};
use crate::core::markov::{self, Chain, FoldCounts, MarkovResult, OrderScore, SequenceEffect};
use crate::core::models::{self, Credits, OrderedShare, RuleModel};
use crate::core::paths::{PathRow, PathTable};
use crate::core::replicates;
use crate::core::roles::{self, Roles};
use crate::core::shapley;
use crate::error::Result;
use crate::settings::{MarkovOrder, Model, Models};

/// The statistics of a set of paths, in one channel space (the path table's channels).
#[derive(Debug, Default)]
pub struct Sums {
    /// Credit of every rule model (the models whose credit is a sum over paths).
    pub credits: Vec<(Model, Credits)>,
    /// The Markov chain of each order fitted (one unless `markov_order = "auto"`).
    pub chains: BTreeMap<usize, ChainSum>,
    /// With `"auto"`: (conversions, nulls) by (order, fold, last state).
    pub folds: FoldCounts<Vec<u32>>,
    /// (conversions, value, nulls) of the modelled journeys.
    pub totals: (f64, f64, f64),
    /// Distinct paths (of each partition: a person's path in two partitions counts twice).
    pub distinct: f64,
    /// One row per path length: its converting and other journeys (`journey_timing`).
    pub lengths: Vec<PathRow>,
    /// Channel roles per path channel.
    pub roles: Vec<Roles>,
    /// (conversions, nulls, value) per distinct channel set (`markov_journey`,
    /// `shapley_rate`).
    pub coalitions: BTreeMap<Vec<u32>, [f64; 3]>,
    /// Shapley credit by (channel, position): (conversions, value).
    pub ordered: BTreeMap<(u32, u32), (f64, f64)>,
}

/// A Markov chain as a statistic: fitted on one partition's paths, or counted (edge counts
/// and end values summed over partitions, the chain built from them).
#[derive(Debug)]
pub enum ChainSum {
    /// Fitted on a path table.
    Fitted(Box<Chain>),
    /// Summed edge counts and end values.
    Counted {
        /// Edge counts, states as channel tuples.
        edges: Vec<EdgeCount>,
        /// End values per last state.
        ends: Vec<EndValue>,
    },
}

/// What [`Sums::of`] counts.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    /// The models and their parameters.
    pub models: &'a Models,
    /// The Markov orders to fit (every candidate with `"auto"`).
    pub orders: &'a [usize],
    /// Path channel → report channel (`frequency` folds names).
    pub report_of: &'a [u32],
    /// The report channels.
    pub report_channels: &'a [String],
    /// Only what Markov and `shapley_rate` are fitted on (chains, fold counts, coalitions,
    /// totals): the statistics of a training window's journeys.
    pub fitted_only: bool,
}

/// The Markov orders a plan fits: the fixed one, or every candidate of `"auto"`.
pub fn markov_orders(models: &Models) -> Vec<usize> {
    match models.markov_order {
        MarkovOrder::Fixed(k) => vec![k],
        MarkovOrder::Auto { max } => (1..=max.max(1)).collect(),
    }
}

/// Whether a model set fits a Markov chain.
pub fn runs_markov(models: &[Model]) -> bool {
    models.iter().any(|m| matches!(m, Model::Markov | Model::MarkovJourney))
}

/// A rule model in a channel space, None for the models that are not per-path rules
/// (Markov, time decay, `shapley_rate`); `markov_journey` needs the removal effects.
pub fn rule_model(
    m: Model,
    params: &Models,
    plan: (&[u32], &[String]),
    re: Option<&[f64]>,
) -> Option<RuleModel> {
    let (report_of, report_channels) = plan;
    Some(match m {
        Model::FirstTouch => RuleModel::FirstTouch,
        Model::LastTouch => RuleModel::LastTouch,
        Model::LastNonDirect => RuleModel::LastNonDirect(
            report_of
                .iter()
                .map(|&b| params.direct_channels.contains(&report_channels[b as usize]))
                .collect(),
        ),
        Model::Linear => RuleModel::Linear,
        Model::PositionBased => RuleModel::PositionBased(params.position_weights),
        Model::Shapley => RuleModel::Shapley,
        Model::MarkovJourney => RuleModel::MarkovJourney(re?.to_vec()),
        Model::TimeDecay | Model::Markov | Model::ShapleyRate => return None,
    })
}

impl Sums {
    /// The statistics of one partition's paths.
    pub fn of(pt: &PathTable, plan: &Plan) -> Sums {
        let run = &plan.models.run;
        let mut s = Sums {
            totals: (pt.total_conversions(), pt.total_value(), pt.total_nulls()),
            distinct: pt.rows.len() as f64,
            ..Default::default()
        };
        s.fitted(pt, plan);
        if plan.fitted_only {
            return s;
        }
        (s.lengths, s.roles) = (lengths(pt), roles::channel_roles(pt));
        for &m in run.iter().filter(|&&m| replicates::summed(m)) {
            if let Some(rule) = rule_model(m, plan.models, (plan.report_of, plan.report_channels), None) {
                s.credits.push((m, rule.credits(pt)));
            }
        }
        if run.contains(&Model::Shapley) {
            s.ordered = models::ordered_sums(pt);
        }
        s
    }

    /// The coalitions as the sorted sets and their sums (what `replicates` reads).
    fn coalition_lists(&self) -> (Vec<Vec<u32>>, Vec<[f64; 3]>) {
        self.coalitions.iter().map(|(k, v)| (k.clone(), *v)).unzip()
    }

    /// The statistics the fitted models read: the coalitions and the Markov chains (with
    /// `"auto"`, every candidate's, and the fold counts).
    fn fitted(&mut self, pt: &PathTable, plan: &Plan) {
        let run = &plan.models.run;
        if replicates::needs_coalitions(run) {
            let (of, sets) = replicates::coalitions(pt);
            let mut sums = vec![[0.0; 3]; sets.len()];
            for (r, &c) in pt.rows.iter().zip(&of) {
                let x = &mut sums[c as usize];
                (x[0], x[1], x[2]) = (x[0] + r.conversions, x[1] + r.nulls, x[2] + r.value);
            }
            self.coalitions = sets.into_iter().zip(sums).collect();
        }
        if runs_markov(run) && !plan.orders.is_empty() {
            let fit = |k: usize| (k, ChainSum::Fitted(Box::new(Chain::fit(pt, k))));
            self.chains = plan.orders.iter().map(|&k| fit(k)).collect();
            if let MarkovOrder::Auto { .. } = plan.models.markov_order {
                self.folds = markov::fold_counts(pt, plan.orders.last().copied().unwrap_or(1));
            }
        }
    }
}

/// One row per path length with the converting and the other journeys of that length.
fn lengths(pt: &PathTable) -> Vec<PathRow> {
    let mut by: BTreeMap<usize, (f64, f64, f64)> = BTreeMap::new();
    for r in &pt.rows {
        let e = by.entry(r.path.len()).or_default();
        (e.0, e.1, e.2) = (e.0 + r.conversions, e.1 + r.nulls, e.2 + r.value);
    }
    by.into_iter()
        .map(|(len, (conversions, nulls, value))| PathRow { path: vec![0; len], conversions, nulls, value })
        .collect()
}

/// What [`solve`] needs besides the sums.
#[derive(Debug, Clone, Copy)]
pub struct SolveOptions<'a> {
    /// The models and their parameters.
    pub models: &'a Models,
    /// The path channels' names (the space of the sums).
    pub channels: &'a [String],
    /// Time-decay credit, computed from touch times elsewhere (the recorded journeys, or
    /// summed over partitions); None: zero.
    pub time_decay: Option<&'a Credits>,
    /// Compute the removal effects of channel sequences (order ≥ 2).
    pub sequence_effects: bool,
    /// A partition's statistics (a shard, a Spark chunk): the chains are fitted but not
    /// solved ([`markov::unsolved`]), the merge solves their sum.
    pub partition: bool,
    /// The bootstrap's replicates will be solved from this fit (a single run with a
    /// journey index): where they take a correction step from it, its removal solves keep
    /// their solutions ([`markov::Chain::keep_solutions`]). Elsewhere the step, if any,
    /// solves them again (the same bits), and nothing is held that no replicate reads.
    pub replicated: bool,
}

/// The fitted models of one sum of statistics.
#[derive(Debug, Default)]
pub struct Fit {
    /// Credits of each enabled model (path channel ids), in canonical model order.
    pub credits: Vec<(Model, Credits)>,
    /// The Markov fit, when a Markov model is enabled.
    pub markov: Option<MarkovResult>,
    /// Scores of the orders tried by `markov_order = "auto"`.
    pub order_scores: Option<Vec<OrderScore>>,
    /// Removal effects of channel sequences (order ≥ 2).
    pub sequences: Vec<SequenceEffect>,
    /// Shapley credit by position, when Shapley is enabled.
    pub shapley_ordered: Option<Vec<OrderedShare>>,
    /// What the fits warn of.
    pub warnings: Vec<String>,
}

/// The one solve: every model's credit from the sums, in the settings' order. `fit_on`:
/// the statistics Markov and `shapley_rate` are fitted on when not the sums' own (the
/// training window's journeys). Takes the chains out of the sums it fits.
pub fn solve(s: &mut Sums, fit_on: Option<&mut Sums>, opts: &SolveOptions) -> Result<Fit> {
    let m = opts.models;
    let n = opts.channels.len();
    let mut fit = Fit::default();
    let rate = match fit_on {
        Some(t) => {
            fit.markov = markov_fit(t, opts, &mut fit, false)?;
            shapley_rate(t, opts.channels, m)
        }
        None => {
            fit.markov = markov_fit(s, opts, &mut fit, true)?;
            shapley_rate(s, opts.channels, m)
        }
    };
    if let (Some(r), true) = (&fit.markov, opts.sequence_effects && !opts.partition) {
        fit.sequences = markov::sequence_effects(r, m.markov_max_sequences)?;
    }
    for &x in &m.run {
        let c = match x {
            Model::TimeDecay => opts.time_decay.cloned(),
            Model::Markov => fit
                .markov
                .as_ref()
                .map(|r| Credits { conversions: r.conversions.clone(), value: r.value.clone() }),
            Model::MarkovJourney => fit.markov.as_ref().map(|r| markov_journey(s, r, n)),
            Model::ShapleyRate => rate.as_ref().map(|(c, scaled)| {
                if !scaled {
                    fit.warnings.push(crate::core::analysis::SHAPLEY_RATE_UNSCALED.into());
                }
                c.clone()
            }),
            _ => s.credits.iter().find(|(y, _)| *y == x).map(|(_, c)| c.clone()),
        };
        fit.credits.push((x, c.unwrap_or_else(|| Credits::zeros(n))));
    }
    if m.run.contains(&Model::Shapley) {
        fit.shapley_ordered = Some(models::ordered_shares(std::mem::take(&mut s.ordered)));
    }
    Ok(fit)
}

/// `markov_journey`: each converting coalition's channels in proportion to the removal
/// effects (a path's credit depends only on its channel set).
fn markov_journey(s: &Sums, r: &MarkovResult, n: usize) -> Credits {
    let re: Vec<f64> = r.removal_effects.iter().map(|e| e.unwrap_or(0.0)).collect();
    let (sets, sums) = s.coalition_lists();
    replicates::split_by_removal(&sets, &sums, &re, n)
}

/// `replicated`: whether the bootstrap refits this chain (not a training window's), so
/// that its solves are kept where replicates take a correction step from them.
fn markov_fit(
    s: &mut Sums,
    opts: &SolveOptions,
    fit: &mut Fit,
    replicated: bool,
) -> Result<Option<MarkovResult>> {
    markov_fit_chains(std::mem::take(&mut s.chains), &s.folds, s.totals, opts, fit, replicated)
}

/// The Markov fit of the chosen order: with `"auto"` the order whose chain predicts
/// conversion best out of sample (`markov::choose_order_from`), else the only one. A
/// partition keeps its lowest candidate order's chain, unsolved: the order is chosen, and
/// the chain solved, where the partitions are summed.
fn markov_fit_chains(
    chains: BTreeMap<usize, ChainSum>,
    folds: &FoldCounts<Vec<u32>>,
    totals: (f64, f64, f64),
    opts: &SolveOptions,
    fit: &mut Fit,
    replicated: bool,
) -> Result<Option<MarkovResult>> {
    let n = opts.channels.len();
    let mut built: BTreeMap<usize, Chain> = chains
        .into_iter()
        .map(|(k, c)| {
            let chain = match c {
                ChainSum::Fitted(chain) => *chain,
                ChainSum::Counted { edges, ends } => chain_counts::from_edge_counts(k, n, &edges, &ends),
            };
            (k, chain)
        })
        .collect();
    let k = match (opts.models.markov_order, built.len()) {
        (_, 0) => return Ok(None),
        // A partition's chain is only counted (its candidate orders, with "auto", by the
        // bootstrap's partition sums): the merge chooses the order.
        _ if opts.partition => *built.keys().next().expect("a chain"),
        (MarkovOrder::Auto { .. }, _) => {
            let states: Vec<usize> = built.values().map(|c| c.states.len() - 1).collect();
            let (k, scores) = markov::choose_order_from(folds, n, &states);
            tracing::info!(order = k, "chose the Markov order by penalised out-of-sample AUC");
            fit.order_scores = Some(scores);
            k
        }
        (MarkovOrder::Fixed(k), _) => k,
    };
    let chain =
        built.remove(&k).ok_or_else(|| crate::error::Error::Internal(format!("no order-{k} chain")))?;
    drop(built); // the other candidates, before the chosen chain's solves
    if opts.partition {
        return Ok(Some(markov::unsolved(chain, totals)));
    }
    let m = opts.models;
    if replicated
        && opts.replicated
        && m.bootstrap_replicates > 0
        && replicates::linearized(m.markov_replicates, &chain)
    {
        chain.keep_solutions();
    }
    let r = markov::removal(chain, totals)?;
    fit.warnings.extend(crate::core::analysis::markov_warnings(&r));
    Ok(Some(r))
}

/// `shapley_rate` from the coalition sums (it depends on a path only through its channel
/// set), and whether its values could be scaled; None when it does not run.
fn shapley_rate(s: &Sums, channels: &[String], m: &Models) -> Option<(Credits, bool)> {
    if !m.run.contains(&Model::ShapleyRate) {
        return None;
    }
    let (sets, sums) = s.coalition_lists();
    Some(shapley::shapley_rate(&replicates::coalition_table(channels, &sets, &sums)))
}
