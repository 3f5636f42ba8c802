//! What the run keeps from the event log for the relationship outputs before the log is
//! dropped: each recorded journey's conversion id and type (`journey_credit`) and the
//! touches of each source (`source_channel_touches`).

use std::collections::BTreeMap;

use crate::core::event_log::{EventLog, Tags, NO_CHANNEL};
use crate::core::journeys::Recorded;
use crate::report::{JourneyConversions, SourceTouches};

/// The conversion id, type and segment of each recorded journey, and with `status` its
/// customer status (`new` for the person's first conversion among the events read, as the
/// segment walk decides it: the earliest conversion, first at its instant).
pub fn journey_conversions(log: &EventLog, rec: Option<&Recorded>, status: bool) -> JourneyConversions {
    let of = |t: &Option<Tags>| -> Option<Vec<Option<String>>> {
        let (t, rec) = (t.as_ref()?, rec?);
        Some(rec.conversion_row.iter().map(|&r| t.name_of(r as usize).map(str::to_owned)).collect())
    };
    let status = rec.filter(|_| status).map(|rec| {
        let mut first = vec![i64::MAX; log.n_users];
        for r in (0..log.len()).filter(|&r| log.is_conversion[r]) {
            let u = log.user[r] as usize;
            first[u] = first[u].min(log.ts[r]);
        }
        (0..rec.len())
            .map(|i| match rec.conversion_ts[i] == first[rec.user[i] as usize] && rec.seq[i] == 1 {
                true => "new",
                false => "returning",
            })
            .collect()
    });
    JourneyConversions {
        id: of(&log.conversion_id),
        r#type: of(&log.conversion_type),
        segment: of(&log.segment),
        status,
    }
}

/// Touches per (source, channel): all kept touches, and the touches, openers and closers
/// of the recorded converting journeys (by the touch's own event row, so path transforms
/// that rename channels do not matter).
pub fn source_touches(
    log: &EventLog,
    rec: Option<&Recorded>,
    conversion_is_touch: bool,
) -> Option<SourceTouches> {
    let src = log.source.as_ref()?;
    let mut by: BTreeMap<(u32, u32), [u64; 4]> = BTreeMap::new();
    for r in 0..log.len() {
        let ch = log.channel[r];
        if ch == NO_CHANNEL || (log.is_conversion[r] && !conversion_is_touch) {
            continue;
        }
        by.entry((src.ids[r], ch)).or_default()[0] += 1;
    }
    if let Some(rec) = rec {
        for i in 0..rec.len() {
            let rows = &rec.row[rec.range(i)];
            for (j, &row) in rows.iter().enumerate() {
                let e = by.entry((src.ids[row as usize], log.channel[row as usize])).or_default();
                e[1] += 1;
                e[2] += u64::from(j == 0);
                e[3] += u64::from(j + 1 == rows.len());
            }
        }
    }
    let name = |t: &Tags, i: u32| t.names.get(i as usize).cloned().unwrap_or_default();
    let mut rows: Vec<((String, String), [u64; 4])> =
        by.into_iter().map(|((s, c), v)| ((name(src, s), log.channels[c as usize].clone()), v)).collect();
    rows.sort();
    Some(SourceTouches::from_sorted(rows))
}
