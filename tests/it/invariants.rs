//! Invariants on generated data and on random path tables: conservation of conversions and
//! value by every model, the Markov flow invariant P(conversion) = observed rate at every
//! order, and removal effects in [0, 1].

use crate::common::{analyze_journeys, load_log};
use proptest::prelude::*;
use touchpoint::core::journeys;
use touchpoint::core::markov;
use touchpoint::core::models;
use touchpoint::core::paths::{PathRow, PathTable};
use touchpoint::engine::generate::{generate, GenOptions};
use touchpoint::settings::{JourneyRules, Model, Settings};

fn generated(users: u64, seed: u64) -> journeys::Journeys {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.parquet");
    let mut df = generate(&GenOptions { users, seed, days: 60, first_user: 0, channels: 12 }).unwrap();
    touchpoint::engine::write_frame(&mut df, &path, touchpoint::settings::Format::Parquet).unwrap();
    let s = Settings::default();
    let log = load_log(path.to_str().unwrap(), &s);
    let opts = journeys::JourneyOptions::resolve(&JourneyRules::default(), &log, true);
    crate::common::journeys_with(&log, &opts)
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{what}: {a} vs {b}");
}

#[test]
fn every_model_conserves_totals_on_generated_data() {
    let j = generated(3_000, 1);
    let stats = j.stats.clone();
    assert!(stats.total_conversions > 50.0);
    let names = j.paths.channels.clone();
    let mut s = Settings::default();
    s.models.run = Model::ALL.to_vec();
    let a = analyze_journeys(j, &names, &s);
    for (m, c) in &a.credits {
        let conv: f64 = c.conversions.iter().sum::<f64>() + stats.unattributed_conversions;
        let val: f64 = c.value.iter().sum::<f64>() + stats.unattributed_value;
        assert_close(conv, stats.total_conversions, m.name());
        assert_close(val, stats.total_value, m.name());
        // Every model but shapley_rate (a channel that lowers the conversion rate of the sets
        // it joins has a negative Shapley value, by definition) gives credit ≥ 0.
        if *m != Model::ShapleyRate {
            assert!(c.conversions.iter().all(|&x| x >= 0.0), "{}", m.name());
        }
    }
    assert_eq!(a.credits.len(), Model::ALL.len());
}

#[test]
fn markov_invariant_holds_at_orders_1_to_4_on_generated_data() {
    let j = generated(2_000, 2);
    let pt = &j.paths;
    let rate = pt.total_conversions() / (pt.total_conversions() + pt.total_nulls());
    for k in 1..=4 {
        let r = markov::attribute(pt, k).unwrap();
        assert_close(r.p_conversion, rate, &format!("order {k}"));
        assert_close(
            r.expected_value,
            pt.total_value() / (pt.total_conversions() + pt.total_nulls()),
            &format!("value, order {k}"),
        );
        for re in r.removal_effects.iter().chain(&r.value_removal_effects) {
            let re = re.expect("defined");
            assert!((0.0..=1.0).contains(&re));
        }
        let s: f64 = r.conversions.iter().sum();
        assert_close(s, pt.total_conversions(), "markov credit sum");
    }
}

fn arb_table() -> impl Strategy<Value = PathTable> {
    let row = (prop::collection::vec(0u32..5, 1..7), 0u32..4, 0u32..4, 0u32..100);
    prop::collection::vec(row, 1..12).prop_map(|rows| {
        let channels = (0..5).map(|i| format!("c{i}")).collect();
        PathTable::from_rows(
            channels,
            rows.into_iter().map(|(path, c, n, v)| PathRow {
                path,
                conversions: c as f64,
                nulls: n as f64,
                value: if c > 0 { v as f64 } else { 0.0 },
            }),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_tables_conserve_and_keep_the_flow_invariant(pt in arb_table(), k in 1usize..4) {
        let tc = pt.total_conversions();
        let tv = pt.total_value();
        let tw = tc + pt.total_nulls();
        for c in [models::first_touch(&pt), models::last_touch(&pt), models::linear(&pt)] {
            prop_assert!((c.conversions.iter().sum::<f64>() - tc).abs() <= 1e-9 * tc.max(1.0));
            prop_assert!((c.value.iter().sum::<f64>() - tv).abs() <= 1e-9 * tv.max(1.0));
        }
        let r = markov::attribute(&pt, k).unwrap();
        if tw > 0.0 {
            prop_assert!((r.p_conversion - tc / tw).abs() <= 1e-9);
        }
        if tc > 0.0 {
            prop_assert!((r.conversions.iter().sum::<f64>() - tc).abs() <= 1e-9 * tc);
            for re in &r.removal_effects {
                let re = re.unwrap();
                prop_assert!((0.0..=1.0).contains(&re));
            }
        }
        if tv > 0.0 {
            prop_assert!((r.value.iter().sum::<f64>() - tv).abs() <= 1e-9 * tv);
        }
    }

    #[test]
    fn removal_effect_equals_probability_a_converting_journey_visits_the_channel_when_k_covers_paths(pt in arb_table()) {
        // With k ≥ the longest path every path is its own state, so RE_c is the share of
        // conversions whose path contains c (`docs/models.md` § Markov).
        let tc = pt.total_conversions();
        prop_assume!(tc > 0.0);
        let r = markov::attribute(&pt, 8).unwrap();
        for c in 0..pt.channels.len() as u32 {
            let share: f64 = pt.rows.iter().filter(|row| row.path.contains(&c)).map(|row| row.conversions).sum::<f64>() / tc;
            prop_assert!((r.removal_effects[c as usize].unwrap() - share).abs() <= 1e-9);
        }
    }
}
