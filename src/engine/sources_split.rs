//! Staging read in parallel, each row once (the Spark job, `docs/scale.md` § Spark: Staged
//! input). One run stages every source in one pass ([`super::stage`]); a distributed job
//! cannot, because a row's person is known only after the identity map and repeated
//! conversion ids are decided across persons. So the same rules run in three places:
//!
//! 1. [`stage_file`], one task per file: the file read by the rules of one run, each id
//!    mapped through the identity map (a small table every task holds, as Spark broadcasts
//!    one side of a join), erased rows dropped and counted, and every row flagged with what
//!    the rules decide from the row alone (`RowPass::flag`);
//! 2. the job, between tasks: the persons with a row without consent (`__withdraws`), and
//!    of the candidates for a repeated conversion id (`__candidate`) all but the least key;
//! 3. [`stage_rows`], one task per group of whole persons: the rest of the rules over the
//!    persons' rows (`RowPass::run` with the ids mapped and the repeated ids chosen).
//!
//! The counts add up to one run's, except three the job takes from step 1 or counts itself:
//! the rows of each file, the erased rows and the identity map's entries (step 1), and the
//! distinct ids by identity status (over the kept rows of every person).

use std::path::PathBuf;

use polars::prelude::*;
use rustc_hash::FxHashSet;

use super::pass::{Given, RowPass, DUP, STATUS};
use super::{
    align_tie, forget_in_identity, load_customers, load_id_set, load_identity, read_source_file,
    read_sources, source_plans, Identity, Kind, SourcePlan, Staged, OPTIONAL, TIE, UTM,
};
use crate::core::event_log::InputFile;
use crate::engine::discover::ReadScope;
use crate::error::{Error, Result};
use crate::settings::Settings;

/// What every task of a distributed read shares, decided once from every file's schema.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SplitPlan {
    /// The files of every source, in the settings' order (the tasks' indices, in order),
    /// listed once: every task reads these, whatever a directory holds by then.
    pub sources: Vec<Vec<PathBuf>>,
    /// The columns a task's rows have, with their Spark SQL types.
    pub columns: Vec<(String, String)>,
    /// The event log's tie-breaker type (`string`, `double`, `bigint`), when configured.
    tie: Option<String>,
    /// The first row (file, row) whose error fails the run, when the job found one
    /// (`__fails`, its persons' withdrawal left out): the partitions raise that row's only.
    #[serde(default)]
    pub fail_at: Option<(u32, u32)>,
}

/// What a task of the distributed read counted in its file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct FileRead {
    /// The file, and its rows in the read range after the erasure list (one run's count).
    pub file: InputFile,
    /// Rows dropped by the erasure list.
    pub erased: u64,
    /// Entries of the identity map after erasure.
    pub identity_entries: u64,
}

/// The plan of a distributed read: every source's files checked as `validate` checks them
/// (columns, types, one id type per source, one tie-breaker kind), without reading rows.
pub fn split_plan(settings: &Settings, scope: &ReadScope) -> Result<SplitPlan> {
    let plans = source_plans(settings, scope, None)?;
    let (frames, files) = read_sources(&plans, scope, true)?;
    let first = frames.into_iter().next().ok_or_else(|| no_files(&files))?;
    let tie = match first.column(TIE) {
        Ok(c) => Some(spark_type(c.dtype())?.to_owned()),
        Err(_) => None,
    };
    let (rows, _) = Mapped::default().pass(settings, &plans, &None).flag(first)?;
    let columns = to_spark(rows, &plans)?
        .columns()
        .iter()
        .map(|c| Ok((c.name().to_string(), spark_type(c.dtype())?.to_owned())))
        .collect::<Result<_>>()?;
    let sources = plans.iter().map(|p| p.files.clone()).collect();
    Ok(SplitPlan { sources, columns, tie, fail_at: None })
}

fn no_files(files: &[InputFile]) -> Error {
    Error::Internal(format!("a distributed read of {} files found none to read", files.len()))
}

/// File `index` of the plan, staged as step 1 of the module documentation: its rows in
/// the plan's columns, and what was counted.
pub fn stage_file(
    settings: &Settings,
    scope: &ReadScope,
    plan: &SplitPlan,
    index: usize,
) -> Result<(DataFrame, FileRead)> {
    let plans = source_plans(settings, scope, Some(&plan.sources))?;
    let mut all = plans.iter().enumerate().flat_map(|(si, p)| p.files.iter().map(move |f| (si, f)));
    let (si, path) = all.nth(index).ok_or_else(|| Error::Internal(format!("no file {index} to stage")))?;
    let (mut frame, _, _) = read_source_file(&plans[si], path, (si, index, false), scope)?;
    if let Some(tie) = &plan.tie {
        let is_events = matches!(plans[si].kind, Kind::Events(_));
        frame = align_tie(frame, is_events, &polars_type(tie))?;
    }
    let mut identity = load_identity(settings)?;
    let mut erased = load_id_set(settings.input.erasure_list.as_deref(), &settings.input.erasure_column)?;
    forget_in_identity(&mut identity, &mut erased);
    let pass = RowPass {
        settings,
        plans: &plans,
        identity: &identity,
        erased: &erased,
        customers: &None,
        shard: None,
    };
    let (rows, erased) = pass.flag(frame)?;
    let file = InputFile { path: path.clone(), rows: rows.height() as u64 };
    let identity_entries = identity.values().map(|v| v.len() as u64).sum();
    Ok((to_spark(rows, &plans)?, FileRead { file, erased, identity_entries }))
}

/// The rows of whole persons from the distributed read (step 3 of the module
/// documentation), staged as one run stages them. Files' row counts are the partition's.
pub fn stage_rows(
    settings: &Settings,
    scope: &ReadScope,
    plan: &SplitPlan,
    rows: DataFrame,
) -> Result<Staged> {
    let plans = source_plans(settings, scope, Some(&plan.sources))?;
    let files: Vec<InputFile> =
        plans.iter().flat_map(|p| &p.files).map(|f| InputFile { path: f.clone(), rows: 0 }).collect();
    let rows = from_spark(rows, &plans)?;
    let customers = load_customers(settings)?;
    let mapped = Mapped::default();
    let pass = mapped.pass(settings, &plans, &customers);
    let mut given = Given::of(&rows)?;
    given.fail_at = plan.fail_at;
    pass.run(rows.clone(), files, Some(given))
}

/// No identity map and no erasure list: the row pass of the plan (which flags no rows) and
/// of the partitions, whose rows the per-file tasks mapped and erased already.
#[derive(Default)]
struct Mapped(Identity, FxHashSet<String>);

impl Mapped {
    fn pass<'a>(
        &'a self,
        settings: &'a Settings,
        plans: &'a [SourcePlan],
        customers: &'a Option<rustc_hash::FxHashMap<String, String>>,
    ) -> RowPass<'a> {
        RowPass { settings, plans, identity: &self.0, erased: &self.1, customers, shard: None }
    }
}

fn internal(e: PolarsError) -> Error {
    Error::Internal(format!("staging the sources in parallel: {e}"))
}

/// The unsigned columns (file, row, source) as Spark's longs.
const UNSIGNED: [&str; 3] = ["__file", "__row", "__source"];

/// The staged columns no source of the settings fills (always null, or consent always
/// true), which the rows do not carry through Spark: every column costs the hand-over
/// between Spark and the library per row. The source's name is carried as its index.
fn unfilled(plans: &[SourcePlan]) -> Vec<&'static str> {
    let filled = |name: &str| {
        plans.iter().any(|p| match &p.kind {
            Kind::Events(c) => {
                let utm = UTM.iter().position(|u| *u == name);
                match name {
                    "segment" => c.segment.is_some(),
                    "conversion_type" => c.conversion_type.is_some(),
                    "conversion_id" => c.conversion_id.is_some(),
                    "campaign" => c.campaign.is_some(),
                    "touch_type" => c.touch_type.is_some(),
                    "consent" => c.consent.is_some(),
                    "event_id" => c.event_id.is_some(),
                    _ => utm.is_some_and(|k| p.rules.as_ref().is_some_and(|r| r.uses()[k])),
                }
            }
            Kind::Touches { campaign, .. } => name == "campaign" && campaign.is_some(),
            Kind::Conversions { r#type, .. } => {
                name == "conversion_id" || (name == "conversion_type" && r#type.is_some())
            }
        })
    };
    OPTIONAL.into_iter().filter(|n| !filled(n)).collect()
}

fn to_spark(mut df: DataFrame, plans: &[SourcePlan]) -> Result<DataFrame> {
    for name in UNSIGNED {
        let c = df.column(name).map_err(internal)?.cast(&DataType::Int64).map_err(internal)?;
        df.with_column(c).map_err(internal)?;
    }
    Ok(df.drop_many(unfilled(plans)))
}

/// The columns [`to_spark`] left out, back: nulls, consent given, the source's name.
fn refill(mut df: DataFrame, plans: &[SourcePlan]) -> Result<DataFrame> {
    let n = df.height();
    for name in unfilled(plans) {
        let column = match name {
            "consent" => Column::new(name.into(), vec![true; n]),
            "source" => {
                let index = df.column("__source").map_err(internal)?.u32().map_err(internal)?;
                let names: Vec<Option<&str>> = index
                    .iter()
                    .map(|i| i.and_then(|i| plans.get(i as usize)).map(|p| p.name.as_str()))
                    .collect();
                Column::new(name.into(), names)
            }
            _ => Column::full_null(name.into(), n, &DataType::String),
        };
        df.with_column(column).map_err(internal)?;
    }
    Ok(df)
}

/// The rows back in the pass' types (unsigned indices), and the job's choice among repeated
/// conversion ids applied: the job sends each loser to its person's partition as a marker
/// row (`__dup` true, only its person, file and row set), so no join moves the rows; the
/// markers become each row's `__dup`.
fn from_spark(mut df: DataFrame, plans: &[SourcePlan]) -> Result<DataFrame> {
    for name in UNSIGNED {
        let c = df.column(name).map_err(internal)?.cast(&DataType::UInt32).map_err(internal)?;
        df.with_column(c).map_err(internal)?;
    }
    let status = df.column(STATUS).map_err(internal)?.cast(&DataType::Int32).map_err(internal)?;
    df.with_column(status).map_err(internal)?;
    let Ok(dup) = df.column(DUP) else {
        let df = df.with_column(Column::new(DUP.into(), vec![false; df.height()])).map_err(internal)?.clone();
        return refill(df, plans);
    };
    let marker = dup
        .cast(&DataType::Boolean)
        .map_err(internal)?
        .bool()
        .map_err(internal)?
        .fill_null_with_values(false)
        .map_err(internal)?;
    let index = |d: &DataFrame, n: &str| -> Result<Vec<Option<u32>>> {
        Ok(d.column(n).map_err(internal)?.u32().map_err(internal)?.iter().collect())
    };
    let markers = df.filter(&marker).map_err(internal)?;
    let losers: FxHashSet<(Option<u32>, Option<u32>)> =
        index(&markers, "__file")?.into_iter().zip(index(&markers, "__row")?).collect();
    let mut rows = df.filter(&!&marker).map_err(internal)?;
    let lost: Vec<bool> = index(&rows, "__file")?
        .into_iter()
        .zip(index(&rows, "__row")?)
        .map(|key| losers.contains(&key))
        .collect();
    rows.with_column(Column::new(DUP.into(), lost)).map_err(internal)?;
    refill(rows, plans)
}

fn spark_type(dt: &DataType) -> Result<&'static str> {
    Ok(match dt {
        DataType::String => "string",
        DataType::Int64 => "bigint",
        DataType::Int32 => "int",
        DataType::Float64 => "double",
        DataType::Boolean => "boolean",
        other => return Err(Error::Internal(format!("a staged column of type {other} has no Spark type"))),
    })
}

fn polars_type(spark: &str) -> DataType {
    match spark {
        "string" => DataType::String,
        "double" => DataType::Float64,
        _ => DataType::Int64,
    }
}
