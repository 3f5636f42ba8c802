//! The training window (`[models] training_days`, `docs/models.md` § Training window):
//! Markov and `shapley_rate` are fitted on the journeys closed in the trailing
//! `training_days` ending with the run date, and applied to the reporting window.
//!
//! What is kept between runs: each day's closed journeys as a partial path table,
//! `<root>/_training/<fingerprint>/closed_date=YYYY-MM-DD.parquet` (the shard partial
//! format). A nightly run computes its own day (and any day missing from the store) from
//! the events it read, and merges the stored days: it never re-reads the training period.
//! Path tables are sums, so the merge equals a fit on the whole period at once.
//!
//! Invalidation: the fingerprint hashes every setting that shapes journeys (columns,
//! journey rules), so changing one starts a new store. Rerunning a date rewrites its day
//! and deletes the stored days after it that its events can reach (closings up to one
//! lookback later), so a restated date is never mixed with journeys cut from the old data.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use crate::core::analysis::TrainingSummary;
use crate::core::event_log::EventLog;
use crate::core::journeys::{self, EventOrder, JourneyOptions};
use crate::core::paths::{PathRow, PathTable};
use crate::engine;
use crate::error::{Error, Result};
use crate::report;
use crate::settings::{Format, Settings, Window};

/// The training period of a run and where its days are stored.
pub struct Training {
    /// First day of the period.
    pub first: NaiveDate,
    /// Last day of the period: the run date.
    pub last: NaiveDate,
    dir: PathBuf,
    tz: chrono_tz::Tz,
}

/// A day as µs `[start, end)` in the run's time zone.
fn day_range(d: NaiveDate, tz: chrono_tz::Tz) -> (i64, i64) {
    (crate::settings::midnight(d, tz), crate::settings::midnight(d + chrono::Duration::days(1), tz))
}

/// The store's fingerprint: every setting that shapes journeys (columns, journey rules,
/// sources, identity map, time zone) and the content of the erasure list, so an erasure
/// starts a store without the erased persons.
fn fingerprint(s: &Settings) -> Result<String> {
    let erasure = match &s.input.erasure_list {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            format!("{:x}", Sha256::digest(&bytes))
        }
        None => String::new(),
    };
    let shape = serde_json::json!({
        "columns": s.columns,
        "journeys": s.journeys,
        "sources": s.sources,
        "conversions": s.conversions,
        "identity": s.identity,
        "customers": s.segments.customers,
        "timezone": s.window.timezone,
        "erasure": erasure,
    });
    Ok(Sha256::digest(shape.to_string().as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// Delete the stores of other fingerprints: they were cut under other settings or before
/// an erasure, and may hold journeys of persons since erased.
fn prune_other_stores(root: &Path, keep: &str) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(root) else { return Ok(()) };
    for e in entries.flatten() {
        if e.file_name() != keep && e.path().is_dir() {
            std::fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
            tracing::info!(store = %e.file_name().to_string_lossy(), "deleted a training store of other settings");
        }
    }
    Ok(())
}

impl Training {
    /// The period of a windowed run with `training_days`, or None.
    pub fn of(s: &Settings, root: &Path) -> Result<Option<Training>> {
        let Some(days) = s.models.training_days else { return Ok(None) };
        let w: Window = s.window().ok_or_else(|| {
            Error::Internal("a training window without a run date (Settings::refuse_for refuses it)".into())
        })?;
        let last = w.run_date.0;
        let first = last - chrono::Duration::days(days as i64 - 1);
        let fp = fingerprint(s)?;
        prune_other_stores(&root.join("_training"), &fp)?;
        Ok(Some(Training { first, last, dir: root.join("_training").join(fp), tz: s.tz() }))
    }

    fn file(&self, d: NaiveDate) -> PathBuf {
        self.dir.join(format!("closed_date={d}.parquet"))
    }

    /// Days of the period not in the store (always including the run date, recomputed on
    /// every run).
    pub fn missing(&self) -> Vec<NaiveDate> {
        self.first
            .iter_days()
            .take_while(|d| *d <= self.last)
            .filter(|d| *d == self.last || !self.file(*d).exists())
            .collect()
    }

    /// How far back events must be read to compute `missing` days: a journey closing on
    /// day d started at most two lookbacks before it.
    pub fn read_start(missing: &[NaiveDate], s: &Settings) -> Option<i64> {
        let first = missing.first()?;
        Some(day_range(*first, s.tz()).0 - 2 * s.journeys.max_lookback_micros())
    }

    /// Compute and store the missing days from the log, drop the stored days a rerun of the
    /// run date makes stale, and merge the period. Channel names of the result are sorted.
    pub fn fit_table(
        &self,
        log: &EventLog,
        order: &EventOrder,
        s: &Settings,
    ) -> Result<(PathTable, TrainingSummary)> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut sum = TrainingSummary::default();
        for d in self.missing() {
            let mut opts = JourneyOptions::resolve(&s.journeys, log, false);
            opts.closing = Some(s.journeys.lookback_micros());
            opts.report = Some(day_range(d, self.tz));
            let j = journeys::build(log, order, &opts);
            if d == self.last {
                sum.open_journeys = j.stats.open_journeys;
            }
            let tmp = self.dir.join(format!(".closed_date={d}.tmp"));
            engine::write_table(&report::partial_paths_of(&j.paths, '\u{1f}'), &tmp, Format::Parquet)?;
            std::fs::rename(&tmp, self.file(d)).map_err(|e| Error::io(&tmp, e))?;
            sum.days_computed += 1;
        }
        self.drop_stale(s)?;
        let mut names: Vec<String> = Vec::new();
        let mut parts: Vec<Vec<(String, f64, f64, f64)>> = Vec::new();
        for d in self.first.iter_days().take_while(|d| *d <= self.last) {
            let (paths, c, n, v) = engine::read_partial_paths(&self.file(d))?;
            parts.push((0..paths.len()).map(|i| (paths[i].clone(), c[i], n[i], v[i])).collect());
        }
        sum.days_stored = parts.len() as u64 - sum.days_computed;
        for p in &parts {
            names.extend(p.iter().flat_map(|r| r.0.split('\u{1f}').map(str::to_owned)));
        }
        names.sort();
        names.dedup();
        let rows = parts.into_iter().flatten().map(|(path, c, n, v)| PathRow {
            path: path
                .split('\u{1f}')
                .map(|x| names.binary_search_by(|y| y.as_str().cmp(x)).expect("a name") as u32)
                .collect(),
            conversions: c,
            nulls: n,
            value: v,
        });
        let table = PathTable::from_rows(names.clone(), rows);
        sum.journeys = table.total_conversions() + table.total_nulls();
        sum.conversions = table.total_conversions();
        Ok((table, sum))
    }

    /// Stored days after the run date that its events reach (a lookback and a day).
    fn drop_stale(&self, s: &Settings) -> Result<()> {
        let reach = (s.journeys.lookback_days.ceil() as i64) + 1;
        for k in 1..=reach {
            let f = self.file(self.last + chrono::Duration::days(k));
            if f.exists() {
                std::fs::remove_file(&f).map_err(|e| Error::io(&f, e))?;
                tracing::info!(file = %f.display(), "dropped a stored training day made stale by this rerun");
            }
        }
        Ok(())
    }
}

/// The training table of a run, in the log's channel space: channels seen only in stored
/// days are added to the log's (sorted) names, so window and training share one space.
pub fn prepare(t: &Training, log: &mut EventLog, s: &Settings) -> Result<(PathTable, TrainingSummary)> {
    let order = super::event_order(log, s);
    let (table, summary) = t.fit_table(log, &order, s)?;
    drop(order);
    let mut names = log.channels.clone();
    names.extend(table.channels.iter().cloned());
    names.sort();
    names.dedup();
    if names.len() != log.channels.len() {
        let new_id: Vec<u32> = log
            .channels
            .iter()
            .map(|c| names.binary_search(c).expect("a union of the names") as u32)
            .collect();
        for c in log.channel.iter_mut().filter(|c| **c != crate::core::event_log::NO_CHANNEL) {
            *c = new_id[*c as usize];
        }
        log.channels = names.clone();
    }
    let id = |c: u32| names.binary_search(&table.channels[c as usize]).expect("a union of the names") as u32;
    let rows =
        table.rows.iter().map(|r| PathRow { path: r.path.iter().map(|&c| id(c)).collect(), ..r.clone() });
    Ok((PathTable::from_rows(names.clone(), rows), summary))
}
