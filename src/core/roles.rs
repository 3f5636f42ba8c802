//! Channel roles (`docs/models.md` § Channel roles): which channels open journeys, which
//! assist, which close them, and where non-converting journeys end — counted on the path
//! table, so every number is a sum over journeys.

use crate::core::paths::PathTable;
use crate::core::recorded::Recorded;

/// The roles of one channel (path-table channel id), summed over journeys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Roles {
    /// Journeys (converting or not) in which the channel appears.
    pub journeys: f64,
    /// Converting journeys in which it appears.
    pub converting_journeys: f64,
    /// Converting journeys it opens (paths of two or more touches).
    pub first: f64,
    /// Converting journeys in which it is a middle touch (an assist).
    pub assist: f64,
    /// Converting journeys it closes (paths of two or more touches).
    pub last: f64,
    /// Converting journeys of which it is the only touch.
    pub only: f64,
    /// Value of the converting journeys in which it appears.
    pub value: f64,
    /// Linear credit of its touches in the first quarter of their paths (GA4's early).
    pub early: f64,
    /// … in the middle half.
    pub mid: f64,
    /// … in the last quarter.
    pub late: f64,
    /// Non-converting journeys whose last touch it is (where journeys drop off).
    pub dropoffs: f64,
}

impl Roles {
    /// The names of the sums, in the order of [`Roles::values`] (the distributed fit's
    /// `role` statistics).
    pub const NAMES: [&'static str; 11] = [
        "journeys",
        "converting_journeys",
        "first",
        "assist",
        "last",
        "only",
        "value",
        "early",
        "mid",
        "late",
        "dropoffs",
    ];

    /// The sums, in the order of [`Roles::NAMES`].
    pub fn values(&self) -> [f64; 11] {
        [
            self.journeys,
            self.converting_journeys,
            self.first,
            self.assist,
            self.last,
            self.only,
            self.value,
            self.early,
            self.mid,
            self.late,
            self.dropoffs,
        ]
    }

    /// The sum named `Roles::NAMES[i]`.
    pub fn value_mut(&mut self, i: usize) -> Option<&mut f64> {
        Some(match i {
            0 => &mut self.journeys,
            1 => &mut self.converting_journeys,
            2 => &mut self.first,
            3 => &mut self.assist,
            4 => &mut self.last,
            5 => &mut self.only,
            6 => &mut self.value,
            7 => &mut self.early,
            8 => &mut self.mid,
            9 => &mut self.late,
            10 => &mut self.dropoffs,
            _ => return None,
        })
    }

    /// Add another channel's roles (folding `frequency` names back to their channel).
    pub fn add(&mut self, o: &Roles) {
        self.journeys += o.journeys;
        self.converting_journeys += o.converting_journeys;
        self.first += o.first;
        self.assist += o.assist;
        self.last += o.last;
        self.only += o.only;
        self.value += o.value;
        self.early += o.early;
        self.mid += o.mid;
        self.late += o.late;
        self.dropoffs += o.dropoffs;
    }
}

/// The stage of touch `i` of `l` (GA4's 25/50/25 rule): early if the centre of its slot,
/// (i + ½)/l, is at most ¼, late if at least ¾, else mid (symmetric at every length). A
/// single touch closes its journey: late.
pub fn stage(i: usize, l: usize) -> usize {
    let centre = (2 * i + 1) as f64 / (2 * l) as f64;
    if l == 1 || centre >= 0.75 {
        2
    } else if centre <= 0.25 {
        0
    } else {
        1
    }
}

/// Roles of every channel of the path table. One pass over each path: a stamp per channel
/// (the row it was last counted for) finds its distinct channels without sorting.
pub fn channel_roles(pt: &PathTable) -> Vec<Roles> {
    let mut r = vec![Roles::default(); pt.channels.len()];
    let (mut seen, mut assisted) = (vec![0usize; pt.channels.len()], vec![0usize; pt.channels.len()]);
    for (n_row, row) in pt.rows.iter().enumerate() {
        let stamp = n_row + 1;
        let (c, n, l) = (row.conversions, row.nulls, row.path.len());
        for (i, &ch) in row.path.iter().enumerate() {
            let x = &mut r[ch as usize];
            if seen[ch as usize] != stamp {
                seen[ch as usize] = stamp;
                x.journeys += c + n;
                x.converting_journeys += c;
                x.value += row.value;
            }
            if i > 0 && i + 1 < l && assisted[ch as usize] != stamp {
                assisted[ch as usize] = stamp;
                x.assist += c;
            }
            let share = c / l as f64;
            match stage(i, l) {
                0 => x.early += share,
                1 => x.mid += share,
                _ => x.late += share,
            }
        }
        if l == 1 {
            r[row.path[0] as usize].only += c;
        } else {
            r[row.path[0] as usize].first += c;
            r[row.path[l - 1] as usize].last += c;
        }
        r[row.path[l - 1] as usize].dropoffs += n;
    }
    r
}

/// Microseconds in the unit days to conversion are counted in (a minute): fine enough
/// for a median of days, and few enough distinct values per channel (43,200 in 30 days)
/// that the counts of every value add up across shards and stay small.
pub const LAG_UNIT_MICROS: i64 = 60_000_000;

/// How far a channel's touches were from the conversions they led to, as counts of each
/// distinct value: whole minutes (floored) and touches to the conversion (the last touch
/// is 1). Counts add up across partitions of whole persons, and the quantiles of the
/// counts are the quantiles of the values, so every merge has one run's quantiles.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChannelLags {
    /// (minutes, touches at that lag), sorted by minutes.
    pub minutes: Vec<(i64, u64)>,
    /// (touches to conversion, touches at that count), sorted.
    pub touches: Vec<(i64, u64)>,
}

impl ChannelLags {
    /// Add another partition's counts.
    pub fn add(&mut self, o: &ChannelLags) {
        self.minutes = merge_counts(&self.minutes, &o.minutes);
        self.touches = merge_counts(&self.touches, &o.touches);
    }

    /// `[days p50, days p90, touches p50, touches p90]`; None without touches.
    pub fn quantiles(&self) -> Option<[f64; 4]> {
        let minutes_per_day = (crate::settings::DAY_MICROS / LAG_UNIT_MICROS) as f64;
        let day = |q| counted_quantile(&self.minutes, q).map(|m| m / minutes_per_day);
        let touch = |q| counted_quantile(&self.touches, q);
        Some([day(0.5)?, day(0.9)?, touch(0.5)?, touch(0.9)?])
    }
}

fn merge_counts<K: Ord + Copy>(a: &[(K, u64)], b: &[(K, u64)]) -> Vec<(K, u64)> {
    let mut m: std::collections::BTreeMap<K, u64> = a.iter().copied().collect();
    for &(k, n) in b {
        *m.entry(k).or_insert(0) += n;
    }
    m.into_iter().collect()
}

/// The q-quantile of the values that `counts` (sorted by value) counts, as [`quantile`]
/// computes it on the values themselves (type 7: interpolated between order statistics).
pub fn counted_quantile(counts: &[(i64, u64)], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().map(|c| c.1).sum();
    if total == 0 {
        return None;
    }
    let h = (total - 1) as f64 * q;
    let (i, f) = (h.floor() as u64, h - h.floor());
    let at = |rank: u64| -> f64 {
        let mut seen = 0;
        for &(v, n) in counts {
            seen += n;
            if rank < seen {
                return v as f64;
            }
        }
        counts.last().map_or(f64::NAN, |c| c.0 as f64)
    };
    let lo = at(i);
    Some(if i + 1 < total { lo + f * (at(i + 1) - lo) } else { lo })
}

/// Per channel (`channel_of` maps a recorded channel id to one of `n` reported channels),
/// the lags of every touch of a converting journey to its conversion.
pub fn lag_counts(rec: &Recorded, channel_of: impl Fn(u32) -> usize, n: usize) -> Vec<ChannelLags> {
    let mut minutes = vec![std::collections::BTreeMap::<i64, u64>::new(); n];
    let mut touches = vec![std::collections::BTreeMap::<i64, u64>::new(); n];
    for i in 0..rec.len() {
        let r = rec.range(i);
        let end = r.end;
        for j in r {
            let c = channel_of(rec.channel[j]);
            *minutes[c].entry((rec.conversion_ts[i] - rec.ts[j]).div_euclid(LAG_UNIT_MICROS)).or_insert(0) +=
                1;
            *touches[c].entry((end - j) as i64).or_insert(0) += 1;
        }
    }
    minutes
        .into_iter()
        .zip(touches)
        .map(|(m, t)| ChannelLags { minutes: m.into_iter().collect(), touches: t.into_iter().collect() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::paths::PathRow;

    #[test]
    fn stages_follow_the_quarter_rule() {
        assert_eq!(stage(0, 1), 2);
        assert_eq!((stage(0, 2), stage(1, 2)), (0, 2));
        assert_eq!((stage(0, 3), stage(1, 3), stage(2, 3)), (0, 1, 2));
        assert_eq!((0..4).map(|i| stage(i, 4)).collect::<Vec<_>>(), [0, 1, 1, 2]);
        assert_eq!((0..8).map(|i| stage(i, 8)).collect::<Vec<_>>(), [0, 0, 1, 1, 1, 1, 2, 2]);
        assert_eq!((0..6).map(|i| stage(i, 6)).collect::<Vec<_>>(), [0, 0, 1, 1, 2, 2]);
    }

    /// a > b > c converts twice (value 10), b converts once alone (value 4), a > b ends
    /// without a conversion three times.
    #[test]
    fn roles_by_hand() {
        let pt = PathTable {
            channels: vec!["a".into(), "b".into(), "c".into()],
            rows: vec![
                PathRow { path: vec![0, 1, 2], conversions: 2.0, nulls: 0.0, value: 10.0 },
                PathRow { path: vec![1], conversions: 1.0, nulls: 0.0, value: 4.0 },
                PathRow { path: vec![0, 1], conversions: 0.0, nulls: 3.0, value: 0.0 },
            ],
        };
        let r = channel_roles(&pt);
        assert_eq!((r[0].journeys, r[0].converting_journeys, r[0].first, r[0].value), (5.0, 2.0, 2.0, 10.0));
        assert_eq!(
            (r[1].journeys, r[1].assist, r[1].only, r[1].last, r[1].dropoffs),
            (6.0, 2.0, 1.0, 0.0, 3.0)
        );
        assert_eq!((r[2].last, r[2].dropoffs), (2.0, 0.0));
        // Linear credit by stage: a > b > c gives 2/3 each to early a, mid b, late c; b alone
        // is late.
        assert_eq!((r[0].early, r[1].mid, r[2].late, r[1].late), (2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 1.0));
        let credit: f64 = r.iter().map(|x| x.early + x.mid + x.late).sum();
        assert!((credit - 3.0).abs() < 1e-12, "stage credit adds up to the conversions");
    }

    /// Journey 1: a (day 0) > b (day 2) > a (day 3), converting on day 4. Journey 2: a on
    /// day 10, converting on day 11. a's touches are 4, 1 and 1 days and 3, 1 and 1 touches
    /// from their conversions.
    #[test]
    fn time_and_touches_to_conversion_by_hand() {
        let day = crate::settings::DAY_MICROS;
        let rec = Recorded {
            user: vec![0, 1],
            seq: vec![1, 1],
            conversion_ts: vec![4 * day, 11 * day],
            conversion_row: vec![9, 9],
            value: vec![1.0, 1.0],
            offsets: vec![0, 3, 4],
            channel: vec![0, 1, 0, 0],
            ts: vec![0, 2 * day, 3 * day, 10 * day],
            row: vec![0, 1, 2, 3],
        };
        let q: Vec<Option<[f64; 4]>> =
            lag_counts(&rec, |c| c as usize, 3).iter().map(|l| l.quantiles()).collect();
        // a: days [4, 1, 1] → median 1, p90 1 + 0.8·3 = 3.4; touches [3, 1, 1] → 1 and 2.6.
        let a = q[0].unwrap();
        assert!((a[0] - 1.0).abs() < 1e-12 && (a[1] - 3.4).abs() < 1e-12, "{a:?}");
        assert!((a[2] - 1.0).abs() < 1e-12 && (a[3] - 2.6).abs() < 1e-12, "{a:?}");
        assert_eq!(q[1], Some([2.0, 2.0, 2.0, 2.0]));
        assert_eq!(q[2], None);
    }

    /// Counted quantiles equal the quantiles of the values, and the counts of two halves
    /// add up to the counts of the whole.
    #[test]
    fn counted_quantiles_equal_the_values_quantiles() {
        use crate::core::bootstrap::quantile;
        let values: Vec<i64> = (0..500).map(|i| (i * 7919 % 263) as i64 % 41).collect();
        let count = |v: &[i64]| {
            let mut m = std::collections::BTreeMap::new();
            v.iter().for_each(|&x| *m.entry(x).or_insert(0u64) += 1);
            m.into_iter().collect::<Vec<_>>()
        };
        let mut halves = ChannelLags { minutes: count(&values[..200]), touches: Vec::new() };
        halves.add(&ChannelLags { minutes: count(&values[200..]), touches: Vec::new() });
        assert_eq!(halves.minutes, count(&values));
        let xs: Vec<f64> = values.iter().map(|&x| x as f64).collect();
        for q in [0.0, 0.1, 0.5, 0.9, 0.97, 1.0] {
            let got = counted_quantile(&halves.minutes, q).unwrap();
            assert!((got - quantile(&xs, q)).abs() < 1e-12, "q {q}: {got} vs {}", quantile(&xs, q));
        }
        assert_eq!(counted_quantile(&[], 0.5), None);
    }
}
