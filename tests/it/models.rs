//! Oracles for the models beyond the core, from hand calculations and published worked
//! examples: last non-direct, position-based, time decay (T1–T3), Zhao and ordered Shapley,
//! path transforms (fractribution's example), sequence removal effects, automatic order
//! selection, channel groups.

use crate::common::{analyze_journeys, fixture_b, table};

use touchpoint::core::analysis::Analysis;
use touchpoint::core::event_log::{EventLog, NO_CHANNEL};
use touchpoint::core::journeys::{apply_transforms, JourneyOptions, ResolvedTransform, Touch};
use touchpoint::core::markov;
use touchpoint::core::models::{self, PositionWeights};
use touchpoint::core::paths::{PathRow, PathTable};
use touchpoint::settings::{JourneyRules, Model, Settings, Transform};

const DAY: i64 = 86_400_000_000;

fn get(pt_channels: &[String], v: &[f64], name: &str) -> f64 {
    v[pt_channels.iter().position(|c| c == name).unwrap_or_else(|| panic!("no channel {name}"))]
}

#[track_caller]
fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol * b.abs().max(1.0), "expected {b}, got {a}");
}

#[track_caller]
fn check(channels: &[String], v: &[f64], expected: &[(&str, f64)], tol: f64) {
    for (n, x) in expected {
        close(get(channels, v, n), *x, tol);
    }
}

fn fixture_s() -> PathTable {
    table(&[
        ("google ads", 2.0, 1.0, 0.0),
        ("mailing", 1.0, 0.0, 0.0),
        ("google ads > mailing", 1.0, 0.0, 0.0),
    ])
}

#[test]
fn position_based_edge_cases_and_published_examples() {
    let pt = fixture_s();
    check(
        &pt.channels,
        &models::position_based(&pt, PositionWeights::default()).conversions,
        &[("google ads", 2.5), ("mailing", 1.5)],
        1e-12,
    );
    let pt = table(&[("A", 1.0, 0.0, 0.0)]);
    check(
        &pt.channels,
        &models::position_based(&pt, PositionWeights::default()).conversions,
        &[("A", 1.0)],
        1e-12,
    );
    let pt = table(&[("A > B > A", 1.0, 0.0, 0.0)]);
    check(
        &pt.channels,
        &models::position_based(&pt, PositionWeights::default()).conversions,
        &[("A", 0.8), ("B", 0.2)],
        1e-12,
    );
    let pt = table(&[("A > B > C > D", 1.0, 0.0, 0.0)]);
    let c = models::position_based(&pt, PositionWeights::default()).conversions;
    check(&pt.channels, &c, &[("A", 0.4), ("B", 0.1), ("C", 0.1), ("D", 0.4)], 1e-12);
    let j = PositionWeights::parse("j_shaped").unwrap();
    let pt = table(&[("A > B > C", 1.0, 0.0, 0.0), ("X > Y", 1.0, 0.0, 0.0)]);
    let c = models::position_based(&pt, j).conversions;
    check(&pt.channels, &c, &[("A", 0.2), ("B", 0.2), ("C", 0.6), ("X", 0.3), ("Y", 0.7)], 1e-12);
    // MAM's value credit on fixture B.
    let pt = fixture_b();
    check(
        &pt.channels,
        &models::position_based(&pt, PositionWeights::default()).value,
        &[("A", 22.2), ("B", 24.8), ("C", 20.0), ("D", 0.0)],
        1e-12,
    );
    // fractribution's example (conversions).
    let pt = table(&[
        ("Direct > PSG > PSB", 3.0, 7.0, 30.0),
        ("PSG > PSB", 1.0, 9.0, 10.0),
        ("Direct > PSB", 2.0, 8.0, 20.0),
        ("Direct > PSG", 1.0, 4.0, 10.0),
        ("PSB", 2.0, 2.0, 20.0),
    ]);
    let c = models::position_based(&pt, PositionWeights::default()).conversions;
    check(&pt.channels, &c, &[("Direct", 2.7), ("PSG", 1.6), ("PSB", 4.7)], 1e-12);
    let l = models::linear(&pt).conversions;
    check(&pt.channels, &l, &[("Direct", 2.5), ("PSG", 2.0), ("PSB", 4.5)], 1e-12);
    assert!(PositionWeights::parse("0.5,0.5,0.5").is_err());
    assert_eq!(
        PositionWeights::parse("0.3, 0.4, 0.3").unwrap(),
        PositionWeights { first: 0.3, middle: 0.4, last: 0.3 }
    );
}

#[test]
fn zhao_simplified_shapley_oracles() {
    let pt = table(&[("C1 > C2 > C3", 1.0, 0.0, 0.0), ("C1", 0.0, 1.0, 0.0), ("C2 > C3", 0.0, 1.0, 0.0)]);
    check(
        &pt.channels,
        &models::shapley(&pt).conversions,
        &[("C1", 1.0 / 3.0), ("C2", 1.0 / 3.0), ("C3", 1.0 / 3.0)],
        1e-12,
    );
    let pt = fixture_s();
    check(&pt.channels, &models::shapley(&pt).conversions, &[("google ads", 2.5), ("mailing", 1.5)], 1e-12);
    let pt = fixture_b();
    let s = models::shapley(&pt);
    check(
        &pt.channels,
        &s.conversions,
        &[("A", 13.0 / 6.0), ("B", 10.0 / 6.0), ("C", 7.0 / 6.0), ("D", 0.0)],
        1e-12,
    );
    check(
        &pt.channels,
        &s.value,
        &[("A", 17.666666666666668), ("B", 27.666666666666668), ("C", 21.666666666666668)],
        1e-12,
    );
    let pt = table(&[
        ("A > B > A > B > C", 1.0, 0.0, 10.0),
        ("B > A", 1.0, 2.0, 4.0),
        ("C > C > C", 0.0, 1.0, 0.0),
        ("A > C", 2.0, 1.0, 8.0),
        ("B", 0.0, 3.0, 0.0),
    ]);
    check(
        &pt.channels,
        &models::shapley(&pt).conversions,
        &[("A", 11.0 / 6.0), ("B", 5.0 / 6.0), ("C", 8.0 / 6.0)],
        1e-12,
    );
    // DP6's test fixture: nine single journeys, all converting, value 3 each.
    let paths = ["A", "A > B", "A > B > C", "B", "B > A", "B > C > A", "C", "C > A", "C > B > A"];
    let pt = table(&paths.map(|p| (p, 1.0, 0.0, 3.0)));
    let s = models::shapley(&pt);
    check(&pt.channels, &s.conversions, &[("A", 3.5), ("B", 3.0), ("C", 2.5)], 1e-12);
    check(&pt.channels, &s.value, &[("A", 10.5), ("B", 9.0), ("C", 7.5)], 1e-12);
}

#[test]
fn ordered_shapley_breaks_credit_down_by_position() {
    let by = |pt: &PathTable, ch: &str, pos: u32| -> f64 {
        let id = pt.channels.iter().position(|c| c == ch).unwrap() as u32;
        models::shapley_ordered(pt)
            .iter()
            .find(|r| r.channel == id && r.position == pos)
            .map(|r| r.conversions)
            .unwrap_or(0.0)
    };
    let pt = fixture_s();
    close(by(&pt, "google ads", 1), 2.5, 1e-12);
    close(by(&pt, "mailing", 1), 1.0, 1e-12);
    close(by(&pt, "mailing", 2), 0.5, 1e-12);
    let pt = fixture_b();
    for (ch, pos, x) in [
        ("A", 1, 4.0 / 3.0),
        ("A", 2, 0.25),
        ("A", 3, 7.0 / 12.0),
        ("B", 1, 0.75),
        ("B", 2, 11.0 / 12.0),
        ("C", 3, 0.5),
        ("C", 4, 2.0 / 3.0),
    ] {
        close(by(&pt, ch, pos), x, 1e-12);
    }
    let total: f64 = models::shapley_ordered(&pt).iter().map(|r| r.conversions).sum();
    close(total, 5.0, 1e-12);
}

#[test]
fn last_non_direct_skips_direct_and_falls_back_to_it() {
    let direct: Vec<String> = vec!["direct".into(), "Direct".into(), "(direct)".into()];
    let pt = table(&[
        ("Direct > Direct", 1.0, 0.0, 5.0),
        ("email > Direct", 2.0, 0.0, 8.0),
        ("(direct) > seo > direct", 1.0, 0.0, 1.0),
    ]);
    let c = models::last_non_direct(&pt, &direct);
    check(
        &pt.channels,
        &c.conversions,
        &[("Direct", 1.0), ("email", 2.0), ("seo", 1.0), ("direct", 0.0), ("(direct)", 0.0)],
        1e-12,
    );
    check(&pt.channels, &c.value, &[("Direct", 5.0), ("email", 8.0), ("seo", 1.0)], 1e-12);
    // A custom direct set.
    let c = models::last_non_direct(&pt, &["seo".to_string()]);
    check(&pt.channels, &c.conversions, &[("direct", 1.0), ("Direct", 3.0)], 1e-12);
}

/// A one-user event log with timestamps (days before a conversion at day 100).
fn timed_log(touches: &[(&str, f64)], value: f64) -> EventLog {
    let mut names: Vec<String> = touches.iter().map(|t| t.0.to_string()).collect();
    names.sort();
    names.dedup();
    let conv = 100 * DAY;
    let mut log = EventLog { channels: names.clone(), n_users: 1, ..Default::default() };
    for (ch, days) in touches {
        log.user.push(0);
        log.ts.push(conv - (days * DAY as f64) as i64);
        log.channel.push(names.iter().position(|n| n == ch).unwrap() as u32);
        log.is_conversion.push(false);
        log.value.push(0.0);
    }
    log.user.push(0);
    log.ts.push(conv);
    log.channel.push(NO_CHANNEL);
    log.is_conversion.push(true);
    log.value.push(value);
    log.rows_read = log.user.len() as u64;
    log
}

fn analyze(log: &EventLog, settings: &Settings) -> Analysis {
    let opts = JourneyOptions::resolve(&settings.journeys, log, true);
    let j = crate::common::journeys_with(log, &opts);
    analyze_journeys(j, &log.channels, settings)
}

fn credit(a: &Analysis, m: Model) -> &models::Credits {
    &a.credits.iter().find(|(x, _)| *x == m).unwrap().1
}

#[test]
fn time_decay_t1_t2_and_the_other_models_on_timed_journeys() {
    let t1 = timed_log(
        &[
            ("Paid Social", 38.0),
            ("Organic", 33.0),
            ("Paid Social", 26.0),
            ("Paid Search", 8.0),
            ("Direct", 0.0),
        ],
        12_000.0,
    );
    let mut s = Settings::default();
    s.journeys.lookback_days = 38.0;
    let a = analyze(&t1, &s);
    let ch = &a.paths.channels;
    // A published example, to the cent.
    let td = credit(&a, Model::TimeDecay);
    for (n, x) in
        [("Paid Social", 750.07), ("Organic", 287.44), ("Paid Search", 3417.05), ("Direct", 7545.45)]
    {
        assert!((get(ch, &td.value, n) - x).abs() < 0.006, "{n}: {}", get(ch, &td.value, n));
    }
    // And exactly, from the definition.
    let raw = |d: f64| 2f64.powf(-d / 7.0);
    let sum = raw(38.0) + raw(33.0) + raw(26.0) + raw(8.0) + raw(0.0);
    close(get(ch, &td.value, "Paid Social"), 12_000.0 * (raw(38.0) + raw(26.0)) / sum, 1e-12);
    close(sum, 1.590363, 1e-6);
    check(
        ch,
        &credit(&a, Model::PositionBased).value,
        &[("Paid Social", 5600.0), ("Organic", 800.0), ("Paid Search", 800.0), ("Direct", 4800.0)],
        1e-12,
    );
    check(
        ch,
        &credit(&a, Model::Linear).value,
        &[("Paid Social", 4800.0), ("Organic", 2400.0), ("Paid Search", 2400.0), ("Direct", 2400.0)],
        1e-12,
    );
    check(ch, &credit(&a, Model::LastNonDirect).value, &[("Paid Search", 12_000.0), ("Direct", 0.0)], 1e-12);
    // With the default 30-day lookback the two oldest touches expire.
    let a = analyze(&t1, &Settings::default());
    assert_eq!(a.stats.expired_touches, 2);
    assert_eq!(get(&a.paths.channels, &credit(&a, Model::TimeDecay).value, "Organic"), 0.0);

    let t2 = timed_log(&[("Email", 28.0), ("Display", 14.0), ("Email", 7.0), ("Search", 0.0)], 100.0);
    let a = analyze(&t2, &Settings::default());
    let ch = &a.paths.channels;
    let td = credit(&a, Model::TimeDecay);
    check(
        ch,
        &td.conversions,
        &[("Email", 0.5625 / 1.8125), ("Display", 0.25 / 1.8125), ("Search", 1.0 / 1.8125)],
        1e-12,
    );
    check(
        ch,
        &credit(&a, Model::PositionBased).conversions,
        &[("Email", 0.5), ("Display", 0.1), ("Search", 0.4)],
        1e-12,
    );

    let t3 = timed_log(&[("Direct", 3.0), ("Direct", 0.0)], 1.0);
    let a = analyze(&t3, &Settings::default());
    check(&a.paths.channels, &credit(&a, Model::LastNonDirect).conversions, &[("Direct", 1.0)], 1e-12);
    // Equal timestamps get equal weight.
    let tie = timed_log(&[("A", 2.0), ("B", 2.0)], 1.0);
    let a = analyze(&tie, &Settings::default());
    check(&a.paths.channels, &credit(&a, Model::TimeDecay).conversions, &[("A", 0.5), ("B", 0.5)], 1e-12);
}

fn touches(path: &str, names: &[&str]) -> Vec<Touch> {
    path.split_whitespace()
        .enumerate()
        .map(|(i, c)| Touch {
            channel: names.iter().position(|n| *n == c).unwrap() as u32,
            row: i as u32,
            ts: i as i64,
        })
        .collect()
}

fn render(t: &[Touch], names: &[&str]) -> String {
    let n = names.len() as u32;
    t.iter()
        .map(|t| {
            if t.channel < n {
                names[t.channel as usize].to_string()
            } else {
                format!("{}({})", names[(t.channel % n) as usize], t.channel / n)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn transforms_match_fractribution_on_its_example_and_edge_cases() {
    let names = ["A", "B", "C", "D", "direct"];
    let mask = |chs: &[&str]| names.iter().map(|n| chs.contains(n)).collect::<Vec<bool>>();
    let run = |path: &str, t: &[ResolvedTransform]| {
        let mut v = touches(path, &names);
        apply_transforms(&mut v, t, names.len() as u32);
        render(&v, &names)
    };
    let p = "D A B B C D C C";
    assert_eq!(run(p, &[]), p);
    assert_eq!(run(p, &[ResolvedTransform::Exposure]), "D A B C D C");
    assert_eq!(run(p, &[ResolvedTransform::First]), "D A B C");
    assert_eq!(run(p, &[ResolvedTransform::Frequency]), "D(2) A(1) B(2) C(3)");
    assert_eq!(run(p, &[ResolvedTransform::Trim(3)]), "D C C");
    assert_eq!(run(p, &[ResolvedTransform::RemoveIfNotAll(mask(&["D"]))]), "A B B C C C");
    assert_eq!(run(p, &[ResolvedTransform::RemoveIfLastAndNotAll(mask(&["C"]))]), "D A B B C D");
    // Chained in order: exposure then trim.
    assert_eq!(run(p, &[ResolvedTransform::Exposure, ResolvedTransform::Trim(2)]), "D C");
    // Edge cases (as Snowplow's package tests them): all-direct, single touch, empty.
    assert_eq!(
        run("direct direct", &[ResolvedTransform::RemoveIfNotAll(mask(&["direct"]))]),
        "direct direct"
    );
    assert_eq!(
        run("direct direct", &[ResolvedTransform::RemoveIfLastAndNotAll(mask(&["direct"]))]),
        "direct direct"
    );
    assert_eq!(run("A direct direct", &[ResolvedTransform::RemoveIfLastAndNotAll(mask(&["direct"]))]), "A");
    assert_eq!(
        run("A", &[ResolvedTransform::Exposure, ResolvedTransform::Frequency, ResolvedTransform::Trim(1)]),
        "A(1)"
    );
    assert_eq!(run("", &[ResolvedTransform::Exposure, ResolvedTransform::Trim(1)]), "");
    // Long mixed repeats.
    let long = "A A B A A A C C B B B A";
    assert_eq!(run(long, &[ResolvedTransform::Exposure]), "A B A C B A");
    assert_eq!(run(long, &[ResolvedTransform::Frequency]), "A(6) B(4) C(2)");
    assert_eq!(run(long, &[ResolvedTransform::First, ResolvedTransform::Trim(2)]), "B C");
    // Parsing.
    assert_eq!(Transform::parse("trim_long_path(3)").unwrap(), Transform::TrimLongPath(3));
    assert_eq!(
        Transform::parse("remove_if_not_all(direct|email)").unwrap(),
        Transform::RemoveIfNotAll(vec!["direct".into(), "email".into()])
    );
    assert!(Transform::parse("trim_long_path(0)").is_err());
    assert!(Transform::parse("nope").is_err());
}

#[test]
fn frequency_credit_is_folded_back_to_the_channel() {
    let log = timed_log(&[("email", 3.0), ("seo", 2.0), ("email", 1.0)], 10.0);
    let mut s = Settings::default();
    s.journeys.transforms = vec![Transform::Frequency];
    let a = analyze(&log, &s);
    assert_eq!(a.paths.channels, vec!["email(2)", "seo(1)"]);
    let f = a.folded(credit(&a, Model::Linear));
    assert_eq!(a.report_channels, vec!["email", "seo"]);
    check(&a.report_channels, &f.conversions, &[("email", 0.5), ("seo", 0.5)], 1e-12);
    let f = a.folded(credit(&a, Model::TimeDecay));
    close(f.conversions.iter().sum::<f64>(), 1.0, 1e-12);
}

#[test]
fn sequence_removal_effects_equal_the_share_of_conversions_containing_the_sequence() {
    // At an order ≥ the longest path every path is one state, so removing a sequence removes
    // exactly the paths that contain it: RE = share of conversions on such paths.
    let pt = fixture_b();
    let r = markov::attribute(&pt, 4).unwrap();
    let seqs = markov::sequence_effects(&r, 100).unwrap();
    let re = |s: &str| {
        let ids: Vec<u32> =
            s.split(" > ").map(|c| pt.channels.iter().position(|n| n == c).unwrap() as u32).collect();
        seqs.iter().find(|e| e.sequence == ids).unwrap_or_else(|| panic!("no {s}")).removal_effect.unwrap()
    };
    close(re("A > B"), 2.0 / 5.0, 1e-12);
    close(re("B > A"), 3.0 / 5.0, 1e-12);
    close(re("B > B"), 1.0 / 5.0, 1e-12);
    close(re("A > B > A > C"), 2.0 / 5.0, 1e-12);
    // Order 1 has no sequences; order 2 sequences never exceed their channels' effects.
    assert!(markov::sequence_effects(&markov::attribute(&pt, 1).unwrap(), 100).unwrap().is_empty());
    let r2 = markov::attribute(&pt, 2).unwrap();
    for e in markov::sequence_effects(&r2, 100).unwrap() {
        for c in &e.sequence {
            assert!(e.removal_effect.unwrap() <= r2.removal_effects[*c as usize].unwrap() + 1e-12);
        }
    }
}

/// splitmix64: a tiny deterministic generator for synthetic processes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Journeys of 1–6 uniformly random channels out of 4; conversion probability given by `p`
/// of the path.
fn process(seed: u64, n: usize, p: impl Fn(&[u32]) -> f64) -> PathTable {
    let mut rng = Rng(seed);
    let mut rows = Vec::new();
    for _ in 0..n {
        let len = 1 + (rng.next() * 6.0) as usize;
        let path: Vec<u32> = (0..len).map(|_| (rng.next() * 4.0) as u32).collect();
        let conv = rng.next() < p(&path);
        rows.push(PathRow { conversions: conv as u8 as f64, nulls: (!conv) as u8 as f64, value: 0.0, path });
    }
    PathTable::from_rows(vec!["a".into(), "b".into(), "c".into(), "d".into()], rows)
}

#[test]
fn auto_order_finds_the_order_of_the_process() {
    let first = process(7, 40_000, |p| [0.05, 0.15, 0.3, 0.5][*p.last().unwrap() as usize]);
    let (k, scores) = markov::choose_order(&first, 4);
    assert_eq!(k, 1, "first-order data: {scores:?}");
    let second = process(11, 40_000, |p| {
        let n = p.len();
        if n >= 2 && matches!((p[n - 2], p[n - 1]), (0, 1) | (2, 3) | (1, 0)) {
            0.6
        } else {
            0.05
        }
    });
    let (k, scores) = markov::choose_order(&second, 4);
    assert_eq!(k, 2, "second-order data: {scores:?}");
    assert_eq!(scores.iter().filter(|s| s.selected).count(), 1);
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(&s.auc)));
}

#[test]
fn touch_types_have_their_own_lookback() {
    let mut log = timed_log(&[("display", 2.0), ("search", 20.0), ("search", 40.0)], 1.0);
    // Rows are (display@-2d, search@-20d, search@-40d, conversion); types by row.
    log.touch_types = vec!["click".into(), "impression".into()];
    log.touch_type = Some(vec![1, 0, 0, NO_CHANNEL]);
    let mut rules = JourneyRules::default();
    rules.lookback_by_type.insert("impression".into(), 1.0);
    rules.lookback_by_type.insert("click".into(), 30.0);
    let j = crate::common::journeys_of(&log, &rules);
    assert_eq!(j.paths.rows.len(), 1);
    assert_eq!(j.paths.path_name(&j.paths.rows[0].path), "search");
    assert_eq!(j.stats.expired_touches, 2);
    rules.lookback_by_type.insert("impression".into(), 2.0);
    let j = crate::common::journeys_of(&log, &rules);
    assert_eq!(j.paths.path_name(&j.paths.rows[0].path), "search > display");
}

/// Channel groups by hand: u1 facebook > instagram > paid_search converts, u2 instagram >
/// facebook does not, u3 paid_search converts (conversion rows are not touches here);
/// social = facebook + instagram.
/// Group paths: social > social > search (1), social > social (0), search (1).
/// linear: social 2/3, search 4/3 (the channel sums). Shapley on groups: u1 splits
/// 1/2 : 1/2, so social 1/2, search 3/2 (on channels social would get 2/3).
/// Markov on the group chain: start → social 2/3, start → search 1/3, social → search 1/2,
/// social → null 1/2, search → conversion 1: P = 2/3, RE social 1/2, RE search 1:
/// social 2/3, search 4/3. Spend 10 + 20 = 30 for social: CPA under linear 45.
#[test]
fn channel_groups_are_refitted_on_group_journeys() {
    use crate::common::*;
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000_000i64;
    let rows = [
        ("u1", 0, "facebook", "touch"),
        ("u1", 1, "instagram", "touch"),
        ("u1", 2, "paid_search", "touch"),
        ("u1", 3, "paid_search", "conversion"),
        ("u2", 0, "instagram", "touch"),
        ("u2", 1, "facebook", "touch"),
        ("u3", 0, "paid_search", "touch"),
        ("u3", 1, "paid_search", "conversion"),
    ];
    let ts: Column =
        Series::new("ts".into(), rows.iter().map(|r| 1_700_000_000_000_000 + r.1 * day).collect::<Vec<_>>())
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .unwrap()
            .into();
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("user_id".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        ts,
        Column::new("channel".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        Column::new("event".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
        Column::new("revenue".into(), vec![0.0; rows.len()]),
    ])
    .unwrap();
    let events = dir.path().join("e.parquet");
    write_events(&events, &mut df);
    let spend = dir.path().join("spend.csv");
    std::fs::write(&spend, "channel,spend\nfacebook,10\ninstagram,20\npaid_search,40\n").unwrap();
    let out = dir.path().join("out");
    let o = touchpoint(&[
        "attribute",
        "--events",
        events.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--models",
        "linear,shapley,markov",
        "--conversion-is-touch",
        "false",
        "--channel-group",
        "social=facebook,instagram",
        "--channel-group",
        "search=paid_search",
        "--spend",
        spend.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (cols, rows) = read_parquet(&out.join("channel_group_attribution.parquet"));
    assert_eq!(&cols[..2], ["model", "group"]);
    let get = |m: &str, g: &str| {
        rows.iter().find(|r| r[0].str() == m && r[1].str() == g).map(|r| (r[2].num(), r[7].num())).unwrap()
    };
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    close(get("linear", "social").0, 2.0 / 3.0);
    close(get("linear", "search").0, 4.0 / 3.0);
    close(get("shapley", "social").0, 0.5);
    close(get("shapley", "search").0, 1.5);
    close(get("markov", "social").0, 2.0 / 3.0);
    close(get("markov", "search").0, 4.0 / 3.0);
    close(get("linear", "social").1, 45.0);
    // Group roles: social opens u1's journey and is where u2's ends; search closes u1's and
    // is u3's only touch.
    let (cols, rows) = read_parquet(&out.join("channel_group_roles.parquet"));
    let role = |g: &str, c: &str| {
        let r = rows.iter().find(|r| r[0].str() == g).unwrap();
        r[cols.iter().position(|x| x == c).unwrap()].num()
    };
    assert_eq!((role("social", "first_touch_conversions"), role("social", "dropoff_journeys")), (1.0, 1.0));
    assert_eq!(
        (role("search", "last_touch_conversions"), role("search", "only_touch_conversions")),
        (1.0, 1.0)
    );
    assert_eq!(role("social", "journeys"), 2.0);
}
