//! What the Spark job reads: the columns of an event log, and staged input each row once
//! (`engine::sources` § distributed read): the plan on the driver, one task per file, over
//! the run's read scope.

use crate::engine::arrow::{self as ffi, ArrowArrayStream};
use crate::engine::sources::{self, SplitPlan};
use crate::error::{Error, Result};
use crate::run::scope_of;
use crate::settings::Settings;

/// The plan of the distributed read (JSON): the number of files, the columns of the rows
/// the tasks hand on (with Spark SQL types), the tie-breaker's type. Every file is checked
/// here, on the driver, as `validate` checks it.
pub fn split_plan(settings: &Settings) -> Result<String> {
    let (scope, _) = scope_of(settings);
    let plan = sources::split_plan(settings, &scope)?;
    serde_json::to_string(&plan).map_err(|e| Error::Internal(format!("the read plan: {e}")))
}

/// The columns of an event log the library reads under these settings: the Spark job
/// selects them before its shuffle, so a wide table's other columns are never moved.
pub fn event_columns(settings: &Settings) -> Result<Vec<String>> {
    let (scope, _) = scope_of(settings);
    let opts = crate::engine::LoadOptions {
        columns: &settings.columns,
        on_invalid: settings.journeys.on_invalid_rows,
        scope: &scope,
        channel_rules: Some(&settings.channel_rules),
        own_channel: false,
    };
    crate::engine::read_columns(&opts)
}

/// File `index` of the plan read and flagged: what the task counted (JSON), and its rows.
pub fn stage_file(settings: &Settings, plan: &str, index: usize) -> Result<(String, ArrowArrayStream)> {
    let plan = plan_of(plan)?;
    let (scope, _) = scope_of(settings);
    let (mut rows, read) = sources::stage_file(settings, &scope, &plan, index)?;
    let read = serde_json::to_string(&read).map_err(|e| Error::Internal(format!("a file's counts: {e}")))?;
    Ok((read, ffi::export_frame(&mut rows)?))
}

/// The plan handed to a task, read back.
pub(super) fn plan_of(plan: &str) -> Result<SplitPlan> {
    serde_json::from_str(plan).map_err(|e| Error::Internal(format!("the read plan: {e}")))
}
