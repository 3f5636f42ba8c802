//! Staging the whole customer relationship into one event frame (`docs/sources.md`): the
//! event log, the `[[sources]]` touch tables and the `[conversions]` table are mapped onto
//! one set of columns, ids go through the identity map, erased persons are dropped, rows
//! without consent and invalid rows are counted per source, repeated conversion ids are
//! dropped, and the customers table gives each row its segment. The reader then reads the
//! frame like any event file ([`super::read::load_frame`]).
//!
//! Rules owned here: ids of every source are compared as text; an alias maps to a person
//! when exactly one identity-map entry of one person covers the row's time, and stays its
//! own person when none does or when entries of two persons do (a conflict: never merge two
//! people on ambiguous evidence); of the rows sharing a conversion id the earliest is kept
//! (then by source order, person and value), so the choice never depends on row order.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::channel_rules::RuleSet;
use super::convert::{cast_err, int_marker};
use super::discover::{resolve_inputs, scoped_inputs, ReadScope};
use super::read::ChannelSource;
use super::schema::{check_schema_of, null_typed, read_problem, tie_kinds_agree, TieKind};
use super::side_tables::read_side_table;
use super::time::micros_expr;
use crate::core::event_log::{InputFile, RejectReason, StagedSummary, NO_CAMPAIGN};
use crate::error::{Error, Result};
use crate::settings::{ChannelRules, Columns, Settings};

/// The canonical columns of the staged frame.
const PERSON: &str = "person";
const TIME: &str = "time";
const CHANNEL: &str = "channel";
const CONVERSION: &str = "is_conversion";
const VALUE: &str = "value";
const OPTIONAL: [&str; 11] = [
    "source",
    "segment",
    "conversion_type",
    "conversion_id",
    "campaign",
    "touch_type",
    "consent",
    EVENT_ID,
    UTM[0],
    UTM[1],
    UTM[2],
];
/// The event log's options that direct input has too (`docs/sources.md`): its event ids,
/// its tie-breaker and the UTM columns `[channel_rules]` read (source, medium, campaign).
const EVENT_ID: &str = "event_id";
const TIE: &str = "tie_breaker";
const UTM: [&str; 3] = ["__utm_source", "__utm_medium", "__utm_campaign"];

/// The staged frame, the column mapping to read it with, and what staging counted.
pub struct Staged {
    /// One row per kept event, canonical columns.
    pub frame: DataFrame,
    /// How [`super::read::load_frame`] reads it.
    pub columns: Columns,
    /// Every file read, with its rows (after the erasure list).
    pub files: Vec<InputFile>,
    /// Rows dropped as invalid, by reason (with `on_invalid_rows = "drop"`).
    pub rejected: std::collections::BTreeMap<RejectReason, u64>,
    /// Per-source counts, the identity map's and the erasure's.
    pub summary: StagedSummary,
    /// Rows of other shards' persons (with `--shard`), not counted in `summary`.
    pub other_shards: u64,
    /// `[channel_rules]` over the frame's UTM columns, when configured: they give the event
    /// log's rows their channel (the other sources name theirs, which wins: read with
    /// [`super::LoadOptions::own_channel`]).
    pub channel_rules: Option<ChannelRules>,
    /// With no conversion among the event log's rows: values its text marker holds (the
    /// reader's warning of a typo in the conversion value).
    pub marker_values: std::collections::BTreeSet<String>,
}

/// `[channel_rules]` as the reader applies them to the staged frame: the configured rules
/// over the frame's UTM columns (none when the rules are off).
fn staged_rules(s: &Settings) -> Option<ChannelRules> {
    let [source, medium, campaign] = UTM.map(String::from);
    s.channel_rules.enabled().then(|| ChannelRules { source, medium, campaign, ..s.channel_rules.clone() })
}

/// One source as the stager sees it: its name, files and the expressions of its columns.
struct SourcePlan {
    name: String,
    files: Vec<PathBuf>,
    /// Original column names of user, time, channel and marker (for messages).
    user: String,
    time: String,
    channel: String,
    marker: String,
    kind: Kind,
    /// `[channel_rules]`, when they give this source's rows their channel (the event log's).
    rules: Option<RuleSet>,
}

enum Kind {
    /// The event log, mapped by `[columns]`.
    Events(Box<Columns>),
    /// Touches: a channel column or one channel, and an optional campaign column.
    Touches { channel: Result<String, String>, campaign: Option<String> },
    /// Conversions: id, optional type and value columns.
    Conversions { id: String, r#type: Option<String>, value: Option<String> },
}

/// Stage every configured source within a read scope.
pub fn stage(settings: &Settings, scope: &ReadScope) -> Result<Staged> {
    let t = std::time::Instant::now();
    let plans = source_plans(settings, scope, None)?;
    let (frames, files) = read_sources(&plans, scope, false)?;
    let marker_values = marker_examples(&plans, &frames)?;
    tracing::debug!(ms = t.elapsed().as_millis(), "scanned the sources");
    // One chunk per column: the row pass reads rows by index.
    let with_options = UnionArgs { rechunk: true, ..Default::default() };
    let frame = concat(frames.into_iter().map(|f| f.lazy()).collect::<Vec<_>>(), with_options)
        .and_then(|lf| lf.collect())
        .map_err(|e| Error::Internal(format!("staging the sources: {e}")))?;
    tracing::debug!(ms = t.elapsed().as_millis(), "concatenated the sources");
    let mut identity = load_identity(settings)?;
    let mut erased = load_id_set(settings.input.erasure_list.as_deref(), &settings.input.erasure_column)?;
    forget_in_identity(&mut identity, &mut erased);
    let customers = load_customers(settings)?;
    tracing::debug!(ms = t.elapsed().as_millis(), rows = frame.height(), "loaded the side tables");
    let pass = RowPass {
        settings,
        plans: &plans,
        identity: &identity,
        erased: &erased,
        customers: &customers,
        shard: scope.shard,
    };
    let mut staged = pass.run(frame, files, None)?;
    staged.marker_values = marker_values;
    Ok(staged)
}

/// With no conversion among the event log's rows and a text marker column: the first few
/// distinct values it holds, for the warning a file read directly gives
/// ([`super::read::marker_typo`]).
fn marker_examples(plans: &[SourcePlan], frames: &[DataFrame]) -> Result<std::collections::BTreeSet<String>> {
    let mut seen = std::collections::BTreeSet::new();
    if plans.iter().any(|p| matches!(p.kind, Kind::Conversions { .. })) {
        return Ok(seen); // the conversions come from the conversions table
    }
    let Some((si, p, c)) = plans.iter().enumerate().find_map(|(i, p)| match &p.kind {
        Kind::Events(c) => Some((i as u32, p, c)),
        _ => None,
    }) else {
        return Ok(seen);
    };
    let of_events = |f: &&DataFrame| {
        let source = f.column("__source").ok().and_then(|s| s.u32().ok().filter(|s| !s.is_empty())?.get(0));
        source == Some(si)
    };
    let converts =
        |f: &DataFrame| f.column(CONVERSION).ok().and_then(|s| s.bool().ok()).is_some_and(|b| b.any());
    if frames.iter().filter(of_events).any(converts) {
        return Ok(seen);
    }
    for file in &p.files {
        // The first rows only: a few examples for a warning, not a pass over the log.
        let df = scan(file)?.select([col(c.conversion.as_str())]).limit(1 << 20).collect();
        let df = df.map_err(|e| Error::bad_input(file, Some(&c.conversion), e.to_string()))?;
        let Ok(text) = df.column(&c.conversion).and_then(|s| s.str()) else { return Ok(seen) };
        for v in text.iter().flatten() {
            if seen.len() >= super::convert::MARKER_EXAMPLES {
                return Ok(seen);
            }
            seen.insert(v.to_owned());
        }
    }
    Ok(seen)
}

/// Check every source without reading its rows (`touchpoint validate`, `--dry-run`): the
/// files exist, have the mapped columns with accepted types, one id type per source; the
/// identity map, customers table and erasure list are read (they are small).
pub fn check(settings: &Settings, scope: &ReadScope) -> Result<Vec<InputFile>> {
    let plans = source_plans(settings, scope, None)?;
    let (_, mut files) = read_sources(&plans, scope, true)?;
    for f in &mut files {
        f.rows = file_rows(&f.path)?;
    }
    load_identity(settings)?;
    load_id_set(settings.input.erasure_list.as_deref(), &settings.input.erasure_column)?;
    load_customers(settings)?;
    Ok(files)
}

/// Rows of a source file (all of them, before any range): Parquet from its footer.
fn file_rows(file: &Path) -> Result<u64> {
    let df = scan(file)?.select([len().alias("rows")]).collect();
    let df = df.map_err(|e| Error::bad_input(file, None, super::schema::open_problem(&e)))?;
    let rows = df.column("rows").ok().and_then(|c| c.get(0).ok()).and_then(|v| v.extract::<u64>());
    Ok(rows.unwrap_or(0))
}

/// Every file of every source as canonical columns (`dry`: no rows, the checks only).
fn read_sources(
    plans: &[SourcePlan],
    scope: &ReadScope,
    dry: bool,
) -> Result<(Vec<DataFrame>, Vec<InputFile>)> {
    let mut frames = Vec::new();
    let mut files = Vec::new();
    let mut ties: Vec<FileTie> = Vec::new();
    for (si, p) in plans.iter().enumerate() {
        let mut first: Option<(&Path, bool)> = None;
        for f in &p.files {
            let (frame, numeric, tie) = read_source_file(p, f, (si, files.len(), dry), scope)?;
            ties.push((si, tie));
            match first {
                Some((other, n)) if n != numeric => {
                    let kind = |n: bool| if n { "integer" } else { "string" };
                    return Err(Error::bad_input(
                        f,
                        Some(&p.user),
                        format!(
                            "id type differs between the files of source `{}` ({} here, {} in {})",
                            p.name,
                            kind(numeric),
                            kind(n),
                            other.display()
                        ),
                    ));
                }
                None => first = Some((f, numeric)),
                _ => {}
            }
            frames.push(frame);
            files.push(InputFile { path: f.clone(), rows: 0 });
        }
    }
    let frames = align_ties(frames, (plans, &files, &ties))?;
    Ok((frames, files))
}

/// Of each file read: its source's index, and its tie-breaker's kind (the event log's).
type FileTie = (usize, Option<TieKind>);

/// The event log's tie-breaker in one type across its files (one kind, by the rule of
/// files read directly: [`tie_kinds_agree`]), and the other sources' rows, which have none,
/// given the lowest value of that type: at one instant they come before the event log's
/// rows of the same kind of row (`docs/sources.md`).
fn align_ties(
    frames: Vec<DataFrame>,
    (plans, files, ties): (&[SourcePlan], &[InputFile], &[FileTie]),
) -> Result<Vec<DataFrame>> {
    let Some(column) = plans.iter().find_map(|p| match &p.kind {
        Kind::Events(c) => c.tie_breaker.clone(),
        _ => None,
    }) else {
        return Ok(frames);
    };
    let is_events = |si: usize| matches!(plans[si].kind, Kind::Events(_));
    let of_events = files.iter().zip(ties).filter(|(_, (si, _))| is_events(*si));
    tie_kinds_agree(of_events.clone().map(|(f, (_, k))| (f.path.as_path(), *k)), Some(&column))?;
    let dtype = tie_type(of_events.clone().find_map(|(_, (_, k))| *k));
    frames.into_iter().zip(ties).map(|(f, (si, _))| align_tie(f, is_events(*si), &dtype)).collect()
}

/// The one type of the tie-breakers of a kind.
fn tie_type(kind: Option<TieKind>) -> DataType {
    match kind {
        Some(TieKind::Str) => DataType::String,
        Some(TieKind::Float) => DataType::Float64,
        Some(TieKind::Int) | None => DataType::Int64,
    }
}

/// A file's tie-breaker in the type of the event log's: its own cast (an event-log file),
/// or the lowest value of the type (the other sources' rows, which have none).
fn align_tie(mut f: DataFrame, is_events: bool, dtype: &DataType) -> Result<DataFrame> {
    let internal = |e: PolarsError| Error::Internal(format!("staging the sources: {e}"));
    // Last in every frame, whether replaced or added: the frames concatenate by position.
    if !is_events {
        let lowest = match dtype {
            DataType::String => lit(""),
            DataType::Float64 => lit(f64::NEG_INFINITY),
            _ => lit(i64::MIN),
        };
        return f.lazy().with_column(lowest.cast(dtype.clone()).alias(TIE)).collect().map_err(internal);
    }
    let tie = f.drop_in_place(TIE).map_err(internal)?.cast(dtype).map_err(internal)?;
    f.with_column(tie).map_err(internal)?;
    Ok(f)
}

/// The sources of the settings, in a fixed order: the event log, `[[sources]]`, conversions;
/// their files as listed now, or as `listed` (a distributed read's plan: its tasks read the
/// files the driver listed, even if a directory changed since).
fn source_plans(s: &Settings, scope: &ReadScope, listed: Option<&[Vec<PathBuf>]>) -> Result<Vec<SourcePlan>> {
    let mut plans = Vec::new();
    let files = |k: usize, list: &dyn Fn() -> Result<Vec<PathBuf>>| -> Result<Vec<PathBuf>> {
        match listed {
            Some(l) => {
                l.get(k).cloned().ok_or_else(|| Error::Internal(format!("the read plan has no source {k}")))
            }
            None => list(),
        }
    };
    if let Some(events) = &s.input.events {
        let c = &s.columns;
        plans.push(SourcePlan {
            name: s.input.source_name.clone(),
            files: files(plans.len(), &|| scoped_inputs(events, scope))?,
            user: c.user.clone(),
            time: c.time.clone(),
            channel: c.channel.clone(),
            marker: c.conversion.clone(),
            kind: Kind::Events(Box::new(c.clone())),
            rules: s.channel_rules.enabled().then(|| RuleSet::compile(&s.channel_rules)).transpose()?,
        });
    }
    for src in &s.sources {
        if let Some(p) = src.channel.as_deref().and_then(crate::core::event_log::reserved_name_problem) {
            return Err(Error::Config(format!("source `{}`: channel {p}", src.name)));
        }
        plans.push(SourcePlan {
            name: src.name.clone(),
            files: files(plans.len(), &|| source_files(&src.path))?,
            user: src.user.clone(),
            time: src.time.clone(),
            channel: src.channel_column.clone().unwrap_or_default(),
            marker: String::new(),
            kind: Kind::Touches {
                channel: src.channel_column.clone().ok_or_else(|| src.channel.clone().unwrap_or_default()),
                campaign: src.campaign.clone(),
            },
            rules: None,
        });
    }
    let cv = &s.conversions;
    if let Some(path) = &cv.path {
        plans.push(SourcePlan {
            name: cv.name.clone(),
            files: files(plans.len(), &|| source_files(path))?,
            user: cv.user.clone(),
            time: cv.time.clone(),
            channel: String::new(),
            marker: String::new(),
            kind: Kind::Conversions { id: cv.id.clone(), r#type: cv.r#type.clone(), value: cv.value.clone() },
            rules: None,
        });
    }
    if plans.is_empty() {
        return Err(Error::Config("no event log (--events, or input.events in the pipeline file)".into()));
    }
    Ok(plans)
}

/// A source's files: a CSV file as it is, else what `--events` accepts.
fn source_files(spec: &str) -> Result<Vec<PathBuf>> {
    let p = Path::new(spec);
    if p.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    resolve_inputs(spec)
}

/// A file as a lazy frame: CSV by extension (types inferred), Parquet otherwise.
fn scan(file: &Path) -> Result<LazyFrame> {
    let is_csv = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        return Ok(read_side_table(file)?.lazy());
    }
    super::schema::not_empty(file)?;
    let path = file.to_string_lossy().to_string();
    LazyFrame::scan_parquet(PlRefPath::new(path.as_str()), ScanArgsParquet::default())
        .map_err(|e| Error::bad_input(file, None, super::schema::open_problem(&e)))
}

/// Read one file of a source into the canonical columns, plus its file index and row;
/// and whether its id column is an integer (one type across a source's files).
fn read_source_file(
    p: &SourcePlan,
    file: &Path,
    (si, fi, dry): (usize, usize, bool),
    scope: &ReadScope,
) -> Result<(DataFrame, bool, Option<TieKind>)> {
    let mut lf = scan(file)?;
    let schema =
        lf.collect_schema().map_err(|e| Error::bad_input(file, None, super::schema::open_problem(&e)))?;
    let need = |name: &str| -> Result<DataType> {
        schema.get(name).cloned().ok_or_else(|| {
            let mut have: Vec<&str> = schema.iter_names().map(|s| s.as_str()).collect();
            have.sort();
            Error::bad_input(file, Some(name), format!("missing column (the file has: {})", have.join(", ")))
        })
    };
    let text = |name: &str| -> Result<Expr> {
        need(name)?;
        Ok(col(name).cast(DataType::String))
    };
    let user_dt = need(&p.user)?;
    let time_dt = need(&p.time)?;
    if !(user_dt.is_integer() || matches!(user_dt, DataType::String | DataType::Categorical(..))) {
        return Err(Error::bad_input(
            file,
            Some(&p.user),
            super::schema::type_problem(&user_dt, "a string or integer id"),
        ));
    }
    let mut exprs = vec![
        col(p.user.as_str()).cast(DataType::String).alias(PERSON),
        micros_expr(&p.time, &time_dt, file)?.alias(TIME),
        lit(p.name.as_str()).alias("source"),
        lit(fi as u32).cast(DataType::UInt32).alias("__file"),
        lit(si as u32).cast(DataType::UInt32).alias("__source"),
    ];
    let null_text = || lit(NULL).cast(DataType::String);
    let mut optional: FxHashMap<&str, Expr> = FxHashMap::default();
    let mut tie = None;
    match &p.kind {
        Kind::Events(c) => {
            let chan_src = ChannelSource { rules: p.rules.clone(), own: false };
            // The type rules of files read directly, and their messages.
            tie = check_schema_of(file, &schema, 0, c, &chan_src)?.tie;
            if let Some(t) = &c.tie_breaker {
                exprs.push(tie_expr(t, tie).alias(TIE));
            }
            if let Some(e) = &c.event_id {
                optional.insert(EVENT_ID, text(e)?);
            }
            match &p.rules {
                // The rules give every row its channel; the channel column is not read.
                Some(rules) => {
                    let used = (0..3).filter(|&k| rules.uses()[k]);
                    for (k, name) in used.zip(&rules.columns) {
                        optional.insert(UTM[k], text(name)?);
                    }
                    exprs.push(null_text().alias(CHANNEL));
                }
                None => exprs.push(text(&c.channel)?.alias(CHANNEL)),
            }
            exprs.push(marker_expr(c, &need(&c.conversion)?, file)?.alias(CONVERSION));
            exprs.push(value_expr(c.value.as_deref(), &need, file)?);
            for (key, name) in [
                ("segment", &c.segment),
                ("conversion_type", &c.conversion_type),
                ("conversion_id", &c.conversion_id),
                ("campaign", &c.campaign),
                ("touch_type", &c.touch_type),
            ] {
                if let Some(n) = name {
                    optional.insert(key, text(n)?);
                }
            }
            if let Some(k) = &c.consent {
                need(k)?;
                optional.insert("consent", col(k.as_str()).cast(DataType::Boolean));
            }
        }
        Kind::Touches { channel, campaign } => {
            exprs.push(match channel {
                Ok(column) => text(column)?.alias(CHANNEL),
                Err(constant) => lit(constant.as_str()).alias(CHANNEL),
            });
            exprs.push(lit(false).alias(CONVERSION));
            exprs.push(lit(0.0f64).alias(VALUE));
            if let Some(k) = campaign {
                optional.insert("campaign", text(k)?);
            }
        }
        Kind::Conversions { id, r#type, value } => {
            exprs.push(null_text().alias(CHANNEL));
            exprs.push(lit(true).alias(CONVERSION));
            exprs.push(value_expr(value.as_deref(), &need, file)?);
            optional.insert("conversion_id", text(id)?);
            if let Some(t) = r#type {
                optional.insert("conversion_type", text(t)?);
            }
        }
    }
    for key in OPTIONAL.into_iter().filter(|k| *k != "source") {
        let e = optional.remove(key).unwrap_or_else(|| match key {
            "consent" => lit(true),
            _ => null_text(),
        });
        exprs.push(e.alias(key));
    }
    lf = lf
        .select(exprs)
        // After the projection, so an input column named `__row` cannot collide.
        .with_row_index("__row", None)
        .with_column(col("__row").cast(DataType::UInt32));
    if dry {
        lf = lf.slice(0, 0);
    }
    if let Some((a, b)) = scope.range {
        let t = col(TIME);
        lf = lf.filter(t.clone().is_null().or(t.clone().gt_eq(lit(a)).and(t.lt(lit(b)))));
    }
    let time_strings = matches!(time_dt, DataType::String).then_some(p.time.as_str());
    let df = lf.collect().map_err(|e| read_problem(&e, file, time_strings))?;
    let df = match &p.kind {
        Kind::Events(c) if need(&c.conversion)?.is_integer() => int_markers(df, file, &c.conversion)?,
        _ => df,
    };
    let value = match &p.kind {
        Kind::Events(c) => c.value.as_deref(),
        Kind::Conversions { value, .. } => value.as_deref(),
        Kind::Touches { .. } => None,
    };
    if let Some(name) = value {
        // The finite values of conversion rows, as the direct read sums the kept ones: a
        // NaN, infinite or negative value is the row rule's to name (`RowPass`).
        let (values, converts) =
            (df.column(VALUE).and_then(|c| c.f64()), df.column(CONVERSION).and_then(|c| c.bool()));
        let total: f64 = match (values, converts) {
            (Ok(v), Ok(c)) => v
                .iter()
                .zip(c.iter())
                .filter_map(|(v, c)| v.filter(|x| c == Some(true) && x.is_finite() && *x >= 0.0))
                .sum(),
            _ => 0.0,
        };
        if !total.is_finite() {
            return Err(Error::bad_input(file, Some(name), super::read::VALUE_OVERFLOW));
        }
    }
    Ok((df, user_dt.is_integer(), tie))
}

/// A tie-breaker column in the one type of its kind (strings, floats, or the integer
/// representation of integers, booleans and temporal values: what the reader orders by).
fn tie_expr(name: &str, kind: Option<TieKind>) -> Expr {
    let c = col(name);
    match kind {
        Some(TieKind::Str) => c.cast(DataType::String),
        Some(TieKind::Float) => c.cast(DataType::Float64),
        Some(TieKind::Int) => c.to_physical().cast(DataType::Int64),
        None => lit(NULL).cast(DataType::Int64),
    }
}

/// The conversion marker of the event log: a string equal to `conversion_value`, a
/// boolean, or a 0/1 integer. Integers stay integers here, checked by the reader's own rule
/// once the file is read ([`int_markers`]).
fn marker_expr(c: &Columns, dt: &DataType, file: &Path) -> Result<Expr> {
    let m = col(c.conversion.as_str());
    Ok(match dt {
        DataType::Boolean => m,
        d if d.is_integer() => m.cast(DataType::Int64),
        DataType::String | DataType::Categorical(..) => {
            m.cast(DataType::String).eq(lit(c.conversion_value.as_str()))
        }
        d => {
            return Err(Error::bad_input(
                file,
                Some(&c.conversion),
                super::schema::type_problem(d, "a string, boolean or 0/1 integer conversion marker"),
            ))
        }
    })
}

/// A value column: numbers only (a text value is refused, never read as 0); a column of
/// type null is read as null values, as the reader does ([`null_typed`]).
fn value_expr(value: Option<&str>, need: &dyn Fn(&str) -> Result<DataType>, file: &Path) -> Result<Expr> {
    Ok(match value {
        Some(v) => {
            let dt = need(v)?;
            if !(dt.is_primitive_numeric() || matches!(dt, DataType::Decimal(..)) || null_typed(&dt)) {
                let problem = super::schema::type_problem(&dt, "a float, integer or decimal value");
                return Err(Error::bad_input(file, Some(v), problem));
            }
            col(v).cast(DataType::Float64).alias(VALUE)
        }
        None => lit(0.0f64).alias(VALUE),
    })
}

/// A staged file's integer conversion markers as booleans, by the rule of files read
/// directly ([`int_marker`]: 0 or 1, anything else an error naming the file's row).
fn int_markers(mut df: DataFrame, file: &Path, column: &str) -> Result<DataFrame> {
    let internal = |e: PolarsError| Error::Internal(format!("staging the sources: {e}"));
    let ints = df.column(CONVERSION).map_err(internal)?.as_materialized_series().i64().map_err(internal)?;
    let rows = df.column("__row").map_err(internal)?.as_materialized_series().u32().map_err(internal)?;
    let conv: BooleanChunked = ints
        .iter()
        .zip(rows.iter())
        .map(|(v, row)| v.map(|x| int_marker(x, file, column, row.unwrap_or(0) as usize)).transpose())
        .collect::<Result<_>>()?;
    df.with_column(conv.with_name(CONVERSION.into()).into_series().into()).map_err(internal)?;
    Ok(df)
}

/// The identity map: alias → its entries (valid from, valid to, person).
type Identity = FxHashMap<String, Vec<(i64, i64, String)>>;

fn load_identity(s: &Settings) -> Result<Identity> {
    let id = &s.identity;
    let Some(path) = &id.path else { return Ok(Identity::default()) };
    let file = Path::new(path);
    let df = read_side_table(file)?;
    let alias = text_column(&df, file, &id.alias)?;
    let person = text_column(&df, file, &id.person)?;
    let bound = |c: &Option<String>, default: i64| -> Result<Vec<i64>> {
        match c {
            None => Ok(vec![default; df.height()]),
            Some(name) => {
                let dt = df.column(name).map_err(|_| missing(file, name, &df))?.dtype().clone();
                if null_typed(&dt) {
                    return Ok(vec![default; df.height()]); // every bound open
                }
                let out = df.clone().lazy().select([micros_expr(name, &dt, file)?]).collect();
                let time_strings = matches!(dt, DataType::String).then_some(name.as_str());
                let out = out.map_err(|e| read_problem(&e, file, time_strings))?;
                let ca =
                    out.columns()[0].as_materialized_series().i64().map_err(cast_err(file, name))?.clone();
                Ok(ca.iter().map(|v| v.unwrap_or(default)).collect())
            }
        }
    };
    let (from, to) = (bound(&id.valid_from, i64::MIN)?, bound(&id.valid_to, i64::MAX)?);
    let mut map = Identity::default();
    for (i, (a, p)) in alias.into_iter().zip(person).enumerate() {
        let (Some(a), Some(p)) = (a, p) else {
            return Err(Error::bad_input(
                file,
                Some(&id.alias),
                format!("null alias or person at row {i} (counted from 0)"),
            ));
        };
        map.entry(a).or_default().push((from[i], to[i], p));
    }
    Ok(map)
}

/// An erased person's aliases are erased too (every row under them is dropped, even
/// where the alias was shared), and the map forgets the person's entries, so the counts
/// equal those of a map that never held the person.
fn forget_in_identity(identity: &mut Identity, erased: &mut FxHashSet<String>) {
    if erased.is_empty() {
        return;
    }
    let aliases: Vec<String> = identity
        .iter()
        .filter(|(_, v)| v.iter().any(|(_, _, p)| erased.contains(p)))
        .map(|(a, _)| a.clone())
        .collect();
    erased.extend(aliases);
    identity.retain(|a, v| !erased.contains(a) && !v.is_empty());
}

fn missing(file: &Path, name: &str, df: &DataFrame) -> Error {
    let mut have: Vec<&str> = df.get_column_names().into_iter().map(|s| s.as_str()).collect();
    have.sort();
    Error::bad_input(file, Some(name), format!("missing column (the file has: {})", have.join(", ")))
}

fn text_column(df: &DataFrame, file: &Path, name: &str) -> Result<Vec<Option<String>>> {
    let s = df.column(name).map_err(|_| missing(file, name, df))?.as_materialized_series();
    let s = s.cast(&DataType::String).map_err(cast_err(file, name))?;
    Ok(s.str().map_err(cast_err(file, name))?.iter().map(|v| v.map(str::to_owned)).collect())
}

/// The ids listed in one column of a file (the erasure list).
fn load_id_set(path: Option<&str>, column: &str) -> Result<FxHashSet<String>> {
    let Some(path) = path else { return Ok(FxHashSet::default()) };
    let file = Path::new(path);
    if !file.is_file() {
        return Err(Error::NotFound { path: file.into(), problem: "no such erasure list".into() });
    }
    let df = read_side_table(file)?;
    Ok(text_column(&df, file, column)?.into_iter().flatten().collect())
}

/// The customers table: person → segment. A person listed twice with two segments is an
/// error (rows named by number, never by id).
fn load_customers(s: &Settings) -> Result<Option<FxHashMap<String, String>>> {
    let sg = &s.segments;
    let Some(path) = &sg.customers else { return Ok(None) };
    let file = Path::new(path);
    let df = read_side_table(file)?;
    let persons = text_column(&df, file, &sg.person)?;
    let segments = text_column(&df, file, &sg.segment)?;
    let mut map: FxHashMap<String, (String, usize)> = FxHashMap::default();
    let segments_named_none = segments.iter().any(|g| g.as_deref() == Some(NO_CAMPAIGN));
    for (i, (p, g)) in persons.into_iter().zip(segments).enumerate() {
        let Some(p) = p else {
            return Err(Error::bad_input(
                file,
                Some(&sg.person),
                format!("null person at row {i} (counted from 0)"),
            ));
        };
        let g = g.unwrap_or_else(|| NO_CAMPAIGN.to_owned());
        if g == NO_CAMPAIGN && segments_named_none {
            return Err(Error::bad_input(
                file,
                Some(&sg.segment),
                format!("row {i}: `{NO_CAMPAIGN}` is the segment touchpoint gives persons without a row; rename it"),
            ));
        }
        if let Some((other, at)) = map.get(&p) {
            if *other != g {
                return Err(Error::bad_input(
                    file,
                    Some(&sg.segment),
                    format!("row {i} gives the person of row {at} another segment (rows counted from 0)"),
                ));
            }
            continue;
        }
        map.insert(p, (g, i));
    }
    Ok(Some(map.into_iter().map(|(k, (g, _))| (k, g)).collect()))
}

#[path = "sources_pass.rs"]
mod pass;
use pass::RowPass;

#[path = "sources_split.rs"]
mod split;
pub use split::{split_plan, stage_file, stage_rows, FileRead, SplitPlan};
