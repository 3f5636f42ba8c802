//! Scheduled runs of a pipeline file: validate, plan (dry run) and run one run date into
//! date partitions. The file's schema and its resolution with the environment and flags
//! are the settings layer's ([`crate::settings::resolve`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;

use super::{scope_of, Run, RunSummary};
use crate::engine;
use crate::error::{Error, Result};
use crate::report::TableName;
use crate::settings::{Resolved, RunDate, Settings};

/// A pipeline resolved into run settings.
#[derive(Debug, Clone)]
pub struct Job {
    /// The pipeline file.
    pub file: PathBuf,
    /// Settings of the run (the run date filled in).
    pub settings: Settings,
    /// Where each value that is not the file's came from: dotted key → source.
    pub sources: BTreeMap<String, String>,
}

impl Job {
    /// A job from resolved settings; a missing run date becomes yesterday (UTC).
    pub fn new(file: PathBuf, resolved: Resolved) -> Result<Job> {
        let Resolved { mut settings, mut sources } = resolved;
        if settings.input.events.is_none() {
            return Err(Error::Config(format!("{}: input.events is required", file.display())));
        }
        if settings.output.root.is_none() {
            return Err(Error::Config(format!("{}: output.root is required", file.display())));
        }
        if settings.window.run_date.is_none() {
            let today = chrono::Utc::now().with_timezone(&settings.tz()).date_naive();
            settings.window.run_date = Some(RunDate(today - chrono::Duration::days(1)));
            let zone = &settings.window.timezone;
            sources.insert("window.run_date".into(), format!("default (yesterday, {zone})"));
        }
        Ok(Job { file, settings, sources })
    }

    /// The resolved settings as TOML, with the source of every override.
    pub fn show(&self) -> String {
        let mut s = format!(
            "# touchpoint settings for {} (precedence: file < environment < flags)\n",
            self.file.display()
        );
        s.push_str(&toml::to_string(&self.settings).unwrap_or_else(|e| format!("# cannot render: {e}\n")));
        if !self.sources.is_empty() {
            s.push_str("\n# overrides\n");
            for (k, v) in &self.sources {
                s.push_str(&format!("#   {k}: {v}\n"));
            }
        }
        s
    }

    /// The run date.
    pub fn run_date(&self) -> String {
        self.settings.window.run_date.map(|d| d.to_string()).unwrap_or_default()
    }

    fn events(&self) -> &str {
        self.settings.input.events.as_deref().unwrap_or_default()
    }

    /// The input files of a scope, their schemas checked: the event log's from the footers,
    /// every source's (`docs/sources.md`) without reading its rows.
    fn check_inputs(
        &self,
        scope: &crate::engine::ReadScope,
    ) -> Result<Vec<crate::core::event_log::InputFile>> {
        if self.settings.staged() {
            return engine::sources::check(&self.settings, scope);
        }
        engine::validate_inputs(self.events(), (&self.settings.columns, &self.settings.channel_rules), scope)
    }

    /// Check the settings and every input file's schema without reading any data.
    pub fn validate(&self) -> Result<serde_json::Value> {
        let (scope, _) = scope_of(&self.settings);
        let files = self.check_inputs(&scope)?;
        Ok(json!({
            "status": "ok",
            "pipeline": self.file.display().to_string(),
            "run_date": self.run_date(),
            "inputs": files,
        }))
    }

    /// The plan of a run: window, files to read, paths to write. Reads only file footers.
    pub fn plan(&self) -> Result<serde_json::Value> {
        let (scope, report) = scope_of(&self.settings);
        let files = self.check_inputs(&scope)?;
        let iso =
            |us: i64| chrono::DateTime::from_timestamp_micros(us).map(|d| d.to_rfc3339()).unwrap_or_default();
        let root = self.settings.output.root.clone().unwrap_or_default();
        let part = format!("run_date={}", self.run_date());
        let ext = self.settings.output.format.extension();
        let outputs: Vec<String> = TableName::planned(&self.settings)
            .iter()
            .map(|t| root.join(t.as_str()).join(&part).join(format!("part-0.{ext}")).display().to_string())
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

    /// Run the job: restate the `window.restate_days` run dates before the run date (late
    /// events), each its own atomic publication, then compute and publish the run date's
    /// partitions; its manifest lists the dates restated. A failing restatement stops the
    /// job with its error; the dates published before it stay published.
    pub fn run(&self, progress: &dyn Fn(&'static str)) -> Result<RunSummary> {
        let Some(date) = self.settings.window.run_date else { return self.run_one(progress, &[]) };
        let mut restated = Vec::new();
        for k in (1..=self.settings.window.restate_days as i64).rev() {
            let mut job = self.clone();
            let d = RunDate(date.0 - chrono::Duration::days(k));
            job.settings.window.run_date = Some(d);
            job.run_one(progress, &[])?;
            tracing::info!(run_date = %d, "restated");
            restated.push(d.to_string());
        }
        self.run_one(progress, &restated)
    }

    fn run_one(&self, progress: &dyn Fn(&'static str), restated: &[String]) -> Result<RunSummary> {
        let mut run = Run::new(self.settings.clone(), "run", progress);
        if !restated.is_empty() {
            run.manifest.insert("restated".into(), json!(restated));
        }
        run.manifest.insert("pipeline".into(), json!(self.file.display().to_string()));
        run.manifest.insert("name".into(), json!(self.settings.name));
        run.manifest.insert("run_date".into(), json!(self.run_date()));
        run.manifest.insert("overrides".into(), json!(self.sources));
        let mut result = run.compute_events(None)?;
        run.publish(&mut result)
    }
}
