//! Channel roles (`docs/models.md` § Channel roles): which channels open journeys, which
//! assist, which close them, and where non-converting journeys end — counted on the path
//! table, so every number is a sum over journeys.

use crate::core::bootstrap::quantile;
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

/// Median and 90th percentile of the days and of the touches from a channel's touches to
/// the conversion they led to: `[days p50, days p90, touches p50, touches p90]` per channel
/// (`channel_of` maps a recorded channel id to the reported one; None: no such touch).
/// Every touch of a converting journey counts once; touches are counted to the conversion
/// inclusive (the last touch is 1); days are fractional. Quantiles interpolate (type 7).
pub fn time_to_conversion(
    rec: &Recorded,
    channel_of: impl Fn(u32) -> usize,
    n: usize,
) -> Vec<Option<[f64; 4]>> {
    let (mut days, mut touches) = (vec![Vec::new(); n], vec![Vec::new(); n]);
    for i in 0..rec.len() {
        let r = rec.range(i);
        let end = r.end;
        for j in r {
            let c = channel_of(rec.channel[j]);
            days[c].push((rec.conversion_ts[i] - rec.ts[j]) as f64 / 86_400_000_000.0);
            touches[c].push((end - j) as f64);
        }
    }
    days.iter()
        .zip(&touches)
        .map(|(d, t)| {
            (!d.is_empty()).then(|| [quantile(d, 0.5), quantile(d, 0.9), quantile(t, 0.5), quantile(t, 0.9)])
        })
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
        let day = 86_400_000_000i64;
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
        let q = time_to_conversion(&rec, |c| c as usize, 3);
        // a: days [4, 1, 1] → median 1, p90 1 + 0.8·3 = 3.4; touches [3, 1, 1] → 1 and 2.6.
        let a = q[0].unwrap();
        assert!((a[0] - 1.0).abs() < 1e-12 && (a[1] - 3.4).abs() < 1e-12, "{a:?}");
        assert!((a[2] - 1.0).abs() < 1e-12 && (a[3] - 2.6).abs() < 1e-12, "{a:?}");
        assert_eq!(q[1], Some([2.0, 2.0, 2.0, 2.0]));
        assert_eq!(q[2], None);
    }
}
