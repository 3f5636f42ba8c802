//! The command-line interface: clap flags and printing only.
//!
//! Every `attribute` flag is an override of one dotted key of the settings schema
//! ([`crate::settings::Settings`]), applied after the environment
//! (`TOUCHPOINT_<SECTION>__<KEY>`) like `--set`: one schema and one set of defaults for flags,
//! environment and pipeline files. The binary prints one JSON summary line last on stdout
//! and maps errors to the documented exit status ([`crate::error::ExitStatus`]).

mod args;

pub use args::{AttributeArgs, Cli, Command, EvaluateArgs, GenerateArgs, LogFormat, MergeArgs, RunArgs};

use crate::error::{Error, Result};
use crate::run::{self, job::Job, RunSummary};
use crate::settings::{self, parse_set, Layers, Model};

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

fn to_json(s: &RunSummary) -> Result<serde_json::Value> {
    serde_json::to_value(s).map_err(|e| Error::dependency("rendering the summary", e))
}

fn env() -> Vec<(String, String)> {
    std::env::vars().collect()
}

fn run_command(cli: &Cli, phase: &dyn Fn(&'static str)) -> Result<serde_json::Value> {
    match &cli.command {
        Command::Run(r) => run_pipeline(r, phase),
        Command::Validate(r) => job(r)?.validate(),
        Command::Merge(m) if m.bounded_memory => to_json(&run::merge_bounded::merge_bounded_and_publish(
            &m.partials,
            &m.out,
            run::merge_bounded::BLOCK,
        )?),
        Command::Merge(m) => to_json(&run::shard::merge_and_publish(&m.partials, &m.out)?),
        Command::Attribute(a) => {
            if a.out.is_none() {
                return Err(Error::Usage("attribute needs --out DIR".into()));
            }
            let env = env();
            let resolved = settings::resolve(&Layers { file: None, env: &env, flags: attribute_flags(a)? })?;
            if a.show_settings {
                print!("{}", toml::to_string(&resolved.settings).unwrap_or_default());
                return Ok(serde_json::json!({"status": "ok"}));
            }
            to_json(&run::attribute(resolved.settings, a.shard, phase)?)
        }
        Command::Doctor(a) => {
            let env = env();
            let resolved = settings::resolve(&Layers { file: None, env: &env, flags: attribute_flags(a)? })?;
            let report = run::doctor::doctor(resolved.settings)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&report)
                    .map_err(|e| Error::dependency("rendering the report", e))?
            );
            Ok(
                serde_json::json!({"status": "ok", "command": "doctor", "findings": report["findings"].as_array().map_or(0, |f| f.len())}),
            )
        }
        Command::Generate(g) => generate(g),
        Command::Evaluate(e) => evaluate(e, phase),
    }
}

fn job(r: &RunArgs) -> Result<Job> {
    let env = env();
    let mut flags = Vec::new();
    for s in &r.set {
        let (k, v) = parse_set(s)?;
        flags.push((k, v, format!("--set {s}")));
    }
    if let Some(d) = &r.run_date {
        flags.push(("window.run_date".into(), toml::Value::String(d.clone()), "--run-date".into()));
    }
    if let Some(n) = r.window_days {
        flags.push(("window.days".into(), toml::Value::Integer(n as i64), "--window-days".into()));
    }
    let resolved = settings::resolve(&Layers { file: Some(&r.pipeline), env: &env, flags })?;
    Job::new(r.pipeline.clone(), resolved)
}

fn run_pipeline(r: &RunArgs, phase: &dyn Fn(&'static str)) -> Result<serde_json::Value> {
    let job = job(r)?;
    if r.show_settings {
        print!("{}", job.show());
        return Ok(serde_json::json!({"status": "ok", "pipeline": job.file.display().to_string()}));
    }
    if r.dry_run {
        let plan = job.plan()?;
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).map_err(|e| Error::dependency("rendering the plan", e))?
        );
        return Ok(serde_json::json!({"status": "dry_run", "pipeline": job.file.display().to_string()}));
    }
    if let (Some(shard), Some(out)) = (r.shard, &r.out) {
        let mut settings = job.settings;
        settings.output.root = Some(out.clone());
        return to_json(&run::shard::attribute_shard(settings, shard)?);
    }
    tracing::info!(pipeline = %job.file.display(), run_date = job.run_date(), "running pipeline");
    to_json(&job.run(phase)?)
}

fn evaluate(e: &EvaluateArgs, phase: &dyn Fn(&'static str)) -> Result<serde_json::Value> {
    let env = env();
    let mut flags = vec![("output.root".to_owned(), path(&e.out), "--out".to_owned())];
    let models = e.models.clone().unwrap_or_else(|| Model::ALL.iter().map(|m| m.name().to_owned()).collect());
    flags.push((
        "models.run".into(),
        toml::Value::Array(models.into_iter().map(toml::Value::String).collect()),
        "--models".into(),
    ));
    for s in &e.set {
        let (k, v) = parse_set(s)?;
        flags.push((k, v, format!("--set {s}")));
    }
    let resolved = settings::resolve(&Layers { file: None, env: &env, flags })?;
    let opts = run::evaluate::EvaluateOptions {
        world: e.world.clone(),
        users: e.users,
        seed: e.seed,
        days: e.days,
        reference_users: e.reference_users.unwrap_or(e.users.saturating_mul(10)),
        calibrate: e.calibrate.clone(),
    };
    to_json(&run::evaluate::evaluate(resolved.settings, &opts, phase)?)
}

fn generate(g: &GenerateArgs) -> Result<serde_json::Value> {
    let t = std::time::Instant::now();
    let opts = crate::engine::generate::GenOptions {
        users: g.users,
        seed: g.seed,
        days: g.days,
        first_user: g.first_user,
        channels: g.channels,
    };
    if let Some(name) = &g.world {
        let w = crate::core::world::world(name)
            .ok_or_else(|| Error::Config(format!("--world {name}: no such world")))?;
        let files = crate::engine::generate::generate_world_to_files(
            &opts,
            w,
            g.experiment_users.unwrap_or(g.users.max(10_000)),
            &g.out,
        )?;
        tracing::info!(rows = files.rows, file = %g.out.display(), world = name, "generated a world");
        return Ok(serde_json::json!({
            "status": "ok",
            "out": g.out.display().to_string(),
            "world": name,
            "files": files,
            "elapsed_ms": t.elapsed().as_millis(),
        }));
    }
    let rows = crate::engine::generate::generate_to_file(&opts, &g.out)?;
    tracing::info!(rows, file = %g.out.display(), "generated events");
    Ok(serde_json::json!({
        "status": "ok",
        "out": g.out.display().to_string(),
        "rows": rows,
        "elapsed_ms": t.elapsed().as_millis(),
    }))
}

type Flag = (String, toml::Value, String);

fn s(v: &str) -> toml::Value {
    toml::Value::String(v.to_owned())
}

fn list(v: &[String]) -> toml::Value {
    toml::Value::Array(v.iter().filter(|x| !x.trim().is_empty()).map(|x| s(x.trim())).collect())
}

fn path(p: &std::path::Path) -> toml::Value {
    settings::path_value(p)
}

/// The `attribute` flags as overrides of dotted settings keys, in a fixed order.
fn attribute_flags(a: &AttributeArgs) -> Result<Vec<Flag>> {
    let mut f: Vec<Flag> = Vec::new();
    let mut put = |key: &str, v: Option<toml::Value>, flag: &str| {
        if let Some(v) = v {
            f.push((key.to_owned(), v, flag.to_owned()));
        }
    };
    put("input.events", a.events.as_deref().map(s), "--events");
    put("input.paths", a.paths.as_deref().map(path), "--paths");
    put("output.root", a.out.as_deref().map(path), "--out");
    put("input.spend", a.spend.as_deref().map(path), "--spend");
    put("input.spend_period", a.spend_period.as_deref().map(s), "--spend-period");
    put("input.experiments", a.experiments.as_deref().map(path), "--experiments");
    put("input.partition_key", a.partition_key.as_deref().map(s), "--partition-key");
    let models = match &a.models {
        Some(m) => Some(list(m)),
        // A path table has no timestamps: by default every model but time_decay.
        None if a.paths.is_some() => Some(toml::Value::Array(
            crate::settings::Models::default()
                .run
                .iter()
                .filter(|m| **m != Model::TimeDecay)
                .map(|m| s(m.name()))
                .collect(),
        )),
        None => None,
    };
    put("models.run", models, "--models");
    let c = &a.columns;
    put("columns.user", c.user_col.as_deref().map(s), "--user-col");
    put("columns.time", c.time_col.as_deref().map(s), "--time-col");
    put("columns.channel", c.channel_col.as_deref().map(s), "--channel-col");
    put("columns.conversion", c.conversion_col.as_deref().map(s), "--conversion-col");
    put("columns.conversion_value", c.conversion_value.as_deref().map(s), "--conversion-value");
    put("columns.value", c.value_col.as_deref().map(s), "--value-col");
    put("columns.value", c.no_value.then(|| s("")), "--no-value");
    put("columns.tie_breaker", c.tie_breaker_col.as_deref().map(s), "--tie-breaker-col");
    put("columns.touch_type", c.touch_type_col.as_deref().map(s), "--touch-type-col");
    put("columns.campaign", c.campaign_col.as_deref().map(s), "--campaign-col");
    put("columns.event_id", c.event_id_col.as_deref().map(s), "--event-id-col");
    put("columns.consent", c.consent_col.as_deref().map(s), "--consent-col");
    let j = &a.journeys;
    put("journeys.lookback_days", j.lookback_days.map(toml::Value::Float), "--lookback-days");
    put("journeys.lookback_by_type", lookback_by_type(&j.lookback_by_type)?, "--lookback-by-type");
    put(
        "journeys.conversion_is_touch",
        j.conversion_is_touch.map(toml::Value::Boolean),
        "--conversion-is-touch",
    );
    put("journeys.on_invalid_rows", j.on_invalid_rows.as_deref().map(s), "--on-invalid-rows");
    put("journeys.transforms", (!j.transforms.is_empty()).then(|| list(&j.transforms)), "--transforms");
    put("journeys.dedupe", j.dedupe.as_deref().map(s), "--dedupe");
    relationship_flags(&a.relationship, &mut put)?;
    let m = &a.model_params;
    put("models.markov_order", m.markov_order.as_deref().map(settings::parse_value), "--markov-order");
    put(
        "models.markov_max_sequences",
        m.markov_max_sequences.map(|n| toml::Value::Integer(n as i64)),
        "--markov-max-sequences",
    );
    put("models.direct_channels", m.direct_channels.as_deref().map(list), "--direct-channels");
    put("models.position_weights", m.position_weights.as_deref().map(s), "--position-weights");
    put("models.time_decay_half_life_days", m.half_life_days.map(toml::Value::Float), "--half-life-days");
    put("models.bootstrap_replicates", m.bootstrap.map(|n| toml::Value::Integer(n as i64)), "--bootstrap");
    put("models.interval_level", m.interval_level.map(toml::Value::Float), "--interval-level");
    put(
        "models.bootstrap_seed",
        m.bootstrap_seed.map(|n| toml::Value::Integer(n as i64)),
        "--bootstrap-seed",
    );
    let p = &a.path_input;
    put("path_table.separator", p.path_sep.as_deref().map(s), "--path-sep");
    put("path_table.path", p.path_col.as_deref().map(s), "--path-col");
    put("path_table.conversions", p.conversions_col.as_deref().map(s), "--conversions-col");
    put("path_table.nulls", p.nulls_col.as_deref().map(s), "--nulls-col");
    put("path_table.value", p.path_value_col.as_deref().map(s), "--path-value-col");
    put("output.format", a.format.as_deref().map(s), "--format");
    put("output.journey_credit", a.journey_credit.then_some(toml::Value::Boolean(true)), "--journey-credit");
    put("window.run_date", a.run_date.as_deref().map(s), "--run-date");
    put("window.days", a.window_days.map(|n| toml::Value::Integer(n as i64)), "--window-days");
    put("guards.min_conversions", a.min_conversions.map(toml::Value::Float), "--min-conversions");
    put(
        "guards.max_conversion_change",
        a.max_conversion_change.map(toml::Value::Float),
        "--max-conversion-change",
    );
    put(
        "output.lock_timeout_seconds",
        a.lock_timeout.map(|n| toml::Value::Integer(n as i64)),
        "--lock-timeout",
    );
    for g in &a.channel_group {
        let (name, channels) = g
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("--channel-group `{g}`: expected GROUP=channel,channel")))?;
        let channels: Vec<String> =
            channels.split(',').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect();
        f.push((format!("channel_groups.{}", name.trim()), list(&channels), format!("--channel-group {g}")));
    }
    for x in &a.set {
        let (k, v) = parse_set(x)?;
        f.push((k, v, format!("--set {x}")));
    }
    Ok(f)
}

/// The customer-relationship flags as dotted settings keys.
fn relationship_flags(
    r: &args::RelationshipArgs,
    put: &mut dyn FnMut(&str, Option<toml::Value>, &str),
) -> Result<()> {
    if !r.sources.is_empty() {
        let list: Vec<toml::Value> = r.sources.iter().map(|x| source_flag(x)).collect::<Result<_>>()?;
        put("sources", Some(toml::Value::Array(list)), "--source");
    }
    put("input.source_name", r.source_name.as_deref().map(s), "--source-name");
    put("conversions.path", r.conversions.as_deref().map(path), "--conversions");
    put("identity.path", r.identity_map.as_deref().map(path), "--identity-map");
    put("segments.customers", r.customers.as_deref().map(path), "--customers");
    put("columns.segment", r.segment_col.as_deref().map(s), "--segment-col");
    put(
        "segments.customer_status",
        r.customer_status.then_some(toml::Value::Boolean(true)),
        "--customer-status",
    );
    put("columns.conversion_id", r.conversion_id_col.as_deref().map(s), "--conversion-id-col");
    put("columns.conversion_type", r.conversion_type_col.as_deref().map(s), "--conversion-type-col");
    put("columns.source", r.source_col.as_deref().map(s), "--source-col");
    let by_type = typed_days(&r.lookback_by_conversion_type, "--lookback-by-conversion-type")?;
    put("journeys.lookback_by_conversion_type", by_type, "--lookback-by-conversion-type");
    put("window.timezone", r.timezone.as_deref().map(s), "--timezone");
    put("input.erasure_list", r.erasure_list.as_deref().map(path), "--erasure-list");
    Ok(())
}

/// `--source NAME=PATH[,key=value…]` as one `[[sources]]` table.
fn source_flag(x: &str) -> Result<toml::Value> {
    let bad = |why: &str| {
        Error::Config(format!("--source `{x}`: {why} (NAME=PATH[,user=COL][,time=COL][,channel=NAME])"))
    };
    let mut parts = x.split(',');
    let (name, p) = parts.next().and_then(|h| h.split_once('=')).ok_or_else(|| bad("expected NAME=PATH"))?;
    let mut t = toml::Table::new();
    t.insert("name".into(), s(name.trim()));
    t.insert("path".into(), s(p.trim()));
    for kv in parts {
        let (k, v) = kv.split_once('=').ok_or_else(|| bad("expected key=value after the path"))?;
        if !["user", "time", "channel", "channel_column", "campaign"].contains(&k.trim()) {
            return Err(bad(&format!("unknown key `{}`", k.trim())));
        }
        t.insert(k.trim().into(), s(v.trim()));
    }
    Ok(toml::Value::Table(t))
}

fn lookback_by_type(items: &[String]) -> Result<Option<toml::Value>> {
    typed_days(items, "--lookback-by-type")
}

/// `TYPE=DAYS` items as a table of days.
fn typed_days(items: &[String], flag: &str) -> Result<Option<toml::Value>> {
    if items.is_empty() {
        return Ok(None);
    }
    let mut t = toml::Table::new();
    for item in items {
        let (k, d) = item
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("{flag} `{item}`: expected TYPE=DAYS")))?;
        let d: f64 =
            d.trim().parse().map_err(|_| Error::Config(format!("{flag} `{item}`: bad number of days")))?;
        t.insert(k.trim().to_owned(), toml::Value::Float(d));
    }
    Ok(Some(toml::Value::Table(t)))
}

/// A phase spinner on an interactive stderr (hidden otherwise, and with `-q`).
fn spinner(cli: &Cli) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if cli.quiet || cli.log_format == LogFormat::Json || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    let style = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}").ok()?;
    pb.set_style(style);
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(pb)
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
