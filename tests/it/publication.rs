//! Publication: a reader sees the whole previous run or the whole new one at every instant;
//! a kill at any step leaves one of them; tables an earlier run wrote and this one does not
//! are gone; a second run on a locked output fails with 75.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;

/// Every visible file under `dir` (links followed, hidden entries skipped), by relative
/// path; manifests are checked for completeness and left out (they hold timings).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.is_file() {
                out.insert(p.strip_prefix(base).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    let manifests: Vec<String> = out.keys().filter(|k| k.ends_with("manifest.json")).cloned().collect();
    for m in manifests {
        let doc: serde_json::Value = serde_json::from_slice(&out.remove(&m).unwrap()).unwrap();
        let listed: Vec<&str> =
            doc["outputs"].as_array().unwrap().iter().map(|f| f["file"].as_str().unwrap()).collect();
        let prefix = m.trim_end_matches("manifest.json").trim_end_matches("_manifest/").to_owned();
        for f in listed {
            let key = if prefix.is_empty() { f.to_owned() } else { format!("{prefix}{f}") };
            assert!(
                out.contains_key(&key) || out.keys().any(|k| k.ends_with(f)),
                "manifest lists {f}, missing"
            );
        }
    }
    out
}

fn attribute(out: &Path, extra: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let events = sample();
    let mut args =
        vec!["attribute", "--events", events.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"];
    args.extend_from_slice(extra);
    touchpoint_env(&args, env)
}

#[test]
fn tables_of_an_earlier_run_are_not_left_beside_the_new_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(attribute(&out, &["--journey-credit"], &[]).status.success());
    assert!(out.join("journey_credit.parquet").exists());
    assert!(attribute(&out, &["--format", "csv", "--models", "linear"], &[]).status.success());
    let names: Vec<String> = snapshot(&out).into_keys().collect();
    assert!(names.iter().all(|n| !n.ends_with(".parquet")), "{names:?}");
    assert!(names.contains(&"channel_attribution.csv".to_owned()));
    assert!(!names.iter().any(|n| n.starts_with("markov")));
}

#[test]
fn a_bare_relative_output_name_works_from_its_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_touchpoint"))
            .args(["attribute", "--events", sample().to_str().unwrap(), "--out", "report", "-q"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(dir.path().join("report/channel_attribution.parquet").is_file());
}

#[test]
fn a_link_someone_else_made_is_not_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    let out = dir.path().join("latest");
    std::os::unix::fs::symlink(&theirs, &out).unwrap();
    let o = attribute(&out, &[], &[]);
    assert_eq!(o.status.code(), Some(78), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_link(&out).unwrap(), theirs);
}

#[test]
fn plain_and_dated_publications_do_not_share_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(attribute(&out, &["--run-date", "2024-02-10"], &[]).status.success());
    let o = attribute(&out, &[], &[]);
    assert_eq!(o.status.code(), Some(78), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("date partitions"));
    let plain = dir.path().join("plain");
    assert!(attribute(&plain, &[], &[]).status.success());
    let o = attribute(&plain, &["--run-date", "2024-02-10"], &[]);
    assert_eq!(o.status.code(), Some(78), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_second_run_on_a_locked_output_fails_at_once_with_75() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(attribute(&out, &[], &[]).status.success());
    let before = snapshot(&out);
    let lock = std::fs::File::create(dir.path().join(".out.touchpoint/lock")).unwrap();
    lock.try_lock().unwrap();
    let o = attribute(&out, &["--lookback-days", "3"], &[]);
    assert_eq!(o.status.code(), Some(75), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("lock"));
    assert_eq!(snapshot(&out), before);
    drop(lock);
    assert!(attribute(&out, &["--lookback-days", "3"], &[]).status.success());
}

#[test]
fn an_output_of_the_previous_layout_is_adopted_and_a_foreign_directory_refused() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("manifest.json"), r#"{"tool": "touchpoint", "outputs": []}"#).unwrap();
    std::fs::write(old.join("channel_attribution.parquet"), b"old bytes").unwrap();
    assert!(attribute(&old, &[], &[]).status.success());
    assert!(std::fs::symlink_metadata(&old).unwrap().file_type().is_symlink());
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    let o = attribute(&foreign, &[], &[]);
    assert_eq!(o.status.code(), Some(78));
    assert_eq!(std::fs::read(foreign.join("notes.txt")).unwrap(), b"mine");
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_kill_at_every_step_of_a_plain_publication_leaves_one_whole_run() {
    let dir = tempfile::tempdir().unwrap();
    let (old_args, new_args): (&[&str], &[&str]) =
        (&["--journey-credit"], &["--format", "csv", "--lookback-days", "7"]);
    let reference = |args: &[&str], name: &str| {
        let p = dir.path().join(name);
        assert!(attribute(&p, args, &[]).status.success());
        snapshot(&p)
    };
    let (old, new) = (reference(old_args, "ref-old"), reference(new_args, "ref-new"));
    assert_ne!(old, new);
    let out = dir.path().join("out");
    assert!(attribute(&out, old_args, &[]).status.success());
    let mut completed = false;
    for step in 1..200 {
        let o = attribute(&out, new_args, &[("TOUCHPOINT_FAULT_KILL_AT", step.to_string())]);
        let now = snapshot(&out);
        assert!(now == old || now == new, "after a kill at step {step} the output is neither run");
        if o.status.success() {
            assert_eq!(now, new);
            completed = true;
            break;
        }
        // Back to the old run for the next step (this also exercises the cleanup).
        assert!(attribute(&out, old_args, &[]).status.success());
        assert_eq!(snapshot(&out), old);
    }
    assert!(completed, "publication never completed");
    let versions = std::fs::read_dir(dir.path().join(".out.touchpoint/versions")).unwrap().count();
    assert!(versions <= 2, "{versions} versions kept (current and previous at most)");
    let strays: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("tmp-link"))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
}

fn pipeline(dir: &Path, journey_credit: bool, format: &str) -> PathBuf {
    let p = dir.join(format!("p-{journey_credit}-{format}.toml"));
    std::fs::write(
        &p,
        format!(
            "version = 1\n[input]\nevents = \"{}\"\n[output]\nroot = \"out\"\nformat = \"{format}\"\njourney_credit = {journey_credit}\n",
            sample().display()
        ),
    )
    .unwrap();
    p
}

fn run(p: &Path, date: &str, env: &[(&str, String)]) -> std::process::Output {
    touchpoint_env(&["run", p.to_str().unwrap(), "--run-date", date, "-q"], env)
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_kill_at_every_step_of_a_dated_publication_leaves_one_whole_run_per_date() {
    let dir = tempfile::tempdir().unwrap();
    let ref_old = tempfile::tempdir().unwrap();
    let ref_new = tempfile::tempdir().unwrap();
    let reference = |d: &Path, jc: bool, f: &str| {
        let p = pipeline(d, jc, f);
        // The page of 02-11 compares with 02-10, so the references have that night too.
        assert!(run(&p, "2024-02-10", &[]).status.success());
        assert!(run(&p, "2024-02-11", &[]).status.success());
        snapshot(&d.join("out")).into_iter().filter(|(k, _)| k.contains("2024-02-11")).collect()
    };
    let (old, new) = (reference(ref_old.path(), true, "parquet"), reference(ref_new.path(), false, "csv"));
    let (p_old, p_new) = (pipeline(dir.path(), true, "parquet"), pipeline(dir.path(), false, "csv"));
    // Another date stays untouched throughout.
    assert!(run(&p_old, "2024-02-10", &[]).status.success());
    let root = dir.path().join("out");
    let other = |s: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        s.iter().filter(|(k, _)| k.contains("2024-02-10")).map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let this = |s: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        s.iter().filter(|(k, _)| k.contains("2024-02-11")).map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let other_before = other(&snapshot(&root));
    assert!(run(&p_old, "2024-02-11", &[]).status.success());
    assert_eq!(this(&snapshot(&root)), old);
    let mut completed = false;
    for step in 1..200 {
        let o = run(&p_new, "2024-02-11", &[("TOUCHPOINT_FAULT_KILL_AT", step.to_string())]);
        let now = snapshot(&root);
        assert_eq!(other(&now), other_before, "step {step}: another date changed");
        let t = this(&now);
        assert!(
            t == old || t == new,
            "after a kill at step {step} the date holds neither run: {:?}",
            t.keys()
        );
        if o.status.success() {
            assert_eq!(t, new);
            completed = true;
            break;
        }
        assert!(run(&p_old, "2024-02-11", &[]).status.success());
        assert_eq!(this(&snapshot(&root)), old);
    }
    assert!(completed);
}

/// Readers that know nothing of touchpoint follow the links: Polars' hive-partitioned scan
/// of a table directory sees every run date.
#[test]
fn a_hive_scan_of_a_table_directory_reads_every_date_through_the_links() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), false, "parquet");
    for d in ["2024-02-10", "2024-02-11"] {
        assert!(run(&p, d, &[]).status.success());
    }
    let table = dir.path().join("out/channel_attribution");
    let df = LazyFrame::scan_parquet(PlRefPath::new(table.to_str().unwrap()), ScanArgsParquet::default())
        .unwrap()
        .collect()
        .unwrap();
    let dates = df.column("run_date").unwrap().as_materialized_series().n_unique().unwrap();
    assert_eq!(dates, 2, "{df}");
}

/// Unmounts the small file system of the disk-full test, whatever happens.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A disk that fills up in the middle of writing: 74, the previous run stays whole, and the
/// failed run's half-written version is gone (the full disk is not left full), for a plain
/// output and a dated one (`--run-date`). Runs where the tests run as root (CI does), on a
/// tmpfs that holds one run (~190 kB plain, ~170 kB dated) but not two.
#[test]
fn a_disk_that_fills_up_mid_write_fails_with_74_and_keeps_the_previous_run() {
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!("skipped: mounting a small file system needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str, &str); 2] = [
        (&[], ".out.touchpoint/versions", "size=300k"),
        (&["--run-date", "2024-02-15"], "out/.touchpoint/versions", "size=240k"),
    ];
    for (i, (dated, store, size)) in cases.into_iter().enumerate() {
        let mnt = dir.path().join(format!("small{i}"));
        std::fs::create_dir_all(&mnt).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", size, "tmpfs"])
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(ok.success(), "mount a tmpfs (root)");
        let _guard = Mount(mnt.clone());
        let out = mnt.join("out");
        assert!(attribute(&out, dated, &[]).status.success());
        let before = snapshot(&out);
        let versions = || {
            let rd = std::fs::read_dir(mnt.join(store)).unwrap();
            let mut v: Vec<String> = rd.map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
            v.sort();
            v
        };
        let kept = versions();
        assert_eq!(kept.len(), 1, "{kept:?}");
        let o = attribute(&out, &[dated, &["--lookback-days", "7"]].concat(), &[]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(74), "{dated:?}: {stderr}");
        assert!(stderr.contains("No space left"), "{stderr}");
        assert_eq!(snapshot(&out), before, "{dated:?}: the previous run is whole");
        assert_eq!(versions(), kept, "{dated:?}: the failed run's version is removed");
    }
}
