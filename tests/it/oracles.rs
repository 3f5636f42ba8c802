//! Exact oracles: small path tables whose removal effects and credits were derived by hand
//! as rational numbers (the classic three-path example, the Google Ads / mailing example,
//! pychattr's example, fixtures B and E with repeats and loops), independently of this
//! code, checked to 1e-9. The definitions are in `docs/models.md`.

use crate::common::{fixture_b, table};

use touchpoint::core::markov;
use touchpoint::core::models;
use touchpoint::core::paths::PathTable;

const TOL: f64 = 1e-9;

fn by_name(pt: &PathTable, v: &[f64], name: &str) -> f64 {
    v[pt.channels.iter().position(|c| c == name).unwrap_or_else(|| panic!("no channel {name}"))]
}

fn re_by_name(pt: &PathTable, v: &[Option<f64>], name: &str) -> f64 {
    v[pt.channels.iter().position(|c| c == name).unwrap()].expect("removal effect defined")
}

#[track_caller]
fn close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() <= TOL * expected.abs().max(1.0),
        "expected {expected}, got {actual} (diff {:e})",
        actual - expected
    );
}

#[track_caller]
fn check(pt: &PathTable, actual: &[f64], expected: &[(&str, f64)]) {
    for (name, x) in expected {
        close(by_name(pt, actual, name), *x);
    }
}

fn classic() -> PathTable {
    table(&[("C1 > C2 > C3", 1.0, 0.0, 0.0), ("C1", 0.0, 1.0, 0.0), ("C2 > C3", 0.0, 1.0, 0.0)])
}

#[test]
fn classic_three_path_example_order_1_and_2() {
    let pt = classic();
    let r = markov::attribute(&pt, 1).unwrap();
    close(r.p_conversion, 1.0 / 3.0);
    for (c, re) in [("C1", 0.5), ("C2", 1.0), ("C3", 1.0)] {
        close(re_by_name(&pt, &r.removal_effects, c), re);
    }
    check(&pt, &r.conversions, &[("C1", 0.2), ("C2", 0.4), ("C3", 0.4)]);
    // Published transition probabilities.
    let prob = |from: &str, to: &str| {
        let t = r
            .chain
            .transitions
            .iter()
            .find(|t| r.chain.state_name(&pt, t.from) == from && r.chain.target_name(&pt, t.to) == to)
            .unwrap_or_else(|| panic!("no transition {from} -> {to}"));
        t.probability
    };
    close(prob("(start)", "C1"), 2.0 / 3.0);
    close(prob("(start)", "C2"), 1.0 / 3.0);
    close(prob("C1", "C2"), 0.5);
    close(prob("C1", "(null)"), 0.5);
    close(prob("C2", "C3"), 1.0);
    close(prob("C3", "(conversion)"), 0.5);
    let r2 = markov::attribute(&pt, 2).unwrap();
    check(&pt, &r2.conversions, &[("C1", 0.2), ("C2", 0.4), ("C3", 0.4)]);
    // Heuristics.
    check(&pt, &models::first_touch(&pt).conversions, &[("C1", 1.0), ("C2", 0.0), ("C3", 0.0)]);
    check(&pt, &models::last_touch(&pt).conversions, &[("C1", 0.0), ("C2", 0.0), ("C3", 1.0)]);
    check(&pt, &models::linear(&pt).conversions, &[("C1", 1.0 / 3.0), ("C2", 1.0 / 3.0), ("C3", 1.0 / 3.0)]);
}

#[test]
fn google_ads_mailing_example() {
    let pt = table(&[
        ("google ads", 2.0, 1.0, 0.0),
        ("mailing", 1.0, 0.0, 0.0),
        ("google ads > mailing", 1.0, 0.0, 0.0),
    ]);
    let r = markov::attribute(&pt, 1).unwrap();
    close(r.p_conversion, 0.8);
    close(re_by_name(&pt, &r.removal_effects, "google ads"), 0.75);
    close(re_by_name(&pt, &r.removal_effects, "mailing"), 0.5);
    check(&pt, &r.conversions, &[("google ads", 2.4), ("mailing", 1.6)]);
    check(&pt, &models::first_touch(&pt).conversions, &[("google ads", 3.0), ("mailing", 1.0)]);
    check(&pt, &models::last_touch(&pt).conversions, &[("google ads", 2.0), ("mailing", 2.0)]);
    check(&pt, &models::linear(&pt).conversions, &[("google ads", 2.5), ("mailing", 1.5)]);
}

#[test]
fn pychattr_example_exact_not_step_capped() {
    let pt = table(&[
        ("A > B > A > B > B > A", 1.0, 0.0, 1.0),
        ("A > B > B > A > A", 1.0, 0.0, 1.0),
        ("A > A", 1.0, 0.0, 1.0),
    ]);
    let r = markov::attribute(&pt, 1).unwrap();
    close(re_by_name(&pt, &r.removal_effects, "B"), 0.5);
    check(&pt, &r.conversions, &[("A", 2.0), ("B", 1.0)]);
    let r2 = markov::attribute(&pt, 2).unwrap();
    close(re_by_name(&pt, &r2.removal_effects, "B"), 2.0 / 3.0);
    check(&pt, &r2.conversions, &[("A", 1.8), ("B", 1.2)]);
    check(&pt, &models::first_touch(&pt).conversions, &[("A", 3.0), ("B", 0.0)]);
    check(&pt, &models::last_touch(&pt).conversions, &[("A", 3.0), ("B", 0.0)]);
    check(&pt, &models::linear(&pt).conversions, &[("A", 2.1), ("B", 0.9)]);
}

#[test]
fn fixture_b_order_1() {
    let pt = fixture_b();
    let r = markov::attribute(&pt, 1).unwrap();
    close(r.p_conversion, 5.0 / 17.0);
    for (c, re) in [("A", 23.0 / 35.0), ("B", 233.0 / 650.0), ("C", 3.0 / 5.0), ("D", 46.0 / 395.0)] {
        close(re_by_name(&pt, &r.removal_effects, c), re);
    }
    check(&pt, &r.conversions, &["A", "B", "C", "D"].map(|c| (c, exact_b_credit(c))));
    for (c, re) in [("A", 269.0 / 469.0), ("B", 323.0 / 871.0), ("C", 50.0 / 67.0), ("D", 538.0 / 5293.0)] {
        close(re_by_name(&pt, &r.value_removal_effects, c), re);
    }
    // Value credits (6 decimals in the source): compare to the exact REs normalised.
    let vre = [269.0 / 469.0, 323.0 / 871.0, 50.0 / 67.0, 538.0 / 5293.0];
    let s: f64 = vre.iter().sum();
    for (i, c) in ["A", "B", "C", "D"].iter().enumerate() {
        close(by_name(&pt, &r.value, c), vre[i] / s * 67.0);
    }
    // And the published 6-decimal figures, to their precision.
    for (c, x) in [("A", 21.440792), ("B", 13.862634), ("C", 27.896941), ("D", 3.799634)] {
        assert!((by_name(&pt, &r.value, c) - x).abs() < 1e-6, "{c}");
    }
    for (c, x) in [("A", 1.896998), ("B", 1.034784), ("C", 1.732042), ("D", 0.336177)] {
        assert!((by_name(&pt, &r.conversions, c) - x).abs() < 1e-6, "{c}");
    }
}

/// Exact order-1 credits of fixture B: RE_c / ΣRE × 5 with the rational REs.
fn exact_b_credit(c: &str) -> f64 {
    let re = [("A", 23.0 / 35.0), ("B", 233.0 / 650.0), ("C", 3.0 / 5.0), ("D", 46.0 / 395.0)];
    let s: f64 = re.iter().map(|x| x.1).sum();
    re.iter().find(|x| x.0 == c).unwrap().1 / s * 5.0
}

#[test]
fn fixture_b_order_2_and_heuristics() {
    let pt = fixture_b();
    let r = markov::attribute(&pt, 2).unwrap();
    close(r.p_conversion, 5.0 / 17.0);
    for (c, re) in [("A", 0.8), ("B", 0.8), ("C", 0.6), ("D", 0.0)] {
        close(re_by_name(&pt, &r.removal_effects, c), re);
    }
    check(&pt, &r.conversions, &[("A", 20.0 / 11.0), ("B", 20.0 / 11.0), ("C", 15.0 / 11.0), ("D", 0.0)]);
    for (c, re) in [("A", 37.0 / 67.0), ("B", 62.0 / 67.0), ("C", 50.0 / 67.0), ("D", 0.0)] {
        close(re_by_name(&pt, &r.value_removal_effects, c), re);
    }
    check(
        &pt,
        &r.value,
        &[("A", 37.0 / 149.0 * 67.0), ("B", 62.0 / 149.0 * 67.0), ("C", 50.0 / 149.0 * 67.0), ("D", 0.0)],
    );
    for k in 1..=4 {
        close(markov::attribute(&pt, k).unwrap().p_conversion, 5.0 / 17.0);
    }
    let f = models::first_touch(&pt);
    check(&pt, &f.conversions, &[("A", 3.0), ("B", 2.0), ("C", 0.0), ("D", 0.0)]);
    check(&pt, &f.value, &[("A", 25.0), ("B", 42.0), ("C", 0.0), ("D", 0.0)]);
    let l = models::last_touch(&pt);
    check(&pt, &l.conversions, &[("A", 2.0), ("B", 0.0), ("C", 3.0), ("D", 0.0)]);
    check(&pt, &l.value, &[("A", 17.0), ("B", 0.0), ("C", 50.0), ("D", 0.0)]);
    let lin = models::linear(&pt);
    check(&pt, &lin.conversions, &[("A", 8.0 / 3.0), ("B", 1.5), ("C", 5.0 / 6.0), ("D", 0.0)]);
    check(&pt, &lin.value, &[("A", 23.0), ("B", 29.0), ("C", 15.0), ("D", 0.0)]);
}

fn fixture_e() -> PathTable {
    table(&[
        ("A > B > A > B > C", 1.0, 0.0, 10.0),
        ("B > A", 1.0, 2.0, 4.0),
        ("C > C > C", 0.0, 1.0, 0.0),
        ("A > C", 2.0, 1.0, 8.0),
        ("B", 0.0, 3.0, 0.0),
    ])
}

#[test]
fn fixture_e_loops_orders_1_and_2() {
    let pt = fixture_e();
    let r = markov::attribute(&pt, 1).unwrap();
    close(r.p_conversion, 4.0 / 11.0);
    for (c, re) in [("A", 59.0 / 80.0), ("B", 0.5), ("C", 0.75)] {
        close(re_by_name(&pt, &r.removal_effects, c), re);
    }
    check(&pt, &r.conversions, &[("A", 236.0 / 159.0), ("B", 160.0 / 159.0), ("C", 80.0 / 53.0)]);
    for (c, re) in [("A", 157.0 / 220.0), ("B", 0.5), ("C", 9.0 / 11.0)] {
        close(re_by_name(&pt, &r.value_removal_effects, c), re);
    }
    for (c, x) in [("A", 7.727069), ("B", 5.413870), ("C", 8.859060)] {
        assert!((by_name(&pt, &r.value, c) - x).abs() < 1e-6, "{c}");
    }
    let r2 = markov::attribute(&pt, 2).unwrap();
    close(r2.p_conversion, 4.0 / 11.0);
    check(&pt, &r2.conversions, &[("A", 16.0 / 9.0), ("B", 8.0 / 9.0), ("C", 4.0 / 3.0)]);
    check(&pt, &r2.value, &[("A", 242.0 / 27.0), ("B", 154.0 / 27.0), ("C", 22.0 / 3.0)]);
    for (c, re) in [("A", 1.0), ("B", 7.0 / 11.0), ("C", 9.0 / 11.0)] {
        close(re_by_name(&pt, &r2.value_removal_effects, c), re);
    }
    check(&pt, &models::first_touch(&pt).conversions, &[("A", 3.0), ("B", 1.0), ("C", 0.0)]);
    check(&pt, &models::last_touch(&pt).conversions, &[("A", 1.0), ("B", 0.0), ("C", 3.0)]);
    check(&pt, &models::linear(&pt).conversions, &[("A", 1.9), ("B", 0.9), ("C", 1.2)]);
}

#[test]
fn fractional_counts_are_kept_exactly() {
    // ChannelAttribution truncates 1.5 to 1; we must not.
    let pt = table(&[("A", 1.5, 0.5, 3.0), ("B", 0.25, 0.75, 1.0)]);
    let r = markov::attribute(&pt, 1).unwrap();
    close(r.p_conversion, 1.75 / 3.0);
    check(&pt, &r.conversions, &[("A", 1.5), ("B", 0.25)]);
    check(&pt, &models::linear(&pt).value, &[("A", 3.0), ("B", 1.0)]);
}

#[test]
fn no_conversions_gives_null_removal_effects_and_zero_credit() {
    let pt = table(&[("A > B", 0.0, 3.0, 0.0), ("B", 0.0, 1.0, 0.0)]);
    let r = markov::attribute(&pt, 1).unwrap();
    assert!(r.removal_effects.iter().all(Option::is_none));
    assert!(r.conversions.iter().all(|&x| x == 0.0));
    assert_eq!(r.p_conversion, 0.0);
}

#[test]
fn string_paths_are_trimmed_and_empty_tokens_dropped() {
    let pt = table(&[
        ("A > > B", 1.0, 0.0, 0.0),
        (" A>B ", 1.0, 0.0, 0.0),
        ("google ads", 1.0, 0.0, 0.0),
        ("  ", 1.0, 0.0, 0.0),
    ]);
    assert_eq!(pt.channels, vec!["A", "B", "google ads"]);
    assert_eq!(pt.rows.len(), 2);
    assert_eq!(pt.rows[0].conversions, 2.0);
}

/// `markov_journey` by hand: paths A > B (1 conversion, value 30), B (1 conversion, value
/// 10), A (1 non-conversion). Order 1: P(conv) = 2/3 · 1/2 + 1/3 = 2/3; without A the
/// start's 2/3 to A is lost: P = 1/3, RE_A = 1/2; without B nothing converts: RE_B = 1.
/// Global Markov: A = 0.5/1.5 · 2 = 2/3, B = 4/3. Per journey: A > B splits 1/3 : 2/3, B keeps
/// its own: A = 1/3 (value 10), B = 5/3 (value 20 + 10 = 30).
#[test]
fn markov_per_journey_splits_each_conversion_by_removal_effects() {
    let pt = table(&[("A > B", 1.0, 0.0, 30.0), ("B", 1.0, 0.0, 10.0), ("A", 0.0, 1.0, 0.0)]);
    let mut s = touchpoint::settings::Settings::default();
    s.models.run = vec![touchpoint::settings::Model::Markov, touchpoint::settings::Model::MarkovJourney];
    let names = pt.channels.clone();
    let j = touchpoint::core::journeys::Journeys { paths: pt.clone(), ..Default::default() };
    let a = crate::common::analyze_journeys(j, &names, &s);
    let credit = |m: touchpoint::settings::Model| &a.credits.iter().find(|(x, _)| *x == m).unwrap().1;
    let global = credit(touchpoint::settings::Model::Markov);
    check(&pt, &global.conversions, &[("A", 2.0 / 3.0), ("B", 4.0 / 3.0)]);
    let per = credit(touchpoint::settings::Model::MarkovJourney);
    check(&pt, &per.conversions, &[("A", 1.0 / 3.0), ("B", 5.0 / 3.0)]);
    check(&pt, &per.value, &[("A", 10.0), ("B", 30.0)]);
    // Without the markov model, markov_journey fits the chain itself.
    s.models.run = vec![touchpoint::settings::Model::MarkovJourney];
    let j = touchpoint::core::journeys::Journeys { paths: pt.clone(), ..Default::default() };
    let a = crate::common::analyze_journeys(j, &names, &s);
    check(&pt, &a.credits[0].1.conversions, &[("A", 1.0 / 3.0), ("B", 5.0 / 3.0)]);
}
