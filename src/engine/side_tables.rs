//! Readers of the small side tables: aggregated path tables and spend.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use super::convert::cast_err;
use super::schema::type_problem;
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
fn read_side_table(file: &Path) -> Result<DataFrame> {
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

/// Read a spend file: `channel` (string) and `spend` (number ≥ 0) columns, Parquet or CSV (by
/// extension); rows of the same channel are summed.
pub fn load_spend(file: &Path) -> Result<BTreeMap<String, f64>> {
    if !file.is_file() {
        return Err(Error::NotFound { path: file.into(), problem: "no such spend file".into() });
    }
    let df = read_side_table(file)?;
    let col = |name: &str| {
        df.column(name)
            .map(|c| c.as_materialized_series())
            .map_err(|_| Error::bad_input(file, Some(name), "missing column"))
    };
    let ch = col("channel")?;
    let ch = ch.cast(&DataType::String).map_err(cast_err(file, "channel"))?;
    let ch = ch.str().map_err(cast_err(file, "channel"))?;
    let sp = col("spend")?;
    if !sp.dtype().is_primitive_numeric() && !matches!(sp.dtype(), DataType::Decimal(..)) {
        return Err(Error::bad_input(file, Some("spend"), type_problem(sp.dtype(), "a number")));
    }
    let sp = sp.cast(&DataType::Float64).map_err(cast_err(file, "spend"))?;
    let sp = sp.f64().map_err(cast_err(file, "spend"))?;
    let mut out = BTreeMap::new();
    for (i, (c, x)) in ch.iter().zip(sp.iter()).enumerate() {
        let c = c.ok_or_else(|| {
            Error::bad_input(file, Some("channel"), format!("null channel at row {i} (counted from 0)"))
        })?;
        let x = x.unwrap_or(0.0);
        if !x.is_finite() || x < 0.0 {
            return Err(Error::bad_input(
                file,
                Some("spend"),
                format!("spend must be finite and ≥ 0, found {x} (row {i}, counted from 0)"),
            ));
        }
        *out.entry(c.to_owned()).or_insert(0.0) += x;
    }
    Ok(out)
}
