//! Reading the event log: every file's schema checked first, then each file scanned in
//! batches of [`READ_BATCH`] rows (only the mapped columns) and converted into the plain
//! columns of [`EventLog`] with dense, deterministic ids.
//!
//! Rules owned here (`docs/models.md` § Input): every problem names the file, the column and
//! what is wrong; user and channel ids are numbered in the sorted order of their values (or
//! of a fixed hash), so nothing downstream depends on the row order of the input; times are
//! µs since the Unix epoch, UTC (naive timestamps are UTC).

use std::path::PathBuf;

use polars::prelude::*;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::channel_rules::RuleSet;
use super::convert::{append_batch, BatchContext};
use super::discover::{date_of, scoped_inputs, ReadScope};
use super::schema::{
    check_schema, check_schema_of, read_problem, tie_kinds_agree, FilePlan, MarkerKind, TimeKind, UserKind,
};
use super::time::{bound_expr, micros_expr};
use crate::core::event_log::{reserved_name_problem, EventLog, InputFile, Tags, UserNames, NO_CHANNEL};
use crate::core::intern::{HashInterner, PIECE};
use crate::error::{Error, Result};
use crate::settings::{ChannelRules, Columns, InvalidRows};

/// Rows read at a time from a file: the Polars frame of one batch (~70 bytes a row) lives
/// next to the compact columns (~25 bytes a row), never the frame of a whole large file.
pub const READ_BATCH: u64 = 4 << 20;

/// The most events one run can hold (ids are `u32`); larger inputs are split with
/// `--shard i/N`.
pub const MAX_EVENTS: u64 = u32::MAX as u64 - 1;

/// How to stay under [`MAX_EVENTS`], in every entry point's words (a Spark partition is a run).
const SPLIT: &str = "split the users (--shard i/N on the command line, more --partitions in the Spark job)";

/// The user keys of the kept rows; numbered once every file is read.
pub(super) enum UserKeys {
    /// XXH3-128 hashes of string ids: the batch's, interned after each batch into
    /// provisional ids in `log.user` ([`HashInterner`], 4 bytes a row instead of 16).
    Str(Vec<u128>, HashInterner),
    /// Integer ids of every kept row, in log order.
    Int(Vec<i64>),
}

impl UserKeys {
    /// Intern the batch's string keys into `user` (integer ids wait for the end).
    pub(super) fn flush(&mut self, user: &mut Vec<u32>) {
        if let UserKeys::Str(batch, interner) = self {
            interner.intern(batch, user);
            batch.clear();
        }
    }
}

/// Interns values into dense ids in first-seen order; [`Interner::sorted_remap`] then
/// renumbers them in sorted order, so the final ids never depend on row order. For the
/// small vocabularies (channels, touch types, campaigns).
#[derive(Default)]
pub(super) struct Interner<K> {
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
    pub(super) fn intern_str(&mut self, k: &str) -> u32 {
        if let Some(&id) = self.ids.get(k) {
            return id;
        }
        let n = self.ids.len() as u32;
        self.ids.insert(k.to_owned(), n);
        n
    }
}

/// Interners and ids of the optional touch-type and campaign columns.
#[derive(Default)]
pub(super) struct Extra {
    pub(super) types: Interner<String>,
    pub(super) type_ids: Vec<u32>,
    pub(super) campaigns: Interner<String>,
    pub(super) campaign_ids: Vec<u32>,
    /// Source, segment, conversion type and conversion id ([`Columns::tags`]).
    pub(super) tags: [Interner<String>; 4],
    pub(super) tag_ids: [Vec<u32>; 4],
}

/// What outlives one batch: the vocabularies, the user keys and the optional columns.
pub(super) struct LoadState {
    pub(super) channels: Interner<String>,
    pub(super) str_ties: Interner<String>,
    pub(super) tie_is_str: bool,
    pub(super) ties: Vec<i64>,
    pub(super) extra: Extra,
    pub(super) users: UserKeys,
    /// The value of each string user key, when the run lists users.
    pub(super) names: Option<FxHashMap<u128, String>>,
    /// Some values of a string marker column seen in batches without a conversion.
    pub(super) marker_values: std::collections::BTreeSet<String>,
    /// XXH3-128 of each kept row's event id (0: none), when an event id column is mapped.
    pub(super) event_keys: Vec<u128>,
    /// Where each row's channel comes from.
    pub(super) chan_src: ChannelSource,
    /// Kept rows no rule matched.
    pub(super) unmatched_channel_rule: u64,
}

/// Where each row's channel comes from: `columns.channel`, `[channel_rules]` over the UTM
/// columns, or both (`own`: a row's own channel where it has one, else the rules; the
/// staged sources, where the event log's rows are ruled and a `[[sources]]` table may name
/// its channel).
#[derive(Default)]
pub(super) struct ChannelSource {
    /// Compiled `[channel_rules]`, when the channel is derived.
    pub(super) rules: Option<RuleSet>,
    /// With rules: the channel column is read too, and a row's own channel wins.
    pub(super) own: bool,
}

impl ChannelSource {
    fn new(opts: &LoadOptions) -> Result<ChannelSource> {
        let rules = opts.channel_rules.filter(|r| r.enabled()).map(RuleSet::compile).transpose()?;
        Ok(ChannelSource { own: opts.own_channel && rules.is_some(), rules })
    }

    /// Whether `columns.channel` is read.
    pub(super) fn reads_channel(&self) -> bool {
        self.rules.is_none() || self.own
    }

    /// The UTM columns the rules read (none without rules).
    pub(super) fn columns(&self) -> &[String] {
        self.rules.as_ref().map_or(&[][..], |r| &r.columns[..])
    }
}

/// What to read and how to treat invalid rows.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions<'a> {
    /// Column mapping.
    pub columns: &'a Columns,
    /// Fail on invalid rows, or drop and count them.
    pub on_invalid: InvalidRows,
    /// The part of the input the run needs.
    pub scope: &'a ReadScope,
    /// Derive the channel by rules from UTM-style columns (None: read `columns.channel`).
    pub channel_rules: Option<&'a ChannelRules>,
    /// With `channel_rules`: a row's own channel (`columns.channel`, where not null) wins
    /// over the rules. The staged sources set it: a `[[sources]]` table that names its
    /// channel keeps it while the event log's rows are ruled (`docs/sources.md`).
    pub own_channel: bool,
}

/// Load the events a scope needs (see [`ReadScope`]): schemas of all files first, then the
/// files one at a time, in batches.
pub fn load_events(spec: &str, opts: &LoadOptions) -> Result<EventLog> {
    let files = scoped_inputs(spec, opts.scope)?;
    let chan_src = ChannelSource::new(opts)?;
    let plans: Vec<FilePlan> =
        files.iter().map(|f| check_schema(f, opts.columns, &chan_src)).collect::<Result<_>>()?;
    load_plans(spec, plans, chan_src, opts)
}

/// Load the events of a frame already in memory (an Arrow stream, the staged sources,
/// `docs/sources.md`), named `label` in messages, exactly as a file of that content would
/// be read (channel rules included).
pub fn load_frame(frame: DataFrame, label: &str, opts: &LoadOptions) -> Result<EventLog> {
    let schema = frame.schema().as_ref().clone();
    let chan_src = ChannelSource::new(opts)?;
    let (path, rows) = (std::path::Path::new(label), frame.height() as u64);
    let mut plan = check_schema_of(path, &schema, rows, opts.columns, &chan_src)?;
    plan.frame = Some(frame);
    load_plans(label, vec![plan], chan_src, opts)
}

fn load_plans(
    spec: &str,
    plans: Vec<FilePlan>,
    chan_src: ChannelSource,
    opts: &LoadOptions,
) -> Result<EventLog> {
    let (cols, scope) = (opts.columns, opts.scope);
    check_plans_agree(&plans, cols)?;
    let total: u64 = plans.iter().map(|p| p.rows).sum();
    if total > MAX_EVENTS && scope.shard.is_none() {
        return Err(Error::bad_input(
            PathBuf::from(spec),
            None,
            format!("{total} rows: one run holds at most {MAX_EVENTS} events; {SPLIT}"),
        ));
    }
    let mut log = EventLog::default();
    let mut state = LoadState {
        channels: Interner::default(),
        str_ties: Interner::default(),
        tie_is_str: false,
        ties: Vec::new(),
        extra: Extra::default(),
        users: match plans[0].user {
            UserKind::Str => {
                log.user.reserve(total as usize);
                UserKeys::Str(Vec::new(), HashInterner::default())
            }
            UserKind::Int => UserKeys::Int(Vec::with_capacity(total as usize)),
        },
        names: (!scope.skip_user_names).then(FxHashMap::default),
        marker_values: Default::default(),
        event_keys: Vec::new(),
        chan_src,
        unmatched_channel_rule: 0,
    };
    log.reserve(total as usize);
    let user_int32 = plans.iter().all(|p| p.user_int32);
    for plan in &plans {
        read_plan(plan, opts, user_int32, &mut log, &mut state)?;
    }
    check_read(spec, scope, &log)?;
    if !log.is_conversion.iter().any(|&c| c) && !state.marker_values.is_empty() {
        log.warnings.push(marker_typo(&cols.conversion, &cols.conversion_value, &state.marker_values));
    }
    finish(&mut log, state, cols);
    check_channels(spec, cols, &log)?;
    Ok(log)
}

/// One role, one type across all files: user ids are all strings or all integers, and a
/// tie-breaker orders values of one kind ([`tie_kinds_agree`]).
fn check_plans_agree(plans: &[FilePlan], cols: &Columns) -> Result<()> {
    let first = &plans[0];
    for p in &plans[1..] {
        if p.user != first.user {
            return Err(Error::bad_input(
                &p.path,
                Some(&cols.user),
                format!(
                    "user id type differs between files ({} here, {} in {})",
                    p.user.describe(),
                    first.user.describe(),
                    first.path.display()
                ),
            ));
        }
    }
    tie_kinds_agree(plans.iter().map(|p| (p.path.as_path(), p.tie)), cols.tie_breaker.as_deref())
}

/// Read one file in batches and append its rows.
fn read_plan(
    plan: &FilePlan,
    opts: &LoadOptions,
    user_int32: bool,
    log: &mut EventLog,
    state: &mut LoadState,
) -> Result<()> {
    log.files.push(InputFile { path: plan.path.clone(), rows: plan.rows });
    let batch_rows = opts.scope.batch_rows.unwrap_or(READ_BATCH).max(1);
    let mut offset = 0u64;
    loop {
        let t = std::time::Instant::now();
        let len = batch_rows.min(plan.rows - offset);
        let batch = (plan.rows > batch_rows).then_some((offset, len));
        let df = read_file(plan, (opts.columns, &state.chan_src), opts.scope.range, batch)?;
        tracing::debug!(file = %plan.path.display(), offset, rows = df.height(), ms = t.elapsed().as_millis(), "scanned");
        log.rows_read += df.height() as u64;
        let ctx = BatchContext {
            plan,
            cols: opts.columns,
            on_invalid: opts.on_invalid,
            scope: opts.scope,
            offset: offset as usize,
            user_int32,
        };
        append_batch(&ctx, df, log, state)?;
        state.users.flush(&mut log.user);
        offset += len;
        if offset >= plan.rows {
            return Ok(());
        }
    }
}

fn check_read(spec: &str, scope: &ReadScope, log: &EventLog) -> Result<()> {
    if scope.allow_empty {
        return Ok(());
    }
    let kept = Kept { rows_read: log.rows_read, events: log.len() as u64, other_shards: log.other_shards };
    check_kept(spec, scope, &kept)?;
    if log.len() as u64 > MAX_EVENTS {
        return Err(Error::bad_input(
            PathBuf::from(spec),
            None,
            format!("one run holds at most {MAX_EVENTS} events; {SPLIT}"),
        ));
    }
    Ok(())
}

/// What a read (or all chunks of a distributed one) kept.
#[derive(Debug, Clone, Copy)]
pub struct Kept {
    /// Rows read in the scope.
    pub rows_read: u64,
    /// Rows kept as events.
    pub events: u64,
    /// Rows of other shards skipped.
    pub other_shards: u64,
}

/// What a read that kept nothing means: no rows in the window (the data may not have
/// landed yet: 66, retried by schedulers), no rows at all, or only invalid rows (65).
pub fn check_kept(spec: &str, scope: &ReadScope, log: &Kept) -> Result<()> {
    // A shard no person hashes to, of an input with rows: an empty partial, so that a
    // Kubernetes Indexed Job of many pods on a small day still merges (the merge checks
    // the whole).
    if log.rows_read == 0 && log.other_shards > 0 && scope.shard.is_some() {
        return Ok(());
    }
    if log.rows_read == 0 {
        if let Some((a, b)) = scope.range {
            return Err(Error::NotFound {
                path: PathBuf::from(spec),
                problem: format!(
                    "no events between {} and {} (the reporting window and its lookback)",
                    date_of(a),
                    date_of(b - 1)
                ),
            });
        }
        let problem = "the input has no rows";
        return Err(Error::bad_input(PathBuf::from(spec), None, problem));
    }
    if log.events == 0 {
        return Err(Error::bad_input(
            PathBuf::from(spec),
            None,
            "every row was rejected as invalid; nothing to attribute",
        ));
    }
    Ok(())
}

/// The warning of a log without conversions whose text marker never equals the conversion
/// value (a typo in it): a few of the values the column holds. Read directly or staged.
pub fn marker_typo(column: &str, value: &str, seen: &std::collections::BTreeSet<String>) -> String {
    let seen: Vec<String> = seen.iter().map(|v| format!("`{v}`")).collect();
    format!(
        "no row of the conversion column `{column}` equals the conversion value `{value}`; the column holds {}: \
         check --conversion-value (columns.conversion_value)",
        seen.join(", ")
    )
}

/// Conversion values whose sum no 64-bit float holds (a unit mix-up): refused, read directly
/// or staged.
pub(super) const VALUE_OVERFLOW: &str =
    "the conversion values add up to more than a 64-bit float holds; check the column's unit";

/// Channel names that would break a table's grain, and sums that overflow, are refused.
fn check_channels(spec: &str, cols: &Columns, log: &EventLog) -> Result<()> {
    if let Some(p) = log.channels.iter().find_map(|c| reserved_name_problem(c)) {
        return Err(Error::bad_input(PathBuf::from(spec), Some(&cols.channel), p));
    }
    let total: f64 = log.value.par_iter().sum();
    if !total.is_finite() {
        return Err(Error::bad_input(PathBuf::from(spec), cols.value.as_deref(), VALUE_OVERFLOW));
    }
    Ok(())
}

/// Renumber every id in sorted order now that all files are read.
fn finish(log: &mut EventLog, state: LoadState, cols: &Columns) {
    let t = std::time::Instant::now();
    log.unmatched_channel_rule = state.unmatched_channel_rule;
    let LoadState { channels, str_ties, tie_is_str, mut ties, extra, users, names, event_keys, .. } = state;
    if cols.event_id.is_some() {
        log.event_key = Some(event_keys);
    }
    number_users(log, users, names);
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
    let mut tags = extra.tags.into_iter().zip(extra.tag_ids).map(|(interner, mut ids)| {
        let (r, names) = interner.sorted_remap();
        ids.iter_mut().filter(|t| **t != NO_CHANNEL).for_each(|t| *t = r[*t as usize]);
        Tags { ids, names }
    });
    let present = cols.tags().map(|c| c.is_some());
    let mut next = |on: bool| tags.next().filter(|_| on);
    (log.source, log.segment, log.conversion_type, log.conversion_id) =
        (next(present[0]), next(present[1]), next(present[2]), next(present[3]));
    if cols.campaign.is_some() {
        let (r, names) = extra.campaigns.sorted_remap();
        let mut v = extra.campaign_ids;
        for t in &mut v {
            *t = r[*t as usize];
        }
        log.campaign = Some(v);
        log.campaigns = names;
    }
    let (chan_remap, names) = kept_channels(&log.channel, channels);
    log.channel.par_chunks_mut(PIECE).for_each(|cs| {
        for c in cs {
            if *c != NO_CHANNEL {
                *c = chan_remap[*c as usize];
            }
        }
    });
    log.channels = names;
    if cols.tie_breaker.is_some() {
        if tie_is_str {
            let (r, _) = str_ties.sorted_remap();
            for t in &mut ties {
                *t = r[*t as usize] as i64;
            }
        }
        log.tie = Some(ties);
    }
    tracing::debug!(ms = t.elapsed().as_millis(), "renumbered ids");
}

/// The channels of kept rows only, numbered in sorted order (`remap[old] = new`): a batch
/// names the channels of all its rows, but a row dropped as invalid, without consent or
/// outside the range must leave no trace (no zero row of its channel in the tables), as if
/// it had never been read, which is what staged input sees (`docs/sources.md`).
fn kept_channels(ids: &[u32], channels: Interner<String>) -> (Vec<u32>, Vec<String>) {
    let (remap, names) = channels.sorted_remap();
    let mut used = vec![false; names.len()];
    for &c in ids.iter().filter(|&&c| c != NO_CHANNEL) {
        used[remap[c as usize] as usize] = true;
    }
    if used.iter().all(|&u| u) {
        return (remap, names);
    }
    let mut new = vec![0u32; names.len()];
    let mut kept = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate().filter(|(i, _)| used[*i]) {
        new[i] = kept.len() as u32;
        kept.push(name);
    }
    (remap.iter().map(|&r| new[r as usize]).collect(), kept)
}

/// Dense user ids: the rank of each row's key among the distinct keys of the whole input
/// (hash order for string ids, value order for integers).
fn number_users(log: &mut EventLog, users: UserKeys, mut names: Option<FxHashMap<u128, String>>) {
    use crate::core::intern::{bucket_count, range_bucket, scatter};
    match users {
        UserKeys::Str(batch, interner) => {
            // Every batch was interned as it was appended ([`UserKeys::flush`]).
            assert!(batch.is_empty() && log.user.len() == log.len(), "a batch of user ids was not interned");
            let keys = interner.rank(&mut log.user);
            log.n_users = keys.len();
            // The low half of the id's XXH3-128: the same person has the same key in
            // every shard and partition (the bootstrap weights persons by it).
            log.user_key = keys.iter().map(|&h| h as u64).collect();
            log.user_key_high = keys.iter().map(|&h| (h >> 64) as u64).collect();
            if let Some(names) = &mut names {
                log.user_names =
                    UserNames::Str(keys.iter().map(|h| names.remove(h).expect("every user named")).collect());
            }
        }
        UserKeys::Int(keys) => {
            let n = log.len();
            let nb = bucket_count(n);
            let (min, max) =
                (keys.iter().copied().min().unwrap_or(0), keys.iter().copied().max().unwrap_or(0));
            let scattered = scatter(n, nb, range_bucket(min, max, nb), |at, len, out| {
                out.extend(keys[at..at + len].iter().map(|&k| Some(k)));
            });
            drop(keys);
            let dense = scattered.rank();
            log.user = dense.ids;
            log.n_users = dense.keys.len();
            log.user_key = dense.keys.iter().map(|&k| k as u64).collect();
            log.user_names = UserNames::Int(dense.keys);
        }
    }
}

/// How the reader takes a mapped column from a file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    AsIs,
    Time,
    Text,
    Marker,
    Number,
    Flag,
}

/// The columns of an event file the reader reads, in its order: the user, the time, the
/// channel (unless rules give it), the rules' UTM columns, the marker, the value, the
/// tie-breaker, the tags and consent.
fn projection<'c>(cols: &'c Columns, rules: &'c ChannelSource) -> Vec<(&'c str, Read)> {
    let mut out = vec![(cols.user.as_str(), Read::AsIs), (cols.time.as_str(), Read::Time)];
    if rules.reads_channel() {
        out.push((cols.channel.as_str(), Read::Text));
    }
    out.extend(rules.columns().iter().map(|c| (c.as_str(), Read::Text)));
    out.push((cols.conversion.as_str(), Read::Marker));
    out.extend(cols.value.as_deref().map(|v| (v, Read::Number)));
    out.extend(cols.tie_breaker.as_deref().map(|t| (t, Read::AsIs)));
    let tags = cols.tags();
    let text = [&cols.touch_type, &cols.campaign, &cols.event_id]
        .into_iter()
        .flatten()
        .chain(tags.into_iter().flatten());
    out.extend(text.map(|c| (c.as_str(), Read::Text)));
    out.extend(cols.consent.as_deref().map(|c| (c, Read::Flag)));
    out
}

/// The columns of an event log the reader reads under these options (the Spark job
/// hands only these to the library).
pub fn read_columns(opts: &LoadOptions) -> Result<Vec<String>> {
    let rules = ChannelSource::new(opts)?;
    let mut names: Vec<String> = Vec::new();
    for (name, _) in projection(opts.columns, &rules) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Scan one file lazily, projecting only the mapped columns, the time as µs since the
/// epoch ([`micros_expr`]; ISO-8601 strings parsed strictly: an unparseable time fails the
/// file rather than becoming null).
///
/// `batch = (offset, len)` reads only those rows of the file (before the range filter).
fn read_file(
    plan: &FilePlan,
    (cols, rules): (&Columns, &ChannelSource),
    range: Option<(i64, i64)>,
    batch: Option<(u64, u64)>,
) -> Result<DataFrame> {
    let path_str = plan.path.to_string_lossy().to_string();
    let mut lf = match &plan.frame {
        Some(df) => df.clone().lazy(),
        None => LazyFrame::scan_parquet(PlRefPath::new(path_str.as_str()), ScanArgsParquet::default())
            .map_err(|e| Error::bad_input(&plan.path, None, format!("cannot scan: {e}")))?,
    };
    if let Some((offset, len)) = batch {
        lf = lf.slice(offset as i64, len as IdxSize);
    }
    if let Some((start, end)) = range.filter(|_| plan.time != TimeKind::Str) {
        // On the column as stored, with literals of its own type: the predicate stays
        // pushable to row-group statistics; ISO strings are filtered once converted.
        let (t, dt) = (col(cols.time.as_str()), &plan.time_dtype);
        lf = lf.filter(t.clone().gt_eq(bound_expr(start, dt)).and(t.lt(bound_expr(end, dt))));
    }
    let exprs = projection(cols, rules)
        .into_iter()
        .map(|(name, read)| {
            let c = col(name);
            Ok(match read {
                Read::AsIs => c,
                Read::Time => micros_expr(name, &plan.time_dtype, &plan.path)?,
                Read::Marker if !matches!(plan.marker, MarkerKind::Str) => c,
                Read::Text | Read::Marker => c.cast(DataType::String),
                Read::Number => c.cast(DataType::Float64),
                Read::Flag => c.cast(DataType::Boolean),
            })
        })
        .collect::<Result<Vec<Expr>>>()?;
    let time_strings = (plan.time == TimeKind::Str).then_some(cols.time.as_str());
    lf.select(exprs).collect().map_err(|e| read_problem(&e, &plan.path, time_strings))
}
