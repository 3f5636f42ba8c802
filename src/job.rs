//! Declarative jobs: pipeline files, the resolution of settings (file < environment <
//! flags), and scheduled runs that write date partitions.
//!
//! A pipeline file is TOML with `version = 1`; unknown keys are an error (a typo must never
//! silently fall back to a default in a nightly job). Relative paths in the file are
//! relative to the file itself, so a pipeline runs the same from any working directory.
//! Environment variables `TOUCHPOINT_<SECTION>__<KEY>` and `--set section.key=value` flags
//! override file values; the resolved settings and where each override came from are shown
//! by `--show-settings` and recorded in the manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{Columns, Format, JourneyRules, MarkovOrder, Model, ModelParams, Settings, Window};
use crate::error::{Error, Result};
use crate::models::PositionWeights;
use crate::pipeline::{self, RunSummary};

/// The `[input]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Event log: a file, a directory (hive-partitioned dataset) or a glob.
    pub events: String,
    /// Hive partition key of the input, for partition pruning.
    #[serde(default = "default_partition_key")]
    pub partition_key: String,
    /// Optional spend per channel (`channel`, `spend`), for CPA and ROAS.
    #[serde(default)]
    pub spend: Option<String>,
}

fn default_partition_key() -> String {
    "date".into()
}

/// The `[models]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsSpec {
    /// Models to run.
    pub run: Vec<Model>,
    /// Markov order: an integer, `"auto"` or `"auto(max=N)"`.
    pub markov_order: MarkovOrder,
    /// Sequence removal effects to compute at order ≥ 2.
    pub markov_max_sequences: usize,
    /// Channels that `last_non_direct` skips.
    pub direct_channels: Vec<String>,
    /// `u_shaped`, `j_shaped`, `inverse_j` or `"f,m,l"`.
    pub position_weights: String,
    /// Half-life of `time_decay` in days.
    pub time_decay_half_life_days: f64,
}

impl Default for ModelsSpec {
    fn default() -> Self {
        let p = ModelParams::default();
        ModelsSpec {
            run: Model::ALL.to_vec(),
            markov_order: p.markov_order,
            markov_max_sequences: p.markov_max_sequences,
            direct_channels: p.direct_channels,
            position_weights: "u_shaped".into(),
            time_decay_half_life_days: p.time_decay_half_life_days,
        }
    }
}

/// The `[window]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSpec {
    /// Days of conversions each run reports (ending on the run date).
    pub days: u32,
    /// The run date (`YYYY-MM-DD`); normally given by `--run-date`. Default: yesterday (UTC).
    pub run_date: Option<String>,
}

impl Default for WindowSpec {
    fn default() -> Self {
        WindowSpec { days: 1, run_date: None }
    }
}

/// The `[output]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Root directory of the partitioned tables.
    pub root: String,
    /// Table format.
    #[serde(default)]
    pub format: Format,
    /// Also write `journey_credit`.
    #[serde(default)]
    pub journey_credit: bool,
}

/// A pipeline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Format version; must be 1.
    pub version: u32,
    /// Name of the job (for logs and the manifest).
    #[serde(default)]
    pub name: Option<String>,
    /// Input.
    pub input: InputSpec,
    /// Column mapping.
    #[serde(default)]
    pub columns: Columns,
    /// Journey rules.
    #[serde(default)]
    pub journeys: JourneyRules,
    /// Models and their parameters.
    #[serde(default)]
    pub models: ModelsSpec,
    /// Reporting window.
    #[serde(default)]
    pub window: WindowSpec,
    /// Output.
    pub output: OutputSpec,
}

/// A pipeline resolved into run settings.
#[derive(Debug, Clone)]
pub struct Job {
    /// The pipeline file.
    pub file: PathBuf,
    /// The resolved specification (every default filled in).
    pub spec: PipelineSpec,
    /// Settings of the run.
    pub settings: Settings,
    /// Where each value that is not the file's came from: dotted key → source.
    pub sources: BTreeMap<String, String>,
}

/// Overrides from flags: `--run-date`, `--window-days` and `--set key=value`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--run-date`.
    pub run_date: Option<String>,
    /// `--window-days`.
    pub window_days: Option<u32>,
    /// `--set section.key=value`, in order.
    pub set: Vec<String>,
}

fn parse_value(v: &str) -> toml::Value {
    // A TOML literal when it is one (numbers, booleans, arrays, quoted strings), else a string.
    format!("v = {v}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(v.to_owned()))
}

fn set_key(table: &mut toml::Table, dotted: &str, value: toml::Value) -> Result<()> {
    let parts: Vec<&str> = dotted.split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::Config(format!("bad settings key `{dotted}`")));
    }
    let mut t = table;
    for p in &parts[..parts.len() - 1] {
        let entry = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| Error::Config(format!("`{p}` in `{dotted}` is not a section")))?;
    }
    t.insert(parts[parts.len() - 1].to_owned(), value);
    Ok(())
}

/// Environment variables that are not settings.
const NOT_SETTINGS: [&str; 1] = ["TOUCHPOINT_FAULT"];

/// Load a pipeline file and resolve it with the environment and flag overrides.
pub fn load(file: &Path, env: &[(String, String)], flags: &Overrides) -> Result<Job> {
    let text = std::fs::read_to_string(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::NotFound { path: file.into(), problem: "no such pipeline file".into() }
        }
        _ => Error::io(file, e),
    })?;
    let mut table: toml::Table =
        text.parse().map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
    // Paths in the file are relative to the file.
    let base = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    for (section, key) in [("input", "events"), ("input", "spend"), ("output", "root")] {
        if let Some(toml::Value::String(p)) = table.get_mut(section).and_then(|s| s.get_mut(key)) {
            if Path::new(p.as_str()).is_relative() {
                *p = base.join(p.as_str()).to_string_lossy().into_owned();
            }
        }
    }
    let mut sources = BTreeMap::new();
    let mut env: Vec<&(String, String)> = env.iter().filter(|(k, _)| k.starts_with("TOUCHPOINT_")).collect();
    env.sort();
    for (k, v) in env {
        if NOT_SETTINGS.contains(&k.as_str()) {
            continue;
        }
        let dotted = k["TOUCHPOINT_".len()..].to_lowercase().replace("__", ".");
        if !dotted.contains('.') {
            return Err(Error::Config(format!(
                "environment variable {k}: expected TOUCHPOINT_<SECTION>__<KEY>, e.g. TOUCHPOINT_JOURNEYS__LOOKBACK_DAYS"
            )));
        }
        set_key(&mut table, &dotted, parse_value(v))?;
        sources.insert(dotted, format!("environment {k}"));
    }
    for s in &flags.set {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("--set `{s}`: expected section.key=value")))?;
        set_key(&mut table, k.trim(), parse_value(v.trim()))?;
        sources.insert(k.trim().to_owned(), "flag --set".into());
    }
    if let Some(d) = &flags.run_date {
        set_key(&mut table, "window.run_date", toml::Value::String(d.clone()))?;
        sources.insert("window.run_date".into(), "flag --run-date".into());
    }
    if let Some(n) = flags.window_days {
        set_key(&mut table, "window.days", toml::Value::Integer(n as i64))?;
        sources.insert("window.days".into(), "flag --window-days".into());
    }
    let mut spec: PipelineSpec = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| Error::Config(format!("{}: {}", file.display(), e.message())))?;
    if spec.version != 1 {
        return Err(Error::Config(format!(
            "{}: unsupported version {} (this touchpoint reads version 1)",
            file.display(),
            spec.version
        )));
    }
    if spec.window.run_date.is_none() {
        let yesterday = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
        spec.window.run_date = Some(yesterday.format("%Y-%m-%d").to_string());
        sources.insert("window.run_date".into(), "default (yesterday, UTC)".into());
    }
    let settings = settings_of(&spec)?;
    Ok(Job { file: file.to_path_buf(), spec, settings, sources })
}

fn settings_of(spec: &PipelineSpec) -> Result<Settings> {
    let mut columns = spec.columns.clone();
    // An empty string switches an optional column off (TOML has no null).
    for c in [&mut columns.value, &mut columns.tie_breaker, &mut columns.touch_type, &mut columns.campaign] {
        if c.as_deref() == Some("") {
            *c = None;
        }
    }
    let m = &spec.models;
    Settings {
        columns,
        journeys: spec.journeys.clone(),
        models: m.run.clone(),
        params: ModelParams {
            direct_channels: m.direct_channels.clone(),
            position_weights: PositionWeights::parse(&m.position_weights).map_err(Error::Config)?,
            time_decay_half_life_days: m.time_decay_half_life_days,
            markov_order: m.markov_order,
            markov_max_sequences: m.markov_max_sequences,
        },
        format: spec.output.format,
        journey_credit: spec.output.journey_credit,
        window: Some(Window {
            run_date: spec.window.run_date.clone().unwrap_or_default(),
            days: spec.window.days,
        }),
        partition_key: Some(spec.input.partition_key.clone()),
        spend: spec.input.spend.clone(),
    }
    .validate()
}

impl Job {
    /// The resolved settings as TOML, with the source of every override.
    pub fn show(&self) -> String {
        let mut s = format!(
            "# touchpoint settings for {} (precedence: file < environment < flags)\n",
            self.file.display()
        );
        s.push_str(&toml::to_string(&self.spec).unwrap_or_else(|e| format!("# cannot render: {e}\n")));
        if !self.sources.is_empty() {
            s.push_str("\n# overrides\n");
            for (k, v) in &self.sources {
                s.push_str(&format!("#   {k}: {v}\n"));
            }
        }
        s
    }

    /// Output root.
    pub fn root(&self) -> PathBuf {
        PathBuf::from(&self.spec.output.root)
    }

    /// The run date.
    pub fn run_date(&self) -> &str {
        self.spec.window.run_date.as_deref().unwrap_or_default()
    }

    /// Check the settings and every input file's schema without reading any data.
    pub fn validate(&self) -> Result<serde_json::Value> {
        let (scope, _) = pipeline::scope_of(&self.settings)?;
        let files = crate::input::validate_inputs(&self.spec.input.events, &self.settings.columns, &scope)?;
        Ok(json!({
            "status": "ok",
            "pipeline": self.file.display().to_string(),
            "run_date": self.run_date(),
            "inputs": files,
        }))
    }

    /// The plan of a run: window, files to read, paths to write. Reads only file footers.
    pub fn plan(&self) -> Result<serde_json::Value> {
        let (scope, report) = pipeline::scope_of(&self.settings)?;
        let files = crate::input::validate_inputs(&self.spec.input.events, &self.settings.columns, &scope)?;
        let iso =
            |us: i64| chrono::DateTime::from_timestamp_micros(us).map(|d| d.to_rfc3339()).unwrap_or_default();
        let root = self.root();
        let part = format!("run_date={}", self.run_date());
        let ext = self.settings.format.extension();
        let outputs: Vec<String> = crate::report::table_names(&self.settings)
            .iter()
            .map(|t| root.join(t).join(&part).join(format!("part-0.{ext}")).display().to_string())
            .chain(std::iter::once(
                root.join("_manifest").join(&part).join("_manifest.json").display().to_string(),
            ))
            .collect();
        Ok(json!({
            "status": "dry_run",
            "pipeline": self.file.display().to_string(),
            "run_date": self.run_date(),
            "report_window": report.map(|(a, b)| json!({"start": iso(a), "end_exclusive": iso(b)})),
            "read_range": scope.range.map(|(a, b)| json!({"start": iso(a), "end_exclusive": iso(b)})),
            "inputs": files,
            "outputs": outputs,
            "overrides": self.sources,
        }))
    }

    /// Run the job: compute and publish the run date's partitions.
    pub fn run(&self, phase: &dyn Fn(&'static str)) -> Result<RunSummary> {
        let t0 = Instant::now();
        let mut timings = Vec::new();
        let run = pipeline::compute_with(&self.spec.input.events, &self.settings, &mut timings, phase)?;
        phase("write");
        let root = self.root();
        let run_date = self.run_date().to_owned();
        pipeline::publish_with(
            &run,
            &self.settings,
            "run",
            timings,
            t0,
            &root.display().to_string(),
            |tabs, doc| {
                let mut doc = doc;
                doc["pipeline"] = json!(self.file.display().to_string());
                doc["name"] = json!(self.spec.name);
                doc["run_date"] = json!(run_date);
                doc["overrides"] = json!(self.sources);
                crate::output::publish_partitioned(&root, &run_date, self.settings.format, tabs, |files| {
                    doc["outputs"] = json!(files);
                    doc
                })
            },
        )
    }
}
