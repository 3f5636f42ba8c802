//! The row pass of staging: identity map, erasure, consent, invalid rows, repeated
//! conversion ids and segments, over the concatenated canonical frame, in plain Rust so
//! every rule is a line to read (see the module documentation of `sources.rs`).

use std::collections::BTreeMap;

use polars::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::{Identity, SourcePlan, Staged, CHANNEL, CONVERSION, PERSON, TIME, VALUE};
use crate::core::event_log::{
    shard_of_str, InputFile, RejectReason, SourceCounts, StagedSummary, NO_CAMPAIGN,
};
use crate::error::{Error, Result};
use crate::settings::{Columns, InvalidRows, Settings};

/// Identity-map status of a row's id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Status {
    Unmapped,
    Mapped,
    Conflict,
}

impl Status {
    /// The status as the distributed read hands it on (`__status`): ordered as the enum, so
    /// the greatest code of an id's rows is its status.
    pub(super) fn code(self) -> i32 {
        self as i32
    }

    fn of(code: i32) -> Status {
        match code {
            2 => Status::Conflict,
            1 => Status::Mapped,
            _ => Status::Unmapped,
        }
    }
}

/// What the distributed read decided before the rows reached their person's partition
/// (`docs/scale.md` § Spark: Staged input): each row's person and identity status
/// (`__mapped`, `__status`, from the identity map the read held) and whether it lost to an
/// earlier conversion of the same id (`__dup`, from the keys the read gave every candidate).
pub(super) struct Given<'a> {
    person: &'a StringChunked,
    status: &'a Int32Chunked,
    dup: &'a BooleanChunked,
    /// The job's first failing row (file, row), the one one run would name: a partition
    /// raises the error of that row only, so the job fails with the same message whatever
    /// the partitioning (the others' rows fail too, but the job already does).
    pub(super) fail_at: Option<(u32, u32)>,
}

impl<'a> Given<'a> {
    pub(super) fn of(frame: &'a DataFrame) -> Result<Given<'a>> {
        let get = |n: &str| frame.column(n).map(|c| c.as_materialized_series()).map_err(internal);
        Ok(Given {
            person: get(MAPPED)?.str().map_err(internal)?,
            status: get(STATUS)?.i32().map_err(internal)?,
            dup: get(DUP)?.bool().map_err(internal)?,
            fail_at: None,
        })
    }

    /// Whether row `i`'s error is the one to raise (any, without the job's choice).
    fn raises(&self, c: &Cols, i: usize) -> bool {
        let here = (c.file.get(i).unwrap_or(0), c.row.get(i).unwrap_or(0));
        self.fail_at.is_none_or(|at| at == here)
    }

    fn mapped(&self) -> Vec<(&'a str, Status)> {
        let code = |i: usize| Status::of(self.status.get(i).unwrap_or(0));
        (0..self.person.len()).map(|i| (self.person.get(i).unwrap_or(""), code(i))).collect()
    }
}

/// The columns the distributed read adds to a file's rows (`RowPass::flag`).
pub(super) const MAPPED: &str = "__mapped";
pub(super) const STATUS: &str = "__status";
pub(super) const DUP: &str = "__dup";
pub(super) const WITHDRAWS: &str = "__withdraws";
pub(super) const KEEPABLE: &str = "__keepable";
pub(super) const CANDIDATE: &str = "__candidate";
pub(super) const VALUE_KEY: &str = "__value_key";
pub(super) const FAILS: &str = "__fails";
/// Every column of the frame the reader does not read.
const INTERNAL: [&str; 12] = [
    "__file", "__row", "__source", "consent", MAPPED, STATUS, DUP, WITHDRAWS, KEEPABLE, CANDIDATE, VALUE_KEY,
    FAILS,
];

pub(super) struct RowPass<'a> {
    pub(super) settings: &'a Settings,
    pub(super) plans: &'a [SourcePlan],
    pub(super) identity: &'a Identity,
    pub(super) erased: &'a FxHashSet<String>,
    pub(super) customers: &'a Option<FxHashMap<String, String>>,
    /// `--shard i/N`: every rule runs over all rows (a repeated conversion id may span
    /// persons of two shards), then only this shard's persons are counted and kept, so the
    /// shards' counts add up to one run's.
    pub(super) shard: Option<(u32, u32)>,
}

/// The frame's columns the pass reads.
struct Cols<'a> {
    id: &'a StringChunked,
    time: &'a Int64Chunked,
    file: &'a UInt32Chunked,
    row: &'a UInt32Chunked,
    source: &'a UInt32Chunked,
    conv: &'a BooleanChunked,
    channel: &'a StringChunked,
    value: &'a Float64Chunked,
    consent: &'a BooleanChunked,
    conv_id: &'a StringChunked,
    /// The event log's tie-breaker (the other sources' rows have the lowest value).
    tie: Option<&'a Series>,
}

fn internal(e: PolarsError) -> Error {
    Error::Internal(format!("staging the sources: {e}"))
}

impl<'a> Cols<'a> {
    fn of(frame: &'a DataFrame, s: &Settings) -> Result<Cols<'a>> {
        let get = |n: &str| frame.column(n).map(|c| c.as_materialized_series()).map_err(internal);
        Ok(Cols {
            id: get(PERSON)?.str().map_err(internal)?,
            time: get(TIME)?.i64().map_err(internal)?,
            file: get("__file")?.u32().map_err(internal)?,
            row: get("__row")?.u32().map_err(internal)?,
            source: get("__source")?.u32().map_err(internal)?,
            conv: get(CONVERSION)?.bool().map_err(internal)?,
            channel: get(CHANNEL)?.str().map_err(internal)?,
            value: get(VALUE)?.f64().map_err(internal)?,
            consent: get("consent")?.bool().map_err(internal)?,
            conv_id: get("conversion_id")?.str().map_err(internal)?,
            tie: s.columns.tie_breaker.as_ref().map(|_| get(super::TIE)).transpose()?,
        })
    }
}

impl RowPass<'_> {
    /// Every rule over the frame's rows. `given`: the rows come from the distributed read,
    /// which mapped their ids and chose among repeated conversion ids already.
    pub(super) fn run(
        &self,
        frame: DataFrame,
        mut files: Vec<InputFile>,
        given: Option<Given>,
    ) -> Result<Staged> {
        let c = Cols::of(&frame, self.settings)?;
        let n = frame.height();
        let mut counts: Vec<SourceCounts> = self
            .plans
            .iter()
            .map(|p| SourceCounts { source: p.name.clone(), ..Default::default() })
            .collect();
        let mut summary = StagedSummary {
            identity_entries: self.identity.values().map(|v| v.len() as u64).sum(),
            ..Default::default()
        };
        let t = std::time::Instant::now();
        let mapped = match &given {
            Some(g) => g.mapped(),
            None => self.map_all(&c),
        };
        tracing::debug!(ms = t.elapsed().as_millis(), "mapped ids");
        let withdrawn = self.withdrawn(&c, &mapped);
        let ours = self.ours(&c, &mapped);
        let mut rejected = BTreeMap::new();
        let mut other_shards = 0u64;
        let mut keep = vec![false; n];
        let mut person: Vec<Option<&str>> = vec![None; n];
        let mut status: Vec<Status> = vec![Status::Unmapped; n];
        for (i, (p, st)) in mapped.into_iter().enumerate() {
            let (src, f) = (c.source.get(i).unwrap_or(0) as usize, c.file.get(i).unwrap_or(0) as usize);
            let id = c.id.get(i);
            if self.erased_row(id, p) {
                summary.rows_erased += u64::from(ours[i]);
                continue;
            }
            files[f].rows += 1;
            if !ours[i] {
                other_shards += 1;
                // Another shard's row: still kept here for the repeated conversion ids.
                keep[i] = self.valid_elsewhere(&c, i, id.is_some() && withdrawn.contains(p), src);
                (person[i], status[i]) = (Some(p), st);
                continue;
            }
            counts[src].rows_read += 1;
            if !c.consent.get(i).unwrap_or(false) || (id.is_some() && withdrawn.contains(p)) {
                counts[src].rows_without_consent += 1;
                continue;
            }
            let raises = given.as_ref().is_none_or(|g| g.raises(&c, i));
            if let Some((reason, column)) = self.invalid(&c, i, src) {
                if self.settings.journeys.on_invalid_rows == InvalidRows::Fail {
                    if !raises {
                        continue;
                    }
                    let row = c.row.get(i).unwrap_or(0);
                    return Err(Error::bad_input(
                        &files[f].path,
                        Some(&column),
                        format!(
                            "{} at row {row} (rows counted from 0; set on_invalid_rows = \"drop\" to drop and count such rows)",
                            reason.text()
                        ),
                    ));
                }
                *rejected.entry(reason).or_insert(0u64) += 1;
                counts[src].rows_rejected += 1;
                continue;
            }
            if let Err(e) = self.check_value(&c, i, &files[f].path, src) {
                match raises {
                    true => return Err(e),
                    false => continue,
                }
            }
            keep[i] = true;
            person[i] = Some(p);
            status[i] = st;
        }
        tracing::debug!(ms = t.elapsed().as_millis(), "checked rows");
        match &given {
            Some(g) => drop_given(&c, g, &mut keep, &mut counts),
            None => self.drop_repeated_conversions(&c, &person, &mut keep, (&mut counts, &ours)),
        }
        self.alias_counts(&c, &keep, &status, &mut summary);
        for i in (0..n).filter(|&i| !ours[i]) {
            (keep[i], person[i]) = (false, None);
        }
        for i in (0..n).filter(|&i| keep[i]) {
            counts[c.source.get(i).unwrap_or(0) as usize].rows_kept += 1;
        }
        summary.sources = counts;
        tracing::debug!(ms = t.elapsed().as_millis(), "counted");
        let frame = self.build(frame.clone(), &keep, person, &mut summary)?;
        tracing::debug!(ms = t.elapsed().as_millis(), "built the staged frame");
        let channel_rules = super::staged_rules(self.settings);
        let marker_values = Default::default();
        Ok(Staged {
            frame,
            columns: self.columns(),
            files,
            rejected,
            summary,
            other_shards,
            channel_rules,
            marker_values,
        })
    }

    /// Whether a row is erased: its id, or the person it maps to, is on the erasure list.
    fn erased_row(&self, id: Option<&str>, person: &str) -> bool {
        id.is_some_and(|a| self.erased.contains(a) || self.erased.contains(person))
    }

    /// Every row's person (the id itself where it has no time or no map entry), borrowed
    /// from the frame or the map: no string is copied per row.
    fn map_all<'s>(&'s self, c: &Cols<'s>) -> Vec<(&'s str, Status)> {
        use rayon::prelude::*;
        (0..c.id.len())
            .into_par_iter()
            .with_min_len(1 << 16)
            .map(|i| match (c.id.get(i), c.time.get(i)) {
                (Some(a), Some(t)) => self.map_id(a, t),
                (Some(a), None) => (a, Status::Unmapped),
                _ => ("", Status::Unmapped),
            })
            .collect()
    }

    /// Whether each row is this shard's: its person's (an alias' mapped person, or the id
    /// itself), hashed as the reader hashes text ids; rows without an id are shard 0's.
    fn ours(&self, c: &Cols, mapped: &[(&str, Status)]) -> Vec<bool> {
        let Some((i, n)) = self.shard else { return vec![true; mapped.len()] };
        (0..mapped.len())
            .map(|r| match c.id.get(r) {
                Some(_) => shard_of_str(mapped[r].0, n) == i,
                None => i == 0,
            })
            .collect()
    }

    /// Whether another shard's row passes the rules that come before the repeated
    /// conversion ids (consent, validity), as that shard decides it.
    fn valid_elsewhere(&self, c: &Cols, i: usize, withdrawn: bool, src: usize) -> bool {
        c.consent.get(i).unwrap_or(false) && !withdrawn && self.invalid(c, i, src).is_none()
    }

    /// With `consent_scope = "person"`: the persons with any row without consent, all of
    /// whose rows are then dropped.
    fn withdrawn<'s>(&self, c: &Cols, mapped: &[(&'s str, Status)]) -> FxHashSet<&'s str> {
        if self.settings.input.consent_scope != crate::settings::ConsentScope::Person {
            return FxHashSet::default();
        }
        (0..mapped.len())
            .filter(|&i| c.id.get(i).is_some() && !c.consent.get(i).unwrap_or(false))
            .map(|i| mapped[i].0)
            .collect()
    }

    /// The person of an alias at time `t`: one person's entry covers it → that person;
    /// none, or entries of several persons → the alias itself (unmapped / conflict).
    fn map_id<'s>(&'s self, alias: &'s str, t: i64) -> (&'s str, Status) {
        let Some(entries) = self.identity.get(alias) else { return (alias, Status::Unmapped) };
        let mut found: Option<&str> = None;
        for (from, to, p) in entries {
            if t >= *from && t < *to {
                match found {
                    Some(q) if q != p => return (alias, Status::Conflict),
                    _ => found = Some(p),
                }
            }
        }
        match found {
            Some(p) => (p, Status::Mapped),
            None => (alias, Status::Unmapped),
        }
    }

    /// Why row `i` is invalid, with the source's own column name, if it is.
    fn invalid(&self, c: &Cols, i: usize, src: usize) -> Option<(RejectReason, String)> {
        let p = &self.plans[src];
        if c.id.get(i).is_none() {
            Some((RejectReason::NullUser, p.user.clone()))
        } else if c.time.get(i).is_none() {
            Some((RejectReason::NullTime, p.time.clone()))
        } else if c.conv.get(i).is_none() {
            Some((RejectReason::NullMarker, p.marker.clone()))
        } else if c.conv.get(i) == Some(false) && c.channel.get(i).is_none() && p.rules.is_none() {
            Some((RejectReason::NullChannel, p.channel.clone()))
        } else if c.tie.is_some_and(|t| t.get(i).is_ok_and(|v| v.is_null())) {
            let column = self.settings.columns.tie_breaker.clone().unwrap_or_default();
            Some((RejectReason::NullTieBreaker, column))
        } else {
            None
        }
    }

    fn check_value(&self, c: &Cols, i: usize, path: &std::path::Path, src: usize) -> Result<()> {
        match c.value.get(i) {
            Some(x) if c.conv.get(i) == Some(true) && (!x.is_finite() || x < 0.0) => {
                let column = match &self.plans[src].kind {
                    super::Kind::Events(cols) => cols.value.clone(),
                    super::Kind::Conversions { value, .. } => value.clone(),
                    super::Kind::Touches { .. } => None,
                };
                Err(Error::bad_input(
                    path,
                    column.as_deref(),
                    format!(
                        "conversion values must be finite and ≥ 0, found {x} (row {}, counted from 0)",
                        c.row.get(i).unwrap_or(0)
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// One file's rows as the distributed read hands them on: erased rows dropped (their
    /// number returned), every other row with what the rules decide from the row and the
    /// identity map alone. The rest (consent of a whole person, invalid rows, repeated
    /// conversion ids, segments) is decided where all rows of a person, or of a conversion
    /// id, meet: [`Self::run`] with [`Given`], and the job's choice among the candidates,
    /// the least key (time, source, person, value key, file, row) of each conversion id,
    /// which is the order [`Self::drop_repeated_conversions`] sorts by.
    pub(super) fn flag(&self, frame: DataFrame) -> Result<(DataFrame, u64)> {
        let c = Cols::of(&frame, self.settings)?;
        let mapped = self.map_all(&c);
        let n = frame.height();
        let (mut keep, mut person, mut status) =
            (vec![true; n], Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut withdraws, mut keepable, mut candidate) = (vec![false; n], vec![false; n], vec![false; n]);
        let mut fails = vec![false; n];
        let fail_mode = self.settings.journeys.on_invalid_rows == InvalidRows::Fail;
        let mut erased = 0u64;
        for (i, (p, st)) in mapped.into_iter().enumerate() {
            let id = c.id.get(i);
            person.push(id.map(|_| p));
            status.push(st.code());
            if self.erased_row(id, p) {
                (keep[i], erased) = (false, erased + 1);
                continue;
            }
            let consent = c.consent.get(i).unwrap_or(false);
            withdraws[i] = id.is_some() && !consent;
            let src = c.source.get(i).unwrap_or(0) as usize;
            let invalid = self.invalid(&c, i, src).is_some();
            keepable[i] = consent && !invalid;
            // An error one run raises for this row, unless its person withdrew consent.
            let bad_value = !invalid && self.check_value(&c, i, std::path::Path::new(""), src).is_err();
            fails[i] = consent && ((invalid && fail_mode) || bad_value);
            candidate[i] = keepable[i] && c.conv.get(i) == Some(true) && c.conv_id.get(i).is_some();
        }
        // The value's bits in u64 order (`drop_repeated_conversions`), as a signed integer.
        let value_key: Vec<i64> =
            c.value.iter().map(|v| (v.unwrap_or(0.0).to_bits() ^ (1 << 63)) as i64).collect();
        let mut df = frame.clone();
        let columns = [
            Column::new(MAPPED.into(), person),
            Column::new(STATUS.into(), status),
            Column::new(WITHDRAWS.into(), withdraws),
            Column::new(KEEPABLE.into(), keepable),
            Column::new(CANDIDATE.into(), candidate),
            Column::new(VALUE_KEY.into(), value_key),
            Column::new(FAILS.into(), fails),
        ];
        for column in columns {
            df.with_column(column).map_err(internal)?;
        }
        let mask = BooleanChunked::from_slice("keep".into(), &keep);
        Ok((df.filter(&mask).map_err(internal)?, erased))
    }

    /// Of the kept conversions sharing an id, keep the earliest (then by source order,
    /// person, value): a fixed choice whatever the row order.
    fn drop_repeated_conversions(
        &self,
        c: &Cols,
        person: &[Option<&str>],
        keep: &mut [bool],
        (counts, ours): (&mut [SourceCounts], &[bool]),
    ) {
        let mut rows: Vec<(&str, i64, u32, &str, u64, usize)> = (0..keep.len())
            .filter(|&i| keep[i] && c.conv.get(i) == Some(true))
            .filter_map(|i| {
                let id = c.conv_id.get(i)?;
                let value = c.value.get(i).unwrap_or(0.0).to_bits();
                Some((id, c.time.get(i)?, c.source.get(i)?, person[i]?, value, i))
            })
            .collect();
        rows.sort_unstable();
        for w in rows.windows(2) {
            if w[0].0 == w[1].0 {
                keep[w[1].5] = false;
                if ours[w[1].5] {
                    counts[w[1].2 as usize].duplicate_conversions += 1;
                }
            }
        }
    }

    /// Distinct ids of kept rows by identity status (an id with any conflicting row is
    /// conflicting; else mapped if any row mapped).
    fn alias_counts(&self, c: &Cols, keep: &[bool], status: &[Status], s: &mut StagedSummary) {
        if self.identity.is_empty() {
            return;
        }
        let mut by_id: FxHashMap<&str, Status> = FxHashMap::default();
        // Each id is counted by the shard of the id itself (its rows may map to persons of
        // several shards), so the shards' counts add up.
        let counted = |id: &str| self.shard.is_none_or(|(s, n)| shard_of_str(id, n) == s);
        for i in (0..keep.len()).filter(|&i| keep[i]) {
            if let Some(id) = c.id.get(i).filter(|id| counted(id)) {
                let e = by_id.entry(id).or_insert(Status::Unmapped);
                *e = (*e).max(status[i]);
            }
        }
        for st in by_id.values() {
            match st {
                Status::Unmapped => s.aliases_unmapped += 1,
                Status::Mapped => s.aliases_mapped += 1,
                Status::Conflict => s.aliases_conflicting += 1,
            }
        }
    }

    /// The kept rows with their persons (and segments), in the reader's column types.
    fn build(
        &self,
        frame: DataFrame,
        keep: &[bool],
        person: Vec<Option<&str>>,
        summary: &mut StagedSummary,
    ) -> Result<DataFrame> {
        let mut df = frame;
        if let Some(customers) = self.customers {
            let mut seen: FxHashSet<&str> = FxHashSet::default();
            let seg: Vec<Option<&str>> = person
                .iter()
                .map(|p| {
                    let p = p.as_deref()?;
                    let s = customers.get(p).map(String::as_str);
                    if s.is_none() && seen.insert(p) {
                        summary.persons_without_customer_row += 1;
                    }
                    Some(s.unwrap_or(NO_CAMPAIGN))
                })
                .collect();
            summary.customers = customers.len() as u64;
            df.with_column(Column::new("segment".into(), seg)).map_err(internal)?;
        }
        df.with_column(Column::new(PERSON.into(), person)).map_err(internal)?;
        let time = df.column(TIME).map_err(internal)?.cast(&DataType::Datetime(TimeUnit::Microseconds, None));
        df.with_column(time.map_err(internal)?).map_err(internal)?;
        let value = df.column(VALUE).map_err(internal)?.fill_null(FillNullStrategy::Zero);
        df.with_column(value.map_err(internal)?).map_err(internal)?;
        let mask = BooleanChunked::from_slice("keep".into(), keep);
        let df = df.filter(&mask).map_err(internal)?;
        let present: Vec<&str> = INTERNAL.into_iter().filter(|n| df.column(n).is_ok()).collect();
        Ok(df.drop_many(present))
    }

    /// How the reader reads the staged frame.
    fn columns(&self) -> Columns {
        let s = self.settings;
        let on = |b: bool, name: &str| b.then(|| name.to_owned());
        let campaign = s.campaigns();
        Columns {
            user: PERSON.into(),
            time: TIME.into(),
            channel: CHANNEL.into(),
            conversion: CONVERSION.into(),
            conversion_value: String::new(),
            value: Some(VALUE.into()),
            tie_breaker: on(s.columns.tie_breaker.is_some(), super::TIE),
            touch_type: on(s.columns.touch_type.is_some(), "touch_type"),
            campaign: on(campaign, "campaign"),
            event_id: on(s.columns.event_id.is_some(), super::EVENT_ID),
            consent: None,
            source: Some("source".into()),
            segment: on(s.columns.segment.is_some() || s.segments.customers.is_some(), "segment"),
            conversion_id: on(
                s.columns.conversion_id.is_some() || s.conversions.path.is_some(),
                "conversion_id",
            ),
            conversion_type: on(
                s.columns.conversion_type.is_some() || s.conversions.r#type.is_some(),
                "conversion_type",
            ),
        }
    }
}

/// The distributed read's choice among repeated conversion ids: the kept rows it marked are
/// dropped and counted (the read marks only rows that pass every rule before this one).
fn drop_given(c: &Cols, g: &Given, keep: &mut [bool], counts: &mut [SourceCounts]) {
    for (i, kept) in keep.iter_mut().enumerate() {
        if *kept && g.dup.get(i) == Some(true) {
            *kept = false;
            counts[c.source.get(i).unwrap_or(0) as usize].duplicate_conversions += 1;
        }
    }
}
