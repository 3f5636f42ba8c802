//! `journey_timing`: how long and how many touches converting journeys take — the
//! distributions behind "social early, search close to the sale".

use super::names::TableName;
use crate::core::analysis::Analysis;
use crate::core::table::{Table, Values};

/// Days from a converting journey's first counted touch to its conversion (whole days).
const DAY_BUCKETS: [(u32, Option<u32>); 10] = [
    (0, Some(0)),
    (1, Some(1)),
    (2, Some(2)),
    (3, Some(3)),
    (4, Some(7)),
    (8, Some(14)),
    (15, Some(30)),
    (31, Some(60)),
    (61, Some(90)),
    (91, None),
];

/// Touches of a converting journey.
const TOUCH_BUCKETS: [(u32, Option<u32>); 8] = [
    (1, Some(1)),
    (2, Some(2)),
    (3, Some(3)),
    (4, Some(4)),
    (5, Some(5)),
    (6, Some(10)),
    (11, Some(20)),
    (21, None),
];

fn label((lo, hi): (u32, Option<u32>)) -> String {
    match hi {
        Some(h) if h == lo => lo.to_string(),
        Some(h) => format!("{lo}-{h}"),
        None => format!("{lo}+"),
    }
}

fn bucket_of(x: u32, buckets: &[(u32, Option<u32>)]) -> usize {
    buckets.iter().rposition(|(lo, _)| x >= *lo).unwrap_or(0)
}

/// Converting journeys per bucket: days to conversion, then touches to conversion.
fn counts(a: &Analysis) -> (Vec<f64>, Vec<f64>) {
    let mut days = vec![0.0f64; DAY_BUCKETS.len()];
    for (d, n) in a.stats.lag_days.iter().enumerate() {
        days[bucket_of(d as u32, &DAY_BUCKETS)] += *n as f64;
    }
    let mut touches = vec![0.0f64; TOUCH_BUCKETS.len()];
    for r in &a.paths.rows {
        touches[bucket_of(r.path.len() as u32, &TOUCH_BUCKETS)] += r.conversions;
    }
    (days, touches)
}

/// The two histograms as (measure, [(bucket label, journeys)]) for the report's charts.
pub fn histograms(a: &Analysis) -> Vec<(&'static str, Vec<(String, f64)>)> {
    let (days, touches) = counts(a);
    let label_all = |b: &[(u32, Option<u32>)], c: Vec<f64>| b.iter().map(|x| label(*x)).zip(c).collect();
    vec![
        ("days_to_conversion", label_all(&DAY_BUCKETS, days)),
        ("touches_to_conversion", label_all(&TOUCH_BUCKETS, touches)),
    ]
}

/// Grain (measure, bucket): converting journeys by days and by touches to conversion.
pub fn journey_timing(a: &Analysis) -> Table {
    let (days, touches) = counts(a);
    let (mut measure, mut bucket, mut lower, mut upper, mut count, mut share) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (name, buckets, counts) in [
        ("days_to_conversion", &DAY_BUCKETS[..], &days),
        ("touches_to_conversion", &TOUCH_BUCKETS[..], &touches),
    ] {
        let total: f64 = counts.iter().sum();
        for (b, c) in buckets.iter().zip(counts) {
            measure.push(name.to_owned());
            bucket.push(label(*b));
            lower.push(b.0);
            upper.push(b.1);
            count.push(*c);
            share.push((total > 0.0).then(|| c / total));
        }
    }
    Table::new(
        TableName::JourneyTiming.as_str(),
        vec![
            ("measure", Values::Str(measure)),
            ("bucket", Values::Str(bucket)),
            ("lower", Values::U32(lower)),
            ("upper", Values::OptU32(upper)),
            ("converting_journeys", Values::F64(count)),
            ("share", Values::OptF64(share)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_once() {
        assert_eq!(bucket_of(0, &DAY_BUCKETS), 0);
        assert_eq!(bucket_of(7, &DAY_BUCKETS), 4);
        assert_eq!(bucket_of(8, &DAY_BUCKETS), 5);
        assert_eq!(bucket_of(365, &DAY_BUCKETS), 9);
        assert_eq!(bucket_of(1, &TOUCH_BUCKETS), 0);
        assert_eq!(bucket_of(10, &TOUCH_BUCKETS), 5);
        assert_eq!(bucket_of(1_000_000, &TOUCH_BUCKETS), 7);
        assert_eq!(label(DAY_BUCKETS[4]), "4-7");
        assert_eq!(label(DAY_BUCKETS[9]), "91+");
    }
}
