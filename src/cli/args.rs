//! The clap definitions. Flags carry no defaults of their own: an absent flag leaves the
//! setting to the environment and the schema's default (`--show-settings` prints them).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit status:
  0   success (also when the input has no conversions: see the summary's status)
  2   usage error (unknown flag, bad flag value)
  65  bad input data (missing column, wrong type, corrupt or empty file, null user, negative value)
  66  input not found (no such file, empty directory, glob matched nothing, no events in the window)
  70  internal error (a bug: please report it)
  74  I/O error (cannot read or write a file)
  75  another run holds the output's lock (temporary: retry later, or --lock-timeout SECONDS)
  78  bad configuration (invalid settings)

Every flag is a setting of the pipeline-file schema; precedence: default < environment
(TOUCHPOINT_<SECTION>__<KEY>) < flags. `--show-settings` prints the resolved settings.";

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
    /// What clap parsed: the flags whose id is a settings key become overrides from it
    /// (`cli::schema_flags`).
    #[arg(skip)]
    pub matches: clap::ArgMatches,
}

impl Cli {
    /// Parse the process's arguments, keeping clap's matches.
    pub fn parse_args() -> Result<Self, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().try_get_matches()?;
        let mut cli = Self::from_arg_matches(&matches)?;
        cli.matches = matches;
        Ok(cli)
    }
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
    /// Read the data and report what a run would drop, find duplicated, leave unattributed,
    /// expire or refuse, without writing anything: the command to run when a number looks
    /// wrong. Takes the flags of `attribute` (--out is not needed).
    #[command(after_help = EXIT_CODES)]
    Doctor(Box<AttributeArgs>),
    /// Check a pipeline file and the schemas of the inputs it needs, without reading data.
    #[command(after_help = EXIT_CODES)]
    Validate(RunArgs),
    /// Merge the partial aggregates of `attribute --shard i/N` runs and write the tables.
    #[command(after_help = EXIT_CODES)]
    Merge(MergeArgs),
    /// Write a deterministic, realistic synthetic event log (Parquet).
    Generate(GenerateArgs),
    /// Score every model against a known causal truth: generate a world (`generate
    /// --world`), run the models with intervals, and write `model_evaluation` and
    /// `model_scores` beside the run's tables (docs/evaluation.md).
    #[command(after_help = EXIT_CODES)]
    Evaluate(EvaluateArgs),
}

/// `touchpoint evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The world: `confounded` or `independent` (docs/evaluation.md).
    #[arg(long, value_parser = ["confounded", "independent"])]
    pub world: String,
    /// Persons of the evaluated log.
    #[arg(long)]
    pub users: u64,
    /// Seed of the world.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of the log (from 2024-01-01).
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// Persons of the reference log whose credit stands for each model's large-sample value
    /// (default: 10 × --users).
    #[arg(long)]
    pub reference_users: Option<u64>,
    /// Channels whose simulated holdout calibrates the credit (comma-separated); their
    /// calibrated credit is scored too.
    #[arg(long, value_delimiter = ',')]
    pub calibrate: Vec<String>,
    /// Models to run (default: all ten).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Output directory (published atomically, like `attribute --out`).
    #[arg(long = "out", id = "output.root", value_name = "DIR")]
    pub out: PathBuf,
    /// Any other setting, as `section.key=value` (e.g. models.bootstrap_replicates=100).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// `touchpoint merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The partial directories (one per shard; all N shards are required). Every file a
    /// partial's manifest lists is checked against its SHA-256 before it is read.
    #[arg(required = true)]
    pub partials: Vec<PathBuf>,
    /// Output directory (or root of date partitions when the shards ran with --run-date); not
    /// one of the partials.
    #[arg(long)]
    pub out: PathBuf,
    /// Accepted for scripts written before `merge` streamed by default. `merge` always streams
    /// the partials a block at a time and keeps only sums: memory does not grow with the
    /// distinct paths (`path_summary` is sorted on disk in a hidden directory beside --out).
    #[arg(long)]
    pub bounded_memory: bool,
}

/// `touchpoint run` / `touchpoint validate`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// The run date (YYYY-MM-DD): the reporting window ends on it. Default: yesterday (UTC).
    #[arg(long = "run-date", id = "window.run_date", value_name = "DATE")]
    pub run_date: Option<String>,
    /// Override the window length in days.
    #[arg(long = "window-days", id = "window.days", value_name = "DAYS")]
    pub window_days: Option<u32>,
    /// Override any setting: section.key=value (TOML value), e.g. journeys.lookback_days=14.
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the resolved settings (and where each override came from) and exit.
    #[arg(long)]
    pub show_settings: bool,
    /// Print the plan (window, input files, output paths) without reading data or writing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run only shard i of N of the persons (Spark SQL's pmod(xxhash64(id), N)) and write its
    /// partial aggregate to --out; `touchpoint merge` of all N writes the pipeline's tables.
    /// A shard no person hashes to writes an empty partial.
    #[arg(long, value_parser = super::parse_shard, value_name = "i/N", requires = "out")]
    pub shard: Option<(u32, u32)>,
    /// The partial's directory (with --shard).
    #[arg(long, value_name = "DIR", requires = "shard")]
    pub out: Option<PathBuf>,
}

/// `touchpoint attribute`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["input.events", "input.paths"])))]
#[allow(missing_docs)] // flattened groups: their flags carry the documentation
pub struct AttributeArgs {
    /// Event log (input.events): a Parquet file, a directory (searched recursively for
    /// *.parquet, e.g. a hive-partitioned dataset) or a glob such as 'logs/*.parquet'.
    #[arg(long = "events", id = "input.events", value_name = "PATH")]
    pub events: Option<String>,
    /// Instead of events (input.paths): an aggregated path table (Parquet, or CSV by
    /// extension) with a path string column and conversion / null / value counts.
    #[arg(long = "paths", id = "input.paths", value_name = "FILE")]
    pub paths: Option<PathBuf>,
    /// Output directory (output.root); created if missing. Published atomically.
    /// Required by `attribute`; `doctor` writes nothing.
    #[arg(long = "out", id = "output.root", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Models to run (models.run), comma-separated: first_touch, last_touch,
    /// last_non_direct, linear, position_based, time_decay, markov,
    /// markov_journey, shapley, shapley_rate. Default: all but shapley_rate
    /// (all but time_decay with --paths, which has no timestamps).
    #[arg(long = "models", id = "models.run", value_name = "MODELS", value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    #[command(flatten)]
    pub columns: ColumnArgs,
    #[command(flatten)]
    pub journeys: JourneyArgs,
    #[command(flatten)]
    pub model_params: ModelArgs,
    #[command(flatten)]
    pub path_input: PathInputArgs,
    #[command(flatten)]
    pub relationship: RelationshipArgs,
    /// Output format of the tables (output.format): parquet or csv.
    #[arg(long = "format", id = "output.format", value_name = "FORMAT")]
    pub format: Option<String>,
    /// Also write `journey_credit` (output.journey_credit): one row per (converting
    /// journey, model, channel). It holds user ids.
    #[arg(long = "journey-credit", id = "output.journey_credit")]
    pub journey_credit: bool,
    /// Spend per channel (input.spend; Parquet, or CSV by extension, with `channel` and
    /// `spend` columns): adds `spend`, `cpa` and `roas` to `channel_attribution`.
    #[arg(long = "spend", id = "input.spend", value_name = "FILE")]
    pub spend: Option<PathBuf>,
    /// With --run-date, which dated spend to compare with (input.spend_period): window (spend
    /// dated inside the reporting window) or lookback (also the lookback before it).
    #[arg(long = "spend-period", id = "input.spend_period", value_name = "PERIOD")]
    pub spend_period: Option<String>,
    /// Lift experiments (input.experiments; CSV or Parquet: `channel` or `group`,
    /// `incremental_conversions`, `standard_error`, `conversions`): adds
    /// `channel_calibration`, each model's credit calibrated to them (docs/models.md).
    #[arg(long = "experiments", id = "input.experiments", value_name = "FILE")]
    pub experiments: Option<PathBuf>,
    /// Only report conversions of the --window-days UTC days ending on this date
    /// (window.run_date, YYYY-MM-DD); touches are read back as far as the lookback needs.
    #[arg(long = "run-date", id = "window.run_date", value_name = "DATE")]
    pub run_date: Option<String>,
    /// Length of the reporting window in days (window.days).
    #[arg(long = "window-days", id = "window.days", value_name = "DAYS", requires = "window.run_date")]
    pub window_days: Option<u32>,
    /// Hive partition key of the input (input.partition_key): partitions outside the
    /// window and lookback are not read.
    #[arg(long = "partition-key", id = "input.partition_key", value_name = "KEY")]
    pub partition_key: Option<String>,
    /// A channel group, repeatable: 'social=facebook,instagram' (channel_groups.social). Adds
    /// `channel_group_attribution`, the models refitted on group-level journeys.
    #[arg(long, value_name = "GROUP=CHANNELS")]
    pub channel_group: Vec<String>,
    /// Fail (65, nothing published) when the run has fewer conversions than this
    /// (guards.min_conversions).
    #[arg(long = "min-conversions", id = "guards.min_conversions", value_name = "N")]
    pub min_conversions: Option<f64>,
    /// Fail (65, nothing published) when total conversions change by more than this
    /// fraction against the previous publication (guards.max_conversion_change; 0.5 = ±50%).
    #[arg(long = "max-conversion-change", id = "guards.max_conversion_change", value_name = "FRACTION")]
    pub max_conversion_change: Option<f64>,
    /// Wait up to this many seconds for another run on the same output
    /// (output.lock_timeout_seconds; default 0: fail at once with 75).
    #[arg(long = "lock-timeout", id = "output.lock_timeout_seconds", value_name = "SECONDS")]
    pub lock_timeout: Option<u64>,
    /// Override any setting: section.key=value (TOML value).
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the resolved settings as TOML and exit.
    #[arg(long)]
    pub show_settings: bool,
    /// Attribute only shard i of N of the users (Spark SQL's pmod(xxhash64(user_id), N))
    /// and write a partial aggregate to --out, for `touchpoint merge` (an empty one when no
    /// user hashes to the shard).
    #[arg(long, value_parser = super::parse_shard, value_name = "i/N", conflicts_with = "input.paths")]
    pub shard: Option<(u32, u32)>,
}

/// Column mapping of event logs (`[columns]`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Event columns")]
pub struct ColumnArgs {
    /// User id column (string or integer).
    #[arg(long = "user-col", id = "columns.user", value_name = "COL")]
    pub user_col: Option<String>,
    /// Event time column (timestamp, date or ISO-8601 string; naive times are UTC).
    #[arg(long = "time-col", id = "columns.time", value_name = "COL")]
    pub time_col: Option<String>,
    /// Channel column (string or categorical).
    #[arg(long = "channel-col", id = "columns.channel", value_name = "COL")]
    pub channel_col: Option<String>,
    /// Conversion marker column: a string column (compared to --conversion-value) or a
    /// boolean / 0-1 integer column.
    #[arg(long = "conversion-col", id = "columns.conversion", value_name = "COL")]
    pub conversion_col: Option<String>,
    /// For a string marker column, the value that marks a conversion.
    #[arg(long = "conversion-value", id = "columns.conversion_value", value_name = "VALUE")]
    pub conversion_value: Option<String>,
    /// Conversion value (revenue) column: float, integer or decimal, ≥ 0.
    #[arg(long = "value-col", id = "columns.value", value_name = "COL", conflicts_with = "no_value")]
    pub value_col: Option<String>,
    /// The log has no value column: every conversion is worth 0.
    #[arg(long)]
    pub no_value: bool,
    /// Optional tie-breaker column (e.g. an event sequence number) for events at equal time.
    #[arg(long = "tie-breaker-col", id = "columns.tie_breaker", value_name = "COL")]
    pub tie_breaker_col: Option<String>,
    /// Optional touch-type column (e.g. click / impression), for --lookback-by-type.
    #[arg(long = "touch-type-col", id = "columns.touch_type", value_name = "COL")]
    pub touch_type_col: Option<String>,
    /// Optional campaign column: adds `campaign_attribution` at the (channel, campaign) grain.
    #[arg(long = "campaign-col", id = "columns.campaign", value_name = "COL")]
    pub campaign_col: Option<String>,
    /// Optional event id column (string or integer), for --dedupe event_id.
    #[arg(long = "event-id-col", id = "columns.event_id", value_name = "COL")]
    pub event_id_col: Option<String>,
    /// Optional consent column (boolean or 0/1): rows without consent are dropped and counted.
    #[arg(long = "consent-col", id = "columns.consent", value_name = "COL")]
    pub consent_col: Option<String>,
}

/// The whole customer relationship (`docs/sources.md`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Sources, identity, segments and privacy")]
pub struct RelationshipArgs {
    /// Another touch source, repeatable: NAME=PATH[,user=COL][,time=COL][,channel=NAME |
    /// ,channel_column=COL][,campaign=COL] (CSV or Parquet; [[sources]] in a pipeline file).
    #[arg(long = "source", value_name = "NAME=PATH,…")]
    pub sources: Vec<String>,
    /// The event log's own source name (input.source_name).
    #[arg(long = "source-name", id = "input.source_name", value_name = "NAME")]
    pub source_name: Option<String>,
    /// A conversions table (orders): PATH (columns set by --set conversions.KEY=…).
    #[arg(long = "conversions", id = "conversions.path", value_name = "FILE")]
    pub conversions: Option<PathBuf>,
    /// An identity map (alias id -> person id; CSV or Parquet).
    #[arg(long = "identity-map", id = "identity.path", value_name = "FILE")]
    pub identity_map: Option<PathBuf>,
    /// A CRM customers table giving each person a segment (segments.customers).
    #[arg(long = "customers", id = "segments.customers", value_name = "FILE")]
    pub customers: Option<PathBuf>,
    /// The event log's segment column (columns.segment).
    #[arg(long = "segment-col", id = "columns.segment", value_name = "COL")]
    pub segment_col: Option<String>,
    /// Also split by customer status: new until the first conversion seen, then returning.
    #[arg(long = "customer-status", id = "segments.customer_status")]
    pub customer_status: bool,
    /// The event log's conversion id column (carried into journey_credit).
    #[arg(long = "conversion-id-col", id = "columns.conversion_id", value_name = "COL")]
    pub conversion_id_col: Option<String>,
    /// The event log's conversion type column (purchase, lead, …).
    #[arg(long = "conversion-type-col", id = "columns.conversion_type", value_name = "COL")]
    pub conversion_type_col: Option<String>,
    /// The event log's source column (web, app, …).
    #[arg(long = "source-col", id = "columns.source", value_name = "COL")]
    pub source_col: Option<String>,
    /// Lookback per conversion type in days, e.g. 'purchase=30,lead=90'.
    #[arg(long, value_delimiter = ',', value_name = "TYPE=DAYS")]
    pub lookback_by_conversion_type: Vec<String>,
    /// IANA time zone of day boundaries: windows, run dates, spend dates (window.timezone).
    #[arg(long = "timezone", id = "window.timezone", value_name = "ZONE")]
    pub timezone: Option<String>,
    /// Persons to forget: a CSV or Parquet file with a person_id column (input.erasure_list).
    #[arg(long = "erasure-list", id = "input.erasure_list", value_name = "FILE")]
    pub erasure_list: Option<PathBuf>,
}

/// Journey rules (`[journeys]`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Journey rules")]
pub struct JourneyArgs {
    /// Lookback window in days (inclusive): older touches are dropped and counted as expired.
    #[arg(
        long = "lookback-days",
        id = "journeys.lookback_days",
        value_name = "DAYS",
        allow_negative_numbers = true
    )]
    pub lookback_days: Option<f64>,
    /// Lookback per touch type in days, e.g. 'click=30,impression=1' (needs --touch-type-col;
    /// other types use --lookback-days).
    #[arg(long, value_delimiter = ',', value_name = "TYPE=DAYS")]
    pub lookback_by_type: Vec<String>,
    /// Whether a conversion row that carries a channel is also the journey's last touch.
    #[arg(long = "conversion-is-touch", id = "journeys.conversion_is_touch", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub conversion_is_touch: Option<bool>,
    /// Rows with a null user, time, conversion marker or touch channel: fail (the run) or
    /// drop (and count them in data_quality).
    #[arg(long = "on-invalid-rows", id = "journeys.on_invalid_rows", value_name = "fail|drop")]
    pub on_invalid_rows: Option<String>,
    /// Duplicate events (journeys.dedupe): none (count exact duplicates and warn), exact
    /// (keep only the first copy), or event_id (keep, of a person's rows sharing an
    /// --event-id-col value, the first in journey order).
    #[arg(long = "dedupe", id = "journeys.dedupe", value_name = "MODE")]
    pub dedupe: Option<String>,
    /// Path transforms applied in order after the lookback, comma-separated: exposure,
    /// first, unique, frequency, trim_long_path(N), remove_if_not_all(a|b),
    /// remove_if_last_and_not_all(a|b).
    #[arg(long = "transforms", id = "journeys.transforms", value_name = "TRANSFORMS", value_delimiter = ',')]
    pub transforms: Vec<String>,
}

/// Model parameters (`[models]`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Model parameters")]
pub struct ModelArgs {
    /// Markov order: an integer k ≥ 1, `auto` (orders 1-4 by penalised out-of-sample AUC) or
    /// `auto(max=N)`.
    #[arg(long, allow_negative_numbers = true)]
    pub markov_order: Option<String>,
    /// For Markov order ≥ 2: removal effects of the N most visited channel sequences.
    #[arg(long = "markov-max-sequences", id = "models.markov_max_sequences", value_name = "N")]
    pub markov_max_sequences: Option<usize>,
    /// Channels that last_non_direct skips.
    #[arg(
        long = "direct-channels",
        id = "models.direct_channels",
        value_name = "CHANNELS",
        value_delimiter = ','
    )]
    pub direct_channels: Option<Vec<String>>,
    /// position_based weights: u_shaped (0.4,0.2,0.4), j_shaped (0.2,0.2,0.6), inverse_j
    /// (0.6,0.2,0.2) or first,middle,last summing to 1.
    #[arg(long = "position-weights", id = "models.position_weights", value_name = "WEIGHTS")]
    pub position_weights: Option<String>,
    /// time_decay half-life in days.
    #[arg(
        long = "half-life-days",
        id = "models.time_decay_half_life_days",
        value_name = "DAYS",
        allow_negative_numbers = true
    )]
    pub half_life_days: Option<f64>,
    /// Bootstrap replicates behind the interval columns (0 switches them off; default 200).
    #[arg(long = "bootstrap", id = "models.bootstrap_replicates", value_name = "N")]
    pub bootstrap: Option<u64>,
    /// Central level of the intervals (default 0.9).
    #[arg(long = "interval-level", id = "models.interval_level", value_name = "LEVEL")]
    pub interval_level: Option<f64>,
    /// Seed of the bootstrap (default 1).
    #[arg(long = "bootstrap-seed", id = "models.bootstrap_seed", value_name = "SEED")]
    pub bootstrap_seed: Option<u64>,
}

/// Columns of an aggregated path table (`[path_table]`, for --paths).
#[derive(Debug, Args)]
#[command(next_help_heading = "Path-table input (--paths)")]
pub struct PathInputArgs {
    /// Separator between channels in the path column (tokens are trimmed, empty ones dropped).
    #[arg(long = "path-sep", id = "path_table.separator", value_name = "SEP")]
    pub path_sep: Option<String>,
    /// Path column.
    #[arg(long = "path-col", id = "path_table.path", value_name = "COL")]
    pub path_col: Option<String>,
    /// Conversions column (real numbers are kept exactly).
    #[arg(long = "conversions-col", id = "path_table.conversions", value_name = "COL")]
    pub conversions_col: Option<String>,
    /// Non-conversions column (an absent `nulls` column counts as 0).
    #[arg(long = "nulls-col", id = "path_table.nulls", value_name = "COL")]
    pub nulls_col: Option<String>,
    /// Value column (an absent `value` column counts as 0).
    #[arg(long = "path-value-col", id = "path_table.value", value_name = "COL")]
    pub path_value_col: Option<String>,
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
    /// Number of channels (12 to 2000): the 12 named channels, then a long tail `ch_0012`,
    /// `ch_0013`, … of decreasing popularity. 12 gives the same file as without the option.
    #[arg(long, default_value_t = 12)]
    pub channels: usize,
    /// A world with a known causal truth instead (`confounded` or `independent`,
    /// docs/evaluation.md): writes `<out stem>_truth.csv` (each channel's incremental
    /// conversions) and `<out stem>_experiments.csv` (a simulated holdout of each channel,
    /// in the `input.experiments` format) beside the log.
    #[arg(long, value_parser = ["confounded", "independent"])]
    pub world: Option<String>,
    /// With --world: persons in each simulated holdout, at least 1000 (default: --users, at
    /// least 10000).
    #[arg(long, requires = "world")]
    pub experiment_users: Option<u64>,
    /// Output Parquet file.
    #[arg(long)]
    pub out: PathBuf,
}
