//! Input layer: find the event files, validate their schemas, and load the needed columns
//! into plain Rust columns with dense, deterministic integer ids.
//!
//! Rules this module owns (SPEC §1):
//! - the schema of every file is checked before any data is read;
//! - every problem names the file, the column and what is wrong;
//! - user and channel ids are dense and numbered in the sorted order of their values, so
//!   nothing downstream depends on the row order of the input files;
//! - times are microseconds since the Unix epoch, UTC (naive timestamps are UTC).
//!
//! Polars stays inside this module: it scans only the needed columns of each file (lazy
//! projection) and parses ISO-8601 strings; the rest of the pipeline is plain Rust.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::intern::PIECE;

use crate::config::{Columns, InvalidRows};
use crate::error::{Error, Result};

/// Channel id meaning "no channel" (a conversion row without a channel).
pub const NO_CHANNEL: u32 = u32::MAX;

/// One input file and how many rows it held.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InputFile {
    /// Path of the file.
    pub path: PathBuf,
    /// Rows in the file (before any rejection).
    pub rows: u64,
}

/// The events of all input files, column by column, with dense ids.
#[derive(Debug, Default, Clone)]
pub struct EventLog {
    /// User id, dense. Numbered in the order of the values for integer ids, and of a stable
    /// 128-bit hash (XXH3) of the value for string ids: either way independent of row order.
    pub user: Vec<u32>,
    /// Event time, µs since the Unix epoch (UTC).
    pub ts: Vec<i64>,
    /// Channel id (index into `channels`) or [`NO_CHANNEL`].
    pub channel: Vec<u32>,
    /// Whether the row is a conversion.
    pub is_conversion: Vec<bool>,
    /// Conversion value (0 for touches and conversions without a value).
    pub value: Vec<f64>,
    /// Optional tie-breaker, mapped to an order-preserving i64.
    pub tie: Option<Vec<i64>>,
    /// Channel names, sorted; a channel id is an index into this list.
    pub channels: Vec<String>,
    /// Touch type id per row (index into `touch_types`), [`NO_CHANNEL`] for null; present
    /// when a touch-type column is configured.
    pub touch_type: Option<Vec<u32>>,
    /// Touch type names, sorted.
    pub touch_types: Vec<String>,
    /// Campaign id per row (index into `campaigns`); present when a campaign column is
    /// configured. A null campaign is the campaign `(none)`.
    pub campaign: Option<Vec<u32>>,
    /// Campaign names, sorted.
    pub campaigns: Vec<String>,
    /// The user values, indexed by dense user id (for per-journey output); empty when the
    /// read scope skipped them.
    pub user_names: UserNames,
    /// Number of distinct users.
    pub n_users: usize,
    /// The files read, in the order read (sorted by path).
    pub files: Vec<InputFile>,
    /// Rows read from all files.
    pub rows_read: u64,
    /// Rows dropped (only with `on_invalid_rows = drop`), by reason.
    pub rejected: BTreeMap<String, u64>,
}

/// The original user id values, in sorted order (index = dense user id).
#[derive(Debug, Clone, PartialEq)]
pub enum UserNames {
    /// String user ids.
    Str(Vec<String>),
    /// Integer user ids.
    Int(Vec<i64>),
}

impl Default for UserNames {
    fn default() -> Self {
        UserNames::Int(Vec::new())
    }
}

impl UserNames {
    /// The user value of a dense id, as text.
    pub fn name(&self, id: u32) -> String {
        match self {
            UserNames::Str(v) => v.get(id as usize).cloned().unwrap_or_default(),
            UserNames::Int(v) => v.get(id as usize).map(|x| x.to_string()).unwrap_or_default(),
        }
    }
}

/// The campaign name given to touches whose campaign is null.
pub const NO_CAMPAIGN: &str = "(none)";

impl EventLog {
    /// Reserve room for `n` more events in the always-present columns.
    fn reserve(&mut self, n: usize) {
        self.ts.reserve(n);
        self.channel.reserve(n);
        self.is_conversion.reserve(n);
        self.value.reserve(n);
    }

    /// Number of events kept.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether no event was kept.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
}

/// Expand the `--events` argument (a file, a directory, or a glob) into a sorted file list.
///
/// Directories are walked recursively for `*.parquet` files, which covers hive-partitioned
/// datasets (`date=2024-01-01/part-0.parquet`). Hidden files and directories (`.`/`_`
/// prefixes, as Spark and Hive write `_SUCCESS` and `.crc` files) are skipped.
pub fn resolve_inputs(spec: &str) -> Result<Vec<PathBuf>> {
    let path = Path::new(spec);
    let mut files = Vec::new();
    if path.is_file() {
        files.push(path.to_path_buf());
    } else if path.is_dir() {
        walk_dir(path, &mut files)?;
        if files.is_empty() {
            return Err(Error::NotFound {
                path: path.into(),
                problem: "directory contains no .parquet files".into(),
            });
        }
    } else if spec.contains(['*', '?', '[']) {
        let entries = glob::glob(spec).map_err(|e| Error::Config(format!("bad glob `{spec}`: {e}")))?;
        for entry in entries {
            let p = entry.map_err(|e| {
                let path = e.path().to_path_buf();
                Error::io(path, e.into())
            })?;
            if p.is_file() {
                files.push(p);
            }
        }
        if files.is_empty() {
            return Err(Error::NotFound { path: path.into(), problem: "the pattern matched no file".into() });
        }
    } else {
        return Err(Error::NotFound { path: path.into(), problem: "no such file or directory".into() });
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let p = entry.path();
        if p.is_dir() {
            walk_dir(&p, out)?;
        } else if name.ends_with(".parquet") {
            out.push(p);
        }
    }
    Ok(())
}

/// The kind of the user column, which must agree across files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserKind {
    Str,
    Int,
}

/// The kind of the conversion marker column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkerKind {
    Str,
    Bool,
    Int,
}

/// The kind of the time column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeKind {
    Datetime,
    Date,
    Str,
}

/// What the schema check learned about one file.
struct FilePlan {
    path: PathBuf,
    rows: u64,
    user: UserKind,
    time: TimeKind,
    time_dtype: DataType,
    marker: MarkerKind,
}

/// Which part of the input a run needs (scheduled runs read a window, not everything).
#[derive(Debug, Clone, Default)]
pub struct ReadScope {
    /// Keep only events with `start ≤ ts < end` (µs): pushed down to the Parquet scan as a
    /// predicate (row groups outside are skipped by their statistics).
    pub range: Option<(i64, i64)>,
    /// Hive partition key of the input (`date` in `date=2024-01-05/part.parquet`): files
    /// whose partition date lies outside `range` are not opened at all.
    pub partition_key: Option<String>,
    /// Dates of the reporting window: each must have a partition when the input is
    /// partitioned (a missing one means the data has not landed: exit 66).
    pub required_dates: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    /// Keep only the users of shard `i` of `n` (see [`shard_of_str`]).
    pub shard: Option<(u32, u32)>,
    /// Do not keep the user id values ([`EventLog::user_names`] stays empty): only runs
    /// that list users (per-journey credit) need them, and at a million users they cost a
    /// string each.
    pub skip_user_names: bool,
    /// Rows per read batch (default [`READ_BATCH`]).
    pub batch_rows: Option<u64>,
}

/// The shard of a string user id among `n`: `pmod(XXH64(utf8 bytes, seed 42), n)` — the
/// definition of Spark SQL's `pmod(xxhash64(user_id), n)`, so a warehouse can split the same
/// way. Fixed forever: it never depends on Polars' or Rust's hashers.
pub fn shard_of_str(user: &str, n: u32) -> u32 {
    (xxhash_rust::xxh64::xxh64(user.as_bytes(), 42) as i64).rem_euclid(n as i64) as u32
}

/// The shard of an integer user id: XXH64 (seed 42) of its 8 little-endian bytes, pmod n.
pub fn shard_of_int(user: i64, n: u32) -> u32 {
    (xxhash_rust::xxh64::xxh64(&user.to_le_bytes(), 42) as i64).rem_euclid(n as i64) as u32
}

/// The `key=YYYY-MM-DD` partition date of a file path, if any.
pub fn partition_date(path: &Path, key: &str) -> Option<chrono::NaiveDate> {
    path.components().rev().find_map(|c| {
        let s = c.as_os_str().to_str()?;
        let v = s.strip_prefix(key)?.strip_prefix('=')?;
        chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()
    })
}

/// The date (UTC) of a µs timestamp.
pub fn date_of(us: i64) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_micros(us).map(|d| d.date_naive()).unwrap_or_default()
}

/// Resolve the input files of a scope: partition pruning and the missing-partition check.
pub fn scoped_inputs(spec: &str, scope: &ReadScope) -> Result<Vec<PathBuf>> {
    let files = resolve_inputs(spec)?;
    let (Some(key), Some((start, end))) = (&scope.partition_key, scope.range) else { return Ok(files) };
    let (first, last) = (date_of(start), date_of(end - 1));
    let partitioned = files.iter().any(|f| partition_date(f, key).is_some());
    if partitioned {
        if let Some((a, b)) = scope.required_dates {
            let present: std::collections::BTreeSet<_> =
                files.iter().filter_map(|f| partition_date(f, key)).collect();
            let mut d = a;
            while d <= b {
                if !present.contains(&d) {
                    return Err(Error::NotFound {
                        path: PathBuf::from(spec),
                        problem: format!("missing input partition {key}={d} of the reporting window"),
                    });
                }
                d = d.succ_opt().expect("date in range");
            }
        }
    }
    let kept: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| partition_date(f, key).is_none_or(|d| d >= first && d <= last))
        .collect();
    if kept.is_empty() {
        return Err(Error::NotFound {
            path: PathBuf::from(spec),
            problem: format!("no input partition between {first} and {last}"),
        });
    }
    Ok(kept)
}

/// Check the schemas of the files a scope needs, without reading any data.
pub fn validate_inputs(spec: &str, cols: &Columns, scope: &ReadScope) -> Result<Vec<InputFile>> {
    let files = scoped_inputs(spec, scope)?;
    files.iter().map(|f| check_schema(f, cols).map(|p| InputFile { path: p.path, rows: p.rows })).collect()
}

fn is_int(dt: &DataType) -> bool {
    dt.is_integer()
}

fn type_problem(dt: &DataType, expected: &str) -> String {
    format!("has type {dt}, expected {expected}")
}

/// Read a file's footer and check that every mapped column exists with an accepted type.
fn check_schema(path: &Path, cols: &Columns) -> Result<FilePlan> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() == 0 {
        return Err(Error::bad_input(path, None, "the file is empty (0 bytes), not a Parquet file"));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = ParquetReader::new(file);
    let not_parquet = |e: PolarsError| {
        Error::bad_input(
            path,
            None,
            format!("not a readable Parquet file (corrupt, truncated or another format): {e}"),
        )
    };
    let arrow_schema = reader.schema().map_err(not_parquet)?;
    let rows = reader.num_rows().map_err(not_parquet)? as u64;
    let schema = Schema::from_arrow_schema(&arrow_schema);

    let get = |name: &str| -> Result<DataType> {
        schema.get(name).cloned().ok_or_else(|| {
            let mut available: Vec<&str> = schema.iter_names().map(|s| s.as_str()).collect();
            available.sort();
            Error::bad_input(
                path,
                Some(name),
                format!("missing column (the file has: {})", available.join(", ")),
            )
        })
    };

    let dt = get(&cols.user)?;
    let user = match dt {
        DataType::String => UserKind::Str,
        ref d if is_int(d) => UserKind::Int,
        ref d => {
            return Err(Error::bad_input(
                path,
                Some(&cols.user),
                type_problem(d, "a string or integer user id"),
            ))
        }
    };
    let dt = get(&cols.time)?;
    let time = match dt {
        DataType::Datetime(..) => TimeKind::Datetime,
        DataType::Date => TimeKind::Date,
        DataType::String => TimeKind::Str,
        ref d => {
            return Err(Error::bad_input(
                path,
                Some(&cols.time),
                type_problem(d, "a timestamp, a date or an ISO-8601 string"),
            ))
        }
    };
    let dt = get(&cols.channel)?;
    match dt {
        DataType::String | DataType::Categorical(..) | DataType::Enum(..) => {}
        ref d => {
            return Err(Error::bad_input(
                path,
                Some(&cols.channel),
                type_problem(d, "a string or categorical channel"),
            ))
        }
    }
    let dt = get(&cols.conversion)?;
    let marker = match dt {
        DataType::String | DataType::Categorical(..) | DataType::Enum(..) => MarkerKind::Str,
        DataType::Boolean => MarkerKind::Bool,
        ref d if is_int(d) => MarkerKind::Int,
        ref d => {
            return Err(Error::bad_input(
                path,
                Some(&cols.conversion),
                type_problem(d, "a string, boolean or 0/1 integer conversion marker"),
            ))
        }
    };
    if let Some(v) = &cols.value {
        let dt = get(v)?;
        if !(dt.is_primitive_numeric() || matches!(dt, DataType::Decimal(..))) {
            return Err(Error::bad_input(
                path,
                Some(v),
                type_problem(&dt, "a float, integer or decimal value"),
            ));
        }
    }
    for c in [&cols.touch_type, &cols.campaign].into_iter().flatten() {
        let dt = get(c)?;
        if !matches!(dt, DataType::String | DataType::Categorical(..) | DataType::Enum(..)) {
            return Err(Error::bad_input(path, Some(c), type_problem(&dt, "a string or categorical column")));
        }
    }
    if let Some(t) = &cols.tie_breaker {
        let dt = get(t)?;
        if !(dt.is_primitive_numeric()
            || dt.is_temporal()
            || matches!(dt, DataType::String | DataType::Boolean))
        {
            return Err(Error::bad_input(
                path,
                Some(t),
                type_problem(&dt, "an orderable column (number, time, string or boolean)"),
            ));
        }
    }
    let time_dtype = schema.get(&cols.time).cloned().unwrap_or(DataType::Null);
    Ok(FilePlan { path: path.to_path_buf(), rows, user, time, time_dtype, marker })
}

/// Rows read at a time from a file: the Polars frame of one batch (~70 bytes a row) lives
/// next to the compact columns (~25 bytes a row), never the frame of a whole large file.
pub const READ_BATCH: u64 = 4 << 20;

/// The user key of every kept row, in log order; numbered once every file is read.
enum UserKeys {
    /// XXH3-128 hashes of string ids.
    Str(Vec<u128>),
    /// Integer ids.
    Int(Vec<i64>),
}

/// Interns values into dense ids in first-seen order; [`Interner::sorted_remap`] then
/// renumbers them in sorted order, so the final ids never depend on row order. For the
/// small vocabularies (channels, touch types, campaigns).
#[derive(Default)]
struct Interner<K> {
    ids: FxHashMap<K, u32>,
}

impl<K: std::hash::Hash + Eq + Ord + Clone> Interner<K> {
    /// `remap[old_id] = new_id` in sorted order of the keys, and the sorted keys.
    fn sorted_remap(self) -> (Vec<u32>, Vec<K>) {
        let mut pairs: Vec<(K, u32)> = self.ids.into_iter().collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut remap = vec![0u32; pairs.len()];
        let mut keys = Vec::with_capacity(pairs.len());
        for (new, (k, old)) in pairs.into_iter().enumerate() {
            remap[old as usize] = new as u32;
            keys.push(k);
        }
        (remap, keys)
    }
}

impl Interner<String> {
    fn intern_str(&mut self, k: &str) -> u32 {
        if let Some(&id) = self.ids.get(k) {
            return id;
        }
        let n = self.ids.len() as u32;
        self.ids.insert(k.to_owned(), n);
        n
    }
}

/// Load every input file (after checking all their schemas first).
pub fn load_events(spec: &str, cols: &Columns, on_invalid: InvalidRows) -> Result<EventLog> {
    load_events_scoped(spec, cols, on_invalid, &ReadScope::default())
}

/// Load the events a scope needs (see [`ReadScope`]).
///
/// Files are read one at a time, so the peak memory holds one file's Polars frame next to
/// the compact columns of everything read so far.
pub fn load_events_scoped(
    spec: &str,
    cols: &Columns,
    on_invalid: InvalidRows,
    scope: &ReadScope,
) -> Result<EventLog> {
    let files = scoped_inputs(spec, scope)?;
    let plans: Vec<FilePlan> = files.iter().map(|f| check_schema(f, cols)).collect::<Result<_>>()?;
    let first = &plans[0];
    for p in &plans[1..] {
        if p.user != first.user {
            return Err(Error::bad_input(
                &p.path,
                Some(&cols.user),
                format!(
                    "user id type differs between files ({} here, {} in {})",
                    if p.user == UserKind::Str { "string" } else { "integer" },
                    if first.user == UserKind::Str { "string" } else { "integer" },
                    first.path.display()
                ),
            ));
        }
    }

    let mut log = EventLog::default();
    let mut state = LoadState {
        users: match first.user {
            UserKind::Str => UserKeys::Str(Vec::new()),
            UserKind::Int => UserKeys::Int(Vec::new()),
        },
        names: (!scope.skip_user_names).then(FxHashMap::default),
        ..LoadState::default()
    };
    let total: u64 = plans.iter().map(|p| p.rows).sum();
    log.reserve(total as usize);
    match &mut state.users {
        UserKeys::Str(k) => k.reserve(total as usize),
        UserKeys::Int(k) => k.reserve(total as usize),
    }

    for plan in &plans {
        log.files.push(InputFile { path: plan.path.clone(), rows: plan.rows });
        let batch_rows = scope.batch_rows.unwrap_or(READ_BATCH).max(1);
        let mut offset = 0u64;
        loop {
            let t = std::time::Instant::now();
            let len = batch_rows.min(plan.rows - offset);
            let batch = (plan.rows > batch_rows).then_some((offset, len));
            let df = read_file(plan, cols, scope.range, batch)?;
            tracing::debug!(file = %plan.path.display(), offset, rows = df.height(), ms = t.elapsed().as_millis(), "scanned");
            let t = std::time::Instant::now();
            log.rows_read += df.height() as u64;
            append_batch(plan, cols, on_invalid, df, offset as usize, &mut log, &mut state, scope)?;
            tracing::debug!(ms = t.elapsed().as_millis(), "converted to columns");
            offset += len;
            if offset >= plan.rows {
                break;
            }
        }
    }
    let t = std::time::Instant::now();

    if log.rows_read == 0 {
        return Err(Error::bad_input(PathBuf::from(spec), None, "the input has no rows"));
    }
    if log.is_empty() {
        return Err(Error::bad_input(
            PathBuf::from(spec),
            None,
            "every row was rejected as invalid; nothing to attribute",
        ));
    }

    let LoadState { channels, str_ties, tie_is_str, mut ties, extra, users, names } = state;
    number_users(&mut log, users, names);
    if cols.touch_type.is_some() {
        let (r, names) = extra.types.sorted_remap();
        let mut v = extra.type_ids;
        for t in &mut v {
            if *t != NO_CHANNEL {
                *t = r[*t as usize];
            }
        }
        log.touch_type = Some(v);
        log.touch_types = names;
    }
    if cols.campaign.is_some() {
        let (r, names) = extra.campaigns.sorted_remap();
        let mut v = extra.campaign_ids;
        for t in &mut v {
            *t = r[*t as usize];
        }
        log.campaign = Some(v);
        log.campaigns = names;
    }
    let (chan_remap, names) = channels.sorted_remap();
    log.channel.par_chunks_mut(PIECE).for_each(|cs| {
        for c in cs {
            if *c != NO_CHANNEL {
                *c = chan_remap[*c as usize];
            }
        }
    });
    log.channels = names;
    tracing::debug!(ms = t.elapsed().as_millis(), "renumbered ids");
    if cols.tie_breaker.is_some() {
        if tie_is_str {
            let (r, _) = str_ties.sorted_remap();
            for t in &mut ties {
                *t = r[*t as usize] as i64;
            }
        }
        log.tie = Some(ties);
    }
    Ok(log)
}

/// Dense user ids: the rank of each row's key among the distinct keys of the whole input
/// (hash order for string ids, value order for integers).
fn number_users(log: &mut EventLog, users: UserKeys, mut names: Option<FxHashMap<u128, String>>) {
    use crate::intern::{bucket_count, dense_ids, hash_bucket, range_bucket};
    let n = log.len();
    let nb = bucket_count(n);
    match users {
        UserKeys::Str(keys) => {
            let dense = dense_ids(n, nb, hash_bucket(nb), |at, len, out| {
                out.extend(keys[at..at + len].iter().map(|&h| Some(h)));
            });
            drop(keys);
            log.user = dense.ids;
            log.n_users = dense.keys.len();
            if let Some(names) = &mut names {
                log.user_names = UserNames::Str(
                    dense.keys.iter().map(|h| names.remove(h).expect("every user named")).collect(),
                );
            }
        }
        UserKeys::Int(keys) => {
            let (min, max) =
                (keys.iter().copied().min().unwrap_or(0), keys.iter().copied().max().unwrap_or(0));
            let dense = dense_ids(n, nb, range_bucket(min, max, nb), |at, len, out| {
                out.extend(keys[at..at + len].iter().map(|&k| Some(k)));
            });
            drop(keys);
            log.user = dense.ids;
            log.n_users = dense.keys.len();
            log.user_names = UserNames::Int(dense.keys);
        }
    }
}

/// Scan one file lazily, projecting only the mapped columns; ISO-8601 time strings are
/// parsed here, strictly (an unparseable time fails the file rather than becoming null).
///
/// `batch = (offset, len)` reads only those rows of the file (before the range filter).
fn read_file(
    plan: &FilePlan,
    cols: &Columns,
    range: Option<(i64, i64)>,
    batch: Option<(u64, u64)>,
) -> Result<DataFrame> {
    let path_str = plan.path.to_string_lossy().to_string();
    let mut lf = LazyFrame::scan_parquet(PlRefPath::new(path_str.as_str()), ScanArgsParquet::default())
        .map_err(|e| Error::bad_input(&plan.path, None, format!("cannot scan: {e}")))?;
    if let Some((offset, len)) = batch {
        lf = lf.slice(offset as i64, len as IdxSize);
    }
    let mut exprs = vec![col(cols.user.as_str())];
    let time = col(cols.time.as_str());
    exprs.push(match plan.time {
        TimeKind::Str => time.str().to_datetime(
            Some(TimeUnit::Microseconds),
            None,
            StrptimeOptions { strict: true, ..Default::default() },
            lit("raise"),
        ),
        _ => time,
    });
    exprs.push(col(cols.channel.as_str()).cast(DataType::String));
    exprs.push(match plan.marker {
        MarkerKind::Str => col(cols.conversion.as_str()).cast(DataType::String),
        _ => col(cols.conversion.as_str()),
    });
    if let Some(v) = &cols.value {
        exprs.push(col(v.as_str()).cast(DataType::Float64));
    }
    if let Some(t) = &cols.tie_breaker {
        exprs.push(col(t.as_str()));
    }
    for c in [&cols.touch_type, &cols.campaign].into_iter().flatten() {
        exprs.push(col(c.as_str()).cast(DataType::String));
    }
    let mut lf = lf.select(exprs);
    if let Some((start, end)) = range {
        // A literal of the column's own type keeps the predicate pushable to row-group
        // statistics; ISO strings are filtered after parsing.
        let bound = |us: i64| -> Expr {
            match &plan.time_dtype {
                DataType::Datetime(unit, tz) => {
                    let v = match unit {
                        TimeUnit::Nanoseconds => us.saturating_mul(1000),
                        TimeUnit::Microseconds => us,
                        TimeUnit::Milliseconds => us.div_euclid(1000),
                    };
                    lit(v).cast(DataType::Datetime(*unit, tz.clone()))
                }
                DataType::Date => lit(us.div_euclid(86_400_000_000) as i32).cast(DataType::Date),
                _ => lit(us).cast(DataType::Datetime(TimeUnit::Microseconds, None)),
            }
        };
        if plan.time != TimeKind::Str {
            let t = col(cols.time.as_str());
            lf = lf.filter(t.clone().gt_eq(bound(start)).and(t.lt(bound(end))));
        }
    }
    lf.collect().map_err(|e| {
        let msg = e.to_string();
        let column = if plan.time == TimeKind::Str
            && (msg.contains("strptime") || msg.contains("conversion") || msg.contains("parse"))
        {
            Some(cols.time.as_str())
        } else {
            None
        };
        Error::bad_input(&plan.path, column, format!("cannot read the data: {msg}"))
    })
}

fn series<'a>(df: &'a DataFrame, name: &str, path: &Path) -> Result<&'a Series> {
    df.column(name)
        .map(|c| c.as_materialized_series())
        .map_err(|e| Error::bad_input(path, Some(name), e.to_string()))
}

fn cast_err<'a>(path: &'a Path, name: &str) -> impl Fn(PolarsError) -> Error + 'a {
    let name = name.to_owned();
    move |e| Error::bad_input(path, Some(&name), e.to_string())
}

/// Fill `out` in parallel, [`PIECE`] rows at a time: `f(first row, piece)`. Of several
/// failing pieces the first one's error is returned, so messages do not depend on timing.
fn par_fill<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) -> Result<()> + Sync) -> Result<()> {
    let results: Vec<Result<()>> =
        out.par_chunks_mut(PIECE).enumerate().map(|(p, o)| f(p * PIECE, o)).collect();
    results.into_iter().collect()
}

/// Convert a time series to µs since the epoch, UTC.
/// Null times are [`NULL_TIME`] (a sentinel no real timestamp reaches), which halves the
/// memory of an `Option<i64>` column.
fn time_micros(s: &Series, path: &Path, name: &str) -> Result<Vec<i64>> {
    let err = cast_err(path, name);
    let mut out = vec![NULL_TIME; s.len()];
    match s.dtype() {
        DataType::Datetime(unit, _) => {
            let (mul, div) = match unit {
                TimeUnit::Nanoseconds => (1, 1000),
                TimeUnit::Microseconds => (1, 1),
                TimeUnit::Milliseconds => (1000, 1),
            };
            let phys = s.to_physical_repr();
            let ca = phys.i64().map_err(&err)?;
            par_fill(&mut out, |at, o| {
                let len = o.len();
                for (o, v) in o.iter_mut().zip(ca.slice(at as i64, len).iter()) {
                    *o = v.map_or(NULL_TIME, |x| x.div_euclid(div) * mul);
                }
                Ok(())
            })?;
        }
        DataType::Date => {
            let phys = s.to_physical_repr();
            let ca = phys.i32().map_err(&err)?;
            par_fill(&mut out, |at, o| {
                let len = o.len();
                for (o, v) in o.iter_mut().zip(ca.slice(at as i64, len).iter()) {
                    *o = v.map_or(NULL_TIME, |d| d as i64 * 86_400_000_000);
                }
                Ok(())
            })?;
        }
        d => return Err(Error::bad_input(path, Some(name), type_problem(d, "a timestamp"))),
    }
    Ok(out)
}

const NULL_TIME: i64 = i64::MIN;
/// Conversion marker of a row: touch, conversion, or null.
const TOUCH: u8 = 0;
const CONVERSION: u8 = 1;
const NULL_MARKER: u8 = 2;

/// Interners and ids of the optional touch-type and campaign columns.
#[derive(Default)]
struct Extra {
    types: Interner<String>,
    type_ids: Vec<u32>,
    campaigns: Interner<String>,
    campaign_ids: Vec<u32>,
}

/// What outlives one batch: the vocabularies, the user keys and the optional columns.
struct LoadState {
    channels: Interner<String>,
    str_ties: Interner<String>,
    tie_is_str: bool,
    ties: Vec<i64>,
    extra: Extra,
    users: UserKeys,
    /// The value of each string user key, when the run lists users.
    names: Option<FxHashMap<u128, String>>,
}

impl Default for LoadState {
    fn default() -> Self {
        LoadState {
            channels: Interner::default(),
            str_ties: Interner::default(),
            tie_is_str: false,
            ties: Vec::new(),
            extra: Extra::default(),
            users: UserKeys::Int(Vec::new()),
            names: None,
        }
    }
}

/// The user key of each row of a batch, [`None`] for a null user or another shard's.
enum BatchKeys {
    /// XXH3-128 of the id (0: none; a real id hashing to 0 has probability 2^-128).
    Str(Vec<u128>),
    /// The id, and whether the row has one.
    Int(Vec<i64>, Vec<bool>),
}

impl BatchKeys {
    fn has(&self, i: usize) -> bool {
        match self {
            BatchKeys::Str(k) => k[i] != 0,
            BatchKeys::Int(_, has) => has[i],
        }
    }
}

/// User keys of a batch (hashed in parallel pieces), and which rows have a null user.
fn batch_user_keys(
    user_s: &Series,
    plan: &FilePlan,
    cols: &Columns,
    names: Option<&mut FxHashMap<u128, String>>,
) -> Result<(BatchKeys, Option<Vec<bool>>)> {
    let path = plan.path.as_path();
    let n = user_s.len();
    let nulls = (user_s.null_count() > 0).then(|| user_s.is_null().iter().map(|b| b == Some(true)).collect());
    match plan.user {
        UserKind::Str => {
            let ca = user_s.str().map_err(cast_err(path, &cols.user))?;
            let mut keys = vec![0u128; n];
            par_fill(&mut keys, |at, o| {
                let len = o.len();
                for (o, v) in o.iter_mut().zip(ca.slice(at as i64, len).iter()) {
                    if let Some(u) = v {
                        *o = xxhash_rust::xxh3::xxh3_128(u.as_bytes());
                    }
                }
                Ok(())
            })?;
            if let Some(names) = names {
                for (&h, v) in keys.iter().zip(ca.iter()) {
                    if h != 0 {
                        names.entry(h).or_insert_with(|| v.unwrap_or_default().to_owned());
                    }
                }
            }
            Ok((BatchKeys::Str(keys), nulls))
        }
        UserKind::Int => {
            let c = user_s.cast(&DataType::Int64).map_err(cast_err(path, &cols.user))?;
            let ca = c.i64().map_err(cast_err(path, &cols.user))?;
            let mut vals = vec![0i64; n];
            par_fill(&mut vals, |at, o| {
                let len = o.len();
                for (o, v) in o.iter_mut().zip(ca.slice(at as i64, len).iter()) {
                    *o = v.unwrap_or(0);
                }
                Ok(())
            })?;
            let has =
                nulls.as_ref().map_or_else(|| vec![true; n], |m: &Vec<bool>| m.iter().map(|&x| !x).collect());
            Ok((BatchKeys::Int(vals, has), nulls))
        }
    }
}

/// The rows of a batch whose user is in shard `i` of `k` (null users: shard 0), and their
/// rows in the batch.
fn shard_rows(
    df: DataFrame,
    plan: &FilePlan,
    cols: &Columns,
    (i, k): (u32, u32),
) -> Result<(DataFrame, Vec<u32>)> {
    let path = plan.path.as_path();
    let user_s = series(&df, &cols.user, path)?;
    let mut mask = vec![false; df.height()];
    match plan.user {
        UserKind::Str => {
            let ca = user_s.str().map_err(cast_err(path, &cols.user))?;
            par_fill(&mut mask, |at, o| {
                let len = o.len();
                for (o, v) in o.iter_mut().zip(ca.slice(at as i64, len).iter()) {
                    *o = v.map_or(i == 0, |u| shard_of_str(u, k) == i);
                }
                Ok(())
            })?;
        }
        UserKind::Int => {
            let c = user_s.cast(&DataType::Int64).map_err(cast_err(path, &cols.user))?;
            let ca = c.i64().map_err(cast_err(path, &cols.user))?;
            par_fill(&mut mask, |at, o| {
                let len = o.len();
                for (o, v) in o.iter_mut().zip(ca.slice(at as i64, len).iter()) {
                    *o = v.map_or(i == 0, |u| shard_of_int(u, k) == i);
                }
                Ok(())
            })?;
        }
    }
    let rows: Vec<u32> = mask.iter().enumerate().filter(|(_, &m)| m).map(|(r, _)| r as u32).collect();
    let df = df
        .filter(&BooleanChunked::from_slice("in_shard".into(), &mask))
        .map_err(|e| Error::bad_input(path, None, format!("cannot select the shard's rows: {e}")))?;
    Ok((df, rows))
}

/// Channel ids of a column through per-piece dictionaries of the (few) distinct names.
fn channel_ids(ca: &StringChunked, channels: &mut Interner<String>) -> Vec<u32> {
    let mut ids = vec![NO_CHANNEL; ca.len()];
    let locals: Vec<Vec<String>> = ids
        .par_chunks_mut(PIECE)
        .enumerate()
        .map(|(p, o)| {
            let piece = ca.slice((p * PIECE) as i64, o.len());
            let mut dict: FxHashMap<&str, u32> = FxHashMap::default();
            let mut names: Vec<String> = Vec::new();
            for (o, v) in o.iter_mut().zip(piece.iter()) {
                if let Some(c) = v {
                    *o = *dict.entry(c).or_insert_with(|| {
                        names.push(c.to_owned());
                        names.len() as u32 - 1
                    });
                }
            }
            names
        })
        .collect();
    let maps: Vec<Vec<u32>> =
        locals.iter().map(|names| names.iter().map(|c| channels.intern_str(c)).collect()).collect();
    ids.par_chunks_mut(PIECE).zip(maps.par_iter()).for_each(|(o, map)| {
        for x in o {
            if *x != NO_CHANNEL {
                *x = map[*x as usize];
            }
        }
    });
    ids
}

/// Convert one batch of a file (its rows start at row `offset` of the file) and append the
/// valid rows to the log.
#[allow(clippy::too_many_arguments)]
fn append_batch(
    plan: &FilePlan,
    cols: &Columns,
    on_invalid: InvalidRows,
    df: DataFrame,
    offset: usize,
    log: &mut EventLog,
    state: &mut LoadState,
    scope: &ReadScope,
) -> Result<()> {
    let (range, shard) = (scope.range, scope.shard);
    let path = plan.path.as_path();
    // With --shard, other shards' rows are dropped before any column is converted (null
    // users belong to shard 0, so they are reported exactly once); `row_of` maps the rows
    // left to their row in the batch, for messages.
    let (df, row_of) = match shard {
        Some(sh) => {
            let before = df.height();
            let (df, rows) = shard_rows(df, plan, cols, sh)?;
            log.rows_read -= (before - df.height()) as u64;
            (df, Some(rows))
        }
        None => (df, None),
    };
    let row_at = |i: usize| offset + row_of.as_ref().map_or(i, |r| r[i] as usize);
    let n = df.height();
    // Users first (hashing: the most expensive part, parallel inside).
    let (keys, null_users) =
        batch_user_keys(series(&df, &cols.user, path)?, plan, cols, state.names.as_mut())?;

    // Time, marker, value and channel, each converted in parallel pieces.
    let ts = time_micros(series(&df, &cols.time, path)?, path, &cols.time)?;
    let marker_s = series(&df, &cols.conversion, path)?;
    let mut conv = vec![NULL_MARKER; n];
    let as_marker = |b: bool| if b { CONVERSION } else { TOUCH };
    match plan.marker {
        MarkerKind::Str => {
            let ca = marker_s.str().map_err(cast_err(path, &cols.conversion))?;
            let target = cols.conversion_value.as_str();
            par_fill(&mut conv, |at, o| {
                let len = o.len();
                for (o, v) in o.iter_mut().zip(ca.slice(at as i64, len).iter()) {
                    *o = v.map_or(NULL_MARKER, |s| as_marker(s == target));
                }
                Ok(())
            })?;
        }
        MarkerKind::Bool => {
            let ca = marker_s.bool().map_err(cast_err(path, &cols.conversion))?;
            par_fill(&mut conv, |at, o| {
                let len = o.len();
                for (o, v) in o.iter_mut().zip(ca.slice(at as i64, len).iter()) {
                    *o = v.map_or(NULL_MARKER, as_marker);
                }
                Ok(())
            })?;
        }
        MarkerKind::Int => {
            let c = marker_s.cast(&DataType::Int64).map_err(cast_err(path, &cols.conversion))?;
            let ca = c.i64().map_err(cast_err(path, &cols.conversion))?;
            par_fill(&mut conv, |at, o| {
                let len = o.len();
                for (o, v) in o.iter_mut().zip(ca.slice(at as i64, len).iter()) {
                    *o = match v {
                        None => NULL_MARKER,
                        Some(0) => TOUCH,
                        Some(1) => CONVERSION,
                        Some(x) => {
                            return Err(Error::bad_input(
                                path,
                                Some(&cols.conversion),
                                format!("an integer conversion marker must be 0 or 1, found {x}"),
                            ))
                        }
                    };
                }
                Ok(())
            })?;
        }
    }

    // Value: validated here; a null value is worth 0.
    let values: Option<Vec<f64>> = match &cols.value {
        Some(v) => {
            let s = series(&df, v, path)?;
            let ca = s.f64().map_err(cast_err(path, v))?;
            let mut vals = vec![0.0; n];
            par_fill(&mut vals, |at, o| {
                let len = o.len();
                for (j, (o, x)) in o.iter_mut().zip(ca.slice(at as i64, len).iter()).enumerate() {
                    match x {
                        Some(x) if !x.is_finite() || x < 0.0 => {
                            return Err(Error::bad_input(
                                path,
                                Some(v),
                                format!(
                                    "conversion values must be finite and ≥ 0, found {x} (row {})",
                                    row_at(at + j)
                                ),
                            ))
                        }
                        x => *o = x.unwrap_or(0.0),
                    }
                }
                Ok(())
            })?;
            Some(vals)
        }
        None => None,
    };

    let chan_ca = series(&df, &cols.channel, path)?.str().map_err(cast_err(path, &cols.channel))?;
    let chan_ids = channel_ids(chan_ca, &mut state.channels);

    // Tie-breaker, mapped to an order-preserving i64.
    let tie_vals: Option<Vec<Option<i64>>> = match &cols.tie_breaker {
        None => None,
        Some(t) => {
            let s = series(&df, t, path)?;
            let err = cast_err(path, t);
            Some(match s.dtype() {
                DataType::String => {
                    state.tie_is_str = true;
                    let str_ties = &mut state.str_ties;
                    s.str().map_err(&err)?.iter().map(|v| v.map(|x| str_ties.intern_str(x) as i64)).collect()
                }
                d if d.is_float() => s
                    .cast(&DataType::Float64)
                    .map_err(&err)?
                    .f64()
                    .map_err(&err)?
                    .iter()
                    .map(|v| v.map(f64_order_key))
                    .collect(),
                _ => {
                    let p = s.to_physical_repr().cast(&DataType::Int64).map_err(&err)?;
                    p.i64().map_err(&err)?.iter().collect()
                }
            })
        }
    };

    let type_ca = match &cols.touch_type {
        Some(c) => Some(series(&df, c, path)?.str().map_err(cast_err(path, c))?),
        None => None,
    };
    let campaign_ca = match &cols.campaign {
        Some(c) => Some(series(&df, c, path)?.str().map_err(cast_err(path, c))?),
        None => None,
    };

    let value_of = |i: usize| if conv[i] == CONVERSION { values.as_ref().map_or(0.0, |v| v[i]) } else { 0.0 };

    // Fast path: no invalid row (the common case). Every row is kept, or is another
    // shard's or outside the scope; the kept rows' columns are appended whole.
    let null_user = |i: usize| null_users.as_ref().is_some_and(|m| m[i]);
    // In the order of the checks below: rows without a key that are not a null user to
    // report (shard 0 reports them), then rows outside the time range.
    let outside = |i: usize| {
        if !keys.has(i) {
            !(null_user(i) && shard.is_none_or(|(s, _)| s == 0))
        } else {
            ts[i] != NULL_TIME && range.is_some_and(|(a, b)| ts[i] < a || ts[i] >= b)
        }
    };
    let clean = |i: usize| {
        keys.has(i)
            && ts[i] != NULL_TIME
            && conv[i] != NULL_MARKER
            && (chan_ids[i] != NO_CHANNEL || conv[i] == CONVERSION)
            && tie_vals.as_ref().is_none_or(|t| t[i].is_some())
    };
    if type_ca.is_none()
        && campaign_ca.is_none()
        && (0..n).into_par_iter().with_min_len(PIECE).all(|i| outside(i) || clean(i))
    {
        let kept: Option<Vec<usize>> = (shard.is_some() || range.is_some()).then(|| {
            let mut k: Vec<usize> =
                (0..n).into_par_iter().with_min_len(PIECE).filter(|&i| !outside(i)).collect();
            k.sort_unstable();
            k
        });
        let rows = || -> Box<dyn Iterator<Item = usize> + '_> {
            match &kept {
                Some(k) => Box::new(k.iter().copied()),
                None => Box::new(0..n),
            }
        };
        log.rows_read -= (n - kept.as_ref().map_or(n, |k| k.len())) as u64;
        log.ts.extend(rows().map(|i| ts[i]));
        log.channel.extend(rows().map(|i| chan_ids[i]));
        log.is_conversion.extend(rows().map(|i| conv[i] == CONVERSION));
        log.value.extend(rows().map(value_of));
        match (&mut state.users, &keys) {
            (UserKeys::Str(all), BatchKeys::Str(k)) => all.extend(rows().map(|i| k[i])),
            (UserKeys::Int(all), BatchKeys::Int(k, _)) => all.extend(rows().map(|i| k[i])),
            _ => unreachable!("the user kind is checked for every file"),
        }
        if let Some(tv) = &tie_vals {
            state.ties.extend(rows().map(|i| tv[i].expect("checked above")));
        }
        return Ok(());
    }

    let mut reject = |reason: &str, row: usize, column: &str| -> Result<()> {
        match on_invalid {
            InvalidRows::Fail => Err(Error::bad_input(
                path,
                Some(column),
                format!(
                    "{reason} at row {} (set on_invalid_rows = \"drop\" to drop and count such rows)",
                    row_at(row)
                ),
            )),
            InvalidRows::Drop => {
                *log.rejected.entry(reason.to_owned()).or_insert(0) += 1;
                Ok(())
            }
        }
    };

    let mut not_ours = 0u64;
    let extra = &mut state.extra;
    for (i, t) in ts.iter().enumerate() {
        if !keys.has(i) {
            if null_user(i) && shard.is_none_or(|(s, _)| s == 0) {
                reject("null user id", i, &cols.user)?;
            } else {
                not_ours += 1; // another shard's user (null users are shard 0's)
            }
            continue;
        }
        let t = *t;
        if t == NULL_TIME {
            reject("null time", i, &cols.time)?;
            continue;
        }
        if range.is_some_and(|(a, b)| t < a || t >= b) {
            not_ours += 1; // outside the scope (ISO-string times are filtered here)
            continue;
        }
        if conv[i] == NULL_MARKER {
            reject("null conversion marker", i, &cols.conversion)?;
            continue;
        }
        let is_conv = conv[i] == CONVERSION;
        let channel = match chan_ids[i] {
            NO_CHANNEL if is_conv => NO_CHANNEL,
            NO_CHANNEL => {
                reject("null channel on a touch", i, &cols.channel)?;
                continue;
            }
            c => c,
        };
        let tie = match &tie_vals {
            Some(tv) => match tv[i] {
                Some(x) => Some(x),
                None => {
                    reject("null tie-breaker", i, cols.tie_breaker.as_deref().unwrap_or(""))?;
                    continue;
                }
            },
            None => None,
        };
        match (&mut state.users, &keys) {
            (UserKeys::Str(all), BatchKeys::Str(k)) => all.push(k[i]),
            (UserKeys::Int(all), BatchKeys::Int(k, _)) => all.push(k[i]),
            _ => unreachable!("the user kind is checked for every file"),
        }
        log.ts.push(t);
        log.channel.push(channel);
        log.is_conversion.push(is_conv);
        log.value.push(value_of(i));
        if let Some(x) = tie {
            state.ties.push(x);
        }
        if let Some(ca) = type_ca {
            extra.type_ids.push(ca.get(i).map(|t| extra.types.intern_str(t)).unwrap_or(NO_CHANNEL));
        }
        if let Some(ca) = campaign_ca {
            extra.campaign_ids.push(extra.campaigns.intern_str(ca.get(i).unwrap_or(NO_CAMPAIGN)));
        }
    }
    // Rows of other shards, or outside the scope, were never this run's to read.
    log.rows_read -= not_ours;
    Ok(())
}

/// Map an f64 to an i64 with the same total order (for float tie-breakers).
fn f64_order_key(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    if b < 0 {
        b ^ i64::MAX
    } else {
        b
    }
}

/// One row of an aggregated path table: (path string, conversions, nulls, value).
pub type PathTableRow = (String, f64, f64, f64);

/// Read an aggregated path table (ChannelAttribution's input): Parquet, or CSV when the file
/// name ends in `.csv`. Returns (path, conversions, nulls, value) rows and the row count.
///
/// Counts and values must be finite and ≥ 0; fractional counts are kept exactly. A row with
/// value but no conversions is an error (value belongs to conversions).
pub fn load_paths(file: &Path, cols: &crate::pipeline::PathColumns) -> Result<(Vec<PathTableRow>, u64)> {
    if !file.is_file() {
        return Err(Error::NotFound { path: file.into(), problem: "no such file".into() });
    }
    let is_csv = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let df = if is_csv {
        CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(None)
            .try_into_reader_with_file_path(Some(file.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(|e| Error::bad_input(file, None, format!("not a readable CSV file: {e}")))?
    } else {
        if std::fs::metadata(file).map_err(|e| Error::io(file, e))?.len() == 0 {
            return Err(Error::bad_input(file, None, "the file is empty (0 bytes), not a Parquet file"));
        }
        let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
        ParquetReader::new(f).finish().map_err(|e| {
            Error::bad_input(
                file,
                None,
                format!("not a readable Parquet file (corrupt, truncated or another format): {e}"),
            )
        })?
    };
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
                    format!("values must be finite and ≥ 0, found {x} (row {i})"),
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
                format!("row {i} has value {} but no conversions; value belongs to conversions", value[i]),
            ));
        }
        rows.push((p.unwrap_or("").to_owned(), conv[i], nulls[i], value[i]));
    }
    Ok((rows, n as u64))
}

/// Read a spend file: `channel` (string) and `spend` (number ≥ 0) columns, Parquet or CSV (by
/// extension); rows of the same channel are summed.
pub fn load_spend(file: &Path) -> Result<BTreeMap<String, f64>> {
    if !file.is_file() {
        return Err(Error::NotFound { path: file.into(), problem: "no such spend file".into() });
    }
    let is_csv = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let df = if is_csv {
        CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(file.to_path_buf()))
            .and_then(|r| r.finish())
            .map_err(|e| Error::bad_input(file, None, format!("not a readable CSV file: {e}")))?
    } else {
        let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
        ParquetReader::new(f)
            .finish()
            .map_err(|e| Error::bad_input(file, None, format!("not a readable Parquet file: {e}")))?
    };
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
        let c =
            c.ok_or_else(|| Error::bad_input(file, Some("channel"), format!("null channel at row {i}")))?;
        let x = x.unwrap_or(0.0);
        if !x.is_finite() || x < 0.0 {
            return Err(Error::bad_input(
                file,
                Some("spend"),
                format!("spend must be finite and ≥ 0, found {x} (row {i})"),
            ));
        }
        *out.entry(c.to_owned()).or_insert(0.0) += x;
    }
    Ok(out)
}
