//! Which feature combinations each way of running refuses, in one place: every entry point
//! calls [`Settings::refuse_for`] before it reads anything, so a combination it cannot carry
//! fails at once with 78 and says what to do instead.

use super::{Model, Settings};
use crate::error::{Error, Result};

/// How a run gets its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Event files on one machine (`attribute --events`, `run`).
    Events,
    /// Events handed over as an Arrow stream (the Python package, a Spark chunk).
    Stream,
    /// An aggregated path table (`attribute --paths`).
    Paths,
    /// One shard of the persons (`attribute --shard`).
    Shard,
    /// The Spark job's driver.
    Spark,
}

impl Settings {
    /// Refuse what `entry` cannot carry: a training window outside one machine's output
    /// root, staged input from a stream, per-journey or per-touch models on a path table,
    /// staged input from object stores in Spark.
    pub fn refuse_for(&self, entry: Entry) -> Result<()> {
        self.refuse_training(entry)?;
        match entry {
            Entry::Stream if self.staged() => Err(Error::Config(
                "[[sources]], [conversions], [identity], customers and erasure lists are read from files: run \
                 them with the CLI, or with touchpoint.spark.attribute(None, …), which stages them from the files \
                 (docs/sources.md)"
                    .into(),
            )),
            Entry::Paths if self.output.journey_credit => {
                Err(Error::Config("--journey-credit needs --events (a path table has no journeys)".into()))
            }
            Entry::Paths if self.models.run.contains(&Model::TimeDecay) => Err(Error::Config(
                "time_decay needs event timestamps; it cannot run on an aggregated path table".into(),
            )),
            Entry::Paths if self.staged() => Err(Error::Config(
                "[[sources]], [conversions], [identity], customers and erasure lists stage events: a path table \
                 (--paths) has none; give the event log with --events"
                    .into(),
            )),
            Entry::Spark => self.refuse_uris_of_staged_input(),
            _ => Ok(()),
        }
    }

    /// `models.training_days` keeps each day's closed journeys in the output root of one
    /// machine and needs a run date.
    fn refuse_training(&self, entry: Entry) -> Result<()> {
        if self.models.training_days.is_none() {
            return Ok(());
        }
        match entry {
            Entry::Spark => Err(Error::Config(
                "models.training_days keeps each day's closed journeys in the output root of one machine: the \
                 Spark job does not carry it (docs/scale.md); run it with touchpoint run"
                    .into(),
            )),
            Entry::Paths => Err(Error::Config(
                "models.training_days keeps each day's closed journeys: a path table (--paths) has none; give \
                 the event log with --events"
                    .into(),
            )),
            Entry::Shard | Entry::Events | Entry::Stream
                if entry == Entry::Shard || self.output.root.is_none() =>
            {
                Err(Error::Config(
                    "models.training_days needs an output root (it keeps each day's closed journeys there) and \
                     no --shard"
                        .into(),
                ))
            }
            Entry::Events | Entry::Stream if self.window().is_none() => Err(Error::Config(
                "models.training_days needs a scheduled run with a run date (window.run_date)".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The Spark job's executors read staged input with the library, from paths every
    /// executor can read: not an object-store URI.
    fn refuse_uris_of_staged_input(&self) -> Result<()> {
        if !self.staged() {
            return Ok(());
        }
        let files = [
            &self.input.events,
            &self.conversions.path,
            &self.identity.path,
            &self.segments.customers,
            &self.input.erasure_list,
        ];
        let sources = self.sources.iter().map(|x| x.path.as_str());
        match files.into_iter().flatten().map(String::as_str).chain(sources).find(|p| p.contains("://")) {
            Some(uri) => Err(Error::Config(format!(
                "staged input is read by touchpoint from files every executor can read, not from `{uri}`: copy \
                 it to a shared filesystem, or join the sources in the warehouse and give the job the joined \
                 event log (docs/scale.md § Spark: Staged input)"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Entry; 5] = [Entry::Events, Entry::Stream, Entry::Paths, Entry::Shard, Entry::Spark];

    /// The entries that refuse settings changed by `change`, every other one accepting them.
    fn refusing(change: impl Fn(&mut Settings)) -> Vec<Entry> {
        let mut s = Settings::default();
        s.models.run = vec![Model::Linear, Model::Markov];
        change(&mut s);
        ALL.into_iter().filter(|&e| matches!(s.refuse_for(e), Err(Error::Config(_)))).collect()
    }

    #[test]
    fn each_entry_refuses_what_it_cannot_carry_and_nothing_else() {
        use Entry::*;
        assert_eq!(refusing(|_| {}), vec![]);
        assert_eq!(refusing(|s| s.models.run.push(Model::TimeDecay)), vec![Paths]);
        assert_eq!(refusing(|s| s.output.journey_credit = true), vec![Paths]);
        assert_eq!(refusing(|s| s.input.erasure_list = Some("erase.csv".into())), vec![Stream, Paths]);
        assert_eq!(
            refusing(|s| s.input.erasure_list = Some("s3://b/erase.csv".into())),
            vec![Stream, Paths, Spark]
        );
        // A training window: one machine's output root and a run date.
        assert_eq!(refusing(|s| s.models.training_days = Some(7)), vec![Events, Stream, Paths, Shard, Spark]);
        let dated = |s: &mut Settings| {
            s.models.training_days = Some(7);
            s.output.root = Some("out".into());
            s.window.run_date =
                Some(super::super::RunDate(chrono::NaiveDate::from_ymd_opt(2024, 2, 15).unwrap()));
        };
        assert_eq!(refusing(dated), vec![Paths, Shard, Spark]);
    }
}
