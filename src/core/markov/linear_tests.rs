//! The replicates' correction step against exact re-solves of the reweighted chain: equal
//! at no reweighting, and its error second order in the reweighting (halving the
//! reweighting quarters the error), which is what "exact to first order" means.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::removal_tests::random_table;
use super::{Chain, Counts, Linear, Target, Transition};

/// The chain's counts scaled per transition by `1 + t u_e` and its end values by
/// `1 + t u_s` (`u` fixed per seed, in [−0.4, 0.4]): the counts and the re-fitted chain.
fn reweighted(chain: &Chain, seed: u64, t: f64) -> (Vec<f64>, Vec<(f64, f64)>, Chain) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let edges: Vec<f64> =
        chain.transitions.iter().map(|tr| tr.count * (1.0 + t * rng.random_range(-0.4..0.4))).collect();
    let n = chain.states.len();
    let mut ends = vec![(0.0, 0.0); n];
    for (tr, &count) in chain.transitions.iter().zip(&edges) {
        if tr.to == Target::Conversion {
            let value = chain.last_state_value[tr.from as usize] * count;
            ends[tr.from as usize] = (value * (1.0 + t * rng.random_range(-0.4..0.4)), count);
        }
    }
    let mut out = vec![0.0; n];
    for (tr, &c) in chain.transitions.iter().zip(&edges) {
        out[tr.from as usize] += c;
    }
    let transitions = chain
        .transitions
        .iter()
        .zip(&edges)
        .map(|(tr, &count)| Transition {
            from: tr.from,
            to: tr.to,
            count,
            probability: count / out[tr.from as usize],
        })
        .collect();
    let lsv = ends.iter().map(|&(v, c)| if c > 0.0 { v / c } else { 0.0 }).collect();
    let refit = Chain::from_parts(chain.order, chain.states.clone(), transitions, lsv, chain.n_channels);
    (edges, ends, refit)
}

/// The largest difference, over the full chain and every removal, between the correction
/// step and an exact solve (sparse LU) of the reweighted chain.
fn error(chain: &Chain, linear: &Linear, seed: u64, t: f64) -> f64 {
    let (edges, ends, refit) = reweighted(chain, seed, t);
    let mut q = vec![0.0; linear.entries()];
    linear.fill(&Counts { edges: &edges, ends: &ends }, &mut q);
    let (full, channels) = linear.kept(&q).pop().expect("one replicate");
    let exact: Vec<(f64, f64)> = std::iter::once(refit.solve(None).unwrap())
        .chain((0..chain.n_channels as u32).map(|c| refit.solve(Some(c)).unwrap()))
        .collect();
    std::iter::once(full)
        .chain(channels)
        .zip(exact)
        .map(|(a, b)| (a.0 - b.0).abs().max((a.1 - b.1).abs() / 50.0))
        .fold(0.0, f64::max)
}

#[test]
fn the_correction_step_is_exact_to_first_order_in_the_reweighting() {
    let mut checked = 0;
    for seed in 0..40u64 {
        let pt = random_table(seed, 2 + seed as usize % 6);
        let chain = Chain::fit(&pt, 1 + seed as usize % 3);
        if chain.states.len() < 3 || chain.start().unwrap().0 == 0.0 {
            continue;
        }
        let linear = Linear::of(&chain);
        assert_eq!(linear.unconverged, 0, "seed {seed}");
        // No reweighting: the full fit's own solutions.
        assert!(error(&chain, &linear, seed, 0.0) < 1e-12, "seed {seed}");
        let (big, half) = (error(&chain, &linear, seed, 0.02), error(&chain, &linear, seed, 0.01));
        // A first-order error would halve; a second-order one quarters.
        if big > 1e-10 {
            let ratio = big / half;
            assert!((3.6..4.4).contains(&ratio), "seed {seed}: errors {big:e} and {half:e}, ratio {ratio}");
            checked += 1;
        }
        // And the step is far closer than not correcting at all.
        let (_, _, refit) = reweighted(&chain, seed, 0.02);
        let moved = std::iter::once(None)
            .chain((0..chain.n_channels as u32).map(Some))
            .map(|c| {
                let (a, b) = (refit.solve(c).unwrap(), chain.solve(c).unwrap());
                (a.0 - b.0).abs().max((a.1 - b.1).abs() / 50.0)
            })
            .fold(0.0, f64::max);
        assert!(big < 0.05 * moved || big < 1e-12, "seed {seed}: error {big:e}, moved {moved:e}");
    }
    assert!(checked >= 20, "only {checked} chains had a measurable second-order error");
}

/// The point fit's kept lane solutions are exactly the columns the step would solve: a
/// chain above 600 states with enough channels for the lanes (from 64 on without AVX-512)
/// gives the same corrections, bit for bit, whether the fit kept its solves or not.
#[test]
fn the_fits_kept_solutions_are_the_ones_the_step_would_solve() {
    use crate::core::paths::{PathRow, PathTable};
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let names = (0..70).map(|c| format!("c{c:02}")).collect();
    let rows: Vec<PathRow> = (0..600)
        .map(|_| {
            let path = (0..6).map(|_| rng.random_range(0..70u32)).collect();
            let conversions = rng.random_range(0..3) as f64;
            PathRow { path, conversions, nulls: rng.random_range(0..3) as f64, value: 20.0 * conversions }
        })
        .collect();
    let pt = PathTable::from_rows(names, rows);
    let chain = Chain::fit(&pt, 2);
    assert!(chain.states.len() > super::DIRECT_MAX_STATES, "{} states", chain.states.len());
    let fresh = Linear::of(&chain.clone());
    chain.keep_solutions();
    let r = super::removal(chain, (pt.total_conversions(), pt.total_value(), pt.total_nulls())).unwrap();
    assert!(r.chain.solutions.lock().unwrap().is_some(), "the fit kept its solves");
    let kept = Linear::of(&r.chain);
    assert!(r.chain.solutions.lock().unwrap().is_none(), "the step took them");
    let (edges, ends, _) = reweighted(&r.chain, 3, 0.02);
    let mut q = vec![0.0; kept.entries()];
    kept.fill(&Counts { edges: &edges, ends: &ends }, &mut q);
    let bits = |k: super::Kept| {
        std::iter::once(k.0).chain(k.1).flat_map(|(p, v)| [p.to_bits(), v.to_bits()]).collect::<Vec<_>>()
    };
    assert_eq!(bits(kept.kept(&q).pop().unwrap()), bits(fresh.kept(&q).pop().unwrap()));
}
