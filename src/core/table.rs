//! A table as plain typed columns: what the report layer builds and the engine writes
//! (Parquet or CSV). Keeping Polars out of the report means a table's content is decided by
//! plain Rust and only its encoding by the engine.

/// One column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Text.
    Str(Vec<String>),
    /// Text or null.
    OptStr(Vec<Option<String>>),
    /// Real numbers.
    F64(Vec<f64>),
    /// Real numbers or null.
    OptF64(Vec<Option<f64>>),
    /// Small counts and positions.
    U32(Vec<u32>),
    /// Small counts or null.
    OptU32(Vec<Option<u32>>),
    /// Counts.
    U64(Vec<u64>),
    /// Flags.
    Bool(Vec<bool>),
    /// Calendar dates, days since 1970-01-01.
    Date(Vec<i32>),
    /// Instants, µs since the Unix epoch, UTC.
    TimestampUs(Vec<i64>),
}

impl Values {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Values::Str(v) => v.len(),
            Values::OptStr(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::OptF64(v) => v.len(),
            Values::U32(v) => v.len(),
            Values::OptU32(v) => v.len(),
            Values::U64(v) => v.len(),
            Values::Bool(v) => v.len(),
            Values::Date(v) => v.len(),
            Values::TimestampUs(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named table with named columns, all of one length.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Table name, also the file stem (`channel_attribution`, …).
    pub name: &'static str,
    /// Columns in order.
    pub columns: Vec<(&'static str, Values)>,
}

impl Table {
    /// A table from columns. Panics when the lengths differ: that is a bug in the caller.
    pub fn new(name: &'static str, columns: Vec<(&'static str, Values)>) -> Self {
        let t = Table { name, columns };
        assert!(t.columns.iter().all(|(_, v)| v.len() == t.height()), "columns of {name} differ in length");
        t
    }

    /// Number of rows.
    pub fn height(&self) -> usize {
        self.columns.first().map_or(0, |(_, v)| v.len())
    }

    /// Insert a column at the front (e.g. `run_date`).
    pub fn prepend(&mut self, name: &'static str, values: Values) {
        self.columns.insert(0, (name, values));
    }
}
