//! Conversion of one read batch (a Polars frame) into the plain columns of the event log:
//! parallel over pieces of 64k rows; invalid rows fail the run or are dropped and counted.

use std::path::Path;

use polars::prelude::*;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::channel_rules::RuleSet;
use super::discover::ReadScope;
use super::read::{Interner, LoadState, UserKeys};
use super::schema::{FilePlan, MarkerKind, UserKind};
use crate::core::event_log::{
    shard_of_i32, shard_of_i64, shard_of_str, EventLog, RejectReason, NO_CAMPAIGN, NO_CHANNEL,
};
use crate::core::intern::PIECE;
use crate::error::{Error, Result};
use crate::settings::{Columns, InvalidRows};

/// How many distinct values of a string marker column a message shows.
pub(super) const MARKER_EXAMPLES: usize = 8;

/// A null time: a sentinel no real timestamp reaches (halves the memory of `Option<i64>`).
const NULL_TIME: i64 = i64::MIN;
/// Conversion marker of a row: touch, conversion, or null.
const TOUCH: u8 = 0;
const CONVERSION: u8 = 1;
const NULL_MARKER: u8 = 2;

/// Fill `$out` in parallel pieces from the values of the chunked array `$ca`: for each row
/// `$row` with value `$v`, `$body` gives the element (it may `return Err(..)`). One macro
/// instead of the same slice-and-zip loop for every column type.
macro_rules! par_convert {
    ($out:expr, $ca:expr, |$row:ident, $v:ident| $body:expr) => {
        par_fill($out, |at, o| {
            let len = o.len();
            for (j, (o, $v)) in o.iter_mut().zip($ca.slice(at as i64, len).iter()).enumerate() {
                let $row = at + j;
                let _ = $row;
                *o = $body;
            }
            Ok(())
        })
    };
}

/// Fill `out` in parallel, [`PIECE`] rows at a time: `f(first row, piece)`. Of several
/// failing pieces the first one's error is returned, so messages do not depend on timing.
fn par_fill<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) -> Result<()> + Sync) -> Result<()> {
    let results: Vec<Result<()>> =
        out.par_chunks_mut(PIECE).enumerate().map(|(p, o)| f(p * PIECE, o)).collect();
    results.into_iter().collect()
}

pub(super) fn series<'a>(df: &'a DataFrame, name: &str, path: &Path) -> Result<&'a Series> {
    df.column(name)
        .map(|c| c.as_materialized_series())
        .map_err(|e| Error::bad_input(path, Some(name), e.to_string()))
}

pub(super) fn cast_err<'a>(path: &'a Path, name: &str) -> impl Fn(PolarsError) -> Error + 'a {
    let name = name.to_owned();
    move |e| Error::bad_input(path, Some(&name), e.to_string())
}

/// What one batch's conversion needs to know about where it comes from.
pub(super) struct BatchContext<'a> {
    pub(super) plan: &'a FilePlan,
    pub(super) cols: &'a Columns,
    pub(super) on_invalid: InvalidRows,
    pub(super) scope: &'a ReadScope,
    /// Row of the file at which the batch starts.
    pub(super) offset: usize,
    /// Integer user ids of every file fit 32 bits (shards hash them as Spark's `INT`).
    pub(super) user_int32: bool,
}

/// The columns of one batch, converted; row `i` of each is row `i` of the batch.
struct BatchColumns<'a> {
    keys: BatchKeys,
    null_users: Option<Vec<bool>>,
    ts: Vec<i64>,
    conv: Vec<u8>,
    values: Option<Vec<f64>>,
    channel: Vec<u32>,
    /// Rows `[channel_rules]` matched no rule of (counted when kept).
    unmatched: Option<Vec<bool>>,
    tie: Option<Vec<Option<i64>>>,
    touch_type: Option<&'a StringChunked>,
    campaign: Option<&'a StringChunked>,
    /// [`Columns::tags`].
    tags: [Option<&'a StringChunked>; 4],
    event: Option<Vec<u128>>,
    /// Consent per row (false for false or null), when a consent column is mapped.
    consent: Option<Vec<bool>>,
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

    fn push_to(&self, all: &mut UserKeys, i: usize) {
        match (all, self) {
            (UserKeys::Str(all, _), BatchKeys::Str(k)) => all.push(k[i]),
            (UserKeys::Int(all), BatchKeys::Int(k, _)) => all.push(k[i]),
            _ => unreachable!("the user kind is checked for every file"),
        }
    }
}

/// Convert one batch of a file and append its valid rows to the log.
pub(super) fn append_batch(
    ctx: &BatchContext,
    df: DataFrame,
    log: &mut EventLog,
    state: &mut LoadState,
) -> Result<()> {
    // With --shard, other shards' rows are dropped before any column is converted (null
    // users belong to shard 0, so they are reported exactly once); `row_of` maps the rows
    // left to their row in the batch, for messages.
    let (df, row_of) = match ctx.scope.shard {
        Some(sh) => {
            let before = df.height();
            let (df, rows) = shard_rows(df, ctx, sh)?;
            let skipped = (before - df.height()) as u64;
            log.rows_read -= skipped;
            log.other_shards += skipped;
            (df, Some(rows))
        }
        None => (df, None),
    };
    let row_at = |i: usize| ctx.offset + row_of.as_ref().map_or(i, |r| r[i] as usize);
    let c = convert_columns(ctx, &df, state, &row_at)?;
    if !append_clean(ctx, &c, log, state) {
        append_checked(ctx, &c, log, state, &row_at)?;
    }
    Ok(())
}

fn convert_columns<'a>(
    ctx: &BatchContext,
    df: &'a DataFrame,
    state: &mut LoadState,
    row_at: &(dyn Fn(usize) -> usize + Sync),
) -> Result<BatchColumns<'a>> {
    let (cols, path) = (ctx.cols, ctx.plan.path.as_path());
    // Users first (hashing: the most expensive part, parallel inside).
    let (keys, null_users) = batch_user_keys(series(df, &cols.user, path)?, ctx, state.names.as_mut())?;
    let ts = time_micros(series(df, &cols.time, path)?, path, &cols.time)?;
    let marker_s = series(df, &cols.conversion, path)?;
    let conv = markers(marker_s, ctx, row_at)?;
    if ctx.plan.marker == MarkerKind::Str
        && state.marker_values.len() < MARKER_EXAMPLES
        && !conv.contains(&CONVERSION)
    {
        // No row of this batch is a conversion: keep a few of the values the column holds,
        // for the message if no batch has one (a typo in the marker value).
        let ca = marker_s.str().map_err(cast_err(path, &cols.conversion))?;
        for v in ca.iter().flatten() {
            if state.marker_values.len() >= MARKER_EXAMPLES {
                break;
            }
            state.marker_values.insert(v.to_owned());
        }
    }
    let values = match &cols.value {
        Some(v) => Some(conversion_values(series(df, v, path)?, path, v, row_at)?),
        None => None,
    };
    let own = match state.chan_src.reads_channel() {
        true => Some(series(df, &cols.channel, path)?.str().map_err(cast_err(path, &cols.channel))?),
        false => None,
    };
    let (channel, unmatched) = match (state.chan_src.rules.as_ref(), own) {
        (None, Some(own)) => (channel_ids(own, &mut state.channels), None),
        (Some(rules), own) => {
            let utm: Vec<&StringChunked> = rules
                .columns
                .iter()
                .map(|c| series(df, c, path)?.str().map_err(cast_err(path, c)))
                .collect::<Result<_>>()?;
            let (ids, unmatched) = rule_channel_ids(rules, (&utm, own), &conv, &mut state.channels);
            (ids, Some(unmatched))
        }
        (None, None) => unreachable!("without rules the channel column is read"),
    };
    let tie = match &cols.tie_breaker {
        Some(t) => Some(tie_values(series(df, t, path)?, path, t, state)?),
        None => None,
    };
    let optional = |c: &Option<String>| -> Result<Option<&'a StringChunked>> {
        match c {
            Some(c) => Ok(Some(series(df, c, path)?.str().map_err(cast_err(path, c))?)),
            None => Ok(None),
        }
    };
    let (touch_type, campaign) = (optional(&cols.touch_type)?, optional(&cols.campaign)?);
    let t = cols.tags().map(|c| c.cloned());
    let tags = [optional(&t[0])?, optional(&t[1])?, optional(&t[2])?, optional(&t[3])?];
    let event = match optional(&cols.event_id)? {
        Some(ca) => {
            let mut keys = vec![0u128; ca.len()];
            par_convert!(&mut keys, ca, |_row, v| v
                .map_or(0, |s| xxhash_rust::xxh3::xxh3_128(s.as_bytes()).max(1)))?;
            Some(keys)
        }
        None => None,
    };
    let consent = match &cols.consent {
        Some(k) => {
            let ca = series(df, k, path)?.bool().map_err(cast_err(path, k))?;
            Some(ca.iter().map(|v| v.unwrap_or(false)).collect())
        }
        None => None,
    };
    Ok(BatchColumns {
        keys,
        null_users,
        ts,
        conv,
        values,
        channel,
        unmatched,
        tie,
        touch_type,
        campaign,
        tags,
        event,
        consent,
    })
}

impl BatchColumns<'_> {
    fn null_user(&self, i: usize) -> bool {
        self.null_users.as_ref().is_some_and(|m| m[i])
    }

    /// Rows that are not this run's to read: no key and not a null user to report (shard 0
    /// reports them), or outside the time range.
    fn outside(&self, i: usize, scope: &ReadScope) -> bool {
        if !self.keys.has(i) {
            !(self.null_user(i) && scope.shard.is_none_or(|(s, _)| s == 0))
        } else {
            self.ts[i] != NULL_TIME && scope.range.is_some_and(|(a, b)| self.ts[i] < a || self.ts[i] >= b)
        }
    }

    fn clean(&self, i: usize) -> bool {
        self.keys.has(i)
            && self.ts[i] != NULL_TIME
            && self.conv[i] != NULL_MARKER
            && (self.channel[i] != NO_CHANNEL || self.conv[i] == CONVERSION)
            && self.tie.as_ref().is_none_or(|t| t[i].is_some())
    }

    fn value_of(&self, i: usize) -> f64 {
        if self.conv[i] == CONVERSION {
            self.values.as_ref().map_or(0.0, |v| v[i])
        } else {
            0.0
        }
    }
}

/// The fast path, taken when no row is invalid (the common case): the kept rows' columns
/// are appended whole. Returns false, appending nothing, when a row needs the checks.
fn append_clean(ctx: &BatchContext, c: &BatchColumns, log: &mut EventLog, state: &mut LoadState) -> bool {
    let n = c.ts.len();
    let scope = ctx.scope;
    if c.touch_type.is_some()
        || c.campaign.is_some()
        || c.tags.iter().any(Option::is_some)
        || c.consent.is_some()
        || !(0..n).into_par_iter().with_min_len(PIECE).all(|i| c.outside(i, scope) || c.clean(i))
    {
        return false;
    }
    let kept: Vec<usize> = if scope.shard.is_some() || scope.range.is_some() {
        let mut k: Vec<usize> =
            (0..n).into_par_iter().with_min_len(PIECE).filter(|&i| !c.outside(i, scope)).collect();
        k.sort_unstable();
        k
    } else {
        (0..n).collect()
    };
    log.rows_read -= (n - kept.len()) as u64;
    log.ts.extend(kept.iter().map(|&i| c.ts[i]));
    log.channel.extend(kept.iter().map(|&i| c.channel[i]));
    if let Some(u) = &c.unmatched {
        state.unmatched_channel_rule += kept.iter().filter(|&&i| u[i]).count() as u64;
    }
    log.is_conversion.extend(kept.iter().map(|&i| c.conv[i] == CONVERSION));
    log.value.extend(kept.iter().map(|&i| c.value_of(i)));
    match (&mut state.users, &c.keys) {
        (UserKeys::Str(all, _), BatchKeys::Str(k)) => all.extend(kept.iter().map(|&i| k[i])),
        (UserKeys::Int(all), BatchKeys::Int(k, _)) => all.extend(kept.iter().map(|&i| k[i])),
        _ => unreachable!("the user kind is checked for every file"),
    }
    if let Some(tv) = &c.tie {
        state.ties.extend(kept.iter().map(|&i| tv[i].expect("clean rows have a tie-breaker")));
    }
    if let Some(ev) = &c.event {
        state.event_keys.extend(kept.iter().map(|&i| ev[i]));
    }
    true
}

/// The row-by-row path: every check, invalid rows failed or dropped and counted.
fn append_checked(
    ctx: &BatchContext,
    c: &BatchColumns,
    log: &mut EventLog,
    state: &mut LoadState,
    row_at: &dyn Fn(usize) -> usize,
) -> Result<()> {
    let (cols, scope) = (ctx.cols, ctx.scope);
    let mut reject = |reason: RejectReason, row: usize, column: &str| -> Result<()> {
        match ctx.on_invalid {
            InvalidRows::Fail => Err(Error::bad_input(
                &ctx.plan.path,
                Some(column),
                format!(
                    "{} at row {} (rows counted from 0; set on_invalid_rows = \"drop\" to drop and count \
                     such rows)",
                    reason.text(),
                    row_at(row)
                ),
            )),
            InvalidRows::Drop => {
                *log.rejected.entry(reason).or_insert(0) += 1;
                Ok(())
            }
        }
    };
    let mut not_ours = 0u64;
    for i in 0..c.ts.len() {
        if !c.keys.has(i) {
            if c.null_user(i) && scope.shard.is_none_or(|(s, _)| s == 0) {
                reject(RejectReason::NullUser, i, &cols.user)?;
            } else {
                not_ours += 1; // another shard's user (null users are shard 0's)
            }
            continue;
        }
        let t = c.ts[i];
        if c.consent.as_ref().is_some_and(|k| !k[i]) {
            // Dropped before any check of its other columns: never processed.
            match scope.range.is_some_and(|(a, b)| t != NULL_TIME && (t < a || t >= b)) {
                true => not_ours += 1,
                false => log.rows_without_consent += 1,
            }
            continue;
        }
        if t == NULL_TIME {
            reject(RejectReason::NullTime, i, &cols.time)?;
            continue;
        }
        if scope.range.is_some_and(|(a, b)| t < a || t >= b) {
            not_ours += 1; // outside the scope (ISO-string times are filtered here)
            continue;
        }
        if c.conv[i] == NULL_MARKER {
            reject(RejectReason::NullMarker, i, &cols.conversion)?;
            continue;
        }
        if c.channel[i] == NO_CHANNEL && c.conv[i] != CONVERSION {
            reject(RejectReason::NullChannel, i, &cols.channel)?;
            continue;
        }
        let tie = c.tie.as_ref().map(|tv| tv[i]);
        if tie == Some(None) {
            reject(RejectReason::NullTieBreaker, i, cols.tie_breaker.as_deref().unwrap_or(""))?;
            continue;
        }
        c.keys.push_to(&mut state.users, i);
        log.ts.push(t);
        log.channel.push(c.channel[i]);
        state.unmatched_channel_rule += u64::from(c.unmatched.as_ref().is_some_and(|u| u[i]));
        log.is_conversion.push(c.conv[i] == CONVERSION);
        log.value.push(c.value_of(i));
        if let Some(Some(x)) = tie {
            state.ties.push(x);
        }
        if let Some(ev) = &c.event {
            state.event_keys.push(ev[i]);
        }
        let extra = &mut state.extra;
        if let Some(ca) = c.touch_type {
            extra.type_ids.push(ca.get(i).map(|t| extra.types.intern_str(t)).unwrap_or(NO_CHANNEL));
        }
        if let Some(ca) = c.campaign {
            extra.campaign_ids.push(extra.campaigns.intern_str(ca.get(i).unwrap_or(NO_CAMPAIGN)));
        }
        for (k, ca) in c.tags.iter().enumerate() {
            if let Some(ca) = ca {
                let id = ca.get(i).map_or(NO_CHANNEL, |v| extra.tags[k].intern_str(v));
                extra.tag_ids[k].push(id);
            }
        }
    }
    // Rows of other shards, or outside the scope, were never this run's to read.
    log.rows_read -= not_ours;
    Ok(())
}

/// The time column, already µs since the epoch, UTC (converted in the scan by
/// [`super::time::micros_expr`]); null times are [`NULL_TIME`].
fn time_micros(s: &Series, path: &Path, name: &str) -> Result<Vec<i64>> {
    let ca = s.i64().map_err(cast_err(path, name))?;
    let mut out = vec![NULL_TIME; s.len()];
    par_convert!(&mut out, ca, |_row, v| v.unwrap_or(NULL_TIME))?;
    Ok(out)
}

/// The one rule for an integer conversion marker, of a file read directly and of a staged
/// source alike: 0 is a touch, 1 a conversion, anything else bad input naming the file, the
/// column and the row (`Ok(true)`: a conversion).
pub(super) fn int_marker(x: i64, file: &Path, column: &str, row: usize) -> Result<bool> {
    match x {
        0 => Ok(false),
        1 => Ok(true),
        x => Err(Error::bad_input(
            file,
            Some(column),
            format!(
                "an integer conversion marker must be 0 or 1, found {x} at row {row} (rows counted from 0)"
            ),
        )),
    }
}

/// Conversion markers: a string compared to the configured value, a boolean, or 0/1.
fn markers(s: &Series, ctx: &BatchContext, row_at: &(dyn Fn(usize) -> usize + Sync)) -> Result<Vec<u8>> {
    let (path, name) = (ctx.plan.path.as_path(), ctx.cols.conversion.as_str());
    let mut conv = vec![NULL_MARKER; s.len()];
    let as_marker = |b: bool| if b { CONVERSION } else { TOUCH };
    match ctx.plan.marker {
        MarkerKind::Str => {
            let ca = s.str().map_err(cast_err(path, name))?;
            let target = ctx.cols.conversion_value.as_str();
            par_convert!(&mut conv, ca, |_row, v| v.map_or(NULL_MARKER, |s| as_marker(s == target)))?;
        }
        MarkerKind::Bool => {
            let ca = s.bool().map_err(cast_err(path, name))?;
            par_convert!(&mut conv, ca, |_row, v| v.map_or(NULL_MARKER, as_marker))?;
        }
        MarkerKind::Int => {
            let c = s.cast(&DataType::Int64).map_err(cast_err(path, name))?;
            let ca = c.i64().map_err(cast_err(path, name))?;
            par_convert!(&mut conv, ca, |row, v| match v {
                None => NULL_MARKER,
                Some(x) => as_marker(int_marker(x, path, name, row_at(row))?),
            })?;
        }
    }
    Ok(conv)
}

/// Conversion values: finite and ≥ 0; a null value is worth 0.
fn conversion_values(
    s: &Series,
    path: &Path,
    name: &str,
    row_at: &(dyn Fn(usize) -> usize + Sync),
) -> Result<Vec<f64>> {
    let ca = s.f64().map_err(cast_err(path, name))?;
    let mut vals = vec![0.0; s.len()];
    par_convert!(&mut vals, ca, |row, x| match x {
        Some(x) if !x.is_finite() || x < 0.0 => {
            return Err(Error::bad_input(
                path,
                Some(name),
                format!(
                    "conversion values must be finite and ≥ 0, found {x} (row {}, counted from 0)",
                    row_at(row)
                ),
            ));
        }
        x => x.unwrap_or(0.0),
    })?;
    Ok(vals)
}

/// Tie-breaker values mapped to an order-preserving i64 (strings through an interner
/// renumbered in sorted order once every file is read).
fn tie_values(s: &Series, path: &Path, name: &str, state: &mut LoadState) -> Result<Vec<Option<i64>>> {
    let err = cast_err(path, name);
    Ok(match s.dtype() {
        // A column of type null: every row's tie-breaker is null (an invalid row).
        DataType::Null => vec![None; s.len()],
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

/// User keys of a batch (hashed in parallel pieces), and which rows have a null user.
fn batch_user_keys(
    user_s: &Series,
    ctx: &BatchContext,
    names: Option<&mut FxHashMap<u128, String>>,
) -> Result<(BatchKeys, Option<Vec<bool>>)> {
    let (path, name) = (ctx.plan.path.as_path(), ctx.cols.user.as_str());
    let n = user_s.len();
    let nulls: Option<Vec<bool>> =
        (user_s.null_count() > 0).then(|| user_s.is_null().iter().map(|b| b == Some(true)).collect());
    match ctx.plan.user {
        UserKind::Str => {
            let ca = user_s.str().map_err(cast_err(path, name))?;
            let mut keys = vec![0u128; n];
            par_convert!(&mut keys, ca, |_row, v| v
                .map_or(0, |u| xxhash_rust::xxh3::xxh3_128(u.as_bytes())))?;
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
            let c = user_s.cast(&DataType::Int64).map_err(cast_err(path, name))?;
            let ca = c.i64().map_err(cast_err(path, name))?;
            let mut vals = vec![0i64; n];
            par_convert!(&mut vals, ca, |_row, v| v.unwrap_or(0))?;
            let has = nulls.as_ref().map_or_else(|| vec![true; n], |m| m.iter().map(|&x| !x).collect());
            Ok((BatchKeys::Int(vals, has), nulls))
        }
    }
}

/// The rows of a batch whose user is in shard `i` of `k` (null users: shard 0), and their
/// rows in the batch. Integer ids hash as Spark's `INT` when every file's ids fit 32 bits,
/// as `BIGINT` otherwise.
fn shard_rows(df: DataFrame, ctx: &BatchContext, (i, k): (u32, u32)) -> Result<(DataFrame, Vec<u32>)> {
    let (path, name) = (ctx.plan.path.as_path(), ctx.cols.user.as_str());
    let user_s = series(&df, name, path)?;
    let mut mask = vec![false; df.height()];
    match ctx.plan.user {
        UserKind::Str => {
            let ca = user_s.str().map_err(cast_err(path, name))?;
            par_convert!(&mut mask, ca, |_row, v| v.map_or(i == 0, |u| shard_of_str(u, k) == i))?;
        }
        UserKind::Int => {
            let c = user_s.cast(&DataType::Int64).map_err(cast_err(path, name))?;
            let ca = c.i64().map_err(cast_err(path, name))?;
            let int32 = ctx.user_int32;
            par_convert!(&mut mask, ca, |_row, v| v.map_or(i == 0, |u| {
                let s = if int32 { shard_of_i32(u as i32, k) } else { shard_of_i64(u, k) };
                s == i
            }))?;
        }
    }
    let rows: Vec<u32> = mask.iter().enumerate().filter(|(_, &m)| m).map(|(r, _)| r as u32).collect();
    let df = df
        .filter(&BooleanChunked::from_slice("in_shard".into(), &mask))
        .map_err(|e| Error::bad_input(path, None, format!("cannot select the shard's rows: {e}")))?;
    Ok((df, rows))
}

/// Channel ids derived by `[channel_rules]` from the UTM columns the rules read (`utm`, in
/// source, medium, campaign order), and which rows no rule matched. A row's own channel
/// (`own`, where given and not null) wins; an empty one is no channel, as in
/// [`channel_ids`]. A conversion row whose UTM columns are all null has no channel; any other
/// row takes the first matching rule's channel, or `unassigned`. Rules run once per distinct
/// combination of values.
fn rule_channel_ids(
    rules: &RuleSet,
    (utm, own): (&[&StringChunked], Option<&StringChunked>),
    conv: &[u8],
    channels: &mut Interner<String>,
) -> (Vec<u32>, Vec<bool>) {
    let n = conv.len();
    let uses = rules.uses();
    let mut memo: FxHashMap<[Option<&str>; 3], (u32, bool)> = FxHashMap::default();
    let mut ids = vec![NO_CHANNEL; n];
    let mut unmatched = vec![false; n];
    let mut iters: Vec<_> = utm.iter().map(|ca| ca.iter()).collect();
    let mut own = own.map(|ca| ca.iter());
    for (i, id) in ids.iter_mut().enumerate() {
        let mut vals: [Option<&str>; 3] = [None; 3];
        let mut k = 0;
        for (slot, used) in vals.iter_mut().zip(uses) {
            if used {
                *slot = iters[k].next().flatten();
                k += 1;
            }
        }
        if let Some(c) = own.as_mut().and_then(|o| o.next().flatten()) {
            *id = if c.is_empty() { NO_CHANNEL } else { channels.intern_str(c) };
            continue;
        }
        if conv[i] == CONVERSION && vals.iter().all(Option::is_none) {
            continue;
        }
        let (c, matched) = *memo.entry(vals).or_insert_with(|| {
            let name = rules.channel(vals.map(|v| v.unwrap_or("")));
            (channels.intern_str(name.unwrap_or(super::channel_rules::UNASSIGNED)), name.is_some())
        });
        *id = c;
        unmatched[i] = !matched;
    }
    (ids, unmatched)
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
                // An empty channel name is no channel, like a null one.
                if let Some(c) = v.filter(|c| !c.is_empty()) {
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

/// Map an f64 to an i64 with the same total order (for float tie-breakers).
fn f64_order_key(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    if b < 0 {
        b ^ i64::MAX
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_tie_breakers_keep_their_order_as_integers() {
        let xs = [f64::NEG_INFINITY, -1e300, -2.5, -0.0, 0.0, 1e-300, 3.0, 1e300, f64::INFINITY];
        for w in xs.windows(2) {
            assert!(f64_order_key(w[0]) <= f64_order_key(w[1]), "{} vs {}", w[0], w[1]);
        }
    }
}
