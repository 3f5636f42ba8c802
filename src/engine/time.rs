//! The one conversion of a time column into touchpoint's time (`docs/models.md` § Input):
//! `i64` µs since the Unix epoch, UTC. Files read directly, Arrow streams, staged sources
//! and the identity map's bounds all go through [`micros_expr`], so a unit is converted in
//! one place whichever way the rows arrive.

use std::path::Path;

use polars::prelude::*;

use super::schema::type_problem;
use crate::error::{Error, Result};
use crate::settings::DAY_MICROS;

/// A value in `unit` is `value * mul / div` µs (floored: a time before 1970 in ns rounds
/// down, never toward zero, so every instant of a µs falls in that µs).
fn per_unit(unit: TimeUnit) -> (i64, i64) {
    match unit {
        TimeUnit::Nanoseconds => (1, 1000),
        TimeUnit::Microseconds => (1, 1),
        TimeUnit::Milliseconds => (1000, 1),
    }
}

/// A time column as µs since the epoch (Int64, UTC): timestamps of any unit (zoned ones
/// are instants, naive ones UTC), dates (midnight UTC), ISO-8601 strings parsed strictly
/// (without an offset they are UTC; an unparseable one fails the read, see
/// [`super::schema::read_problem`]). Other types are bad input naming `file` and `name`.
pub(super) fn micros_expr(name: &str, dt: &DataType, file: &Path) -> Result<Expr> {
    let c = col(name);
    Ok(match dt {
        DataType::Datetime(unit, _) => {
            let (mul, div) = per_unit(*unit);
            let raw = c.to_physical().cast(DataType::Int64);
            match (mul, div) {
                (1, 1) => raw,
                // Floored without Polars' `floor_div` (a feature not compiled in): the
                // remainder made non-negative whatever sign `%` gives, then an exact division.
                (1, d) => (raw.clone() - (raw % lit(d) + lit(d)) % lit(d)) / lit(d),
                (m, _) => raw * lit(m),
            }
        }
        DataType::Date => c.to_physical().cast(DataType::Int64) * lit(DAY_MICROS),
        DataType::String => {
            let opts = StrptimeOptions { strict: true, ..Default::default() };
            c.str()
                .to_datetime(Some(TimeUnit::Microseconds), Some(TimeZone::UTC), opts, lit("raise"))
                .to_physical()
                .cast(DataType::Int64)
        }
        d => {
            let problem = type_problem(d, "a timestamp, a date or an ISO-8601 string");
            return Err(Error::bad_input(file, Some(name), problem));
        }
    })
}

/// The instant `us` (µs, UTC) as a literal of the column's own type, so a range filter on
/// the column stays pushable to row-group statistics (the inverse of [`micros_expr`]).
pub(super) fn bound_expr(us: i64, dt: &DataType) -> Expr {
    match dt {
        DataType::Datetime(unit, tz) => {
            let (mul, div) = per_unit(*unit);
            lit(us.saturating_mul(div).div_euclid(mul)).cast(DataType::Datetime(*unit, tz.clone()))
        }
        DataType::Date => lit(us.div_euclid(DAY_MICROS) as i32).cast(DataType::Date),
        _ => lit(us).cast(DataType::Datetime(TimeUnit::Microseconds, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(s: Series) -> Vec<Option<i64>> {
        let dt = s.dtype().clone();
        let df = DataFrame::new_infer_height(vec![s.with_name("t".into()).into()]).unwrap();
        let e = micros_expr("t", &dt, Path::new("f.parquet")).unwrap();
        let out = df.lazy().select([e]).collect().unwrap();
        out.columns()[0].as_materialized_series().i64().unwrap().iter().collect()
    }

    /// One instant (2023-11-14T22:13:20.123456Z = 1_700_000_000_123_456 µs) in every unit,
    /// and one before 1970 in ns, floored to the µs that holds it.
    #[test]
    fn every_unit_becomes_the_same_micros() {
        let at = |v: i64, u: TimeUnit| {
            Series::new("t".into(), [Some(v), None]).cast(&DataType::Datetime(u, None)).unwrap()
        };
        let want = vec![Some(1_700_000_000_123_456), None];
        assert_eq!(micros(at(1_700_000_000_123_456_789, TimeUnit::Nanoseconds)), want);
        assert_eq!(micros(at(1_700_000_000_123_456, TimeUnit::Microseconds)), want);
        let ms = micros(at(1_700_000_000_123, TimeUnit::Milliseconds));
        assert_eq!(ms, vec![Some(1_700_000_000_123_000), None]);
        assert_eq!(micros(at(-1, TimeUnit::Nanoseconds))[0], Some(-1));
        let zoned = Series::new("t".into(), [1_700_000_000_123_456i64])
            .cast(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))
            .unwrap();
        assert_eq!(micros(zoned)[0], Some(1_700_000_000_123_456));
        let date = Series::new("t".into(), [1i32]).cast(&DataType::Date).unwrap();
        assert_eq!(micros(date)[0], Some(DAY_MICROS));
        for iso in
            ["2023-11-14T22:13:20.123456Z", "2023-11-14T22:13:20.123456", "2023-11-14T23:13:20.123456+01:00"]
        {
            assert_eq!(micros(Series::new("t".into(), [iso])), vec![Some(1_700_000_000_123_456)], "{iso}");
        }
    }

    #[test]
    fn bounds_are_the_inverse_in_the_column_unit() {
        let ns = DataType::Datetime(TimeUnit::Nanoseconds, None);
        let ms = DataType::Datetime(TimeUnit::Milliseconds, None);
        let value = |e: Expr| {
            let df = DataFrame::empty().lazy().select([e.to_physical().cast(DataType::Int64)]);
            df.collect().unwrap().columns()[0].as_materialized_series().i64().unwrap().get(0)
        };
        assert_eq!(value(bound_expr(1_500, &ns)), Some(1_500_000));
        assert_eq!(value(bound_expr(1_500, &ms)), Some(1));
        assert_eq!(value(bound_expr(-1_500, &ms)), Some(-2));
        assert_eq!(value(bound_expr(DAY_MICROS + 1, &DataType::Date)), Some(1));
    }
}
