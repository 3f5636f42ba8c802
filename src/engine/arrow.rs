//! The Arrow C stream interface: how tables cross into and out of another runtime (the
//! Python package, Spark's `mapInArrow`) without a copy of the primitive columns.
//!
//! A stream is taken over by moving its C struct out of the caller's memory (the caller's
//! copy is left released, as the interface asks of a consumer), read batch by batch into
//! one Polars frame, and handed to the same reader as a file ([`super::load_frame`]), so
//! every schema rule and message is the file reader's. Tables go out as one stream of
//! record batches, strings as `large_utf8` (the oldest Arrow layout every consumer reads).

use polars::prelude::*;
use polars_arrow::array::{Array, StructArray};
use polars_arrow::datatypes::{ArrowDataType, Field as ArrowField};
pub use polars_arrow::ffi::ArrowArrayStream;
use polars_arrow::ffi::{export_iterator, ArrowArrayStreamReader};

use crate::core::event_log::EventLog;
use crate::core::replicates::{KEYS, NUMBERS};
use crate::core::table::Table;
use crate::error::{Error, Result};

fn bad(label: &str, problem: impl std::fmt::Display) -> Error {
    Error::bad_input(std::path::Path::new(label), None, problem.to_string())
}

/// An Arrow stream taken over from its producer: the only way a stream enters the library,
/// so the safety promise is made once, where the raw pointer is.
pub struct ArrowInput(Box<ArrowArrayStream>);

// SAFETY: the C stream interface does not tie a stream to the thread that produced it; an
// `ArrowInput` is owned by one reader at a time (no shared access), so moving it to the thread
// that reads it (the Python package releases the GIL while reading) is sound.
unsafe impl Send for ArrowInput {}

impl std::fmt::Debug for ArrowInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArrowInput")
    }
}

impl ArrowInput {
    /// Take over the stream at `stream`.
    ///
    /// # Safety
    /// `stream` must point to a valid, not yet released `ArrowArrayStream` that nothing
    /// else reads; the caller's struct is left released (its `release` is null).
    pub unsafe fn from_raw(stream: *mut ArrowArrayStream) -> Self {
        // SAFETY: the caller promises a valid stream; replacing it leaves a released one.
        ArrowInput(Box::new(unsafe { std::ptr::replace(stream, ArrowArrayStream::empty()) }))
    }
}

/// Read all of a stream into one frame; `label` names it in errors (like a file).
pub fn import_stream(input: ArrowInput, label: &str) -> Result<DataFrame> {
    // SAFETY: `ArrowInput::from_raw`'s caller promised a valid stream, now ours alone.
    let mut reader = unsafe { ArrowArrayStreamReader::try_new(input.0) }
        .map_err(|e| bad(label, format!("not an Arrow stream: {e}")))?;
    let ArrowDataType::Struct(fields) = reader.field().dtype().clone() else {
        return Err(bad(label, "an Arrow stream of record batches (a table) was expected"));
    };
    let mut chunks: Vec<Vec<Box<dyn Array>>> = vec![Vec::new(); fields.len()];
    // SAFETY: the reader owns a valid stream (see above).
    while let Some(batch) = unsafe { reader.next() } {
        let batch = batch.map_err(|e| bad(label, format!("reading the Arrow stream: {e}")))?;
        let batch = batch
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| bad(label, "a batch of the Arrow stream is not a record batch"))?;
        for (i, v) in batch.values().iter().enumerate() {
            chunks[i].push(v.clone());
        }
    }
    let mut columns = Vec::with_capacity(fields.len());
    for (field, mut parts) in fields.iter().zip(chunks) {
        if parts.is_empty() {
            parts.push(polars_arrow::array::new_empty_array(field.dtype().clone()));
        }
        let s = Series::try_from((field, parts))
            .map_err(|e| bad(label, format!("column `{}`: {e}", field.name)))?;
        columns.push(Column::from(s));
    }
    DataFrame::new_infer_height(columns).map_err(|e| bad(label, e))
}

/// A stream of one of our tables (a Spark partition's `journey_credit` rows), its columns
/// named from `known`, as [`super::write::read_table`] reads a file of it.
pub fn read_table(input: ArrowInput, name: &'static str, known: &[&'static str]) -> Result<Table> {
    let df = import_stream(input, name)?;
    super::write::table_of(&df, std::path::Path::new(name), name, known)
}

/// Read a stream of events like a file of them (every rule and message of the reader).
pub fn load_stream(input: ArrowInput, label: &str, opts: &super::LoadOptions) -> Result<EventLog> {
    super::load_frame(import_stream(input, label)?, label, opts)
}

/// One table as an Arrow stream of record batches.
pub fn export_table(t: &Table) -> Result<ArrowArrayStream> {
    let mut df = super::to_frame(t)?;
    export_frame(&mut df)
}

/// A frame as an Arrow stream of record batches (rechunked first: one batch a chunk).
pub fn export_frame(df: &mut DataFrame) -> Result<ArrowArrayStream> {
    df.rechunk_mut();
    let compat = CompatLevel::oldest();
    let fields: Vec<ArrowField> = df.columns().iter().map(|c| c.field().to_arrow(compat)).collect();
    let dtype = ArrowDataType::Struct(fields.clone());
    let batches: Vec<PolarsResult<Box<dyn Array>>> = df
        .iter_chunks(compat, false)
        .map(|b| {
            let len = b.height();
            Ok(StructArray::new(dtype.clone(), len, b.into_arrays(), None).boxed())
        })
        .collect();
    let field = ArrowField::new("".into(), dtype, false);
    Ok(export_iterator(Box::new(batches.into_iter()), field))
}

/// The f64 column `name` of a frame read from a stream.
fn f64_column(df: &DataFrame, name: &str, label: &str) -> Result<Vec<f64>> {
    let c = df.column(name).map_err(|_| bad(label, format!("no column `{name}`")))?;
    let c = c.cast(&DataType::Float64).map_err(|e| bad(label, format!("column `{name}`: {e}")))?;
    let ca = c.f64().map_err(|e| bad(label, e))?;
    ca.iter().map(|v| v.ok_or_else(|| bad(label, format!("column `{name}` has nulls")))).collect()
}

/// The string column `name` of a frame read from a stream (nulls as empty strings).
fn str_column(df: &DataFrame, name: &str, label: &str) -> Result<Vec<String>> {
    let c = df.column(name).map_err(|_| bad(label, format!("no column `{name}`")))?;
    let ca = c.str().map_err(|_| bad(label, format!("column `{name}` is not text")))?;
    Ok(ca.iter().map(|v| v.unwrap_or_default().to_owned()).collect())
}

/// Named replicate statistics (`partial_replicates`' columns), summed by an engine such as
/// Spark, over a stream.
pub fn read_replicate_rows(
    input: ArrowInput,
    label: &str,
) -> Result<Vec<crate::core::replicates::NamedSums>> {
    let df = import_stream(input, label)?;
    super::write::replicate_rows(std::path::Path::new(label), &df)
}

/// Campaign sums (`partial_campaigns`' columns, `draw` of any integer type), summed by an
/// engine such as Spark, over a stream, as sums of `draws` draws.
pub fn read_campaign_sums(
    input: ArrowInput,
    label: &str,
    draws: usize,
) -> Result<crate::core::campaigns::CampaignSums> {
    use crate::core::table::Values;
    let df = import_stream(input, label)?;
    let draw = df.column("draw").map_err(|_| bad(label, "no column `draw`"))?;
    let draw = draw.cast(&DataType::UInt32).map_err(|e| bad(label, format!("column `draw`: {e}")))?;
    let draw = draw.u32().map_err(|e| bad(label, format!("column `draw`: {e}")))?;
    let mut columns = vec![("draw", Values::U32(draw.iter().map(|v| v.unwrap_or(u32::MAX)).collect()))];
    for name in ["stat", "set", "path_channel", "channel", "campaign"] {
        columns.push((name, Values::Str(str_column(&df, name, label)?)));
    }
    for name in ["conversions", "value"] {
        columns.push((name, Values::F64(f64_column(&df, name, label)?)));
    }
    let t = Table::new("partial_campaigns", columns);
    crate::core::campaigns::CampaignSums::from_table(&t, draws).map_err(|p| bad(label, p))
}

/// Rows of a partial path table (`path`, `conversions`, `nulls`, `value`): the shard
/// format's reader, over a stream.
pub fn read_path_rows(input: ArrowInput, label: &str) -> Result<super::write::PartialRows> {
    let df = import_stream(input, label)?;
    super::write::partial_rows(std::path::Path::new(label), &df)
}

/// One row of the path statistics (`run::arrow::path_statistics`).
#[derive(Debug, Clone)]
pub struct StatisticsRow {
    /// What the row sums.
    pub kind: crate::core::replicates::Kind,
    /// The model of a credit row.
    pub model: String,
    /// The channel (credit) or source state (edges, ends).
    pub from: String,
    /// The target state of an edge.
    pub to: String,
    /// (conversions, nulls, value).
    pub numbers: (f64, f64, f64),
}

/// The rows of a path statistics stream.
pub fn read_statistics(input: ArrowInput, label: &str) -> Result<Vec<StatisticsRow>> {
    let df = import_stream(input, label)?;
    let [kind, model, from, to] = KEYS.map(|k| str_column(&df, k, label));
    let (kind, model, from, to) = (kind?, model?, from?, to?);
    let [c, n, v] = NUMBERS.map(|k| f64_column(&df, k, label));
    let (c, n, v) = (c?, n?, v?);
    (0..df.height())
        .map(|i| {
            let parsed = crate::core::replicates::Kind::parse(&kind[i]);
            Ok(StatisticsRow {
                kind: parsed.ok_or_else(|| bad(label, format!("row {i}: unknown kind `{}`", kind[i])))?,
                model: model[i].clone(),
                from: from[i].clone(),
                to: to[i].clone(),
                numbers: (c[i], n[i], v[i]),
            })
        })
        .collect()
}

/// The shard of each id of a one-column stream: string, 32-bit or 64-bit integer ids
/// hashed as `--shard` hashes them (null ids have none).
pub fn shard_column(input: ArrowInput, n: u32) -> Result<Vec<Option<u32>>> {
    use crate::core::event_log::{shard_of_i32, shard_of_i64, shard_of_str};
    let label = "the ids";
    let df = import_stream(input, label)?;
    let [c] = df.columns() else { return Err(bad(label, "one column of ids was expected")) };
    let s = c.as_materialized_series();
    Ok(match s.dtype() {
        DataType::String => {
            s.str().map_err(|e| bad(label, e))?.iter().map(|v| v.map(|v| shard_of_str(v, n))).collect()
        }
        DataType::Int32 => {
            s.i32().map_err(|e| bad(label, e))?.iter().map(|v| v.map(|v| shard_of_i32(v, n))).collect()
        }
        DataType::Int64 => {
            s.i64().map_err(|e| bad(label, e))?.iter().map(|v| v.map(|v| shard_of_i64(v, n))).collect()
        }
        other => return Err(bad(label, format!("ids of type {other}: string, int32 or int64 expected"))),
    })
}
