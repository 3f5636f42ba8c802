//! Uncertainty of every credit: a seeded Poisson bootstrap over users
//! (`docs/models.md` § Uncertainty).
//!
//! One person's journeys are not independent (a heavy buyer converts again and again), so
//! users, not journeys, are resampled: in replicate r user u carries the weight
//! `Poisson(1)` drawn from a counter-based hash of (seed, r, u), the large-sample form of
//! drawing n users with replacement. A weight applies to all of the user's journeys.
//!
//! Why this is cheap: journeys are never rebuilt. The [`JourneyIndex`] maps every journey to
//! its path-table row, so a replicate is the same path table with reweighted counts. What
//! depends only on the path (each rule model's split of a path among its channels, the
//! Markov edges a path walks, each recorded touch's time-decay weight) is computed once; a
//! replicate then only sums weights and, for Markov, solves the reweighted chain, whose
//! states and sparsity pattern are those of the full-data fit.
//!
//! A person is named by a key that does not depend on the rest of the input (the integer id,
//! or a hash of the string id: [`person_key`]), so a shard or a Spark partition weights its
//! persons exactly as one run over everything does, and a replicate's statistics add up
//! across partitions ([`crate::core::replicates`]). A replicate is two steps: the sums
//! (summed for 8 replicates per pass: `block.rs`) and the one solve of those sums
//! ([`Frame::solve`]), the step every merge shares.
//!
//! Determinism: a replicate's weights depend only on (seed, replicate, person), and every sum
//! inside a replicate runs in a fixed order, so the intervals are identical at any thread
//! count.

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::core::analysis::Analysis;
use crate::core::event_log::EventLog;
use crate::core::markov::{self, Chain, Target};
use crate::core::models::{self, Credits, RuleModel};
use crate::core::paths::{PathRow, PathTable};
use crate::core::recorded::JourneyIndex;
use crate::core::replicates::{self, ChainFrame, Frame, NamedSums, ReplicateSums};
use crate::error::{Error, Result};

mod block;

use crate::settings::{MarkovOrder, Model, Models};
pub use block::BLOCK;

/// How many replicates, at which level, from which seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapOptions {
    /// Replicates (0: no intervals).
    pub replicates: usize,
    /// Central interval level, e.g. 0.9 for the 5th to 95th percentile.
    pub level: f64,
    /// Seed of the user weights.
    pub seed: u64,
    /// Which build of the replicates' pass runs (the same bits either way).
    pub kernel: Kernel,
}

/// The build of the replicates' pass: compiled for the widest vector instructions the
/// processor has (chosen at run time), or portable code. Both give the same bits; the choice
/// exists so that a test can show it on the machine it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernel {
    /// AVX-512 or AVX2 when the processor has them, else portable.
    #[default]
    Fastest,
    /// Portable code only.
    Portable,
}

/// The replicates of every model's credits, folded into the report channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Intervals {
    /// Central interval level.
    pub level: f64,
    /// Per model, in the order of [`Analysis::credits`]: one [`Credits`] per replicate.
    pub draws: Vec<(Model, Vec<Credits>)>,
}

impl Intervals {
    /// Percentile bounds (low, high) of a model's conversions and value per report channel.
    pub fn bounds(&self, m: Model) -> Option<(Credits, Credits)> {
        let draws = &self.draws.iter().find(|(x, _)| *x == m)?.1;
        let n = draws.first()?.conversions.len();
        let (mut lo, mut hi) = (Credits::zeros(n), Credits::zeros(n));
        let q = (1.0 - self.level) / 2.0;
        for ch in 0..n {
            let conv: Vec<f64> = draws.iter().map(|d| d.conversions[ch]).collect();
            let value: Vec<f64> = draws.iter().map(|d| d.value[ch]).collect();
            (lo.conversions[ch], hi.conversions[ch]) = (quantile(&conv, q), quantile(&conv, 1.0 - q));
            (lo.value[ch], hi.value[ch]) = (quantile(&value, q), quantile(&value, 1.0 - q));
        }
        Some((lo, hi))
    }
}

/// The q-quantile of `xs` with linear interpolation between order statistics (Hyndman and
/// Fan's type 7, the default of R and NumPy).
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let h = (s.len() - 1) as f64 * q;
    let (i, f) = (h.floor() as usize, h - h.floor());
    if i + 1 < s.len() {
        s[i] + f * (s[i + 1] - s[i])
    } else {
        s[i]
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// P(Poisson(1) ≤ k) for k = 0, 1, …: the inverse-CDF table of the user weights.
const POISSON1_CDF: [f64; 12] = [
    0.36787944117144233,
    0.7357588823428847,
    0.9196986029286058,
    0.9810118431238463,
    0.9963401531726563,
    0.9994058151824183,
    0.999916758850712,
    0.9999897508033253,
    0.999998874797402,
    0.9999998885745216,
    0.9999999899522336,
    0.9999999991683892,
];

/// [`POISSON1_CDF`] scaled to the range of a 64-bit hash: a uniform draw `h` is below the
/// k-th threshold with probability P(Poisson(1) ≤ k).
const THRESHOLDS: [u64; 12] = {
    let mut t = [0u64; 12];
    let mut k = 0;
    while k < 12 {
        t[k] = (POISSON1_CDF[k] * 18_446_744_073_709_551_616.0) as u64;
        k += 1;
    }
    t
};

/// A person's weight in replicate `replicate`: a Poisson(1) draw from a hash of (seed,
/// replicate, person key), so it never depends on which thread, shard or partition
/// computes it. `person` is a [`person_key`].
pub fn poisson_weight(seed: u64, replicate: u32, person: u64) -> u32 {
    Draws::new(seed, replicate).weight(person)
}

/// The mixed stable key of dense user `u` of a log (its [`EventLog::user_key`]; the dense
/// id itself for a log built without keys, as unit tests build them).
pub fn person_key(log: &EventLog, u: u32) -> u64 {
    splitmix64(log.user_key.get(u as usize).copied().unwrap_or(u as u64))
}

/// The weights of one replicate: the seed and replicate mixed once, then one mix per user.
#[derive(Clone, Copy)]
pub(crate) struct Draws {
    key: u64,
}

impl Draws {
    pub(crate) fn new(seed: u64, replicate: u32) -> Self {
        Draws { key: splitmix64(splitmix64(seed) ^ replicate as u64) }
    }

    pub(crate) fn weight(self, person: u64) -> u32 {
        below(splitmix64(self.key ^ person))
    }
}

/// How many of the [`THRESHOLDS`] a draw reaches, all twelve compared without a branch (what
/// the vector pass computes per lane, and the reference [`below`] is tested against).
#[inline(always)]
fn reached(h: u64) -> u32 {
    THRESHOLDS.iter().map(|&t| u32::from(h >= t)).sum()
}

/// How many of the [`THRESHOLDS`] a draw reaches: the first five without branches (they
/// would mispredict), the rest only past the fifth, which 0.4% of draws reach (a branch the
/// processor predicts).
fn below(h: u64) -> u32 {
    let low: u32 = THRESHOLDS[..5].iter().map(|&c| u32::from(h >= c)).sum();
    match h >= THRESHOLDS[4] {
        false => low,
        true => low + THRESHOLDS[5..].iter().map(|&c| u32::from(h >= c)).sum::<u32>(),
    }
}

/// Per path-table row: the weighted conversions, nulls and value of one replicate (what
/// a training window's fixed models are applied to).
pub struct Weighted {
    conversions: Vec<f64>,
    nulls: Vec<f64>,
    value: Vec<f64>,
}

/// The journeys grouped by path row, so a replicate reads them in one sequential pass.
struct ByPath {
    offsets: Vec<u32>,
    /// The journey's person key.
    person: Vec<u64>,
    /// 1 for a converting journey, else 0 (sums without branches).
    converted: Vec<f64>,
    value: Vec<f64>,
}

impl ByPath {
    fn new(index: &JourneyIndex, n_paths: usize) -> Self {
        let mut offsets = vec![0u32; n_paths + 1];
        for &p in &index.path {
            offsets[p as usize + 1] += 1;
        }
        for p in 0..n_paths {
            offsets[p + 1] += offsets[p];
        }
        let mut next: Vec<u32> = offsets[..n_paths].to_vec();
        let n = index.len();
        let (mut person, mut converted, mut value) = (vec![0u64; n], vec![0.0; n], vec![0.0; n]);
        for j in 0..n {
            let slot = &mut next[index.path[j] as usize];
            let i = *slot as usize;
            person[i] = index.person[index.user[j] as usize];
            converted[i] = f64::from(u8::from(index.value[j].is_some()));
            value[i] = index.value[j].unwrap_or(0.0);
            *slot += 1;
        }
        ByPath { offsets, person, converted, value }
    }

    /// Fill `w` with replicate r's weighted counts (summed in index order within a path).
    fn reweight(&self, draws: Draws, w: &mut Weighted) {
        for p in 0..self.offsets.len() - 1 {
            let (mut all, mut conv, mut value) = (0.0, 0.0, 0.0);
            for j in self.offsets[p] as usize..self.offsets[p + 1] as usize {
                let x = draws.weight(self.person[j]) as f64;
                all += x;
                conv += x * self.converted[j];
                value += x * self.value[j];
            }
            (w.conversions[p], w.nulls[p], w.value[p]) = (conv, all - conv, value);
        }
    }
}

/// What a replicate needs that does not change between replicates.
pub struct Plan<'a> {
    a: &'a Analysis,
    index: &'a JourneyIndex,
    journeys: ByPath,
    /// Rows with conversions, and for each its distinct channels (`split_offsets`).
    converting: Vec<u32>,
    split_offsets: Vec<u32>,
    split_channel: Vec<u32>,
    /// Positions in `a.credits` of the path-determined rule models, and for entry k of the
    /// split arrays the share of its channel under each: `shares[k * rules.len() + m]`.
    rules: Vec<usize>,
    shares: Vec<f64>,
    /// One per chain of the frame.
    markov: Vec<MarkovPlan>,
    /// The coalition of every path row (when the frame has coalitions).
    coalition_of: Vec<u32>,
    /// Time-decay weight of every recorded touch.
    time_decay: Option<Vec<f64>>,
    /// What the sums are solved on.
    pub frame: Frame,
    kernel: Kernel,
}

/// Compute the replicates of every model of `a`. None when the analysis has no journey
/// index (an aggregated path table) or replicates are off.
pub fn intervals(a: &Analysis, params: &Models, opts: &BootstrapOptions) -> Result<Option<Intervals>> {
    let Some(mut plan) = plan(a, params, opts)? else { return Ok(None) };
    if let Some(m) = &a.markov {
        plan.frame.linearize(&m.chain, params.markov_replicates);
    }
    let progress = Progress::new(opts.replicates);
    if plan.frame.linear.is_some() {
        return linear_intervals(a, &plan, opts, &progress).map(Some);
    }
    let reps: Vec<Vec<Vec<Credits>>> = blocks(opts.replicates)
        .into_par_iter()
        .map(|(first, count)| {
            let block = plan.block(opts.seed, first);
            let out = (0..count)
                .into_par_iter()
                .map(|l| plan.replicate(opts.seed, first + l as u32, plan.lane(&block, l)))
                .collect();
            progress.done(count);
            out
        })
        .collect::<Result<_>>()?;
    Ok(Some(fold(a, opts.level, reps.into_iter().flatten().collect())))
}

/// Replicates whose Markov removals take one correction step from the full fit
/// ([`Frame::linearize`]), in the groups a merge solves them in (`markov::Linear::group`):
/// a group's blocks in parallel, each replicate's chain sums written into its column of the
/// correction product and dropped, then the group's corrections in one product.
fn linear_intervals(
    a: &Analysis,
    plan: &Plan,
    opts: &BootstrapOptions,
    progress: &Progress,
) -> Result<Intervals> {
    let frame = &plan.frame;
    let Some(linear) = frame.linear.as_ref() else {
        return Err(Error::Internal("no linearized chain".into()));
    };
    let entries = linear.entries().max(1);
    let all = blocks(opts.replicates);
    let mut out = Vec::with_capacity(opts.replicates);
    let size = frame.group(opts.replicates);
    // One buffer for every group: zeroing it again is cheaper than the kernel's zeroing of
    // fresh pages.
    let mut buffer = vec![0.0; entries * size.min(opts.replicates)];
    for group in all.chunks(size / BLOCK) {
        let q = &mut buffer[..entries * group.iter().map(|b| b.1).sum::<usize>()];
        q.fill(0.0);
        // Each lane's chain sums are dropped on the thread that made them, so the next
        // lane reuses their memory.
        let sums: Vec<Vec<ReplicateSums>> = group
            .par_iter()
            .zip(q.par_chunks_mut(entries * BLOCK))
            .map(|(&(first, count), q)| {
                let block = plan.block(opts.seed, first);
                let lane = |(l, q): (usize, &mut [f64])| {
                    let mut s = plan.lane(&block, l);
                    frame.fill(&s, q)?;
                    (s.edges, s.ends) = (Vec::new(), Vec::new());
                    Ok(s)
                };
                let lanes = (0..count).zip(q.chunks_mut(entries)).map(lane).collect();
                progress.done(count);
                lanes
            })
            .collect::<Result<_>>()?;
        let sums: Vec<ReplicateSums> = sums.into_iter().flatten().collect();
        out.extend(frame.solve_filled(&sums, q)?);
    }
    Ok(fold(a, opts.level, out))
}

/// A long bootstrap (hundreds of channels at Markov order 2 take minutes) says how far it
/// is: once it has run 10 s, at every further tenth of the replicates, a log line with the
/// time to go at the pace so far. Runs that end sooner log nothing.
struct Progress {
    total: usize,
    done: std::sync::atomic::AtomicUsize,
    start: std::time::Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        Progress { total, done: 0.into(), start: std::time::Instant::now() }
    }

    fn done(&self, count: usize) {
        let before = self.done.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        let (now, elapsed) = (before + count, self.start.elapsed().as_secs_f64());
        if elapsed < 10.0 || now * 10 / self.total == before * 10 / self.total || now == self.total {
            return;
        }
        let left = elapsed / now as f64 * (self.total - now) as f64;
        tracing::info!(
            replicates = now,
            of = self.total,
            elapsed_s = elapsed.round(),
            left_s = left.round(),
            "bootstrap"
        );
    }
}

/// The replicates in blocks of [`block::BLOCK`]: (first replicate, how many).
fn blocks(replicates: usize) -> Vec<(u32, usize)> {
    (0..replicates).step_by(block::BLOCK).map(|r| (r as u32, block::BLOCK.min(replicates - r))).collect()
}

/// The replicates' credits (per replicate, per model of `a`, path-table channels) folded
/// into report channels, per model.
pub fn fold(a: &Analysis, level: f64, reps: Vec<Vec<Credits>>) -> Intervals {
    let draws = a
        .credits
        .iter()
        .enumerate()
        .map(|(i, (m, _))| (*m, reps.iter().map(|rep| a.folded(&rep[i])).collect()))
        .collect();
    Intervals { level, draws }
}

/// A partition's replicate statistics, named, each with its value in every replicate
/// (what a shard's partial carries; the merge adds them up and solves them). With
/// `markov_order = "auto"` the chain of every candidate order is summed (the order is chosen
/// where the partitions meet).
pub fn named_sums(a: &Analysis, params: &Models, opts: &BootstrapOptions) -> Result<Option<Vec<NamedSums>>> {
    let Some(mut plan) = plan(a, params, opts)? else { return Ok(None) };
    if let (MarkovOrder::Auto { max }, false) = (params.markov_order, plan.markov.is_empty()) {
        plan.every_order(max.max(1));
    }
    let keys = plan.frame.keys();
    let reps = opts.replicates;
    let width: usize = keys.iter().map(|k| k.used.iter().filter(|&&u| u).count()).sum();
    let mut columns: Vec<Vec<f64>> = vec![vec![0.0; reps]; width];
    // A round of one block per thread at a time, so the replicates in flight are a round's.
    let all = blocks(reps);
    for round in all.chunks(rayon::current_num_threads().max(1)) {
        let flat: Vec<(u32, Vec<Vec<f64>>)> = round
            .par_iter()
            .map(|&(first, count)| {
                let block = plan.block(opts.seed, first);
                let lanes = (0..count)
                    .map(|l| {
                        let mut v = Vec::with_capacity(width);
                        plan.frame.values(&plan.lane(&block, l), &mut v);
                        debug_assert_eq!(v.len(), width, "values in the order of the keys");
                        v
                    })
                    .collect();
                (first, lanes)
            })
            .collect();
        for (first, lanes) in flat {
            for (l, v) in lanes.into_iter().enumerate() {
                for (u, x) in v.into_iter().enumerate() {
                    columns[u][first as usize + l] = x;
                }
            }
        }
    }
    let mut columns = columns.into_iter();
    let rows = keys
        .into_iter()
        .map(|k| NamedSums {
            kind: k.kind,
            numbers: k
                .used
                .map(|u| if u { columns.next().expect("one per used number") } else { Vec::new() }),
            model: k.model,
            from: k.from,
            to: k.to,
        })
        .collect();
    Ok(Some(rows))
}

/// The plan of `a`'s replicates (None without a journey index or replicates).
pub fn plan<'a>(a: &'a Analysis, params: &Models, opts: &BootstrapOptions) -> Result<Option<Plan<'a>>> {
    match a.index.as_ref().filter(|_| opts.replicates > 0) {
        Some(index) => Ok(Some(Plan::new(a, index, params, opts.kernel)?)),
        None => Ok(None),
    }
}

impl<'a> Plan<'a> {
    /// Sum the chain of every order 1..=`max` instead of the analysis' own (a partition with
    /// `markov_order = "auto"`).
    fn every_order(&mut self, max: usize) {
        let chains: Vec<Chain> = (1..=max).map(|k| Chain::fit(&self.a.paths, k)).collect();
        self.markov = chains.iter().map(|c| MarkovPlan::new(c, &self.a.paths)).collect();
        self.frame.chains = chains.iter().map(ChainFrame::of).collect();
    }

    fn new(a: &'a Analysis, index: &'a JourneyIndex, params: &Models, kernel: Kernel) -> Result<Self> {
        let rows = &a.paths.rows;
        let converting: Vec<u32> =
            (0..rows.len() as u32).filter(|&p| rows[p as usize].conversions > 0.0).collect();
        let fixed: Vec<(usize, RuleModel)> = a
            .credits
            .iter()
            .enumerate()
            .filter(|(_, (m, _))| *m != Model::MarkovJourney)
            .filter_map(|(i, (m, _))| Some((i, a.rule_model(*m, params)?)))
            .collect();
        let rule_models: Vec<&RuleModel> = fixed.iter().map(|(_, r)| r).collect();
        let (split_offsets, split_channel, shares) = split_shares(rows, &converting, &rule_models);
        let rules = fixed.iter().map(|(i, _)| *i).collect();
        // With a training window the chain is the training period's: the window's paths may
        // walk states it does not have, and it is not refitted per replicate anyway.
        let markov = a
            .markov
            .iter()
            .filter(|_| a.training.is_none())
            .map(|m| MarkovPlan::new(&m.chain, &a.paths))
            .collect();
        let frame = Frame::of(a);
        let coalition_of = match frame.coalitions.is_empty() {
            true => Vec::new(),
            false => replicates::coalitions(&a.paths).0,
        };
        let time_decay = a.credits.iter().any(|(m, _)| *m == Model::TimeDecay).then(|| {
            let h = params.time_decay_half_life_days * crate::settings::DAY_MICROS as f64;
            let rec = a.recorded.as_ref();
            let mut all = Vec::new();
            let mut w = Vec::new();
            for i in 0..rec.map_or(0, |r| r.len()) {
                let rec = rec.expect("counted above");
                let r = rec.range(i);
                models::time_decay_weights(&rec.ts[r], rec.conversion_ts[i], h, &mut w);
                all.extend_from_slice(&w);
            }
            all
        });
        let journeys = ByPath::new(index, rows.len());
        Ok(Plan {
            a,
            index,
            journeys,
            converting,
            split_offsets,
            split_channel,
            rules,
            shares,
            markov,
            coalition_of,
            time_decay,
            frame,
            kernel,
        })
    }

    /// Every model's credits (path-table channel ids) in replicate r, from its sums.
    fn replicate(&self, seed: u64, r: u32, s: ReplicateSums) -> Result<Vec<Credits>> {
        if self.a.training.is_none() {
            return self.frame.solve(&s);
        }
        let mut out = self.frame.solve_summed(&s);
        let n = self.a.paths.rows.len();
        let mut w = Weighted { conversions: vec![0.0; n], nulls: vec![0.0; n], value: vec![0.0; n] };
        self.journeys.reweight(Draws::new(seed, r), &mut w);
        self.apply_training_fit(&w, &mut out);
        Ok(out)
    }

    /// With a training window the fitted models are fixed (fitted on the training period,
    /// `docs/models.md` § Training window); a replicate only reweights the window's journeys
    /// they are applied to.
    fn apply_training_fit(&self, w: &Weighted, out: &mut [Credits]) {
        let a = self.a;
        let table = weighted_table(&a.paths, w);
        for (i, (m, point)) in a.credits.iter().enumerate() {
            match m {
                Model::Markov | Model::ShapleyRate => {
                    out[i] = crate::core::analysis::onto_window(&table, &point.conversions, &point.value)
                }
                Model::MarkovJourney => {
                    let re: Vec<f64> = a.markov.as_ref().map_or_else(Vec::new, |r| {
                        r.removal_effects.iter().map(|x| x.unwrap_or(0.0).max(0.0)).collect()
                    });
                    out[i] = self.split_markov_journey(w, &re);
                }
                _ => {}
            }
        }
    }

    /// `markov_journey` with the training fit's removal effects: each path's distinct
    /// channels in proportion to them (equal shares where they are all 0).
    fn split_markov_journey(&self, w: &Weighted, re: &[f64]) -> Credits {
        let mut c = Credits::zeros(self.a.paths.channels.len());
        for (j, &p) in self.converting.iter().enumerate() {
            let (conv, value) = (w.conversions[p as usize], w.value[p as usize]);
            if conv == 0.0 {
                continue;
            }
            let entries =
                &self.split_channel[self.split_offsets[j] as usize..self.split_offsets[j + 1] as usize];
            let total: f64 = entries.iter().map(|&ch| re[ch as usize]).sum();
            for &ch in entries {
                let s = if total > 0.0 { re[ch as usize] / total } else { 1.0 / entries.len() as f64 };
                c.add(ch, s, conv, value);
            }
        }
        c
    }

    fn time_decay(&self, draws: Draws, n: usize) -> Credits {
        let mut c = Credits::zeros(n);
        let (Some(rec), Some(tw)) = (self.a.recorded.as_ref(), self.time_decay.as_ref()) else { return c };
        for i in 0..rec.len() {
            let x = draws.weight(self.index.person[rec.user[i] as usize]) as f64;
            if x == 0.0 {
                continue;
            }
            for j in rec.range(i) {
                c.add(rec.channel[j], tw[j], x, x * rec.value[i]);
            }
        }
        c
    }
}

/// For each converting row (in order), its distinct channels and each one's share under
/// every rule model: `shares[k * rules.len() + m]` for entry k. Rows in parallel chunks,
/// concatenated in order (the same numbers as one pass).
fn split_shares(
    rows: &[PathRow],
    converting: &[u32],
    rules: &[&RuleModel],
) -> (Vec<u32>, Vec<u32>, Vec<f64>) {
    let nr = rules.len();
    let chunk = |ps: &[u32]| {
        let (mut lens, mut channels, mut shares, mut w) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &p in ps {
            let path = &rows[p as usize].path;
            let mut distinct = path.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let base = shares.len();
            shares.resize(base + distinct.len() * nr, 0.0);
            for (m, rule) in rules.iter().enumerate() {
                rule.weights(path, &mut w);
                for (&ch, &wi) in path.iter().zip(&w) {
                    shares[base + distinct.binary_search(&ch).expect("its own channel") * nr + m] += wi;
                }
            }
            lens.push(distinct.len() as u32);
            channels.extend(distinct);
        }
        (lens, channels, shares)
    };
    concat_chunks(converting.par_chunks(4096).map(chunk).collect())
}

/// Per-chunk (entry counts per row, entries, extras) concatenated in chunk order: the row
/// offsets into the entries, the entries, the extras.
fn concat_chunks<T, U>(parts: Vec<(Vec<u32>, Vec<T>, Vec<U>)>) -> (Vec<u32>, Vec<T>, Vec<U>) {
    let (mut offsets, mut entries, mut extras) = (vec![0u32], Vec::new(), Vec::new());
    for (lens, e, x) in parts {
        for len in lens {
            offsets.push(offsets[offsets.len() - 1] + len);
        }
        entries.extend(e);
        extras.extend(x);
    }
    (offsets, entries, extras)
}

/// The path table with a replicate's counts (for models that need the table itself).
fn weighted_table(pt: &PathTable, w: &Weighted) -> PathTable {
    let rows = pt
        .rows
        .iter()
        .enumerate()
        .map(|(p, r)| PathRow {
            path: r.path.clone(),
            conversions: w.conversions[p],
            nulls: w.nulls[p],
            value: w.value[p],
        })
        .collect();
    PathTable { channels: pt.channels.clone(), rows }
}

/// The edges each path walks in the full-data chain, so a replicate's transition counts
/// are sums of path weights.
struct MarkovPlan {
    /// Per row: `path_edges[offsets[p]..offsets[p + 1]]` are the transient edges it walks.
    /// The pass over them is bound by memory: edge ids take two bytes when the chain has
    /// fewer than 65,536 edges (orders 1–2 at tens of channels), four otherwise.
    offsets: Vec<u32>,
    path_edges: EdgeIds,
    /// Per row: its last state and its edges into `(conversion)` and `(null)` (`u32::MAX`:
    /// none).
    end: Vec<(u32, u32, u32)>,
}

/// Edge ids in the narrowest integer that holds them.
enum EdgeIds {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

impl EdgeIds {
    fn of(ids: Vec<u32>, edges: usize) -> EdgeIds {
        let narrow = u16::try_from(edges).is_ok() && ids.iter().all(|&e| (e as usize) < edges);
        match narrow {
            true => EdgeIds::Narrow(ids.into_iter().map(|e| e as u16).collect()),
            false => EdgeIds::Wide(ids),
        }
    }
}

impl MarkovPlan {
    /// Rows in parallel chunks, concatenated in row order (the same ids as one pass).
    fn new(chain: &Chain, pt: &PathTable) -> Self {
        let edges: Vec<(u32, Target)> = chain.transitions.iter().map(|t| (t.from, t.to)).collect();
        let state_of: FxHashMap<&[u32], u32> =
            chain.states.iter().enumerate().skip(1).map(|(i, s)| (s.as_slice(), i as u32)).collect();
        let edge = |from: u32, to: Target| edges.binary_search(&(from, to)).map_or(u32::MAX, |e| e as u32);
        let walk = |rows: &[PathRow]| {
            let (mut lens, mut walked, mut end) = (Vec::new(), Vec::new(), Vec::new());
            for r in rows {
                let (mut prev, before) = (0u32, walked.len());
                markov::for_each_state(&r.path, chain.order, |st| {
                    let s = state_of[st];
                    walked.push(edge(prev, Target::State(s)));
                    prev = s;
                });
                lens.push((walked.len() - before) as u32);
                end.push((prev, edge(prev, Target::Conversion), edge(prev, Target::Null)));
            }
            (lens, walked, end)
        };
        let (offsets, path_edges, end) = concat_chunks(pt.rows.par_chunks(4096).map(walk).collect());
        let path_edges = EdgeIds::of(path_edges, edges.len());
        MarkovPlan { offsets, path_edges, end }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_weights_have_the_moments_of_poisson_one() {
        let n = 200_000u32;
        let xs: Vec<f64> = (0..n).map(|u| poisson_weight(7, 3, splitmix64(u as u64)) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        let zeros = xs.iter().filter(|&&x| x == 0.0).count() as f64 / n as f64;
        assert!((zeros - (-1f64).exp()).abs() < 0.005, "P(0) {zeros}");
    }

    /// The split count equals counting all twelve thresholds: at and around each of them,
    /// and on a million hashes.
    #[test]
    fn the_weight_counts_every_threshold() {
        let all = reached;
        for &t in &THRESHOLDS {
            for h in [t.wrapping_sub(1), t, t.wrapping_add(1)] {
                assert_eq!(below(h), all(h), "{h}");
            }
        }
        for i in 0..1_000_000u64 {
            let h = splitmix64(i);
            assert_eq!(below(h), all(h));
        }
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let xs = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(quantile(&xs, 0.0), 1.0);
        assert_eq!(quantile(&xs, 0.5), 3.0);
        assert_eq!(quantile(&xs, 0.9), 4.6);
        assert_eq!(quantile(&xs, 1.0), 5.0);
    }
}
