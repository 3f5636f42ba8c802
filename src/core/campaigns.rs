//! The campaign grain as additive statistics (`docs/models.md` § Campaigns, `docs/scale.md`
//! § Campaigns past one machine).
//!
//! A campaign is a property of a touch, not of the path, so the path table cannot carry it.
//! The split needs, per (channel, campaign) unit, sums over the touches of converting
//! journeys: each touch's weight under a rule model or time decay, its count (the share by
//! which Markov and `shapley_rate` credit is split), and for `markov_journey` its fraction of
//! its channel's touches per distinct channel set (the removal effects that weigh a set are
//! only known after the fit). Every sum is taken once over the data and once per bootstrap
//! replicate (a touch weighted by its person's replicate weight), so sums over partitions
//! of whole persons add up to one run's. One function, [`solve`], turns the sums and the
//! solved channel analysis into [`CampaignCredits`], for one run and for any merge alike.

use std::collections::BTreeMap;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::core::analysis::{Analysis, CampaignCredits};
use crate::core::bootstrap::{Draws, Intervals};
use crate::core::event_log::UNIT_SEPARATOR;
use crate::core::models::{self, Credits};
use crate::core::recorded::Recorded;
use crate::core::table::{Table, Values};
use crate::error::{Error, Result};
use crate::settings::{Model, Models, DAY_MICROS};

/// One kind of per-unit sum.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stat {
    /// Touches counted (Markov and `shapley_rate` credit is split by them).
    Touches,
    /// A rule model's or time decay's touch weights (their credit, exactly).
    Model(Model),
    /// `markov_journey`: per distinct path-channel set (names joined by
    /// [`UNIT_SEPARATOR`]) and one of its path channels, each touch of that channel counts
    /// 1 / the journey's touches of it.
    Journey {
        /// The journey's distinct path channels.
        set: String,
        /// The touch's path channel.
        channel: String,
    },
}

impl Stat {
    /// The name written in a partial's `stat` column.
    pub fn name(&self) -> &'static str {
        match self {
            Stat::Touches => "touches",
            Stat::Model(m) => m.name(),
            Stat::Journey { .. } => "journey",
        }
    }
}

/// A (report channel, campaign) unit.
pub type Unit = (String, String);

/// The campaign sums of a partition of whole persons (or of all of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignSums {
    /// 1 + the number of bootstrap replicates: draw 0 is the data, draw k replicate k − 1.
    pub draws: usize,
    /// Per (statistic, unit): (conversions, value) per draw. Every unit of the input has a
    /// [`Stat::Touches`] cell, so units without credit get rows too.
    pub cells: BTreeMap<(Stat, Unit), Vec<[f64; 2]>>,
}

/// What a partition's sums are taken over.
pub struct SumsInput<'a> {
    /// The converting journeys with their touches.
    pub rec: &'a Recorded,
    /// The campaign id (into `campaigns`) of every recorded touch.
    pub touch_campaign: &'a [u32],
    /// Campaign names.
    pub campaigns: &'a [String],
    /// Every (report channel, campaign) pair of the input, packed `channel << 32 | campaign`.
    pub log_units: &'a [u64],
    /// Bootstrap replicates to sum (0: the data only).
    pub replicates: u32,
    /// The bootstrap seed.
    pub seed: u64,
}

impl CampaignSums {
    /// Add another partition's sums (in a fixed order of partitions, so the floating-point
    /// sums are the same in every run).
    pub fn add(&mut self, other: CampaignSums) -> Result<()> {
        if self.cells.is_empty() {
            *self = other;
            return Ok(());
        }
        if other.draws != self.draws && !other.cells.is_empty() {
            return Err(Error::Internal("campaign sums of different replicate counts".into()));
        }
        for (k, v) in other.cells {
            let e = self.cells.entry(k).or_insert_with(|| vec![[0.0; 2]; v.len()]);
            for (a, b) in e.iter_mut().zip(v) {
                a[0] += b[0];
                a[1] += b[1];
            }
        }
        Ok(())
    }

    /// The units, sorted.
    pub fn units(&self) -> Vec<Unit> {
        let mut u: Vec<Unit> = self.cells.keys().map(|(_, u)| u.clone()).collect();
        u.sort();
        u.dedup();
        u
    }
}

/// The statistic each touch adds to for `m` (Markov and `shapley_rate`: the touch count).
fn stat_kind(a: &Analysis, m: Model, params: &Models) -> Option<Model> {
    let weighted = m == Model::TimeDecay || m == Model::MarkovJourney || a.rule_model(m, params).is_some();
    weighted.then_some(m)
}

/// The campaign sums of one partition: its recorded journeys, weighted once per draw.
pub fn partition_sums(a: &Analysis, input: &SumsInput, params: &Models) -> Result<CampaignSums> {
    let rec = input.rec;
    let plan = Plan::new(a, input, params);
    let person: &[u64] = match input.replicates {
        0 => &[],
        _ => {
            &a.index
                .as_ref()
                .ok_or_else(|| Error::Internal("campaign replicates need persons".into()))?
                .person
        }
    };
    let draws = 1 + input.replicates as usize;
    let blocks: Vec<Vec<[f64; 2]>> = (0..draws)
        .into_par_iter()
        .map(|d| {
            let weight = |i: usize| match d {
                0 => 1.0,
                _ => Draws::new(input.seed, d as u32 - 1).weight(person[rec.user[i] as usize]) as f64,
            };
            plan.block(rec, weight)
        })
        .collect();
    let mut cells = BTreeMap::new();
    for (c, key) in plan.keys.into_iter().enumerate() {
        cells.insert(key, blocks.iter().map(|b| b[c]).collect());
    }
    Ok(CampaignSums { draws, cells })
}

/// Every touch's cells and weights, worked out once for all draws.
struct Plan {
    /// Cell keys, by cell id.
    keys: Vec<(Stat, Unit)>,
    /// Per touch, `per_touch` cells: its [`Stat::Touches`] cell, then one per weighted model.
    cells: Vec<u32>,
    /// Per touch, `per_touch - 1` weights: one per weighted model (value-weighted).
    weights: Vec<f64>,
    per_touch: usize,
}

impl Plan {
    fn new(a: &Analysis, input: &SumsInput, params: &Models) -> Plan {
        let rec = input.rec;
        // The settings' models, not `a.credits`: a Spark chunk runs no model it leaves to the driver.
        let models: Vec<Model> = params.run.iter().filter_map(|&m| stat_kind(a, m, params)).collect();
        let per_model: Vec<Vec<f64>> = models.iter().map(|&m| touch_weights(a, rec, m, params)).collect();
        let per_touch = 1 + models.len();
        let mut ids = Ids::default();
        for &k in input.log_units {
            ids.cell(0, k);
        }
        let (mut cells, mut weights) = (Vec::with_capacity(rec.channel.len() * per_touch), Vec::new());
        weights.reserve(rec.channel.len() * models.len());
        let (mut distinct, mut counts): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
        for i in 0..rec.len() {
            let r = rec.range(i);
            let path = &rec.channel[r.clone()];
            distinct.clear();
            distinct.extend_from_slice(path);
            distinct.sort_unstable();
            distinct.dedup();
            // Touches per distinct channel, once per journey (not a scan per touch).
            counts.clear();
            counts.resize(distinct.len(), 0);
            path.iter().for_each(|c| counts[distinct.binary_search(c).expect("its own channel")] += 1);
            let set = ids.set(&distinct);
            for j in r {
                let ch = rec.channel[j];
                let unit = (u64::from(a.report_of[ch as usize]) << 32) | u64::from(input.touch_campaign[j]);
                cells.push(ids.cell(0, unit));
                for (k, (m, w)) in models.iter().zip(&per_model).enumerate() {
                    let (stat, weight) = match m {
                        Model::MarkovJourney => {
                            let n = counts[distinct.binary_search(&ch).expect("its own channel")];
                            (ids.journey(set, ch), 1.0 / f64::from(n))
                        }
                        _ => (1 + k as u32, w[j]),
                    };
                    cells.push(ids.cell(stat, unit));
                    weights.push(weight);
                }
            }
        }
        let keys = ids.keys(a, input, &models);
        Plan { keys, cells, weights, per_touch }
    }

    /// One draw's sums: journey i weighted by `weight(i)`.
    fn block(&self, rec: &Recorded, weight: impl Fn(usize) -> f64) -> Vec<[f64; 2]> {
        let mut out = vec![[0.0; 2]; self.keys.len()];
        let k = self.per_touch;
        for i in 0..rec.len() {
            let x = weight(i);
            if x == 0.0 {
                continue;
            }
            let v = rec.value[i];
            for j in rec.range(i) {
                let cells = &self.cells[j * k..(j + 1) * k];
                let c = &mut out[cells[0] as usize];
                c[0] += x;
                c[1] += x;
                for (&cell, &w) in cells[1..].iter().zip(&self.weights[j * (k - 1)..(j + 1) * (k - 1)]) {
                    let c = &mut out[cell as usize];
                    c[0] += x * w;
                    c[1] += x * w * v;
                }
            }
        }
        out
    }
}

/// Dense ids of a partition's cells: a cell is (statistic, unit); statistic 0 is the touch
/// count, 1 + k the k-th weighted model, and past those the `markov_journey` (set, channel)
/// pairs; a unit is `report channel << 32 | campaign`.
#[derive(Default)]
struct Ids {
    cells: FxHashMap<(u32, u64), u32>,
    order: Vec<(u32, u64)>,
    sets: FxHashMap<Vec<u32>, u32>,
    set_list: Vec<Vec<u32>>,
    journeys: FxHashMap<(u32, u32), u32>,
    journey_list: Vec<(u32, u32)>,
}

/// Statistic ids from here on are `markov_journey` (set, channel) pairs.
const JOURNEY_BASE: u32 = 1 << 16;

impl Ids {
    fn cell(&mut self, stat: u32, unit: u64) -> u32 {
        let next = self.order.len() as u32;
        *self.cells.entry((stat, unit)).or_insert_with(|| {
            self.order.push((stat, unit));
            next
        })
    }

    fn set(&mut self, distinct: &[u32]) -> u32 {
        if let Some(&s) = self.sets.get(distinct) {
            return s;
        }
        self.set_list.push(distinct.to_vec());
        let s = self.set_list.len() as u32 - 1;
        self.sets.insert(distinct.to_vec(), s);
        s
    }

    fn journey(&mut self, set: u32, channel: u32) -> u32 {
        let next = JOURNEY_BASE + self.journey_list.len() as u32;
        *self.journeys.entry((set, channel)).or_insert_with(|| {
            self.journey_list.push((set, channel));
            next
        })
    }

    /// The named key of every cell, by cell id.
    fn keys(&self, a: &Analysis, input: &SumsInput, models: &[Model]) -> Vec<(Stat, Unit)> {
        let unit = |u: u64| {
            let camp = input.campaigns[(u & 0xffff_ffff) as usize].clone();
            (a.report_channels[(u >> 32) as usize].clone(), camp)
        };
        let set_names: Vec<String> = self.set_list.iter().map(|s| names(a, s)).collect();
        let stat = |s: u32| match s {
            0 => Stat::Touches,
            s if s < JOURNEY_BASE => Stat::Model(models[s as usize - 1]),
            s => {
                let (set, ch) = self.journey_list[(s - JOURNEY_BASE) as usize];
                Stat::Journey {
                    set: set_names[set as usize].clone(),
                    channel: a.paths.channels[ch as usize].clone(),
                }
            }
        };
        self.order.iter().map(|&(s, u)| (stat(s), unit(u))).collect()
    }
}

/// The distinct path channels' names, joined.
fn names(a: &Analysis, distinct: &[u32]) -> String {
    let mut names: Vec<&str> = distinct.iter().map(|&c| a.paths.channels[c as usize].as_str()).collect();
    names.sort_unstable();
    names.join(&UNIT_SEPARATOR.to_string())
}

/// Each recorded touch's weight under a rule model or time decay (`markov_journey`'s are
/// the journey cells, weighed at the solve; empty for it).
fn touch_weights(a: &Analysis, rec: &Recorded, m: Model, params: &Models) -> Vec<f64> {
    if m == Model::MarkovJourney {
        return Vec::new();
    }
    let h = params.time_decay_half_life_days * DAY_MICROS as f64;
    let rule = a.rule_model(m, params);
    let (mut all, mut w) = (Vec::with_capacity(rec.channel.len()), Vec::new());
    for i in 0..rec.len() {
        let r = rec.range(i);
        match &rule {
            Some(rule) => rule.weights(&rec.channel[r], &mut w),
            None => models::time_decay_weights(&rec.ts[r], rec.conversion_ts[i], h, &mut w),
        }
        all.extend_from_slice(&w);
    }
    all
}

/// The campaign credits of a solved channel analysis `a` from the summed `sums`: rule
/// models, time decay and `markov_journey` (its sets weighed by `a`'s removal effects) from
/// their sums; Markov and `shapley_rate` credit of a channel split by its units' touches.
/// Intervals, when `a` has them and the sums have replicates: each replicate's channel credit
/// split by the replicate's sums the same way.
pub fn solve(sums: &CampaignSums, a: &Analysis, params: &Models) -> Result<CampaignCredits> {
    let units = sums.units();
    let channel_of_unit: Vec<usize> = units
        .iter()
        .map(|(ch, _)| {
            a.report_channels.iter().position(|c| c == ch).ok_or_else(|| {
                Error::Internal(format!("campaign sums of a channel the analysis has not: {ch}"))
            })
        })
        .collect::<Result<_>>()?;
    let cells: Vec<(&Stat, usize, &[[f64; 2]])> = sums
        .cells
        .iter()
        .map(|((stat, u), v)| (stat, units.binary_search(u).expect("a unit of the sums"), v.as_slice()))
        .collect();
    let split = Split { cells, a, n_units: units.len(), channel_of_unit: &channel_of_unit, params };
    let mut credits = Vec::with_capacity(a.credits.len());
    for (m, c) in &a.credits {
        let coef = split.coefficients(*m);
        let (cu, vu) = split.weighted(&coef, 0);
        let per_unit = match stat_kind(a, *m, params) {
            Some(_) => Credits { conversions: cu, value: vu },
            None => split.proportional(&a.folded(c), &cu, &cu),
        };
        credits.push((*m, per_unit));
    }
    let intervals = match sums.draws > 1 {
        true => solve_intervals(&split),
        false => None,
    };
    Ok(CampaignCredits { units, credits, channel_of_unit, intervals })
}

/// The replicates' campaign credits: each replicate's channel credit (so the campaign rows
/// add up to the channel rows in every replicate) split by the replicate's weighted sums.
fn solve_intervals(split: &Split) -> Option<Intervals> {
    let iv = split.a.intervals.as_ref()?;
    let draws = iv
        .draws
        .iter()
        .map(|(m, per_rep)| {
            let coef = split.coefficients(*m);
            let reps: Vec<Credits> = per_rep
                .par_iter()
                .enumerate()
                .map(|(r, channel)| {
                    let (cu, vu) = split.weighted(&coef, r + 1);
                    split.proportional(channel, &cu, &vu)
                })
                .collect();
            (*m, reps)
        })
        .collect();
    Some(Intervals { level: iv.level, draws })
}

/// What the solve splits with: the summed cells, with their unit's index.
struct Split<'a> {
    cells: Vec<(&'a Stat, usize, &'a [[f64; 2]])>,
    a: &'a Analysis,
    n_units: usize,
    channel_of_unit: &'a [usize],
    params: &'a Models,
}

impl Split<'_> {
    /// The cells model `m`'s split reads, each with its factor: (cell, factor).
    fn coefficients(&self, m: Model) -> Vec<(usize, f64)> {
        let kind = stat_kind(self.a, m, self.params);
        let re = self.removal_effects();
        let mut coef = Vec::new();
        for (i, (stat, _, _)) in self.cells.iter().enumerate() {
            let share = match (stat, kind) {
                (Stat::Touches, None) => 1.0,
                (Stat::Model(sm), Some(k)) if *sm == k => 1.0,
                (Stat::Journey { set, channel }, Some(Model::MarkovJourney)) => {
                    journey_share(set, channel, &re)
                }
                _ => continue,
            };
            coef.push((i, share));
        }
        coef
    }

    /// Per unit, the weighted (conversions, value) sums of draw `d`.
    fn weighted(&self, coef: &[(usize, f64)], d: usize) -> (Vec<f64>, Vec<f64>) {
        let (mut cu, mut vu) = (vec![0.0; self.n_units], vec![0.0; self.n_units]);
        for &(i, share) in coef {
            let (_, k, v) = self.cells[i];
            cu[k] += share * v[d][0];
            vu[k] += share * v[d][1];
        }
        (cu, vu)
    }

    /// The removal effect of every path channel, by name (0 when there is none).
    fn removal_effects(&self) -> FxHashMap<&str, f64> {
        let re = self.a.markov.as_ref().map(|m| m.removal_effects.as_slice()).unwrap_or(&[]);
        let names = self.a.paths.channels.iter().map(String::as_str);
        names.zip(re.iter().map(|r| r.unwrap_or(0.0).max(0.0)).chain(std::iter::repeat(0.0))).collect()
    }

    /// `channel` credit split over each channel's units in proportion to `cu` (conversions)
    /// and `vu` (value); a channel whose units sum to 0 gives them nothing.
    fn proportional(&self, channel: &Credits, cu: &[f64], vu: &[f64]) -> Credits {
        let n_ch = channel.conversions.len();
        let (mut cs, mut vs) = (vec![0.0; n_ch], vec![0.0; n_ch]);
        for (u, &ch) in self.channel_of_unit.iter().enumerate() {
            cs[ch] += cu[u];
            vs[ch] += vu[u];
        }
        let part = |x: f64, total: f64, of: f64| if total > 0.0 { of * x / total } else { 0.0 };
        let of = |u: usize| self.channel_of_unit[u];
        Credits {
            conversions: (0..cu.len()).map(|u| part(cu[u], cs[of(u)], channel.conversions[of(u)])).collect(),
            value: (0..cu.len()).map(|u| part(vu[u], vs[of(u)], channel.value[of(u)])).collect(),
        }
    }
}

/// `channel`'s share of a journey with the distinct path channels `set` under
/// `markov_journey`: its removal effect over the set's (equal shares when they are all 0),
/// as [`models::markov_journey_split`] splits a journey.
fn journey_share(set: &str, channel: &str, re: &FxHashMap<&str, f64>) -> f64 {
    let w = |c: &str| re.get(c).copied().unwrap_or(0.0);
    let (mut total, mut n) = (0.0, 0usize);
    for c in set.split(UNIT_SEPARATOR) {
        total += w(c);
        n += 1;
    }
    match total > 0.0 {
        true => w(channel) / total,
        false => 1.0 / n as f64,
    }
}

/// The columns of a partial's `partial_campaigns` table: one row per (cell, draw).
pub const COLUMNS: [&str; 8] =
    ["draw", "stat", "set", "path_channel", "channel", "campaign", "conversions", "value"];

/// The columns of [`COLUMNS`] with their Spark SQL types (exported as `CAMPAIGNS_SCHEMA`).
pub fn schema() -> Vec<(&'static str, &'static str)> {
    COLUMNS
        .iter()
        .map(|&c| match c {
            "draw" => (c, "long"),
            "conversions" | "value" => (c, "double"),
            _ => (c, "string"),
        })
        .collect()
}

impl CampaignSums {
    /// The sums as the columns of [`COLUMNS`], rows in cell order then draw.
    pub fn columns(&self) -> Vec<(&'static str, Values)> {
        let n = self.cells.len() * self.draws;
        let (mut draw, mut stat, mut set, mut path_channel) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut channel, mut campaign, mut conv, mut value) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for ((st, (ch, camp)), v) in &self.cells {
            let (s, p) = match st {
                Stat::Journey { set, channel } => (set.as_str(), channel.as_str()),
                _ => ("", ""),
            };
            for (d, x) in v.iter().enumerate() {
                draw.push(d as u32);
                stat.push(st.name().to_owned());
                set.push(s.to_owned());
                path_channel.push(p.to_owned());
                channel.push(ch.clone());
                campaign.push(camp.clone());
                conv.push(x[0]);
                value.push(x[1]);
            }
        }
        let columns = [
            Values::U32(draw),
            Values::Str(stat),
            Values::Str(set),
            Values::Str(path_channel),
            Values::Str(channel),
            Values::Str(campaign),
            Values::F64(conv),
            Values::F64(value),
        ];
        COLUMNS.into_iter().zip(columns).collect()
    }

    /// The sums of a `partial_campaigns` table of `draws` draws (the problem, if it is not
    /// one).
    pub fn from_table(t: &Table, draws: usize) -> std::result::Result<CampaignSums, String> {
        let col = |name: &str| t.columns.iter().find(|c| c.0 == name).map(|c| &c.1);
        let text = |name: &str| match col(name) {
            Some(Values::Str(v)) => Ok(v),
            _ => Err(format!("column {name}: missing or not text")),
        };
        let num = |name: &str| match col(name) {
            Some(Values::F64(v)) => Ok(v),
            _ => Err(format!("column {name}: missing or not a number")),
        };
        let Some(Values::U32(draw)) = col("draw") else {
            return Err("column draw: missing or not a count".into());
        };
        let (stat, set, pch) = (text("stat")?, text("set")?, text("path_channel")?);
        let (channel, campaign, conv, value) =
            (text("channel")?, text("campaign")?, num("conversions")?, num("value")?);
        let mut cells: BTreeMap<(Stat, Unit), Vec<[f64; 2]>> = BTreeMap::new();
        for i in 0..t.height() {
            let st = match stat[i].as_str() {
                "touches" => Stat::Touches,
                "journey" => Stat::Journey { set: set[i].clone(), channel: pch[i].clone() },
                m => Stat::Model(Model::parse(m).map_err(|_| format!("row {i}: unknown stat {m:?}"))?),
            };
            let d = draw[i] as usize;
            if d >= draws {
                return Err(format!("row {i}: draw {d} of {draws}"));
            }
            let e = cells
                .entry((st, (channel[i].clone(), campaign[i].clone())))
                .or_insert_with(|| vec![[0.0; 2]; draws]);
            e[d] = [conv[i], value[i]];
        }
        Ok(CampaignSums { draws, cells })
    }
}
