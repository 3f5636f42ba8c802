//! Journey rules (`docs/models.md` § Journeys) on small hand-made event logs, with hand-computed expectations.

use crate::common::journeys_of;
use touchpoint::core::event_log::{EventLog, NO_CHANNEL};
use touchpoint::core::journeys::Journeys;
use touchpoint::settings::JourneyRules;

const DAY: i64 = 86_400_000_000;
const SEC: i64 = 1_000_000;

/// (user, time µs, channel, is_conversion, value)
type Row<'a> = (u32, i64, Option<&'a str>, bool, f64);

fn log(rows: &[Row]) -> EventLog {
    let mut names: Vec<String> = rows.iter().filter_map(|r| r.2.map(str::to_owned)).collect();
    names.sort();
    names.dedup();
    let mut users: Vec<u32> = rows.iter().map(|r| r.0).collect();
    users.sort();
    users.dedup();
    EventLog {
        user: rows.iter().map(|r| r.0).collect(),
        ts: rows.iter().map(|r| r.1).collect(),
        channel: rows
            .iter()
            .map(|r| r.2.map(|c| names.iter().position(|n| n == c).unwrap() as u32).unwrap_or(NO_CHANNEL))
            .collect(),
        is_conversion: rows.iter().map(|r| r.3).collect(),
        value: rows.iter().map(|r| r.4).collect(),
        tie: None,
        channels: names,
        n_users: users.len(),
        files: vec![],
        rows_read: rows.len() as u64,
        ..Default::default()
    }
}

/// The path table as (path string, conversions, nulls, value), sorted.
fn paths(j: &Journeys) -> Vec<(String, f64, f64, f64)> {
    let mut v: Vec<_> =
        j.paths.rows.iter().map(|r| (j.paths.path_name(&r.path), r.conversions, r.nulls, r.value)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn p(s: &str, c: f64, n: f64, v: f64) -> (String, f64, f64, f64) {
    (s.to_owned(), c, n, v)
}

fn rules() -> JourneyRules {
    JourneyRules::default()
}

#[test]
fn touches_at_the_conversion_instant_belong_to_it_and_ties_order_by_channel() {
    let rows = [
        (0, 10 * SEC, Some("b"), false, 0.0),
        (0, 10 * SEC, Some("a"), false, 0.0),
        (0, 20 * SEC, None, true, 5.0),
        (0, 20 * SEC, Some("c"), false, 0.0), // same instant as the conversion: before it
    ];
    let j = journeys_of(&log(&rows), &rules());
    assert_eq!(paths(&j), vec![p("a > b > c", 1.0, 0.0, 5.0)]);
    // Any row order gives the same result.
    let mut rev = rows;
    rev.reverse();
    assert_eq!(paths(&journeys_of(&log(&rev), &rules())), paths(&j));
}

#[test]
fn lookback_is_inclusive_to_the_microsecond() {
    let conv = 100 * DAY;
    let rows = [
        (0, conv - 30 * DAY - SEC, Some("old"), false, 0.0),
        (0, conv - 30 * DAY, Some("edge"), false, 0.0),
        (0, conv, None, true, 1.0),
    ];
    let j = journeys_of(&log(&rows), &rules());
    assert_eq!(paths(&j), vec![p("edge", 1.0, 0.0, 1.0)]);
    assert_eq!(j.stats.expired_touches, 1);
    let mut r = rules();
    r.lookback_days = 31.0;
    let j = journeys_of(&log(&rows), &r);
    assert_eq!(paths(&j), vec![p("old > edge", 1.0, 0.0, 1.0)]);
    assert_eq!(j.stats.expired_touches, 0);
}

#[test]
fn several_conversions_per_user_cut_the_stream() {
    let rows = [
        (0, DAY, Some("a"), false, 0.0),
        (0, 2 * DAY, Some("b"), false, 0.0),
        (0, 3 * DAY, None, true, 10.0),
        (0, 4 * DAY, Some("c"), false, 0.0),
        (0, 5 * DAY, None, true, 20.0),
        (0, 6 * DAY, Some("a"), false, 0.0),
        (0, 7 * DAY, Some("a"), false, 0.0),
    ];
    let j = journeys_of(&log(&rows), &rules());
    assert_eq!(
        paths(&j),
        vec![p("a > a", 0.0, 1.0, 0.0), p("a > b", 1.0, 0.0, 10.0), p("c", 1.0, 0.0, 20.0)]
    );
    assert_eq!(j.stats.converting_journeys, 2);
    assert_eq!(j.stats.non_converting_journeys, 1);
    assert_eq!(j.stats.journeys, 3);
    assert_eq!(j.stats.total_value, 30.0);
}

#[test]
fn conversion_row_with_a_channel_is_a_touch_unless_disabled() {
    let rows = [(0, DAY, Some("a"), false, 0.0), (0, 2 * DAY, Some("direct"), true, 7.0)];
    let j = journeys_of(&log(&rows), &rules());
    assert_eq!(paths(&j), vec![p("a > direct", 1.0, 0.0, 7.0)]);
    let mut r = rules();
    r.conversion_is_touch = false;
    let j = journeys_of(&log(&rows), &r);
    assert_eq!(paths(&j), vec![p("a", 1.0, 0.0, 7.0)]);
}

#[test]
fn conversions_without_touches_are_unattributed() {
    let rows = [
        (0, DAY, None, true, 3.0), // no touch at all
        (1, DAY, Some("a"), false, 0.0),
        (1, 40 * DAY, None, true, 4.0), // its touch expired
        (1, 40 * DAY, None, true, 6.0), // second conversion at the same instant
        (2, DAY, Some("b"), false, 0.0),
        (2, 2 * DAY, None, true, 1.0),
    ];
    let j = journeys_of(&log(&rows), &rules());
    assert_eq!(paths(&j), vec![p("b", 1.0, 0.0, 1.0)]);
    assert_eq!(j.stats.unattributed_conversions, 3.0);
    assert_eq!(j.stats.unattributed_value, 13.0);
    assert_eq!(j.stats.total_conversions, 4.0);
    assert_eq!(j.stats.total_value, 14.0);
    assert_eq!(j.stats.expired_touches, 1);
    assert_eq!(j.stats.converting_journeys, 4);
}

#[test]
fn a_user_who_never_converts_has_one_null_journey_limited_from_the_last_touch() {
    let rows = [
        (5, DAY, Some("x"), false, 0.0),
        (5, 50 * DAY, Some("y"), false, 0.0),
        (5, 60 * DAY, Some("z"), false, 0.0),
    ];
    let j = journeys_of(&log(&rows), &rules());
    assert_eq!(paths(&j), vec![p("y > z", 0.0, 1.0, 0.0)]);
    assert_eq!(j.stats.expired_touches, 1);
    assert_eq!(j.stats.users, 1);
}

#[test]
fn users_are_kept_apart_and_lengths_counted() {
    let rows = [
        (0, DAY, Some("a"), false, 0.0),
        (1, DAY + 1, Some("b"), false, 0.0),
        (0, 2 * DAY, None, true, 2.0),
        (1, 2 * DAY, None, true, 3.0),
    ];
    let j = journeys_of(&log(&rows), &rules());
    assert_eq!(paths(&j), vec![p("a", 1.0, 0.0, 2.0), p("b", 1.0, 0.0, 3.0)]);
    assert_eq!(j.stats.path_lengths, vec![0, 2]);
    assert_eq!(j.stats.path_length_quantile(0.5), Some(1));
}

#[test]
fn tie_breaker_orders_equal_times_before_channel_name() {
    let mut l = log(&[
        (0, SEC, Some("a"), false, 0.0),
        (0, SEC, Some("b"), false, 0.0),
        (0, 2 * SEC, None, true, 0.0),
    ]);
    l.tie = Some(vec![2, 1, 0]);
    let j = journeys_of(&l, &rules());
    assert_eq!(paths(&j), vec![p("b > a", 1.0, 0.0, 0.0)]);
}

#[test]
fn reading_in_batches_gives_the_same_log_and_journeys() {
    use touchpoint::core::event_log::UserNames;
    use touchpoint::engine::{load_events, LoadOptions, ReadScope};
    use touchpoint::settings::{Columns, InvalidRows};
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/sample-data/events.parquet");
    let cols = Columns::default();
    let read = |batch_rows: Option<u64>, range: Option<(i64, i64)>| {
        let scope = ReadScope { batch_rows, range, ..ReadScope::default() };
        load_events(
            sample,
            &LoadOptions {
                columns: &cols,
                on_invalid: InvalidRows::Fail,
                scope: &scope,
                channel_rules: None,
                own_channel: false,
            },
        )
        .unwrap()
    };
    let mid = 1_704_067_200_000_000 + 20 * 86_400_000_000; // 2024-01-21
    for range in [None, Some((mid, mid + 25 * 86_400_000_000))] {
        let whole = read(None, range);
        // 7,001 rows a batch: batch edges fall inside row groups and inside users.
        let batched = read(Some(7_001), range);
        assert!(whole.len() > 10_000);
        assert_eq!(whole.rows_read, batched.rows_read);
        assert_eq!(whole.n_users, batched.n_users);
        assert_eq!(whole.user, batched.user);
        assert_eq!(whole.ts, batched.ts);
        assert_eq!(whole.channel, batched.channel);
        assert_eq!(whole.is_conversion, batched.is_conversion);
        assert_eq!(whole.value, batched.value);
        assert_eq!(whole.user_names, batched.user_names);
        assert!(matches!(&whole.user_names, UserNames::Str(v) if v.len() == whole.n_users));
        let rules = rules();
        assert_eq!(paths(&journeys_of(&whole, &rules)), paths(&journeys_of(&batched, &rules)));
    }
}
