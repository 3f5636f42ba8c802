//! `touchpoint evaluate`: every model on a generated world with a known causal truth,
//! scored against it (`docs/evaluation.md`).
//!
//! The world's log is generated into a temporary directory and run like any log; a second,
//! larger log of other persons of the same world gives each model's large-sample credit
//! (for interval coverage). With `calibrate`, the world's simulated holdouts of those
//! channels are the run's experiments, and the calibrated credit is scored as well.

use std::path::Path;

use crate::engine::generate::{generate_world_log, generate_world_to_files, GenOptions, MIN_CHANNELS};
use crate::error::{Error, Result};
use crate::report::{large_sample, Evaluation};
use crate::settings::Settings;

use super::{Run, RunSummary};

/// What to evaluate on.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// The world (`core::world::WORLDS`).
    pub world: String,
    /// Persons of the evaluated log.
    pub users: u64,
    /// Seed of the world.
    pub seed: u64,
    /// Days of the log.
    pub days: u32,
    /// Persons of the reference log (the models' large-sample credit).
    pub reference_users: u64,
    /// Channels whose simulated holdout calibrates the credit.
    pub calibrate: Vec<String>,
}

/// Generate, run, score and publish (the run's tables, `model_evaluation`, `model_scores`
/// and the page).
pub fn evaluate(
    mut settings: Settings,
    o: &EvaluateOptions,
    progress: &dyn Fn(&'static str),
) -> Result<RunSummary> {
    let w = crate::core::world::world(&o.world)
        .ok_or_else(|| Error::Config(format!("--world {}: no such world", o.world)))?;
    check(&settings, o, w)?;
    let channels: Vec<String> = w.channels.iter().map(|c| c.name.to_owned()).collect();
    let tmp = tempfile::Builder::new()
        .prefix("touchpoint-evaluate-")
        .tempdir()
        .map_err(|e| Error::io(Path::new("."), e))?;
    let gen =
        GenOptions { users: o.users, seed: o.seed, days: o.days, first_user: 0, channels: MIN_CHANNELS };
    progress("generate");
    let log = tmp.path().join("events.parquet");
    let files = generate_world_to_files(&gen, w, o.users.max(10_000), &log)?;
    settings.input.events = Some(log.display().to_string());
    settings.input.experiments = match o.calibrate.is_empty() {
        true => None,
        false => Some(chosen_experiments(&files.experiments, &o.calibrate, tmp.path())?),
    };
    let mut run = Run::new(settings.clone(), "evaluate", progress);
    run.manifest.insert("world".into(), world_manifest(o));
    let mut result = run.compute_events(None)?;
    let reference = tmp.path().join("reference.parquet");
    progress("reference");
    generate_world_log(&GenOptions { users: o.reference_users, first_user: o.users, ..gen }, w, &reference)?;
    let mut ref_settings = settings;
    ref_settings.input.events = Some(reference.display().to_string());
    ref_settings.input.experiments = None;
    ref_settings.output.root = None;
    ref_settings.models.bootstrap_replicates = 0;
    let ref_result = Run::new(ref_settings, "evaluate", progress).compute_events(None)?;
    let scale = o.users as f64 / o.reference_users as f64;
    result.evaluation = Some(Evaluation {
        world: o.world.clone(),
        large_sample: large_sample(&channels, &ref_result, scale),
        channels,
        truth: files.incremental,
    });
    run.publish(&mut result)
}

/// The holdouts of the calibrated channels only: a file of its own, so the run reads
/// (and checks) nothing else.
fn chosen_experiments(all: &Path, channels: &[String], dir: &Path) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(all).map_err(|e| Error::io(all, e))?;
    let mut lines = text.lines();
    let mut out: Vec<&str> = lines.next().into_iter().collect();
    out.extend(lines.filter(|l| l.split(',').next().is_some_and(|c| channels.iter().any(|x| x == c))));
    let file = dir.join("calibrate.csv");
    std::fs::write(&file, out.join("\n") + "\n").map_err(|e| Error::io(&file, e))?;
    Ok(file)
}

fn check(settings: &Settings, o: &EvaluateOptions, w: &crate::core::world::WorldSpec) -> Result<()> {
    if o.users < 1_000 {
        return Err(Error::Config(format!("--users {}: evaluate needs at least 1000 persons", o.users)));
    }
    if settings.models.bootstrap_replicates == 0 {
        return Err(Error::Config(
            "evaluate scores the intervals: models.bootstrap_replicates must be at least 1".into(),
        ));
    }
    if o.reference_users < o.users {
        return Err(Error::Config(format!(
            "--reference-users {} must be at least --users {}: it stands for the large-sample credit",
            o.reference_users, o.users
        )));
    }
    if settings.input.events.is_some() || settings.input.paths.is_some() || settings.window().is_some() {
        return Err(Error::Config("evaluate generates its own log: no --events, --paths or window".into()));
    }
    for c in &o.calibrate {
        if !w.channels.iter().any(|x| x.name == c) {
            let names: Vec<&str> = w.channels.iter().map(|x| x.name).collect();
            return Err(Error::Config(format!(
                "--calibrate {c}: not a channel of the world `{}` ({})",
                o.world,
                names.join(", ")
            )));
        }
    }
    Ok(())
}

fn world_manifest(o: &EvaluateOptions) -> serde_json::Value {
    serde_json::json!({
        "name": o.world,
        "users": o.users,
        "seed": o.seed,
        "days": o.days,
        "reference_users": o.reference_users,
        "calibrate": o.calibrate,
        "log": format!("touchpoint generate --world {} --users {} --seed {} --days {} --out events.parquet", o.world, o.users, o.seed, o.days),
    })
}
