//! The bootstrap intervals: each replicate equals the models refitted on a path table
//! reweighted by hand, and the 90% intervals of small logs cover the answer of a log 50×
//! larger from the same generator world about 90% of the time.

use std::collections::BTreeMap;
use std::path::Path;

use touchpoint::core::bootstrap::{self, poisson_weight, BootstrapOptions, Kernel};
use touchpoint::core::journeys::JourneyOptions;
use touchpoint::core::markov;
use touchpoint::core::models::RuleModel;
use touchpoint::core::paths::{PathRow, PathTable};
use touchpoint::settings::{Model, Settings};

use crate::common::*;

/// Replicate r rebuilt independently: every journey's path row gets its user's weight, the
/// table is summed by hand and the models run on it from scratch. Eleven replicates: the
/// replicates are summed in blocks of eight, so this checks lanes of a full block and of a
/// partial one.
#[test]
fn every_replicate_is_the_models_refitted_on_a_reweighted_path_table() {
    let s = Settings::default();
    let log = load_log(sample().to_str().unwrap(), &s);
    let mut opts = JourneyOptions::resolve(&s.journeys, &log, true);
    opts.index = true;
    let a = analyze_journeys(journeys_with(&log, &opts), &log.channels, &s);
    let bo = BootstrapOptions { replicates: 11, level: 0.9, seed: 42, kernel: Kernel::Fastest };
    let iv = bootstrap::intervals(&a, &s.models, &bo).unwrap().expect("intervals");
    // The vector build (when this processor has one) and the portable build: the same bits.
    let portable = BootstrapOptions { kernel: Kernel::Portable, ..bo };
    let iv_portable = bootstrap::intervals(&a, &s.models, &portable).unwrap().expect("intervals");
    let bits = |iv: &bootstrap::Intervals| -> Vec<u64> {
        let credits = iv.draws.iter().flat_map(|(_, reps)| reps.iter());
        credits.flat_map(|c| c.conversions.iter().chain(&c.value).map(|x| x.to_bits())).collect()
    };
    assert_eq!(bits(&iv), bits(&iv_portable));
    let index = a.index.as_ref().unwrap();
    assert_eq!(index.len() as u64, a.stats.journeys - a.stats.unattributed_conversions as u64);
    for r in [0u32, 1, 2, 7, 8, 10] {
        let mut rows: Vec<PathRow> = a
            .paths
            .rows
            .iter()
            .map(|x| PathRow { path: x.path.clone(), conversions: 0.0, nulls: 0.0, value: 0.0 })
            .collect();
        for j in 0..index.len() {
            let w = poisson_weight(42, r, index.person[index.user[j] as usize]) as f64;
            let row = &mut rows[index.path[j] as usize];
            match index.value[j] {
                Some(v) => {
                    row.conversions += w;
                    row.value += w * v;
                }
                None => row.nulls += w,
            }
        }
        let pt = PathTable { channels: a.paths.channels.clone(), rows };
        let m = markov::attribute(&pt, 1).unwrap();
        let draw = |model: Model| &iv.draws.iter().find(|d| d.0 == model).unwrap().1[r as usize];
        let close = |x: &[f64], y: &[f64], what: &str| {
            for (c, (a, b)) in x.iter().zip(y).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                    "{what} replicate {r} channel {c}: {a} vs {b}"
                );
            }
        };
        close(&draw(Model::Markov).conversions, &m.conversions, "markov conversions");
        close(&draw(Model::Markov).value, &m.value, "markov value");
        for (model, rule) in [
            (Model::LastTouch, RuleModel::LastTouch),
            (Model::Linear, RuleModel::Linear),
            (Model::Shapley, RuleModel::Shapley),
        ] {
            let c = rule.credits(&pt);
            close(&draw(model).conversions, &c.conversions, model.name());
            close(&draw(model).value, &c.value, model.name());
        }
        let re: Vec<f64> = m.removal_effects.iter().map(|x| x.unwrap_or(0.0)).collect();
        let mj = RuleModel::MarkovJourney(re).credits(&pt);
        close(&draw(Model::MarkovJourney).conversions, &mj.conversions, "markov_journey");
    }
}

/// Per (model, channel): conversions of a run's `channel_attribution`, with its interval.
fn credits(dir: &Path) -> BTreeMap<(String, String), (f64, f64, f64)> {
    let (names, rows) = read_parquet(&dir.join("channel_attribution.parquet"));
    let col = |n: &str| names.iter().position(|x| x == n).unwrap();
    let (m, ch, c, lo, hi) =
        (col("model"), col("channel"), col("conversions"), col("conversions_low"), col("conversions_high"));
    rows.iter()
        .filter(|r| r[ch].str() != "(unattributed)")
        .map(|r| {
            let num = |x: &Cell| if *x == Cell::Null { f64::NAN } else { x.num() };
            ((r[m].str().to_owned(), r[ch].str().to_owned()), (r[c].num(), num(&r[lo]), num(&r[hi])))
        })
        .collect()
}

fn generate_and_attribute(
    dir: &Path,
    name: &str,
    users: u64,
    seed: u64,
    bootstrap: &str,
) -> std::path::PathBuf {
    let (events, out) = (dir.join(format!("{name}.parquet")), dir.join(name));
    let o = touchpoint(&[
        "generate",
        "--users",
        &users.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        events.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = touchpoint(&[
        "attribute",
        "--events",
        events.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
        "--bootstrap",
        bootstrap,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(events).unwrap();
    out
}

/// The "truth" is each model's credit on a log 50× larger (scaled to the small logs' user
/// count); the 90% intervals of 40 small logs of other seeds must cover it in 80–97% of
/// the (log, channel) pairs, per model. Channels with a tiny share are left out: their
/// credit is a handful of conversions, where a percentile interval is coarse.
#[test]
fn ninety_percent_intervals_cover_the_large_sample_answer_about_ninety_percent_of_the_time() {
    const SMALL: u64 = 4000;
    let dir = tempfile::tempdir().unwrap();
    let big = credits(&generate_and_attribute(dir.path(), "big", SMALL * 50, 9_999, "0"));
    let mut hits: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for seed in 0..40 {
        let small =
            credits(&generate_and_attribute(dir.path(), &format!("s{seed}"), SMALL, 100 + seed, "200"));
        for ((model, channel), (_, lo, hi)) in &small {
            let truth = big[&(model.clone(), channel.clone())].0 / 50.0;
            if truth < 5.0 {
                continue;
            }
            let e = hits.entry(model.clone()).or_default();
            e.0 += u32::from(*lo <= truth && truth <= *hi);
            e.1 += 1;
        }
    }
    for (model, (hit, n)) in &hits {
        let rate = *hit as f64 / *n as f64;
        eprintln!("coverage {model}: {hit}/{n} = {rate:.3}");
        assert!(
            (0.80..=0.97).contains(&rate),
            "{model}: the 90% intervals cover the truth in {hit}/{n} = {rate:.3}"
        );
    }
    assert!(hits.len() >= 8, "models checked: {:?}", hits.keys());
}
