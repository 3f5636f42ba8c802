//! The command-line interface: flag parsing and the mapping of results to exit codes.
//!
//! Thin by design: it resolves flags into [`Settings`], calls the library, prints one JSON
//! summary line on stdout (the last line; Airflow keeps it as the task result) and returns
//! the documented exit status. Logs go to stderr.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    Columns, Format, InvalidRows, JourneyRules, MarkovOrder, Model, ModelParams, Settings, Transform,
};
use crate::error::{Error, Result};
use crate::models::PositionWeights;
use crate::pipeline::PathColumns;

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
    Attribute(Box<AttributeArgs>),
    /// Run a pipeline file (pipelines/*.toml) for one run date: writes
    /// <root>/<table>/run_date=<date>/ partitions and a manifest, atomically.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// Check a pipeline file and the schemas of the inputs it needs, without reading data.
    #[command(after_help = EXIT_CODES)]
    Validate(RunArgs),
    /// Merge the partial aggregates of `attribute --shard i/N` runs and write the tables.
    #[command(after_help = EXIT_CODES)]
    Merge(MergeArgs),
    /// Write a deterministic, realistic synthetic event log (Parquet).
    Generate(GenerateArgs),
}

/// `touchpoint merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The partial directories (one per shard; all N shards are required).
    #[arg(required = true)]
    pub partials: Vec<PathBuf>,
    /// Output directory (or root of date partitions when the shards ran with --run-date).
    #[arg(long)]
    pub out: PathBuf,
}

/// Parse `i/N` (0 ≤ i < N).
pub fn parse_shard(s: &str) -> std::result::Result<(u32, u32), String> {
    let (i, n) = s.split_once('/').ok_or_else(|| format!("`{s}`: expected i/N, e.g. 0/4"))?;
    let (i, n): (u32, u32) = (
        i.trim().parse().map_err(|_| format!("`{s}`: bad shard index"))?,
        n.trim().parse().map_err(|_| format!("`{s}`: bad shard count"))?,
    );
    if n == 0 || i >= n {
        return Err(format!("`{s}`: need 0 ≤ i < N"));
    }
    Ok((i, n))
}

/// `touchpoint run` / `touchpoint validate`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// The run date (YYYY-MM-DD): the reporting window ends on it. Default: yesterday (UTC).
    #[arg(long, value_parser = parse_date)]
    pub run_date: Option<chrono::NaiveDate>,
    /// Override the window length in days.
    #[arg(long)]
    pub window_days: Option<u32>,
    /// Override any setting: section.key=value (TOML value), e.g. journeys.lookback_days=14.
    /// Precedence: file < environment (TOUCHPOINT_<SECTION>__<KEY>) < flags.
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the resolved settings (and where each override came from) and exit.
    #[arg(long)]
    pub show_settings: bool,
    /// Print the plan (window, input files, output paths) without reading data or writing.
    #[arg(long)]
    pub dry_run: bool,
}

impl RunArgs {
    /// Load and resolve the pipeline with the process environment and these flags.
    pub fn job(&self) -> Result<crate::job::Job> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        crate::job::load(
            &self.pipeline,
            &env,
            &crate::job::Overrides {
                run_date: self.run_date.map(|d| d.format("%Y-%m-%d").to_string()),
                window_days: self.window_days,
                set: self.set.clone(),
            },
        )
    }
}

/// `touchpoint attribute`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["events", "paths"])))]
#[allow(missing_docs)] // flattened groups: their flags carry the documentation
pub struct AttributeArgs {
    /// Event log: a Parquet file, a directory (searched recursively for *.parquet, e.g. a
    /// hive-partitioned dataset) or a glob such as 'logs/*.parquet'.
    #[arg(long, value_name = "PATH")]
    pub events: Option<String>,
    /// Instead of events: an aggregated path table (Parquet, or CSV by extension) with a
    /// path string column and conversion / null / value counts, as ChannelAttribution takes.
    #[arg(long, value_name = "FILE")]
    pub paths: Option<PathBuf>,
    /// Output directory; created if missing. Tables are published atomically, manifest last.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Models to run, comma-separated: first_touch, last_touch, last_non_direct, linear,
    /// position_based, time_decay, markov, shapley. Default: all (all but time_decay with
    /// --paths, which has no timestamps).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    #[command(flatten)]
    pub columns: ColumnArgs,
    #[command(flatten)]
    pub journeys: JourneyArgs,
    #[command(flatten)]
    pub model_params: ModelArgs,
    #[command(flatten)]
    pub path_input: PathInputArgs,
    /// Output format of the tables.
    #[arg(long, value_enum, default_value_t = FormatArg::Parquet)]
    pub format: FormatArg,
    /// Also write `journey_credit`: one row per (converting journey, model, channel).
    #[arg(long)]
    pub journey_credit: bool,
    /// Spend per channel (Parquet, or CSV by extension, with `channel` and `spend` columns):
    /// adds `spend`, `cpa` (spend per credited conversion) and `roas` (credited value per
    /// unit of spend) to `channel_attribution`, per model.
    #[arg(long, value_name = "FILE")]
    pub spend: Option<PathBuf>,
    #[command(flatten)]
    pub window: WindowArgs,
    /// Attribute only shard i of N of the users (a fixed hash of the user id, the same as
    /// Spark SQL's pmod(xxhash64(user_id), N)) and write a partial aggregate to --out, for
    /// `touchpoint merge`.
    #[arg(long, value_parser = parse_shard, value_name = "i/N", conflicts_with = "paths")]
    pub shard: Option<(u32, u32)>,
}

/// The reporting window (scheduled runs).
#[derive(Debug, Args)]
#[command(next_help_heading = "Reporting window")]
pub struct WindowArgs {
    /// Only report conversions of the --window-days UTC days ending on this date
    /// (YYYY-MM-DD); touches are read back as far as the lookback needs. Adds `run_date`.
    #[arg(long, value_parser = parse_date)]
    pub run_date: Option<chrono::NaiveDate>,
    /// Length of the reporting window in days.
    #[arg(long, default_value_t = 1, requires = "run_date")]
    pub window_days: u32,
    /// Hive partition key of the input (`date=YYYY-MM-DD/` directories): partitions outside
    /// the window and lookback are not read.
    #[arg(long, default_value = "date")]
    pub partition_key: String,
}

/// Parse a `YYYY-MM-DD` date (clap value parser: a bad date is a usage error, exit 2).
pub fn parse_date(s: &str) -> std::result::Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date like 2024-01-31"))
}

/// Column mapping of event logs.
#[derive(Debug, Args)]
#[command(next_help_heading = "Event columns")]
pub struct ColumnArgs {
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
    /// Optional touch-type column (e.g. click / impression), for --lookback-by-type.
    #[arg(long)]
    pub touch_type_col: Option<String>,
    /// Optional campaign column: adds `campaign_attribution` at the (channel, campaign) grain.
    #[arg(long)]
    pub campaign_col: Option<String>,
}

/// Journey rules.
#[derive(Debug, Args)]
#[command(next_help_heading = "Journey rules")]
pub struct JourneyArgs {
    /// Lookback window in days (inclusive): older touches are dropped and counted as expired.
    #[arg(long, default_value_t = 30.0)]
    pub lookback_days: f64,
    /// Lookback per touch type in days, e.g. 'click=30,impression=1' (needs --touch-type-col;
    /// other types use --lookback-days).
    #[arg(long, value_delimiter = ',', value_name = "TYPE=DAYS")]
    pub lookback_by_type: Vec<String>,
    /// Whether a conversion row that carries a channel is also the journey's last touch.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub conversion_is_touch: bool,
    /// Rows with a null user, time, conversion marker or touch channel: fail the run, or
    /// drop them and count them in data_quality.
    #[arg(long, value_enum, default_value_t = InvalidRowsArg::Fail)]
    pub on_invalid_rows: InvalidRowsArg,
    /// Path transforms applied in order after the lookback, comma-separated: exposure,
    /// first, unique, frequency, trim_long_path(N), remove_if_not_all(a|b),
    /// remove_if_last_and_not_all(a|b).
    #[arg(long, value_delimiter = ',')]
    pub transforms: Vec<String>,
}

/// Model parameters.
#[derive(Debug, Args)]
#[command(next_help_heading = "Model parameters")]
pub struct ModelArgs {
    /// Markov order: an integer k ≥ 1, `auto` (orders 1-4 by penalised out-of-sample AUC) or
    /// `auto(max=N)`.
    #[arg(long, default_value = "1")]
    pub markov_order: String,
    /// For Markov order ≥ 2: removal effects of the N most visited channel sequences.
    #[arg(long, default_value_t = 100)]
    pub markov_max_sequences: usize,
    /// Channels that last_non_direct skips.
    #[arg(long, value_delimiter = ',', default_value = "direct,Direct,(direct)")]
    pub direct_channels: Vec<String>,
    /// position_based weights: u_shaped (0.4,0.2,0.4), j_shaped (0.2,0.2,0.6), inverse_j
    /// (0.6,0.2,0.2) or first,middle,last summing to 1.
    #[arg(long, default_value = "u_shaped")]
    pub position_weights: String,
    /// time_decay half-life in days.
    #[arg(long, default_value_t = 7.0)]
    pub half_life_days: f64,
}

/// Columns of an aggregated path table (--paths).
#[derive(Debug, Args)]
#[command(next_help_heading = "Path-table input (--paths)")]
pub struct PathInputArgs {
    /// Separator between channels in the path column (tokens are trimmed, empty ones dropped).
    #[arg(long, default_value = ">")]
    pub path_sep: String,
    /// Path column.
    #[arg(long, default_value = "path")]
    pub path_col: String,
    /// Conversions column (real numbers are kept exactly).
    #[arg(long, default_value = "conversions")]
    pub conversions_col: String,
    /// Non-conversions column (an absent `nulls` column counts as 0).
    #[arg(long, default_value = "nulls")]
    pub nulls_col: String,
    /// Value column (an absent `value` column counts as 0).
    #[arg(long, default_value = "value")]
    pub path_value_col: String,
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
    /// Index of the first user (files of consecutive ranges hold disjoint users).
    #[arg(long, default_value_t = 0)]
    pub first_user: u64,
    /// Output Parquet file.
    #[arg(long)]
    pub out: PathBuf,
}

impl AttributeArgs {
    /// Resolve the flags into validated settings.
    pub fn settings(&self) -> Result<Settings> {
        let models = match &self.models {
            Some(list) => list
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| Model::parse(s))
                .collect::<Result<Vec<_>>>()?,
            None => {
                Model::ALL.into_iter().filter(|m| self.paths.is_none() || *m != Model::TimeDecay).collect()
            }
        };
        let c = &self.columns;
        let j = &self.journeys;
        let m = &self.model_params;
        let mut lookback_by_type = std::collections::BTreeMap::new();
        for item in &j.lookback_by_type {
            let (t, d) = item
                .split_once('=')
                .ok_or_else(|| Error::Config(format!("--lookback-by-type `{item}`: expected TYPE=DAYS")))?;
            let d: f64 = d
                .trim()
                .parse()
                .map_err(|_| Error::Config(format!("--lookback-by-type `{item}`: bad number of days")))?;
            lookback_by_type.insert(t.trim().to_owned(), d);
        }
        let transforms = j
            .transforms
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| Transform::parse(t).map_err(Error::Config))
            .collect::<Result<Vec<_>>>()?;
        Settings {
            columns: Columns {
                user: c.user_col.clone(),
                time: c.time_col.clone(),
                channel: c.channel_col.clone(),
                conversion: c.conversion_col.clone(),
                conversion_value: c.conversion_value.clone(),
                value: (!c.no_value).then(|| c.value_col.clone()),
                tie_breaker: c.tie_breaker_col.clone(),
                touch_type: c.touch_type_col.clone(),
                campaign: c.campaign_col.clone(),
            },
            journeys: JourneyRules {
                lookback_days: j.lookback_days,
                conversion_is_touch: j.conversion_is_touch,
                on_invalid_rows: match j.on_invalid_rows {
                    InvalidRowsArg::Fail => InvalidRows::Fail,
                    InvalidRowsArg::Drop => InvalidRows::Drop,
                },
                lookback_by_type,
                transforms,
            },
            models,
            params: ModelParams {
                direct_channels: m.direct_channels.clone(),
                position_weights: PositionWeights::parse(&m.position_weights).map_err(Error::Config)?,
                time_decay_half_life_days: m.half_life_days,
                markov_order: MarkovOrder::parse(&m.markov_order).map_err(Error::Config)?,
                markov_max_sequences: m.markov_max_sequences,
            },
            format: match self.format {
                FormatArg::Parquet => Format::Parquet,
                FormatArg::Csv => Format::Csv,
            },
            journey_credit: self.journey_credit,
            window: self.window.run_date.map(|d| crate::config::Window {
                run_date: d.format("%Y-%m-%d").to_string(),
                days: self.window.window_days,
            }),
            partition_key: Some(self.window.partition_key.clone()),
            spend: self.spend.as_ref().map(|p| p.display().to_string()),
        }
        .validate()
    }

    /// The path-table columns (for --paths).
    pub fn path_columns(&self) -> PathColumns {
        let p = &self.path_input;
        PathColumns {
            path: p.path_col.clone(),
            conversions: p.conversions_col.clone(),
            nulls: Some(p.nulls_col.clone()),
            value: Some(p.path_value_col.clone()),
            separator: p.path_sep.clone(),
        }
    }
}

/// A phase spinner on an interactive stderr (hidden otherwise, and with `-q`).
fn spinner(cli: &Cli) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if cli.quiet || cli.log_format == LogFormat::Json || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"),
    );
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(pb)
}

/// Run a parsed command; returns the JSON summary to print.
pub fn run(cli: &Cli) -> Result<serde_json::Value> {
    let pb = spinner(cli);
    let phase = |p: &'static str| {
        if let Some(pb) = &pb {
            pb.set_message(p);
        }
    };
    let result = run_command(cli, &phase);
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    result
}

fn run_command(cli: &Cli, phase: &dyn Fn(&'static str)) -> Result<serde_json::Value> {
    let to_json =
        |s: &crate::pipeline::RunSummary| serde_json::to_value(s).map_err(|e| Error::Internal(e.to_string()));
    match &cli.command {
        Command::Run(r) => {
            let job = r.job()?;
            if r.show_settings {
                print!("{}", job.show());
                return Ok(serde_json::json!({"status": "ok", "pipeline": job.file.display().to_string()}));
            }
            if r.dry_run {
                let plan = job.plan()?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&plan).map_err(|e| Error::Internal(e.to_string()))?
                );
                return Ok(
                    serde_json::json!({"status": "dry_run", "pipeline": job.file.display().to_string()}),
                );
            }
            tracing::info!(pipeline = %job.file.display(), run_date = job.run_date(), "running pipeline");
            to_json(&job.run(phase)?)
        }
        Command::Validate(r) => r.job()?.validate(),
        Command::Merge(m) => to_json(&crate::shard::merge_and_publish(&m.partials, &m.out)?),
        Command::Attribute(a) => {
            let settings = a.settings()?;
            let summary = match (&a.events, &a.paths) {
                (Some(events), _) => match a.shard {
                    Some(shard) => crate::shard::attribute_shard(events, &a.out, &settings, shard)?,
                    None => crate::pipeline::attribute_with(events, &a.out, &settings, phase)?,
                },
                (None, Some(paths)) => {
                    if settings.journey_credit {
                        return Err(Error::Config(
                            "--journey-credit needs --events (a path table has no journeys)".into(),
                        ));
                    }
                    crate::pipeline::attribute_paths(paths, &a.path_columns(), &a.out, &settings)?
                }
                (None, None) => return Err(Error::Config("one of --events or --paths is required".into())),
            };
            to_json(&summary)
        }
        Command::Generate(g) => {
            let t = std::time::Instant::now();
            let rows = crate::generate::generate_to_file(
                &crate::generate::GenOptions {
                    users: g.users,
                    seed: g.seed,
                    days: g.days,
                    first_user: g.first_user,
                },
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
