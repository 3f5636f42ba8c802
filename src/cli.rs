//! The command-line interface: flag parsing and the mapping of results to exit codes.
//!
//! Thin by design: it resolves flags into [`Settings`], calls the library, prints one JSON
//! summary line on stdout (the last line; Airflow keeps it as the task result) and returns
//! the documented exit status. Logs go to stderr.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Columns, Format, InvalidRows, JourneyRules, Model, Settings};
use crate::error::{Error, Result};

const EXIT_CODES: &str = "\
Exit status:
  0   success (also when the input has no conversions: see the summary's status)
  2   usage error (unknown flag, bad flag value)
  65  bad input data (missing column, wrong type, corrupt or empty file, null user, negative value)
  66  input not found (no such file, empty directory, glob matched nothing)
  70  internal error (a bug: please report it)
  74  I/O error (cannot read or write a file)
  78  bad configuration (invalid settings)";

/// touchpoint: multi-touch attribution from Parquet event logs.
#[derive(Debug, Parser)]
#[command(name = "touchpoint", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less logging (warnings and errors only).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read an event log, build journeys, run the models and write the report tables.
    #[command(after_help = EXIT_CODES)]
    Attribute(AttributeArgs),
    /// Write a deterministic, realistic synthetic event log (Parquet).
    Generate(GenerateArgs),
}

/// `touchpoint attribute`.
#[derive(Debug, Args)]
pub struct AttributeArgs {
    /// Event log: a Parquet file, a directory (searched recursively for *.parquet, e.g. a
    /// hive-partitioned dataset) or a glob such as 'logs/*.parquet'.
    #[arg(long, value_name = "PATH")]
    pub events: String,
    /// Output directory; created if missing. Tables are published atomically, manifest last.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Models to run, comma-separated: first_touch, last_touch, linear, markov.
    #[arg(long, value_delimiter = ',', default_value = "first_touch,last_touch,linear,markov")]
    pub models: Vec<String>,
    /// User id column (string or integer).
    #[arg(long, default_value = "user_id")]
    pub user_col: String,
    /// Event time column (timestamp, date or ISO-8601 string; naive times are UTC).
    #[arg(long, default_value = "ts")]
    pub time_col: String,
    /// Channel column (string or categorical).
    #[arg(long, default_value = "channel")]
    pub channel_col: String,
    /// Conversion marker column: a string column (compared to --conversion-value) or a
    /// boolean / 0-1 integer column.
    #[arg(long, default_value = "event")]
    pub conversion_col: String,
    /// For a string marker column, the value that marks a conversion.
    #[arg(long, default_value = "conversion")]
    pub conversion_value: String,
    /// Conversion value (revenue) column: float, integer or decimal, ≥ 0.
    #[arg(long, default_value = "revenue", conflicts_with = "no_value")]
    pub value_col: String,
    /// The log has no value column: every conversion is worth 0.
    #[arg(long)]
    pub no_value: bool,
    /// Optional tie-breaker column (e.g. an event sequence number) for events at equal time.
    #[arg(long)]
    pub tie_breaker_col: Option<String>,
    /// Lookback window in days (inclusive): older touches are dropped and counted as expired.
    #[arg(long, default_value_t = 30.0)]
    pub lookback_days: f64,
    /// Whether a conversion row that carries a channel is also the journey's last touch.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub conversion_is_touch: bool,
    /// Rows with a null user, time, conversion marker or touch channel: fail the run, or
    /// drop them and count them in data_quality.
    #[arg(long, value_enum, default_value_t = InvalidRowsArg::Fail)]
    pub on_invalid_rows: InvalidRowsArg,
    /// Markov chain order k ≥ 1 (states are windows of k consecutive channels).
    #[arg(long, default_value_t = 1)]
    pub markov_order: usize,
    /// Output format of the tables.
    #[arg(long, value_enum, default_value_t = FormatArg::Parquet)]
    pub format: FormatArg,
}

/// `--on-invalid-rows`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum InvalidRowsArg {
    /// Fail the run with exit status 65.
    Fail,
    /// Drop and count.
    Drop,
}

/// `--format`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FormatArg {
    /// Apache Parquet (zstd).
    Parquet,
    /// CSV with a header row.
    Csv,
}

/// `touchpoint generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of users (≈ 9–10 events each).
    #[arg(long)]
    pub users: u64,
    /// Random seed: the same seed and sizes give a byte-identical file.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Days spanned by the log (from 2024-01-01).
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// Output Parquet file.
    #[arg(long)]
    pub out: PathBuf,
}

impl AttributeArgs {
    /// Resolve the flags into validated settings.
    pub fn settings(&self) -> Result<Settings> {
        let models = self
            .models
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| Model::parse(s))
            .collect::<Result<Vec<_>>>()?;
        Settings {
            columns: Columns {
                user: self.user_col.clone(),
                time: self.time_col.clone(),
                channel: self.channel_col.clone(),
                conversion: self.conversion_col.clone(),
                conversion_value: self.conversion_value.clone(),
                value: (!self.no_value).then(|| self.value_col.clone()),
                tie_breaker: self.tie_breaker_col.clone(),
            },
            journeys: JourneyRules {
                lookback_days: self.lookback_days,
                conversion_is_touch: self.conversion_is_touch,
                on_invalid_rows: match self.on_invalid_rows {
                    InvalidRowsArg::Fail => InvalidRows::Fail,
                    InvalidRowsArg::Drop => InvalidRows::Drop,
                },
            },
            models,
            markov_order: self.markov_order,
            format: match self.format {
                FormatArg::Parquet => Format::Parquet,
                FormatArg::Csv => Format::Csv,
            },
        }
        .validate()
    }
}

/// Run a parsed command; returns the JSON summary to print.
pub fn run(cli: &Cli) -> Result<serde_json::Value> {
    match &cli.command {
        Command::Attribute(a) => {
            let settings = a.settings()?;
            let summary = crate::pipeline::attribute(&a.events, &a.out, &settings)?;
            serde_json::to_value(&summary).map_err(|e| Error::Internal(e.to_string()))
        }
        Command::Generate(g) => {
            let t = std::time::Instant::now();
            let rows = crate::generate::generate_to_file(
                &crate::generate::GenOptions { users: g.users, seed: g.seed, days: g.days },
                &g.out,
            )?;
            tracing::info!(rows, file = %g.out.display(), "generated events");
            Ok(serde_json::json!({
                "status": "ok",
                "out": g.out.display().to_string(),
                "rows": rows,
                "elapsed_ms": t.elapsed().as_millis(),
            }))
        }
    }
}
