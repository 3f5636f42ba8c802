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
    /// Flags or null.
    OptBool(Vec<Option<bool>>),
    /// Calendar dates, days since 1970-01-01.
    Date(Vec<i32>),
    /// Instants, µs since the Unix epoch, UTC.
    TimestampUs(Vec<i64>),
    /// Lists of real numbers (a statistic's value per replicate); an empty list is null.
    F64Lists(Vec<Vec<f64>>),
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
            Values::OptBool(v) => v.len(),
            Values::Date(v) => v.len(),
            Values::TimestampUs(v) => v.len(),
            Values::F64Lists(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append another column's rows. Columns of different types are a bug in the caller
    /// (tables of one kind have fixed types), except text with and without nulls.
    pub fn append(&mut self, other: Values) {
        use Values::*;
        match (self, other) {
            (Str(a), Str(b)) => a.extend(b),
            (OptStr(a), OptStr(b)) => a.extend(b),
            (OptStr(a), Str(b)) => a.extend(b.into_iter().map(Some)),
            (a @ Str(_), OptStr(b)) => {
                let x = match std::mem::replace(a, OptStr(Vec::new())) {
                    Str(x) => x,
                    _ => Vec::new(),
                };
                *a = OptStr(x.into_iter().map(Some).chain(b).collect());
            }
            (F64(a), F64(b)) => a.extend(b),
            (OptF64(a), OptF64(b)) => a.extend(b),
            (U32(a), U32(b)) => a.extend(b),
            (OptU32(a), OptU32(b)) => a.extend(b),
            (U64(a), U64(b)) => a.extend(b),
            (Bool(a), Bool(b)) => a.extend(b),
            (OptBool(a), OptBool(b)) => a.extend(b),
            (Date(a), Date(b)) => a.extend(b),
            (TimestampUs(a), TimestampUs(b)) => a.extend(b),
            (F64Lists(a), F64Lists(b)) => a.extend(b),
            (a, b) => panic!("appending a column of another type ({a:?} and {b:?})"),
        }
    }

    /// The rows at `idx`, in that order.
    pub fn take(&self, idx: &[usize]) -> Values {
        fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
            idx.iter().map(|&i| v[i].clone()).collect()
        }
        match self {
            Values::Str(v) => Values::Str(pick(v, idx)),
            Values::OptStr(v) => Values::OptStr(pick(v, idx)),
            Values::F64(v) => Values::F64(pick(v, idx)),
            Values::OptF64(v) => Values::OptF64(pick(v, idx)),
            Values::U32(v) => Values::U32(pick(v, idx)),
            Values::OptU32(v) => Values::OptU32(pick(v, idx)),
            Values::U64(v) => Values::U64(pick(v, idx)),
            Values::Bool(v) => Values::Bool(pick(v, idx)),
            Values::OptBool(v) => Values::OptBool(pick(v, idx)),
            Values::Date(v) => Values::Date(pick(v, idx)),
            Values::TimestampUs(v) => Values::TimestampUs(pick(v, idx)),
            Values::F64Lists(v) => Values::F64Lists(pick(v, idx)),
        }
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

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Values> {
        self.columns.iter().find(|c| c.0 == name).map(|c| &c.1)
    }

    /// A text column's values, None where null or where the table has no such text column:
    /// what the page and the tables built from other tables read back.
    pub fn texts(&self, name: &str) -> Vec<Option<String>> {
        match self.column(name) {
            Some(Values::Str(v)) => v.iter().cloned().map(Some).collect(),
            Some(Values::OptStr(v)) => v.clone(),
            _ => vec![None; self.height()],
        }
    }

    /// A real-number column's values, None where null or where the table has no such column.
    pub fn floats(&self, name: &str) -> Vec<Option<f64>> {
        match self.column(name) {
            Some(Values::F64(v)) => v.iter().map(|&x| Some(x)).collect(),
            Some(Values::OptF64(v)) => v.clone(),
            _ => vec![None; self.height()],
        }
    }

    /// Insert a column at the front (e.g. `run_date`).
    pub fn prepend(&mut self, name: &'static str, values: Values) {
        self.columns.insert(0, (name, values));
    }
}
