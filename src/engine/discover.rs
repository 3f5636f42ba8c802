//! Finding the input files: a file, a directory (hive partitions) or a glob, pruned to the
//! partitions a reporting window needs.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Expand the `--events` argument (a file, a directory, or a glob) into a sorted file list.
///
/// Directories are walked recursively for `*.parquet` files, which covers hive-partitioned
/// datasets (`date=2024-01-01/part-0.parquet`). Hidden files and directories (`.`/`_`
/// prefixes, as Spark and Hive write `_SUCCESS` and `.crc` files) are skipped.
pub fn resolve_inputs(spec: &str) -> Result<Vec<PathBuf>> {
    let path = Path::new(spec);
    let mut files = Vec::new();
    match std::fs::metadata(path) {
        // A name the system cannot even look up (too long, invalid) is an I/O problem to
        // fix, not data that may land later.
        Err(e)
            if !matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory)
                && !spec.contains(['*', '?', '[']) =>
        {
            return Err(Error::io(path, e));
        }
        _ => {}
    }
    if path.is_file() {
        files.push(path.to_path_buf());
    } else if path.is_dir() {
        walk_dir(path, &mut files)?;
        if files.is_empty() {
            return Err(Error::NotFound {
                path: path.into(),
                problem: "directory contains no .parquet files".into(),
            });
        }
    } else if spec.contains(['*', '?', '[']) {
        let entries = glob::glob(spec).map_err(|e| Error::Config(format!("bad glob `{spec}`: {e}")))?;
        for entry in entries {
            let p = entry.map_err(|e| {
                let path = e.path().to_path_buf();
                Error::io(path, e.into())
            })?;
            if p.is_file() {
                files.push(p);
            }
        }
        if files.is_empty() {
            return Err(Error::NotFound { path: path.into(), problem: "the pattern matched no file".into() });
        }
    } else {
        return Err(Error::NotFound { path: path.into(), problem: "no such file or directory".into() });
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let p = entry.path();
        if p.is_dir() {
            walk_dir(&p, out)?;
        } else if name.ends_with(".parquet") {
            out.push(p);
        }
    }
    Ok(())
}

/// Which part of the input a run needs (scheduled runs read a window, not everything).
#[derive(Debug, Clone, Default)]
pub struct ReadScope {
    /// Keep only events with `start ≤ ts < end` (µs): pushed down to the Parquet scan as a
    /// predicate (row groups outside are skipped by their statistics).
    pub range: Option<(i64, i64)>,
    /// Hive partition key of the input (`date` in `date=2024-01-05/part.parquet`): files
    /// whose partition date lies outside `range` are not opened at all.
    pub partition_key: Option<String>,
    /// Dates of the reporting window: each must have a partition when the input is
    /// partitioned (a missing one means the data has not landed: exit 66).
    pub required_dates: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    /// Keep only the users of shard `i` of `n` (see [`shard_of_str`]).
    pub shard: Option<(u32, u32)>,
    /// Do not keep the user id values ([`EventLog::user_names`] stays empty): only runs
    /// that list users (per-journey credit) need them, and at a million users they cost a
    /// string each.
    pub skip_user_names: bool,
    /// Rows per read batch (default [`READ_BATCH`]).
    pub batch_rows: Option<u64>,
    /// A read that keeps nothing is not an error: one chunk of a distributed run may hold
    /// no event of the window (the driver checks the whole).
    pub allow_empty: bool,
}

/// The `key=YYYY-MM-DD` partition date of a file path, if any.
pub fn partition_date(path: &Path, key: &str) -> Option<chrono::NaiveDate> {
    path.components().rev().find_map(|c| {
        let s = c.as_os_str().to_str()?;
        let v = s.strip_prefix(key)?.strip_prefix('=')?;
        chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()
    })
}

/// The date (UTC) of a µs timestamp.
pub fn date_of(us: i64) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_micros(us).map(|d| d.date_naive()).unwrap_or_default()
}

/// Resolve the input files of a scope: partition pruning and the missing-partition check.
pub fn scoped_inputs(spec: &str, scope: &ReadScope) -> Result<Vec<PathBuf>> {
    let files = resolve_inputs(spec)?;
    let (Some(key), Some((start, end))) = (&scope.partition_key, scope.range) else { return Ok(files) };
    let (first, last) = (date_of(start), date_of(end - 1));
    let partitioned = files.iter().any(|f| partition_date(f, key).is_some());
    if partitioned {
        if let Some((a, b)) = scope.required_dates {
            let present: std::collections::BTreeSet<_> =
                files.iter().filter_map(|f| partition_date(f, key)).collect();
            let mut d = a;
            while d <= b {
                if !present.contains(&d) {
                    return Err(Error::NotFound {
                        path: PathBuf::from(spec),
                        problem: format!("missing input partition {key}={d} of the reporting window"),
                    });
                }
                d = d.succ_opt().expect("date in range");
            }
        }
    }
    let kept: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| partition_date(f, key).is_none_or(|d| d >= first && d <= last))
        .collect();
    if kept.is_empty() {
        return Err(Error::NotFound {
            path: PathBuf::from(spec),
            problem: format!("no input partition between {first} and {last}"),
        });
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dates_come_from_the_nearest_key_directory() {
        let p = Path::new("/data/events/date=2024-02-10/hour=3/part-0.parquet");
        assert_eq!(partition_date(p, "date"), chrono::NaiveDate::from_ymd_opt(2024, 2, 10));
        assert_eq!(partition_date(p, "day"), None);
        assert_eq!(partition_date(Path::new("/x/date=2024-02-30/a.parquet"), "date"), None);
        assert_eq!(
            date_of(crate::settings::DAY_MICROS - 1),
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
        );
        assert_eq!(date_of(-1), chrono::NaiveDate::from_ymd_opt(1969, 12, 31).unwrap());
    }

    #[test]
    fn directories_skip_hidden_files_and_a_window_needs_its_partitions() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["date=2024-02-09", "date=2024-02-10", "_tmp", ".staging"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join("part-0.parquet"), b"x").unwrap();
        }
        std::fs::write(dir.path().join("date=2024-02-10/_SUCCESS"), b"").unwrap();
        let spec = dir.path().to_str().unwrap();
        assert_eq!(resolve_inputs(spec).unwrap().len(), 2);
        let day = crate::settings::DAY_MICROS;
        let feb10 = 19_763 * day;
        let scope = |a: i64, b: i64, need: (u32, u32)| ReadScope {
            allow_empty: false,
            range: Some((a, b)),
            partition_key: Some("date".into()),
            required_dates: Some((
                chrono::NaiveDate::from_ymd_opt(2024, 2, need.0).unwrap(),
                chrono::NaiveDate::from_ymd_opt(2024, 2, need.1).unwrap(),
            )),
            ..ReadScope::default()
        };
        let files = scoped_inputs(spec, &scope(feb10, feb10 + day, (10, 10))).unwrap();
        assert_eq!(files.len(), 1, "the partition outside the range is pruned");
        let err = scoped_inputs(spec, &scope(feb10, feb10 + 2 * day, (10, 11))).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("date=2024-02-11"), "{err}");
    }
}
