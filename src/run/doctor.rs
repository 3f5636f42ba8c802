//! `touchpoint doctor`: read the data as a run would and report what it would drop, find
//! duplicated, leave unattributed, expire or refuse — without writing anything.

use serde_json::json;

use super::Run;
use crate::core::event_log::RejectReason;
use crate::error::Result;
use crate::settings::{InvalidRows, Settings};

/// Journeys longer than this are listed as a finding (bots, crawlers, shared devices).
const LONG_JOURNEY: usize = 1000;

/// Read and analyse without publishing; the report's `findings` say in words what a data
/// engineer should look at. Errors a run would fail with (schemas, types) fail here too.
pub fn doctor(mut settings: Settings) -> Result<serde_json::Value> {
    let fail_on_invalid = settings.journeys.on_invalid_rows == InvalidRows::Fail;
    settings.journeys.on_invalid_rows = InvalidRows::Drop; // count them all instead
    settings.output.root = None;
    let guards = settings.guards.clone();
    let mut run = Run::new(settings, "doctor", &|_| {});
    let r = run.compute_events(None)?;
    let (s, input) = (&r.analysis.stats, &r.input);
    let mut findings: Vec<String> = Vec::new();
    let rejected: u64 = input.rejected.values().sum();
    for (reason, n) in &input.rejected {
        let fate = if fail_on_invalid { "the run would fail on them" } else { "the run drops them" };
        findings.push(format!("{n} row(s) with a {}: {fate}", reason.text()));
    }
    if s.duplicate_events > 0 {
        // Exact copies, or with `dedupe = "event_id"` repeated event ids.
        findings.push(format!("{} duplicate event(s)", s.duplicate_events));
    }
    if s.unattributed_conversions > 0.0 {
        findings.push(format!(
            "{} of {} conversion(s) have no touch within the lookback (reported as (unattributed))",
            s.unattributed_conversions, s.total_conversions
        ));
    }
    if s.expired_touches > 0 {
        findings.push(format!("{} touch(es) are older than the lookback and expire", s.expired_touches));
    }
    let long: u64 = s.path_lengths.iter().skip(LONG_JOURNEY + 1).sum();
    if long > 0 {
        findings.push(format!(
            "{long} journey(s) longer than {LONG_JOURNEY} touches (bots? trim_long_path caps them)"
        ));
    }
    if let Some(min) = guards.min_conversions.filter(|m| s.total_conversions < *m) {
        findings.push(format!("guards.min_conversions = {min} would fail the run"));
    }
    findings.extend(r.analysis.warnings.iter().cloned());
    Ok(json!({
        "files": input.files,
        "rows_read": input.rows_read,
        "events": input.events,
        "rows_rejected": rejected,
        "rows_rejected_by_reason": RejectReason::ALL.iter().map(|r| (r.metric(), input.rejected.get(r).copied().unwrap_or(0))).collect::<std::collections::BTreeMap<_, _>>(),
        "duplicate_events": s.duplicate_events,
        "users": s.users,
        "channels": r.analysis.report_channels,
        "journeys": s.journeys,
        "conversions": s.total_conversions,
        "conversion_value": s.total_value,
        "unattributed_conversions": s.unattributed_conversions,
        "expired_touches": s.expired_touches,
        "path_length_max": s.path_length_quantile(1.0),
        "findings": findings,
    }))
}
