//! The command-line interface: clap flags and printing only.
//!
//! Every flag of a setting is an override of one dotted key of the settings schema
//! ([`crate::settings::Settings`]), applied after the environment
//! (`TOUCHPOINT_<SECTION>__<KEY>`) like `--set`: one schema and one set of defaults for flags,
//! environment and pipeline files. The key is the flag's clap id (`id = "columns.user"` in
//! `args.rs`), so the mapping is written once, where the flag is defined, and
//! [`schema_flags`] turns every such flag into its override by the type clap parsed; only
//! flags that are not one value of one key (`--no-value`, `TYPE=DAYS` lists, `--source`,
//! `--channel-group`, the Markov order's TOML value, `--set`) are mapped by hand. The binary prints one JSON summary line last on stdout
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
    // The flags of settings are read from clap's matches: a `Cli` not made by
    // `Cli::parse_args` has none, and would silently drop them.
    let Some((name, m)) = cli.matches.subcommand() else {
        return Err(Error::Internal(
            "the command line was parsed without its matches (Cli::parse_args)".into(),
        ));
    };
    let flags = schema_flags(name, m);
    match &cli.command {
        Command::Run(r) => run_pipeline(r, flags, phase),
        Command::Validate(r) => job(r, flags)?.validate(),
        // One merge: the streaming one, as fast as holding the merged paths in memory and in
        // less memory (README § Performance); the in-memory merge stays in the library as
        // the independent implementation the tests hold it to.
        Command::Merge(m) => to_json(&run::merge_bounded::merge_bounded_and_publish(
            &m.partials,
            &m.out,
            run::merge_bounded::BLOCK,
        )?),
        Command::Attribute(a) => {
            if a.out.is_none() {
                return Err(Error::Usage("attribute needs --out DIR".into()));
            }
            let env = env();
            let resolved =
                settings::resolve(&Layers { file: None, env: &env, flags: attribute_flags(a, flags)? })?;
            if a.show_settings {
                print!("{}", toml::to_string(&resolved.settings).unwrap_or_default());
                return Ok(serde_json::json!({"status": "ok"}));
            }
            to_json(&run::attribute(resolved.settings, a.shard, phase)?)
        }
        Command::Doctor(a) => {
            let env = env();
            let resolved =
                settings::resolve(&Layers { file: None, env: &env, flags: attribute_flags(a, flags)? })?;
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
        Command::Evaluate(e) => evaluate(e, flags, phase),
    }
}

/// A pipeline's job: its file, then `--set`, then the flags of settings (`--run-date`,
/// `--window-days`).
fn job(r: &RunArgs, schema: Vec<Flag>) -> Result<Job> {
    let env = env();
    let mut flags = Vec::new();
    for s in &r.set {
        let (k, v) = parse_set(s)?;
        flags.push((k, v, format!("--set {s}")));
    }
    flags.extend(schema);
    let resolved = settings::resolve(&Layers { file: Some(&r.pipeline), env: &env, flags })?;
    Job::new(r.pipeline.clone(), resolved)
}

fn run_pipeline(r: &RunArgs, flags: Vec<Flag>, phase: &dyn Fn(&'static str)) -> Result<serde_json::Value> {
    let job = job(r, flags)?;
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

fn evaluate(
    e: &EvaluateArgs,
    mut flags: Vec<Flag>,
    phase: &dyn Fn(&'static str),
) -> Result<serde_json::Value> {
    let env = env();
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

/// The flags of subcommand `name` whose clap id is a settings key (`section.key`, set in
/// `args.rs`), as overrides in definition order: a flag names its setting once, where it is
/// defined, and its value becomes TOML by the type clap parsed it to.
fn schema_flags(name: &str, m: &clap::ArgMatches) -> Vec<Flag> {
    use clap::CommandFactory;
    let cli = Cli::command();
    let Some(cmd) = cli.find_subcommand(name) else { return Vec::new() };
    let given = |id: &str| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    cmd.get_arguments()
        .filter(|a| a.get_id().as_str().contains('.') && given(a.get_id().as_str()))
        .map(|a| {
            let id = a.get_id().as_str();
            let flag = format!("--{}", a.get_long().unwrap_or(id));
            (id.to_owned(), value_of(m, id, a.get_value_delimiter().is_some()), flag)
        })
        .collect()
}

/// A flag's value as TOML, by its parsed type (text, a path as text, a number, a flag, a
/// comma-separated list).
fn value_of(m: &clap::ArgMatches, id: &str, listed: bool) -> toml::Value {
    use toml::Value as V;
    let one = |k: Option<i64>| k.map(V::Integer);
    if listed {
        let v: Vec<String> = m.get_many::<String>(id).map(|v| v.cloned().collect()).unwrap_or_default();
        return list(&v);
    }
    let found = (m.try_get_one::<String>(id).ok().flatten().map(|v| s(v)))
        .or_else(|| m.try_get_one::<std::path::PathBuf>(id).ok().flatten().map(|p| path(p)))
        .or_else(|| m.try_get_one::<f64>(id).ok().flatten().map(|&x| V::Float(x)))
        .or_else(|| m.try_get_one::<bool>(id).ok().flatten().map(|&b| V::Boolean(b)))
        .or_else(|| one(m.try_get_one::<u32>(id).ok().flatten().map(|&n| i64::from(n))))
        .or_else(|| one(m.try_get_one::<u64>(id).ok().flatten().and_then(|&n| i64::try_from(n).ok())))
        .or_else(|| one(m.try_get_one::<usize>(id).ok().flatten().and_then(|&n| i64::try_from(n).ok())));
    // A type not listed here is a flag definition's mistake, caught by the unit test below;
    // as text, the settings' type check names the flag.
    found.unwrap_or_else(|| {
        s(&m.get_raw(id)
            .and_then(|mut r| r.next())
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default())
    })
}

/// The `attribute` (and `doctor`) overrides: the flags of settings, then what is not one
/// flag to one key (defaults that depend on other flags, `TYPE=DAYS` lists, sources,
/// channel groups, the Markov order's TOML value), then `--set`.
fn attribute_flags(a: &AttributeArgs, mut f: Vec<Flag>) -> Result<Vec<Flag>> {
    let mut put = |key: &str, v: Option<toml::Value>, flag: &str| {
        if let Some(v) = v {
            f.push((key.to_owned(), v, flag.to_owned()));
        }
    };
    if a.models.is_none() && a.paths.is_some() {
        // A path table has no timestamps: by default every model but time_decay.
        let run = crate::settings::Models::default().run.into_iter().filter(|m| *m != Model::TimeDecay);
        put("models.run", Some(toml::Value::Array(run.map(|m| s(m.name())).collect())), "--paths");
    }
    put("columns.value", a.columns.no_value.then(|| s("")), "--no-value");
    put(
        "journeys.lookback_by_type",
        typed_days(&a.journeys.lookback_by_type, "--lookback-by-type")?,
        "--lookback-by-type",
    );
    let r = &a.relationship;
    if !r.sources.is_empty() {
        let list: Vec<toml::Value> = r.sources.iter().map(|x| source_flag(x)).collect::<Result<_>>()?;
        put("sources", Some(toml::Value::Array(list)), "--source");
    }
    let by_type = typed_days(&r.lookback_by_conversion_type, "--lookback-by-conversion-type")?;
    put("journeys.lookback_by_conversion_type", by_type, "--lookback-by-conversion-type");
    let order = a.model_params.markov_order.as_deref().map(settings::parse_value);
    put("models.markov_order", order, "--markov-order");
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag whose id is a settings key, all given on one command line, becomes one
    /// override of its key, and the settings schema knows every such key (a typo in an id
    /// would be "unknown field" only when a user first passes the flag).
    #[test]
    fn every_flag_of_a_setting_overrides_a_key_the_schema_knows() {
        let base: [(&str, &[&str]); 5] = [
            ("attribute", &[]),
            ("doctor", &[]),
            ("run", &["p.toml"]),
            ("validate", &["p.toml"]),
            ("evaluate", &["--world", "confounded", "--users", "1"]),
        ];
        for (name, required) in base {
            let cli = Cli::command();
            let cmd = cli.find_subcommand(name).expect("a subcommand");
            let mut argv: Vec<String> = vec!["touchpoint".into(), name.into()];
            argv.extend(required.iter().map(|x| x.to_string()));
            let mut keys = Vec::new();
            // --paths and --events are alternatives (one input): --paths is checked below.
            for a in cmd
                .get_arguments()
                .filter(|a| a.get_id().as_str().contains('.') && a.get_id() != "input.paths")
            {
                argv.push(format!("--{}", a.get_long().expect("a long flag")));
                if !matches!(a.get_action(), clap::ArgAction::SetTrue) {
                    let bool_value = a.get_value_names().is_some_and(|v| v[0] == "BOOL");
                    argv.push(if bool_value { "true" } else { "1" }.into());
                }
                keys.push(a.get_id().to_string());
            }
            assert!(keys.len() >= if name == "attribute" { 45 } else { 1 }, "{name}: {keys:?}");
            let m = Cli::command().try_get_matches_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            let flags = schema_flags(name, m.subcommand_matches(name).expect("its matches"));
            let got: Vec<String> = flags.iter().map(|f| f.0.clone()).collect();
            assert_eq!(got, keys, "{name}");
            for f in flags {
                let flags = vec![f.clone()];
                if let Err(e) = settings::resolve(&Layers { file: None, env: &[], flags }) {
                    // A known key, of the flag's type (a value may still be refused: "1" is no date).
                    let e = e.to_string();
                    assert!(
                        !e.contains("unknown field") && !e.contains("invalid type"),
                        "{name} {}: {e}",
                        f.2
                    );
                }
            }
        }
        let argv = ["touchpoint", "attribute", "--paths", "p.csv", "--bootstrap", "7"];
        let m = Cli::command().try_get_matches_from(argv).expect("parses");
        let flags = schema_flags("attribute", m.subcommand_matches("attribute").expect("its matches"));
        assert_eq!(flags[0].0, "input.paths");
        assert!(matches!(&flags[0].1, toml::Value::String(p) if p.ends_with("p.csv")));
        assert_eq!(
            flags[1],
            ("models.bootstrap_replicates".into(), toml::Value::Integer(7), "--bootstrap".into())
        );
    }
}
