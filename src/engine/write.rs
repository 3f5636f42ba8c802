//! Writing tables (Parquet with zstd, or CSV) and reading back the partial path tables of
//! shard runs. The encoding of a [`Table`] is decided here and only here.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use polars::prelude::*;

use crate::core::replicates::{Kind as StatKind, NamedSums};
use crate::core::roles::ChannelLags;
use crate::core::table::{Table, Values};
use crate::error::{Error, Result};
use crate::settings::Format;

fn io_err(path: &Path) -> impl Fn(PolarsError) -> Error + '_ {
    move |e| Error::io(path, std::io::Error::other(e))
}

fn internal(e: PolarsError) -> Error {
    Error::dependency("building a table", e)
}

/// A table as a Polars frame (types chosen once, here).
pub fn to_frame(t: &Table) -> Result<DataFrame> {
    let mut cols = Vec::with_capacity(t.columns.len());
    for (name, v) in &t.columns {
        let name: PlSmallStr = (*name).into();
        let c: Column = match v {
            Values::Str(v) => Column::new(name, v),
            Values::OptStr(v) => Column::new(name, v),
            Values::F64(v) => Column::new(name, v),
            Values::OptF64(v) => Column::new(name, v),
            Values::U32(v) => Column::new(name, v),
            Values::OptU32(v) => Column::new(name, v),
            Values::U64(v) => Column::new(name, v),
            Values::Bool(v) => Column::new(name, v),
            Values::OptBool(v) => Column::new(name, v),
            Values::Date(v) => Series::new(name, v).cast(&DataType::Date).map_err(internal)?.into(),
            Values::TimestampUs(v) => Series::new(name, v)
                .cast(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))
                .map_err(internal)?
                .into(),
            Values::F64Lists(v) => {
                let values = v.iter().map(Vec::len).sum();
                let mut b =
                    ListPrimitiveChunkedBuilder::<Float64Type>::new(name, v.len(), values, DataType::Float64);
                for list in v {
                    b.append_opt_slice(Some(list.as_slice()).filter(|l| !l.is_empty()));
                }
                b.finish().into_column()
            }
        };
        cols.push(c);
    }
    DataFrame::new_infer_height(cols).map_err(internal)
}

/// Write one table to `path` in `format`, synced to disk.
pub fn write_table(t: &Table, path: &Path, format: Format) -> Result<()> {
    let mut df = to_frame(t)?;
    write_frame(&mut df, path, format)
}

/// A table to publish: one held in memory, or one written by its own writer (the bounded
/// merge's sorted `path_summary`, too large to hold).
pub trait TableSource {
    /// The table's name, also its file stem.
    fn name(&self) -> &'static str;
    /// Write the table to `path` in `format`, synced to disk; the number of rows.
    fn write_to(&self, path: &Path, format: Format) -> Result<usize>;
}

impl TableSource for Table {
    fn name(&self) -> &'static str {
        self.name
    }

    fn write_to(&self, path: &Path, format: Format) -> Result<usize> {
        write_table(self, path, format)?;
        Ok(self.height())
    }
}

/// Write a frame to `path` in `format`, synced to disk.
pub fn write_frame(df: &mut DataFrame, path: &Path, format: Format) -> Result<()> {
    let t = std::time::Instant::now();
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(file);
    match format {
        Format::Parquet => {
            ParquetWriter::new(&mut w)
                .with_compression(ParquetCompression::Zstd(None))
                .finish(df)
                .map_err(io_err(path))?;
        }
        Format::Csv => {
            CsvWriter::new(&mut w).include_header(true).finish(df).map_err(io_err(path))?;
        }
    }
    let file = w.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(path, e))?;
    tracing::debug!(file = %path.display(), rows = df.height(), ms = t.elapsed().as_millis(), "wrote table");
    Ok(())
}

/// The rows of a partial path table: (path string, conversions, nulls, value).
pub type PartialRows = (Vec<String>, Vec<f64>, Vec<f64>, Vec<f64>);

/// Read a partial path table written by a shard run.
pub fn read_partial_paths(path: &Path) -> Result<PartialRows> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| Error::bad_input(path, None, format!("cannot read the partial path table: {e}")))?;
    partial_rows(path, &df)
}

/// Rows `offset..offset + len` of a partial path table: the bounded-memory merge reads each
/// partial a block at a time (the scan skips the row groups outside the block).
pub fn read_partial_block(path: &Path, offset: u64, len: u64) -> Result<PartialRows> {
    let p = path.to_string_lossy().into_owned();
    let df = LazyFrame::scan_parquet(PlRefPath::new(p.as_str()), ScanArgsParquet::default())
        .and_then(|lf| lf.slice(offset as i64, len as IdxSize).collect())
        .map_err(|e| Error::bad_input(path, None, format!("cannot read the partial path table: {e}")))?;
    partial_rows(path, &df)
}

/// The number of rows of a Parquet file (from its footer).
pub fn parquet_rows(path: &Path) -> Result<u64> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = ParquetReader::new(file);
    let rows = reader.num_rows().map_err(|e| Error::bad_input(path, None, format!("not Parquet: {e}")))?;
    Ok(rows as u64)
}

/// Read the replicate statistics a shard run wrote (`partial_replicates.parquet`).
pub fn read_partial_replicates(path: &Path) -> Result<Vec<NamedSums>> {
    replicate_rows(path, &read_whole(path, "the replicate statistics")?)
}

/// A partial's table, read whole (`what` names it in errors).
fn read_whole(path: &Path, what: &str) -> Result<DataFrame> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetReader::new(file)
        .finish()
        .map_err(|e| Error::bad_input(path, None, format!("cannot read {what}: {e}")))
}

/// The typed columns of a partial's table, each error blamed on the file and the column.
struct Cols<'a> {
    df: &'a DataFrame,
    path: &'a Path,
    what: &'a str,
}

impl Cols<'_> {
    fn err(&self, c: &str, e: impl std::fmt::Display) -> Error {
        Error::bad_input(self.path, Some(c), format!("bad {}: {e}", self.what))
    }

    fn text(&self, c: &str) -> Result<Vec<String>> {
        let col = self.df.column(c).map_err(|e| self.err(c, e))?.str().map_err(|e| self.err(c, e))?;
        Ok(col.iter().map(|v| v.unwrap_or_default().to_owned()).collect())
    }

    /// A column of lists of numbers without nulls inside a list (a null list: empty).
    fn lists(&self, c: &str) -> Result<Vec<Vec<f64>>> {
        let ty = DataType::List(Box::new(DataType::Float64));
        let col = self.df.column(c).map_err(|e| self.err(c, e))?.cast(&ty).map_err(|e| self.err(c, e))?;
        let ca = col.list().map_err(|e| self.err(c, e))?;
        let mut out = Vec::with_capacity(ca.len());
        for list in ca.amortized_iter() {
            let Some(list) = list else {
                out.push(Vec::new());
                continue;
            };
            let x = list.as_ref().f64().map_err(|e| self.err(c, e))?;
            if x.null_count() > 0 {
                return Err(self.err(c, "a null inside a list"));
            }
            out.push(x.into_no_null_iter().collect());
        }
        Ok(out)
    }

    /// A column of numbers without nulls, as `ty`.
    fn numbers<T: PolarsNumericType>(&self, c: &str, ty: DataType) -> Result<Vec<T::Native>> {
        let col = self.df.column(c).map_err(|e| self.err(c, e))?.cast(&ty).map_err(|e| self.err(c, e))?;
        let ca = col.as_materialized_series().unpack::<T>().map_err(|e| self.err(c, e))?.clone();
        if ca.null_count() > 0 {
            return Err(self.err(c, "nulls"));
        }
        Ok(ca.into_no_null_iter().collect())
    }
}

/// The named replicate statistics in a frame (a partial's file, or a stream of summed
/// rows); `path` names it in errors. A number column is a list per row, one value per
/// replicate (null: zero in every replicate).
pub(crate) fn replicate_rows(path: &Path, df: &DataFrame) -> Result<Vec<NamedSums>> {
    use crate::core::replicates::{KEYS, NUMBERS};
    let cols = Cols { df, path, what: "replicate statistics" };
    if df.column("replicate").is_ok() {
        let why = "a row per replicate is an older touchpoint's format; rerun the shards with this version";
        return Err(Error::bad_input(path, Some("replicate"), why));
    }
    let [kind, model, from, to] = KEYS.map(|k| cols.text(k));
    let (kind, model, from, to) = (kind?, model?, from?, to?);
    let [c, n, v] = NUMBERS.map(|c| cols.lists(c));
    let mut numbers = [c?.into_iter(), n?.into_iter(), v?.into_iter()];
    let mut out = Vec::with_capacity(df.height());
    for (i, (((kind, model), from), to)) in kind.iter().zip(model).zip(from).zip(to).enumerate() {
        let k = StatKind::parse(kind)
            .ok_or_else(|| Error::bad_input(path, Some("kind"), format!("row {i}: unknown kind")))?;
        let numbers = numbers.each_mut().map(|it| it.next().unwrap_or_default());
        out.push(NamedSums { kind: k, model, from, to, numbers });
    }
    Ok(out)
}

/// Read the counted lags to conversion a shard run wrote (`partial_lags.parquet`), by channel.
pub fn read_partial_lags(path: &Path) -> Result<Vec<(String, ChannelLags)>> {
    let df = read_whole(path, "the lags")?;
    let cols = Cols { df: &df, path, what: "lags" };
    let num = |c: &str| cols.numbers::<UInt64Type>(c, DataType::UInt64);
    let (channel, measure) = (cols.text("channel")?, cols.text("measure")?);
    let (value, count) = (num("value")?, num("count")?);
    let mut out: Vec<(String, ChannelLags)> = Vec::new();
    for i in 0..df.height() {
        if out.last().is_none_or(|(c, _)| *c != channel[i]) {
            out.push((channel[i].clone(), ChannelLags::default()));
        }
        let l = &mut out.last_mut().expect("pushed above").1;
        let entry = (value[i] as i64, count[i]);
        match measure[i].as_str() {
            "minutes" => l.minutes.push(entry),
            "touches" => l.touches.push(entry),
            _ => return Err(Error::bad_input(path, Some("measure"), format!("row {i}: unknown measure"))),
        }
    }
    Ok(out)
}

/// The rows of a partial path table already in a frame; `path` names it in errors.
pub(crate) fn partial_rows(path: &Path, df: &DataFrame) -> Result<PartialRows> {
    let err = |e: PolarsError| Error::bad_input(path, None, format!("bad partial path table: {e}"));
    let paths: Vec<String> = df
        .column("path")
        .map_err(err)?
        .str()
        .map_err(err)?
        .iter()
        .map(|p| p.unwrap_or_default().to_owned())
        .collect();
    let num = |name: &str| -> Result<Vec<f64>> {
        let c = df.column(name).map_err(err)?.f64().map_err(err)?;
        if c.null_count() > 0 {
            return Err(Error::bad_input(path, Some(name), "nulls in a partial path table"));
        }
        Ok(c.into_no_null_iter().collect())
    };
    Ok((paths, num("conversions")?, num("nulls")?, num("value")?))
}

/// Read back a table this engine wrote (a shard's `partial_journey_credit`), its columns
/// named from `known` (a column not listed is refused: not a file of ours). Text columns
/// with nulls come back as [`Values::OptStr`], without as [`Values::Str`]; both write alike.
pub fn read_table(path: &Path, name: &'static str, known: &[&'static str]) -> Result<Table> {
    table_of(&read_whole(path, name)?, path, name, known)
}

/// A frame of one of our tables as a [`Table`] (see [`read_table`]); `path` names where it
/// came from in errors.
pub(crate) fn table_of(
    df: &DataFrame,
    path: &Path,
    name: &'static str,
    known: &[&'static str],
) -> Result<Table> {
    let mut columns = Vec::with_capacity(df.width());
    for c in df.columns() {
        let col = known.iter().copied().find(|k| *k == c.name().as_str()).ok_or_else(|| {
            Error::bad_input(path, Some(c.name().as_str()), format!("not a column of {name}"))
        })?;
        let bad = |e: PolarsError| Error::bad_input(path, Some(col), format!("cannot read {name}: {e}"));
        let s = c.as_materialized_series();
        let values = match s.dtype() {
            DataType::String if s.null_count() > 0 => {
                Values::OptStr(s.str().map_err(bad)?.iter().map(|v| v.map(str::to_owned)).collect())
            }
            DataType::String => {
                Values::Str(s.str().map_err(bad)?.iter().map(|v| v.unwrap_or_default().to_owned()).collect())
            }
            DataType::Null => Values::OptStr(vec![None; s.len()]),
            DataType::Float64 => {
                Values::F64(s.f64().map_err(bad)?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
            }
            DataType::UInt32 => Values::U32(s.u32().map_err(bad)?.iter().map(|v| v.unwrap_or(0)).collect()),
            DataType::UInt64 => Values::U64(s.u64().map_err(bad)?.iter().map(|v| v.unwrap_or(0)).collect()),
            DataType::Datetime(TimeUnit::Microseconds, _) => {
                let p = s.to_physical_repr();
                Values::TimestampUs(p.i64().map_err(bad)?.iter().map(|v| v.unwrap_or(0)).collect())
            }
            other => {
                return Err(Error::bad_input(path, Some(col), format!("unexpected type {other} in {name}")))
            }
        };
        if !matches!(values, Values::OptStr(_) | Values::Str(_)) && s.null_count() > 0 {
            return Err(Error::bad_input(path, Some(col), format!("nulls in {name}")));
        }
        columns.push((col, values));
    }
    Ok(Table::new(name, columns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::replicates::{Kind, NamedSums};

    /// Replicate statistics round-trip through their Parquet encoding (lists; an unused
    /// number is null, read back as an empty list), and the format of a row per replicate
    /// (partial format 2) is refused by name.
    #[test]
    fn replicate_statistics_round_trip_and_the_old_format_is_refused() {
        let row = |kind, numbers| NamedSums {
            kind,
            model: "linear".into(),
            from: "a".into(),
            to: String::new(),
            numbers,
        };
        let rows = vec![
            row(Kind::Credit, [vec![1.0, 2.5], Vec::new(), vec![10.0, 0.0]]),
            row(Kind::Total, [vec![3.0, 4.0], vec![1.0, 0.0], vec![7.0, 8.0]]),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.parquet");
        let text = |f: fn(&NamedSums) -> String| Values::Str(rows.iter().map(f).collect());
        let lists = |i: usize| Values::F64Lists(rows.iter().map(|r| r.numbers[i].clone()).collect());
        let table = Table::new(
            "partial_replicates",
            vec![
                ("kind", text(|r| r.kind.name().into())),
                ("model", text(|r| r.model.clone())),
                ("from", text(|r| r.from.clone())),
                ("to", text(|r| r.to.clone())),
                ("conversions", lists(0)),
                ("nulls", lists(1)),
                ("value", lists(2)),
            ],
        );
        write_table(&table, &path, Format::Parquet).unwrap();
        assert_eq!(read_partial_replicates(&path).unwrap(), rows);
        let old =
            df!("replicate" => [0u32], "kind" => ["total"], "model" => [""], "from" => [""], "to" => [""],
            "conversions" => [1.0], "nulls" => [0.0], "value" => [0.0])
            .unwrap();
        let e = replicate_rows(&path, &old).unwrap_err().to_string();
        assert!(e.contains("rerun the shards") && e.contains("replicate"), "{e}");
    }
}
