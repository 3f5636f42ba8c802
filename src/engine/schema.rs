//! Schema checks: every mapped column of every file exists with an accepted type, checked
//! from the footers before any data is read.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::discover::{scoped_inputs, ReadScope};
use super::read::ChannelSource;
use crate::core::event_log::InputFile;
use crate::error::{Error, Result};
use crate::settings::{ChannelRules, Columns};

/// The kind of the user column, which must agree across files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UserKind {
    Str,
    Int,
}

impl UserKind {
    pub(super) fn describe(self) -> &'static str {
        match self {
            UserKind::Str => "string",
            UserKind::Int => "integer",
        }
    }
}

/// How tie-breaker values are ordered: one kind across all files, or the order of two
/// files' rows would compare unlike values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TieKind {
    /// Strings, in byte order.
    Str,
    /// Floats, in numeric order.
    Float,
    /// Integers, booleans and temporal values, by their integer representation.
    Int,
}

impl TieKind {
    pub(super) fn describe(self) -> &'static str {
        match self {
            TieKind::Str => "string",
            TieKind::Float => "float",
            TieKind::Int => "integer, boolean or temporal",
        }
    }
}

/// The kind of the conversion marker column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MarkerKind {
    Str,
    Bool,
    Int,
}

/// The kind of the time column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimeKind {
    Datetime,
    Date,
    Str,
}

/// What the schema check learned about one file.
pub(super) struct FilePlan {
    pub(super) path: PathBuf,
    pub(super) rows: u64,
    pub(super) user: UserKind,
    /// An integer user id of at most 32 bits (Spark's `INT`: shards hash 4 bytes).
    pub(super) user_int32: bool,
    pub(super) time: TimeKind,
    pub(super) time_dtype: DataType,
    pub(super) marker: MarkerKind,
    /// The tie-breaker's kind (none without a tie-breaker, or for one of type null: its
    /// values are all null, so it has no order to agree on).
    pub(super) tie: Option<TieKind>,
    /// The data itself, when the input is a staged frame rather than a file.
    pub(super) frame: Option<DataFrame>,
}

/// Check the schemas of the files a scope needs, without reading any data.
pub fn validate_inputs(
    spec: &str,
    (cols, rules): (&Columns, &ChannelRules),
    scope: &ReadScope,
) -> Result<Vec<InputFile>> {
    let files = scoped_inputs(spec, scope)?;
    let rules = rules.enabled().then(|| super::channel_rules::RuleSet::compile(rules)).transpose()?;
    let chan_src = ChannelSource { rules, own: false };
    files
        .iter()
        .map(|f| check_schema(f, cols, &chan_src).map(|p| InputFile { path: p.path, rows: p.rows }))
        .collect()
}

/// A column of the wrong type, in words; a column of Arrow type `null` is read as nulls
/// where its role may be null ([`null_typed`]), so here it is one whose role may not be.
pub(super) fn type_problem(dt: &DataType, expected: &str) -> String {
    match dt {
        DataType::Null => format!(
            "has type null (every value is null: what pandas and pyarrow write for a column of \
             None), expected {expected}; this column may not be null"
        ),
        _ => format!("has type {dt}, expected {expected}"),
    }
}

/// Arrow type `null`: every value null (what pandas and pyarrow write for a column of None,
/// e.g. the revenue of an hour without conversions). Read as nulls of the role's type
/// wherever the role may be null (value, channel, the optional columns, the tie-breaker);
/// the user id, the time and the conversion marker may not be null ([`type_problem`]).
pub(super) fn null_typed(dt: &DataType) -> bool {
    matches!(dt, DataType::Null)
}

/// A Polars error met while opening a file, in touchpoint's words, by its kind.
pub(super) fn open_problem(e: &PolarsError) -> String {
    match e {
        PolarsError::Duplicate(m) => {
            format!("the file has duplicate column names ({m}); give every column its own name")
        }
        PolarsError::IO { .. } => format!("cannot read the file: {e}"),
        _ => format!("not a readable Parquet file (corrupt, truncated or another format): {e}"),
    }
}

/// The error inside Polars' context wrappers.
fn root_cause(e: &PolarsError) -> &PolarsError {
    match e {
        PolarsError::Context { error, .. } | PolarsError::ExprContext { error, .. } => root_cause(error),
        other => other,
    }
}

/// A Polars error met while reading a file's data (a file read directly, a staged source's
/// file, an identity map), in touchpoint's words, classified by its kind. `time_strings`
/// names the time column when it holds ISO-8601 strings: a failed strict parse then names
/// that column and the offending values (Polars' first line), without Polars' advice about
/// options touchpoint does not have.
pub(super) fn read_problem(e: &PolarsError, file: &Path, time_strings: Option<&str>) -> Error {
    match (root_cause(e), time_strings) {
        (PolarsError::InvalidOperation(m) | PolarsError::ComputeError(m), Some(time)) => {
            let first = m.lines().next().unwrap_or_default();
            let values = first.split_once(" for ").map_or(first, |(_, v)| v);
            Error::bad_input(
                file,
                Some(time),
                format!(
                    "time strings that are not ISO-8601 timestamps ({values}); write them like \
                     2024-01-31T12:00:00Z, or store the column as a timestamp"
                ),
            )
        }
        (PolarsError::IO { .. }, _) => Error::bad_input(file, None, format!("cannot read the file: {e}")),
        _ => Error::bad_input(file, None, format!("cannot read the data: {e}")),
    }
}

/// Read a file's footer and check that every mapped column exists with an accepted type.
pub(super) fn check_schema(path: &Path, cols: &Columns, chan_src: &ChannelSource) -> Result<FilePlan> {
    let (schema, rows) = read_footer(path)?;
    check_schema_of(path, &schema, rows, cols, chan_src)
}

/// Check a schema (of a file named `path`) against the column mapping.
pub(super) fn check_schema_of(
    path: &Path,
    schema: &Schema,
    rows: u64,
    cols: &Columns,
    chan_src: &ChannelSource,
) -> Result<FilePlan> {
    let f = Footer { path, schema };
    let text = |d: &DataType| matches!(d, DataType::String | DataType::Categorical(..) | DataType::Enum(..));
    let user = f.role(&cols.user, "a string or integer user id", |d| match d {
        DataType::String => Some(UserKind::Str),
        d if d.is_integer() => Some(UserKind::Int),
        _ => None,
    })?;
    let time = f.role(&cols.time, "a timestamp, a date or an ISO-8601 string", |d| match d {
        DataType::Datetime(..) => Some(TimeKind::Datetime),
        DataType::Date => Some(TimeKind::Date),
        DataType::String => Some(TimeKind::Str),
        _ => None,
    })?;
    // The roles other than user, time and marker may be null: a column of type null reads
    // as nulls there.
    let nullable_text = |d: &DataType| text(d) || null_typed(d);
    if chan_src.reads_channel() {
        f.role(&cols.channel, "a string or categorical channel", |d| nullable_text(d).then_some(()))?;
    }
    for c in chan_src.columns() {
        let expected = "a string or categorical column (read by channel_rules)";
        f.role(c, expected, |d| nullable_text(d).then_some(()))?;
    }
    let marker =
        f.role(&cols.conversion, "a string, boolean or 0/1 integer conversion marker", |d| match d {
            d if text(d) => Some(MarkerKind::Str),
            DataType::Boolean => Some(MarkerKind::Bool),
            d if d.is_integer() => Some(MarkerKind::Int),
            _ => None,
        })?;
    if let Some(v) = &cols.value {
        let numeric =
            |d: &DataType| d.is_primitive_numeric() || matches!(d, DataType::Decimal(..)) || null_typed(d);
        f.role(v, "a float, integer or decimal value", |d| numeric(d).then_some(()))?;
    }
    for c in [&cols.touch_type, &cols.campaign].into_iter().flatten() {
        f.role(c, "a string or categorical column", |d| nullable_text(d).then_some(()))?;
    }
    if let Some(c) = &cols.consent {
        f.role(c, "a boolean or 0/1 integer consent flag", |d| {
            (matches!(d, DataType::Boolean) || d.is_integer() || null_typed(d)).then_some(())
        })?;
    }
    if let Some(c) = &cols.event_id {
        f.role(c, "a string or integer event id", |d| (nullable_text(d) || d.is_integer()).then_some(()))?;
    }
    for (c, role) in cols.tags().into_iter().zip(crate::settings::TAGS) {
        if let Some(c) = c {
            let expected = format!("a string or integer {role}");
            f.role(c, &expected, |d| (nullable_text(d) || d.is_integer()).then_some(()))?;
        }
    }
    let tie = match &cols.tie_breaker {
        Some(t) => tie_kind(path, t, &f.column(t)?)?,
        None => None,
    };
    let user_dt = f.column(&cols.user)?;
    let user_int32 = matches!(
        user_dt,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16
    );
    let time_dtype = f.column(&cols.time)?;
    Ok(FilePlan {
        path: path.to_path_buf(),
        rows,
        user,
        user_int32,
        time,
        time_dtype,
        marker,
        tie,
        frame: None,
    })
}

/// A file of 0 bytes is refused by name, before a reader's own message about its footer.
pub(super) fn not_empty(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() == 0 {
        return Err(Error::bad_input(path, None, "the file is empty (0 bytes), not a Parquet file"));
    }
    Ok(())
}

/// The schema and row count of a Parquet file, from its footer.
fn read_footer(path: &Path) -> Result<(Schema, u64)> {
    not_empty(path)?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = ParquetReader::new(file);
    let not_parquet = |e: PolarsError| Error::bad_input(path, None, open_problem(&e));
    let arrow_schema = reader.schema().map_err(not_parquet)?;
    let rows = reader.num_rows().map_err(not_parquet)? as u64;
    Ok((Schema::from_arrow_schema(&arrow_schema), rows))
}

/// A file's schema, for checking the mapped columns.
struct Footer<'a> {
    path: &'a Path,
    schema: &'a Schema,
}

impl Footer<'_> {
    /// The type of a column; a missing column names the columns the file has.
    fn column(&self, name: &str) -> Result<DataType> {
        self.schema.get(name).cloned().ok_or_else(|| {
            let mut available: Vec<&str> = self.schema.iter_names().map(|s| s.as_str()).collect();
            available.sort();
            Error::bad_input(
                self.path,
                Some(name),
                format!("missing column (the file has: {})", available.join(", ")),
            )
        })
    }

    /// The kind of a column mapped to a role, or an error naming what the role accepts.
    fn role<K>(&self, name: &str, expected: &str, kind: impl Fn(&DataType) -> Option<K>) -> Result<K> {
        let dt = self.column(name)?;
        kind(&dt).ok_or_else(|| Error::bad_input(self.path, Some(name), type_problem(&dt, expected)))
    }
}

/// A tie-breaker orders values of one kind across all files of the event log (else two
/// files' rows would compare unlike values), read directly or staged; a tie-breaker of type
/// null has no kind, so the first file with one sets it.
pub(super) fn tie_kinds_agree<'a>(
    files: impl Iterator<Item = (&'a Path, Option<TieKind>)> + Clone,
    column: Option<&str>,
) -> Result<()> {
    let Some((b_path, b)) = files.clone().find_map(|(p, k)| Some((p, k?))) else { return Ok(()) };
    match files.filter_map(|(p, k)| Some((p, k?))).find(|(_, a)| *a != b) {
        None => Ok(()),
        Some((path, a)) => Err(Error::bad_input(
            path,
            column,
            format!(
                "tie-breaker type differs between files ({} here, {} in {}); cast it to one \
                 type in every file",
                a.describe(),
                b.describe(),
                b_path.display()
            ),
        )),
    }
}

fn tie_kind(path: &Path, name: &str, dt: &DataType) -> Result<Option<TieKind>> {
    match dt {
        d if null_typed(d) => Ok(None),
        DataType::String => Ok(Some(TieKind::Str)),
        d if d.is_float() => Ok(Some(TieKind::Float)),
        d if d.is_primitive_numeric() || d.is_temporal() || matches!(d, DataType::Boolean) => {
            Ok(Some(TieKind::Int))
        }
        d => Err(Error::bad_input(
            path,
            Some(name),
            type_problem(d, "an orderable column (number, time, string or boolean)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_columns_are_not_called_corrupt() {
        let p = open_problem(&PolarsError::Duplicate(
            "column with name 'ts' has more than one occurrence".into(),
        ));
        assert!(p.contains("duplicate column names") && !p.contains("corrupt"), "{p}");
        let p = open_problem(&PolarsError::ComputeError("parquet: invalid footer".into()));
        assert!(p.contains("corrupt"), "{p}");
    }

    #[test]
    fn tie_breakers_of_one_kind_only() {
        let p = Path::new("f.parquet");
        assert_eq!(tie_kind(p, "t", &DataType::String).unwrap(), Some(TieKind::Str));
        assert_eq!(tie_kind(p, "t", &DataType::Float32).unwrap(), Some(TieKind::Float));
        assert_eq!(tie_kind(p, "t", &DataType::Int16).unwrap(), Some(TieKind::Int));
        assert_eq!(tie_kind(p, "t", &DataType::Boolean).unwrap(), Some(TieKind::Int));
        // All null: no kind of its own, so any other file's kind agrees with it.
        assert_eq!(tie_kind(p, "t", &DataType::Null).unwrap(), None);
        assert!(tie_kind(p, "t", &DataType::List(Box::new(DataType::Int8))).is_err());
    }
}
