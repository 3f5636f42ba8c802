//! `touchpoint._touchpoint`: the extension module behind the `touchpoint` Python package.
//!
//! A thin edge, like the CLI: Arrow streams cross as PyCapsules of the Arrow C stream
//! interface (`arrow_array_stream`), settings as JSON of `section.key` overrides resolved by
//! the library's one settings schema, and `touchpoint::Error` becomes `TouchpointError`
//! with the CLI's message, `exit_code` and `kind`. The logic is all in the library.

use std::ffi::CString;
use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};
use touchpoint::engine::arrow::{ArrowArrayStream, ArrowInput};
use touchpoint::publish::manifest_last as mlast;
use touchpoint::run::arrow as api;
use touchpoint::settings::Settings;

create_exception!(
    _touchpoint,
    TouchpointError,
    PyException,
    "A run failed; `exit_code` and `kind` are the CLI's (docs/scheduling.md § Exit codes)."
);

const STREAM: &str = "arrow_array_stream";

fn py_err(py: Python<'_>, e: touchpoint::Error) -> PyErr {
    let err = TouchpointError::new_err(e.to_string());
    let value = err.value(py);
    // Setting two attributes on a fresh exception instance cannot fail in practice; if it
    // did, the error still carries its message.
    let _ = value.setattr("exit_code", e.exit_status().code());
    let _ = value.setattr("kind", e.kind());
    err
}

/// Take over the stream inside a capsule (the producer's struct is left released).
fn take_stream(capsule: &Bound<'_, PyAny>) -> PyResult<ArrowInput> {
    let capsule = capsule.cast::<PyCapsule>()?;
    let name = CString::new(STREAM).expect("no NUL in the name");
    // Checks the name, so only a stream capsule is read as one.
    let ptr = capsule.pointer_checked(Some(&name))?.as_ptr() as *mut ArrowArrayStream;
    // SAFETY: a capsule named `arrow_array_stream` holds a valid ArrowArrayStream (the
    // PyCapsule interface); it is consumed once, here, and left released.
    Ok(unsafe { ArrowInput::from_raw(ptr) })
}

/// The stream is moved into the capsule; whoever imports it (pyarrow) moves it out and
/// leaves it released, otherwise dropping it here releases it.
#[repr(transparent)]
struct SendStream(#[allow(dead_code)] ArrowArrayStream); // read through the capsule pointer, or dropped
                                                         // SAFETY: an Arrow C stream may be moved between threads (the interface does not tie it to
                                                         // the producing thread); it is only ever used by one thread at a time.
unsafe impl Send for SendStream {}

fn give_stream(py: Python<'_>, stream: SendStream) -> PyResult<Bound<'_, PyCapsule>> {
    let name = CString::new(STREAM).expect("no NUL in the name");
    PyCapsule::new_with_destructor(py, stream, Some(name), |s, _| drop(s))
}

/// Run `f` without the GIL (other Python threads go on), its streams made sendable.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> touchpoint::Result<T> + Send) -> PyResult<T> {
    py.detach(f).map_err(|e| py_err(py, e))
}

fn sendable(named: api::NamedStreams) -> Vec<(String, SendStream)> {
    named.into_iter().map(|(n, s)| (n, SendStream(s))).collect()
}

/// Settings resolved by [`resolve_settings`] (JSON of the pipeline file's shape), checked
/// again here because a caller may have edited them.
fn settings_of(py: Python<'_>, json: &str) -> PyResult<Settings> {
    let s: Settings = serde_json::from_str(json)
        .map_err(|e| py_err(py, touchpoint::Error::Config(format!("settings: {e}"))))?;
    s.validate().map_err(|e| py_err(py, e))
}

/// Settings from an optional pipeline file and `section.key` overrides (a JSON object).
fn resolve(py: Python<'_>, pipeline: Option<PathBuf>, overrides: &str) -> PyResult<Settings> {
    let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_str(overrides)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("settings: {e}")))?;
    let mut pairs = Vec::new();
    for (k, v) in doc {
        let v = toml::Value::try_from(v)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("setting {k}: {e}")))?;
        pairs.push((k, v));
    }
    api::settings(pipeline.as_deref(), pairs).map_err(|e| py_err(py, e))
}

type Tables<'py> = Vec<(String, Bound<'py, PyCapsule>)>;

/// What `solve` returns beside the tables: the page, the headline and how to finish
/// `journey_credit` (each when there is one).
type SolvedTexts = (Option<String>, Option<String>, Option<String>);

fn give_all(py: Python<'_>, named: Vec<(String, SendStream)>) -> PyResult<Tables<'_>> {
    named.into_iter().map(|(n, s)| Ok((n, give_stream(py, s)?))).collect()
}

/// Every table of `attribute` over an Arrow stream of events.
#[pyfunction]
fn attribute<'py>(py: Python<'py>, events: &Bound<'py, PyAny>, settings: &str) -> PyResult<Tables<'py>> {
    let settings = settings_of(py, settings)?;
    let input = take_stream(events)?;
    let named = detached(py, || api::attribute(settings, input).map(sendable))?;
    give_all(py, named)
}

/// A group of whole users: its metadata (JSON) and its named streams: `paths` (the
/// partial path table), with intervals `replicates` (the replicates' named statistics),
/// with a campaign column `campaigns` (the campaign sums), with `[channel_groups]`
/// `group_paths` and `group_replicates`, with segments `segment_paths`, with
/// `journey_credit` its rows.
#[pyfunction]
fn partial<'py>(
    py: Python<'py>,
    events: &Bound<'py, PyAny>,
    settings: &str,
) -> PyResult<(String, Tables<'py>)> {
    let settings = settings_of(py, settings)?;
    let input = api::PartialInput::Stream(take_stream(events)?);
    partial_of(py, settings, input)
}

/// The columns of an event log the library reads under these settings.
#[pyfunction]
fn event_columns(py: Python<'_>, settings: &str) -> PyResult<Vec<String>> {
    let settings = settings_of(py, settings)?;
    api::event_columns(&settings).map_err(|e| py_err(py, e))
}

/// The plan of the distributed read of staged input (JSON: the files, the columns of the
/// rows with their Spark SQL types), every file checked on the driver.
#[pyfunction]
fn split_plan(py: Python<'_>, settings: &str) -> PyResult<String> {
    let settings = settings_of(py, settings)?;
    detached(py, || api::split_plan(&settings))
}

/// File `index` of the plan, read and flagged by the rules of one row: what was counted
/// (JSON) and its rows.
#[pyfunction]
fn stage_file<'py>(
    py: Python<'py>,
    settings: &str,
    plan: &str,
    index: usize,
) -> PyResult<(String, Bound<'py, PyCapsule>)> {
    let settings = settings_of(py, settings)?;
    let (read, rows) = detached(py, || api::stage_file(&settings, plan, index))?;
    Ok((read, give_stream(py, SendStream(rows))?))
}

/// The staged rows of whole persons (a stream) read by `plan` ([`split_plan`]), as
/// [`partial`] gives a chunk of events.
#[pyfunction]
fn staged_rows_partial<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyAny>,
    settings: &str,
    plan: String,
) -> PyResult<(String, Tables<'py>)> {
    let settings = settings_of(py, settings)?;
    partial_of(py, settings, api::PartialInput::StagedRows(take_stream(rows)?, plan))
}

fn partial_of(
    py: Python<'_>,
    settings: Settings,
    input: api::PartialInput,
) -> PyResult<(String, Tables<'_>)> {
    let (meta, named) = detached(py, || {
        api::partial(settings, input).map(|p| {
            let named = [
                ("paths", Some(p.paths)),
                ("statistics", Some(p.statistics)),
                ("group_statistics", p.group_statistics),
                ("replicates", p.replicates),
                ("campaigns", p.campaigns),
                ("group_paths", p.group_paths),
                ("group_replicates", p.group_replicates),
                ("segment_paths", p.segment_paths),
                ("journey_credit", p.journey_credit),
            ];
            let present = named.into_iter().filter_map(|(n, s)| s.map(|s| (n.to_owned(), SendStream(s))));
            (p.meta, present.collect::<Vec<_>>())
        })
    })?;
    Ok((meta, give_all(py, named)?))
}

/// One Spark partition of `journey_credit` rows in one run's order, finished (the
/// markov_journey split, journey numbers, one run's columns) with `finish` from [`solve`].
#[pyfunction]
fn finish_journey_credit<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyAny>,
    settings: &str,
    finish: &str,
) -> PyResult<Bound<'py, PyCapsule>> {
    let settings = settings_of(py, settings)?;
    let input = take_stream(rows)?;
    let stream = detached(py, || api::finish_journey_credit(&settings, finish, input).map(SendStream))?;
    give_stream(py, stream)
}

/// Additive statistics of a group of distinct merged paths.
#[pyfunction]
fn path_statistics<'py>(
    py: Python<'py>,
    paths: &Bound<'py, PyAny>,
    settings: &str,
) -> PyResult<Bound<'py, PyCapsule>> {
    let settings = settings_of(py, settings)?;
    let input = take_stream(paths)?;
    let stream = detached(py, || api::path_statistics(&settings, input).map(SendStream))?;
    give_stream(py, stream)
}

/// The tables of the summed statistics and the partials' metadata. `summed` holds what
/// else was summed: `replicates` (the interval columns), `campaigns`
/// (`campaign_attribution`), `groups` (the group level's statistics and replicates) and
/// `segments` (each segment's key and statistics), `top_paths` (the page's paths: with them
/// the page is rendered too, and returned beside the tables with the manifest's headline)
/// and `previous_headline` (the previous date's, read from an object store). Returns the
/// tables, the page, the headline and, with `journey_credit`, how to finish its rows.
#[pyfunction]
#[pyo3(signature = (statistics, metas, settings, summed=None))]
fn solve<'py>(
    py: Python<'py>,
    statistics: &Bound<'py, PyAny>,
    metas: Vec<String>,
    settings: &str,
    summed: Option<&Bound<'py, PyDict>>,
) -> PyResult<(Tables<'py>, SolvedTexts)> {
    let settings = settings_of(py, settings)?;
    let item = |k: &str| -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(summed.map(|d| d.get_item(k)).transpose()?.flatten().filter(|v| !v.is_none()))
    };
    let stream = |k: &str| item(k)?.map(|v| take_stream(&v)).transpose();
    let groups = match item("groups")? {
        Some(g) => {
            let (stats, reps): (Bound<'py, PyAny>, Option<Bound<'py, PyAny>>) = g.extract()?;
            Some((take_stream(&stats)?, reps.as_ref().map(take_stream).transpose()?))
        }
        None => None,
    };
    let segments: Vec<(String, Bound<'py, PyAny>)> = match item("segments")? {
        Some(s) => s.extract()?,
        None => Vec::new(),
    };
    let summed = api::Summed {
        statistics: take_stream(statistics)?,
        replicates: stream("replicates")?,
        campaigns: stream("campaigns")?,
        groups,
        segments: segments.iter().map(|(k, s)| Ok((k.clone(), take_stream(s)?))).collect::<PyResult<_>>()?,
        top_paths: stream("top_paths")?,
        previous_headline: item("previous_headline")?.map(|v| v.extract()).transpose()?,
        history: item("history")?.map(|v| v.extract()).transpose()?,
    };
    let (named, page, headline, journey) = detached(py, || {
        api::solve(settings, &metas, summed).map(|s| (sendable(s.tables), s.page, s.headline, s.journey))
    })?;
    Ok((give_all(py, named)?, (page, headline, journey)))
}

/// The resolved settings as JSON (the Spark job reads column names and the window).
#[pyfunction]
#[pyo3(signature = (overrides, pipeline=None))]
fn resolve_settings(py: Python<'_>, overrides: &str, pipeline: Option<PathBuf>) -> PyResult<String> {
    let s = resolve(py, pipeline, overrides)?;
    serde_json::to_string(&s).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

/// Refuse, on the driver, settings the distributed fit cannot carry.
#[pyfunction]
fn check_distributed(py: Python<'_>, settings: &str) -> PyResult<()> {
    let s = settings_of(py, settings)?;
    api::check_spark(&s).map_err(|e| py_err(py, e))
}

/// `guards.max_conversion_change` of the library: this run's conversions against the
/// previous publication's (`previous`: its total conversions and where they were read, as
/// the Spark driver read them through its store), raising the CLI's `guard` error (65).
#[pyfunction]
#[pyo3(signature = (settings, conversions, previous=None))]
fn check_conversion_change(
    py: Python<'_>,
    settings: &str,
    conversions: f64,
    previous: Option<(f64, String)>,
) -> PyResult<()> {
    let s = settings_of(py, settings)?;
    api::check_conversion_change(&s, conversions, previous).map_err(|e| py_err(py, e))
}

/// Whether the settings stage their input (`[[sources]]`, `[conversions]`, `[identity]`,
/// customers, erasure, consent by person): the Spark job then reads the files itself, one
/// task a file ([`split_plan`], [`stage_file`], [`staged_rows_partial`]), instead of
/// reading a DataFrame of events.
#[pyfunction]
fn staged(py: Python<'_>, settings: &str) -> PyResult<bool> {
    Ok(settings_of(py, settings)?.staged())
}

/// Whether the settings have a campaign column (the event log's or a source's): only then
/// do the Spark job's chunks write campaign sums, and the job sums them.
#[pyfunction]
fn campaigns(py: Python<'_>, settings: &str) -> PyResult<bool> {
    Ok(settings_of(py, settings)?.campaigns())
}

/// Whether the settings segment the journeys (a segment column, the customer status or a
/// customers table): only then does the Spark job sum each segment's statistics.
#[pyfunction]
fn segmented(py: Python<'_>, settings: &str) -> PyResult<bool> {
    let s = settings_of(py, settings)?;
    Ok(s.segments.any(s.columns.segment.is_some()))
}

/// The fingerprint of the pseudonymization key (for the manifest), when `journey_credit`
/// names persons by pseudonym.
#[pyfunction]
fn pseudonym_fingerprint(py: Python<'_>, settings: &str) -> PyResult<Option<String>> {
    api::pseudonym_fingerprint(&settings_of(py, settings)?).map_err(|e| py_err(py, e))
}

/// The shard of each id of a one-column Arrow stream.
#[pyfunction]
fn shard_of(py: Python<'_>, ids: &Bound<'_, PyAny>, n: u32) -> PyResult<Vec<Option<u32>>> {
    let input = take_stream(ids)?;
    detached(py, || api::shard_of(input, n))
}

/// One run's publication to a store without rename (an object store), by the library's
/// rules (`touchpoint::publish::manifest_last`): where each file goes, what the manifest
/// holds, which earlier runs to delete. The driver moves the bytes, in that order.
#[pyclass(frozen)]
struct Publication {
    layout: mlast::Layout,
    run_id: String,
}

fn internal(e: impl std::fmt::Display) -> touchpoint::Error {
    touchpoint::Error::Internal(e.to_string())
}

#[pymethods]
impl Publication {
    /// A new run of `run_date` (`YYYY-MM-DD`, or None for a run without a date).
    #[new]
    #[pyo3(signature = (run_date=None))]
    fn new(py: Python<'_>, run_date: Option<&str>) -> PyResult<Self> {
        let layout = mlast::Layout::parse(run_date).map_err(|e| py_err(py, e))?;
        Ok(Publication { layout, run_id: mlast::new_run_id(chrono::Utc::now()) })
    }

    #[getter]
    fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The manifest's path relative to the output: the commit point.
    #[getter]
    fn manifest(&self) -> String {
        self.layout.manifest()
    }

    /// The directory of this run date's runs, and of this run.
    #[getter]
    fn runs(&self) -> String {
        self.layout.runs()
    }

    #[getter]
    fn run(&self) -> String {
        self.layout.run(&self.run_id)
    }

    /// Where table `name` goes: `kind` is "table", "document" (`report.html`) or "parts".
    fn file(&self, py: Python<'_>, name: &str, kind: &str) -> PyResult<String> {
        let kind = kind.parse().map_err(|e| py_err(py, e))?;
        Ok(self.layout.file(&self.run_id, name, kind))
    }

    /// The manifest's text: `files` maps each name to its entry's JSON (`entry`, `parts`);
    /// `extra` holds the optional `totals`, `headline`, `settings` and
    /// `pseudonym_key_fingerprint`.
    fn commit(
        &self,
        py: Python<'_>,
        files: std::collections::BTreeMap<String, String>,
        extra: &str,
    ) -> PyResult<String> {
        let files = files
            .into_iter()
            .map(|(name, e)| Ok((name, serde_json::from_str(&e)?)))
            .collect::<Result<_, serde_json::Error>>()
            .map_err(|e| py_err(py, internal(e)))?;
        let mut m = mlast::Manifest::new(&self.layout, &self.run_id, chrono::Utc::now(), files);
        let extra: Extra = serde_json::from_str(extra).map_err(|e| py_err(py, internal(e)))?;
        (m.totals, m.headline, m.settings, m.pseudonym_key_fingerprint) =
            (extra.totals, extra.headline, extra.settings, extra.pseudonym_key_fingerprint);
        Ok(m.to_json())
    }

    /// The runs to delete after the commit, of the names listed under `runs`.
    #[pyo3(signature = (listed, previous=None))]
    fn stale(&self, listed: Vec<String>, previous: Option<&str>) -> Vec<String> {
        let names: Vec<&str> = listed.iter().map(String::as_str).collect();
        mlast::stale_runs(&names, &self.run_id, previous).into_iter().map(str::to_string).collect()
    }
}

/// What a manifest carries besides its files.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Extra {
    #[serde(default)]
    totals: std::collections::BTreeMap<String, f64>,
    headline: Option<serde_json::Value>,
    settings: Option<serde_json::Value>,
    pseudonym_key_fingerprint: Option<String>,
}

/// The manifest paths of a run date: its own and the one its guard compares with.
#[pyfunction]
#[pyo3(signature = (run_date=None))]
fn manifest_paths(py: Python<'_>, run_date: Option<&str>) -> PyResult<(String, String)> {
    let layout = mlast::Layout::parse(run_date).map_err(|e| py_err(py, e))?;
    Ok((layout.manifest(), layout.previous().manifest()))
}

/// The entry (JSON) of `data` written at `path`; `rows` for a part.
#[pyfunction]
#[pyo3(signature = (path, data, rows=None))]
fn publication_entry(path: String, data: &[u8], rows: Option<u64>) -> String {
    serde_json::to_string(&mlast::Entry::of(path, data, rows)).expect("plain data")
}

/// The entry (JSON) of a table written in parts under `path` from its parts' entries.
#[pyfunction]
fn publication_parts(py: Python<'_>, path: String, parts: Vec<String>) -> PyResult<String> {
    let parts = parts
        .iter()
        .map(|p| serde_json::from_str(p))
        .collect::<Result<_, _>>()
        .map_err(|e| py_err(py, internal(e)))?;
    Ok(serde_json::to_string(&mlast::Entry::of_parts(path, parts)).expect("plain data"))
}

/// The file of a partition's part in the directory of a table written in parts.
#[pyfunction]
fn part_path(dir: &str, partition: u32) -> String {
    mlast::part_path(dir, partition)
}

/// Check a manifest read at `path` (another writer's is `bad_input`, 65); the caller keeps
/// its own parse of the text, every field and digit as written.
#[pyfunction]
fn check_manifest(py: Python<'_>, text: &str, path: &str) -> PyResult<()> {
    mlast::Manifest::parse(text, path).map(drop).map_err(|e| py_err(py, e))
}

/// Every file a manifest (JSON) lists, parts included, in the manifest's order.
#[pyfunction]
fn manifest_files(py: Python<'_>, text: &str) -> PyResult<Vec<String>> {
    mlast::listed_files(text).map_err(|e| py_err(py, e))
}

/// The lock of a local output root, the one the CLI's `run` takes (`<root>/.touchpoint/lock`):
/// released by `release()` or when the process dies.
#[pyclass]
struct RootLock(Option<touchpoint::publish::RootLock>);

#[pymethods]
impl RootLock {
    fn release(&mut self) {
        self.0 = None;
    }
}

/// Take the lock of the local output `root`, waiting up to `wait_seconds` (then `locked`,
/// 75), for the Spark job's publication: a root of the CLI's date partitions is refused
/// (`bad_configuration`, 78).
#[pyfunction]
#[pyo3(signature = (root, wait_seconds=0))]
fn lock_root(py: Python<'_>, root: PathBuf, wait_seconds: u64) -> PyResult<RootLock> {
    let wait = std::time::Duration::from_secs(wait_seconds);
    let lock = detached(py, || touchpoint::publish::RootLock::take(&root, wait))?;
    mlast::check_local_root(&root).map_err(|e| py_err(py, e))?;
    Ok(RootLock(Some(lock)))
}

#[pymodule]
fn _touchpoint(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TouchpointError", m.py().get_type::<TouchpointError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "DISTRIBUTED_MODELS",
        touchpoint::settings::Model::ALL.iter().map(|m| m.name()).collect::<Vec<_>>(),
    )?;
    m.add("DISTRIBUTED_TABLES", api::DISTRIBUTED_TABLES.to_vec())?;
    // The statistics' columns with their Spark SQL types, defined once in the library: the
    // Spark job builds its schemas from these.
    m.add("STATISTICS_SCHEMA", touchpoint::core::replicates::statistics_schema())?;
    m.add("REPLICATES_SCHEMA", touchpoint::core::replicates::replicates_schema())?;
    // The one statistic that is not a sum over chunks: the job counts it on the merged paths.
    m.add("DISTINCT_PATHS", touchpoint::core::replicates::Kind::DistinctPaths.name())?;
    m.add("CAMPAIGNS_SCHEMA", touchpoint::core::campaigns::schema())?;
    m.add("JOURNEY_SCHEMA", touchpoint::run::shard::JOURNEY_SCHEMA.to_vec())?;
    m.add("SECTIONS", touchpoint::settings::SECTIONS.to_vec())?;
    m.add("TOP_PATHS", touchpoint::report::TOP_PATHS)?;
    m.add_function(wrap_pyfunction!(attribute, m)?)?;
    m.add_function(wrap_pyfunction!(partial, m)?)?;
    m.add_function(wrap_pyfunction!(event_columns, m)?)?;
    m.add_function(wrap_pyfunction!(split_plan, m)?)?;
    m.add_function(wrap_pyfunction!(stage_file, m)?)?;
    m.add_function(wrap_pyfunction!(staged_rows_partial, m)?)?;
    m.add_function(wrap_pyfunction!(staged, m)?)?;
    m.add_function(wrap_pyfunction!(campaigns, m)?)?;
    m.add_function(wrap_pyfunction!(segmented, m)?)?;
    m.add_function(wrap_pyfunction!(pseudonym_fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(finish_journey_credit, m)?)?;
    m.add_function(wrap_pyfunction!(path_statistics, m)?)?;
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_settings, m)?)?;
    m.add_function(wrap_pyfunction!(shard_of, m)?)?;
    m.add_function(wrap_pyfunction!(check_distributed, m)?)?;
    m.add_function(wrap_pyfunction!(check_conversion_change, m)?)?;
    m.add_class::<Publication>()?;
    m.add_class::<RootLock>()?;
    m.add("PUBLICATION_FORMAT", mlast::FORMAT)?;
    m.add_function(wrap_pyfunction!(manifest_paths, m)?)?;
    m.add_function(wrap_pyfunction!(publication_entry, m)?)?;
    m.add_function(wrap_pyfunction!(publication_parts, m)?)?;
    m.add_function(wrap_pyfunction!(part_path, m)?)?;
    m.add_function(wrap_pyfunction!(check_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(manifest_files, m)?)?;
    m.add_function(wrap_pyfunction!(lock_root, m)?)?;
    Ok(())
}
