//! Readers of the small side tables: aggregated path tables and spend.

use std::path::Path;

use polars::prelude::*;

use super::convert::cast_err;
use super::schema::type_problem;
use crate::core::spend::SpendRow;
use crate::error::{Error, Result};
use crate::settings::PathColumns;

/// One row of an aggregated path table: (path string, conversions, nulls, value).
pub type PathTableRow = (String, f64, f64, f64);

/// Read an aggregated path table (ChannelAttribution's input): Parquet, or CSV when the file
/// name ends in `.csv`. Returns (path, conversions, nulls, value) rows and the row count.
///
/// Counts and values must be finite and ≥ 0; fractional counts are kept exactly. A row with
/// value but no conversions is an error (value belongs to conversions).
pub fn load_paths(file: &Path, cols: &PathColumns) -> Result<(Vec<PathTableRow>, u64)> {
    if !file.is_file() {
        return Err(Error::NotFound { path: file.into(), problem: "no such file".into() });
    }
    let df = read_side_table(file)?;
    let n = df.height();
    if n == 0 {
        return Err(Error::bad_input(file, None, "the path table has no rows"));
    }
    let get = |name: &str| -> Result<&Series> {
        df.column(name).map(|c| c.as_materialized_series()).map_err(|_| {
            let mut available: Vec<&str> = df.get_column_names().into_iter().map(|s| s.as_str()).collect();
            available.sort();
            Error::bad_input(
                file,
                Some(name),
                format!("missing column (the file has: {})", available.join(", ")),
            )
        })
    };
    let path_s = get(&cols.path)?;
    let paths = path_s.str().map_err(|_| {
        Error::bad_input(file, Some(&cols.path), type_problem(path_s.dtype(), "a string path"))
    })?;
    let numbers = |name: Option<&String>| -> Result<Vec<f64>> {
        let Some(name) = name else { return Ok(vec![0.0; n]) };
        // The default `nulls` / `value` columns are optional: absent means 0.
        if (name == "nulls" || name == "value") && df.column(name).is_err() {
            return Ok(vec![0.0; n]);
        }
        let s = get(name)?;
        if !s.dtype().is_primitive_numeric() {
            return Err(Error::bad_input(file, Some(name), type_problem(s.dtype(), "a number")));
        }
        let f = s.cast(&DataType::Float64).map_err(cast_err(file, name))?;
        let ca = f.f64().map_err(cast_err(file, name))?;
        ca.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
                None => Ok(0.0),
                Some(x) => Err(Error::bad_input(
                    file,
                    Some(name),
                    format!("values must be finite and ≥ 0, found {x} (row {i}, counted from 0)"),
                )),
            })
            .collect()
    };
    let conv = numbers(Some(&cols.conversions))?;
    let nulls = numbers(cols.nulls.as_ref())?;
    let value = numbers(cols.value.as_ref())?;
    let mut rows = Vec::with_capacity(n);
    for (i, p) in paths.iter().enumerate() {
        if value[i] > 0.0 && conv[i] == 0.0 {
            return Err(Error::bad_input(
                file,
                cols.value.as_deref(),
                format!(
                    "row {i} (counted from 0) has value {} but no conversions; value belongs to conversions",
                    value[i]
                ),
            ));
        }
        rows.push((p.unwrap_or("").to_owned(), conv[i], nulls[i], value[i]));
    }
    Ok((rows, n as u64))
}

/// A whole side table: CSV when the name ends in `.csv` (types inferred from every row),
/// Parquet otherwise.
pub(super) fn read_side_table(file: &Path) -> Result<DataFrame> {
    let is_csv = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        return CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(None)
            .try_into_reader_with_file_path(Some(file.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(|e| Error::bad_input(file, None, format!("not a readable CSV file: {e}")));
    }
    if std::fs::metadata(file).map_err(|e| Error::io(file, e))?.len() == 0 {
        return Err(Error::bad_input(file, None, "the file is empty (0 bytes), not a Parquet file"));
    }
    let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    ParquetReader::new(f).finish().map_err(|e| Error::bad_input(file, None, super::schema::open_problem(&e)))
}

/// Read a spend file (`docs/models.md` § Spend): `channel` and `spend` (a number ≥ 0), and
/// optionally `date` (a date, a timestamp or a `YYYY-MM-DD` string; without it every row is
/// a total for the whole period), `campaign` and `currency` (one currency per file: touchpoint
/// does not convert). Parquet, or CSV by extension.
pub fn load_spend(file: &Path) -> Result<(Vec<SpendRow>, Option<String>)> {
    if !file.is_file() {
        return Err(Error::NotFound { path: file.into(), problem: "no such spend file".into() });
    }
    let df = read_side_table(file)?;
    let has = |name: &str| df.column(name).is_ok();
    let text = |name: &str| -> Result<Vec<Option<String>>> {
        let s = df.column(name).map_err(|_| Error::bad_input(file, Some(name), "missing column"))?;
        let s = s.as_materialized_series().cast(&DataType::String).map_err(cast_err(file, name))?;
        Ok(s.str().map_err(cast_err(file, name))?.iter().map(|v| v.map(str::to_owned)).collect())
    };
    let channel = text("channel")?;
    let amount = spend_amounts(&df, file)?;
    let campaign = if has("campaign") { Some(text("campaign")?) } else { None };
    let dates = if has("date") { Some(spend_dates(&df, file)?) } else { None };
    let currency = if has("currency") { one_currency(&text("currency")?, file)? } else { None };
    let mut rows = Vec::with_capacity(channel.len());
    for (i, (c, x)) in channel.into_iter().zip(amount).enumerate() {
        let c = c.ok_or_else(|| {
            Error::bad_input(file, Some("channel"), format!("null channel at row {i} (counted from 0)"))
        })?;
        let date = dates.as_ref().and_then(|d| d[i]);
        let campaign = campaign.as_ref().and_then(|k| k[i].clone());
        rows.push(SpendRow { date, channel: c, campaign, amount: x });
    }
    Ok((rows, currency))
}

/// The `spend` column: finite and ≥ 0; null is 0.
fn spend_amounts(df: &DataFrame, file: &Path) -> Result<Vec<f64>> {
    let sp = df
        .column("spend")
        .map_err(|_| Error::bad_input(file, Some("spend"), "missing column"))?
        .as_materialized_series();
    if !sp.dtype().is_primitive_numeric() && !matches!(sp.dtype(), DataType::Decimal(..)) {
        return Err(Error::bad_input(file, Some("spend"), type_problem(sp.dtype(), "a number")));
    }
    let sp = sp.cast(&DataType::Float64).map_err(cast_err(file, "spend"))?;
    let sp = sp.f64().map_err(cast_err(file, "spend"))?;
    sp.iter()
        .enumerate()
        .map(|(i, x)| match x.unwrap_or(0.0) {
            x if x.is_finite() && x >= 0.0 => Ok(x),
            x => Err(Error::bad_input(
                file,
                Some("spend"),
                format!("spend must be finite and ≥ 0, found {x} (row {i}, counted from 0)"),
            )),
        })
        .collect()
}

/// The `date` column as dates: a date, a timestamp (its UTC day) or a `YYYY-MM-DD` string.
fn spend_dates(df: &DataFrame, file: &Path) -> Result<Vec<Option<chrono::NaiveDate>>> {
    let s = df.column("date").map_err(|_| Error::bad_input(file, Some("date"), "missing column"))?;
    let s = s.as_materialized_series();
    let epoch = chrono::NaiveDate::default();
    match s.dtype() {
        DataType::Date | DataType::Datetime(..) => {
            let d = s.cast(&DataType::Date).map_err(cast_err(file, "date"))?;
            let phys = d.to_physical_repr();
            let ca = phys.i32().map_err(cast_err(file, "date"))?;
            Ok(ca.iter().map(|v| v.map(|x| epoch + chrono::Duration::days(x as i64))).collect())
        }
        DataType::String => {
            let ca = s.str().map_err(cast_err(file, "date"))?;
            ca.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    None => Ok(None),
                    Some(t) => {
                        chrono::NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d").map(Some).map_err(|_| {
                            Error::bad_input(
                                file,
                                Some("date"),
                                format!("`{t}` at row {i} (counted from 0) is not a date like 2024-01-31"),
                            )
                        })
                    }
                })
                .collect()
        }
        d => Err(Error::bad_input(
            file,
            Some("date"),
            type_problem(d, "a date, a timestamp or a YYYY-MM-DD string"),
        )),
    }
}

/// The one currency of a spend file (touchpoint does not convert between currencies).
fn one_currency(values: &[Option<String>], file: &Path) -> Result<Option<String>> {
    let mut seen: Vec<&str> = values.iter().flatten().map(String::as_str).collect();
    seen.sort_unstable();
    seen.dedup();
    match seen[..] {
        [] => Ok(None),
        [one] => Ok(Some(one.to_owned())),
        _ => Err(Error::bad_input(
            file,
            Some("currency"),
            format!("spend in several currencies ({}); convert them to one first", seen.join(", ")),
        )),
    }
}

/// Read a lift-experiments file (`input.experiments`, `docs/models.md` § Calibration): one
/// row per experiment, its target in `channel` or `group` (exactly one per row), and
/// `incremental_conversions` (finite), `standard_error` (> 0) and `conversions` (> 0, all
/// conversions of the tested population over the test). Other columns (`name`, `start`,
/// `end`, `spend`) are the user's notes and are not read. Parquet, or CSV by extension.
pub fn load_experiments(file: &Path) -> Result<Vec<crate::core::calibration::Experiment>> {
    use crate::core::calibration::{Experiment, Target};
    if !file.is_file() {
        return Err(Error::NotFound { path: file.into(), problem: "no such experiments file".into() });
    }
    let df = read_side_table(file)?;
    if df.height() == 0 {
        return Err(Error::bad_input(file, None, "the experiments file has no rows"));
    }
    let (channel, group) = (target_column(&df, file, "channel")?, target_column(&df, file, "group")?);
    if channel.is_none() && group.is_none() {
        let what = "missing column (or `group`): what each experiment tested";
        return Err(Error::bad_input(file, Some("channel"), what));
    }
    let incremental =
        numbers(&df, file, "incremental_conversions", f64::is_finite, "must be a finite number")?;
    let positive = |x: f64| x.is_finite() && x > 0.0;
    let se = numbers(&df, file, "standard_error", positive, "must be a finite number > 0")?;
    let conversions = numbers(&df, file, "conversions", positive, "must be a finite number > 0")?;
    check_lifts(file, &incremental, &se, &conversions)?;
    let at = |col: &Option<Vec<Option<String>>>, i: usize| col.as_ref().and_then(|c| c[i].clone());
    (0..df.height())
        .map(|i| {
            let target = match (at(&channel, i), at(&group, i)) {
                (Some(c), None) => Target::Channel(c),
                (None, Some(g)) => Target::Group(g),
                _ => {
                    let what =
                        format!("row {i} (counted from 0) must name exactly one of `channel` and `group`");
                    return Err(Error::bad_input(file, Some("channel"), what));
                }
            };
            let (incremental, standard_error, conversions) = (incremental[i], se[i], conversions[i]);
            Ok(Experiment { target, incremental, standard_error, conversions })
        })
        .collect()
}

/// A target column as trimmed text, None where a cell is blank (a quoted empty string or
/// spaces, as spreadsheets export them); None when the file has no such column.
fn target_column(df: &DataFrame, file: &Path, name: &str) -> Result<Option<Vec<Option<String>>>> {
    let Ok(s) = df.column(name) else { return Ok(None) };
    let s = s.as_materialized_series().cast(&DataType::String).map_err(cast_err(file, name))?;
    let ca = s.str().map_err(cast_err(file, name))?;
    Ok(Some(ca.iter().map(|v| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)).collect()))
}

/// A numeric column whose every value passes `ok` (else the row is named with `rule`).
fn numbers(df: &DataFrame, file: &Path, name: &str, ok: fn(f64) -> bool, rule: &str) -> Result<Vec<f64>> {
    let s = df.column(name).map_err(|_| Error::bad_input(file, Some(name), "missing column"))?;
    let s = s.as_materialized_series();
    if !s.dtype().is_primitive_numeric() && !matches!(s.dtype(), DataType::Decimal(..)) {
        return Err(Error::bad_input(file, Some(name), type_problem(s.dtype(), "a number")));
    }
    let s = s.cast(&DataType::Float64).map_err(cast_err(file, name))?;
    let ca = s.f64().map_err(cast_err(file, name))?;
    ca.iter()
        .enumerate()
        .map(|(i, x)| match x {
            Some(x) if ok(x) => Ok(x),
            x => {
                let found = x.map_or("null".into(), |x| x.to_string());
                let what = format!("{rule}, found {found} at row {i} (counted from 0)");
                Err(Error::bad_input(file, Some(name), what))
            }
        })
        .collect()
}

/// A lift is a share of conversions: beyond ±1, or with a standard error above 1 or below
/// 1e-9 of them, it is a typo (and would overflow the pooling weights).
fn check_lifts(file: &Path, incremental: &[f64], se: &[f64], conversions: &[f64]) -> Result<()> {
    for (i, ((&x, &e), &n)) in incremental.iter().zip(se).zip(conversions).enumerate() {
        if x.abs() > n || e > n || e < 1e-9 * n {
            let what = format!(
                "row {i} (counted from 0): incremental_conversions {x} and standard_error {e} must lie within the {n} conversions of the tested population (a standard error of at least 1e-9 of them)"
            );
            return Err(Error::bad_input(file, Some("incremental_conversions"), what));
        }
    }
    Ok(())
}
