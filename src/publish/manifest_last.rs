//! Publication where nothing can be renamed: an object store (`docs/scale.md` § Spark,
//! "Publication, manifest last").
//!
//! The CLI's publication swaps a symlink; S3 and its kin have no rename, no directory and no
//! link. What one PUT does give is an object that is either wholly old or wholly new, so the
//! **manifest is the commit point**:
//!
//! 1. every file of a run goes under a fresh prefix nothing points at,
//!    `_runs/<key>/<run-id>/` ([`Layout::file`]);
//! 2. the manifest ([`Manifest`]), naming every file with its size and SHA-256, is written
//!    last in one PUT at `_manifest/<key>/_manifest.json`, where the CLI's dated output keeps
//!    its own manifest (so either writer's guards find the other's totals);
//! 3. after the commit, [`stale_runs`] says which earlier runs to delete.
//!
//! This module is the rules, with no I/O: whoever holds the store's client (the Spark
//! driver, through pyarrow's filesystems) moves the bytes in this order. `<key>` is
//! `run_date=D`, or `latest` for a run without a date.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The directory of every run's files, under the output.
pub const RUNS: &str = "_runs";

/// The manifest's format: a reader checks it before trusting the rest.
pub const FORMAT: &str = "touchpoint-publication/1";

/// A run id starts with its UTC start time in this form, so ids sort by start.
const ID_TIME: &str = "%Y%m%dT%H%M%S%6fZ";

/// Runs a killed job left are deleted once they started this long before a committing run.
/// Not sooner: there is no lock on an object store, so a younger run may be another job of
/// the same date that is still writing, and its manifest must find its files.
pub const LEFTOVER_AGE: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Where one run date's publication lives, relative to the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    key: String,
    run_date: Option<NaiveDate>,
}

impl Layout {
    /// The layout of a run date (`None`: a run without a date).
    pub fn of(run_date: Option<NaiveDate>) -> Layout {
        let key = run_date.map_or_else(|| "latest".to_string(), |d| format!("run_date={d}"));
        Layout { key, run_date }
    }

    /// The layout of a run date given as text (`YYYY-MM-DD`), as settings and flags give it.
    pub fn parse(run_date: Option<&str>) -> Result<Layout> {
        let date = run_date
            .map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|e| Error::Config(format!("run date `{d}`: {e} (expected YYYY-MM-DD)")))
            })
            .transpose()?;
        Ok(Layout::of(date))
    }

    /// `run_date=D` or `latest`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The manifest: the commit point.
    pub fn manifest(&self) -> String {
        format!("_manifest/{}/_manifest.json", self.key)
    }

    /// The directory of this key's runs (listed by [`stale_runs`]' caller).
    pub fn runs(&self) -> String {
        format!("{RUNS}/{}", self.key)
    }

    /// A run's own prefix: nothing points at it until its manifest is written.
    pub fn run(&self, run_id: &str) -> String {
        format!("{}/{run_id}", self.runs())
    }

    /// A table's file in a run (`<table>.parquet`); a document (`report.html`) and a table
    /// written in parts (a directory of `part-NNNNN.parquet`) keep their own names.
    pub fn file(&self, run_id: &str, name: &str, kind: FileKind) -> String {
        match kind {
            FileKind::Table => format!("{}/{name}.parquet", self.run(run_id)),
            FileKind::Document | FileKind::Parts => format!("{}/{name}", self.run(run_id)),
        }
    }

    /// A part of a table written in parts, numbered by its partition.
    pub fn part(&self, run_id: &str, name: &str, partition: u32) -> String {
        part_path(&self.file(run_id, name, FileKind::Parts), partition)
    }

    /// Whose totals `guards.max_conversion_change` compares with: the previous run date's
    /// manifest, or for a run without a date the present one (the run it replaces).
    pub fn previous(&self) -> Layout {
        match self.run_date.and_then(|d| d.pred_opt()) {
            Some(d) => Layout::of(Some(d)),
            None => self.clone(),
        }
    }
}

/// What a published file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// One Parquet file.
    Table,
    /// A document under its own name (`report.html`).
    Document,
    /// A directory of parts, written by Spark's executors.
    Parts,
}

/// The file of a partition's part in the directory `dir` of a table written in parts
/// (what an executor writes, knowing only the directory and its partition).
pub fn part_path(dir: &str, partition: u32) -> String {
    format!("{dir}/part-{partition:05}.parquet")
}

impl std::str::FromStr for FileKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<FileKind> {
        match s {
            "table" => Ok(FileKind::Table),
            "document" => Ok(FileKind::Document),
            "parts" => Ok(FileKind::Parts),
            _ => Err(Error::Internal(format!("file kind `{s}` (table, document or parts)"))),
        }
    }
}

/// Refuse a local root the CLI publishes date partitions to (`.touchpoint/dates`): the two
/// layouts share the manifests' paths, and each would take the other's files for its own.
/// (The CLI refuses a root holding [`RUNS`] in turn.)
pub fn check_local_root(root: &std::path::Path) -> Result<()> {
    if root.join(".touchpoint").join("dates").is_dir() {
        return Err(Error::Config(format!(
            "output root `{}` holds the CLI's date partitions (`.touchpoint/dates`); the Spark \
             job's publication (manifests written last) needs a root of its own",
            root.display()
        )));
    }
    Ok(())
}

/// A new run id: the UTC start and 12 hex digits no other process draws (the hasher's keys
/// are random per process, mixed with the time and the process id), so two runs never
/// share a prefix.
pub fn new_run_id(now: DateTime<Utc>) -> String {
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_i64(now.timestamp_nanos_opt().unwrap_or_default());
    h.write_u32(std::process::id());
    format!("{}-{:012x}", now.format(ID_TIME), h.finish() & 0xffff_ffff_ffff)
}

/// A file in the manifest: its path relative to the output, size and SHA-256 of the bytes
/// written; a table written in parts lists its `parts` in order (its rows are theirs,
/// concatenated) and has no hash of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the output.
    pub path: String,
    /// Size in bytes (the parts' sum for a table in parts).
    pub bytes: u64,
    /// Hex SHA-256 of the bytes written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Rows of a part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The parts of a table written in parts, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<Entry>>,
}

impl Entry {
    /// The entry of bytes written at `path` (`rows` for a part).
    pub fn of(path: String, data: &[u8], rows: Option<u64>) -> Entry {
        let sha256 = Some(super::sha256_bytes(data));
        Entry { path, bytes: data.len() as u64, sha256, rows, parts: None }
    }

    /// The entry of a table written in parts: the parts sorted by their partition number
    /// (the table's order), their sizes summed.
    pub fn of_parts(path: String, mut parts: Vec<Entry>) -> Entry {
        parts.sort_by_key(|p| part_number(&p.path));
        let bytes = parts.iter().map(|p| p.bytes).sum();
        Entry { path, bytes, sha256: None, rows: None, parts: Some(parts) }
    }

    /// Every file of this entry: itself, or its parts.
    pub fn files(&self) -> Vec<&str> {
        match &self.parts {
            Some(parts) => parts.iter().map(|p| p.path.as_str()).collect(),
            None => vec![self.path.as_str()],
        }
    }
}

/// The number of `…/part-NNNNN.parquet` (by number, not by name: 100000 sorts after 99999).
fn part_number(path: &str) -> u64 {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.trim_start_matches("part-").split('.').next().and_then(|n| n.parse().ok()).unwrap_or(u64::MAX)
}

/// The commit: one run's files, totals and page data. Written last, in one PUT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The run date (`YYYY-MM-DD`), or null for a run without one.
    pub run_date: Option<String>,
    /// The run's id ([`new_run_id`]): its files are under `_runs/<key>/<run_id>/`.
    pub run_id: String,
    /// When the manifest was written (UTC, seconds).
    pub published_at: String,
    /// `conversions` and `conversion_value`: what the next date's guard compares with.
    pub totals: BTreeMap<String, f64>,
    /// Every table and document, by name.
    pub files: BTreeMap<String, Entry>,
    /// The page's headline (the next date's page compares with it), as the CLI keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<serde_json::Value>,
    /// What the headline measured (window length, spend period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<serde_json::Value>,
    /// The pseudonymization key's fingerprint, as in the CLI's manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym_key_fingerprint: Option<String>,
}

impl Manifest {
    /// The manifest of a run that wrote `files`, published `now`.
    pub fn new(
        layout: &Layout,
        run_id: &str,
        now: DateTime<Utc>,
        files: BTreeMap<String, Entry>,
    ) -> Manifest {
        Manifest {
            format: FORMAT.to_string(),
            run_date: layout.run_date.map(|d| d.to_string()),
            run_id: run_id.to_string(),
            published_at: now.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            totals: BTreeMap::new(),
            files,
            headline: None,
            settings: None,
            pseudonym_key_fingerprint: None,
        }
    }

    /// Read a manifest found at `path`, refusing another writer's (the CLI's dated
    /// manifest shares the path but not the format) or a file of another shape.
    pub fn parse(text: &str, path: &str) -> Result<Manifest> {
        let bad = |problem: String| Error::BadInput { file: path.into(), column: None, problem };
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        if doc.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(bad(format!("not a {FORMAT} manifest")));
        }
        serde_json::from_value(doc).map_err(|e| bad(format!("a {FORMAT} manifest of another shape: {e}")))
    }

    /// The JSON written, indented, with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a manifest is plain data");
        s.push('\n');
        s
    }

    /// Every file listed, relative to the output, parts included.
    pub fn files(&self) -> Vec<&str> {
        self.files.values().flat_map(Entry::files).collect()
    }
}

/// The files of any document with a manifest's `files` (other fields are not looked at):
/// what a reader reads, parts included, in the manifest's order.
pub fn listed_files(text: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Listed {
        files: BTreeMap<String, Entry>,
    }
    let listed: Listed = serde_json::from_str(text).map_err(|e| Error::BadInput {
        file: "manifest".into(),
        column: None,
        problem: format!("no files to list: {e}"),
    })?;
    Ok(listed.files.values().flat_map(Entry::files).map(str::to_string).collect())
}

/// The runs of a key to delete after `this` run committed, from the names listed under
/// [`Layout::runs`]: the run the previous manifest named, and runs that started more than
/// [`LEFTOVER_AGE`] before this one (what a killed job left). Never a younger run, and never
/// a name that is not a run id (a reader's or another tool's file is not ours to delete).
pub fn stale_runs<'a>(listed: &[&'a str], this: &str, previous: Option<&str>) -> Vec<&'a str> {
    let start = started(this);
    let mut out: Vec<&str> = listed
        .iter()
        .copied()
        .filter(|&name| name != this)
        .filter(|&name| {
            Some(name) == previous
                || matches!((started(name), start), (Some(a), Some(b)) if b - a > LEFTOVER_AGE)
        })
        .collect();
    out.sort_unstable();
    out
}

/// When a run started, from its id (`None` for a name of another shape).
fn started(run_id: &str) -> Option<NaiveDateTime> {
    let (time, suffix) = run_id.split_once('-')?;
    if suffix.len() != 12 || !suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(time, ID_TIME).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_layout_puts_the_manifest_where_the_clis_dated_output_keeps_it() {
        let l = Layout::parse(Some("2024-03-01")).unwrap();
        assert_eq!(l.manifest(), "_manifest/run_date=2024-03-01/_manifest.json");
        assert_eq!(
            l.file("r", "channel_attribution", FileKind::Table),
            "_runs/run_date=2024-03-01/r/channel_attribution.parquet"
        );
        assert_eq!(l.file("r", "report.html", FileKind::Document), "_runs/run_date=2024-03-01/r/report.html");
        assert_eq!(
            l.part("r", "path_summary", 7),
            "_runs/run_date=2024-03-01/r/path_summary/part-00007.parquet"
        );
        // The guard compares with the day before, across a month and a leap day.
        assert_eq!(l.previous().manifest(), "_manifest/run_date=2024-02-29/_manifest.json");
        let undated = Layout::parse(None).unwrap();
        assert_eq!(
            (undated.manifest().as_str(), undated.previous()),
            ("_manifest/latest/_manifest.json", undated.clone())
        );
        let e = Layout::parse(Some("2024-02-30")).unwrap_err();
        assert_eq!((e.kind(), e.exit_status().code()), ("bad_configuration", 78));
    }

    #[test]
    fn run_ids_sort_by_start_and_never_repeat() {
        let now = at("2024-03-01T02:03:04.123456Z");
        let a = new_run_id(now);
        assert!(a.starts_with("20240301T020304123456Z-"), "{a}");
        assert_eq!(started(&a), Some(now.naive_utc()));
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_run_id(now)).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn only_the_replaced_run_and_day_old_leftovers_are_stale() {
        let this = new_run_id(at("2024-03-02T12:00:00Z"));
        let previous = new_run_id(at("2024-03-02T11:00:00Z"));
        let killed_old = new_run_id(at("2024-03-01T11:59:59Z")); // 24 h and 1 s before
        let killed_recent = new_run_id(at("2024-03-01T12:00:01Z")); // may still be writing
        let younger = new_run_id(at("2024-03-02T12:00:01Z")); // another job of the date
        let listed = [this.as_str(), &previous, &killed_old, &killed_recent, &younger, "README", "2020-abc"];
        let mut want = vec![killed_old.as_str(), previous.as_str()];
        want.sort_unstable();
        assert_eq!(stale_runs(&listed, &this, Some(&previous)), want);
        assert_eq!(stale_runs(&listed, &this, None), vec![killed_old.as_str()]);
    }

    #[test]
    fn a_manifest_round_trips_and_another_writers_is_refused() {
        let l = Layout::parse(Some("2024-03-01")).unwrap();
        let now = at("2024-03-02T01:00:00Z");
        let parts = vec![
            Entry::of(l.part("r", "path_summary", 10), b"b", Some(1)),
            Entry::of(l.part("r", "path_summary", 9), b"aa", Some(2)),
        ];
        let files = BTreeMap::from([
            (
                "channel_attribution".to_string(),
                Entry::of(l.file("r", "channel_attribution", FileKind::Table), b"abc", None),
            ),
            (
                "path_summary".to_string(),
                Entry::of_parts(l.file("r", "path_summary", FileKind::Parts), parts),
            ),
        ]);
        let mut m = Manifest::new(&l, "r", now, files);
        m.totals.insert("conversions".into(), 12.0);
        let text = m.to_json();
        assert_eq!(Manifest::parse(&text, "m.json").unwrap(), m);
        // SHA-256 of "abc" (FIPS 180-2's example); parts in partition order, sizes summed.
        let ca = &m.files["channel_attribution"];
        assert_eq!(
            ca.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(m.files["path_summary"].bytes, 3);
        assert_eq!(m.files()[1..], [l.part("r", "path_summary", 9), l.part("r", "path_summary", 10)]);
        assert!(
            text.contains("\"run_date\": \"2024-03-01\"")
                && text.contains("\"published_at\": \"2024-03-02T01:00:00+00:00\"")
        );
        let cli = r#"{"tool": "touchpoint", "totals": {"conversions": 3}}"#;
        let e = Manifest::parse(cli, "s3://b/_manifest.json").unwrap_err();
        assert_eq!((e.kind(), e.exit_status().code()), ("bad_input", 65));
        assert!(e.to_string().contains("s3://b/_manifest.json") && e.to_string().contains(FORMAT), "{e}");
    }
}
