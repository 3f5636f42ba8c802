//! The one-factorisation removal effects against the per-channel re-solve they replace, on
//! random chains of orders 1–3, and the multi-lane Gauss–Seidel against the lone one.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::removal::{solve_lanes, sweep, Rows, EXACT, LANES};
use super::Chain;
use crate::core::paths::{PathRow, PathTable};

/// Random paths over `channels` channels, with loops, repeats and fractional weights.
pub(super) fn random_table(seed: u64, channels: usize) -> PathTable {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let names = (0..channels).map(|c| format!("c{c:02}")).collect();
    let n_paths = rng.random_range(5..60);
    let rows: Vec<PathRow> = (0..n_paths)
        .map(|_| {
            let len = rng.random_range(1..9);
            let path = (0..len).map(|_| rng.random_range(0..channels as u32)).collect();
            let conversions = (rng.random_range(0..4) as f64) * rng.random::<f64>();
            PathRow { path, conversions, nulls: rng.random_range(0..5) as f64, value: 50.0 * conversions }
        })
        .collect();
    PathTable::from_rows(names, rows)
}

/// `(start)`'s values and convergence per lane of one lane pass.
fn sweep_lanes(rows: &Rows, gone: &[u8], lanes: usize) -> Vec<((f64, f64), bool)> {
    let (x, converged) = solve_lanes(rows, gone, lanes, EXACT, Some(&rows.full()));
    (0..lanes).map(|l| ((x[rows.start][0][l], x[rows.start][1][l]), converged[l])).collect()
}

/// `|a − b| ≤ 1e-9 |b|`, plus 1e-14 for the old form's own `1 − kept/full` cancellation.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs() + 1e-14
}

#[test]
fn one_factorisation_matches_a_re_solve_per_channel_at_orders_1_to_3() {
    let mut compared = 0;
    for seed in 0..60u64 {
        let pt = random_table(seed, 2 + seed as usize % 7);
        for k in 1..=3 {
            let chain = Chain::fit(&pt, k);
            let (p_old, v_old) = chain.solve(None).unwrap();
            let (p, v) = chain.start().unwrap();
            assert!(close(p, p_old) && close(v, v_old), "seed {seed} order {k}: {p} vs {p_old}");
            if p_old <= 0.0 {
                continue;
            }
            let fr = chain.removal_fractions(p, v).unwrap();
            for (c, &(rc, vc)) in fr.iter().enumerate() {
                let (pc, vcv) = chain.solve(Some(c as u32)).unwrap();
                let (old_r, old_v) = (1.0 - pc / p_old, if v_old > 0.0 { 1.0 - vcv / v_old } else { 0.0 });
                assert!(close(rc, old_r), "seed {seed} order {k} channel {c}: {rc} vs {old_r}");
                assert!(close(vc, old_v), "seed {seed} order {k} channel {c} value: {vc} vs {old_v}");
                compared += 1;
            }
        }
    }
    assert!(compared > 500, "only {compared} removal effects compared");
}

#[test]
fn sequence_removals_match_the_re_solve() {
    for seed in 100..130u64 {
        let pt = random_table(seed, 3 + seed as usize % 4);
        let chain = Chain::fit(&pt, 2);
        let (p, v) = chain.start().unwrap();
        if p <= 0.0 {
            continue;
        }
        let seqs = [[0u32, 1], [1, 0], [2, 2]];
        let lost = chain.fractions_without(3, |i, s| s.windows(2).any(|w| w == seqs[i]), p, v).unwrap();
        for (seq, (rs, vs)) in seqs.into_iter().zip(lost) {
            let (pc, vc) = chain.solve_without(|s| s.windows(2).any(|w| w == seq)).unwrap();
            assert!(close(rs, 1.0 - pc / p), "seed {seed} {seq:?}: {rs} vs {}", 1.0 - pc / p);
            assert!(close(vs, if v > 0.0 { 1.0 - vc / v } else { 0.0 }), "seed {seed} {seq:?} value");
        }
    }
}

#[test]
fn lanes_give_the_bits_of_lone_gauss_seidel_solves() {
    for seed in 200..230u64 {
        let channels = 2 + seed as usize % 11; // both sides of LANES
        let pt = random_table(seed, channels);
        let chain = Chain::fit(&pt, 1 + seed as usize % 3);
        let rows = Rows::of(&chain);
        let cs: Vec<u32> = (0..channels.min(LANES) as u32).collect();
        let gone: Vec<u8> = chain
            .states
            .iter()
            .map(|st| cs.iter().enumerate().filter(|(_, c)| st.contains(c)).fold(0u8, |m, (l, _)| m | 1 << l))
            .collect();
        let gone = rows.permute(&gone);
        let lanes = sweep_lanes(&rows, &gone, cs.len());
        // The vector build chosen at run time and the portable one: the same bits.
        let (x, converged) = sweep(&rows, &gone, cs.len(), EXACT, Some(&rows.full()));
        let portable: Vec<_> =
            (0..cs.len()).map(|l| ((x[rows.start][0][l], x[rows.start][1][l]), converged[l])).collect();
        assert_eq!(lanes, portable, "seed {seed}");
        for (l, &c) in cs.iter().enumerate() {
            let lone_gone: Vec<bool> =
                chain.states.iter().enumerate().map(|(i, s)| i != 0 && s.contains(&c)).collect();
            let lone = chain.gauss_seidel(&lone_gone);
            assert!(lanes[l].1, "seed {seed} lane {l} did not converge");
            assert_eq!(lanes[l].0 .0.to_bits(), lone.0.to_bits(), "seed {seed} channel {c}");
            assert_eq!(lanes[l].0 .1.to_bits(), lone.1.to_bits(), "seed {seed} channel {c} value");
            let (pc, _) = chain.solve(Some(c)).unwrap();
            assert!(close(lanes[l].0 .0, pc), "seed {seed} channel {c}: GS {} vs LU {pc}", lanes[l].0 .0);
        }
    }
}

/// 900 paths: well above 600 states at order 3.
fn large_table(channels: u32) -> PathTable {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let rows: Vec<PathRow> = (0..900)
        .map(|_| {
            let len = rng.random_range(1..7);
            let path = (0..len).map(|_| rng.random_range(0..channels)).collect();
            let conversions = rng.random_range(0..3) as f64;
            PathRow { path, conversions, nulls: rng.random_range(0..4) as f64, value: 20.0 * conversions }
        })
        .collect();
    PathTable::from_rows((0..channels).map(|c| format!("c{c:02}")).collect(), rows)
}

#[test]
fn large_chains_take_every_channel_from_gauss_seidel_with_the_lone_solves_bits() {
    // 5 channels (6 lanes with the full chain's), 30 and 70 (several blocks).
    for (channels, order) in [(5u32, 5), (30, 3), (70, 3)] {
        let chain = Chain::fit(&large_table(channels), order);
        assert!(chain.states.len() > super::DIRECT_MAX_STATES, "{} states", chain.states.len());
        let (p, v) = chain.start().unwrap();
        assert!(p > 0.0 && v > 0.0);
        let fr = chain.removal_fractions(p, v).unwrap();
        let ((p2, v2), fr2) = chain.start_and_removal_fractions().unwrap();
        assert_eq!((p.to_bits(), v.to_bits()), (p2.to_bits(), v2.to_bits()), "{channels} channels");
        assert_eq!(fr, fr2, "{channels} channels");
        assert_eq!(fr.len(), channels as usize);
        for (c, &(rc, vc)) in fr.iter().enumerate() {
            let (pc, vcv) = chain.solve(Some(c as u32)).unwrap();
            assert_eq!(rc.to_bits(), (1.0 - pc / p).to_bits(), "{channels} channels: channel {c}");
            assert_eq!(vc.to_bits(), (1.0 - vcv / v).to_bits(), "{channels} channels: channel {c} value");
            assert!(rc > 0.0, "channel {c} removes nothing");
        }
    }
}

#[test]
fn removal_effects_have_the_same_bits_on_one_thread_and_on_several() {
    let bits = |threads: usize, pt: &PathTable, k: usize| -> Vec<u64> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let chain = Chain::fit(pt, k);
            let (p, v) = chain.start().unwrap();
            let fr = chain.removal_fractions(p, v).unwrap();
            fr.iter()
                .flat_map(|&(a, b)| [a.to_bits(), b.to_bits()])
                .chain([p.to_bits(), v.to_bits()])
                .collect()
        })
    };
    // A dense-path chain and (order 3, 70 channels) a Gauss–Seidel one in lanes.
    for (pt, k) in [(random_table(3, 9), 1), (large_table(70), 3)] {
        assert_eq!(bits(1, &pt, k), bits(3, &pt, k), "order {k}");
    }
}

#[test]
fn the_sweep_visits_successors_first_so_an_acyclic_chain_has_no_back_edges() {
    // Channels only ever in increasing order: the chain of every order is acyclic, and the
    // depth-first post-order puts every edge's target before its source.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let rows: Vec<PathRow> = (0..400)
        .map(|_| {
            let mut path: Vec<u32> = (0..rng.random_range(1..8)).map(|_| rng.random_range(0..40)).collect();
            path.sort_unstable();
            path.dedup();
            PathRow { path, conversions: rng.random_range(0..2) as f64, nulls: 1.0, value: 5.0 }
        })
        .collect();
    let pt = PathTable::from_rows((0..40).map(|c| format!("c{c:02}")).collect(), rows);
    for k in 1..=3 {
        let chain = Chain::fit(&pt, k);
        let rows = Rows::of(&chain);
        assert_eq!(rows.back_edges(), 0, "order {k}");
        // and the sweep's answer is the LU's
        let gone = vec![false; chain.states.len()];
        let ((p, _), converged) = super::removal::sweep_one(&rows, &rows.permute(&gone));
        assert!(converged);
        let (lu, _) = chain.solve(None).unwrap();
        assert!(close(p, lu), "order {k}: {p} vs {lu}");
    }
    // A log with cycles keeps some, and still gets the lone solves' bits (test above).
    let chain = Chain::fit(&random_table(3, 6), 2);
    assert!(Rows::of(&chain).back_edges() > 0);
}
