//! Channel groups (`[channel_groups]`): the models refitted on journeys whose touches are
//! groups instead of channels, so Markov and Shapley see the group-level chain
//! (`docs/models.md` § Channel groups). Summing `channel_attribution` over a group's
//! channels gives the channel-level answer instead; both are offered.

use crate::core::analysis::{self, Analysis, AnalyzeOptions};
use crate::core::event_log::{reserved_name_problem, EventLog, NO_CHANNEL};
use crate::core::journeys::{self, JourneyOptions};
use crate::error::{Error, Result};
use crate::settings::{Dedupe, Settings};

/// Group names (sorted) and each channel's group id.
fn group_ids(log: &EventLog, s: &Settings) -> (Vec<String>, Vec<u32>) {
    let mut names: Vec<String> = log.channels.iter().map(|c| s.group_of(c).to_owned()).collect();
    names.sort();
    names.dedup();
    let of = log
        .channels
        .iter()
        .map(|c| names.binary_search_by(|g| g.as_str().cmp(s.group_of(c))).unwrap_or(0) as u32)
        .collect();
    (names, of)
}

/// The group-level analysis: the log's channel column is swapped for group ids while the
/// journeys are built (no copy of the other columns), then restored. `duplicates` are the
/// channel-level duplicate rows, so two touches of one group are never taken for copies.
/// `partition`: a shard's or a Spark chunk's journeys (the chain is fitted, the merge solves it).
pub fn analyze_groups(
    log: &mut EventLog,
    s: &Settings,
    duplicates: &[u32],
    (index, partition): (bool, bool),
) -> Result<Analysis> {
    if let Some(p) = s.channel_groups.keys().find_map(|g| reserved_name_problem(g)) {
        return Err(Error::Config(format!("channel group: {p}")));
    }
    // A channel in no group is a group of its own: one named like a group would be merged
    // into it silently.
    if let Some(c) =
        log.channels.iter().find(|c| s.group_of(c) == c.as_str() && s.channel_groups.contains_key(*c))
    {
        return Err(Error::Config(format!(
            "channel `{c}` is in no channel group but a group has its name; list it in the group or rename the group"
        )));
    }
    let (names, of) = group_ids(log, s);
    let grouped: Vec<u32> =
        log.channel.iter().map(|&c| if c == NO_CHANNEL { c } else { of[c as usize] }).collect();
    let channel = std::mem::replace(&mut log.channel, grouped);
    let channels = std::mem::replace(&mut log.channels, names.clone());
    let mut opts = JourneyOptions::resolve(&s.journeys, log, s.has(crate::settings::Model::TimeDecay));
    opts.report = s.window().map(|w| w.range());
    opts.index = index;
    // Each chunk of users sorted and walked at once (the whole order is never held),
    // skipping the channel level's duplicates.
    let (j, _) = journeys::sort_and_build(log, &opts, Some(duplicates.to_vec()));
    log.channel = channel;
    log.channels = channels;
    let a = analysis::analyze(
        j,
        &AnalyzeOptions {
            base_names: &names,
            models: &s.models,
            time_decay_credit: None,
            sequence_effects: false,
            dedupe: s.journeys.dedupe != Dedupe::None,
            training: None,
            partition,
        },
    )?;
    Ok(a)
}
