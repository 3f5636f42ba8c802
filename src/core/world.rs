//! Worlds with a known causal truth: simulated customers whose conversions channels cause by
//! known amounts, so a model's credit can be scored against the truth (`touchpoint generate
//! --world`, `touchpoint evaluate`, `docs/evaluation.md`).
//!
//! Each person has a latent intent `z ~ N(0, 1)`. Every advertising channel `c` reaches them
//! `n_c ~ Poisson(rate_c · exp(β_c z − β_c²/2))` times over a 21-day window (`β_c > 0`: the
//! channel targets people already likely to buy, as retargeting does; the factor keeps the
//! mean at `rate_c`). They convert once, with probability `1 − exp(−λ)`, where the hazard
//! `λ = base · exp(σ z − σ²/2) + Σ_c effect_c · min(n_c, 3)`: each touch adds a known amount,
//! up to three touches per channel. *Closers* (branded search, direct) have no effect: a
//! person who has decided to buy touches them minutes before the purchase with a fixed
//! probability, which is why every observational model credits them.
//!
//! The truth is exact, not sampled: a person's incremental conversions from channel `c` are
//! `P(convert) − P(convert without c's touches)`, summed over people. A randomized holdout of
//! each channel is also simulated on an independent population (half of it held out from the
//! channel), as a lift test would measure it, with its standard error.
//!
//! Deterministic: every person draws from their own ChaCha8 stream (`seed`, stream = person),
//! chunks are summed in order, so files and truth are the same at any thread count.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// One channel of a world.
#[derive(Debug, Clone, Copy)]
pub struct ChannelSpec {
    /// Its name in the log.
    pub name: &'static str,
    /// Hazard added per touch (up to [`MAX_EFFECTIVE_TOUCHES`]).
    pub effect: f64,
    /// Mean touches per person over the window (0 for closers).
    pub rate: f64,
    /// How strongly it targets intent (β above; 0 = untargeted).
    pub targeting: f64,
    /// Probability that a converting person touches it just before buying (closers).
    pub closes: f64,
    /// Probability that a person who does not convert touches it anyway (closers).
    pub browses: f64,
}

/// A documented world: its channels and the baseline hazard.
#[derive(Debug, Clone, Copy)]
pub struct WorldSpec {
    /// Name given to `--world`.
    pub name: &'static str,
    /// One line on what it tests.
    pub about: &'static str,
    /// Mean baseline hazard (people convert without any advertising).
    pub base: f64,
    /// Spread of the baseline hazard with intent (σ above).
    pub intent_sd: f64,
    /// The channels, in id order.
    pub channels: &'static [ChannelSpec],
}

/// Touches of one channel beyond this add nothing (diminishing returns).
pub const MAX_EFFECTIVE_TOUCHES: u32 = 3;
const WINDOW_S: f64 = 21.0 * 86_400.0;
const T0_US: i64 = 1_704_067_200 * 1_000_000; // 2024-01-01T00:00:00Z
/// Share of an experiment's population held out from the tested channel.
pub const HOLDOUT_SHARE: f64 = 0.5;
/// Median and log-sd of a purchase's value.
const VALUE_MEDIAN: f64 = 60.0;
const VALUE_LOG_SD: f64 = 0.5;

const fn ad(name: &'static str, effect: f64, rate: f64, targeting: f64) -> ChannelSpec {
    ChannelSpec { name, effect, rate, targeting, closes: 0.0, browses: 0.0 }
}
const fn closer(name: &'static str, closes: f64, browses: f64) -> ChannelSpec {
    ChannelSpec { name, effect: 0.0, rate: 0.0, targeting: 0.0, closes, browses }
}

/// The worlds `--world` accepts.
pub const WORLDS: [WorldSpec; 2] = [
    WorldSpec {
        name: "confounded",
        about: "retargeting and email aim at likely buyers; branded search and direct, which cause \
                nothing, are touched right before buying",
        base: 0.02,
        intent_sd: 1.0,
        channels: &[
            ad("display", 0.010, 2.0, 0.0),
            ad("video", 0.015, 0.8, 0.0),
            ad("facebook", 0.020, 1.5, 0.2),
            ad("tiktok", 0.008, 1.0, 0.0),
            ad("generic_search", 0.030, 0.6, 0.8),
            ad("email", 0.012, 1.0, 0.5),
            ad("retargeting", 0.006, 1.2, 1.5),
            closer("brand_search", 0.45, 0.03),
            closer("direct", 0.35, 0.05),
        ],
    },
    WorldSpec {
        name: "independent",
        about: "the same channels and effects, reaching people regardless of intent, and no \
                closers: what the models see when nothing confounds them",
        base: 0.02,
        intent_sd: 1.0,
        channels: &[
            ad("display", 0.010, 2.0, 0.0),
            ad("video", 0.015, 0.8, 0.0),
            ad("facebook", 0.020, 1.5, 0.0),
            ad("tiktok", 0.008, 1.0, 0.0),
            ad("generic_search", 0.030, 0.6, 0.0),
            ad("email", 0.012, 1.0, 0.0),
            ad("retargeting", 0.006, 1.2, 0.0),
        ],
    },
];

/// The world of a name.
pub fn world(name: &str) -> Option<&'static WorldSpec> {
    WORLDS.iter().find(|w| w.name == name)
}

/// Generated events as plain columns (persons by index, channels by id).
#[derive(Debug, Default)]
pub struct Rows {
    /// Person index.
    pub user: Vec<u64>,
    /// µs since the Unix epoch.
    pub ts: Vec<i64>,
    /// Channel id, None on conversions.
    pub channel: Vec<Option<u16>>,
    /// Conversion row.
    pub conversion: Vec<bool>,
    /// Value of a conversion.
    pub revenue: Vec<Option<f64>>,
}

impl Rows {
    /// Append another block's rows.
    pub fn extend(&mut self, p: Rows) {
        self.user.extend(p.user);
        self.ts.extend(p.ts);
        self.channel.extend(p.channel);
        self.conversion.extend(p.conversion);
        self.revenue.extend(p.revenue);
    }
}

/// The exact truth of a generated log, per channel in id order.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// Expected incremental conversions: Σ over persons of P(convert) − P(without the channel).
    pub incremental: Vec<f64>,
    /// Touches in the log.
    pub touches: Vec<u64>,
    /// Expected conversions of the log's persons.
    pub expected_conversions: f64,
    /// Expected conversions with no advertising at all.
    pub baseline_conversions: f64,
    /// Conversions the log holds.
    pub conversions: u64,
}

/// A simulated randomized holdout of one channel, scaled to the log's population.
#[derive(Debug, Clone, Copy, Default)]
pub struct Holdout {
    /// Persons exposed as usual / held out from the channel.
    pub treated: u64,
    /// See `treated`.
    pub held_out: u64,
    /// Their conversions.
    pub treated_conversions: u64,
    /// See `treated_conversions`.
    pub held_out_conversions: u64,
}

impl Holdout {
    /// Conversion rates of the two arms.
    fn rates(&self) -> (f64, f64) {
        (
            self.treated_conversions as f64 / self.treated.max(1) as f64,
            self.held_out_conversions as f64 / self.held_out.max(1) as f64,
        )
    }
    /// Incremental conversions for a population of `n` (the difference of rates × n).
    pub fn incremental(&self, n: f64) -> f64 {
        let (t, h) = self.rates();
        (t - h) * n
    }
    /// Conversions of a population of `n` with the channel on.
    pub fn conversions(&self, n: f64) -> f64 {
        self.rates().0 * n
    }
    /// Standard error of [`Holdout::incremental`] (two independent binomial rates).
    pub fn standard_error(&self, n: f64) -> f64 {
        let (t, h) = self.rates();
        n * (t * (1.0 - t) / self.treated.max(1) as f64 + h * (1.0 - h) / self.held_out.max(1) as f64).sqrt()
    }
}

/// Expected value of one purchase (mean of the log-normal).
pub fn mean_value() -> f64 {
    VALUE_MEDIAN * (VALUE_LOG_SD * VALUE_LOG_SD / 2.0).exp()
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Knuth's Poisson sampler: the means here are small (a few touches).
fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u32 {
    let l = (-mean).exp();
    let (mut k, mut p) = (0u32, 1.0f64);
    loop {
        p *= rng.random::<f64>();
        if p <= l || k >= 200 {
            return k;
        }
        k += 1;
    }
}

/// One person's draws: intent, touches per channel, the hazards and whether they convert.
struct Person {
    touches: Vec<u32>,
    base: f64,
    hazard: f64,
    converts: bool,
}

fn draw_person(w: &WorldSpec, rng: &mut ChaCha8Rng, held_out: Option<usize>) -> Person {
    let z = normal(rng);
    let touches: Vec<u32> = w
        .channels
        .iter()
        .enumerate()
        .map(|(c, ch)| {
            let n = if ch.rate > 0.0 {
                poisson(rng, ch.rate * (ch.targeting * z - ch.targeting * ch.targeting / 2.0).exp())
            } else {
                0
            };
            if held_out == Some(c) {
                0
            } else {
                n
            }
        })
        .collect();
    let s = w.intent_sd;
    let base = w.base * (s * z - s * s / 2.0).exp();
    let hazard = base
        + w.channels
            .iter()
            .zip(&touches)
            .map(|(ch, &n)| ch.effect * n.min(MAX_EFFECTIVE_TOUCHES) as f64)
            .sum::<f64>();
    let converts = rng.random::<f64>() < 1.0 - (-hazard).exp();
    Person { touches, base, hazard, converts }
}

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// One person's events and their contribution to the truth.
fn simulate_person(w: &WorldSpec, seed: u64, user: u64, days: u32, out: &mut Rows, truth: &mut Truth) {
    let mut rng = rng_for(seed, user);
    let p = draw_person(w, &mut rng, None);
    let p_full = 1.0 - (-p.hazard).exp();
    truth.expected_conversions += p_full;
    truth.baseline_conversions += 1.0 - (-p.base).exp();
    for (c, ch) in w.channels.iter().enumerate() {
        let without = p.hazard - ch.effect * p.touches[c].min(MAX_EFFECTIVE_TOUCHES) as f64;
        truth.incremental[c] += p_full - (1.0 - (-without).exp());
    }
    let span = (days as f64 * 86_400.0 - WINDOW_S - 3.0 * 86_400.0).max(0.0);
    let start = rng.random::<f64>() * span;
    let mut events: Vec<(i64, u16)> = Vec::new();
    for (c, &n) in p.touches.iter().enumerate() {
        for _ in 0..n {
            events.push(((start + rng.random::<f64>() * WINDOW_S).floor() as i64, c as u16));
        }
    }
    let last = events.iter().map(|e| e.0).max().unwrap_or(start as i64) as f64;
    let conv_at = (last.max(start) + 600.0 + rng.random::<f64>() * 2.0 * 86_400.0).floor();
    for (c, ch) in w.channels.iter().enumerate() {
        let u: f64 = rng.random();
        let at: f64 = rng.random();
        if p.converts && u < ch.closes {
            events.push(((conv_at - 60.0 - at * 1_740.0).floor() as i64, c as u16));
        } else if !p.converts && u < ch.browses {
            events.push(((start + at * WINDOW_S).floor() as i64, c as u16));
        }
    }
    events.sort_unstable();
    for (c, _) in w.channels.iter().enumerate() {
        truth.touches[c] += events.iter().filter(|e| e.1 as usize == c).count() as u64;
    }
    for &(t, c) in &events {
        out.user.push(user);
        out.ts.push(T0_US + t * 1_000_000);
        out.channel.push(Some(c));
        out.conversion.push(false);
        out.revenue.push(None);
    }
    if p.converts {
        let value = (VALUE_MEDIAN.ln() + VALUE_LOG_SD * normal(&mut rng)).exp();
        truth.conversions += 1;
        out.user.push(user);
        out.ts.push(T0_US + conv_at as i64 * 1_000_000);
        out.channel.push(None);
        out.conversion.push(true);
        out.revenue.push(Some((value * 100.0).round() / 100.0));
    }
}

impl Truth {
    fn new(channels: usize) -> Truth {
        Truth { incremental: vec![0.0; channels], touches: vec![0; channels], ..Truth::default() }
    }
    fn add(&mut self, o: Truth) {
        self.incremental.iter_mut().zip(o.incremental).for_each(|(a, b)| *a += b);
        self.touches.iter_mut().zip(o.touches).for_each(|(a, b)| *a += b);
        self.expected_conversions += o.expected_conversions;
        self.baseline_conversions += o.baseline_conversions;
        self.conversions += o.conversions;
    }
}

const CHUNK: u64 = 8_192;

/// Simulate persons `first..first + users` of a world over `days` days (from 2024-01-01):
/// their events (persons in order, each one's events by time) and the exact truth.
pub fn simulate(w: &WorldSpec, seed: u64, first: u64, users: u64, days: u32) -> (Rows, Truth) {
    let parts: Vec<(Rows, Truth)> = (0..users.div_ceil(CHUNK))
        .into_par_iter()
        .map(|k| {
            let (mut rows, mut truth) = (Rows::default(), Truth::new(w.channels.len()));
            for u in first + k * CHUNK..first + ((k + 1) * CHUNK).min(users) {
                simulate_person(w, seed, u, days, &mut rows, &mut truth);
            }
            (rows, truth)
        })
        .collect();
    let (mut rows, mut truth) = (Rows::default(), Truth::new(w.channels.len()));
    for (r, t) in parts {
        rows.extend(r);
        truth.add(t);
    }
    (rows, truth)
}

/// A randomized holdout of channel `c` on `users` persons independent of the log's (their
/// own streams), each held out with probability [`HOLDOUT_SHARE`].
pub fn holdout(w: &WorldSpec, seed: u64, c: usize, users: u64) -> Holdout {
    let stream0 = (1u64 << 48) * (c as u64 + 1);
    let parts: Vec<Holdout> = (0..users.div_ceil(CHUNK))
        .into_par_iter()
        .map(|k| {
            let mut h = Holdout::default();
            for u in k * CHUNK..((k + 1) * CHUNK).min(users) {
                let mut rng = rng_for(seed, stream0 + u);
                let out = rng.random::<f64>() < HOLDOUT_SHARE;
                let p = draw_person(w, &mut rng, out.then_some(c));
                let (n, conv) = if out {
                    (&mut h.held_out, &mut h.held_out_conversions)
                } else {
                    (&mut h.treated, &mut h.treated_conversions)
                };
                *n += 1;
                *conv += p.converts as u64;
            }
            h
        })
        .collect();
    parts.into_iter().fold(Holdout::default(), |mut a, h| {
        a.treated += h.treated;
        a.held_out += h.held_out;
        a.treated_conversions += h.treated_conversions;
        a.held_out_conversions += h.held_out_conversions;
        a
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The truth is the exact expectation: over many persons, the log's conversions and a
    /// holdout's measured lift agree with it within sampling error.
    #[test]
    fn truth_matches_simulated_outcomes() {
        let w = world("confounded").unwrap();
        let n = 200_000;
        let (rows, truth) = simulate(w, 7, 0, n, 60);
        let conversions = rows.conversion.iter().filter(|&&c| c).count() as f64;
        let sd = truth.expected_conversions.sqrt();
        assert!((conversions - truth.expected_conversions).abs() < 4.0 * sd, "{conversions} vs {truth:?}");
        assert!(truth.baseline_conversions < truth.expected_conversions);
        // Closers cause nothing.
        assert_eq!(truth.incremental[7], 0.0);
        assert_eq!(truth.incremental[8], 0.0);
        // generic_search (c = 4): the holdout estimate is within 4 standard errors.
        let h = holdout(w, 7, 4, n);
        let est = h.incremental(n as f64);
        assert!((est - truth.incremental[4]).abs() < 4.0 * h.standard_error(n as f64), "{est} vs {truth:?}");
    }

    #[test]
    fn same_seed_same_log_any_thread_count() {
        let w = world("confounded").unwrap();
        let (a, ta) = simulate(w, 3, 0, 20_000, 60);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let (b, tb) = pool.install(|| simulate(w, 3, 0, 20_000, 60));
        assert_eq!(a.ts, b.ts);
        assert_eq!(a.channel, b.channel);
        assert_eq!(ta.incremental, tb.incremental);
    }
}
