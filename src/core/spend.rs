//! Spend (`docs/models.md` § Spend): rows of (date, channel, campaign, amount), summed over
//! the period a run's conversions are compared with.

use std::collections::BTreeMap;

/// One row of a spend file.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRow {
    /// The day the money was spent (None: an undated total, counted in every period).
    pub date: Option<chrono::NaiveDate>,
    /// Channel.
    pub channel: String,
    /// Campaign, when the file has one.
    pub campaign: Option<String>,
    /// Amount, ≥ 0, in the file's currency.
    pub amount: f64,
}

/// Spend summed per channel and per (channel, campaign) over a period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpendTotals {
    /// Per channel.
    pub channel: BTreeMap<String, f64>,
    /// Per (channel, campaign), for rows that name a campaign.
    pub campaign: BTreeMap<(String, String), f64>,
    /// The currency of the amounts, when the file says.
    pub currency: Option<String>,
}

/// Sum the rows dated inside `[first, last]` (inclusive; None: every row). Undated rows are
/// totals and always count. Sums run in file order.
pub fn totals(
    rows: &[SpendRow],
    period: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    currency: Option<String>,
) -> SpendTotals {
    let mut t = SpendTotals { currency, ..SpendTotals::default() };
    for r in rows {
        let inside = match (r.date, period) {
            (Some(d), Some((a, b))) => d >= a && d <= b,
            _ => true,
        };
        if !inside {
            continue;
        }
        *t.channel.entry(r.channel.clone()).or_insert(0.0) += r.amount;
        if let Some(c) = &r.campaign {
            *t.campaign.entry((r.channel.clone(), c.clone())).or_insert(0.0) += r.amount;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> chrono::NaiveDate {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_period_keeps_the_rows_dated_inside_it_and_every_undated_total() {
        let row = |date: Option<&str>, ch: &str, camp: Option<&str>, amount: f64| SpendRow {
            date: date.map(d),
            channel: ch.into(),
            campaign: camp.map(Into::into),
            amount,
        };
        let rows = vec![
            row(Some("2024-02-09"), "search", Some("brand"), 100.0),
            row(Some("2024-02-10"), "search", Some("brand"), 10.0),
            row(Some("2024-02-10"), "search", Some("generic"), 20.0),
            row(Some("2024-02-11"), "social", None, 40.0),
            row(None, "email", None, 5.0),
        ];
        let t = totals(&rows, Some((d("2024-02-10"), d("2024-02-10"))), None);
        assert_eq!(t.channel, BTreeMap::from([("search".into(), 30.0), ("email".into(), 5.0)]));
        assert_eq!(t.campaign[&("search".into(), "brand".into())], 10.0);
        let all = totals(&rows, None, Some("EUR".into()));
        assert_eq!(all.channel["search"], 130.0);
        assert_eq!(all.currency.as_deref(), Some("EUR"));
    }
}
