//! Deterministic generator of realistic customer-journey event logs.
//!
//! The same `(users, seed, days, channels)` always gives byte-identical files: every user draws from
//! its own ChaCha8 stream (`seed`, stream = user index), so the result does not depend on
//! the thread count either. The process behind the data:
//! - path length `1 + floor(LogNormal(1.7, 1.0))` touches (median ≈ 6, heavy tail, capped);
//! - channels follow a first-order Markov chain with popularity, a sticky diagonal and
//!   funnel affinities (display/video → search, social cluster, email/sms → direct);
//! - `channels` above the 12 named ones adds a long tail `ch_0012`, `ch_0013`, … of
//!   decreasing popularity (weight `0.05 / (1 + (i − 12) / 10)`) and fixed, index-derived
//!   conversion rates, to exercise models at hundreds of channels; with the default 12 the
//!   file is the same as before the option existed;
//! - after each touch the user converts with a channel-dependent probability times a
//!   per-user multiplier, so heavy users convert several times;
//! - bursty timestamps: sessions of seconds-to-minutes gaps, days between sessions, with
//!   occasional exact ties; a conversion follows its touch by a short delay (sometimes 0 s);
//! - most conversion rows carry no channel; some carry `direct` (a purchase on a direct
//!   visit), which makes them touches too (`docs/models.md` § Journeys);
//! - about 1% of users make an offline purchase 35–50 days after their last touch (no channel:
//!   an unattributed conversion under the default 30-day lookback).
//!
//! Columns: `user_id` (string), `ts` (timestamp µs, naive UTC), `channel` (string, null on
//! most conversions), `event` (`touch` | `conversion`), `revenue` (f64, null on touches).

use std::path::Path;

use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Channel names of generated logs.
pub const CHANNELS: [&str; 12] = [
    "paid_search",
    "organic_search",
    "facebook",
    "instagram",
    "tiktok",
    "display",
    "video",
    "email",
    "affiliate",
    "direct",
    "referral",
    "sms",
];
const POPULARITY: [f64; 12] = [0.22, 0.14, 0.12, 0.08, 0.05, 0.10, 0.05, 0.07, 0.03, 0.08, 0.03, 0.03];
const PCONV: [f64; 12] = [6.5, 5.0, 2.2, 1.8, 1.0, 0.6, 0.8, 8.0, 6.0, 9.0, 4.5, 7.0];
const PCONV_SCALE: f64 = 0.0035;
const AFFINITY: [(usize, usize, f64); 10] = [
    (5, 0, 3.0),
    (5, 1, 2.5),
    (6, 1, 3.0),
    (6, 0, 2.0),
    (2, 3, 3.0),
    (3, 2, 3.0),
    (4, 3, 2.5),
    (7, 9, 3.0),
    (11, 9, 3.0),
    (8, 0, 2.0),
];
const T0_US: i64 = 1_704_067_200 * 1_000_000; // 2024-01-01T00:00:00Z
const MAX_TOUCHES: usize = 400;

/// Options of the generator.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Number of users.
    pub users: u64,
    /// Seed.
    pub seed: u64,
    /// Days spanned by the log, from 2024-01-01.
    pub days: u32,
    /// Index of the first user: `first_user..first_user + users` are generated, so files
    /// made with consecutive ranges hold disjoint users of one population (a 1B-event
    /// log written as many files).
    pub first_user: u64,
    /// Number of channels: the 12 of [`CHANNELS`], then a long tail (see the module doc).
    pub channels: usize,
}

/// Bounds of [`GenOptions::channels`] (the transition table is channels² numbers).
pub const MIN_CHANNELS: usize = CHANNELS.len();
/// See [`MIN_CHANNELS`].
pub const MAX_CHANNELS: usize = 2_000;

struct World {
    names: Vec<String>,
    pconv: Vec<f64>,
    start: Vec<f64>,
    trans: Vec<Vec<f64>>,
    after_purchase: Vec<f64>,
}

fn cumulative(p: &[f64]) -> Vec<f64> {
    let total: f64 = p.iter().sum();
    let mut c = vec![0.0; p.len()];
    let mut acc = 0.0;
    for (i, x) in p.iter().enumerate() {
        acc += x / total;
        c[i] = acc;
    }
    c[p.len() - 1] = 1.0;
    c
}

/// Popularity, conversion weight and name of every channel: the named 12, then the tail.
fn channel_table(n: usize) -> (Vec<f64>, Vec<f64>, Vec<String>) {
    let mut pop = POPULARITY.to_vec();
    let mut pconv = PCONV.to_vec();
    let mut names: Vec<String> = CHANNELS.iter().map(|c| c.to_string()).collect();
    for i in CHANNELS.len()..n {
        pop.push(0.05 / (1.0 + (i - CHANNELS.len()) as f64 / 10.0));
        pconv.push(0.5 + ((i * 37) % 90) as f64 / 10.0);
        names.push(format!("ch_{i:04}"));
    }
    (pop, pconv, names)
}

fn world(n: usize) -> World {
    let (pop, pconv, names) = channel_table(n);
    let trans = (0..n)
        .map(|a| {
            let mut w = pop.clone();
            for &(x, y, f) in &AFFINITY {
                if x == a {
                    w[y] *= f;
                }
            }
            w[a] = 0.0;
            let s: f64 = w.iter().sum();
            let stay = 0.25 + 0.02 * (a % CHANNELS.len()) as f64;
            let mut p: Vec<f64> = w.iter().map(|x| x / s * (1.0 - stay)).collect();
            p[a] = stay;
            cumulative(&p)
        })
        .collect();
    // After a purchase: email, direct and sms are likelier.
    let mut p = pop.clone();
    p[7] *= 6.0;
    p[9] *= 4.0;
    p[11] *= 4.0;
    World { names, pconv, start: cumulative(&pop), trans, after_purchase: cumulative(&p) }
}

fn pick(cum: &[f64], u: f64) -> usize {
    cum.iter().position(|&c| u < c).unwrap_or(cum.len() - 1)
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller; 1 - u keeps the log argument in (0, 1].
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

use crate::core::world::Rows;

fn gen_user(w: &World, seed: u64, user: u64, days: u32, out: &mut Rows) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(user);
    let len = (1.0 + (1.7 + normal(&mut rng)).exp().floor()).min(MAX_TOUCHES as f64) as usize;
    let mult = (-0.32 + 0.8 * normal(&mut rng)).exp();
    // Relative times (seconds) of touches.
    let mut rel = Vec::with_capacity(len);
    let mut t = 0.0f64;
    for i in 0..len {
        if i > 0 {
            let u: f64 = rng.random();
            t += if u < 0.005 {
                0.0
            } else if u < 0.4 {
                (86_400f64.ln() + 1.2 * normal(&mut rng)).exp()
            } else {
                5.0 + exponential(&mut rng, 115.0)
            };
        }
        rel.push(t);
    }
    let horizon = days as f64 * 86_400.0;
    let span = t + 3_600.0;
    let scale = (0.97 * horizon / span).min(1.0);
    let start = rng.random::<f64>() * (horizon - span * scale).max(0.0);
    let mut ch = pick(&w.start, rng.random());
    let mut last_ts = 0.0;
    for i in 0..len {
        let ts = (start + rel[i] * scale).floor();
        last_ts = ts;
        out.user.push(user);
        out.ts.push(T0_US + ts as i64 * 1_000_000);
        out.channel.push(Some(ch as u16));
        out.conversion.push(false);
        out.revenue.push(None);
        let converts = rng.random::<f64>() < w.pconv[ch] * PCONV_SCALE * mult;
        if converts {
            let next_gap = if i + 1 < len { (rel[i + 1] - rel[i]) * scale } else { 3_600.0 };
            let delay = if rng.random::<f64>() < 0.02 {
                0.0
            } else {
                exponential(&mut rng, 300.0).min(0.5 * next_gap).floor()
            };
            let revenue = ((60f64.ln() + 0.6 * normal(&mut rng)).exp() * (0.8 + 0.04 * ch as f64) * 100.0)
                .round()
                / 100.0;
            let direct_visit = rng.random::<f64>() < 0.1;
            out.user.push(user);
            out.ts.push(T0_US + (ts + delay) as i64 * 1_000_000);
            out.channel.push(direct_visit.then_some(9));
            out.conversion.push(true);
            out.revenue.push(Some(revenue));
        }
        ch = if converts { pick(&w.after_purchase, rng.random()) } else { pick(&w.trans[ch], rng.random()) };
    }
    // Now and then an offline purchase long after the last touch (a store visit, a call
    // centre sale): no channel, and outside the default lookback, so it is unattributed.
    if rng.random::<f64>() < 0.01 {
        let later = (35.0 + 15.0 * rng.random::<f64>()) * 86_400.0;
        out.user.push(user);
        out.ts.push(T0_US + (last_ts + later.floor()) as i64 * 1_000_000);
        out.channel.push(None);
        out.conversion.push(true);
        out.revenue.push(Some(((80f64.ln() + 0.5 * normal(&mut rng)).exp() * 100.0).round() / 100.0));
    }
}

/// Generate the events as a DataFrame, rows ordered by time (like time-ordered log shards).
pub fn generate(opts: &GenOptions) -> Result<DataFrame> {
    if opts.days == 0 {
        return Err(Error::Config("--days must be at least 1".into()));
    }
    // Row indices are u32 below; ≈ 9.5 events per user keeps a generous margin.
    const MAX_USERS: u64 = 200_000_000;
    if opts.users > MAX_USERS {
        return Err(Error::Config(format!(
            "--users {}: at most {MAX_USERS} users per file; write several files with --first-user",
            opts.users
        )));
    }
    if !(MIN_CHANNELS..=MAX_CHANNELS).contains(&opts.channels) {
        return Err(Error::Config(format!(
            "--channels {}: between {MIN_CHANNELS} and {MAX_CHANNELS}",
            opts.channels
        )));
    }
    let w = world(opts.channels);
    const CHUNK: u64 = 8_192;
    let n_chunks = opts.users.div_ceil(CHUNK);
    let parts: Vec<Rows> = (0..n_chunks)
        .into_par_iter()
        .map(|c| {
            let mut rows = Rows::default();
            for u in opts.first_user + c * CHUNK..opts.first_user + ((c + 1) * CHUNK).min(opts.users) {
                gen_user(&w, opts.seed, u, opts.days, &mut rows);
            }
            rows
        })
        .collect();
    let mut all = Rows::default();
    parts.into_iter().for_each(|p| all.extend(p));
    frame_of(all, &w.names, opts.first_user + opts.users)
}

/// Generated rows as the log's columns, ordered by time (ties by generation order); user ids
/// `u0000042` padded to the digits of `last_user`.
fn frame_of(all: Rows, names: &[String], last_user: u64) -> Result<DataFrame> {
    let n = u32::try_from(all.ts.len())
        .map_err(|_| Error::Config("more than 4G events in one generated file: use fewer --users".into()))?;
    let mut order: Vec<u32> = (0..n).collect();
    order.par_sort_by_key(|&i| (all.ts[i as usize], i));
    let digits = last_user.max(1).to_string().len().max(7);
    let user: Vec<String> =
        order.par_iter().map(|&i| format!("u{:0digits$}", all.user[i as usize])).collect();
    let ts: Vec<i64> = order.iter().map(|&i| all.ts[i as usize]).collect();
    let channel: Vec<Option<&str>> =
        order.iter().map(|&i| all.channel[i as usize].map(|c| names[c as usize].as_str())).collect();
    let event: Vec<&str> =
        order.iter().map(|&i| if all.conversion[i as usize] { "conversion" } else { "touch" }).collect();
    let revenue: Vec<Option<f64>> = order.iter().map(|&i| all.revenue[i as usize]).collect();
    let ts = Series::new("ts".into(), ts)
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .map_err(|e| Error::dependency("generating the time column", e))?;
    DataFrame::new_infer_height(vec![
        Column::new("user_id".into(), user),
        ts.into(),
        Column::new("channel".into(), channel),
        Column::new("event".into(), event),
        Column::new("revenue".into(), revenue),
    ])
    .map_err(|e| Error::dependency("building the generated log", e))
}

/// Generate and write a Parquet file (written to a temporary name, then renamed).
pub fn generate_to_file(opts: &GenOptions, out: &Path) -> Result<usize> {
    let mut df = generate(opts)?;
    write_atomically(&mut df, out, crate::settings::Format::Parquet)?;
    Ok(df.height())
}

/// What [`generate_world_to_files`] wrote.
#[derive(Debug, serde::Serialize)]
pub struct WorldFiles {
    /// Rows of the event log.
    pub rows: usize,
    /// The truth per channel (CSV).
    pub truth: std::path::PathBuf,
    /// One simulated holdout per channel, in the `input.experiments` format (CSV).
    pub experiments: std::path::PathBuf,
    /// Conversions in the log.
    pub conversions: u64,
    /// Expected conversions with no advertising at all.
    pub baseline_conversions: f64,
    /// The true incremental conversions per channel (the truth file's column).
    #[serde(skip)]
    pub incremental: Vec<f64>,
}

/// The paths of a world's truth and experiments beside its log: `events.parquet` →
/// `events_truth.csv`, `events_experiments.csv`.
pub fn world_paths(out: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "events".into());
    (out.with_file_name(format!("{stem}_truth.csv")), out.with_file_name(format!("{stem}_experiments.csv")))
}

/// A log of a world with a known causal truth (`core::world`), its truth table and one
/// simulated holdout per channel on `experiment_users` other persons.
pub fn generate_world(
    opts: &GenOptions,
    w: &crate::core::world::WorldSpec,
    experiment_users: u64,
) -> Result<(DataFrame, crate::core::world::Truth, Vec<crate::core::world::Holdout>)> {
    check_world_options(opts)?;
    if experiment_users < 1_000 {
        return Err(Error::Config(format!(
            "--experiment-users {experiment_users}: a holdout needs at least 1000 persons (each arm needs conversions)"
        )));
    }
    let (rows, truth) = crate::core::world::simulate(w, opts.seed, opts.first_user, opts.users, opts.days);
    let names: Vec<String> = w.channels.iter().map(|c| c.name.to_owned()).collect();
    let holdouts =
        (0..names.len()).map(|c| crate::core::world::holdout(w, opts.seed, c, experiment_users)).collect();
    Ok((frame_of(rows, &names, opts.first_user + opts.users)?, truth, holdouts))
}

/// Only the log of a world (a reference population for `evaluate`: no truth, no holdouts).
pub fn generate_world_log(opts: &GenOptions, w: &crate::core::world::WorldSpec, out: &Path) -> Result<usize> {
    check_world_options(opts)?;
    let (rows, _) = crate::core::world::simulate(w, opts.seed, opts.first_user, opts.users, opts.days);
    let names: Vec<String> = w.channels.iter().map(|c| c.name.to_owned()).collect();
    let mut df = frame_of(rows, &names, opts.first_user + opts.users)?;
    write_atomically(&mut df, out, crate::settings::Format::Parquet)?;
    Ok(df.height())
}

fn check_world_options(opts: &GenOptions) -> Result<()> {
    if opts.days < 28 {
        return Err(Error::Config(format!(
            "--days {}: a world's persons are active over 21 days and buy up to 2 days later; use at least 28",
            opts.days
        )));
    }
    if opts.channels != MIN_CHANNELS {
        return Err(Error::Config(
            "--channels does not apply to --world: a world names its own channels".into(),
        ));
    }
    if opts.users > 50_000_000 {
        return Err(Error::Config(format!("--users {}: at most 50000000 with --world", opts.users)));
    }
    Ok(())
}

/// Write a world's log, truth and experiments (each atomically).
pub fn generate_world_to_files(
    opts: &GenOptions,
    w: &crate::core::world::WorldSpec,
    experiment_users: u64,
    out: &Path,
) -> Result<WorldFiles> {
    let (mut df, truth, holdouts) = generate_world(opts, w, experiment_users)?;
    let (truth_path, exp_path) = world_paths(out);
    let period = (T0_US, opts.days);
    let csv = crate::settings::Format::Csv;
    write_atomically(
        &mut crate::engine::write::to_frame(&truth_table(w, &truth, &holdouts, opts.users))?,
        &truth_path,
        csv,
    )?;
    write_atomically(
        &mut crate::engine::write::to_frame(&experiments_table(w, &holdouts, opts.users, period))?,
        &exp_path,
        csv,
    )?;
    write_atomically(&mut df, out, crate::settings::Format::Parquet)?;
    Ok(WorldFiles {
        rows: df.height(),
        truth: truth_path,
        experiments: exp_path,
        conversions: truth.conversions,
        baseline_conversions: truth.baseline_conversions,
        incremental: truth.incremental,
    })
}

/// The truth per channel: its parameters, touches in the log, incremental conversions and
/// value (exact expectations), their shares, and the simulated holdout's estimate.
pub fn truth_table(
    w: &crate::core::world::WorldSpec,
    truth: &crate::core::world::Truth,
    holdouts: &[crate::core::world::Holdout],
    users: u64,
) -> crate::core::table::Table {
    use crate::core::table::{Table, Values};
    let total: f64 = truth.incremental.iter().sum();
    let n = users as f64;
    let f = |g: &dyn Fn(usize) -> f64| Values::F64((0..w.channels.len()).map(g).collect());
    Table::new(
        "world_truth",
        vec![
            ("channel", Values::Str(w.channels.iter().map(|c| c.name.to_owned()).collect())),
            ("effect_per_touch", f(&|c| w.channels[c].effect)),
            ("mean_touches", f(&|c| w.channels[c].rate)),
            ("targeting", f(&|c| w.channels[c].targeting)),
            ("closes", f(&|c| w.channels[c].closes)),
            ("touches", Values::U64(truth.touches.clone())),
            ("incremental_conversions", f(&|c| truth.incremental[c])),
            ("incremental_value", f(&|c| truth.incremental[c] * crate::core::world::mean_value())),
            ("incremental_share", f(&|c| if total > 0.0 { truth.incremental[c] / total } else { 0.0 })),
            ("holdout_incremental_conversions", f(&|c| holdouts[c].incremental(n))),
            ("holdout_standard_error", f(&|c| holdouts[c].standard_error(n))),
        ],
    )
}

/// The holdouts in the `input.experiments` format: one row per channel, over the whole
/// period, scaled to the log's population.
fn experiments_table(
    w: &crate::core::world::WorldSpec,
    holdouts: &[crate::core::world::Holdout],
    users: u64,
    (t0_us, days): (i64, u32),
) -> crate::core::table::Table {
    use crate::core::table::{Table, Values};
    let n = users as f64;
    let day0 = (t0_us / crate::settings::DAY_MICROS) as i32;
    let k = w.channels.len();
    Table::new(
        "experiments",
        vec![
            ("channel", Values::Str(w.channels.iter().map(|c| c.name.to_owned()).collect())),
            ("start", Values::Date(vec![day0; k])),
            ("end", Values::Date(vec![day0 + days as i32 - 1; k])),
            ("incremental_conversions", Values::F64(holdouts.iter().map(|h| h.incremental(n)).collect())),
            ("standard_error", Values::F64(holdouts.iter().map(|h| h.standard_error(n)).collect())),
            ("conversions", Values::F64(holdouts.iter().map(|h| h.conversions(n)).collect())),
        ],
    )
}

/// Write to a temporary name beside `out`, then rename (readers never see half a file).
fn write_atomically(df: &mut DataFrame, out: &Path, format: crate::settings::Format) -> Result<()> {
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".touchpoint-gen-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    crate::engine::write::write_frame(df, tmp.path(), format)?;
    // tempfile creates 0600 files; a data file is meant to be shared like any other output.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(tmp.path(), e))?;
    }
    tmp.persist(out).map_err(|e| Error::io(out, e.error))?;
    Ok(())
}
